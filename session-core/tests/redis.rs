//! The Redis store against real servers: a single node, a cluster and
//! Sentinel (all started by `scripts/services.sh`), plus an outage and a
//! failover on servers this test starts and stops itself.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_core::store::redis::RedisStore;
use session_core::store::{Applied, ChangeSet, SessionStore};
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

mod single {
    session_core::store_suite!(super::connect(super::SINGLE));
}

mod cluster {
    session_core::store_suite!(super::connect(super::CLUSTER));
}

mod sentinel {
    session_core::store_suite!(super::connect(super::SENTINEL));
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
    assert!(left > lifetime - Duration::from_secs(10), "{left:?}");
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
    let _ = store
        .apply(&key, &removes, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.load(&key).await.unwrap().unwrap().entries.len(), 1001);
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
        assert!(call.expect("a call hung while Redis was down").is_err());
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
    assert_eq!(entries.len(), 2);
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
    let checked = RedisStore::builder(format!("rediss://127.0.0.1:{PORT}"))
        .timeout(Duration::from_secs(2))
        .build()
        .await;
    assert!(checked.is_err(), "an untrusted certificate was accepted");

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
