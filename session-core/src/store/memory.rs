//! The in-process memory store: the embedded default.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::{Applied, ChangeSet, Record, SessionStore, StoreError};
use crate::StoreKey;

const SHARDS: usize = 64;
/// A shard drops its expired sessions after at least this many writes, and
/// at least as many writes as it holds sessions: the sweep's cost, linear in
/// the shard's size, stays constant per write.
const SWEEP_EVERY: usize = 1024;

/// Keeps sessions in this process's memory.
///
/// Needs no server and is the fastest store, but sessions are lost on
/// restart and are not shared between processes: use it for development,
/// tests and single-process apps. Workers of one `HttpServer` share it when
/// it is created once, outside the app factory.
///
/// Change sets are applied under a lock, so concurrent requests never lose
/// each other's writes to different keys. Expired sessions are never
/// returned and are swept from memory as the store is written to.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

#[derive(Debug, Default)]
struct Shard {
    sessions: HashMap<String, Entry>,
    writes: usize,
}

#[derive(Debug)]
struct Entry {
    record: Record,
    expires: Instant,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    /// Creates an empty store that keeps at most `max` sessions.
    // TODO(memory cap): admission and eviction.
    pub fn with_max_sessions(max: usize) -> Self {
        let _ = max;
        Self::new()
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

    fn shard(&self, key: &StoreKey) -> MutexGuard<'_, Shard> {
        let index = self.hasher.hash_one(key.as_str()) as usize % SHARDS;
        lock(&self.shards[index])
    }
}

/// A panic while a shard was locked cannot leave it half-written (every
/// change is a single map operation), so a poisoned lock is still usable.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shard {
    fn live(&mut self, key: &StoreKey, now: Instant) -> Option<&mut Entry> {
        if self
            .sessions
            .get(key.as_str())
            .is_some_and(|e| e.expires <= now)
        {
            self.sessions.remove(key.as_str());
        }
        self.sessions.get_mut(key.as_str())
    }

    fn wrote(&mut self, now: Instant) {
        self.writes += 1;
        if self.writes >= SWEEP_EVERY.max(self.sessions.len()) {
            self.writes = 0;
            self.sessions.retain(|_, e| e.expires > now);
        }
    }
}

impl SessionStore for MemoryStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let now = Instant::now();
        Ok(self.shard(key).live(key, now).map(|e| Record {
            entries: e.record.entries.clone(),
            expires_at: Some(SystemTime::now() + (e.expires - now)),
            created_at: e.record.created_at,
        }))
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        if shard.live(key, now).is_some() {
            return Ok(false);
        }
        shard.sessions.insert(
            key.as_str().to_owned(),
            Entry {
                record: record.clone(),
                expires: now + ttl,
            },
        );
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
        let mut shard = self.shard(key);
        let Some(entry) = shard.live(key, now) else {
            return Ok(Applied::Gone);
        };
        changes.apply_to(&mut entry.record.entries);
        entry.expires = now + ttl;
        let applied = if entry.record.entries.is_empty() {
            shard.sessions.remove(key.as_str());
            Applied::Deleted
        } else {
            Applied::Done
        };
        shard.wrote(now);
        Ok(applied)
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        let now = Instant::now();
        Ok(match self.shard(key).live(key, now) {
            Some(entry) => {
                entry.expires = now + ttl;
                Applied::Done
            }
            None => Applied::Gone,
        })
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.shard(key).sessions.remove(key.as_str());
        Ok(())
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let now = Instant::now();
        let mut shard = self.shard(key);
        shard.live(key, now);
        Ok(shard.sessions.remove(key.as_str()).map(|e| e.record))
    }
}
