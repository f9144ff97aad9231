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

use redis::RedisError;
use redis::aio::ConnectionManager;

use crate::StoreKey;
use crate::store::{Applied, ChangeSet, Record, ScanPage, SessionStore, StoreError};

mod builder;
mod conn;
#[cfg(feature = "flask")]
mod flask;
mod layout;
mod scan;
#[cfg(feature = "redis-sentinel")]
mod sentinel;
mod tracking;

pub use builder::RedisStoreBuilder;
use conn::ThreadSlot;
use conn::{Backend, Conn, Replicas, Writers};
use layout::{APPLY, APPLY_TRACKED, CREATE, CREATED, SCRIPT_BATCH, SIZE, TAKE, TOUCH_TRACKED};
#[cfg(feature = "redis-cluster")]
use scan::scan_cluster;
use scan::{glob_escape, scan_command, scan_cursor};

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
