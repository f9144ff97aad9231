//! The acceptance suite every store runs: one case per contract of
//! [`SessionStore`].
//!
//! Run it against your store with [`store_suite!`](crate::store_suite), which
//! generates one test per case:
//!
//! ```
//! mod memory {
//!     session_core::store_suite!(async { session_core::store::memory::MemoryStore::new() });
//! }
//! ```
//!
//! The cases use keys under a random prefix, so they can share a server
//! with other tests and with each other. Expiry is checked with a one-second
//! lifetime (the finest that memcached keeps), so the suite takes a few
//! seconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::store::{Applied, ChangeSet, Record, SessionStore};
use crate::{SessionId, StoreKey};

#[doc(hidden)]
pub use tokio as __tokio;

const LONG: Duration = Duration::from_secs(600);
const SHORT: Duration = Duration::from_secs(1);
/// Comfortably past `SHORT`, for stores that expire on whole seconds.
const PAST_SHORT: Duration = Duration::from_millis(2200);

/// A key no other test uses.
pub fn unique_key(name: &str) -> StoreKey {
    StoreKey::new(&format!("suite:{name}:"), &SessionId::generate(), true)
}

/// A record of string entries.
pub fn record(pairs: &[(&str, &str)]) -> Record {
    Record::from(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v.as_bytes())))
            .collect::<HashMap<_, _>>(),
    )
}

fn set(pairs: &[(&str, &str)]) -> ChangeSet {
    ChangeSet {
        set: record(pairs).entries.into_iter().collect(),
        ..ChangeSet::default()
    }
}

async fn entries<S: SessionStore>(store: &S, key: &StoreKey) -> Option<HashMap<String, Bytes>> {
    store
        .load(key)
        .await
        .expect("load failed")
        .map(|r| r.entries)
}

/// Generates one test (on a two-thread tokio runtime) per case of the acceptance suite, for the
/// store that `$make` (an expression giving a future of the store) builds.
#[macro_export]
macro_rules! store_suite {
    ($make:expr) => {
        $crate::store_suite!(@cases $make;
            missing_session_is_none,
            create_then_load_round_trips,
            create_does_not_overwrite,
            apply_merges_key_by_key,
            apply_clear_then_set,
            apply_never_creates,
            apply_that_empties_deletes,
            take_returns_and_deletes,
            take_loses_no_concurrent_apply,
            touch_and_delete,
            expired_sessions_are_gone,
            touch_extends_the_lifetime,
            load_reports_expiry,
            concurrent_applies_to_different_keys_all_persist,
            delete_wins_over_concurrent_apply,
            keys_are_isolated,
            values_round_trip_byte_for_byte,
            created_at_survives_apply_touch_and_take,
            apply_past_max_size_writes_nothing,
            max_size_holds_for_the_merged_session,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::__tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a tokio runtime")
                    .block_on(async {
                        let store = $make.await;
                        $crate::testing::$case(::std::sync::Arc::new(store)).await;
                    });
            }
        )*
    };
}

/// A key that was never written loads as `None`.
pub async fn missing_session_is_none<S: SessionStore>(store: Arc<S>) {
    assert_eq!(entries(&*store, &unique_key("missing")).await, None);
}

/// What `create` stores, `load` returns.
pub async fn create_then_load_round_trips<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("create");
    let rec = record(&[("name", "\"nick\""), ("visits", "3")]);
    assert!(
        store.create(&key, &rec, LONG).await.unwrap(),
        "create on a free key"
    );
    assert_eq!(entries(&*store, &key).await, Some(rec.entries));
}

/// `create` on a live key writes nothing and returns false.
pub async fn create_does_not_overwrite<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("taken");
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    assert!(
        !store
            .create(&key, &record(&[("b", "2")]), LONG)
            .await
            .unwrap(),
        "create on a taken key must return false"
    );
    assert_eq!(
        entries(&*store, &key).await,
        Some(record(&[("a", "1")]).entries)
    );
}

/// `apply` sets and removes only the keys in the change set.
pub async fn apply_merges_key_by_key<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("merge");
    store
        .create(&key, &record(&[("a", "1"), ("b", "2"), ("c", "3")]), LONG)
        .await
        .unwrap();
    let changes = ChangeSet {
        clear: false,
        set: vec![
            ("b".into(), Bytes::from("20")),
            ("d".into(), Bytes::from("4")),
        ],
        remove: vec!["c".into(), "never-there".into()],
        max_size: None,
    };
    assert_eq!(
        store.apply(&key, &changes, LONG).await.unwrap(),
        Applied::Done
    );
    assert_eq!(
        entries(&*store, &key).await,
        Some(record(&[("a", "1"), ("b", "20"), ("d", "4")]).entries)
    );
}

/// `clear` drops every entry before the set is applied.
pub async fn apply_clear_then_set<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("clear");
    store
        .create(&key, &record(&[("a", "1"), ("b", "2")]), LONG)
        .await
        .unwrap();
    let changes = ChangeSet {
        clear: true,
        ..set(&[("c", "3")])
    };
    assert_eq!(
        store.apply(&key, &changes, LONG).await.unwrap(),
        Applied::Done
    );
    assert_eq!(
        entries(&*store, &key).await,
        Some(record(&[("c", "3")]).entries)
    );
}

/// `apply` on a missing session is `Gone` and creates nothing: logout is final.
pub async fn apply_never_creates<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("gone");
    assert_eq!(
        store.apply(&key, &set(&[("a", "1")]), LONG).await.unwrap(),
        Applied::Gone
    );
    assert_eq!(
        entries(&*store, &key).await,
        None,
        "apply re-created a session"
    );
    store
        .create(&key, &record(&[("a", "1")]), LONG)
        .await
        .unwrap();
    store.delete(&key).await.unwrap();
    assert_eq!(
        store.apply(&key, &set(&[("b", "2")]), LONG).await.unwrap(),
        Applied::Gone
    );
    assert_eq!(
        entries(&*store, &key).await,
        None,
        "apply revived a deleted session"
    );
}

/// A session left with no entries is deleted.
pub async fn apply_that_empties_deletes<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("empty");
    store
        .create(&key, &record(&[("a", "1")]), LONG)
        .await
        .unwrap();
    let changes = ChangeSet {
        remove: vec!["a".into()],
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&key, &changes, LONG).await.unwrap(),
        Applied::Deleted
    );
    assert_eq!(entries(&*store, &key).await, None);
    let key = unique_key("cleared");
    store
        .create(&key, &record(&[("a", "1")]), LONG)
        .await
        .unwrap();
    let clear = ChangeSet {
        clear: true,
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&key, &clear, LONG).await.unwrap(),
        Applied::Deleted
    );
    assert_eq!(entries(&*store, &key).await, None);
}

/// `take` returns the session and deletes it; a missing one is `None`.
pub async fn take_returns_and_deletes<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("take");
    assert_eq!(store.take(&key).await.unwrap(), None);
    store
        .create(&key, &record(&[("a", "1"), ("b", "2")]), LONG)
        .await
        .unwrap();
    let taken = store.take(&key).await.unwrap().expect("a live session");
    assert_eq!(taken.entries, record(&[("a", "1"), ("b", "2")]).entries);
    assert_eq!(entries(&*store, &key).await, None);
    assert_eq!(store.take(&key).await.unwrap(), None);
    assert_eq!(
        store.apply(&key, &set(&[("c", "3")]), LONG).await.unwrap(),
        Applied::Gone,
        "apply after take re-created the session"
    );
    let expired = unique_key("take-expired");
    store
        .create(&expired, &record(&[("a", "1")]), SHORT)
        .await
        .unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        store.take(&expired).await.unwrap(),
        None,
        "take returned an expired session"
    );
}

/// Applies racing a `take`: every apply that reported `Done` is in the
/// taken record; the others found the session gone.
pub async fn take_loses_no_concurrent_apply<S: SessionStore>(store: Arc<S>) {
    const WRITERS: usize = 8;
    for round in 0..10 {
        let key = unique_key("take-race");
        store
            .create(&key, &record(&[("seed", "0")]), LONG)
            .await
            .unwrap();
        let mut writers = tokio::task::JoinSet::new();
        for i in 0..WRITERS {
            let (store, key) = (Arc::clone(&store), key.clone());
            writers.spawn(async move {
                let applied = store
                    .apply(&key, &set(&[(&format!("k{i}"), "1")]), LONG)
                    .await
                    .unwrap();
                (i, applied)
            });
        }
        let taken = store
            .take(&key)
            .await
            .unwrap()
            .expect("the session was live");
        while let Some(result) = writers.join_next().await {
            let (i, applied) = result.unwrap();
            match applied {
                Applied::Done => assert!(
                    taken.entries.contains_key(&format!("k{i}")),
                    "round {round}: the write to k{i} was applied but not taken"
                ),
                Applied::Gone => {}
                other => panic!("a set without a limit cannot be {other:?}"),
            }
        }
        assert_eq!(
            entries(&*store, &key).await,
            None,
            "round {round}: take left the session"
        );
    }
}

/// `touch` reports whether the session exists; `delete` is idempotent.
pub async fn touch_and_delete<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("touch");
    assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Gone);
    store
        .create(&key, &record(&[("a", "1")]), LONG)
        .await
        .unwrap();
    assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Done);
    store.delete(&key).await.unwrap();
    assert_eq!(entries(&*store, &key).await, None);
    store
        .delete(&key)
        .await
        .expect("deleting a missing session is not an error");
    assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Gone);
}

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

/// `touch` and `apply` give the session a new lifetime.
pub async fn touch_extends_the_lifetime<S: SessionStore>(store: Arc<S>) {
    let touched = unique_key("extend-touch");
    let applied = unique_key("extend-apply");
    for key in [&touched, &applied] {
        store
            .create(key, &record(&[("a", "1")]), SHORT)
            .await
            .unwrap();
    }
    assert_eq!(store.touch(&touched, LONG).await.unwrap(), Applied::Done);
    assert_eq!(
        store
            .apply(&applied, &set(&[("b", "2")]), LONG)
            .await
            .unwrap(),
        Applied::Done
    );
    tokio::time::sleep(PAST_SHORT).await;
    assert!(
        entries(&*store, &touched).await.is_some(),
        "touch did not extend"
    );
    assert!(
        entries(&*store, &applied).await.is_some(),
        "apply did not extend"
    );
}

/// If a store reports when a session expires, the time is right.
pub async fn load_reports_expiry<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("expires-at");
    let before = SystemTime::now();
    store
        .create(&key, &record(&[("a", "1")]), LONG)
        .await
        .unwrap();
    let loaded = store.load(&key).await.unwrap().expect("just created");
    if let Some(at) = loaded.expires_at {
        let slack = Duration::from_secs(2);
        assert!(at + slack >= before + LONG, "expires too early: {at:?}");
        assert!(
            at <= SystemTime::now() + LONG + slack,
            "expires too late: {at:?}"
        );
    }
}

/// Many concurrent change sets to different keys of one session: none is lost.
pub async fn concurrent_applies_to_different_keys_all_persist<S: SessionStore>(store: Arc<S>) {
    const WRITERS: usize = 16;
    let key = unique_key("concurrent");
    store
        .create(&key, &record(&[("seed", "0")]), LONG)
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let (store, key) = (Arc::clone(&store), key.clone());
        tasks.spawn(async move {
            let changes = set(&[(&format!("k{i}"), &i.to_string())]);
            store.apply(&key, &changes, LONG).await.unwrap()
        });
    }
    while let Some(applied) = tasks.join_next().await {
        assert_eq!(applied.unwrap(), Applied::Done);
    }
    let got = entries(&*store, &key).await.expect("session vanished");
    for i in 0..WRITERS {
        assert_eq!(
            got.get(&format!("k{i}")).map(|v| &v[..]),
            Some(i.to_string().as_bytes()),
            "the write to k{i} was lost"
        );
    }
    assert_eq!(got.len(), WRITERS + 1);
}

/// A delete racing an apply: once both are done, the session is gone,
/// whichever ran first.
pub async fn delete_wins_over_concurrent_apply<S: SessionStore>(store: Arc<S>) {
    for round in 0..20 {
        let key = unique_key("logout-race");
        store
            .create(&key, &record(&[("user", "\"ann\"")]), LONG)
            .await
            .unwrap();
        let (s1, k1) = (Arc::clone(&store), key.clone());
        let writer =
            tokio::spawn(
                async move { s1.apply(&k1, &set(&[("cart", "[1]")]), LONG).await.unwrap() },
            );
        let (s2, k2) = (Arc::clone(&store), key.clone());
        let logout = tokio::spawn(async move { s2.delete(&k2).await.unwrap() });
        let _ = writer.await.unwrap();
        logout.await.unwrap();
        assert_eq!(
            entries(&*store, &key).await,
            None,
            "round {round}: a write in flight brought a deleted session back"
        );
    }
}

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
