//! Flask-Session's layout ([`FlaskStore`]) on every store it is available
//! on, against the real servers `scripts/services.sh` starts: the
//! acceptance suite (less the creation time, which the layout does not
//! keep), and the layout's own cases: a session as Flask-Session writes it
//! loads, a change leaves the other values byte for byte, a value that is
//! not a map (pickle, garbage) reads as no session and is never written
//! over, and nothing Flask could not decode is ever written.

use std::time::Duration;

use bytes::Bytes;
use session_core::SessionId;
use session_core::StoreKey;
use session_core::flask::{Blob, BlobStore, FlaskFormat, FlaskStore};
use session_core::store::memcached::MemcachedStore;
use session_core::store::mongodb::{FlaskCollection, MongoStore};
use session_core::store::redis::RedisStore;
use session_core::store::sql::{FlaskTable, SqlStore};
use session_core::store::{Applied, ChangeSet, Record, SessionStore};

const REDIS: &str = "redis://127.0.0.1:6379";
const CLUSTER: &str = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002";
const SENTINEL: &str = "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster";
const MEMCACHED: &str = "127.0.0.1:11211";
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL: &str = "mysql://root@127.0.0.1:3306/test";
const MONGODB: &str = "mongodb://127.0.0.1:27017/?directConnection=true";
const LONG: Duration = Duration::from_secs(600);

async fn redis(url: &str) -> RedisStore {
    RedisStore::builder(url)
        .build()
        .await
        .unwrap_or_else(|e| panic!("{url} must be up (run scripts/services.sh): {e}"))
}

async fn memcached() -> MemcachedStore {
    let store = MemcachedStore::builder([MEMCACHED])
        .build()
        .expect("a memcached store");
    store
        .ping()
        .await
        .unwrap_or_else(|e| panic!("memcached must be up (run scripts/services.sh): {e}"));
    store
}

async fn sql(url: &str) -> FlaskTable {
    SqlStore::builder(url)
        .table("flask_suite")
        .build_flask_session()
        .await
        .unwrap_or_else(|e| panic!("{url} must be up (run scripts/services.sh): {e}"))
}

/// A SQLite file in a directory that lives as long as the test process.
fn sqlite_url() -> String {
    static DIR: std::sync::LazyLock<tempfile::TempDir> =
        std::sync::LazyLock::new(|| tempfile::tempdir().expect("a temporary directory"));
    format!(
        "sqlite://{}?mode=rwc",
        DIR.path().join("flask.db").display()
    )
}

async fn mongodb() -> FlaskCollection {
    MongoStore::builder(MONGODB)
        .database("session_tests")
        .collection("flask_suite")
        .build_flask_session()
        .await
        .unwrap_or_else(|e| panic!("{MONGODB} must be up (run scripts/services.sh): {e}"))
}

/// Generates the acceptance suite and the layout's cases for one store.
macro_rules! flask_cases {
    ($make:expr; $precision:expr) => {
        mod suite {
            session_core::store_suite!(
                async { session_core::flask::FlaskStore::new($make.await) };
                expiry_precision = $precision;
                without_creation_time;
                without_scan
            );
        }
        flask_cases!(@cases $make;
            a_session_flask_wrote_loads_and_keeps_its_other_values,
            json_sessions_keep_their_values_too,
            a_value_that_is_not_a_map_is_no_session_and_is_never_overwritten,
            values_flask_could_not_read_are_refused,
            a_session_made_here_is_a_plain_map,
            an_unreadable_record_of_this_crate_is_replaced,
            expired_values_are_missing_and_replaced,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::$case($make.await).await;
            }
        )*
    };
}

mod redis_single {
    flask_cases!(crate::redis(crate::REDIS); std::time::Duration::from_millis(5));
}

mod redis_cluster {
    flask_cases!(crate::redis(crate::CLUSTER); std::time::Duration::from_millis(5));
}

mod redis_sentinel {
    flask_cases!(crate::redis(crate::SENTINEL); std::time::Duration::from_millis(5));
}

mod memcached {
    // Memcached keeps expirations to the second.
    flask_cases!(crate::memcached(); std::time::Duration::from_millis(1250));
}

mod postgres {
    flask_cases!(crate::sql(crate::POSTGRES); std::time::Duration::from_millis(5));
}

mod mysql {
    // SQLAlchemy's `DATETIME` on MySQL keeps whole seconds.
    flask_cases!(crate::sql(crate::MYSQL); std::time::Duration::from_millis(1250));
}

mod sqlite {
    flask_cases!(crate::sql(&crate::sqlite_url()); std::time::Duration::from_millis(5));
}

mod mongodb {
    flask_cases!(crate::mongodb(); std::time::Duration::from_millis(5));
}

/// A fresh session key as Flask-Session names them.
fn session_key() -> StoreKey {
    StoreKey::from_raw(format!("session:{}", SessionId::generate().as_str()))
}

/// `{"_permanent": True, "name": "nick", "visits": 3, "when": <timestamp>,
/// "raw": b"\x00\xff", "ratio": 1.1}` as Flask-Session 0.8 writes it
/// (msgspec, insertion order).
fn flask_written() -> Vec<u8> {
    let mut v = vec![0x86];
    v.extend(b"\xaa_permanent\xc3");
    v.extend(b"\xa4name\xa4nick");
    v.extend(b"\xa6visits\x03");
    v.extend(b"\xa4when\xd7\xff\x1d\x6f\x28\x00\x6b\x08\x26\x57");
    v.extend(b"\xa3raw\xc4\x02\x00\xff");
    v.extend(b"\xa5ratio\xcb\x3f\xf1\x99\x99\x99\x99\x99\x9a");
    v
}

async fn raw<B: BlobStore>(blob: &B, key: &StoreKey) -> Option<Bytes> {
    blob.get(key).await.unwrap().map(|b| b.value)
}

/// The store over a clone of `blob`, to read the raw values beside it.
fn store<B: BlobStore + Clone>(blob: &B) -> FlaskStore {
    FlaskStore::new(blob.clone())
}

async fn a_session_flask_wrote_loads_and_keeps_its_other_values<B: BlobStore + Clone>(blob: B) {
    let key = session_key();
    let written = flask_written();
    assert!(blob.insert(&key, &written, LONG).await.unwrap());
    let store = store(&blob);
    let record = store
        .load(&key)
        .await
        .unwrap()
        .expect("Flask's session loads");
    assert_eq!(record.entries.len(), 6);
    assert_eq!(record.entries["name"], &b"\xa4nick"[..]);
    assert_eq!(record.entries["_permanent"], &b"\xc3"[..]);
    assert_eq!(record.created_at, None, "the layout keeps no creation time");
    // A change of one key: every other value stays as Flask wrote it, in
    // its place; the new key goes last, as in a Python dict.
    let changes = ChangeSet {
        set: vec![
            ("visits".into(), Bytes::from_static(b"\x04")),
            ("color".into(), Bytes::from_static(b"\xa4blue")),
        ],
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&key, &changes, LONG).await.unwrap(),
        Applied::Done
    );
    let mut expected = written.clone();
    expected[0] = 0x87;
    let visits = expected
        .windows(7)
        .position(|w| w == b"visits\x03")
        .unwrap();
    expected[visits + 6] = 0x04;
    expected.extend(b"\xa5color\xa4blue");
    assert_eq!(raw(&blob, &key).await.unwrap(), expected);
    // A refresh writes it back unchanged.
    assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Done);
    assert_eq!(raw(&blob, &key).await.unwrap(), expected);
    // A logout deletes it for Flask too.
    store.delete(&key).await.unwrap();
    assert_eq!(raw(&blob, &key).await, None);
}

async fn json_sessions_keep_their_values_too<B: BlobStore + Clone>(blob: B) {
    let key = session_key();
    let written = br#"{"_permanent":true,"cart":[1,2.50,"x"],"n":1}"#;
    assert!(blob.insert(&key, written, LONG).await.unwrap());
    let store = FlaskStore::new(blob.clone()).with_format(FlaskFormat::Json);
    let record = store.load(&key).await.unwrap().unwrap();
    assert_eq!(record.entries["cart"], r#"[1,2.50,"x"]"#);
    let changes = ChangeSet {
        set: vec![("n".into(), Bytes::from_static(b"2"))],
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&key, &changes, LONG).await.unwrap(),
        Applied::Done
    );
    assert_eq!(
        raw(&blob, &key).await.unwrap(),
        &br#"{"_permanent":true,"cart":[1,2.50,"x"],"n":2}"#[..]
    );
}

async fn a_value_that_is_not_a_map_is_no_session_and_is_never_overwritten<B: BlobStore + Clone>(
    blob: B,
) {
    let store = store(&blob);
    // A pickle (protocol 4) of {"a": 1}, and plain garbage.
    let pickled: &[u8] = b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.";
    for stored in [pickled, b"\xc1garbage", b"\x81\xa1a", b"[1, 2]"] {
        let key = session_key();
        assert!(blob.insert(&key, stored, LONG).await.unwrap());
        assert_eq!(store.load(&key).await.unwrap(), None, "{stored:?}");
        let changes = ChangeSet {
            set: vec![("a".into(), Bytes::from_static(b"\x02"))],
            ..ChangeSet::default()
        };
        assert_eq!(
            store.apply(&key, &changes, LONG).await.unwrap(),
            Applied::Gone
        );
        assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Gone);
        let fresh = Record::from(std::collections::HashMap::from([(
            "a".to_owned(),
            Bytes::from_static(b"\x01"),
        )]));
        assert!(!store.create(&key, &fresh, LONG).await.unwrap());
        assert_eq!(raw(&blob, &key).await.unwrap(), stored, "left as it was");
    }
}

async fn an_unreadable_record_of_this_crate_is_replaced<B: BlobStore + Clone>(blob: B) {
    // A user's index written in the other format (JSON here, read as
    // MessagePack) would block every login of that user if kept.
    let store = store(&blob);
    let key = StoreKey::from_raw(format!("session:user:{}", SessionId::generate().as_str()));
    assert!(blob.insert(&key, br#"{"h":"x"}"#, LONG).await.unwrap());
    let record = Record::from(std::collections::HashMap::from([(
        "h".to_owned(),
        Bytes::from_static(b"entry"),
    )]));
    assert!(store.create(&key, &record, LONG).await.unwrap());
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().entries,
        record.entries
    );
    assert!(
        !store.create(&key, &record, LONG).await.unwrap(),
        "a readable one is kept"
    );
}

async fn values_flask_could_not_read_are_refused<B: BlobStore + Clone>(blob: B) {
    let store = store(&blob);
    let key = session_key();
    // JSON text is not one MessagePack value (`"` is a fixint, then more).
    let bad = Record::from(std::collections::HashMap::from([(
        "name".to_owned(),
        Bytes::from_static(b"\"nick\""),
    )]));
    assert!(store.create(&key, &bad, LONG).await.is_err());
    assert_eq!(raw(&blob, &key).await, None, "nothing written");
    let good = Record::from(std::collections::HashMap::from([(
        "name".to_owned(),
        Bytes::from_static(b"\xa4nick"),
    )]));
    assert!(store.create(&key, &good, LONG).await.unwrap());
    let changes = ChangeSet {
        set: vec![("x".into(), Bytes::from_static(b"\x92\x01"))],
        ..ChangeSet::default()
    };
    assert!(store.apply(&key, &changes, LONG).await.is_err());
    assert_eq!(
        raw(&blob, &key).await.unwrap(),
        &b"\x81\xa4name\xa4nick"[..]
    );
}

async fn a_session_made_here_is_a_plain_map<B: BlobStore + Clone>(blob: B) {
    let store = store(&blob);
    let key = session_key();
    let record = Record::from(std::collections::HashMap::from([
        ("_permanent".to_owned(), Bytes::from_static(b"\xc3")),
        ("user".to_owned(), Bytes::from_static(b"\xa3ann")),
    ]));
    assert!(store.create(&key, &record, LONG).await.unwrap());
    assert_eq!(
        raw(&blob, &key).await.unwrap(),
        &b"\x82\xaa_permanent\xc3\xa4user\xa3ann"[..],
        "sorted by key, no wrapper"
    );
    // This crate's own records (a login's note, say) are maps too, their
    // values binary, so Flask never falls back to pickle on them.
    let note = StoreKey::from_raw(format!("{key}:moved"));
    let own = Record::from(std::collections::HashMap::from([(
        "session:x".to_owned(),
        Bytes::from_static(b"123"),
    )]));
    assert!(store.create(&note, &own, LONG).await.unwrap());
    assert_eq!(
        raw(&blob, &note).await.unwrap(),
        &b"\x81\xa9session:x\xc4\x03123"[..]
    );
    assert_eq!(
        store.load(&note).await.unwrap().unwrap().entries,
        own.entries
    );
}

async fn expired_values_are_missing_and_replaced<B: BlobStore + Clone>(blob: B) {
    let key = session_key();
    assert!(
        blob.insert(&key, b"\x81\xa1a\x01", Duration::from_secs(1))
            .await
            .unwrap()
    );
    let current: Blob = blob.get(&key).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(blob.get(&key).await.unwrap(), None);
    assert!(
        !blob
            .replace(&key, &current, Some(b"\x80"), LONG)
            .await
            .unwrap(),
        "an expired value is not written over"
    );
    assert!(
        blob.insert(&key, b"\x81\xa1a\x02", LONG).await.unwrap(),
        "a new value takes the key of an expired one"
    );
    assert_eq!(raw(&blob, &key).await.unwrap(), &b"\x81\xa1a\x02"[..]);
}

/// MySQL's `DATETIME` keeps whole seconds (MariaDB truncates what it is
/// given): a written expiry is rounded up to the second, so a session
/// never expires before its lifetime is over (a 1-second session created
/// late in a second used to be gone at once).
#[tokio::test]
async fn mysql_expiries_are_never_before_the_lifetime() {
    let store = FlaskStore::new(sql(MYSQL).await);
    let ttl = Duration::from_millis(1500);
    for _ in 0..3 {
        let key = session_key();
        let from = std::time::SystemTime::now();
        assert!(
            store
                .create(
                    &key,
                    &Record::from(std::collections::HashMap::from([(
                        "a".to_owned(),
                        Bytes::from_static(b"1")
                    )])),
                    ttl
                )
                .await
                .unwrap()
        );
        let expires_at = store
            .load(&key)
            .await
            .unwrap()
            .expect("live")
            .expires_at
            .expect("an expiry");
        assert!(
            expires_at >= from + ttl - Duration::from_millis(1),
            "expires {:?} before its lifetime is over",
            (from + ttl).duration_since(expires_at).unwrap_or_default()
        );
        store.delete(&key).await.unwrap();
        tokio::time::sleep(Duration::from_millis(170)).await;
    }
}
