//! The SQL store on SQLite: its schema and statements.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, Sqlite, SqlitePool};

use super::Row;
use super::apply::{Dialect, Tx, q};
use super::row::{encode_set, merge_patch, ttl_in, unix_ms};
use crate::store::ChangeSet;

const MS: Duration = Duration::from_millis(1);

/// Now, in Unix milliseconds (SQLite has no clock type of its own).
fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// Unix milliseconds `ttl` from now.
fn expiry(ttl: Duration) -> i64 {
    now_ms().saturating_add(ttl_in(ttl, MS))
}

/// A SQLite pool and the store's queries on its table.
///
/// SQLite lets one connection write at a time; a second one that tries
/// meanwhile gets `SQLITE_BUSY` and sleeps in SQLite's busy handler, whose
/// naps grow to 100 ms, so under load a write could wait a second for a
/// lock freed long before (the benchmark's p99 on `/visits` was 1 s). This
/// store's writes take turns on `writes` instead, first come first served:
/// each starts as soon as the one before it commits, and the busy handler
/// is left for writers of other processes. Reads are not serialized (in WAL
/// mode they never wait for a writer).
pub(super) struct Lite {
    pool: SqlitePool,
    writes: tokio::sync::Mutex<()>,
    load: Arc<str>,
    create: Arc<str>,
    merge: Arc<str>,
    merge_limited: Arc<str>,
    measure: Arc<str>,
    replace: Arc<str>,
    delete_empty: Arc<str>,
    touch: Arc<str>,
    delete: Arc<str>,
    take: Arc<str>,
    cleanup: Arc<str>,
    scan: Arc<str>,
}

/// The size of the JSON object `json` as `session_size` counts it: per
/// entry 8, the key's bytes and the value's bytes (the text of a string,
/// or what the base64 in a one-element array decodes to; it is padded, so
/// its length without the `=` times 3/4 is exact). `length` counts
/// characters in text, so text is measured as a blob.
fn size_of(json: &str) -> String {
    format!(
        "(SELECT coalesce(sum(8 + length(CAST(key AS BLOB)) + CASE type \
         WHEN 'text' THEN length(CAST(value AS BLOB)) \
         ELSE length(rtrim(json_extract(value, '$[0]'), '=')) * 3 / 4 END), 0) \
         FROM json_each({json}))"
    )
}

impl Lite {
    /// Creates the table and its index if missing, and adds `created_at`
    /// to a table made before it existed.
    pub(super) async fn new(pool: SqlitePool, table: &str) -> Result<Self, sqlx::Error> {
        let t = format!("\"{table}\"");
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
             id TEXT PRIMARY KEY NOT NULL, \
             data TEXT NOT NULL, \
             expires_at INTEGER NOT NULL, \
             created_at INTEGER)"
        )))
        .execute(&pool)
        .await?;
        add_created_at(&pool, &t, table).await?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE INDEX IF NOT EXISTS \"{table}_expires_at_idx\" ON {t} (expires_at)"
        )))
        .execute(&pool)
        .await?;
        let s = |sql: String| Arc::<str>::from(sql);
        let empty = "json(data) = '{}'";
        let merge = format!(
            "UPDATE {t} SET data = json_patch(data, ?2), expires_at = ?3 \
             WHERE id = ?1 AND expires_at > ?4"
        );
        Ok(Self {
            pool,
            writes: tokio::sync::Mutex::new(()),
            load: s(format!(
                "SELECT data, expires_at, created_at FROM {t} WHERE id = ?1 AND expires_at > ?2"
            )),
            create: s(format!(
                "INSERT INTO {t} (id, data, expires_at, created_at) VALUES (?1, ?2, ?3, ?5) \
                 ON CONFLICT (id) DO UPDATE \
                 SET data = excluded.data, expires_at = excluded.expires_at, \
                 created_at = excluded.created_at \
                 WHERE {t}.expires_at <= ?4"
            )),
            merge_limited: s(format!(
                "{merge} AND {} <= ?5 RETURNING {empty}",
                size_of("json_patch(data, ?2)")
            )),
            merge: s(format!("{merge} RETURNING {empty}")),
            // With `clear`, the patch applies to `{}` (where its nulls, the
            // removed keys, remove nothing).
            measure: s(format!(
                "SELECT {} FROM {t} WHERE id = ?1 AND expires_at > ?4",
                size_of("json_patch(CASE WHEN ?3 THEN '{}' ELSE data END, ?2)")
            )),
            replace: s(format!(
                "UPDATE {t} SET data = ?2, expires_at = ?3 \
                 WHERE id = ?1 AND expires_at > ?4 RETURNING {empty}"
            )),
            delete_empty: s(format!("DELETE FROM {t} WHERE id = ?1 AND {empty}")),
            touch: s(format!(
                "UPDATE {t} SET expires_at = ?2 WHERE id = ?1 AND expires_at > ?3"
            )),
            delete: s(format!("DELETE FROM {t} WHERE id = ?1")),
            take: s(format!(
                "DELETE FROM {t} WHERE id = ?1 RETURNING data, expires_at, created_at"
            )),
            cleanup: s(format!("DELETE FROM {t} WHERE expires_at <= ?1")),
            scan: s(format!(
                "SELECT id FROM {t} WHERE id > ?1 AND expires_at > ?2 ORDER BY id LIMIT ?3"
            )),
        })
    }

    pub(super) async fn load(&self, key: &str) -> Result<Option<Row>, sqlx::Error> {
        let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(q(&self.load))
            .bind(key)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(data, at, created_at)| Row {
            data,
            expires_at: Some(UNIX_EPOCH + Duration::from_millis(u64::try_from(at).unwrap_or(0))),
            created_at,
        }))
    }

    pub(super) async fn create(
        &self,
        key: &str,
        data: &str,
        created_at: Option<i64>,
        ttl: Duration,
    ) -> Result<bool, sqlx::Error> {
        let _turn = self.writes.lock().await;
        let done = sqlx::query(q(&self.create))
            .bind(key)
            .bind(data)
            .bind(expiry(ttl))
            .bind(now_ms())
            .bind(created_at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
        let _turn = self.writes.lock().await;
        let done = sqlx::query(q(&self.touch))
            .bind(key)
            .bind(expiry(ttl))
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), sqlx::Error> {
        let _turn = self.writes.lock().await;
        sqlx::query(q(&self.delete))
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn take(&self, key: &str) -> Result<Option<Row>, sqlx::Error> {
        let _turn = self.writes.lock().await;
        let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(q(&self.take))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        let now = now_ms();
        Ok(row.and_then(|(data, at, created_at)| {
            (at > now).then_some(Row {
                data,
                expires_at: None,
                created_at,
            })
        }))
    }

    pub(super) async fn cleanup(&self) -> Result<u64, sqlx::Error> {
        let _turn = self.writes.lock().await;
        let done = sqlx::query(q(&self.cleanup))
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn scan(&self, after: &str, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(q(&self.scan))
            .bind(after)
            .bind(now_ms())
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }
}

impl Dialect for Lite {
    type Db = Sqlite;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        Some(self.writes.lock().await)
    }

    /// `BEGIN IMMEDIATE` (called with the turn to write held): a deferred
    /// transaction could not take the write lock after reading once
    /// another writer committed.
    async fn begin_locked(&self) -> Result<Tx<Self>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    async fn update(
        &self,
        tx: Option<&mut Tx<Self>>,
        key: &str,
        changes: &ChangeSet,
        ttl: Duration,
        limit: Option<i64>,
    ) -> Result<Option<bool>, sqlx::Error> {
        let (sql, data) = match (changes.clear, limit) {
            (true, _) => (&self.replace, encode_set(changes)),
            (false, None) => (&self.merge, merge_patch(changes)),
            (false, Some(_)) => (&self.merge_limited, merge_patch(changes)),
        };
        let mut query = sqlx::query_scalar(q(sql))
            .bind(key)
            .bind(data)
            .bind(expiry(ttl))
            .bind(now_ms());
        if let Some(limit) = limit {
            query = query.bind(limit);
        }
        match tx {
            Some(tx) => query.fetch_optional(&mut **tx).await,
            None => query.fetch_optional(&self.pool).await,
        }
    }

    /// In the transaction that holds the database's write lock.
    async fn measure(
        &self,
        tx: &mut Tx<Self>,
        key: &str,
        changes: &ChangeSet,
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(q(&self.measure))
            .bind(key)
            .bind(merge_patch(changes))
            .bind(changes.clear)
            .bind(now_ms())
            .fetch_optional(&mut **tx)
            .await
    }

    async fn delete_empty(&self, key: &str) -> Result<u64, sqlx::Error> {
        let deleted = sqlx::query(q(&self.delete_empty))
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }
}

/// Adds `created_at` to a table made before it existed (SQLite has no
/// `ADD COLUMN IF NOT EXISTS`). Two processes starting at once may both
/// add it: the one that loses finds it there.
async fn add_created_at(pool: &SqlitePool, t: &str, table: &str) -> Result<(), sqlx::Error> {
    let has_column = async || -> Result<bool, sqlx::Error> {
        let found: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = 'created_at'",
        )
        .bind(table)
        .fetch_one(pool)
        .await?;
        Ok(found > 0)
    };
    if has_column().await? {
        return Ok(());
    }
    let added = sqlx::query(AssertSqlSafe(format!(
        "ALTER TABLE {t} ADD COLUMN created_at INTEGER"
    )))
    .execute(pool)
    .await;
    match added {
        Err(e) if !has_column().await? => Err(e),
        _ => Ok(()),
    }
}
