//! Ending sessions for good: the notes a login leaves where a session used
//! to be, and the logout (or revocation) that follows them.
//!
//! A login moves a session to a new id. While it runs, a logout sent with
//! the old cookie must still end the session, wherever the login is moving
//! it; once the login is over, a logout with the old id (one an attacker
//! planted before the login, say) must no longer reach the new session. The
//! login leaves a note beside the old key, naming the new key and, once the
//! move is over, when it was over; [`purge`] deletes a key and follows the
//! notes of the moves that were not over when the logout arrived.
//!
//! The note lives under [`Keyspace::move_note`] and names the new session
//! by [`Keyspace::name`]: it holds no live session id in any layout, and
//! lives where no client of another app can address it.
//!
//! The middleware writes and follows these notes itself; they are public
//! for tools that end sessions from outside a request (revoking a user's
//! sessions, say) and for stores' own tests.

// Public items here are reached by the crate's engine and stores, and by
// tests through `testing::layout` (feature `testing`).
#![cfg_attr(not(feature = "testing"), allow(unreachable_pub))]

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::StoreKey;
use crate::keyspace::Keyspace;
use crate::store::{SessionStore, StoreError};

/// How long the note that a login moved a session stays: longer than any
/// request of that session can still be in flight.
pub const MOVE_NOTE_TTL: Duration = Duration::from_secs(300);

/// A time as a note records it: microseconds since the epoch (a logout
/// that follows the login's response is microseconds later, at least).
pub(crate) fn micros_since_epoch(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

/// Deletes the session under `key` of `keys` and, following the notes
/// logins leave,
/// every session it was moved to by a login that was not over at `started`
/// (when the logout arrived).
///
/// Once it returns, none of those sessions loads again: a store's `apply`
/// never re-creates a deleted session, so no request in flight brings one
/// back, and a login in flight finds its old session gone and gives up.
///
/// # Errors
///
/// The first error of the store; what was deleted before it stays deleted.
pub(crate) async fn purge<S: SessionStore>(
    store: &S,
    keys: &Keyspace,
    key: StoreKey,
    started: SystemTime,
) -> Result<(), StoreError> {
    let started = micros_since_epoch(started);
    let in_flight = |done: &Bytes| {
        std::str::from_utf8(done)
            .ok()
            .and_then(|us| us.parse::<u128>().ok())
            // Empty (the login is under way) or unreadable: follow.
            .is_none_or(|done| started <= done)
    };
    let mut pending = vec![key];
    // Each login adds one hop; a handful covers any real chain.
    for _ in 0..8 {
        let Some(key) = pending.pop() else {
            return Ok(());
        };
        store.delete(&key).await?;
        let note = keys.move_note(&key);
        if let Some(taken) = store.take(&note).await? {
            pending.extend(
                taken
                    .entries
                    .into_iter()
                    .filter(|(_, done)| in_flight(done))
                    .filter_map(|(target, _)| keys.resolve(&note, &target)),
            );
        }
    }
    Ok(())
}
