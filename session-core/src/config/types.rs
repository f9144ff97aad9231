//! The value types of the configuration: which store, the cookie's
//! attributes, the outage policy, and the error that names a key.

/// Which store keeps the sessions: the value of `SESSION_TYPE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreKind {
    /// `memory`: in this process (the embedded default).
    #[default]
    Memory,
    /// `filesystem`: one file per session under `SESSION_FILE_DIR`.
    Filesystem,
    /// `redis`: a Redis server or cluster at `SESSION_REDIS`.
    Redis,
    /// `memcached`: the servers in `SESSION_MEMCACHED`.
    Memcached,
    /// `sql`: PostgreSQL, MySQL/MariaDB or SQLite at `SESSION_SQL_URL`.
    Sql,
    /// `mongodb`: a MongoDB server at `SESSION_MONGODB`.
    MongoDb,
    /// `cookie`: the whole session in a signed cookie (needs `SECRET_KEY`).
    Cookie,
    /// `null`: no store; reads are empty and writes are an error.
    Null,
}

impl StoreKind {
    pub(super) const NAMES: &'static str =
        "memory, filesystem, redis, memcached, sql, mongodb, cookie or null";

    /// The name `SESSION_TYPE` uses for this store.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Filesystem => "filesystem",
            StoreKind::Redis => "redis",
            StoreKind::Memcached => "memcached",
            StoreKind::Sql => "sql",
            StoreKind::MongoDb => "mongodb",
            StoreKind::Cookie => "cookie",
            StoreKind::Null => "null",
        }
    }

    pub(super) fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "memory" => StoreKind::Memory,
            "filesystem" => StoreKind::Filesystem,
            "redis" => StoreKind::Redis,
            "memcached" => StoreKind::Memcached,
            // Flask-Session's name for its SQL store.
            "sql" | "sqlalchemy" => StoreKind::Sql,
            "mongodb" => StoreKind::MongoDb,
            "cookie" => StoreKind::Cookie,
            "null" => StoreKind::Null,
            _ => return None,
        })
    }
}

/// Another framework whose sessions the store shares: the value of
/// `SESSION_INTEROP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Interop {
    /// `flask-session`: a Flask app with Flask-Session 0.8 reads and writes
    /// the same sessions, in its layout (see [`crate::flask`]).
    FlaskSession,
}

/// The `SameSite` attribute of the session cookie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on top-level navigations from other sites, not on their
    /// sub-requests. The default.
    #[default]
    Lax,
    /// Never sent on requests from other sites.
    Strict,
    /// Sent on every request; browsers require `Secure` with it.
    None,
}

/// What to do when the store fails or times out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutagePolicy {
    /// Answer the request with `503 Service Unavailable` (`fail`). The
    /// default: no handler runs believing it has a session it does not have.
    #[default]
    Fail,
    /// Serve the request with an empty session and skip the save (`empty`):
    /// the site stays up, logged-out, while the store is down.
    ServeEmpty,
}

/// What the cookie store (`SESSION_TYPE=cookie`) puts in the cookie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieContent {
    /// The session sealed with XChaCha20-Poly1305 (`encrypted`): the user
    /// can neither read nor change it. The default.
    #[default]
    Encrypted,
    /// The session in the clear (base64url), signed with HMAC-SHA256
    /// (`signed`): the user can read it but not change it, as Flask's
    /// default session.
    Signed,
}

/// The session cookie's name and attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CookieConfig {
    /// `SESSION_COOKIE_NAME`. Defaults to `session`.
    pub name: String,
    /// `SESSION_COOKIE_DOMAIN`. Defaults to none (the request's host only).
    pub domain: Option<String>,
    /// `SESSION_COOKIE_PATH`. Defaults to `/`.
    pub path: String,
    /// `SESSION_COOKIE_SECURE`. Defaults to false.
    pub secure: bool,
    /// `SESSION_COOKIE_HTTPONLY`. Defaults to true.
    pub http_only: bool,
    /// `SESSION_COOKIE_SAMESITE`. Defaults to `Lax`.
    pub same_site: SameSite,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "session".to_owned(),
            domain: None,
            path: "/".to_owned(),
            secure: false,
            http_only: true,
            same_site: SameSite::Lax,
        }
    }
}

/// A configuration value is wrong. The message names the key and what it
/// accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid session configuration: {key}: {message}")]
pub struct ConfigError {
    pub(super) key: &'static str,
    pub(super) message: String,
}

impl ConfigError {
    /// Creates an error about `key`.
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
        }
    }

    pub(super) fn invalid(key: &'static str, value: &str, expected: &str) -> Self {
        Self::new(key, format!("invalid value {value:?}, expected {expected}"))
    }

    /// The configuration key at fault, such as `SESSION_TYPE`.
    pub fn key(&self) -> &'static str {
        self.key
    }
}
