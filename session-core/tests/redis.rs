//! The Redis store against real servers: a single node, a cluster and
//! Sentinel (all started by `scripts/services.sh`), plus an outage and a
//! failover on servers this test starts and stops itself.

mod proxy;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use session_core::store::redis::RedisStore;
use session_core::store::{Applied, ChangeSet, Record, SessionStore, session_size};
use session_core::testing::{record, unique_key};

const SINGLE: &str = "redis://127.0.0.1:6379";
const CLUSTER: &str = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002";
const SENTINEL: &str = "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster";

async fn connect(url: &str) -> RedisStore {
    RedisStore::builder(url)
        .build()
        .await
        .unwrap_or_else(|e| panic!("{url} must be up (run scripts/services.sh): {e}"))
}

/// Generates one test per case of the Redis layout below, against `$url`.
macro_rules! layout_cases {
    ($url:expr) => {
        layout_cases!(@cases $url;
            create_writes_the_reserved_fields,
            the_stored_size_follows_every_change,
            a_session_written_without_reserved_fields_still_loads,
            a_session_without_a_stored_size_is_counted_once_on_apply,
            apply_counts_from_the_stored_size_without_reading_the_session,
            clear_keeps_created_at_and_reserved_fields_keep_no_session_alive,
            an_empty_record_is_stored_and_holds_its_key,
        );
    };
    (@cases $url:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                super::$case($url).await;
            }
        )*
    };
}

mod single {
    session_core::store_suite!(super::connect(super::SINGLE));
    layout_cases!(super::SINGLE);
}

mod cluster {
    session_core::store_suite!(super::connect(super::CLUSTER));
    layout_cases!(super::CLUSTER);
}

mod sentinel {
    session_core::store_suite!(super::connect(super::SENTINEL));
    layout_cases!(super::SENTINEL);
}

/// A plain connection to the servers behind one of the URLs above, to read
/// and write hashes as they are, without the store.
enum Raw {
    Node(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Raw {
    async fn open(url: &str) -> Self {
        match url {
            CLUSTER => Raw::Cluster(
                redis::cluster::ClusterClient::new(vec!["redis://127.0.0.1:7000"])
                    .unwrap()
                    .get_async_connection()
                    .await
                    .unwrap(),
            ),
            SENTINEL => {
                let sentinels =
                    ["26379", "26380", "26381"].map(|p| format!("redis://127.0.0.1:{p}"));
                Raw::Node(
                    redis::sentinel::SentinelClient::build(
                        sentinels.to_vec(),
                        "mymaster".into(),
                        None,
                        redis::sentinel::SentinelServerType::Master,
                    )
                    .unwrap()
                    .get_async_connection()
                    .await
                    .unwrap(),
                )
            }
            _ => Raw::Node(
                redis::Client::open(url)
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap(),
            ),
        }
    }

    async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        match self {
            Raw::Node(c) => cmd.query_async(c).await,
            Raw::Cluster(c) => cmd.query_async(c).await,
        }
        .expect("a raw command")
    }

    /// A hash's fields as they are stored, reserved ones included.
    async fn hash(&mut self, key: &session_core::StoreKey) -> HashMap<String, Vec<u8>> {
        self.query(redis::cmd("HGETALL").arg(key.as_str())).await
    }

    /// The size the store keeps in the reserved `\0size` field.
    async fn stored_size(&mut self, key: &session_core::StoreKey) -> Option<usize> {
        let size: Option<String> = self
            .query(redis::cmd("HGET").arg(key.as_str()).arg("\0size"))
            .await;
        size.map(|s| s.parse().expect("a decimal size"))
    }
}

const LONG: Duration = Duration::from_secs(600);

fn millis(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn set(pairs: &[(&str, &str)]) -> ChangeSet {
    ChangeSet {
        set: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v.as_bytes())))
            .collect(),
        ..ChangeSet::default()
    }
}

/// Beside the user's fields, `create` writes the size and the creation
/// time, as decimal text under NUL-led names, and `load` shows neither.
async fn create_writes_the_reserved_fields(url: &str) {
    let (store, mut raw) = (connect(url).await, Raw::open(url).await);
    let key = unique_key("redis-reserved");
    let created = SystemTime::now() - Duration::from_secs(86_400);
    let rec = Record {
        created_at: Some(created),
        ..record(&[("name", "\"nick\""), ("visits", "3")])
    };
    assert!(store.create(&key, &rec, LONG).await.unwrap());
    let mut expected: HashMap<String, Vec<u8>> = rec
        .entries
        .iter()
        .map(|(k, v)| (k.clone(), v.to_vec()))
        .collect();
    expected.insert("\0size".into(), rec.size().to_string().into_bytes());
    expected.insert("\0created".into(), millis(created).to_string().into_bytes());
    assert_eq!(raw.hash(&key).await, expected);
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.entries, rec.entries);
}

/// Every kind of change keeps `\0size` equal to the session's size, and
/// leaves the creation time alone.
async fn the_stored_size_follows_every_change(url: &str) {
    let (store, mut raw) = (connect(url).await, Raw::open(url).await);
    let key = unique_key("redis-size");
    let created = SystemTime::now();
    let rec = Record {
        created_at: Some(created),
        ..record(&[("a", "1"), ("b", "22"), ("c", "333")])
    };
    store.create(&key, &rec, LONG).await.unwrap();
    let steps = [
        // A new field, a longer and a shorter value, an empty value.
        set(&[("d", "4444"), ("a", "1111111"), ("b", ""), ("e", "")]),
        // Removing a field, one that was never there, an empty one.
        ChangeSet {
            remove: vec!["c".into(), "missing".into(), "e".into()],
            ..set(&[])
        },
        // The same field twice: the last value counts, once.
        set(&[("f", "1"), ("f", "123456")]),
        // A field removed and set again in one change set.
        ChangeSet {
            remove: vec!["d".into()],
            ..set(&[("d", "55")])
        },
        // Clear, then set.
        ChangeSet {
            clear: true,
            ..set(&[("g", "7"), ("h", "")])
        },
    ];
    for (i, changes) in steps.iter().enumerate() {
        assert_eq!(
            store.apply(&key, changes, LONG).await.unwrap(),
            Applied::Done,
            "step {i}"
        );
        let loaded = store.load(&key).await.unwrap().unwrap();
        assert_eq!(
            raw.stored_size(&key).await,
            Some(session_size(&loaded.entries)),
            "step {i}: the stored size drifted from {:?}",
            loaded.entries
        );
        assert_eq!(
            loaded.created_at.map(millis),
            Some(millis(created)),
            "step {i}"
        );
    }
}

/// A hash as the previous version wrote it (user fields only) loads and is
/// taken with its entries and no creation time.
async fn a_session_written_without_reserved_fields_still_loads(url: &str) {
    let (store, mut raw) = (connect(url).await, Raw::open(url).await);
    let key = unique_key("redis-old");
    let _: () = raw
        .query(
            redis::cmd("HSET")
                .arg(key.as_str())
                .arg("name")
                .arg("\"nick\"")
                .arg("visits")
                .arg("3"),
        )
        .await;
    let from = SystemTime::now();
    let _: () = raw
        .query(redis::cmd("PEXPIRE").arg(key.as_str()).arg(600_000))
        .await;
    let expected = record(&[("name", "\"nick\""), ("visits", "3")]).entries;
    let loaded = store
        .load(&key)
        .await
        .unwrap()
        .expect("an old session loads");
    assert_eq!(loaded.entries, expected);
    assert_eq!(loaded.created_at, None);
    let at = loaded.expires_at.expect("the hash's TTL is reported");
    let ms = Duration::from_millis(5);
    assert!(
        at + ms >= from + LONG && at <= SystemTime::now() + LONG + ms,
        "{at:?} is not 600 s after the PEXPIRE"
    );
    let taken = store
        .take(&key)
        .await
        .unwrap()
        .expect("an old session is taken");
    assert_eq!((taken.entries, taken.created_at), (expected, None));
}

/// The first `apply` to a hash without `\0size` counts the session, checks
/// the limit against it and stores it; no creation time is invented.
async fn a_session_without_a_stored_size_is_counted_once_on_apply(url: &str) {
    let (store, mut raw) = (connect(url).await, Raw::open(url).await);
    let key = unique_key("redis-old-size");
    let old = record(&[("a", "1111111111"), ("b", "22")]);
    let _: () = raw
        .query(
            redis::cmd("HSET")
                .arg(key.as_str())
                .arg("a")
                .arg("1111111111")
                .arg("b")
                .arg("22"),
        )
        .await;
    let _: () = raw
        .query(redis::cmd("PEXPIRE").arg(key.as_str()).arg(600_000))
        .await;
    let grow = set(&[("c", "333")]);
    let grown = grow.size_after(&old.entries);
    let refused = ChangeSet {
        max_size: Some(grown - 1),
        ..grow.clone()
    };
    assert_eq!(
        store.apply(&key, &refused, LONG).await.unwrap(),
        Applied::TooLarge { size: grown }
    );
    assert_eq!(raw.stored_size(&key).await, None, "a refused apply wrote");
    let allowed = ChangeSet {
        max_size: Some(grown),
        ..grow
    };
    assert_eq!(
        store.apply(&key, &allowed, LONG).await.unwrap(),
        Applied::Done
    );
    assert_eq!(raw.stored_size(&key).await, Some(grown));
    assert_eq!(store.load(&key).await.unwrap().unwrap().created_at, None);
}

/// `apply` trusts `\0size` instead of reading the whole session: that is
/// what keeps a write's cost flat as the session grows.
async fn apply_counts_from_the_stored_size_without_reading_the_session(url: &str) {
    let (store, mut raw) = (connect(url).await, Raw::open(url).await);
    let key = unique_key("redis-flat");
    store
        .create(&key, &record(&[("a", "1")]), LONG)
        .await
        .unwrap();
    // A size no recount of this session would give.
    let _: () = raw
        .query(
            redis::cmd("HSET")
                .arg(key.as_str())
                .arg("\0size")
                .arg(1_000_000),
        )
        .await;
    let changes = ChangeSet {
        max_size: Some(4096),
        ..set(&[("b", "2")])
    };
    assert_eq!(
        store.apply(&key, &changes, LONG).await.unwrap(),
        Applied::TooLarge {
            size: 1_000_000 + 8 + 1 + 1
        }
    );
}

/// `clear` keeps the creation time; once the last user field goes, the
/// session is deleted, reserved fields and all.
async fn clear_keeps_created_at_and_reserved_fields_keep_no_session_alive(url: &str) {
    let (store, mut raw) = (connect(url).await, Raw::open(url).await);
    let key = unique_key("redis-clear");
    let created = SystemTime::now() - Duration::from_secs(3600);
    let rec = Record {
        created_at: Some(created),
        ..record(&[("a", "1"), ("b", "2")])
    };
    store.create(&key, &rec, LONG).await.unwrap();
    let clear = ChangeSet {
        clear: true,
        ..set(&[("c", "3")])
    };
    assert_eq!(
        store.apply(&key, &clear, LONG).await.unwrap(),
        Applied::Done
    );
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.entries, record(&[("c", "3")]).entries);
    assert_eq!(loaded.created_at.map(millis), Some(millis(created)));
    let pttl: i64 = raw.query(redis::cmd("PTTL").arg(key.as_str())).await;
    assert!(
        (590_000..=600_000).contains(&pttl),
        "a cleared session lost its lifetime: {pttl}"
    );
    let remove = ChangeSet {
        remove: vec!["c".into()],
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&key, &remove, LONG).await.unwrap(),
        Applied::Deleted
    );
    let exists: i64 = raw.query(redis::cmd("EXISTS").arg(key.as_str())).await;
    assert_eq!(exists, 0, "the reserved fields kept an emptied session");
}

/// A record without entries is stored (with its creation time): the key is
/// taken, it loads empty, and the first apply that leaves it empty deletes it.
async fn an_empty_record_is_stored_and_holds_its_key(url: &str) {
    let store = connect(url).await;
    let key = unique_key("redis-empty");
    let created = SystemTime::now();
    let empty = Record {
        created_at: Some(created),
        ..Record::default()
    };
    assert!(store.create(&key, &empty, LONG).await.unwrap());
    assert!(
        !store.create(&key, &empty, LONG).await.unwrap(),
        "the key was free"
    );
    let loaded = store.load(&key).await.unwrap().expect("stored");
    assert!(loaded.entries.is_empty());
    assert_eq!(loaded.created_at.map(millis), Some(millis(created)));
    assert_eq!(
        store.apply(&key, &set(&[("a", "1")]), LONG).await.unwrap(),
        Applied::Done
    );
    let remove = ChangeSet {
        remove: vec!["a".into()],
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&key, &remove, LONG).await.unwrap(),
        Applied::Deleted
    );
    assert_eq!(store.load(&key).await.unwrap(), None);
}

/// The error for a session key in the store's namespace names the key.
fn assert_reserved(result: Result<impl std::fmt::Debug, session_core::StoreError>, key: &str) {
    let error = result.expect_err("a session key starting with NUL was written");
    assert!(
        error.to_string().contains(&format!(
            "session key {key:?} starts with NUL, which the Redis store reserves"
        )),
        "{error}"
    );
}

#[tokio::test]
async fn session_keys_in_the_reserved_namespace_are_refused() {
    let store = connect(SINGLE).await;
    let key = unique_key("redis-nul");
    assert_reserved(
        store.create(&key, &record(&[("\0size", "1")]), LONG).await,
        "\0size",
    );
    assert_eq!(
        store.load(&key).await.unwrap(),
        None,
        "a refused create wrote"
    );
    store
        .create(&key, &record(&[("a", "1")]), LONG)
        .await
        .unwrap();
    let overwrite = set(&[("\0created", "0")]);
    assert_reserved(store.apply(&key, &overwrite, LONG).await, "\0created");
    let drop_size = ChangeSet {
        remove: vec!["\0size".into()],
        ..ChangeSet::default()
    };
    assert_reserved(store.apply(&key, &drop_size, LONG).await, "\0size");
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(
        (loaded.entries, loaded.created_at),
        (record(&[("a", "1")]).entries, None)
    );
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_session_is_a_hash_with_a_ttl_under_a_hashed_key() {
    let store = connect(SINGLE).await;
    let key = session_core::StoreKey::new("session:", &session_core::SessionId::generate(), true);
    store
        .create(
            &key,
            &record(&[("name", "\"nick\"")]),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    assert_eq!(redis_cli(6379, &["TYPE", key.as_str()]), "hash");
    assert_eq!(redis_cli(6379, &["HGET", key.as_str(), "name"]), "\"nick\"");
    let ttl: u64 = redis_cli(6379, &["TTL", key.as_str()]).parse().unwrap();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    // Removing the last field deletes the session.
    let remove = ChangeSet {
        remove: vec!["name".into()],
        ..ChangeSet::default()
    };
    assert_eq!(
        store
            .apply(&key, &remove, Duration::from_secs(60))
            .await
            .unwrap(),
        Applied::Deleted
    );
    assert_eq!(redis_cli(6379, &["EXISTS", key.as_str()]), "0");
}

#[tokio::test]
async fn a_31_day_lifetime_is_kept() {
    let store = connect(SINGLE).await;
    let key = unique_key("redis-31d");
    let lifetime = Duration::from_secs(31 * 24 * 3600);
    store
        .create(&key, &record(&[("a", "1")]), lifetime)
        .await
        .unwrap();
    let loaded = store.load(&key).await.unwrap().unwrap();
    let left = loaded
        .expires_at
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        left > lifetime - Duration::from_secs(10) && left <= lifetime,
        "{left:?}"
    );
}

#[tokio::test]
async fn thousands_of_keys_in_one_change_set() {
    let store = connect(SINGLE).await;
    let key = unique_key("redis-wide");
    store
        .create(&key, &record(&[("seed", "0")]), Duration::from_secs(60))
        .await
        .unwrap();
    let changes = ChangeSet {
        set: (0..5000)
            .map(|i| (format!("k{i}"), format!("{i}").into()))
            .collect(),
        ..ChangeSet::default()
    };
    assert_eq!(
        store
            .apply(&key, &changes, Duration::from_secs(60))
            .await
            .unwrap(),
        Applied::Done
    );
    let removes = ChangeSet {
        remove: (0..4000).map(|i| format!("k{i}")).collect(),
        ..ChangeSet::default()
    };
    assert_eq!(
        store
            .apply(&key, &removes, Duration::from_secs(60))
            .await
            .unwrap(),
        Applied::Done
    );
    let entries = store.load(&key).await.unwrap().unwrap().entries;
    assert_eq!(entries.len(), 1001);
    assert_eq!(&entries["k4999"][..], b"4999");
    assert_eq!(&entries["seed"][..], b"0");
}

/// A redis-server of this test's own, on its own port.
struct Server {
    child: Child,
}

impl Server {
    fn start(port: u16, args: &[&str]) -> Self {
        Self::start_with(None, port, args)
    }

    /// Starts a server that speaks only TLS on `port`.
    fn start_tls(port: u16, cert: &str, key: &str) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--tls-cert-file",
                cert,
                "--tls-key-file",
                key,
                "--tls-ca-cert-file",
                cert,
            ])
            .args(["--tls-auth-clients", "no", "--save", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services.sh)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server (TLS) on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child }
    }

    /// Starts a server; a config file, if any, must come first.
    fn start_with(config: Option<&str>, port: u16, args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("session-redis-test-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(config)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir", dir.to_str().unwrap()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services.sh)");
        let server = Self { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis_cli(port, &["PING"]) != "PONG" {
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Retries `op` until it succeeds, for at most `limit`.
async fn eventually<T, E: std::fmt::Debug>(
    limit: Duration,
    mut op: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match op().await {
            Ok(value) => return value,
            Err(error) if Instant::now() > deadline => panic!("still failing: {error:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_fast_and_the_store_recovers() {
    const PORT: u16 = 6391;
    let server = Server::start(PORT, &[]);
    let store = Arc::new(
        RedisStore::builder(format!("redis://127.0.0.1:{PORT}"))
            .timeout(Duration::from_millis(500))
            .build()
            .await
            .unwrap(),
    );
    let key = unique_key("outage");
    store
        .create(&key, &record(&[("a", "1")]), Duration::from_secs(60))
        .await
        .unwrap();
    drop(server);

    // Down: every call fails, and none hangs.
    for _ in 0..3 {
        let call = tokio::time::timeout(Duration::from_secs(10), store.load(&key)).await;
        let error = call
            .expect("a call hung while Redis was down")
            .expect_err("a load while Redis was down");
        // The connection's failure, not some other error.
        let session_core::StoreError::Backend(source) = &error else {
            panic!("{error:?}")
        };
        let redis_error = source
            .downcast_ref::<redis::RedisError>()
            .unwrap_or_else(|| panic!("{error:?}"));
        assert!(
            redis_error.is_io_error()
                || redis_error.is_connection_dropped()
                || redis_error.is_connection_refusal(),
            "{redis_error:?}"
        );
    }

    // Back (empty: it keeps nothing on disk): the same store works again.
    let _server = Server::start(PORT, &[]);
    let loaded = eventually(Duration::from_secs(15), async || store.load(&key).await).await;
    assert_eq!(loaded, None, "a fresh server has no sessions");
    assert!(
        eventually(Duration::from_secs(5), async || {
            store
                .create(&key, &record(&[("b", "2")]), Duration::from_secs(60))
                .await
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_follows_a_failover() {
    // A private master, replica and three sentinels, so the failover does not
    // disturb the shared Sentinel setup other tests use.
    let master = Server::start(6392, &[]);
    let _replica = Server::start(6393, &["--replicaof", "127.0.0.1", "6392"]);
    let mut sentinels = Vec::new();
    for port in [26392u16, 26393, 26394] {
        let conf = std::env::temp_dir().join(format!("session-sentinel-test-{port}.conf"));
        std::fs::write(
            &conf,
            "sentinel resolve-hostnames no\n\
             sentinel monitor failover 127.0.0.1 6392 2\n\
             sentinel down-after-milliseconds failover 1000\n\
             sentinel failover-timeout failover 3000\n",
        )
        .unwrap();
        sentinels.push(Server::start_with(conf.to_str(), port, &["--sentinel"]));
    }
    let url = "redis+sentinel://127.0.0.1:26392,127.0.0.1:26393,127.0.0.1:26394/failover";
    let store = Arc::new(
        RedisStore::builder(url)
            .timeout(Duration::from_millis(500))
            .build()
            .await
            .unwrap(),
    );
    let key = unique_key("failover");
    eventually(Duration::from_secs(10), async || {
        store
            .create(
                &key,
                &record(&[("user", "\"ann\"")]),
                Duration::from_secs(300),
            )
            .await
    })
    .await;
    // Let the replica catch up, then lose the master.
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis_cli(6393, &["EXISTS", key.as_str()]) != "1" {
        assert!(Instant::now() < deadline, "the replica did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(master);

    // The sentinels promote the replica; the store finds it by itself.
    let changes = ChangeSet {
        set: vec![("after".into(), "1".into())],
        ..ChangeSet::default()
    };
    let applied = eventually(Duration::from_secs(30), async || {
        store.apply(&key, &changes, Duration::from_secs(300)).await
    })
    .await;
    assert_eq!(
        applied,
        Applied::Done,
        "the session survived on the new master"
    );
    let entries = store.load(&key).await.unwrap().unwrap().entries;
    assert_eq!(
        entries,
        record(&[("user", "\"ann\""), ("after", "1")]).entries
    );
    assert_eq!(redis_cli(6393, &["HGET", key.as_str(), "after"]), "1");
    drop(sentinels);
}

#[tokio::test]
async fn rediss_speaks_tls_and_checks_the_certificate() {
    const PORT: u16 = 6397;
    let dir = std::env::temp_dir().join("session-redis-tls-test");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl makes a test certificate");
    assert!(made.success());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let _server = Server::start_tls(PORT, cert, key);

    // The certificate is self-signed: a checked connection must refuse it.
    let refused = RedisStore::builder(format!("rediss://127.0.0.1:{PORT}"))
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect_err("an untrusted certificate was accepted");
    assert!(
        refused.to_string().contains("certificate verify failed"),
        "{refused}"
    );

    let store = RedisStore::builder(format!("rediss://127.0.0.1:{PORT}/#insecure"))
        .build()
        .await
        .expect("a TLS connection");
    let key = unique_key("tls");
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().entries,
        record(&[("a", "1")]).entries
    );
}

#[tokio::test]
async fn debug_names_the_kind_of_deployment_and_nothing_else() {
    for (url, kind) in [
        (SINGLE, "single"),
        (CLUSTER, "cluster"),
        (SENTINEL, "sentinel"),
    ] {
        assert_eq!(
            format!("{:?}", connect(url).await),
            format!("RedisStore {{ kind: {kind:?} }}"),
            "{url}"
        );
    }
}

/// The number of connections a server has accepted since it started.
fn connections_received(port: u16) -> u64 {
    let info = redis_cli(port, &["INFO", "stats"]);
    info.lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .unwrap_or_else(|| panic!("INFO stats on {port}: {info}"))
        .trim()
        .parse()
        .unwrap()
}

/// The number of clients connected to a server now.
fn connected_clients(port: u16) -> u64 {
    let info = redis_cli(port, &["INFO", "clients"]);
    info.lines()
        .find_map(|line| line.strip_prefix("connected_clients:"))
        .unwrap_or_else(|| panic!("INFO clients on {port}: {info}"))
        .trim()
        .parse()
        .unwrap()
}

/// Waits until `check` holds, for at most five seconds.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "still not so: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_stores_on_one_thread_keep_their_own_databases() {
    // Both stores make their connection on this (one) thread: each must use
    // its own, not the other's.
    let one = connect("redis://127.0.0.1:6379/1").await;
    let two = connect("redis://127.0.0.1:6379/2").await;
    let key = unique_key("two-dbs");
    assert!(
        one.create(&key, &record(&[("db", "1")]), Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert_eq!(two.load(&key).await.unwrap(), None, "database 2 is apart");
    assert!(
        two.create(&key, &record(&[("db", "2")]), Duration::from_secs(60))
            .await
            .unwrap()
    );
    let entries = |r: Option<Record>| r.unwrap().entries;
    assert_eq!(
        entries(one.load(&key).await.unwrap()),
        record(&[("db", "1")]).entries
    );
    assert_eq!(
        entries(two.load(&key).await.unwrap()),
        record(&[("db", "2")]).entries
    );
    assert_eq!(
        redis_cli(6379, &["-n", "1", "HGET", key.as_str(), "db"]),
        "1"
    );
    assert_eq!(
        redis_cli(6379, &["-n", "2", "HGET", key.as_str(), "db"]),
        "2"
    );
}

#[tokio::test]
async fn a_store_keeps_one_connection_per_thread_and_closes_it_when_dropped() {
    const PORT: u16 = 6384;
    let _server = Server::start(PORT, &[]);
    // `build` checks the server with a connection of its own, then drops it.
    let store = connect(&format!("redis://127.0.0.1:{PORT}")).await;
    let before = connections_received(PORT);
    let key = unique_key("per-thread");
    store
        .create(&key, &record(&[("a", "1")]), Duration::from_secs(60))
        .await
        .unwrap();
    for _ in 0..20 {
        assert!(store.load(&key).await.unwrap().is_some());
    }
    // One connection for the store, one for the INFO below.
    assert_eq!(connections_received(PORT) - before, 2);

    drop(store);
    // Only the redis-cli asking is left.
    until("the dropped store's connection is closed", || {
        connected_clients(PORT) == 1
    })
    .await;
}

#[test]
fn a_thread_whose_runtime_ended_connects_again_after_one_failure() {
    // A thread that outlives the runtime its connection was made on (a
    // restarted actix System, a test runtime per test): the connection
    // manager reconnects on the thread's new runtime.
    const PORT: u16 = 6386;
    let _server = Server::start(PORT, &[]);
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = runtime();
    let store = first.block_on(async {
        RedisStore::builder(format!("redis://127.0.0.1:{PORT}"))
            .timeout(Duration::from_millis(500))
            .build()
            .await
            .unwrap()
    });
    let key = unique_key("runtime");
    first
        .block_on(store.create(&key, &record(&[("a", "1")]), Duration::from_secs(60)))
        .unwrap();
    drop(first);

    let second = runtime();
    let mut failures = 0;
    let loaded = second.block_on(async {
        loop {
            match store.load(&key).await {
                Ok(loaded) => break loaded,
                Err(error) => {
                    failures += 1;
                    assert!(failures < 3, "still failing: {error:?}");
                }
            }
        }
    });
    assert_eq!(loaded.unwrap().entries, record(&[("a", "1")]).entries);
    assert!(failures <= 1, "{failures} failures");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_asks_for_the_master_once_and_keeps_its_connection() {
    // A private master and sentinel, so that no other test's connections
    // are counted.
    const MASTER: u16 = 6388;
    const SENTINEL_PORT: u16 = 26388;
    let _master = Server::start(MASTER, &[]);
    let conf = std::env::temp_dir().join(format!("session-sentinel-test-{SENTINEL_PORT}.conf"));
    std::fs::write(
        &conf,
        format!(
            "sentinel resolve-hostnames no\n\
             sentinel monitor reuse 127.0.0.1 {MASTER} 1\n"
        ),
    )
    .unwrap();
    let _sentinel = Server::start_with(conf.to_str(), SENTINEL_PORT, &["--sentinel"]);
    let store = connect(&format!("redis+sentinel://127.0.0.1:{SENTINEL_PORT}/reuse")).await;
    let key = unique_key("sentinel-reuse");
    eventually(Duration::from_secs(10), async || {
        store
            .create(&key, &record(&[("a", "1")]), Duration::from_secs(60))
            .await
    })
    .await;
    let before = connections_received(MASTER);
    for _ in 0..20 {
        assert!(store.load(&key).await.unwrap().is_some());
    }
    // The INFO calls' own connections, and perhaps the sentinel's: not one
    // per load.
    let made = connections_received(MASTER) - before;
    assert!(made <= 3, "{made} connections for 20 loads");
}

// The near cache (`SESSION_LOCAL_CACHE`) on Redis: every contract of the
// store holds behind it, this process's writes are seen at once, another
// process's within the invalidation delay, and a feed that may have missed
// something is never trusted.

async fn cached(url: &str) -> session_core::store::NearCache<RedisStore> {
    RedisStore::builder(url)
        .build_near_cache(10_000)
        .await
        .unwrap_or_else(|e| panic!("{url} must be up (run scripts/services.sh): {e}"))
}

mod single_near_cache {
    session_core::store_suite!(super::cached(super::SINGLE));
}

mod sentinel_near_cache {
    session_core::store_suite!(super::cached(super::SENTINEL));
}

async fn value_of(store: &impl SessionStore, key: &session_core::StoreKey) -> Option<String> {
    let record = store.load(key).await.unwrap()?;
    Some(String::from_utf8(record.entries.get("v")?.to_vec()).unwrap())
}

/// 8 sessions written and read back 100 times each, concurrently: the
/// number of reads that missed this process's own write (0 expected).
async fn own_writes_read_back(store: &Arc<session_core::store::NearCache<RedisStore>>) -> usize {
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            let key = unique_key("near-own");
            assert!(
                store
                    .create(&key, &record(&[("v", "0")]), LONG)
                    .await
                    .unwrap()
            );
            let mut stale = 0;
            for i in 1..=100 {
                let value = format!("{task}-{i}");
                let applied = store
                    .apply(&key, &set(&[("v", &value)]), LONG)
                    .await
                    .unwrap();
                assert_eq!(applied, Applied::Done);
                if value_of(&*store, &key).await.as_deref() != Some(value.as_str()) {
                    stale += 1;
                }
            }
            store.delete(&key).await.unwrap();
            if store.load(&key).await.unwrap().is_some() {
                stale += 1;
            }
            stale
        }));
    }
    let mut stale = 0;
    for task in tasks {
        stale += task.await.unwrap();
    }
    stale
}

/// As an actix-web worker runs them: on one thread, whose tracking
/// connection carries all of them.
#[tokio::test]
async fn near_cache_serves_this_process_its_own_writes_at_once() {
    let store = Arc::new(cached(SINGLE).await);
    assert_eq!(
        own_writes_read_back(&store).await,
        0,
        "reads that missed this process's own write"
    );
    let stats = store.stats();
    // The reads were served by the cache: the test measured it, not Redis.
    // (Most of the 800: two keys of one stripe of the cache, one time in
    // a hundred or so, cost each other misses, never a stale read.)
    assert!(stats.hits >= 400, "{stats:?}");
    assert_eq!(stats.invalidations, 0, "{stats:?}");
}

/// Tasks that move between threads, each with its own tracking connection:
/// a write on one thread drops the copy another thread's connection read,
/// and no read misses a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_serves_own_writes_at_once_across_threads() {
    let store = Arc::new(cached(SINGLE).await);
    assert_eq!(
        own_writes_read_back(&store).await,
        0,
        "reads that missed this process's own write"
    );
    assert!(store.stats().hits > 0, "{:?}", store.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_sees_another_process_write_once_its_invalidation_arrives() {
    // Two caches with their own tracking connections stand for two
    // processes.
    let (a, b) = (cached(SINGLE).await, cached(SINGLE).await);
    let key = unique_key("near-other");
    assert!(a.create(&key, &record(&[("v", "0")]), LONG).await.unwrap());
    let mut delays = Vec::new();
    for i in 1..=50 {
        // `a` writes (every other time a refresh), so the key must stay
        // tracked after `a`'s own writes, then reads: cached.
        if i % 2 == 0 {
            let applied = a
                .apply(&key, &set(&[("own", &i.to_string())]), LONG)
                .await
                .unwrap();
            assert_eq!(applied, Applied::Done);
        } else {
            assert_eq!(a.touch(&key, LONG).await.unwrap(), Applied::Done);
        }
        let before = value_of(&a, &key).await.unwrap();
        assert_eq!(value_of(&a, &key).await.unwrap(), before);
        let value = i.to_string();
        let written = Instant::now();
        let applied = b.apply(&key, &set(&[("v", &value)]), LONG).await.unwrap();
        assert_eq!(applied, Applied::Done);
        loop {
            if value_of(&a, &key).await.as_deref() == Some(value.as_str()) {
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(2),
                "another process's write unseen after 2 s"
            );
            tokio::task::yield_now().await;
        }
        delays.push(written.elapsed());
    }
    let stats = a.stats();
    assert!(stats.invalidations >= 50, "{stats:?}");
    assert!(stats.hits >= 50, "{stats:?}");
    delays.sort();
    eprintln!(
        "invalidation delay over {} writes: p50 {:?}, max {:?}",
        delays.len(),
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );

    // A logout in the other process ends the session here too.
    b.delete(&key).await.unwrap();
    let deleted = Instant::now();
    while a.load(&key).await.unwrap().is_some() {
        assert!(
            deleted.elapsed() < Duration::from_secs(2),
            "a logout elsewhere unseen after 2 s"
        );
        tokio::task::yield_now().await;
    }
}

/// The tracking connection's client ids on the server at `port`.
fn tracking_clients(port: u16) -> Vec<String> {
    redis_cli(port, &["CLIENT", "LIST"])
        .lines()
        .filter(|line| line.contains("name=session-near-cache"))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_is_bypassed_while_its_feed_is_down_and_emptied_when_it_is_back() {
    const PORT: u16 = 6398;
    let url = format!("redis://127.0.0.1:{PORT}");
    let server = Server::start(PORT, &[]);
    let store = RedisStore::builder(&url)
        .timeout(Duration::from_millis(500))
        .build_near_cache(100)
        .await
        .unwrap();
    let other = RedisStore::builder(&url).build().await.unwrap();
    let key = unique_key("near-down");
    assert!(
        store
            .create(&key, &record(&[("v", "1")]), LONG)
            .await
            .unwrap()
    );
    assert_eq!(value_of(&store, &key).await.as_deref(), Some("1"));
    assert_eq!(store.stats().entries, 1);

    // The server goes away: the cache is emptied, and reads go to the
    // store (and fail, as a store that is down does), never to a copy that
    // nothing keeps right.
    let flushes = store.stats().flushes;
    drop(server);
    let down = Instant::now();
    while store.load(&key).await.is_ok() {
        assert!(
            down.elapsed() < Duration::from_secs(5),
            "the cache still served reads 5 s after Redis went down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.stats().flushes > flushes, "{:?}", store.stats());
    assert_eq!(store.stats().entries, 0);

    // A new server, written to before the cache's connection is back: no
    // invalidation of that write ever reaches the cache.
    let _server = Server::start(PORT, &[]);
    let _ = eventually(Duration::from_secs(10), async || {
        other.create(&key, &record(&[("v", "2")]), LONG).await
    })
    .await;
    let back = Instant::now();
    loop {
        match store.load(&key).await {
            Ok(Some(record)) => {
                assert_eq!(
                    record.entries["v"], "2",
                    "the cache served a copy from before the outage"
                );
                break;
            }
            _ => assert!(
                back.elapsed() < Duration::from_secs(10),
                "the store did not come back"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Tracking is on again: the session is cached, and a change elsewhere
    // reaches the cache.
    let cached = Instant::now();
    while store.stats().entries == 0 {
        assert!(
            cached.elapsed() < Duration::from_secs(5),
            "{:?}",
            store.stats()
        );
        assert_eq!(value_of(&store, &key).await.as_deref(), Some("2"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = other.apply(&key, &set(&[("v", "3")]), LONG).await.unwrap();
    let written = Instant::now();
    while value_of(&store, &key).await.as_deref() != Some("3") {
        assert!(
            written.elapsed() < Duration::from_secs(2),
            "a change after the reconnect unseen"
        );
        tokio::task::yield_now().await;
    }

    // A killed tracking connection alone (the server stays up) is noticed
    // too: the cache is emptied.
    assert_eq!(value_of(&store, &key).await.as_deref(), Some("3"));
    assert_eq!(store.stats().entries, 1);
    let flushes = store.stats().flushes;
    for id in tracking_clients(PORT) {
        redis_cli(PORT, &["CLIENT", "KILL", "ID", &id]);
    }
    let killed = Instant::now();
    while store.stats().flushes == flushes {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "{:?}",
            store.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.stats().entries, 0);
    let _ = other.apply(&key, &set(&[("v", "4")]), LONG).await.unwrap();
    assert_eq!(value_of(&store, &key).await.as_deref(), Some("4"));
}

/// A tracking connection that stops delivering without closing (a NAT or a
/// firewall dropping it silently): the cache stops serving within a few
/// heartbeats, so a logout elsewhere, whose invalidation never arrives,
/// ends the session here too; once the connection flows again, a new one
/// tracks and the cache is used, and kept right, again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_stops_serving_when_its_connection_stalls_without_closing() {
    let proxy = proxy::Proxy::start("127.0.0.1:6379").await;
    let store = RedisStore::builder(format!("redis://{}", proxy.address()))
        .timeout(Duration::from_millis(500))
        .heartbeat(Duration::from_millis(100), Duration::from_millis(200))
        .build_near_cache(100)
        .await
        .unwrap();
    let other = connect(SINGLE).await;
    let key = unique_key("near-stall");
    assert!(
        store
            .create(&key, &record(&[("v", "1")]), LONG)
            .await
            .unwrap()
    );
    assert_eq!(value_of(&store, &key).await.as_deref(), Some("1"));
    let hits = store.stats().hits;
    assert_eq!(value_of(&store, &key).await.as_deref(), Some("1"));
    assert_eq!(store.stats().hits, hits + 1, "cached: {:?}", store.stats());

    proxy.stall();
    other.delete(&key).await.unwrap();
    let stalled = Instant::now();
    let mut served = 0;
    // Served from the cache, or not at all: the store is behind the
    // stall too, so a load that goes to it hangs (and is cut here).
    while let Ok(Ok(Some(_))) =
        tokio::time::timeout(Duration::from_millis(50), store.load(&key)).await
    {
        served += 1;
        assert!(
            stalled.elapsed() < Duration::from_secs(3),
            "a logged-out session served {served} times over 3 s after the connection stalled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "after the stall: served {served} times, for {:?}",
        stalled.elapsed()
    );
    while store.stats().entries > 0 {
        assert!(
            stalled.elapsed() < Duration::from_secs(3),
            "not emptied: {:?}",
            store.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    proxy.resume();
    let resumed = Instant::now();
    loop {
        match store.load(&key).await {
            Ok(None) => break,
            Ok(Some(_)) => panic!("a logged-out session served after the stall"),
            Err(error) => assert!(
                resumed.elapsed() < Duration::from_secs(10),
                "the store did not come back: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let key = unique_key("near-stall-after");
    assert!(
        store
            .create(&key, &record(&[("v", "1")]), LONG)
            .await
            .unwrap()
    );
    let cached = Instant::now();
    while store.stats().entries == 0 {
        assert!(
            cached.elapsed() < Duration::from_secs(5),
            "{:?}",
            store.stats()
        );
        assert_eq!(value_of(&store, &key).await.as_deref(), Some("1"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = other.apply(&key, &set(&[("v", "2")]), LONG).await.unwrap();
    let written = Instant::now();
    while value_of(&store, &key).await.as_deref() != Some("2") {
        assert!(
            written.elapsed() < Duration::from_secs(2),
            "a change after the stall unseen"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn near_cache_on_a_cluster_is_refused_naming_the_setting() {
    let error = RedisStore::builder(CLUSTER)
        .build_near_cache(100)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("SESSION_LOCAL_CACHE"), "{error}");
}

// ---- SESSION_REDIS_MIN_REPLICAS: a write counts once replicas have it.

async fn with_replicas(url: &str, n: usize) -> RedisStore {
    RedisStore::builder(url)
        .timeout(Duration::from_secs(1))
        .min_replicas(n)
        .build()
        .await
        .unwrap_or_else(|e| panic!("{url} must be up (run scripts/services.sh): {e}"))
}

/// Where the master has a replica (the cluster's masters each have one,
/// Sentinel's master has one), every kind of write goes through, and the
/// replica holds it when the call returns.
async fn writes_wait_for_a_replica_and_it_has_them(url: &str) {
    let store = with_replicas(url, 1).await;
    let key = unique_key("replicas");
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    assert_eq!(
        store.apply(&key, &set(&[("b", "2")]), LONG).await.unwrap(),
        Applied::Done
    );
    assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Done);
    let taken = store.take(&key).await.unwrap().expect("the session");
    assert_eq!(taken.entries.len(), 2);
    store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn cluster_writes_wait_for_a_replica() {
    writes_wait_for_a_replica_and_it_has_them(CLUSTER).await;
}

#[tokio::test]
async fn sentinel_writes_wait_for_a_replica() {
    writes_wait_for_a_replica_and_it_has_them(SENTINEL).await;
}

/// On the cluster, the replica of the key's master has the write the
/// moment the call returns: read straight from it (`READONLY`).
#[tokio::test]
async fn the_replica_has_the_write_when_the_call_returns() {
    let store = with_replicas(CLUSTER, 1).await;
    for _ in 0..20 {
        let key = unique_key("replicated");
        assert!(
            store
                .create(&key, &record(&[("a", "1")]), LONG)
                .await
                .unwrap()
        );
        let slot = redis_cli(7000, &["cluster", "keyslot", key.as_str()]);
        let slot: u16 = slot.trim().parse().unwrap();
        let replica = replica_port_of_slot(slot);
        let exists = redis_cli_readonly_exists(replica, key.as_str());
        assert!(
            exists,
            "the replica on {replica} lacks {key:?} after the write returned"
        );
        store.delete(&key).await.unwrap();
    }
}

/// `EXISTS key` on a replica, in a connection that said `READONLY`.
fn redis_cli_readonly_exists(port: u16, key: &str) -> bool {
    use std::io::Write;
    let mut child = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    writeln!(child.stdin.as_mut().unwrap(), "READONLY\nEXISTS {key}").unwrap();
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    out.lines().last().map(str::trim) == Some("1")
}

/// The port of the replica of the master that serves `slot` on the
/// cluster of `scripts/services.sh`.
fn replica_port_of_slot(slot: u16) -> u16 {
    let nodes = redis_cli(7000, &["cluster", "nodes"]);
    let lines: Vec<Vec<&str>> = nodes
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let master = lines
        .iter()
        .find(|f| {
            f[2].contains("master")
                && f[8..].iter().any(|range| {
                    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                    lo.parse::<u16>().is_ok_and(|lo| lo <= slot)
                        && hi.parse::<u16>().is_ok_and(|hi| slot <= hi)
                })
        })
        .expect("a master serves the slot");
    let replica = lines
        .iter()
        .find(|f| f[3] == master[0] && f[2].contains("slave"))
        .expect("the master has a replica");
    replica[1]
        .split('@')
        .next()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .expect("a replica address")
}

/// More replicas than there are: no write is acknowledged, whichever it
/// is (a logout's `take` or `delete` as much as a `create`), and the call
/// fails (the middleware answers with its outage policy) once half the
/// timeout has passed, saying why.
#[tokio::test]
async fn a_write_fewer_replicas_acknowledge_fails_naming_the_setting() {
    for (url, n) in [(SINGLE, 1), (CLUSTER, 2)] {
        let store = with_replicas(url, n).await;
        let plain = connect(url).await;
        let key = unique_key("unreplicated");
        for op in ["create", "apply", "touch", "take", "delete"] {
            if op != "create" {
                // The session is there for the write to change or end.
                plain
                    .create(&key, &record(&[("a", "1")]), LONG)
                    .await
                    .unwrap();
            }
            let started = Instant::now();
            let written = match op {
                "create" => store
                    .create(&key, &record(&[("a", "1")]), LONG)
                    .await
                    .map(drop),
                "apply" => store.apply(&key, &set(&[("b", "2")]), LONG).await.map(drop),
                "touch" => store.touch(&key, LONG).await.map(drop),
                "take" => store.take(&key).await.map(drop),
                _ => store.delete(&key).await,
            };
            let Err(error) = written else {
                panic!("{url}: a {op} no replica acknowledged counted as done");
            };
            assert!(
                error.to_string().contains("SESSION_REDIS_MIN_REPLICAS"),
                "{url}, {op}: {error}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{url}, {op}: WAIT was not bounded"
            );
        }
        // Reads do not wait.
        store.load(&key).await.unwrap();
        plain.delete(&key).await.ok();
    }
}

/// A write waiting for replicas holds a connection of its own: `WAIT`
/// blocks the connection it is sent on, and the calls of other requests
/// on the same thread must not queue behind it.
#[tokio::test]
async fn a_write_waiting_for_replicas_does_not_hold_up_other_calls() {
    // No replica on the single server: the write waits half the timeout.
    let store = Arc::new(with_replicas(SINGLE, 1).await);
    let reader = unique_key("not-held-up");
    assert!(
        connect(SINGLE)
            .await
            .create(&reader, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    // Warm this thread's connections up (the shared one and a writer's).
    store.load(&reader).await.unwrap();
    let waiting = tokio::spawn({
        let store = Arc::clone(&store);
        async move {
            let key = unique_key("waits");
            store.create(&key, &record(&[("a", "1")]), LONG).await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "the write did not wait");
    for _ in 0..5 {
        assert!(store.load(&reader).await.unwrap().is_some());
    }
    assert!(
        !waiting.is_finished(),
        "the reads were held up until the waiting write ended"
    );
    assert!(
        waiting.await.unwrap().is_err(),
        "no replica acknowledged it"
    );
    store.delete(&reader).await.ok();
}
