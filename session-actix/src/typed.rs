//! Typed sessions: `#[derive(SessionData)]` and the `TypedSession` extractor.

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};

use crate::error::SessionRejection;
use crate::session::Session;

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

    pub use crate::error::SessionError;
    pub use crate::session::Session;

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
        session.insert_if_changed(key, value)
    }

    /// Removes a field's key.
    pub fn remove(session: &Session, key: &str) -> bool {
        session.remove_key(key)
    }

    /// Whether a field's key is one an app may not use.
    pub use session_core::meta::is_reserved;
}
