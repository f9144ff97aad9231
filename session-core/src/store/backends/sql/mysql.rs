//! The SQL store on MySQL and MariaDB: its schema and statements.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AssertSqlSafe, MySql, MySqlPool};

use super::Row;
use super::apply::{Dialect, Tx, q};
use super::row::{decode, encode_set, expires_in, merge_patch, ttl_in};
use crate::store::ChangeSet;

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
    /// `None` on a server without `JSON_TABLE` (before MySQL 8 and MariaDB
    /// 10.6), where a size limit is checked in Rust in a locking
    /// transaction instead.
    limited: Option<Limited>,
    replace: Arc<str>,
    delete_empty: Arc<str>,
    touch: Arc<str>,
    delete: Arc<str>,
    lock: Arc<str>,
    cleanup: Arc<str>,
    scan: Arc<str>,
}

/// The statements that measure a session in SQL.
struct Limited {
    /// `merge` that also checks the merged session's size.
    merge: Arc<str>,
    /// The merged session's size, on the row read `FOR UPDATE`.
    measure: Arc<str>,
}

fn is_duplicate(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// The size of the JSON object `json` as `session_size` counts it: per
/// entry 8, the key's bytes and the value's bytes (the text of a string,
/// or what the base64 in a one-element array decodes to; it is padded, so
/// its length without the `=` times 3/4 is exact). `JSON_TABLE` cannot
/// list an object's members, so the keys (from `JSON_KEYS`) and the values
/// (`$.*`) are summed apart: `json` appears twice. A `SUM` is a
/// `DECIMAL`: the total is cast back to an integer.
fn size_of(json: &str) -> String {
    format!(
        "CAST((SELECT COALESCE(SUM(8 + OCTET_LENGTH(k)), 0) FROM JSON_TABLE(JSON_KEYS({json}), \
         '$[*]' COLUMNS (k LONGTEXT CHARACTER SET utf8mb4 PATH '$')) AS session_keys) + \
         (SELECT COALESCE(SUM(CASE JSON_TYPE(v) \
         WHEN 'ARRAY' THEN LENGTH(TRIM(TRAILING '=' FROM JSON_UNQUOTE(JSON_EXTRACT(v, '$[0]')))) * 3 DIV 4 \
         ELSE OCTET_LENGTH(JSON_UNQUOTE(v)) END), 0) \
         FROM JSON_TABLE({json}, '$.*' COLUMNS (v JSON PATH '$')) AS session_values) AS SIGNED)"
    )
}

/// The size of `data` once the change set is applied, measured in Rust.
fn merged_size(data: &str, changes: &ChangeSet) -> Result<i64, sqlx::Error> {
    let entries = if changes.clear {
        Default::default()
    } else {
        decode(data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?
    };
    Ok(i64::try_from(changes.size_after(&entries)).unwrap_or(i64::MAX))
}

/// Unix milliseconds as the microseconds `created_at` is bound in.
fn us_of_ms(ms: i64) -> i64 {
    ms.saturating_mul(1000)
}

impl My {
    /// Creates the table (with its index) if missing, adds `created_at` to
    /// a table made before it existed, and finds out whether the server
    /// can check a size limit in the `UPDATE` itself.
    pub(super) async fn new(pool: MySqlPool, table: &str) -> Result<Self, sqlx::Error> {
        let t = format!("`{table}`");
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
             id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, \
             data JSON NOT NULL, \
             expires_at DATETIME(6) NOT NULL, \
             created_at DATETIME(6) NULL, \
             INDEX `{table}_expires_at_idx` (expires_at)\
             ) ENGINE = InnoDB"
        )))
        .execute(&pool)
        .await?;
        add_created_at(&pool, table).await?;
        let s = |sql: String| Arc::<str>::from(sql);
        let now = "UTC_TIMESTAMP(6)";
        let epoch = "CAST('1970-01-01 00:00:00' AS DATETIME(6))";
        let live = format!("id = ? AND expires_at > {now}");
        let remaining = format!("TIMESTAMPDIFF(MICROSECOND, {now}, expires_at)");
        let created = format!("TIMESTAMPDIFF(MICROSECOND, {epoch}, created_at)");
        let merge = format!(
            "UPDATE {t} SET data = JSON_MERGE_PATCH(data, ?), \
             expires_at = {now} + INTERVAL ? MICROSECOND WHERE {live}"
        );
        let probe = format!("SELECT {} FROM {t} WHERE id = ''", size_of("data"));
        let limited = match sqlx::query(AssertSqlSafe(probe)).execute(&pool).await {
            Ok(_) => Some(Limited {
                merge: s(format!(
                    "{merge} AND {} <= ?",
                    size_of("JSON_MERGE_PATCH(data, ?)")
                )),
                // With `clear`, the patch applies to `{}` (where its nulls, the
                // removed keys, remove nothing).
                measure: s(format!(
                    "SELECT {} FROM {t} WHERE {live} FOR UPDATE",
                    size_of("JSON_MERGE_PATCH(IF(?, '{}', data), ?)")
                )),
            }),
            Err(sqlx::Error::Database(e)) => {
                tracing::warn!(
                    error = %e,
                    "this server cannot measure JSON in an UPDATE (MySQL 8 and MariaDB 10.6+ \
                     can): session size limits are checked in a locking transaction"
                );
                None
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            pool,
            load: s(format!(
                "SELECT CAST(data AS CHAR), {remaining}, {created} FROM {t} WHERE {live}"
            )),
            insert: s(format!(
                "INSERT INTO {t} (id, data, expires_at, created_at) \
                 VALUES (?, ?, {now} + INTERVAL ? MICROSECOND, {epoch} + INTERVAL ? MICROSECOND)"
            )),
            delete_expired: s(format!(
                "DELETE FROM {t} WHERE id = ? AND expires_at <= {now}"
            )),
            merge: s(merge),
            limited,
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
                "SELECT CAST(data AS CHAR), expires_at > {now}, {created} \
                 FROM {t} WHERE id = ? FOR UPDATE"
            )),
            cleanup: s(format!("DELETE FROM {t} WHERE expires_at <= {now}")),
            scan: s(format!(
                "SELECT id FROM {t} WHERE id > ? AND expires_at > {now} ORDER BY id LIMIT ?"
            )),
        })
    }

    pub(super) async fn load(&self, key: &str) -> Result<Option<Row>, sqlx::Error> {
        let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(q(&self.load))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(data, us, created_us)| Row {
            data,
            expires_at: Some(expires_in(us, US)),
            created_at: created_us.map(|us| us.div_euclid(1000)),
        }))
    }

    async fn insert(
        &self,
        key: &str,
        data: &str,
        created_at: Option<i64>,
        ttl: Duration,
    ) -> Result<bool, sqlx::Error> {
        let inserted = sqlx::query(q(&self.insert))
            .bind(key)
            .bind(data)
            .bind(ttl_in(ttl, US))
            .bind(created_at.map(us_of_ms))
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
        created_at: Option<i64>,
        ttl: Duration,
    ) -> Result<bool, sqlx::Error> {
        if self.insert(key, data, created_at, ttl).await? {
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
        self.insert(key, data, created_at, ttl).await
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
    pub(super) async fn take(&self, key: &str) -> Result<Option<Row>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, bool, Option<i64>)> = sqlx::query_as(q(&self.lock))
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
        Ok(row.and_then(|(data, live, created_us)| {
            live.then_some(Row {
                data,
                expires_at: None,
                created_at: created_us.map(|us| us.div_euclid(1000)),
            })
        }))
    }

    pub(super) async fn cleanup(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(q(&self.cleanup)).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    pub(super) async fn scan(&self, after: &str, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(q(&self.scan))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }
}

impl Dialect for My {
    type Db = MySql;

    fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    fn measures_in_update(&self) -> bool {
        self.limited.is_some()
    }

    /// Merges a patch, or replaces the data after a `clear`; with a limit
    /// (never after a `clear`), the merge that checks the size. MySQL
    /// returns nothing from an `UPDATE`: a session may be empty when the
    /// change set set nothing.
    async fn update(
        &self,
        tx: Option<&mut Tx<Self>>,
        key: &str,
        changes: &ChangeSet,
        ttl: Duration,
        limit: Option<i64>,
    ) -> Result<Option<bool>, sqlx::Error> {
        let query = match (limit, &self.limited) {
            (Some(limit), Some(limited)) => {
                let patch = merge_patch(changes);
                sqlx::query(q(&limited.merge))
                    .bind(patch.clone())
                    .bind(ttl_in(ttl, US))
                    .bind(key)
                    .bind(patch.clone())
                    .bind(patch)
                    .bind(limit)
            }
            _ => {
                let (sql, data) = if changes.clear {
                    (&self.replace, encode_set(changes))
                } else {
                    (&self.merge, merge_patch(changes))
                };
                sqlx::query(q(sql))
                    .bind(data)
                    .bind(ttl_in(ttl, US))
                    .bind(key)
            }
        };
        let done = match tx {
            Some(tx) => query.execute(&mut **tx).await?,
            None => query.execute(&self.pool).await?,
        };
        Ok((done.rows_affected() == 1).then_some(changes.set.is_empty()))
    }

    /// On the row read `FOR UPDATE`; in Rust on a server without
    /// `JSON_TABLE`.
    async fn measure(
        &self,
        tx: &mut Tx<Self>,
        key: &str,
        changes: &ChangeSet,
    ) -> Result<Option<i64>, sqlx::Error> {
        match &self.limited {
            Some(limited) => {
                let patch = merge_patch(changes);
                sqlx::query_scalar(q(&limited.measure))
                    .bind(changes.clear)
                    .bind(&patch)
                    .bind(changes.clear)
                    .bind(&patch)
                    .bind(key)
                    .fetch_optional(&mut **tx)
                    .await
            }
            None => {
                let row: Option<(String, bool, Option<i64>)> = sqlx::query_as(q(&self.lock))
                    .bind(key)
                    .fetch_optional(&mut **tx)
                    .await?;
                match row {
                    Some((data, true, _)) => Ok(Some(merged_size(&data, changes)?)),
                    _ => Ok(None),
                }
            }
        }
    }

    async fn delete_empty(&self, key: &str) -> Result<u64, sqlx::Error> {
        let deleted = sqlx::query(q(&self.delete_empty))
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }
}

/// Adds `created_at` to a table made before it existed. ALTER TABLE waits
/// for a metadata lock that queues every session query behind it, so the
/// column is looked for first (`information_schema`: MySQL has no
/// `ADD COLUMN IF NOT EXISTS`). Two stores starting at once may both add
/// it: the one that loses finds it there.
async fn add_created_at(pool: &MySqlPool, table: &str) -> Result<(), sqlx::Error> {
    let has_column = async || -> Result<bool, sqlx::Error> {
        let found: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = ? AND column_name = 'created_at'",
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
        "ALTER TABLE `{table}` ADD COLUMN created_at DATETIME(6) NULL"
    )))
    .execute(pool)
    .await;
    match added {
        Err(e) if !has_column().await? => Err(e),
        _ => Ok(()),
    }
}
