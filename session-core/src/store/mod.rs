//! The store trait and the stores.
//!
//! A store keeps sessions on the server, under a [`StoreKey`], as a set of
//! entries (one encoded value per session key). The middleware never writes
//! a whole session back: it sends a [`ChangeSet`], the keys a request set,
//! removed or cleared, and the store applies it atomically. That is what lets
//! two concurrent requests of one session change different keys without one
//! losing the other's write.
//!
//! # Layout
//!
//! The trait and its types sit at the top of this module: [`SessionStore`]
//! with [`Record`], [`ChangeSet`], [`Applied`] and [`StoreError`],
//! [`AnyStore`] for a store chosen at run time, and [`open`], which builds
//! one from a [`SessionConfig`](crate::SessionConfig). Below them are two
//! kinds of stores:
//!
//! - backends keep sessions somewhere: [`memory`], [`filesystem`],
//!   [`redis`], [`memcached`], [`sql`], [`mongodb`], [`cookie`] and
//!   [`null`];
//! - layers wrap any store and add one concern: [`Timeout`],
//!   [`Instrumented`], the [`near`] cache and [`Migrating`].
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

mod any;
mod backends;
mod error;
#[cfg(feature = "flask")]
mod flask_layout;
mod layers;
mod open;
mod record;
mod scan;
mod session_store;

/// The key a store keeps a session under, as every method takes it.
pub use crate::id::StoreKey;
pub use any::AnyStore;
#[doc(hidden)]
pub use any::{BoxFuture, DynSessionStore};
#[cfg(feature = "cookie")]
#[cfg_attr(docsrs, doc(cfg(feature = "cookie")))]
pub use backends::cookie;
#[cfg(feature = "filesystem")]
#[cfg_attr(docsrs, doc(cfg(feature = "filesystem")))]
pub use backends::filesystem;
#[cfg(feature = "memcached")]
#[cfg_attr(docsrs, doc(cfg(feature = "memcached")))]
pub use backends::memcached;
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub use backends::memory;
#[cfg(feature = "mongodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "mongodb")))]
pub use backends::mongodb;
pub use backends::null;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use backends::redis;
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
pub use backends::sql;
pub use error::StoreError;
#[cfg(feature = "flask")]
#[cfg_attr(docsrs, doc(cfg(feature = "flask")))]
pub use flask_layout::FlaskLayout;
pub use layers::{CacheStats, Instrumented, Migrating, NearCache, Timeout};
pub use layers::{instrument, migrating, near};
pub use open::{Backend, open};
pub use record::{Applied, ChangeSet, Record, session_size};
pub use scan::{ScanPage, scan_all};
pub use session_store::SessionStore;
