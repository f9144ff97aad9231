//! Reaching a database: the pools of the three, from a URL or as given,
//! and the table names a store accepts.

use std::time::Duration;

use crate::store::StoreError;

/// The longest table name: the index name adds `_expires_at_idx`, and
/// PostgreSQL identifiers end at 63 bytes.
const MAX_TABLE_NAME: usize = 48;

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
#[allow(unused_variables)]
pub(super) async fn connect(
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

pub(super) fn check_table_name(table: &str) -> Result<(), StoreError> {
    if is_valid_table_name(table) {
        Ok(())
    } else {
        Err(StoreError::backend(format!(
            "invalid SQL table name {table:?}: use ASCII letters, digits and `_`, \
             not starting with a digit, at most {MAX_TABLE_NAME} characters"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
