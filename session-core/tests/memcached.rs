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

/// The acceptance suite with sessions spread over both servers.
mod two_servers {
    session_core::store_suite!(super::store(&[super::A, super::B]));
}

/// The acceptance suite on one server.
mod one_server {
    session_core::store_suite!(super::store(&[super::A]));
}

#[tokio::test]
async fn a_lifetime_over_30_days_is_kept() {
    // Memcached reads an expiration over 30 days as a Unix time: sent as
    // seconds, 31 days would be a date in 1970 and the session would
    // expire at once.
    let store = store(&[A, B]).await;
    let ttl = Duration::from_secs(31 * DAY);
    let key = unique_key("31-days");
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
    let at = loaded.expires_at.expect("memcached reports the lifetime");
    let expected = SystemTime::now() + ttl;
    let off = at.duration_since(expected).unwrap_or_else(|e| e.duration());
    assert!(
        off < Duration::from_secs(60),
        "expires {off:?} away from 31 days"
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
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), ttl)
            .await
            .unwrap()
    );
    let at = store.load(&key).await.unwrap().unwrap().expires_at.unwrap();
    assert!(at > SystemTime::now() + ttl - Duration::from_secs(60));
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
    for key in &keys {
        let (in_a, in_b) = (
            entries(&only_a, key).await.is_some(),
            entries(&only_b, key).await.is_some(),
        );
        assert!(in_a != in_b, "a session is on exactly one server");
        let expected = if in_a { A } else { B };
        assert_eq!(both.server_for(key), expected);
        on_a += usize::from(in_a);
    }
    assert!(
        (5..=35).contains(&on_a),
        "{on_a} of 40 sessions on {A}: not spread"
    );
    // The order of the list does not move sessions.
    let reversed = store(&[B, A]).await;
    for key in &keys {
        assert!(entries(&reversed, key).await.is_some());
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
async fn sessions_written_by_the_previous_version_still_load() {
    use async_memcached::{AsciiProtocol, Client};

    let store = store(&[A]).await;
    let key = unique_key("old-format");
    // As the previous version wrote an item: the tag `AXM1`, then each
    // entry as a u32 LE key length, the key, a u32 LE value length, the
    // value; no header.
    let mut old = b"AXM1".to_vec();
    for (k, v) in [("name", "\"nick\""), ("visits", "3")] {
        old.extend_from_slice(&(k.len() as u32).to_le_bytes());
        old.extend_from_slice(k.as_bytes());
        old.extend_from_slice(&(v.len() as u32).to_le_bytes());
        old.extend_from_slice(v.as_bytes());
    }
    let mut raw = Client::new(&format!("tcp://{A}")).await.unwrap();
    raw.set(key.as_str(), &old[..], Some(600), None)
        .await
        .unwrap();

    let loaded = store.load(&key).await.unwrap().expect("an old item loads");
    assert_eq!(
        loaded.entries,
        record(&[("name", "\"nick\""), ("visits", "3")]).entries
    );
    assert_eq!(loaded.created_at, None);
    assert!(loaded.expires_at.is_some());

    // The next apply merges into it and writes it in the current format.
    assert_eq!(
        store
            .apply(&key, &set(&[("visits", "4")]), LONG)
            .await
            .unwrap(),
        Applied::Done
    );
    let value = raw.get(key.as_str()).await.unwrap().expect("still there");
    assert!(value.data.unwrap().starts_with(b"AXM2"));
    let taken = store.take(&key).await.unwrap().expect("still live");
    assert_eq!(
        taken.entries,
        record(&[("name", "\"nick\""), ("visits", "4")]).entries
    );
    assert_eq!(taken.created_at, None);
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

/// Every method on `store` fails within `limit`, and the error passes `check`.
async fn every_call_fails(store: &MemcachedStore, limit: Duration, check: impl Fn(&StoreError)) {
    let key = unique_key("down");
    let rec = record(&[("a", "1")]);
    let started = Instant::now();
    let results = tokio::time::timeout(limit, async {
        vec![
            store.ping().await.err(),
            store.load(&key).await.err(),
            store.create(&key, &rec, LONG).await.err(),
            store.apply(&key, &set(&[("b", "2")]), LONG).await.err(),
            store.touch(&key, LONG).await.err(),
            store.delete(&key).await.err(),
        ]
    })
    .await
    .unwrap_or_else(|_| panic!("calls on a dead server hung past {limit:?}"));
    for (i, error) in results.iter().enumerate() {
        let error = error
            .as_ref()
            .unwrap_or_else(|| panic!("call {i} on a dead server succeeded"));
        check(error);
    }
    assert!(started.elapsed() < limit);
}

#[tokio::test]
async fn a_server_that_is_down_is_an_error_at_once() {
    let store = MemcachedStore::builder(["127.0.0.1:1"])
        .timeout(Duration::from_secs(1))
        .build()
        .expect("building connects to nothing");
    every_call_fails(&store, Duration::from_secs(6), |e| {
        assert!(matches!(e, StoreError::Io(_)), "{e:?}");
        assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn a_server_that_hangs_times_out() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let store = MemcachedStore::builder([address])
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    every_call_fails(&store, Duration::from_secs(6), |e| {
        assert!(matches!(e, StoreError::Timeout(_)), "{e:?}");
    })
    .await;
    silent.abort();
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
            assert!(entries(&store, &key).await.is_some());
            worked += 1;
        } else {
            assert!(result.is_err());
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
    let (x, y) = tokio::join!(store.load(&key), store.load(&key));
    assert!(x.unwrap().is_some() && y.unwrap().is_some());
    let (x, y) = tokio::join!(store.load(&key), store.load(&key));
    assert!(x.unwrap().is_some() && y.unwrap().is_some());

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

/// The store as `open()` builds it from a Flask-style configuration.
async fn from_config(
    config: &session_core::SessionConfig,
) -> Result<MemcachedStore, session_core::ConfigError> {
    use session_core::ConfigError;
    let store = MemcachedStore::builder(&config.memcached_servers)
        .timeout(config.store_timeout)
        .build()
        .map_err(|e| ConfigError::new("SESSION_MEMCACHED", e.to_string()))?;
    store.ping().await.map_err(|e| {
        ConfigError::new(
            "SESSION_MEMCACHED",
            format!("cannot reach {}: {e}", config.memcached_servers.join(",")),
        )
    })?;
    Ok(store)
}

#[tokio::test]
async fn built_from_session_memcached() {
    let config = session_core::SessionConfig::from_source([
        ("SESSION_TYPE", "memcached"),
        ("SESSION_MEMCACHED", "127.0.0.1:11211,127.0.0.1:11212"),
    ])
    .unwrap();
    let store = from_config(&config).await.expect("both servers answer");
    assert_eq!(store.servers().collect::<Vec<_>>(), [A, B]);
    let key = unique_key("config");
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    store.delete(&key).await.unwrap();

    let config = session_core::SessionConfig::from_source([
        ("SESSION_TYPE", "memcached"),
        ("SESSION_MEMCACHED", "127.0.0.1:11211,127.0.0.1:1"),
    ])
    .unwrap();
    let err = from_config(&config).await.unwrap_err().to_string();
    assert!(
        err.contains("SESSION_MEMCACHED") && err.contains("127.0.0.1:1"),
        "{err}"
    );
}
