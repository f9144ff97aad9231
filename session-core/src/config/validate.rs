//! Whether the settings make sense together: each check names the key to
//! fix.

use super::types::{ConfigError, SameSite, StoreKind};
use super::{SessionConfig, StoreConfig};
use crate::seal::EncryptAtRest;
use crate::signing::MIN_SECRET_LEN;

impl SessionConfig {
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
        let needs_secret = self.use_signer || self.store == StoreConfig::Cookie;
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
        self.store.validate()
    }

    /// What a move from the `SESSION_MIGRATE_FROM` store needs: two
    /// server-side stores that name and encode sessions alike.
    fn validate_migrate_from(&self, old: &Self) -> Result<(), ConfigError> {
        const KEY: &str = "SESSION_MIGRATE_FROM";
        for (which, store) in [("this", self.store.kind()), ("the old", old.store.kind())] {
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
        if self.store == StoreConfig::Cookie {
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
        match &self.store {
            StoreConfig::Redis { url, .. } if url.starts_with("redis+cluster:") => refuse(
                "is not available on a Redis Cluster yet (each node would need its own \
                 tracking connection): use a single server or Sentinel, or set it to 0"
                    .to_owned(),
            ),
            StoreConfig::Redis { .. } | StoreConfig::Filesystem { .. } => Ok(()),
            StoreConfig::Sql { url: Some(url), .. }
                if url.starts_with("postgres") || url.starts_with("sqlite") =>
            {
                Ok(())
            }
            store => {
                let kind = store.kind();
                refuse(format!(
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
                ))
            }
        }
    }

    /// The stores Flask-Session's layout is available on: checked when the
    /// store is opened from `SESSION_TYPE`.
    #[cfg(feature = "flask")]
    pub(crate) fn validate_interop_store(&self) -> Result<(), ConfigError> {
        const WITH: &str = "with SESSION_INTEROP=flask-session";
        match &self.store {
            StoreConfig::Redis { .. } | StoreConfig::Sql { .. } | StoreConfig::MongoDb { .. } => {
                Ok(())
            }
            StoreConfig::Memcached { servers } if servers.len() == 1 => Ok(()),
            StoreConfig::Memcached { .. } => Err(ConfigError::new(
                "SESSION_MEMCACHED",
                format!(
                    "must name one server {WITH}: Flask's memcached client spreads keys over \
                     several servers its own way, which this side cannot follow"
                ),
            )),
            StoreConfig::Filesystem { .. } => Err(ConfigError::new(
                "SESSION_TYPE",
                format!(
                    "filesystem is not available {WITH}: Flask-Session's filesystem store \
                     keeps sessions as pickle, which this crate never reads; use redis, \
                     memcached, sql or mongodb on both sides"
                ),
            )),
            store => Err(ConfigError::new(
                "SESSION_TYPE",
                format!(
                    "{} is not available {WITH}: the Flask app cannot reach it; use redis, \
                     memcached, sql or mongodb on both sides",
                    store.kind().name()
                ),
            )),
        }
    }
}

impl StoreConfig {
    /// Checks the store's own settings; the error names the key to fix.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the key: `SESSION_MEMORY_MAX_SESSIONS` of
    /// 0, a `SESSION_FILE_MODE` above `0777`, a `SESSION_MEMCACHED` with
    /// no server.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::Memory { max_sessions } => check_max_sessions(*max_sessions),
            Self::Filesystem { mode, .. } => check_file_mode(*mode),
            Self::Memcached { servers } => check_memcached_servers(servers),
            _ => Ok(()),
        }
    }
}

// The checks of a store's values, shared with the key parser: it refuses
// a bad value of any store's key, used or not.

/// `SESSION_MEMORY_MAX_SESSIONS`: at least one.
pub(super) fn check_max_sessions(max: usize) -> Result<(), ConfigError> {
    if max == 0 {
        return Err(ConfigError::new(
            "SESSION_MEMORY_MAX_SESSIONS",
            "must be at least 1",
        ));
    }
    Ok(())
}

/// `SESSION_FILE_MODE`: permission bits only.
pub(super) fn check_file_mode(mode: u32) -> Result<(), ConfigError> {
    if mode > 0o777 {
        return Err(ConfigError::new(
            "SESSION_FILE_MODE",
            "must be permission bits, at most 0777",
        ));
    }
    Ok(())
}

/// `SESSION_MEMCACHED`: at least one server.
pub(super) fn check_memcached_servers(servers: &[String]) -> Result<(), ConfigError> {
    if servers.is_empty() {
        return Err(ConfigError::new(
            "SESSION_MEMCACHED",
            "needs at least one host:port",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::env_file;
    use super::*;

    #[test]
    fn encrypt_at_rest_refusals_read_as_sentences() {
        let secret = "k".repeat(32);
        #[cfg_attr(not(feature = "flask"), allow(unused_mut))]
        let mut cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (
                vec![
                    ("SESSION_TYPE", "cookie"),
                    ("SECRET_KEY", &secret),
                    ("SESSION_ENCRYPT_AT_REST", "true"),
                ],
                "SESSION_ENCRYPT_AT_REST",
            ),
            (vec![("SESSION_ENCRYPT_AT_REST", "strict")], "SECRET_KEY"),
        ];
        #[cfg(feature = "flask")]
        cases.push((
            vec![
                ("SESSION_INTEROP", "flask-session"),
                ("SESSION_ENCRYPT_AT_REST", "true"),
            ],
            "SESSION_ENCRYPT_AT_REST",
        ));
        for (pairs, key) in cases {
            let err = SessionConfig::from_source(pairs.iter().copied()).unwrap_err();
            assert_eq!(err.key(), key, "{pairs:?}");
            let text = err.to_string();
            assert!(text.contains("SESSION_ENCRYPT_AT_REST"), "{text}");
            assert!(!text.contains("  "), "a run of spaces in {text:?}");
        }
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
    fn new_keys_default_to_off_and_the_documented_cap() {
        let c = SessionConfig::default();
        assert_eq!(c.absolute_lifetime, None);
        assert!(!c.save_on_error);
        assert_eq!(
            c.store,
            StoreConfig::Memory {
                max_sessions: 100_000
            }
        );
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
