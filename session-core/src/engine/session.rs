//! [`Session`]: what a handler reads and writes.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use super::state::SessionStatus;
use super::state::{Defaults, State, lock};
use super::{SessionError, UserSession, Users};
use crate::users::{Binding, Handle, millis};
use crate::{Codec, SessionConfig};

/// The session of one request: what a handler reads and writes.
///
/// [`Engine::load`](super::Engine::load) gives it; a web framework's
/// adapter hands it to handlers (`session_core::Session` wraps it). Values
/// are stored by key, serialized with serde (JSON by default); like Flask's
/// `session['name']`.
///
/// ```
/// use session_core::{Session, SessionError};
///
/// fn visit(session: &Session) -> Result<u64, SessionError> {
///     let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
///     session.insert("visits", visits)?;
///     Ok(visits)
/// }
/// # assert_eq!(visit(&Session::new()).unwrap(), 1);
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

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

/// Decodes a stored value as a `T`, naming the key and the type if it is not one.
fn decode<T: DeserializeOwned>(codec: Codec, key: &str, bytes: &Bytes) -> Result<T, SessionError> {
    codec
        .decode(bytes)
        .map_err(|source| SessionError::Deserialize {
            key: key.to_owned(),
            type_name: std::any::type_name::<T>(),
            source,
        })
}

impl Session {
    /// An empty session that belongs to no store, with the default
    /// settings (JSON values, `SESSION_MAX_SIZE`'s default): for unit tests
    /// of code that takes a `Session`. Call it, then check what the code
    /// did with [`get`](Self::get) and [`status`](Self::status).
    ///
    /// ```
    /// use session_core::{Session, SessionStatus};
    ///
    /// fn log_in(session: &Session, user: &str) -> Result<(), session_core::SessionError> {
    ///     session.renew();
    ///     session.insert("user", user)
    /// }
    ///
    /// let session = Session::new();
    /// log_in(&session, "ann").unwrap();
    /// assert_eq!(session.status(), SessionStatus::Renewed);
    /// assert_eq!(session.get::<String>("user").unwrap().as_deref(), Some("ann"));
    /// ```
    pub fn new() -> Self {
        Self::from_state(State::new(
            None,
            None,
            Defaults::of(&SessionConfig::default()),
        ))
    }

    pub(crate) fn from_state(state: State) -> Self {
        Self(Arc::new(Mutex::new(state)))
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.0)
    }

    /// Returns the value stored under `key`, or `None` if there is none.
    ///
    /// # Errors
    ///
    /// [`SessionError::Deserialize`], naming the key and the type, if the
    /// stored value does not deserialize into `T`; the entry stays as it is.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let state = self.state();
        match state.entries.get(key) {
            Some(bytes) => decode(state.codec, key, bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key`, replacing what was there.
    ///
    /// # Errors
    ///
    /// Each changes nothing: [`SessionError::Serialize`] if the value
    /// cannot be encoded, [`SessionError::TooLarge`] if the session would
    /// grow past its size limit (`SESSION_MAX_SIZE`), and
    /// [`SessionError::ReservedKey`] for a reserved key: the names the
    /// session keeps its own settings and user binding under (`_permanent`,
    /// `_lifetime`, `_user`, `_seen`), and keys starting with a NUL
    /// character.
    pub fn insert<T: Serialize>(
        &self,
        key: impl Into<String>,
        value: T,
    ) -> Result<(), SessionError> {
        self.put(key.into(), &value, false)
    }

    /// Like [`insert`](Self::insert), but records no change when the
    /// stored value encodes to the same bytes (what a typed session's
    /// `save` does).
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    pub fn insert_if_changed<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
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
        if crate::meta::is_reserved(&key) {
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
        let old = stored.map_or(0, |v| state.defaults.entry_size(&key, v));
        let size = state.size - old + state.defaults.entry_size(&key, &bytes);
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

    /// Removes `key` and returns the value it had, read as a `T`;
    /// `Ok(None)` if there was none.
    ///
    /// The key is removed whether or not its value reads as a `T`; use
    /// [`remove_key`](Self::remove_key) when the value does not matter.
    ///
    /// # Errors
    ///
    /// [`SessionError::Deserialize`] if the value was not a `T` (it is
    /// removed all the same).
    pub fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        match self.take_entry(key) {
            Some((bytes, codec)) => decode(codec, key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Removes `key`; true if it was there.
    pub fn remove_key(&self, key: &str) -> bool {
        self.take_entry(key).is_some()
    }

    fn take_entry(&self, key: &str) -> Option<(Bytes, Codec)> {
        let mut state = self.state();
        let old = state.entries.remove(key)?;
        state.size -= state.defaults.entry_size(key, &old);
        state.changes.insert(key.to_owned(), None);
        Some((old, state.codec))
    }

    /// Reads `key` as a `T` (`None` if it is missing), lets `f` compute the
    /// new value from it, stores that and returns it.
    ///
    /// ```
    /// # use session_core::Session;
    /// # fn visit(session: &Session) -> Result<(), session_core::SessionError> {
    /// let visits = session.update("visits", |n: Option<u64>| n.unwrap_or(0) + 1)?;
    /// # Ok(()) }
    /// ```
    ///
    /// `f` runs without holding the session, so it may use the session
    /// itself; a change it makes to `key` is overwritten.
    ///
    /// # Errors
    ///
    /// [`SessionError::Deserialize`] if the stored value is not a `T` (`f`
    /// is not called and nothing changes), and the errors of
    /// [`insert`](Self::insert) for the new value.
    pub fn update<T, F>(&self, key: &str, f: F) -> Result<T, SessionError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Option<T>) -> T,
    {
        let new = f(self.get(key)?);
        self.put(key.to_owned(), &new, false)?;
        Ok(new)
    }

    /// Every entry, each value read as a `T`, sorted by key. With
    /// `serde_json::Value` as `T`, a session of mixed values reads whole:
    ///
    /// ```
    /// # use session_core::Session;
    /// # fn dump(session: &Session) -> Result<(), session_core::SessionError> {
    /// for (key, value) in session.entries::<serde_json::Value>()? {
    ///     println!("{key} = {value}");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SessionError::Deserialize`] naming the first key whose value is
    /// not a `T`.
    pub fn entries<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>, SessionError> {
        let state = self.state();
        let mut entries = state
            .entries
            .iter()
            .map(|(key, bytes)| Ok((key.clone(), decode(state.codec, key, bytes)?)))
            .collect::<Result<Vec<_>, SessionError>>()?;
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        Ok(entries)
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
        // A cleared session is logged out: it leaves its user's list.
        state.binding = None;
        state.seen = None;
        state.bound = false;
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
        // A session started after the logout is a new one, with the settings'.
        state.permanent = None;
        state.lifetime = None;
        state.meta_changed = false;
        state.binding = None;
        state.seen = None;
        state.bound = false;
        state.entries.clear();
        state.size = 0;
        state.changes.clear();
        state.cleared = false;
    }

    /// Where the session stands: unchanged, changed, renewed or purged.
    pub fn status(&self) -> SessionStatus {
        self.state().status()
    }

    /// Makes the session's cookie outlive the browser (`true`: `Max-Age`
    /// and `Expires` of the session's lifetime) or end with it (`false`: a
    /// browser-session cookie), as Flask's `session.permanent`. It defaults
    /// to `SESSION_PERMANENT`; the choice is stored with the session (under
    /// `_permanent`, as Flask does), so it holds on later requests and
    /// across [`renew`](Self::renew).
    ///
    /// ```
    /// # use session_core::Session;
    /// # fn log_in(session: &Session, remember_me: bool) -> Result<(), session_core::SessionError> {
    /// session.renew();
    /// session.insert("user", "ann")?;
    /// session.set_permanent(remember_me);
    /// # Ok(()) }
    /// ```
    pub fn set_permanent(&self, permanent: bool) {
        let mut state = self.state();
        state.permanent = Some(permanent);
        state.meta_changed = true;
    }

    /// Binds the session to a user: call it at login, after
    /// [`renew`](Self::renew). The binding is stored with the session (under
    /// `_user`, outside the entries) and follows it across later logins;
    /// the save after the handler adds the session to the user's index, so
    /// that [`Users`](super::Users) can list it and end it ("log out
    /// everywhere"). With `SESSION_MAX_PER_USER`, that save also ends the
    /// user's least recently seen sessions past the limit.
    ///
    /// Binding the session to the user it is already bound to keeps its
    /// handle; [`clear`](Self::clear) and [`purge`](Self::purge) unbind it.
    ///
    /// ```
    /// # use session_core::Session;
    /// # fn log_in(session: &Session, user_id: u64) {
    /// session.renew();
    /// session.bind_user(user_id.to_string());
    /// # }
    /// ```
    pub fn bind_user(&self, user: impl Into<String>) {
        let user = user.into();
        let mut state = self.state();
        let handle = match &state.binding {
            Some(binding) if binding.user == user => binding.handle.clone(),
            _ => Handle::generate(),
        };
        let now = SystemTime::now();
        state.binding = Some(Binding {
            user,
            handle,
            indexed_at: millis(now),
        });
        state.seen = Some(millis(now));
        state.bound = true;
    }

    /// The user the session is bound to, if any (see
    /// [`bind_user`](Self::bind_user)).
    pub fn user(&self) -> Option<String> {
        self.state().binding.as_ref().map(|b| b.user.clone())
    }

    /// The session's handle in its user's list of sessions, if it is bound
    /// to a user: what [`Users::list`](super::Users::list) shows it as.
    pub fn handle(&self) -> Option<String> {
        self.state()
            .binding
            .as_ref()
            .map(|b| b.handle.as_str().to_owned())
    }

    /// Whether the session's cookie outlives the browser: what
    /// [`set_permanent`](Self::set_permanent) chose, else `SESSION_PERMANENT`.
    pub fn is_permanent(&self) -> bool {
        self.state().is_permanent()
    }

    /// Sets this session's idle lifetime: how long after its last refresh
    /// the store forgets it, how soon a read refreshes it, and (when
    /// permanent) the cookie's `Max-Age`, in place of
    /// `PERMANENT_SESSION_LIFETIME`. `SESSION_ABSOLUTE_LIFETIME`, when set,
    /// still caps it. Kept to the second (at least one); stored with the
    /// session (under `_lifetime`), so it holds on later requests and
    /// across [`renew`](Self::renew).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use session_core::Session;
    /// # fn kiosk(session: &Session) {
    /// session.set_lifetime(Duration::from_secs(15 * 60));
    /// assert_eq!(session.lifetime(), Duration::from_secs(900));
    /// # }
    /// ```
    pub fn set_lifetime(&self, lifetime: Duration) {
        let mut state = self.state();
        state.lifetime = Some(Duration::from_secs(lifetime.as_secs().max(1)));
        state.meta_changed = true;
    }

    /// This session's idle lifetime: what [`set_lifetime`](Self::set_lifetime)
    /// chose, else `PERMANENT_SESSION_LIFETIME`.
    pub fn lifetime(&self) -> Duration {
        self.state().lifetime()
    }

    /// Writes the changes made so far, now, in the middle of the handler
    /// (a long-running handler, a streaming response), with every contract
    /// of the end-of-request save: only the changed keys are sent, a logout
    /// wins, a login moves the session to a new id. The save after the
    /// handler then sends only what changed after this one, and the cookie
    /// this save decided on goes out with the response.
    ///
    /// A session that belongs to no engine ([`Session::new`]) has nowhere
    /// to go: saving it does nothing.
    ///
    /// # Errors
    ///
    /// Nothing is saved, and the changes stay to be saved after the
    /// handler (where the outage policy answers), on:
    /// [`SessionError::Store`] when the store fails or times out (or failed
    /// when the session was loaded and the outage policy served it empty),
    /// and [`SessionError::TooLargeInStore`] when, with what other requests
    /// stored, the session would pass `SESSION_MAX_SIZE`.
    pub async fn save(&self) -> Result<(), SessionError> {
        super::save::save_now(&self.0).await
    }

    /// Reads the session again from where it is kept, dropping the changes
    /// not saved yet: what another request stored meanwhile shows, and the
    /// handler starts over from it. After a [`save`](Self::save) of this
    /// request, the session that save left is read (a login's new one, or
    /// none after a logout).
    ///
    /// A session that belongs to no engine ([`Session::new`]) has nowhere
    /// to be read from: reloading it does nothing.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`] when the store fails or times out; the
    /// session is then left as it was.
    pub async fn reload(&self) -> Result<(), SessionError> {
        super::load::reload(&self.0).await
    }

    /// The [`Users`] of the engine that loaded this session, and the
    /// session's user and handle.
    fn users(&self) -> Result<(Users, String, String), SessionError> {
        let state = self.state();
        let Some(ctx) = &state.ctx else {
            return Err(SessionError::NoUserIndex(
                "this session belongs to no middleware (Session::new): it has no store to list sessions in",
            ));
        };
        let users = ctx.engine.users();
        let Some(binding) = &state.binding else {
            return Err(SessionError::NotLoggedIn);
        };
        Ok((
            users,
            binding.user.clone(),
            binding.handle.as_str().to_owned(),
        ))
    }

    /// The sessions of the user this session is bound to, this one marked
    /// [`current`](UserSession::current).
    ///
    /// # Errors
    ///
    /// [`SessionError::NotLoggedIn`] when the session is bound to no user
    /// (`401`), and as [`Users::list`].
    pub async fn user_sessions(&self) -> Result<Vec<UserSession>, SessionError> {
        let (users, user, handle) = self.users()?;
        users.list_marking(&user, Some(&handle)).await
    }

    /// Ends the session `handle` names, if it is one of this session's
    /// user's; ending this very session also removes its cookie after the
    /// request.
    ///
    /// # Errors
    ///
    /// As [`user_sessions`](Self::user_sessions).
    pub async fn revoke_user_session(&self, handle: &str) -> Result<bool, SessionError> {
        let (users, user, own) = self.users()?;
        let ended = users.revoke(&user, handle).await?;
        if ended && handle == own {
            self.purge();
        }
        Ok(ended)
    }

    /// Ends every other session of this session's user: "log out my other
    /// devices". Returns how many.
    ///
    /// # Errors
    ///
    /// As [`user_sessions`](Self::user_sessions).
    pub async fn log_out_other_sessions(&self) -> Result<usize, SessionError> {
        let (users, user, own) = self.users()?;
        users.revoke_all_except(&user, &own).await
    }

    /// Ends every session of this session's user, this one included (its
    /// cookie is removed after the request): "log out everywhere". Returns
    /// how many.
    ///
    /// # Errors
    ///
    /// As [`user_sessions`](Self::user_sessions).
    pub async fn log_out_everywhere(&self) -> Result<usize, SessionError> {
        let (users, user, _) = self.users()?;
        let ended = users.revoke_all(&user).await?;
        self.purge();
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::state::{CookieChange, Ctx};
    use super::*;
    use crate::SessionId;
    use crate::store::Record;

    #[test]
    fn debug_shows_the_keys_and_the_status_not_the_values() {
        let s = session(&[("user", "\"secret-name\"")], 1024);
        let printed = format!("{s:?}");
        assert_eq!(printed, r#"Session { keys: ["user"], status: Unchanged }"#);
        let ctx = Ctx {
            engine: Arc::new(super::super::Engine::detached()),
            started: SystemTime::now(),
            cookies: vec!["the-cookie".into()],
            client: None,
        };
        assert_eq!(
            format!("{ctx:?}"),
            "Ctx { .. }",
            "no cookie in a debug print"
        );
    }

    fn session(pairs: &[(&str, &str)], max_size: usize) -> Session {
        let record = Record::from(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v.as_bytes())))
                .collect::<HashMap<_, _>>(),
        );
        let defaults = Defaults {
            max_size,
            ..Defaults::of(&SessionConfig::default())
        };
        Session::from_state(State::new(None, Some(record), defaults))
    }

    fn sorted(mut keys: Vec<String>) -> Vec<String> {
        keys.sort();
        keys
    }

    #[test]
    fn a_failed_save_gives_back_everything_it_took() {
        type Op = fn(&Session);
        let ops: [(&str, Op, SessionStatus); 5] = [
            (
                "insert",
                |s| s.insert("b", 2).unwrap(),
                SessionStatus::Changed,
            ),
            ("clear", |s| s.clear(), SessionStatus::Changed),
            ("renew", |s| s.renew(), SessionStatus::Renewed),
            ("purge", |s| s.purge(), SessionStatus::Purged),
            (
                "set_permanent",
                |s| s.set_permanent(false),
                SessionStatus::Changed,
            ),
        ];
        for (name, op, status) in ops {
            let s = session(&[("a", "1")], 1000);
            op(&s);
            let before = s.state().change_set();
            let taken = s.state().take_tracked();
            assert_eq!(s.status(), SessionStatus::Unchanged, "{name}: all taken");
            s.state().restore_tracked(taken);
            assert_eq!(s.status(), status, "{name}: given back");
            assert_eq!(
                s.state().change_set(),
                before,
                "{name}: the same change set"
            );
        }
    }

    #[test]
    fn after_a_failed_save_changes_made_meanwhile_win() {
        // A key changed again meanwhile keeps its new value.
        let s = session(&[("a", "1")], 1000);
        s.insert("a", 2).unwrap();
        let taken = s.state().take_tracked();
        s.insert("a", 3).unwrap();
        s.state().restore_tracked(taken);
        assert_eq!(
            s.state().change_set().set,
            vec![("a".to_owned(), Bytes::from("3"))]
        );
        // A clear or a purge meanwhile drops what was taken before it.
        for wipe in [Session::clear as fn(&Session), Session::purge] {
            let s = session(&[("a", "1")], 1000);
            s.insert("b", 2).unwrap();
            let taken = s.state().take_tracked();
            wipe(&s);
            s.state().restore_tracked(taken);
            let changes = s.state().change_set();
            assert!(
                changes.set.iter().all(|(k, _)| k != "b"),
                "a change taken before a wipe came back: {changes:?}"
            );
        }
    }

    #[test]
    fn a_save_during_the_request_records_the_session_it_left() {
        let settings = super::super::Engine::detached().settings;
        let lifetime = Duration::from_secs(60);
        let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let stored = |exists: bool| {
            let s = session(&[("a", "1")], 1000);
            let mut state = s.state();
            state.exists = exists;
            state.created_at = exists.then_some(long_ago);
            state.expires_at = exists.then_some(long_ago);
            drop(state);
            s
        };
        let set = || CookieChange::Set {
            value: "v".into(),
            ttl: lifetime,
            permanent: true,
            id: Some(SessionId::generate()),
        };
        let about_now = |t: Option<SystemTime>, plus: Duration| {
            let t = t.expect("a time");
            let now = SystemTime::now() + plus;
            t <= now && now.duration_since(t).unwrap() < Duration::from_secs(5)
        };
        // A login keeps the creation time; its expiry is a lifetime away.
        let s = stored(true);
        s.state()
            .saved(set(), SessionStatus::Renewed, lifetime, &settings);
        assert_eq!(s.state().created_at, Some(long_ago), "a login keeps it");
        assert!(about_now(s.state().expires_at, lifetime));
        assert!(s.state().exists && s.state().key.is_some());
        // A new session, or one after a logout, begins now.
        for (exists, status) in [
            (false, SessionStatus::Changed),
            (true, SessionStatus::Purged),
        ] {
            let s = stored(exists);
            s.state().saved(set(), status, lifetime, &settings);
            assert!(
                about_now(s.state().created_at, Duration::ZERO),
                "{status:?}"
            );
        }
        // A save that changed nothing leaves the expiry as it was.
        let s = stored(true);
        s.state().saved(
            CookieChange::Keep,
            SessionStatus::Unchanged,
            lifetime,
            &settings,
        );
        assert_eq!(s.state().expires_at, Some(long_ago));
        // A session that is not stored gets no expiry.
        let s = stored(false);
        s.state().saved(
            CookieChange::Remove,
            SessionStatus::Changed,
            lifetime,
            &settings,
        );
        assert_eq!(s.state().expires_at, None);
        assert!(!s.state().exists);
    }

    #[test]
    fn a_removal_after_a_clear_is_not_sent() {
        let s = session(&[("a", "1")], 1000);
        s.clear();
        s.insert("b", 1).unwrap();
        assert!(s.remove_key("b"));
        let changes = s.state().change_set();
        assert!(changes.clear);
        assert_eq!(
            changes.remove,
            Vec::<String>::new(),
            "the clear removed it already"
        );
    }

    #[test]
    fn emptying_a_session_removes_each_of_its_settings() {
        for (key, value) in [("_permanent", "false"), ("_lifetime", "60")] {
            let s = session(&[("a", "1"), (key, value)], 1000);
            assert!(s.remove_key("a"));
            let changes = s.state().change_set();
            assert!(
                changes.remove.iter().any(|k| k == key),
                "{key} stays in the store: {changes:?}"
            );
        }
    }

    #[test]
    fn the_size_limit_counts_exactly_after_a_removal() {
        // Each entry: 8 bytes of overhead + 1-byte key + its JSON value.
        let size = |n: usize| 8 + 1 + n + 2;
        let s = session(&[], 3 * size(100));
        s.insert("a", "x".repeat(100)).unwrap();
        s.insert("b", "x".repeat(100)).unwrap();
        assert_eq!(s.len(), 2);
        assert!(!s.is_empty());
        assert!(s.contains_key("a") && !s.contains_key("z"));
        assert!(s.remove_key("a"));
        assert_eq!(s.len(), 1);
        assert!(!s.contains_key("a"));
        // Room for exactly two more of that size, not a byte more.
        s.insert("c", "x".repeat(100)).unwrap();
        s.insert("d", "x".repeat(100)).unwrap();
        let over = s.insert("e", "");
        assert!(
            matches!(over, Err(SessionError::TooLarge { .. })),
            "{over:?}"
        );
    }

    #[test]
    fn only_changed_keys_are_in_the_change_set() {
        let s = session(&[("a", "1"), ("b", "2"), ("c", "3")], 1000);
        assert_eq!(s.status(), SessionStatus::Unchanged);
        assert_eq!(s.get::<u32>("a").unwrap(), Some(1));
        assert_eq!(s.status(), SessionStatus::Unchanged, "reads change nothing");
        s.insert("b", 20).unwrap();
        assert!(s.remove_key("c"));
        assert!(!s.remove_key("missing"));
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
        s.remove_key("k");
        let changes = s.state().change_set();
        assert!(changes.set.is_empty());
        assert_eq!(changes.remove, ["k"]);
    }

    #[test]
    fn clear_then_insert_sends_clear_and_the_new_key() {
        let s = session(&[("a", "1")], 1000);
        s.remove_key("a");
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
        s.remove_key("b");
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

    /// The audit's finding: `insert("_user", …)` was read back as the
    /// session's user binding. Every metadata name is refused, whatever
    /// the value, through every way of writing, and nothing is recorded.
    #[test]
    fn metadata_names_are_reserved_whatever_the_value() {
        use crate::meta::KEYS;
        let s = session(&[], 100_000);
        let binding = serde_json::json!({"user": "victim", "handle": "AAAAAAAAAAAAAAAAAAAAAA", "indexed_at": 0});
        for key in KEYS {
            let refused = |err: SessionError| {
                assert!(
                    matches!(err, SessionError::ReservedKey { key: ref k } if k == key),
                    "{key}: {err}"
                );
            };
            refused(s.insert(key, &binding).unwrap_err());
            refused(s.insert(key, "text").unwrap_err());
            refused(s.insert(key, 31_536_000u64).unwrap_err());
            refused(s.insert(key, true).unwrap_err());
            refused(s.insert_if_changed(key, 1).unwrap_err());
            refused(s.update(key, |_: Option<u64>| 1).unwrap_err());
        }
        assert!(s.is_empty());
        assert_eq!(s.status(), SessionStatus::Unchanged);
        assert_eq!(s.user(), None, "no binding of the client's choosing");
        assert!(s.is_permanent() && s.lifetime() == Duration::from_secs(31 * 24 * 3600));
    }

    #[test]
    fn remove_returns_the_old_value_and_records_the_removal() {
        let s = session(&[("n", "7"), ("text", "\"x\"")], 1000);
        assert_eq!(s.remove::<u32>("n").unwrap(), Some(7));
        assert_eq!(s.remove::<u32>("n").unwrap(), None);
        // A value of another type: an error, and the key is gone all the same.
        let err = s.remove::<u32>("text").unwrap_err();
        assert!(
            matches!(err, SessionError::Deserialize { ref key, .. } if key == "text"),
            "{err}"
        );
        assert!(s.is_empty());
        let mut removed = s.state().change_set().remove;
        removed.sort();
        assert_eq!(removed, ["n", "text"]);
        // Sizes are counted out: the whole limit is free again.
        s.insert("big", "x".repeat(1000 - 8 - 3 - 2)).unwrap();
    }

    #[test]
    fn update_reads_changes_and_stores() {
        let s = session(&[("visits", "2"), ("name", "\"ann\"")], 1000);
        assert_eq!(
            s.update("visits", |n: Option<u64>| n.unwrap_or(0) + 1)
                .unwrap(),
            3
        );
        assert_eq!(
            s.update("fresh", |n: Option<u64>| n.unwrap_or(0) + 1)
                .unwrap(),
            1
        );
        assert_eq!(s.get::<u64>("visits").unwrap(), Some(3));
        let mut set = s.state().change_set().set;
        set.sort();
        assert_eq!(
            set,
            [
                ("fresh".to_owned(), Bytes::from("1")),
                ("visits".to_owned(), Bytes::from("3"))
            ]
        );
        // A value of another type: f is not called, nothing changes.
        let err = s
            .update("name", |_: Option<u64>| unreachable!("not called"))
            .unwrap_err();
        assert!(matches!(err, SessionError::Deserialize { .. }), "{err}");
        assert_eq!(s.get::<String>("name").unwrap().as_deref(), Some("ann"));
        // Past the size limit: an error, the old value stays.
        let err = s
            .update("name", |_: Option<String>| "x".repeat(1000))
            .unwrap_err();
        assert!(matches!(err, SessionError::TooLarge { .. }), "{err}");
        assert_eq!(s.get::<String>("name").unwrap().as_deref(), Some("ann"));
    }

    #[test]
    fn entries_are_sorted_and_typed() {
        let s = session(&[("b", "2"), ("a", "1"), ("c", "\"three\"")], 1000);
        let all = s.entries::<serde_json::Value>().unwrap();
        assert_eq!(
            all,
            [
                ("a".to_owned(), serde_json::json!(1)),
                ("b".to_owned(), serde_json::json!(2)),
                ("c".to_owned(), serde_json::json!("three")),
            ]
        );
        let err = s.entries::<u32>().unwrap_err();
        assert!(
            matches!(err, SessionError::Deserialize { ref key, .. } if key == "c"),
            "{err}"
        );
        assert_eq!(s.status(), SessionStatus::Unchanged);
    }

    #[test]
    fn a_new_session_is_empty_and_records_changes() {
        let s = Session::new();
        assert!(s.is_empty());
        assert_eq!(s.status(), SessionStatus::Unchanged);
        s.insert("k", 1).unwrap();
        assert_eq!(s.status(), SessionStatus::Changed);
        let limit = SessionConfig::default().max_size;
        let err = s.insert("big", "x".repeat(limit)).unwrap_err();
        assert!(
            matches!(err, SessionError::TooLarge { limit: l, .. } if l == limit),
            "{err}"
        );
    }

    #[test]
    fn permanence_and_lifetime_are_stored_beside_the_entries_not_among_them() {
        let s = session(
            &[("a", "1"), ("_permanent", "false"), ("_lifetime", "60")],
            1000,
        );
        assert!(!s.is_permanent());
        assert_eq!(s.lifetime(), Duration::from_secs(60));
        assert_eq!(s.keys(), ["a"], "the settings are not entries");
        assert_eq!(s.status(), SessionStatus::Unchanged);
        s.set_lifetime(Duration::from_millis(500));
        assert_eq!(
            s.lifetime(),
            Duration::from_secs(1),
            "whole seconds, at least one"
        );
        assert_eq!(s.status(), SessionStatus::Changed);
        let mut set = s.state().change_set().set;
        set.sort();
        assert_eq!(
            set,
            [
                ("_lifetime".to_owned(), Bytes::from("1")),
                ("_permanent".to_owned(), Bytes::from("false")),
            ]
        );
        // Written whole (a login), they go with the entries.
        let mut whole: Vec<_> = s.state().stored_entries().into_iter().collect();
        whole.sort();
        assert_eq!(whole.len(), 3, "{whole:?}");
        // Emptied, the session loses them too, so the store deletes it.
        s.remove_key("a");
        let changes = s.state().change_set();
        assert!(changes.set.is_empty(), "{changes:?}");
        let mut removed = changes.remove;
        removed.sort();
        assert_eq!(removed, ["_lifetime", "_permanent", "a"]);
        // A logout starts over with the settings' values.
        s.purge();
        assert!(s.is_permanent());
        assert_eq!(s.lifetime(), SessionConfig::default().lifetime);
    }

    #[test]
    fn unreadable_settings_fall_back_to_the_defaults() {
        let s = session(
            &[("a", "1"), ("_permanent", "\"yes\""), ("_lifetime", "0")],
            1000,
        );
        assert!(s.is_permanent());
        assert_eq!(s.lifetime(), SessionConfig::default().lifetime);
        assert_eq!(s.keys(), ["a"]);
        // A new session with settings but no entries writes nothing.
        let fresh = Session::new();
        fresh.set_permanent(false);
        assert!(fresh.state().stored_entries().is_empty());
        assert!(fresh.state().change_set().set.is_empty());
    }

    #[test]
    fn session_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Session>();
    }
}
