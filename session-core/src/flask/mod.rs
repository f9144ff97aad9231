//! Sessions shared with a Flask app that uses Flask-Session 0.8
//! (`SESSION_INTEROP=flask-session`).
//!
//! A team moving a Flask app to Rust a route at a time keeps both apps
//! behind one domain; with this layout they read and write the same
//! sessions in the same store, so a user logged in on a Flask page is
//! logged in on an actix-web page, and back.
//!
//! # What is shared
//!
//! - **Keys**: `SESSION_KEY_PREFIX` + the session id, in clear, as
//!   Flask-Session keys them (so `SESSION_HASH_IDS` cannot apply).
//! - **Values**: the whole session as one map, in MessagePack (Flask-Session's
//!   default) or JSON ([`FlaskFormat`]); each session key is one value of
//!   that map. Values are kept as the bytes Flask wrote: a key this side
//!   does not change is written back byte for byte. Pickle is never read
//!   or written: a value that is not a map in the format reads as no
//!   session (a warning is logged), and nothing is written over it.
//! - **Size**: a map holds at most [`MAX_ENTRIES`] entries. A stored map
//!   past it reads as no session too, with a warning naming the limit
//!   (reading stops there, so a planted map costs no more than one at the
//!   limit), and a write that would take a map past it fails with an error
//!   naming the limit. Reading a map takes time linear in its size.
//! - **Ids and cookies**: Flask's 43-character ids; with `SESSION_USE_SIGNER`,
//!   ids signed as Flask-Session signs them ([`FlaskSigner`]).
//!
//! # Concurrency
//!
//! Every write is a read-modify-write of the whole value that applies only
//! this request's changes, made atomic by the store's compare-and-swap
//! ([`BlobStore::replace`]) and retried when another write came first. So
//! concurrent requests on this side never lose each other's writes to
//! different keys, and a write racing a logout does not bring the session
//! back. Flask-Session itself writes the whole value, last writer wins, on
//! every request when `SESSION_REFRESH_EACH_REQUEST` is true (its
//! default), read-only requests included: a Flask request that overlaps
//! one of ours may put back what it read, dropping our write. Set
//! `SESSION_REFRESH_EACH_REQUEST = False` on the Flask side to limit that
//! to Flask requests that change the session.
//!
//! # Stores
//!
//! Any [`BlobStore`]: the Redis store (single, Sentinel, Cluster) and the
//! memcached store are ones, on keys of their own; the SQL and MongoDB
//! stores open Flask-Session's table and collection with
//! `build_flask_session`. [`FlaskStore`] turns one into a session store.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::StoreKey;
use crate::codec::Codec;
use crate::id::SessionId;
use crate::store::{Applied, ChangeSet, FlaskLayout, Record, SessionStore, StoreError};

mod map;
mod msgpack;
mod signer;
mod time;

pub use map::MAX_ENTRIES;
use map::{DecodeError, Map};
pub use signer::{FlaskSigner, TAG_LEN};
pub use time::Timestamp;

/// How Flask-Session serializes sessions: its
/// `SESSION_SERIALIZATION_FORMAT`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlaskFormat {
    /// `msgpack`: Flask-Session's default.
    #[default]
    MessagePack,
    /// `json`.
    Json,
}

impl FlaskFormat {
    /// The format of values encoded with `codec`.
    pub fn of(codec: Codec) -> Self {
        match codec {
            Codec::Json => FlaskFormat::Json,
            Codec::MessagePack => FlaskFormat::MessagePack,
        }
    }

    /// The codec session values are encoded with in this format.
    pub fn codec(self) -> Codec {
        match self {
            FlaskFormat::MessagePack => Codec::MessagePack,
            FlaskFormat::Json => Codec::Json,
        }
    }
}

impl FlaskLayout {
    /// The format the sessions are stored in: Flask-Session's
    /// `SESSION_SERIALIZATION_FORMAT`.
    pub fn format(&self) -> FlaskFormat {
        FlaskFormat::of(self.codec())
    }
}

/// One stored value, as [`BlobStore::get`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// The value.
    pub value: Bytes,
    /// When it expires, if the store can tell in the same call.
    pub expires_at: Option<SystemTime>,
    /// The store's own version of the value, if it has one (memcached's
    /// cas value), for [`BlobStore::replace`]; stores that compare the
    /// value itself leave it 0.
    pub version: u64,
}

/// A store that keeps one opaque value per key, with a lifetime, and can
/// replace a value only if it did not change since it was read
/// (compare-and-swap). [`FlaskStore`] builds sessions on it.
///
/// Every method treats an expired value as missing.
pub trait BlobStore: Send + Sync + 'static {
    /// The live value under `key`, if any.
    fn get(&self, key: &StoreKey) -> impl Future<Output = Result<Option<Blob>, StoreError>> + Send;

    /// Stores `value` for `ttl` unless a live value is under `key`;
    /// `false` if one is (nothing is written).
    fn insert(
        &self,
        key: &StoreKey,
        value: &[u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces `current` (as [`get`](Self::get) returned it) by `value`
    /// for `ttl`, or deletes it when `value` is `None`, atomically and only
    /// if the stored value is still `current`; `false` if it changed, was
    /// deleted or expired (nothing is written).
    fn replace(
        &self,
        key: &StoreKey,
        current: &Blob,
        value: Option<&[u8]>,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes the value under `key`; a missing value is not an error.
    fn delete(&self, key: &StoreKey) -> impl Future<Output = Result<(), StoreError>> + Send;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe form of [`BlobStore`].
trait DynBlobStore: Send + Sync + 'static {
    fn get<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<Blob>, StoreError>>;
    fn insert<'a>(
        &'a self,
        key: &'a StoreKey,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn replace<'a>(
        &'a self,
        key: &'a StoreKey,
        current: &'a Blob,
        value: Option<&'a [u8]>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn delete<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>>;
}

impl<B: BlobStore> DynBlobStore for B {
    fn get<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<Blob>, StoreError>> {
        Box::pin(BlobStore::get(self, key))
    }
    fn insert<'a>(
        &'a self,
        key: &'a StoreKey,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(BlobStore::insert(self, key, value, ttl))
    }
    fn replace<'a>(
        &'a self,
        key: &'a StoreKey,
        current: &'a Blob,
        value: Option<&'a [u8]>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(BlobStore::replace(self, key, current, value, ttl))
    }
    fn delete<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(BlobStore::delete(self, key))
    }
}

/// How many times a write is tried again when another write came between
/// its read and its compare-and-swap, before the call fails.
const MAX_ATTEMPTS: u32 = 64;

/// Sessions in Flask-Session's layout, on any [`BlobStore`]: see the
/// [module docs](self).
///
/// Given to [`SessionMiddleware::builder`](../../session_actix/struct.SessionMiddleware.html),
/// it switches the middleware to Flask-Session's ids, cookies and values.
///
/// Keys that are not a session's (`SESSION_KEY_PREFIX` + an id), such as
/// the notes a login leaves and a user's index of sessions, are stored as
/// maps too (so Flask can read anything under the prefix without falling
/// back to pickle), with each value as a MessagePack binary or a JSON
/// string.
#[derive(Clone)]
pub struct FlaskStore {
    blob: Arc<dyn DynBlobStore>,
    format: FlaskFormat,
    prefix: String,
}

impl std::fmt::Debug for FlaskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlaskStore")
            .field("format", &self.format)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl FlaskStore {
    /// Sessions on `blob`, in MessagePack, under the prefix `session:`
    /// (Flask-Session's defaults).
    pub fn new(blob: impl BlobStore) -> Self {
        Self {
            blob: Arc::new(blob),
            format: FlaskFormat::default(),
            prefix: "session:".to_owned(),
        }
    }

    /// The format the Flask app's `SESSION_SERIALIZATION_FORMAT` names.
    #[must_use]
    pub fn with_format(mut self, format: FlaskFormat) -> Self {
        self.format = format;
        self
    }

    /// The Flask app's `SESSION_KEY_PREFIX`; it must match the
    /// middleware's.
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The format values are stored in.
    pub fn format(&self) -> FlaskFormat {
        self.format
    }

    /// The key prefix of the Flask app's sessions.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether `key` is a session's, as Flask-Session names them; other
    /// keys are this crate's own records.
    fn is_session(&self, key: &StoreKey) -> bool {
        key.as_str()
            .strip_prefix(&self.prefix)
            .is_some_and(|sid| SessionId::parse(sid).is_some())
    }

    /// Reads a stored value into a map of entries as the middleware sees
    /// them; `None` (and a warning) when it is not a map in the format or
    /// has more than [`MAX_ENTRIES`] entries.
    fn decode(&self, key: &StoreKey, value: &Bytes) -> Option<Map> {
        let mut map = Map::decode(self.format, value);
        if !self.is_session(key) {
            map = map.and_then(|mut map| match map.map_values(|v| self.unwrap_own(v)) {
                Some(()) => Ok(map),
                None => Err(DecodeError::NotAMap(self.format)),
            });
        }
        if let Err(error) = &map {
            tracing::warn!(
                key = %crate::id::fingerprint(key.as_str()),
                "a stored session is {error}: it is treated as missing",
            );
        }
        map.ok()
    }

    /// Encodes a map, after checking that it has at most [`MAX_ENTRIES`]
    /// entries (so this side can read it back), that every value a
    /// session holds is one value of the format (so Flask can always
    /// decode it), and wrapping the values of this crate's own records.
    fn encode(&self, key: &StoreKey, mut map: Map) -> Result<Vec<u8>, StoreError> {
        if map.len() > MAX_ENTRIES {
            return Err(StoreError::backend(format!(
                "a map of {} entries is past the {MAX_ENTRIES} a stored map may have: it could not be read back",
                map.len()
            )));
        }
        if self.is_session(key) {
            if let Some(bad) = map
                .text_entries()
                .into_iter()
                .find(|(_, v)| !map::is_one_value(self.format, v))
            {
                return Err(StoreError::backend(format!(
                    "the value of session key {:?} is not one {:?} value: Flask could not read the session",
                    bad.0, self.format
                )));
            }
        } else {
            map.map_values(|v| Some(self.wrap_own(v)));
        }
        Ok(map.encode(self.format))
    }

    /// One of this crate's own values as one value of the format: binary
    /// data in MessagePack, a string in JSON (these values are text).
    fn wrap_own(&self, value: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(value.len() + 5);
        match self.format {
            FlaskFormat::MessagePack => msgpack::write_bin(&mut out, value),
            FlaskFormat::Json => {
                let text = String::from_utf8_lossy(value);
                serde_json::to_writer(&mut out, &text).expect("a string always serializes");
            }
        }
        Bytes::from(out)
    }

    fn unwrap_own(&self, value: &Bytes) -> Option<Bytes> {
        match self.format {
            FlaskFormat::MessagePack => {
                let header = match *value.first()? {
                    0xc4 => 2,
                    0xc5 => 3,
                    0xc6 => 5,
                    _ => return None,
                };
                (msgpack::value_len(value)? == value.len()).then(|| value.slice(header..))
            }
            FlaskFormat::Json => serde_json::from_slice::<String>(value)
                .ok()
                .map(Bytes::from),
        }
    }

    /// Reads the value under `key` and hands it to `step` (`None`: there is
    /// none), which says what to write in its place, until no other write
    /// came between the read and the compare-and-swap; returns what `step`
    /// said to return.
    async fn swap<T>(
        &self,
        key: &StoreKey,
        ttl: Duration,
        mut step: impl FnMut(Option<&Blob>) -> Result<Step<T>, StoreError>,
    ) -> Result<T, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                back_off(attempt).await;
            }
            let current = self.blob.get(key).await?;
            let (value, outcome) = match step(current.as_ref())? {
                Step::Return(outcome) => return Ok(outcome),
                Step::Write(value, outcome) => (value, outcome),
            };
            let current = current.expect("a step writes only over a value it read");
            if self
                .blob
                .replace(key, &current, value.as_deref(), ttl)
                .await?
            {
                return Ok(outcome);
            }
        }
        Err(gave_up())
    }
}

/// What one try of [`FlaskStore::swap`] does with the value it read.
enum Step<T> {
    /// Write nothing, and return this.
    Return(T),
    /// Replace the value read by this (`None`: delete it), and return the
    /// outcome if no other write came first.
    Write(Option<Bytes>, T),
}

fn gave_up() -> StoreError {
    StoreError::backend(format!(
        "gave up after {MAX_ATTEMPTS} attempts: other writes to this session kept coming first"
    ))
}

/// Waits a little before trying a write again, longer each time, with
/// jitter so that the writers that collided do not collide again.
async fn back_off(attempt: u32) {
    let mut jitter = [0u8; 1];
    let _ = getrandom::fill(&mut jitter);
    let micros = (50u64 << attempt.min(6)) + u64::from(jitter[0]) * 4;
    tokio::time::sleep(Duration::from_micros(micros)).await;
}

impl SessionStore for FlaskStore {
    const KIND: &'static str = "flask";

    fn flask_layout(&self) -> Option<FlaskLayout> {
        Some(FlaskLayout::new(self.format.codec(), self.prefix.clone()))
    }

    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let Some(blob) = self.blob.get(key).await? else {
            return Ok(None);
        };
        Ok(self.decode(key, &blob.value).map(|map| Record {
            entries: map.text_entries(),
            expires_at: blob.expires_at,
            // Flask-Session's layout has no creation time.
            created_at: None,
        }))
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let value = self.encode(key, Map::from_entries(&record.entries))?;
        if self.blob.insert(key, &value, ttl).await? {
            return Ok(true);
        }
        if self.is_session(key) {
            return Ok(false);
        }
        // One of this crate's own records that cannot be read (written in
        // the other format, say) would block its key for good: it is
        // replaced. A Flask session is never written over.
        let Some(current) = self.blob.get(key).await? else {
            return self.blob.insert(key, &value, ttl).await;
        };
        if Map::decode(self.format, &current.value).is_ok() {
            return Ok(false);
        }
        self.blob.replace(key, &current, Some(&value), ttl).await
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        self.swap(key, ttl, |current| {
            let Some(mut map) = current.and_then(|c| self.decode(key, &c.value)) else {
                return Ok(Step::Return(Applied::Gone));
            };
            if let Some(size) = changes.too_large(&map.text_entries()) {
                return Ok(Step::Return(Applied::TooLarge { size }));
            }
            map.apply(changes);
            Ok(if map.is_empty() {
                Step::Write(None, Applied::Deleted)
            } else {
                Step::Write(Some(Bytes::from(self.encode(key, map)?)), Applied::Done)
            })
        })
        .await
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        // The value is written back as it was read, with the new lifetime.
        self.swap(key, ttl, |current| {
            Ok(
                match current.filter(|c| self.decode(key, &c.value).is_some()) {
                    Some(current) => Step::Write(Some(current.value.clone()), Applied::Done),
                    None => Step::Return(Applied::Gone),
                },
            )
        })
        .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.blob.delete(key).await
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        // A delete that succeeds only if nothing was written since the
        // read: every write that succeeded before it is in what it returns.
        self.swap(key, Duration::ZERO, |current| {
            Ok(match current {
                Some(current) => Step::Write(
                    None,
                    self.decode(key, &current.value).map(|map| Record {
                        entries: map.text_entries(),
                        expires_at: None,
                        created_at: None,
                    }),
                ),
                None => Step::Return(None),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Values in a map; `contended` makes every compare-and-swap fail.
    #[derive(Default)]
    struct Blobs {
        values: Mutex<HashMap<String, Bytes>>,
        contended: AtomicBool,
    }

    impl BlobStore for Arc<Blobs> {
        async fn get(&self, key: &StoreKey) -> Result<Option<Blob>, StoreError> {
            let values = self.values.lock().unwrap();
            Ok(values.get(key.as_str()).map(|v| Blob {
                value: v.clone(),
                expires_at: None,
                version: 0,
            }))
        }
        async fn insert(
            &self,
            key: &StoreKey,
            value: &[u8],
            _: Duration,
        ) -> Result<bool, StoreError> {
            let mut values = self.values.lock().unwrap();
            if values.contains_key(key.as_str()) {
                return Ok(false);
            }
            values.insert(key.as_str().to_owned(), Bytes::copy_from_slice(value));
            Ok(true)
        }
        async fn replace(
            &self,
            key: &StoreKey,
            current: &Blob,
            value: Option<&[u8]>,
            _: Duration,
        ) -> Result<bool, StoreError> {
            let mut values = self.values.lock().unwrap();
            if self.contended.load(Ordering::Relaxed)
                || values.get(key.as_str()) != Some(&current.value)
            {
                return Ok(false);
            }
            match value {
                Some(v) => values.insert(key.as_str().to_owned(), Bytes::copy_from_slice(v)),
                None => values.remove(key.as_str()),
            };
            Ok(true)
        }
        async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
            self.values.lock().unwrap().remove(key.as_str());
            Ok(())
        }
    }

    /// A record of one entry.
    fn one(key: &str, value: &'static [u8]) -> Record {
        Record::from(HashMap::from([(key.to_owned(), Bytes::from_static(value))]))
    }

    fn session_key(prefix: &str) -> StoreKey {
        StoreKey::from_raw(format!("{prefix}{}", SessionId::generate().as_str()))
    }

    #[tokio::test]
    async fn this_crates_own_values_of_every_length_round_trip() {
        for format in [FlaskFormat::MessagePack, FlaskFormat::Json] {
            let blobs = Arc::new(Blobs::default());
            let store = FlaskStore::new(Arc::clone(&blobs)).with_format(format);
            let key = StoreKey::from_raw("session:user:abc");
            let entries: HashMap<String, Bytes> = [0, 1, 31, 255, 256, 70_000]
                .into_iter()
                .map(|n| (format!("k{n}"), Bytes::from("x".repeat(n))))
                .collect();
            assert!(
                store
                    .create(&key, &Record::from(entries.clone()), LONG)
                    .await
                    .unwrap()
            );
            assert_eq!(
                store.load(&key).await.unwrap().unwrap().entries,
                entries,
                "{format:?}"
            );
        }
    }

    #[tokio::test]
    async fn apply_changes_a_session_in_place_and_delete_removes_it() {
        let blobs = Arc::new(Blobs::default());
        let store = FlaskStore::new(Arc::clone(&blobs));
        let key = session_key("session:");
        let record = one("a", b"\x01");
        assert!(store.create(&key, &record, LONG).await.unwrap());
        let changes = ChangeSet {
            set: vec![("b".into(), Bytes::from_static(b"\x02"))],
            ..ChangeSet::default()
        };
        assert_eq!(
            store.apply(&key, &changes, LONG).await.unwrap(),
            Applied::Done
        );
        assert_eq!(
            blobs.values.lock().unwrap()[key.as_str()],
            &b"\x82\xa1a\x01\xa1b\x02"[..]
        );
        store.delete(&key).await.unwrap();
        assert!(blobs.values.lock().unwrap().is_empty());
        assert_eq!(store.load(&key).await.unwrap(), None);
    }

    #[tokio::test]
    async fn only_the_prefix_and_an_id_make_a_session_key() {
        let store = FlaskStore::new(Arc::new(Blobs::default())).with_key_prefix("app:");
        assert_eq!(store.format(), FlaskFormat::MessagePack);
        let json = store.clone().with_format(FlaskFormat::Json);
        assert_eq!(json.format(), FlaskFormat::Json);
        assert!(store.is_session(&session_key("app:")));
        assert!(!store.is_session(&session_key("session:")));
        assert!(!store.is_session(&StoreKey::from_raw(format!(
            "{}:moved",
            session_key("app:")
        ))));
        assert!(!store.is_session(&StoreKey::from_raw("app:user:0123")));
        assert_eq!(store.key_prefix(), "app:");
        assert_eq!(
            format!("{store:?}"),
            "FlaskStore { format: MessagePack, prefix: \"app:\", .. }"
        );
    }

    #[tokio::test]
    async fn a_refresh_keeps_an_empty_session_and_apply_deletes_it() {
        let blobs = Arc::new(Blobs::default());
        let store = FlaskStore::new(Arc::clone(&blobs));
        let key = session_key("session:");
        assert!(store.create(&key, &Record::default(), LONG).await.unwrap());
        assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Done);
        assert!(store.load(&key).await.unwrap().is_some(), "still there");
        let noop = ChangeSet {
            remove: vec!["missing".into()],
            ..ChangeSet::default()
        };
        assert_eq!(
            store.apply(&key, &noop, LONG).await.unwrap(),
            Applied::Deleted
        );
        assert_eq!(store.load(&key).await.unwrap(), None);
        assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Gone);
    }

    #[tokio::test]
    async fn a_write_that_never_wins_its_compare_and_swap_gives_up() {
        let blobs = Arc::new(Blobs::default());
        let store = FlaskStore::new(Arc::clone(&blobs));
        let key = session_key("session:");
        let record = one("a", b"\x01");
        assert!(store.create(&key, &record, LONG).await.unwrap());
        blobs.contended.store(true, Ordering::Relaxed);
        let changes = ChangeSet {
            set: vec![("a".into(), Bytes::from_static(b"\x02"))],
            ..ChangeSet::default()
        };
        let error = store.apply(&key, &changes, LONG).await.unwrap_err();
        assert!(
            error.to_string().contains("gave up after 64 attempts"),
            "{error}"
        );
        assert!(store.take(&key).await.is_err());
        blobs.contended.store(false, Ordering::Relaxed);
        assert_eq!(
            store.take(&key).await.unwrap().unwrap().entries,
            record.entries
        );
        assert_eq!(store.take(&key).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_session_past_max_entries_is_no_session_and_is_never_overwritten() {
        let blobs = Arc::new(Blobs::default());
        let store = FlaskStore::new(Arc::clone(&blobs));
        let key = session_key("session:");
        let entries: HashMap<String, Bytes> = (0..=MAX_ENTRIES)
            .map(|i| (format!("k{i}"), Bytes::from_static(&[0xc0])))
            .collect();
        let stored = Bytes::from(Map::from_entries(&entries).encode(FlaskFormat::MessagePack));
        blobs
            .values
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), stored.clone());
        assert_eq!(store.load(&key).await.unwrap(), None);
        assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Gone);
        assert!(!store.create(&key, &one("a", b"\x01"), LONG).await.unwrap());
        assert_eq!(blobs.values.lock().unwrap()[key.as_str()], stored);
    }

    #[tokio::test]
    async fn a_write_past_max_entries_is_refused_naming_the_limit() {
        let blobs = Arc::new(Blobs::default());
        let store = FlaskStore::new(Arc::clone(&blobs));
        let key = session_key("session:");
        let entries: HashMap<String, Bytes> = (0..MAX_ENTRIES)
            .map(|i| (format!("k{i}"), Bytes::from_static(&[0xc0])))
            .collect();
        assert!(
            store
                .create(&key, &Record::from(entries.clone()), LONG)
                .await
                .unwrap()
        );
        let one_more = ChangeSet {
            set: vec![("new".into(), Bytes::from_static(b"\x01"))],
            ..ChangeSet::default()
        };
        let error = store.apply(&key, &one_more, LONG).await.unwrap_err();
        assert!(
            error
                .to_string()
                .contains("past the 10000 a stored map may have"),
            "{error}"
        );
        assert_eq!(store.load(&key).await.unwrap().unwrap().entries, entries);
        let mut past = entries;
        past.insert("new".into(), Bytes::from_static(b"\x01"));
        let other = session_key("session:");
        let error = store
            .create(&other, &Record::from(past), LONG)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("10000"), "{error}");
        assert_eq!(store.load(&other).await.unwrap(), None);
    }

    #[test]
    fn formats_and_codecs_match() {
        for format in [FlaskFormat::MessagePack, FlaskFormat::Json] {
            assert_eq!(FlaskFormat::of(format.codec()), format);
        }
        let key = StoreKey::from_raw("session:abc");
        assert!(crate::id::fingerprint(key.as_str()).starts_with("sha256:"));
        assert_eq!(crate::id::fingerprint(key.as_str()).len(), 7 + 12);
        assert!(!crate::id::fingerprint(key.as_str()).contains("abc"));
    }

    const LONG: Duration = Duration::from_secs(600);
}
