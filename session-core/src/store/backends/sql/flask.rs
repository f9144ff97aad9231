//! Flask-Session's SQLAlchemy table, as a [`BlobStore`].
//!
//! The table is the one Flask-Session 0.8 creates (`SESSION_SQLALCHEMY_TABLE`,
//! `sessions` by default): `id` (integer primary key), `session_id`
//! (`VARCHAR(255) UNIQUE`, the prefix and the id), `data` (the serialized
//! session: `BYTEA` on PostgreSQL, `BLOB` elsewhere; created here as
//! `MEDIUMBLOB` on MySQL, whose `BLOB` holds 64 KiB only: a table Flask
//! created takes `ALTER TABLE sessions MODIFY data MEDIUMBLOB` for larger
//! sessions) and `expiry` (a naive
//! UTC `TIMESTAMP`/`DATETIME`; on SQLite the text SQLAlchemy writes,
//! `YYYY-MM-DD HH:MM:SS.ffffff`). It is created when missing. A row whose
//! `expiry` has passed (or is `NULL`) counts as missing, as on the Flask
//! side; [`FlaskTable::cleanup`] deletes such rows (as `flask
//! session_cleanup` does).
//!
//! The compare-and-swap is an `UPDATE` (or `DELETE`) whose `WHERE` also
//! asks for the `data` read before, so it changes nothing when another
//! write came between.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sqlx::AssertSqlSafe;

use super::connect::check_table_name;
use super::{Pool, SqlStoreBuilder, on_pool};
use crate::StoreKey;
use crate::flask::{Blob, BlobStore};
use crate::store::StoreError;

/// Flask-Session's table on PostgreSQL, MySQL/MariaDB or SQLite: built by
/// [`SqlStoreBuilder::build_flask_session`]; give it to
/// [`FlaskStore::new`](crate::flask::FlaskStore::new).
#[derive(Clone)]
pub struct FlaskTable {
    pool: Pool,
    table: String,
    queries: std::sync::Arc<Queries>,
}

impl std::fmt::Debug for FlaskTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlaskTable")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// The statements, in each database's dialect. Their parameters come in
/// the same order everywhere.
struct Queries {
    create: String,
    check: String,
    /// key, now
    get: String,
    /// key, now
    delete_expired: String,
    /// key, data, expiry
    insert: String,
    /// data, expiry, key, old data, now
    replace: String,
    /// key, old data, now
    remove_if: String,
    /// key
    delete: String,
    /// now
    cleanup: String,
}

#[derive(Clone, Copy)]
// A build may include one database only.
#[cfg_attr(
    not(all(
        feature = "sql-postgres",
        feature = "sql-mysql",
        feature = "sql-sqlite"
    )),
    allow(dead_code)
)]
enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

impl Dialect {
    /// Renders a statement: `#` is a parameter, `@` a parameter holding
    /// microseconds since the epoch, as the `expiry` column's type, `^`
    /// the same for an expiry written to the column (on MySQL, whose
    /// `DATETIME` keeps whole seconds and MariaDB truncates, rounded up to
    /// the second: a session never expires before its lifetime is over),
    /// and `EXPIRY_US` the `expiry` column as microseconds since the epoch.
    fn render(self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() * 2);
        let mut n = 0;
        for c in template.chars() {
            match c {
                '#' | '@' | '^' => {
                    n += 1;
                    let p = match self {
                        Dialect::Postgres => format!("${n}"),
                        Dialect::MySql => "?".to_owned(),
                        Dialect::Sqlite => format!("?{n}"),
                    };
                    if c == '#' {
                        out.push_str(&p);
                    } else {
                        out.push_str(&match self {
                            Dialect::Postgres => format!(
                                "(TIMESTAMP '1970-01-01 00:00:00' + {p}::BIGINT * INTERVAL '1 microsecond')"
                            ),
                            Dialect::MySql if c == '^' => format!(
                                "TIMESTAMPADD(SECOND, CEIL({p} / 1000000), '1970-01-01 00:00:00')"
                            ),
                            Dialect::MySql => {
                                format!("TIMESTAMPADD(MICROSECOND, {p}, '1970-01-01 00:00:00')")
                            }
                            // SQLAlchemy's text form, to the microsecond.
                            Dialect::Sqlite => format!(
                                "(strftime('%Y-%m-%d %H:%M:%S', {p} / 1000000, 'unixepoch') \
                                 || printf('.%06d', {p} % 1000000))"
                            ),
                        });
                    }
                }
                _ => out.push(c),
            }
        }
        let expiry_us = match self {
            Dialect::Postgres => "(EXTRACT(EPOCH FROM expiry) * 1000000)::BIGINT",
            Dialect::MySql => "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', expiry)",
            Dialect::Sqlite => "CAST((julianday(expiry) - 2440587.5) * 86400000000 AS INTEGER)",
        };
        out.replace("EXPIRY_US", expiry_us)
    }

    fn queries(self, table: &str) -> Queries {
        let t = match self {
            Dialect::MySql => format!("`{table}`"),
            _ => format!("\"{table}\""),
        };
        let create = match self {
            Dialect::Postgres => format!(
                "CREATE TABLE IF NOT EXISTS {t} (id SERIAL PRIMARY KEY, \
                 session_id VARCHAR(255) UNIQUE, data BYTEA, expiry TIMESTAMP WITHOUT TIME ZONE)"
            ),
            Dialect::MySql => format!(
                "CREATE TABLE IF NOT EXISTS {t} (id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY, \
                 session_id VARCHAR(255) UNIQUE, data MEDIUMBLOB, expiry DATETIME)"
            ),
            Dialect::Sqlite => format!(
                "CREATE TABLE IF NOT EXISTS {t} (id INTEGER NOT NULL PRIMARY KEY, \
                 session_id VARCHAR(255) UNIQUE, data BLOB, expiry DATETIME)"
            ),
        };
        let live = "expiry > @";
        Queries {
            create,
            check: format!("SELECT session_id, data, expiry FROM {t} WHERE 1 = 0"),
            get: self.render(&format!(
                "SELECT data, EXPIRY_US FROM {t} WHERE session_id = # AND {live}"
            )),
            delete_expired: self.render(&format!(
                "DELETE FROM {t} WHERE session_id = # AND (expiry IS NULL OR expiry <= @)"
            )),
            insert: self.render(&format!(
                "INSERT INTO {t} (session_id, data, expiry) VALUES (#, #, ^)"
            )),
            replace: self.render(&format!(
                "UPDATE {t} SET data = #, expiry = ^ WHERE session_id = # AND data = # AND {live}"
            )),
            remove_if: self.render(&format!(
                "DELETE FROM {t} WHERE session_id = # AND data = # AND {live}"
            )),
            delete: self.render(&format!("DELETE FROM {t} WHERE session_id = #")),
            cleanup: self.render(&format!(
                "DELETE FROM {t} WHERE expiry IS NULL OR expiry <= @"
            )),
        }
    }
}

fn q(sql: &str) -> AssertSqlSafe<String> {
    // The table name in every statement was checked to be an identifier.
    AssertSqlSafe(sql.to_owned())
}

/// Microseconds since the epoch.
fn micros(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn from_micros(us: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

impl SqlStoreBuilder {
    /// Connects (for a URL) and opens Flask-Session's table, named by
    /// [`table`](Self::table) (Flask-Session's `SESSION_SQLALCHEMY_TABLE`,
    /// `sessions` by default), creating it as Flask-Session does when it is
    /// missing. The cleanup interval does not apply: call
    /// [`FlaskTable::cleanup`], or `flask session_cleanup` on the Flask
    /// side.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build); also when the table exists without
    /// Flask-Session's columns.
    pub async fn build_flask_session(mut self) -> Result<FlaskTable, StoreError> {
        check_table_name(&self.table)?;
        let pool = self.pool().await?;
        let dialect = match &pool {
            #[cfg(feature = "sql-postgres")]
            Pool::Postgres(_) => Dialect::Postgres,
            #[cfg(feature = "sql-mysql")]
            Pool::MySql(_) => Dialect::MySql,
            #[cfg(feature = "sql-sqlite")]
            Pool::Sqlite(_) => Dialect::Sqlite,
        };
        let queries = dialect.queries(&self.table);
        on_pool!(&pool, p => sqlx::query(q(&queries.create)).execute(p).await.map(|_| ()))
            .map_err(StoreError::backend)?;
        on_pool!(&pool, p => sqlx::query(q(&queries.check)).execute(p).await.map(|_| ())).map_err(
            |e| {
                StoreError::backend(format!(
                    "table {:?} is not Flask-Session's (session_id, data, expiry): {e}",
                    self.table
                ))
            },
        )?;
        Ok(FlaskTable {
            pool,
            table: self.table,
            queries: std::sync::Arc::new(queries),
        })
    }
}

impl FlaskTable {
    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Deletes the expired rows; returns how many.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn cleanup(&self) -> Result<u64, StoreError> {
        let now = micros(SystemTime::now());
        on_pool!(&self.pool, p => {
            sqlx::query(q(&self.queries.cleanup))
                .bind(now)
                .execute(p)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(StoreError::backend)
    }
}

impl BlobStore for FlaskTable {
    async fn get(&self, key: &StoreKey) -> Result<Option<Blob>, StoreError> {
        let now = micros(SystemTime::now());
        let row: Option<(Vec<u8>, Option<i64>)> = on_pool!(&self.pool, p => {
            sqlx::query_as(q(&self.queries.get))
                .bind(key.as_str())
                .bind(now)
                .fetch_optional(p)
                .await
        })
        .map_err(StoreError::backend)?;
        Ok(row.map(|(data, expiry)| Blob {
            value: Bytes::from(data),
            expires_at: expiry.map(from_micros),
            version: 0,
        }))
    }

    async fn insert(
        &self,
        key: &StoreKey,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        // An expired row keeps its `session_id`: drop it first.
        on_pool!(&self.pool, p => {
            sqlx::query(q(&self.queries.delete_expired))
                .bind(key.as_str())
                .bind(micros(now))
                .execute(p)
                .await
                .map(|_| ())
        })
        .map_err(StoreError::backend)?;
        let inserted = on_pool!(&self.pool, p => {
            sqlx::query(q(&self.queries.insert))
                .bind(key.as_str())
                .bind(value)
                .bind(micros(now + ttl))
                .execute(p)
                .await
                .map(|_| ())
        });
        match inserted {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(StoreError::backend(e)),
        }
    }

    async fn replace(
        &self,
        key: &StoreKey,
        current: &Blob,
        value: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        let old: &[u8] = &current.value;
        let done = match value {
            Some(value) => on_pool!(&self.pool, p => {
                sqlx::query(q(&self.queries.replace))
                    .bind(value)
                    .bind(micros(now + ttl))
                    .bind(key.as_str())
                    .bind(old)
                    .bind(micros(now))
                    .execute(p)
                    .await
                    .map(|done| done.rows_affected())
            }),
            None => on_pool!(&self.pool, p => {
                sqlx::query(q(&self.queries.remove_if))
                    .bind(key.as_str())
                    .bind(old)
                    .bind(micros(now))
                    .execute(p)
                    .await
                    .map(|done| done.rows_affected())
            }),
        };
        // MySQL counts the rows matched (sqlx asks for FOUND_ROWS), so an
        // update to the same values still counts.
        Ok(done.map_err(StoreError::backend)? == 1)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        on_pool!(&self.pool, p => {
            sqlx::query(q(&self.queries.delete))
                .bind(key.as_str())
                .execute(p)
                .await
                .map(|_| ())
        })
        .map_err(StoreError::backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_their_parameters_in_order() {
        let pg = Dialect::Postgres.queries("sessions");
        assert_eq!(
            pg.replace,
            "UPDATE \"sessions\" SET data = $1, expiry = (TIMESTAMP '1970-01-01 00:00:00' + $2::BIGINT \
             * INTERVAL '1 microsecond') WHERE session_id = $3 AND data = $4 AND expiry > \
             (TIMESTAMP '1970-01-01 00:00:00' + $5::BIGINT * INTERVAL '1 microsecond')"
        );
        let my = Dialect::MySql.queries("sessions");
        assert_eq!(my.remove_if.matches('?').count(), 3);
        assert!(my.get.contains("TIMESTAMPDIFF(MICROSECOND"));
        assert!(my.insert.contains("CEIL(? / 1000000)"), "{}", my.insert);
        assert!(
            my.replace
                .contains("expiry = TIMESTAMPADD(SECOND, CEIL(? / 1000000)")
        );
        let lite = Dialect::Sqlite.queries("sessions");
        assert!(lite.insert.contains("?3 / 1000000") && lite.insert.contains("?3 % 1000000"));
    }
}
