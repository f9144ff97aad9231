//! Configuring a [`RedisStore`] reached by URL, and connecting it.

use std::time::Duration;

#[cfg(feature = "redis-sentinel")]
use super::sentinel;
use super::{RedisStore, tracking};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

#[cfg(feature = "redis-cluster")]
use super::conn::Writers;
use super::conn::{Backend, PerThread, Replicas, ThreadSlot};
use crate::store::{NearCache, StoreError};

/// Configures a [`RedisStore`] reached by URL.
#[derive(Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    pub(super) url: String,
    pub(super) timeout: Duration,
    pub(super) min_replicas: usize,
    /// The near cache's heartbeat, when not the default: a proof due
    /// every `.0`, each within `.1`.
    pub(super) heartbeat: Option<(Duration, Duration)>,
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
