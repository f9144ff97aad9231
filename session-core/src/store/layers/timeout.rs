//! Bounding every call of a store by a time limit.

use std::future::Future;
use std::time::Duration;

use crate::id::StoreKey;
use crate::store::{Applied, ChangeSet, Record, ScanPage, SessionStore, StoreError};

/// A store whose every call fails with [`StoreError::Timeout`] when it takes
/// longer than a limit (`SESSION_STORE_TIMEOUT`).
///
/// The middleware wraps the store it is given in one, so a store that
/// hangs (a server that accepts connections and never answers, say) costs
/// a request at most the limit per call. Wrap a store yourself to bound
/// the calls your own code makes to it, an admin task for example:
///
/// ```
/// use std::time::Duration;
/// use session_core::store::{SessionStore, Timeout, memory::MemoryStore};
/// use session_core::StoreKey;
///
/// # async fn run() -> Result<(), session_core::StoreError> {
/// let store = Timeout::new(MemoryStore::new(), Duration::from_secs(2));
/// let key = StoreKey::from_raw("session:abc".to_owned());
/// assert!(store.load(&key).await?.is_none());
/// # Ok(()) }
/// ```
///
/// A call cut at the limit is dropped where it stands: a write may or may
/// not have reached the store, which is why every store applies a change
/// set atomically.
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
}

impl<S> Timeout<S> {
    /// Bounds every call to `store` by `limit`.
    pub fn new(store: S, limit: Duration) -> Self {
        Self {
            inner: store,
            limit,
        }
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.limit, call)
            .await
            .unwrap_or(Err(StoreError::Timeout(self.limit)))
    }
}

impl<S: SessionStore> SessionStore for Timeout<S> {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.bounded(self.inner.load(key)).await
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.bounded(self.inner.create(key, record, ttl)).await
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        self.bounded(self.inner.apply(key, changes, ttl)).await
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        self.bounded(self.inner.touch(key, ttl)).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.bounded(self.inner.delete(key)).await
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.bounded(self.inner.take(key)).await
    }

    /// Each page is bounded, not the whole scan.
    async fn scan(&self, prefix: &str, cursor: Option<&str>) -> Result<ScanPage, StoreError> {
        self.bounded(self.inner.scan(prefix, cursor)).await
    }

    /// Not bounded: it is an operator's command, which may take long on a
    /// big table.
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.inner.purge_expired().await
    }
}

#[cfg(test)]
mod tests {
    use std::future::pending;
    use std::time::Instant;

    use super::*;

    /// A store whose every call never finishes.
    struct Hangs;

    impl SessionStore for Hangs {
        async fn load(&self, _: &StoreKey) -> Result<Option<Record>, StoreError> {
            pending().await
        }
        async fn create(&self, _: &StoreKey, _: &Record, _: Duration) -> Result<bool, StoreError> {
            pending().await
        }
        async fn apply(
            &self,
            _: &StoreKey,
            _: &ChangeSet,
            _: Duration,
        ) -> Result<Applied, StoreError> {
            pending().await
        }
        async fn touch(&self, _: &StoreKey, _: Duration) -> Result<Applied, StoreError> {
            pending().await
        }
        async fn delete(&self, _: &StoreKey) -> Result<(), StoreError> {
            pending().await
        }
        async fn take(&self, _: &StoreKey) -> Result<Option<Record>, StoreError> {
            pending().await
        }
    }

    fn is_timeout<T: std::fmt::Debug>(result: Result<T, StoreError>, limit: Duration) {
        match result {
            Err(StoreError::Timeout(after)) => assert_eq!(after, limit),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn every_call_is_cut_at_the_limit() {
        let limit = Duration::from_millis(50);
        let store = Timeout::new(Hangs, limit);
        let key = StoreKey::from_raw("k".to_owned());
        let ttl = Duration::from_secs(60);
        let started = Instant::now();
        is_timeout(store.load(&key).await, limit);
        is_timeout(store.create(&key, &Record::default(), ttl).await, limit);
        is_timeout(store.apply(&key, &ChangeSet::default(), ttl).await, limit);
        is_timeout(store.touch(&key, ttl).await, limit);
        is_timeout(store.delete(&key).await, limit);
        is_timeout(store.take(&key).await, limit);
        // Six calls, each cut at the limit: not one waited much longer.
        assert!(started.elapsed() < 6 * 2 * limit, "{:?}", started.elapsed());
    }

    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn answers_in_time_pass_through() {
        let store = Timeout::new(
            crate::store::memory::MemoryStore::new(),
            Duration::from_secs(5),
        );
        let key = StoreKey::from_raw("k".to_owned());
        let ttl = Duration::from_secs(60);
        let record = Record::from(
            [("a".to_owned(), bytes::Bytes::from_static(b"1"))]
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        );
        assert!(store.create(&key, &record, ttl).await.unwrap());
        assert!(!store.create(&key, &record, ttl).await.unwrap());
        let loaded = store.load(&key).await.unwrap().expect("stored");
        assert_eq!(loaded.entries, record.entries);
        assert_eq!(store.touch(&key, ttl).await.unwrap(), Applied::Done);
        assert_eq!(
            store.get_ref().load(&key).await.unwrap().unwrap().entries,
            record.entries
        );
        let taken = store.take(&key).await.unwrap().expect("stored");
        assert_eq!(taken.entries, record.entries);
        assert_eq!(store.touch(&key, ttl).await.unwrap(), Applied::Gone);
        store.delete(&key).await.unwrap();
        assert_eq!(store.limit(), Duration::from_secs(5));
    }
}
