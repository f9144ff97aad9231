//! A user's sessions, on actix-web's terms: the [`Users`] extractor.
//!
//! A session is bound to a user at login with [`Session::bind_user`]; the
//! save after that request adds it to the user's index. [`Users`] lists and
//! ends a user's sessions from anywhere (a handler, an admin task, a
//! password change); the methods on [`Session`] do it for the user of the
//! request's own session. Ending a session here is a logout: once the call
//! returns, no request with that session reads it, and no request in flight
//! writes it back.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
pub use session_core::engine::UserSession;

use crate::error::{SessionError, SessionRejection};
#[cfg(doc)]
use crate::session::Session;
use crate::slot::Slot;

/// The users' sessions of one [`SessionMiddleware`](crate::SessionMiddleware):
/// list a user's sessions and end them, from a handler (it is an
/// extractor) or from outside a request
/// ([`SessionMiddleware::users`](crate::SessionMiddleware::users)).
///
/// ```
/// use actix_web::{HttpResponse, post, web};
/// use session_actix::Users;
///
/// /// After a password change, or when an account is compromised.
/// #[post("/admin/users/{id}/logout")]
/// async fn log_out_user(users: Users, id: web::Path<String>) -> actix_web::Result<HttpResponse> {
///     let ended = users.revoke_all(&id).await?;
///     Ok(HttpResponse::Ok().body(format!("{ended} sessions ended")))
/// }
/// ```
///
/// The cookie store keeps no list of a user's sessions (a cookie cannot
/// be ended from the server): there every method fails with
/// [`NoUserIndex`](crate::SessionErrorKind::NoUserIndex).
#[derive(Clone, Debug)]
pub struct Users(session_core::engine::Users);

impl From<session_core::engine::Users> for Users {
    fn from(users: session_core::engine::Users) -> Self {
        Self(users)
    }
}

impl Users {
    /// The user's live sessions, in the order they were bound.
    ///
    /// # Errors
    ///
    /// `Store` when the store fails, and `NoUserIndex` on the cookie store.
    pub async fn list(&self, user: &str) -> Result<Vec<UserSession>, SessionError> {
        Ok(self.0.list(user).await?)
    }

    /// Ends the session of `user` that `handle` names; `false` if the user
    /// has no such session (a handle of another user's session included).
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list); the session may then be ended or not.
    pub async fn revoke(&self, user: &str, handle: &str) -> Result<bool, SessionError> {
        Ok(self.0.revoke(user, handle).await?)
    }

    /// Ends every session of `user`; returns how many.
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list); sessions ended before a failure stay ended.
    pub async fn revoke_all(&self, user: &str) -> Result<usize, SessionError> {
        Ok(self.0.revoke_all(user).await?)
    }

    /// Ends every session of `user` but the one `handle` names; returns how
    /// many.
    ///
    /// # Errors
    ///
    /// As [`revoke_all`](Self::revoke_all).
    pub async fn revoke_all_except(&self, user: &str, handle: &str) -> Result<usize, SessionError> {
        Ok(self.0.revoke_all_except(user, handle).await?)
    }
}

impl FromRequest for Users {
    type Error = SessionRejection;
    type Future = Ready<Result<Users, SessionRejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Slot>()
                .map(|slot| Users(slot.engine().users()))
                .ok_or(SessionRejection::MissingMiddleware),
        )
    }
}
