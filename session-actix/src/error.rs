//! The two ways session code fails: a handler's operation
//! ([`SessionError`]) and getting the session at all ([`SessionRejection`]).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use session_core::codec::CodecError;
use session_core::store::StoreError;

/// An operation on a [`Session`](crate::Session) failed: a value that does
/// not serialize or deserialize, a session that would grow too large, or
/// the store failing under an explicit save or reload.
///
/// As an actix-web error it is a bare `500` (`503` for
/// [`Store`](Self::Store); details go to the log, never to the client),
/// so handlers can use `?` on session calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A value could not be encoded for storage.
    #[error("session key {key:?}: the value could not be serialized: {source}")]
    Serialize {
        /// The session key.
        key: String,
        /// What the codec said.
        #[source]
        source: CodecError,
    },
    /// A stored value does not deserialize into the type asked for (the
    /// type changed since it was stored, say). The entry is kept as it is.
    #[error("session key {key:?}: the stored value is not a `{type_name}`: {source}")]
    Deserialize {
        /// The session key.
        key: String,
        /// The type asked for.
        type_name: &'static str,
        /// What the codec said.
        #[source]
        source: CodecError,
    },
    /// An insert would make the session larger than the configured limit.
    #[error(
        "session key {key:?}: the session would grow to {size} bytes, over its limit of {limit} bytes (SESSION_MAX_SIZE, or what fits in a cookie for the cookie store)"
    )]
    TooLarge {
        /// The session key.
        key: String,
        /// The size the session would have had.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The store failed or timed out during
    /// [`Session::save`](crate::Session::save) or
    /// [`Session::reload`](crate::Session::reload) (`503`).
    #[error("the session store failed: {0}")]
    Store(#[source] StoreError),
    /// [`Session::save`](crate::Session::save) was refused: with what other
    /// requests stored, the session would pass its size limit.
    #[error(
        "the session would grow to {size} bytes with what other requests stored, over its limit of {limit} bytes (SESSION_MAX_SIZE)"
    )]
    TooLargeInStore {
        /// The size the merged session would have had.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Listing or ending a user's sessions through a session bound to no
    /// user (see [`Session::bind_user`](crate::Session::bind_user)): `401`.
    #[error("the session is bound to no user: call `Session::bind_user` at login")]
    NotLoggedIn,
    /// A user's sessions cannot be listed or ended here: on the cookie
    /// store, or through a session no middleware loaded (`500`).
    #[error("{0}")]
    NoUserIndex(&'static str),
    /// The key is reserved (`400`): a name the session keeps its own settings or
    /// user binding under (`_permanent`, `_lifetime`, `_user`, `_seen`:
    /// see `session_core::meta`), or one starting with a NUL character,
    /// kept for the stores' own bookkeeping.
    #[error(
        "session key {key:?} is reserved: the session keeps its own settings and user under \
         _permanent, _lifetime, _user and _seen, and keys starting with a NUL character are \
         the stores'"
    )]
    ReservedKey {
        /// The session key.
        key: String,
    },
}

impl ResponseError for SessionError {
    fn status_code(&self) -> StatusCode {
        match self {
            SessionError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            SessionError::NotLoggedIn => StatusCode::UNAUTHORIZED,
            // Apps that store under a name the client chose meet it as
            // bad input.
            SessionError::ReservedKey { .. } => StatusCode::BAD_REQUEST,
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
        let error = SessionError::ReservedKey { key: "\0k".into() };
        assert_eq!(error.error_response().status(), StatusCode::BAD_REQUEST);
    }
}
