//! Operator tasks on a store, outside any request: count the sessions,
//! show one for support staff, end a user's sessions, purge the expired
//! ones, and copy every live session to another store. The `session-admin`
//! binary (session-actix's feature `admin`) is a command line over this
//! module.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use session_core::{SessionConfig, admin::Admin};
//!
//! let admin = Admin::open(&SessionConfig::from_env()?).await?;
//! let counts = admin.count(|_| {}).await?;
//! println!("{} sessions, {} users with an index", counts.sessions, counts.users);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::keyspace::RecordKind;
use crate::store::migrating::{Copied, LOCK_SUFFIX, Migrating, lock_ttl_for};
use crate::store::{Backend, SessionStore, StoreError};
use crate::users::UserIndex;
use crate::{ConfigError, SessionConfig, StoreKey};
use serde::Serialize;

use crate::engine::{Engine, Sessions, Store};

/// How many copies a migration runs at once.
const COPIES_IN_FLIGHT: usize = 32;

/// The store a [`SessionConfig`] names, with the settings the middleware
/// would run on it: the same ids, key prefix, signing and codec.
pub struct Admin {
    engine: Arc<Engine>,
    lifetime: Duration,
    /// `SESSION_STORE_TIMEOUT`: each session's move is cut at it.
    store_timeout: Duration,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("key_prefix", &self.engine.settings.keys.prefix())
            .finish_non_exhaustive()
    }
}

/// What went wrong in an [`Admin`] task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The configuration is invalid, or its store cannot be opened.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store keeps nothing on the server (`SESSION_TYPE=cookie`).
    #[error("SESSION_TYPE=cookie keeps each session in its cookie: there is no store to {0}")]
    NoStore(&'static str),
    /// Two stores of a migration disagree on a setting that decides what
    /// a store key or a value is.
    #[error(
        "{key} differs between the two stores ({from:?} and {to:?}): sessions would not be found after the move"
    )]
    Mismatch {
        /// The configuration key.
        key: &'static str,
        /// Its value for the source.
        from: String,
        /// Its value for the target.
        to: String,
    },
}

/// What [`Admin::count`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Live sessions.
    pub sessions: u64,
    /// Users' indexes of their sessions (one per user with a session
    /// bound to them, see [`Users`](crate::engine::Users)).
    pub users: u64,
    /// Notes a login leaves for a few minutes where the session it moved
    /// to a new id was, so that a logout in flight still ends it.
    pub login_notes: u64,
}

/// One session, as [`Admin::show`] gives it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Shown {
    /// The key the store keeps it under (the id's hash with
    /// `SESSION_HASH_IDS`).
    pub key: String,
    /// Seconds until it expires, if the store tells.
    pub expires_in_secs: Option<u64>,
    /// When it was created, in milliseconds since the epoch, if known.
    pub created_at_ms: Option<u64>,
    /// Its values, decoded; a value the codec cannot read is shown as the
    /// string `"<unreadable: N bytes>"`.
    pub values: BTreeMap<String, serde_json::Value>,
}

/// How a migration went so far, as [`Admin::migrate`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Migrated {
    /// Keys listed in the source (sessions and users' indexes).
    pub listed: u64,
    /// Copied to the target.
    pub copied: u64,
    /// Already in the target under the same key, left as they are there
    /// (a second run, or a session the app wrote there meanwhile).
    pub already_there: u64,
    /// Gone from the source (ended or expired) before they were copied.
    pub gone: u64,
    /// Failed to copy; see the errors handed to the progress callback.
    pub failed: u64,
}

impl Migrated {
    /// Keys dealt with so far, one way or another.
    pub fn done(&self) -> u64 {
        self.copied + self.already_there + self.gone + self.failed
    }
}

/// What a migration's progress callback is told.
#[derive(Debug)]
#[non_exhaustive]
pub enum MigrateEvent<'a> {
    /// The source is listed: this many keys to copy.
    Listed(u64),
    /// One key was dealt with; the counts so far.
    Progress(&'a Migrated),
    /// One key failed to copy.
    Failed {
        /// The key.
        key: &'a str,
        /// Why.
        error: &'a StoreError,
    },
}

impl Admin {
    /// Opens the store that `config` names, checking the configuration as
    /// the middleware does.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the key to fix, as
    /// the middleware (`SessionMiddleware::from_config`).
    pub async fn open(config: &SessionConfig) -> Result<Self, ConfigError> {
        let backend = crate::store::open(config).await?;
        Self::with_backend(backend, config)
    }

    /// An `Admin` on a store you opened yourself, with the settings of
    /// `config`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the key to fix.
    pub fn with_backend(backend: Backend, config: &SessionConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            engine: Arc::new(Engine::new(backend, config)?),
            lifetime: config.lifetime,
            store_timeout: config.store_timeout,
        })
    }

    /// The store, every call bounded by `SESSION_STORE_TIMEOUT` (a scan,
    /// page by page).
    #[cfg_attr(not(feature = "cookie"), allow(unused_variables))]
    fn store(&self, task: &'static str) -> Result<&Store, AdminError> {
        match &self.engine.sessions {
            Sessions::Store(store) => Ok(store),
            #[cfg(feature = "cookie")]
            Sessions::Cookie(_) => Err(AdminError::NoStore(task)),
        }
    }

    /// Every key under the store's prefix (sessions and users' indexes),
    /// each once; `listed` is told the running count after each page.
    ///
    /// # Errors
    ///
    /// The store's, or [`StoreError::Unsupported`] for a store that
    /// cannot list its sessions.
    pub async fn keys(&self, mut listed: impl FnMut(u64)) -> Result<Vec<StoreKey>, AdminError> {
        let store = self.store("list")?;
        let prefix = self.engine.settings.keys.prefix();
        let mut keys = crate::store::scan_all(store, prefix, |n| listed(n as u64)).await?;
        // A move lock (`SESSION_MIGRATE_FROM`) is no session.
        keys.retain(|key| !key.as_str().ends_with(LOCK_SUFFIX));
        Ok(keys)
    }

    /// Counts the live sessions and the users' indexes.
    ///
    /// # Errors
    ///
    /// As [`keys`](Self::keys).
    pub async fn count(&self, listed: impl FnMut(u64)) -> Result<Counts, AdminError> {
        let keys = &self.engine.settings.keys;
        let mut counts = Counts::default();
        for key in self.keys(listed).await? {
            match keys.record_kind(&key) {
                Some(RecordKind::UserIndex) => counts.users += 1,
                Some(RecordKind::MoveNote) => counts.login_notes += 1,
                _ => counts.sessions += 1,
            }
        }
        Ok(counts)
    }

    /// The session a cookie value names (as the browser holds it: signed
    /// with `SESSION_USE_SIGNER`), decoded; `None` if the value names no
    /// live session (expired, ended, or a forged or garbled value).
    ///
    /// # Errors
    ///
    /// The store's.
    pub async fn show(&self, cookie: &str) -> Result<Option<Shown>, AdminError> {
        let store = self.store("read")?;
        let settings = &self.engine.settings;
        let Some((id, _)) = crate::engine::parse_id(settings.signer.as_ref(), cookie.trim()) else {
            return Ok(None);
        };
        let key = settings.keys.session(&id);
        let Some(record) = store.load(&key).await? else {
            return Ok(None);
        };
        let codec = settings.codec;
        // Values sealed at rest open with the cookie's id.
        let mut opened = record.entries.clone();
        settings.at_rest.open_entries(&id, &mut opened);
        let values = record
            .entries
            .iter()
            .map(|(name, stored)| {
                let value = match opened.get(name) {
                    Some(bytes) => codec
                        .decode::<serde_json::Value>(bytes)
                        .unwrap_or_else(|_| {
                            serde_json::Value::String(format!(
                                "<unreadable: {} bytes>",
                                bytes.len()
                            ))
                        }),
                    None => serde_json::Value::String(format!(
                        "<sealed, does not open (sealed under another SECRET_KEY, or changed in the store): {} bytes>",
                        stored.len()
                    )),
                };
                (name.clone(), value)
            })
            .collect();
        Ok(Some(Shown {
            key: key.as_str().to_owned(),
            expires_in_secs: record.expires_at.map(|t| {
                t.duration_since(SystemTime::now())
                    .map_or(0, |d| d.as_secs())
            }),
            created_at_ms: record.created_at.map(crate::users::millis),
            values,
        }))
    }

    /// Ends every session bound to `user` (see [`Users`](crate::engine::Users));
    /// returns how many it ended.
    ///
    /// # Errors
    ///
    /// The store's; the sessions ended before it stay ended.
    pub async fn revoke_user(&self, user: &str) -> Result<usize, AdminError> {
        let store = self.store("revoke sessions in")?;
        let settings = &self.engine.settings;
        let index =
            UserIndex::new(store, &settings.keys, user, settings.codec).max(settings.max_per_user);
        Ok(index.revoke_all(None).await?)
    }

    /// Deletes the expired sessions now, on the stores that keep them until
    /// someone does; returns how many went (0 on the stores that drop them
    /// by themselves).
    ///
    /// # Errors
    ///
    /// The store's.
    pub async fn cleanup(&self) -> Result<u64, AdminError> {
        Ok(self.store("clean")?.purge_expired().await?)
    }

    /// Moves every live session (and user index) of this store to `to`,
    /// under the same key and with the lifetime it has left, so users stay
    /// logged in: each leaves this store once `to` holds it.
    ///
    /// Run it only while the app runs on `to` with this store as its
    /// `SESSION_MIGRATE_FROM` ([`Migrating`]), and give it `to` opened
    /// without that setting: each session moves as the app's requests move
    /// it, under its move lock, so that no logout is undone, and `create`
    /// never replaces a session the app already moved or wrote there.
    /// Needs the same `SESSION_KEY_PREFIX`, `SESSION_HASH_IDS` and
    /// `SESSION_SERIALIZATION_FORMAT` on both sides.
    ///
    /// # Errors
    ///
    /// [`AdminError::Mismatch`] before anything is copied, and the source
    /// store's failure to list its sessions. Failures to copy one session
    /// are counted in [`Migrated::failed`] and reported to `progress`.
    pub async fn migrate(
        &self,
        to: &Admin,
        mut progress: impl FnMut(MigrateEvent<'_>),
    ) -> Result<Migrated, AdminError> {
        let (a, b) = (&self.engine.settings, &to.engine.settings);
        let settings = [
            (
                "SESSION_KEY_PREFIX",
                a.keys.prefix().to_owned(),
                b.keys.prefix().to_owned(),
            ),
            (
                "SESSION_HASH_IDS",
                a.keys.hash_ids().to_string(),
                b.keys.hash_ids().to_string(),
            ),
            (
                "SESSION_SERIALIZATION_FORMAT",
                format!("{:?}", a.codec),
                format!("{:?}", b.codec),
            ),
        ];
        if let Some((key, from, to)) = settings.into_iter().find(|(_, from, to)| from != to) {
            return Err(AdminError::Mismatch { key, from, to });
        }
        // Each session moves as a request of an app running with
        // SESSION_MIGRATE_FROM would move it: under its move lock, so that
        // a logout through that app cannot be undone by the move.
        let moving = Arc::new(
            Migrating::new(
                to.store("move to")?.clone(),
                self.store("move from")?.clone(),
            )
            .lifetime(self.lifetime)
            .lock_ttl(lock_ttl_for(to.store_timeout)),
        );
        let keys = self.keys(|_| {}).await?;
        let mut migrated = Migrated {
            listed: keys.len() as u64,
            ..Migrated::default()
        };
        progress(MigrateEvent::Listed(migrated.listed));
        let mut copies = tokio::task::JoinSet::new();
        let mut keys = keys.into_iter();
        loop {
            while copies.len() < COPIES_IN_FLIGHT
                && let Some(key) = keys.next()
            {
                let moving = moving.clone();
                let timeout = to.store_timeout;
                copies.spawn(async move {
                    // Cut at the timeout, as the app's calls are, so that
                    // the lock outlives the move (`lock_ttl_for`).
                    let copied = tokio::time::timeout(timeout, moving.copy(&key))
                        .await
                        .unwrap_or_else(|_| {
                            Err(StoreError::backend(format!(
                                "the move took over {timeout:?}"
                            )))
                        });
                    (key, copied)
                });
            }
            let Some(done) = copies.join_next().await else {
                break;
            };
            let (key, copied) = done.map_err(StoreError::backend)?;
            match copied {
                Ok(Copied::Copied) => migrated.copied += 1,
                Ok(Copied::AlreadyThere) => migrated.already_there += 1,
                Ok(_) => migrated.gone += 1,
                Err(error) => {
                    migrated.failed += 1;
                    progress(MigrateEvent::Failed {
                        key: key.as_str(),
                        error: &error,
                    });
                }
            }
            progress(MigrateEvent::Progress(&migrated));
        }
        Ok(migrated)
    }
}
