//! `SessionMiddleware`: the actix-web plumbing around the store cycle.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage};

use session_core::Engine;

use crate::response;
use crate::slot::Slot;
use crate::users::Users;

/// The session middleware: register it with `App::new().wrap(...)`.
///
/// It runs the store cycle around every request: the session is loaded
/// lazily (only if a handler or extractor asks for it, at most once per
/// request), changes are recorded per key, and after the handler only the
/// changed keys are saved and the cookie is set or removed. A request that
/// never touches its session costs no store call and sends no cookie.
///
/// Choose the store and the signing key in code:
///
/// ```no_run
/// use actix_web::{App, HttpServer};
/// use session_actix::{SessionMiddleware, SigningKey, store::memory::MemoryStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let key = SigningKey::new(std::env::var("SECRET_KEY")?)?;
/// // Create the middleware once, outside the factory, so all workers
/// // share its store.
/// let sessions = SessionMiddleware::new(MemoryStore::new(), key);
/// HttpServer::new(move || App::new().wrap(sessions.clone()))
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await?;
/// # Ok(()) }
/// ```
///
/// with [`builder`](Self::builder) for the other settings, or Flask-style,
/// from `SESSION_TYPE` and the other keys:
///
/// ```no_run
/// use session_actix::{SessionConfig, SessionMiddleware};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let sessions = SessionMiddleware::from_config(SessionConfig::from_env()?).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionMiddleware {
    engine: Arc<Engine>,
}

impl SessionMiddleware {
    pub(crate) fn from_engine(engine: Engine) -> Self {
        Self {
            engine: Arc::new(engine),
        }
    }

    /// The users' sessions of this middleware's store, to list and end
    /// them outside a request (an admin task, a password change handled
    /// elsewhere). Handlers can take [`Users`] as an argument instead.
    pub fn users(&self) -> Users {
        Users::from(self.engine.users())
    }
}

impl std::fmt::Debug for SessionMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl<Svc, B> Transform<Svc, ServiceRequest> for SessionMiddleware
where
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = SessionService<Svc>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: Svc) -> Self::Future {
        ready(Ok(SessionService {
            service: Rc::new(service),
            engine: Arc::clone(&self.engine),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around an app's routes: actix-web
/// plumbing, not meant to be named.
#[doc(hidden)]
pub struct SessionService<Svc> {
    service: Rc<Svc>,
    engine: Arc<Engine>,
}

impl<Svc> std::fmt::Debug for SessionService<Svc> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

impl<Svc, B> Service<ServiceRequest> for SessionService<Svc>
where
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let slot = Slot::new(Arc::clone(&self.engine));
        req.extensions_mut().insert(slot.clone());
        Box::pin(async move {
            let res = service.call(req).await?;
            Ok(response::finish(&slot, res).await)
        })
    }
}
