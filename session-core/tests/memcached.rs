//! The memcached store against real servers: the two that
//! `scripts/services.sh` starts (127.0.0.1:11211 and :11212), and private
//! ones for the restart test. A server that is not running fails the tests;
//! nothing is skipped.

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use session_core::StoreKey;
use session_core::store::memcached::MemcachedStore;
use session_core::store::{Applied, ChangeSet, SessionStore, StoreError};
use session_core::testing::{record, unique_key};

const A: &str = "127.0.0.1:11211";
const B: &str = "127.0.0.1:11212";
const LONG: Duration = Duration::from_secs(600);
const DAY: u64 = 86_400;

/// A store on `servers`, checked to answer.
async fn store(servers: &[&str]) -> MemcachedStore {
    let store = MemcachedStore::builder(servers.iter().copied())
        .build()
        .expect("a memcached store");
    store.ping().await.unwrap_or_else(|e| {
        panic!("memcached must be running on {servers:?} (run scripts/services.sh): {e}")
    });
    store
}

fn set(pairs: &[(&str, &str)]) -> ChangeSet {
    ChangeSet {
        set: record(pairs).entries.into_iter().collect(),
        ..ChangeSet::default()
    }
}

async fn entries(store: &MemcachedStore, key: &StoreKey) -> Option<HashMap<String, Bytes>> {
    store
        .load(key)
        .await
        .expect("load failed")
        .map(|r| r.entries)
}

/// How far off the expiry memcached reports may be: it keeps whole
/// seconds, and its clock ticks once a second, so the time left it reports
/// is off by up to a second either way (the rest: a tick that comes late on
/// a busy machine).
const PRECISION: Duration = Duration::from_millis(1250);

/// How far off an expiry set as a Unix time (a lifetime over 30 days) may
/// be: memcached keeps it on its own clock, which counts from its start
/// time, read from another clock than its ticks, so it runs up to two
/// seconds behind the wall clock (or a second ahead) for the life of the
/// process; the session expires, and is reported to expire, that much
/// later (or sooner).
const UNIX_TIME_PRECISION: Duration = Duration::from_millis(3250);

/// Checks that `reported` is `ttl` after some moment between `from` and
/// `to`, to `precision`.
fn assert_expires(
    reported: Option<SystemTime>,
    (from, to): (SystemTime, SystemTime),
    ttl: Duration,
    precision: Duration,
) {
    let at = reported.expect("memcached reports when a session expires");
    assert!(
        at + precision >= from + ttl && at <= to + ttl + precision,
        "expires at {at:?}, not {ttl:?} after {from:?}..{to:?}"
    );
}

/// The acceptance suite with sessions spread over both servers.
mod two_servers {
    session_core::store_suite!(
        super::store(&[super::A, super::B]);
        expiry_precision = super::PRECISION
    );
}

/// The acceptance suite on one server.
mod one_server {
    session_core::store_suite!(super::store(&[super::A]); expiry_precision = super::PRECISION);
}

#[tokio::test]
async fn a_lifetime_over_30_days_is_kept() {
    // Memcached reads an expiration over 30 days as a Unix time: sent as
    // seconds, 31 days would be a date in 1970 and the session would
    // expire at once.
    let store = store(&[A, B]).await;
    let ttl = Duration::from_secs(31 * DAY);
    let key = unique_key("31-days");
    let from = SystemTime::now();
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), ttl)
            .await
            .unwrap()
    );
    let loaded = store
        .load(&key)
        .await
        .unwrap()
        .expect("a 31-day session expired at once");
    assert_expires(
        loaded.expires_at,
        (from, SystemTime::now()),
        ttl,
        UNIX_TIME_PRECISION,
    );

    assert_eq!(
        store.apply(&key, &set(&[("b", "2")]), ttl).await.unwrap(),
        Applied::Done
    );
    assert_eq!(store.touch(&key, ttl).await.unwrap(), Applied::Done);
    assert_eq!(
        entries(&store, &key).await,
        Some(record(&[("a", "1"), ("b", "2")]).entries)
    );
    // And exactly 30 days, the last relative value, too.
    let key = unique_key("30-days");
    let ttl = Duration::from_secs(30 * DAY);
    let from = SystemTime::now();
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), ttl)
            .await
            .unwrap()
    );
    let loaded = store.load(&key).await.unwrap().expect("a 30-day session");
    assert_expires(loaded.expires_at, (from, SystemTime::now()), ttl, PRECISION);
    store.delete(&key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn high_contention_applies_all_persist() {
    const WRITERS: usize = 48;
    let store = Arc::new(store(&[A, B]).await);
    let key = unique_key("contention");
    store
        .create(&key, &record(&[("seed", "0")]), LONG)
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let (store, key) = (Arc::clone(&store), key.clone());
        tasks.spawn(async move {
            let mut changes = set(&[(&format!("k{i}"), &i.to_string())]);
            if i % 2 == 0 {
                changes.remove.push(format!("never-{i}"));
            }
            store.apply(&key, &changes, LONG).await
        });
    }
    while let Some(applied) = tasks.join_next().await {
        assert_eq!(applied.unwrap().unwrap(), Applied::Done);
    }
    let got = entries(&store, &key).await.expect("the session vanished");
    assert_eq!(got.len(), WRITERS + 1);
    for i in 0..WRITERS {
        assert_eq!(
            got.get(&format!("k{i}")).map(|v| &v[..]),
            Some(i.to_string().as_bytes()),
            "the write to k{i} was lost"
        );
    }
}

#[tokio::test]
async fn sessions_spread_over_both_servers() {
    let both = store(&[A, B]).await;
    let (only_a, only_b) = (store(&[A]).await, store(&[B]).await);
    let keys: Vec<_> = (0..40).map(|_| unique_key("spread")).collect();
    for key in &keys {
        assert!(
            both.create(key, &record(&[("k", "v")]), LONG)
                .await
                .unwrap()
        );
    }
    let mut on_a = 0;
    let rec = record(&[("k", "v")]).entries;
    for key in &keys {
        let on = match (entries(&only_a, key).await, entries(&only_b, key).await) {
            (Some(held), None) if held == rec => A,
            (None, Some(held)) if held == rec => B,
            other => panic!("a session is on exactly one server, as written: {other:?}"),
        };
        assert_eq!(both.server_for(key), on);
        on_a += usize::from(on == A);
    }
    assert!(
        (5..=35).contains(&on_a),
        "{on_a} of 40 sessions on {A}: not spread"
    );
    // The order of the list does not move sessions.
    let reversed = store(&[B, A]).await;
    for key in &keys {
        assert_eq!(
            entries(&reversed, key).await,
            Some(record(&[("k", "v")]).entries)
        );
        both.delete(key).await.unwrap();
    }
}

#[tokio::test]
async fn keys_memcached_would_refuse_are_hashed() {
    let store = store(&[A, B]).await;
    let long = StoreKey::from_raw(format!("{}{}", "p".repeat(260), unique_key("long")));
    let spaced = StoreKey::from_raw(format!("with space\r\nand lines {}", unique_key("odd")));
    let unicode = StoreKey::from_raw(format!("ключ:{}", unique_key("unicode")));
    for (i, key) in [&long, &spaced, &unicode].into_iter().enumerate() {
        let rec = record(&[("i", &i.to_string())]);
        assert!(store.create(key, &rec, LONG).await.unwrap(), "{key}");
        assert_eq!(entries(&store, key).await, Some(rec.entries), "{key}");
        assert_eq!(
            store.apply(key, &set(&[("x", "1")]), LONG).await.unwrap(),
            Applied::Done
        );
        assert_eq!(store.touch(key, LONG).await.unwrap(), Applied::Done);
    }
    for key in [&long, &spaced, &unicode] {
        assert_eq!(entries(&store, key).await.unwrap().len(), 2);
        store.delete(key).await.unwrap();
        assert_eq!(entries(&store, key).await, None);
    }
}

fn one_value(name: &str, len: usize) -> session_core::store::Record {
    let mut rec = record(&[]);
    rec.entries
        .insert(name.to_owned(), Bytes::from(vec![b'x'; len]));
    rec
}

#[tokio::test]
async fn a_session_too_large_for_memcached_is_a_clear_error() {
    // One connection: errors must leave it usable.
    let store = MemcachedStore::builder([A]).pool_size(1).build().unwrap();
    let big = one_value("big", 2 * 1024 * 1024);
    let key = unique_key("too-large");
    let err = store.create(&key, &big, LONG).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("1048576 bytes") && message.contains("-I"),
        "{message}"
    );
    assert_eq!(entries(&store, &key).await, None);

    assert!(
        store
            .create(&key, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    let grow = ChangeSet {
        set: big.entries.into_iter().collect(),
        ..ChangeSet::default()
    };
    let err = store.apply(&key, &grow, LONG).await.unwrap_err();
    assert!(err.to_string().contains("more than memcached"), "{err}");
    assert_eq!(
        entries(&store, &key).await,
        Some(record(&[("a", "1")]).entries),
        "a refused apply changed the session"
    );
}

#[tokio::test]
async fn the_size_limit_matches_the_server() {
    let store = MemcachedStore::builder([A]).pool_size(1).build().unwrap();
    let key = unique_key("limit");
    // The encoded session is a 4-byte tag, a 4-byte header length (the
    // header is empty without a creation time), and 4 + 3 + 4 bytes of
    // framing around the value.
    let fits = 1024 * 1024 - 64 - key.as_str().len() - 8 - 11;
    let rec = one_value("max", fits);
    assert!(
        store.create(&key, &rec, LONG).await.unwrap(),
        "the largest session"
    );
    assert_eq!(entries(&store, &key).await, Some(rec.entries));
    store.delete(&key).await.unwrap();
    let err = store
        .create(&key, &one_value("max", fits + 1), LONG)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than memcached"), "{err}");

    // A limit set above the server's: memcached refuses the write itself,
    // and the error says the same.
    let store = MemcachedStore::builder([A])
        .pool_size(1)
        .max_item_size(8 * 1024 * 1024)
        .build()
        .unwrap();
    let err = store
        .create(&key, &one_value("big", 2 * 1024 * 1024), LONG)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("-I"), "{err}");
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), LONG)
            .await
            .unwrap(),
        "the connection is still in step"
    );
    store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn max_size_refuses_an_apply_before_any_write() {
    let store = store(&[A, B]).await;
    let key = unique_key("max-size");
    let created = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
    let rec = session_core::store::Record {
        created_at: Some(created),
        ..record(&[("a", "1")])
    };
    assert!(store.create(&key, &rec, LONG).await.unwrap());
    let grow = ChangeSet {
        max_size: Some(rec.size()),
        ..set(&[("b", "2")])
    };
    let size = grow.size_after(&rec.entries);
    assert_eq!(
        store.apply(&key, &grow, LONG).await.unwrap(),
        Applied::TooLarge { size }
    );
    // Clearing first makes room; the creation time stays.
    let replace = ChangeSet {
        clear: true,
        ..grow
    };
    assert_eq!(
        store.apply(&key, &replace, LONG).await.unwrap(),
        Applied::Done
    );
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.entries, record(&[("b", "2")]).entries);
    assert_eq!(loaded.created_at, Some(created));
    // A missing session is gone, not too large.
    store.delete(&key).await.unwrap();
    assert_eq!(
        store
            .apply(
                &key,
                &ChangeSet {
                    max_size: Some(0),
                    ..set(&[("c", "3")])
                },
                LONG
            )
            .await
            .unwrap(),
        Applied::Gone
    );
}

/// A server that is down (nothing listens on its port) fails every call
/// at once, well before the timeout, with an I/O error naming it. (A
/// server that accepts connections and never answers is in
/// `tests/timeouts.rs`.)
#[tokio::test]
async fn a_server_that_is_down_is_an_error_at_once() {
    let timeout = Duration::from_secs(2);
    let store = MemcachedStore::builder(["127.0.0.1:1"])
        .timeout(timeout)
        .build()
        .expect("building connects to nothing");
    let key = unique_key("down");
    let rec = record(&[("a", "1")]);
    let check = |what: &str, started: Instant, error: Option<StoreError>| {
        let took = started.elapsed();
        let error = error.unwrap_or_else(|| panic!("{what} on a dead server succeeded"));
        assert!(
            matches!(error, StoreError::Io(_)) && error.to_string().contains("127.0.0.1:1"),
            "{what}: {error:?}"
        );
        assert!(took < timeout / 2, "{what} took {took:?}");
    };
    let t = Instant::now();
    check("ping", t, store.ping().await.err());
    let t = Instant::now();
    check("load", t, store.load(&key).await.err());
    let t = Instant::now();
    check("create", t, store.create(&key, &rec, LONG).await.err());
    let t = Instant::now();
    let changes = set(&[("b", "2")]);
    check("apply", t, store.apply(&key, &changes, LONG).await.err());
    let t = Instant::now();
    check("touch", t, store.touch(&key, LONG).await.err());
    let t = Instant::now();
    check("delete", t, store.delete(&key).await.err());
    let t = Instant::now();
    check("take", t, store.take(&key).await.err());
}

#[tokio::test]
async fn one_server_down_leaves_the_others_working() {
    let store = MemcachedStore::builder([A, "127.0.0.1:1"])
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut worked = 0;
    for _ in 0..20 {
        let key = unique_key("half-down");
        let result = store.create(&key, &record(&[("a", "1")]), LONG).await;
        if store.server_for(&key) == A {
            assert!(result.unwrap());
            assert_eq!(
                entries(&store, &key).await,
                Some(record(&[("a", "1")]).entries)
            );
            worked += 1;
        } else {
            let error = result.expect_err("a session on the server that is down");
            assert!(
                matches!(error, StoreError::Io(_)) && error.to_string().contains("127.0.0.1:1"),
                "{error:?}"
            );
        }
    }
    assert!((1..20).contains(&worked), "{worked} of 20 on {A}");
}

/// A memcached of our own, killed when dropped.
struct Memcached {
    port: u16,
    child: Child,
}

impl Memcached {
    fn start(port: u16) -> Self {
        let child = Command::new("memcached")
            .args([
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "0",
                "-m",
                "16",
            ])
            .args(["-u", "root"]) // ignored unless run as root, which requires it
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("memcached is installed (run scripts/services.sh)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "memcached on {port} did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn a_restarted_server_is_used_again_without_errors() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Memcached::start(port);
    let store = MemcachedStore::builder([format!("127.0.0.1:{port}")])
        .pool_size(2)
        .build()
        .unwrap();
    let key = unique_key("restart");
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    // Two pooled connections, both used more than once.
    let a = record(&[("a", "1")]).entries;
    for _ in 0..2 {
        let (x, y) = tokio::join!(store.load(&key), store.load(&key));
        assert_eq!(x.unwrap().map(|r| r.entries).as_ref(), Some(&a));
        assert_eq!(y.unwrap().map(|r| r.entries).as_ref(), Some(&a));
    }

    server.stop();
    let mut server = Memcached::start(server.port);
    // The pooled connections are dead; the store must notice and reconnect.
    assert_eq!(
        store
            .load(&key)
            .await
            .expect("the first call after a restart"),
        None,
        "a restarted memcached is empty"
    );
    assert!(
        store
            .create(&key, &record(&[("b", "2")]), LONG)
            .await
            .unwrap()
    );
    assert_eq!(
        entries(&store, &key).await,
        Some(record(&[("b", "2")]).entries)
    );
    server.stop();
}

/// `SESSION_TYPE=memcached` opens the store on the servers that
/// `SESSION_MEMCACHED` lists, spreading sessions as a store built on that
/// list does; a server that is down fails start-up with an error naming the
/// key and that server, and a bad list is refused.
#[tokio::test]
async fn open_from_config() {
    use session_core::SessionConfig;
    use session_core::store::{Backend, open};

    let config = |servers: &str| {
        SessionConfig::from_source([
            ("SESSION_TYPE", "memcached"),
            ("SESSION_MEMCACHED", servers),
        ])
        .unwrap()
    };
    let Backend::Store(opened) = open(&config("127.0.0.1:11211,127.0.0.1:11212"))
        .await
        .expect("both servers answer")
    else {
        panic!("not a server-side store")
    };
    let both = store(&[A, B]).await;
    let (only_a, only_b) = (store(&[A]).await, store(&[B]).await);
    let mut on_a = 0;
    for i in 0..20 {
        let key = unique_key("config");
        let rec = record(&[("i", &i.to_string())]);
        assert!(opened.create(&key, &rec, LONG).await.unwrap());
        let (server, other) = if both.server_for(&key) == A {
            on_a += 1;
            (&only_a, &only_b)
        } else {
            (&only_b, &only_a)
        };
        assert_eq!(entries(server, &key).await, Some(rec.entries), "{key}");
        assert_eq!(entries(other, &key).await, None, "{key}");
        opened.delete(&key).await.unwrap();
    }
    assert!((1..20).contains(&on_a), "{on_a} of 20 sessions on {A}");

    let error = open(&config("127.0.0.1:11211,127.0.0.1:1"))
        .await
        .expect_err("a server is down");
    assert_eq!(error.key(), "SESSION_MEMCACHED");
    let message = error.to_string();
    assert!(
        message.contains("cannot connect to memcached 127.0.0.1:1") && message.contains("refused"),
        "{message}"
    );

    let error = open(&config("127.0.0.1:11211, 127.0.0.1:11211"))
        .await
        .expect_err("a server listed twice");
    assert_eq!(error.key(), "SESSION_MEMCACHED");
    assert!(error.to_string().contains("listed twice"), "{error}");
}
