//! Cross-crate and black-box tests of the session middleware, and the
//! HTTP-level acceptance suite every backend runs.
//!
//! [`http_suite!`] generates one `#[actix_web::test]` per case of [`cases`]
//! for a backend:
//!
//! ```no_run
//! mod memory {
//!     session_tests::http_suite!(
//!         make = session_tests::memory(),
//!         merges_concurrent_writes = true,
//!         revokes_cookies = true,
//!     );
//! }
//! ```
//!
//! `make` is an expression giving a [`Backend`]: a middleware builder on a
//! fresh store (each case applies its own settings, such as a short
//! lifetime or custom cookie attributes, before building). The two flags
//! say what the backend promises:
//!
//! - `merges_concurrent_writes`: concurrent requests of one session that
//!   change different keys all persist (every server-side store; not the
//!   cookie store, where the browser keeps the last cookie).
//! - `revokes_cookies`: once a session is purged, renewed or emptied, a copy
//!   of its old cookie loads nothing (every server-side store; not the
//!   cookie store, whose cookie is the session).
//!
//! Cases that need a promise are only generated when the flag is `true`;
//! shared cases skip the assertions that need it.

pub mod app;
pub mod cases;
pub mod doubles;

use std::any::Any;
use std::sync::Arc;

use session_actix::store::cookie::CookieStore;
use session_actix::store::filesystem::FileStore;
use session_actix::store::memory::MemoryStore;
use session_actix::{SessionMiddleware, SessionMiddlewareBuilder};
use session_core::AnyStore;

pub use app::{Hooks, Profile, Reply, TestApp, Typed, routes, within};

/// A signing secret for tests (at least 32 bytes).
pub const SECRET: &str = "the current test secret, at least 32 bytes long";
/// An older signing secret, for rotation tests.
pub const OLD_SECRET: &str = "the previous test secret, also 32 bytes or more";

/// A middleware builder on a fresh store, with default settings, and
/// whatever must live as long as the test (such as a temporary directory).
pub struct Backend {
    /// A builder on a fresh, empty store.
    pub builder: SessionMiddlewareBuilder<AnyStore>,
    /// Kept alive until the app built from `builder` is dropped.
    pub keep: Option<Box<dyn Any>>,
}

impl Backend {
    /// A backend with nothing to keep alive.
    pub fn new(builder: SessionMiddlewareBuilder<AnyStore>) -> Self {
        Self {
            builder,
            keep: None,
        }
    }

    /// Builds the middleware with `configure` applied to the builder and
    /// starts the test app on it.
    ///
    /// # Panics
    ///
    /// Panics if the settings are invalid.
    pub async fn start(
        self,
        configure: impl FnOnce(SessionMiddlewareBuilder<AnyStore>) -> SessionMiddlewareBuilder<AnyStore>,
        hooks: Arc<Hooks>,
    ) -> TestApp {
        let middleware = configure(self.builder)
            .build()
            .expect("the test settings are valid");
        let app = TestApp::start(middleware, hooks).await;
        match self.keep {
            Some(keep) => app.keeping(keep),
            None => app,
        }
    }
}

/// What a backend promises, as passed to every case.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// Concurrent requests of one session that change different keys all
    /// persist.
    pub merges_concurrent_writes: bool,
    /// A copy of a purged, renewed or emptied session's old cookie loads
    /// nothing.
    pub revokes_cookies: bool,
}

/// The memory store.
pub fn memory() -> Backend {
    Backend::new(SessionMiddleware::builder(
        AnyStore::new(MemoryStore::new()),
    ))
}

/// The memory store, with ids signed under [`SECRET`].
pub fn memory_signed() -> Backend {
    Backend::new(SessionMiddleware::builder(AnyStore::new(MemoryStore::new())).signing_key(SECRET))
}

/// The filesystem store, in a temporary directory removed after the test.
///
/// # Panics
///
/// Panics if the directory cannot be created.
pub fn filesystem() -> Backend {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = FileStore::builder(dir.path())
        .build()
        .expect("a file store");
    Backend {
        builder: SessionMiddleware::builder(AnyStore::new(store)),
        keep: Some(Box::new(dir)),
    }
}

/// The signed cookie store, signing with [`SECRET`] and accepting
/// [`OLD_SECRET`].
///
/// # Panics
///
/// Never: both secrets are long enough.
pub fn cookie() -> Backend {
    let store = CookieStore::new(SECRET, [OLD_SECRET]).expect("long enough secrets");
    Backend::new(SessionMiddleware::cookie_store_builder(store))
}

/// Generates one `#[actix_web::test]` per case of [`cases`] for the backend
/// that `make` (an expression giving a [`Backend`]) builds; see the crate
/// documentation.
#[macro_export]
macro_rules! http_suite {
    (
        make = $make:expr,
        merges_concurrent_writes = $merge:tt,
        revokes_cookies = $revoke:tt $(,)?
    ) => {
        $crate::http_suite!(@cases ($make) ($merge, $revoke) [
            untouched_sessions_send_no_cookie,
            set_then_get_round_trips,
            typed_values_round_trip,
            visits_count_per_session,
            default_cookie_attributes,
            browser_session_cookie_has_no_expiry,
            custom_cookie_attributes_are_honoured,
            removing_the_last_key_removes_the_cookie,
            clear_removes_the_session_and_the_cookie,
            renew_moves_the_data_to_a_new_cookie,
            purge_removes_the_cookie,
            bad_cookies_are_fresh_sessions,
            foreign_malformed_cookies_do_not_hide_the_session,
            sessions_expire_on_the_server,
            reads_extend_the_lifetime,
        ]);
        $crate::http_suite!(@when $merge ($make) ($merge, $revoke) [
            concurrent_writes_to_different_keys_all_persist,
            concurrent_removal_of_the_last_key_keeps_other_writes,
        ]);
        $crate::http_suite!(@when $revoke ($make) ($merge, $revoke) [
            logout_wins_over_a_write_in_flight,
            logout_wins_over_a_login_in_flight,
        ]);
    };
    (@when true $($rest:tt)*) => {
        $crate::http_suite!(@cases $($rest)*);
    };
    (@when false $($rest:tt)*) => {};
    (@cases ($make:expr) ($merge:tt, $revoke:tt) [$($case:ident),* $(,)?]) => {
        $(
            #[actix_web::test]
            async fn $case() {
                $crate::cases::$case(
                    $make,
                    $crate::Caps {
                        merges_concurrent_writes: $merge,
                        revokes_cookies: $revoke,
                    },
                )
                .await;
            }
        )*
    };
}
