//! Servers that accept connections and never answer: opening a store on
//! one (or its first call) must fail with a timeout, within about the
//! configured store timeout, never hang. Each test runs its own silent
//! server on a free loopback port.
//!
//! The bound is twice the timeout plus [`ALLOWANCE`]: a store may spend one
//! timeout connecting and one more on a first command (or a second try that
//! tells why the first failed), and nothing more.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The store timeout the tests configure (`SESSION_STORE_TIMEOUT`).
const TIMEOUT: Duration = Duration::from_millis(500);
const TIMEOUT_SETTING: &str = "0.5";

/// Beyond twice the timeout: loopback connections, the drivers' own
/// bookkeeping, and a busy two-core machine running other tests at once.
const ALLOWANCE: Duration = Duration::from_millis(300);

/// A TCP server on a free loopback port that accepts connections, holds
/// them open and never writes a byte.
struct Silent {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Silent {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let address = listener.local_addr().unwrap();
        // Non-blocking, so that the thread can notice it should stop; the
        // kernel completes clients' connections without waiting for it.
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((socket, _)) => held.push(socket),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("the silent server failed: {e}"),
                }
            }
        });
        Self {
            address,
            stop,
            thread: Some(thread),
        }
    }

    /// `host:port`.
    fn address(&self) -> String {
        self.address.to_string()
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `call`, failing the test if it ends before the timeout could have
/// passed (then something else failed it, or the configured timeout was
/// not applied) or past the bound, and returns its result. A call that
/// hangs is cut off ten seconds past the bound, so that it fails the test
/// instead of blocking the run.
async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    let bound = 2 * TIMEOUT + ALLOWANCE;
    let started = Instant::now();
    let result = tokio::time::timeout(bound + Duration::from_secs(10), call)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting {bound:?} past its bound"));
    let took = started.elapsed();
    assert!(
        took >= TIMEOUT.mul_f64(0.9),
        "{what} gave up after {took:?}, before the {TIMEOUT:?} timeout"
    );
    assert!(
        took < bound,
        "{what} took {took:?}, past {bound:?} (twice the {TIMEOUT:?} timeout and {ALLOWANCE:?})"
    );
    result
}

fn config(pairs: &[(&str, &str)]) -> session_core::SessionConfig {
    let mut all = vec![("SESSION_STORE_TIMEOUT", TIMEOUT_SETTING)];
    all.extend_from_slice(pairs);
    session_core::SessionConfig::from_source(all).expect("a valid configuration")
}

/// Opens the store that `pairs` configure (on a silent server): it must
/// fail in time, with an error naming `key` and saying that it timed out
/// (one of `timed_out`).
async fn open_fails(key: &str, pairs: &[(&str, &str)], timed_out: &[&str]) {
    let config = config(pairs);
    let what = format!("opening {:?}", config.store.kind());
    let opened = bounded(&what, session_core::store::open(&config)).await;
    let error = opened
        .err()
        .unwrap_or_else(|| panic!("{what} succeeded on a server that never answers"));
    assert_eq!(error.key(), key, "{error}");
    let message = error.to_string();
    assert!(
        timed_out.iter().any(|t| message.contains(t)),
        "{what}: {message:?} does not say it timed out"
    );
}

/// How [`StoreError::Timeout`](session_core::StoreError::Timeout) reads
/// with the tests' timeout.
const STORE_TIMEOUT: &str = "did not answer within 500ms";

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_open_times_out() {
    let server = Silent::start();
    open_fails(
        "SESSION_REDIS",
        &[
            ("SESSION_TYPE", "redis"),
            ("SESSION_REDIS", &format!("redis://{}", server.address())),
        ],
        // The driver's own timeout, or the store's.
        &["timed out", STORE_TIMEOUT],
    )
    .await;
}

#[cfg(feature = "redis-cluster")]
#[tokio::test]
async fn redis_cluster_open_times_out() {
    let server = Silent::start();
    open_fails(
        "SESSION_REDIS",
        &[
            ("SESSION_TYPE", "redis"),
            (
                "SESSION_REDIS",
                &format!("redis+cluster://{}", server.address()),
            ),
        ],
        &["timed out", STORE_TIMEOUT],
    )
    .await;
}

/// Opening a Sentinel store asks nothing yet; its first call asks the
/// (silent) sentinel for the master, and must time out.
#[cfg(feature = "redis-sentinel")]
#[tokio::test]
async fn redis_sentinel_first_call_times_out() {
    use session_core::store::{Backend, SessionStore};

    let server = Silent::start();
    let config = config(&[
        ("SESSION_TYPE", "redis"),
        (
            "SESSION_REDIS",
            &format!("redis+sentinel://{}/mymaster", server.address()),
        ),
    ]);
    let Ok(Backend::Store(store)) = session_core::store::open(&config).await else {
        panic!("opening a Sentinel store connects to nothing")
    };
    let key = session_core::testing::unique_key("silent");
    let error = bounded("the first call", store.load(&key))
        .await
        .expect_err("a load from a silent sentinel succeeded");
    let message = error.to_string();
    assert!(
        message.contains("timed out") || message.contains(STORE_TIMEOUT),
        "{message}"
    );
}

#[cfg(feature = "memcached")]
#[tokio::test]
async fn memcached_open_times_out() {
    let server = Silent::start();
    open_fails(
        "SESSION_MEMCACHED",
        &[
            ("SESSION_TYPE", "memcached"),
            ("SESSION_MEMCACHED", &server.address()),
        ],
        &[STORE_TIMEOUT],
    )
    .await;
}

/// A memcached store connects on first use: every call on a silent server
/// fails with the store's timeout, each on its own, and the connections
/// it leaves behind do not make the next call wait longer.
#[cfg(feature = "memcached")]
#[tokio::test]
async fn memcached_calls_time_out() {
    use session_core::StoreError;
    use session_core::store::memcached::MemcachedStore;
    use session_core::store::{ChangeSet, SessionStore};
    use session_core::testing::{record, unique_key};

    let server = Silent::start();
    let store = MemcachedStore::builder([server.address()])
        .timeout(TIMEOUT)
        .build()
        .expect("building connects to nothing");
    let key = unique_key("silent");
    let rec = record(&[("a", "1")]);
    let changes = ChangeSet {
        set: rec.entries.clone().into_iter().collect(),
        ..ChangeSet::default()
    };
    let check = |what: &str, error: Option<StoreError>| {
        let error = error.unwrap_or_else(|| panic!("{what} on a silent server succeeded"));
        assert!(
            matches!(error, StoreError::Timeout(t) if t == TIMEOUT),
            "{what}: {error:?}"
        );
    };
    check("ping", bounded("ping", store.ping()).await.err());
    check("load", bounded("load", store.load(&key)).await.err());
    let long = Duration::from_secs(60);
    check(
        "create",
        bounded("create", store.create(&key, &rec, long))
            .await
            .err(),
    );
    check(
        "apply",
        bounded("apply", store.apply(&key, &changes, long))
            .await
            .err(),
    );
    check(
        "touch",
        bounded("touch", store.touch(&key, long)).await.err(),
    );
    check("delete", bounded("delete", store.delete(&key)).await.err());
    check("take", bounded("take", store.take(&key)).await.err());
}

#[cfg(feature = "sql-postgres")]
#[tokio::test]
async fn postgres_open_times_out() {
    let server = Silent::start();
    open_fails(
        "SESSION_SQL_URL",
        &[
            ("SESSION_TYPE", "sql"),
            (
                "SESSION_SQL_URL",
                &format!("postgres://postgres@{}/test", server.address()),
            ),
        ],
        &[STORE_TIMEOUT],
    )
    .await;
}

#[cfg(feature = "sql-mysql")]
#[tokio::test]
async fn mysql_open_times_out() {
    let server = Silent::start();
    open_fails(
        "SESSION_SQL_URL",
        &[
            ("SESSION_TYPE", "sql"),
            (
                "SESSION_SQL_URL",
                &format!("mysql://root@{}/test", server.address()),
            ),
        ],
        &[STORE_TIMEOUT],
    )
    .await;
}

#[cfg(feature = "mongodb")]
#[tokio::test]
async fn mongodb_open_times_out() {
    let server = Silent::start();
    open_fails(
        "SESSION_MONGODB",
        &[
            ("SESSION_TYPE", "mongodb"),
            (
                "SESSION_MONGODB",
                &format!("mongodb://{}/?directConnection=true", server.address()),
            ),
        ],
        &["Server selection timeout"],
    )
    .await;
}
