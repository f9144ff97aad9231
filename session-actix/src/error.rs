//! The two ways session code fails: a handler's operation
//! ([`SessionError`]) and getting the session at all ([`SessionRejection`]).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
pub use session_core::SessionError as SessionErrorKind;
use session_core::store::StoreError;

/// An operation on a [`Session`](crate::Session) failed: a value that does
/// not serialize or deserialize, a session that would grow too large, a
/// reserved key, or the store failing under an explicit save or reload.
/// [`kind`](Self::kind) says which.
///
/// As an actix-web error it is a bare status, so handlers can use `?` on
/// session calls: `503` for [`Store`](SessionErrorKind::Store), `401` for
/// [`NotLoggedIn`](SessionErrorKind::NotLoggedIn), `400` for
/// [`ReservedKey`](SessionErrorKind::ReservedKey), else `500`; details go
/// to the log, never to the client.
///
/// ```
/// use session_actix::{Session, SessionErrorKind};
///
/// let session = Session::new();
/// let error = session.insert("_user", "mallory").unwrap_err();
/// assert!(matches!(error.kind(), SessionErrorKind::ReservedKey { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SessionError(#[from] SessionErrorKind);

impl SessionError {
    /// What failed.
    #[must_use]
    pub fn kind(&self) -> &SessionErrorKind {
        &self.0
    }

    /// What failed, by value.
    #[must_use]
    pub fn into_kind(self) -> SessionErrorKind {
        self.0
    }
}

impl ResponseError for SessionError {
    fn status_code(&self) -> StatusCode {
        match self.kind() {
            SessionErrorKind::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            SessionErrorKind::NotLoggedIn => StatusCode::UNAUTHORIZED,
            // Apps that store under a name the client chose meet it as
            // bad input.
            SessionErrorKind::ReservedKey { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body never says more than the status: details are for the log.
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).finish()
    }
}

/// The session of a request could not be had: the error of the
/// [`Session`](crate::Session) and [`TypedSession`](crate::TypedSession)
/// extractors and of [`SessionExt::session`](crate::SessionExt::session).
///
/// Like axum's rejections it carries its status: returned from a handler
/// (or left to the extractor), it answers with [`status`](Self::status)
/// and an empty body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionRejection {
    /// The route has no session middleware: a mistake in the app's set-up
    /// (`500`).
    #[error(
        "no session middleware on this route: add `.wrap(SessionMiddleware::new(...))` to the App or scope"
    )]
    MissingMiddleware,
    /// The store failed while loading the session, and the outage policy
    /// ([`OutagePolicy::Fail`](crate::OutagePolicy::Fail)) is to fail the
    /// request (`503`).
    #[error("the session store is unavailable")]
    Unavailable(#[source] StoreError),
}

impl SessionRejection {
    /// The status the rejection answers with: `500` for a missing
    /// middleware, `503` for a store that is down.
    pub fn status(&self) -> StatusCode {
        match self {
            SessionRejection::MissingMiddleware => StatusCode::INTERNAL_SERVER_ERROR,
            SessionRejection::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl ResponseError for SessionRejection {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    /// The body never says more than the status: details are for the log.
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_answer_with_their_status_and_no_body() {
        let missing = SessionRejection::MissingMiddleware;
        assert_eq!(missing.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let down =
            SessionRejection::Unavailable(StoreError::Timeout(std::time::Duration::from_secs(1)));
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            down.error_response().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            missing.error_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert!(missing.to_string().contains(".wrap(SessionMiddleware"));
        let error = SessionError::from(SessionErrorKind::ReservedKey { key: "\0k".into() });
        assert_eq!(error.error_response().status(), StatusCode::BAD_REQUEST);
    }
}
