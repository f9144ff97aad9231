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
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::task::AbortHandle;

use crate::StoreKey;
use crate::store::{Applied, ChangeSet, Record, ScanPage, SessionStore, StoreError};

mod apply;
mod builder;
mod connect;
#[cfg(feature = "flask")]
mod flask;
#[cfg(feature = "sql-mysql")]
mod mysql;
#[cfg(feature = "sql-postgres")]
mod notify;
#[cfg(feature = "sql-postgres")]
mod postgres;
mod row;
#[cfg(feature = "sql-sqlite")]
mod sqlite;

use builder::Source;
pub use builder::SqlStoreBuilder;
pub(crate) use connect::Pool;
pub use connect::is_valid_table_name;
#[cfg(feature = "flask")]
pub(crate) use connect::on_pool;
#[cfg(feature = "flask")]
#[cfg_attr(docsrs, doc(cfg(feature = "flask")))]
pub use flask::FlaskTable;
use row::{Row, encode, unix_ms};
pub use sqlx;

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
        dispatch!(&self.inner.db, d => apply::apply(d, key.as_str(), changes, ttl).await)
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

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "sql-sqlite")]
    use apply::Dialect as _;

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
}
