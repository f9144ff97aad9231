//! The session engine: what a session is, and the store cycle that keeps
//! it, with no web framework.
//!
//! A web framework's adapter (`session-actix` for actix-web) drives it in
//! three steps per request:
//!
//! 1. **Load**, the first time a handler asks for the session: the adapter
//!    reads the cookies of the session's name ([`session_cookies`]) and,
//!    when [`Engine::track_client`] says so, the [`Client`]; then
//!    [`Engine::load`] checks their signatures, asks the store once, and
//!    gives a [`Session`].
//! 2. **Handle:** the handler reads and writes the [`Session`]; each change
//!    is tracked per key. [`Session::save`] and [`Session::reload`] run the
//!    store cycle in the middle of a request.
//! 3. **Finish**, after the handler: [`Engine::finish`] saves what the
//!    request changed and says what to do with the cookie ([`Outcome`]):
//!    keep it, set it, remove it, or answer with an error status.
//!
//! Every contract lives here, once: only changed keys are written (merged
//! per key with concurrent requests), a logout wins over requests in flight
//! and over a login racing it, a login moves the session to a new id and
//! carries over what other requests wrote meanwhile, sessions bound to a
//! user are indexed and capped, values are sealed at rest, the absolute
//! lifetime ends a session, a failed response saves nothing
//! (`SESSION_SAVE_ON_ERROR`), and a broken store answers as
//! `SESSION_OUTAGE_POLICY` says.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::SystemTime;
//!
//! use session_core::engine::{Engine, Outcome};
//! use session_core::store::memory::MemoryStore;
//! use session_core::{SessionConfig, store::Backend};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let engine = Arc::new(Engine::new(Backend::from(MemoryStore::new()), &SessionConfig::default()).unwrap());
//! // A request without a cookie: a new, empty session.
//! let session = engine.load(Vec::new(), None, SystemTime::now()).await.unwrap();
//! session.insert("user", "ann").unwrap();
//! let Outcome::Set { value, .. } = engine.finish(&session, false).await else { panic!() };
//! // The next request sends the cookie back.
//! let session = engine.load(vec![value], None, SystemTime::now()).await.unwrap();
//! assert_eq!(session.get::<String>("user").unwrap().as_deref(), Some("ann"));
//! # }
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::CookieConfig;
use crate::store::{AnyStore, Backend, Instrumented, Timeout};
use crate::{ConfigError, SessionConfig, StoreError};

mod error;
mod events;
mod load;
mod login;
mod save;
mod session;
mod settings;
mod snapshot;
mod state;
mod users;

pub use error::SessionError;
pub(crate) use load::parse_id;
pub use load::session_cookies;
pub use session::{Session, SessionStatus};
pub use state::Client;
pub use users::{UserSession, Users};

pub(crate) use settings::Settings;

/// The store as the engine calls it: observed (spans, metrics), each call
/// bounded by `SESSION_STORE_TIMEOUT`.
pub(crate) type Store = Instrumented<Timeout<AnyStore>>;

/// Where the sessions of one engine live: chosen once, at start-up.
pub(crate) enum Sessions {
    /// A server-side store; the cookie carries the (signed) id.
    Store(Store),
    /// The whole session in a signed cookie.
    #[cfg(feature = "cookie")]
    Cookie(crate::store::cookie::CookieStore),
}

/// The settings, checked once at start-up, and where sessions live: one
/// per middleware, shared by its requests (behind an [`Arc`]).
pub struct Engine {
    pub(crate) settings: Settings,
    pub(crate) sessions: Sessions,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What the response does after the session was saved.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Nothing to send: the cookie the client holds is right.
    Keep,
    /// Send the session cookie with `value`: for `max_age` when the session
    /// is permanent, else a browser-session cookie.
    Set {
        /// The cookie's value.
        value: String,
        /// The cookie's `Max-Age` (and `Expires`), for a permanent session.
        max_age: Option<Duration>,
    },
    /// Remove the session cookie.
    Remove,
    /// The store failed and the outage policy is to fail the request:
    /// answer `503 Service Unavailable`.
    Unavailable,
    /// The session could not be saved for a reason of the app's (too large
    /// with what other requests stored, or no store at all): answer `500`.
    Failed,
}

impl Engine {
    /// Checks `config` and binds it to `backend`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`], naming the key, when a setting is invalid or does
    /// not fit the store.
    pub fn new(backend: Backend, config: &SessionConfig) -> Result<Self, ConfigError> {
        let config = &settings::interop(&backend, config)?;
        let sessions = match backend {
            Backend::Store(store) => {
                let kind = store.kind();
                Sessions::Store(Instrumented::new(
                    Timeout::new(store, config.store_timeout),
                    kind,
                ))
            }
            #[cfg(feature = "cookie")]
            Backend::Cookie(store) => Sessions::Cookie(store),
            #[allow(unreachable_patterns)]
            _ => return Err(ConfigError::new("SESSION_TYPE", "unsupported store")),
        };
        let settings = Settings::new(config, &sessions)?;
        Ok(Self { settings, sessions })
    }

    /// Default settings and no store: for sessions built in unit tests.
    ///
    /// # Panics
    ///
    /// Never: the default settings are valid (a test says so).
    #[must_use]
    pub fn detached() -> Self {
        let store = AnyStore::new(crate::store::null::NullStore);
        Self::new(Backend::Store(store), &SessionConfig::default())
            .expect("the default settings are valid")
    }

    /// The session cookie's name and attributes.
    #[must_use]
    pub fn cookie(&self) -> &CookieConfig {
        &self.settings.cookie
    }

    /// Whether sessions record their [`Client`] when they are bound to a
    /// user (`SESSION_TRACK_CLIENT`): the adapter then passes it to
    /// [`load`](Self::load).
    #[must_use]
    pub fn track_client(&self) -> bool {
        self.settings.track_client
    }

    /// The users' sessions kept by this engine's store.
    #[must_use]
    pub fn users(self: &Arc<Self>) -> Users {
        Users::new(Arc::clone(self))
    }

    /// Loads the session that `cookies` (the values of the cookies of the
    /// session's name, as sent: see [`session_cookies`]) name, for a
    /// request that arrived at `started`. A forged, garbled or expired
    /// cookie gives a fresh, empty session.
    ///
    /// # Errors
    ///
    /// The store's error when it fails and the outage policy is to fail
    /// the request (`503`); with `SESSION_OUTAGE_POLICY=empty`, an empty
    /// session that is never saved instead.
    pub async fn load(
        self: &Arc<Self>,
        cookies: Vec<String>,
        client: Option<Client>,
        started: SystemTime,
    ) -> Result<Session, StoreError> {
        let mut state = load::load(self, &cookies).await?;
        state.ctx = Some(state::Ctx {
            engine: Arc::clone(self),
            started,
            cookies,
            client: client.filter(|_| self.settings.track_client),
        });
        Ok(Session::from_state(state))
    }

    /// The store cycle after the handler: saves what the request changed
    /// and says what to do with the cookie. `server_error`: the response is
    /// a server error, so nothing is saved but a logout (unless
    /// `SESSION_SAVE_ON_ERROR`).
    pub async fn finish(&self, session: &Session, server_error: bool) -> Outcome {
        save::finish(self, &session.0, server_error).await
    }
}
