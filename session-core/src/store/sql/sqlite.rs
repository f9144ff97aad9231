//! The SQL store on SQLite: its schema and statements.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{AssertSqlSafe, SqlitePool};

use super::{Applied, ChangeSet, encode_set, merge_patch, settle, ttl_in};

const MS: Duration = Duration::from_millis(1);

/// Now, in Unix milliseconds (SQLite has no clock type of its own).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Unix milliseconds `ttl` from now.
fn expiry(ttl: Duration) -> i64 {
    now_ms().saturating_add(ttl_in(ttl, MS))
}

/// A SQLite pool and the store's queries on its table.
pub(super) struct Lite {
    pool: SqlitePool,
    load: Arc<str>,
    create: Arc<str>,
    merge: Arc<str>,
    replace: Arc<str>,
    delete_empty: Arc<str>,
    touch: Arc<str>,
    delete: Arc<str>,
    take: Arc<str>,
    cleanup: Arc<str>,
}

fn q(sql: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    // The table name in every query was checked to be an identifier.
    AssertSqlSafe(Arc::clone(sql))
}

impl Lite {
    /// Creates the table and its index if missing.
    pub(super) async fn new(pool: SqlitePool, table: &str) -> Result<Self, sqlx::Error> {
        let t = format!("\"{table}\"");
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
             id TEXT PRIMARY KEY NOT NULL, \
             data TEXT NOT NULL, \
             expires_at INTEGER NOT NULL)"
        )))
        .execute(&pool)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE INDEX IF NOT EXISTS \"{table}_expires_at_idx\" ON {t} (expires_at)"
        )))
        .execute(&pool)
        .await?;
        let s = |sql: String| Arc::<str>::from(sql);
        let empty = "json(data) = '{}'";
        Ok(Self {
            pool,
            load: s(format!(
                "SELECT data, expires_at FROM {t} WHERE id = ?1 AND expires_at > ?2"
            )),
            create: s(format!(
                "INSERT INTO {t} (id, data, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE \
                 SET data = excluded.data, expires_at = excluded.expires_at \
                 WHERE {t}.expires_at <= ?4"
            )),
            merge: s(format!(
                "UPDATE {t} SET data = json_patch(data, ?2), expires_at = ?3 \
                 WHERE id = ?1 AND expires_at > ?4 RETURNING {empty}"
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
                "DELETE FROM {t} WHERE id = ?1 RETURNING data, expires_at"
            )),
            cleanup: s(format!("DELETE FROM {t} WHERE expires_at <= ?1")),
        })
    }

    pub(super) async fn load(
        &self,
        key: &str,
    ) -> Result<Option<(String, SystemTime)>, sqlx::Error> {
        let row: Option<(String, i64)> = sqlx::query_as(q(&self.load))
            .bind(key)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(data, at)| {
            let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(at).unwrap_or(0));
            (data, at)
        }))
    }

    pub(super) async fn create(
        &self,
        key: &str,
        data: &str,
        ttl: Duration,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(q(&self.create))
            .bind(key)
            .bind(data)
            .bind(expiry(ttl))
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn apply(
        &self,
        key: &str,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, sqlx::Error> {
        let (sql, data) = if changes.clear {
            (&self.replace, encode_set(changes))
        } else {
            (&self.merge, merge_patch(changes))
        };
        let emptied: Option<bool> = sqlx::query_scalar(q(sql))
            .bind(key)
            .bind(data)
            .bind(expiry(ttl))
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        settle(emptied, async || {
            let deleted = sqlx::query(q(&self.delete_empty))
                .bind(key)
                .execute(&self.pool)
                .await?;
            Ok(deleted.rows_affected())
        })
        .await
    }

    pub(super) async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(q(&self.touch))
            .bind(key)
            .bind(expiry(ttl))
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query(q(&self.delete))
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn take(&self, key: &str) -> Result<Option<String>, sqlx::Error> {
        let row: Option<(String, i64)> = sqlx::query_as(q(&self.take))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        let now = now_ms();
        Ok(row.and_then(|(data, at)| (at > now).then_some(data)))
    }

    pub(super) async fn cleanup(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(q(&self.cleanup))
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
