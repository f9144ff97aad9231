//! The near cache's feed on Redis: server-assisted client-side caching.
//!
//! Every call of a store with a near cache goes through a connection that
//! speaks RESP3 and has turned tracking on, one per thread that uses the
//! store (as the store's own connections: an actix-web worker's calls stay
//! on its thread):
//!
//! ```text
//! CLIENT TRACKING ON NOLOOP
//! ```
//!
//! Redis remembers the keys a connection reads, and pushes an `invalidate`
//! message on it when another connection (another process's, or another
//! thread's) changes one of them: a write, a delete, an expiry, an
//! eviction. `NOLOOP` leaves out the connection's own writes, which the
//! cache has already applied to its copy. Redis forgets a key for a
//! connection once that connection changes it, so each write script of the
//! store reads its key back before it returns (`EXISTS`), and a refresh is
//! a script that does the same: the key stays tracked for as long as the
//! cache may hold it. (The broadcast mode, which needs no reads, is not
//! used: Redis 7.0 reports a script's writes back to the connection that
//! ran it even under `NOLOOP`.)
//!
//! Pushes are handled as the connection reads them, in the order Redis
//! sent them: an invalidation is applied before the reply to any command
//! sent after it. When a tracking connection drops, or does not answer its
//! heartbeat (a `PING` each second, answered within two seconds: see
//! [`Heartbeat`](crate::store::near::Heartbeat)), Redis may have told it
//! something it never read: the whole cache is emptied at once, the
//! connection is given up, and the thread's next call makes a new one. A
//! call made while its thread has no tracking connection (Redis
//! unreachable) goes through the store's own connection, and what it reads
//! or writes is not cached. A `FLUSHALL` or `FLUSHDB` empties the cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};

use super::ThreadSlot;
use crate::store::StoreError;
use crate::store::near::Invalidator;

/// After a failed attempt to connect, a thread's calls go through the
/// store's own connection for this long before it tries again.
const RETRY_AFTER: Duration = Duration::from_millis(500);

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

/// A store's tracking connections, one per thread, and the cache they keep
/// right.
pub(super) struct Tracker {
    /// This thread's connection, or when it may try again.
    slot: ThreadSlot,
    connector: Connector,
    timeout: Duration,
    invalidator: Invalidator,
}

/// A tracking connection, while Redis still tells it what changes.
#[derive(Clone)]
pub(super) struct Tracked {
    pub(super) connection: MultiplexedConnection,
    alive: Arc<AtomicBool>,
}

/// A thread's state of a tracker: its connection, or when it may try to
/// connect again.
#[derive(Clone)]
enum Slot {
    Up(Tracked),
    Down(Instant),
}

impl Tracker {
    /// A tracker that reports to `invalidator`, with a first connection
    /// made now (on this thread) so that a server that refuses tracking
    /// fails at start-up.
    pub(super) async fn start(
        connector: Connector,
        timeout: Duration,
        invalidator: Invalidator,
    ) -> Result<Self, StoreError> {
        let tracker = Self {
            slot: ThreadSlot::new(),
            connector,
            timeout,
            invalidator,
        };
        let tracked = tokio::time::timeout(timeout, tracker.connect())
            .await
            .map_err(|_| StoreError::Timeout(timeout))?
            .map_err(StoreError::backend)?;
        tracker.slot.set(Slot::Up(tracked));
        tracker.invalidator.resume();
        Ok(tracker)
    }

    /// This thread's tracking connection, made on first use; `None` while
    /// Redis cannot be reached (the call then goes through the store's own
    /// connection, and [`untracked`](Self::untracked) keeps its result out
    /// of the cache).
    pub(super) async fn connection(&self) -> Option<Tracked> {
        let retry = match self.slot.get::<Slot>() {
            Some(Slot::Up(tracked)) if tracked.alive.load(Ordering::Acquire) => {
                return Some(tracked);
            }
            Some(Slot::Down(until)) => until,
            _ => Instant::now(),
        };
        if Instant::now() < retry {
            return None;
        }
        match tokio::time::timeout(self.timeout, self.connect()).await {
            Ok(Ok(tracked)) => {
                self.slot.set(Slot::Up(tracked.clone()));
                Some(tracked)
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "the near cache cannot make a tracking connection to Redis now");
                self.slot.set(Slot::Down(Instant::now() + RETRY_AFTER));
                None
            }
            Err(_) => {
                tracing::debug!(
                    "the near cache cannot make a tracking connection to Redis now: timed out"
                );
                self.slot.set(Slot::Down(Instant::now() + RETRY_AFTER));
                None
            }
        }
    }

    /// A call on `key` went through a connection that does not track it:
    /// what it read or wrote must not be cached, nor any copy kept.
    pub(super) fn untracked(&self, key: &str) {
        self.invalidator.invalidate(key);
    }

    async fn connect(&self) -> redis::RedisResult<Tracked> {
        let alive = Arc::new(AtomicBool::new(true));
        let push_alive = Arc::clone(&alive);
        let invalidator = self.invalidator.clone();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_push_sender(move |push: PushInfo| {
                handle(&invalidator, &push_alive, push);
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
        // Tracking is on: the connection has just proved itself.
        self.invalidator.alive();
        let tracked = Tracked { connection, alive };
        tokio::spawn(keep_alive(tracked.clone(), self.invalidator.clone()));
        Ok(tracked)
    }
}

/// Gives a connection up when it misses its heartbeat, for as long as the
/// cache lives and the connection is in use. A `PING`'s answer comes after
/// every push Redis sent before it, each applied as it was read.
async fn keep_alive(mut tracked: Tracked, invalidator: Invalidator) {
    let mut heartbeat = invalidator.heartbeat();
    loop {
        heartbeat.due().await;
        if invalidator.is_closed() || !tracked.alive.load(Ordering::Acquire) {
            return;
        }
        let ping = redis::cmd("PING");
        let ping = ping.query_async::<()>(&mut tracked.connection);
        if let Err(missed) = heartbeat.prove(ping).await {
            give_up(&tracked.alive, &invalidator);
            tracing::warn!(
                %missed,
                "a near cache's Redis connection missed its heartbeat: the cache was emptied"
            );
            return;
        }
    }
}

/// The connection no longer hears of changes: no call uses it again, and
/// nothing it cached is kept.
fn give_up(alive: &AtomicBool, invalidator: &Invalidator) {
    // First, so that no load through it caches what it read from now on;
    // then the flush, which fails every load and write in flight.
    alive.store(false, Ordering::Release);
    invalidator.flush();
}

/// Applies one push.
fn handle(invalidator: &Invalidator, alive: &AtomicBool, push: PushInfo) {
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
        }
        PushKind::Disconnection if alive.load(Ordering::Acquire) => {
            give_up(alive, invalidator);
            tracing::warn!("a near cache's Redis connection dropped: the cache was emptied");
        }
        _ => {}
    }
}
