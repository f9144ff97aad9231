//! The per-request slot the middleware leaves in the request's extensions:
//! the engine's session, loaded the first time someone asks.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::HttpRequest;
use actix_web::http::header;
use session_core::engine::{Client, Engine, session_cookies};
use tokio::sync::OnceCell;

use actix_web::HttpMessage;
use session_core::Session;

use crate::error::SessionRejection;

/// The client of `req` as `SESSION_TRACK_CLIENT` records it: its
/// `User-Agent` and its address as actix-web's `realip_remote_addr` gives
/// it (a `Forwarded` or `X-Forwarded-For` header first, else the peer),
/// without the port.
fn client(req: &HttpRequest) -> Client {
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let ip = req.connection_info().realip_remote_addr().map(|addr| {
        addr.parse::<std::net::SocketAddr>()
            .map_or_else(|_| addr.to_owned(), |a| a.ip().to_string())
    });
    Client::new(user_agent, ip)
}

/// The session of one request: loaded the first time someone asks.
#[derive(Clone)]
pub(crate) struct Slot(Rc<SlotInner>);

struct SlotInner {
    engine: Arc<Engine>,
    session: OnceCell<Session>,
    started: SystemTime,
}

impl Slot {
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Self(Rc::new(SlotInner {
            engine,
            session: OnceCell::new(),
            started: SystemTime::now(),
        }))
    }

    /// A slot that already holds `session` (for unit tests of handlers).
    pub(crate) fn ready(session: Session) -> Self {
        Self(Rc::new(SlotInner {
            engine: Arc::new(Engine::detached()),
            session: OnceCell::new_with(Some(session)),
            started: SystemTime::now(),
        }))
    }

    /// The engine of the middleware that made the slot.
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.0.engine
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
                let engine = &self.0.engine;
                let headers = req.headers().get_all(header::COOKIE);
                let cookies = session_cookies(headers.map(|h| h.as_bytes()), &engine.cookie().name);
                let client = engine.track_client().then(|| client(req));
                engine
                    .load(cookies, client, self.0.started)
                    .await
                    .map_err(SessionRejection::Unavailable)
            })
            .await
            .cloned()
    }
}

/// The session of `req`, loaded once per request through the middleware's
/// slot.
pub(crate) fn session_of(
    req: HttpRequest,
) -> impl Future<Output = Result<Session, SessionRejection>> + 'static {
    let slot = req
        .extensions()
        .get::<Slot>()
        .cloned()
        .ok_or(SessionRejection::MissingMiddleware);
    async move { slot?.session(&req).await }
}
