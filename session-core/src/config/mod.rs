//! Configuration: the middleware's policy ([`SessionConfig`]), where
//! sessions live ([`StoreConfig`]), and Flask-style keys that fill both.
//!
//! - `types`: the value types (`StoreKind`, `SameSite`, the cookie's
//!   attributes, [`ConfigError`]).
//! - `store`: [`StoreConfig`], one variant per store with its own
//!   settings.
//! - `env`: [`KEYS`], and reading them from the environment, a source or a
//!   file ([`SessionConfig::from_env`], [`from_source`](SessionConfig::from_source),
//!   [`from_file`](SessionConfig::from_file)).
//! - `validate`: [`SessionConfig::validate`] and its parts.
//! - `redact`: [`redact_url`], and `Debug` output without secrets.

use std::time::Duration;

use crate::codec::Codec;
use crate::seal::EncryptAtRest;

mod env;
mod redact;
mod store;
mod types;
mod validate;

pub use env::KEYS;
pub use redact::redact_url;
#[cfg_attr(
    not(any(
        feature = "redis",
        feature = "sql-postgres",
        feature = "sql-mysql",
        feature = "sql-sqlite",
        feature = "mongodb"
    )),
    allow(unused_imports)
)]
pub(crate) use redact::redacted_failure;
pub use store::StoreConfig;
pub use types::{
    ConfigError, CookieConfig, CookieContent, Interop, OutagePolicy, SameSite, StoreKind,
};

/// Everything that configures sessions, with Flask-Session's defaults:
/// the middleware's policy (cookie, lifetimes, security, users), and in
/// [`store`](Self::store) where sessions live.
///
/// Build one in code (`SessionConfig::default()` and set fields), or read
/// it Flask-style from the environment with [`from_env`](Self::from_env) or
/// from any key/value source with [`from_source`](Self::from_source).
///
/// ```
/// use session_core::{SessionConfig, StoreConfig};
///
/// let mut config = SessionConfig::default();
/// config.store = StoreConfig::redis("redis://127.0.0.1:6379");
/// config.cookie.secure = true;
/// config.validate()?;
/// # Ok::<(), session_core::ConfigError>(())
/// ```
///
/// Its `Debug` output never shows a secret: `SECRET_KEY` and its fallbacks
/// are replaced by `<redacted>`, and the passwords, tokens and keys in
/// store URLs by `***`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Where sessions live: `SESSION_TYPE`, and the settings of that
    /// store's own keys (`SESSION_REDIS`, `SESSION_FILE_DIR`...). Defaults
    /// to the memory store.
    pub store: StoreConfig,
    /// `SESSION_PERMANENT`: whether the cookie outlives the browser (it then
    /// carries `Max-Age`/`Expires`). Defaults to true.
    pub permanent: bool,
    /// `PERMANENT_SESSION_LIFETIME`, in seconds: the server-side lifetime of
    /// every session, and the cookie's `Max-Age` when permanent. Defaults
    /// to 31 days.
    pub lifetime: Duration,
    /// `SESSION_REFRESH_EACH_REQUEST`: whether every request that has a
    /// session extends its lifetime (and re-sends a permanent cookie).
    /// Defaults to true.
    pub refresh_each_request: bool,
    /// `SESSION_USE_SIGNER`: sign the id in the cookie with `SECRET_KEY`.
    /// Defaults to false.
    pub use_signer: bool,
    /// `SECRET_KEY`: signs ids (with `SESSION_USE_SIGNER`) and cookie-store
    /// sessions; at least 32 bytes. Defaults to none.
    pub secret_key: Option<String>,
    /// `SECRET_KEY_FALLBACKS`, comma-separated: older keys that still
    /// verify, for rotation. Defaults to none.
    pub secret_key_fallbacks: Vec<String>,
    /// `SESSION_KEY_PREFIX`: put before every store key. Defaults to
    /// `session:`.
    pub key_prefix: String,
    /// `SESSION_HASH_IDS`: stores see `prefix + hex(sha256(id))` instead of
    /// the id. Defaults to true; turn off only to share a store with a
    /// system that looks sessions up by raw id.
    pub hash_ids: bool,
    /// `SESSION_SERIALIZATION_FORMAT`: `json` or `msgpack` (with the
    /// `msgpack` feature). Defaults to `json`.
    pub codec: Codec,
    /// `SESSION_MAX_SIZE`, in bytes: the largest a session may grow (keys
    /// and encoded values); an insert past it is an error. Defaults to 256
    /// KiB; the cookie store is further limited to what fits in a cookie.
    pub max_size: usize,
    /// `SESSION_STORE_TIMEOUT`, in seconds: the longest one store call may
    /// take before it counts as an outage. Defaults to 5 seconds.
    pub store_timeout: Duration,
    /// `SESSION_STORE_OUTAGE`: `fail` (503) or `empty` (serve with an empty
    /// session). Defaults to `fail`.
    pub outage: OutagePolicy,
    /// `SESSION_COOKIE_CONTENT`: `encrypted` or `signed`, for the cookie
    /// store. Defaults to `encrypted`.
    pub cookie_content: CookieContent,
    /// `SESSION_ABSOLUTE_LIFETIME`, in seconds: a session ends this long
    /// after it was created, however often it is refreshed (a login keeps
    /// the creation time). Defaults to none: only the idle lifetime applies.
    pub absolute_lifetime: Option<Duration>,
    /// `SESSION_SAVE_ON_ERROR`: whether a response with a 5xx status still
    /// saves the session's changes. Defaults to false (a `purge` is carried
    /// out either way).
    pub save_on_error: bool,
    /// `SESSION_LOCAL_CACHE`: the most sessions a per-process near cache
    /// keeps, so that a read is served without a round trip to the store
    /// (see [`store::near`](crate::store::near)). Defaults to 0: no cache.
    /// Available with Redis (a single server or Sentinel) and PostgreSQL,
    /// which tell the cache what other processes change, and with the file
    /// store and SQLite, which must then be used by this process alone.
    /// A setting of the policy, not of [`StoreConfig`]: the cache wraps
    /// whichever of those stores is in use.
    pub local_cache: usize,
    /// `SESSION_TRACK_CLIENT`: whether binding a session to a user records
    /// the client's `User-Agent` and address, to show in the list of the
    /// user's sessions. Defaults to false.
    pub track_client: bool,
    /// `SESSION_MAX_PER_USER`: the most sessions one user may have; binding
    /// one more ends the user's least recently seen ones. Defaults to
    /// 50; at most 1000, so that a user's index and a login's work stay bounded.
    pub max_per_user: usize,
    /// `SESSION_INTEROP`: `flask-session` to share sessions with a Flask app
    /// (feature `flask`). Defaults to none. With it, `SESSION_HASH_IDS`
    /// defaults to false (and may not be true) and
    /// `SESSION_SERIALIZATION_FORMAT` to `msgpack`, as Flask-Session's.
    pub interop: Option<Interop>,
    /// The session cookie.
    pub cookie: CookieConfig,
    /// `SESSION_ENCRYPT_AT_REST`: `false`, `true` or `strict`: whether each
    /// session value is sealed in the store under a key derived from the
    /// session's id (and `SECRET_KEY`, if set), so that a dump of the store
    /// shows none of them (see [`EncryptAtRest`]). Defaults to `false`.
    pub encrypt_at_rest: EncryptAtRest,
    /// `SESSION_MIGRATE_FROM`: the path of a `.env`-style file (see
    /// [`from_file`](Self::from_file)) with the `SESSION_*` settings of the
    /// store a site is moving from. Sessions are then served from this
    /// configuration's store and moved from that one as they are used,
    /// and ended in both (see [`store::migrating`](crate::store::migrating)).
    /// Defaults to none. A setting of the policy, not of [`StoreConfig`]:
    /// the move wraps two stores, each with its own settings.
    pub migrate_from: Option<Box<SessionConfig>>,
}

/// The default session lifetime: 31 days, as Flask's.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(31 * 24 * 60 * 60);

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            store: StoreConfig::default(),
            permanent: true,
            lifetime: DEFAULT_LIFETIME,
            refresh_each_request: true,
            use_signer: false,
            secret_key: None,
            secret_key_fallbacks: Vec::new(),
            key_prefix: "session:".to_owned(),
            hash_ids: true,
            codec: Codec::Json,
            max_size: 256 * 1024,
            store_timeout: Duration::from_secs(5),
            outage: OutagePolicy::Fail,
            cookie_content: CookieContent::Encrypted,
            absolute_lifetime: None,
            save_on_error: false,
            local_cache: 0,
            track_client: false,
            max_per_user: crate::users::DEFAULT_MAX_PER_USER,
            interop: None,
            cookie: CookieConfig::default(),
            encrypt_at_rest: EncryptAtRest::Off,
            migrate_from: None,
        }
    }
}

impl SessionConfig {
    /// Where sessions and this crate's own records live, as
    /// `SESSION_KEY_PREFIX`, `SESSION_HASH_IDS`, `SESSION_INTEROP`,
    /// `SECRET_KEY` and `SECRET_KEY_FALLBACKS` set it (see
    /// [`Keyspace`](crate::keyspace::Keyspace)).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `SECRET_KEY` when ids are in clear without
    /// one, or `SESSION_KEY_PREFIX` when the interop has an empty prefix.
    pub(crate) fn keyspace(&self) -> Result<crate::keyspace::Keyspace, ConfigError> {
        crate::keyspace::Keyspace::new(
            &self.key_prefix,
            self.hash_ids,
            self.interop.is_some(),
            self.secret_key.as_deref(),
            &self.secret_key_fallbacks,
        )
        .map_err(|e| ConfigError::new(e.key, e.message))
    }

    /// How values are sealed at rest, as `SESSION_ENCRYPT_AT_REST`,
    /// `SECRET_KEY` and `SECRET_KEY_FALLBACKS` set it (see
    /// [`AtRest`](crate::seal::AtRest)).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `SECRET_KEY` if a secret is too short.
    pub(crate) fn at_rest(&self) -> Result<crate::seal::AtRest, ConfigError> {
        crate::seal::AtRest::new(
            self.encrypt_at_rest,
            self.secret_key.as_deref(),
            &self.secret_key_fallbacks,
        )
        .map_err(|e| ConfigError::new("SECRET_KEY", e.to_string()))
    }
}

/// A `.env`-style file holding `text`, for the tests of `from_file` and
/// `SESSION_MIGRATE_FROM`.
#[cfg(test)]
fn env_file(text: &str) -> tempfile::NamedTempFile {
    use std::io::Write as _;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}
