//! A Redis Cluster master killed under load, with three quickstart
//! instances behind HAProxy (round robin, no stickiness), as
//! `scripts/cluster-demo.sh` runs them: the app must recover by itself
//! (no restart), and with `SESSION_REDIS_MIN_REPLICAS=1` no write a client
//! was told about (200) may be lost.
//!
//! Each test builds its own topology on free loopback ports: a private
//! Redis Cluster (`redis-server` processes in a temporary directory,
//! `--cluster-node-timeout 2000`, made with `redis-cli --cluster create`),
//! three quickstarts, and an `haproxy`, all killed when the test ends. It
//! fails, never skips, when `redis-server`, `redis-cli` or `haproxy` is
//! missing (`scripts/services.sh` installs them).
//!
//! Twelve clients, each with its own session (cookie) and HTTP client, loop:
//! `/set?key=k&value=<counter>` then `/get?key=k` through the balancer,
//! checking that the read is the last acknowledged value (or a later write
//! whose answer was not 200: a write that failed may still have been
//! applied). After a warm-up, the master holding the most sessions is
//! killed with SIGKILL; the clients run on until each has been served
//! again (a write acknowledged and read back), then for a grace period.
//! The figures are printed (`--nocapture` shows them):
//!
//! ```sh
//! cargo test -p quickstart --all-features --test failover -- --nocapture
//! ```
//!
//! The tests take a lock file so that one runs at a time, whatever the
//! runner (two clusters at once on two cores would skew the figures);
//! `FAILOVER_KEEP=1` keeps each run's directory (the nodes', quickstarts'
//! and HAProxy's logs) and prints where.
//!
//! `SESSION_REDIS_MIN_REPLICAS=1` needs a replica left after the failover:
//! with one replica per master, the promoted replica has none, and every
//! write to its slots answers 503 (refused, not lost) until the killed node
//! is back as its replica. So the test of that setting runs 3 masters with
//! 2 replicas each, and a third test shows the 3 + 3 case: refused writes
//! on that shard, then recovery once the killed node is restarted.
//!
//! On loopback a replica keeps up within a millisecond, so a plain kill
//! rarely loses a write even without `WAIT`. Two more tests make the
//! window certain: the victim's replicas stop replicating 1.5 s before the
//! kill. Without `WAIT` the test must see acknowledged writes lost (it can
//! tell); with `SESSION_REDIS_MIN_REPLICAS=1` those writes are refused and
//! none is lost.
//!
//! A client that had a request fail reads before it writes again, so that
//! a later write cannot hide a lost one.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

#[allow(dead_code)] // this test starts its quickstarts itself, logging to files
mod common;

/// Clients, each with its own session.
const CLIENTS: usize = 12;
/// Pause between two write-then-read rounds of a client.
const PACE: Duration = Duration::from_millis(50);
/// At most this many rounds per client (two requests each).
const MAX_ROUNDS: u64 = 600;
/// Rounds before the kill: at least this long, and until every client has
/// an acknowledged write.
const WARM_UP: Duration = Duration::from_secs(2);
/// Every client must be served again within this long after the kill.
/// Redis promotes a replica after `--cluster-node-timeout` (2 s) plus an
/// election; the rest is the app's cluster client finding the new master.
const RECOVERY_BOUND: Duration = Duration::from_secs(15);
/// Rounds after every client is served again.
const GRACE: Duration = Duration::from_secs(2);
/// How long before the kill the victim's replicas stop replicating, in the
/// tests of a lagging replica.
const CUT_BEFORE_KILL: Duration = Duration::from_millis(1500);
/// `SESSION_STORE_TIMEOUT`, seconds.
const STORE_TIMEOUT: &str = "2";

/// A child process, killed (SIGKILL) and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `n` distinct free ports.
fn free_ports(n: usize) -> Vec<u16> {
    let mut seen = HashSet::new();
    while seen.len() < n {
        seen.insert(common::free_port());
    }
    seen.into_iter().collect()
}

/// Fails loudly when a tool the test needs is not installed.
fn require(tool: &str, version_flag: &str) {
    match Command::new(tool).arg(version_flag).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("`{tool} {version_flag}` failed: {out:?}"),
        Err(error) => panic!(
            "{tool} is needed by this test and could not be run ({error}): \
             install it (scripts/services.sh does, with apt-get)"
        ),
    }
}

fn redis_cli(port: u16, args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

fn redis_text(port: u16, args: &[&str]) -> String {
    redis_cli(port, args)
        .map(|out| String::from_utf8_lossy(&out).replace('\r', ""))
        .unwrap_or_default()
}

/// A field of `INFO` or `CLUSTER INFO` output.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::to_owned)
}

fn wait_until(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private Redis Cluster on free ports.
struct Cluster {
    dir: PathBuf,
    /// The client port of each node, and its cluster bus port.
    ports: Vec<(u16, u16)>,
    nodes: BTreeMap<u16, Proc>,
}

impl Cluster {
    fn start(dir: &Path, masters: usize, replicas: usize) -> Self {
        let n = masters * (1 + replicas);
        let all = free_ports(2 * n);
        let mut cluster = Self {
            dir: dir.to_owned(),
            ports: all[..n]
                .iter()
                .copied()
                .zip(all[n..].iter().copied())
                .collect(),
            nodes: BTreeMap::new(),
        };
        for (port, _) in cluster.ports.clone() {
            cluster.spawn(port);
        }
        for &(port, _) in &cluster.ports {
            wait_until(
                &format!("redis-server on {port} answering PING"),
                Duration::from_secs(10),
                || redis_text(port, &["ping"]).trim() == "PONG",
            );
        }
        let addresses: Vec<String> = cluster
            .ports
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Every node sees the whole cluster, and every replica has synced
        // with its master: a replica that never did cannot take over (the
        // whole cluster would stay down), and WAIT needs it.
        wait_until("the cluster", Duration::from_secs(20), || {
            cluster.ports.iter().all(|&(port, _)| {
                let info = redis_text(port, &["cluster", "info"]);
                let replication = redis_text(port, &["info", "replication"]);
                field(&info, "cluster_state").as_deref() == Some("ok")
                    && field(&info, "cluster_known_nodes") == Some(n.to_string())
                    && match field(&replication, "role").as_deref() {
                        Some("master") => {
                            field(&replication, "connected_slaves") == Some(replicas.to_string())
                        }
                        Some("slave") => {
                            field(&replication, "master_link_status").as_deref() == Some("up")
                        }
                        _ => false,
                    }
            }) && cluster.masters().len() == masters
        });
        cluster
    }

    fn spawn(&mut self, port: u16) {
        let bus = self.ports.iter().find(|(p, _)| *p == port).unwrap().1;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--cluster-port", &bus.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            // A replica's first sync at once, not after Redis's 5 s wait
            // for more replicas to share a diskless transfer.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join(format!("redis-{port}.log")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.nodes.insert(port, Proc(child));
    }

    /// The seed list for `SESSION_REDIS`: every node.
    fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// A node that runs, to ask about the cluster.
    fn seed(&self) -> u16 {
        *self.nodes.keys().next().expect("a node runs")
    }

    fn masters(&self) -> Vec<u16> {
        masters_seen_by(self.seed())
    }

    fn kill(&mut self, port: u16) {
        drop(self.nodes.remove(&port));
    }

    /// Starts a killed node again, on its port and `nodes.conf`: it
    /// rejoins as a replica of the master that replaced it.
    fn restart(&mut self, port: u16) {
        self.spawn(port);
    }
}

/// The client port of a `CLUSTER NODES` address (`ip:port@bus`).
fn port_of(address: &str) -> Option<u16> {
    address.split(['@', ':']).nth(1)?.parse().ok()
}

/// The ports of the masters that serve slots, as the node on `seed` sees
/// them.
fn masters_seen_by(seed: u16) -> Vec<u16> {
    redis_text(seed, &["cluster", "nodes"])
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let flags = fields.get(2)?;
            let serving = fields.len() > 8;
            if flags.contains("master") && !flags.contains("fail") && serving {
                port_of(fields[1])
            } else {
                None
            }
        })
        .collect()
}

/// The ports of the replicas of the master on `master`, as the node on
/// `seed` sees them.
fn replicas_of(seed: u16, master: u16) -> Vec<u16> {
    let nodes = redis_text(seed, &["cluster", "nodes"]);
    let lines: Vec<Vec<&str>> = nodes.lines().map(|l| l.split(' ').collect()).collect();
    let Some(id) = lines
        .iter()
        .find(|f| f.len() > 1 && port_of(f[1]) == Some(master))
        .map(|f| f[0])
    else {
        return Vec::new();
    };
    lines
        .iter()
        .filter(|f| f.len() > 3 && f[2].contains("slave") && f[3] == id)
        .filter_map(|f| port_of(f[1]))
        .collect()
}

/// Cuts the replication link of the replica on `port`: it is told to log
/// in to its master as a user that does not exist, and its link is
/// dropped, so it stays connected to the cluster (and can be elected) but
/// takes no more writes from its master.
fn cut_replication(port: u16) {
    for args in [
        ["config", "set", "masteruser", "no-such-user"],
        ["config", "set", "masterauth", "no-such-password"],
    ] {
        assert_eq!(redis_text(port, &args).trim(), "OK", "{port}: {args:?}");
    }
    redis_text(port, &["client", "kill", "type", "master"]);
    wait_until(
        &format!("replica {port}'s link down"),
        Duration::from_secs(5),
        || {
            field(
                &redis_text(port, &["info", "replication"]),
                "master_link_status",
            )
            .as_deref()
                == Some("down")
        },
    );
}

/// Undoes [`cut_replication`]: the replica syncs with whichever master it
/// follows next.
fn mend_replication(port: u16) {
    for args in [
        ["config", "set", "masteruser", ""],
        ["config", "set", "masterauth", ""],
    ] {
        assert_eq!(redis_text(port, &args).trim(), "OK", "{port}: {args:?}");
    }
}

/// Which master holds each client's session (found by the `client-NN`
/// the session stores).
fn sessions_by_master(seed: u16) -> BTreeMap<u16, Vec<usize>> {
    let mut map = BTreeMap::new();
    for master in masters_seen_by(seed) {
        let keys = redis_text(master, &["--scan"]);
        let mut clients = Vec::new();
        for key in keys.lines().filter(|k| !k.is_empty()) {
            let Some(fields) = redis_cli(master, &["hgetall", key]) else {
                continue;
            };
            for client in 0..CLIENTS {
                let tag = format!("\"{}\"", tag(client));
                if fields.windows(tag.len()).any(|w| w == tag.as_bytes()) {
                    clients.push(client);
                }
            }
        }
        map.insert(master, clients);
    }
    map
}

fn tag(client: usize) -> String {
    format!("client-{client:02}")
}

/// HAProxy on `port` in front of `servers`: round robin, no stickiness,
/// health checks, retries on another instance when a connection fails,
/// and `X-Served-By` naming the instance.
fn haproxy(port: u16, servers: &[u16], dir: &Path) -> Proc {
    let mut config = format!(
        "global
    maxconn 2000

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    retries 2
    option redispatch

frontend sessions
    bind 127.0.0.1:{port}
    default_backend quickstarts

backend quickstarts
    balance roundrobin
    option httpchk GET /get?key=health
    http-check expect rstatus ^(200|404)$
    default-server check inter 1s fall 2 rise 1
    http-response set-header X-Served-By %s
"
    );
    for (n, server) in servers.iter().enumerate() {
        writeln!(config, "    server app{} 127.0.0.1:{server}", n + 1).unwrap();
    }
    let path = dir.join("haproxy.cfg");
    fs::write(&path, config).unwrap();
    let check = Command::new("haproxy")
        .args(["-c", "-q", "-f"])
        .arg(&path)
        .output()
        .expect("haproxy runs");
    assert!(
        check.status.success(),
        "haproxy rejects its configuration: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = File::create(dir.join("haproxy.log")).unwrap();
    let mut child = Proc(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("haproxy starts"),
    );
    wait_until("haproxy", Duration::from_secs(10), || {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!(
                "haproxy exited early: {status}: {}",
                fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default()
            );
        }
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    child
}

/// What one client saw. Values are the client's counters: `acked` is the
/// last write answered 200, `attempted` the last sent; a read must be in
/// `acked..=attempted`.
#[derive(Default)]
struct Seen {
    requests: u64,
    failed: u64,
    failed_before_kill: u64,
    acked: u64,
    attempted: u64,
    acked_values: Vec<u64>,
    /// Acknowledged writes found overwritten by an older value (or gone).
    lost: u64,
    lost_upto: u64,
    /// A value never written, or a 200 with a body that is no counter.
    anomalies: Vec<String>,
    /// The end of the first round started after the kill in which a write
    /// was acknowledged and read back.
    served_again: Option<Instant>,
    /// Writes acknowledged, and reads that succeeded, in rounds started
    /// after the kill and before the killed node's restart.
    acks_while_down: u64,
    reads_while_down: u64,
    served_by: BTreeMap<String, u64>,
    /// Failures by status and body, or transport error.
    failures: BTreeMap<String, u64>,
}

impl Seen {
    /// A read of `value` (0: no value): anything older than the last
    /// acknowledged write loses the acknowledged writes in between.
    fn check(&mut self, value: u64, what: &str) {
        if value > self.attempted {
            self.anomalies
                .push(format!("{what}: read {value}, never written"));
        } else if value < self.acked {
            let from = value.max(self.lost_upto);
            let lost = self
                .acked_values
                .iter()
                .filter(|v| **v > from && **v <= self.acked)
                .count() as u64;
            self.lost += lost;
            self.lost_upto = self.acked;
            if lost > 0 {
                println!(
                    "  {what}: read {value} after {} was acknowledged: {lost} acknowledged \
                     write(s) lost",
                    self.acked
                );
            }
        }
    }
}

struct Shared {
    stop: AtomicBool,
    /// When the first fault was made: the replication cut, or the kill.
    fault_at: Mutex<Option<Instant>>,
    kill_at: Mutex<Option<Instant>>,
    restart_at: Mutex<Option<Instant>>,
    seen: Vec<Mutex<Seen>>,
    /// Answers by second since the kill: successes, failures.
    timeline: Mutex<BTreeMap<u64, (u64, u64)>>,
}

enum Answer {
    Status(StatusCode, String, Option<String>),
    Error(String),
}

async fn call(http: &reqwest::Client, url: &str) -> Answer {
    match http.get(url).send().await {
        Ok(response) => {
            let status = response.status();
            let by = response
                .headers()
                .get("x-served-by")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match response.text().await {
                Ok(body) => Answer::Status(status, body, by),
                Err(error) => Answer::Error(error_kind(&error)),
            }
        }
        Err(error) => Answer::Error(error_kind(&error)),
    }
}

fn error_kind(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        error.to_string()
    }
}

/// What a request was, for [`Shared::record`].
#[derive(Clone, Copy)]
enum Request {
    /// `/set?key=client&value=client-NN`.
    Tag,
    /// `/set?key=k&value=N`.
    Write(u64),
    /// `/get?key=k`, in the round that wrote `N`; `None`: the final read.
    Read(Option<u64>),
}

impl Shared {
    /// Notes an answer to client `id`; true if it was a success (200, or
    /// 404 for a read), for a read the value it read (0: none).
    fn record(
        &self,
        id: usize,
        request: Request,
        answer: &Answer,
        after_kill: bool,
    ) -> (bool, Option<u64>) {
        // Answered before the killed node was started again (the restart
        // is noted before it is made).
        let while_down = after_kill && self.restart_at.lock().unwrap().is_none();
        let mut seen = self.seen[id].lock().unwrap();
        seen.requests += 1;
        let what = match request {
            Request::Read(None) => format!("{} at the end", tag(id)),
            _ => tag(id),
        };
        let (status, body) = match answer {
            Answer::Status(status, body, by) => {
                if let Some(by) = by {
                    *seen.served_by.entry(by.clone()).or_default() += 1;
                }
                (*status, body.as_str())
            }
            Answer::Error(_) => (StatusCode::SERVICE_UNAVAILABLE, ""),
        };
        let (ok, read) = match (request, status) {
            (Request::Tag, StatusCode::OK) => (body == "ok", None),
            (Request::Write(value), _) => {
                seen.attempted = value;
                let ok = status == StatusCode::OK && body == "ok";
                if ok {
                    seen.acked = value;
                    seen.acked_values.push(value);
                    if while_down {
                        seen.acks_while_down += 1;
                    }
                }
                (ok, None)
            }
            (Request::Read(_), StatusCode::OK | StatusCode::NOT_FOUND) => {
                let value = if status == StatusCode::NOT_FOUND {
                    Some(0)
                } else {
                    body.parse::<u64>().ok()
                };
                match value {
                    Some(value) => {
                        seen.check(value, &what);
                        if while_down {
                            seen.reads_while_down += 1;
                        }
                        (true, Some(value))
                    }
                    None => {
                        seen.anomalies.push(format!("{what}: read {body:?}"));
                        (false, None)
                    }
                }
            }
            _ => (false, None),
        };
        if let Some(at) = *self.kill_at.lock().unwrap() {
            let second = at.elapsed().as_secs();
            let mut timeline = self.timeline.lock().unwrap();
            let slot = timeline.entry(second).or_default();
            if ok {
                slot.0 += 1;
            } else {
                slot.1 += 1;
            }
        }
        if !ok {
            let kind = match answer {
                Answer::Status(status, body, _) => {
                    format!("{} {:.60}", status.as_u16(), body.trim())
                }
                Answer::Error(kind) => kind.clone(),
            };
            *seen.failures.entry(kind).or_default() += 1;
            seen.failed += 1;
            if self.fault_at.lock().unwrap().is_none() {
                seen.failed_before_kill += 1;
            }
        }
        (ok, read)
    }

    fn after_kill(&self, started: Instant) -> bool {
        self.kill_at.lock().unwrap().is_some_and(|at| started >= at)
    }

    fn served_again(&self, id: usize) {
        let mut seen = self.seen[id].lock().unwrap();
        if seen.served_again.is_none() {
            seen.served_again = Some(Instant::now());
        }
    }
}

/// One client: its session, tagged `client-NN` so that the test can find
/// which master holds it, then rounds of a write and a read until told to
/// stop, then a last read.
async fn client(id: usize, lb: String, shared: Arc<Shared>) {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let tag_url = format!("{lb}/set?key=client&value={}", tag(id));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = call(&http, &tag_url).await;
        if shared.record(id, Request::Tag, &answer, false).0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no session within 10 s",
            tag(id)
        );
        tokio::time::sleep(PACE).await;
    }

    let read_url = format!("{lb}/get?key=k");
    // A write would hide an acknowledged write lost in a failover (it
    // replaces the value a read would have shown missing), so after a
    // failed request, and in the first round after the kill, the client
    // reads until a read succeeds before it writes again.
    let mut read_first = false;
    let mut seen_kill = false;
    for counter in 1..=MAX_ROUNDS {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let after_kill = shared.after_kill(Instant::now());
        if after_kill && !seen_kill {
            seen_kill = true;
            read_first = true;
        }
        if read_first {
            let answer = call(&http, &read_url).await;
            let (ok, _) = shared.record(id, Request::Read(Some(counter)), &answer, after_kill);
            read_first = !ok;
            tokio::time::sleep(PACE).await;
            continue;
        }
        let write = format!("{lb}/set?key=k&value={counter}");
        let answer = call(&http, &write).await;
        let (acked, _) = shared.record(id, Request::Write(counter), &answer, after_kill);
        let answer = call(&http, &read_url).await;
        let (read_ok, read) = shared.record(id, Request::Read(Some(counter)), &answer, after_kill);
        if after_kill && acked && read == Some(counter) {
            shared.served_again(id);
        }
        read_first = !acked || !read_ok;
        tokio::time::sleep(PACE).await;
    }

    // The end: the stored value against the last acknowledged write (a
    // few tries: the store may still be failing over).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = call(&http, &read_url).await;
        if shared.record(id, Request::Read(None), &answer, true).0 {
            break;
        }
        if Instant::now() >= deadline {
            let mut seen = shared.seen[id].lock().unwrap();
            seen.anomalies
                .push(format!("{} at the end: no answer within 5 s", tag(id)));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How a run is set up.
struct Setup {
    min_replicas: usize,
    replicas_per_master: usize,
    /// Restart the killed node this long after the kill (the orphaned
    /// shard's case), else never.
    restart_after: Option<Duration>,
    /// Cut the replication of the victim's replicas this long before the
    /// kill (a replica that lags), and mend it right after the kill; else
    /// never.
    cut_before_kill: Option<Duration>,
}

/// The figures of a run.
struct Report {
    requests: u64,
    failed: u64,
    failed_before_kill: u64,
    /// Kill to the last client served again; `None`: some client never was.
    recovery: Option<Duration>,
    not_recovered: Vec<usize>,
    lost: u64,
    anomalies: Vec<String>,
    victim_acks_while_down: u64,
    victim_reads_while_down: u64,
    /// Failures by status and body, or transport error.
    failures: BTreeMap<String, u64>,
}

/// One failover run at a time on the machine, whichever runner starts the
/// tests (nextest runs each in its own process): two at once would share
/// two cores between two clusters and skew each other's figures.
fn one_at_a_time() -> File {
    let path = std::env::temp_dir().join("quickstart-failover-test.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap();
    file.lock().unwrap();
    file
}

async fn run(setup: Setup) -> Report {
    let _one_at_a_time = one_at_a_time();
    for (tool, flag) in [
        ("redis-server", "--version"),
        ("redis-cli", "--version"),
        ("haproxy", "-v"),
    ] {
        require(tool, flag);
    }
    let dir = tempfile::tempdir().unwrap();
    if std::env::var_os("FAILOVER_KEEP").is_some() {
        println!("  FAILOVER_KEEP: logs kept in {}", dir.path().display());
    }
    let mut cluster = Cluster::start(dir.path(), 3, setup.replicas_per_master);
    let url = cluster.url();
    let min_replicas = setup.min_replicas.to_string();
    let env = [
        ("SESSION_TYPE", "redis"),
        ("SESSION_REDIS", url.as_str()),
        ("SESSION_REDIS_MIN_REPLICAS", min_replicas.as_str()),
        ("SESSION_STORE_TIMEOUT", STORE_TIMEOUT),
        ("SESSION_STORE_OUTAGE", "fail"),
    ];
    let app_ports = free_ports(3);
    let apps: Vec<common::Server> = app_ports
        .iter()
        .map(|&port| {
            let log = dir.path().join(format!("quickstart-{port}.log"));
            common::start_on(port, &env, Some(&log))
        })
        .collect();
    let lb_port = free_ports(1)[0];
    let balancer = haproxy(lb_port, &app_ports, dir.path());
    let lb = format!("http://127.0.0.1:{lb_port}");
    println!(
        "failover, SESSION_REDIS_MIN_REPLICAS={}: 3 masters x {} replica(s), 3 quickstarts \
         behind haproxy {lb}",
        setup.min_replicas, setup.replicas_per_master
    );

    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        fault_at: Mutex::new(None),
        kill_at: Mutex::new(None),
        restart_at: Mutex::new(None),
        seen: (0..CLIENTS).map(|_| Mutex::new(Seen::default())).collect(),
        timeline: Mutex::new(BTreeMap::new()),
    });
    let began = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client(id, lb.clone(), shared.clone())))
        .collect();

    // Warm-up: every client has a session and an acknowledged write.
    let warm = Instant::now() + Duration::from_secs(20);
    while began.elapsed() < WARM_UP || shared.seen.iter().any(|s| s.lock().unwrap().acked == 0) {
        assert!(
            Instant::now() < warm,
            "warm-up: some client has no acknowledged write after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The victim: the master that holds the most sessions.
    let seed = cluster.seed();
    let by_master = tokio::task::spawn_blocking(move || sessions_by_master(seed))
        .await
        .unwrap();
    let (&victim, victim_clients) = by_master
        .iter()
        .max_by_key(|(_, clients)| clients.len())
        .expect("masters");
    let victim_clients = victim_clients.clone();
    let placed: usize = by_master.values().map(Vec::len).sum();
    assert_eq!(
        placed, CLIENTS,
        "every session found on a master: {by_master:?}"
    );
    assert!(!victim_clients.is_empty());
    let mut cut = Vec::new();
    if let Some(before) = setup.cut_before_kill {
        cut = replicas_of(seed, victim);
        assert_eq!(cut.len(), setup.replicas_per_master, "{victim}'s replicas");
        *shared.fault_at.lock().unwrap() = Some(Instant::now());
        let ports = cut.clone();
        tokio::task::spawn_blocking(move || ports.iter().for_each(|&p| cut_replication(p)))
            .await
            .unwrap();
        println!(
            "  cut the replication of {victim}'s replicas {cut:?}; killing it in {:.1} s",
            before.as_secs_f64()
        );
        tokio::time::sleep(before).await;
    }
    cluster.kill(victim);
    let kill_at = Instant::now();
    shared.fault_at.lock().unwrap().get_or_insert(kill_at);
    *shared.kill_at.lock().unwrap() = Some(kill_at);
    if !cut.is_empty() {
        let ports = cut.clone();
        tokio::task::spawn_blocking(move || ports.iter().for_each(|&p| mend_replication(p)))
            .await
            .unwrap();
    }
    println!(
        "  killed master 127.0.0.1:{victim} (SIGKILL) {:.1} s in; it held the sessions of \
         {} of {CLIENTS} clients: {:?}",
        (kill_at - began).as_secs_f64(),
        victim_clients.len(),
        victim_clients.iter().map(|c| tag(*c)).collect::<Vec<_>>()
    );

    // Run until every client is served again (restarting the killed node
    // first, if the setup says so), then a grace period.
    let mut restarted = false;
    let mut all_served = None;
    loop {
        let now = Instant::now();
        if let Some(after) = setup.restart_after
            && !restarted
            && now >= kill_at + after
        {
            *shared.restart_at.lock().unwrap() = Some(Instant::now());
            cluster.restart(victim);
            restarted = true;
            println!(
                "  restarted 127.0.0.1:{victim} {:.1} s after the kill",
                after.as_secs_f64()
            );
        }
        if all_served.is_none()
            && shared
                .seen
                .iter()
                .all(|s| s.lock().unwrap().served_again.is_some())
        {
            all_served = Some(now);
        }
        let bound = setup.restart_after.unwrap_or_default() + RECOVERY_BOUND;
        match all_served {
            Some(at) if now >= at + GRACE => break,
            None if now >= kill_at + bound => break,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }

    let mut report = Report {
        requests: 0,
        failed: 0,
        failed_before_kill: 0,
        recovery: None,
        not_recovered: Vec::new(),
        lost: 0,
        anomalies: Vec::new(),
        victim_acks_while_down: 0,
        victim_reads_while_down: 0,
        failures: BTreeMap::new(),
    };
    let mut served_by = BTreeMap::<String, u64>::new();
    let mut slowest = Duration::ZERO;
    for (id, seen) in shared.seen.iter().enumerate() {
        let seen = seen.lock().unwrap();
        report.requests += seen.requests;
        report.failed += seen.failed;
        report.failed_before_kill += seen.failed_before_kill;
        report.lost += seen.lost;
        report.anomalies.extend(seen.anomalies.iter().cloned());
        for (by, n) in &seen.served_by {
            *served_by.entry(by.clone()).or_default() += n;
        }
        for (kind, n) in &seen.failures {
            *report.failures.entry(kind.clone()).or_default() += n;
        }
        match seen.served_again {
            Some(at) => slowest = slowest.max(at - kill_at),
            None => report.not_recovered.push(id),
        }
        if victim_clients.contains(&id) {
            report.victim_acks_while_down += seen.acks_while_down;
            report.victim_reads_while_down += seen.reads_while_down;
        }
    }
    if report.not_recovered.is_empty() {
        report.recovery = Some(slowest);
    }
    println!(
        "  requests {}, failed {} (non-200 or transport error; {} of them answered before the \
         first fault)",
        report.requests, report.failed, report.failed_before_kill
    );
    match report.recovery {
        Some(at) => println!(
            "  every client served again {:.2} s after the kill",
            at.as_secs_f64()
        ),
        None => println!(
            "  NOT RECOVERED: {:?} never served again",
            report
                .not_recovered
                .iter()
                .map(|c| tag(*c))
                .collect::<Vec<_>>()
        ),
    }
    println!("  acknowledged writes lost: {}", report.lost);
    if setup.restart_after.is_some() {
        println!(
            "  clients on the killed master, before its restart: {} writes acknowledged, \
             {} reads served",
            report.victim_acks_while_down, report.victim_reads_while_down
        );
    }
    for (kind, n) in &report.failures {
        println!("  failed x{n}: {kind}");
    }
    println!("  answered by: {served_by:?}");
    let timeline: Vec<String> = shared
        .timeline
        .lock()
        .unwrap()
        .iter()
        .map(|(second, (ok, failed))| format!("{second}s {ok}/{failed}"))
        .collect();
    println!(
        "  after the kill, by second, succeeded/failed: {}",
        timeline.join(", ")
    );
    for anomaly in &report.anomalies {
        println!("  ANOMALY {anomaly}");
    }
    print_errors(dir.path(), &app_ports);
    println!("  run took {:.1} s", began.elapsed().as_secs_f64());
    drop(balancer);
    drop(apps);
    drop(cluster);
    if std::env::var_os("FAILOVER_KEEP").is_some() {
        let _ = dir.keep();
    }
    report
}

/// The errors the quickstarts logged, grouped by message.
fn print_errors(dir: &Path, ports: &[u16]) {
    let mut errors = BTreeMap::<String, u64>::new();
    for port in ports {
        let log =
            fs::read_to_string(dir.join(format!("quickstart-{port}.log"))).unwrap_or_default();
        for line in log.lines() {
            let line = strip_ansi(line);
            if let Some((_, message)) = line.split_once(" ERROR ") {
                *errors.entry(message.trim().to_owned()).or_default() += 1;
            }
        }
    }
    if errors.is_empty() {
        println!("  quickstart errors: none");
    }
    for (message, n) in errors {
        println!("  quickstart error x{n}: {message}");
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What every run must show: no failure before the kill, every failure a
/// 503 from the app (a store call that failed, answered by the outage
/// policy; never a transport error, a 500 or the balancer's own error), no
/// read of a value never written, and every client served again within
/// [`RECOVERY_BOUND`] of the kill.
fn assert_sound(report: &Report) {
    assert_eq!(
        report.failed_before_kill, 0,
        "requests failed before the kill"
    );
    let not_503: Vec<_> = report
        .failures
        .iter()
        .filter(|(kind, _)| !kind.starts_with("503 ") || kind.contains("<html>"))
        .collect();
    assert!(not_503.is_empty(), "failures other than 503: {not_503:?}");
    assert!(report.anomalies.is_empty(), "{:?}", report.anomalies);
    let recovery = report.recovery.unwrap_or_else(|| {
        panic!(
            "clients never served again: {:?}",
            report
                .not_recovered
                .iter()
                .map(|c| tag(*c))
                .collect::<Vec<_>>()
        )
    });
    assert!(
        recovery < RECOVERY_BOUND,
        "recovered only after {recovery:?}"
    );
}

#[tokio::test]
async fn failover_with_min_replicas_1_loses_no_acknowledged_write() {
    // Two replicas per master: after the failover the promoted replica
    // still has one, so WAIT 1 can be satisfied again.
    let report = run(Setup {
        min_replicas: 1,
        replicas_per_master: 2,
        restart_after: None,
        cut_before_kill: None,
    })
    .await;
    assert_sound(&report);
    assert_eq!(report.lost, 0, "acknowledged writes lost");
}

#[tokio::test]
async fn failover_without_wait_recovers() {
    // Asynchronous replication: a write acknowledged just before the kill
    // may not have reached the replica; the figure is reported, not
    // asserted.
    let report = run(Setup {
        min_replicas: 0,
        replicas_per_master: 1,
        restart_after: None,
        cut_before_kill: None,
    })
    .await;
    assert_sound(&report);
}

/// `SESSION_REDIS_MIN_REPLICAS=1` with one replica per master: the shard
/// whose master is killed has no replica left, so its writes are refused
/// (503), never acknowledged and lost, while its reads are served; once the
/// killed node is back (as the new master's replica, 8 s after the kill),
/// writes are acknowledged again, without restarting the app.
#[tokio::test]
async fn min_replicas_1_refuses_writes_on_a_shard_without_replica_until_one_is_back() {
    let restart_after = Duration::from_secs(8);
    let report = run(Setup {
        min_replicas: 1,
        replicas_per_master: 1,
        restart_after: Some(restart_after),
        cut_before_kill: None,
    })
    .await;
    assert_eq!(
        report.victim_acks_while_down, 0,
        "a write acknowledged with no replica to have it"
    );
    assert!(
        report.victim_reads_while_down > 0,
        "the shard's reads were not served after the failover"
    );
    assert_sound(&report);
    assert_eq!(report.lost, 0, "acknowledged writes lost");
}

/// The window `SESSION_REDIS_MIN_REPLICAS` closes, made certain: the
/// victim's replicas stop taking its writes 1.5 s before it is killed (a
/// replica that lags, as one does under load or across a slow link), so
/// every write acknowledged in those 1.5 s exists on the master only, and
/// dies with it. Without `WAIT` they are lost; the test asserts that it
/// sees them lost, which shows that it can tell.
#[tokio::test]
async fn without_wait_writes_acknowledged_before_replication_are_lost() {
    let report = run(Setup {
        min_replicas: 0,
        replicas_per_master: 2,
        restart_after: None,
        cut_before_kill: Some(CUT_BEFORE_KILL),
    })
    .await;
    assert_sound(&report);
    assert!(
        report.lost > 0,
        "no acknowledged write lost, though the replicas took none of the writes \
         acknowledged in the {CUT_BEFORE_KILL:?} before the kill"
    );
}

/// The same lagging replicas with `SESSION_REDIS_MIN_REPLICAS=1`: the
/// writes made while no replica takes them are refused (503) after the
/// `WAIT` bound, never acknowledged, so none is lost.
#[tokio::test]
async fn min_replicas_1_refuses_writes_no_replica_took_and_loses_none() {
    let report = run(Setup {
        min_replicas: 1,
        replicas_per_master: 2,
        restart_after: None,
        cut_before_kill: Some(CUT_BEFORE_KILL),
    })
    .await;
    assert_sound(&report);
    assert_eq!(report.lost, 0, "acknowledged writes lost");
    assert!(
        report.failed > 0,
        "no write refused while the replicas took none"
    );
}
