//! The store's connections: one per thread for a single server, the
//! cluster's or Sentinel's master, the near cache's tracking ones, and the
//! connections of writes that wait for replicas.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

#[cfg(doc)]
use super::RedisStoreBuilder;
#[cfg(feature = "redis-sentinel")]
use super::sentinel;
use super::{RedisStore, millis};
use crate::StoreKey;
use crate::store::StoreError;

/// `SESSION_REDIS_MIN_REPLICAS`: see [`RedisStoreBuilder::min_replicas`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Replicas {
    pub(super) min: usize,
    /// The store's timeout: for the writers' own connections, and half of
    /// it for `WAIT`.
    pub(super) timeout: Duration,
}

/// The idle connections of writes that wait for replicas. `WAIT` blocks
/// the connection it is sent on until the replicas answer: on the store's
/// shared, multiplexed connection every other call, reads included, would
/// queue behind it. So each such write holds a connection of its own,
/// taken from this thread's idle ones (or made, when none is idle: on this
/// thread's runtime, as [`PerThread`]'s) and given back after a write that
/// did not fail.
pub(super) struct Writers {
    pub(super) idle: ThreadSlot,
    /// The cluster's client, to make more connections to it.
    #[cfg(feature = "redis-cluster")]
    pub(super) cluster: Option<redis::cluster::ClusterClient>,
}

impl Default for Writers {
    fn default() -> Self {
        Self {
            idle: ThreadSlot::new(),
            #[cfg(feature = "redis-cluster")]
            cluster: None,
        }
    }
}

/// A thread's idle [`Writers`].
pub(super) type Idle = std::rc::Rc<std::cell::RefCell<Vec<Conn>>>;

/// The most idle connections [`Writers`] keeps.
pub(super) const IDLE_WRITERS: usize = 64;
#[derive(Clone)]
pub(super) enum Backend {
    Single(ConnectionManager),
    /// One connection per thread, made on first use on that thread.
    PerThread(std::sync::Arc<PerThread>),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
    #[cfg(feature = "redis-sentinel")]
    Sentinel(std::sync::Arc<sentinel::Sentinel>),
}

/// A connection for one call.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
    /// Sentinel's master, or a connection a write that waits holds alone
    /// (see [`Writers`]).
    Multiplexed(redis::aio::MultiplexedConnection),
    /// The near cache's tracking connection (see `tracking`).
    Tracked(redis::aio::MultiplexedConnection),
    /// A write's connection with `SESSION_REDIS_MIN_REPLICAS` (see
    /// [`Waiting`]).
    Waiting(Box<Waiting>),
}

/// Sends each command of a write in one pipeline with `WAIT`: the same
/// connection, hence the same node, takes both, even on a cluster whose
/// client would route a keyless `WAIT` on its own (to every master, or,
/// when the key's master is not connected, to another node). Keeps what
/// the last `WAIT` answered.
#[derive(Clone)]
pub(super) struct Waiting {
    conn: Conn,
    min: usize,
    wait_ms: u64,
    acknowledged: Option<usize>,
}

impl Waiting {
    pub(super) fn send<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        // Loading a script (on a NOSCRIPT answer) is not a write.
        let script_load = matches!(
            cmd.args_iter().next(),
            Some(redis::Arg::Simple(name)) if name.eq_ignore_ascii_case(b"SCRIPT")
        );
        if script_load {
            return self.conn.req_packed_command(cmd);
        }
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.add_command(cmd.clone())
                .cmd("WAIT")
                .arg(self.min)
                .arg(self.wait_ms);
            let mut values = self.conn.req_packed_commands(&pipe, 0, 2).await?;
            let (Some(acknowledged), Some(value)) = (values.pop(), values.pop()) else {
                return Err(RedisError::from((
                    redis::ErrorKind::Client,
                    "a write and its WAIT got fewer than two answers",
                )));
            };
            self.acknowledged = Some(match acknowledged {
                Value::ServerError(error) => return Err(error.into()),
                other => redis::from_redis_value(other)?,
            });
            Ok(value)
        })
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Multiplexed(c) | Conn::Tracked(c) => c.req_packed_command(cmd),
            Conn::Waiting(w) => w.send(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Multiplexed(c) | Conn::Tracked(c) => {
                c.req_packed_commands(pipeline, offset, count)
            }
            Conn::Waiting(w) => w.conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(c) => c.get_db(),
            Conn::Multiplexed(c) | Conn::Tracked(c) => c.get_db(),
            Conn::Waiting(w) => w.conn.get_db(),
        }
    }
}
/// Gives each [`ThreadSlot`] its own place in every thread.
static NEXT_SLOT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

std::thread_local! {
    /// This thread's values, by slot.
    static SLOTS: std::cell::RefCell<Vec<(u64, Box<dyn std::any::Any>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// One value per thread for its owner: a store's connection on each
/// thread that uses it (its own, or its near cache's tracking one). A
/// thread's value goes when the owner is dropped on that thread, or when
/// the thread ends.
pub(super) struct ThreadSlot {
    id: u64,
}

impl ThreadSlot {
    pub(super) fn new() -> Self {
        Self {
            id: NEXT_SLOT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// This thread's value, if it has one.
    pub(super) fn get<T: Clone + 'static>(&self) -> Option<T> {
        SLOTS.with_borrow(|slots| {
            slots
                .iter()
                .find(|(id, _)| *id == self.id)
                .and_then(|(_, value)| value.downcast_ref::<T>().cloned())
        })
    }

    /// Sets this thread's value.
    pub(super) fn set<T: 'static>(&self, value: T) {
        SLOTS.with_borrow_mut(
            |slots| match slots.iter_mut().find(|(id, _)| *id == self.id) {
                Some((_, old)) => *old = Box::new(value),
                None => slots.push((self.id, Box::new(value))),
            },
        );
    }
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        // Other threads' values go when those threads end.
        let _ = SLOTS.try_with(|s| s.borrow_mut().retain(|(id, _)| *id != self.id));
    }
}

/// A store's connections: one per thread that uses it.
///
/// actix-web runs each worker on a single-threaded runtime: a connection
/// shared by every worker lives on one of them, so each command and each
/// reply would cross threads. A connection made on the worker's own thread
/// keeps a command on one thread; on the benchmark this cut the server's
/// CPU per Redis request by about a fifth.
pub(super) struct PerThread {
    pub(super) slot: ThreadSlot,
    pub(super) client: redis::Client,
    pub(super) config: ConnectionManagerConfig,
}

impl PerThread {
    pub(super) fn connection(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(connection) = self.slot.get::<ConnectionManager>() {
            return Ok(connection);
        }
        // Connects on first use, on this thread's runtime.
        let connection =
            ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
                .map_err(StoreError::backend)?;
        self.slot.set(connection.clone());
        Ok(connection)
    }
}

impl RedisStore {
    /// A connection for one write that waits for replicas (see
    /// [`Writers`]): an idle one, or a new one. A store made on a
    /// connection the app gave it ([`new`](Self::new),
    /// [`cluster`](Self::cluster)) cannot make more: its writes share it.
    pub(super) async fn writer(&self) -> Result<Conn, StoreError> {
        if let Some(idle) = self.idle_writer() {
            return Ok(idle);
        }
        let timeout = self.replicas.timeout;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let made = match &self.backend {
            Backend::PerThread(p) => Conn::Multiplexed(
                p.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(StoreError::backend)?,
            ),
            #[cfg(feature = "redis-sentinel")]
            Backend::Sentinel(s) => Conn::Multiplexed(s.own_connection().await?),
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(c) => match &self.writers.cluster {
                Some(client) => Conn::Cluster(
                    client
                        .get_async_connection()
                        .await
                        .map_err(StoreError::backend)?,
                ),
                None => Conn::Cluster(c.clone()),
            },
            Backend::Single(c) => Conn::Single(c.clone()),
        };
        Ok(made)
    }

    pub(super) fn idle_writer(&self) -> Option<Conn> {
        self.writers.idle.get::<Idle>()?.borrow_mut().pop()
    }

    pub(super) fn give_back(&self, connection: Conn) {
        let idle = self.writers.idle.get::<Idle>().unwrap_or_else(|| {
            let idle = Idle::default();
            self.writers.idle.set(idle.clone());
            idle
        });
        let mut idle = idle.borrow_mut();
        if idle.len() < IDLE_WRITERS {
            idle.push(connection);
        }
    }

    /// Runs one write on `key` as [`call`](Self::call) does and, with
    /// [`min_replicas`](RedisStoreBuilder::min_replicas), waits on the same
    /// connection and node until that many replicas have it.
    pub(super) async fn write<T>(
        &self,
        key: &StoreKey,
        f: impl AsyncFnOnce(&mut Conn) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let Replicas { min, timeout } = self.replicas;
        let wait = timeout / 2;
        if min == 0 {
            return self.call(key, f).await;
        }
        let mut waiting = Conn::Waiting(Box::new(Waiting {
            conn: self.writer().await?,
            min,
            wait_ms: millis(wait),
            acknowledged: None,
        }));
        let result = self.run(key, &mut waiting, f).await;
        let Conn::Waiting(waiting) = waiting else {
            unreachable!("the connection stays the waiting one");
        };
        // A connection whose write failed may be broken: it goes.
        let value = result?;
        let acknowledged = waiting.acknowledged.unwrap_or(0);
        self.give_back(waiting.conn);
        if acknowledged < min {
            return Err(StoreError::backend(format!(
                "{acknowledged} of the {min} replicas (SESSION_REDIS_MIN_REPLICAS) acknowledged \
                 the write within {wait:?}"
            )));
        }
        Ok(value)
    }
}
