//! The SQL store on PostgreSQL: its schema and statements.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AssertSqlSafe, PgPool, Postgres};

use super::Row;
use super::apply::{Dialect, Tx, q};
use super::row::{encode_set, expires_in, ttl_in};
use crate::store::ChangeSet;

const MS: Duration = Duration::from_millis(1);

/// A PostgreSQL pool and the store's queries on its table.
pub(super) struct Pg {
    pool: PgPool,
    load: Arc<str>,
    create: Arc<str>,
    apply: Arc<str>,
    apply_limited: Arc<str>,
    measure: Arc<str>,
    delete_empty: Arc<str>,
    touch: Arc<str>,
    delete: Arc<str>,
    take: Arc<str>,
    cleanup: Arc<str>,
    scan: Arc<str>,
}

/// The size of the `jsonb` object `json` as `session_size` counts it: per
/// entry 8, the key's bytes and the value's bytes (the text of a string,
/// or what the base64 in a one-element array decodes to; it is padded, so
/// its length without the `=` times 3/4 is exact).
fn size_of(json: &str) -> String {
    format!(
        "(SELECT coalesce(sum(8 + octet_length(key) + CASE jsonb_typeof(value) \
         WHEN 'string' THEN octet_length(value #>> '{{}}') \
         ELSE length(rtrim(value ->> 0, '=')) * 3 / 4 END), 0) \
         FROM jsonb_each({json}))"
    )
}

/// Takes, until `tx` ends, the lock that every change to `table`'s schema
/// (its creation and upgrade, the near cache's trigger) is made under, so
/// that processes starting at once do not race.
pub(super) async fn lock_table(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    table: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("session-core sql store {table}"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Pg {
    /// Creates the table and its index if missing, and adds `created_at`
    /// to a table made before it existed.
    pub(super) async fn new(pool: PgPool, table: &str) -> Result<Self, sqlx::Error> {
        let t = format!("\"{table}\"");
        let mut tx = pool.begin().await?;
        // Stores starting at once must not race to create the table.
        lock_table(&mut tx, table).await?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
             id TEXT PRIMARY KEY, \
             data JSONB NOT NULL, \
             expires_at TIMESTAMPTZ NOT NULL, \
             created_at TIMESTAMPTZ)"
        )))
        .execute(&mut *tx)
        .await?;
        // ALTER TABLE waits for an exclusive lock even when the column is
        // there, which would queue every session query behind it: look
        // first (`to_regclass` finds the table as the queries do).
        let has_created_at: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attname = 'created_at' AND NOT attisdropped)",
        )
        .bind(&t)
        .fetch_one(&mut *tx)
        .await?;
        if !has_created_at {
            sqlx::query(AssertSqlSafe(format!(
                "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS created_at TIMESTAMPTZ"
            )))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(AssertSqlSafe(format!(
            "CREATE INDEX IF NOT EXISTS \"{table}_expires_at_idx\" ON {t} (expires_at)"
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let s = |sql: String| Arc::<str>::from(sql);
        let remaining = "(extract(epoch FROM expires_at - now()) * 1000)::int8";
        let created = "floor(extract(epoch FROM created_at) * 1000)::int8";
        let merged = "(CASE WHEN $2 THEN '{}'::jsonb ELSE data - $3::text[] END || $4::jsonb)";
        let apply = format!(
            "UPDATE {t} SET data = {merged}, \
             expires_at = now() + $5 * interval '1 millisecond' \
             WHERE id = $1 AND expires_at > now()"
        );
        Ok(Self {
            pool,
            load: s(format!(
                "SELECT data::text, {remaining}, {created} FROM {t} \
                 WHERE id = $1 AND expires_at > now()"
            )),
            create: s(format!(
                "INSERT INTO {t} AS s (id, data, expires_at, created_at) \
                 VALUES ($1, $2::jsonb, now() + $3 * interval '1 millisecond', \
                 'epoch'::timestamptz + $4::int8 * interval '1 millisecond') \
                 ON CONFLICT (id) DO UPDATE \
                 SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at, \
                 created_at = EXCLUDED.created_at \
                 WHERE s.expires_at <= now()"
            )),
            apply_limited: s(format!(
                "{apply} AND {} <= $6 RETURNING data = '{{}}'::jsonb",
                size_of(merged)
            )),
            apply: s(format!("{apply} RETURNING data = '{{}}'::jsonb")),
            measure: s(format!(
                "SELECT {} FROM {t} WHERE id = $1 AND expires_at > now() FOR UPDATE",
                size_of(merged)
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
                "DELETE FROM {t} WHERE id = $1 RETURNING data::text, expires_at > now(), {created}"
            )),
            cleanup: s(format!("DELETE FROM {t} WHERE expires_at <= now()")),
            scan: s(format!(
                "SELECT id FROM {t} WHERE id > $1 AND expires_at > now() ORDER BY id LIMIT $2"
            )),
        })
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(super) async fn load(&self, key: &str) -> Result<Option<Row>, sqlx::Error> {
        let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(q(&self.load))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(data, ms, created_at)| Row {
            data,
            expires_at: Some(expires_in(ms, MS)),
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
        let done = sqlx::query(q(&self.create))
            .bind(key)
            .bind(data)
            .bind(ttl_in(ttl, MS))
            .bind(created_at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
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

    pub(super) async fn take(&self, key: &str) -> Result<Option<Row>, sqlx::Error> {
        let row: Option<(String, bool, Option<i64>)> = sqlx::query_as(q(&self.take))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|(data, live, created_at)| {
            live.then_some(Row {
                data,
                expires_at: None,
                created_at,
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

impl Dialect for Pg {
    type Db = Postgres;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn update(
        &self,
        tx: Option<&mut Tx<Self>>,
        key: &str,
        changes: &ChangeSet,
        ttl: Duration,
        limit: Option<i64>,
    ) -> Result<Option<bool>, sqlx::Error> {
        let sql = if limit.is_some() {
            &self.apply_limited
        } else {
            &self.apply
        };
        let mut query = sqlx::query_scalar(q(sql))
            .bind(key)
            .bind(changes.clear)
            .bind(&changes.remove)
            .bind(encode_set(changes))
            .bind(ttl_in(ttl, MS));
        if let Some(limit) = limit {
            query = query.bind(limit);
        }
        match tx {
            Some(tx) => query.fetch_optional(&mut **tx).await,
            None => query.fetch_optional(&self.pool).await,
        }
    }

    /// On the row read `FOR UPDATE`.
    async fn measure(
        &self,
        tx: &mut Tx<Self>,
        key: &str,
        changes: &ChangeSet,
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(q(&self.measure))
            .bind(key)
            .bind(changes.clear)
            .bind(&changes.remove)
            .bind(encode_set(changes))
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
