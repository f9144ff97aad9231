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
//!
//! mod redis {
//!     session_tests::http_suite!(
//!         make = session_tests::redis(),
//!         merges_concurrent_writes = true,
//!         revokes_cookies = true,
//!     );
//! }
//! ```
//!
//! `make` gives a [`Backend`], or a future of one (a store on a server
//! connects first): a middleware builder on a store of the test's own (a
//! fresh one, or a shared server under a key prefix no other test uses);
//! each case applies its own settings, such as a short lifetime or custom
//! cookie attributes, before building. The two flags say what the backend
//! promises:
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
//!
//! The stores on servers ([`redis`], [`memcached`], [`postgres`], ...) use
//! the servers `scripts/services.sh` starts, and panic when theirs is down:
//! a missing server fails the suite, it never skips it.

pub mod app;
pub mod cases;
pub mod doubles;

use std::any::Any;
use std::future::{IntoFuture, Ready, ready};
use std::sync::Arc;

use session_actix::store::cookie::CookieStore;
use session_actix::store::filesystem::FileStore;
use session_actix::store::memory::MemoryStore;
use session_actix::{SessionMiddleware, SessionMiddlewareBuilder};
use session_core::{AnyStore, SessionConfig, SessionId, store};

pub use app::{Gate, Hooks, Profile, Reply, TestApp, Typed, routes, within};

/// A signing secret for tests (at least 32 bytes).
pub const SECRET: &str = "the current test secret, at least 32 bytes long";
/// An older signing secret, for rotation tests.
pub const OLD_SECRET: &str = "the previous test secret, also 32 bytes or more";

/// A middleware builder on a fresh store, with default settings, and
/// whatever must live as long as the test (such as a temporary directory).
pub struct Backend {
    /// A builder on a fresh, empty store.
    pub builder: SessionMiddlewareBuilder,
    /// Kept alive until the app built from `builder` is dropped.
    pub keep: Option<Box<dyn Any>>,
}

impl Backend {
    /// A backend with nothing to keep alive.
    pub fn new(builder: SessionMiddlewareBuilder) -> Self {
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
        configure: impl FnOnce(SessionMiddlewareBuilder) -> SessionMiddlewareBuilder,
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

/// A backend is ready at once: [`http_suite!`] awaits every `make`, so
/// that in-process stores and stores that connect to a server are named
/// the same way.
impl IntoFuture for Backend {
    type Output = Self;
    type IntoFuture = Ready<Self>;

    fn into_future(self) -> Self::IntoFuture {
        ready(self)
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

/// `backend` with every session value sealed at rest
/// (`SESSION_ENCRYPT_AT_REST=true`).
pub async fn encrypted(backend: impl IntoFuture<Output = Backend>) -> Backend {
    let backend = backend.await;
    Backend {
        builder: backend.builder.encrypt_at_rest(true),
        ..backend
    }
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
    Backend::new(SessionMiddleware::builder(store))
}

/// The store that the Flask-style `settings` name, opened with
/// [`store::open`] as an app configured by `SESSION_TYPE` opens it, under
/// a key prefix of its own: tests share each server (and table, and
/// collection) and run in parallel without seeing each other's sessions.
///
/// # Panics
///
/// Panics, naming `server`, if the store cannot be opened: a server that
/// is down fails the test.
async fn on_server(server: &str, settings: &[(&str, &str)]) -> Backend {
    let prefix = format!("http-suite:{}:", &SessionId::generate().as_str()[..16]);
    let config = SessionConfig::from_source(
        settings
            .iter()
            .copied()
            .chain([("SESSION_KEY_PREFIX", prefix.as_str())]),
    )
    .expect("the test settings are valid");
    match store::open(&config).await {
        Ok(store::Backend::Store(store)) => {
            Backend::new(SessionMiddleware::builder(store).config(config))
        }
        Ok(other) => panic!("{server}: not a server-side store: {other:?}"),
        Err(error) => panic!("{server} must be up (run scripts/services.sh): {error}"),
    }
}

/// The Redis store on the single node at 127.0.0.1:6379.
///
/// # Panics
///
/// Panics if the server is down.
pub async fn redis() -> Backend {
    const URL: &str = "redis://127.0.0.1:6379";
    on_server(URL, &[("SESSION_TYPE", "redis"), ("SESSION_REDIS", URL)]).await
}

/// The Redis store on the single node at 127.0.0.1:6379, with a near cache
/// in front of it (`SESSION_LOCAL_CACHE`).
///
/// # Panics
///
/// Panics if the server is down.
pub async fn redis_near_cache() -> Backend {
    const URL: &str = "redis://127.0.0.1:6379";
    on_server(
        URL,
        &[
            ("SESSION_TYPE", "redis"),
            ("SESSION_REDIS", URL),
            ("SESSION_LOCAL_CACHE", "10000"),
        ],
    )
    .await
}

/// The Redis store on the cluster at 127.0.0.1:7000-7005.
///
/// # Panics
///
/// Panics if the cluster is down.
pub async fn redis_cluster() -> Backend {
    const URL: &str = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002";
    on_server(URL, &[("SESSION_TYPE", "redis"), ("SESSION_REDIS", URL)]).await
}

/// The memcached store, spreading sessions over the servers at
/// 127.0.0.1:11211 and 127.0.0.1:11212.
///
/// # Panics
///
/// Panics if a server is down.
pub async fn memcached() -> Backend {
    const SERVERS: &str = "127.0.0.1:11211,127.0.0.1:11212";
    on_server(
        SERVERS,
        &[
            ("SESSION_TYPE", "memcached"),
            ("SESSION_MEMCACHED", SERVERS),
        ],
    )
    .await
}

/// The SQL store on `url`, in a table the HTTP suite's tests share.
async fn sql(url: &str) -> Backend {
    on_server(
        url,
        &[
            ("SESSION_TYPE", "sql"),
            ("SESSION_SQL_URL", url),
            ("SESSION_SQL_TABLE", "http_suite_sessions"),
        ],
    )
    .await
}

/// The SQL store on PostgreSQL at 127.0.0.1:5432, database `test`.
///
/// # Panics
///
/// Panics if the server is down.
pub async fn postgres() -> Backend {
    sql("postgres://postgres@127.0.0.1:5432/test").await
}

/// The SQL store on PostgreSQL, with a near cache in front of it
/// (`SESSION_LOCAL_CACHE`), kept right by `LISTEN`/`NOTIFY`.
///
/// # Panics
///
/// Panics if the server is down.
pub async fn postgres_near_cache() -> Backend {
    const URL: &str = "postgres://postgres@127.0.0.1:5432/test";
    on_server(
        URL,
        &[
            ("SESSION_TYPE", "sql"),
            ("SESSION_SQL_URL", URL),
            ("SESSION_SQL_TABLE", "http_suite_cached"),
            ("SESSION_LOCAL_CACHE", "10000"),
        ],
    )
    .await
}

/// The SQL store on MariaDB (or MySQL) at 127.0.0.1:3306, database `test`.
///
/// # Panics
///
/// Panics if the server is down.
pub async fn mysql() -> Backend {
    sql("mysql://root@127.0.0.1:3306/test").await
}

/// The SQL store on SQLite, in a temporary file removed after the test.
///
/// # Panics
///
/// Panics if the directory or the database cannot be created.
pub async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("sessions.db").display()
    );
    Backend {
        keep: Some(Box::new(dir)),
        ..sql(&url).await
    }
}

/// The MongoDB store on the server at 127.0.0.1:27017, database
/// `session_tests`, in a collection the HTTP suite's tests share.
///
/// # Panics
///
/// Panics if the server is down.
pub async fn mongodb() -> Backend {
    const URI: &str = "mongodb://127.0.0.1:27017/?directConnection=true";
    on_server(
        URI,
        &[
            ("SESSION_TYPE", "mongodb"),
            ("SESSION_MONGODB", URI),
            ("SESSION_MONGODB_DB", "session_tests"),
            ("SESSION_MONGODB_COLLECT", "http_suite_sessions"),
        ],
    )
    .await
}

/// Generates one `#[actix_web::test]` per case of [`cases`] for the backend
/// that `make` (an expression giving a [`Backend`] or a future of one)
/// builds; see the crate documentation.
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
            a_session_that_is_not_permanent_gets_a_browser_session_cookie,
            a_session_lifetime_sets_max_age_and_ends_it_on_the_server,
        ]);
        $crate::http_suite!(@when $merge ($make) ($merge, $revoke) [
            concurrent_writes_to_different_keys_all_persist,
            concurrent_removal_of_the_last_key_after_a_write_keeps_it,
            concurrent_removal_of_the_last_key_before_a_write_ends_the_session,
        ]);
        $crate::http_suite!(@when $revoke ($make) ($merge, $revoke) [
            logout_wins_over_a_write_in_flight,
            logout_wins_over_a_login_in_flight,
            users_list_and_end_their_sessions,
            ending_a_session_wins_over_its_request_in_flight,
            log_out_everywhere_wins_over_a_login_in_flight,
            a_login_past_the_cap_ends_the_least_recently_seen_session,
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
                    ($make).await,
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
