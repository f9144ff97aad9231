//! The SQL store on MySQL and MariaDB: its schema and statements.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::{AssertSqlSafe, MySqlPool};

use super::{Applied, ChangeSet, encode_set, expires_in, merge_patch, settle, ttl_in};

const US: Duration = Duration::from_micros(1);

/// A MySQL or MariaDB pool and the store's queries on its table.
///
/// sqlx connects with `CLIENT_FOUND_ROWS`, so an `UPDATE` reports the
/// rows it matched, changed or not.
pub(super) struct My {
    pool: MySqlPool,
    load: Arc<str>,
    insert: Arc<str>,
    delete_expired: Arc<str>,
    merge: Arc<str>,
    replace: Arc<str>,
    delete_empty: Arc<str>,
    touch: Arc<str>,
    delete: Arc<str>,
    lock: Arc<str>,
    cleanup: Arc<str>,
}

fn q(sql: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    // The table name in every query was checked to be an identifier.
    AssertSqlSafe(Arc::clone(sql))
}

fn is_duplicate(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

impl My {
    /// Creates the table (with its index) if missing.
    pub(super) async fn new(pool: MySqlPool, table: &str) -> Result<Self, sqlx::Error> {
        let t = format!("`{table}`");
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
             id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, \
             data JSON NOT NULL, \
             expires_at DATETIME(6) NOT NULL, \
             INDEX `{table}_expires_at_idx` (expires_at)\
             ) ENGINE = InnoDB"
        )))
        .execute(&pool)
        .await?;
        let s = |sql: String| Arc::<str>::from(sql);
        let now = "UTC_TIMESTAMP(6)";
        let live = format!("id = ? AND expires_at > {now}");
        let remaining = format!("TIMESTAMPDIFF(MICROSECOND, {now}, expires_at)");
        Ok(Self {
            pool,
            load: s(format!(
                "SELECT CAST(data AS CHAR), {remaining} FROM {t} WHERE {live}"
            )),
            insert: s(format!(
                "INSERT INTO {t} (id, data, expires_at) \
                 VALUES (?, ?, {now} + INTERVAL ? MICROSECOND)"
            )),
            delete_expired: s(format!(
                "DELETE FROM {t} WHERE id = ? AND expires_at <= {now}"
            )),
            merge: s(format!(
                "UPDATE {t} SET data = JSON_MERGE_PATCH(data, ?), \
                 expires_at = {now} + INTERVAL ? MICROSECOND WHERE {live}"
            )),
            replace: s(format!(
                "UPDATE {t} SET data = ?, \
                 expires_at = {now} + INTERVAL ? MICROSECOND WHERE {live}"
            )),
            delete_empty: s(format!(
                "DELETE FROM {t} WHERE id = ? AND JSON_LENGTH(data) = 0"
            )),
            touch: s(format!(
                "UPDATE {t} SET expires_at = {now} + INTERVAL ? MICROSECOND WHERE {live}"
            )),
            delete: s(format!("DELETE FROM {t} WHERE id = ?")),
            lock: s(format!(
                "SELECT CAST(data AS CHAR), expires_at > {now} FROM {t} WHERE id = ? FOR UPDATE"
            )),
            cleanup: s(format!("DELETE FROM {t} WHERE expires_at <= {now}")),
        })
    }

    pub(super) async fn load(
        &self,
        key: &str,
    ) -> Result<Option<(String, SystemTime)>, sqlx::Error> {
        let row: Option<(String, i64)> = sqlx::query_as(q(&self.load))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(data, us)| (data, expires_in(us, US))))
    }

    async fn insert(&self, key: &str, data: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(q(&self.insert))
            .bind(key)
            .bind(data)
            .bind(ttl_in(ttl, US))
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn create(
        &self,
        key: &str,
        data: &str,
        ttl: Duration,
    ) -> Result<bool, sqlx::Error> {
        if self.insert(key, data, ttl).await? {
            return Ok(true);
        }
        // Taken: free the key if its session expired, then try once more.
        let freed = sqlx::query(q(&self.delete_expired))
            .bind(key)
            .execute(&self.pool)
            .await?;
        if freed.rows_affected() == 0 {
            return Ok(false);
        }
        self.insert(key, data, ttl).await
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
        let done = sqlx::query(q(sql))
            .bind(data)
            .bind(ttl_in(ttl, US))
            .bind(key)
            .execute(&self.pool)
            .await?;
        let emptied = (done.rows_affected() == 1).then_some(changes.set.is_empty());
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
            .bind(ttl_in(ttl, US))
            .bind(key)
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

    /// `SELECT ... FOR UPDATE` and `DELETE` in one transaction (MySQL
    /// has no `DELETE ... RETURNING`).
    pub(super) async fn take(&self, key: &str) -> Result<Option<String>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, bool)> = sqlx::query_as(q(&self.lock))
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        if row.is_some() {
            sqlx::query(q(&self.delete))
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(row.and_then(|(data, live)| live.then_some(data)))
    }

    pub(super) async fn cleanup(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(q(&self.cleanup)).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
