//! Moving a live site to another store with no user logged out and no
//! logout undone (`SESSION_MIGRATE_FROM`).
//!
//! [`Migrating`] serves every session from the new store, and reads
//! through to the old one for a session the new store does not hold yet:
//! the session is moved to the new store, with the lifetime it has left,
//! the first time a request needs it, and leaves the old one
//! ([`Migrating::copy`], which `session-admin migrate` also runs for every
//! session, to move the idle ones). New sessions are written to the new
//! store only; a session that ends (a logout, a login's move to a new id,
//! a change that empties it) ends in both.
//!
//! # One store, as far as a request can tell
//!
//! Two stores cannot be changed in one atomic step, so a move and an end
//! of the same session take turns: each holds the session's **move lock**
//! while it runs, a record the new store keeps next to the session (its
//! key with [`LOCK_SUFFIX`]), taken with [`create`](SessionStore::create),
//! which only one caller can win, and dropped when done. A lock whose
//! holder died expires after [`lock_ttl`](Migrating::lock_ttl). So:
//!
//! - an end never misses a move: a session moved before it is ended with
//!   it (with every change applied to it since), and a move tried after it
//!   finds the session gone from the old store;
//! - a change ([`apply`](SessionStore::apply), [`touch`](SessionStore::touch))
//!   goes to the new store's copy, moved there first if needed, so it is never
//!   made where an end would miss it, and never brings back a session that
//!   ended: every contract of [`SessionStore`] holds, checked by the
//!   acceptance suite with the sessions in the old store.
//!
//! Changes need no lock (only one that may empty the session takes it),
//! nor do reads of sessions already moved: once the move is done, the
//! cost is a read of the new store, as without `Migrating`. The README's
//! "Moving to another store" gives the steps.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::StoreKey;
use crate::store::{Applied, ChangeSet, Record, ScanPage, SessionStore, StoreError};

/// What a session's move lock adds to its key.
pub const LOCK_SUFFIX: &str = "~moving";

/// The move lock's lifetime when every call of the `Migrating` store is
/// cut at `store_timeout` (`SESSION_STORE_TIMEOUT`, as the middleware and
/// `session-admin` do): a holder cut at the timeout is gone (its future
/// dropped), so the lock need outlive it only by a margin, and a lock left
/// behind by a cut call blocks its session for this long at most.
pub fn lock_ttl_for(store_timeout: Duration) -> Duration {
    store_timeout * 2
}

/// A store that moves sessions from `old` to `new` as they are used; see
/// the [module](self).
#[derive(Clone, Debug)]
pub struct Migrating<N, O> {
    new: N,
    old: O,
    lifetime: Duration,
    lock_ttl: Duration,
}

/// What [`Migrating::copy`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Copied {
    /// Copied to the new store.
    Copied,
    /// The new store holds it already (copied earlier, or written there).
    AlreadyThere,
    /// In neither store: ended, expired, or never there.
    Missing,
}

impl<N: SessionStore, O: SessionStore> Migrating<N, O> {
    /// Serves sessions from `new`, copying each from `old` the first time
    /// it is needed.
    pub fn new(new: N, old: O) -> Self {
        Self {
            new,
            old,
            lifetime: crate::config::DEFAULT_LIFETIME,
            lock_ttl: Duration::from_secs(30),
        }
    }

    /// The lifetime a copied session gets when the old store cannot tell
    /// how long it has left (`PERMANENT_SESSION_LIFETIME`; 31 days unless
    /// set).
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// How long a move lock lives if its holder dies before dropping it,
    /// and how long a call waits for one; 30 seconds unless set. It must
    /// be longer than the store calls a lock is held over, which bounding
    /// each call of this store (a [`Timeout`](crate::store::Timeout)) ensures
    /// ([`lock_ttl_for`]).
    #[must_use]
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// The store sessions move to.
    pub fn new_store(&self) -> &N {
        &self.new
    }

    /// The store sessions move from.
    pub fn old_store(&self) -> &O {
        &self.old
    }

    /// Moves the session under `key` from the old store to the new one,
    /// with the lifetime it has left, unless the new store holds it
    /// already or the old one does not. The old store keeps no copy: a
    /// stale one could come back if the new store lost the session (an
    /// eviction, a shorter lifetime set since).
    ///
    /// # Errors
    ///
    /// Either store's, and [`StoreError::Backend`] when the session's move
    /// lock stays taken for [`lock_ttl`](Self::lock_ttl).
    pub async fn copy(&self, key: &StoreKey) -> Result<Copied, StoreError> {
        self.locked(key, self.copy_locked(key)).await
    }

    /// Runs `work` (a future: nothing of it runs before it is awaited)
    /// holding the move lock of `key`, and drops the lock however it ends.
    /// What `work` did is its result even if dropping the lock fails (the
    /// lock then expires): an end already carried out is not reported as
    /// failed.
    async fn locked<T>(
        &self,
        key: &StoreKey,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let lock = self.lock(key).await?;
        let done = work.await;
        if let Err(error) = self.unlock(lock).await {
            tracing::warn!(%error, "a session's move lock could not be dropped; it expires by itself");
        }
        done
    }

    async fn copy_locked(&self, key: &StoreKey) -> Result<Copied, StoreError> {
        let copied = if self.new.load(key).await?.is_some() {
            Copied::AlreadyThere
        } else {
            let Some(record) = self.old.load(key).await? else {
                return Ok(Copied::Missing);
            };
            let ttl = match record.expires_at {
                Some(at) => match at.duration_since(SystemTime::now()) {
                    Ok(left) if !left.is_zero() => left,
                    _ => return Ok(Copied::Missing),
                },
                None => self.lifetime,
            };
            if self.new.create(key, &record, ttl).await? {
                Copied::Copied
            } else {
                Copied::AlreadyThere
            }
        };
        // The new store holds it: the old store's copy is stale from now on.
        self.old.delete(key).await?;
        Ok(copied)
    }

    /// Takes the move lock of `key`, waiting while another caller holds
    /// it.
    async fn lock(&self, key: &StoreKey) -> Result<Lock, StoreError> {
        let mut token = [0u8; 16];
        getrandom::fill(&mut token).map_err(StoreError::backend)?;
        let lock = Lock {
            key: StoreKey::from_raw(format!("{}{LOCK_SUFFIX}", key.as_str())),
            token: Bytes::copy_from_slice(&token),
        };
        let record = Record::from(std::collections::HashMap::from([(
            "_lock".to_owned(),
            lock.token.clone(),
        )]));
        let deadline = Instant::now() + self.lock_ttl;
        let mut pause = Duration::from_micros(200);
        while !self.new.create(&lock.key, &record, self.lock_ttl).await? {
            if Instant::now() >= deadline {
                return Err(StoreError::backend(format!(
                    "a session's move lock stayed taken for {:?}",
                    self.lock_ttl
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        Ok(lock)
    }

    /// Drops a move lock; one that expired and was taken by another
    /// caller meanwhile is put back.
    async fn unlock(&self, lock: Lock) -> Result<(), StoreError> {
        if let Some(held) = self.new.take(&lock.key).await?
            && held.entries.get("_lock") != Some(&lock.token)
        {
            self.new.create(&lock.key, &held, self.lock_ttl).await?;
        }
        Ok(())
    }
}

/// A move lock held.
struct Lock {
    key: StoreKey,
    token: Bytes,
}

/// A change that leaves no entry when the session holds only the keys it
/// removes: it may delete the session.
fn may_empty(changes: &ChangeSet) -> bool {
    changes.set.is_empty() && (changes.clear || !changes.remove.is_empty())
}

impl<N: SessionStore, O: SessionStore> SessionStore for Migrating<N, O> {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        if let Some(record) = self.new.load(key).await? {
            return Ok(Some(record));
        }
        match self.copy(key).await? {
            Copied::Missing => Ok(None),
            _ => self.new.load(key).await,
        }
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.new.create(key, record, ttl).await
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        if may_empty(changes) {
            // Emptied is ended: the old store's copy must go with it, with
            // no copy made in between.
            return self
                .locked(key, async {
                    let mut applied = self.new.apply(key, changes, ttl).await?;
                    if matches!(applied, Applied::Gone)
                        && self.copy_locked(key).await? != Copied::Missing
                    {
                        applied = self.new.apply(key, changes, ttl).await?;
                    }
                    if matches!(applied, Applied::Deleted) {
                        self.old.delete(key).await?;
                    }
                    Ok(applied)
                })
                .await;
        }
        match self.new.apply(key, changes, ttl).await? {
            Applied::Gone if self.copy(key).await? != Copied::Missing => {
                self.new.apply(key, changes, ttl).await
            }
            applied => Ok(applied),
        }
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        match self.new.touch(key, ttl).await? {
            Applied::Gone if self.copy(key).await? != Copied::Missing => {
                self.new.touch(key, ttl).await
            }
            applied => Ok(applied),
        }
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.locked(key, async {
            self.old.delete(key).await?;
            self.new.delete(key).await
        })
        .await
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.locked(key, async {
            let old = self.old.take(key).await?;
            // The new store's copy, when there is one, is the newer.
            Ok(self.new.take(key).await?.or(old))
        })
        .await
    }

    /// The new store's keys, then the old store's (a session in both is
    /// listed twice, which the contract allows); move locks are left out.
    async fn scan(&self, prefix: &str, cursor: Option<&str>) -> Result<ScanPage, StoreError> {
        let (in_old, inner) = match cursor {
            None => (false, None),
            Some(c) => match c.split_at_checked(1) {
                Some(("n", rest)) => (false, Some(rest)),
                Some(("o", rest)) => (true, (!rest.is_empty()).then_some(rest)),
                _ => {
                    return Err(StoreError::backend(format!(
                        "not a cursor of a migrating store: {c:?}"
                    )));
                }
            },
        };
        let (mut page, next) = if in_old {
            let page = self.old.scan(prefix, inner).await?;
            let next = page.next.as_ref().map(|next| format!("o{next}"));
            (page, next)
        } else {
            let page = self.new.scan(prefix, inner).await?;
            // The old store's scan starts where the new one's ends.
            let next = Some(
                page.next
                    .as_ref()
                    .map_or_else(|| "o".to_owned(), |next| format!("n{next}")),
            );
            (page, next)
        };
        page.keys.retain(|key| !key.as_str().ends_with(LOCK_SUFFIX));
        page.next = next;
        Ok(page)
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        Ok(self.new.purge_expired().await? + self.old.purge_expired().await?)
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;
    use crate::SessionId;
    use crate::store::memory::MemoryStore;

    const TTL: Duration = Duration::from_secs(600);

    fn unique_key(name: &str) -> StoreKey {
        StoreKey::new(&format!("migrating:{name}:"), &SessionId::generate(), true)
    }

    fn record(pairs: &[(&str, &str)]) -> Record {
        Record::from(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v.as_bytes())))
                .collect::<std::collections::HashMap<_, _>>(),
        )
    }

    fn moving() -> Migrating<MemoryStore, MemoryStore> {
        Migrating::new(MemoryStore::new(), MemoryStore::new())
    }

    #[tokio::test]
    async fn a_session_is_copied_on_first_use_with_the_lifetime_it_has_left() {
        let moving = moving();
        let key = unique_key("copied");
        let left = Duration::from_secs(100);
        assert!(
            moving
                .old
                .create(&key, &record(&[("user", "ann")]), left)
                .await
                .unwrap()
        );
        let loaded = moving
            .load(&key)
            .await
            .unwrap()
            .expect("copied from the old store");
        assert_eq!(loaded.entries, record(&[("user", "ann")]).entries);
        let in_new = moving
            .new
            .load(&key)
            .await
            .unwrap()
            .expect("now in the new store");
        let expires = in_new.expires_at.expect("the memory store tells");
        let remaining = expires.duration_since(SystemTime::now()).unwrap();
        assert!(
            remaining <= left && remaining > left - Duration::from_secs(5),
            "{remaining:?}"
        );
        assert_eq!(
            moving.old.load(&key).await.unwrap(),
            None,
            "a stale copy left in the old store"
        );
        assert_eq!(moving.copy(&key).await.unwrap(), Copied::AlreadyThere);
        assert_eq!(
            moving.copy(&unique_key("nowhere")).await.unwrap(),
            Copied::Missing
        );
        // The lock is gone once the copy is done.
        let lock = StoreKey::from_raw(format!("{}{LOCK_SUFFIX}", key.as_str()));
        assert_eq!(moving.new.load(&lock).await.unwrap(), None);
        // New sessions go to the new store only.
        let fresh = unique_key("fresh");
        assert!(
            moving
                .create(&fresh, &record(&[("a", "1")]), TTL)
                .await
                .unwrap()
        );
        assert!(moving.old.load(&fresh).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_end_removes_the_session_from_both_stores() {
        let moving = moving();
        for end in ["delete", "take", "take before any copy", "emptied"] {
            let key = unique_key("ended");
            moving
                .old
                .create(&key, &record(&[("user", "ann")]), TTL)
                .await
                .unwrap();
            if end != "take before any copy" {
                moving.load(&key).await.unwrap().expect("copied");
            }
            match end {
                "delete" => moving.delete(&key).await.unwrap(),
                "emptied" => {
                    let empty = ChangeSet {
                        remove: vec!["user".to_owned()],
                        ..ChangeSet::default()
                    };
                    let applied = moving.apply(&key, &empty, TTL).await.unwrap();
                    assert!(matches!(applied, Applied::Deleted), "{applied:?}");
                }
                _ => {
                    let taken = moving.take(&key).await.unwrap().expect("taken");
                    assert_eq!(taken.entries, record(&[("user", "ann")]).entries);
                }
            }
            assert!(moving.old.load(&key).await.unwrap().is_none(), "{end}: old");
            assert!(moving.new.load(&key).await.unwrap().is_none(), "{end}: new");
            assert!(
                moving.load(&key).await.unwrap().is_none(),
                "{end}: came back"
            );
            let changes = ChangeSet {
                set: vec![("user".to_owned(), Bytes::from_static(b"mallory"))],
                ..ChangeSet::default()
            };
            let applied = moving.apply(&key, &changes, TTL).await.unwrap();
            assert!(matches!(applied, Applied::Gone), "{end}: {applied:?}");
        }
    }

    #[tokio::test]
    async fn an_end_waits_for_a_copy_in_progress() {
        let moving = std::sync::Arc::new(moving());
        let key = unique_key("waits");
        moving
            .old
            .create(&key, &record(&[("user", "ann")]), TTL)
            .await
            .unwrap();
        let lock = moving.lock(&key).await.unwrap();
        let ender = tokio::spawn({
            let (moving, key) = (moving.clone(), key.clone());
            async move { moving.take(&key).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!ender.is_finished(), "an end ran while the lock was held");
        // The copy the lock was taken for.
        assert_eq!(moving.copy_locked(&key).await.unwrap(), Copied::Copied);
        moving.unlock(lock).await.unwrap();
        let taken = ender.await.unwrap().unwrap().expect("taken");
        assert_eq!(taken.entries, record(&[("user", "ann")]).entries);
        assert!(
            moving.new.load(&key).await.unwrap().is_none(),
            "the copy outlived the end"
        );
    }

    #[tokio::test]
    async fn a_lock_whose_holder_died_expires() {
        let moving = moving().lock_ttl(Duration::from_millis(200));
        let key = unique_key("orphan-lock");
        moving
            .old
            .create(&key, &record(&[("user", "ann")]), TTL)
            .await
            .unwrap();
        std::mem::forget(moving.lock(&key).await.unwrap());
        let taken = moving.take(&key).await.unwrap();
        assert!(taken.is_some());
    }

    #[tokio::test]
    async fn scan_lists_both_stores_and_no_lock() {
        let moving = moving();
        let (a, b) = (unique_key("scan-new"), unique_key("scan-old"));
        moving
            .create(&a, &record(&[("x", "1")]), TTL)
            .await
            .unwrap();
        moving
            .old
            .create(&b, &record(&[("x", "1")]), TTL)
            .await
            .unwrap();
        let _held = moving.lock(&b).await.unwrap();
        let keys = crate::store::scan_all(&moving, "", |_| {}).await.unwrap();
        assert!(keys.contains(&a) && keys.contains(&b), "{keys:?}");
        assert!(
            !keys.iter().any(|k| k.as_str().ends_with(LOCK_SUFFIX)),
            "{keys:?}"
        );
        assert!(moving.scan("", Some("x")).await.is_err());
    }
}
