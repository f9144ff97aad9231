//! The Redis store: single server, Redis Cluster and Redis Sentinel.
//!
//! # Layout
//!
//! A session is a Redis hash under its store key (`session:` + 64 hex digits
//! by default): one hash field per session key, holding the encoded value,
//! with the session's lifetime as the key's TTL. Two more fields belong to
//! the store; their names start with NUL, which a session key never does,
//! so they never show up among the session's entries:
//!
//! - `\0created`: when the session was created, in milliseconds since the
//!   Unix epoch as decimal text ([`Record::created_at`]); written by
//!   `create` when it is given one, left alone by every later write (a
//!   `clear` included), returned by `load` and `take`.
//! - `\0size`: the session's size as the size limit counts it (8 + key +
//!   value bytes per entry), kept up to date by every write so that
//!   [`ChangeSet::max_size`] is checked without reading the session.
//!
//! In `redis-cli` (which shows NUL as `\x00`):
//!
//! ```text
//! 127.0.0.1:6379> HGETALL session:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! 1) "name"
//! 2) "\"nick\""
//! 3) "visits"
//! 4) "3"
//! 5) "\x00size"
//! 6) "33"
//! 7) "\x00created"
//! 8) "1764108828123"
//! 127.0.0.1:6379> PTTL session:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! (integer) 2678391123
//! ```
//!
//! A session written by an earlier version has neither field: it loads with
//! `created_at: None`, and its first `apply` counts its size once (one
//! `HGETALL` inside the script) and stores it. A session created without
//! entries is stored all the same (its hash then holds only `\0size`, and
//! `\0created` if given): it exists until it expires, and the first `apply`
//! that leaves it without entries deletes it.
//!
//! # Round trips and atomicity
//!
//! - `load`: one pipelined `HGETALL` + `PTTL` (so the middleware knows when a
//!   refresh is due without another call); the reserved fields come with
//!   the `HGETALL`.
//! - `apply` and `create`: one `EVALSHA` of a small Lua script that checks
//!   the key exists (or does not), then `HDEL`s and `HSET`s only the changed
//!   fields and resets the TTL, atomically. Two requests that change
//!   different keys both persist; a script never re-creates a deleted or
//!   expired session, which is what makes logout final. `apply` works out
//!   the merged session's size from `\0size` and the old length of each
//!   changed field (`HSTRLEN`) before writing anything, so its cost does not
//!   grow with the session: past the change set's `max_size` it writes
//!   nothing and answers [`Applied::TooLarge`]. A session left without user
//!   fields is deleted (the reserved fields do not keep it alive).
//! - `touch`: `PEXPIRE`; `delete`: `DEL`; `take`: `HGETALL` and `DEL` in one
//!   script.
//!
//! Every key a script touches is the session's own, so all of it works
//! unchanged on Redis Cluster.
//!
//! While instances of an earlier version write to the same sessions (a
//! rolling upgrade), their writes do not update `\0size`, so the limit is
//! checked against a size that may be off until the session is cleared or
//! expires; and they show the reserved fields to their users as entries.
//!
//! # Connections and outages
//!
//! A single server is reached through [`ConnectionManager`]s, multiplexed
//! connections that reconnect by themselves: a store built from a URL makes
//! one per thread that uses it (an actix-web worker is a thread, and a
//! connection on the worker's own runtime saves every command two thread
//! switches); [`RedisStore::new`] shares the one it is given.
//! A cluster uses the cluster client's own multiplexed connections, and
//! Sentinel asks the sentinels for the current master, reconnecting to the
//! new one after a failover. Every call is bounded by the response timeout
//! given to the builder, and the middleware's own store timeout bounds the
//! whole call; while Redis is down, requests get the configured outage
//! behaviour, and the store recovers by itself when Redis is back.

use std::time::{Duration, SystemTime};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use crate::StoreKey;
use crate::store::{Applied, ChangeSet, NearCache, Record, ScanPage, SessionStore, StoreError};

#[cfg(feature = "flask")]
mod flask;
mod layout;
mod tracking;

use layout::{APPLY, APPLY_TRACKED, CREATE, CREATED, SCRIPT_BATCH, SIZE, TAKE, TOUCH_TRACKED};

/// Keeps sessions in Redis: a single server, a Redis Cluster (feature
/// `redis-cluster`) or a master found through Redis Sentinel (feature
/// `redis-sentinel`). See the [module docs](self) for the layout and the
/// guarantees.
#[derive(Clone)]
pub struct RedisStore {
    backend: Backend,
    /// With a near cache: its tracking connections, which every call goes
    /// through.
    tracker: Option<std::sync::Arc<tracking::Tracker>>,
    /// How many replicas must acknowledge a write before it counts as
    /// done (`WAIT`), and for how long to wait for them.
    replicas: Replicas,
    /// Connections that writes waiting for replicas hold alone.
    writers: std::sync::Arc<Writers>,
}

/// `SESSION_REDIS_MIN_REPLICAS`: see [`RedisStoreBuilder::min_replicas`].
#[derive(Clone, Copy, Debug, Default)]
struct Replicas {
    min: usize,
    /// The store's timeout: for the writers' own connections, and half of
    /// it for `WAIT`.
    timeout: Duration,
}

/// The idle connections of writes that wait for replicas. `WAIT` blocks
/// the connection it is sent on until the replicas answer: on the store's
/// shared, multiplexed connection every other call, reads included, would
/// queue behind it. So each such write holds a connection of its own,
/// taken from this thread's idle ones (or made, when none is idle: on this
/// thread's runtime, as [`PerThread`]'s) and given back after a write that
/// did not fail.
struct Writers {
    idle: ThreadSlot,
    /// The cluster's client, to make more connections to it.
    #[cfg(feature = "redis-cluster")]
    cluster: Option<redis::cluster::ClusterClient>,
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
type Idle = std::rc::Rc<std::cell::RefCell<Vec<Conn>>>;

/// The most idle connections [`Writers`] keeps.
const IDLE_WRITERS: usize = 64;

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.backend {
            Backend::Single(_) | Backend::PerThread(_) => "single",
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(_) => "cluster",
            #[cfg(feature = "redis-sentinel")]
            Backend::Sentinel(_) => "sentinel",
        };
        f.debug_struct("RedisStore").field("kind", &kind).finish()
    }
}

#[derive(Clone)]
enum Backend {
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
enum Conn {
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
struct Waiting {
    conn: Conn,
    min: usize,
    wait_ms: u64,
    acknowledged: Option<usize>,
}

impl Waiting {
    fn send<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
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

/// Configures a [`RedisStore`] reached by URL.
#[derive(Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    timeout: Duration,
    min_replicas: usize,
    /// The near cache's heartbeat, when not the default: a proof due
    /// every `.0`, each within `.1`.
    heartbeat: Option<(Duration, Duration)>,
}

impl RedisStoreBuilder {
    /// How long one command (and one connection attempt) may take before it
    /// fails. Defaults to 5 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many replicas must have each write before it counts as done
    /// (`SESSION_REDIS_MIN_REPLICAS`). Defaults to 0.
    ///
    /// Redis replicates asynchronously: a master that fails right after
    /// it answered loses the writes its replicas had not received yet, and
    /// the replica promoted in its place does not have them. With `n > 0`
    /// every write (create, change, refresh, delete) is followed by
    /// `WAIT n`, on the connection and node that made it, so the response
    /// is sent only once `n` replicas have the change. `WAIT` is bounded by
    /// half the [`timeout`](Self::timeout); a write that fewer replicas
    /// acknowledge in that time is a [`StoreError::Backend`], which the
    /// middleware answers with its outage policy (`SESSION_STORE_OUTAGE`):
    /// the user is never told a change was kept that a failover could
    /// lose. The write and its `WAIT` go in one pipeline, on a connection
    /// the write holds alone (`WAIT` blocks the connection it is sent on);
    /// the cost is the replication delay (see BENCHMARKS.md).
    pub fn min_replicas(mut self, n: usize) -> Self {
        self.min_replicas = n;
        self
    }

    /// The near cache's heartbeat: each tracking connection proves itself
    /// every `every`, within `deadline` (defaults to
    /// [`HEARTBEAT_EVERY`](crate::store::near::HEARTBEAT_EVERY) and
    /// [`HEARTBEAT_DEADLINE`](crate::store::near::HEARTBEAT_DEADLINE)). For
    /// tests, which cannot wait seconds for a stall to be noticed.
    #[doc(hidden)]
    pub fn heartbeat(mut self, every: Duration, deadline: Duration) -> Self {
        self.heartbeat = Some((every, deadline));
        self
    }

    /// Connects. The URL is one of:
    ///
    /// - `redis://[user:password@]host[:port][/db]`: a single server;
    ///   `rediss://` for TLS (feature `redis-tls`; the server's certificate
    ///   is checked against the system's roots, unless the URL ends in
    ///   `#insecure`);
    /// - `redis+cluster://host:port[,host:port...]`: a Redis Cluster,
    ///   through any of its nodes (feature `redis-cluster`);
    /// - `redis+sentinel://host:port[,host:port...]/service[/db]`: the
    ///   master that the sentinels name for `service` (feature
    ///   `redis-sentinel`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] for a URL that cannot be parsed or needs a
    /// feature this build lacks, and when no server answers (within the
    /// timeout: [`StoreError::Timeout`]).
    pub async fn build(self) -> Result<RedisStore, StoreError> {
        let replicas = Replicas {
            min: self.min_replicas,
            timeout: self.timeout,
        };
        Ok(RedisStore {
            replicas,
            ..self.connect().await?
        })
    }

    async fn connect(self) -> Result<RedisStore, StoreError> {
        let timeout = self.timeout;
        if let Some(nodes) = self.url.strip_prefix("redis+cluster://") {
            return cluster(nodes, timeout).await;
        }
        if let Some(rest) = self.url.strip_prefix("redis+sentinel://") {
            return sentinel_store(rest, timeout).await;
        }
        let client = redis::Client::open(self.url.as_str()).map_err(StoreError::backend)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(timeout);
        // Fail now, at start-up, if the server cannot be reached: within
        // the timeout, retries included (each attempt is bounded by it, but
        // the manager retries with a backoff).
        tokio::time::timeout(
            timeout,
            ConnectionManager::new_with_config(client.clone(), config.clone()),
        )
        .await
        .map_err(|_| StoreError::Timeout(timeout))?
        .map_err(StoreError::backend)?;
        Ok(RedisStore {
            backend: Backend::PerThread(std::sync::Arc::new(PerThread {
                slot: ThreadSlot::new(),
                client,
                config,
            })),
            tracker: None,
            replicas: Replicas::default(),
            writers: Default::default(),
        })
    }

    /// Connects as [`build`](Self::build) does, and puts a near cache of
    /// up to `capacity` sessions in front of the store
    /// (`SESSION_LOCAL_CACHE`), kept right by Redis's server-assisted
    /// client-side caching: the store's calls go through one connection
    /// with tracking on, and Redis tells it about every session that
    /// another connection changes after this one read it. See
    /// [`near`](crate::store::near) for the guarantees, and the README for
    /// the delay measured before another process's change is seen.
    ///
    /// Needs Redis 6 or later; a single server or Sentinel.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build), and [`StoreError::Backend`] on a Redis
    /// Cluster (not supported yet: each node would need its own tracking
    /// connection) or a server that refuses `CLIENT TRACKING`.
    pub async fn build_near_cache(
        self,
        capacity: usize,
    ) -> Result<NearCache<RedisStore>, StoreError> {
        let timeout = self.timeout;
        let heartbeat = self.heartbeat;
        let mut store = self.build().await?;
        if capacity == 0 {
            return Ok(NearCache::local(store, 0));
        }
        let connector = match &store.backend {
            Backend::PerThread(p) => tracking::Connector::single(&p.client)?,
            #[cfg(feature = "redis-sentinel")]
            Backend::Sentinel(s) => {
                tracking::Connector::Sentinel(tokio::sync::Mutex::new(s.resp3_client()?))
            }
            _ => {
                return Err(StoreError::backend(
                    "the near cache (SESSION_LOCAL_CACHE) is not available on a Redis Cluster yet: \
                     use it with a single server or Sentinel, or set it to 0",
                ));
            }
        };
        let (cache, invalidator) = match heartbeat {
            Some((every, deadline)) => {
                NearCache::with_feed_and_heartbeat(store.clone(), capacity, every, deadline)
            }
            None => NearCache::with_feed(store.clone(), capacity),
        };
        let tracker = tracking::Tracker::start(connector, timeout, invalidator).await?;
        store.tracker = Some(std::sync::Arc::new(tracker));
        Ok(cache.with_inner(store))
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
    fn new() -> Self {
        Self {
            id: NEXT_SLOT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// This thread's value, if it has one.
    fn get<T: Clone + 'static>(&self) -> Option<T> {
        SLOTS.with_borrow(|slots| {
            slots
                .iter()
                .find(|(id, _)| *id == self.id)
                .and_then(|(_, value)| value.downcast_ref::<T>().cloned())
        })
    }

    /// Sets this thread's value.
    fn set<T: 'static>(&self, value: T) {
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
struct PerThread {
    slot: ThreadSlot,
    client: redis::Client,
    config: ConnectionManagerConfig,
}

impl PerThread {
    fn connection(&self) -> Result<ConnectionManager, StoreError> {
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

#[cfg(feature = "redis-cluster")]
async fn cluster(nodes: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
    let nodes: Vec<String> = nodes
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| format!("redis://{n}"))
        .collect();
    let client = redis::cluster::ClusterClientBuilder::new(nodes)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .build()
        .map_err(StoreError::backend)?;
    let connection = client
        .get_async_connection()
        .await
        .map_err(StoreError::backend)?;
    Ok(RedisStore {
        writers: std::sync::Arc::new(Writers {
            cluster: Some(client),
            ..Writers::default()
        }),
        ..RedisStore::cluster(connection)
    })
}

#[cfg(not(feature = "redis-cluster"))]
async fn cluster(_: &str, _: Duration) -> Result<RedisStore, StoreError> {
    Err(StoreError::backend(
        "redis+cluster:// needs the `redis-cluster` feature",
    ))
}

#[cfg(feature = "redis-sentinel")]
async fn sentinel_store(rest: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
    let sentinel = sentinel::Sentinel::parse(rest, timeout)?;
    Ok(RedisStore {
        backend: Backend::Sentinel(std::sync::Arc::new(sentinel)),
        tracker: None,
        replicas: Replicas::default(),
        writers: Default::default(),
    })
}

#[cfg(not(feature = "redis-sentinel"))]
async fn sentinel_store(_: &str, _: Duration) -> Result<RedisStore, StoreError> {
    Err(StoreError::backend(
        "redis+sentinel:// needs the `redis-sentinel` feature",
    ))
}

#[cfg(feature = "redis-sentinel")]
mod sentinel;

impl RedisStore {
    /// Starts configuring a store reached by `url` (see
    /// [`RedisStoreBuilder::build`] for the forms it takes).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            timeout: Duration::from_secs(5),
            min_replicas: 0,
            heartbeat: None,
        }
    }

    /// A store on an existing connection manager (single server), for apps
    /// that already have one. Sharing it with the rest of the app is fine.
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            backend: Backend::Single(connection),
            tracker: None,
            replicas: Replicas::default(),
            writers: Default::default(),
        }
    }

    /// A store on an existing Redis Cluster connection.
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn cluster(connection: redis::cluster_async::ClusterConnection) -> Self {
        Self {
            backend: Backend::Cluster(connection),
            tracker: None,
            replicas: Replicas::default(),
            writers: Default::default(),
        }
    }

    /// The connection for one call: with a near cache, this thread's
    /// tracking connection (see `tracking`); else, or while it cannot be
    /// made, the store's own.
    async fn connection(&self) -> Result<Conn, StoreError> {
        if let Some(tracker) = &self.tracker
            && let Some(tracked) = tracker.connection().await
        {
            return Ok(Conn::Tracked(tracked.connection));
        }
        Ok(match &self.backend {
            Backend::Single(c) => Conn::Single(c.clone()),
            Backend::PerThread(p) => Conn::Single(p.connection()?),
            #[cfg(feature = "redis-cluster")]
            Backend::Cluster(c) => Conn::Cluster(c.clone()),
            #[cfg(feature = "redis-sentinel")]
            Backend::Sentinel(s) => Conn::Multiplexed(s.connection().await?),
        })
    }

    /// Runs one call on `key`, turning errors into store errors (and
    /// letting Sentinel forget a master that failed). With a near cache, a
    /// call that could not go through a tracking connection keeps the
    /// cache from keeping a copy of the session.
    async fn call<T>(
        &self,
        key: &StoreKey,
        f: impl AsyncFnOnce(&mut Conn) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection().await?;
        self.run(key, &mut connection, f).await
    }

    /// Runs `f` on `connection` as [`call`](Self::call) does.
    async fn run<T>(
        &self,
        key: &StoreKey,
        connection: &mut Conn,
        f: impl AsyncFnOnce(&mut Conn) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let result = f(connection).await.map_err(|error| {
            #[cfg(feature = "redis-sentinel")]
            if let Backend::Sentinel(s) = &self.backend {
                s.failed(&error);
            }
            StoreError::backend(error)
        });
        if let Some(tracker) = &self.tracker
            && !matches!(connection, Conn::Tracked(_))
        {
            tracker.untracked(key.as_str());
        }
        result
    }

    /// A connection for one write that waits for replicas (see
    /// [`Writers`]): an idle one, or a new one. A store made on a
    /// connection the app gave it ([`new`](Self::new),
    /// [`cluster`](Self::cluster)) cannot make more: its writes share it.
    async fn writer(&self) -> Result<Conn, StoreError> {
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

    fn idle_writer(&self) -> Option<Conn> {
        self.writers.idle.get::<Idle>()?.borrow_mut().pop()
    }

    fn give_back(&self, connection: Conn) {
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
    async fn write<T>(
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

fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

impl SessionStore for RedisStore {
    const KIND: &'static str = "redis";

    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let (fields, pttl): (Vec<(String, Vec<u8>)>, i64) = self
            .call(key, async |c| {
                redis::pipe()
                    .hgetall(key.as_str())
                    .pttl(key.as_str())
                    .query_async(c)
                    .await
            })
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let (entries, created_at) = layout::decode(fields);
        // -1: no TTL (written by someone else); -2: gone meanwhile.
        let expires_at = u64::try_from(pttl)
            .ok()
            .map(|ms| SystemTime::now() + Duration::from_millis(ms));
        Ok(Some(Record {
            entries,
            expires_at,
            created_at,
        }))
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        layout::check_keys(record.entries.keys().map(String::as_str))?;
        let size = record.size().to_string();
        let created_ms = record.created_at.and_then(layout::encode_created);
        let created: i64 = self
            .write(key, async |c| {
                let mut call = CREATE.key(key.as_str());
                call.arg(millis(ttl)).arg(SCRIPT_BATCH);
                for (field, value) in &record.entries {
                    call.arg(field.as_str()).arg(value.as_ref());
                }
                // Always there, so the hash exists even with no entries.
                call.arg(SIZE).arg(&size);
                if let Some(ms) = &created_ms {
                    call.arg(CREATED).arg(ms);
                }
                call.invoke_async(c).await
            })
            .await?;
        Ok(created == 1)
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        layout::check_keys(
            (changes.remove.iter())
                .chain(changes.set.iter().map(|(field, _)| field))
                .map(String::as_str),
        )?;
        let (applied, size): (i64, i64) = self
            .write(key, async |c| {
                let script = match self.tracker {
                    Some(_) => &*APPLY_TRACKED,
                    None => &*APPLY,
                };
                let mut call = script.key(key.as_str());
                call.arg(millis(ttl))
                    .arg(if changes.clear { "1" } else { "0" })
                    .arg(changes.remove.len())
                    .arg(SCRIPT_BATCH);
                match changes.max_size {
                    Some(limit) => call.arg(limit),
                    None => call.arg(""),
                };
                for field in &changes.remove {
                    call.arg(field.as_str());
                }
                for (field, value) in &changes.set {
                    call.arg(field.as_str()).arg(value.as_ref());
                }
                call.invoke_async(c).await
            })
            .await?;
        Ok(match applied {
            1 => Applied::Done,
            2 => Applied::Deleted,
            3 => Applied::TooLarge {
                size: usize::try_from(size).unwrap_or(usize::MAX),
            },
            _ => Applied::Gone,
        })
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        let touched: bool = self
            .write(key, async |c| match self.tracker {
                // Reads the key back in the same script, so that Redis
                // keeps tracking it for this connection (see `tracking`).
                Some(_) => {
                    TOUCH_TRACKED
                        .key(key.as_str())
                        .arg(millis(ttl))
                        .invoke_async(c)
                        .await
                }
                None => {
                    redis::cmd("PEXPIRE")
                        .arg(key.as_str())
                        .arg(millis(ttl))
                        .query_async(c)
                        .await
                }
            })
            .await?;
        Ok(if touched {
            Applied::Done
        } else {
            Applied::Gone
        })
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.write(key, async |c| {
            redis::cmd("DEL").arg(key.as_str()).query_async(c).await
        })
        .await
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let fields: Vec<(String, Vec<u8>)> = self
            .write(key, async |c| TAKE.key(key.as_str()).invoke_async(c).await)
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let (entries, created_at) = layout::decode(fields);
        Ok(Some(Record {
            entries,
            expires_at: None,
            created_at,
        }))
    }

    /// `SCAN … MATCH prefix*`, on each master of a cluster in turn (the
    /// cursor then names the master too).
    async fn scan(&self, prefix: &str, cursor: Option<&str>) -> Result<ScanPage, StoreError> {
        let pattern = format!("{}*", glob_escape(prefix));
        let mut connection = self.connection().await?;
        #[cfg(feature = "redis-cluster")]
        if let Conn::Cluster(c) = &mut connection {
            return scan_cluster(c, &pattern, cursor).await;
        }
        let at = scan_cursor(cursor.unwrap_or("0"))?;
        let (next, keys): (u64, Vec<String>) = scan_command(at, &pattern)
            .query_async(&mut connection)
            .await
            .map_err(StoreError::backend)?;
        Ok(ScanPage {
            keys: keys.into_iter().map(StoreKey::from_raw).collect(),
            next: (next != 0).then(|| next.to_string()),
        })
    }
}

/// How many keys one `SCAN` step looks at.
const SCAN_COUNT: usize = 500;

fn scan_command(cursor: u64, pattern: &str) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    cmd
}

fn scan_cursor(text: &str) -> Result<u64, StoreError> {
    text.parse()
        .map_err(|_| StoreError::backend(format!("not a Redis scan cursor: {text:?}")))
}

/// `text` as a `MATCH` pattern that matches it literally.
fn glob_escape(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

/// One `SCAN` step on one master of a cluster; the cursor is
/// `master:cursor`, masters numbered in address order.
#[cfg(feature = "redis-cluster")]
async fn scan_cluster(
    c: &mut redis::cluster_async::ClusterConnection,
    pattern: &str,
    cursor: Option<&str>,
) -> Result<ScanPage, StoreError> {
    use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
    let (node, at) = match cursor {
        None => (0, 0),
        Some(text) => {
            let (node, at) = text.split_once(':').ok_or_else(|| {
                StoreError::backend(format!("not a cluster scan cursor: {text:?}"))
            })?;
            (
                node.parse::<usize>().map_err(StoreError::backend)?,
                scan_cursor(at)?,
            )
        }
    };
    let nodes: String = redis::from_redis_value(
        c.route_command(
            redis::cmd("CLUSTER").arg("NODES").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await
        .map_err(StoreError::backend)?,
    )
    .map_err(StoreError::backend)?;
    let masters = cluster_masters(&nodes);
    let Some((host, port)) = masters.get(node) else {
        return Ok(ScanPage::default());
    };
    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host: host.clone(),
        port: *port,
    });
    let (next, keys): (u64, Vec<String>) = redis::from_redis_value(
        c.route_command(scan_command(at, pattern), routing)
            .await
            .map_err(StoreError::backend)?,
    )
    .map_err(StoreError::backend)?;
    let next = if next != 0 {
        Some(format!("{node}:{next}"))
    } else {
        (node + 1 < masters.len()).then(|| format!("{}:0", node + 1))
    };
    Ok(ScanPage {
        keys: keys.into_iter().map(StoreKey::from_raw).collect(),
        next,
    })
}

/// The addresses of the masters that serve slots, in `CLUSTER NODES`'s
/// answer, sorted.
#[cfg(feature = "redis-cluster")]
fn cluster_masters(nodes: &str) -> Vec<(String, u16)> {
    let mut masters: Vec<(String, u16)> = nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            let serves = fields.len() > 8;
            if !serves || !flags.contains("master") || flags.contains("fail") {
                return None;
            }
            let address = fields.get(1)?.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect();
    masters.sort();
    masters
}
