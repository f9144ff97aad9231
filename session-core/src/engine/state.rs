//! A session's state within one request: the handler's view of its
//! entries, what the request changed (per key), and the session's own
//! settings and user binding, kept outside the entries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::{Engine, Settings};
use crate::codec::entry_size;
use crate::store::{ChangeSet, Record};
use crate::users::{Binding, SEEN_KEY, USER_KEY};
use crate::{Codec, SessionConfig, SessionId, StoreKey};

pub(crate) use crate::meta::{LIFETIME_KEY, PERMANENT_KEY};

/// Where a session stands after the handler, as the middleware sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionStatus {
    /// Nothing was changed.
    Unchanged,
    /// Some entries were set, removed or cleared.
    Changed,
    /// [`Session::renew`](super::Session::renew) was called: the data moves to a new id.
    Renewed,
    /// [`Session::purge`](super::Session::purge) was called: the session is deleted.
    Purged,
}

/// The state behind a session handle, locked. Every method leaves the
/// state consistent before it can panic, so a poisoned lock is taken as
/// it is.
pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a session is when it says nothing of its own: the middleware's
/// settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Defaults {
    pub(crate) codec: Codec,
    pub(crate) max_size: usize,
    pub(crate) permanent: bool,
    pub(crate) lifetime: Duration,
    /// Flask-Session's rule: a stored session without `_permanent` is not
    /// permanent, and a new one stores its permanence from the start.
    pub(crate) flask: bool,
    /// What each value weighs more in the store than in the handler's
    /// view (values sealed at rest), as `SESSION_MAX_SIZE` counts it.
    pub(crate) overhead: usize,
}

impl Defaults {
    pub(super) fn of(config: &SessionConfig) -> Self {
        Self {
            codec: config.codec,
            max_size: config.max_size,
            permanent: config.permanent,
            lifetime: config.lifetime,
            flask: config.interop.is_some(),
            overhead: config.encrypt_at_rest.overhead(),
        }
    }

    /// What an entry weighs as stored, as `SESSION_MAX_SIZE` counts it.
    pub(super) fn entry_size(&self, key: &str, value: &[u8]) -> usize {
        entry_size(key, value) + self.overhead
    }
}

/// What the response does with the session cookie.
#[derive(Debug)]
pub(crate) enum CookieChange {
    Keep,
    /// Send the cookie with this value, living `ttl` when `permanent` (else
    /// a browser-session cookie); `id` is the session it names (`None` for
    /// the cookie store).
    Set {
        value: String,
        ttl: Duration,
        permanent: bool,
        id: Option<SessionId>,
    },
    Remove,
}

/// Where a session loaded by the middleware is saved and reloaded from,
/// in the middle of a request.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) engine: Arc<Engine>,
    /// When the middleware received the request.
    pub(crate) started: SystemTime,
    /// The request's cookies of the session's name, as sent (what the
    /// cookie store reloads from).
    #[cfg_attr(not(feature = "cookie"), allow(dead_code))]
    pub(crate) cookies: Vec<String>,
    /// The client as `SESSION_TRACK_CLIENT` records it at a user binding:
    /// its `User-Agent` and address (`None` when not tracked).
    pub(crate) client: Option<Client>,
}

/// The client of a request, as a user's list of sessions shows it
/// (`SESSION_TRACK_CLIENT`): its `User-Agent` and address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Client {
    pub(crate) user_agent: Option<String>,
    pub(crate) ip: Option<String>,
}

impl Client {
    /// The longest `User-Agent` kept.
    const MAX_USER_AGENT: usize = crate::users::MAX_USER_AGENT;

    /// A client from its `User-Agent` header (cut to 256 bytes; none if it
    /// is not visible ASCII) and its address (without the port).
    #[must_use]
    pub fn new(user_agent: Option<&str>, ip: Option<String>) -> Self {
        let user_agent = user_agent
            .filter(|ua| ua.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
            // Visible ASCII only: any cut is a char boundary.
            .map(|ua| ua[..ua.len().min(Self::MAX_USER_AGENT)].to_owned());
        Self { user_agent, ip }
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").finish_non_exhaustive()
    }
}

/// What a request changed, as tracked for the next save.
#[derive(Debug, Default)]
pub(crate) struct Tracked {
    pub(super) changes: HashMap<String, Option<Bytes>>,
    pub(super) cleared: bool,
    pub(super) renewed: bool,
    pub(super) purged: bool,
    pub(super) meta_changed: bool,
    pub(super) bound: bool,
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
    pub(super) size: usize,
    /// Per key: `Some` set, `None` removed.
    pub(super) changes: HashMap<String, Option<Bytes>>,
    pub(super) cleared: bool,
    pub(super) renewed: bool,
    pub(super) purged: bool,
    /// This session's own permanence and idle lifetime, if it has them
    /// (stored under [`PERMANENT_KEY`] and [`LIFETIME_KEY`], outside the
    /// handler's view of the entries).
    pub(super) permanent: Option<bool>,
    pub(super) lifetime: Option<Duration>,
    /// `permanent` or `lifetime` was set by this request.
    pub(super) meta_changed: bool,
    /// The user the session is bound to (stored under [`USER_KEY`], outside
    /// the handler's view of the entries), and when it was last seen
    /// (under [`SEEN_KEY`], in milliseconds since the epoch).
    pub(crate) binding: Option<Binding>,
    pub(crate) seen: Option<u64>,
    /// This request bound the session to a user: the save writes its entry
    /// in the user's index.
    pub(crate) bound: bool,
    pub(super) codec: Codec,
    pub(super) max_size: usize,
    pub(super) defaults: Defaults,
    /// The cookie a save made during the request decided on: sent with the
    /// response unless the save after the handler decides another.
    pub(crate) pending: Option<CookieChange>,
    /// Set for a session the middleware loaded.
    pub(crate) ctx: Option<Ctx>,
}

impl State {
    pub(crate) fn new(id: Option<SessionId>, record: Option<Record>, defaults: Defaults) -> Self {
        let (exists, mut record) = match record {
            Some(record) => (true, record),
            None => (false, Record::default()),
        };
        let codec = defaults.codec;
        // Unreadable values are dropped: the session falls back to the
        // settings, and the next write that sets them replaces them.
        let mut permanent = record
            .entries
            .remove(PERMANENT_KEY)
            .and_then(|v| codec.decode::<bool>(&v).ok());
        if defaults.flask && permanent.is_none() {
            permanent = Some(!exists && defaults.permanent);
        }
        let lifetime = record
            .entries
            .remove(LIFETIME_KEY)
            .and_then(|v| codec.decode::<u64>(&v).ok())
            .filter(|secs| *secs > 0)
            .map(Duration::from_secs);
        let binding = record
            .entries
            .remove(USER_KEY)
            .and_then(|v| codec.decode::<Binding>(&v).ok());
        let seen = record
            .entries
            .remove(SEEN_KEY)
            .and_then(|v| codec.decode::<u64>(&v).ok());
        Self {
            id,
            key: None,
            exists,
            degraded: false,
            expires_at: record.expires_at,
            created_at: record.created_at,
            ended: false,
            stale_key: false,
            size: record
                .entries
                .iter()
                .map(|(k, v)| defaults.entry_size(k, v))
                .sum(),
            entries: record.entries,
            changes: HashMap::new(),
            cleared: false,
            renewed: false,
            purged: false,
            permanent,
            lifetime,
            meta_changed: false,
            binding,
            seen,
            bound: false,
            codec,
            max_size: defaults.max_size,
            defaults,
            pending: None,
            ctx: None,
        }
    }

    /// Has the session's metadata written again (tagged, with values
    /// sealed at rest) by the request's save, if it has any to write.
    pub(crate) fn retag_metadata(&mut self) {
        self.meta_changed |= self.has_content();
    }

    /// Whether this request set the session's permanence or lifetime.
    pub(crate) fn settings_changed(&self) -> bool {
        self.meta_changed
    }

    /// Takes what the request changed so far, for a save under way;
    /// changes made meanwhile are tracked afresh.
    pub(crate) fn take_tracked(&mut self) -> Tracked {
        Tracked {
            changes: std::mem::take(&mut self.changes),
            cleared: std::mem::take(&mut self.cleared),
            renewed: std::mem::take(&mut self.renewed),
            purged: std::mem::take(&mut self.purged),
            meta_changed: std::mem::take(&mut self.meta_changed),
            bound: std::mem::take(&mut self.bound),
        }
    }

    /// Puts back what a failed save took; changes made since win for
    /// their keys, and came after a `clear` or `purge` that was taken.
    pub(crate) fn restore_tracked(&mut self, taken: Tracked) {
        for (key, change) in taken.changes {
            if !(self.cleared || self.purged) {
                self.changes.entry(key).or_insert(change);
            }
        }
        self.cleared |= taken.cleared;
        self.renewed |= taken.renewed;
        self.purged |= taken.purged;
        self.meta_changed |= taken.meta_changed;
        self.bound |= taken.bound;
    }

    /// Records what a save made during the request did: the session it
    /// left (its id, and whether it is stored) and the cookie to send.
    pub(crate) fn saved(
        &mut self,
        change: CookieChange,
        status: SessionStatus,
        lifetime: Duration,
        settings: &Settings,
    ) {
        let now = SystemTime::now();
        self.ended = false;
        self.stale_key = false;
        match &change {
            CookieChange::Keep => {}
            CookieChange::Remove => {
                self.id = None;
                self.key = None;
                self.exists = false;
                self.created_at = None;
                self.expires_at = None;
            }
            CookieChange::Set { id, .. } => {
                // A login keeps the creation time; a new session, or one
                // started after a logout, begins now.
                if !self.exists || status == SessionStatus::Purged {
                    self.created_at = Some(now);
                }
                if let Some(id) = id {
                    self.key = Some(settings.keys.session(id));
                    self.id = Some(id.clone());
                }
                self.exists = true;
            }
        }
        if self.exists && status != SessionStatus::Unchanged {
            self.expires_at = Some(now + lifetime);
        }
        if !matches!(change, CookieChange::Keep) {
            self.pending = Some(change);
        }
    }

    /// Whether the session's cookie outlives the browser.
    pub(crate) fn is_permanent(&self) -> bool {
        self.permanent.unwrap_or(self.defaults.permanent)
    }

    /// The session's idle lifetime.
    pub(crate) fn lifetime(&self) -> Duration {
        self.lifetime.unwrap_or(self.defaults.lifetime)
    }

    /// The session's own settings, encoded as stored.
    pub(super) fn meta_entries(&self) -> Vec<(String, Bytes)> {
        let mut meta = Vec::new();
        if let Some(permanent) = self.permanent
            && let Ok(value) = self.codec.encode(&permanent)
        {
            meta.push((PERMANENT_KEY.to_owned(), value));
        }
        if let Some(lifetime) = self.lifetime
            && let Ok(value) = self.codec.encode(&lifetime.as_secs())
        {
            meta.push((LIFETIME_KEY.to_owned(), value));
        }
        if let Some(binding) = &self.binding
            && let Ok(value) = self.codec.encode(binding)
        {
            meta.push((USER_KEY.to_owned(), value));
        }
        if let Some(seen) = self.seen
            && let Ok(value) = self.codec.encode(&seen)
        {
            meta.push((SEEN_KEY.to_owned(), value));
        }
        meta
    }

    /// Whether the session holds anything to store: entries, or a user.
    pub(crate) fn has_content(&self) -> bool {
        !self.entries.is_empty() || self.binding.is_some()
    }

    /// The session as a store keeps it when it is written whole: the
    /// entries and, with them, the session's own settings.
    pub(crate) fn stored_entries(&self) -> HashMap<String, Bytes> {
        let mut entries = self.entries.clone();
        if self.has_content() {
            entries.extend(self.meta_entries());
        }
        entries
    }

    pub(crate) fn status(&self) -> SessionStatus {
        if self.purged {
            SessionStatus::Purged
        } else if self.renewed {
            SessionStatus::Renewed
        } else if self.cleared || self.meta_changed || self.bound || !self.changes.is_empty() {
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
        if !self.has_content() {
            // Emptied by this request: the settings go too, so that the
            // store deletes a session left without entries.
            let has_settings = self.permanent.is_some() || self.lifetime.is_some();
            if has_settings && !self.cleared {
                changes
                    .remove
                    .extend([PERMANENT_KEY.to_owned(), LIFETIME_KEY.to_owned()]);
            }
        } else if self.meta_changed || self.cleared || self.bound {
            // Set by this request, or wiped by its `clear`: written again.
            changes.set.extend(self.meta_entries());
        }
        changes
    }
}
