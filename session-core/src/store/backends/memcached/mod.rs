//! The memcached store: one item per session, changed by compare-and-swap.
//!
//! # Layout
//!
//! A session is one memcached item. Its value is a 4-byte format tag
//! (`AXM2`), a header with the session's metadata (its creation time, to
//! the millisecond, when known), and the session's entries as
//! [`encode_entries`](crate::codec::encode_entries) writes them; its
//! expiration is the session's lifetime, kept by memcached itself.
//! An item whose value is not in this format (another application's data
//! under the same key) reads as a missing session and is never overwritten
//! by `apply`.
//!
//! The item key is the [`StoreKey`] as it is. Memcached keys are at most 250
//! bytes without spaces or control characters: a store key that breaks
//! either rule (a long prefix, a raw id with odd bytes) is sent as
//! `"h:" + hex(sha256(key))` instead. The keys this crate derives
//! (`prefix + 64 hex digits`) are sent unchanged, so they can be read in
//! memcached's own tools.
//!
//! # The cas merge
//!
//! [`apply`](SessionStore::apply) reads the item with its cas value (the
//! meta command `mg <key> v c`), applies the change set to the entries it
//! read, and writes them back only if the item was not changed meanwhile
//! (`ms <key> C<cas>`). If another request wrote first, memcached refuses
//! the write (`EX`) and the whole read-modify-write is done again, up to 64
//! times with a short random back-off; after that the call fails. So two
//! concurrent requests that change different keys of one session both
//! persist. A session left with no entries is deleted with the same cas
//! check (`md <key> C<cas>`), and the result is [`Applied::Deleted`]. If
//! the item is gone when it is read or when it is written (`NF`), the write
//! is dropped and the result is [`Applied::Gone`]: `apply` never re-creates
//! a session, which is what makes logout final. The creation time read is
//! written back unchanged.
//!
//! The change set's [`max_size`](ChangeSet::max_size) is checked on the
//! merged entries inside the loop: a merge past it writes nothing and
//! returns [`Applied::TooLarge`]. As the merge it checks is the one the cas
//! write would have stored, the limit holds for the session as concurrent
//! requests build it, not only for one request's copy.
//!
//! [`take`](SessionStore::take) reads the item the same way and deletes it
//! with the cas check, again retrying when an `apply` wrote in between, so
//! every `apply` that returned [`Applied::Done`] is in the record it
//! returns, and every later one finds the session gone.
//!
//! [`create`](SessionStore::create) is an add (`ms <key> ME`), which fails
//! on a taken key; [`touch`](SessionStore::touch) sets a new expiration
//! without reading the value (`mg <key> T<ttl>`); [`load`](SessionStore::load)
//! asks for the remaining lifetime in the same round trip (`mg <key> v t`),
//! so [`Record::expires_at`] is filled in (to the second, as memcached keeps
//! it).
//!
//! # Lifetimes and the 30-day rule
//!
//! Memcached reads an expiration of up to 30 days (2,592,000 seconds) as
//! seconds from now, and anything larger as a Unix time. This store sends
//! lifetimes up to 30 days as seconds, and longer ones (the default
//! `PERMANENT_SESSION_LIFETIME` is 31 days) as `now + ttl` by this machine's
//! clock, so the clocks of the application and memcached hosts should
//! agree. Lifetimes are rounded up to whole seconds, never to 0 (which
//! memcached reads as "never expires"), and end in January 2038 at the
//! latest, the limit of memcached's clock.
//!
//! # Several servers
//!
//! Sessions are spread over the servers by rendezvous (highest random
//! weight) hashing: each session lives on the server whose SHA-256 of
//! `server address + key` is highest. The placement depends only on the
//! address strings (`tcp://` is ignored), so every process that lists the
//! same servers agrees on it; adding a server moves about `1/n` of the
//! sessions to it, and removing one moves only the sessions it held.
//!
//! # When a server is down
//!
//! There is no fail-over: the sessions of a server that does not answer
//! are neither read from nor written to another one, because a session that
//! moved and came back could undo a logout. Every call on those sessions
//! fails with a [`StoreError`] (refused connections at once, a server that
//! hangs after the store's [timeout](MemcachedStoreBuilder::timeout), 5
//! seconds by default, which bounds every call), and the middleware's outage policy decides what the
//! request sees; sessions on the other servers are not affected.
//! Connections are opened on first use, so a store can be built while its
//! servers are still starting; [`MemcachedStore::ping`] checks them. When a
//! pooled connection turns out to be dead (the server restarted), the
//! store drops that server's idle connections and tries the call once more
//! on a new one.
//!
//! # Size limit
//!
//! A memcached item, key and about 60 bytes of header included, is at most
//! 1 MB by default (the server's `-I` option). A session that would not fit
//! is refused before it is sent, with an error that says so, and the stored
//! session stays as it was. Set
//! [`max_item_size`](MemcachedStoreBuilder::max_item_size) to the servers'
//! `-I`: if it is larger than theirs, memcached refuses the write itself and
//! also drops the stored session (that is how memcached handles a failed
//! write, so that a stale value is not served).

use std::fmt;
use std::future::Future;
use std::io;
use std::time::Duration;

use async_memcached::{Error as McError, ErrorKind, MetaProtocol, MetaValue, Status};
use deadpool::managed::{Object, Pool, PoolError};

use crate::StoreKey;
use crate::store::{Applied, ChangeSet, Record, ScanPage, SessionStore, StoreError};

mod builder;
mod dump;
mod fail;
#[cfg(feature = "flask")]
mod flask;
mod wire;

use builder::Connector;
pub use builder::MemcachedStoreBuilder;
use fail::{Contended, Fail, ServerError, TooLarge};
use wire::{decode, encode, expires_at, pick, ttl_flag, wire_key};

/// How many times `apply` reads and writes a session before giving up on a
/// contended one. Each failed try means another writer succeeded, so this
/// many concurrent writers of one session always get through.
const MAX_ATTEMPTS: u32 = 64;
const DEFAULT_POOL_SIZE: usize = 16;
/// Memcached's default `-I`.
const DEFAULT_MAX_ITEM_SIZE: usize = 1024 * 1024;
/// What an item takes besides its key and value, with cas enabled
/// (memcached 1.6 on 64-bit: 59 bytes), rounded up.
const ITEM_OVERHEAD: usize = 64;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps sessions in one or more memcached servers, like Flask-Session's
/// `memcached` type, with changes merged key by key (see the
/// [module docs](self)).
///
/// Cloning is cheap: clones share the connection pools.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use session_core::store::memcached::MemcachedStore;
///
/// let store = MemcachedStore::builder(["10.0.0.1:11211", "10.0.0.2:11211"])
///     .pool_size(32)
///     .build()?;
/// store.ping().await?; // optional: fail early if a server is down
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemcachedStore {
    servers: std::sync::Arc<[Server]>,
    timeout: Duration,
    max_item_size: usize,
}

struct Server {
    /// The address as configured, without `tcp://`: the server's identity
    /// for hashing and in error messages.
    name: String,
    pool: Pool<Connector>,
}

impl MemcachedStore {
    /// Starts configuring a store on these servers, each `host:port` (or
    /// `tcp://host:port`, or `unix:///path/to/socket`), as in
    /// `SESSION_MEMCACHED`. IPv6 addresses are not supported by the client.
    pub fn builder(servers: impl IntoIterator<Item = impl Into<String>>) -> MemcachedStoreBuilder {
        MemcachedStoreBuilder {
            servers: servers.into_iter().map(Into::into).collect(),
            pool_size: DEFAULT_POOL_SIZE,
            timeout: DEFAULT_TIMEOUT,
            max_item_size: DEFAULT_MAX_ITEM_SIZE,
        }
    }

    /// The servers' addresses, in the order they were given.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.servers.iter().map(|s| s.name.as_str())
    }

    /// The address of the server that keeps the session under `key`.
    pub fn server_for(&self, key: &StoreKey) -> &str {
        &self.pick(&wire_key(key.as_str())).name
    }

    /// Checks that every server answers (with memcached's `version`
    /// command); the error names the first one that does not.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] (or [`StoreError::Timeout`]) naming the first
    /// server that does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        for server in self.servers.iter() {
            self.call(server, || self.ping_once(server)).await?;
        }
        Ok(())
    }

    fn pick(&self, key: &str) -> &Server {
        let index = pick(self.servers.iter().map(|s| s.name.as_str()), key);
        &self.servers[index]
    }

    async fn conn(&self, server: &Server) -> Result<Object<Connector>, Fail> {
        match server.pool.get().await {
            Ok(conn) => Ok(conn),
            Err(PoolError::Backend(e)) => Err(Fail::Store(server.error(e))),
            Err(PoolError::Timeout(_)) => Err(Fail::Store(StoreError::Timeout(self.timeout))),
            Err(e) => Err(Fail::Store(StoreError::backend(format!(
                "memcached {}: {e}",
                server.name
            )))),
        }
    }

    /// Runs `op` within the store's timeout, and once more if it failed on
    /// a pooled connection that had died (the server restarted): then the
    /// server's idle connections are dropped first, as they most likely died
    /// too. A call cut short by the timeout leaves its connection closed,
    /// and the pool drops it.
    async fn call<T, F: Future<Output = Result<T, Fail>>>(
        &self,
        server: &Server,
        mut op: impl FnMut() -> F,
    ) -> Result<T, StoreError> {
        let run = async {
            match op().await {
                Err(Fail::Stale(_)) => {
                    let _ = server.pool.retain(|_, _| false);
                    op().await.map_err(Fail::into_store)
                }
                result => result.map_err(Fail::into_store),
            }
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .unwrap_or(Err(StoreError::Timeout(self.timeout)))
    }
}

impl fmt::Debug for MemcachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedStore")
            .field("servers", &self.servers().collect::<Vec<_>>())
            .field(
                "pool_size",
                &self.servers.first().map(|s| s.pool.status().max_size),
            )
            .field("timeout", &self.timeout)
            .field("max_item_size", &self.max_item_size)
            .finish()
    }
}

impl Server {
    fn error(&self, error: McError) -> StoreError {
        match error {
            McError::Connect(e) => StoreError::Io(io::Error::new(
                e.kind(),
                format!("cannot connect to memcached {}: {e}", self.name),
            )),
            McError::Io(e) => StoreError::Io(io::Error::new(
                e.kind(),
                format!("memcached {}: {e}", self.name),
            )),
            error => StoreError::backend(ServerError {
                server: self.name.clone(),
                error,
            }),
        }
    }

    fn too_large(&self, size: usize, limit: Option<usize>) -> Fail {
        Fail::Store(StoreError::backend(TooLarge {
            server: self.name.clone(),
            size,
            limit,
        }))
    }

    /// Maps the reply to a write of `size` bytes: a too-large item gets its
    /// own error.
    fn write_error(&self, conn: &Object<Connector>, error: McError, size: usize) -> Fail {
        match &error {
            McError::Protocol(Status::Error(ErrorKind::Server(msg)))
                if msg.contains("too large") =>
            {
                self.too_large(size, None)
            }
            _ => Fail::from_client(self, conn, error),
        }
    }
}

/// A pause before trying a contended write again: the first retry only
/// yields to other tasks, later ones sleep a random time of up to 0.5 ms,
/// doubling to at most 8 ms.
async fn back_off(attempt: u32) {
    if attempt == 0 {
        tokio::task::yield_now().await;
        return;
    }
    let cap = 250u64 << attempt.min(5);
    let jitter = getrandom::u64().unwrap_or(u64::from(attempt) * 97) % cap;
    tokio::time::sleep(Duration::from_micros(jitter)).await;
}

impl MemcachedStore {
    /// Refuses a value that would make an item larger than the servers take:
    /// memcached would refuse it too, and drop the item it replaces.
    fn check_size(&self, server: &Server, wire: &str, value: &[u8]) -> Result<(), Fail> {
        if value.len() + wire.len() + ITEM_OVERHEAD > self.max_item_size {
            return Err(server.too_large(value.len(), Some(self.max_item_size)));
        }
        Ok(())
    }

    async fn load_once(&self, server: &Server, wire: &str) -> Result<Option<Record>, Fail> {
        let mut conn = self.conn(server).await?;
        let reply = conn.meta_get(wire, false, None, Some(&["v", "t"])).await;
        let item = reply.map_err(|e| Fail::from_client(server, &conn, e))?;
        Ok(item.and_then(|item| {
            Some(Record {
                expires_at: expires_at(&item),
                ..decode(item.data.as_deref(), wire)?
            })
        }))
    }

    async fn create_once(
        &self,
        server: &Server,
        wire: &str,
        value: &[u8],
        ttl: &str,
    ) -> Result<bool, Fail> {
        self.check_size(server, wire, value)?;
        let mut conn = self.conn(server).await?;
        let flags = ["ME", ttl];
        let reply = conn.meta_set(wire, value, false, None, Some(&flags)).await;
        match reply {
            Ok(_) => Ok(true),
            Err(McError::Protocol(Status::NotStored)) => Ok(false),
            Err(e) => Err(server.write_error(&conn, e, value.len())),
        }
    }

    async fn apply_once(
        &self,
        server: &Server,
        wire: &str,
        changes: &ChangeSet,
        ttl: &str,
    ) -> Result<Applied, Fail> {
        let mut conn = self.conn(server).await?;
        for attempt in 0..MAX_ATTEMPTS {
            let reply = conn.meta_get(wire, false, None, Some(&["v", "c"])).await;
            let Some(MetaValue { cas, data, .. }) =
                reply.map_err(|e| Fail::from_client(server, &conn, e))?
            else {
                return Ok(Applied::Gone);
            };
            let Some(Record {
                mut entries,
                created_at,
                ..
            }) = decode(data.as_deref(), wire)
            else {
                return Ok(Applied::Gone);
            };
            let Some(cas) = cas else {
                return Err(Fail::Store(StoreError::backend(format!(
                    "memcached {} sent no cas value",
                    server.name
                ))));
            };
            // Checked on what this try read: if the cas write below would
            // succeed, that is what it would have merged into.
            if let Some(size) = changes.too_large(&entries) {
                return Ok(Applied::TooLarge { size });
            }
            let cas = format!("C{cas}");
            changes.apply_to(&mut entries);
            let (written, size) = if entries.is_empty() {
                let flags = [cas.as_str()];
                let reply = conn.meta_delete(wire, false, None, Some(&flags)).await;
                (reply.map(|_| Applied::Deleted), 0)
            } else {
                let value = encode(&entries, created_at);
                self.check_size(server, wire, &value)?;
                let flags = [cas.as_str(), ttl];
                let reply = conn
                    .meta_set(wire, &value[..], false, None, Some(&flags))
                    .await;
                (reply.map(|_| Applied::Done), value.len())
            };
            match written {
                Ok(applied) => return Ok(applied),
                // Deleted (logout) or expired since it was read.
                Err(McError::Protocol(Status::NotFound)) => return Ok(Applied::Gone),
                // Another request wrote first: merge into its result.
                Err(McError::Protocol(Status::Exists)) => back_off(attempt).await,
                Err(e) => return Err(server.write_error(&conn, e, size)),
            }
        }
        Err(Fail::Store(StoreError::backend(Contended {
            server: server.name.clone(),
        })))
    }

    async fn take_once(&self, server: &Server, wire: &str) -> Result<Option<Record>, Fail> {
        let mut conn = self.conn(server).await?;
        for attempt in 0..MAX_ATTEMPTS {
            let reply = conn
                .meta_get(wire, false, None, Some(&["v", "c", "t"]))
                .await;
            let Some(item) = reply.map_err(|e| Fail::from_client(server, &conn, e))? else {
                return Ok(None);
            };
            let Some(record) = decode(item.data.as_deref(), wire) else {
                return Ok(None);
            };
            let Some(cas) = item.cas else {
                return Err(Fail::Store(StoreError::backend(format!(
                    "memcached {} sent no cas value",
                    server.name
                ))));
            };
            let cas = format!("C{cas}");
            let flags = [cas.as_str()];
            let reply = conn.meta_delete(wire, false, None, Some(&flags)).await;
            match reply {
                Ok(_) => {
                    return Ok(Some(Record {
                        expires_at: expires_at(&item),
                        ..record
                    }));
                }
                // Deleted or expired since it was read.
                Err(McError::Protocol(Status::NotFound)) => return Ok(None),
                // An apply wrote first: take its result instead.
                Err(McError::Protocol(Status::Exists)) => back_off(attempt).await,
                Err(e) => return Err(Fail::from_client(server, &conn, e)),
            }
        }
        Err(Fail::Store(StoreError::backend(Contended {
            server: server.name.clone(),
        })))
    }

    async fn touch_once(&self, server: &Server, wire: &str, ttl: &str) -> Result<Applied, Fail> {
        let mut conn = self.conn(server).await?;
        // `s` (the size) makes a hit answer with a flag, so that the client
        // tells it from a miss.
        let flags = ["s", ttl];
        let reply = conn.meta_get(wire, false, None, Some(&flags)).await;
        match reply.map_err(|e| Fail::from_client(server, &conn, e))? {
            Some(_) => Ok(Applied::Done),
            None => Ok(Applied::Gone),
        }
    }

    async fn delete_once(&self, server: &Server, wire: &str) -> Result<(), Fail> {
        let mut conn = self.conn(server).await?;
        let reply = conn.meta_delete(wire, false, None, None).await;
        match reply {
            Ok(_) | Err(McError::Protocol(Status::NotFound)) => Ok(()),
            Err(e) => Err(Fail::from_client(server, &conn, e)),
        }
    }

    async fn ping_once(&self, server: &Server) -> Result<(), Fail> {
        let mut conn = self.conn(server).await?;
        let reply = conn.version().await;
        reply
            .map(drop)
            .map_err(|e| Fail::from_client(server, &conn, e))
    }
}

impl SessionStore for MemcachedStore {
    const KIND: &'static str = "memcached";

    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let wire = wire_key(key.as_str());
        let server = self.pick(&wire);
        self.call(server, || self.load_once(server, &wire)).await
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let wire = wire_key(key.as_str());
        let server = self.pick(&wire);
        let value = encode(&record.entries, record.created_at);
        let ttl = ttl_flag(ttl);
        self.call(server, || self.create_once(server, &wire, &value, &ttl))
            .await
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        let wire = wire_key(key.as_str());
        let server = self.pick(&wire);
        let ttl = ttl_flag(ttl);
        self.call(server, || self.apply_once(server, &wire, changes, &ttl))
            .await
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        let wire = wire_key(key.as_str());
        let server = self.pick(&wire);
        let ttl = ttl_flag(ttl);
        self.call(server, || self.touch_once(server, &wire, &ttl))
            .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let wire = wire_key(key.as_str());
        let server = self.pick(&wire);
        self.call(server, || self.delete_once(server, &wire)).await
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let wire = wire_key(key.as_str());
        let server = self.pick(&wire);
        self.call(server, || self.take_once(server, &wire)).await
    }
    /// One server per page, through memcached's `lru_crawler metadump`
    /// (the cursor is the next server's number). Keys sent hashed (longer
    /// than memcached allows, see the module docs) cannot be listed.
    async fn scan(&self, prefix: &str, cursor: Option<&str>) -> Result<ScanPage, StoreError> {
        let (index, next) = ScanPage::numbered(cursor, self.servers.len())?;
        let server = &self.servers[index];
        let keys = tokio::time::timeout(self.timeout * 4, dump::live_keys(&server.name))
            .await
            .map_err(|_| StoreError::Timeout(self.timeout * 4))?
            .map_err(|e| StoreError::backend(format!("memcached {}: {e}", server.name)))?;
        // Each key on the server it belongs to only, should a dump list an
        // item another process left on the wrong one.
        let keys = keys
            .into_iter()
            .filter(|key| key.starts_with(prefix) && std::ptr::eq(self.pick(key), server))
            .map(StoreKey::from_raw)
            .collect();
        Ok(ScanPage { keys, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable() {
        // Pinned (computed independently, with Python's hashlib): a change
        // of hash would move every session to another server.
        assert_eq!(
            wire::score("127.0.0.1:11211", "session:k"),
            0x7834_7dd1_e2d4_140b
        );
        assert_eq!(
            wire::score("127.0.0.1:11212", "session:k"),
            0xb592_4c18_4d81_e659
        );
        let store = MemcachedStore::builder(["127.0.0.1:11211", "tcp://127.0.0.1:11212"])
            .build()
            .unwrap();
        assert_eq!(
            store.servers().collect::<Vec<_>>(),
            ["127.0.0.1:11211", "127.0.0.1:11212"],
            "tcp:// does not change a server's identity"
        );
        assert_eq!(
            store.server_for(&StoreKey::from_raw("session:k")),
            "127.0.0.1:11212"
        );
    }

    #[test]
    fn futures_are_send() {
        fn send<T: Send>(_: T) {}
        let store = MemcachedStore::builder(["a:1"]).build().unwrap();
        send(store.ping());
    }

    #[test]
    fn bad_server_lists_are_rejected() {
        let none: [&str; 0] = [];
        for builder in [
            MemcachedStore::builder(none),
            MemcachedStore::builder(["a:1", " "]),
            MemcachedStore::builder(["a:1", "tcp://a:1"]),
            MemcachedStore::builder(["a:1"]).pool_size(0),
        ] {
            let err = builder.build().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        }
    }
}
