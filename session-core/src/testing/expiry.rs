//! Lifetimes: expired sessions are gone, and `touch` and `load` report and extend the expiry.

use super::*;

/// An expired session is missing for every method, and its key is free.
pub async fn expired_sessions_are_gone<S: SessionStore>(store: Arc<S>) {
    let keys: Vec<_> = (0..4).map(|_| unique_key("expiry")).collect();
    for key in &keys {
        store
            .create(key, &record(&[("a", "1")]), SHORT)
            .await
            .unwrap();
    }
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        entries(&*store, &keys[0]).await,
        None,
        "load returned an expired session"
    );
    assert_eq!(
        store
            .apply(&keys[1], &set(&[("b", "2")]), LONG)
            .await
            .unwrap(),
        Applied::Gone,
        "apply revived an expired session"
    );
    assert_eq!(entries(&*store, &keys[1]).await, None);
    assert_eq!(store.touch(&keys[2], LONG).await.unwrap(), Applied::Gone);
    assert!(
        store
            .create(&keys[3], &record(&[("c", "3")]), LONG)
            .await
            .unwrap(),
        "an expired session still held its key"
    );
    assert_eq!(
        entries(&*store, &keys[3]).await,
        Some(record(&[("c", "3")]).entries)
    );
}

/// `touch` and `apply` make the session live for the new lifetime from
/// now: past the old one if it was shorter, and not longer than the new one
/// if it was longer (`precision`: how coarse the store's times are).
pub async fn touch_extends_the_lifetime<S: SessionStore>(store: Arc<S>, precision: Duration) {
    let short_touched = unique_key("extend-touch");
    let short_applied = unique_key("extend-apply");
    let long_touched = unique_key("renew-touch");
    let long_applied = unique_key("renew-apply");
    for (key, ttl) in [
        (&short_touched, SHORT),
        (&short_applied, SHORT),
        (&long_touched, LONG),
        (&long_applied, LONG),
    ] {
        assert!(
            store
                .create(key, &record(&[("a", "1")]), ttl)
                .await
                .unwrap()
        );
    }
    let from = SystemTime::now();
    for key in [&short_touched, &long_touched] {
        assert_eq!(store.touch(key, EXTENDED).await.unwrap(), Applied::Done);
    }
    for key in [&short_applied, &long_applied] {
        assert_eq!(
            store
                .apply(key, &set(&[("b", "2")]), EXTENDED)
                .await
                .unwrap(),
            Applied::Done
        );
    }
    let mut reported = Vec::new();
    for key in [&short_touched, &long_touched, &short_applied, &long_applied] {
        reported.push(store.load(key).await.unwrap().expect("live").expires_at);
    }
    let to = SystemTime::now();
    let what = [
        "touch after a short lifetime",
        "touch after a long lifetime",
        "apply after a short lifetime",
        "apply after a long lifetime",
    ];
    for (reported, what) in reported.into_iter().zip(what) {
        assert_expires(reported, (from, to), EXTENDED, precision, what);
    }
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        entries(&*store, &short_touched).await,
        Some(record(&[("a", "1")]).entries),
        "touch did not extend"
    );
    assert_eq!(
        entries(&*store, &short_applied).await,
        Some(record(&[("a", "1"), ("b", "2")]).entries),
        "apply did not extend"
    );
}

/// `load` reports when the session expires: the lifetime `create` gave it,
/// from then (`precision`: how coarse the store's times are).
pub async fn load_reports_expiry<S: SessionStore>(store: Arc<S>, precision: Duration) {
    let key = unique_key("expires-at");
    let from = SystemTime::now();
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    let loaded = store.load(&key).await.unwrap().expect("just created");
    let to = SystemTime::now();
    assert_expires(loaded.expires_at, (from, to), LONG, precision, "create");
}
