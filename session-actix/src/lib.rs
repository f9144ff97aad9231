//! Server-side sessions for actix-web, in the spirit of Flask-Session.
//!
//! Register [`SessionMiddleware`] on an `App`, choose where sessions live
//! (memory, files, a signed cookie, and more behind features), and take a
//! [`Session`] in your handlers:
//!
//! ```no_run
//! use actix_web::{App, HttpServer, Responder, get};
//! use session_actix::{Session, SessionConfig, SessionMiddleware};
//!
//! #[get("/")]
//! async fn index(session: Session) -> actix_web::Result<impl Responder> {
//!     session.insert("name", "nick")?;
//!     Ok("hello")
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // SESSION_TYPE=filesystem, SESSION_TYPE=cookie, ...; memory by default.
//!     let sessions = SessionMiddleware::from_config(SessionConfig::from_env()?).await?;
//!     HttpServer::new(move || App::new().wrap(sessions.clone()).service(index))
//!         .bind(("127.0.0.1", 8080))?
//!         .run()
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! In code, [`SessionMiddleware::new`] takes a store and a [`SigningKey`],
//! and [`SessionMiddleware::builder`] one method per setting; every store,
//! the signed [`CookieStore`](store::cookie::CookieStore) included, goes
//! through the same two.
//!
//! Handlers take [`Session`] (or a typed [`TypedSession`], see
//! [`SessionData`]); its operations fail with [`SessionError`], getting it
//! fails with [`SessionRejection`] (no middleware on the route, or the store
//! down). Code outside a handler's arguments uses [`SessionExt`]; unit tests
//! build a session with [`Session::new`].
//!
//! # What the middleware guarantees
//!
//! - **Lazy:** the store is asked at most once per request, and only if the
//!   session is used; a request that changes nothing writes nothing and
//!   sends no cookie.
//! - **No lost updates between keys:** only the keys a request changed are
//!   saved, atomically, so concurrent requests that change different keys
//!   all keep their changes (for the same key, the last write wins).
//! - **Logout wins:** after [`Session::purge`], a request of the same
//!   session that was in flight cannot bring it back.
//! - **Ids never at rest:** stores see `prefix + hex(sha256(id))`.
//! - **Bad input is contained:** a forged, garbled or oversized cookie is a
//!   fresh session, never an error.
//! - **Outages are bounded:** every store call has a timeout; a failing
//!   store gives `503` or an empty session, as configured.
//! - **A user's sessions:** bound to its user at login
//!   ([`Session::bind_user`]), a session can be listed and ended from any
//!   other ([`Session::user_sessions`], [`Users`]: "log out everywhere"),
//!   with the same guarantee as a logout.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]

mod builder;
mod error;
mod extract;
mod middleware;
mod response;
mod session;
mod slot;
mod users;

pub use actix_web::cookie::SameSite;
pub use builder::SessionMiddlewareBuilder;
pub use error::{SessionError, SessionErrorKind, SessionRejection};
pub use extract::SessionExt;
pub use middleware::SessionMiddleware;
#[doc(hidden)]
pub use middleware::SessionService;
#[doc(hidden)]
pub use session::__private;
pub use session::{Session, SessionStatus};
pub use session::{SessionData, TypedSession};
/// Operator tasks on a store (count, show, revoke a user, clean up,
/// migrate): what the `session-admin` command line runs.
pub use session_core::admin;
pub use session_core::codec::CodecError;
/// The configuration: [`SessionConfig`] and the types of its fields.
pub use session_core::config;
/// Sessions shared with a Flask app in Flask-Session's layout
/// (`SESSION_INTEROP=flask-session`).
#[cfg(feature = "flask")]
#[cfg_attr(docsrs, doc(cfg(feature = "flask")))]
pub use session_core::flask;
/// The [`SessionStore`](store::SessionStore) trait and the stores.
pub use session_core::store;
pub use session_core::{
    Codec, ConfigError, CookieConfig, OutagePolicy, SessionConfig, SigningKey, StoreConfig,
    StoreKind,
};
pub use session_macros::SessionData;
pub use users::{UserSession, Users};
