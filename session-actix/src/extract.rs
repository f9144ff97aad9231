//! Getting the session of a request: the extractor and [`SessionExt`].

use std::future::Future;

use actix_web::HttpRequest;
use actix_web::dev::{ServiceRequest, ServiceResponse};

use crate::error::SessionRejection;
use crate::session::Session;
use crate::slot::session_of;

/// Gets the session from a request or a response, for code that is not a
/// handler argument: a middleware of your own (before the handler, on the
/// [`ServiceRequest`]; after it, on the [`ServiceResponse`]), or a handler
/// that needs the session only on some paths (the store is asked only when
/// the future is awaited).
///
/// Guards cannot use it: actix-web's guards are synchronous, and loading a
/// session may wait for the store. Check the session in the handler, or in
/// a middleware, instead.
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
    /// # Errors
    ///
    /// [`SessionRejection::MissingMiddleware`] on a route without the
    /// middleware, and [`SessionRejection::Unavailable`] when the store is
    /// down and the outage policy is to fail.
    fn session(&self) -> impl Future<Output = Result<Session, SessionRejection>> + 'static;
}

impl SessionExt for HttpRequest {
    fn session(&self) -> impl Future<Output = Result<Session, SessionRejection>> + 'static {
        wrap(session_of(self.clone()))
    }
}

impl SessionExt for ServiceRequest {
    fn session(&self) -> impl Future<Output = Result<Session, SessionRejection>> + 'static {
        wrap(session_of(self.request().clone()))
    }
}

/// After the handler: the session as the handler left it (loaded now if the
/// handler did not ask for it). Changes made here are saved too, as long as
/// this middleware runs inside the session middleware (registered before
/// it with `wrap`).
impl<B> SessionExt for ServiceResponse<B> {
    fn session(&self) -> impl Future<Output = Result<Session, SessionRejection>> + 'static {
        wrap(session_of(self.request().clone()))
    }
}

/// The adapter's session over the engine's.
async fn wrap(
    session: impl Future<Output = Result<session_core::Session, SessionRejection>>,
) -> Result<Session, SessionRejection> {
    session.await.map(Session::from)
}
