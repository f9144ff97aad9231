//! The SQL store: PostgreSQL, MySQL/MariaDB and SQLite, through sqlx.
//!
//! Each database has its own feature: `sql-postgres`, `sql-mysql` (MySQL
//! 5.7.22+ or MariaDB 10.2.25+, for `JSON_MERGE_PATCH`; tested on MariaDB
//! 10.11) and `sql-sqlite` (SQLite is bundled: nothing to install). Build a store from a URL, or from a pool the app already has:
//!
//! ```no_run
//! # async fn demo() -> Result<(), session_core::store::StoreError> {
//! use std::time::Duration;
//! use session_core::store::sql::SqlStore;
//!
//! // postgres://..., mysql://... (also MariaDB), sqlite://path or sqlite::memory:
//! let store = SqlStore::builder("postgres://app@127.0.0.1/app")
//!     .table("sessions")
//!     .cleanup_interval(Duration::from_secs(300))
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! One row per session: the store key, the session's entries as one JSON
//! object, when it expires and when it was created. The table (default
//! `sessions`) and an index on `expires_at` are created at build time if
//! they do not exist:
//!
//! ```sql
//! -- PostgreSQL
//! CREATE TABLE sessions (
//!     id         TEXT PRIMARY KEY,
//!     data       JSONB NOT NULL,
//!     expires_at TIMESTAMPTZ NOT NULL,
//!     created_at TIMESTAMPTZ
//! );
//! CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
//!
//! -- MySQL / MariaDB (InnoDB; MariaDB's JSON is LONGTEXT with a JSON_VALID check)
//! CREATE TABLE sessions (
//!     id         VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
//!     data       JSON NOT NULL,
//!     expires_at DATETIME(6) NOT NULL,  -- UTC
//!     created_at DATETIME(6) NULL,      -- UTC
//!     INDEX sessions_expires_at_idx (expires_at)
//! ) ENGINE = InnoDB;
//!
//! -- SQLite
//! CREATE TABLE sessions (
//!     id         TEXT PRIMARY KEY NOT NULL,
//!     data       TEXT NOT NULL,     -- a JSON object
//!     expires_at INTEGER NOT NULL,  -- Unix time in milliseconds
//!     created_at INTEGER            -- Unix time in milliseconds
//! );
//! CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
//! ```
//!
//! `created_at` is the session's [creation time](Record::created_at), kept
//! to the millisecond; `NULL` when it is not known. A table made by a
//! version of this store without the column gets it at build time (`ALTER
//! TABLE ... ADD COLUMN`, only when it is missing; adding a nullable column
//! is instant on all three databases), and its rows load with
//! `created_at: None`.
//!
//! `data` maps each session key to its encoded value: a JSON string when the
//! value is UTF-8 text without NUL characters (always the case with the
//! default JSON codec), otherwise a one-element array holding the value in
//! base64 (MessagePack, raw bytes). So the sessions stay readable and
//! queryable in SQL:
//!
//! ```text
//! test=# SELECT id, data, expires_at FROM sessions;
//!  session:9f86d08...0a08 | {"name": "\"nick\"", "avatar": ["iVBORw0KGgo="]} | 2026-12-26 18:02:30+00
//! ```
//!
//! The table name must be a plain SQL identifier (letters, digits and `_`,
//! not starting with a digit, at most 48 characters); it is quoted in every
//! query, so its case is kept. On PostgreSQL a session key may not contain a
//! NUL character (`jsonb` cannot hold one).
//!
//! # Atomicity
//!
//! Every change set is one `UPDATE` that merges into the row in the
//! database, so two requests that change different keys both persist
//! (same key: the last writer wins), and a row that does not exist or has
//! expired is never written, which is what makes logout final:
//!
//! - PostgreSQL: `data = (data - $removed::text[]) || $set::jsonb`;
//! - MySQL/MariaDB: `data = JSON_MERGE_PATCH(data, ?)`, SQLite:
//!   `data = json_patch(data, ?)`, with a patch that sets the new values and
//!   has `null` for the removed keys (RFC 7396);
//! - with `clear`, `data` is replaced by the new entries.
//!
//! A size limit ([`ChangeSet::max_size`]) is checked in the same `UPDATE`:
//! its `WHERE` measures the merged object as
//! [`session_size`](crate::store::session_size) does (per entry, 8 plus the bytes
//! of the key and of the value, a base64 value counting what it decodes
//! to), with `jsonb_each`, `json_each`, or on MySQL/MariaDB `JSON_TABLE`
//! over `JSON_KEYS` and over `$.*`. The database measures the row it
//! writes, under its row lock, so concurrent writes cannot together pass
//! the limit, and a write within it costs no extra round trip. Only when
//! that `UPDATE` matches no row does a transaction tell [`Applied::Gone`]
//! from [`Applied::TooLarge`]: it measures the merge on the row read under
//! a write lock (`FOR UPDATE`; `BEGIN IMMEDIATE` on SQLite) and writes it
//! after all if a concurrent change made room meanwhile. A `clear` is
//! measured in Rust (its new entries are the whole session) and goes to
//! that transaction only when it is too large. A MySQL or MariaDB server
//! without `JSON_TABLE` (MySQL 5.7, MariaDB before 10.6; found out at build
//! time) takes that transaction for every write with a limit, and measures
//! the merge in Rust: three more round trips per write.
//!
//! A change set that sets nothing may leave the session empty: then a second
//! statement deletes the row if it is still empty (a key set meanwhile by a
//! concurrent request keeps it) and `apply` returns
//! [`Applied::Deleted`]. `create` is an insert that replaces only an expired
//! row (`ON CONFLICT ... DO UPDATE ... WHERE expires_at <= now`; on MySQL an
//! insert, and on a duplicate key the expired row is deleted and the insert
//! tried once more). `take` is `DELETE ... RETURNING` on PostgreSQL and
//! SQLite, and `SELECT ... FOR UPDATE` then `DELETE` in one transaction on
//! MySQL/MariaDB.
//!
//! PostgreSQL and MySQL compare expiry times with the database's own clock
//! (`now()`, `UTC_TIMESTAMP(6)`), so app servers with skewed clocks agree;
//! SQLite, which runs in the app's process, uses the app's clock.
//!
//! # Expired rows
//!
//! Expired rows are never returned, but stay in the table until deleted:
//! the store deletes them every 5 minutes in a background task (see
//! [`SqlStoreBuilder::cleanup_interval`]; the task stops when the last clone
//! of the store is dropped), and [`SqlStore::cleanup`] does it on demand,
//! for example from a cron job when the task is turned off.
//!
//! # SQLite or the filesystem store?
//!
//! Both keep sessions on one machine. Pick SQLite when several processes of
//! the app share the sessions (SQLite serialises their writes, and a store
//! built from a URL opens it in WAL mode, so readers never wait for a
//! writer), when you want
//! to query sessions with SQL, or when you want durability: a committed
//! change survives a crash of the app, and with
//! [`durable(true)`](SqlStoreBuilder::durable) a power loss too, which the
//! file store does not promise. SQLite has no file-count threshold to tune and keeps every
//! session in one file. Pick the [filesystem store](crate::store::filesystem) when
//! you want no dependency at all (no sqlx, no C library compiled in) and a
//! session per file is fine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::task::AbortHandle;

#[cfg(feature = "flask")]
mod flask;
#[cfg(feature = "flask")]
#[cfg_attr(docsrs, doc(cfg(feature = "flask")))]
pub use flask::FlaskTable;
pub use sqlx;

use crate::StoreKey;
use crate::store::{Applied, ChangeSet, NearCache, Record, ScanPage, SessionStore, StoreError};

/// How often expired rows are deleted unless the builder says otherwise.
const DEFAULT_CLEANUP: Duration = Duration::from_secs(300);
/// The longest table name: the index name adds `_expires_at_idx`, and
/// PostgreSQL identifiers end at 63 bytes.
const MAX_TABLE_NAME: usize = 48;

/// Keeps sessions in PostgreSQL, MySQL/MariaDB or SQLite. See the
/// [module docs](self) for the layout and the guarantees.
///
/// Cloning is cheap and shares the pool; the background cleanup stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct SqlStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    table: String,
    cleanup: Mutex<Option<AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let handle = self.cleanup.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(handle) = handle.take() {
            handle.abort();
        }
    }
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("database", &self.inner.db.name())
            .field("table", &self.inner.table)
            .finish()
    }
}

/// The database behind a store, with its queries.
enum Db {
    #[cfg(feature = "sql-postgres")]
    Postgres(postgres::Pg),
    #[cfg(feature = "sql-mysql")]
    MySql(mysql::My),
    #[cfg(feature = "sql-sqlite")]
    Sqlite(sqlite::Lite),
}

/// Runs the same call on whichever database the store has.
macro_rules! dispatch {
    ($db:expr, $d:ident => $call:expr) => {
        match $db {
            #[cfg(feature = "sql-postgres")]
            Db::Postgres($d) => $call,
            #[cfg(feature = "sql-mysql")]
            Db::MySql($d) => $call,
            #[cfg(feature = "sql-sqlite")]
            Db::Sqlite($d) => $call,
        }
    };
}

impl Db {
    fn name(&self) -> &'static str {
        match self {
            #[cfg(feature = "sql-postgres")]
            Db::Postgres(_) => "postgres",
            #[cfg(feature = "sql-mysql")]
            Db::MySql(_) => "mysql",
            #[cfg(feature = "sql-sqlite")]
            Db::Sqlite(_) => "sqlite",
        }
    }
}

/// A pool of one of the three databases.
#[derive(Clone)]
pub(crate) enum Pool {
    #[cfg(feature = "sql-postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "sql-mysql")]
    MySql(sqlx::MySqlPool),
    #[cfg(feature = "sql-sqlite")]
    Sqlite(sqlx::SqlitePool),
}

/// Runs the same statement on whichever pool it is.
#[cfg(feature = "flask")]
macro_rules! on_pool {
    ($pool:expr, $p:ident => $call:expr) => {
        match $pool {
            #[cfg(feature = "sql-postgres")]
            Pool::Postgres($p) => $call,
            #[cfg(feature = "sql-mysql")]
            Pool::MySql($p) => $call,
            #[cfg(feature = "sql-sqlite")]
            Pool::Sqlite($p) => $call,
        }
    };
}
#[cfg(feature = "flask")]
pub(crate) use on_pool;

/// Where a builder gets its pool.
enum Source {
    Url(String),
    Pool(Pool),
}

/// Configures a [`SqlStore`].
#[must_use]
pub struct SqlStoreBuilder {
    source: Source,
    table: String,
    cleanup_interval: Option<Duration>,
    timeout: Duration,
    max_connections: u32,
    durable: bool,
    /// The near cache's heartbeat, when not the default: a proof due
    /// every `.0`, each within `.1`.
    heartbeat: Option<(Duration, Duration)>,
}

impl std::fmt::Debug for SqlStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: leave it out.
        f.debug_struct("SqlStoreBuilder")
            .field("table", &self.table)
            .field("cleanup_interval", &self.cleanup_interval)
            .field("timeout", &self.timeout)
            .field("max_connections", &self.max_connections)
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

impl SqlStoreBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            table: "sessions".to_owned(),
            cleanup_interval: Some(DEFAULT_CLEANUP),
            timeout: Duration::from_secs(5),
            max_connections: 10,
            durable: false,
            heartbeat: None,
        }
    }

    /// The table to keep sessions in. Defaults to `sessions`. It must be a
    /// plain SQL identifier: ASCII letters, digits and `_`, not starting with
    /// a digit, at most 48 characters; [`build`](Self::build) fails
    /// otherwise.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// How often a background task deletes expired rows. Defaults to 5
    /// minutes; `None` or a zero duration turns the task off (call
    /// [`SqlStore::cleanup`] yourself then). The task runs on the tokio
    /// runtime that [`build`](Self::build) runs on, and stops when the last
    /// clone of the store is dropped.
    pub fn cleanup_interval(mut self, every: impl Into<Option<Duration>>) -> Self {
        self.cleanup_interval = every.into().filter(|d| !d.is_zero());
        self
    }

    /// How long to wait for a connection from the pool (and to connect).
    /// Defaults to 5 seconds. Only for a store built from a URL: a pool
    /// given to the builder keeps its own settings.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most connections the pool opens. Defaults to 10. Only for a
    /// store built from a URL.
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// SQLite only, for a store built from a URL: whether every commit
    /// reaches the disk before it returns (`PRAGMA synchronous = FULL`).
    /// Defaults to false (`NORMAL`): in WAL mode a crash of the app loses
    /// nothing, and the database stays consistent whatever happens, but a
    /// power loss or a crash of the OS may undo the last commits (sessions
    /// written in the last moments before it). With `true` nothing is lost,
    /// and each write waits for the disk: on the benchmark's machine, a
    /// quarter of the write throughput and three times the p99.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// The near cache's heartbeat on PostgreSQL: its listener proves
    /// itself every `every`, within `deadline` (defaults to
    /// [`HEARTBEAT_EVERY`](crate::store::near::HEARTBEAT_EVERY) and
    /// [`HEARTBEAT_DEADLINE`](crate::store::near::HEARTBEAT_DEADLINE)). For
    /// tests, which cannot wait seconds for a stall to be noticed.
    #[doc(hidden)]
    pub fn heartbeat(mut self, every: Duration, deadline: Duration) -> Self {
        self.heartbeat = Some((every, deadline));
        self
    }

    /// The builder's pool: the one it was given, or one connected to its
    /// URL.
    async fn pool(&mut self) -> Result<Pool, StoreError> {
        let source = std::mem::replace(&mut self.source, Source::Url(String::new()));
        match source {
            Source::Url(url) => {
                connect(&url, self.timeout, self.max_connections, self.durable).await
            }
            Source::Pool(pool) => Ok(pool),
        }
    }

    /// Connects (for a URL), creates the table and its index if they are
    /// missing, and starts the cleanup task.
    ///
    /// The URL is one of `postgres://` (or `postgresql://`, feature
    /// `sql-postgres`), `mysql://` (or `mariadb://`, feature `sql-mysql`),
    /// or `sqlite://path` / `sqlite::memory:` (feature `sql-sqlite`; the
    /// file is created if it is missing, and opened in WAL mode). A
    /// `sqlite::memory:` database lives as long as the store.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] for a URL of a database this build does not
    /// include, a table name that is not a plain identifier, a database that
    /// cannot be reached, or a table that cannot be created or upgraded.
    pub async fn build(mut self) -> Result<SqlStore, StoreError> {
        check_table_name(&self.table)?;
        let source = self.pool().await?;
        let table = self.table.as_str();
        let db = match source {
            #[cfg(feature = "sql-postgres")]
            Pool::Postgres(pool) => Db::Postgres(
                postgres::Pg::new(pool, table)
                    .await
                    .map_err(StoreError::backend)?,
            ),
            #[cfg(feature = "sql-mysql")]
            Pool::MySql(pool) => Db::MySql(
                mysql::My::new(pool, table)
                    .await
                    .map_err(StoreError::backend)?,
            ),
            #[cfg(feature = "sql-sqlite")]
            Pool::Sqlite(pool) => Db::Sqlite(
                sqlite::Lite::new(pool, table)
                    .await
                    .map_err(StoreError::backend)?,
            ),
        };
        let inner = Arc::new(Inner {
            db,
            table: self.table,
            cleanup: Mutex::new(None),
        });
        if let Some(every) = self.cleanup_interval {
            let handle = spawn_cleanup(Arc::downgrade(&inner), every);
            *inner.cleanup.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        }
        Ok(SqlStore { inner })
    }

    /// Builds the store as [`build`](Self::build) does, and puts a near
    /// cache of up to `capacity` sessions in front of it
    /// (`SESSION_LOCAL_CACHE`; see [`near`](crate::store::near)):
    ///
    /// - **PostgreSQL:** kept right by `LISTEN`/`NOTIFY`. A trigger on the
    ///   table (created here if missing) sends the id of every session any
    ///   process changes; one connection of the pool listens, and proves
    ///   each second that it still does (a listener that stalls is replaced,
    ///   and the cache bypassed meanwhile). The README gives the delay
    ///   measured before another process's change is seen.
    /// - **SQLite:** nothing tells the cache about other processes'
    ///   writes: only for a database file that this process alone uses.
    /// - **MySQL / MariaDB:** refused (it has no way to tell).
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build), and [`StoreError::Backend`] on MySQL or
    /// when the trigger cannot be created or the listener cannot connect.
    pub async fn build_near_cache(
        self,
        capacity: usize,
    ) -> Result<NearCache<SqlStore>, StoreError> {
        let heartbeat = self.heartbeat;
        let store = self.build().await?;
        if capacity == 0 {
            return Ok(NearCache::local(store, 0));
        }
        match &store.inner.db {
            #[cfg(feature = "sql-postgres")]
            Db::Postgres(pg) => {
                let pool = pg.pool().clone();
                let table = store.inner.table.clone();
                let (cache, invalidator) = match heartbeat {
                    Some((every, deadline)) => {
                        NearCache::with_feed_and_heartbeat(store, capacity, every, deadline)
                    }
                    None => NearCache::with_feed(store, capacity),
                };
                notify::start(pool, &table, invalidator).await?;
                Ok(cache)
            }
            #[cfg(feature = "sql-sqlite")]
            Db::Sqlite(_) => Ok(NearCache::local(store, capacity)),
            #[cfg(feature = "sql-mysql")]
            Db::MySql(_) => Err(StoreError::backend(
                "the near cache (SESSION_LOCAL_CACHE) is not available on MySQL or MariaDB: \
                 nothing would tell it what other processes change",
            )),
        }
    }
}

#[allow(unused_variables)]
async fn connect(
    url: &str,
    timeout: Duration,
    max_connections: u32,
    durable: bool,
) -> Result<Pool, StoreError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        #[cfg(feature = "sql-postgres")]
        "postgres" | "postgresql" => {
            use std::str::FromStr;

            let options =
                sqlx::postgres::PgConnectOptions::from_str(url).map_err(StoreError::backend)?;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(timeout);
            let pool = open_pool(pool, options, timeout).await?;
            Ok(Pool::Postgres(pool))
        }
        #[cfg(feature = "sql-mysql")]
        "mysql" | "mariadb" => {
            use std::str::FromStr;

            let url = match url.strip_prefix("mariadb:") {
                Some(rest) => format!("mysql:{rest}"),
                None => url.to_owned(),
            };
            let options =
                sqlx::mysql::MySqlConnectOptions::from_str(&url).map_err(StoreError::backend)?;
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(timeout);
            let pool = open_pool(pool, options, timeout).await?;
            Ok(Pool::MySql(pool))
        }
        #[cfg(feature = "sql-sqlite")]
        "sqlite" => {
            use std::str::FromStr;

            use sqlx::sqlite::{
                SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
            };

            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let mut options = SqliteConnectOptions::from_str(url)
                .map_err(StoreError::backend)?
                .busy_timeout(timeout);
            let mut pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(timeout);
            if in_memory {
                // The database lives while one connection to it is open.
                pool = pool
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            } else {
                options = options
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(if durable {
                        SqliteSynchronous::Full
                    } else {
                        SqliteSynchronous::Normal
                    });
            }
            let pool = open_pool(pool, options, timeout).await?;
            Ok(Pool::Sqlite(pool))
        }
        #[cfg(not(feature = "sql-postgres"))]
        "postgres" | "postgresql" => Err(missing_feature("postgres://", "sql-postgres")),
        #[cfg(not(feature = "sql-mysql"))]
        "mysql" | "mariadb" => Err(missing_feature("mysql://", "sql-mysql")),
        #[cfg(not(feature = "sql-sqlite"))]
        "sqlite" => Err(missing_feature("sqlite:", "sql-sqlite")),
        _ => Err(StoreError::backend(
            "the SQL store needs a postgres://, mysql:// or sqlite: URL",
        )),
    }
}

/// Opens a pool with its first connection. When that times out, one more
/// attempt of its own tells why (the pool only says it timed out).
async fn open_pool<DB: sqlx::Database>(
    pool: sqlx::pool::PoolOptions<DB>,
    options: <DB::Connection as sqlx::Connection>::Options,
    timeout: Duration,
) -> Result<sqlx::Pool<DB>, StoreError> {
    use sqlx::Connection as _;

    match pool.connect_with(options.clone()).await {
        Err(sqlx::Error::PoolTimedOut) => {
            let attempt = tokio::time::timeout(timeout, DB::Connection::connect_with(&options));
            Err(match attempt.await {
                Ok(Err(why)) => StoreError::backend(why),
                _ => StoreError::Timeout(timeout),
            })
        }
        opened => opened.map_err(StoreError::backend),
    }
}

#[cfg(not(all(
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
)))]
fn missing_feature(scheme: &str, feature: &str) -> StoreError {
    StoreError::backend(format!(
        "{scheme} URLs need the `{feature}` feature of the SQL store"
    ))
}

/// Whether `table` can name the store's table: a plain SQL identifier of
/// ASCII letters, digits and `_`, not starting with a digit, at most 48
/// characters.
pub fn is_valid_table_name(table: &str) -> bool {
    let mut chars = table.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && table.len() <= MAX_TABLE_NAME
}

fn check_table_name(table: &str) -> Result<(), StoreError> {
    if is_valid_table_name(table) {
        Ok(())
    } else {
        Err(StoreError::backend(format!(
            "invalid SQL table name {table:?}: use ASCII letters, digits and `_`, \
             not starting with a digit, at most {MAX_TABLE_NAME} characters"
        )))
    }
}

fn spawn_cleanup(inner: Weak<Inner>, every: Duration) -> AbortHandle {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate
        loop {
            ticks.tick().await;
            let Some(inner) = inner.upgrade() else { break };
            match dispatch!(&inner.db, d => d.cleanup().await) {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deleted = n, table = %inner.table, "expired sessions deleted"),
                Err(e) => tracing::warn!(error = %e, table = %inner.table, "deleting expired sessions failed"),
            }
        }
    })
    .abort_handle()
}

impl SqlStore {
    /// Starts configuring a store reached by `url` (see
    /// [`SqlStoreBuilder::build`] for the forms it takes).
    pub fn builder(url: impl Into<String>) -> SqlStoreBuilder {
        SqlStoreBuilder::new(Source::Url(url.into()))
    }

    /// Starts configuring a store on an existing PostgreSQL pool. Sharing
    /// it with the rest of the app is fine.
    #[cfg(feature = "sql-postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sql-postgres")))]
    pub fn postgres(pool: sqlx::PgPool) -> SqlStoreBuilder {
        SqlStoreBuilder::new(Source::Pool(Pool::Postgres(pool)))
    }

    /// Starts configuring a store on an existing MySQL or MariaDB pool.
    #[cfg(feature = "sql-mysql")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sql-mysql")))]
    pub fn mysql(pool: sqlx::MySqlPool) -> SqlStoreBuilder {
        SqlStoreBuilder::new(Source::Pool(Pool::MySql(pool)))
    }

    /// Starts configuring a store on an existing SQLite pool (its settings,
    /// such as the journal mode, are kept as they are).
    #[cfg(feature = "sql-sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sql-sqlite")))]
    pub fn sqlite(pool: sqlx::SqlitePool) -> SqlStoreBuilder {
        SqlStoreBuilder::new(Source::Pool(Pool::Sqlite(pool)))
    }

    /// The table the sessions are kept in.
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// Deletes every expired row now, and returns how many there were.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the database fails.
    pub async fn cleanup(&self) -> Result<u64, StoreError> {
        dispatch!(&self.inner.db, d => d.cleanup().await).map_err(StoreError::backend)
    }
}

impl SessionStore for SqlStore {
    const KIND: &'static str = "sql";

    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        dispatch!(&self.inner.db, d => d.load(key.as_str()).await)
            .map_err(StoreError::backend)?
            .map(Row::into_record)
            .transpose()
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let data = encode(record.entries.iter());
        let created_at = record.created_at.map(unix_ms);
        dispatch!(&self.inner.db, d => d.create(key.as_str(), &data, created_at, ttl).await)
            .map_err(StoreError::backend)
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        dispatch!(&self.inner.db, d => d.apply(key.as_str(), changes, ttl).await)
            .map_err(StoreError::backend)
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        let touched = dispatch!(&self.inner.db, d => d.touch(key.as_str(), ttl).await)
            .map_err(StoreError::backend)?;
        Ok(if touched {
            Applied::Done
        } else {
            Applied::Gone
        })
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        dispatch!(&self.inner.db, d => d.delete(key.as_str()).await).map_err(StoreError::backend)
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        dispatch!(&self.inner.db, d => d.take(key.as_str()).await)
            .map_err(StoreError::backend)?
            .map(Row::into_record)
            .transpose()
    }

    /// Pages of up to 200 live rows in `id` order (the primary
    /// key's); the cursor is the last `id` of the page.
    async fn scan(&self, prefix: &str, cursor: Option<&str>) -> Result<ScanPage, StoreError> {
        // A key equal to the prefix alone is no session's.
        let after = cursor.unwrap_or(prefix);
        let ids = dispatch!(&self.inner.db, d => d.scan(after, SCAN_PAGE).await)
            .map_err(StoreError::backend)?;
        Ok(ScanPage::keyset(ids, prefix, SCAN_PAGE))
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.cleanup().await
    }
}

/// Rows one page of [`SqlStore`]'s scan reads.
const SCAN_PAGE: i64 = 200;

/// A live session's row, as `load` and `take` read it.
struct Row {
    data: String,
    /// `None` from `take`, which has no use for it.
    expires_at: Option<SystemTime>,
    /// Unix milliseconds.
    created_at: Option<i64>,
}

impl Row {
    fn into_record(self) -> Result<Record, StoreError> {
        Ok(Record {
            entries: decode(&self.data)?,
            expires_at: self.expires_at,
            created_at: self.created_at.map(from_unix_ms),
        })
    }
}

/// A time as Unix milliseconds (negative before 1970), the unit
/// `created_at` is kept in, whatever the column's type.
fn unix_ms(t: SystemTime) -> i64 {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => ms(after),
        // Round down before 1970 too, so that every time in one
        // millisecond is kept as that millisecond.
        Err(before) => {
            let before = before.duration();
            let part = i64::from(before.subsec_nanos() % 1_000_000 != 0);
            ms(before).saturating_add(part).saturating_neg()
        }
    }
}

fn from_unix_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// The rare path of an `apply` with a size limit (the single `UPDATE`
/// matched no row, or a `clear` is too large on its own) decides from the
/// merged session's size, measured under a write lock (`None`: no live
/// row): `Some` settles the apply, `None` means it fits now (a concurrent
/// change made room) and is written under that lock.
fn decide_locked(size: Option<i64>, changes: &ChangeSet) -> Option<Applied> {
    let Some(size) = size else {
        return Some(Applied::Gone);
    };
    let size = usize::try_from(size).unwrap_or(0);
    changes
        .max_size
        .filter(|&limit| size > limit)
        .map(|_| Applied::TooLarge { size })
}

/// A session size limit as SQL binds it.
fn limit_of(changes: &ChangeSet) -> Option<i64> {
    changes
        .max_size
        .map(|max| i64::try_from(max).unwrap_or(i64::MAX))
}

/// True when the change set must go straight to the locked path: a
/// `clear` whose new entries alone pass the limit. They are the whole
/// merged session, so Rust measures a `clear` and no `UPDATE` has to.
fn clear_too_large(changes: &ChangeSet) -> bool {
    changes.clear && changes.too_large(&HashMap::new()).is_some()
}

// ---- The JSON in the `data` column ----

/// A value as JSON: the text itself if it can be, else `["<base64>"]`.
fn encode_value(value: &[u8]) -> Value {
    match std::str::from_utf8(value) {
        Ok(text) if !text.contains('\0') => Value::String(text.to_owned()),
        _ => Value::Array(vec![Value::String(B64.encode(value))]),
    }
}

fn decode_value(key: &str, value: Value) -> Result<Bytes, StoreError> {
    match value {
        Value::String(text) => Ok(Bytes::from(text)),
        Value::Array(mut items) if items.len() == 1 => match items.pop() {
            Some(Value::String(b64)) => B64.decode(b64).map(Bytes::from).map_err(|e| {
                StoreError::backend(format!("session key {key:?}: bad base64 in the row: {e}"))
            }),
            _ => Err(corrupt(key)),
        },
        _ => Err(corrupt(key)),
    }
}

fn corrupt(key: &str) -> StoreError {
    StoreError::backend(format!(
        "session key {key:?}: the row holds a value this store did not write"
    ))
}

/// Entries as the JSON object kept in `data`.
fn encode<'a>(entries: impl Iterator<Item = (&'a String, &'a Bytes)>) -> String {
    let object: Map<String, Value> = entries.map(|(k, v)| (k.clone(), encode_value(v))).collect();
    Value::Object(object).to_string()
}

/// The entries a change set writes, as a JSON object.
fn encode_set(changes: &ChangeSet) -> String {
    encode(changes.set.iter().map(|(k, v)| (k, v)))
}

/// A change set (without `clear`) as an RFC 7396 merge patch: the new
/// values, and `null` for each removed key.
#[cfg(any(feature = "sql-mysql", feature = "sql-sqlite"))]
fn merge_patch(changes: &ChangeSet) -> String {
    let mut object = Map::new();
    for key in &changes.remove {
        object.insert(key.clone(), Value::Null);
    }
    for (key, value) in &changes.set {
        object.insert(key.clone(), encode_value(value));
    }
    Value::Object(object).to_string()
}

fn decode(data: &str) -> Result<HashMap<String, Bytes>, StoreError> {
    let object: Map<String, Value> = serde_json::from_str(data)
        .map_err(|e| StoreError::backend(format!("the session row is not a JSON object: {e}")))?;
    object
        .into_iter()
        .map(|(k, v)| {
            let value = decode_value(&k, v)?;
            Ok((k, value))
        })
        .collect()
}

/// A lifetime in whole units of `unit` (at least one).
fn ttl_in(ttl: Duration, unit: Duration) -> i64 {
    i64::try_from(ttl.as_nanos() / unit.as_nanos())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// The time `remaining` units of `unit` from now (none left: now).
#[cfg(any(feature = "sql-postgres", feature = "sql-mysql"))]
fn expires_in(remaining: i64, unit: Duration) -> std::time::SystemTime {
    let units = u64::try_from(remaining).unwrap_or(0);
    let nanos = units.saturating_mul(u64::try_from(unit.as_nanos()).unwrap_or(u64::MAX));
    std::time::SystemTime::now() + Duration::from_nanos(nanos)
}

/// What an `UPDATE` applying a change set came to. `emptied` is `None` when
/// no live row matched (`Gone`), else whether the row may now be empty;
/// then `delete_empty` deletes it if it still is (a key set meanwhile by
/// another request keeps it) and says how many rows it deleted.
async fn settle(
    emptied: Option<bool>,
    delete_empty: impl AsyncFnOnce() -> Result<u64, sqlx::Error>,
) -> Result<Applied, sqlx::Error> {
    Ok(match emptied {
        None => Applied::Gone,
        Some(false) => Applied::Done,
        Some(true) if delete_empty().await? == 1 => Applied::Deleted,
        Some(true) => Applied::Done,
    })
}

#[cfg(feature = "sql-postgres")]
mod notify;
#[cfg(feature = "sql-postgres")]
mod postgres;

#[cfg(feature = "sql-mysql")]
mod mysql;

#[cfg(feature = "sql-sqlite")]
mod sqlite;

#[cfg(test)]
mod tests {
    use super::*;

    /// A file-backed SQLite store commits with `synchronous = NORMAL`
    /// unless asked to be durable (`FULL`); each pooled connection has it.
    #[cfg(feature = "sql-sqlite")]
    #[tokio::test]
    async fn sqlite_is_durable_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        for (durable, expected) in [(false, 1), (true, 2)] {
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join(format!("{durable}.db")).display()
            );
            let store = SqlStore::builder(url)
                .durable(durable)
                .build()
                .await
                .unwrap();
            #[allow(irrefutable_let_patterns)] // with SQLite alone
            let Db::Sqlite(lite) = &store.inner.db else {
                unreachable!("a sqlite:// URL")
            };
            let mut seen = Vec::new();
            let mut held = Vec::new();
            for _ in 0..3 {
                let mut conn = lite.pool().acquire().await.unwrap();
                let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                seen.push(level);
                held.push(conn);
            }
            assert_eq!(seen, [expected; 3], "durable: {durable}");
        }
    }

    #[test]
    fn table_names_are_identifiers() {
        for ok in ["sessions", "_s", "Sessions_2", &"a".repeat(MAX_TABLE_NAME)] {
            assert!(check_table_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "2sessions",
            "sessions; DROP TABLE users",
            "a\"b",
            "a`b",
            "public.sessions",
            "séssions",
            &"a".repeat(MAX_TABLE_NAME + 1),
        ] {
            assert!(check_table_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_text_when_they_can_be() {
        assert_eq!(encode_value(b"\"nick\""), Value::String("\"nick\"".into()));
        assert_eq!(encode_value(b""), Value::String(String::new()));
        assert_eq!(
            encode_value(&[0, 255]),
            Value::Array(vec![Value::String("AP8=".into())])
        );
        assert_eq!(
            encode_value(b"a\0b"),
            Value::Array(vec![Value::String("YQBi".into())])
        );
        for value in [&b"\"nick\""[..], b"", &[0, 255], b"a\0b"] {
            assert_eq!(decode_value("k", encode_value(value)).unwrap(), value);
        }
        assert!(decode_value("k", Value::Bool(true)).is_err());
        assert!(decode_value("k", serde_json::json!(["not base64!"])).is_err());
    }

    #[test]
    fn creation_times_round_down_to_the_millisecond() {
        let at = |ms: i64, nanos: u64| {
            let base = from_unix_ms(ms);
            (unix_ms(base + Duration::from_nanos(nanos)), ms)
        };
        for ms in [0, 1, 1_764_000_000_123, -1, -1_000, -86_400_001] {
            for nanos in [0, 1, 999_999] {
                let (got, want) = at(ms, nanos);
                assert_eq!(got, want, "{ms} ms + {nanos} ns");
            }
        }
        assert_eq!(
            unix_ms(UNIX_EPOCH + Duration::from_millis(1_764_000_000_123)),
            1_764_000_000_123
        );
    }

    #[test]
    fn durations_in_units() {
        assert_eq!(
            ttl_in(Duration::from_secs(1), Duration::from_millis(1)),
            1000
        );
        assert_eq!(ttl_in(Duration::ZERO, Duration::from_millis(1)), 1);
        assert_eq!(ttl_in(Duration::MAX, Duration::from_micros(1)), i64::MAX);
    }
}
