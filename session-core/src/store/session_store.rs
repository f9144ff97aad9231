//! The store trait: the contract every store keeps.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

#[cfg(doc)]
use super::AnyStore;
#[cfg(feature = "flask")]
use super::FlaskLayout;
use super::{Applied, ChangeSet, Record, ScanPage, StoreError};
use crate::StoreKey;

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

    /// How the store keeps sessions when it keeps them in Flask-Session's
    /// layout, shared with a Flask app (see [`crate::flask`]): the
    /// middleware then speaks Flask-Session's ids, cookies and values.
    /// `None`, the default, for every other store.
    #[cfg(feature = "flask")]
    #[cfg_attr(docsrs, doc(cfg(feature = "flask")))]
    fn flask_layout(&self) -> Option<FlaskLayout> {
        None
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
