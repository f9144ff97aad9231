//! The entries a session keeps about itself, beside the app's own: its
//! own permanence and lifetime, and the user it is bound to.
//!
//! They travel with the session's entries (so every store keeps them with
//! the same guarantees, and a login moves them with the rest), but the
//! handler never sees them among its keys, nor can it write them: their
//! names are [reserved](is_reserved). They are never sealed at rest
//! ([`EncryptAtRest`](crate::EncryptAtRest)): a user's index is kept right by reading them
//! without the session's id ([`clear`]). With `SESSION_ENCRYPT_AT_REST`
//! they carry a tag under the session's key instead, which the session's
//! own load checks.

use bytes::Bytes;

pub use crate::users::{SEEN_KEY, USER_KEY};

/// The entry holding a session's own permanence, as Flask stores
/// `session.permanent`: a bool.
pub const PERMANENT_KEY: &str = "_permanent";
/// The entry holding a session's own idle lifetime, in seconds.
pub const LIFETIME_KEY: &str = "_lifetime";

/// Every metadata entry.
pub const KEYS: [&str; 4] = [PERMANENT_KEY, LIFETIME_KEY, USER_KEY, SEEN_KEY];

/// Whether `key` names a metadata entry.
pub const fn is_metadata(key: &str) -> bool {
    let mut i = 0;
    while i < KEYS.len() {
        if eq(KEYS[i].as_bytes(), key.as_bytes()) {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether an app may not use `key` for an entry of its own: a metadata
/// name, or a name starting with a NUL character (kept for the stores'
/// own bookkeeping). A `const fn`, so that `#[derive(SessionData)]` refuses
/// such a field at compile time.
pub const fn is_reserved(key: &str) -> bool {
    matches!(key.as_bytes().first(), Some(0)) || is_metadata(key)
}

const fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// What a tag adds to a metadata value: `0xC1 0x02`, a 24-byte nonce and
/// a 16-byte tag (written and checked by the sealing at rest,
/// [`EncryptAtRest`](crate::EncryptAtRest)).
pub const TAG_OVERHEAD: usize = 2 + 24 + 16;
/// The two bytes a tagged metadata value starts with: `0xC1` (which starts
/// no JSON text and no MessagePack value) and the tag's version.
pub(crate) const TAG_HEADER: [u8; 2] = [0xC1, 2];

/// A stored metadata value as it reads without the session's key: the
/// value after its tag, if it has one (see [`TAG_OVERHEAD`]).
pub fn clear(value: &Bytes) -> Bytes {
    if value.len() >= TAG_OVERHEAD && value[..2] == TAG_HEADER {
        value.slice(TAG_OVERHEAD..)
    } else {
        value.clone()
    }
}
