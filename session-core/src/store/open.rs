//! Opening the store a [`SessionConfig`] names.

use super::{AnyStore, null::NullStore};
use crate::config::{ConfigError, SessionConfig, StoreConfig};

/// Where sessions live: a server-side store, or the signed cookie.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Backend {
    /// A server-side store; the cookie carries only the id.
    Store(AnyStore),
    /// The whole session in a signed cookie.
    #[cfg(feature = "cookie")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cookie")))]
    Cookie(super::cookie::CookieStore),
}

/// Any server-side store: the cookie carries only the id.
impl<S: super::SessionStore> From<S> for Backend {
    fn from(store: S) -> Self {
        Backend::Store(AnyStore::new(store))
    }
}

/// The cookie store: the cookie carries the whole session, sealed or signed.
#[cfg(feature = "cookie")]
impl From<super::cookie::CookieStore> for Backend {
    fn from(store: super::cookie::CookieStore) -> Self {
        Backend::Cookie(store)
    }
}

/// Opens the store that `config.store` (`SESSION_TYPE`) names, with the
/// settings of its keys. A store that cannot be opened, or that this build
/// does not include, is an error naming the key to look at.
///
/// # Errors
///
/// A [`ConfigError`] naming the key to fix: `SESSION_TYPE` for a store
/// this build does not include, the store's own key (`SESSION_REDIS`,
/// `SESSION_SQL_URL`, `SESSION_FILE_DIR`, ...) when it cannot be opened or
/// its server cannot be reached (passwords in URLs are never shown).
pub async fn open(config: &SessionConfig) -> Result<Backend, ConfigError> {
    let backend = match open_backend(config).await? {
        Backend::Store(store) => Backend::Store(store.with_kind(config.store.kind().name())),
        #[allow(unreachable_patterns)] // the cookie store, when built in
        other => other,
    };
    let Some(old) = &config.migrate_from else {
        return Ok(backend);
    };
    let keeps_none = || {
        ConfigError::new(
            "SESSION_MIGRATE_FROM",
            "the cookie store keeps no sessions to move",
        )
    };
    let old = match Box::pin(open_backend(old)).await.map_err(|e| {
        ConfigError::new(
            "SESSION_MIGRATE_FROM",
            format!("the old store cannot be opened: {e}"),
        )
    })? {
        Backend::Store(store) => store.with_kind(old.store.kind().name()),
        #[allow(unreachable_patterns)] // the cookie store, when built in
        _ => return Err(keeps_none()),
    };
    let new = match backend {
        Backend::Store(store) => store,
        #[allow(unreachable_patterns)] // the cookie store, when built in
        _ => return Err(keeps_none()),
    };
    // The near cache, if any, is the new store's: every call to the new
    // store still goes through it.
    let cache = new.cache.clone();
    let kind = new.kind();
    let mut migrating = AnyStore::new(
        super::Migrating::new(new, old)
            .lifetime(config.lifetime)
            .lock_ttl(super::migrating::lock_ttl_for(config.store_timeout)),
    )
    .with_kind(kind);
    migrating.cache = cache;
    Ok(Backend::Store(migrating))
}

async fn open_backend(config: &SessionConfig) -> Result<Backend, ConfigError> {
    let unavailable = |feature: &str| {
        ConfigError::new(
            "SESSION_TYPE",
            format!(
                "`{}` is not available in this build: enable the `{feature}` feature of session-actix",
                config.store.kind().name()
            ),
        )
    };
    #[cfg(feature = "flask")]
    let flask = config.interop == Some(crate::config::Interop::FlaskSession);
    #[cfg(feature = "flask")]
    if flask {
        config.validate_interop_store()?;
    }
    Ok(match &config.store {
        #[cfg(feature = "memory")]
        StoreConfig::Memory { max_sessions } => Backend::Store(AnyStore::new(
            super::memory::MemoryStore::with_max_sessions(*max_sessions),
        )),
        #[cfg(feature = "filesystem")]
        StoreConfig::Filesystem {
            dir,
            threshold,
            mode,
        } => {
            let store = super::filesystem::FileStore::builder(dir)
                .threshold(*threshold)
                .mode(*mode)
                .build()
                .map_err(|e| {
                    let dir = dir.display().to_string();
                    let message = e.to_string();
                    // The store's own checks already name the directory.
                    let message = if message.contains(&dir) {
                        message
                    } else {
                        format!("cannot use {dir}: {message}")
                    };
                    ConfigError::new("SESSION_FILE_DIR", message)
                })?;
            if config.local_cache > 0 {
                // `validate` allowed it: the directory is this process's.
                return Ok(Backend::Store(AnyStore::cached(super::NearCache::local(
                    store,
                    config.local_cache,
                ))));
            }
            Backend::Store(AnyStore::new(store))
        }
        #[cfg(feature = "cookie")]
        StoreConfig::Cookie => {
            let secret = config.secret_key.as_deref().ok_or_else(|| {
                ConfigError::new("SECRET_KEY", "is required with SESSION_TYPE=cookie")
            })?;
            let store = super::cookie::CookieStore::new(secret, &config.secret_key_fallbacks)
                .map_err(|e| ConfigError::new("SECRET_KEY", e.to_string()))?
                .with_content(config.cookie_content);
            Backend::Cookie(store)
        }
        #[cfg(feature = "redis")]
        StoreConfig::Redis { url, min_replicas } => {
            let builder = super::redis::RedisStore::builder(url)
                .timeout(config.store_timeout)
                .min_replicas(*min_replicas);
            let failed = |e: super::StoreError| {
                ConfigError::new(
                    "SESSION_REDIS",
                    crate::config::redacted_failure("cannot connect to", url, &e),
                )
            };
            if config.local_cache > 0 {
                let store = builder
                    .build_near_cache(config.local_cache)
                    .await
                    .map_err(failed)?;
                return Ok(Backend::Store(AnyStore::cached(store)));
            }
            let store = builder.build().await.map_err(failed)?;
            #[cfg(feature = "flask")]
            if flask {
                return Ok(flask_store(config, store));
            }
            Backend::Store(AnyStore::new(store))
        }
        #[cfg(feature = "memcached")]
        StoreConfig::Memcached { servers } => {
            let store = super::memcached::MemcachedStore::builder(servers)
                .timeout(config.store_timeout)
                .build()
                .map_err(|e| ConfigError::new("SESSION_MEMCACHED", e.to_string()))?;
            // Fail at start-up when a server is down, as the redis arm does.
            store.ping().await.map_err(|e| {
                ConfigError::new(
                    "SESSION_MEMCACHED",
                    format!("cannot reach {}: {e}", servers.join(",")),
                )
            })?;
            #[cfg(feature = "flask")]
            if flask {
                return Ok(flask_store(config, store));
            }
            Backend::Store(AnyStore::new(store))
        }
        #[cfg(any(
            feature = "sql-postgres",
            feature = "sql-mysql",
            feature = "sql-sqlite"
        ))]
        StoreConfig::Sql { url, table } => {
            let url = url.as_deref().ok_or_else(|| {
                ConfigError::new(
                    "SESSION_SQL_URL",
                    "is required with SESSION_TYPE=sql: a postgres://, mysql:// or sqlite: URL",
                )
            })?;
            if !super::sql::is_valid_table_name(table) {
                return Err(ConfigError::new(
                    "SESSION_SQL_TABLE",
                    format!(
                        "{:?} is not a plain SQL identifier: use ASCII letters, digits and `_`, \
                         not starting with a digit, at most 48 characters",
                        table
                    ),
                ));
            }
            let builder = super::sql::SqlStore::builder(url)
                .table(table)
                .timeout(config.store_timeout);
            let failed = |e: super::StoreError| {
                ConfigError::new(
                    "SESSION_SQL_URL",
                    crate::config::redacted_failure("cannot use", url, &e),
                )
            };
            #[cfg(feature = "flask")]
            if flask {
                let table = builder.build_flask_session().await.map_err(failed)?;
                return Ok(flask_store(config, table));
            }
            if config.local_cache > 0 {
                let store = builder
                    .build_near_cache(config.local_cache)
                    .await
                    .map_err(failed)?;
                return Ok(Backend::Store(AnyStore::cached(store)));
            }
            Backend::Store(AnyStore::new(builder.build().await.map_err(failed)?))
        }
        #[cfg(feature = "mongodb")]
        StoreConfig::MongoDb {
            uri,
            db,
            collection,
        } => {
            let builder = super::mongodb::MongoStore::builder(uri)
                .database(db)
                .collection(collection)
                .timeout(config.store_timeout);
            let failed = |e: super::StoreError| {
                ConfigError::new(
                    "SESSION_MONGODB",
                    crate::config::redacted_failure("cannot use", uri, &e),
                )
            };
            #[cfg(feature = "flask")]
            if flask {
                let collection = builder.build_flask_session().await.map_err(failed)?;
                return Ok(flask_store(config, collection));
            }
            Backend::Store(AnyStore::new(builder.build().await.map_err(failed)?))
        }
        StoreConfig::Null => Backend::Store(AnyStore::new(NullStore)),
        // Unreachable when every store's feature is on.
        #[allow(unreachable_patterns)]
        store => return Err(unavailable(store.kind().name())),
    })
}

/// `blob` in Flask-Session's layout, with the format and the key prefix
/// that `config` names.
#[cfg(feature = "flask")]
#[cfg_attr(
    not(any(
        feature = "redis",
        feature = "memcached",
        feature = "sql",
        feature = "mongodb"
    )),
    allow(dead_code)
)]
fn flask_store(config: &SessionConfig, blob: impl crate::flask::BlobStore) -> Backend {
    let store = crate::flask::FlaskStore::new(blob)
        .with_format(crate::flask::FlaskFormat::of(config.codec))
        .with_key_prefix(&config.key_prefix);
    Backend::Store(AnyStore::new(store))
}
