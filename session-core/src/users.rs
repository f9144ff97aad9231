//! Per-user sessions: the index of a user's sessions, kept in the store
//! beside the sessions themselves, so that an app can list where a user is
//! logged in, end one of those sessions, or end them all.
//!
//! # Layout
//!
//! - A session bound to a user holds a [`Binding`] under [`USER_KEY`] (the
//!   user, the session's [`Handle`], and when the session last wrote its
//!   index entry) and, under [`SEEN_KEY`], when it was last seen (refreshed
//!   or written), in milliseconds since the epoch. Both are encoded with the
//!   session's codec, like its other entries.
//! - The user's index is a record of its own, under
//!   [`Keyspace::user_index`] (`prefix + "user:" + hex(sha256(user))`, under
//!   a prefix of its own in Flask-Session's layout): one entry per
//!   session, by handle, holding an [`Entry`] as JSON (the session's store
//!   key as [`Keyspace::name`] names it, never a live id; when it was
//!   bound; and the client seen then, if tracked).
//!
//! The index is written with the store's ordinary operations, so every
//! store keeps it with the guarantees it gives sessions: two logins of one
//! user add their entries without losing either, and a revocation deletes
//! sessions the way a logout does (see [`logout::purge`]): once it returns,
//! no request reads them, and no request in flight writes them back.
//!
//! # Lifetimes
//!
//! The index always gets the same lifetime, [`INDEX_TTL`] (800 days), from
//! every write: as a write never shortens what the one before it gave, the
//! index outlives every session that wrote its entry within the last
//! `INDEX_TTL` minus that session's lifetime. A bound session whose entry
//! was written longer ago than that writes it again
//! ([`Binding::index_due`]), so the index outlives the sessions it lists,
//! as long as a bound session's lifetime stays under [`MAX_BOUND_LIFETIME`].
//!
//! # Bounds
//!
//! Entries of sessions that are gone (logged out, expired, revoked) are
//! dropped whenever the index is listed, which every new binding does, and
//! every binding keeps the user to `SESSION_MAX_PER_USER` live sessions
//! ([`DEFAULT_MAX_PER_USER`] by default, at most [`MAX_PER_USER_LIMIT`]):
//! the index holds at most that many live sessions, plus those that ended
//! since the user last logged in. Whatever concurrent logins do, a listing
//! loads at most [`UserIndex::window`] sessions, the index never passes
//! [`INDEX_MAX_BYTES`] (a login that meets the limit tidies the whole index
//! once, and logs in), and an entry keeps at most [`MAX_USER_AGENT`] bytes
//! of the client's `User-Agent` and [`MAX_IP`] of its address.
//!
//! [`logout::purge`]: crate::logout::purge

// Public items here are reached by the crate's engine and stores, and by
// tests through `testing::layout` (feature `testing`).
#![cfg_attr(not(feature = "testing"), allow(unreachable_pub))]

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::StoreKey;
use crate::codec::Codec;
use crate::keyspace::Keyspace;
use crate::logout::purge;
use crate::store::{Applied, ChangeSet, Record, SessionStore, StoreError};

/// The session entry that names its user: a [`Binding`].
pub const USER_KEY: &str = "_user";
/// The session entry that says when it was last seen: milliseconds since
/// the epoch.
pub const SEEN_KEY: &str = "_seen";
/// The lifetime every write gives a user's index: 800 days.
pub const INDEX_TTL: Duration = Duration::from_secs(800 * 24 * 60 * 60);
/// The longest lifetime a session bound to a user keeps (400 days, as long
/// as browsers keep a cookie): half of [`INDEX_TTL`], so that the index
/// outlives it with a write at most every 400 days.
pub(crate) const MAX_BOUND_LIFETIME: Duration = Duration::from_secs(400 * 24 * 60 * 60);

/// `SESSION_MAX_PER_USER`'s default: the most sessions one user may have
/// (a phone, a laptop and a few browsers each, with room to spare).
pub(crate) const DEFAULT_MAX_PER_USER: usize = 50;
/// The highest `SESSION_MAX_PER_USER` accepted: each login of a user may
/// load each of their sessions.
pub(crate) const MAX_PER_USER_LIMIT: usize = 1000;
/// The most a user's index may weigh, as the store counts it: under
/// memcached's 1 MB items, and over what `MAX_PER_USER_LIMIT` (1000) sessions
/// need (an entry weighs at most about 600 bytes).
pub const INDEX_MAX_BYTES: usize = 768 * 1024;
/// The most of a client's `User-Agent` an index entry keeps, in bytes
/// (printable ASCII; anything else, and `"` or `\`, is kept as `?`).
pub(crate) const MAX_USER_AGENT: usize = 256;
/// The most of a client's address an index entry keeps, in bytes.
pub(crate) const MAX_IP: usize = 64;

/// Bytes of randomness in a handle.
const HANDLE_BYTES: usize = 16;

/// An opaque name for one session of a user, to show and to revoke it by.
///
/// It is neither the session's id nor its store key, and is no use as a
/// cookie: knowing it lets a user's own requests end that session, nothing
/// more.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Handle(String);

impl Handle {
    /// A new random handle: 128 bits, as 22 base64url characters.
    ///
    /// # Panics
    ///
    /// When the operating system's random source fails.
    pub fn generate() -> Self {
        let mut bytes = [0u8; HANDLE_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses a handle as [`as_str`](Self::as_str) gave it; `None` for
    /// anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        (bytes.len() == HANDLE_BYTES).then(|| Self(text.to_owned()))
    }

    /// The handle's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a session bound to a user keeps of the binding, under
/// [`USER_KEY`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Binding {
    /// The user, as the app named them.
    pub user: String,
    /// The session's handle in the user's index.
    pub handle: Handle,
    /// When the session last wrote its entry in the index, in milliseconds
    /// since the epoch.
    pub indexed_at: u64,
}

impl Binding {
    /// Whether the session, written now with lifetime `ttl`, could outlive
    /// the index as its last entry write left it: then it writes its entry
    /// again.
    pub fn index_due(&self, now: SystemTime, ttl: Duration) -> bool {
        let indexed_at = SystemTime::UNIX_EPOCH + Duration::from_millis(self.indexed_at);
        indexed_at + INDEX_TTL < now + ttl
    }
}

/// One session in a user's index, as stored there (JSON).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// The session's store key, as [`Keyspace::name`] names it in the
    /// index.
    pub key: String,
    /// When the session was bound, in milliseconds since the epoch.
    pub bound_at: u64,
    /// The client's `User-Agent` at binding, when tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The client's address at binding, when tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl Entry {
    /// The entry of a session bound now, named `key` in the index, with
    /// the client's `User-Agent` and address, when tracked, cut to
    /// `MAX_USER_AGENT` (256) and `MAX_IP` (64) bytes of printable ASCII, so that
    /// an entry's size is bounded whatever the client sends.
    pub fn new(key: String, user_agent: Option<&str>, ip: Option<&str>) -> Self {
        Self {
            key,
            bound_at: millis(SystemTime::now()),
            user_agent: user_agent.map(|ua| printable(ua, MAX_USER_AGENT)),
            ip: ip.map(|ip| printable(ip, MAX_IP)),
        }
    }
}

/// One live session of a user, as [`UserIndex::list`] gives it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Listed {
    /// The session's handle.
    pub handle: Handle,
    /// When the session was created (its first request, before any login
    /// moved it); on a store that keeps no creation time
    /// (Flask-Session's layout), when it was bound to the user.
    pub created_at: Option<SystemTime>,
    /// When the session was last refreshed or written.
    pub last_seen: SystemTime,
    /// The client's `User-Agent` at binding, when tracked.
    pub user_agent: Option<String>,
    /// The client's address at binding, when tracked.
    pub ip: Option<String>,
}

/// At most `max` characters of `text`, each printable ASCII but `"` and
/// `\\` (which JSON would escape), or else `?`.
fn printable(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '?',
        })
        .collect()
}

/// Milliseconds since the epoch.
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_millis(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// A user's index in a store.
#[derive(Debug)]
pub(crate) struct UserIndex<'a, S> {
    store: &'a S,
    keys: &'a Keyspace,
    key: StoreKey,
    user: &'a str,
    codec: Codec,
    max: usize,
}

/// What one look through an index found: the live sessions among the
/// most recently bound entries, and the entries past what one look loads.
struct Scan {
    /// Each live session, with its entry as the index holds it.
    live: Vec<(Listed, Entry)>,
    beyond: Vec<(Handle, Entry)>,
}

impl<'a, S: SessionStore> UserIndex<'a, S> {
    /// The index of `user`, in `store`, beside sessions of `keys` whose
    /// entries `codec` encodes, for a user who may have
    /// [`DEFAULT_MAX_PER_USER`] sessions (see [`max`](Self::max)).
    pub(crate) fn new(store: &'a S, keys: &'a Keyspace, user: &'a str, codec: Codec) -> Self {
        Self {
            store,
            keys,
            key: keys.user_index(user),
            user,
            codec,
            max: DEFAULT_MAX_PER_USER,
        }
    }

    /// For a user who may have `max` sessions (`SESSION_MAX_PER_USER`): the
    /// most [`cap`](Self::cap) leaves, and what bounds a listing.
    #[must_use]
    pub(crate) fn max(mut self, max: usize) -> Self {
        self.max = max.clamp(1, MAX_PER_USER_LIMIT);
        self
    }

    /// The most sessions one listing loads: twice the user's limit (the
    /// live sessions, and as many that ended since the last login), and
    /// a few more for logins under way. Entries past it, the oldest bound,
    /// are there only if many logins ran at once: [`cap`](Self::cap) ends
    /// them.
    pub(crate) fn window(&self) -> usize {
        2 * self.max + 16
    }

    /// How the index names the session under `session`, in an [`Entry`].
    pub(crate) fn name(&self, session: &StoreKey) -> String {
        self.keys.name(&self.key, session)
    }

    /// Writes (or rewrites) the entry of one session, and gives the whole
    /// index its lifetime again. Returns `true` when the index was created
    /// with this entry alone (the user had no other session listed). An
    /// index at [`INDEX_MAX_BYTES`] first ends the user's oldest sessions
    /// past the limit (see [`cap`](Self::cap)).
    ///
    /// # Errors
    ///
    /// The store's.
    pub(crate) async fn add(&self, handle: &Handle, entry: &Entry) -> Result<bool, StoreError> {
        let value = Bytes::from(serde_json::to_vec(entry).map_err(StoreError::backend)?);
        let changes = ChangeSet {
            set: vec![(handle.as_str().to_owned(), value.clone())],
            max_size: Some(INDEX_MAX_BYTES),
            ..ChangeSet::default()
        };
        let mut trimmed = false;
        // The index may expire or be emptied between the two calls: try
        // again, a few times.
        for _ in 0..4 {
            match self.store.apply(&self.key, &changes, INDEX_TTL).await? {
                Applied::Done => return Ok(false),
                Applied::Gone | Applied::Deleted => {}
                Applied::TooLarge { .. } if !trimmed => {
                    // Many logins at once left more entries than a login
                    // looks at: look at them all, once, dropping those of
                    // ended sessions and ending the least recently seen
                    // past the limit, and log in.
                    trimmed = true;
                    self.trim(handle, self.max.saturating_sub(1).max(1), true)
                        .await?;
                    continue;
                }
                Applied::TooLarge { size } => {
                    return Err(StoreError::backend(format!(
                        "a user's session index is {size} bytes, past its limit of \
                         {INDEX_MAX_BYTES} even once trimmed"
                    )));
                }
            }
            let record = Record::from(HashMap::from([(handle.as_str().to_owned(), value.clone())]));
            if self.store.create(&self.key, &record, INDEX_TTL).await? {
                // In use from the start, for stores that evict records
                // nobody came back to (memory, files).
                let _ = self.store.touch(&self.key, INDEX_TTL).await?;
                return Ok(true);
            }
        }
        Err(StoreError::backend(
            "a user's session index kept changing under a new entry",
        ))
    }

    /// The index's entries as stored, readable or not dropped, oldest
    /// binding first.
    ///
    /// # Errors
    ///
    /// The store's.
    pub(crate) async fn entries(&self) -> Result<Vec<(Handle, Entry)>, StoreError> {
        let Some(record) = self.store.load(&self.key).await? else {
            return Ok(Vec::new());
        };
        let mut entries: Vec<(Handle, Entry)> = record
            .entries
            .iter()
            .filter_map(|(handle, value)| {
                Some((Handle::parse(handle)?, serde_json::from_slice(value).ok()?))
            })
            .collect();
        entries.sort_by(|a, b| a.1.bound_at.cmp(&b.1.bound_at).then(a.0.0.cmp(&b.0.0)));
        Ok(entries)
    }

    /// Removes entries by handle.
    async fn remove(&self, handles: Vec<String>) -> Result<(), StoreError> {
        if handles.is_empty() {
            return Ok(());
        }
        let changes = ChangeSet {
            remove: handles,
            ..ChangeSet::default()
        };
        let _ = self.store.apply(&self.key, &changes, INDEX_TTL).await?;
        Ok(())
    }

    /// The user's live sessions, oldest binding first. Entries of sessions
    /// the store no longer holds (or that no longer name this user under
    /// that handle) are dropped from the index on the way. Loads at most
    /// [`window`](Self::window) sessions, the most recently bound.
    ///
    /// # Errors
    ///
    /// The store's.
    pub(crate) async fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let live = self.scan(self.window()).await?.live;
        Ok(live.into_iter().map(|(listed, _)| listed).collect())
    }

    /// The session key an entry names, if it still opens.
    pub(crate) fn resolve(&self, entry: &Entry) -> Option<StoreKey> {
        self.keys.resolve(&self.key, &entry.key)
    }

    /// Loads the sessions of the `window` most recently bound entries.
    async fn scan(&self, window: usize) -> Result<Scan, StoreError> {
        let mut entries = self.entries().await?;
        let beyond = entries.len().saturating_sub(window);
        let beyond: Vec<_> = entries.drain(..beyond).collect();
        let mut live = Vec::new();
        let mut gone = Vec::new();
        // Entries whose name opened under a fallback secret only: written
        // anew under the current one, so that no session drops out of its
        // user's reach when the old secret goes.
        let mut renamed = Vec::new();
        for (handle, entry) in entries {
            let Some((key, fresh)) = self.keys.resolve_fresh(&self.key, &entry.key) else {
                gone.push(handle.0);
                continue;
            };
            let Some(record) = self.store.load(&key).await? else {
                gone.push(handle.0);
                continue;
            };
            let binding = record
                .entries
                .get(USER_KEY)
                .and_then(|v| self.codec.decode::<Binding>(&crate::meta::clear(v)).ok());
            if binding.is_none_or(|b| b.user != self.user || b.handle != handle) {
                gone.push(handle.0);
                continue;
            }
            let seen = record
                .entries
                .get(SEEN_KEY)
                .and_then(|v| self.codec.decode::<u64>(&crate::meta::clear(v)).ok())
                .map_or(from_millis(entry.bound_at), from_millis);
            let entry = if fresh {
                entry
            } else {
                let entry = Entry {
                    key: self.name(&key),
                    ..entry
                };
                renamed.push((handle.clone(), entry.clone()));
                entry
            };
            let listed = Listed {
                handle,
                // A layout without creation times (Flask-Session's): the
                // session was made no later than it was bound.
                created_at: record.created_at.or(Some(from_millis(entry.bound_at))),
                last_seen: seen,
                user_agent: entry.user_agent.clone(),
                ip: entry.ip.clone(),
            };
            live.push((listed, entry));
        }
        self.remove(gone).await?;
        if !renamed.is_empty() {
            // Each replaces an entry of the same size: no limit to check.
            let set = renamed
                .into_iter()
                .map(|(handle, entry)| {
                    let value = serde_json::to_vec(&entry).map_err(StoreError::backend)?;
                    Ok((handle.0, Bytes::from(value)))
                })
                .collect::<Result<_, StoreError>>()?;
            let changes = ChangeSet {
                set,
                ..ChangeSet::default()
            };
            let _ = self.store.apply(&self.key, &changes, INDEX_TTL).await?;
        }
        Ok(Scan { live, beyond })
    }

    /// Whether the session under `key` is still this user's under
    /// `handle`: a session bound since to another user (or handle) is not
    /// ended through a stale entry. A session that is gone counts as the
    /// user's, so that ending it follows the note of a login moving it.
    async fn owns(&self, key: &StoreKey, handle: &Handle) -> Result<bool, StoreError> {
        Ok(match self.store.load(key).await? {
            None => true,
            Some(record) => record
                .entries
                .get(USER_KEY)
                .and_then(|v| self.codec.decode::<Binding>(&crate::meta::clear(v)).ok())
                .is_some_and(|b| b.user == self.user && b.handle == *handle),
        })
    }

    /// Ends the session of an entry if it is still this user's: returns
    /// whether it was. The entry stays in the index.
    async fn end(
        &self,
        handle: &Handle,
        entry: &Entry,
        started: SystemTime,
    ) -> Result<bool, StoreError> {
        let Some(key) = self.resolve(entry) else {
            return Ok(false);
        };
        let owned = self.owns(&key, handle).await?;
        if owned {
            purge(self.store, self.keys, key, started).await?;
        }
        Ok(owned)
    }

    /// Ends the session `handle` names, if it is this user's: returns
    /// whether it was.
    ///
    /// # Errors
    ///
    /// The store's; the session may then be ended or not.
    pub(crate) async fn revoke(&self, handle: &Handle) -> Result<bool, StoreError> {
        let started = SystemTime::now();
        let entries = self.entries().await?;
        let Some((_, entry)) = entries.into_iter().find(|(h, _)| h == handle) else {
            return Ok(false);
        };
        let owned = self.end(handle, &entry, started).await?;
        self.remove(vec![handle.0.clone()]).await?;
        Ok(owned)
    }

    /// Ends every session of the user but the one `except` names (if any);
    /// returns how many it ended. Entries of sessions bound since to
    /// another user are dropped, their sessions left alone.
    ///
    /// # Errors
    ///
    /// The store's; the sessions ended before it stay ended.
    pub(crate) async fn revoke_all(&self, except: Option<&Handle>) -> Result<usize, StoreError> {
        let started = SystemTime::now();
        let (mut ended, mut count) = (Vec::new(), 0);
        for (handle, entry) in self.entries().await? {
            if Some(&handle) == except {
                continue;
            }
            count += usize::from(self.end(&handle, &entry, started).await?);
            ended.push(handle.0);
        }
        self.remove(ended).await?;
        Ok(count)
    }

    /// Keeps the user to at most `max` live sessions, ending the least
    /// recently seen ones, never `keep`; returns how many it ended.
    /// Entries past one listing's [`window`](Self::window) (left by many
    /// logins at once) are ended too, the oldest bound first, at most
    /// `max` of them per call, so that a call's loads stay bounded.
    ///
    /// # Errors
    ///
    /// The store's.
    pub(crate) async fn cap(&self, max: usize, keep: &Handle) -> Result<usize, StoreError> {
        self.trim(keep, max, false).await
    }

    /// [`cap`](Self::cap), loading every entry's session when `whole`.
    async fn trim(&self, keep: &Handle, max: usize, whole: bool) -> Result<usize, StoreError> {
        let started = SystemTime::now();
        let window = if whole { usize::MAX } else { self.window() };
        let Scan { mut live, beyond } = self.scan(window).await?;
        // The entries past the window, oldest bound first, at most `max`
        // a call; then the least recently seen live sessions past `max`.
        let mut ending: Vec<(Handle, Entry)> = beyond
            .into_iter()
            .filter(|(h, _)| h != keep)
            .take(max)
            .collect();
        if let Some(excess) = live.len().checked_sub(max).filter(|n| *n > 0) {
            live.retain(|(l, _)| &l.handle != keep);
            live.sort_by_key(|(l, _)| l.last_seen);
            ending.extend(
                live.into_iter()
                    .take(excess)
                    .map(|(listed, entry)| (listed.handle, entry)),
            );
        }
        // Each entry as scanned: no load of the index per session ended.
        let mut ended = 0;
        let mut dropped = Vec::with_capacity(ending.len());
        for (handle, entry) in ending {
            ended += usize::from(self.end(&handle, &entry, started).await?);
            dropped.push(handle.0);
        }
        self.remove(dropped).await?;
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_random_and_parse_back() {
        let (a, b) = (Handle::generate(), Handle::generate());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 22);
        assert_eq!(Handle::parse(a.as_str()), Some(a));
        assert_eq!(Handle::parse("short"), None);
        assert_eq!(Handle::parse(&"A".repeat(43)), None);
        assert_eq!(Handle::parse("!!!!!!!!!!!!!!!!!!!!!!"), None);
    }

    #[test]
    fn index_keys_hash_the_user() {
        let keys = Keyspace::hashed("session:");
        let key = keys.user_index("42");
        assert_eq!(
            key.as_str(),
            "session:user:73475cb40a568e8da8a045ced110137e159f890ac4da883b6b17dc651b3a8049"
        );
        assert_ne!(keys.user_index("43"), key);
    }

    #[test]
    fn an_entry_is_bounded_whatever_the_client_sends() {
        let ua = "Mozilla/5.0 (X11; Linux x86_64)";
        let entry = Entry::new("k".into(), Some(ua), Some("192.0.2.1"));
        assert_eq!(entry.user_agent.as_deref(), Some(ua));
        assert_eq!(entry.ip.as_deref(), Some("192.0.2.1"));
        let hostile = "\"é\\\u{0}".repeat(MAX_USER_AGENT);
        let entry = Entry::new("k".into(), Some(&hostile), Some(&hostile));
        let ua = entry.user_agent.as_deref().unwrap();
        assert_eq!(ua, "?".repeat(MAX_USER_AGENT));
        assert_eq!(entry.ip.as_deref().unwrap().len(), MAX_IP);
        let json = serde_json::to_string(&entry).unwrap();
        assert!(json.len() < MAX_USER_AGENT + MAX_IP + 64, "{json}");
    }

    #[test]
    fn the_index_outlives_the_longest_bound_session_twice_over() {
        const DAY: u64 = 24 * 60 * 60;
        assert_eq!(INDEX_TTL, Duration::from_secs(800 * DAY));
        assert_eq!(MAX_BOUND_LIFETIME, Duration::from_secs(400 * DAY));
    }

    #[test]
    fn the_index_entry_is_written_again_before_the_index_could_expire() {
        let now = SystemTime::now();
        let ttl = Duration::from_secs(31 * 24 * 3600);
        let fresh = Binding {
            user: "42".into(),
            handle: Handle::generate(),
            indexed_at: millis(now),
        };
        assert!(!fresh.index_due(now, ttl));
        assert!(!fresh.index_due(now, MAX_BOUND_LIFETIME));
        let old = Binding {
            indexed_at: millis(now - (INDEX_TTL - ttl) - Duration::from_secs(1)),
            ..fresh.clone()
        };
        assert!(old.index_due(now, ttl));
        let just = Binding {
            indexed_at: millis(now - (INDEX_TTL - ttl) + Duration::from_secs(1)),
            ..fresh
        };
        assert!(!just.index_due(now, ttl));
    }
}
