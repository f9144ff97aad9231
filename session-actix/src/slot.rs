//! The per-request slot the middleware leaves in the request's extensions,
//! and loading the session into it: reading the cookies, checking their
//! signature, asking the store.

use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::HttpRequest;
use session_core::store::Record;
use session_core::{OutagePolicy, SessionId, SessionStore, StoreError, StoreKey};
use tokio::sync::OnceCell;

use crate::error::SessionError;
use crate::error::SessionRejection;
use crate::session::{Client, CookieChange, Ctx, Defaults, Session, State};
use crate::settings::{IdSigner, Sessions, Settings, Shared};

/// The longest `User-Agent` kept for a user's list of sessions.
const MAX_USER_AGENT: usize = 256;

/// The client of `req` as `SESSION_TRACK_CLIENT` records it: its
/// `User-Agent` (cut to 256 bytes; none if it is not ASCII) and its address as actix-web's
/// `realip_remote_addr` gives it (a `Forwarded` or `X-Forwarded-For` header
/// first, else the peer), without the port.
fn client(req: &HttpRequest) -> Client {
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        // `to_str` passes visible ASCII only: any cut is a char boundary.
        .map(|ua| ua[..ua.len().min(MAX_USER_AGENT)].to_owned());
    let ip = req.connection_info().realip_remote_addr().map(|addr| {
        addr.parse::<std::net::SocketAddr>()
            .map_or_else(|_| addr.to_owned(), |a| a.ip().to_string())
    });
    Client { user_agent, ip }
}

/// The session of one request: loaded the first time someone asks.
#[derive(Clone)]
pub(crate) struct Slot(Rc<SlotInner>);

struct SlotInner {
    shared: Arc<Shared>,
    session: OnceCell<Session>,
    started: SystemTime,
}

impl Slot {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self(Rc::new(SlotInner {
            shared,
            session: OnceCell::new(),
            started: SystemTime::now(),
        }))
    }

    /// A slot that already holds `session` (for unit tests of handlers).
    pub(crate) fn ready(session: Session) -> Self {
        Self(Rc::new(SlotInner {
            shared: Arc::new(Shared::detached()),
            session: OnceCell::new_with(Some(session)),
            started: SystemTime::now(),
        }))
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.0.shared
    }

    /// The middleware's shared state, to keep beyond the request.
    pub(crate) fn shared_arc(&self) -> Arc<Shared> {
        Arc::clone(&self.0.shared)
    }

    /// When the middleware received the request.
    pub(crate) fn started(&self) -> SystemTime {
        self.0.started
    }

    /// The session, if anyone asked for it during the request.
    pub(crate) fn loaded(&self) -> Option<&Session> {
        self.0.session.get()
    }

    /// The session, loaded on the first call.
    pub(crate) async fn session(&self, req: &HttpRequest) -> Result<Session, SessionRejection> {
        self.0
            .session
            .get_or_try_init(|| async {
                let values = cookie_values(req, &self.0.shared.settings.cookie.name);
                let mut state = load(&self.0.shared, &values).await?;
                let client = self.0.shared.settings.track_client.then(|| client(req));
                state.ctx = Some(Ctx {
                    shared: Arc::clone(&self.0.shared),
                    started: self.0.started,
                    cookies: values,
                    client,
                });
                Ok(Session::from_state(state))
            })
            .await
            .cloned()
    }
}

/// How many cookies with the session's name are tried, at most: a browser
/// holds one per (Domain, Path) it was set for, so a handful covers every
/// honest case, and a client sending hundreds cannot make a request cost
/// hundreds of store reads.
const MAX_CANDIDATES: usize = 4;

/// Reads the cookies and loads the session they name.
///
/// Several cookies may carry the session's name: one tossed from a sibling
/// subdomain or a plain-HTTP page of the same host is sent along with the
/// real one, and often first. Each is tried, in order, until one names a
/// live session (signature checked first when signing is on), so such a
/// cookie can neither log the user out nor log them in as someone else.
async fn load(shared: &Shared, values: &[String]) -> Result<State, SessionRejection> {
    let settings = &shared.settings;
    let state = |id, record| State::new(id, record, defaults(settings));
    match &shared.sessions {
        #[cfg(feature = "cookie")]
        Sessions::Cookie(store) => Ok(open_cookie(store, settings, values)),
        Sessions::Store(store) => {
            let mut first = None;
            for (id, stale_key) in values
                .iter()
                .filter_map(|v| parse_id(settings.signer.as_ref(), v))
            {
                let key = settings.keys.session(&id);
                let record = match store.load(&key).await {
                    Ok(record) => record,
                    Err(error) => return unavailable(settings, state(None, None), error),
                };
                if record.is_none() && first.is_some() {
                    continue;
                }
                let mut loaded = stored(settings, Some(id), Some(key), record);
                loaded.stale_key = stale_key;
                if loaded.exists {
                    return Ok(loaded);
                }
                first.get_or_insert(loaded);
            }
            Ok(first.unwrap_or_else(|| state(None, None)))
        }
    }
}

/// The session a store gave for `key` (and the cookie's `id`), as this
/// request sees it: missing, and to be deleted, once its absolute lifetime
/// is over.
fn stored(
    settings: &Settings,
    id: Option<SessionId>,
    key: Option<StoreKey>,
    record: Option<Record>,
) -> State {
    let (mut record, ended) = within_absolute_lifetime(settings, record);
    let mut in_clear = 0;
    if let (Some(record), Some(id)) = (&mut record, &id) {
        in_clear = settings
            .at_rest
            .open_entries(id, &mut record.entries)
            .metadata_in_clear;
    }
    let mut state = State::new(id, record, defaults(settings));
    if in_clear > 0 {
        // Written before sealing was on: the next write tags it.
        state.retag_metadata();
    }
    state.key = key;
    state.ended = ended;
    state
}

/// The session in the first of `values` the cookie store opens.
#[cfg(feature = "cookie")]
fn open_cookie(
    store: &session_core::store::cookie::CookieStore,
    settings: &Settings,
    values: &[String],
) -> State {
    let opened = values
        .iter()
        .filter(|v| v.len() <= session_core::store::cookie::BROWSER_COOKIE_LIMIT)
        .find_map(|v| store.decode_fresh(v));
    // A cookie of a fallback key, or of the other content, is written anew
    // on this response.
    let stale = opened.as_ref().is_some_and(|(_, fresh)| !fresh);
    let (record, ended) = within_absolute_lifetime(settings, opened.map(|(r, _)| r));
    let mut loaded = State::new(None, record, defaults(settings));
    loaded.ended = ended;
    loaded.stale_key = stale && !ended;
    loaded
}

/// What a session is when it says nothing of its own.
fn defaults(settings: &Settings) -> Defaults {
    Defaults {
        codec: settings.codec,
        max_size: settings.max_size,
        permanent: settings.permanent,
        lifetime: settings.lifetime,
        flask: settings.flask,
        overhead: settings.at_rest.mode().overhead(),
    }
}

/// The outage policy at load: an empty session that is not saved, or 503.
fn unavailable(
    settings: &Settings,
    mut empty: State,
    error: StoreError,
) -> Result<State, SessionRejection> {
    crate::events::outage("load", settings.outage);
    match settings.outage {
        OutagePolicy::ServeEmpty => {
            tracing::warn!(%error, "session store failed at load; serving an empty session");
            empty.degraded = true;
            Ok(empty)
        }
        _ => {
            tracing::error!(%error, "session store failed at load; answering 503");
            Err(SessionRejection::Unavailable(error))
        }
    }
}

/// A loaded record, or `None` with `ended` set when the absolute lifetime
/// (`SESSION_ABSOLUTE_LIFETIME`) has run out: counted from its creation, and
/// for a session that does not know when it was created (written before
/// creation times were kept), at once.
fn within_absolute_lifetime(settings: &Settings, record: Option<Record>) -> (Option<Record>, bool) {
    match (settings.absolute_lifetime, record) {
        (Some(_), Some(record)) if settings.ttl(record.created_at, settings.lifetime).is_none() => {
            (None, true)
        }
        (_, record) => (record, false),
    }
}

/// The values of the cookies named `name`, in the order sent (at most
/// [`MAX_CANDIDATES`]), read straight from the `Cookie` headers.
///
/// actix-web's own parser gives up on the whole header when any cookie in it
/// is malformed, which would let an unrelated cookie (another app's, or a
/// script's) hide the session. Values are returned as sent: ours never need
/// percent-decoding. A value that is not text cannot be ours and is skipped.
fn cookie_values(req: &HttpRequest, name: &str) -> Vec<String> {
    let mut values: Vec<String> = Vec::new();
    let pairs = req
        .headers()
        .get_all(actix_web::http::header::COOKIE)
        .flat_map(|header| header.as_bytes().split(|&b| b == b';'));
    for pair in pairs {
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (n, v) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
        if n != name.as_bytes() {
            continue;
        }
        let v = v
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(v);
        if let Ok(v) = std::str::from_utf8(v)
            && !values.iter().any(|seen| seen == v)
        {
            values.push(v.to_owned());
        }
        if values.len() == MAX_CANDIDATES {
            break;
        }
    }
    values
}

/// The id in a cookie value, if it is well-formed and, when signing is on,
/// carries a valid signature; and whether it was signed with a fallback
/// key (so the cookie should be signed again). Oversized values are
/// rejected before any work.
pub(crate) fn parse_id(signer: Option<&IdSigner>, value: &str) -> Option<(SessionId, bool)> {
    match signer {
        None => SessionId::parse(value).map(|id| (id, false)),
        Some(signer) if value.len() == signer.signed_len() => {
            let (id, current) = signer.verify_key(value)?;
            SessionId::parse(id).map(|id| (id, !current))
        }
        Some(_) => None,
    }
}

impl Session {
    /// Reads the session again from where it is kept, dropping the changes
    /// not saved yet: what another request stored meanwhile shows, and the
    /// handler starts over from it. After a [`save`](Self::save) of this
    /// request, the session that save left is read (a login's new one, or
    /// none after a logout).
    ///
    /// A session that belongs to no middleware ([`Session::new`]) has
    /// nowhere to be read from: reloading it does nothing.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the store fails or times out; the
    /// session is then left as it was.
    pub async fn reload(&self) -> Result<(), SessionError> {
        let (ctx, id, key, pending) = {
            let state = self.state();
            let Some(ctx) = state.ctx.clone() else {
                return Ok(());
            };
            let pending = match &state.pending {
                Some(CookieChange::Set { value, .. }) => Some(value.clone()),
                _ => None,
            };
            (ctx, state.id.clone(), state.key.clone(), pending)
        };
        let settings = &ctx.shared.settings;
        let mut fresh = match &ctx.shared.sessions {
            #[cfg(feature = "cookie")]
            Sessions::Cookie(store) => {
                // The cookie is the session: the one this request's save
                // decided on, else the request's own.
                let values = pending.map_or_else(|| ctx.cookies.clone(), |value| vec![value]);
                open_cookie(store, settings, &values)
            }
            Sessions::Store(store) => {
                let _ = pending;
                let record = match &key {
                    Some(key) => store.load(key).await.map_err(SessionError::Store)?,
                    None => None,
                };
                stored(settings, id, key, record)
            }
        };
        let mut state = self.state();
        fresh.stale_key |= state.stale_key;
        fresh.pending = state.pending.take();
        fresh.ctx = state.ctx.take();
        *state = fresh;
        Ok(())
    }
}
