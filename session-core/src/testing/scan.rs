//! Listing sessions: `scan` and `purge_expired`.

use super::*;

/// Every key `scan` lists under `prefix`, page after page, as a set (a
/// store may list a key twice). Panics on a scan that does not end.
pub async fn scan_all<S: SessionStore>(store: &S, prefix: &str) -> Vec<String> {
    let mut pages = 0;
    let keys = crate::store::scan_all(store, prefix, |_| {
        pages += 1;
        assert!(pages <= 100_000, "scan did not end");
    })
    .await
    .expect("scan failed (or made no progress)");
    keys.into_iter().map(|k| k.as_str().to_owned()).collect()
}

/// `scan` lists the live sessions under its prefix and nothing else: not
/// another prefix's, not a deleted or taken one, not an expired one; and
/// `purge_expired` leaves every live session in place.
pub async fn scan_lists_each_live_session_under_its_prefix<S: SessionStore>(store: Arc<S>) {
    let prefix = unique_prefix();
    let key = |n: u32| StoreKey::from_raw(format!("{prefix}{n:02}"));
    let other = StoreKey::from_raw(format!("{}00", unique_prefix()));
    for n in 0..6 {
        let ttl = if n == 5 { SHORT } else { LONG };
        assert!(
            store
                .create(&key(n), &record(&[("a", "1")]), ttl)
                .await
                .unwrap()
        );
    }
    assert!(
        store
            .create(&other, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    store.delete(&key(3)).await.unwrap();
    store.take(&key(4)).await.unwrap();
    let live: Vec<String> = [0, 1, 2].map(|n| key(n).as_str().to_owned()).into();
    let mut before = live.clone();
    before.push(key(5).as_str().to_owned());
    assert_eq!(
        scan_all(&*store, &prefix).await,
        before,
        "scan listed the wrong keys"
    );

    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        scan_all(&*store, &prefix).await,
        live,
        "scan listed an expired session"
    );
    store.purge_expired().await.expect("purge_expired failed");
    assert_eq!(
        scan_all(&*store, &prefix).await,
        live,
        "purge_expired removed a live session"
    );
    for n in 0..3 {
        assert_eq!(
            entries(&*store, &key(n)).await,
            Some(record(&[("a", "1")]).entries),
            "purge_expired changed a live session"
        );
    }
    let other_prefix = other.as_str().trim_end_matches("00");
    assert_eq!(
        scan_all(&*store, other_prefix).await,
        vec![other.as_str().to_owned()]
    );
}

/// A scan over more sessions than one page holds lists each of them.
pub async fn scan_pages_through_many_sessions<S: SessionStore>(store: Arc<S>) {
    // More than a page of every store, fewer than the file store keeps
    // by default (500).
    const SESSIONS: usize = 450;
    let prefix = unique_prefix();
    let keys: Vec<String> = (0..SESSIONS).map(|n| format!("{prefix}{n:04}")).collect();
    let mut writes = tokio::task::JoinSet::new();
    for chunk in keys.chunks(SESSIONS / 8 + 1) {
        let (store, chunk) = (Arc::clone(&store), chunk.to_vec());
        writes.spawn(async move {
            for key in chunk {
                let key = StoreKey::from_raw(key);
                assert!(
                    store
                        .create(&key, &record(&[("a", "1")]), LONG)
                        .await
                        .unwrap()
                );
            }
        });
    }
    while let Some(done) = writes.join_next().await {
        done.expect("a writer panicked");
    }
    assert_eq!(scan_all(&*store, &prefix).await, keys);
}

// ---- A user's sessions (`crate::users`), kept with the store's own calls.
