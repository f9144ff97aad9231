//! Configuring a [`SqlStore`] and building it: the table, the cleanup,
//! and the near cache in front of it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::connect::{Pool, check_table_name, connect};
#[cfg(feature = "sql-mysql")]
use super::mysql;
#[cfg(feature = "sql-sqlite")]
use super::sqlite;
use super::{Db, Inner, SqlStore, spawn_cleanup};
#[cfg(feature = "sql-postgres")]
use super::{notify, postgres};
use crate::store::{NearCache, StoreError};

/// How often expired rows are deleted unless the builder says otherwise.
const DEFAULT_CLEANUP: Duration = Duration::from_secs(300);

/// Where a builder gets its pool.
pub(super) enum Source {
    Url(String),
    Pool(Pool),
}

/// Configures a [`SqlStore`].
#[must_use]
pub struct SqlStoreBuilder {
    source: Source,
    pub(super) table: String,
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
    pub(super) fn new(source: Source) -> Self {
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
    pub(super) async fn pool(&mut self) -> Result<Pool, StoreError> {
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
        // Only PostgreSQL has a feed for the heartbeat to prove.
        #[cfg_attr(not(feature = "sql-postgres"), allow(unused_variables))]
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
