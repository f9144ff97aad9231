//! The store trait and the stores.
//!
//! A store keeps sessions on the server, under a [`StoreKey`], as a set of
//! entries (one encoded value per session key). The middleware never writes
//! a whole session back: it sends a [`ChangeSet`], the keys a request set,
//! removed or cleared, and the store applies it atomically. That is what lets
//! two concurrent requests of one session change different keys without one
//! losing the other's write.
//!
//! # Implementing your own store
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use std::time::{Duration, Instant};
//!
//! use session_core::store::{Applied, ChangeSet, Record, SessionStore, StoreError};
//! use session_core::StoreKey;
//!
//! /// One mutex over a map: every change set is applied under it.
//! #[derive(Default)]
//! struct MyStore(Mutex<HashMap<String, (Record, Instant)>>);
//!
//! impl MyStore {
//!     fn live<'a>(
//!         map: &'a mut HashMap<String, (Record, Instant)>,
//!         key: &StoreKey,
//!     ) -> Option<&'a mut (Record, Instant)> {
//!         match map.get(key.as_str()) {
//!             Some((_, expires)) if *expires <= Instant::now() => {
//!                 map.remove(key.as_str());
//!                 None
//!             }
//!             _ => map.get_mut(key.as_str()),
//!         }
//!     }
//! }
//!
//! impl SessionStore for MyStore {
//!     async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
//!         let mut map = self.0.lock().unwrap();
//!         Ok(Self::live(&mut map, key).map(|(record, _)| record.clone()))
//!     }
//!
//!     async fn create(&self, key: &StoreKey, record: &Record, ttl: Duration) -> Result<bool, StoreError> {
//!         let mut map = self.0.lock().unwrap();
//!         if Self::live(&mut map, key).is_some() {
//!             return Ok(false);
//!         }
//!         map.insert(key.as_str().to_owned(), (record.clone(), Instant::now() + ttl));
//!         Ok(true)
//!     }
//!
//!     async fn apply(&self, key: &StoreKey, changes: &ChangeSet, ttl: Duration) -> Result<Applied, StoreError> {
//!         let mut map = self.0.lock().unwrap();
//!         let Some((record, expires)) = Self::live(&mut map, key) else {
//!             return Ok(Applied::Gone); // never re-create: logout must stay final
//!         };
//!         changes.apply_to(&mut record.entries);
//!         *expires = Instant::now() + ttl;
//!         if record.entries.is_empty() {
//!             map.remove(key.as_str());
//!             return Ok(Applied::Deleted);
//!         }
//!         Ok(Applied::Done)
//!     }
//!
//!     async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
//!         let mut map = self.0.lock().unwrap();
//!         Ok(match Self::live(&mut map, key) {
//!             Some((_, expires)) => {
//!                 *expires = Instant::now() + ttl;
//!                 Applied::Done
//!             }
//!             None => Applied::Gone,
//!         })
//!     }
//!
//!     async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
//!         self.0.lock().unwrap().remove(key.as_str());
//!         Ok(())
//!     }
//!
//!     async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
//!         let mut map = self.0.lock().unwrap();
//!         let live = Self::live(&mut map, key).is_some();
//!         Ok(map.remove(key.as_str()).filter(|_| live).map(|(record, _)| record))
//!     }
//! }
//! ```
//!
//! With the `testing` feature, [`store_suite!`](crate::store_suite) generates
//! one test per contract below, to run against your store (see
//! [`testing`](crate::testing)).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::codec::entry_size;

#[cfg(feature = "cookie")]
#[cfg_attr(docsrs, doc(cfg(feature = "cookie")))]
pub mod cookie;
#[cfg(feature = "filesystem")]
#[cfg_attr(docsrs, doc(cfg(feature = "filesystem")))]
pub mod filesystem;
pub mod instrument;
#[cfg(feature = "memcached")]
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
pub mod memcached;
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub mod memory;
pub mod migrating;
#[cfg(feature = "mongodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "mongodb")))]
pub mod mongodb;
pub mod near;
pub mod null;
mod open;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
#[cfg(any(
    feature = "sql-postgres",
    feature = "sql-mysql",
    feature = "sql-sqlite"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "sql-postgres",
        feature = "sql-mysql",
        feature = "sql-sqlite"
    )))
)]
pub mod sql;
mod timeout;

/// The key a store keeps a session under, as every method takes it.
pub use crate::id::StoreKey;
pub use instrument::Instrumented;
pub use migrating::Migrating;
pub use near::{CacheStats, NearCache};
pub use open::{Backend, open};
pub use timeout::Timeout;

/// A session as a store keeps it: encoded values by session key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The session's entries: each value encoded by the session's codec.
    pub entries: HashMap<String, Bytes>,
    /// When the session expires, if the store can tell cheaply on
    /// [`load`](SessionStore::load). The middleware uses it to extend a
    /// session's lifetime only when a refresh is due, instead of writing on
    /// every request; `None` makes every request that reads the session
    /// refresh it. [`create`](SessionStore::create) ignores it.
    pub expires_at: Option<SystemTime>,
    /// When the session was first created, kept across a login's move to a
    /// new id; the middleware's absolute lifetime counts from it. A store
    /// keeps what [`create`](SessionStore::create) is given (to the
    /// millisecond; [`apply`](SessionStore::apply) and
    /// [`touch`](SessionStore::touch) leave it unchanged) and returns it from
    /// [`load`](SessionStore::load) and [`take`](SessionStore::take). `None`:
    /// not known (a session written by a version that did not record it).
    pub created_at: Option<SystemTime>,
}

impl From<HashMap<String, Bytes>> for Record {
    fn from(entries: HashMap<String, Bytes>) -> Self {
        Self {
            entries,
            expires_at: None,
            created_at: None,
        }
    }
}

impl Record {
    /// The session's size as [`SESSION_MAX_SIZE`](crate::SessionConfig::max_size)
    /// counts it: the sum of [`entry_size`] over its entries.
    pub fn size(&self) -> usize {
        session_size(&self.entries)
    }
}

/// The size of a session's entries as the size limit counts it: the sum of
/// [`entry_size`] over them.
pub fn session_size(entries: &HashMap<String, Bytes>) -> usize {
    entries.iter().map(|(k, v)| entry_size(k, v)).sum()
}

/// What one request changed in a session, key by key.
///
/// A store applies it in this order: `clear` (drop every entry), then
/// `remove`, then `set`. No key is in both `set` and `remove`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Drop every entry before applying the rest.
    pub clear: bool,
    /// Entries to write, with their encoded values.
    pub set: Vec<(String, Bytes)>,
    /// Keys to remove.
    pub remove: Vec<String>,
    /// The largest the session may be once the change set is applied, in
    /// bytes as [`session_size`] counts them (`SESSION_MAX_SIZE`). A store
    /// checks it on the merged result, atomically with the write: past it,
    /// nothing is written and the result is [`Applied::TooLarge`]. `None`:
    /// no limit.
    pub max_size: Option<usize>,
}

impl ChangeSet {
    /// True when applying it would change nothing.
    pub fn is_empty(&self) -> bool {
        !self.clear && self.set.is_empty() && self.remove.is_empty()
    }

    /// The size `entries` would have once the change set is applied, as
    /// [`session_size`] counts it, without changing them.
    pub fn size_after(&self, entries: &HashMap<String, Bytes>) -> usize {
        let mut size = if self.clear { 0 } else { session_size(entries) };
        let old = |key: &str| match (self.clear, entries.get(key)) {
            (false, Some(value)) => entry_size(key, value),
            _ => 0,
        };
        let mut removed = std::collections::HashSet::new();
        for key in &self.remove {
            if removed.insert(key.as_str()) {
                size -= old(key);
            }
        }
        for (key, value) in &self.set {
            if removed.insert(key.as_str()) {
                size -= old(key);
            }
            size += entry_size(key, value);
        }
        size
    }

    /// `Some(size)` when applying the change set to `entries` would take
    /// the session past [`max_size`](Self::max_size): the size it would
    /// have. Stores that merge in their own code check it before writing.
    pub fn too_large(&self, entries: &HashMap<String, Bytes>) -> Option<usize> {
        let limit = self.max_size?;
        let size = self.size_after(entries);
        (size > limit).then_some(size)
    }

    /// Applies the change set to a map of entries, in the documented order.
    pub fn apply_to(&self, entries: &mut HashMap<String, Bytes>) {
        if self.clear {
            entries.clear();
        }
        for key in &self.remove {
            entries.remove(key);
        }
        for (key, value) in &self.set {
            entries.insert(key.clone(), value.clone());
        }
    }
}

/// The outcome of [`SessionStore::apply`] and [`SessionStore::touch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Applied {
    /// The session existed and the change (or new lifetime) was written.
    Done,
    /// The session existed, and the change left it without entries, so it
    /// was deleted ([`apply`](SessionStore::apply) only).
    Deleted,
    /// No live session is stored under the key: it was deleted (logout) or
    /// it expired. Nothing was written.
    Gone,
    /// The change set would have taken the session past its
    /// [`max_size`](ChangeSet::max_size) ([`apply`](SessionStore::apply)
    /// only). Nothing was written.
    TooLarge {
        /// The size the session would have had.
        size: usize,
    },
}

/// A store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The null store was asked to write.
    #[error(
        "no session store is configured (SESSION_TYPE is `null`): set SESSION_TYPE to a real store to keep sessions"
    )]
    NotConfigured,
    /// The store did not answer in time.
    #[error("the session store did not answer within {0:?}")]
    Timeout(Duration),
    /// Reading or writing local storage failed.
    #[error("session store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// A store with a bounded size holds as many sessions in use as it may
    /// (sessions seen again after their creation are never evicted to make
    /// room for new ones), so a new session cannot be created.
    #[error(
        "the session store is full: {limit} sessions are in use ({setting}); raise it, or shorten the lifetime"
    )]
    Full {
        /// The configuration key that sets the bound.
        setting: &'static str,
        /// The bound.
        limit: usize,
    },
    /// The store cannot do this at all (for example list its sessions:
    /// [`SessionStore::scan`] on the cookie-free stores that keep no index).
    #[error("this session store cannot {0}")]
    Unsupported(&'static str),
    /// The store's backend reported an error.
    #[error("the session store failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps any backend error.
    pub fn backend(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Backend(error.into())
    }
}

/// One page of [`SessionStore::scan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Keys of sessions found on this page.
    pub keys: Vec<StoreKey>,
    /// Where the next page starts, to pass back to `scan`; `None` when the
    /// scan is over.
    pub next: Option<String>,
}

impl ScanPage {
    /// Where a scan that reads one numbered part per page (a shard, a
    /// server) of `parts` stands: the part `cursor` names (the first if
    /// `None`), and the cursor of the page after it (`None` after the
    /// last).
    #[cfg(any(feature = "memory", feature = "memcached"))]
    pub(crate) fn numbered(
        cursor: Option<&str>,
        parts: usize,
    ) -> Result<(usize, Option<String>), StoreError> {
        let index = match cursor {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|&i| i < parts)
                .ok_or_else(|| StoreError::backend(format!("not a scan cursor here: {c:?}")))?,
        };
        Ok((index, (index + 1 < parts).then(|| (index + 1).to_string())))
    }

    /// A page of keyset pagination: `ids` in key order, as a query with
    /// `LIMIT page` after the last page's last id returned them (every id,
    /// whatever its prefix). The next page starts after the last of them,
    /// unless there were fewer than `page`.
    #[cfg(any(feature = "mongodb", feature = "sql"))]
    pub(crate) fn keyset(ids: Vec<String>, prefix: &str, page: i64) -> Self {
        let next = (ids.len() as i64 == page)
            .then(|| ids.last().cloned())
            .flatten();
        Self {
            keys: ids
                .into_iter()
                .filter(|id| id.starts_with(prefix))
                .map(StoreKey::from_raw)
                .collect(),
            next,
        }
    }
}

/// Every key [`SessionStore::scan`] lists under `prefix`, page after
/// page, each once, in order; `listed` is told how many so far after each
/// page.
///
/// # Errors
///
/// The store's, and [`StoreError::Backend`] when a page names itself as
/// the next one (a scan that would never end).
pub async fn scan_all<S: SessionStore + ?Sized>(
    store: &S,
    prefix: &str,
    mut listed: impl FnMut(usize),
) -> Result<Vec<StoreKey>, StoreError> {
    let mut keys = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.scan(prefix, cursor.as_deref()).await?;
        keys.extend(page.keys.into_iter().map(|k| k.as_str().to_owned()));
        listed(keys.len());
        match page.next {
            Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                return Err(StoreError::backend(format!(
                    "the store's scan made no progress at {next:?}"
                )));
            }
            Some(next) => cursor = Some(next),
            None => return Ok(keys.into_iter().map(StoreKey::from_raw).collect()),
        }
    }
}

/// Where sessions are kept on the server.
///
/// Every method works on one session, named by its [`StoreKey`], and must
/// keep these contracts (the acceptance suite in `session_core::testing`
/// checks them):
///
/// - A session that expired is never returned, and counts as missing for
///   every method.
/// - [`apply`](Self::apply) never creates a session. On a missing one it
///   writes nothing and returns [`Applied::Gone`]: that is what makes logout
///   final against requests that were already in flight.
/// - A change set is applied atomically: two `apply` calls on one session
///   that change different keys both take effect, whatever their order.
/// - The size limit a change set carries ([`ChangeSet::max_size`]) holds
///   for the merged session, not for one request's copy: of concurrent
///   applies that together would pass it, those that would are refused
///   with [`Applied::TooLarge`].
/// - The creation time given to `create` ([`Record::created_at`]) comes
///   back from `load` and `take`, whatever `apply` and `touch` did since.
pub trait SessionStore: Send + Sync + 'static {
    /// What the store is, as logs and metrics label it when it is built in
    /// code (see [`AnyStore::kind`]): `"memory"`, `"redis"`, ... for this
    /// crate's stores; `"custom"` unless a store of the app's says.
    const KIND: &'static str = "custom";

    /// Loads a session, or `None` if it does not exist or has expired.
    fn load(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// Stores a new session that lives for `ttl`, unless a live session is
    /// already stored under `key`: then nothing is written and the result is
    /// `false`.
    fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Applies a change set to an existing session atomically and makes it
    /// live for `ttl` from now. A session left with no entries is deleted
    /// and the result is [`Applied::Deleted`]. On a missing or expired
    /// session nothing is written and the result is [`Applied::Gone`].
    fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    /// Makes an existing session live for `ttl` from now; [`Applied::Gone`]
    /// if it is missing or expired.
    fn touch(
        &self,
        key: &StoreKey,
        ttl: Duration,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    /// Deletes a session. Deleting a missing session is not an error.
    fn delete(&self, key: &StoreKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes a session and returns what it held, atomically: an `apply`
    /// that runs at the same time either is in the returned record or finds
    /// the session gone. `None` if it was missing or expired.
    ///
    /// Moving a session to a new id at login is built on it, so that a
    /// logout racing the login still wins.
    fn take(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// Lists the keys of the live sessions whose key starts with `prefix`,
    /// a page at a time: call it with `cursor` `None`, then with each
    /// page's [`next`](ScanPage::next) until it is `None`.
    ///
    /// For operator tools (`session-admin count`, `migrate`), never for a
    /// request: it walks the whole store. Every session live for the whole
    /// scan is listed; one created, deleted or expiring during it may be
    /// listed or not, and a key may come twice (Redis's `SCAN`), so a
    /// caller that counts keeps a set. A page may be empty while `next`
    /// is not.
    ///
    /// The default is [`StoreError::Unsupported`]: a store that keeps no
    /// index of its keys cannot list them.
    fn scan(
        &self,
        prefix: &str,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<ScanPage, StoreError>> + Send {
        let _ = (prefix, cursor);
        async { Err(StoreError::Unsupported("list its sessions")) }
    }

    /// Deletes the sessions that have expired, on a store that keeps them
    /// until someone does (SQL, files, memory); returns how many went. A
    /// store whose server drops them by itself (Redis, memcached, MongoDB's
    /// TTL index) returns 0, which is the default.
    fn purge_expired(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async { Ok(0) }
    }
}

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

/// A shared store is a store: keep an `Arc` of it to reach it from outside
/// the middleware (an admin task, a test).
impl<S: SessionStore> SessionStore for Arc<S> {
    const KIND: &'static str = S::KIND;
    fn load(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send {
        (**self).load(key)
    }
    fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).create(key, record, ttl)
    }
    fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send {
        (**self).apply(key, changes, ttl)
    }
    fn touch(
        &self,
        key: &StoreKey,
        ttl: Duration,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send {
        (**self).touch(key, ttl)
    }
    fn delete(&self, key: &StoreKey) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).delete(key)
    }
    fn take(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send {
        (**self).take(key)
    }
    fn scan(
        &self,
        prefix: &str,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<ScanPage, StoreError>> + Send {
        (**self).scan(prefix, cursor)
    }
    fn purge_expired(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).purge_expired()
    }
}

/// A store chosen at run time (for example from `SESSION_TYPE`).
#[derive(Clone)]
pub struct AnyStore {
    store: Arc<dyn DynSessionStore>,
    /// The store, when it is Flask-Session's layout: the middleware then
    /// speaks Flask-Session's ids, cookies and values.
    #[cfg(feature = "flask")]
    flask: Option<crate::flask::FlaskStore>,
    /// The near cache in front of the store, when `open` put one there.
    cache: Option<near::CacheHandle>,
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
        #[cfg(feature = "flask")]
        let flask = (&store as &dyn std::any::Any)
            .downcast_ref::<Option<crate::flask::FlaskStore>>()
            .and_then(Option::clone);
        Self {
            store: Arc::new(store.expect("taken once")),
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
    pub fn flask(&self) -> Option<&crate::flask::FlaskStore> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn change_set_applies_clear_then_remove_then_set() {
        let mut entries: HashMap<String, Bytes> = [("a", "1"), ("b", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Bytes::from(v)))
            .collect();
        ChangeSet {
            clear: false,
            set: vec![("c".into(), Bytes::from("3"))],
            remove: vec!["a".into()],
            max_size: None,
        }
        .apply_to(&mut entries);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries["c"], "3");
        ChangeSet {
            clear: true,
            set: vec![("d".into(), Bytes::from("4"))],
            remove: vec![],
            max_size: None,
        }
        .apply_to(&mut entries);
        assert_eq!(entries.keys().collect::<Vec<_>>(), ["d"]);
    }

    #[test]
    fn size_after_counts_the_merged_result() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let entries: HashMap<String, Bytes> =
            [("a".to_owned(), b("111")), ("b".to_owned(), b("22"))].into();
        let changes = ChangeSet {
            clear: false,
            set: vec![("a".into(), b("1")), ("c".into(), b("3333"))],
            remove: vec!["b".into(), "missing".into()],
            max_size: Some(10),
        };
        let mut merged = entries.clone();
        changes.apply_to(&mut merged);
        assert_eq!(changes.size_after(&entries), session_size(&merged));
        assert_eq!(changes.too_large(&entries), Some(session_size(&merged)));
        let cleared = ChangeSet {
            clear: true,
            ..changes.clone()
        };
        assert_eq!(
            cleared.size_after(&entries),
            entry_size("a", b"1") + entry_size("c", b"3333")
        );
        let unlimited = ChangeSet {
            max_size: None,
            ..changes
        };
        assert_eq!(unlimited.too_large(&entries), None);
    }
}
