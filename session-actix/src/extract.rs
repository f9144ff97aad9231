//! Getting the session of a request: the extractor and `SessionExt`.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use session_core::id::ID_LEN;
use session_core::{OutagePolicy, SessionId, StoreKey};
use tokio::sync::OnceCell;

use crate::middleware::{Loader, Shared};
use crate::session::{Session, SessionError, State};

/// The per-request place the middleware leaves in the request's extensions;
/// the session is loaded into it the first time someone asks.
#[derive(Clone)]
pub(crate) struct Slot(Rc<SlotInner>);

pub(crate) struct SlotInner {
    pub(crate) shared: Arc<Shared>,
    session: OnceCell<Session>,
}

impl Slot {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self(Rc::new(SlotInner {
            shared,
            session: OnceCell::new(),
        }))
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.0.shared
    }

    /// The session, if anyone asked for it during the request.
    pub(crate) fn loaded(&self) -> Option<&Session> {
        self.0.session.get()
    }

    async fn session(&self, req: &HttpRequest) -> Result<Session, SessionError> {
        self.0
            .session
            .get_or_try_init(|| load(&self.0.shared, req))
            .await
            .cloned()
    }
}

/// Reads the cookie and loads the session it names.
async fn load(shared: &Shared, req: &HttpRequest) -> Result<Session, SessionError> {
    let settings = &shared.settings;
    let value = cookie_value(req, &settings.cookie.name);
    let value = value.as_deref();
    let state = |id, record| State::new(id, record, settings.codec, settings.max_size);
    match &shared.loader {
        #[cfg(feature = "cookie")]
        Loader::Cookie(store) => {
            let record = value
                .filter(|v| v.len() <= session_core::store::cookie::BROWSER_COOKIE_LIMIT)
                .and_then(|v| store.decode(v));
            Ok(Session::from_state(state(None, record)))
        }
        Loader::Store(store) => {
            let Some((id, stale_key)) = value.and_then(|v| parse_id(settings.signer.as_ref(), v))
            else {
                return Ok(Session::from_state(state(None, None)));
            };
            let key = StoreKey::new(&settings.key_prefix, &id, settings.hash_ids);
            match crate::cycle::timed(settings.timeout, store.load(&key)).await {
                Ok(record) => {
                    let mut loaded = state(Some(id), record);
                    loaded.stale_key = stale_key;
                    loaded.key = Some(key);
                    Ok(Session::from_state(loaded))
                }
                Err(error) => match settings.outage {
                    OutagePolicy::ServeEmpty => {
                        tracing::warn!(%error, "session store failed at load; serving an empty session");
                        let mut degraded = state(None, None);
                        degraded.degraded = true;
                        Ok(Session::from_state(degraded))
                    }
                    _ => {
                        tracing::error!(%error, "session store failed at load; answering 503");
                        Err(SessionError::Unavailable(error))
                    }
                },
            }
        }
    }
}

/// The value of the first cookie named `name`, read straight from the
/// `Cookie` headers.
///
/// actix-web's own parser gives up on the whole header when any cookie in it
/// is malformed, which would let an unrelated cookie (another app's, or a
/// script's) hide the session. Values are returned as sent: ours never need
/// percent-decoding.
fn cookie_value(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .flat_map(|header| header.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (n, v) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
            if n != name.as_bytes() {
                return None;
            }
            let v = v
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v);
            // A value that is not text cannot be ours: no session.
            Some(std::str::from_utf8(v).unwrap_or_default().to_owned())
        })
}

/// The id in a cookie value, if it is well-formed and, when signing is on,
/// carries a valid signature; and whether it was signed with a fallback
/// key (so the cookie should be signed again). Oversized values are
/// rejected before any work.
fn parse_id(signer: Option<&session_core::Signer>, value: &str) -> Option<(SessionId, bool)> {
    match signer {
        None => SessionId::parse(value).map(|id| (id, false)),
        Some(signer) if value.len() == 2 * ID_LEN + 1 => {
            let (id, current) = signer.verify_key(value)?;
            SessionId::parse(id).map(|id| (id, !current))
        }
        Some(_) => None,
    }
}

fn slot_of(extensions: &actix_web::dev::Extensions) -> Result<Slot, SessionError> {
    extensions
        .get::<Slot>()
        .cloned()
        .ok_or(SessionError::NoMiddleware)
}

/// Loads the session of `req` (once per request) through the middleware's slot.
fn session_of(req: HttpRequest) -> impl Future<Output = Result<Session, SessionError>> + 'static {
    let slot = slot_of(&req.extensions());
    async move { slot?.session(&req).await }
}

impl FromRequest for Session {
    type Error = SessionError;
    type Future = Pin<Box<dyn Future<Output = Result<Session, SessionError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(session_of(req.clone()))
    }
}

/// Gets the session from a request, for code that is not a handler
/// argument: middleware, guards, or a handler that needs the session only
/// on some paths (the store is asked only when this is awaited).
///
/// ```
/// use actix_web::HttpRequest;
/// use session_actix::SessionExt;
///
/// async fn whoami(req: HttpRequest) -> actix_web::Result<String> {
///     let session = req.session().await?;
///     Ok(session.get::<String>("user")?.unwrap_or_else(|| "nobody".into()))
/// }
/// ```
pub trait SessionExt {
    /// Loads the session (at most once per request) and returns it.
    ///
    /// Fails with [`SessionError::NoMiddleware`] on a route without the
    /// middleware, and with [`SessionError::Unavailable`] when the store is
    /// down and the outage policy is to fail.
    fn session(&self) -> impl Future<Output = Result<Session, SessionError>> + 'static;
}

impl SessionExt for HttpRequest {
    fn session(&self) -> impl Future<Output = Result<Session, SessionError>> + 'static {
        session_of(self.clone())
    }
}

impl SessionExt for ServiceRequest {
    fn session(&self) -> impl Future<Output = Result<Session, SessionError>> + 'static {
        session_of(self.request().clone())
    }
}
