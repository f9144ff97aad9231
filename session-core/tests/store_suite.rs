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
