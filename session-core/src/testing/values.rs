//! What a session holds: isolated keys, values byte for byte, the creation time, the size limit.

use super::*;

/// Sessions under different keys never see each other's data.
pub async fn keys_are_isolated<S: SessionStore>(store: Arc<S>) {
    let (a, b) = (unique_key("iso"), unique_key("iso"));
    store
        .create(&a, &record(&[("who", "a")]), LONG)
        .await
        .unwrap();
    store
        .create(&b, &record(&[("who", "b")]), LONG)
        .await
        .unwrap();
    let _ = store.apply(&a, &set(&[("x", "1")]), LONG).await.unwrap();
    store.delete(&b).await.unwrap();
    assert_eq!(
        entries(&*store, &a).await,
        Some(record(&[("who", "a"), ("x", "1")]).entries)
    );
    assert_eq!(entries(&*store, &b).await, None);
}

/// Binary values, empty values, unicode and odd keys, and a large value
/// come back unchanged.
pub async fn values_round_trip_byte_for_byte<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("bytes");
    let mut rec = Record::default();
    rec.entries.insert(
        "bin".into(),
        Bytes::from_static(&[0, 255, 1, 254, b'\n', 0]),
    );
    rec.entries.insert("empty".into(), Bytes::new());
    rec.entries
        .insert("ключ 🔑".into(), Bytes::from("\"значение\""));
    rec.entries
        .insert("with.dots:and$dollars".into(), Bytes::from("1"));
    rec.entries
        .insert("big".into(), Bytes::from(vec![b'x'; 100 * 1024]));
    store.create(&key, &rec, LONG).await.unwrap();
    assert_eq!(entries(&*store, &key).await, Some(rec.entries.clone()));
    let _ = store
        .apply(&key, &set(&[("later", "2")]), LONG)
        .await
        .unwrap();
    rec.entries.insert("later".into(), Bytes::from("2"));
    assert_eq!(entries(&*store, &key).await, Some(rec.entries));
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}

/// The creation time given to `create` comes back, to the millisecond,
/// from `load` after `apply` and `touch`, and from `take`; a record created
/// without one loads without one.
pub async fn created_at_survives_apply_touch_and_take<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("created-at");
    // Not now, so that a store that stamps its own time fails.
    let created = SystemTime::now() - Duration::from_secs(3 * 86_400 + 1234);
    let rec = Record {
        created_at: Some(created),
        ..record(&[("a", "1")])
    };
    assert!(store.create(&key, &rec, LONG).await.unwrap());
    let loaded = store.load(&key).await.unwrap().expect("just created");
    let got = loaded.created_at.expect("created_at was not kept");
    assert_eq!(millis(got), millis(created), "created_at changed");
    assert_eq!(
        store.apply(&key, &set(&[("b", "2")]), LONG).await.unwrap(),
        Applied::Done
    );
    assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Done);
    let loaded = store.load(&key).await.unwrap().expect("still live");
    assert_eq!(
        loaded.created_at.map(millis),
        Some(millis(created)),
        "apply or touch changed created_at"
    );
    let taken = store.take(&key).await.unwrap().expect("still live");
    assert_eq!(taken.created_at.map(millis), Some(millis(created)));

    let unknown = unique_key("created-at-none");
    assert!(
        store
            .create(&unknown, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    let loaded = store.load(&unknown).await.unwrap().expect("just created");
    assert_eq!(loaded.created_at, None, "a creation time was invented");
}

/// An `apply` whose merged result passes `max_size` writes nothing and says
/// `TooLarge` with the size the session would have had; one that stays
/// within it is written.
pub async fn apply_past_max_size_writes_nothing<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("too-large");
    let base = record(&[("a", "1111111111")]);
    store.create(&key, &base, LONG).await.unwrap();
    let base_size = base.size();
    let grow = set(&[("b", "2222222222")]);
    let grown = grow.size_after(&base.entries);
    assert_eq!(
        store
            .apply(
                &key,
                &ChangeSet {
                    max_size: Some(grown - 1),
                    ..grow.clone()
                },
                LONG
            )
            .await
            .unwrap(),
        Applied::TooLarge { size: grown }
    );
    assert_eq!(
        entries(&*store, &key).await,
        Some(base.entries.clone()),
        "a refused change was written"
    );
    // Replacing a value counts the new value only, and removes count too.
    let replace = ChangeSet {
        max_size: Some(base_size),
        remove: vec!["a".into()],
        ..set(&[("c", "3333333333")])
    };
    assert_eq!(
        store.apply(&key, &replace, LONG).await.unwrap(),
        Applied::Done,
        "a change that keeps the size within the limit was refused"
    );
    assert_eq!(
        store
            .apply(
                &key,
                &ChangeSet {
                    max_size: Some(grown),
                    ..grow
                },
                LONG
            )
            .await
            .unwrap(),
        Applied::Done
    );
    assert_eq!(
        entries(&*store, &key).await,
        Some(record(&[("b", "2222222222"), ("c", "3333333333")]).entries)
    );
}

/// Concurrent applies, each within the limit on its own: the merged
/// session never passes it, and the refused ones say `TooLarge`.
pub async fn max_size_holds_for_the_merged_session<S: SessionStore>(store: Arc<S>) {
    const WRITERS: usize = 8;
    let value = "v".repeat(1000);
    let key = unique_key("merged-limit");
    let seed = record(&[("seed", "0")]);
    store.create(&key, &seed, LONG).await.unwrap();
    let one = set(&[("k0", &value)]).size_after(&seed.entries) - seed.size();
    // Room for the seed and three values.
    let limit = seed.size() + 3 * one;
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let (store, key) = (Arc::clone(&store), key.clone());
        let changes = ChangeSet {
            max_size: Some(limit),
            ..set(&[(&format!("k{i}"), &value)])
        };
        writers.spawn(async move { store.apply(&key, &changes, LONG).await.unwrap() });
    }
    let (mut done, mut refused) = (0, 0);
    while let Some(result) = writers.join_next().await {
        match result.unwrap() {
            Applied::Done => done += 1,
            Applied::TooLarge { size } => {
                assert!(size > limit, "refused at {size}, within {limit}");
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let stored = store.load(&key).await.unwrap().expect("live");
    assert!(
        stored.size() <= limit,
        "the merged session is {} bytes, over its limit of {limit}",
        stored.size()
    );
    assert_eq!(done, 3, "exactly three values fit");
    assert_eq!(refused, WRITERS - 3);
    assert_eq!(stored.entries.len(), 4);
}

// ---- Listing and purging (`scan`, `purge_expired`), for operator tools.
