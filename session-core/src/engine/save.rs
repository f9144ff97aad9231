//! The store cycle after the handler (and in the middle of it, at
//! [`Session::save`](super::Session::save)): save what the request changed, decide on the cookie.
//! A login's move lives in [`super::login`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::login::{bound_updates, fresh_entry, index, renew, tidy};
use super::snapshot::{Failure, Snapshot, cookie_value, sealed, snapshot};
use super::state::{CookieChange, SessionStatus, State, lock};
use super::{Engine, Outcome, SessionError, Sessions, Settings, events};
use crate::logout::purge;
use crate::store::{Applied, ChangeSet, Record};
use crate::{OutagePolicy, SessionId, SessionStore, StoreError};

/// Writes a snapshot where the middleware keeps sessions.
async fn write(engine: &Engine, snapshot: Snapshot) -> Result<CookieChange, Failure> {
    match &engine.sessions {
        Sessions::Store(store) => save(store, &engine.settings, snapshot).await,
        #[cfg(feature = "cookie")]
        Sessions::Cookie(store) => Ok(save_cookie(store, &engine.settings, snapshot)),
    }
}

/// [`Engine::finish`]: saves what the request changed and says what to do
/// with the cookie.
pub(super) async fn finish(engine: &Engine, session: &Mutex<State>, server_error: bool) -> Outcome {
    let settings = &engine.settings;
    // A handler that failed may have stopped half-way through its changes:
    // keep none of them (SESSION_SAVE_ON_ERROR), but carry out a logout.
    let failed = server_error && !settings.save_on_error;
    let (snapshot, pending) = {
        let mut state = lock(session);
        let pending = state.pending.take();
        let started = state
            .ctx
            .as_ref()
            .map_or_else(SystemTime::now, |ctx| ctx.started);
        (snapshot(&state, engine, started, failed), pending)
    };
    let change = match snapshot {
        Some(snapshot) => write(engine, snapshot).await,
        None => Ok(CookieChange::Keep),
    };
    // A save made during the request decided on a cookie: it is sent unless
    // this save decides another (or the store fails and the policy is to
    // fail the request).
    let change = match (change, pending) {
        (Ok(CookieChange::Keep), Some(earlier)) => Ok(earlier),
        (Err(Failure::Store(error)), Some(earlier))
            if settings.outage == OutagePolicy::ServeEmpty =>
        {
            events::outage("save", settings.outage);
            tracing::warn!(%error, "session store failed at save; the change is dropped");
            Ok(earlier)
        }
        (change, _) => change,
    };
    match change {
        Ok(CookieChange::Keep) => Outcome::Keep,
        Ok(CookieChange::Set {
            value,
            ttl,
            permanent,
            ..
        }) => Outcome::Set {
            value,
            max_age: permanent.then_some(ttl),
        },
        Ok(CookieChange::Remove) => Outcome::Remove,
        Err(Failure::Store(error)) => outage(settings, &error),
        Err(Failure::TooLarge { size, limit }) => {
            tracing::error!(
                size,
                limit,
                "session changes refused: with what other requests stored, the session would pass SESSION_MAX_SIZE; nothing was saved"
            );
            Outcome::Failed
        }
    }
}

/// A save that failed: what the outage policy answers.
fn outage(settings: &Settings, error: &StoreError) -> Outcome {
    match (error, settings.outage) {
        (StoreError::NotConfigured, _) => {
            tracing::error!(%error, "a session was written without a store");
            Outcome::Failed
        }
        (_, OutagePolicy::ServeEmpty) => {
            events::outage("save", settings.outage);
            tracing::warn!(%error, "session store failed at save; the change is dropped");
            Outcome::Keep
        }
        _ => {
            events::outage("save", settings.outage);
            tracing::error!(%error, "session store failed at save; answering 503");
            Outcome::Unavailable
        }
    }
}

/// Whether a session has aged enough since its lifetime was last extended
/// for another extension (to `ttl` from now) to be worth a write: when the
/// store cannot say when it expires, or once a tenth of its lifetime (at
/// most a minute) has passed.
pub(super) fn aged(lifetime: Duration, expires_at: Option<SystemTime>, ttl: Duration) -> bool {
    let Some(expires_at) = expires_at else {
        return true;
    };
    let slack = (lifetime / 10).min(Duration::from_secs(60));
    let remaining = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    remaining + slack < ttl
}

/// Whether an unchanged session read by this request should have its
/// lifetime extended (`SESSION_REFRESH_EACH_REQUEST`, once it has aged).
fn refresh_due(settings: &Settings, snap: &Snapshot, ttl: Duration) -> bool {
    settings.refresh && aged(snap.lifetime, snap.expires_at, ttl)
}

/// Saves a server-side session; returns what to do with the cookie.
async fn save<S: SessionStore>(
    store: &S,
    settings: &Settings,
    snap: Snapshot,
) -> Result<CookieChange, Failure> {
    let key = |id: &SessionId| settings.keys.session(id);
    // A session past its absolute lifetime was loaded as missing; it goes.
    if snap.ended
        && let Some(ended) = &snap.key
    {
        store.delete(ended).await?;
    }
    // The store key of the session the request came with, if it was stored.
    let live = snap.key.clone().filter(|_| snap.exists);
    let had_cookie = snap.id.is_some();
    let nothing = if snap.ended {
        CookieChange::Remove
    } else {
        CookieChange::Keep
    };
    let set = |id: &SessionId, ttl| CookieChange::Set {
        value: cookie_value(settings, id),
        ttl,
        permanent: snap.permanent,
        id: Some(id.clone()),
    };
    // The cookie of a saved session is sent again only to extend a
    // permanent cookie's expiry, once it has aged, or to sign it with the
    // current key: a browser-session cookie, or a recently sent one, is
    // already right.
    let keep_or_resend = |id: &SessionId, ttl| {
        if snap.stale_key
            || snap.settings_changed
            || (snap.permanent && aged(snap.lifetime, snap.expires_at, ttl))
        {
            set(id, ttl)
        } else {
            CookieChange::Keep
        }
    };
    // A new session under a fresh id. A login's is in use from the start:
    // it is touched at once, so that a bounded store (memory, files) does
    // not take it for one of a flood of new sessions nobody came back to.
    let create_fresh = async |entries: HashMap<String, Bytes>,
                              in_use: bool|
           -> Result<CookieChange, Failure> {
        let now = SystemTime::now();
        let ttl = settings
            .ttl(Some(now), snap.lifetime)
            .unwrap_or(snap.lifetime);
        let record = Record {
            entries,
            expires_at: None,
            created_at: Some(now),
        };
        // 256 random bits do not collide; the loop is for a broken RNG.
        for _ in 0..3 {
            let id = SessionId::generate();
            let key = key(&id);
            let record = sealed(settings, &id, &record);
            if store.create(&key, &record, ttl).await? {
                events::created();
                if in_use {
                    let _ = store.touch(&key, ttl).await?;
                }
                if let Some(binding) = &snap.binding {
                    // Nobody holds a cookie for it yet: without its
                    // index entry, the session goes again.
                    let index = index(store, settings, binding);
                    let entry = fresh_entry(&index, &key, snap.client.as_ref());
                    let fresh_index = match index.add(&binding.handle, &entry).await {
                        Ok(fresh_index) => fresh_index,
                        Err(error) => {
                            if let Err(cleanup) = store.delete(&key).await {
                                tracing::warn!(%cleanup, "a session whose user binding failed could not be removed");
                            }
                            return Err(error.into());
                        }
                    };
                    if snap.bound && !fresh_index {
                        tidy(store, settings, binding).await;
                    }
                }
                return Ok(set(&id, ttl));
            }
        }
        Err(StoreError::backend("three fresh session ids were all taken").into())
    };
    // The lifetime the session the request came with gets if written now;
    // `None`: its absolute lifetime ran out during the request. Then it
    // ends, whatever the request did, a login included (a logout still
    // follows the notes of logins below).
    let ttl = settings.ttl(snap.created_at, snap.lifetime);
    if snap.status != SessionStatus::Purged
        && let (Some(live), None) = (&live, ttl)
    {
        store.delete(live).await?;
        return Ok(CookieChange::Remove);
    }

    match snap.status {
        SessionStatus::Purged => {
            // Whatever the cookie named goes, and, if a login was moving it
            // while this request was in flight, where the login moved it.
            if let Some(id) = &snap.id {
                purge(store, &settings.keys, key(id), snap.started).await?;
                events::purged();
            }
            if !snap.entries.is_empty() {
                create_fresh(snap.entries, false).await
            } else if had_cookie {
                Ok(CookieChange::Remove)
            } else {
                Ok(CookieChange::Keep)
            }
        }
        SessionStatus::Renewed => match (live, ttl) {
            (Some(old), Some(ttl)) => renew(store, settings, &old, ttl, snap).await,
            _ if snap.entries.is_empty() => Ok(nothing),
            _ => create_fresh(snap.entries, true).await,
        },
        SessionStatus::Changed => match (&live, &snap.id, ttl) {
            (Some(live), Some(id), Some(ttl)) => {
                let mut changes = snap.changes.clone();
                let mut fresh_index = false;
                if let Some(binding) = &snap.binding {
                    let updates;
                    (updates, fresh_index) =
                        bound_updates(store, settings, &snap, binding, live, ttl).await?;
                    // An update replaces what the request wrote of the
                    // same key (the binding, written again with the rest).
                    changes
                        .set
                        .retain(|(key, _)| updates.iter().all(|(k, _)| k != key));
                    changes.set.extend(updates);
                }
                settings.at_rest.seal_changes(id, &mut changes);
                match store.apply(live, &changes, ttl).await? {
                    // A logout (or expiry) won: nothing to save, no cookie.
                    Applied::Gone => Ok(CookieChange::Keep),
                    Applied::Deleted => Ok(CookieChange::Remove),
                    // Another request may hold keys this one does not see:
                    // the store, not this request's view, says it is alive.
                    Applied::Done => {
                        if let Some(binding) = snap.binding.as_ref().filter(|_| snap.bound)
                            && !fresh_index
                        {
                            tidy(store, settings, binding).await;
                        }
                        Ok(keep_or_resend(id, ttl))
                    }
                    Applied::TooLarge { size } => Err(Failure::TooLarge {
                        size,
                        limit: settings.max_size,
                    }),
                }
            }
            _ if snap.entries.is_empty() => Ok(nothing),
            _ => create_fresh(snap.entries, false).await,
        },
        SessionStatus::Unchanged => match (&live, &snap.id, ttl) {
            (Some(live), Some(id), Some(ttl)) if refresh_due(settings, &snap, ttl) => {
                let updates = match &snap.binding {
                    Some(binding) => {
                        bound_updates(store, settings, &snap, binding, live, ttl)
                            .await?
                            .0
                    }
                    None => Vec::new(),
                };
                let refreshed = if updates.is_empty() {
                    store.touch(live, ttl).await?
                } else {
                    let mut changes = ChangeSet {
                        set: updates,
                        ..ChangeSet::default()
                    };
                    // The metadata is tagged as every write tags it.
                    settings.at_rest.seal_changes(id, &mut changes);
                    store.apply(live, &changes, ttl).await?
                };
                match refreshed {
                    Applied::Done => Ok(keep_or_resend(id, ttl)),
                    _ => Ok(CookieChange::Keep),
                }
            }
            (Some(_), Some(id), Some(ttl)) if snap.stale_key => Ok(set(id, ttl)),
            _ => Ok(nothing),
        },
    }
}

/// Saves a cookie-store session: the cookie is the session.
#[cfg(feature = "cookie")]
fn save_cookie(
    store: &crate::store::cookie::CookieStore,
    settings: &Settings,
    snap: Snapshot,
) -> CookieChange {
    // A logout starts over; anything else keeps the creation time.
    let created_at = match (snap.status, snap.created_at) {
        (SessionStatus::Purged, _) | (_, None) => SystemTime::now(),
        (_, Some(created_at)) => created_at,
    };
    let Some(ttl) = settings.ttl(Some(created_at), snap.lifetime) else {
        return if snap.exists || snap.ended {
            CookieChange::Remove
        } else {
            CookieChange::Keep
        };
    };
    let write = snap.status != SessionStatus::Unchanged
        || (snap.exists && (snap.stale_key || refresh_due(settings, &snap, ttl)));
    if !write {
        if snap.ended {
            CookieChange::Remove
        } else {
            CookieChange::Keep
        }
    } else if !snap.entries.is_empty() {
        let record = Record {
            entries: snap.entries,
            expires_at: None,
            created_at: Some(created_at),
        };
        CookieChange::Set {
            value: store.encode(&record, ttl),
            ttl,
            permanent: snap.permanent,
            id: None,
        }
    } else if snap.exists || snap.ended {
        CookieChange::Remove
    } else {
        CookieChange::Keep
    }
}

/// [`Session::save`](super::Session::save).
pub(super) async fn save_now(session: &Mutex<State>) -> Result<(), SessionError> {
    let (snapshot, engine, taken) = {
        let mut state = lock(session);
        let Some(ctx) = &state.ctx else {
            return Ok(());
        };
        let (engine, started) = (Arc::clone(&ctx.engine), ctx.started);
        if state.degraded {
            return Err(SessionError::Store(StoreError::backend(
                "the session store failed when the session was loaded",
            )));
        }
        let Some(snapshot) = snapshot(&state, &engine, started, false) else {
            return Ok(());
        };
        if snapshot.status == SessionStatus::Unchanged && !snapshot.stale_key {
            return Ok(());
        }
        // Changes made while the store is asked are tracked afresh.
        (snapshot, engine, state.take_tracked())
    };
    let lifetime = snapshot.lifetime;
    let status = snapshot.status;
    let outcome = write(&engine, snapshot).await;
    let mut state = lock(session);
    match outcome {
        Ok(change) => {
            state.saved(change, status, lifetime, &engine.settings);
            Ok(())
        }
        Err(failure) => {
            state.restore_tracked(taken);
            Err(match failure {
                Failure::Store(error) => SessionError::Store(error),
                Failure::TooLarge { size, limit } => SessionError::TooLargeInStore { size, limit },
            })
        }
    }
}
