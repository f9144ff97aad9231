//! What a save needs from a session, copied out so that no lock is held
//! across a store call, and the small pieces the save and a login share.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::state::{Client, SessionStatus, State};
use super::{Engine, Sessions, Settings};
use crate::store::{ChangeSet, Record};
use crate::users::{Binding, MAX_BOUND_LIFETIME};
use crate::{SessionId, StoreError, StoreKey};

/// Why a save wrote nothing.
pub(super) enum Failure {
    /// The store failed or timed out: the outage policy answers.
    Store(StoreError),
    /// The merged session would pass `SESSION_MAX_SIZE`.
    TooLarge { size: usize, limit: usize },
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

/// What the save needs from the session, copied out so that no lock is
/// held across a store call.
pub(super) struct Snapshot {
    pub(super) id: Option<SessionId>,
    pub(super) key: Option<StoreKey>,
    pub(super) exists: bool,
    pub(super) ended: bool,
    pub(super) stale_key: bool,
    pub(super) expires_at: Option<SystemTime>,
    pub(super) created_at: Option<SystemTime>,
    pub(super) status: SessionStatus,
    pub(super) changes: ChangeSet,
    pub(super) entries: HashMap<String, Bytes>,
    /// When the request arrived: a logout follows a login's move only if
    /// it arrived before the login was over.
    pub(super) started: SystemTime,
    /// The session's own idle lifetime and permanence (else the settings').
    pub(super) lifetime: Duration,
    pub(super) permanent: bool,
    /// This request changed the session's permanence or lifetime: the
    /// cookie is sent again, with its new attributes.
    pub(super) settings_changed: bool,
    /// The user the session is bound to, and when it was last seen.
    pub(super) binding: Option<Binding>,
    pub(super) seen: Option<u64>,
    /// This request bound the session: its entry goes into the user's index.
    pub(super) bound: bool,
    /// The client, when `SESSION_TRACK_CLIENT` records it.
    pub(super) client: Option<Client>,
}

/// What a save needs from `state`, or `None` when nothing is to be saved:
/// the store failed at load (the outage policy serves the session empty),
/// or the response is a failure (`failed`) and the session was not purged.
pub(super) fn snapshot(
    state: &State,
    engine: &Engine,
    started: SystemTime,
    failed: bool,
) -> Option<Snapshot> {
    if state.degraded {
        return None;
    }
    let status = state.status();
    if failed && status != SessionStatus::Purged {
        return None;
    }
    let server_side = matches!(engine.sessions, Sessions::Store(_));
    // The whole session is copied only when it is written whole: a new
    // session, a login, a logout with new entries, or the cookie store.
    let whole = !failed
        && match status {
            SessionStatus::Unchanged => !server_side,
            SessionStatus::Changed => !(server_side && state.exists),
            SessionStatus::Renewed | SessionStatus::Purged => true,
        };
    Some(Snapshot {
        id: state.id.clone(),
        key: state.key.clone(),
        exists: state.exists,
        ended: state.ended,
        stale_key: state.stale_key,
        expires_at: state.expires_at,
        created_at: state.created_at,
        status,
        changes: if status == SessionStatus::Unchanged {
            ChangeSet::default()
        } else {
            state.change_set()
        },
        entries: if whole {
            state.stored_entries()
        } else {
            HashMap::new()
        },
        started,
        // The user's index outlives a bound session only this long.
        lifetime: match &state.binding {
            Some(_) => state.lifetime().min(MAX_BOUND_LIFETIME),
            None => state.lifetime(),
        },
        permanent: state.is_permanent(),
        settings_changed: state.settings_changed(),
        binding: state.binding.clone(),
        seen: state.seen,
        bound: state.bound,
        client: state.ctx.as_ref().and_then(|ctx| ctx.client.clone()),
    })
}

/// `record` as it is stored under `id`: its values sealed, when they are
/// sealed at rest (`SESSION_ENCRYPT_AT_REST`).
pub(super) fn sealed<'a>(
    settings: &Settings,
    id: &SessionId,
    record: &'a Record,
) -> Cow<'a, Record> {
    if !settings.at_rest.mode().seals() {
        return Cow::Borrowed(record);
    }
    let mut sealed = record.clone();
    settings.at_rest.seal_entries(id, &mut sealed.entries);
    Cow::Owned(sealed)
}

pub(super) fn cookie_value(settings: &Settings, id: &SessionId) -> String {
    match &settings.signer {
        Some(signer) => signer.sign(id.as_str()),
        None => id.as_str().to_owned(),
    }
}
