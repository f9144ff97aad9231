//! A near cache: sessions this process loaded, served again without a
//! round trip to the store (`SESSION_LOCAL_CACHE`).
//!
//! [`NearCache`] wraps any [`SessionStore`]. A [`load`](SessionStore::load)
//! it can answer from memory costs a lock and a copy of the record; every
//! write still goes to the store, with the store's own guarantees
//! (per-key merge, logout wins, [`Applied::Gone`]), and then updates the
//! cached copy.
//!
//! # Staying correct
//!
//! - **What this process does is seen at once.** A write, a logout, a
//!   revocation made through the cache updates or drops its entry before
//!   the call returns, so the next read of this process sees it: the cache
//!   never serves what this process already changed.
//! - **What other processes do** reaches the cache through an invalidation
//!   feed, which the store provides: Redis's server-assisted client-side
//!   caching (`RedisStoreBuilder::build_near_cache`), PostgreSQL's
//!   `LISTEN`/`NOTIFY` (`SqlStoreBuilder::build_near_cache`), or your own
//!   ([`NearCache::with_feed`]).
//!   A change is seen once its invalidation arrives; the README gives the
//!   delay measured on loopback.
//! - **A feed that may have missed something is never trusted.** When the
//!   feed goes down (a reconnect, a failover), the cache is emptied, and
//!   bypassed until the feed is back ([`Invalidator::suspend`]); it is
//!   emptied again then, before it is used ([`Invalidator::resume`]).
//! - **A feed that stalls is noticed.** A connection can stop delivering
//!   without closing (a NAT or a firewall that drops an idle connection
//!   sends no reset), and then reports nothing, not even that it is down.
//!   So every feed proves itself each [`HEARTBEAT_EVERY`] (1 s) with a
//!   round trip on the connection its invalidations come on, which must
//!   come back within [`HEARTBEAT_DEADLINE`] (2 s) ([`Heartbeat`]; Redis: a
//!   `PING`, PostgreSQL: its `LISTEN` again). A feed that misses the
//!   deadline is taken down as above. And the cache itself serves nothing
//!   once its feed has not proved itself for 3 s (the interval plus the
//!   deadline), whether or not the feed's task has noticed (it may be stuck
//!   too); a proof that comes after that empties it before it serves
//!   again. (A feed of several connections, as on Redis, renews the cache
//!   with any connection's proof, and holds each connection to its own
//!   deadline.) So a change that a stalled feed never reports is served
//!   for at most 3 s after the feed last proved itself (plus that proof's
//!   round trip), then read from the store.
//! - **No race lets an old copy in.** The keys are spread over stripes
//!   (up to 64 shards of 32), each counting its changes (an epoch). A load
//!   or a write notes its key's epoch before it calls the store, and stores
//!   what it got only if nothing changed the stripe meanwhile: an
//!   invalidation that arrives while a load is in flight wins over the
//!   load. (A change of another key of the stripe fails it too, which costs
//!   a miss, never a stale read.) A write changes the cached copy only if
//!   it is the very copy that was cached when the write began (each entry
//!   carries a version); otherwise it drops it.
//!
//! A store without a feed may be cached only when no other process writes
//! to it ([`NearCache::local`]): a file store's directory or an SQLite file
//! that one process owns; it has nothing to prove, and no heartbeat.
//!
//! # Bounds
//!
//! The cache holds at most `capacity` sessions. When it is full, a new one
//! pushes out an old one of its shard, oldest first, sparing once those
//! read since they were cached (the "clock" policy). An entry never
//! outlives its session: one whose lifetime has passed is a miss. Hits,
//! misses, invalidations and evictions are counted ([`CacheStats`]).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use crate::StoreKey;
use crate::store::{Applied, ChangeSet, Record, ScanPage, SessionStore, StoreError};

mod heartbeat;

pub use heartbeat::{HEARTBEAT_DEADLINE, HEARTBEAT_EVERY, Heartbeat, Missed};
use heartbeat::{Lease, Rhythm};

/// The most shards a cache is split into (fewer for a small capacity).
const MAX_SHARDS: usize = 64;
/// A shard's queue is compacted once it holds this many more keys than
/// twice the shard's entries (keys of entries dropped since stay in the
/// queue until then).
const QUEUE_SLACK: usize = 64;

/// A [`SessionStore`] with a bounded cache of loaded sessions in front of
/// it. See the [module docs](self) for what it guarantees.
///
/// Clones share the cache.
pub struct NearCache<S> {
    inner: S,
    cache: Arc<Cache>,
}

impl<S: Clone> Clone for NearCache<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            cache: Arc::clone(&self.cache),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for NearCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("inner", &self.inner)
            .field("stats", &self.cache.stats())
            .finish()
    }
}

impl<S: SessionStore> NearCache<S> {
    /// A cache of up to `capacity` sessions in front of a store that **no
    /// other process writes to**: nothing tells this cache about their
    /// changes. For a file store's directory or an SQLite file that this
    /// process alone uses. A capacity of 0 caches nothing.
    pub fn local(inner: S, capacity: usize) -> Self {
        let cache = Arc::new(Cache::new(capacity, Lease::forever()));
        cache.live.store(true, Relaxed);
        Self { inner, cache }
    }

    /// A cache of up to `capacity` sessions, kept right by a feed of
    /// invalidations: the store (or your code) calls
    /// [`Invalidator::invalidate`] for every session another process
    /// changed. The cache is bypassed until the feed calls
    /// [`Invalidator::resume`], and again whenever it calls
    /// [`suspend`](Invalidator::suspend).
    ///
    /// The feed must also prove that it is alive, at least every
    /// [`HEARTBEAT_EVERY`] plus [`HEARTBEAT_DEADLINE`] ([`Invalidator::alive`],
    /// best through [`Invalidator::heartbeat`]): the cache serves nothing
    /// once its feed has gone that long without a proof.
    pub fn with_feed(inner: S, capacity: usize) -> (Self, Invalidator) {
        Self::feed_with_rhythm(inner, capacity, Rhythm::DEFAULT)
    }

    /// [`with_feed`](Self::with_feed) with a heartbeat of its own: a proof
    /// due `every`, each within `deadline`. For tests, which cannot wait
    /// seconds for a stall to be noticed.
    #[doc(hidden)]
    pub fn with_feed_and_heartbeat(
        inner: S,
        capacity: usize,
        every: Duration,
        deadline: Duration,
    ) -> (Self, Invalidator) {
        Self::feed_with_rhythm(inner, capacity, Rhythm { every, deadline })
    }

    fn feed_with_rhythm(inner: S, capacity: usize, rhythm: Rhythm) -> (Self, Invalidator) {
        let cache = Arc::new(Cache::new(capacity, Lease::new(rhythm)));
        let invalidator = Invalidator {
            cache: Arc::downgrade(&cache),
            closed: cache.closed.subscribe(),
            rhythm,
        };
        (Self { inner, cache }, invalidator)
    }

    /// The same cache in front of `inner`, for a store that needs the
    /// cache's [`Invalidator`] before it is complete.
    pub fn with_inner<T: SessionStore>(self, inner: T) -> NearCache<T> {
        NearCache {
            inner,
            cache: self.cache,
        }
    }

    /// The store behind the cache.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// What the cache holds and has done so far.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// A handle on the cache's statistics that does not name the store's
    /// type.
    pub fn handle(&self) -> CacheHandle {
        CacheHandle(Arc::clone(&self.cache))
    }
}

/// Reads the statistics of a [`NearCache`] (see [`NearCache::handle`]).
#[derive(Clone)]
pub struct CacheHandle(Arc<Cache>);

impl CacheHandle {
    /// What the cache holds and has done so far.
    pub fn stats(&self) -> CacheStats {
        self.0.stats()
    }
}

impl std::fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CacheHandle").field(&self.stats()).finish()
    }
}

/// What a [`NearCache`] holds and has done since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// The most sessions it holds.
    pub capacity: usize,
    /// The sessions it holds now.
    pub entries: usize,
    /// Loads answered from the cache.
    pub hits: u64,
    /// Loads that went to the store (the cache bypassed included).
    pub misses: u64,
    /// Sessions dropped because the feed said another process changed them.
    pub invalidations: u64,
    /// Times the whole cache was emptied because its feed went down or
    /// came back.
    pub flushes: u64,
    /// Sessions pushed out to make room.
    pub evictions: u64,
    /// Whether the cache is in use: false while its feed is suspended
    /// (PostgreSQL's listener reconnecting), or late with its heartbeat
    /// (see [`HEARTBEAT_DEADLINE`]). On Redis a lost tracking connection
    /// empties the cache at once instead (`flushes`), and the cache stays
    /// in use for the other connections.
    pub live: bool,
}

impl CacheStats {
    /// Hits over loads, 0 when there were none.
    pub fn hit_ratio(&self) -> f64 {
        let loads = self.hits + self.misses;
        if loads == 0 {
            0.0
        } else {
            self.hits as f64 / loads as f64
        }
    }
}

/// Tells a [`NearCache`] what other processes changed. Held by the task
/// that reads the store's invalidations; every method returns false once
/// the cache is gone, so the task knows to end.
#[derive(Clone, Debug)]
pub struct Invalidator {
    cache: Weak<Cache>,
    /// Ends (its sender is dropped) when the cache is.
    closed: tokio::sync::watch::Receiver<()>,
    /// The feed's heartbeat.
    rhythm: Rhythm,
}

impl Invalidator {
    /// Runs `f` on the cache; false, doing nothing, once it is gone.
    fn with(&self, f: impl FnOnce(&Cache)) -> bool {
        let Some(cache) = self.cache.upgrade() else {
            return false;
        };
        f(&cache);
        true
    }

    /// Drops the session stored under `key` (a store key, prefix
    /// included) from the cache, and makes any load of it in flight not
    /// cache what it reads.
    pub fn invalidate(&self, key: &str) -> bool {
        self.with(|cache| {
            cache.invalidate(key);
            cache.invalidations.fetch_add(1, Relaxed);
        })
    }

    /// Every session may have changed (the store was emptied): empties the
    /// cache, and leaves it in use.
    pub fn flush(&self) -> bool {
        self.with(Cache::flush)
    }

    /// The feed may have missed changes (its connection dropped): empties
    /// the cache and bypasses it until [`resume`](Self::resume).
    pub fn suspend(&self) -> bool {
        self.with(|cache| {
            cache.live.store(false, Relaxed);
            cache.flush();
        })
    }

    /// The feed is up and reports every change from now on: empties the
    /// cache (what it held may have changed unseen) and uses it again. This
    /// is the feed's first proof of life ([`alive`](Self::alive)).
    pub fn resume(&self) -> bool {
        self.with(|cache| {
            cache.flush();
            cache.lease.renew();
            cache.live.store(true, Relaxed);
        })
    }

    /// The feed has just proved that it is alive: every change it was sent
    /// before the proof has been reported. The cache may serve for another
    /// [`HEARTBEAT_EVERY`] plus [`HEARTBEAT_DEADLINE`]; if that long had
    /// already passed since the last proof, it serves nothing until this
    /// one, and is emptied first (the feed was late: what it held is not
    /// trusted). Does not end a [`suspend`](Self::suspend).
    pub fn alive(&self) -> bool {
        self.with(|cache| {
            if !cache.lease.holds() {
                cache.flush();
            }
            cache.lease.renew();
        })
    }

    /// The feed's heartbeat: when its next proof of life is due, and the
    /// deadline each one is held to. See [`Heartbeat`].
    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat::new(self.clone(), self.rhythm)
    }

    /// Whether the cache is gone (every clone of its store dropped).
    pub fn is_closed(&self) -> bool {
        self.cache.strong_count() == 0
    }

    /// Completes when the cache is gone, for a feed to stop waiting.
    pub async fn closed(&self) {
        let mut closed = self.closed.clone();
        while closed.changed().await.is_ok() {}
    }
}

struct Cache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    capacity: usize,
    len: AtomicUsize,
    live: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
    evictions: AtomicU64,
    /// Until when the feed's last proof of life lets the cache serve.
    lease: Lease,
    /// Dropped with the cache, which ends [`Invalidator::closed`].
    closed: tokio::sync::watch::Sender<()>,
    /// The next entry version.
    versions: AtomicU64,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<Box<str>, Entry>,
    /// Keys in the order they were cached, for eviction; keys whose entry
    /// is gone are skipped, and swept by compaction.
    queue: VecDeque<Box<str>>,
    /// Count every change of the shard's keys, by stripe of keys (see the
    /// module docs): a change of one key fails the calls in flight on the
    /// keys of its stripe only, one in [`STRIPES`] of the shard's.
    epochs: [u64; STRIPES],
}

/// Stripes of keys per shard, each with its own epoch.
const STRIPES: usize = 32;

struct Entry {
    record: Record,
    expires: SystemTime,
    /// Read since it was cached or last spared.
    referenced: bool,
    /// Changes each time the entry is cached or changed (from
    /// `Cache::versions`).
    version: u64,
}

/// A key's state in the cache when a call to the store began: its
/// stripe's epoch, and the version of its entry if it had one.
#[derive(Clone, Copy)]
struct Ticket {
    epoch: u64,
    version: Option<u64>,
}

/// A key's shard, locked, and its stripe in it.
struct Slot<'a> {
    shard: MutexGuard<'a, Shard>,
    stripe: usize,
}

impl Slot<'_> {
    fn epoch(&self) -> u64 {
        self.shard.epochs[self.stripe]
    }

    fn bump(&mut self) {
        self.shard.epochs[self.stripe] += 1;
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A shard holds only copies: one a panic left half-changed is still a
    // set of entries, each whole.
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cache {
    fn new(capacity: usize, lease: Lease) -> Self {
        let shards = capacity.clamp(1, MAX_SHARDS).next_power_of_two();
        Self {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            capacity,
            len: AtomicUsize::new(0),
            live: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            lease,
            closed: tokio::sync::watch::Sender::new(()),
            versions: AtomicU64::new(0),
        }
    }

    fn slot(&self, key: &str) -> Slot<'_> {
        let hash = self.hasher.hash_one(key);
        let index = hash as usize & (self.shards.len() - 1);
        Slot {
            shard: lock(&self.shards[index]),
            stripe: (hash >> 32) as usize % STRIPES,
        }
    }

    fn live(&self) -> bool {
        self.capacity > 0 && self.live.load(Relaxed) && self.lease.holds()
    }

    fn stats(&self) -> CacheStats {
        CacheStats {
            capacity: self.capacity,
            entries: self.len.load(Relaxed),
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            flushes: self.flushes.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            live: self.live.load(Relaxed) && self.lease.holds(),
        }
    }

    /// The cached copy of a live session, if there is one.
    fn get(&self, key: &str) -> Option<Record> {
        if self.live() {
            let mut slot = self.slot(key);
            if let Some(entry) = slot.shard.entries.get_mut(key) {
                if entry.expires > SystemTime::now() {
                    entry.referenced = true;
                    let record = entry.record.clone();
                    drop(slot);
                    self.hits.fetch_add(1, Relaxed);
                    #[cfg(feature = "metrics")]
                    metrics::counter!("session_cache_lookups_total", "result" => "hit")
                        .increment(1);
                    return Some(record);
                }
                self.remove(&mut slot, key);
            }
        }
        self.misses.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("session_cache_lookups_total", "result" => "miss").increment(1);
        None
    }

    fn ticket(&self, key: &str) -> Ticket {
        let slot = self.slot(key);
        Ticket {
            epoch: slot.epoch(),
            version: slot.shard.entries.get(key).map(|e| e.version),
        }
    }

    fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Relaxed)
    }

    fn remove(&self, slot: &mut Slot<'_>, key: &str) {
        slot.bump();
        if slot.shard.entries.remove(key).is_some() {
            self.len.fetch_sub(1, Relaxed);
        }
    }

    fn invalidate(&self, key: &str) {
        self.remove(&mut self.slot(key), key);
    }

    fn flush(&self) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            for epoch in &mut shard.epochs {
                *epoch += 1;
            }
            self.len.fetch_sub(shard.entries.len(), Relaxed);
            shard.entries.clear();
            shard.queue.clear();
        }
        self.flushes.fetch_add(1, Relaxed);
    }

    /// Caches `record` as read (or written) by a call that began at
    /// `ticket`, unless the key's stripe changed since or the cache is
    /// bypassed.
    fn put(&self, key: &str, ticket: Ticket, record: Record) {
        let Some(expires) = record.expires_at else {
            // A session whose end the store cannot tell is not cached: its
            // copy could outlive it.
            return;
        };
        let mut slot = self.slot(key);
        if slot.epoch() != ticket.epoch || !self.live() {
            return;
        }
        slot.bump();
        let shard = &mut *slot.shard;
        let entry = Entry {
            record,
            expires,
            referenced: false,
            version: self.next_version(),
        };
        if let Some(old) = shard.entries.get_mut(key) {
            *old = entry;
            return;
        }
        if self.len.load(Relaxed) >= self.capacity && !self.evict(shard) {
            return;
        }
        let key: Box<str> = key.into();
        shard.queue.push_back(key.clone());
        shard.entries.insert(key, entry);
        self.len.fetch_add(1, Relaxed);
        if shard.queue.len() > 2 * shard.entries.len() + QUEUE_SLACK {
            let Shard { entries, queue, .. } = shard;
            let mut seen = std::collections::HashSet::with_capacity(entries.len());
            queue.retain(|key| entries.contains_key(key) && seen.insert(key.clone()));
        }
    }

    /// Makes room for one entry in `shard`: false if it holds none.
    fn evict(&self, shard: &mut Shard) -> bool {
        while let Some(key) = shard.queue.pop_front() {
            let Some(entry) = shard.entries.get_mut(&key) else {
                continue;
            };
            if entry.referenced {
                entry.referenced = false;
                shard.queue.push_back(key);
                continue;
            }
            shard.entries.remove(&key);
            self.len.fetch_sub(1, Relaxed);
            self.evictions.fetch_add(1, Relaxed);
            return true;
        }
        false
    }

    /// Changes the cached copy of a session this process just wrote, if it
    /// is the copy that was cached when the write began (`ticket`) and
    /// nothing changed or dropped it since; drops it otherwise.
    fn update(&self, key: &str, ticket: Ticket, change: impl FnOnce(&mut Record)) {
        let mut slot = self.slot(key);
        if self.live()
            && let Some(entry) = slot.shard.entries.get_mut(key)
            && Some(entry.version) == ticket.version
        {
            change(&mut entry.record);
            entry.expires = entry.record.expires_at.unwrap_or(entry.expires);
            entry.version = self.next_version();
            slot.bump();
            return;
        }
        self.remove(&mut slot, key);
    }
}

/// When a session written now with `ttl` expires, as a store reports it.
fn expiry(ttl: Duration) -> SystemTime {
    SystemTime::now() + ttl
}

impl<S: SessionStore> SessionStore for NearCache<S> {
    const KIND: &'static str = "near_cache";

    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let key_str = key.as_str();
        if let Some(record) = self.cache.get(key_str) {
            return Ok(Some(record));
        }
        let ticket = self.cache.ticket(key_str);
        let record = self.inner.load(key).await?;
        if let Some(record) = &record {
            self.cache.put(key_str, ticket, record.clone());
        }
        Ok(record)
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let created = self.inner.create(key, record, ttl).await;
        // Not cached: many new sessions are never seen again (a crawler, a
        // health check), and each would push out one in use. The first
        // load caches it.
        self.cache.invalidate(key.as_str());
        created
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        let key_str = key.as_str();
        let ticket = self.cache.ticket(key_str);
        let applied = self.inner.apply(key, changes, ttl).await;
        match applied {
            Ok(Applied::Done) => self.cache.update(key_str, ticket, |record| {
                changes.apply_to(&mut record.entries);
                record.expires_at = Some(expiry(ttl));
            }),
            // Nothing was written.
            Ok(Applied::TooLarge { .. }) => {}
            _ => self.cache.invalidate(key_str),
        }
        applied
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        let key_str = key.as_str();
        let ticket = self.cache.ticket(key_str);
        let touched = self.inner.touch(key, ttl).await;
        match touched {
            Ok(Applied::Done) => self.cache.update(key_str, ticket, |record| {
                record.expires_at = Some(expiry(ttl));
            }),
            _ => self.cache.invalidate(key_str),
        }
        touched
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        // Before, so that no read of this process is answered from the
        // cache while the store deletes; after, for a load that raced it.
        self.cache.invalidate(key.as_str());
        let deleted = self.inner.delete(key).await;
        self.cache.invalidate(key.as_str());
        deleted
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.cache.invalidate(key.as_str());
        let taken = self.inner.take(key).await;
        self.cache.invalidate(key.as_str());
        taken
    }

    async fn scan(&self, prefix: &str, cursor: Option<&str>) -> Result<ScanPage, StoreError> {
        self.inner.scan(prefix, cursor).await
    }

    /// Only expired sessions go, which the cache never serves.
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.inner.purge_expired().await
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::store::memory::MemoryStore;

    fn key(n: u32) -> StoreKey {
        StoreKey::from_raw(format!("session:{n}"))
    }

    fn record(value: &str) -> Record {
        Record::from(HashMap::from([(
            "v".to_owned(),
            Bytes::from(value.to_owned()),
        )]))
    }

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_second_load_is_a_hit_and_a_write_updates_the_copy() {
        let store = NearCache::local(MemoryStore::new(), 10);
        assert!(store.create(&key(1), &record("a"), TTL).await.unwrap());
        let loaded = store.load(&key(1)).await.unwrap().unwrap();
        assert_eq!(loaded.entries["v"], "a");
        let changes = ChangeSet {
            set: vec![("v".to_owned(), Bytes::from_static(b"b"))],
            ..ChangeSet::default()
        };
        assert_eq!(
            store.apply(&key(1), &changes, TTL).await.unwrap(),
            Applied::Done
        );
        let loaded = store.load(&key(1)).await.unwrap().unwrap();
        assert_eq!(loaded.entries["v"], "b");
        let stats = store.stats();
        // The first load missed: a new session is cached when first read.
        assert_eq!((stats.hits, stats.misses, stats.entries), (1, 1, 1));
        store.delete(&key(1)).await.unwrap();
        assert_eq!(store.load(&key(1)).await.unwrap(), None);
        assert_eq!(store.stats().entries, 0);
    }

    #[tokio::test]
    async fn an_invalidation_during_a_load_keeps_the_read_out_of_the_cache() {
        let (store, feed) = NearCache::with_feed(MemoryStore::new(), 10);
        assert!(feed.resume());
        store
            .inner()
            .create(&key(1), &record("a"), TTL)
            .await
            .unwrap();
        let ticket = store.cache.ticket(key(1).as_str());
        let read = store.inner().load(&key(1)).await.unwrap().unwrap();
        // Another process writes, and its invalidation arrives before the
        // load stores what it read.
        feed.invalidate(key(1).as_str());
        store.cache.put(key(1).as_str(), ticket, read);
        assert_eq!(store.stats().entries, 0);
        assert_eq!(store.stats().invalidations, 1);
    }

    #[tokio::test]
    async fn a_suspended_cache_is_empty_and_bypassed_until_resumed() {
        let (store, feed) = NearCache::with_feed(MemoryStore::new(), 10);
        store.create(&key(1), &record("a"), TTL).await.unwrap();
        store.load(&key(1)).await.unwrap();
        // Not resumed yet: nothing cached.
        assert_eq!(store.stats().entries, 0);
        feed.resume();
        store.load(&key(1)).await.unwrap();
        assert_eq!(store.stats().entries, 1);
        feed.suspend();
        assert_eq!(store.stats().entries, 0);
        assert!(!store.stats().live);
        // A change the feed missed while down is read from the store.
        let changes = ChangeSet {
            set: vec![("v".to_owned(), Bytes::from_static(b"z"))],
            ..ChangeSet::default()
        };
        let _ = store.inner().apply(&key(1), &changes, TTL).await.unwrap();
        assert_eq!(
            store.load(&key(1)).await.unwrap().unwrap().entries["v"],
            "z"
        );
        assert_eq!(store.stats().entries, 0);
        drop(store);
        assert!(feed.is_closed());
        assert!(!feed.invalidate("x"));
    }

    #[tokio::test]
    async fn a_feed_late_with_its_heartbeat_is_not_trusted_until_it_proves_itself() {
        let (store, feed) = NearCache::with_feed_and_heartbeat(
            MemoryStore::new(),
            10,
            Duration::from_millis(50),
            Duration::from_millis(50),
        );
        feed.resume();
        store.create(&key(1), &record("a"), TTL).await.unwrap();
        store.load(&key(1)).await.unwrap();
        assert_eq!(store.stats().entries, 1);
        // No proof for longer than the interval plus the deadline: a
        // change the feed never reported is read from the store.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!store.stats().live);
        let changes = ChangeSet {
            set: vec![("v".to_owned(), Bytes::from_static(b"z"))],
            ..ChangeSet::default()
        };
        let _ = store.inner().apply(&key(1), &changes, TTL).await.unwrap();
        let hits = store.stats().hits;
        assert_eq!(
            store.load(&key(1)).await.unwrap().unwrap().entries["v"],
            "z"
        );
        assert_eq!(store.stats().hits, hits);
        // A late proof empties the cache before it is used again.
        let flushes = store.stats().flushes;
        assert!(feed.alive());
        let stats = store.stats();
        assert_eq!((stats.flushes, stats.entries), (flushes + 1, 0));
        assert!(stats.live);
        store.load(&key(1)).await.unwrap();
        assert_eq!(store.stats().entries, 1);
        // A proof in time keeps it.
        assert!(feed.alive());
        assert_eq!(store.stats().entries, 1);
    }

    #[tokio::test]
    async fn a_heartbeat_proves_the_feed_alive_only_with_an_answer_in_time() {
        let (store, feed) = NearCache::with_feed_and_heartbeat(
            MemoryStore::new(),
            10,
            Duration::from_millis(10),
            Duration::from_millis(30),
        );
        feed.resume();
        let mut heartbeat = feed.heartbeat();
        heartbeat.due().await;
        let answered = heartbeat.prove(async { Ok::<_, std::io::Error>(7) }).await;
        assert_eq!(answered.unwrap(), 7);
        let silent = heartbeat
            .prove(std::future::pending::<Result<(), std::io::Error>>())
            .await;
        assert!(matches!(silent, Err(Missed::Late(_))), "{silent:?}");
        let failed = heartbeat
            .prove(async { Err::<(), _>(std::io::Error::other("down")) })
            .await
            .unwrap_err();
        assert_eq!(failed.to_string(), "down");
        // Neither renewed the lease: it runs out one term after the proof.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!store.stats().live);
    }

    #[tokio::test]
    async fn the_capacity_holds_and_read_entries_are_spared_once() {
        let store = NearCache::local(MemoryStore::new(), 1);
        for n in 0..5 {
            store.create(&key(n), &record("a"), TTL).await.unwrap();
            store.load(&key(n)).await.unwrap();
        }
        let stats = store.stats();
        assert_eq!((stats.entries, stats.evictions), (1, 4));

        let store = NearCache::local(MemoryStore::new(), 2);
        for n in 0..100 {
            store.create(&key(n), &record("a"), TTL).await.unwrap();
            store.load(&key(n)).await.unwrap();
            assert!(store.stats().entries <= 2);
        }

        // The clock: in one shard of capacity 2, the entry read since it
        // was cached is spared once, and the other one goes.
        let cache = Cache::new(1, Lease::forever());
        let cache = Cache {
            capacity: 2,
            ..cache
        };
        cache.live.store(true, Relaxed);
        let put = |n: u32| {
            let key = key(n);
            let ticket = cache.ticket(key.as_str());
            let mut record = record("a");
            record.expires_at = Some(SystemTime::now() + TTL);
            cache.put(key.as_str(), ticket, record);
        };
        put(1);
        put(2);
        assert!(cache.get(key(1).as_str()).is_some());
        put(3);
        assert!(cache.get(key(1).as_str()).is_some(), "read, so spared");
        assert!(cache.get(key(2).as_str()).is_none(), "not read: evicted");
        assert!(cache.get(key(3).as_str()).is_some());
        assert_eq!(cache.stats().evictions, 1);
    }

    #[tokio::test]
    async fn an_expired_copy_is_a_miss() {
        let store = NearCache::local(MemoryStore::new(), 10);
        store
            .create(&key(1), &record("a"), Duration::from_millis(30))
            .await
            .unwrap();
        assert!(store.load(&key(1)).await.unwrap().is_some());
        assert_eq!(store.stats().entries, 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(store.load(&key(1)).await.unwrap(), None);
        assert_eq!(store.stats().entries, 0);
    }

    #[tokio::test]
    async fn a_write_that_loses_a_race_drops_the_copy() {
        let store = NearCache::local(MemoryStore::new(), 10);
        store.create(&key(1), &record("a"), TTL).await.unwrap();
        store.load(&key(1)).await.unwrap();
        assert_eq!(store.stats().entries, 1);
        let ticket = store.cache.ticket(key(1).as_str());
        // Another write of this process changed the entry meanwhile.
        store
            .cache
            .update(key(1).as_str(), store.cache.ticket(key(1).as_str()), |_| {});
        store.cache.update(key(1).as_str(), ticket, |r| {
            r.entries.clear();
        });
        assert_eq!(store.stats().entries, 0);
    }
}
