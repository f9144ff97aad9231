//! How an operation on a session fails.

use crate::codec::CodecError;
use crate::store::StoreError;

/// An operation on a [`Session`](super::Session) failed: a value that does
/// not serialize or deserialize, a session that would grow too large, a
/// reserved key, or the store failing under an explicit save, reload or a
/// user's sessions.
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
    /// The store failed or timed out during
    /// [`Session::save`](super::Session::save) or
    /// [`Session::reload`](super::Session::reload) (`503`).
    #[error("the session store failed: {0}")]
    Store(#[source] StoreError),
    /// [`Session::save`](super::Session::save) was refused: with what other
    /// requests stored, the session would pass its size limit.
    #[error(
        "the session would grow to {size} bytes with what other requests stored, over its limit of {limit} bytes (SESSION_MAX_SIZE)"
    )]
    TooLargeInStore {
        /// The size the merged session would have had.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Listing or ending a user's sessions through a session bound to no
    /// user (see [`Session::bind_user`](super::Session::bind_user)): `401`.
    #[error("the session is bound to no user: call `Session::bind_user` at login")]
    NotLoggedIn,
    /// A user's sessions cannot be listed or ended here: on the cookie
    /// store, or through a session no middleware loaded (`500`).
    #[error("{0}")]
    NoUserIndex(&'static str),
    /// The key is reserved (`400`): a name the session keeps its own settings or
    /// user binding under (`_permanent`, `_lifetime`, `_user`, `_seen`:
    /// see `session_core::meta`), or one starting with a NUL character,
    /// kept for the stores' own bookkeeping.
    #[error(
        "session key {key:?} is reserved: the session keeps its own settings and user under \
         _permanent, _lifetime, _user and _seen, and keys starting with a NUL character are \
         the stores'"
    )]
    ReservedKey {
        /// The session key.
        key: String,
    },
}
