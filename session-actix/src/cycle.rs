//! The store cycle after the handler: save what changed, set or remove the
//! cookie.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use actix_web::HttpResponse;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite as CookieSameSite, time};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use session_core::bytes::Bytes;
use session_core::store::{Applied, ChangeSet, Record};
use session_core::{OutagePolicy, SameSite, SessionId, SessionStore, StoreError, StoreKey};

use crate::extract::Slot;
use crate::middleware::{Inner, Settings, StoreOrCookie};
use crate::session::SessionStatus;

/// Runs a store call under the configured timeout.
pub(crate) async fn timed<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or(Err(StoreError::Timeout(limit)))
}

/// What the response does with the session cookie.
enum CookieChange {
    Keep,
    Set(String),
    Remove,
}

/// What the save needs from the session, copied out so that no lock is
/// held across a store call.
struct Snapshot {
    id: Option<SessionId>,
    key: Option<StoreKey>,
    exists: bool,
    stale_key: bool,
    expires_at: Option<SystemTime>,
    status: SessionStatus,
    changes: ChangeSet,
    entries: HashMap<String, Bytes>,
}

pub(crate) async fn finish<S, B>(
    inner: &Inner<S>,
    slot: &Slot,
    mut res: ServiceResponse<B>,
) -> ServiceResponse<EitherBody<B>>
where
    S: SessionStore,
    B: MessageBody,
{
    let Some(session) = slot.loaded() else {
        return res.map_into_left_body();
    };
    let settings = &slot.shared().settings;
    // The response depends on the cookie: shared caches must not mix users.
    res.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Cookie"));
    let snapshot = {
        let state = session.state();
        if state.degraded {
            return res.map_into_left_body();
        }
        let status = state.status();
        let server_side = matches!(inner.backend, StoreOrCookie::Store(_));
        // The whole session is copied only when it is written whole: a new
        // session, a login, a logout with new entries, or the cookie store.
        let whole = match status {
            SessionStatus::Unchanged => !server_side,
            SessionStatus::Changed => !(server_side && state.exists),
            SessionStatus::Renewed | SessionStatus::Purged => true,
        };
        Snapshot {
            id: state.id.clone(),
            key: state.key.clone(),
            exists: state.exists,
            stale_key: state.stale_key,
            expires_at: state.expires_at,
            status,
            changes: if status == SessionStatus::Unchanged {
                ChangeSet::default()
            } else {
                state.change_set()
            },
            entries: if whole {
                state.entries.clone()
            } else {
                HashMap::new()
            },
        }
    };
    let change = match &inner.backend {
        StoreOrCookie::Store(store) => save(&**store, settings, snapshot).await,
        #[cfg(feature = "cookie")]
        StoreOrCookie::Cookie => Ok(save_cookie(slot, settings, snapshot)),
    };
    let cookie = match change {
        Ok(CookieChange::Keep) => return res.map_into_left_body(),
        Ok(CookieChange::Set(value)) => set_cookie(settings, value),
        Ok(CookieChange::Remove) => removal_cookie(settings),
        Err(error) => return outage(settings, res, &error),
    };
    match HeaderValue::from_str(&cookie.to_string()) {
        Ok(value) => {
            res.headers_mut().append(header::SET_COOKIE, value);
            res.map_into_left_body()
        }
        Err(error) => {
            tracing::error!(%error, "the session cookie is not a valid header value");
            replace(res, HttpResponse::InternalServerError().finish())
        }
    }
}

/// A save that failed: the response the outage policy asks for.
fn outage<B>(
    settings: &Settings,
    res: ServiceResponse<B>,
    error: &StoreError,
) -> ServiceResponse<EitherBody<B>> {
    match (error, settings.outage) {
        (StoreError::NotConfigured, _) => {
            tracing::error!(%error, "a session was written without a store");
            replace(res, HttpResponse::InternalServerError().finish())
        }
        (_, OutagePolicy::ServeEmpty) => {
            tracing::warn!(%error, "session store failed at save; the change is dropped");
            res.map_into_left_body()
        }
        _ => {
            tracing::error!(%error, "session store failed at save; answering 503");
            replace(res, HttpResponse::ServiceUnavailable().finish())
        }
    }
}

fn replace<B>(res: ServiceResponse<B>, with: HttpResponse) -> ServiceResponse<EitherBody<B>> {
    let (req, _) = res.into_parts();
    ServiceResponse::new(req, with).map_into_right_body()
}

/// Whether a session has aged enough since its lifetime was last extended
/// for another extension to be worth a write: when the store cannot say when
/// it expires, or once a tenth of its lifetime (at most a minute) has passed.
fn aged(settings: &Settings, expires_at: Option<SystemTime>) -> bool {
    let Some(expires_at) = expires_at else {
        return true;
    };
    let slack = (settings.lifetime / 10).min(Duration::from_secs(60));
    let remaining = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    remaining + slack < settings.lifetime
}

/// Whether an unchanged session read by this request should have its
/// lifetime extended (`SESSION_REFRESH_EACH_REQUEST`, once it has aged).
fn refresh_due(settings: &Settings, expires_at: Option<SystemTime>) -> bool {
    settings.refresh && aged(settings, expires_at)
}

/// Saves a server-side session; returns what to do with the cookie.
async fn save<S: SessionStore>(
    store: &S,
    settings: &Settings,
    snap: Snapshot,
) -> Result<CookieChange, StoreError> {
    let ttl = settings.lifetime;
    let t = settings.timeout;
    let key = |id: &SessionId| StoreKey::new(&settings.key_prefix, id, settings.hash_ids);
    // The store key of the session the request came with, if it was stored.
    let live = snap.key.clone().filter(|_| snap.exists);
    let had_cookie = snap.id.is_some();
    let set = |id: &SessionId| CookieChange::Set(cookie_value(settings, id));
    // The cookie of a saved session is sent again only to extend a
    // permanent cookie's expiry, once it has aged, or to sign it with the
    // current key: a browser-session cookie, or a recently sent one, is
    // already right.
    let keep_or_resend = |id: &SessionId| {
        if snap.stale_key || (settings.permanent && aged(settings, snap.expires_at)) {
            set(id)
        } else {
            CookieChange::Keep
        }
    };
    let create_fresh = async |entries: HashMap<String, Bytes>| -> Result<SessionId, StoreError> {
        let record = Record::from(entries);
        // 256 random bits do not collide; the loop is for a broken RNG.
        for _ in 0..3 {
            let id = SessionId::generate();
            if timed(t, store.create(&key(&id), &record, ttl)).await? {
                return Ok(id);
            }
        }
        Err(StoreError::backend(
            "three fresh session ids were all taken",
        ))
    };

    match snap.status {
        SessionStatus::Purged => {
            // Whatever the cookie named goes, even if this request found it
            // already moved by a login: the logout follows the move.
            if let Some(id) = &snap.id {
                purge(store, t, key(id)).await?;
            }
            if !snap.entries.is_empty() {
                Ok(set(&create_fresh(snap.entries).await?))
            } else if had_cookie {
                Ok(CookieChange::Remove)
            } else {
                Ok(CookieChange::Keep)
            }
        }
        SessionStatus::Renewed => match live {
            Some(old) => renew(store, settings, &old, snap).await,
            None if snap.entries.is_empty() => Ok(CookieChange::Keep),
            None => Ok(set(&create_fresh(snap.entries).await?)),
        },
        SessionStatus::Changed => match (&live, &snap.id) {
            (Some(live), Some(id)) => {
                match timed(t, store.apply(live, &snap.changes, ttl)).await? {
                    // A logout (or expiry) won: nothing to save, no cookie.
                    Applied::Gone => Ok(CookieChange::Keep),
                    Applied::Deleted => Ok(CookieChange::Remove),
                    // Another request may hold keys this one does not see:
                    // the store, not this request's view, says it is alive.
                    Applied::Done => Ok(keep_or_resend(id)),
                    Applied::TooLarge { .. } => Ok(CookieChange::Keep),
                }
            }
            _ if snap.entries.is_empty() => Ok(CookieChange::Keep),
            _ => Ok(set(&create_fresh(snap.entries).await?)),
        },
        SessionStatus::Unchanged => match (&live, &snap.id) {
            (Some(live), Some(id)) if refresh_due(settings, snap.expires_at) => {
                match timed(t, store.touch(live, ttl)).await? {
                    Applied::Done => Ok(keep_or_resend(id)),
                    _ => Ok(CookieChange::Keep),
                }
            }
            (Some(_), Some(id)) if snap.stale_key => Ok(set(id)),
            _ => Ok(CookieChange::Keep),
        },
    }
}

/// How long the note that a login moved a session stays: longer than any
/// request of that session can still be in flight.
const MOVE_NOTE_TTL: Duration = Duration::from_secs(300);

/// The key of the note a login leaves at the old id: which keys it moved to.
fn move_note(old: &StoreKey) -> StoreKey {
    StoreKey::from_raw(format!("{old}:moved"))
}

/// Moves a stored session to a new id (login), so that a logout racing it
/// still wins, whatever the interleaving:
///
/// 1. this request's changes go to the old id (`Gone`: a logout won);
/// 2. a note at `old:moved` names the new id, so that a logout arriving
///    with the old id from now on ends the new session too;
/// 3. the new session is created;
/// 4. the old one is taken (atomically read and deleted): `None` means a
///    logout deleted it first, so the login is undone;
/// 5. writes other requests made to the old id meanwhile are carried over;
///    `Gone` means a logout followed the note and ended the new session.
async fn renew<S: SessionStore>(
    store: &S,
    settings: &Settings,
    old: &StoreKey,
    snap: Snapshot,
) -> Result<CookieChange, StoreError> {
    let (t, ttl) = (settings.timeout, settings.lifetime);
    match timed(t, store.apply(old, &snap.changes, ttl)).await? {
        Applied::Done => {}
        Applied::Deleted => return Ok(CookieChange::Remove),
        Applied::Gone | Applied::TooLarge { .. } => return Ok(CookieChange::Keep),
    }
    let id = SessionId::generate();
    let new = StoreKey::new(&settings.key_prefix, &id, settings.hash_ids);
    let note = move_note(old);
    let note_ttl = MOVE_NOTE_TTL.min(ttl);
    let target: HashMap<String, Bytes> = [(new.as_str().to_owned(), Bytes::new())].into();
    // Another login of the same session may have left a note: add to it.
    if !timed(
        t,
        store.create(&note, &Record::from(target.clone()), note_ttl),
    )
    .await?
    {
        let add = ChangeSet {
            set: target.into_iter().collect(),
            ..ChangeSet::default()
        };
        let _ = timed(t, store.apply(&note, &add, note_ttl)).await?;
    }
    if !timed(t, store.create(&new, &Record::from(snap.entries), ttl)).await? {
        return Err(StoreError::backend("a fresh session id was taken"));
    }
    let Some(latest) = timed(t, store.take(old)).await? else {
        timed(t, store.delete(&new)).await?;
        return Ok(CookieChange::Remove);
    };
    let carry = ChangeSet {
        clear: true,
        set: latest.entries.into_iter().collect(),
        remove: Vec::new(),
        max_size: None,
    };
    Ok(match timed(t, store.apply(&new, &carry, ttl)).await? {
        Applied::Done => CookieChange::Set(cookie_value(settings, &id)),
        _ => CookieChange::Remove,
    })
}

/// Deletes a session and, following the notes logins leave, every session
/// it was moved to.
async fn purge<S: SessionStore>(store: &S, t: Duration, key: StoreKey) -> Result<(), StoreError> {
    let mut pending = vec![key];
    // Each login adds one hop; a handful covers any real chain.
    for _ in 0..8 {
        let Some(key) = pending.pop() else {
            return Ok(());
        };
        timed(t, store.delete(&key)).await?;
        if let Some(note) = timed(t, store.take(&move_note(&key))).await? {
            pending.extend(note.entries.into_keys().map(StoreKey::from_raw));
        }
    }
    Ok(())
}

/// Saves a cookie-store session: the cookie is the session.
#[cfg(feature = "cookie")]
fn save_cookie(slot: &Slot, settings: &Settings, snap: Snapshot) -> CookieChange {
    let crate::middleware::Loader::Cookie(store) = &slot.shared().loader else {
        unreachable!("a cookie-store middleware has a cookie loader");
    };
    let write = snap.status != SessionStatus::Unchanged
        || (snap.exists && refresh_due(settings, snap.expires_at));
    if !write {
        CookieChange::Keep
    } else if !snap.entries.is_empty() {
        CookieChange::Set(store.encode(&Record::from(snap.entries), settings.lifetime))
    } else if snap.exists {
        CookieChange::Remove
    } else {
        CookieChange::Keep
    }
}

fn cookie_value(settings: &Settings, id: &SessionId) -> String {
    match &settings.signer {
        Some(signer) => signer.sign(id.as_str()),
        None => id.as_str().to_owned(),
    }
}

fn base_cookie(settings: &Settings, value: String) -> Cookie<'static> {
    let c = &settings.cookie;
    let mut cookie = Cookie::new(c.name.clone(), value);
    cookie.set_path(c.path.clone());
    if let Some(domain) = &c.domain {
        cookie.set_domain(domain.clone());
    }
    cookie.set_secure(c.secure);
    cookie.set_http_only(c.http_only);
    cookie.set_same_site(match c.same_site {
        SameSite::Lax => CookieSameSite::Lax,
        SameSite::Strict => CookieSameSite::Strict,
        SameSite::None => CookieSameSite::None,
    });
    cookie
}

fn set_cookie(settings: &Settings, value: String) -> Cookie<'static> {
    let mut cookie = base_cookie(settings, value);
    if settings.permanent {
        let lifetime = time::Duration::try_from(settings.lifetime).unwrap_or(time::Duration::MAX);
        cookie.set_max_age(lifetime);
        cookie.set_expires(time::OffsetDateTime::now_utc().saturating_add(lifetime));
    }
    cookie
}

/// A cookie that deletes the session cookie: the same name, Path, Domain,
/// Secure and SameSite it was set with, already expired.
fn removal_cookie(settings: &Settings) -> Cookie<'static> {
    let mut cookie = base_cookie(settings, String::new());
    cookie.set_max_age(time::Duration::ZERO);
    cookie.set_expires(time::OffsetDateTime::UNIX_EPOCH);
    cookie
}
