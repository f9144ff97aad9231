//! The store cycle after the handler: save what changed, set or remove the
//! cookie.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::HttpResponse;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite as CookieSameSite, time};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use session_core::bytes::Bytes;
use session_core::logout::{MOVE_NOTE_TTL, micros_since_epoch, purge};
use session_core::store::{Applied, ChangeSet, Record};
use session_core::users::{
    Binding, Entry, MAX_BOUND_LIFETIME, SEEN_KEY, USER_KEY, UserIndex, millis,
};
use session_core::{OutagePolicy, SameSite, SessionId, SessionStore, StoreError, StoreKey};

use crate::error::SessionError;
use crate::session::{Client, CookieChange, Session, SessionStatus, State};
use crate::settings::{Sessions, Settings, Shared};
use crate::slot::Slot;

/// Why a save wrote nothing.
enum Failure {
    /// The store failed or timed out: the outage policy answers.
    Store(StoreError),
    /// The merged session would pass `SESSION_MAX_SIZE`.
    TooLarge { size: usize, limit: usize },
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

/// What the save needs from the session, copied out so that no lock is
/// held across a store call.
struct Snapshot {
    id: Option<SessionId>,
    key: Option<StoreKey>,
    exists: bool,
    ended: bool,
    stale_key: bool,
    expires_at: Option<SystemTime>,
    created_at: Option<SystemTime>,
    status: SessionStatus,
    changes: ChangeSet,
    entries: HashMap<String, Bytes>,
    /// When the request arrived: a logout follows a login's move only if
    /// it arrived before the login was over.
    started: SystemTime,
    /// The session's own idle lifetime and permanence (else the settings').
    lifetime: Duration,
    permanent: bool,
    /// This request changed the session's permanence or lifetime: the
    /// cookie is sent again, with its new attributes.
    settings_changed: bool,
    /// The user the session is bound to, and when it was last seen.
    binding: Option<Binding>,
    seen: Option<u64>,
    /// This request bound the session: its entry goes into the user's index.
    bound: bool,
    /// The client, when `SESSION_TRACK_CLIENT` records it.
    client: Option<Client>,
}

/// What a save needs from `state`, or `None` when nothing is to be saved:
/// the store failed at load (the outage policy serves the session empty),
/// or the response is a failure (`failed`) and the session was not purged.
fn snapshot(state: &State, shared: &Shared, started: SystemTime, failed: bool) -> Option<Snapshot> {
    if state.degraded {
        return None;
    }
    let status = state.status();
    if failed && status != SessionStatus::Purged {
        return None;
    }
    let server_side = matches!(shared.sessions, Sessions::Store(_));
    // The whole session is copied only when it is written whole: a new
    // session, a login, a logout with new entries, or the cookie store.
    let whole = !failed
        && match status {
            SessionStatus::Unchanged => !server_side,
            SessionStatus::Changed => !(server_side && state.exists),
            SessionStatus::Renewed | SessionStatus::Purged => true,
        };
    Some(Snapshot {
        id: state.id.clone(),
        key: state.key.clone(),
        exists: state.exists,
        ended: state.ended,
        stale_key: state.stale_key,
        expires_at: state.expires_at,
        created_at: state.created_at,
        status,
        changes: if status == SessionStatus::Unchanged {
            ChangeSet::default()
        } else {
            state.change_set()
        },
        entries: if whole {
            state.stored_entries()
        } else {
            HashMap::new()
        },
        started,
        // The user's index outlives a bound session only this long.
        lifetime: match &state.binding {
            Some(_) => state.lifetime().min(MAX_BOUND_LIFETIME),
            None => state.lifetime(),
        },
        permanent: state.is_permanent(),
        settings_changed: state.settings_changed(),
        binding: state.binding.clone(),
        seen: state.seen,
        bound: state.bound,
        client: state.ctx.as_ref().and_then(|ctx| ctx.client.clone()),
    })
}

/// Writes a snapshot where the middleware keeps sessions.
async fn write(shared: &Shared, snapshot: Snapshot) -> Result<CookieChange, Failure> {
    match &shared.sessions {
        Sessions::Store(store) => save(store, &shared.settings, snapshot).await,
        #[cfg(feature = "cookie")]
        Sessions::Cookie(store) => Ok(save_cookie(store, &shared.settings, snapshot)),
    }
}

/// The store cycle after the handler: saves what the request changed and
/// sets or removes the cookie on `res`.
pub(crate) async fn finish<B: MessageBody>(
    slot: &Slot,
    mut res: ServiceResponse<B>,
) -> ServiceResponse<EitherBody<B>> {
    let Some(session) = slot.loaded() else {
        return res.map_into_left_body();
    };
    let shared = slot.shared();
    let settings = &shared.settings;
    // The response depends on the cookie: shared caches must not mix users.
    res.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Cookie"));
    // A handler that failed may have stopped half-way through its changes:
    // keep none of them (SESSION_SAVE_ON_ERROR), but carry out a logout.
    let failed = res.status().is_server_error() && !settings.save_on_error;
    let (snapshot, pending) = {
        let mut state = session.state();
        let pending = state.pending.take();
        (snapshot(&state, shared, slot.started(), failed), pending)
    };
    let change = match snapshot {
        Some(snapshot) => write(shared, snapshot).await,
        None => Ok(CookieChange::Keep),
    };
    // A save made during the request decided on a cookie: it is sent unless
    // this save decides another (or the store fails and the policy is to
    // fail the request).
    let change = match (change, pending) {
        (Ok(CookieChange::Keep), Some(earlier)) => Ok(earlier),
        (Err(Failure::Store(error)), Some(earlier))
            if settings.outage == OutagePolicy::ServeEmpty =>
        {
            crate::events::outage("save", settings.outage);
            tracing::warn!(%error, "session store failed at save; the change is dropped");
            Ok(earlier)
        }
        (change, _) => change,
    };
    let cookie = match change {
        Ok(CookieChange::Keep) => return res.map_into_left_body(),
        Ok(CookieChange::Set {
            value,
            ttl,
            permanent,
            ..
        }) => set_cookie(settings, value, ttl, permanent),
        Ok(CookieChange::Remove) => removal_cookie(settings),
        Err(Failure::Store(error)) => return outage(settings, res, &error),
        Err(Failure::TooLarge { size, limit }) => {
            tracing::error!(
                size,
                limit,
                "session changes refused: with what other requests stored, the session would pass SESSION_MAX_SIZE; nothing was saved"
            );
            return replace(res, HttpResponse::InternalServerError().finish());
        }
    };
    match HeaderValue::from_str(&cookie.to_string()) {
        Ok(value) => {
            res.headers_mut().append(header::SET_COOKIE, value);
            keep_private(res.headers_mut());
            res.map_into_left_body()
        }
        Err(error) => {
            tracing::error!(%error, "the session cookie is not a valid header value");
            replace(res, HttpResponse::InternalServerError().finish())
        }
    }
}

/// Marks a response that sets or removes the session cookie
/// `Cache-Control: private`, so that no shared cache stores it and hands
/// one user's cookie to another. A response already `private` or
/// `no-store` keeps its header; `public` and `s-maxage` (read by shared
/// caches only) are dropped, other directives kept.
fn keep_private(headers: &mut HeaderMap) {
    let directives: Vec<String> = headers
        .get_all(header::CACHE_CONTROL)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    let lower = |d: &String| d.to_ascii_lowercase();
    if directives
        .iter()
        .map(lower)
        .any(|d| d.starts_with("private") || d == "no-store")
    {
        return;
    }
    let kept = directives.iter().filter(|d| {
        let d = lower(d);
        d != "public" && !d.starts_with("s-maxage")
    });
    let value = std::iter::once("private")
        .chain(kept.map(String::as_str))
        .collect::<Vec<_>>()
        .join(", ");
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("private")),
    );
}

/// A save that failed: the response the outage policy asks for.
fn outage<B>(
    settings: &Settings,
    res: ServiceResponse<B>,
    error: &StoreError,
) -> ServiceResponse<EitherBody<B>> {
    match (error, settings.outage) {
        (StoreError::NotConfigured, _) => {
            tracing::error!(%error, "a session was written without a store");
            replace(res, HttpResponse::InternalServerError().finish())
        }
        (_, OutagePolicy::ServeEmpty) => {
            crate::events::outage("save", settings.outage);
            tracing::warn!(%error, "session store failed at save; the change is dropped");
            res.map_into_left_body()
        }
        _ => {
            crate::events::outage("save", settings.outage);
            tracing::error!(%error, "session store failed at save; answering 503");
            replace(res, HttpResponse::ServiceUnavailable().finish())
        }
    }
}

fn replace<B>(res: ServiceResponse<B>, with: HttpResponse) -> ServiceResponse<EitherBody<B>> {
    let (req, _) = res.into_parts();
    ServiceResponse::new(req, with).map_into_right_body()
}

/// Whether a session has aged enough since its lifetime was last extended
/// for another extension (to `ttl` from now) to be worth a write: when the
/// store cannot say when it expires, or once a tenth of its lifetime (at
/// most a minute) has passed.
fn aged(lifetime: Duration, expires_at: Option<SystemTime>, ttl: Duration) -> bool {
    let Some(expires_at) = expires_at else {
        return true;
    };
    let slack = (lifetime / 10).min(Duration::from_secs(60));
    let remaining = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    remaining + slack < ttl
}

/// Whether an unchanged session read by this request should have its
/// lifetime extended (`SESSION_REFRESH_EACH_REQUEST`, once it has aged).
fn refresh_due(settings: &Settings, snap: &Snapshot, ttl: Duration) -> bool {
    settings.refresh && aged(snap.lifetime, snap.expires_at, ttl)
}

/// Saves a server-side session; returns what to do with the cookie.
async fn save<S: SessionStore>(
    store: &S,
    settings: &Settings,
    snap: Snapshot,
) -> Result<CookieChange, Failure> {
    let key = |id: &SessionId| settings.keys.session(id);
    // A session past its absolute lifetime was loaded as missing; it goes.
    if snap.ended
        && let Some(ended) = &snap.key
    {
        store.delete(ended).await?;
    }
    // The store key of the session the request came with, if it was stored.
    let live = snap.key.clone().filter(|_| snap.exists);
    let had_cookie = snap.id.is_some();
    let nothing = if snap.ended {
        CookieChange::Remove
    } else {
        CookieChange::Keep
    };
    let set = |id: &SessionId, ttl| CookieChange::Set {
        value: cookie_value(settings, id),
        ttl,
        permanent: snap.permanent,
        id: Some(id.clone()),
    };
    // The cookie of a saved session is sent again only to extend a
    // permanent cookie's expiry, once it has aged, or to sign it with the
    // current key: a browser-session cookie, or a recently sent one, is
    // already right.
    let keep_or_resend = |id: &SessionId, ttl| {
        if snap.stale_key
            || snap.settings_changed
            || (snap.permanent && aged(snap.lifetime, snap.expires_at, ttl))
        {
            set(id, ttl)
        } else {
            CookieChange::Keep
        }
    };
    // A new session under a fresh id. A login's is in use from the start:
    // it is touched at once, so that a bounded store (memory, files) does
    // not take it for one of a flood of new sessions nobody came back to.
    let create_fresh = async |entries: HashMap<String, Bytes>,
                              in_use: bool|
           -> Result<CookieChange, Failure> {
        let now = SystemTime::now();
        let ttl = settings
            .ttl(Some(now), snap.lifetime)
            .unwrap_or(snap.lifetime);
        let record = Record {
            entries,
            expires_at: None,
            created_at: Some(now),
        };
        // 256 random bits do not collide; the loop is for a broken RNG.
        for _ in 0..3 {
            let id = SessionId::generate();
            let key = key(&id);
            let record = sealed(settings, &id, &record);
            if store.create(&key, &record, ttl).await? {
                crate::events::created();
                if in_use {
                    let _ = store.touch(&key, ttl).await?;
                }
                if let Some(binding) = &snap.binding {
                    // Nobody holds a cookie for it yet: without its
                    // index entry, the session goes again.
                    let index = index(store, settings, binding);
                    let entry = fresh_entry(&index, &key, snap.client.as_ref());
                    let fresh_index = match index.add(&binding.handle, &entry).await {
                        Ok(fresh_index) => fresh_index,
                        Err(error) => {
                            if let Err(cleanup) = store.delete(&key).await {
                                tracing::warn!(%cleanup, "a session whose user binding failed could not be removed");
                            }
                            return Err(error.into());
                        }
                    };
                    if snap.bound && !fresh_index {
                        tidy(store, settings, binding).await;
                    }
                }
                return Ok(set(&id, ttl));
            }
        }
        Err(StoreError::backend("three fresh session ids were all taken").into())
    };
    // The lifetime the session the request came with gets if written now;
    // `None`: its absolute lifetime ran out during the request. Then it
    // ends, whatever the request did, a login included (a logout still
    // follows the notes of logins below).
    let ttl = settings.ttl(snap.created_at, snap.lifetime);
    if snap.status != SessionStatus::Purged
        && let (Some(live), None) = (&live, ttl)
    {
        store.delete(live).await?;
        return Ok(CookieChange::Remove);
    }

    match snap.status {
        SessionStatus::Purged => {
            // Whatever the cookie named goes, and, if a login was moving it
            // while this request was in flight, where the login moved it.
            if let Some(id) = &snap.id {
                purge(store, &settings.keys, key(id), snap.started).await?;
                crate::events::purged();
            }
            if !snap.entries.is_empty() {
                create_fresh(snap.entries, false).await
            } else if had_cookie {
                Ok(CookieChange::Remove)
            } else {
                Ok(CookieChange::Keep)
            }
        }
        SessionStatus::Renewed => match (live, ttl) {
            (Some(old), Some(ttl)) => renew(store, settings, &old, ttl, snap).await,
            _ if snap.entries.is_empty() => Ok(nothing),
            _ => create_fresh(snap.entries, true).await,
        },
        SessionStatus::Changed => match (&live, &snap.id, ttl) {
            (Some(live), Some(id), Some(ttl)) => {
                let mut changes = snap.changes.clone();
                let mut fresh_index = false;
                if let Some(binding) = &snap.binding {
                    let updates;
                    (updates, fresh_index) =
                        bound_updates(store, settings, &snap, binding, live, ttl).await?;
                    // An update replaces what the request wrote of the
                    // same key (the binding, written again with the rest).
                    changes
                        .set
                        .retain(|(key, _)| updates.iter().all(|(k, _)| k != key));
                    changes.set.extend(updates);
                }
                settings.at_rest.seal_changes(id, &mut changes);
                match store.apply(live, &changes, ttl).await? {
                    // A logout (or expiry) won: nothing to save, no cookie.
                    Applied::Gone => Ok(CookieChange::Keep),
                    Applied::Deleted => Ok(CookieChange::Remove),
                    // Another request may hold keys this one does not see:
                    // the store, not this request's view, says it is alive.
                    Applied::Done => {
                        if let Some(binding) = snap.binding.as_ref().filter(|_| snap.bound)
                            && !fresh_index
                        {
                            tidy(store, settings, binding).await;
                        }
                        Ok(keep_or_resend(id, ttl))
                    }
                    Applied::TooLarge { size } => Err(Failure::TooLarge {
                        size,
                        limit: settings.max_size,
                    }),
                }
            }
            _ if snap.entries.is_empty() => Ok(nothing),
            _ => create_fresh(snap.entries, false).await,
        },
        SessionStatus::Unchanged => match (&live, &snap.id, ttl) {
            (Some(live), Some(id), Some(ttl)) if refresh_due(settings, &snap, ttl) => {
                let updates = match &snap.binding {
                    Some(binding) => {
                        bound_updates(store, settings, &snap, binding, live, ttl)
                            .await?
                            .0
                    }
                    None => Vec::new(),
                };
                let refreshed = if updates.is_empty() {
                    store.touch(live, ttl).await?
                } else {
                    let mut changes = ChangeSet {
                        set: updates,
                        ..ChangeSet::default()
                    };
                    // The metadata is tagged as every write tags it.
                    settings.at_rest.seal_changes(id, &mut changes);
                    store.apply(live, &changes, ttl).await?
                };
                match refreshed {
                    Applied::Done => Ok(keep_or_resend(id, ttl)),
                    _ => Ok(CookieChange::Keep),
                }
            }
            (Some(_), Some(id), Some(ttl)) if snap.stale_key => Ok(set(id, ttl)),
            _ => Ok(nothing),
        },
    }
}

/// `record` as it is stored under `id`: its values sealed, when they are
/// sealed at rest (`SESSION_ENCRYPT_AT_REST`).
fn sealed<'a>(settings: &Settings, id: &SessionId, record: &'a Record) -> Cow<'a, Record> {
    if !settings.at_rest.mode().seals() {
        return Cow::Borrowed(record);
    }
    let mut sealed = record.clone();
    settings.at_rest.seal_entries(id, &mut sealed.entries);
    Cow::Owned(sealed)
}

/// The user's index of a bound session.
fn index<'a, S: SessionStore>(
    store: &'a S,
    settings: &'a Settings,
    binding: &'a Binding,
) -> UserIndex<'a, S> {
    UserIndex::new(store, &settings.keys, &binding.user, settings.codec).max(settings.max_per_user)
}

/// The entry in `index` of a session bound now, under `key`.
fn fresh_entry<S: SessionStore>(
    index: &UserIndex<'_, S>,
    key: &StoreKey,
    client: Option<&Client>,
) -> Entry {
    Entry::new(
        index.name(key),
        client.and_then(|c| c.user_agent.as_deref()),
        client.and_then(|c| c.ip.as_deref()),
    )
}

/// Whether a bound session was last seen long enough ago for a write to
/// say it was seen now: the refresh's own step, a tenth of its lifetime
/// (at most a minute).
fn seen_due(seen: Option<u64>, lifetime: Duration, now: SystemTime) -> bool {
    let step = (lifetime / 10).min(Duration::from_secs(60));
    seen.is_none_or(|seen| millis(now).saturating_sub(seen) > millis_of(step))
}

fn millis_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a write of a bound session under `key` (living `ttl` from now)
/// adds to it, after writing the session's entry in its user's index
/// first, where that is due: when the request bound it (its change set
/// then holds the binding already), or when the index could expire before
/// the session ([`Binding::index_due`]). Else the write says when the
/// session was seen, if that is due. The flag: the index was created with
/// this entry (there is nothing else in it to tidy).
async fn bound_updates<S: SessionStore>(
    store: &S,
    settings: &Settings,
    snap: &Snapshot,
    binding: &Binding,
    key: &StoreKey,
    ttl: Duration,
) -> Result<(Vec<(String, Bytes)>, bool), StoreError> {
    let now = SystemTime::now();
    let index = index(store, settings, binding);
    if snap.bound {
        let fresh_index = index
            .add(
                &binding.handle,
                &fresh_entry(&index, key, snap.client.as_ref()),
            )
            .await?;
        return Ok((Vec::new(), fresh_index));
    }
    let mut updates = Vec::new();
    if seen_due(snap.seen, snap.lifetime, now) {
        let seen = settings.codec.encode(&millis(now)).ok();
        updates.extend(seen.map(|v| (SEEN_KEY.to_owned(), v)));
    }
    if binding.index_due(now, ttl) {
        let entry = index
            .entries()
            .await?
            .into_iter()
            .find(|(handle, _)| *handle == binding.handle)
            .map_or_else(
                || fresh_entry(&index, key, None),
                |(_, entry)| Entry {
                    key: index.name(key),
                    ..entry
                },
            );
        index.add(&binding.handle, &entry).await?;
        let rebound = Binding {
            indexed_at: millis(now),
            ..binding.clone()
        };
        let rebound = settings.codec.encode(&rebound).ok();
        updates.extend(rebound.map(|v| (USER_KEY.to_owned(), v)));
    }
    Ok((updates, false))
}

/// Points a bound session's index entry at the key a login is moving it
/// to, once the new session exists and before the old one is taken: a
/// revocation that reads the entry before finds the old key and follows
/// the login's note; one that reads it after finds the new key. A session
/// the request bound gets a new entry; one bound before keeps what its
/// entry says (its binding time, its client). `true`: the index was created
/// with this entry.
async fn rebind<S: SessionStore>(
    store: &S,
    settings: &Settings,
    binding: &Binding,
    bound: bool,
    client: Option<&Client>,
    old: &StoreKey,
    new: &StoreKey,
) -> Result<bool, StoreError> {
    let index = index(store, settings, binding);
    let kept = if bound {
        None
    } else {
        index.entries().await?.into_iter().find(|(handle, entry)| {
            *handle == binding.handle && index.resolve(entry).as_ref() == Some(old)
        })
    };
    let entry = match kept {
        Some((_, entry)) => Entry {
            key: index.name(new),
            ..entry
        },
        None => fresh_entry(&index, new, client),
    };
    index.add(&binding.handle, &entry).await
}

/// After a binding: drops the index entries of the user's sessions that
/// ended (so that the index holds the live ones, plus those that ended since
/// the last login), and ends the least recently seen sessions past
/// `SESSION_MAX_PER_USER`. The login stands whatever happens: a failure is
/// logged.
async fn tidy<S: SessionStore>(store: &S, settings: &Settings, binding: &Binding) {
    let index = index(store, settings, binding);
    if let Err(error) = index.cap(settings.max_per_user, &binding.handle).await {
        tracing::warn!(%error, "could not tidy a user's index of sessions after a login");
    }
}

/// Moves a stored session to a new id (login). The old id never holds
/// anything the login wrote, at any step, whatever fails; and a logout
/// racing the login still wins, whatever the interleaving:
///
/// 1. a note beside the old key ([`session_core::Keyspace::move_note`]) names the new key (its value empty: the login
///    is under way), so that a logout that arrives while the login runs
///    ends the new session too;
/// 2. the new session is created with this request's view of the session
///    (the login's changes included) and the old creation time;
/// 3. the old one is taken (atomically read and deleted): `None` means a
///    logout deleted it first (or another login of it moved it first), so
///    the login is undone;
/// 4. writes other requests made to the old id meanwhile are carried over,
///    with this request's changes applied on top; `Gone` means a logout
///    followed the note and ended the new session;
/// 5. the note records when the login was over: a logout that arrives
///    later with the old id (an attacker who planted it, say) no longer
///    reaches the new session.
async fn renew<S: SessionStore>(
    store: &S,
    settings: &Settings,
    old: &StoreKey,
    ttl: Duration,
    snap: Snapshot,
) -> Result<CookieChange, Failure> {
    // Unknown only when no absolute lifetime is set: the move starts the
    // count (`ttl` is the idle lifetime then).
    let created_at = snap.created_at.or_else(|| Some(SystemTime::now()));
    let permanent = snap.permanent;
    let (binding, bound, client) = (snap.binding, snap.bound, snap.client);
    let id = SessionId::generate();
    let new = settings.keys.session(&id);
    let note = settings.keys.move_note(old);
    let note_ttl = MOVE_NOTE_TTL.min(settings.lifetime);
    // The note names the new session as the keyspace says: never its id.
    let named = settings.keys.name(&note, &new);
    let target = |done: Bytes| vec![(named.clone(), done)];
    // Another login of the same session may have left a note: add to it.
    let first_note = Record::from(target(Bytes::new()).into_iter().collect::<HashMap<_, _>>());
    if !store.create(&note, &first_note, note_ttl).await? {
        let add = ChangeSet {
            set: target(Bytes::new()),
            ..ChangeSet::default()
        };
        let _ = store.apply(&note, &add, note_ttl).await?;
    }
    let record = Record {
        entries: snap.entries,
        expires_at: None,
        created_at,
    };
    if !store
        .create(&new, &sealed(settings, &id, &record), ttl)
        .await?
    {
        return Err(StoreError::backend("a fresh session id was taken").into());
    }
    // From here on the new session exists: a failure removes it again, so
    // that nothing is left that nobody holds a cookie for.
    let mut fresh_index = false;
    let moved = async {
        if let Some(binding) = &binding {
            fresh_index =
                rebind(store, settings, binding, bound, client.as_ref(), old, &new).await?;
        }
        let Some(latest) = store.take(old).await? else {
            // The old session is gone before this login moved it: a logout
            // ended it, or another login of it (a form sent twice) moved it
            // first. This login is undone, and leaves the note to the other
            // login, if any: then that login's cookie is the one to keep,
            // else (a logout) the cookie goes.
            store.delete(&new).await?;
            let unmark = ChangeSet {
                remove: vec![named.clone()],
                ..ChangeSet::default()
            };
            return Ok(match store.apply(&note, &unmark, note_ttl).await? {
                Applied::Done => CookieChange::Keep,
                _ => CookieChange::Remove,
            });
        };
        // The values move from the old id's key to the new one's.
        let mut merged = latest.entries;
        if let Some(old_id) = &snap.id {
            settings.at_rest.open_entries(old_id, &mut merged);
        }
        snap.changes.apply_to(&mut merged);
        let mut carry = ChangeSet {
            clear: true,
            set: merged.into_iter().collect(),
            remove: Vec::new(),
            max_size: Some(settings.max_size),
        };
        settings.at_rest.seal_changes(&id, &mut carry);
        match store.apply(&new, &carry, ttl).await? {
            Applied::Done => {}
            Applied::TooLarge { size } => tracing::warn!(
                size,
                limit = settings.max_size,
                "writes made to the session during the login would pass SESSION_MAX_SIZE; the login keeps its own view"
            ),
            Applied::Deleted | Applied::Gone => return Ok(CookieChange::Remove),
        }
        Ok::<_, StoreError>(CookieChange::Set {
            value: cookie_value(settings, &id),
            ttl,
            permanent,
            id: Some(id.clone()),
        })
    };
    let change = match moved.await {
        Ok(change) => change,
        Err(error) => {
            if let Err(cleanup) = store.delete(&new).await {
                tracing::warn!(%cleanup, "a failed login could not remove the session it created");
            }
            return Err(error.into());
        }
    };
    if !matches!(change, CookieChange::Set { .. }) {
        return Ok(change);
    }
    crate::events::renewed();
    if let Some(binding) = binding.as_ref().filter(|_| bound)
        && !fresh_index
    {
        tidy(store, settings, binding).await;
    }
    let done = Bytes::from(micros_since_epoch(SystemTime::now()).to_string());
    let mark = ChangeSet {
        set: target(done),
        ..ChangeSet::default()
    };
    match store.apply(&note, &mark, note_ttl).await {
        // A logout took the note after the move, and followed it: the new
        // session is gone, so is its cookie.
        Ok(Applied::Gone) => Ok(CookieChange::Remove),
        Ok(_) => Ok(change),
        // Without the mark, a logout with the old id still ends the new
        // session for the note's few minutes: safe, so a failure is no
        // reason to fail the login.
        Err(error) => {
            tracing::warn!(%error, "the login could not mark its move as done");
            Ok(change)
        }
    }
}

/// Saves a cookie-store session: the cookie is the session.
#[cfg(feature = "cookie")]
fn save_cookie(
    store: &session_core::store::cookie::CookieStore,
    settings: &Settings,
    snap: Snapshot,
) -> CookieChange {
    // A logout starts over; anything else keeps the creation time.
    let created_at = match (snap.status, snap.created_at) {
        (SessionStatus::Purged, _) | (_, None) => SystemTime::now(),
        (_, Some(created_at)) => created_at,
    };
    let Some(ttl) = settings.ttl(Some(created_at), snap.lifetime) else {
        return if snap.exists || snap.ended {
            CookieChange::Remove
        } else {
            CookieChange::Keep
        };
    };
    let write = snap.status != SessionStatus::Unchanged
        || (snap.exists && (snap.stale_key || refresh_due(settings, &snap, ttl)));
    if !write {
        if snap.ended {
            CookieChange::Remove
        } else {
            CookieChange::Keep
        }
    } else if !snap.entries.is_empty() {
        let record = Record {
            entries: snap.entries,
            expires_at: None,
            created_at: Some(created_at),
        };
        CookieChange::Set {
            value: store.encode(&record, ttl),
            ttl,
            permanent: snap.permanent,
            id: None,
        }
    } else if snap.exists || snap.ended {
        CookieChange::Remove
    } else {
        CookieChange::Keep
    }
}

fn cookie_value(settings: &Settings, id: &SessionId) -> String {
    match &settings.signer {
        Some(signer) => signer.sign(id.as_str()),
        None => id.as_str().to_owned(),
    }
}

fn base_cookie(settings: &Settings, value: String) -> Cookie<'static> {
    let c = &settings.cookie;
    let mut cookie = Cookie::new(c.name.clone(), value);
    cookie.set_path(c.path.clone());
    if let Some(domain) = &c.domain {
        cookie.set_domain(domain.clone());
    }
    cookie.set_secure(c.secure);
    cookie.set_http_only(c.http_only);
    cookie.set_same_site(match c.same_site {
        SameSite::Lax => CookieSameSite::Lax,
        SameSite::Strict => CookieSameSite::Strict,
        SameSite::None => CookieSameSite::None,
    });
    cookie
}

/// The session cookie; a permanent one lives `ttl` (the session's
/// lifetime, cut short by its absolute lifetime).
fn set_cookie(
    settings: &Settings,
    value: String,
    ttl: Duration,
    permanent: bool,
) -> Cookie<'static> {
    let mut cookie = base_cookie(settings, value);
    if permanent {
        let lifetime = time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX);
        cookie.set_max_age(lifetime);
        cookie.set_expires(time::OffsetDateTime::now_utc().saturating_add(lifetime));
    }
    cookie
}

/// A cookie that deletes the session cookie: the same name, Path, Domain,
/// Secure and SameSite it was set with, already expired.
fn removal_cookie(settings: &Settings) -> Cookie<'static> {
    let mut cookie = base_cookie(settings, String::new());
    cookie.set_max_age(time::Duration::ZERO);
    cookie.set_expires(time::OffsetDateTime::UNIX_EPOCH);
    cookie
}

impl Session {
    /// Writes the changes made so far, now, in the middle of the handler
    /// (a long-running handler, a streaming response), with every contract
    /// of the end-of-request save: only the changed keys are sent, a logout
    /// wins, a login moves the session to a new id. The save after the
    /// handler then sends only what changed after this one, and the cookie
    /// this save decided on goes out with the response.
    ///
    /// A session that belongs to no middleware ([`Session::new`]) has
    /// nowhere to go: saving it does nothing.
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
        let (snapshot, shared, taken) = {
            let mut state = self.state();
            let Some(ctx) = &state.ctx else {
                return Ok(());
            };
            let (shared, started) = (Arc::clone(&ctx.shared), ctx.started);
            if state.degraded {
                return Err(SessionError::Store(session_core::StoreError::backend(
                    "the session store failed when the session was loaded",
                )));
            }
            let Some(snapshot) = snapshot(&state, &shared, started, false) else {
                return Ok(());
            };
            if snapshot.status == SessionStatus::Unchanged && !snapshot.stale_key {
                return Ok(());
            }
            // Changes made while the store is asked are tracked afresh.
            (snapshot, shared, state.take_tracked())
        };
        let lifetime = snapshot.lifetime;
        let status = snapshot.status;
        let outcome = write(&shared, snapshot).await;
        let mut state = self.state();
        match outcome {
            Ok(change) => {
                state.saved(change, status, lifetime, &shared.settings);
                Ok(())
            }
            Err(failure) => {
                state.restore_tracked(taken);
                Err(match failure {
                    Failure::Store(error) => SessionError::Store(error),
                    Failure::TooLarge { size, limit } => {
                        SessionError::TooLargeInStore { size, limit }
                    }
                })
            }
        }
    }
}
