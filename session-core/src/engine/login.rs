//! A login's move to a new id ([`Session::renew`](super::Session::renew)),
//! and the user binding's index kept beside the session.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::snapshot::{Failure, Snapshot, cookie_value, sealed};
use super::state::{Client, CookieChange};
use super::{Settings, events};
use crate::logout::{MOVE_NOTE_TTL, micros_since_epoch};
use crate::store::{Applied, ChangeSet, Record};
use crate::users::{Binding, Entry, SEEN_KEY, USER_KEY, UserIndex, millis};
use crate::{SessionId, SessionStore, StoreError, StoreKey};

/// The user's index of a bound session.
pub(super) fn index<'a, S: SessionStore>(
    store: &'a S,
    settings: &'a Settings,
    binding: &'a Binding,
) -> UserIndex<'a, S> {
    UserIndex::new(store, &settings.keys, &binding.user, settings.codec).max(settings.max_per_user)
}

/// The entry in `index` of a session bound now, under `key`.
pub(super) fn fresh_entry<S: SessionStore>(
    index: &UserIndex<'_, S>,
    key: &StoreKey,
    client: Option<&Client>,
) -> Entry {
    Entry::new(
        index.name(key),
        client.and_then(|c| c.user_agent.as_deref()),
        client.and_then(|c| c.ip.as_deref()),
    )
}

/// Whether a bound session was last seen long enough ago for a write to
/// say it was seen now: the refresh's own step, a tenth of its lifetime
/// (at most a minute).
fn seen_due(seen: Option<u64>, lifetime: Duration, now: SystemTime) -> bool {
    let step = (lifetime / 10).min(Duration::from_secs(60));
    seen.is_none_or(|seen| millis(now).saturating_sub(seen) > millis_of(step))
}

fn millis_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a write of a bound session under `key` (living `ttl` from now)
/// adds to it, after writing the session's entry in its user's index
/// first, where that is due: when the request bound it (its change set
/// then holds the binding already), or when the index could expire before
/// the session ([`Binding::index_due`]). Else the write says when the
/// session was seen, if that is due. The flag: the index was created with
/// this entry (there is nothing else in it to tidy).
pub(super) async fn bound_updates<S: SessionStore>(
    store: &S,
    settings: &Settings,
    snap: &Snapshot,
    binding: &Binding,
    key: &StoreKey,
    ttl: Duration,
) -> Result<(Vec<(String, Bytes)>, bool), StoreError> {
    let now = SystemTime::now();
    let index = index(store, settings, binding);
    if snap.bound {
        let fresh_index = index
            .add(
                &binding.handle,
                &fresh_entry(&index, key, snap.client.as_ref()),
            )
            .await?;
        return Ok((Vec::new(), fresh_index));
    }
    let mut updates = Vec::new();
    if seen_due(snap.seen, snap.lifetime, now) {
        let seen = settings.codec.encode(&millis(now)).ok();
        updates.extend(seen.map(|v| (SEEN_KEY.to_owned(), v)));
    }
    if binding.index_due(now, ttl) {
        let entry = index
            .entries()
            .await?
            .into_iter()
            .find(|(handle, _)| *handle == binding.handle)
            .map_or_else(
                || fresh_entry(&index, key, None),
                |(_, entry)| Entry {
                    key: index.name(key),
                    ..entry
                },
            );
        index.add(&binding.handle, &entry).await?;
        let rebound = Binding {
            indexed_at: millis(now),
            ..binding.clone()
        };
        let rebound = settings.codec.encode(&rebound).ok();
        updates.extend(rebound.map(|v| (USER_KEY.to_owned(), v)));
    }
    Ok((updates, false))
}

/// Points a bound session's index entry at the key a login is moving it
/// to, once the new session exists and before the old one is taken: a
/// revocation that reads the entry before finds the old key and follows
/// the login's note; one that reads it after finds the new key. A session
/// the request bound gets a new entry; one bound before keeps what its
/// entry says (its binding time, its client). `true`: the index was created
/// with this entry.
async fn rebind<S: SessionStore>(
    store: &S,
    settings: &Settings,
    binding: &Binding,
    bound: bool,
    client: Option<&Client>,
    old: &StoreKey,
    new: &StoreKey,
) -> Result<bool, StoreError> {
    let index = index(store, settings, binding);
    let kept = if bound {
        None
    } else {
        index.entries().await?.into_iter().find(|(handle, entry)| {
            *handle == binding.handle && index.resolve(entry).as_ref() == Some(old)
        })
    };
    let entry = match kept {
        Some((_, entry)) => Entry {
            key: index.name(new),
            ..entry
        },
        None => fresh_entry(&index, new, client),
    };
    index.add(&binding.handle, &entry).await
}

/// After a binding: drops the index entries of the user's sessions that
/// ended (so that the index holds the live ones, plus those that ended since
/// the last login), and ends the least recently seen sessions past
/// `SESSION_MAX_PER_USER`. The login stands whatever happens: a failure is
/// logged.
pub(super) async fn tidy<S: SessionStore>(store: &S, settings: &Settings, binding: &Binding) {
    let index = index(store, settings, binding);
    if let Err(error) = index.cap(settings.max_per_user, &binding.handle).await {
        tracing::warn!(%error, "could not tidy a user's index of sessions after a login");
    }
}

/// Moves a stored session to a new id (login). The old id never holds
/// anything the login wrote, at any step, whatever fails; and a logout
/// racing the login still wins, whatever the interleaving:
///
/// 1. a note beside the old key ([`crate::keyspace::Keyspace::move_note`]) names the new key (its value empty: the login
///    is under way), so that a logout that arrives while the login runs
///    ends the new session too;
/// 2. the new session is created with this request's view of the session
///    (the login's changes included) and the old creation time;
/// 3. the old one is taken (atomically read and deleted): `None` means a
///    logout deleted it first (or another login of it moved it first), so
///    the login is undone;
/// 4. writes other requests made to the old id meanwhile are carried over,
///    with this request's changes applied on top; `Gone` means a logout
///    followed the note and ended the new session;
/// 5. the note records when the login was over: a logout that arrives
///    later with the old id (an attacker who planted it, say) no longer
///    reaches the new session.
pub(super) async fn renew<S: SessionStore>(
    store: &S,
    settings: &Settings,
    old: &StoreKey,
    ttl: Duration,
    snap: Snapshot,
) -> Result<CookieChange, Failure> {
    // Unknown only when no absolute lifetime is set: the move starts the
    // count (`ttl` is the idle lifetime then).
    let created_at = snap.created_at.or_else(|| Some(SystemTime::now()));
    let permanent = snap.permanent;
    let (binding, bound, client) = (snap.binding, snap.bound, snap.client);
    let id = SessionId::generate();
    let new = settings.keys.session(&id);
    let note = settings.keys.move_note(old);
    let note_ttl = MOVE_NOTE_TTL.min(settings.lifetime);
    // The note names the new session as the keyspace says: never its id.
    let named = settings.keys.name(&note, &new);
    let target = |done: Bytes| vec![(named.clone(), done)];
    // Another login of the same session may have left a note: add to it.
    let first_note = Record::from(target(Bytes::new()).into_iter().collect::<HashMap<_, _>>());
    if !store.create(&note, &first_note, note_ttl).await? {
        let add = ChangeSet {
            set: target(Bytes::new()),
            ..ChangeSet::default()
        };
        let _ = store.apply(&note, &add, note_ttl).await?;
    }
    let record = Record {
        entries: snap.entries,
        expires_at: None,
        created_at,
    };
    if !store
        .create(&new, &sealed(settings, &id, &record), ttl)
        .await?
    {
        return Err(StoreError::backend("a fresh session id was taken").into());
    }
    // From here on the new session exists: a failure removes it again, so
    // that nothing is left that nobody holds a cookie for.
    let mut fresh_index = false;
    let moved = async {
        if let Some(binding) = &binding {
            fresh_index =
                rebind(store, settings, binding, bound, client.as_ref(), old, &new).await?;
        }
        let Some(latest) = store.take(old).await? else {
            // The old session is gone before this login moved it: a logout
            // ended it, or another login of it (a form sent twice) moved it
            // first. This login is undone, and leaves the note to the other
            // login, if any: then that login's cookie is the one to keep,
            // else (a logout) the cookie goes.
            store.delete(&new).await?;
            let unmark = ChangeSet {
                remove: vec![named.clone()],
                ..ChangeSet::default()
            };
            return Ok(match store.apply(&note, &unmark, note_ttl).await? {
                Applied::Done => CookieChange::Keep,
                _ => CookieChange::Remove,
            });
        };
        // The values move from the old id's key to the new one's.
        let mut merged = latest.entries;
        if let Some(old_id) = &snap.id {
            settings.at_rest.open_entries(old_id, &mut merged);
        }
        snap.changes.apply_to(&mut merged);
        let mut carry = ChangeSet {
            clear: true,
            set: merged.into_iter().collect(),
            remove: Vec::new(),
            max_size: Some(settings.max_size),
        };
        settings.at_rest.seal_changes(&id, &mut carry);
        match store.apply(&new, &carry, ttl).await? {
            Applied::Done => {}
            Applied::TooLarge { size } => tracing::warn!(
                size,
                limit = settings.max_size,
                "writes made to the session during the login would pass SESSION_MAX_SIZE; the login keeps its own view"
            ),
            Applied::Deleted | Applied::Gone => return Ok(CookieChange::Remove),
        }
        Ok::<_, StoreError>(CookieChange::Set {
            value: cookie_value(settings, &id),
            ttl,
            permanent,
            id: Some(id.clone()),
        })
    };
    let change = match moved.await {
        Ok(change) => change,
        Err(error) => {
            if let Err(cleanup) = store.delete(&new).await {
                tracing::warn!(%cleanup, "a failed login could not remove the session it created");
            }
            return Err(error.into());
        }
    };
    if !matches!(change, CookieChange::Set { .. }) {
        return Ok(change);
    }
    events::renewed();
    if let Some(binding) = binding.as_ref().filter(|_| bound)
        && !fresh_index
    {
        tidy(store, settings, binding).await;
    }
    let done = Bytes::from(micros_since_epoch(SystemTime::now()).to_string());
    let mark = ChangeSet {
        set: target(done),
        ..ChangeSet::default()
    };
    match store.apply(&note, &mark, note_ttl).await {
        // A logout took the note after the move, and followed it: the new
        // session is gone, so is its cookie.
        Ok(Applied::Gone) => Ok(CookieChange::Remove),
        Ok(_) => Ok(change),
        // Without the mark, a logout with the old id still ends the new
        // session for the note's few minutes: safe, so a failure is no
        // reason to fail the login.
        Err(error) => {
            tracing::warn!(%error, "the login could not mark its move as done");
            Ok(change)
        }
    }
}
