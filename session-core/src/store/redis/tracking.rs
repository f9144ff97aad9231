//! The near cache's feed on Redis: server-assisted client-side caching.
//!
//! Every call of a store with a near cache goes through one connection of
//! the process, which speaks RESP3 and has turned tracking on:
//!
//! ```text
//! CLIENT TRACKING ON NOLOOP
//! ```
//!
//! Redis remembers the keys this connection reads, and pushes an
//! `invalidate` message on it when another connection changes one of them
//! (a write, a delete, an expiry, an eviction). `NOLOOP` leaves out the
//! connection's own writes, which the cache has already applied to its
//! copy. Redis forgets a key for a connection once the connection changes
//! it, so each write script of the store reads its key back before it
//! returns (`EXISTS`), and a refresh is a script that does the same: the
//! key stays tracked for as long as the cache may hold it. (The broadcast
//! mode, which needs no reads, is not used: Redis 7.0 reports a script's
//! writes back to the connection that ran it even under `NOLOOP`.)
//!
//! Pushes are handled as the connection reads them, in the order Redis
//! sent them: an invalidation is applied before the reply to any command
//! sent after it. When the connection drops (or a `PING`, sent after a
//! second without a push, fails), the cache is emptied and bypassed, the
//! store's calls go through its own connections, and the connection is
//! made again (to the current master, under Sentinel); once tracking is
//! back on, the cache is emptied once more and used again. A `FLUSHALL` or
//! `FLUSHDB` empties the cache.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};

use crate::store::StoreError;
use crate::store::near::Invalidator;

/// A `PING` is sent after this long without a push, to notice a dead
/// connection that did not say so.
const IDLE: Duration = Duration::from_secs(1);
/// The longest wait between two attempts to connect again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The tracking connection, while it is up: every write goes through it.
#[derive(Default)]
pub(super) struct Tracked {
    connection: Mutex<Option<MultiplexedConnection>>,
}

impl Tracked {
    pub(super) fn connection(&self) -> Option<MultiplexedConnection> {
        self.connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, connection: Option<MultiplexedConnection>) {
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = connection;
    }
}

/// How to reach the server the sessions are on, in RESP3.
pub(super) enum Connector {
    Single(redis::Client),
    #[cfg(feature = "redis-sentinel")]
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
}

impl Connector {
    /// A RESP3 client of the server `client` reaches.
    pub(super) fn single(client: &redis::Client) -> Result<Self, StoreError> {
        let info = client.get_connection_info().clone();
        let redis = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let client =
            redis::Client::open(info.set_redis_settings(redis)).map_err(StoreError::backend)?;
        Ok(Self::Single(client))
    }

    async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> redis::RedisResult<MultiplexedConnection> {
        match self {
            Self::Single(client) => {
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await
            }
            #[cfg(feature = "redis-sentinel")]
            Self::Sentinel(client) => {
                client
                    .lock()
                    .await
                    .get_async_connection_with_config(config)
                    .await
            }
        }
    }
}

/// Connects, turns tracking on, and keeps it on for as long as the cache
/// lives. Returns once tracking is on for the first time (or failed: the
/// error is returned and nothing is left running).
pub(super) async fn start(
    tracked: &Arc<Tracked>,
    connector: Connector,
    timeout: Duration,
    invalidator: Invalidator,
) -> Result<(), StoreError> {
    let feed = Feed {
        connector,
        timeout,
        invalidator,
    };
    let (connection, down) = tokio::time::timeout(timeout, feed.connect())
        .await
        .map_err(|_| StoreError::Timeout(timeout))?
        .map_err(StoreError::backend)?;
    tracked.set(Some(connection.clone()));
    feed.invalidator.resume();
    tokio::spawn(feed.run(Arc::downgrade(tracked), connection, down));
    Ok(())
}

struct Feed {
    connector: Connector,
    timeout: Duration,
    invalidator: Invalidator,
}

/// Told once when the connection drops.
type Down = tokio::sync::mpsc::UnboundedReceiver<()>;

impl Feed {
    async fn connect(&self) -> redis::RedisResult<(MultiplexedConnection, Down)> {
        let (tx, down) = tokio::sync::mpsc::unbounded_channel();
        let invalidator = self.invalidator.clone();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_push_sender(move |push: PushInfo| {
                if !handle(&invalidator, push) {
                    let _ = tx.send(());
                }
                Ok::<(), std::convert::Infallible>(())
            });
        let mut connection = self.connector.connect(&config).await?;
        redis::pipe()
            // Named, for `CLIENT LIST`.
            .cmd("CLIENT")
            .arg("SETNAME")
            .arg("session-near-cache")
            .ignore()
            .cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("NOLOOP")
            .ignore()
            .query_async::<()>(&mut connection)
            .await?;
        Ok((connection, down))
    }

    async fn run(
        self,
        tracked: Weak<Tracked>,
        mut connection: MultiplexedConnection,
        mut down: Down,
    ) {
        let mut backoff = Duration::from_millis(50);
        loop {
            // Up: watch the connection until it drops or stops answering.
            loop {
                match tokio::time::timeout(IDLE, down.recv()).await {
                    Ok(_) => break,
                    Err(_) if self.invalidator.is_closed() => return,
                    Err(_) => {
                        let ping = redis::cmd("PING");
                        let ping = ping.query_async::<()>(&mut connection);
                        if !matches!(
                            tokio::time::timeout(self.timeout.min(IDLE * 2), ping).await,
                            Ok(Ok(()))
                        ) {
                            break;
                        }
                    }
                }
            }
            let Some(t) = tracked.upgrade() else { return };
            t.set(None);
            drop(t);
            if !self.invalidator.suspend() {
                return;
            }
            tracing::warn!(
                "the near cache's Redis connection dropped: the cache is bypassed until it is back"
            );
            // Down: connect again, with a growing pause between attempts.
            loop {
                tokio::time::sleep(backoff).await;
                if self.invalidator.is_closed() {
                    return;
                }
                match tokio::time::timeout(self.timeout, self.connect()).await {
                    Ok(Ok((c, d))) => {
                        (connection, down) = (c, d);
                        break;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "the near cache cannot reconnect to Redis yet")
                    }
                    Err(_) => {
                        tracing::debug!("the near cache cannot reconnect to Redis yet: timed out")
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            backoff = Duration::from_millis(50);
            let Some(t) = tracked.upgrade() else { return };
            t.set(Some(connection.clone()));
            drop(t);
            self.invalidator.resume();
            tracing::info!("the near cache's Redis connection is back: the cache is in use again");
        }
    }
}

/// Applies one push; false when the connection dropped.
fn handle(invalidator: &Invalidator, push: PushInfo) -> bool {
    match push.kind {
        PushKind::Invalidate => {
            for value in push.data {
                match value {
                    Value::Array(keys) => {
                        for key in keys {
                            if let Value::BulkString(key) = key {
                                invalidator.invalidate(&String::from_utf8_lossy(&key));
                            }
                        }
                    }
                    // FLUSHALL / FLUSHDB: every key is gone.
                    _ => {
                        invalidator.flush();
                    }
                }
            }
            true
        }
        // The task suspends the cache: a connection it has already given
        // up on may say so late, and must not suspend its successor's.
        PushKind::Disconnection => false,
        _ => true,
    }
}
