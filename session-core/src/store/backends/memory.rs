//! The in-process memory store: the embedded default.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::StoreKey;
use crate::codec::entry_size;
use crate::store::{Applied, ChangeSet, Record, ScanPage, SessionStore, StoreError};

/// The most sessions a [`MemoryStore::new`] keeps, and the default of
/// `SESSION_MEMORY_MAX_SESSIONS`.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// The configuration key named by [`StoreError::Full`].
const MAX_SESSIONS_SETTING: &str = "SESSION_MEMORY_MAX_SESSIONS";

const SHARDS: usize = 64;
/// A shard drops its expired sessions after at least this many writes, and
/// at least as many writes as it holds sessions: the sweep's cost, linear in
/// the shard's size, stays constant per write.
const SWEEP_EVERY: usize = 1024;
/// A shard's probation queue is compacted once it holds this many more
/// entries than twice the shard's sessions: stale entries then make up at
/// least half of it, so the compaction costs O(1) per create, and the queue
/// never outgrows the sessions it stands for.
const QUEUE_SLACK: usize = 64;

/// Keeps sessions in this process's memory, up to a maximum number.
///
/// Needs no server and is the fastest store, but sessions are lost on
/// restart and are not shared between processes: use it for development,
/// tests and single-process apps. Workers of one `HttpServer` share it when
/// it is created once, outside the app factory.
///
/// Change sets are applied under a lock, so concurrent requests never lose
/// each other's writes to different keys. Expired sessions are never
/// returned and are swept from memory as the store is written to.
///
/// # The bound, and who gets evicted
///
/// The store never holds more than its maximum number of sessions
/// ([`DEFAULT_MAX_SESSIONS`] for [`new`](Self::new),
/// `SESSION_MEMORY_MAX_SESSIONS` from the configuration). A new session is
/// *on probation* until it is seen again: a later
/// [`load`](SessionStore::load), [`apply`](SessionStore::apply) or
/// [`touch`](SessionStore::touch) makes it *in use* (a login creates its new
/// session and then applies to it, so a logged-in session is in use at
/// once). When a [`create`](SessionStore::create) finds the store full, it
/// makes room by dropping expired sessions first, then by evicting the
/// oldest session still on probation. A session in use is never evicted to
/// admit a new one: if every session is in use, `create` fails with
/// [`StoreError::Full`]. So a flood of cookieless requests that each start
/// a session can only push out sessions nobody came back to.
///
/// Making room when full visits each shard once, taking one lock at a time;
/// below the bound, `create` costs one atomic increment more than an
/// unbounded map, and `load` and `apply` cost what they did.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    max_sessions: usize,
    /// Sessions held by all shards together (expired ones not swept yet
    /// included), plus slots reserved by creates in flight. A create
    /// reserves its slot here before it inserts, so this never passes
    /// `max_sessions`, and the maps together never hold more than this.
    slots: AtomicUsize,
    /// The order of creation, for evicting the oldest session on probation.
    created: AtomicU64,
}

#[derive(Debug, Default)]
struct Shard {
    sessions: HashMap<Arc<str>, Entry>,
    /// The shard's sessions on probation, oldest first, as (creation
    /// sequence, key). Promoting, deleting or replacing a session leaves
    /// its item here: an item whose session is no longer on probation with
    /// that sequence is stale, and is skipped when it reaches the front.
    probation: VecDeque<(u64, Arc<str>)>,
    /// No session of the shard expires before this (a lower bound: lifetimes
    /// extended since are not tracked), so a shard with nothing expired is
    /// not scanned. `None`: nothing was inserted since the last sweep.
    next_expiry: Option<Instant>,
    writes: usize,
}

#[derive(Debug)]
struct Entry {
    entries: HashMap<String, Bytes>,
    created_at: Option<SystemTime>,
    /// `session_size(&entries)`, kept so that the size check of an `apply`
    /// costs what its change set does, not what the session holds.
    size: usize,
    expires: Instant,
    /// `Some(creation sequence)` while on probation; `None` once in use.
    probation: Option<u64>,
}

impl Entry {
    fn record(&self, now: Instant) -> Record {
        Record {
            entries: self.entries.clone(),
            expires_at: Some(SystemTime::now() + self.expires.saturating_duration_since(now)),
            created_at: self.created_at,
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// Creates an empty store that keeps at most [`DEFAULT_MAX_SESSIONS`]
    /// (100 000) sessions.
    pub fn new() -> Self {
        Self::with_max_sessions(DEFAULT_MAX_SESSIONS)
    }

    /// Creates an empty store that keeps at most `max` sessions
    /// (`SESSION_MEMORY_MAX_SESSIONS`); see [the type's docs](Self) for who
    /// is evicted when it is full. With `max` 0 every create fails.
    pub fn with_max_sessions(max: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            max_sessions: max,
            slots: AtomicUsize::new(0),
            created: AtomicU64::new(0),
        }
    }

    /// The most sessions the store keeps.
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// The number of live sessions.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.shards
            .iter()
            .map(|shard| {
                let shard = lock(shard);
                shard.sessions.values().filter(|e| e.expires > now).count()
            })
            .sum()
    }

    /// True when no live session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn index(&self, key: &StoreKey) -> usize {
        self.hasher.hash_one(key.as_str()) as usize % SHARDS
    }

    fn shard(&self, index: usize) -> ShardGuard<'_> {
        ShardGuard {
            shard: lock(&self.shards[index]),
            slots: &self.slots,
        }
    }

    /// Takes one slot if the store is below its bound.
    fn try_reserve(&self) -> bool {
        // The count is its own synchronisation (every change is one atomic
        // read-modify-write); the sessions are guarded by the shard locks.
        self.slots
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_sessions).then_some(n + 1)
            })
            .is_ok()
    }

    /// Takes one slot, making room if the store is full: the slot of an
    /// expired session if there is one, else that of the oldest session on
    /// probation, which is evicted. Holds one shard lock at a time.
    fn reserve(&self, now: Instant) -> Result<(), StoreError> {
        loop {
            if self.try_reserve() {
                return Ok(());
            }
            let mut oldest: Option<(u64, usize)> = None;
            for index in 0..SHARDS {
                let mut shard = self.shard(index);
                if shard.reclaim_expired(now) {
                    return Ok(());
                }
                if let Some(seq) = shard.oldest_on_probation()
                    && oldest.is_none_or(|(oldest, _)| seq < oldest)
                {
                    oldest = Some((seq, index));
                }
            }
            let Some((_, index)) = oldest else {
                // Every session is in use, unless one was deleted meanwhile.
                return if self.try_reserve() {
                    Ok(())
                } else {
                    Err(StoreError::Full {
                        setting: MAX_SESSIONS_SETTING,
                        limit: self.max_sessions,
                    })
                };
            };
            // The session found may have been promoted or evicted since:
            // then the shard's next oldest goes, or the search starts over.
            if self.shard(index).evict_oldest() {
                return Ok(());
            }
        }
    }
}

/// A panic while a shard is locked leaves, at worst, a stale probation item
/// (which is skipped) or a change set half-applied to one session, so a
/// poisoned lock is still usable.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A locked shard. Every removal of a session goes through it, so that the
/// store's count of sessions stays exact.
struct ShardGuard<'a> {
    shard: MutexGuard<'a, Shard>,
    slots: &'a AtomicUsize,
}

impl ShardGuard<'_> {
    fn release(&self, slots: usize) {
        if slots > 0 {
            self.slots.fetch_sub(slots, Ordering::Relaxed);
        }
    }

    /// The live session under `key`; an expired one is dropped.
    fn live(&mut self, key: &StoreKey, now: Instant) -> Option<&mut Entry> {
        if self
            .shard
            .sessions
            .get(key.as_str())
            .is_some_and(|e| e.expires <= now)
        {
            self.remove(key);
        }
        self.shard.sessions.get_mut(key.as_str())
    }

    /// Like [`live`](Self::live), and marks the session in use: it was seen
    /// again after its creation.
    fn seen(&mut self, key: &StoreKey, now: Instant) -> Option<&mut Entry> {
        let entry = self.live(key, now)?;
        entry.probation = None;
        Some(entry)
    }

    fn remove(&mut self, key: &StoreKey) -> Option<Entry> {
        let entry = self.shard.sessions.remove(key.as_str())?;
        self.release(1);
        Some(entry)
    }

    /// Inserts a new session on probation, in a slot already reserved.
    fn insert(&mut self, key: &StoreKey, record: &Record, expires: Instant, seq: u64) {
        let shard = &mut *self.shard;
        let key: Arc<str> = key.as_str().into();
        shard.probation.push_back((seq, Arc::clone(&key)));
        let entry = Entry {
            entries: record.entries.clone(),
            created_at: record.created_at,
            size: record.size(),
            expires,
            probation: Some(seq),
        };
        let replaced = shard.sessions.insert(key, entry);
        debug_assert!(replaced.is_none(), "create inserts only in a free key");
        shard.next_expiry = Some(shard.next_expiry.map_or(expires, |t| t.min(expires)));
        if shard.probation.len() > 2 * shard.sessions.len() + QUEUE_SLACK {
            let sessions = &shard.sessions;
            shard
                .probation
                .retain(|(seq, key)| on_probation(sessions, *seq, key));
        }
    }

    /// Drops the shard's expired sessions, if it may have any; returns how
    /// many. Their slots are the caller's to release.
    fn sweep(&mut self, now: Instant) -> usize {
        let shard = &mut *self.shard;
        if shard.next_expiry.is_none_or(|t| t > now) {
            return 0;
        }
        let before = shard.sessions.len();
        shard.sessions.retain(|_, e| e.expires > now);
        shard.next_expiry = shard.sessions.values().map(|e| e.expires).min();
        before - shard.sessions.len()
    }

    /// Sweeps now and then, as writes come in.
    fn wrote(&mut self, now: Instant) {
        self.shard.writes += 1;
        if self.shard.writes >= SWEEP_EVERY.max(self.shard.sessions.len()) {
            self.shard.writes = 0;
            let swept = self.sweep(now);
            self.release(swept);
        }
    }

    /// Drops the shard's expired sessions and keeps one of their slots for
    /// the caller; false if none had expired.
    fn reclaim_expired(&mut self, now: Instant) -> bool {
        let swept = self.sweep(now);
        self.release(swept.saturating_sub(1));
        swept > 0
    }

    /// The creation sequence of the shard's oldest session on probation,
    /// dropping the stale items before it.
    fn oldest_on_probation(&mut self) -> Option<u64> {
        let shard = &mut *self.shard;
        while let Some((seq, key)) = shard.probation.front() {
            if on_probation(&shard.sessions, *seq, key) {
                return Some(*seq);
            }
            shard.probation.pop_front();
        }
        None
    }

    /// Evicts the shard's oldest session on probation and keeps its slot
    /// for the caller; false if it has none.
    fn evict_oldest(&mut self) -> bool {
        let shard = &mut *self.shard;
        while let Some((seq, key)) = shard.probation.pop_front() {
            if on_probation(&shard.sessions, seq, &key) {
                shard.sessions.remove(&key);
                return true;
            }
        }
        false
    }
}

/// Whether a probation item is current: its session is still there, still
/// on probation, and not a later session under the same key.
fn on_probation(sessions: &HashMap<Arc<str>, Entry>, seq: u64, key: &str) -> bool {
    sessions.get(key).is_some_and(|e| e.probation == Some(seq))
}

/// What [`ChangeSet::size_after`] gives for `entries`, whose size is known
/// to be `size`: only the keys the change set names are measured, so the
/// cost does not grow with the session.
fn size_after(changes: &ChangeSet, entries: &HashMap<String, Bytes>, size: usize) -> usize {
    let kept = if changes.clear {
        0
    } else {
        let mut seen = HashSet::new();
        let replaced: usize = changes
            .remove
            .iter()
            .chain(changes.set.iter().map(|(key, _)| key))
            .filter(|key| seen.insert(key.as_str()))
            .filter_map(|key| entries.get(key).map(|value| entry_size(key, value)))
            .sum();
        size - replaced
    };
    kept + changes
        .set
        .iter()
        .map(|(key, value)| entry_size(key, value))
        .sum::<usize>()
}

impl SessionStore for MemoryStore {
    const KIND: &'static str = "memory";

    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let now = Instant::now();
        Ok(self
            .shard(self.index(key))
            .seen(key, now)
            .map(|e| e.record(now)))
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let index = self.index(key);
        if !self.try_reserve() {
            // Full: a create that finds its key taken must not evict anyone.
            if self.shard(index).live(key, now).is_some() {
                return Ok(false);
            }
            self.reserve(now)?;
        }
        let mut shard = self.shard(index);
        if shard.live(key, now).is_some() {
            shard.release(1);
            return Ok(false);
        }
        let seq = self.created.fetch_add(1, Ordering::Relaxed);
        shard.insert(key, record, now + ttl, seq);
        shard.wrote(now);
        Ok(true)
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        let now = Instant::now();
        let mut shard = self.shard(self.index(key));
        let Some(entry) = shard.seen(key, now) else {
            return Ok(Applied::Gone);
        };
        let size = size_after(changes, &entry.entries, entry.size);
        if changes.max_size.is_some_and(|limit| size > limit) {
            return Ok(Applied::TooLarge { size });
        }
        changes.apply_to(&mut entry.entries);
        entry.size = size;
        entry.expires = now + ttl;
        let applied = if entry.entries.is_empty() {
            shard.remove(key);
            Applied::Deleted
        } else {
            Applied::Done
        };
        shard.wrote(now);
        Ok(applied)
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        let now = Instant::now();
        Ok(match self.shard(self.index(key)).seen(key, now) {
            Some(entry) => {
                entry.expires = now + ttl;
                Applied::Done
            }
            None => Applied::Gone,
        })
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.shard(self.index(key)).remove(key);
        Ok(())
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let now = Instant::now();
        let mut shard = self.shard(self.index(key));
        shard.live(key, now);
        Ok(shard.remove(key).map(|e| e.record(now)))
    }

    /// One shard per page; the cursor is the next shard's number.
    async fn scan(&self, prefix: &str, cursor: Option<&str>) -> Result<ScanPage, StoreError> {
        let (index, next) = ScanPage::numbered(cursor, SHARDS)?;
        let now = Instant::now();
        let keys = lock(&self.shards[index])
            .sessions
            .iter()
            .filter(|(key, entry)| entry.expires > now && key.starts_with(prefix))
            .map(|(key, _)| StoreKey::from_raw(&**key))
            .collect();
        Ok(ScanPage { keys, next })
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = Instant::now();
        let mut purged = 0;
        for index in 0..SHARDS {
            let mut shard = self.shard(index);
            let swept = shard.sweep(now);
            shard.release(swept);
            purged += swept as u64;
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionId;
    use crate::store::session_size;

    const LONG: Duration = Duration::from_secs(600);

    fn new_key() -> StoreKey {
        StoreKey::new("memory:", &SessionId::generate(), true)
    }

    fn keys(n: usize) -> Vec<StoreKey> {
        (0..n).map(|_| new_key()).collect()
    }

    fn record() -> Record {
        Record::from(HashMap::from([("a".to_owned(), Bytes::from("1"))]))
    }

    async fn create(store: &MemoryStore, key: &StoreKey, ttl: Duration) -> bool {
        store.create(key, &record(), ttl).await.unwrap()
    }

    /// Marks a session in use without `load`, which would drop it if it
    /// had expired.
    fn mark_in_use(store: &MemoryStore, key: &StoreKey) {
        let mut shard = store.shard(store.index(key));
        shard
            .shard
            .sessions
            .get_mut(key.as_str())
            .unwrap()
            .probation = None;
    }

    async fn live(store: &MemoryStore, key: &StoreKey) -> bool {
        // Not `load`: that would promote the session.
        let now = Instant::now();
        store.shard(store.index(key)).live(key, now).is_some()
    }

    /// The sessions the shards hold, expired or not.
    fn held(store: &MemoryStore) -> usize {
        store.shards.iter().map(|s| lock(s).sessions.len()).sum()
    }

    #[tokio::test]
    async fn new_keeps_the_default_cap() {
        assert_eq!(MemoryStore::new().max_sessions(), DEFAULT_MAX_SESSIONS);
        assert_eq!(MemoryStore::with_max_sessions(7).max_sessions(), 7);
    }

    #[tokio::test]
    async fn the_cap_holds_under_a_flood_of_new_sessions() {
        const CAP: usize = 50;
        let store = MemoryStore::with_max_sessions(CAP);
        for (i, key) in keys(10 * CAP).iter().enumerate() {
            assert!(create(&store, key, LONG).await, "create {i} refused");
            assert!(
                store.len() <= CAP,
                "{} sessions over a cap of {CAP}",
                store.len()
            );
        }
        assert_eq!(store.len(), CAP);
        assert_eq!(held(&store), CAP);
        assert_eq!(store.slots.load(Ordering::Relaxed), CAP);
    }

    #[tokio::test]
    async fn sessions_seen_again_survive_a_flood() {
        const CAP: usize = 50;
        let store = MemoryStore::with_max_sessions(CAP);
        let [loaded, applied, touched] = [(); 3].map(|_| new_key());
        for key in [&loaded, &applied, &touched] {
            assert!(create(&store, key, LONG).await);
        }
        store.load(&loaded).await.unwrap().unwrap();
        let changes = ChangeSet {
            set: vec![("b".into(), Bytes::from("2"))],
            ..ChangeSet::default()
        };
        assert_eq!(
            store.apply(&applied, &changes, LONG).await.unwrap(),
            Applied::Done
        );
        assert_eq!(store.touch(&touched, LONG).await.unwrap(), Applied::Done);
        for key in keys(10 * CAP) {
            assert!(create(&store, &key, LONG).await);
        }
        for key in [&loaded, &applied, &touched] {
            assert!(live(&store, key).await, "a session in use was evicted");
        }
        assert_eq!(store.len(), CAP);
    }

    #[tokio::test]
    async fn the_oldest_session_on_probation_goes_first() {
        let store = MemoryStore::with_max_sessions(3);
        let [a, b, c, d, e] = [(); 5].map(|_| new_key());
        for key in [&a, &b, &c] {
            assert!(create(&store, key, LONG).await);
        }
        assert!(create(&store, &d, LONG).await);
        assert!(!live(&store, &a).await, "the oldest was kept");
        store.load(&b).await.unwrap().unwrap();
        assert!(create(&store, &e, LONG).await);
        assert!(!live(&store, &c).await, "the oldest on probation was kept");
        for key in [&b, &d, &e] {
            assert!(live(&store, key).await);
        }
    }

    #[tokio::test]
    async fn a_store_full_of_sessions_in_use_refuses_new_ones_until_one_goes() {
        const CAP: usize = 4;
        let store = MemoryStore::with_max_sessions(CAP);
        let used = keys(CAP);
        for key in &used {
            assert!(create(&store, key, LONG).await);
            store.load(key).await.unwrap().unwrap();
        }
        let new = new_key();
        let err = store.create(&new, &record(), LONG).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Full {
                    setting: "SESSION_MEMORY_MAX_SESSIONS",
                    limit: CAP
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("SESSION_MEMORY_MAX_SESSIONS"),
            "{err}"
        );
        assert!(!live(&store, &new).await, "a refused session was stored");
        for key in &used {
            assert!(live(&store, key).await, "a session in use was evicted");
        }
        assert_eq!(
            store.slots.load(Ordering::Relaxed),
            CAP,
            "a refused create kept a slot"
        );

        store.delete(&used[0]).await.unwrap();
        assert!(create(&store, &new, LONG).await, "a delete freed no slot");
        store.load(&new).await.unwrap().unwrap();
        store.take(&used[1]).await.unwrap().unwrap();
        assert!(
            create(&store, &new_key(), LONG).await,
            "a take freed no slot"
        );
    }

    #[tokio::test]
    async fn a_full_store_still_answers_that_a_key_is_taken() {
        let store = MemoryStore::with_max_sessions(2);
        let [a, b] = [(); 2].map(|_| new_key());
        assert!(create(&store, &a, LONG).await);
        assert!(create(&store, &b, LONG).await);
        assert!(!create(&store, &b, LONG).await);
        assert!(
            live(&store, &a).await,
            "a create of a taken key evicted a session"
        );
    }

    #[tokio::test]
    async fn expired_sessions_are_reclaimed_before_any_eviction() {
        const CAP: usize = 6;
        let store = MemoryStore::with_max_sessions(CAP);
        // The oldest sessions, on probation, then sessions in use that have
        // expired (a zero lifetime has passed as soon as it is written).
        let old = keys(CAP / 2);
        let expired = keys(CAP / 2);
        for key in &old {
            assert!(create(&store, key, LONG).await);
        }
        for key in &expired {
            assert!(create(&store, key, Duration::ZERO).await);
            mark_in_use(&store, key);
        }
        for key in keys(CAP / 2) {
            assert!(create(&store, &key, LONG).await);
        }
        for key in &old {
            assert!(
                live(&store, key).await,
                "evicted while an expired session held a slot"
            );
        }
        assert_eq!(store.len(), CAP);
        assert_eq!(held(&store), CAP, "an expired session is still held");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creates_never_pass_the_cap() {
        const CAP: usize = 40;
        const TASKS: usize = 8;
        const EACH: usize = 100;
        let store = Arc::new(MemoryStore::with_max_sessions(CAP));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..TASKS {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                let mut kept = Vec::new();
                for i in 0..EACH {
                    let key = new_key();
                    assert!(create(&store, &key, LONG).await, "create refused");
                    let slots = store.slots.load(Ordering::Relaxed);
                    assert!(slots <= CAP, "{slots} slots taken, over a cap of {CAP}");
                    // A couple per task come back: they must survive.
                    if i < 2 {
                        store.load(&key).await.unwrap().expect("just created");
                        kept.push(key);
                    }
                    tokio::task::yield_now().await;
                }
                kept
            });
        }
        let mut kept = Vec::new();
        while let Some(result) = tasks.join_next().await {
            kept.extend(result.unwrap());
        }
        for key in &kept {
            assert!(live(&store, key).await, "a session in use was evicted");
        }
        assert_eq!(store.len(), CAP);
        assert_eq!(held(&store), CAP);
        assert_eq!(store.slots.load(Ordering::Relaxed), CAP);
    }

    #[tokio::test]
    async fn promoted_and_deleted_sessions_do_not_pile_up_in_the_probation_queues() {
        let store = MemoryStore::with_max_sessions(100);
        for (i, key) in keys(20_000).iter().enumerate() {
            assert!(create(&store, key, LONG).await);
            if i % 2 == 0 {
                store.load(key).await.unwrap().unwrap();
            }
            store.delete(key).await.unwrap();
        }
        let queued: usize = store.shards.iter().map(|s| lock(s).probation.len()).sum();
        assert!(
            queued <= SHARDS * (QUEUE_SLACK + 1),
            "{queued} probation items for no session"
        );
    }

    /// `n` fresh keys that all fall in the shard of `first`.
    fn keys_in_shard_of(store: &MemoryStore, first: &StoreKey, n: usize) -> Vec<StoreKey> {
        let shard = store.index(first);
        std::iter::repeat_with(new_key)
            .filter(|key| store.index(key) == shard)
            .take(n)
            .collect()
    }

    fn slots(store: &MemoryStore) -> usize {
        store.slots.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn sessions_spread_over_the_shards() {
        let store = MemoryStore::new();
        assert!(store.is_empty());
        for key in keys(1000) {
            assert!(create(&store, &key, LONG).await);
        }
        assert!(!store.is_empty());
        assert_eq!(store.len(), 1000);
        // 1000 keys over 64 shards: every shard gets some (a shard is
        // empty with odds of about 64 * e^-15.6).
        let used = store
            .shards
            .iter()
            .filter(|s| !lock(s).sessions.is_empty())
            .count();
        assert_eq!(used, SHARDS, "keys do not spread over the shard locks");
    }

    #[tokio::test]
    async fn writes_sweep_expired_sessions_from_their_shard_and_keep_live_ones() {
        let store = MemoryStore::new();
        let live_key = new_key();
        let expired = keys_in_shard_of(&store, &live_key, 1).remove(0);
        assert!(create(&store, &expired, Duration::ZERO).await);
        assert!(create(&store, &live_key, LONG).await);
        assert_eq!((held(&store), slots(&store)), (2, 2));
        // Enough writes to the shard for a sweep: the expired session goes,
        // the live one stays, and the count of sessions stays exact.
        let set = ChangeSet {
            set: vec![("a".to_owned(), Bytes::from("2"))],
            ..ChangeSet::default()
        };
        for _ in 0..SWEEP_EVERY {
            assert_eq!(
                store.apply(&live_key, &set, LONG).await.unwrap(),
                Applied::Done
            );
        }
        assert_eq!(held(&store), 1, "the expired session was not swept");
        assert_eq!(slots(&store), 1, "the sweep released the wrong count");
        assert!(
            live(&store, &live_key).await,
            "the sweep dropped a live session"
        );
        // Nothing more to sweep: a later sweep changes nothing.
        for _ in 0..SWEEP_EVERY {
            assert_eq!(
                store.apply(&live_key, &set, LONG).await.unwrap(),
                Applied::Done
            );
        }
        assert_eq!((held(&store), slots(&store)), (1, 1));
    }

    #[tokio::test]
    async fn the_probation_queues_stay_bounded_by_the_sessions_they_stand_for() {
        let store = MemoryStore::new();
        let queues_fit = |store: &MemoryStore, what: &str| {
            for shard in store.shards.iter() {
                let shard = lock(shard);
                let (queued, sessions) = (shard.probation.len(), shard.sessions.len());
                assert!(
                    queued <= 2 * (sessions + 1) + QUEUE_SLACK,
                    "{what}: {queued} probation items for {sessions} sessions"
                );
            }
        };
        // Sessions that stay, on probation, then churn beside them.
        let kept = keys(SHARDS * 100);
        for key in &kept {
            assert!(create(&store, key, LONG).await);
        }
        let churn = async |store: &MemoryStore| {
            for key in keys(20_000) {
                assert!(create(store, &key, LONG).await);
                store.delete(&key).await.unwrap();
            }
        };
        churn(&store).await;
        queues_fit(&store, "beside live sessions");
        // Every session goes: the queues shrink with them.
        for key in &kept {
            store.delete(key).await.unwrap();
        }
        churn(&store).await;
        queues_fit(&store, "after the sessions went");
    }

    #[test]
    fn size_after_matches_the_change_set_s_own() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let entries: HashMap<String, Bytes> =
            [("a".to_owned(), b("111")), ("b".to_owned(), b("22"))].into();
        let size = session_size(&entries);
        let cases = [
            ChangeSet::default(),
            ChangeSet {
                set: vec![("a".into(), b("1")), ("c".into(), b("3333"))],
                remove: vec!["b".into(), "missing".into()],
                ..ChangeSet::default()
            },
            ChangeSet {
                clear: true,
                set: vec![("a".into(), b("1"))],
                ..ChangeSet::default()
            },
            ChangeSet {
                remove: vec!["a".into(), "a".into()],
                ..ChangeSet::default()
            },
        ];
        for changes in cases {
            assert_eq!(
                size_after(&changes, &entries, size),
                changes.size_after(&entries),
                "{changes:?}"
            );
        }
    }
}
