//! A user's sessions: where they are logged in, ending one of those
//! sessions, or all of them ("log out everywhere").
//!
//! A session is bound to a user at login with
//! [`Session::bind_user`](super::Session::bind_user); the save after that request adds it to the
//! user's index, a record the store keeps beside the sessions (see
//! [`crate::users`] for its layout). [`Users`] lists and ends a
//! user's sessions from anywhere (a handler, an admin task, a password
//! change); the methods on [`Session`](super::Session) do it for the user of the request's
//! own session, and know which session is the caller's.
//!
//! Ending a session here is a logout: once the call returns, no request
//! with that session reads it, and no request in flight writes it back (a
//! login in flight is followed to the new id it is moving the session to).

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Engine, SessionError, Sessions, Store};
use crate::users::{Handle, Listed, UserIndex};

/// One session of a user, as [`Users::list`] and
/// [`Session::user_sessions`](super::Session::user_sessions) show it. Serializes as JSON with its times
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

/// The users' sessions of one [`Engine`] ([`Engine::users`]): list a
/// user's sessions and end them, from a handler or from outside a request
/// (after a password change, or when an account is compromised).
///
/// The cookie store keeps no list of a user's sessions (a cookie cannot
/// be ended from the server): there every method fails with
/// [`SessionError::NoUserIndex`].
#[derive(Clone)]
pub struct Users {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users").finish_non_exhaustive()
    }
}

/// The reason listing and revoking are refused on the cookie store.
const COOKIE_STORE: &str = "the cookie store keeps no list of a user's sessions: listing and ending them needs a server-side store (SESSION_TYPE)";

impl Users {
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// Runs `f` on the user's index, in the middleware's store.
    async fn with_index<T>(
        &self,
        user: &str,
        f: impl AsyncFnOnce(&UserIndex<'_, Store>) -> Result<T, crate::StoreError>,
    ) -> Result<T, SessionError> {
        #[cfg_attr(not(feature = "cookie"), allow(irrefutable_let_patterns))]
        let Sessions::Store(store) = &self.engine.sessions else {
            return Err(SessionError::NoUserIndex(COOKIE_STORE));
        };
        let settings = &self.engine.settings;
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

    pub(super) async fn list_marking(
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
