//! Flask-style keys: reading `SESSION_*` settings from the environment,
//! any key/value source or a `.env`-style file, key by key, into the
//! policy and the store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::types::{ConfigError, CookieContent, OutagePolicy, SameSite, StoreKind};
use super::{SessionConfig, StoreConfig, validate};
use crate::codec::Codec;
use crate::seal::EncryptAtRest;

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
    /// `SESSION_TYPE` picks the [`store`](Self::store), which keeps the
    /// keys of that store only. The keys of other stores are still
    /// checked, so that a bad value is refused whichever store is in use,
    /// and then left aside, as Flask-Session does; except
    /// `SESSION_REDIS_MIN_REPLICAS`, refused above 0 for another store
    /// (it promises a durability that store would not give).
    ///
    /// ```
    /// use std::path::PathBuf;
    /// use std::time::Duration;
    /// use session_core::{SessionConfig, StoreConfig, StoreKind};
    ///
    /// let config = SessionConfig::from_source([
    ///     ("SESSION_TYPE", "filesystem"),
    ///     ("SESSION_FILE_DIR", "/var/lib/app/sessions"),
    ///     ("PERMANENT_SESSION_LIFETIME", "3600"),
    /// ])?;
    /// assert_eq!(config.store.kind(), StoreKind::Filesystem);
    /// assert_eq!(
    ///     config.store,
    ///     StoreConfig::filesystem(PathBuf::from("/var/lib/app/sessions"))
    /// );
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
        // SESSION_TYPE first: it picks the store whose settings the
        // store keys fill.
        const TYPE: &str = "SESSION_TYPE";
        if let Some(value) = values.get(TYPE) {
            c.set(TYPE, value)?;
        }
        for &key in KEYS.iter().filter(|&&key| key != TYPE) {
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

    fn set(&mut self, key: &'static str, v: &str) -> Result<(), ConfigError> {
        match key {
            "SESSION_TYPE" => {
                let kind = StoreKind::parse(v)
                    .ok_or_else(|| ConfigError::invalid(key, v, StoreKind::NAMES))?;
                self.store = StoreConfig::new(kind);
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
            "SESSION_LOCAL_CACHE" => self.local_cache = parse_number(key, v)?,
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
                    "flask-session" => Some(super::Interop::FlaskSession),
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
            _ => self.store.set(key, v)?,
        }
        Ok(())
    }
}

impl StoreConfig {
    /// Reads a store key: into this store when it is one of its own; the
    /// value is checked either way.
    fn set(&mut self, key: &'static str, v: &str) -> Result<(), ConfigError> {
        match (key, self) {
            ("SESSION_MEMORY_MAX_SESSIONS", store) => {
                let value = parse_number(key, v)?;
                validate::check_max_sessions(value)?;
                if let Self::Memory { max_sessions } = store {
                    *max_sessions = value;
                }
            }
            ("SESSION_FILE_DIR", Self::Filesystem { dir, .. }) => *dir = PathBuf::from(v),
            ("SESSION_FILE_THRESHOLD", store) => {
                let value = parse_number(key, v)?;
                if let Self::Filesystem { threshold, .. } = store {
                    *threshold = value;
                }
            }
            ("SESSION_FILE_MODE", store) => {
                let value = parse_mode(key, v)?;
                validate::check_file_mode(value)?;
                if let Self::Filesystem { mode, .. } = store {
                    *mode = value;
                }
            }
            ("SESSION_REDIS", Self::Redis { url, .. }) => *url = v.to_owned(),
            ("SESSION_REDIS_MIN_REPLICAS", store) => {
                let value = parse_number(key, v)?;
                match store {
                    Self::Redis { min_replicas, .. } => *min_replicas = value,
                    other if value > 0 => {
                        return Err(ConfigError::new(
                            key,
                            format!(
                                "is for SESSION_TYPE=redis, not {}: set it to 0",
                                other.kind().name()
                            ),
                        ));
                    }
                    _ => {}
                }
            }
            ("SESSION_MEMCACHED", store) => {
                let value: Vec<String> = split_list(v).map(str::to_owned).collect();
                validate::check_memcached_servers(&value)?;
                if let Self::Memcached { servers } = store {
                    *servers = value;
                }
            }
            ("SESSION_SQL_URL", Self::Sql { url, .. }) => *url = Some(v.to_owned()),
            ("SESSION_SQL_TABLE", Self::Sql { table, .. }) => *table = v.to_owned(),
            ("SESSION_MONGODB", Self::MongoDb { uri, .. }) => *uri = v.to_owned(),
            ("SESSION_MONGODB_DB", Self::MongoDb { db, .. }) => *db = v.to_owned(),
            ("SESSION_MONGODB_COLLECT", Self::MongoDb { collection, .. }) => {
                *collection = v.to_owned();
            }
            // Another store's key whose every value is good: not this
            // store's to keep.
            (
                "SESSION_FILE_DIR"
                | "SESSION_REDIS"
                | "SESSION_SQL_URL"
                | "SESSION_SQL_TABLE"
                | "SESSION_MONGODB"
                | "SESSION_MONGODB_DB"
                | "SESSION_MONGODB_COLLECT",
                _,
            ) => {}
            _ => unreachable!("{key} is in KEYS but has no parser"),
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
    use super::super::env_file;
    use super::*;

    #[test]
    fn defaults_are_flasks() {
        let c = SessionConfig::from_source(std::iter::empty::<(&str, &str)>()).unwrap();
        assert_eq!(c, SessionConfig::default());
        assert_eq!(c.store.kind(), StoreKind::Memory);
        assert!(c.permanent);
        assert_eq!(c.lifetime, Duration::from_secs(2_678_400));
        assert_eq!(c.key_prefix, "session:");
        let files = SessionConfig::from_source([("SESSION_TYPE", "filesystem")]).unwrap();
        let StoreConfig::Filesystem {
            threshold, mode, ..
        } = files.store
        else {
            panic!("a file store: {files:?}");
        };
        assert_eq!(threshold, 500);
        assert_eq!(mode, 0o600);
        assert_eq!(c.cookie.name, "session");
        assert!(c.cookie.http_only);
        assert_eq!(c.cookie.same_site, SameSite::Lax);
        assert!(c.refresh_each_request);
        assert!(c.hash_ids);
    }

    #[test]
    fn every_key_is_read() {
        // Every key at once, with each store in turn: a store keeps its
        // own keys (the near cache only where it is available).
        let read = |store: &str, local_cache: bool| {
            let pairs = every_key(store);
            SessionConfig::from_source(
                pairs
                    .iter()
                    .filter(|(k, _)| local_cache || *k != "SESSION_LOCAL_CACHE")
                    .map(|(k, v)| (*k, v.as_str())),
            )
            .unwrap()
        };
        let c = read("filesystem", true);
        assert_eq!(c.store.kind(), StoreKind::Filesystem);
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
        assert_eq!(
            c.store,
            StoreConfig::Filesystem {
                dir: PathBuf::from("/tmp/s"),
                threshold: 10,
                mode: 0o600,
            }
        );
        assert_eq!(
            read("redis", true).store,
            StoreConfig::Redis {
                url: "redis://h:1".to_owned(),
                min_replicas: 0,
            }
        );
        assert_eq!(
            read("memcached", false).store,
            StoreConfig::Memcached {
                servers: vec!["a:1".to_owned(), "b:2".to_owned()],
            }
        );
        assert_eq!(
            read("sql", true).store,
            StoreConfig::Sql {
                url: Some("sqlite::memory:".to_owned()),
                table: "t".to_owned(),
            }
        );
        assert_eq!(
            read("mongodb", false).store,
            StoreConfig::MongoDb {
                uri: "mongodb://m".to_owned(),
                db: "d".to_owned(),
                collection: "c".to_owned(),
            }
        );
        assert_eq!(c.absolute_lifetime, Some(Duration::from_secs(43200)));
        assert!(c.save_on_error);
        assert_eq!(
            read("memory", false).store,
            StoreConfig::Memory { max_sessions: 5000 }
        );
        assert!(c.track_client);
        assert_eq!(c.max_per_user, 3);
        assert_eq!(c.local_cache, 500);
    }

    #[test]
    fn min_replicas_is_read_and_only_for_redis() {
        assert!(matches!(
            StoreConfig::new(StoreKind::Redis),
            StoreConfig::Redis {
                min_replicas: 0,
                ..
            }
        ));
        let c = SessionConfig::from_source([
            ("SESSION_TYPE", "redis"),
            ("SESSION_REDIS_MIN_REPLICAS", "1"),
        ])
        .unwrap();
        assert!(matches!(
            c.store,
            StoreConfig::Redis {
                min_replicas: 1,
                ..
            }
        ));
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

    #[test]
    fn from_file_reads_env_lines() {
        let file = env_file(
            "# the old store\n\nexport SESSION_TYPE=filesystem\nSESSION_FILE_DIR=\"/tmp/a b\"\n\
             SESSION_KEY_PREFIX='s:'\nUNRELATED=1\n",
        );
        let c = SessionConfig::from_file(file.path()).unwrap();
        assert_eq!(c.store.kind(), StoreKind::Filesystem);
        assert_eq!(c.store, StoreConfig::filesystem(PathBuf::from("/tmp/a b")));
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
        assert_eq!(old.store.kind(), StoreKind::Filesystem);
        assert_eq!(
            old.store,
            StoreConfig::filesystem(PathBuf::from("/srv/sessions"))
        );
        assert!(format!("{c:?}").contains("migrate_from"));
    }

    /// Every key but `SESSION_MIGRATE_FROM` (and `UNRELATED`), with
    /// `SESSION_TYPE=store`.
    fn every_key(store: &str) -> Vec<(&'static str, String)> {
        let secret = "k".repeat(32);
        let fallbacks = format!("{}, {}", "a".repeat(32), "b".repeat(40));
        let pairs: &[(&'static str, &str)] = &[
            ("SESSION_TYPE", store),
            ("SESSION_PERMANENT", "false"),
            ("PERMANENT_SESSION_LIFETIME", "3600"),
            ("SESSION_REFRESH_EACH_REQUEST", "0"),
            ("SESSION_USE_SIGNER", "1"),
            ("SECRET_KEY", &secret),
            ("SECRET_KEY_FALLBACKS", &fallbacks),
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
        ];
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }
}
