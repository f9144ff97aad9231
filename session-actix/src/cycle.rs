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
    exists: bool,
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
        Snapshot {
            id: state.id.clone(),
            exists: state.exists,
            expires_at: state.expires_at,
            status: state.status(),
            changes: state.change_set(),
            entries: state.entries.clone(),
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

/// Whether an unchanged session read by this request should have its
/// lifetime extended: when the store cannot say when it expires, or once it
/// has aged by a tenth of its lifetime (at most a minute).
fn refresh_due(settings: &Settings, expires_at: Option<SystemTime>) -> bool {
    if !settings.refresh {
        return false;
    }
    let Some(expires_at) = expires_at else {
        return true;
    };
    let slack = (settings.lifetime / 10).min(Duration::from_secs(60));
    let remaining = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    remaining + slack < settings.lifetime
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
    let live = snap.id.as_ref().filter(|_| snap.exists).map(key);
    let had_cookie = snap.id.is_some();
    // A cookie for `id`, or nothing if a browser-session cookie is already set.
    let set = |id: &SessionId| CookieChange::Set(cookie_value(settings, id));
    let keep_or_resend = |id: &SessionId| {
        if settings.permanent {
            CookieChange::Set(cookie_value(settings, id))
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
            if let Some(live) = &live {
                timed(t, store.delete(live)).await?;
            }
            if !snap.entries.is_empty() {
                Ok(set(&create_fresh(snap.entries).await?))
            } else if had_cookie {
                Ok(CookieChange::Remove)
            } else {
                Ok(CookieChange::Keep)
            }
        }
        SessionStatus::Renewed => {
            let Some(old) = live else {
                return if snap.entries.is_empty() {
                    Ok(CookieChange::Keep)
                } else {
                    Ok(set(&create_fresh(snap.entries).await?))
                };
            };
            // Save this request's changes where they belong first; if the
            // session was purged meanwhile, the login loses to the logout.
            if timed(t, store.apply(&old, &snap.changes, ttl)).await? == Applied::Gone {
                return Ok(CookieChange::Keep);
            }
            // Move what is stored now, with other requests' writes.
            // Nothing left (the request cleared it, or a logout won): no cookie.
            let current = match timed(t, store.load(&old)).await? {
                Some(current) if !current.entries.is_empty() => current,
                _ => return Ok(CookieChange::Remove),
            };
            let fresh = create_fresh(current.entries).await?;
            // A purge that landed while the copy was made wins: undo the copy.
            if timed(t, store.touch(&old, ttl)).await? == Applied::Gone {
                timed(t, store.delete(&key(&fresh))).await?;
                return Ok(CookieChange::Keep);
            }
            timed(t, store.delete(&old)).await?;
            Ok(set(&fresh))
        }
        SessionStatus::Changed => match (&live, &snap.id) {
            (Some(live), Some(id)) => {
                match timed(t, store.apply(live, &snap.changes, ttl)).await? {
                    Applied::Gone => Ok(CookieChange::Keep),
                    Applied::Done if snap.entries.is_empty() => Ok(CookieChange::Remove),
                    Applied::Done => Ok(keep_or_resend(id)),
                }
            }
            _ if snap.entries.is_empty() => Ok(CookieChange::Keep),
            _ => Ok(set(&create_fresh(snap.entries).await?)),
        },
        SessionStatus::Unchanged => match (&live, &snap.id) {
            (Some(live), Some(id)) if refresh_due(settings, snap.expires_at) => {
                match timed(t, store.touch(live, ttl)).await? {
                    Applied::Done => Ok(keep_or_resend(id)),
                    Applied::Gone => Ok(CookieChange::Keep),
                }
            }
            _ => Ok(CookieChange::Keep),
        },
    }
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
