//! The MongoDB store against a MongoDB-compatible server (SecantusDB,
//! started by `scripts/services.sh` on 127.0.0.1:27017): the acceptance
//! suite, the TTL index, the document layout, keys with dots and dollars,
//! the size limit as the server computes it, documents of the previous
//! layout, and a 31-day lifetime.

use std::time::{Duration, SystemTime};

use session_core::store::mongodb::MongoStore;
use session_core::store::mongodb::mongodb::bson::spec::BinarySubtype;
use session_core::store::mongodb::mongodb::bson::{Binary, Bson, DateTime, doc};
use session_core::store::{Applied, ChangeSet, Record, SessionStore};
use session_core::testing::{record, unique_key};

const URI: &str = "mongodb://127.0.0.1:27017/?directConnection=true";
const DB: &str = "session_tests";

async fn connect(collection: &str) -> MongoStore {
    MongoStore::builder(URI)
        .database(DB)
        .collection(collection)
        .build()
        .await
        .unwrap_or_else(|e| panic!("{URI} must be up (run scripts/services.sh): {e}"))
}

mod suite {
    session_core::store_suite!(super::connect("suite_sessions"));
}

#[tokio::test]
async fn the_ttl_index_exists() {
    let store = connect("ttl_sessions").await;
    let names = store.collection().list_index_names().await.unwrap();
    assert!(names.contains(&"expires_at_1".to_owned()), "{names:?}");
    let mut cursor = store.collection().list_indexes().await.unwrap();
    let mut found = false;
    while cursor.advance().await.unwrap() {
        let index = cursor.deserialize_current().unwrap();
        if index.keys == doc! { "expires_at": 1 } {
            let options = index.options.expect("TTL options");
            assert_eq!(options.expire_after, Some(Duration::ZERO));
            found = true;
        }
    }
    assert!(found, "no index on expires_at");
    // Building again on an existing collection is fine.
    connect("ttl_sessions").await;
}

#[tokio::test]
async fn a_session_is_a_document_of_binaries() {
    let store = connect("layout_sessions").await;
    let key = unique_key("mongo-layout");
    let created = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
    let mut rec = Record {
        created_at: Some(created),
        ..record(&[("name", "\"nick\"")])
    };
    rec.entries
        .insert("cart.items".into(), vec![0u8, 255].into());
    store
        .create(&key, &rec, Duration::from_secs(3600))
        .await
        .unwrap();
    let document = store
        .collection()
        .find_one(doc! { "_id": key.as_str() })
        .await
        .unwrap()
        .expect("the document");
    let data = document.get_document("data").unwrap();
    let Some(Bson::Binary(name)) = data.get("name") else {
        panic!("{data:?}")
    };
    assert_eq!(name.bytes, b"\"nick\"");
    let Some(Bson::Binary(cart)) = data.get("cart%2Eitems") else {
        panic!("{data:?}")
    };
    assert_eq!(cart.bytes, [0, 255]);
    let expires = document
        .get_datetime("expires_at")
        .unwrap()
        .to_system_time();
    let left = expires.duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(3590), "{left:?}");
    assert_eq!(
        document
            .get_datetime("created_at")
            .unwrap()
            .to_system_time(),
        created,
        "created_at is a BSON date"
    );
    // Removing the last keys deletes the document.
    let changes = ChangeSet {
        remove: vec!["name".into(), "cart.items".into()],
        ..ChangeSet::default()
    };
    assert_eq!(
        store
            .apply(&key, &changes, Duration::from_secs(60))
            .await
            .unwrap(),
        Applied::Deleted
    );
    let left = store
        .collection()
        .count_documents(doc! { "_id": key.as_str() })
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn keys_with_dots_and_dollars_round_trip() {
    let store = connect("suite_sessions").await;
    let key = unique_key("mongo-keys");
    let odd = [
        "a.b",
        "$set",
        "$",
        ".",
        "..",
        "%",
        "%2E",
        "",
        "x.$y.%z",
        "nul\0byte",
    ];
    let rec = Record::from(
        odd.iter()
            .enumerate()
            .map(|(i, k)| ((*k).to_owned(), bytes::Bytes::from(i.to_string())))
            .collect::<std::collections::HashMap<_, _>>(),
    );
    let ttl = Duration::from_secs(60);
    assert!(store.create(&key, &rec, ttl).await.unwrap());
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().entries,
        rec.entries
    );
    // Set and remove through field paths.
    let changes = ChangeSet {
        clear: false,
        set: vec![
            ("a.b".into(), "new".into()),
            ("$new.key".into(), "1".into()),
        ],
        remove: vec!["$set".into(), "%".into(), "".into()],
        max_size: None,
    };
    assert_eq!(
        store.apply(&key, &changes, ttl).await.unwrap(),
        Applied::Done
    );
    let mut want = rec.entries.clone();
    changes.apply_to(&mut want);
    assert_eq!(store.load(&key).await.unwrap().unwrap().entries, want);
    // `.` in a key never reaches into another key's value.
    let nested = store
        .collection()
        .find_one(doc! { "_id": key.as_str() })
        .await
        .unwrap()
        .unwrap();
    let data = nested.get_document("data").unwrap();
    assert!(data.keys().all(|k| !k.contains('.') && !k.contains('$')));
    assert_eq!(store.take(&key).await.unwrap().unwrap().entries, want);
}

/// The size the server computes for the stored entries matches
/// `ChangeSet::size_after` to the byte, escaped field names included.
#[tokio::test]
async fn max_size_counts_keys_as_they_are_not_as_stored() {
    let store = connect("suite_sessions").await;
    let key = unique_key("mongo-size");
    let ttl = Duration::from_secs(60);
    let rec = Record::from(
        [
            ("a.b", "1"),
            ("%", "22"),
            ("", "333"),
            ("$x%y", "4444"),
            ("nul\0.", "55555"),
            ("ключ", "6"),
            ("gone", "7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), bytes::Bytes::from(v)))
        .collect::<std::collections::HashMap<_, _>>(),
    );
    assert!(store.create(&key, &rec, ttl).await.unwrap());
    let mut changes = ChangeSet {
        set: vec![("new.key".into(), "8".into()), ("%".into(), "9".into())],
        remove: vec!["gone".into()],
        ..ChangeSet::default()
    };
    let size = changes.size_after(&rec.entries);
    changes.max_size = Some(size - 1);
    assert_eq!(
        store.apply(&key, &changes, ttl).await.unwrap(),
        Applied::TooLarge { size }
    );
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().entries,
        rec.entries,
        "a refused change was written"
    );
    changes.max_size = Some(size);
    assert_eq!(
        store.apply(&key, &changes, ttl).await.unwrap(),
        Applied::Done,
        "a change that reaches the limit exactly was refused"
    );
    let stored = store.load(&key).await.unwrap().unwrap();
    assert_eq!(stored.size(), size);

    // Clearing counts only the new values.
    let clear = ChangeSet {
        clear: true,
        set: vec![("only".into(), "1".into())],
        max_size: Some(8 + 4 + 1),
        ..ChangeSet::default()
    };
    assert_eq!(store.apply(&key, &clear, ttl).await.unwrap(), Applied::Done);
    // A missing session is gone, however large the change.
    store.delete(&key).await.unwrap();
    assert_eq!(
        store
            .apply(
                &key,
                &ChangeSet {
                    max_size: Some(0),
                    ..clear
                },
                ttl
            )
            .await
            .unwrap(),
        Applied::Gone
    );
}

/// A document written before `created_at` existed (the layout the previous
/// version wrote) loads with no creation time, and applies keep working.
#[tokio::test]
async fn documents_without_created_at_still_load() {
    let store = connect("suite_sessions").await;
    let key = unique_key("mongo-old");
    let expires = SystemTime::now() + Duration::from_secs(600);
    store
        .collection()
        .insert_one(doc! {
            "_id": key.as_str(),
            "data": { "name": Binary { subtype: BinarySubtype::Generic, bytes: b"\"nick\"".to_vec() } },
            "expires_at": DateTime::from_system_time(expires),
        })
        .await
        .unwrap();
    let loaded = store
        .load(&key)
        .await
        .unwrap()
        .expect("an old document loads");
    assert_eq!(loaded.entries, record(&[("name", "\"nick\"")]).entries);
    assert_eq!(loaded.created_at, None);
    let ttl = Duration::from_secs(60);
    let changes = ChangeSet {
        set: vec![("visits".into(), "1".into())],
        max_size: Some(1000),
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&key, &changes, ttl).await.unwrap(),
        Applied::Done
    );
    assert_eq!(store.touch(&key, ttl).await.unwrap(), Applied::Done);
    let taken = store.take(&key).await.unwrap().expect("still live");
    assert_eq!(
        taken.entries,
        record(&[("name", "\"nick\""), ("visits", "1")]).entries
    );
    assert_eq!(taken.created_at, None);
}

#[tokio::test]
async fn a_31_day_lifetime_is_kept() {
    let store = connect("suite_sessions").await;
    let key = unique_key("mongo-31d");
    let lifetime = Duration::from_secs(31 * 24 * 3600);
    store
        .create(&key, &record(&[("a", "1")]), lifetime)
        .await
        .unwrap();
    let left = store
        .load(&key)
        .await
        .unwrap()
        .unwrap()
        .expires_at
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(
        left > lifetime - Duration::from_secs(10) && left <= lifetime,
        "{left:?}"
    );
    assert_eq!(store.touch(&key, lifetime).await.unwrap(), Applied::Done);
}

/// The server's TTL sweep removes an expired document by itself (the store
/// filters expired ones on every read anyway).
#[tokio::test]
async fn the_server_sweeps_expired_sessions() {
    let store = connect("sweep_sessions").await;
    let key = unique_key("mongo-sweep");
    store
        .create(&key, &record(&[("a", "1")]), Duration::from_secs(1))
        .await
        .unwrap();
    let count = || async {
        store
            .collection()
            .count_documents(doc! { "_id": key.as_str() })
            .await
            .unwrap()
    };
    assert_eq!(count().await, 1);
    // SecantusDB here sweeps every second; mongod every 60 seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while count().await == 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the TTL index never removed the document"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (A thousand: SecantusDB takes seconds per update of five thousand paths.)
#[tokio::test]
async fn a_thousand_keys_in_one_change_set() {
    let store = connect("suite_sessions").await;
    let key = unique_key("mongo-wide");
    let ttl = Duration::from_secs(60);
    store
        .create(&key, &record(&[("seed", "0")]), ttl)
        .await
        .unwrap();
    let changes = ChangeSet {
        set: (0..1000)
            .map(|i| (format!("k{i}"), format!("{i}").into()))
            .collect(),
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&key, &changes, ttl).await.unwrap(),
        Applied::Done
    );
    let removes = ChangeSet {
        remove: (0..800).map(|i| format!("k{i}")).collect(),
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&key, &removes, ttl).await.unwrap(),
        Applied::Done
    );
    let entries = store.load(&key).await.unwrap().unwrap().entries;
    assert_eq!(entries.len(), 201);
}

/// Nothing listening: the build gives up after the timeout (the driver
/// keeps trying to reach a server until then), and says why. (A server
/// that never answers is in `tests/timeouts.rs`.)
#[tokio::test]
async fn an_unreachable_server_fails_the_build_in_time() {
    let timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let error = MongoStore::builder("mongodb://127.0.0.1:1/?directConnection=true")
        .timeout(timeout)
        .build()
        .await
        .expect_err("nothing listens on port 1");
    let took = started.elapsed();
    assert!(took < 2 * timeout, "{took:?}");
    let message = error.to_string();
    assert!(
        message.contains("Server selection timeout") && message.contains("Connection refused"),
        "{message}"
    );
}

/// `SESSION_TYPE=mongodb` opens the store with the configured database and
/// collection; a server that does not answer is an error naming
/// `SESSION_MONGODB`, without the password.
#[tokio::test]
async fn open_from_config() {
    use session_core::SessionConfig;
    use session_core::store::{Backend, open};

    let config = SessionConfig::from_source([
        ("SESSION_TYPE", "mongodb"),
        ("SESSION_MONGODB", URI),
        ("SESSION_MONGODB_DB", DB),
        ("SESSION_MONGODB_COLLECT", "open_sessions"),
    ])
    .unwrap();
    let Backend::Store(store) = open(&config).await.unwrap() else {
        panic!("not a server-side store")
    };
    let key = unique_key("mongo-open");
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), Duration::from_secs(60))
            .await
            .unwrap()
    );
    let direct = connect("open_sessions").await;
    assert_eq!(
        direct.load(&key).await.unwrap().map(|r| r.entries),
        Some(record(&[("a", "1")]).entries)
    );

    let config = SessionConfig::from_source([
        ("SESSION_TYPE", "mongodb"),
        (
            "SESSION_MONGODB",
            "mongodb://app:hunter2@127.0.0.1:1/?directConnection=true",
        ),
        ("SESSION_STORE_TIMEOUT", "1"),
    ])
    .unwrap();
    let error = open(&config).await.unwrap_err();
    assert_eq!(error.key(), "SESSION_MONGODB", "{error}");
    let message = error.to_string();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(
        message.contains("cannot use") && message.contains("Server selection timeout"),
        "{message}"
    );
}
