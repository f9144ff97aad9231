//! The SQL store on PostgreSQL: its schema and statements.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::{AssertSqlSafe, PgPool};

use super::{Applied, ChangeSet, encode_set, expires_in, settle, ttl_in};

const MS: Duration = Duration::from_millis(1);

/// A PostgreSQL pool and the store's queries on its table.
pub(super) struct Pg {
    pool: PgPool,
    load: Arc<str>,
    create: Arc<str>,
    apply: Arc<str>,
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

impl Pg {
    /// Creates the table and its index if missing.
    pub(super) async fn new(pool: PgPool, table: &str) -> Result<Self, sqlx::Error> {
        let t = format!("\"{table}\"");
        let mut tx = pool.begin().await?;
        // Stores starting at once must not race to create the table.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("session-core sql store {table}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
             id TEXT PRIMARY KEY, \
             data JSONB NOT NULL, \
             expires_at TIMESTAMPTZ NOT NULL)"
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE INDEX IF NOT EXISTS \"{table}_expires_at_idx\" ON {t} (expires_at)"
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let s = |sql: String| Arc::<str>::from(sql);
        let remaining = "(extract(epoch FROM expires_at - now()) * 1000)::int8";
        Ok(Self {
            pool,
            load: s(format!(
                "SELECT data::text, {remaining} FROM {t} WHERE id = $1 AND expires_at > now()"
            )),
            create: s(format!(
                "INSERT INTO {t} AS s (id, data, expires_at) \
                 VALUES ($1, $2::jsonb, now() + $3 * interval '1 millisecond') \
                 ON CONFLICT (id) DO UPDATE \
                 SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at \
                 WHERE s.expires_at <= now()"
            )),
            apply: s(format!(
                "UPDATE {t} SET \
                 data = CASE WHEN $2 THEN '{{}}'::jsonb ELSE data - $3::text[] END || $4::jsonb, \
                 expires_at = now() + $5 * interval '1 millisecond' \
                 WHERE id = $1 AND expires_at > now() \
                 RETURNING data = '{{}}'::jsonb"
            )),
            delete_empty: s(format!(
                "DELETE FROM {t} WHERE id = $1 AND data = '{{}}'::jsonb"
            )),
            touch: s(format!(
                "UPDATE {t} SET expires_at = now() + $2 * interval '1 millisecond' \
                 WHERE id = $1 AND expires_at > now()"
            )),
            delete: s(format!("DELETE FROM {t} WHERE id = $1")),
            take: s(format!(
                "DELETE FROM {t} WHERE id = $1 RETURNING data::text, expires_at > now()"
            )),
            cleanup: s(format!("DELETE FROM {t} WHERE expires_at <= now()")),
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
        Ok(row.map(|(data, ms)| (data, expires_in(ms, MS))))
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
            .bind(ttl_in(ttl, MS))
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
        let emptied: Option<bool> = sqlx::query_scalar(q(&self.apply))
            .bind(key)
            .bind(changes.clear)
            .bind(&changes.remove)
            .bind(encode_set(changes))
            .bind(ttl_in(ttl, MS))
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
            .bind(ttl_in(ttl, MS))
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
        let row: Option<(String, bool)> = sqlx::query_as(q(&self.take))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|(data, live)| live.then_some(data)))
    }

    pub(super) async fn cleanup(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(q(&self.cleanup)).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
