//! The apps the benchmark serves: the quickstart's three routes behind no
//! session at all, behind actix-session 0.11, and behind this project's
//! stores.
//!
//! Every variant serves the same routes with the same handler shape:
//!
//! | route | does |
//! | --- | --- |
//! | `GET /` | sets `name` = `"nick"` (creates a session), answers `hello` |
//! | `GET /index` | reads `name` |
//! | `GET /visits` | reads `visits`, writes it back incremented |
//! | `GET /login` | renews the session, sets `user` to a fresh user, answers `welcome` |
//!
//! The `-users` variants (`ours-memory-users`, `ours-redis-users`) also
//! bind the session to its user ([`session_actix::Session::bind_user`]) in
//! `GET /login` and in `GET /`, so that the sessions `/index` and `/visits`
//! read are bound ones, each to a user of its own.
//!
//! and the same cookie settings: name `session`, not `Secure`, `HttpOnly`,
//! `SameSite=Lax`, `Path=/`. Everything else is each library's default.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::cookie::{Key, SameSite as CookieSameSite};
use actix_web::web::ServiceConfig;
use session_actix::store::Migrating;
use session_actix::store::cookie::CookieStore;
use session_actix::store::filesystem::FileStore;
use session_actix::store::memory::MemoryStore;
use session_actix::store::redis::RedisStore;
use session_actix::store::sql::{SqlStore, sqlx};
use session_actix::{SameSite, SessionMiddleware};

#[doc(hidden)]
pub use {actix_session, actix_web};

/// The cookie every variant uses.
pub const COOKIE_NAME: &str = "session";

/// Where this project's Redis store puts its keys (removed after a run).
pub const OURS_REDIS_PREFIX: &str = "bench-ours:";

/// Where actix-session's Redis store puts its keys (removed after a run).
pub const ACTIX_REDIS_PREFIX: &str = "bench-actix:";

/// The Redis the benchmark uses unless told otherwise.
pub const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

/// The PostgreSQL the `ours-postgres` variant uses (table `bench_sessions`,
/// dropped and created afresh at each run).
pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The most sessions (and user indexes) the memory variants keep, in place
/// of `MemoryStore::new()`'s 100,000: a login's session is in use at once,
/// and the store never evicts those, so `GET /login` (a new session per
/// request) would fill the default bound within seconds and get `503`s.
/// About 0.8 KB per login, 2 KB with the user index (two records): room
/// for the 15 s of logins a row may take (warm-up, measurement, retries).
pub const MEMORY_MAX_SESSIONS: usize = 4_000_000;

/// A secret for the stores that sign (the cookie stores): fixed, so runs
/// are comparable; this is a benchmark, not a deployment.
const SECRET: &[u8; 64] = b"session-bench: a fixed 64-byte secret, not for any real use!!!!!";

/// One server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// actix-web without any session middleware: the limit.
    None,
    /// actix-session 0.11, `CookieSessionStore`.
    ActixCookie,
    /// actix-session 0.11, `RedisSessionStore`.
    ActixRedis,
    /// This project, `MemoryStore`.
    OursMemory,
    /// This project, `MemoryStore`, with sessions bound to users (the
    /// user index on).
    OursMemoryUsers,
    /// This project, `FileStore` in a temporary directory.
    OursFilesystem,
    /// This project, `RedisStore`.
    OursRedis,
    /// This project, `RedisStore`, with sessions bound to users (the user
    /// index on).
    OursRedisUsers,
    /// This project, `RedisStore` with a near cache (`SESSION_LOCAL_CACHE`).
    OursRedisCached,
    /// This project, `SqlStore` on PostgreSQL.
    OursPostgres,
    /// This project, `SqlStore` on PostgreSQL with a near cache.
    OursPostgresCached,
    /// This project, `SqlStore` on SQLite in a temporary directory.
    OursSqlite,
    /// This project, `CookieStore`.
    OursCookie,
    /// This project, `RedisStore` through Sentinel (a master with one
    /// replica, from `scripts/services.sh`).
    OursSentinel,
    /// The same, each write waiting for the replica
    /// (`SESSION_REDIS_MIN_REPLICAS=1`): what `WAIT` costs.
    OursSentinelWait,
    /// This project, `MemoryStore`, values sealed at rest
    /// (`SESSION_ENCRYPT_AT_REST=true`): what sealing costs in the process.
    OursMemorySealed,
    /// This project, `RedisStore`, values sealed at rest.
    OursRedisSealed,
    /// This project, `RedisStore` with a memory store behind it to move
    /// sessions from (`SESSION_MIGRATE_FROM`): what `Migrating` costs once
    /// the sessions are in the new store.
    OursRedisMigrating,
}

impl Variant {
    /// Every variant, in the order a run measures them.
    pub const ALL: [Variant; 18] = [
        Variant::None,
        Variant::ActixCookie,
        Variant::ActixRedis,
        Variant::OursMemory,
        Variant::OursMemoryUsers,
        Variant::OursFilesystem,
        Variant::OursRedis,
        Variant::OursRedisUsers,
        Variant::OursRedisCached,
        Variant::OursPostgres,
        Variant::OursPostgresCached,
        Variant::OursSqlite,
        Variant::OursCookie,
        Variant::OursSentinel,
        Variant::OursSentinelWait,
        Variant::OursMemorySealed,
        Variant::OursRedisSealed,
        Variant::OursRedisMigrating,
    ];

    /// The variant's name on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Variant::None => "none",
            Variant::ActixCookie => "actix-cookie",
            Variant::ActixRedis => "actix-redis",
            Variant::OursMemory => "ours-memory",
            Variant::OursMemoryUsers => "ours-memory-users",
            Variant::OursFilesystem => "ours-filesystem",
            Variant::OursRedis => "ours-redis",
            Variant::OursRedisUsers => "ours-redis-users",
            Variant::OursRedisCached => "ours-redis-cached",
            Variant::OursPostgres => "ours-postgres",
            Variant::OursPostgresCached => "ours-postgres-cached",
            Variant::OursSqlite => "ours-sqlite",
            Variant::OursCookie => "ours-cookie",
            Variant::OursSentinel => "ours-redis-sentinel",
            Variant::OursSentinelWait => "ours-redis-sentinel-wait1",
            Variant::OursMemorySealed => "ours-memory-sealed",
            Variant::OursRedisSealed => "ours-redis-sealed",
            Variant::OursRedisMigrating => "ours-redis-migrating",
        }
    }

    /// True if the variant keeps sessions in Redis.
    pub fn uses_redis(self) -> bool {
        matches!(
            self,
            Variant::ActixRedis
                | Variant::OursRedis
                | Variant::OursRedisUsers
                | Variant::OursRedisCached
                | Variant::OursRedisSealed
                | Variant::OursRedisMigrating
        )
    }

    /// True if the variant keeps sessions in the master Sentinel names
    /// (see [`SENTINEL_URL`]).
    pub fn uses_sentinel(self) -> bool {
        matches!(self, Variant::OursSentinel | Variant::OursSentinelWait)
    }

    /// True if the variant binds its sessions to users (`GET /` and
    /// `GET /login` call `bind_user`): the `-users` variants.
    pub fn binds_users(self) -> bool {
        matches!(self, Variant::OursMemoryUsers | Variant::OursRedisUsers)
    }

    /// The variant without users that a `-users` variant is measured
    /// against (same store, same settings), if it is one.
    pub fn without_users(self) -> Option<Variant> {
        match self {
            Variant::OursMemoryUsers => Some(Variant::OursMemory),
            Variant::OursRedisUsers => Some(Variant::OursRedis),
            _ => None,
        }
    }

    /// The variant without sealing that a `-sealed` variant is measured
    /// against (same store, same settings), if it is one.
    pub fn without_sealing(self) -> Option<Variant> {
        match self {
            Variant::OursMemorySealed => Some(Variant::OursMemory),
            Variant::OursRedisSealed => Some(Variant::OursRedis),
            _ => None,
        }
    }

    /// The variant without a store to move sessions from that a
    /// `-migrating` variant is measured against, if it is one.
    pub fn without_migrating(self) -> Option<Variant> {
        match self {
            Variant::OursRedisMigrating => Some(Variant::OursRedis),
            _ => None,
        }
    }

    /// True if the variant has sessions at all (everything but `none`).
    pub fn has_sessions(self) -> bool {
        self != Variant::None
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Variant::ALL.iter().map(|v| v.name()).collect();
                format!(
                    "unknown variant {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// A variant ready to serve: its middleware (or what the app factory builds
/// it from), created once, outside the app factory, as an app would.
pub enum Built {
    /// No middleware.
    None,
    /// actix-session's middleware is not `Send`: the factory builds it
    /// from the store and the key.
    ActixCookie(Key),
    /// As above, with the Redis store (which is `Send` and shared).
    ActixRedis(actix_session::storage::RedisSessionStore, Key),
    /// Ours on the memory store.
    OursMemory(SessionMiddleware),
    /// Ours on the filesystem store; the directory lives as long as this.
    OursFilesystem(SessionMiddleware, tempfile::TempDir),
    /// Ours on the Redis store.
    OursRedis(SessionMiddleware),
    /// Ours on the SQL store; a SQLite file's directory lives as long as this.
    OursSql(SessionMiddleware, Option<tempfile::TempDir>),
    /// Ours on the cookie store.
    OursCookie(SessionMiddleware),
    /// Ours on the memory or the Redis store, with the routes that bind
    /// sessions to users.
    OursUsers(SessionMiddleware),
}

impl fmt::Debug for Built {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Built::None => "Built::None",
            Built::ActixCookie(..) => "Built::ActixCookie",
            Built::ActixRedis(..) => "Built::ActixRedis",
            Built::OursMemory(..) => "Built::OursMemory",
            Built::OursFilesystem(..) => "Built::OursFilesystem",
            Built::OursRedis(..) => "Built::OursRedis",
            Built::OursSql(..) => "Built::OursSql",
            Built::OursCookie(..) => "Built::OursCookie",
            Built::OursUsers(..) => "Built::OursUsers",
        })
    }
}

/// Sets up `variant`: opens its store (connecting to `redis_url` for the
/// Redis variants).
pub async fn build(variant: Variant, redis_url: &str) -> Result<Built, String> {
    let key = Key::from(SECRET);
    Ok(match variant {
        Variant::None => Built::None,
        Variant::ActixCookie => Built::ActixCookie(key),
        Variant::ActixRedis => {
            let store = actix_session::storage::RedisSessionStore::builder(redis_url)
                .cache_keygen(|k| format!("{ACTIX_REDIS_PREFIX}{k}"))
                .build()
                .await
                .map_err(|e| format!("actix-session's Redis store at {redis_url}: {e}"))?;
            Built::ActixRedis(store, key)
        }
        Variant::OursMemory => {
            Built::OursMemory(ours(MemoryStore::with_max_sessions(MEMORY_MAX_SESSIONS))?)
        }
        Variant::OursMemoryUsers => {
            Built::OursUsers(ours(MemoryStore::with_max_sessions(MEMORY_MAX_SESSIONS))?)
        }
        Variant::OursFilesystem => {
            let dir = tempfile::Builder::new()
                .prefix("session-bench-")
                .tempdir()
                .map_err(|e| format!("a temporary directory: {e}"))?;
            let store = FileStore::builder(dir.path())
                .build()
                .map_err(|e| format!("the filesystem store: {e}"))?;
            Built::OursFilesystem(ours(store)?, dir)
        }
        Variant::OursRedis => Built::OursRedis(ours(ours_redis(redis_url).await?)?),
        Variant::OursMemorySealed => {
            Built::OursMemory(sealed(MemoryStore::with_max_sessions(MEMORY_MAX_SESSIONS))?)
        }
        Variant::OursRedisSealed => Built::OursRedis(sealed(ours_redis(redis_url).await?)?),
        Variant::OursRedisMigrating => Built::OursRedis(ours(Migrating::new(
            ours_redis(redis_url).await?,
            MemoryStore::new(),
        ))?),
        Variant::OursRedisUsers => Built::OursUsers(ours(ours_redis(redis_url).await?)?),
        Variant::OursRedisCached => {
            let store = RedisStore::builder(redis_url)
                .timeout(Duration::from_secs(5))
                .build_near_cache(NEAR_CACHE)
                .await
                .map_err(|e| format!("our Redis store with a near cache at {redis_url}: {e}"))?;
            Built::OursRedis(ours(store)?)
        }
        Variant::OursSentinel | Variant::OursSentinelWait => {
            let wait = usize::from(variant == Variant::OursSentinelWait);
            let store = RedisStore::builder(SENTINEL_URL)
                .timeout(Duration::from_secs(5))
                .min_replicas(wait)
                .build()
                .await
                .map_err(|e| format!("our Redis store through Sentinel at {SENTINEL_URL}: {e}"))?;
            Built::OursRedis(ours(store)?)
        }
        Variant::OursPostgres => {
            let builder = postgres_table("bench_sessions").await?;
            let store = builder
                .build()
                .await
                .map_err(|e| format!("our SQL store on PostgreSQL: {e}"))?;
            Built::OursSql(ours(store)?, None)
        }
        Variant::OursPostgresCached => {
            let builder = postgres_table("bench_sessions_cached").await?;
            let store = builder
                .build_near_cache(NEAR_CACHE)
                .await
                .map_err(|e| format!("our SQL store on PostgreSQL with a near cache: {e}"))?;
            Built::OursSql(ours(store)?, None)
        }
        Variant::OursSqlite => {
            let dir = tempfile::Builder::new()
                .prefix("session-bench-")
                .tempdir()
                .map_err(|e| format!("a temporary directory: {e}"))?;
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("sessions.db").display()
            );
            let store = SqlStore::builder(url)
                .build()
                .await
                .map_err(|e| format!("our SQL store on SQLite: {e}"))?;
            Built::OursSql(ours(store)?, Some(dir))
        }
        Variant::OursCookie => {
            let store = CookieStore::new(SECRET, [] as [&str; 0]).map_err(|e| e.to_string())?;
            let middleware = SessionMiddleware::builder(store)
                .cookie_name(COOKIE_NAME)
                .cookie_secure(false)
                .cookie_same_site(SameSite::Lax)
                .build()
                .map_err(|e| e.to_string())?;
            Built::OursCookie(middleware)
        }
    })
}

/// The Sentinel deployment of `scripts/services.sh`: a master with one
/// replica, for the variants that measure waiting for it.
pub const SENTINEL_URL: &str =
    "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster";

/// The near cache's capacity in the `-cached` variants: room for every
/// session the routes read (256), and for the sessions `/` and `/login`
/// make, which push each other out.
pub const NEAR_CACHE: usize = 10_000;

/// A builder of our SQL store on `table` in PostgreSQL, dropped first: a
/// fresh table per run (earlier runs' sessions would skew it).
async fn postgres_table(table: &str) -> Result<session_actix::store::sql::SqlStoreBuilder, String> {
    let pool = sqlx::PgPool::connect(POSTGRES_URL)
        .await
        .map_err(|e| format!("PostgreSQL at {POSTGRES_URL}: {e}"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
        .execute(&pool)
        .await
        .map_err(|e| format!("PostgreSQL: {e}"))?;
    Ok(SqlStore::postgres(pool).table(table))
}

/// Our Redis store at `redis_url`, as both Redis variants of ours use it.
async fn ours_redis(redis_url: &str) -> Result<RedisStore, String> {
    RedisStore::builder(redis_url)
        .timeout(Duration::from_secs(5))
        .build()
        .await
        .map_err(|e| format!("our Redis store at {redis_url}: {e}"))
}

/// A user no request has logged in as yet: `u0`, `u1`, ... from a
/// process-wide counter, so every login is the first of its user and every
/// user has one session (a fixed user would see its index grow for the
/// whole run).
pub fn fresh_user() -> String {
    static USERS: AtomicU64 = AtomicU64::new(0);
    format!("u{}", USERS.fetch_add(1, Ordering::Relaxed))
}

/// Our middleware on `store`, with the benchmark's cookie settings.
fn ours<S: session_actix::store::SessionStore>(store: S) -> Result<SessionMiddleware, String> {
    ours_builder(store).build().map_err(|e| e.to_string())
}

/// As [`ours`], with every value sealed at rest (`SESSION_ENCRYPT_AT_REST`).
fn sealed<S: session_actix::store::SessionStore>(store: S) -> Result<SessionMiddleware, String> {
    ours_builder(store)
        .encrypt_at_rest(true)
        .build()
        .map_err(|e| e.to_string())
}

fn ours_builder<S: session_actix::store::SessionStore>(
    store: S,
) -> session_actix::SessionMiddlewareBuilder {
    SessionMiddleware::builder(store)
        .cookie_name(COOKIE_NAME)
        .cookie_secure(false)
        .cookie_same_site(SameSite::Lax)
        .key_prefix(OURS_REDIS_PREFIX)
}

/// actix-session's middleware on `store`, with the benchmark's cookie
/// settings. Built inside the app factory: it is not `Send`.
pub fn actix_middleware<S: actix_session::storage::SessionStore>(
    store: S,
    key: Key,
) -> actix_session::SessionMiddleware<S> {
    actix_session::SessionMiddleware::builder(store, key)
        .cookie_name(COOKIE_NAME.to_owned())
        .cookie_secure(false)
        .cookie_same_site(CookieSameSite::Lax)
        .build()
}

/// How `GET /fill?keys=N` grows a session: `N` more keys (`k0`, `k1`,
/// ...) of this value (100 bytes), so that a session of 200 keys is about
/// 20 KB. The benchmark's `--keys` primes sessions with it.
pub const FILL_VALUE: &str = "a session value of one hundred bytes, to grow a session as an app's would grow it over time......";

/// The query of `GET /fill`.
#[derive(serde::Deserialize)]
pub struct Fill {
    /// How many keys to add.
    pub keys: usize,
}

/// The routes without sessions: the same shapes, nothing stored.
pub mod plain {
    use actix_web::{HttpResponse, Responder, get};

    use super::ServiceConfig;

    /// Would create a session.
    #[get("/")]
    async fn hello() -> impl Responder {
        "hello"
    }

    /// Would read one key.
    #[get("/index")]
    async fn index() -> HttpResponse {
        HttpResponse::Ok().body("nick")
    }

    /// Would read and write one key.
    #[get("/visits")]
    async fn visits() -> impl Responder {
        let visits = std::hint::black_box(0u64) + 1;
        visits.to_string()
    }

    /// Would log a user in.
    #[get("/login")]
    async fn login() -> impl Responder {
        "welcome"
    }

    /// Would grow the session.
    #[get("/fill")]
    async fn fill() -> impl Responder {
        "filled"
    }

    /// Registers the routes.
    pub fn routes(cfg: &mut ServiceConfig) {
        cfg.service(hello)
            .service(index)
            .service(visits)
            .service(login)
            .service(fill);
    }
}

/// The quickstart's routes on this project's `Session`.
pub mod ours {
    use actix_web::{HttpResponse, Responder, get};
    use session_actix::Session;

    use super::ServiceConfig;

    /// `session['name'] = 'nick'`
    #[get("/")]
    async fn hello(session: Session) -> actix_web::Result<impl Responder> {
        session.insert("name", "nick")?;
        Ok("hello")
    }

    /// `return session['name']`, or 404.
    #[get("/index")]
    async fn index(session: Session) -> actix_web::Result<HttpResponse> {
        Ok(match session.get::<String>("name")? {
            Some(name) => HttpResponse::Ok().body(name),
            None => HttpResponse::NotFound().body("no name in the session"),
        })
    }

    /// Counts this session's visits.
    #[get("/visits")]
    async fn visits(session: Session) -> actix_web::Result<impl Responder> {
        let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
        session.insert("visits", visits)?;
        Ok(visits.to_string())
    }

    /// Logs a fresh user in: a new id, then `session['user'] = user`.
    #[get("/login")]
    async fn login(session: Session) -> actix_web::Result<impl Responder> {
        session.renew();
        session.insert("user", super::fresh_user())?;
        Ok("welcome")
    }

    /// `GET /` of the `-users` variants: as [`hello`], and binds the new
    /// session to a fresh user.
    #[get("/")]
    async fn hello_bound(session: Session) -> actix_web::Result<impl Responder> {
        session.insert("name", "nick")?;
        session.bind_user(super::fresh_user());
        Ok("hello")
    }

    /// `GET /login` of the `-users` variants: as [`login`], and binds the
    /// session to the user (which writes the user's index).
    #[get("/login")]
    async fn login_bound(session: Session) -> actix_web::Result<impl Responder> {
        let user = super::fresh_user();
        session.renew();
        session.insert("user", &user)?;
        session.bind_user(user);
        Ok("welcome")
    }

    /// Grows the session by `keys` keys of [`super::FILL_VALUE`].
    #[get("/fill")]
    async fn fill(
        session: Session,
        q: actix_web::web::Query<super::Fill>,
    ) -> actix_web::Result<impl Responder> {
        for i in 0..q.keys {
            session.insert(format!("k{i}"), super::FILL_VALUE)?;
        }
        Ok("filled")
    }

    /// Registers the routes.
    pub fn routes(cfg: &mut ServiceConfig) {
        cfg.service(hello)
            .service(index)
            .service(visits)
            .service(login)
            .service(fill);
    }

    /// Registers the routes of the `-users` variants: `/` and `/login`
    /// bind the session to a user; `/index` and `/visits` are the same.
    pub fn routes_with_users(cfg: &mut ServiceConfig) {
        cfg.service(hello_bound)
            .service(index)
            .service(visits)
            .service(login_bound)
            .service(fill);
    }
}

/// The same routes on actix-session's `Session`.
pub mod actix {
    use actix_session::Session;
    use actix_web::{HttpResponse, Responder, get};

    use super::ServiceConfig;

    /// `session['name'] = 'nick'`
    #[get("/")]
    async fn hello(session: Session) -> actix_web::Result<impl Responder> {
        session.insert("name", "nick")?;
        Ok("hello")
    }

    /// `return session['name']`, or 404.
    #[get("/index")]
    async fn index(session: Session) -> actix_web::Result<HttpResponse> {
        Ok(match session.get::<String>("name")? {
            Some(name) => HttpResponse::Ok().body(name),
            None => HttpResponse::NotFound().body("no name in the session"),
        })
    }

    /// Counts this session's visits.
    #[get("/visits")]
    async fn visits(session: Session) -> actix_web::Result<impl Responder> {
        let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
        session.insert("visits", visits)?;
        Ok(visits.to_string())
    }

    /// Logs a fresh user in: a new id, then `session['user'] = user`.
    #[get("/login")]
    async fn login(session: Session) -> actix_web::Result<impl Responder> {
        session.renew();
        session.insert("user", super::fresh_user())?;
        Ok("welcome")
    }

    /// Grows the session by `keys` keys of [`super::FILL_VALUE`].
    #[get("/fill")]
    async fn fill(
        session: Session,
        q: actix_web::web::Query<super::Fill>,
    ) -> actix_web::Result<impl Responder> {
        for i in 0..q.keys {
            session.insert(format!("k{i}"), super::FILL_VALUE)?;
        }
        Ok("filled")
    }

    /// Registers the routes.
    pub fn routes(cfg: &mut ServiceConfig) {
        cfg.service(hello)
            .service(index)
            .service(visits)
            .service(login)
            .service(fill);
    }
}

/// Builds the `App` of a [`Built`] variant and hands it to `$with`, a macro
/// or closure-like path taking the app expression; one arm per variant, as
/// each has its own type. Used by the server and the allocation counter.
#[macro_export]
macro_rules! with_app {
    ($built:expr, |$app:ident| $body:expr) => {{
        use $crate::actix_web::App;
        match $built {
            $crate::Built::None => {
                let $app = move || App::new().configure($crate::plain::routes);
                $body
            }
            $crate::Built::ActixCookie(key) => {
                let key = key.clone();
                let $app = move || {
                    App::new()
                        .wrap($crate::actix_middleware(
                            $crate::actix_session::storage::CookieSessionStore::default(),
                            key.clone(),
                        ))
                        .configure($crate::actix::routes)
                };
                $body
            }
            $crate::Built::ActixRedis(store, key) => {
                let (store, key) = (store.clone(), key.clone());
                let $app = move || {
                    App::new()
                        .wrap($crate::actix_middleware(store.clone(), key.clone()))
                        .configure($crate::actix::routes)
                };
                $body
            }
            $crate::Built::OursMemory(mw) => {
                let mw = mw.clone();
                let $app = move || App::new().wrap(mw.clone()).configure($crate::ours::routes);
                $body
            }
            $crate::Built::OursFilesystem(mw, _) => {
                let mw = mw.clone();
                let $app = move || App::new().wrap(mw.clone()).configure($crate::ours::routes);
                $body
            }
            $crate::Built::OursRedis(mw) => {
                let mw = mw.clone();
                let $app = move || App::new().wrap(mw.clone()).configure($crate::ours::routes);
                $body
            }
            $crate::Built::OursSql(mw, _) => {
                let mw = mw.clone();
                let $app = move || App::new().wrap(mw.clone()).configure($crate::ours::routes);
                $body
            }
            $crate::Built::OursCookie(mw) => {
                let mw = mw.clone();
                let $app = move || App::new().wrap(mw.clone()).configure($crate::ours::routes);
                $body
            }
            $crate::Built::OursUsers(mw) => {
                let mw = mw.clone();
                let $app = move || {
                    App::new()
                        .wrap(mw.clone())
                        .configure($crate::ours::routes_with_users)
                };
                $body
            }
        }
    }};
}
