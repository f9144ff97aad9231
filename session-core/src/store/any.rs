//! A store chosen at run time: the object-safe form of the trait, and
//! [`AnyStore`] that holds one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "flask")]
use super::FlaskLayout;
use super::near::{self, CacheStats, NearCache};
#[cfg(doc)]
use super::open;
use super::{Applied, ChangeSet, Record, ScanPage, SessionStore, StoreError};
use crate::StoreKey;

/// A boxed future, as returned by [`DynSessionStore`].
#[doc(hidden)]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe form of [`SessionStore`], for a store chosen at run time.
///
/// Every `SessionStore` is a `DynSessionStore`; use [`AnyStore`] to hold one.
/// Plumbing behind [`AnyStore`], not meant to be named.
#[doc(hidden)]
#[allow(missing_docs)]
pub trait DynSessionStore: Send + Sync + 'static {
    fn load<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<Record>, StoreError>>;
    fn create<'a>(
        &'a self,
        key: &'a StoreKey,
        record: &'a Record,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn apply<'a>(
        &'a self,
        key: &'a StoreKey,
        changes: &'a ChangeSet,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Applied, StoreError>>;
    fn touch<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Applied, StoreError>>;
    fn delete<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>>;
    fn take<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<Record>, StoreError>>;
    fn scan<'a>(
        &'a self,
        prefix: &'a str,
        cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ScanPage, StoreError>>;
    fn purge_expired(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
}

impl<S: SessionStore> DynSessionStore for S {
    fn load<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<Record>, StoreError>> {
        Box::pin(SessionStore::load(self, key))
    }
    fn create<'a>(
        &'a self,
        key: &'a StoreKey,
        record: &'a Record,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(SessionStore::create(self, key, record, ttl))
    }
    fn apply<'a>(
        &'a self,
        key: &'a StoreKey,
        changes: &'a ChangeSet,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Applied, StoreError>> {
        Box::pin(SessionStore::apply(self, key, changes, ttl))
    }
    fn touch<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Applied, StoreError>> {
        Box::pin(SessionStore::touch(self, key, ttl))
    }
    fn delete<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SessionStore::delete(self, key))
    }
    fn take<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<Record>, StoreError>> {
        Box::pin(SessionStore::take(self, key))
    }
    fn scan<'a>(
        &'a self,
        prefix: &'a str,
        cursor: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ScanPage, StoreError>> {
        Box::pin(SessionStore::scan(self, prefix, cursor))
    }
    fn purge_expired(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(SessionStore::purge_expired(self))
    }
}

/// A store chosen at run time (for example from `SESSION_TYPE`).
#[derive(Clone)]
pub struct AnyStore {
    store: Arc<dyn DynSessionStore>,
    /// The store, when it is Flask-Session's layout: the middleware then
    /// speaks Flask-Session's ids, cookies and values.
    #[cfg(feature = "flask")]
    flask: Option<FlaskLayout>,
    /// The near cache in front of the store, when `open` put one there.
    pub(super) cache: Option<near::CacheHandle>,
    /// What the store is, for logs and metrics (see [`kind`](Self::kind)).
    kind: &'static str,
}

impl AnyStore {
    /// Wraps any store. An `AnyStore` given to it is returned as it is,
    /// not boxed a second time.
    ///
    /// # Panics
    ///
    /// Never: the store is taken out of its `Option` once.
    pub fn new<S: SessionStore>(store: S) -> Self {
        let mut store = Some(store);
        if let Some(any) = (&mut store as &mut dyn std::any::Any).downcast_mut::<Option<Self>>() {
            return any.take().expect("taken once");
        }
        let store = store.expect("taken once");
        #[cfg(feature = "flask")]
        let flask = store.flask_layout();
        Self {
            store: Arc::new(store),
            #[cfg(feature = "flask")]
            flask,
            cache: None,
            kind: S::KIND,
        }
    }

    /// What the store is, as logs and metrics label it: the
    /// `SESSION_TYPE` of a store [`open`] made (`redis`, `sql`, ...); for a
    /// store built in code, its [`SessionStore::KIND`] (`memory` for
    /// `MemoryStore`, also behind an `Arc`; `near_cache` for a `NearCache`;
    /// `custom` for a type of the app's that does not say), unless
    /// [`with_kind`](Self::with_kind) set it.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Sets what [`kind`](Self::kind) returns.
    #[must_use]
    pub fn with_kind(mut self, kind: &'static str) -> Self {
        self.kind = kind;
        self
    }

    /// Wraps a store with a near cache in front of it, keeping a handle on
    /// the cache's statistics ([`cache_stats`](Self::cache_stats)).
    pub fn cached<S: SessionStore>(store: NearCache<S>) -> Self {
        let handle = store.handle();
        Self {
            cache: Some(handle),
            ..Self::new(store)
        }
    }

    /// The statistics of the near cache in front of the store
    /// (`SESSION_LOCAL_CACHE`), if there is one.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(near::CacheHandle::stats)
    }

    /// The store, if it keeps sessions in Flask-Session's layout.
    #[cfg(feature = "flask")]
    #[cfg_attr(docsrs, doc(cfg(feature = "flask")))]
    pub fn flask(&self) -> Option<&FlaskLayout> {
        self.flask.as_ref()
    }
}

impl std::fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnyStore(..)")
    }
}

impl SessionStore for AnyStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.store.load(key).await
    }
    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.store.create(key, record, ttl).await
    }
    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        self.store.apply(key, changes, ttl).await
    }
    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        self.store.touch(key, ttl).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.store.delete(key).await
    }
    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.store.take(key).await
    }
    async fn scan(&self, prefix: &str, cursor: Option<&str>) -> Result<ScanPage, StoreError> {
        self.store.scan(prefix, cursor).await
    }
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.store.purge_expired().await
    }
    #[cfg(feature = "flask")]
    fn flask_layout(&self) -> Option<FlaskLayout> {
        self.flask.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Timeout, null};

    /// A store's kind is what it says of itself, not its type's name
    /// (whose text Rust does not promise): behind an `Arc` too.
    #[cfg(feature = "memory")]
    #[test]
    fn a_stores_kind_is_what_it_says() {
        use crate::store::memory::MemoryStore;
        assert_eq!(AnyStore::new(MemoryStore::new()).kind(), "memory");
        assert_eq!(AnyStore::new(Arc::new(MemoryStore::new())).kind(), "memory");
        assert_eq!(AnyStore::new(null::NullStore).kind(), "null");
        let near = near::NearCache::local(MemoryStore::new(), 10);
        assert_eq!(AnyStore::cached(near).kind(), "near_cache");
        let timed = Timeout::new(MemoryStore::new(), Duration::from_secs(1));
        assert_eq!(AnyStore::new(timed).kind(), "custom");
        assert_eq!(AnyStore::new(MemoryStore::new()).with_kind("x").kind(), "x");
    }
}
