//! The acceptance suite against the stores built into session-core.

mod memory {
    session_core::store_suite!(async { session_core::store::memory::MemoryStore::new() });
}

/// A store behind the timeout wrapper keeps every contract of the store.
mod timeout {
    session_core::store_suite!(async {
        session_core::store::Timeout::new(
            session_core::store::memory::MemoryStore::new(),
            std::time::Duration::from_secs(5),
        )
    });
}

/// A near cache keeps every contract of the store behind it.
mod near_cache_memory {
    session_core::store_suite!(async {
        session_core::store::NearCache::local(session_core::store::memory::MemoryStore::new(), 1000)
    });
}

/// So does a near cache too small to hold the suite's sessions: every
/// write evicts.
mod near_cache_of_one {
    session_core::store_suite!(async {
        session_core::store::NearCache::local(session_core::store::memory::MemoryStore::new(), 1)
    });
}

mod near_cache_filesystem {
    session_core::store_suite!(async {
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        session_core::store::NearCache::local(
            session_core::store::filesystem::FileStore::builder(dir)
                .build()
                .expect("a file store"),
            1000,
        )
    });
}

mod filesystem {
    session_core::store_suite!(async {
        // Each test gets its own directory, kept after the test (the store
        // must not outlive it).
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        session_core::store::filesystem::FileStore::builder(dir)
            .build()
            .expect("a file store")
    });
}

mod null {
    use session_core::StoreError;
    use session_core::store::SessionStore;
    use session_core::store::null::NullStore;
    use session_core::testing::{record, unique_key};

    #[tokio::test]
    async fn reads_are_empty_and_writes_say_no_store_is_configured() {
        let key = unique_key("null");
        assert_eq!(NullStore.load(&key).await.unwrap(), None);
        let err = NullStore
            .create(
                &key,
                &record(&[("a", "1")]),
                std::time::Duration::from_secs(1),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotConfigured));
        assert!(
            err.to_string().contains("no session store is configured"),
            "{err}"
        );
        NullStore.delete(&key).await.unwrap();
    }
}

/// A store a site is moving to, with the store it moves from behind it
/// (`SESSION_MIGRATE_FROM`): every contract holds.
mod migrating_to_an_empty_store {
    session_core::store_suite!(async {
        session_core::store::Migrating::new(
            session_core::store::memory::MemoryStore::new(),
            session_core::store::memory::MemoryStore::new(),
        )
    });
}

/// The same, with every session the suite makes still in the old store
/// (made there, as the app left it before the move): each call copies
/// it on first use, and every contract still holds, "apply never
/// creates" and "take loses no concurrent apply" included.
mod migrating_from_the_old_store {
    use std::time::Duration;

    use session_core::StoreKey;
    use session_core::store::filesystem::FileStore;
    use session_core::store::memory::MemoryStore;
    use session_core::store::{
        Applied, ChangeSet, Migrating, Record, ScanPage, SessionStore, StoreError,
    };

    /// `Migrating` whose `create` writes to the old store.
    struct InOld {
        moving: Migrating<MemoryStore, FileStore>,
    }

    impl SessionStore for InOld {
        async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
            self.moving.load(key).await
        }
        async fn create(
            &self,
            key: &StoreKey,
            record: &Record,
            ttl: Duration,
        ) -> Result<bool, StoreError> {
            if self.moving.new_store().load(key).await?.is_some() {
                return Ok(false);
            }
            self.moving.old_store().create(key, record, ttl).await
        }
        async fn apply(
            &self,
            key: &StoreKey,
            changes: &ChangeSet,
            ttl: Duration,
        ) -> Result<Applied, StoreError> {
            self.moving.apply(key, changes, ttl).await
        }
        async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
            self.moving.touch(key, ttl).await
        }
        async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
            self.moving.delete(key).await
        }
        async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
            self.moving.take(key).await
        }
        async fn scan(&self, prefix: &str, cursor: Option<&str>) -> Result<ScanPage, StoreError> {
            self.moving.scan(prefix, cursor).await
        }
        async fn purge_expired(&self) -> Result<u64, StoreError> {
            self.moving.purge_expired().await
        }
    }

    session_core::store_suite!(async {
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        InOld {
            moving: Migrating::new(
                MemoryStore::new(),
                FileStore::builder(dir).build().expect("a file store"),
            ),
        }
    });
}

/// `SESSION_MIGRATE_FROM` from configuration: the store `open` makes
/// serves the old store's sessions, and ends them in both.
#[tokio::test]
async fn open_with_migrate_from_reads_through_to_the_old_store() {
    use std::io::Write as _;
    use std::time::Duration;

    use session_core::store::filesystem::FileStore;
    use session_core::store::{Backend, SessionStore};
    use session_core::testing::{record, unique_key};

    let dir = tempfile::tempdir().unwrap();
    let mut old = tempfile::NamedTempFile::new().unwrap();
    writeln!(old, "SESSION_TYPE=filesystem").unwrap();
    writeln!(old, "SESSION_FILE_DIR={}", dir.path().display()).unwrap();
    let config = session_core::SessionConfig::from_source([
        ("SESSION_TYPE", "memory"),
        ("SESSION_MIGRATE_FROM", old.path().to_str().unwrap()),
    ])
    .unwrap();
    let files = FileStore::builder(dir.path()).build().unwrap();
    let key = unique_key("opened");
    files
        .create(&key, &record(&[("user", "ann")]), Duration::from_secs(600))
        .await
        .unwrap();
    let Backend::Store(store) = session_core::store::open(&config).await.unwrap() else {
        panic!("a server-side store");
    };
    assert_eq!(store.kind(), "memory");
    let loaded = store.load(&key).await.unwrap().expect("read through");
    assert_eq!(loaded.entries, record(&[("user", "ann")]).entries);
    store.delete(&key).await.unwrap();
    assert_eq!(
        files.load(&key).await.unwrap(),
        None,
        "ended in the old store"
    );
    assert_eq!(store.load(&key).await.unwrap(), None);
}
