//! The entries a session keeps about itself, beside the app's own: its
//! own permanence and lifetime, and the user it is bound to.
//!
//! They travel with the session's entries (so every store keeps them with
//! the same guarantees, and a login moves them with the rest), but the
//! handler never sees them among its keys, and they are never sealed at
//! rest ([`seal`](crate::seal)): a user's index is kept right by reading
//! them without the session's id.

pub use crate::users::{SEEN_KEY, USER_KEY};

/// The entry holding a session's own permanence, as Flask stores
/// `session.permanent`: a bool.
pub const PERMANENT_KEY: &str = "_permanent";
/// The entry holding a session's own idle lifetime, in seconds.
pub const LIFETIME_KEY: &str = "_lifetime";

/// Every metadata entry.
pub const KEYS: [&str; 4] = [PERMANENT_KEY, LIFETIME_KEY, USER_KEY, SEEN_KEY];

/// Whether `key` names a metadata entry.
pub fn is_metadata(key: &str) -> bool {
    KEYS.contains(&key)
}
