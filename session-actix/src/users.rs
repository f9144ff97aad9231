//! A user's sessions: where they are logged in, ending one of those
//! sessions, or all of them ("log out everywhere").
//!
//! A session is bound to a user at login with
//! [`Session::bind_user`]; the save after that request adds it to the
//! user's index, a record the store keeps beside the sessions (see
//! [`session_core::users`] for its layout). [`Users`] lists and ends a
//! user's sessions from anywhere (a handler, an admin task, a password
//! change); the methods on [`Session`] do it for the user of the request's
//! own session, and know which session is the caller's.
//!
//! Ending a session here is a logout: once the call returns, no request
//! with that session reads it, and no request in flight writes it back (a
//! login in flight is followed to the new id it is moving the session to).

use std::future::{Ready, ready};
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::cookie::time::OffsetDateTime;
use actix_web::cookie::time::format_description::well_known::Rfc3339;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use serde::{Serialize, Serializer};
use session_core::users::{Handle, Listed, UserIndex};

use crate::error::{SessionError, SessionRejection};
use crate::session::Session;
use crate::settings::{Sessions, Shared};
use crate::slot::Slot;

/// One session of a user, as [`Users::list`] and
/// [`Session::user_sessions`] show it. Serializes as JSON with its times
/// in RFC 3339:
///
/// ```json
/// {"handle":"3q2-7wAAAABtBQAAAAAAAA","current":true,
///  "created_at":"2026-11-26T09:12:03.512Z","last_seen":"2026-11-26T09:40:11.020Z",
///  "user_agent":"Mozilla/5.0 ...","ip":"203.0.113.7"}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UserSession {
    /// An opaque name for the session, to end it by (see
    /// [`Users::revoke`]): neither its id nor its store key, and no use as
    /// a cookie.
    pub handle: String,
    /// Whether it is the session of the request that asked.
    pub current: bool,
    /// When the session began (before any login moved it to a new id), if
    /// the store knows.
    #[serde(serialize_with = "rfc3339_or_null")]
    pub created_at: Option<SystemTime>,
    /// When the session was last refreshed or written: to within a tenth
    /// of its lifetime, at most a minute.
    #[serde(serialize_with = "rfc3339")]
    pub last_seen: SystemTime,
    /// The `User-Agent` of the request that bound the session, when
    /// `SESSION_TRACK_CLIENT` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The client's address at binding (as the request, or the proxy in
    /// front of the app, gave it), when `SESSION_TRACK_CLIENT` is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl UserSession {
    fn new(listed: Listed, current: Option<&str>) -> Self {
        Self {
            current: current == Some(listed.handle.as_str()),
            handle: listed.handle.as_str().to_owned(),
            created_at: listed.created_at,
            last_seen: listed.last_seen,
            user_agent: listed.user_agent,
            ip: listed.ip,
        }
    }
}

fn rfc3339<S: Serializer>(t: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    let text = OffsetDateTime::from(*t)
        .format(&Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&text)
}

fn rfc3339_or_null<S: Serializer>(
    t: &Option<SystemTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, serializer),
        None => serializer.serialize_none(),
    }
}

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
/// [`SessionError::NoUserIndex`].
#[derive(Clone)]
pub struct Users {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users").finish_non_exhaustive()
    }
}

/// The reason listing and revoking are refused on the cookie store.
const COOKIE_STORE: &str = "the cookie store keeps no list of a user's sessions: listing and ending them needs a server-side store (SESSION_TYPE)";

impl Users {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Runs `f` on the user's index, in the middleware's store.
    async fn with_index<T>(
        &self,
        user: &str,
        f: impl AsyncFnOnce(
            &UserIndex<'_, crate::settings::Store>,
        ) -> Result<T, session_core::StoreError>,
    ) -> Result<T, SessionError> {
        #[cfg_attr(not(feature = "cookie"), allow(irrefutable_let_patterns))]
        let Sessions::Store(store) = &self.shared.sessions else {
            return Err(SessionError::NoUserIndex(COOKIE_STORE));
        };
        let settings = &self.shared.settings;
        let index =
            UserIndex::new(store, &settings.keys, user, settings.codec).max(settings.max_per_user);
        f(&index).await.map_err(SessionError::Store)
    }

    /// The user's live sessions, in the order they were bound (sessions
    /// that expired or were ended drop out, and out of the index).
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the store fails, and
    /// [`SessionError::NoUserIndex`] on the cookie store.
    pub async fn list(&self, user: &str) -> Result<Vec<UserSession>, SessionError> {
        self.list_marking(user, None).await
    }

    async fn list_marking(
        &self,
        user: &str,
        current: Option<&str>,
    ) -> Result<Vec<UserSession>, SessionError> {
        let listed = self
            .with_index(user, async |index| index.list().await)
            .await?;
        Ok(listed
            .into_iter()
            .map(|l| UserSession::new(l, current))
            .collect())
    }

    /// Ends the session of `user` that `handle` names; `false` if the user
    /// has no such session (a handle of another user's session included).
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list); the session may then be ended or not.
    pub async fn revoke(&self, user: &str, handle: &str) -> Result<bool, SessionError> {
        let Some(handle) = Handle::parse(handle) else {
            // Checked after the store kind, so that the cookie store always
            // answers the same.
            return self.with_index(user, async |_| Ok(false)).await;
        };
        self.with_index(user, async |index| index.revoke(&handle).await)
            .await
    }

    /// Ends every session of `user`; returns how many.
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list); sessions ended before a failure stay ended.
    pub async fn revoke_all(&self, user: &str) -> Result<usize, SessionError> {
        self.with_index(user, async |index| index.revoke_all(None).await)
            .await
    }

    /// Ends every session of `user` but the one `handle` names; returns how
    /// many.
    ///
    /// # Errors
    ///
    /// As [`revoke_all`](Self::revoke_all).
    pub async fn revoke_all_except(&self, user: &str, handle: &str) -> Result<usize, SessionError> {
        let keep = Handle::parse(handle);
        self.with_index(user, async |index| index.revoke_all(keep.as_ref()).await)
            .await
    }
}

impl FromRequest for Users {
    type Error = SessionRejection;
    type Future = Ready<Result<Users, SessionRejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Slot>()
                .map(|slot| Users::new(slot.shared_arc()))
                .ok_or(SessionRejection::MissingMiddleware),
        )
    }
}

impl Session {
    /// The [`Users`] of the middleware that loaded this session, and the
    /// session's user and handle.
    fn users(&self) -> Result<(Users, String, String), SessionError> {
        let state = self.state();
        let Some(ctx) = &state.ctx else {
            return Err(SessionError::NoUserIndex(
                "this session belongs to no middleware (Session::new): it has no store to list sessions in",
            ));
        };
        let users = Users::new(Arc::clone(&ctx.shared));
        let Some(binding) = &state.binding else {
            return Err(SessionError::NotLoggedIn);
        };
        Ok((
            users,
            binding.user.clone(),
            binding.handle.as_str().to_owned(),
        ))
    }

    /// The sessions of the user this session is bound to, this one marked
    /// [`current`](UserSession::current).
    ///
    /// # Errors
    ///
    /// [`SessionError::NotLoggedIn`] when the session is bound to no user
    /// (`401`), and as [`Users::list`].
    pub async fn user_sessions(&self) -> Result<Vec<UserSession>, SessionError> {
        let (users, user, handle) = self.users()?;
        users.list_marking(&user, Some(&handle)).await
    }

    /// Ends the session `handle` names, if it is one of this session's
    /// user's; ending this very session also removes its cookie after the
    /// request.
    ///
    /// # Errors
    ///
    /// As [`user_sessions`](Self::user_sessions).
    pub async fn revoke_user_session(&self, handle: &str) -> Result<bool, SessionError> {
        let (users, user, own) = self.users()?;
        let ended = users.revoke(&user, handle).await?;
        if ended && handle == own {
            self.purge();
        }
        Ok(ended)
    }

    /// Ends every other session of this session's user: "log out my other
    /// devices". Returns how many.
    ///
    /// # Errors
    ///
    /// As [`user_sessions`](Self::user_sessions).
    pub async fn log_out_other_sessions(&self) -> Result<usize, SessionError> {
        let (users, user, own) = self.users()?;
        users.revoke_all_except(&user, &own).await
    }

    /// Ends every session of this session's user, this one included (its
    /// cookie is removed after the request): "log out everywhere". Returns
    /// how many.
    ///
    /// # Errors
    ///
    /// As [`user_sessions`](Self::user_sessions).
    pub async fn log_out_everywhere(&self) -> Result<usize, SessionError> {
        let (users, user, _) = self.users()?;
        let ended = users.revoke_all(&user).await?;
        self.purge();
        Ok(ended)
    }
}
