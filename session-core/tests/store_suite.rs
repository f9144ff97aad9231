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
