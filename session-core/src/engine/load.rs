//! Loading a session: checking the cookies' signatures, asking the store,
//! opening what is sealed at rest, and reloading in the middle of a request.

use std::sync::Mutex;

use super::settings::IdSigner;
use super::state::{CookieChange, Defaults, State, lock};
use super::{Engine, SessionError, Sessions, Settings};
use crate::store::Record;
use crate::{OutagePolicy, SessionId, SessionStore, StoreError, StoreKey};

/// How many cookies with the session's name are tried, at most: a browser
/// holds one per (Domain, Path) it was set for, so a handful covers every
/// honest case, and a client sending hundreds cannot make a request cost
/// hundreds of store reads.
const MAX_CANDIDATES: usize = 4;

/// Reads the cookies and loads the session they name.
///
/// Several cookies may carry the session's name: one tossed from a sibling
/// subdomain or a plain-HTTP page of the same host is sent along with the
/// real one, and often first. Each is tried, in order, until one names a
/// live session (signature checked first when signing is on), so such a
/// cookie can neither log the user out nor log them in as someone else.
pub(super) async fn load(engine: &Engine, values: &[String]) -> Result<State, StoreError> {
    let settings = &engine.settings;
    let state = |id, record| State::new(id, record, defaults(settings));
    match &engine.sessions {
        #[cfg(feature = "cookie")]
        Sessions::Cookie(store) => Ok(open_cookie(store, settings, values)),
        Sessions::Store(store) => {
            let mut first = None;
            for (id, stale_key) in values
                .iter()
                .filter_map(|v| parse_id(settings.signer.as_ref(), v))
            {
                let key = settings.keys.session(&id);
                let record = match store.load(&key).await {
                    Ok(record) => record,
                    Err(error) => return unavailable(settings, state(None, None), error),
                };
                if record.is_none() && first.is_some() {
                    continue;
                }
                let mut loaded = stored(settings, Some(id), Some(key), record);
                loaded.stale_key = stale_key;
                if loaded.exists {
                    return Ok(loaded);
                }
                first.get_or_insert(loaded);
            }
            Ok(first.unwrap_or_else(|| state(None, None)))
        }
    }
}

/// The session a store gave for `key` (and the cookie's `id`), as this
/// request sees it: missing, and to be deleted, once its absolute lifetime
/// is over.
fn stored(
    settings: &Settings,
    id: Option<SessionId>,
    key: Option<StoreKey>,
    record: Option<Record>,
) -> State {
    let (mut record, ended) = within_absolute_lifetime(settings, record);
    let mut in_clear = 0;
    if let (Some(record), Some(id)) = (&mut record, &id) {
        in_clear = settings
            .at_rest
            .open_entries(id, &mut record.entries)
            .metadata_in_clear;
    }
    let mut state = State::new(id, record, defaults(settings));
    if in_clear > 0 {
        // Written before sealing was on: the next write tags it.
        state.retag_metadata();
    }
    state.key = key;
    state.ended = ended;
    state
}

/// The session in the first of `values` the cookie store opens.
#[cfg(feature = "cookie")]
fn open_cookie(
    store: &crate::store::cookie::CookieStore,
    settings: &Settings,
    values: &[String],
) -> State {
    let opened = values
        .iter()
        .filter(|v| v.len() <= crate::store::cookie::BROWSER_COOKIE_LIMIT)
        .find_map(|v| store.decode_fresh(v));
    // A cookie of a fallback key, or of the other content, is written anew
    // on this response.
    let stale = opened.as_ref().is_some_and(|(_, fresh)| !fresh);
    let (record, ended) = within_absolute_lifetime(settings, opened.map(|(r, _)| r));
    let mut loaded = State::new(None, record, defaults(settings));
    loaded.ended = ended;
    loaded.stale_key = stale && !ended;
    loaded
}

/// What a session is when it says nothing of its own.
fn defaults(settings: &Settings) -> Defaults {
    Defaults {
        codec: settings.codec,
        max_size: settings.max_size,
        permanent: settings.permanent,
        lifetime: settings.lifetime,
        flask: settings.flask,
        overhead: settings.at_rest.mode().overhead(),
    }
}

/// The outage policy at load: an empty session that is not saved, or 503.
fn unavailable(
    settings: &Settings,
    mut empty: State,
    error: StoreError,
) -> Result<State, StoreError> {
    super::events::outage("load", settings.outage);
    match settings.outage {
        OutagePolicy::ServeEmpty => {
            tracing::warn!(%error, "session store failed at load; serving an empty session");
            empty.degraded = true;
            Ok(empty)
        }
        _ => {
            tracing::error!(%error, "session store failed at load; answering 503");
            Err(error)
        }
    }
}

/// A loaded record, or `None` with `ended` set when the absolute lifetime
/// (`SESSION_ABSOLUTE_LIFETIME`) has run out: counted from its creation, and
/// for a session that does not know when it was created (written before
/// creation times were kept), at once.
fn within_absolute_lifetime(settings: &Settings, record: Option<Record>) -> (Option<Record>, bool) {
    match (settings.absolute_lifetime, record) {
        (Some(_), Some(record)) if settings.ttl(record.created_at, settings.lifetime).is_none() => {
            (None, true)
        }
        (_, record) => (record, false),
    }
}

/// The values of the cookies named `name` in a request's `Cookie` headers
/// (`cookie_headers`, as sent), in the order sent: at most four, the
/// candidates [`Engine::load`] tries.
///
/// actix-web's own parser gives up on the whole header when any cookie in it
/// is malformed, which would let an unrelated cookie (another app's, or a
/// script's) hide the session. Values are returned as sent: ours never need
/// percent-decoding. A value that is not text cannot be ours and is skipped.
pub fn session_cookies<'a>(
    cookie_headers: impl IntoIterator<Item = &'a [u8]>,
    name: &str,
) -> Vec<String> {
    let mut values: Vec<String> = Vec::new();
    let pairs = cookie_headers
        .into_iter()
        .flat_map(|header| header.split(|&b| b == b';'));
    for pair in pairs {
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (n, v) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
        if n != name.as_bytes() {
            continue;
        }
        let v = v
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(v);
        if let Ok(v) = std::str::from_utf8(v)
            && !values.iter().any(|seen| seen == v)
        {
            values.push(v.to_owned());
        }
        if values.len() == MAX_CANDIDATES {
            break;
        }
    }
    values
}

/// The id in a cookie value, if it is well-formed and, when signing is on,
/// carries a valid signature; and whether it was signed with a fallback
/// key (so the cookie should be signed again). Oversized values are
/// rejected before any work.
pub(crate) fn parse_id(signer: Option<&IdSigner>, value: &str) -> Option<(SessionId, bool)> {
    match signer {
        None => SessionId::parse(value).map(|id| (id, false)),
        Some(signer) if value.len() == signer.signed_len() => {
            let (id, current) = signer.verify_key(value)?;
            SessionId::parse(id).map(|id| (id, !current))
        }
        Some(_) => None,
    }
}

/// [`Session::reload`](super::Session::reload).
pub(super) async fn reload(session: &Mutex<State>) -> Result<(), SessionError> {
    let (ctx, id, key, pending) = {
        let state = lock(session);
        let Some(ctx) = state.ctx.clone() else {
            return Ok(());
        };
        let pending = match &state.pending {
            Some(CookieChange::Set { value, .. }) => Some(value.clone()),
            _ => None,
        };
        (ctx, state.id.clone(), state.key.clone(), pending)
    };
    let settings = &ctx.engine.settings;
    let mut fresh = match &ctx.engine.sessions {
        #[cfg(feature = "cookie")]
        Sessions::Cookie(store) => {
            // The cookie is the session: the one this request's save
            // decided on, else the request's own.
            let values = pending.map_or_else(|| ctx.cookies.clone(), |value| vec![value]);
            open_cookie(store, settings, &values)
        }
        Sessions::Store(store) => {
            let _ = pending;
            let record = match &key {
                Some(key) => store.load(key).await.map_err(SessionError::Store)?,
                None => None,
            };
            stored(settings, id, key, record)
        }
    };
    let mut state = lock(session);
    fresh.stale_key |= state.stale_key;
    fresh.pending = state.pending.take();
    fresh.ctx = state.ctx.take();
    *state = fresh;
    Ok(())
}
