//! The near cache's feed on PostgreSQL: `LISTEN`/`NOTIFY`.
//!
//! A trigger on the sessions table sends the id of every row that is
//! updated or deleted, by any process, on the channel `<table>_changes`,
//! when its transaction commits:
//!
//! ```sql
//! CREATE FUNCTION "sessions_notify"() RETURNS trigger LANGUAGE plpgsql AS
//!   $$ BEGIN PERFORM pg_notify('sessions_changes', OLD.id); RETURN NULL; END $$;
//! CREATE TRIGGER "sessions_notify" AFTER UPDATE OR DELETE ON "sessions"
//!   FOR EACH ROW EXECUTE FUNCTION "sessions_notify"();
//! ```
//!
//! It is created by the first process that asks for a near cache and stays
//! (dropping it is safe once no process uses the cache). Each process with
//! a cache listens on one connection of its pool. A notification reaches
//! every listener, the writer's own included, so a process's own write
//! drops its cached copy shortly after updating it: the next read goes to
//! the database once. When the listening connection fails, the cache is
//! emptied and bypassed until a new one listens; notifications sent in
//! between are lost, so the cache is emptied again before it is used.
//!
//! A listening connection that stalls without closing (a NAT or a firewall
//! that drops it silently) fails nothing: it just stops delivering. So it
//! proves itself at the cache's heartbeat (see
//! [`Heartbeat`](crate::store::near::Heartbeat)): each second it sends its
//! `LISTEN` again, a no-op for PostgreSQL but a round trip, whose answer
//! comes after every notification the server sent before it. A connection
//! that does not answer within the deadline is given up as a failed one.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{AssertSqlSafe, Executor, PgPool};

use crate::store::StoreError;
use crate::store::near::Invalidator;

/// The longest wait between two attempts to listen again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The channel the table's changes are sent on.
pub(super) fn channel(table: &str) -> String {
    format!("{table}_changes")
}

/// Creates the trigger if it is missing, listens, and keeps listening for
/// as long as the cache lives.
pub(super) async fn start(
    pool: PgPool,
    table: &str,
    invalidator: Invalidator,
) -> Result<(), StoreError> {
    install(&pool, table).await.map_err(StoreError::backend)?;
    let channel = channel(table);
    let listener = listen(&pool, &channel).await.map_err(StoreError::backend)?;
    invalidator.resume();
    tokio::spawn(async move {
        tokio::select! {
            () = feed(pool, channel, listener, &invalidator) => {}
            () = invalidator.closed() => {}
        }
    });
    Ok(())
}

async fn install(pool: &PgPool, table: &str) -> Result<(), sqlx::Error> {
    let t = format!("\"{table}\"");
    let name = format!("{table}_notify");
    let mut tx = pool.begin().await?;
    super::postgres::lock_table(&mut tx, table).await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2)",
    )
    .bind(&t)
    .bind(&name)
    .fetch_one(&mut *tx)
    .await?;
    if !exists {
        // The table name was checked to be a plain identifier.
        sqlx::query(AssertSqlSafe(format!(
            "CREATE OR REPLACE FUNCTION \"{name}\"() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_notify('{}', OLD.id); RETURN NULL; END $$",
            channel(table)
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TRIGGER \"{name}\" AFTER UPDATE OR DELETE ON {t} \
             FOR EACH ROW EXECUTE FUNCTION \"{name}\"()"
        )))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

async fn listen(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is reported (`Ok(None)`) and not replaced behind
    // the feed's back: the feed replaces it, once the cache is suspended.
    // So no call of `try_recv` awaits anything but the next message, and
    // the heartbeat may interrupt it.
    listener.eager_reconnect(false);
    listener.listen(channel).await?;
    Ok(listener)
}

/// Proves the listening connection alive: `LISTEN` again, then applies
/// the notifications read meanwhile. PostgreSQL takes the `LISTEN` as a
/// no-op, and sends the notifications it has for the connection before it
/// reports a command done: once it answers, the changes committed before
/// the round trip have been applied. (The connection's last query, as
/// `pg_stat_activity` shows it, stays the `LISTEN`.)
async fn relisten(
    listener: &mut PgListener,
    channel: &str,
    invalidator: &Invalidator,
) -> Result<(), sqlx::Error> {
    // The channel is built from a table name checked to be a plain
    // identifier.
    listener
        .execute(AssertSqlSafe(format!("LISTEN \"{channel}\"")))
        .await?;
    while let Some(notification) = listener.next_buffered() {
        invalidator.invalidate(notification.payload());
    }
    Ok(())
}

async fn feed(pool: PgPool, channel: String, mut listener: PgListener, invalidator: &Invalidator) {
    // Setting up a new listener: a connection from the pool (bounded by
    // its acquire timeout, which may include a check of an idle one),
    // then a `LISTEN` round trip.
    let mut heartbeat = invalidator.heartbeat();
    let setup = pool.options().get_acquire_timeout() + heartbeat.deadline();
    loop {
        // `try_recv` is cancel safe while it waits for a message (sqlx
        // reads whole messages only), which is all it awaits here.
        tokio::select! {
            received = listener.try_recv() => match received {
                Ok(Some(notification)) => {
                    invalidator.invalidate(notification.payload());
                    continue;
                }
                Ok(None) => tracing::warn!(
                    "the near cache's PostgreSQL listener lost its connection: the cache is bypassed until it is back"
                ),
                Err(error) => tracing::warn!(
                    %error,
                    "the near cache's PostgreSQL listener failed: the cache is bypassed until it is back"
                ),
            },
            () = heartbeat.due() => match heartbeat.prove(relisten(&mut listener, &channel, invalidator)).await {
                Ok(()) => continue,
                Err(missed) => tracing::warn!(
                    %missed,
                    "the near cache's PostgreSQL listener missed its heartbeat: the cache is bypassed until a new one listens"
                ),
            },
        }
        // Notifications sent from now until a new listener is in place are
        // lost: bypass the cache, then empty it again once listening.
        invalidator.suspend();
        // A stalled connection is not given back to the pool until its
        // `UNLISTEN` (sent by sqlx on drop) fails or is answered.
        drop(listener);
        let mut backoff = Duration::from_millis(50);
        listener = loop {
            tokio::time::sleep(backoff).await;
            match tokio::time::timeout(setup, listen(&pool, &channel)).await {
                Ok(Ok(listener)) => break listener,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "the near cache cannot listen on PostgreSQL yet");
                }
                Err(_) => {
                    tracing::debug!("the near cache cannot listen on PostgreSQL yet: timed out");
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
        invalidator.resume();
        heartbeat = invalidator.heartbeat();
        tracing::info!("the near cache's PostgreSQL listener is back: the cache is in use again");
    }
}
