//! The `Session` handle: what a handler reads and writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use session_core::bytes::Bytes;
use session_core::codec::{CodecError, entry_size};
use session_core::store::{ChangeSet, Record, StoreError};
use session_core::{Codec, SessionId, StoreKey};

/// A session error a handler can meet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A value could not be encoded for storage.
    #[error("session key {key:?}: the value could not be serialized: {source}")]
    Serialize {
        /// The session key.
        key: String,
        /// What the codec said.
        #[source]
        source: CodecError,
    },
    /// A stored value does not deserialize into the type asked for (the
    /// type changed since it was stored, say). The entry is kept as it is.
    #[error("session key {key:?}: the stored value is not a `{type_name}`: {source}")]
    Deserialize {
        /// The session key.
        key: String,
        /// The type asked for.
        type_name: &'static str,
        /// What the codec said.
        #[source]
        source: CodecError,
    },
    /// An insert would make the session larger than the configured limit.
    #[error(
        "session key {key:?}: the session would grow to {size} bytes, over its limit of {limit} bytes (SESSION_MAX_SIZE, or what fits in a cookie for the cookie store)"
    )]
    TooLarge {
        /// The session key.
        key: String,
        /// The size the session would have had.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The store failed while loading the session, and the outage policy
    /// is to fail the request.
    #[error("the session store is unavailable")]
    Unavailable(#[source] StoreError),
    /// The key starts with a NUL character: such keys are reserved for
    /// the stores' own bookkeeping.
    #[error("session key {key:?}: keys starting with a NUL character are reserved")]
    ReservedKey {
        /// The session key.
        key: String,
    },
    /// The route has no session middleware.
    #[error(
        "no session middleware on this route: add `.wrap(SessionMiddleware::new(...))` to the App or scope"
    )]
    NoMiddleware,
}

impl ResponseError for SessionError {
    fn status_code(&self) -> StatusCode {
        match self {
            SessionError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body never says more than the status: details are for the log.
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).finish()
    }
}

/// Where a session stands after the handler, as the middleware sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionStatus {
    /// Nothing was changed.
    Unchanged,
    /// Some entries were set, removed or cleared.
    Changed,
    /// [`Session::renew`] was called: the data moves to a new id.
    Renewed,
    /// [`Session::purge`] was called: the session is deleted.
    Purged,
}

/// The session of the current request.
///
/// Take it as a handler argument (it is an extractor) or get it from a
/// request with [`SessionExt`](crate::SessionExt). Values are stored by key,
/// serialized with serde (JSON by default); like Flask's `session['name']`.
///
/// ```
/// use actix_web::{HttpResponse, Responder};
/// use session_actix::Session;
///
/// async fn visits(session: Session) -> actix_web::Result<impl Responder> {
///     let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
///     session.insert("visits", visits)?;
///     Ok(HttpResponse::Ok().body(visits.to_string()))
/// }
/// ```
///
/// Each change is recorded for its key, and only the changed keys are sent
/// to the store after the handler: two concurrent requests that change
/// different keys both keep their change. For the same key, the last write
/// wins.
///
/// `Session` is a cheap handle (cloning shares the session) and is `Send`
/// and `Sync`, so it can move into a spawned task; changes made after the
/// response has been sent are not saved.
#[derive(Clone)]
pub struct Session(pub(crate) Arc<Mutex<State>>);

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("Session")
            .field("keys", &state.entries.keys().collect::<Vec<_>>())
            .field("status", &state.status())
            .finish()
    }
}

/// A session's state within one request.
#[derive(Debug)]
pub(crate) struct State {
    /// The id the request came with, if it was well-formed (and signed).
    pub(crate) id: Option<SessionId>,
    /// The store key of `id`, computed once at load.
    pub(crate) key: Option<StoreKey>,
    /// The store (or cookie) had this session when it was loaded.
    pub(crate) exists: bool,
    /// The store failed at load and the policy is to serve an empty session:
    /// nothing is saved.
    pub(crate) degraded: bool,
    /// When the stored session expires, if known.
    pub(crate) expires_at: Option<SystemTime>,
    /// When the stored session was created, if known.
    pub(crate) created_at: Option<SystemTime>,
    /// A stored session was found but its absolute lifetime is over: it
    /// is treated as missing, and deleted after the request.
    pub(crate) ended: bool,
    /// The cookie was signed with a fallback key: sign it again.
    pub(crate) stale_key: bool,
    /// The session as the handler sees it.
    pub(crate) entries: HashMap<String, Bytes>,
    size: usize,
    /// Per key: `Some` set, `None` removed.
    changes: HashMap<String, Option<Bytes>>,
    cleared: bool,
    renewed: bool,
    purged: bool,
    codec: Codec,
    max_size: usize,
}

impl State {
    pub(crate) fn new(
        id: Option<SessionId>,
        record: Option<Record>,
        codec: Codec,
        max_size: usize,
    ) -> Self {
        let (exists, record) = match record {
            Some(record) => (true, record),
            None => (false, Record::default()),
        };
        Self {
            id,
            key: None,
            exists,
            degraded: false,
            expires_at: record.expires_at,
            created_at: record.created_at,
            ended: false,
            stale_key: false,
            size: record.entries.iter().map(|(k, v)| entry_size(k, v)).sum(),
            entries: record.entries,
            changes: HashMap::new(),
            cleared: false,
            renewed: false,
            purged: false,
            codec,
            max_size,
        }
    }

    pub(crate) fn status(&self) -> SessionStatus {
        if self.purged {
            SessionStatus::Purged
        } else if self.renewed {
            SessionStatus::Renewed
        } else if self.cleared || !self.changes.is_empty() {
            SessionStatus::Changed
        } else {
            SessionStatus::Unchanged
        }
    }

    /// The change set for the store: only what this request changed.
    pub(crate) fn change_set(&self) -> ChangeSet {
        let mut changes = ChangeSet {
            clear: self.cleared,
            max_size: Some(self.max_size),
            ..ChangeSet::default()
        };
        for (key, change) in &self.changes {
            match change {
                Some(value) => changes.set.push((key.clone(), value.clone())),
                None if !self.cleared => changes.remove.push(key.clone()),
                None => {}
            }
        }
        changes
    }
}

impl Session {
    pub(crate) fn from_state(state: State) -> Self {
        Self(Arc::new(Mutex::new(state)))
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // Every method leaves the state consistent before it can panic.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns the value stored under `key`, or `None` if there is none.
    ///
    /// A stored value that does not deserialize into `T` is an error that
    /// names the key and the type; the entry stays as it is.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let state = self.state();
        let Some(bytes) = state.entries.get(key) else {
            return Ok(None);
        };
        state
            .codec
            .decode(bytes)
            .map(Some)
            .map_err(|source| SessionError::Deserialize {
                key: key.to_owned(),
                type_name: std::any::type_name::<T>(),
                source,
            })
    }

    /// Stores `value` under `key`, replacing what was there.
    ///
    /// Fails, changing nothing, if the value cannot be serialized or the
    /// session would grow past its size limit.
    pub fn insert<T: Serialize>(
        &self,
        key: impl Into<String>,
        value: T,
    ) -> Result<(), SessionError> {
        self.put(key.into(), &value, false)
    }

    /// Like [`insert`](Self::insert), but records no change when the
    /// stored value encodes to the same bytes.
    pub(crate) fn insert_if_changed<T: Serialize>(
        &self,
        key: &str,
        value: T,
    ) -> Result<(), SessionError> {
        self.put(key.to_owned(), &value, true)
    }

    /// Encodes `value` once, under one lock, and stores it unless it would
    /// pass the size limit (or, with `skip_unchanged`, equals what is stored).
    fn put<T: Serialize + ?Sized>(
        &self,
        key: String,
        value: &T,
        skip_unchanged: bool,
    ) -> Result<(), SessionError> {
        if key.starts_with('\0') {
            return Err(SessionError::ReservedKey { key });
        }
        let mut state = self.state();
        let bytes = match state.codec.encode(value) {
            Ok(bytes) => bytes,
            Err(source) => return Err(SessionError::Serialize { key, source }),
        };
        let stored = state.entries.get(&key);
        if skip_unchanged && stored == Some(&bytes) {
            return Ok(());
        }
        let old = stored.map_or(0, |v| entry_size(&key, v));
        let size = state.size - old + entry_size(&key, &bytes);
        if size > state.max_size {
            return Err(SessionError::TooLarge {
                key,
                size,
                limit: state.max_size,
            });
        }
        state.size = size;
        state.entries.insert(key.clone(), bytes.clone());
        state.changes.insert(key, Some(bytes));
        Ok(())
    }

    /// Removes `key`; true if it was there.
    pub fn remove(&self, key: &str) -> bool {
        let mut state = self.state();
        let Some(old) = state.entries.remove(key) else {
            return false;
        };
        state.size -= entry_size(key, &old);
        state.changes.insert(key.to_owned(), None);
        true
    }

    /// Removes `key` and returns its value, if it was there and is a `T`.
    pub fn remove_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let value = self.get(key);
        self.remove(key);
        value
    }

    /// True if `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.state().entries.contains_key(key)
    }

    /// The keys that have values, in no particular order.
    pub fn keys(&self) -> Vec<String> {
        self.state().entries.keys().cloned().collect()
    }

    /// The number of keys that have values.
    pub fn len(&self) -> usize {
        self.state().entries.len()
    }

    /// True if the session holds nothing.
    pub fn is_empty(&self) -> bool {
        self.state().entries.is_empty()
    }

    /// Removes every entry. A session left empty is deleted from the store
    /// and its cookie removed after the request.
    pub fn clear(&self) {
        let mut state = self.state();
        state.entries.clear();
        state.size = 0;
        state.changes.clear();
        state.cleared = true;
    }

    /// Moves the session's data to a new id after the request, and deletes
    /// the old one. Call it when the user logs in (or gains privileges), so
    /// an id planted before the login (session fixation) is worth nothing.
    pub fn renew(&self) {
        self.state().renewed = true;
    }

    /// Deletes the session, from the store and the browser: logout.
    ///
    /// A request of the same session that is still in flight cannot bring
    /// it back: its changes are dropped. Entries inserted after `purge` in
    /// this request start a new session under a new id.
    pub fn purge(&self) {
        let mut state = self.state();
        state.purged = true;
        state.renewed = false;
        state.entries.clear();
        state.size = 0;
        state.changes.clear();
        state.cleared = false;
    }

    /// Where the session stands: unchanged, changed, renewed or purged.
    pub fn status(&self) -> SessionStatus {
        self.state().status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(pairs: &[(&str, &str)], max_size: usize) -> Session {
        let record = Record::from(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v.as_bytes())))
                .collect::<HashMap<_, _>>(),
        );
        Session::from_state(State::new(None, Some(record), Codec::Json, max_size))
    }

    fn sorted(mut keys: Vec<String>) -> Vec<String> {
        keys.sort();
        keys
    }

    #[test]
    fn only_changed_keys_are_in_the_change_set() {
        let s = session(&[("a", "1"), ("b", "2"), ("c", "3")], 1000);
        assert_eq!(s.status(), SessionStatus::Unchanged);
        assert_eq!(s.get::<u32>("a").unwrap(), Some(1));
        assert_eq!(s.status(), SessionStatus::Unchanged, "reads change nothing");
        s.insert("b", 20).unwrap();
        assert!(s.remove("c"));
        assert!(!s.remove("missing"));
        assert_eq!(s.status(), SessionStatus::Changed);
        let changes = s.state().change_set();
        assert!(!changes.clear);
        assert_eq!(changes.set, vec![("b".to_owned(), Bytes::from("20"))]);
        assert_eq!(changes.remove, vec!["c".to_owned()]);
        assert_eq!(sorted(s.keys()), ["a", "b"]);
    }

    #[test]
    fn a_key_set_then_removed_is_a_removal() {
        let s = session(&[], 1000);
        s.insert("k", "v").unwrap();
        s.remove("k");
        let changes = s.state().change_set();
        assert!(changes.set.is_empty());
        assert_eq!(changes.remove, ["k"]);
    }

    #[test]
    fn clear_then_insert_sends_clear_and_the_new_key() {
        let s = session(&[("a", "1")], 1000);
        s.remove("a");
        s.clear();
        s.insert("b", true).unwrap();
        let changes = s.state().change_set();
        assert!(changes.clear);
        assert_eq!(changes.set, vec![("b".to_owned(), Bytes::from("true"))]);
        assert!(changes.remove.is_empty());
        assert_eq!(s.keys(), ["b"]);
    }

    #[test]
    fn purge_empties_and_later_inserts_start_over() {
        let s = session(&[("user", "\"ann\"")], 1000);
        s.renew();
        s.purge();
        assert_eq!(s.status(), SessionStatus::Purged);
        assert!(s.is_empty());
        s.insert("flash", "bye").unwrap();
        assert_eq!(s.status(), SessionStatus::Purged);
        assert_eq!(s.keys(), ["flash"]);
    }

    #[test]
    fn renew_keeps_the_data() {
        let s = session(&[("a", "1")], 1000);
        s.renew();
        assert_eq!(s.status(), SessionStatus::Renewed);
        assert_eq!(s.get::<u32>("a").unwrap(), Some(1));
    }

    #[test]
    fn inserts_past_the_size_limit_fail_and_change_nothing() {
        // "a" -> "1" takes 8 + 1 + 1 bytes.
        let s = session(&[("a", "1")], 30);
        s.insert("b", "x").unwrap(); // 8 + 1 + 3 = 12; total 22
        let err = s.insert("c", "long value").unwrap_err();
        assert!(
            matches!(err, SessionError::TooLarge { limit: 30, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("30 bytes"), "{err}");
        assert!(!s.contains_key("c"));
        // Replacing a value counts the old one out.
        s.insert("b", "yyyyyyyy").unwrap(); // 8 + 1 + 10 = 19; total 29
        s.remove("b");
        s.insert("c", "long").unwrap();
    }

    #[test]
    fn wrong_types_are_reported_with_key_and_type_and_kept() {
        let s = session(&[("n", "\"not a number\""), ("ok", "1")], 1000);
        let err = s.get::<u32>("n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"n\"") && text.contains("u32"), "{text}");
        assert_eq!(
            s.get::<String>("n").unwrap().as_deref(),
            Some("not a number")
        );
        assert_eq!(s.get::<u8>("ok").unwrap(), Some(1));
        assert_eq!(s.status(), SessionStatus::Unchanged);
    }

    #[test]
    fn values_that_cannot_serialize_are_errors() {
        let s = session(&[], 1000);
        let mut bad = HashMap::new();
        bad.insert(vec![1u8], 1u8); // JSON map keys must be strings
        let err = s.insert("bad", bad).unwrap_err();
        assert!(matches!(err, SessionError::Serialize { .. }), "{err}");
        assert!(s.is_empty());
    }

    #[test]
    fn keys_starting_with_nul_are_reserved() {
        let s = session(&[], 1000);
        let err = s.insert("\0size", 1).unwrap_err();
        assert!(
            matches!(err, SessionError::ReservedKey { ref key } if key == "\0size"),
            "{err}"
        );
        assert!(s.is_empty());
        assert_eq!(s.status(), SessionStatus::Unchanged);
        s.insert("a\0b", 1).unwrap();
    }

    #[test]
    fn session_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Session>();
    }
}
