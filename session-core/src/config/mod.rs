//! Configuration: builder-friendly fields, and Flask-style keys.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::codec::Codec;
use crate::seal::EncryptAtRest;
use crate::signing::MIN_SECRET_LEN;

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
    const NAMES: &'static str =
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

    fn parse(text: &str) -> Option<Self> {
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

/// Everything that configures sessions, with Flask-Session's defaults.
///
/// Build one in code (`SessionConfig::default()` and set fields), or read
/// it Flask-style from the environment with [`from_env`](Self::from_env) or
/// from any key/value source with [`from_source`](Self::from_source).
///
/// Its `Debug` output never shows a secret: `SECRET_KEY` and its fallbacks
/// are replaced by `<redacted>`, and the passwords, tokens and keys in
/// store URLs by `***`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// `SESSION_TYPE`. Defaults to `memory`.
    pub store: StoreKind,
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
    /// `SESSION_MEMORY_MAX_SESSIONS`: the most sessions the memory store
    /// keeps. Defaults to 100000.
    pub memory_max_sessions: usize,
    /// `SESSION_LOCAL_CACHE`: the most sessions a per-process near cache
    /// keeps, so that a read is served without a round trip to the store
    /// (see [`store::near`](crate::store::near)). Defaults to 0: no cache.
    /// Available with Redis (a single server or Sentinel) and PostgreSQL,
    /// which tell the cache what other processes change, and with the file
    /// store and SQLite, which must then be used by this process alone.
    pub local_cache: usize,
    /// `SESSION_TRACK_CLIENT`: whether binding a session to a user records
    /// the client's `User-Agent` and address, to show in the list of the
    /// user's sessions. Defaults to false.
    pub track_client: bool,
    /// `SESSION_MAX_PER_USER`: the most sessions one user may have; binding
    /// one more ends the user's least recently seen ones. Defaults to
    /// [`DEFAULT_MAX_PER_USER`](crate::users::DEFAULT_MAX_PER_USER) (50);
    /// at most [`MAX_PER_USER_LIMIT`](crate::users::MAX_PER_USER_LIMIT)
    /// (1000), so that a user's index and a login's work stay bounded.
    pub max_per_user: usize,
    /// `SESSION_INTEROP`: `flask-session` to share sessions with a Flask app
    /// (feature `flask`). Defaults to none. With it, `SESSION_HASH_IDS`
    /// defaults to false (and may not be true) and
    /// `SESSION_SERIALIZATION_FORMAT` to `msgpack`, as Flask-Session's.
    pub interop: Option<Interop>,
    /// The session cookie.
    pub cookie: CookieConfig,
    /// `SESSION_FILE_DIR`. Defaults to `flask_session` in the working
    /// directory, as Flask-Session does.
    pub file_dir: PathBuf,
    /// `SESSION_FILE_THRESHOLD`: the most session files kept. Defaults to 500.
    pub file_threshold: usize,
    /// `SESSION_FILE_MODE`: octal (`0600`) or decimal (`384`) as in Flask.
    /// Defaults to `0600`.
    pub file_mode: u32,
    /// `SESSION_REDIS`: a `redis://` or `rediss://` URL. Defaults to
    /// `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// `SESSION_ENCRYPT_AT_REST`: `false`, `true` or `strict`: whether each
    /// session value is sealed in the store under a key derived from the
    /// session's id (and `SECRET_KEY`, if set), so that a dump of the store
    /// shows none of them (see [`seal`](crate::seal)). Defaults to `false`.
    pub encrypt_at_rest: EncryptAtRest,
    /// `SESSION_REDIS_MIN_REPLICAS`: how many replicas must have a session's
    /// change before the response is sent (Redis's `WAIT`, bounded by
    /// `SESSION_STORE_TIMEOUT`; the outage policy applies when fewer do),
    /// so that a master that fails right after answering loses no write a
    /// user was told about. Defaults to 0: Redis's asynchronous
    /// replication, no wait.
    pub redis_min_replicas: usize,
    /// `SESSION_MEMCACHED`: `host:port[,host:port...]`. Defaults to
    /// `127.0.0.1:11211`.
    pub memcached_servers: Vec<String>,
    /// `SESSION_SQL_URL`: a `postgres://`, `mysql://` or `sqlite://` URL.
    /// Defaults to none.
    pub sql_url: Option<String>,
    /// `SESSION_SQL_TABLE`. Defaults to `sessions`.
    pub sql_table: String,
    /// `SESSION_MONGODB`: a `mongodb://` URI. Defaults to
    /// `mongodb://127.0.0.1:27017`.
    pub mongodb_uri: String,
    /// `SESSION_MONGODB_DB`. Defaults to `flask_session`, as Flask-Session.
    pub mongodb_db: String,
    /// `SESSION_MONGODB_COLLECT`. Defaults to `sessions`.
    pub mongodb_collection: String,
    /// `SESSION_MIGRATE_FROM`: the path of a `.env`-style file (see
    /// [`from_file`](Self::from_file)) with the `SESSION_*` settings of the
    /// store a site is moving from. Sessions are then served from this
    /// configuration's store and moved from that one as they are used,
    /// and ended in both (see [`store::migrating`](crate::store::migrating)).
    /// Defaults to none.
    pub migrate_from: Option<Box<SessionConfig>>,
}

/// The default session lifetime: 31 days, as Flask's.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(31 * 24 * 60 * 60);

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            store: StoreKind::Memory,
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
            memory_max_sessions: 100_000,
            local_cache: 0,
            track_client: false,
            max_per_user: crate::users::DEFAULT_MAX_PER_USER,
            interop: None,
            cookie: CookieConfig::default(),
            file_dir: PathBuf::from("flask_session"),
            file_threshold: 500,
            file_mode: 0o600,
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            redis_min_replicas: 0,
            encrypt_at_rest: EncryptAtRest::Off,
            memcached_servers: vec!["127.0.0.1:11211".to_owned()],
            sql_url: None,
            sql_table: "sessions".to_owned(),
            mongodb_uri: "mongodb://127.0.0.1:27017".to_owned(),
            mongodb_db: "flask_session".to_owned(),
            mongodb_collection: "sessions".to_owned(),
            migrate_from: None,
        }
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |set: bool| if set { "<redacted>" } else { "<none>" };
        f.debug_struct("SessionConfig")
            .field("store", &self.store)
            .field("permanent", &self.permanent)
            .field("lifetime", &self.lifetime)
            .field("refresh_each_request", &self.refresh_each_request)
            .field("use_signer", &self.use_signer)
            .field(
                "secret_key",
                &format_args!("{}", secret(self.secret_key.is_some())),
            )
            .field(
                "secret_key_fallbacks",
                &format_args!("<{} redacted>", self.secret_key_fallbacks.len()),
            )
            .field("key_prefix", &self.key_prefix)
            .field("hash_ids", &self.hash_ids)
            .field("codec", &self.codec)
            .field("max_size", &self.max_size)
            .field("store_timeout", &self.store_timeout)
            .field("outage", &self.outage)
            .field("cookie_content", &self.cookie_content)
            .field("absolute_lifetime", &self.absolute_lifetime)
            .field("save_on_error", &self.save_on_error)
            .field("track_client", &self.track_client)
            .field("max_per_user", &self.max_per_user)
            .field("interop", &self.interop)
            .field("memory_max_sessions", &self.memory_max_sessions)
            .field("local_cache", &self.local_cache)
            .field("redis_min_replicas", &self.redis_min_replicas)
            .field("encrypt_at_rest", &self.encrypt_at_rest)
            .field("cookie", &self.cookie)
            .field("file_dir", &self.file_dir)
            .field("file_threshold", &self.file_threshold)
            .field("file_mode", &format_args!("{:#o}", self.file_mode))
            .field("redis_url", &redact_url(&self.redis_url))
            .field("memcached_servers", &self.memcached_servers)
            .field("sql_url", &self.sql_url.as_deref().map(redact_url))
            .field("sql_table", &self.sql_table)
            .field("mongodb_uri", &redact_url(&self.mongodb_uri))
            .field("mongodb_db", &self.mongodb_db)
            .field("mongodb_collection", &self.mongodb_collection)
            .field("migrate_from", &self.migrate_from)
            .finish()
    }
}

/// Whether a URL query parameter named `name` carries a secret.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// A URL fit for a log line or an error message: the user-info part
/// (`user:password@`) and the value of every query parameter that looks
/// like a secret (`password`, `sslpassword`, `token`, `authSource`...) are
/// replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &base[..scheme], &base[at..])
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// The text of a failure to reach the store at `url`: the URL redacted,
/// and any secret of the URL that the driver's error repeats blanked out.
#[cfg_attr(
    not(any(
        feature = "redis",
        feature = "sql-postgres",
        feature = "sql-mysql",
        feature = "sql-sqlite",
        feature = "mongodb"
    )),
    allow(dead_code)
)]
pub(crate) fn redacted_failure(what: &str, url: &str, error: &dyn fmt::Display) -> String {
    let mut message = format!("{what} {}: {error}", redact_url(url));
    for secret in url_secrets(url) {
        message = message.replace(&secret, "***");
    }
    message
}

/// The secrets written in a URL: its password and secret-looking query
/// values, as written (drivers echo what they were given).
fn url_secrets(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    if let (Some(scheme), Some(at)) = (base.find("://"), base.rfind('@'))
        && at > scheme
        && let Some((_, password)) = base[scheme + 3..at].split_once(':')
    {
        secrets.push(password.to_owned());
    }
    for param in query.split('&') {
        if let Some((name, value)) = param.split_once('=')
            && is_secret_param(name)
        {
            secrets.push(value.to_owned());
        }
    }
    // Short strings would blank out unrelated text.
    secrets.retain(|s| s.len() >= 3);
    secrets
}

/// A configuration value is wrong. The message names the key and what it
/// accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid session configuration: {key}: {message}")]
pub struct ConfigError {
    key: &'static str,
    message: String,
}

impl ConfigError {
    /// Creates an error about `key`.
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
        }
    }

    fn invalid(key: &'static str, value: &str, expected: &str) -> Self {
        Self::new(key, format!("invalid value {value:?}, expected {expected}"))
    }

    /// The configuration key at fault, such as `SESSION_TYPE`.
    pub fn key(&self) -> &'static str {
        self.key
    }
}

/// Every key [`SessionConfig::from_source`] reads.
pub const KEYS: &[&str] = &[
    "SESSION_TYPE",
    "SESSION_PERMANENT",
    "PERMANENT_SESSION_LIFETIME",
    "SESSION_REFRESH_EACH_REQUEST",
    "SESSION_USE_SIGNER",
    "SECRET_KEY",
    "SECRET_KEY_FALLBACKS",
    "SESSION_KEY_PREFIX",
    "SESSION_HASH_IDS",
    "SESSION_SERIALIZATION_FORMAT",
    "SESSION_MAX_SIZE",
    "SESSION_STORE_TIMEOUT",
    "SESSION_STORE_OUTAGE",
    "SESSION_COOKIE_CONTENT",
    "SESSION_ABSOLUTE_LIFETIME",
    "SESSION_SAVE_ON_ERROR",
    "SESSION_MEMORY_MAX_SESSIONS",
    "SESSION_LOCAL_CACHE",
    "SESSION_REDIS_MIN_REPLICAS",
    "SESSION_ENCRYPT_AT_REST",
    "SESSION_TRACK_CLIENT",
    "SESSION_MAX_PER_USER",
    "SESSION_INTEROP",
    "SESSION_COOKIE_NAME",
    "SESSION_COOKIE_DOMAIN",
    "SESSION_COOKIE_PATH",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "SESSION_FILE_DIR",
    "SESSION_FILE_THRESHOLD",
    "SESSION_FILE_MODE",
    "SESSION_REDIS",
    "SESSION_MEMCACHED",
    "SESSION_SQL_URL",
    "SESSION_SQL_TABLE",
    "SESSION_MONGODB",
    "SESSION_MONGODB_DB",
    "SESSION_MONGODB_COLLECT",
    "SESSION_MIGRATE_FROM",
];

impl SessionConfig {
    /// Reads the configuration from the process environment: every key in
    /// [`KEYS`] that is set overrides its default. Other variables are
    /// ignored. The result is [validated](Self::validate).
    ///
    /// # Errors
    ///
    /// As [`from_source`](Self::from_source).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(std::env::vars().filter(|(k, _)| KEYS.contains(&k.as_str())))
    }

    /// Reads the configuration from key/value pairs, such as a parsed
    /// config file; keys not in [`KEYS`] are ignored. The result is
    /// [validated](Self::validate).
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_core::{SessionConfig, StoreKind};
    ///
    /// let config = SessionConfig::from_source([
    ///     ("SESSION_TYPE", "filesystem"),
    ///     ("PERMANENT_SESSION_LIFETIME", "3600"),
    /// ])?;
    /// assert_eq!(config.store, StoreKind::Filesystem);
    /// assert_eq!(config.lifetime, Duration::from_secs(3600));
    ///
    /// let err = SessionConfig::from_source([("SESSION_TYPE", "redsi")]).unwrap_err();
    /// assert_eq!(err.key(), "SESSION_TYPE");
    /// # Ok::<(), session_core::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first key whose value does not parse, or
    /// the key that [`validate`](Self::validate) rejects.
    pub fn from_source<I, K, V>(source: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let values: HashMap<String, String> = source
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().trim().to_owned()))
            .collect();
        let mut c = Self::default();
        for &key in KEYS {
            if let Some(value) = values.get(key) {
                c.set(key, value)?;
            }
        }
        if c.interop.is_some() {
            // Flask-Session's own defaults, unless set.
            if !values.contains_key("SESSION_HASH_IDS") {
                c.hash_ids = false;
            }
            #[cfg(feature = "msgpack")]
            if !values.contains_key("SESSION_SERIALIZATION_FORMAT") {
                c.codec = Codec::MessagePack;
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Reads the configuration from a `.env`-style file: `KEY=VALUE` lines,
    /// with blank lines, `#` comments, an optional `export ` and quotes
    /// around a value allowed; keys not in [`KEYS`] are ignored, as with
    /// [`from_source`](Self::from_source). `session-admin --config` and
    /// `SESSION_MIGRATE_FROM` read their files with it.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or a line that is not `KEY=VALUE`
    /// (naming the path and the line), and what `from_source` refuses.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        const KEY: &str = "config file";
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(KEY, format!("cannot read {}: {e}", path.display())))?;
        let mut pairs = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((key, value)) = line.split_once('=') else {
                return Err(ConfigError::new(
                    KEY,
                    format!("{} line {}: expected KEY=VALUE", path.display(), n + 1),
                ));
            };
            let value = value.trim();
            let value = [('"', '"'), ('\'', '\'')]
                .iter()
                .find_map(|(open, close)| value.strip_prefix(*open)?.strip_suffix(*close))
                .unwrap_or(value);
            pairs.push((key.trim().to_owned(), value.to_owned()));
        }
        Self::from_source(pairs)
    }

    /// What a move from the `SESSION_MIGRATE_FROM` store needs: two
    /// server-side stores that name and encode sessions alike.
    fn validate_migrate_from(&self, old: &Self) -> Result<(), ConfigError> {
        const KEY: &str = "SESSION_MIGRATE_FROM";
        for (which, store) in [("this", self.store), ("the old", old.store)] {
            if matches!(store, StoreKind::Cookie | StoreKind::Null) {
                return Err(ConfigError::new(
                    KEY,
                    format!(
                        "{which} store is `{}`, which keeps no sessions to move",
                        store.name()
                    ),
                ));
            }
        }
        if self.interop.is_some() || old.interop.is_some() {
            return Err(ConfigError::new(
                KEY,
                "cannot move sessions in Flask-Session's layout (SESSION_INTEROP)",
            ));
        }
        if old.local_cache > 0 {
            return Err(ConfigError::new(
                KEY,
                "the old store's settings have a SESSION_LOCAL_CACHE: sessions leave that \
                 store as they move, and a cache of it would serve them after",
            ));
        }
        if old.migrate_from.is_some() {
            return Err(ConfigError::new(
                KEY,
                "the old store's settings have a SESSION_MIGRATE_FROM of their own: \
                 move from one store at a time",
            ));
        }
        let differs = [
            ("SESSION_KEY_PREFIX", self.key_prefix != old.key_prefix),
            ("SESSION_HASH_IDS", self.hash_ids != old.hash_ids),
            ("SESSION_SERIALIZATION_FORMAT", self.codec != old.codec),
        ];
        if let Some((setting, _)) = differs.iter().find(|(_, d)| *d) {
            return Err(ConfigError::new(
                KEY,
                format!(
                    "{setting} differs between the two stores' settings: sessions would \
                     not be found under the same key, or not read"
                ),
            ));
        }
        Ok(())
    }

    /// The settings Flask-Session's layout cannot honour.
    fn validate_interop(&self) -> Result<(), ConfigError> {
        const WITH: &str = "with SESSION_INTEROP=flask-session";
        if self.hash_ids {
            return Err(ConfigError::new(
                "SESSION_HASH_IDS",
                format!("must be false {WITH}: Flask-Session keys sessions by the id in clear"),
            ));
        }
        if self.absolute_lifetime.is_some() {
            return Err(ConfigError::new(
                "SESSION_ABSOLUTE_LIFETIME",
                format!("is not available {WITH}: Flask-Session's layout keeps no creation time"),
            ));
        }
        Ok(())
    }

    /// The settings sealing values at rest cannot work with.
    fn validate_encrypt_at_rest(&self) -> Result<(), ConfigError> {
        const KEY: &str = "SESSION_ENCRYPT_AT_REST";
        if self.store == StoreKind::Cookie {
            return Err(ConfigError::new(
                KEY,
                "is for server-side stores: the cookie store seals the whole session in the \
                 cookie already (SESSION_COOKIE_CONTENT=encrypted); set it to false",
            ));
        }
        if self.interop.is_some() {
            return Err(ConfigError::new(
                KEY,
                "is not available with SESSION_INTEROP: the Flask app could not read sealed \
                 values; set it to false",
            ));
        }
        if self.encrypt_at_rest == EncryptAtRest::Strict && self.secret_key.is_none() {
            return Err(ConfigError::new(
                "SECRET_KEY",
                "is required with SESSION_ENCRYPT_AT_REST=strict: without it a session's key \
                 comes from its id alone, which its user holds in the cookie, and a user who \
                 can write to the store could seal values of their choosing for their own \
                 session",
            ));
        }
        Ok(())
    }

    /// Refuses a near cache in front of a store that cannot keep it right.
    fn validate_local_cache(&self) -> Result<(), ConfigError> {
        let refuse = |why: String| Err(ConfigError::new("SESSION_LOCAL_CACHE", why));
        if self.interop.is_some() {
            return refuse(
                "is not available with SESSION_INTEROP: the other app's writes would not reach \
                 the cache; set it to 0"
                    .to_owned(),
            );
        }
        let sql = self.sql_url.as_deref().unwrap_or_default();
        match self.store {
            StoreKind::Redis if self.redis_url.starts_with("redis+cluster:") => refuse(
                "is not available on a Redis Cluster yet (each node would need its own \
                 tracking connection): use a single server or Sentinel, or set it to 0"
                    .to_owned(),
            ),
            StoreKind::Redis | StoreKind::Filesystem => Ok(()),
            StoreKind::Sql if sql.starts_with("postgres") || sql.starts_with("sqlite") => Ok(()),
            kind => refuse(format!(
                "is not available with SESSION_TYPE={}{}: nothing would tell the cache what \
                 other processes change (use redis or a postgres:// SESSION_SQL_URL, or set it \
                 to 0){}",
                kind.name(),
                if kind == StoreKind::Sql {
                    " on this database"
                } else {
                    ""
                },
                if kind == StoreKind::Memory {
                    "; the memory store is in this process already"
                } else {
                    ""
                },
            )),
        }
    }

    /// The stores Flask-Session's layout is available on: checked when the
    /// store is opened from `SESSION_TYPE`.
    #[cfg(feature = "flask")]
    pub(crate) fn validate_interop_store(&self) -> Result<(), ConfigError> {
        const WITH: &str = "with SESSION_INTEROP=flask-session";
        match self.store {
            StoreKind::Redis | StoreKind::Sql | StoreKind::MongoDb => Ok(()),
            StoreKind::Memcached if self.memcached_servers.len() == 1 => Ok(()),
            StoreKind::Memcached => Err(ConfigError::new(
                "SESSION_MEMCACHED",
                format!(
                    "must name one server {WITH}: Flask's memcached client spreads keys over \
                     several servers its own way, which this side cannot follow"
                ),
            )),
            StoreKind::Filesystem => Err(ConfigError::new(
                "SESSION_TYPE",
                format!(
                    "filesystem is not available {WITH}: Flask-Session's filesystem store \
                     keeps sessions as pickle, which this crate never reads; use redis, \
                     memcached, sql or mongodb on both sides"
                ),
            )),
            kind => Err(ConfigError::new(
                "SESSION_TYPE",
                format!(
                    "{} is not available {WITH}: the Flask app cannot reach it; use redis, \
                     memcached, sql or mongodb on both sides",
                    kind.name()
                ),
            )),
        }
    }

    fn set(&mut self, key: &'static str, v: &str) -> Result<(), ConfigError> {
        match key {
            "SESSION_TYPE" => {
                self.store = StoreKind::parse(v)
                    .ok_or_else(|| ConfigError::invalid(key, v, StoreKind::NAMES))?;
            }
            "SESSION_PERMANENT" => self.permanent = parse_bool(key, v)?,
            "PERMANENT_SESSION_LIFETIME" => self.lifetime = parse_seconds(key, v)?,
            "SESSION_REFRESH_EACH_REQUEST" => self.refresh_each_request = parse_bool(key, v)?,
            "SESSION_USE_SIGNER" => self.use_signer = parse_bool(key, v)?,
            "SECRET_KEY" => self.secret_key = Some(v.to_owned()),
            "SECRET_KEY_FALLBACKS" => {
                self.secret_key_fallbacks = split_list(v).map(str::to_owned).collect();
            }
            "SESSION_KEY_PREFIX" => self.key_prefix = v.to_owned(),
            "SESSION_HASH_IDS" => self.hash_ids = parse_bool(key, v)?,
            "SESSION_SERIALIZATION_FORMAT" => {
                self.codec = match v.to_ascii_lowercase().as_str() {
                    "json" => Codec::Json,
                    #[cfg(feature = "msgpack")]
                    "msgpack" => Codec::MessagePack,
                    #[cfg(not(feature = "msgpack"))]
                    "msgpack" => {
                        return Err(ConfigError::new(
                            key,
                            "msgpack needs the `msgpack` feature of session-actix",
                        ));
                    }
                    _ => return Err(ConfigError::invalid(key, v, "json or msgpack")),
                };
            }
            "SESSION_MAX_SIZE" => self.max_size = parse_number(key, v)?,
            "SESSION_STORE_TIMEOUT" => self.store_timeout = parse_seconds(key, v)?,
            "SESSION_STORE_OUTAGE" => {
                self.outage = match v.to_ascii_lowercase().as_str() {
                    "fail" => OutagePolicy::Fail,
                    "empty" => OutagePolicy::ServeEmpty,
                    _ => return Err(ConfigError::invalid(key, v, "fail or empty")),
                };
            }
            "SESSION_COOKIE_CONTENT" => {
                self.cookie_content = match v.to_ascii_lowercase().as_str() {
                    "encrypted" => CookieContent::Encrypted,
                    "signed" => CookieContent::Signed,
                    _ => return Err(ConfigError::invalid(key, v, "encrypted or signed")),
                };
            }
            "SESSION_ABSOLUTE_LIFETIME" => {
                self.absolute_lifetime = if v.is_empty() {
                    None
                } else {
                    Some(parse_seconds(key, v)?)
                };
            }
            "SESSION_SAVE_ON_ERROR" => self.save_on_error = parse_bool(key, v)?,
            "SESSION_MEMORY_MAX_SESSIONS" => self.memory_max_sessions = parse_number(key, v)?,
            "SESSION_LOCAL_CACHE" => self.local_cache = parse_number(key, v)?,
            "SESSION_REDIS_MIN_REPLICAS" => self.redis_min_replicas = parse_number(key, v)?,
            "SESSION_MIGRATE_FROM" => {
                let old = Self::from_file(Path::new(v))
                    .map_err(|e| ConfigError::new(key, format!("{v}: {}: {}", e.key, e.message)))?;
                self.migrate_from = Some(Box::new(old));
            }
            "SESSION_ENCRYPT_AT_REST" => {
                self.encrypt_at_rest = if v.eq_ignore_ascii_case("strict") {
                    EncryptAtRest::Strict
                } else {
                    parse_bool(key, v)
                        .map_err(|_| ConfigError::invalid(key, v, "true, false or strict"))?
                        .into()
                };
            }
            "SESSION_TRACK_CLIENT" => self.track_client = parse_bool(key, v)?,
            "SESSION_MAX_PER_USER" => {
                self.max_per_user = if v.is_empty() {
                    crate::users::DEFAULT_MAX_PER_USER
                } else {
                    parse_number(key, v)?
                };
            }
            "SESSION_INTEROP" => {
                self.interop = match v.to_ascii_lowercase().as_str() {
                    "" | "none" => None,
                    #[cfg(feature = "flask")]
                    "flask-session" => Some(Interop::FlaskSession),
                    #[cfg(not(feature = "flask"))]
                    "flask-session" => {
                        return Err(ConfigError::new(
                            key,
                            "flask-session needs the `flask` feature of session-actix",
                        ));
                    }
                    _ => return Err(ConfigError::invalid(key, v, "flask-session")),
                };
            }
            "SESSION_COOKIE_NAME" => self.cookie.name = v.to_owned(),
            "SESSION_COOKIE_DOMAIN" => {
                self.cookie.domain = (!v.is_empty()).then(|| v.to_owned());
            }
            "SESSION_COOKIE_PATH" => self.cookie.path = v.to_owned(),
            "SESSION_COOKIE_SECURE" => self.cookie.secure = parse_bool(key, v)?,
            "SESSION_COOKIE_HTTPONLY" => self.cookie.http_only = parse_bool(key, v)?,
            "SESSION_COOKIE_SAMESITE" => {
                self.cookie.same_site = match v.to_ascii_lowercase().as_str() {
                    "lax" => SameSite::Lax,
                    "strict" => SameSite::Strict,
                    "none" => SameSite::None,
                    _ => return Err(ConfigError::invalid(key, v, "Lax, Strict or None")),
                };
            }
            "SESSION_FILE_DIR" => self.file_dir = PathBuf::from(v),
            "SESSION_FILE_THRESHOLD" => self.file_threshold = parse_number(key, v)?,
            "SESSION_FILE_MODE" => self.file_mode = parse_mode(key, v)?,
            "SESSION_REDIS" => self.redis_url = v.to_owned(),
            "SESSION_MEMCACHED" => {
                self.memcached_servers = split_list(v).map(str::to_owned).collect();
            }
            "SESSION_SQL_URL" => self.sql_url = Some(v.to_owned()),
            "SESSION_SQL_TABLE" => self.sql_table = v.to_owned(),
            "SESSION_MONGODB" => self.mongodb_uri = v.to_owned(),
            "SESSION_MONGODB_DB" => self.mongodb_db = v.to_owned(),
            "SESSION_MONGODB_COLLECT" => self.mongodb_collection = v.to_owned(),
            _ => unreachable!("{key} is in KEYS but has no parser"),
        }
        Ok(())
    }

    /// Where sessions and this crate's own records live, as
    /// `SESSION_KEY_PREFIX`, `SESSION_HASH_IDS`, `SESSION_INTEROP`,
    /// `SECRET_KEY` and `SECRET_KEY_FALLBACKS` set it (see
    /// [`Keyspace`](crate::keyspace::Keyspace)).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `SECRET_KEY` when ids are in clear without
    /// one, or `SESSION_KEY_PREFIX` when the interop has an empty prefix.
    pub fn keyspace(&self) -> Result<crate::keyspace::Keyspace, ConfigError> {
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
    pub fn at_rest(&self) -> Result<crate::seal::AtRest, ConfigError> {
        crate::seal::AtRest::new(
            self.encrypt_at_rest,
            self.secret_key.as_deref(),
            &self.secret_key_fallbacks,
        )
        .map_err(|e| ConfigError::new("SECRET_KEY", e.to_string()))
    }

    /// Checks that the settings make sense together; the error names the
    /// key to fix.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the key: `SECRET_KEY` missing or shorter
    /// than 32 bytes when signing or the cookie store needs it,
    /// `SESSION_COOKIE_SAMESITE=None` without `SESSION_COOKIE_SECURE`, a
    /// `__Host-`/`__Secure-` cookie name whose rules are not met, a zero
    /// lifetime or timeout, and so on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let needs_secret = self.use_signer || self.store == StoreKind::Cookie;
        match &self.secret_key {
            None if needs_secret => {
                return Err(ConfigError::new(
                    "SECRET_KEY",
                    "is required with SESSION_USE_SIGNER=true or SESSION_TYPE=cookie",
                ));
            }
            Some(secret) if secret.len() < MIN_SECRET_LEN => {
                return Err(ConfigError::new(
                    "SECRET_KEY",
                    format!("must be at least {MIN_SECRET_LEN} bytes long"),
                ));
            }
            _ => {}
        }
        if self
            .secret_key_fallbacks
            .iter()
            .any(|k| k.len() < MIN_SECRET_LEN)
        {
            return Err(ConfigError::new(
                "SECRET_KEY_FALLBACKS",
                format!("every key must be at least {MIN_SECRET_LEN} bytes long"),
            ));
        }
        if self.interop.is_some() {
            self.validate_interop()?;
        }
        if self.lifetime.is_zero() {
            return Err(ConfigError::new(
                "PERMANENT_SESSION_LIFETIME",
                "must be more than 0 seconds",
            ));
        }
        if !(1..=crate::users::MAX_PER_USER_LIMIT).contains(&self.max_per_user) {
            return Err(ConfigError::new(
                "SESSION_MAX_PER_USER",
                format!(
                    "must be from 1 to {} (the default is {})",
                    crate::users::MAX_PER_USER_LIMIT,
                    crate::users::DEFAULT_MAX_PER_USER
                ),
            ));
        }
        if self.store_timeout.is_zero() {
            return Err(ConfigError::new(
                "SESSION_STORE_TIMEOUT",
                "must be more than 0 seconds",
            ));
        }
        if self.absolute_lifetime.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "SESSION_ABSOLUTE_LIFETIME",
                "must be more than 0 seconds (leave it unset for no absolute lifetime)",
            ));
        }
        if self.memory_max_sessions == 0 {
            return Err(ConfigError::new(
                "SESSION_MEMORY_MAX_SESSIONS",
                "must be at least 1",
            ));
        }
        if self.local_cache > 0 {
            self.validate_local_cache()?;
        }
        if self.encrypt_at_rest.seals() {
            self.validate_encrypt_at_rest()?;
        }
        if let Some(old) = &self.migrate_from {
            self.validate_migrate_from(old)?;
        }
        // Ids in clear need a secret to seal the keys this crate's records
        // name; Flask-Session's layout a prefix to keep them apart.
        self.keyspace()?;
        if self.redis_min_replicas > 0 && self.store != StoreKind::Redis {
            return Err(ConfigError::new(
                "SESSION_REDIS_MIN_REPLICAS",
                format!(
                    "is for SESSION_TYPE=redis, not {}: set it to 0",
                    self.store.name()
                ),
            ));
        }
        let name = &self.cookie.name;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(ConfigError::invalid(
                "SESSION_COOKIE_NAME",
                name,
                "a non-empty cookie name (letters, digits and !#$%&'*+-.^_`|~)",
            ));
        }
        // Browsers drop a prefixed cookie that breaks the prefix's rules
        // (RFC 6265bis 4.1.3): refuse it here rather than lose every session.
        let host_prefix = name.starts_with("__Host-");
        if (host_prefix || name.starts_with("__Secure-")) && !self.cookie.secure {
            return Err(ConfigError::new(
                "SESSION_COOKIE_SECURE",
                format!(
                    "must be true for a cookie named {name:?}: browsers drop a __Host- or __Secure- cookie without Secure"
                ),
            ));
        }
        if host_prefix && self.cookie.path != "/" {
            return Err(ConfigError::new(
                "SESSION_COOKIE_PATH",
                format!(
                    "must be / for a cookie named {name:?}: browsers drop a __Host- cookie with another Path"
                ),
            ));
        }
        if host_prefix && self.cookie.domain.is_some() {
            return Err(ConfigError::new(
                "SESSION_COOKIE_DOMAIN",
                format!(
                    "must be unset for a cookie named {name:?}: browsers drop a __Host- cookie with a Domain"
                ),
            ));
        }
        if !self.cookie.path.starts_with('/') {
            return Err(ConfigError::invalid(
                "SESSION_COOKIE_PATH",
                &self.cookie.path,
                "a path starting with /",
            ));
        }
        if self.cookie.same_site == SameSite::None && !self.cookie.secure {
            return Err(ConfigError::new(
                "SESSION_COOKIE_SAMESITE",
                "None requires SESSION_COOKIE_SECURE=true (browsers drop the cookie otherwise)",
            ));
        }
        if self.file_mode > 0o777 {
            return Err(ConfigError::new(
                "SESSION_FILE_MODE",
                "must be permission bits, at most 0777",
            ));
        }
        if self.memcached_servers.is_empty() {
            return Err(ConfigError::new(
                "SESSION_MEMCACHED",
                "needs at least one host:port",
            ));
        }
        Ok(())
    }
}

fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_bool(key: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ConfigError::invalid(key, v, "true, false, 1 or 0")),
    }
}

fn parse_number(key: &'static str, v: &str) -> Result<usize, ConfigError> {
    v.parse()
        .map_err(|_| ConfigError::invalid(key, v, "a whole number"))
}

fn parse_seconds(key: &'static str, v: &str) -> Result<Duration, ConfigError> {
    v.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| ConfigError::invalid(key, v, "a number of seconds, such as 3600"))
}

fn parse_mode(key: &'static str, v: &str) -> Result<u32, ConfigError> {
    let octal = v.strip_prefix("0o").or_else(|| v.strip_prefix('0'));
    match octal {
        Some("") => Some(0),
        Some(digits) => u32::from_str_radix(digits, 8).ok(),
        None => v.parse().ok(),
    }
    .ok_or_else(|| {
        ConfigError::invalid(
            key,
            v,
            "octal permission bits such as 0600, or decimal such as 384",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_flasks() {
        let c = SessionConfig::from_source(std::iter::empty::<(&str, &str)>()).unwrap();
        assert_eq!(c, SessionConfig::default());
        assert_eq!(c.store, StoreKind::Memory);
        assert!(c.permanent);
        assert_eq!(c.lifetime, Duration::from_secs(2_678_400));
        assert_eq!(c.key_prefix, "session:");
        assert_eq!(c.file_threshold, 500);
        assert_eq!(c.file_mode, 0o600);
        assert_eq!(c.cookie.name, "session");
        assert!(c.cookie.http_only);
        assert_eq!(c.cookie.same_site, SameSite::Lax);
        assert!(c.refresh_each_request);
        assert!(c.hash_ids);
    }

    #[test]
    fn every_key_is_read() {
        let c = SessionConfig::from_source([
            ("SESSION_TYPE", "filesystem"),
            ("SESSION_PERMANENT", "false"),
            ("PERMANENT_SESSION_LIFETIME", "3600"),
            ("SESSION_REFRESH_EACH_REQUEST", "0"),
            ("SESSION_USE_SIGNER", "1"),
            ("SECRET_KEY", "k".repeat(32).as_str()),
            (
                "SECRET_KEY_FALLBACKS",
                &format!("{}, {}", "a".repeat(32), "b".repeat(40)),
            ),
            ("SESSION_KEY_PREFIX", "app:"),
            ("SESSION_HASH_IDS", "false"),
            ("SESSION_SERIALIZATION_FORMAT", "json"),
            ("SESSION_MAX_SIZE", "1000"),
            ("SESSION_STORE_TIMEOUT", "0.25"),
            ("SESSION_STORE_OUTAGE", "empty"),
            ("SESSION_COOKIE_CONTENT", "Signed"),
            ("SESSION_COOKIE_NAME", "sid"),
            ("SESSION_COOKIE_DOMAIN", "example.com"),
            ("SESSION_COOKIE_PATH", "/app"),
            ("SESSION_COOKIE_SECURE", "true"),
            ("SESSION_COOKIE_HTTPONLY", "false"),
            ("SESSION_COOKIE_SAMESITE", "none"),
            ("SESSION_FILE_DIR", "/tmp/s"),
            ("SESSION_FILE_THRESHOLD", "10"),
            ("SESSION_FILE_MODE", "384"),
            ("SESSION_REDIS", "redis://h:1"),
            ("SESSION_MEMCACHED", "a:1,b:2"),
            ("SESSION_SQL_URL", "sqlite::memory:"),
            ("SESSION_SQL_TABLE", "t"),
            ("SESSION_MONGODB", "mongodb://m"),
            ("SESSION_MONGODB_DB", "d"),
            ("SESSION_MONGODB_COLLECT", "c"),
            ("SESSION_ABSOLUTE_LIFETIME", "43200"),
            ("SESSION_SAVE_ON_ERROR", "true"),
            ("SESSION_MEMORY_MAX_SESSIONS", "5000"),
            ("SESSION_TRACK_CLIENT", "true"),
            ("SESSION_MAX_PER_USER", "3"),
            ("SESSION_LOCAL_CACHE", "500"),
            ("UNRELATED", "ignored"),
        ])
        .unwrap();
        assert_eq!(c.store, StoreKind::Filesystem);
        assert!(!c.permanent && !c.refresh_each_request && c.use_signer && !c.hash_ids);
        assert_eq!(c.lifetime, Duration::from_secs(3600));
        assert_eq!(c.secret_key_fallbacks.len(), 2);
        assert_eq!(c.key_prefix, "app:");
        assert_eq!(c.max_size, 1000);
        assert_eq!(c.store_timeout, Duration::from_millis(250));
        assert_eq!(c.outage, OutagePolicy::ServeEmpty);
        assert_eq!(c.cookie_content, CookieContent::Signed);
        assert_eq!(c.cookie.name, "sid");
        assert_eq!(c.cookie.domain.as_deref(), Some("example.com"));
        assert_eq!(c.cookie.path, "/app");
        assert!(c.cookie.secure && !c.cookie.http_only);
        assert_eq!(c.cookie.same_site, SameSite::None);
        assert_eq!(c.file_dir, PathBuf::from("/tmp/s"));
        assert_eq!(c.file_threshold, 10);
        assert_eq!(c.file_mode, 0o600);
        assert_eq!(c.redis_url, "redis://h:1");
        assert_eq!(c.memcached_servers, ["a:1", "b:2"]);
        assert_eq!(c.sql_url.as_deref(), Some("sqlite::memory:"));
        assert_eq!(c.sql_table, "t");
        assert_eq!(
            (c.mongodb_uri.as_str(), c.mongodb_db.as_str()),
            ("mongodb://m", "d")
        );
        assert_eq!(c.mongodb_collection, "c");
        assert_eq!(c.absolute_lifetime, Some(Duration::from_secs(43200)));
        assert!(c.save_on_error);
        assert_eq!(c.memory_max_sessions, 5000);
        assert!(c.track_client);
        assert_eq!(c.max_per_user, 3);
        assert_eq!(c.local_cache, 500);
    }

    #[test]
    fn a_near_cache_is_refused_where_nothing_would_keep_it_right() {
        assert_eq!(SessionConfig::default().local_cache, 0);
        let allowed: &[&[(&str, &str)]] = &[
            &[("SESSION_TYPE", "redis")],
            &[
                ("SESSION_TYPE", "redis"),
                ("SESSION_REDIS", "redis+sentinel://h:1/m"),
            ],
            &[("SESSION_TYPE", "filesystem")],
            &[
                ("SESSION_TYPE", "sql"),
                ("SESSION_SQL_URL", "postgres://h/db"),
            ],
            &[
                ("SESSION_TYPE", "sql"),
                ("SESSION_SQL_URL", "sqlite://s.db"),
            ],
        ];
        for pairs in allowed {
            let pairs = pairs
                .iter()
                .copied()
                .chain([("SESSION_LOCAL_CACHE", "100")]);
            let c = SessionConfig::from_source(pairs).unwrap();
            assert_eq!(c.local_cache, 100);
        }
        let refused: &[(&[(&str, &str)], &str)] = &[
            (
                &[("SESSION_TYPE", "memory")],
                "the memory store is in this process already",
            ),
            (&[("SESSION_TYPE", "memcached")], "SESSION_TYPE=memcached"),
            (&[("SESSION_TYPE", "mongodb")], "SESSION_TYPE=mongodb"),
            (&[("SESSION_TYPE", "null")], "SESSION_TYPE=null"),
            (
                &[("SESSION_TYPE", "sql"), ("SESSION_SQL_URL", "mysql://h/db")],
                "on this database",
            ),
            (
                &[
                    ("SESSION_TYPE", "redis"),
                    ("SESSION_REDIS", "redis+cluster://h:1"),
                ],
                "Redis Cluster",
            ),
        ];
        for (pairs, why) in refused {
            let pairs = pairs
                .iter()
                .copied()
                .chain([("SESSION_LOCAL_CACHE", "100")]);
            let err = SessionConfig::from_source(pairs).unwrap_err();
            assert_eq!(err.key(), "SESSION_LOCAL_CACHE");
            assert!(err.to_string().contains(why), "{err}");
        }
        let err = SessionConfig::from_source([("SESSION_LOCAL_CACHE", "a few")]).unwrap_err();
        assert_eq!(err.key(), "SESSION_LOCAL_CACHE");
    }

    #[test]
    fn min_replicas_is_read_and_only_for_redis() {
        assert_eq!(SessionConfig::default().redis_min_replicas, 0);
        let c = SessionConfig::from_source([
            ("SESSION_TYPE", "redis"),
            ("SESSION_REDIS_MIN_REPLICAS", "1"),
        ])
        .unwrap();
        assert_eq!(c.redis_min_replicas, 1);
        let err = SessionConfig::from_source([("SESSION_REDIS_MIN_REPLICAS", "1")]).unwrap_err();
        assert_eq!(err.key(), "SESSION_REDIS_MIN_REPLICAS");
        assert!(err.to_string().contains("memory"), "{err}");
        let err = SessionConfig::from_source([
            ("SESSION_TYPE", "redis"),
            ("SESSION_REDIS_MIN_REPLICAS", "one"),
        ])
        .unwrap_err();
        assert_eq!(err.key(), "SESSION_REDIS_MIN_REPLICAS");
    }

    #[test]
    fn new_keys_default_to_off_and_the_documented_cap() {
        let c = SessionConfig::default();
        assert_eq!(c.absolute_lifetime, None);
        assert!(!c.save_on_error);
        assert_eq!(c.memory_max_sessions, 100_000);
        assert!(!c.track_client);
        assert_eq!(c.max_per_user, 50);
        let c = SessionConfig::from_source([("SESSION_ABSOLUTE_LIFETIME", "")]).unwrap();
        assert_eq!(c.absolute_lifetime, None, "an empty value means unset");
        let c = SessionConfig::from_source([("SESSION_MAX_PER_USER", "")]).unwrap();
        assert_eq!(c.max_per_user, 50, "an empty value means the default");
        let c = SessionConfig::from_source([("SESSION_MAX_PER_USER", "1000")]).unwrap();
        assert_eq!(c.max_per_user, 1000);
        for bad in ["0", "1001"] {
            let error = SessionConfig::from_source([("SESSION_MAX_PER_USER", bad)]).unwrap_err();
            assert_eq!(error.key(), "SESSION_MAX_PER_USER", "{bad}");
        }
        let error = SessionConfig::from_source([("SESSION_TRACK_CLIENT", "maybe")]).unwrap_err();
        assert_eq!(error.key(), "SESSION_TRACK_CLIENT");
    }

    #[test]
    fn cookie_name_prefixes_are_enforced() {
        let secure = ("SESSION_COOKIE_SECURE", "true");
        assert!(
            SessionConfig::from_source([("SESSION_COOKIE_NAME", "__Host-sid"), secure]).is_ok()
        );
        assert!(
            SessionConfig::from_source([
                ("SESSION_COOKIE_NAME", "__Secure-sid"),
                secure,
                ("SESSION_COOKIE_DOMAIN", "example.com"),
                ("SESSION_COOKIE_PATH", "/app"),
            ])
            .is_ok()
        );
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("SESSION_COOKIE_NAME", "__Host-sid")],
                "SESSION_COOKIE_SECURE",
            ),
            (
                &[("SESSION_COOKIE_NAME", "__Secure-sid")],
                "SESSION_COOKIE_SECURE",
            ),
            (
                &[
                    ("SESSION_COOKIE_NAME", "__Host-sid"),
                    secure,
                    ("SESSION_COOKIE_PATH", "/app"),
                ],
                "SESSION_COOKIE_PATH",
            ),
            (
                &[
                    ("SESSION_COOKIE_NAME", "__Host-sid"),
                    secure,
                    ("SESSION_COOKIE_DOMAIN", "example.com"),
                ],
                "SESSION_COOKIE_DOMAIN",
            ),
        ];
        for (pairs, key) in cases {
            let err = SessionConfig::from_source(pairs.iter().copied()).unwrap_err();
            assert_eq!(err.key(), *key, "{pairs:?}");
            assert!(err.to_string().contains("__"), "{err}");
        }
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let secret = "s3cr3t-signing-key-of-32-bytes-or-more";
        let fallback = "0ld-fallback-signing-key-of-32-bytes-or-more";
        let c = SessionConfig::from_source([
            ("SECRET_KEY", secret),
            ("SECRET_KEY_FALLBACKS", fallback),
            ("SESSION_REDIS", "redis://user:redispw@host:6379/0"),
            (
                "SESSION_SQL_URL",
                "postgres://app@db/test?sslmode=require&password=sqlpw",
            ),
            (
                "SESSION_MONGODB",
                "mongodb://u:mongopw@m/?authSource=admin&tlsCertificateKeyFilePassword=certpw",
            ),
        ])
        .unwrap();
        let text = format!("{c:?} {c:#?}");
        for leaked in [secret, fallback, "redispw", "sqlpw", "mongopw", "certpw"] {
            assert!(!text.contains(leaked), "{leaked} is in {text}");
        }
        assert!(text.contains("<redacted>"), "{text}");
        assert!(
            text.contains("sslmode=require"),
            "harmless parameters stay: {text}"
        );
        assert!(text.contains("host:6379"), "{text}");
    }

    #[test]
    fn urls_lose_passwords_and_secret_parameters() {
        assert_eq!(
            redact_url("redis://user:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            redact_url("postgres://db/test?user=app&password=pw&sslmode=require"),
            "postgres://db/test?user=app&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("mysql://u:p@h/d?sslpassword=x&PASSWORD=y"),
            "mysql://***@h/d?sslpassword=***&PASSWORD=***"
        );
        let message = redacted_failure(
            "cannot use",
            "postgres://u:hunter22@h/d?password=swordfish",
            &"connection to postgres://u:hunter22@h/d?password=swordfish refused",
        );
        assert!(
            !message.contains("hunter22") && !message.contains("swordfish"),
            "{message}"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("SESSION_TYPE", "redsi")], "SESSION_TYPE"),
            (&[("SESSION_PERMANENT", "yes")], "SESSION_PERMANENT"),
            (
                &[("PERMANENT_SESSION_LIFETIME", "31d")],
                "PERMANENT_SESSION_LIFETIME",
            ),
            (
                &[("PERMANENT_SESSION_LIFETIME", "-1")],
                "PERMANENT_SESSION_LIFETIME",
            ),
            (
                &[("PERMANENT_SESSION_LIFETIME", "0")],
                "PERMANENT_SESSION_LIFETIME",
            ),
            (
                &[("SESSION_FILE_THRESHOLD", "many")],
                "SESSION_FILE_THRESHOLD",
            ),
            (&[("SESSION_FILE_MODE", "0999")], "SESSION_FILE_MODE"),
            (&[("SESSION_FILE_MODE", "4096")], "SESSION_FILE_MODE"),
            (
                &[("SESSION_COOKIE_SAMESITE", "sometimes")],
                "SESSION_COOKIE_SAMESITE",
            ),
            (
                &[("SESSION_COOKIE_SAMESITE", "None")],
                "SESSION_COOKIE_SAMESITE",
            ),
            (&[("SESSION_COOKIE_NAME", "a b")], "SESSION_COOKIE_NAME"),
            (&[("SESSION_COOKIE_PATH", "app")], "SESSION_COOKIE_PATH"),
            (&[("SESSION_USE_SIGNER", "true")], "SECRET_KEY"),
            (&[("SESSION_TYPE", "cookie")], "SECRET_KEY"),
            (&[("SECRET_KEY", "short")], "SECRET_KEY"),
            (&[("SECRET_KEY_FALLBACKS", "short")], "SECRET_KEY_FALLBACKS"),
            (&[("SESSION_STORE_OUTAGE", "shrug")], "SESSION_STORE_OUTAGE"),
            (
                &[("SESSION_COOKIE_CONTENT", "plain")],
                "SESSION_COOKIE_CONTENT",
            ),
            (
                &[("SESSION_SERIALIZATION_FORMAT", "pickle")],
                "SESSION_SERIALIZATION_FORMAT",
            ),
            (&[("SESSION_MEMCACHED", ",")], "SESSION_MEMCACHED"),
            (
                &[("SESSION_ABSOLUTE_LIFETIME", "0")],
                "SESSION_ABSOLUTE_LIFETIME",
            ),
            (
                &[("SESSION_ABSOLUTE_LIFETIME", "a day")],
                "SESSION_ABSOLUTE_LIFETIME",
            ),
            (
                &[("SESSION_SAVE_ON_ERROR", "maybe")],
                "SESSION_SAVE_ON_ERROR",
            ),
            (
                &[("SESSION_MEMORY_MAX_SESSIONS", "0")],
                "SESSION_MEMORY_MAX_SESSIONS",
            ),
            (
                &[("SESSION_MEMORY_MAX_SESSIONS", "lots")],
                "SESSION_MEMORY_MAX_SESSIONS",
            ),
        ];
        for (pairs, key) in cases {
            let err = SessionConfig::from_source(pairs.iter().copied()).unwrap_err();
            assert_eq!(err.key(), *key, "{pairs:?}");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn file_mode_accepts_octal_and_flasks_decimal() {
        for (text, mode) in [("0600", 0o600), ("0o640", 0o640), ("384", 0o600), ("0", 0)] {
            assert_eq!(parse_mode("K", text).unwrap(), mode, "{text}");
        }
    }

    fn env_file(text: &str) -> tempfile::NamedTempFile {
        use std::io::Write as _;
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn from_file_reads_env_lines() {
        let file = env_file(
            "# the old store\n\nexport SESSION_TYPE=filesystem\nSESSION_FILE_DIR=\"/tmp/a b\"\n\
             SESSION_KEY_PREFIX='s:'\nUNRELATED=1\n",
        );
        let c = SessionConfig::from_file(file.path()).unwrap();
        assert_eq!(c.store, StoreKind::Filesystem);
        assert_eq!(c.file_dir, PathBuf::from("/tmp/a b"));
        assert_eq!(c.key_prefix, "s:");
        let bad = env_file("SESSION_TYPE=redis\nnot a setting\n");
        let err = SessionConfig::from_file(bad.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("KEY=VALUE"), "{err}");
    }

    #[test]
    fn migrate_from_reads_the_old_stores_settings() {
        let old = env_file("SESSION_TYPE=filesystem\nSESSION_FILE_DIR=/srv/sessions\n");
        let path = old.path().to_str().unwrap();
        let c =
            SessionConfig::from_source([("SESSION_TYPE", "redis"), ("SESSION_MIGRATE_FROM", path)])
                .unwrap();
        let old = c.migrate_from.as_deref().expect("the old store's settings");
        assert_eq!(old.store, StoreKind::Filesystem);
        assert_eq!(old.file_dir, PathBuf::from("/srv/sessions"));
        assert!(format!("{c:?}").contains("migrate_from"));
    }

    #[test]
    fn migrate_from_refuses_what_cannot_move_naming_the_key() {
        let refused = |old: &str, new: &[(&str, &str)]| {
            let file = env_file(old);
            let mut pairs: Vec<(&str, &str)> = new.to_vec();
            let path = file.path().to_str().unwrap().to_owned();
            pairs.push(("SESSION_MIGRATE_FROM", &path));
            let err = SessionConfig::from_source(pairs).unwrap_err();
            assert_eq!(err.key(), "SESSION_MIGRATE_FROM", "{err}");
            err.to_string()
        };
        let redis = [("SESSION_TYPE", "redis")];
        let err = refused("SESSION_TYPE=filesystem\nSESSION_KEY_PREFIX=old:\n", &redis);
        assert!(err.contains("SESSION_KEY_PREFIX"), "{err}");
        let err = refused("SESSION_TYPE=filesystem\nSESSION_HASH_IDS=false\n", &redis);
        assert!(err.contains("SESSION_HASH_IDS"), "{err}");
        let secret = "SECRET_KEY=0123456789abcdef0123456789abcdef\n";
        let err = refused(&format!("SESSION_TYPE=cookie\n{secret}"), &redis);
        assert!(err.contains("cookie"), "{err}");
        let err = refused("SESSION_TYPE=filesystem\nSESSION_LOCAL_CACHE=100\n", &redis);
        assert!(err.contains("SESSION_LOCAL_CACHE"), "{err}");
        let err = refused("SESSION_TYPE=null\n", &redis);
        assert!(err.contains("null"), "{err}");
        let err = refused("SESSION_TYPE=redsi\n", &redis);
        assert!(err.contains("SESSION_TYPE"), "{err}");
        let chained = env_file("SESSION_TYPE=memory\n");
        let err = refused(
            &format!(
                "SESSION_TYPE=filesystem\nSESSION_MIGRATE_FROM={}\n",
                chained.path().display()
            ),
            &redis,
        );
        assert!(err.contains("one store at a time"), "{err}");
        let err = SessionConfig::from_source([("SESSION_MIGRATE_FROM", "/no/such/file.env")])
            .unwrap_err();
        assert_eq!(err.key(), "SESSION_MIGRATE_FROM");
        assert!(err.to_string().contains("/no/such/file.env"), "{err}");
    }
}
