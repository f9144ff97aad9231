//! The `Session` extractor (the engine's session, on actix-web's terms)
//! and its typed view, `TypedSession<T>`.

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
pub use session_core::SessionStatus;

use session_core::engine::UserSession;

use crate::error::{SessionError, SessionRejection};
use crate::slot::{Slot, session_of};

/// The session of the current request.
///
/// Take it as a handler argument (it is an extractor) or get it from a
/// request with [`SessionExt`](crate::SessionExt). Values are stored by key,
/// serialized with serde (JSON by default); like Flask's `session['name']`.
///
/// ```
/// use actix_web::{HttpResponse, Responder};
/// use session_actix::Session;
///
/// async fn visits(session: Session) -> actix_web::Result<impl Responder> {
///     let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
///     session.insert("visits", visits)?;
///     Ok(HttpResponse::Ok().body(visits.to_string()))
/// }
/// ```
///
/// Each change is recorded for its key, and only the changed keys are sent
/// to the store after the handler: two concurrent requests that change
/// different keys both keep their change. For the same key, the last write
/// wins.
///
/// `Session` is a cheap handle (cloning shares the session) and is `Send`
/// and `Sync`, so it can move into a spawned task; changes made after the
/// response has been sent are not saved.
///
/// It wraps the framework-neutral [`session_core::Session`], whose
/// documentation details each method; here, errors are [`SessionError`],
/// an actix-web error.
#[derive(Clone, Default)]
pub struct Session(session_core::Session);

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<session_core::Session> for Session {
    fn from(session: session_core::Session) -> Self {
        Self(session)
    }
}

impl Session {
    /// An empty session that belongs to no store, with the default
    /// settings: for unit tests of code that takes a `Session`. Check what
    /// the code did with [`get`](Self::get) and [`status`](Self::status);
    /// to hand it to a handler through a request, see
    /// [`attach_to`](Self::attach_to).
    ///
    /// ```
    /// use session_actix::{Session, SessionStatus};
    ///
    /// fn log_in(session: &Session, user: &str) -> Result<(), session_actix::SessionError> {
    ///     session.renew();
    ///     session.insert("user", user)
    /// }
    ///
    /// let session = Session::new();
    /// log_in(&session, "ann").unwrap();
    /// assert_eq!(session.status(), SessionStatus::Renewed);
    /// assert_eq!(session.get::<String>("user").unwrap().as_deref(), Some("ann"));
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self(session_core::Session::new())
    }

    /// The framework-neutral session this one wraps.
    #[must_use]
    pub fn core(&self) -> &session_core::Session {
        &self.0
    }

    /// Makes this session the one that `req`'s extractors give, as if a
    /// middleware had loaded it: for unit tests of handlers.
    ///
    /// ```
    /// use actix_web::test::TestRequest;
    /// use session_actix::{Session, SessionExt};
    ///
    /// # actix_web::rt::System::new().block_on(async {
    /// let session = Session::new();
    /// session.insert("user", "ann").unwrap();
    /// let req = TestRequest::default().to_http_request();
    /// session.attach_to(&req);
    /// let seen = req.session().await.unwrap();
    /// assert_eq!(seen.get::<String>("user").unwrap().as_deref(), Some("ann"));
    /// # });
    /// ```
    pub fn attach_to(&self, req: &HttpRequest) {
        req.extensions_mut().insert(Slot::ready(self.0.clone()));
    }

    /// This session seen through a typed struct's accessors.
    pub fn typed<T: SessionData>(&self) -> TypedSession<T> {
        TypedSession::new(self.clone())
    }

    /// Returns the value stored under `key`, or `None` if there is none.
    ///
    /// # Errors
    ///
    /// [`Deserialize`](crate::SessionErrorKind::Deserialize), naming the
    /// key and the type, if the stored value does not deserialize into `T`;
    /// the entry stays as it is.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        Ok(self.0.get(key)?)
    }

    /// Stores `value` under `key`, replacing what was there.
    ///
    /// # Errors
    ///
    /// Each changes nothing: `Serialize` if the value cannot be encoded,
    /// `TooLarge` if the session would grow past its size limit
    /// (`SESSION_MAX_SIZE`), and `ReservedKey` for the names the session
    /// keeps its own settings and user under (`_permanent`, `_lifetime`,
    /// `_user`, `_seen`) and keys starting with a NUL character (see
    /// [`SessionErrorKind`](crate::SessionErrorKind)).
    pub fn insert<T: Serialize>(
        &self,
        key: impl Into<String>,
        value: T,
    ) -> Result<(), SessionError> {
        Ok(self.0.insert(key, value)?)
    }

    /// Removes `key` and returns the value it had, read as a `T`;
    /// `Ok(None)` if there was none. The key is removed whether or not its
    /// value reads as a `T`.
    ///
    /// # Errors
    ///
    /// `Deserialize` if the value was not a `T` (it is removed all the
    /// same).
    pub fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        Ok(self.0.remove(key)?)
    }

    /// Removes `key`; true if it was there.
    pub fn remove_key(&self, key: &str) -> bool {
        self.0.remove_key(key)
    }

    /// Reads `key` as a `T` (`None` if it is missing), lets `f` compute the
    /// new value from it, stores that and returns it.
    ///
    /// ```
    /// # use session_actix::Session;
    /// # fn visit(session: &Session) -> Result<(), session_actix::SessionError> {
    /// let visits = session.update("visits", |n: Option<u64>| n.unwrap_or(0) + 1)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// `Deserialize` if the stored value is not a `T` (`f` is not called
    /// and nothing changes), and the errors of [`insert`](Self::insert).
    pub fn update<T, F>(&self, key: &str, f: F) -> Result<T, SessionError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Option<T>) -> T,
    {
        Ok(self.0.update(key, f)?)
    }

    /// Every entry, each value read as a `T`, sorted by key (with
    /// `serde_json::Value`, a session of mixed values reads whole).
    ///
    /// # Errors
    ///
    /// `Deserialize` naming the first key whose value is not a `T`.
    pub fn entries<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>, SessionError> {
        Ok(self.0.entries()?)
    }

    /// True if `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The keys that have values, in no particular order.
    pub fn keys(&self) -> Vec<String> {
        self.0.keys()
    }

    /// The number of keys that have values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if the session holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Removes every entry (and the user binding). A session left empty is
    /// deleted from the store and its cookie removed after the request.
    pub fn clear(&self) {
        self.0.clear();
    }

    /// Moves the session's data to a new id after the request, and deletes
    /// the old one. Call it when the user logs in (or gains privileges), so
    /// an id planted before the login (session fixation) is worth nothing.
    pub fn renew(&self) {
        self.0.renew();
    }

    /// Deletes the session, from the store and the browser: logout. A
    /// request of the same session still in flight cannot bring it back;
    /// entries inserted after `purge` start a new session under a new id.
    pub fn purge(&self) {
        self.0.purge();
    }

    /// Where the session stands: unchanged, changed, renewed or purged.
    pub fn status(&self) -> SessionStatus {
        self.0.status()
    }

    /// Makes the session's cookie outlive the browser (`true`) or end with
    /// it (`false`), as Flask's `session.permanent`; stored with the
    /// session (defaults to `SESSION_PERMANENT`).
    pub fn set_permanent(&self, permanent: bool) {
        self.0.set_permanent(permanent);
    }

    /// Whether the session's cookie outlives the browser.
    pub fn is_permanent(&self) -> bool {
        self.0.is_permanent()
    }

    /// Sets this session's idle lifetime, in place of
    /// `PERMANENT_SESSION_LIFETIME` (kept to the second, at least one;
    /// `SESSION_ABSOLUTE_LIFETIME` still caps it).
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.0.set_lifetime(lifetime);
    }

    /// This session's idle lifetime.
    pub fn lifetime(&self) -> Duration {
        self.0.lifetime()
    }

    /// Binds the session to a user: call it at login, after
    /// [`renew`](Self::renew). The save after the handler adds the session
    /// to the user's index, so that [`Users`](crate::Users) can list it and
    /// end it ("log out everywhere"); with `SESSION_MAX_PER_USER`, it also
    /// ends the user's least recently seen sessions past the limit.
    ///
    /// ```
    /// # use session_actix::Session;
    /// # fn log_in(session: &Session, user_id: u64) {
    /// session.renew();
    /// session.bind_user(user_id.to_string());
    /// # }
    /// ```
    pub fn bind_user(&self, user: impl Into<String>) {
        self.0.bind_user(user);
    }

    /// The user the session is bound to, if any.
    pub fn user(&self) -> Option<String> {
        self.0.user()
    }

    /// The session's handle in its user's list of sessions, if it is bound
    /// to a user: what [`Users::list`](crate::Users::list) shows it as.
    pub fn handle(&self) -> Option<String> {
        self.0.handle()
    }

    /// Writes the changes made so far, now, in the middle of the handler,
    /// with every contract of the save after it (see
    /// [`session_core::Session::save`]).
    ///
    /// # Errors
    ///
    /// Nothing is saved and the changes stay to be saved after the
    /// handler, on `Store` (the store fails or times out) and
    /// `TooLargeInStore`.
    pub async fn save(&self) -> Result<(), SessionError> {
        Ok(self.0.save().await?)
    }

    /// Reads the session again from where it is kept, dropping the changes
    /// not saved yet (see [`session_core::Session::reload`]).
    ///
    /// # Errors
    ///
    /// `Store` when the store fails or times out; the session is then left
    /// as it was.
    pub async fn reload(&self) -> Result<(), SessionError> {
        Ok(self.0.reload().await?)
    }

    /// The sessions of the user this session is bound to, this one marked
    /// [`current`](UserSession::current).
    ///
    /// # Errors
    ///
    /// `NotLoggedIn` when the session is bound to no user (`401`), and as
    /// [`Users::list`](crate::Users::list).
    pub async fn user_sessions(&self) -> Result<Vec<UserSession>, SessionError> {
        Ok(self.0.user_sessions().await?)
    }

    /// Ends the session `handle` names, if it is one of this session's
    /// user's; ending this very session also removes its cookie.
    ///
    /// # Errors
    ///
    /// As [`user_sessions`](Self::user_sessions).
    pub async fn revoke_user_session(&self, handle: &str) -> Result<bool, SessionError> {
        Ok(self.0.revoke_user_session(handle).await?)
    }

    /// Ends every other session of this session's user: "log out my other
    /// devices". Returns how many.
    ///
    /// # Errors
    ///
    /// As [`user_sessions`](Self::user_sessions).
    pub async fn log_out_other_sessions(&self) -> Result<usize, SessionError> {
        Ok(self.0.log_out_other_sessions().await?)
    }

    /// Ends every session of this session's user, this one included:
    /// "log out everywhere". Returns how many.
    ///
    /// # Errors
    ///
    /// As [`user_sessions`](Self::user_sessions).
    pub async fn log_out_everywhere(&self) -> Result<usize, SessionError> {
        Ok(self.0.log_out_everywhere().await?)
    }
}

/// The request's session, loaded on first use (once per request, shared
/// with every other session extractor of the request).
impl FromRequest for Session {
    type Error = SessionRejection;
    type Future = Pin<Box<dyn Future<Output = Result<Session, SessionRejection>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = session_of(req.clone());
        Box::pin(async move { session.await.map(Session::from) })
    }
}

/// A struct whose fields are session entries, one key per field.
///
/// Derive it; the derive generates an accessor type named after the struct
/// (`Cart` gets `CartSession`) with, for each field `f`:
///
/// | method | does |
/// | --- | --- |
/// | `f()` | reads the field; its default if the key is missing or unreadable |
/// | `set_f(value)` | sets it (records a change of that key only) |
/// | `remove_f()` | removes the key, so the field reads as its default |
/// | `update_f(\|v\| ...)` | reads, changes and sets it |
///
/// and for the whole struct `load()`, `save(&value)` (records only the
/// fields that differ from what is stored), `clear()` (removes this
/// struct's keys, no others) and `session()`.
///
/// ```
/// use actix_web::Responder;
/// use serde::{Deserialize, Serialize};
/// use session_actix::{SessionData, TypedSession};
///
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Line {
///     sku: String,
///     quantity: u32,
/// }
///
/// #[derive(SessionData)]
/// #[session(prefix = "cart.")]
/// struct Cart {
///     user_id: Option<u64>,            // key "cart.user_id"
///     #[session(key = "items")]
///     lines: Vec<Line>,                // key "cart.items"
///     #[session(default = "one")]
///     visits: u32,                     // 1 when missing
///     #[session(skip)]
///     scratch: String,                 // not stored
/// }
///
/// fn one() -> u32 {
///     1
/// }
///
/// async fn add(cart: TypedSession<Cart>) -> actix_web::Result<impl Responder> {
///     cart.update_lines(|lines| lines.push(Line { sku: "tea".into(), quantity: 1 }))?;
///     cart.set_visits(cart.visits() + 1)?;
///     Ok(format!("{} lines", cart.lines().len()))
/// }
/// ```
///
/// # Attributes
///
/// On the struct:
/// - `#[session(prefix = "p.")]`: put before every key of the struct.
/// - `#[session(crate = "path::to::session_actix")]`: the path the generated
///   code names this crate by (`::session_actix` by default), for a crate
///   that re-exports session-actix under another path, as serde's
///   `#[serde(crate = "...")]`.
/// - `#[session(rename_all = "camelCase")]`: derive keys from field names as
///   serde does (`lowercase`, `UPPERCASE`, `PascalCase`, `camelCase`,
///   `snake_case`, `SCREAMING_SNAKE_CASE`, `kebab-case`,
///   `SCREAMING-KEBAB-CASE`).
/// - `#[session(default)]`: missing fields take their value from the
///   struct's `Default` impl.
///
/// On a field:
/// - `#[session(key = "k")]`: the field's key (the prefix still applies).
/// - `#[session(default)]`: the field type's `Default` when missing (the
///   rule for every field without a `default` attribute, unless the struct
///   has `#[session(default)]`); `#[session(default = "path")]`: call a
///   function instead.
/// - `#[session(skip)]`: not stored; `load()` gives its default.
///
/// Mistakes (unknown or duplicate attributes, two fields on one key, tuple
/// structs, enums, unions, generic structs, fields whose methods would
/// clash) are compile errors pointing at the offending tokens.
///
/// Several typed structs and the plain [`Session`] share one session: each
/// struct reads and writes only its own keys.
pub trait SessionData: Sized + 'static {
    /// The generated accessor type.
    type Accessors: 'static;
    /// The session keys of the stored fields, prefix included.
    const KEYS: &'static [&'static str];
    #[doc(hidden)]
    fn __accessors(session: Session) -> Self::Accessors;
}

/// The typed session extractor: `TypedSession<Cart>` as a handler argument
/// gives `Cart`'s accessors (it dereferences to them).
///
/// It loads the session lazily like [`Session`] (once per request, shared
/// with every other session extractor of the request), and fails the same
/// way: `503` if the store is down (unless the outage policy serves an
/// empty session), and an error that says to add the middleware on a route
/// without it.
pub struct TypedSession<T: SessionData> {
    accessors: T::Accessors,
    _data: PhantomData<fn() -> T>,
}

impl<T: SessionData> TypedSession<T> {
    /// Wraps a session.
    pub fn new(session: Session) -> Self {
        Self {
            accessors: T::__accessors(session),
            _data: PhantomData,
        }
    }
}

impl<T: SessionData> Deref for TypedSession<T> {
    type Target = T::Accessors;

    fn deref(&self) -> &T::Accessors {
        &self.accessors
    }
}

impl<T: SessionData> std::fmt::Debug for TypedSession<T>
where
    T::Accessors: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TypedSession")
            .field(&self.accessors)
            .finish()
    }
}

impl<T: SessionData> FromRequest for TypedSession<T> {
    type Error = SessionRejection;
    type Future = Pin<Box<dyn Future<Output = Result<Self, SessionRejection>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let session = Session::from_request(req, payload);
        Box::pin(async move { session.await.map(Self::new) })
    }
}

/// What generated code calls: not a public API.
#[doc(hidden)]
pub mod __private {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    pub use super::Session;
    pub use crate::error::SessionError;

    /// Reads a field; its default if missing, and (logged) if unreadable.
    pub fn get<T: DeserializeOwned>(
        session: &Session,
        key: &str,
        default: impl FnOnce() -> T,
    ) -> T {
        match session.get::<T>(key) {
            Ok(Some(value)) => value,
            Ok(None) => default(),
            // The decoder's message quotes the stored value: session data
            // stays out of the log, only the key and the type go in.
            Err(_) => {
                tracing::warn!(
                    key,
                    r#type = std::any::type_name::<T>(),
                    "a stored session value no longer fits its field; using the field's default"
                );
                default()
            }
        }
    }

    /// Sets a field.
    pub fn set<T: Serialize>(session: &Session, key: &str, value: &T) -> Result<(), SessionError> {
        session.insert(key, value)
    }

    /// Sets a field only if its encoding differs from what is stored.
    pub fn save<T: Serialize>(session: &Session, key: &str, value: &T) -> Result<(), SessionError> {
        Ok(session.core().insert_if_changed(key, value)?)
    }

    /// Removes a field's key.
    pub fn remove(session: &Session, key: &str) -> bool {
        session.remove_key(key)
    }

    /// Whether a field's key is one an app may not use.
    pub use session_core::meta::is_reserved;
}
