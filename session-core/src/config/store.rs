//! Where sessions live: one variant per store, each with only its own
//! settings.

use std::path::PathBuf;

use super::types::StoreKind;

/// `SESSION_MEMORY_MAX_SESSIONS`'s default.
const MEMORY_MAX_SESSIONS: usize = 100_000;
/// `SESSION_FILE_DIR`'s default, Flask-Session's.
const FILE_DIR: &str = "flask_session";
/// `SESSION_FILE_THRESHOLD`'s default.
const FILE_THRESHOLD: usize = 500;
/// `SESSION_FILE_MODE`'s default.
const FILE_MODE: u32 = 0o600;
/// `SESSION_REDIS`'s default.
const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// `SESSION_MEMCACHED`'s default.
const MEMCACHED_SERVER: &str = "127.0.0.1:11211";
/// `SESSION_SQL_TABLE`'s default.
const SQL_TABLE: &str = "sessions";
/// `SESSION_MONGODB`'s default.
const MONGODB_URI: &str = "mongodb://127.0.0.1:27017";
/// `SESSION_MONGODB_DB`'s default, Flask-Session's.
const MONGODB_DB: &str = "flask_session";
/// `SESSION_MONGODB_COLLECT`'s default.
const MONGODB_COLLECTION: &str = "sessions";

/// Where sessions live: the store `SESSION_TYPE` names, with the settings
/// of its own keys.
///
/// Each variant carries only what its store reads, so no setting can be
/// left for a store that is not in use. The constructors fill in
/// Flask-Session's defaults:
///
/// ```
/// use session_core::{SessionConfig, StoreConfig, StoreKind};
///
/// let mut config = SessionConfig::default();
/// assert_eq!(config.store, StoreConfig::Memory { max_sessions: 100_000 });
///
/// config.store = StoreConfig::redis("redis://cache.internal:6379");
/// assert_eq!(config.store.kind(), StoreKind::Redis);
///
/// config.store = StoreConfig::Redis {
///     url: "redis://cache.internal:6379".to_owned(),
///     min_replicas: 1,
/// };
/// assert_eq!(StoreConfig::new(StoreKind::Sql), StoreConfig::Sql {
///     url: None,
///     table: "sessions".to_owned(),
/// });
/// ```
///
/// Its `Debug` output shows no password, token or key that a URL holds
/// (they are replaced by `***`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreConfig {
    /// `SESSION_TYPE=memory`: in this process.
    Memory {
        /// `SESSION_MEMORY_MAX_SESSIONS`: the most sessions kept. Defaults
        /// to 100000.
        max_sessions: usize,
    },
    /// `SESSION_TYPE=filesystem`: one file per session in a directory.
    Filesystem {
        /// `SESSION_FILE_DIR`. Defaults to `flask_session` in the working
        /// directory, as Flask-Session does.
        dir: PathBuf,
        /// `SESSION_FILE_THRESHOLD`: the most session files kept. Defaults
        /// to 500.
        threshold: usize,
        /// `SESSION_FILE_MODE`: the files' permission bits, at most
        /// `0777`. Defaults to `0600`.
        mode: u32,
    },
    /// `SESSION_TYPE=redis`: a Redis server, Sentinel set or cluster.
    Redis {
        /// `SESSION_REDIS`: a `redis://` or `rediss://` URL (or
        /// `redis+sentinel://`, `redis+cluster://`). Defaults to
        /// `redis://127.0.0.1:6379`.
        url: String,
        /// `SESSION_REDIS_MIN_REPLICAS`: how many replicas must have a
        /// session's change before the response is sent (Redis's `WAIT`,
        /// bounded by `SESSION_STORE_TIMEOUT`; the outage policy applies
        /// when fewer do), so that a master that fails right after
        /// answering loses no write a user was told about. Defaults to 0:
        /// Redis's asynchronous replication, no wait.
        min_replicas: usize,
    },
    /// `SESSION_TYPE=memcached`: one or more memcached servers.
    Memcached {
        /// `SESSION_MEMCACHED`: `host:port[,host:port...]`, at least one.
        /// Defaults to `127.0.0.1:11211`.
        servers: Vec<String>,
    },
    /// `SESSION_TYPE=sql`: PostgreSQL, MySQL/MariaDB or SQLite.
    Sql {
        /// `SESSION_SQL_URL`: a `postgres://`, `mysql://` or `sqlite://`
        /// URL. Defaults to none; opening the store without one is an
        /// error naming the key.
        url: Option<String>,
        /// `SESSION_SQL_TABLE`. Defaults to `sessions`.
        table: String,
    },
    /// `SESSION_TYPE=mongodb`: a MongoDB server.
    MongoDb {
        /// `SESSION_MONGODB`: a `mongodb://` URI. Defaults to
        /// `mongodb://127.0.0.1:27017`.
        uri: String,
        /// `SESSION_MONGODB_DB`. Defaults to `flask_session`, as
        /// Flask-Session.
        db: String,
        /// `SESSION_MONGODB_COLLECT`. Defaults to `sessions`.
        collection: String,
    },
    /// `SESSION_TYPE=cookie`: the whole session in the cookie, sealed or
    /// signed with `SECRET_KEY` (see
    /// [`SessionConfig::cookie_content`](super::SessionConfig::cookie_content)).
    Cookie,
    /// `SESSION_TYPE=null`: no store; reads are empty and writes are an
    /// error.
    Null,
}

impl Default for StoreConfig {
    /// The memory store, the embedded default.
    fn default() -> Self {
        Self::new(StoreKind::Memory)
    }
}

impl StoreConfig {
    /// The store `kind`, with Flask-Session's defaults for its settings.
    pub fn new(kind: StoreKind) -> Self {
        match kind {
            StoreKind::Memory => Self::Memory {
                max_sessions: MEMORY_MAX_SESSIONS,
            },
            StoreKind::Filesystem => Self::filesystem(FILE_DIR),
            StoreKind::Redis => Self::redis(REDIS_URL),
            StoreKind::Memcached => Self::Memcached {
                servers: vec![MEMCACHED_SERVER.to_owned()],
            },
            StoreKind::Sql => Self::Sql {
                url: None,
                table: SQL_TABLE.to_owned(),
            },
            StoreKind::MongoDb => Self::mongodb(MONGODB_URI),
            StoreKind::Cookie => Self::Cookie,
            StoreKind::Null => Self::Null,
        }
    }

    /// The file store in `dir`, with the default threshold and mode.
    pub fn filesystem(dir: impl Into<PathBuf>) -> Self {
        Self::Filesystem {
            dir: dir.into(),
            threshold: FILE_THRESHOLD,
            mode: FILE_MODE,
        }
    }

    /// The Redis store at `url`, with no replicas to wait for.
    pub fn redis(url: impl Into<String>) -> Self {
        Self::Redis {
            url: url.into(),
            min_replicas: 0,
        }
    }

    /// The memcached store on `servers` (`host:port` each).
    pub fn memcached<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> Self {
        Self::Memcached {
            servers: servers.into_iter().map(Into::into).collect(),
        }
    }

    /// The SQL store at `url`, in the default table.
    pub fn sql(url: impl Into<String>) -> Self {
        Self::Sql {
            url: Some(url.into()),
            table: SQL_TABLE.to_owned(),
        }
    }

    /// The MongoDB store at `uri`, in the default database and collection.
    pub fn mongodb(uri: impl Into<String>) -> Self {
        Self::MongoDb {
            uri: uri.into(),
            db: MONGODB_DB.to_owned(),
            collection: MONGODB_COLLECTION.to_owned(),
        }
    }

    /// Which store this is: what `SESSION_TYPE` names.
    pub fn kind(&self) -> StoreKind {
        match self {
            Self::Memory { .. } => StoreKind::Memory,
            Self::Filesystem { .. } => StoreKind::Filesystem,
            Self::Redis { .. } => StoreKind::Redis,
            Self::Memcached { .. } => StoreKind::Memcached,
            Self::Sql { .. } => StoreKind::Sql,
            Self::MongoDb { .. } => StoreKind::MongoDb,
            Self::Cookie => StoreKind::Cookie,
            Self::Null => StoreKind::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_store_of_its_kind() {
        for kind in [
            StoreKind::Memory,
            StoreKind::Filesystem,
            StoreKind::Redis,
            StoreKind::Memcached,
            StoreKind::Sql,
            StoreKind::MongoDb,
            StoreKind::Cookie,
            StoreKind::Null,
        ] {
            assert_eq!(StoreConfig::new(kind).kind(), kind);
        }
        assert_eq!(StoreConfig::default().kind(), StoreKind::Memory);
    }

    #[test]
    fn constructors_keep_flask_sessions_defaults() {
        assert_eq!(
            StoreConfig::new(StoreKind::Filesystem),
            StoreConfig::Filesystem {
                dir: PathBuf::from("flask_session"),
                threshold: 500,
                mode: 0o600,
            }
        );
        assert_eq!(
            StoreConfig::new(StoreKind::Redis),
            StoreConfig::redis("redis://127.0.0.1:6379")
        );
        assert_eq!(
            StoreConfig::new(StoreKind::Memcached),
            StoreConfig::memcached(["127.0.0.1:11211"])
        );
        assert_eq!(
            StoreConfig::new(StoreKind::MongoDb),
            StoreConfig::MongoDb {
                uri: "mongodb://127.0.0.1:27017".to_owned(),
                db: "flask_session".to_owned(),
                collection: "sessions".to_owned(),
            }
        );
        assert_eq!(
            StoreConfig::sql("sqlite::memory:"),
            StoreConfig::Sql {
                url: Some("sqlite::memory:".to_owned()),
                table: "sessions".to_owned(),
            }
        );
    }
}
