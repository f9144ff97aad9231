//! The HTTP benchmark: this project's stores against actix-session 0.11
//! and against no session at all, side by side in one run, on loopback.
//!
//! ```sh
//! cargo run --release -p session-bench               # the whole comparison (~4 min)
//! cargo run --release -p session-bench -- --help     # options
//! cargo run --release -p session-bench -- serve ours-memory 8080   # one server
//! ```
//!
//! For each variant the orchestrator starts `<self> serve <variant> <port>`
//! pinned to CPU 0 (one actix worker), primes sessions (`GET /` without a
//! cookie, keeping each `Set-Cookie`), then for each route warms up and
//! measures with `wrk` pinned to CPU 1, sending the primed cookies round
//! robin (`/` sends none); it prints a markdown table (requests/s, p50,
//! p99, and the ratio to `none` on the same route), the targets, and the
//! cost of the user index (each `-users` variant over the same store
//! without it), and writes them to BENCHMARKS.md.

mod client;
mod cpu;
mod report;
mod wrk;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix_web::HttpServer;
use session_bench::{ACTIX_REDIS_PREFIX, Built, COOKIE_NAME, OURS_REDIS_PREFIX, Variant};

use crate::client::Client;
use crate::report::{Results, Row};
use crate::wrk::Load;

/// The routes, in the order each variant is measured: `/` and `/login`
/// after the routes that read the primed sessions, as both create a session
/// per request (the filesystem store, at its default threshold of 500
/// files, then evicts the sessions on probation: those of `/`, never the
/// primed ones, which `/index` has read). `/login` last: its first request
/// with each primed cookie moves that session to a new id (the cookie then
/// names no session, and later logins with it start from a fresh one), and
/// the sessions it creates are in use at once, never evicted, so a bounded
/// store (memory, filesystem) fills up with them.
const ROUTES: [&str; 4] = ["/index", "/visits", "/", "/login"];

const USAGE: &str = "\
usage:
  session-bench [options]                  run the whole comparison, print the table,
                                           write it to BENCHMARKS.md
  session-bench serve <variant> <port>     serve one variant (one worker) on 127.0.0.1:<port>
                                           (port 0: any free port, printed on stdout)

options:
  --duration SECS      measured time per variant, route and round (default 4)
  --warmup SECS        warm-up before each measurement, not measured (default 1)
  --rounds N           rounds over all variants; each row keeps its best round (default 2)
  --retry-budget SECS  time that may be spent measuring again rows that other processes
                       disturbed (default 30)
  --sessions N         sessions primed per variant, sent round robin (default 256, at least 200)
  --keys N             keys in each primed session (default 1: `name`; more are added by
                       `GET /fill`, 100 bytes each, to measure sessions as they grow)
  --connections N      wrk connections (default 32)
  --variants A,B,...   variants to run (default all; `none` is always run first)
  --routes R,...       routes to measure (default /index,/visits,/,/login)
  --redis URL          Redis for the Redis variants (default redis://127.0.0.1:6379)
  --output PATH        where to write the results (default BENCHMARKS.md at the workspace root;
                       written only by a run of every variant and route unless given)
  --no-write           print only
  --no-pin             do not pin the server and wrk to CPUs 0 and 1
  --perf DIR           record each measurement of the server with `perf record -g`
                       into DIR/<variant>_<route>.data (build with frame pointers and
                       debug line tables to read them; see BENCHMARKS.md)

variants: none, actix-cookie, actix-redis, ours-memory, ours-memory-users, ours-filesystem,
          ours-redis, ours-redis-users, ours-postgres, ours-sqlite, ours-cookie
          (the -users variants bind each session to a user of its own at `/` and `/login`)
          ours-memory-sealed, ours-redis-sealed (values sealed at rest)
          ours-redis-migrating (Redis, moving sessions from a memory store)

serve options:
  --redis URL          as above
  --watch-stdin        exit when standard input closes (the orchestrator's lifeline)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve_main(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => Options::parse(&args).and_then(|options| orchestrate(&options, &args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("session-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- serve --

fn serve_main(args: &[String]) -> Result<(), String> {
    let [variant, port, rest @ ..] = args else {
        return Err(format!("serve needs a variant and a port\n\n{USAGE}"));
    };
    let variant: Variant = variant.parse()?;
    let port: u16 = port.parse().map_err(|_| format!("invalid port {port:?}"))?;
    let mut redis = session_bench::DEFAULT_REDIS.to_owned();
    let mut watch_stdin = false;
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--redis" => redis = rest.next().ok_or("--redis needs a URL")?.clone(),
            "--watch-stdin" => watch_stdin = true,
            other => return Err(format!("serve: unknown option {other:?}")),
        }
    }
    actix_web::rt::System::new().block_on(serve(variant, port, &redis, watch_stdin))
}

async fn serve(variant: Variant, port: u16, redis: &str, watch_stdin: bool) -> Result<(), String> {
    let built = session_bench::build(variant, redis).await?;
    if watch_stdin {
        // The orchestrator holds our stdin: when it closes (the orchestrator
        // stopped us, or died), clean up and leave.
        let dir = match &built {
            Built::OursFilesystem(_, dir) => Some(dir.path().to_owned()),
            _ => None,
        };
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            if let Some(dir) = dir {
                // Blocking store calls of requests the load generator gave
                // up on may still be writing: let them finish, then retry.
                for _ in 0..5 {
                    std::thread::sleep(Duration::from_millis(200));
                    if std::fs::remove_dir_all(&dir).is_ok() && !dir.exists() {
                        break;
                    }
                }
            }
            std::process::exit(0);
        });
    }
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let server = session_bench::with_app!(&built, |app| HttpServer::new(app)
        .workers(1)
        .listen(listener)
        .map_err(|e| e.to_string())?
        .run());
    println!("listening {port}");
    server.await.map_err(|e| e.to_string())
}

// ---------------------------------------------------------- orchestrate --

#[derive(Debug)]
struct Options {
    duration: Duration,
    warmup: Duration,
    rounds: u32,
    retry_budget: Duration,
    sessions: usize,
    keys: usize,
    connections: u32,
    variants: Vec<Variant>,
    routes: Vec<&'static str>,
    redis: String,
    output: Option<PathBuf>,
    output_given: bool,
    perf: Option<PathBuf>,
    pin: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Options {
            duration: Duration::from_secs(4),
            warmup: Duration::from_secs(1),
            rounds: 2,
            retry_budget: Duration::from_secs(30),
            sessions: 256,
            keys: 1,
            connections: 32,
            variants: Variant::ALL.to_vec(),
            routes: ROUTES.to_vec(),
            redis: session_bench::DEFAULT_REDIS.to_owned(),
            output: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md")),
            output_given: false,
            pin: true,
            perf: None,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{arg} needs a value"))
            };
            let number = |v: String| -> Result<u64, String> {
                v.parse()
                    .map_err(|_| format!("{arg}: {v:?} is not a whole number"))
            };
            match arg.as_str() {
                "--duration" => o.duration = Duration::from_secs(number(value()?)?.max(1)),
                "--warmup" => o.warmup = Duration::from_secs(number(value()?)?),
                "--rounds" => o.rounds = number(value()?)?.max(1) as u32,
                "--retry-budget" => o.retry_budget = Duration::from_secs(number(value()?)?),
                "--sessions" => o.sessions = number(value()?)?.max(1) as usize,
                "--keys" => o.keys = number(value()?)?.max(1) as usize,
                "--connections" => o.connections = number(value()?)?.max(1) as u32,
                "--variants" => {
                    let mut variants = vec![Variant::None];
                    for name in value()?.split(',').filter(|s| !s.is_empty()) {
                        let v: Variant = name.parse()?;
                        if !variants.contains(&v) {
                            variants.push(v);
                        }
                    }
                    o.variants = variants;
                }
                "--routes" => {
                    let mut routes = Vec::new();
                    for route in value()?.split(',').filter(|s| !s.is_empty()) {
                        let r = ROUTES.into_iter().find(|r| *r == route).ok_or_else(|| {
                            format!(
                                "unknown route {route:?}; expected /index, /visits, / or /login"
                            )
                        })?;
                        routes.push(r);
                    }
                    o.routes = ROUTES.into_iter().filter(|r| routes.contains(r)).collect();
                }
                "--redis" => o.redis = value()?,
                "--output" => {
                    o.output = Some(PathBuf::from(value()?));
                    o.output_given = true;
                }
                "--no-write" => o.output = None,
                "--no-pin" => o.pin = false,
                "--perf" => o.perf = Some(PathBuf::from(value()?)),
                other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
            }
        }
        Ok(o)
    }

    fn complete(&self) -> bool {
        self.variants.len() == Variant::ALL.len() && self.routes.len() == ROUTES.len()
    }
}

/// A server under test; stopped (and, failing that, killed) when dropped,
/// which covers errors and panics of the orchestrator. If the orchestrator
/// dies outright, the server sees its stdin close and exits by itself.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
}

impl Server {
    fn start(variant: Variant, options: &Options) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        let mut command = if options.pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        command
            .args(["serve", variant.name(), "0", "--redis", &options.redis])
            .arg("--watch-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start the {variant} server: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut server = Server {
            child,
            stdin,
            port: 0,
        };
        // The first line says where it listens; a server that cannot start
        // says why on stderr and exits.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| format!("the {variant} server did not start within 30 s"))?;
        server.port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("the {variant} server failed to start (see above)"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("the {variant} server does not accept connections"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn orchestrate(options: &Options, args: &[String]) -> Result<(), String> {
    let wrk_version = wrk::check_installed()?;
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let pin = options.pin && {
        let ok = cpus >= 2 && Command::new("taskset").arg("-V").output().is_ok();
        if !ok {
            eprintln!("session-bench: fewer than 2 CPUs or no taskset: not pinning");
        }
        ok
    };
    let options = &Options {
        pin,
        variants: options.variants.clone(),
        routes: options.routes.clone(),
        redis: options.redis.clone(),
        output: options.output.clone(),
        perf: options.perf.clone(),
        ..*options
    };
    if let Some(dir) = &options.perf {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if options.sessions < 200 {
        eprintln!("session-bench: note: fewer than 200 sessions primed");
    }
    // Our own processes, whose CPU time is not "other load".
    let mut ours = vec![std::process::id()];
    let redis_version = if options.variants.iter().any(|v| v.uses_redis()) {
        let (version, pid) = redis_check(&options.redis)?;
        ours.extend(pid);
        redis_cleanup(&options.redis)?;
        Some(version)
    } else {
        None
    };
    if options.variants.iter().any(|v| v.uses_sentinel()) {
        ours.extend(sentinel_pids()?);
        redis_cleanup(&sentinel_master()?)?;
    }
    let quiet = cpu::background(Duration::from_secs(1));
    if quiet.busy > NOISY {
        let (name, share) = quiet.top.clone().unwrap_or_default();
        eprintln!(
            "session-bench: warning: the machine is busy ({:.0}% of a CPU; busiest: `{name}`, {:.0}%): measurements taken while others use more than {:.0}% of a CPU are retried, up to {TRIES} tries each, within a budget of {} s",
            quiet.busy * 100.0,
            share * 100.0,
            NOISY * 100.0,
            options.retry_budget.as_secs(),
        );
    }
    let load = Load {
        connections: options.connections,
        cpu: options.pin.then_some(1),
    };
    let scripts = tempfile::Builder::new()
        .prefix("session-bench-wrk-")
        .tempdir()
        .map_err(|e| format!("a temporary directory: {e}"))?;

    let measurements = options.variants.len() as u64 * options.routes.len() as u64;
    let estimate = u64::from(options.rounds)
        * (measurements * (options.warmup + options.duration).as_secs()
            + options.variants.len() as u64)
        + options.retry_budget.as_secs();
    eprintln!(
        "session-bench: {} round(s) of {} variants x {} routes, {} s warm-up + {} s each: at most about {} s",
        options.rounds,
        options.variants.len(),
        options.routes.len(),
        options.warmup.as_secs(),
        options.duration.as_secs(),
        estimate
    );
    let started = Instant::now();
    let mut results = Results::default();
    let mut budget = options.retry_budget;
    for round in 1..=options.rounds {
        if options.rounds > 1 {
            eprintln!("round {round}/{}", options.rounds);
        }
        for &variant in &options.variants {
            let rows = measure_variant(variant, options, &load, scripts.path(), &ours, &mut budget);
            if variant.uses_redis() {
                redis_cleanup(&options.redis)?;
            }
            if variant.uses_sentinel() {
                redis_cleanup(&sentinel_master()?)?;
            }
            for row in rows? {
                results.keep_best(row);
            }
        }
    }
    eprintln!("session-bench: done in {} s", started.elapsed().as_secs());

    let mut command = String::from("cargo run --release -p session-bench");
    if !args.is_empty() {
        command.push_str(" --");
        for arg in args {
            command.push(' ');
            command.push_str(arg);
        }
    }
    let noisy = results.rows.iter().filter(|r| r.others > NOISY).count();
    let background = if noisy > 0 {
        format!(
            "- **{noisy} row(s) were measured while other processes used more than {:.0}% of a CPU** (column `others`), after up to {TRIES} tries each within a retry budget of {} s: they are slower than they should be\n",
            NOISY * 100.0,
            options.retry_budget.as_secs(),
        )
    } else {
        format!(
            "- other processes used at most {:.0}% of a CPU during any measurement (column `others`)\n",
            results.rows.iter().map(|r| r.others).fold(0.0, f64::max) * 100.0
        )
    };
    let section = format!(
        "Run of {date}:\n\n```sh\n{command}\n```\n\n{machine}- server pinned to CPU {server}, wrk to CPU {client} (`-t1 -c{conns}`), {sessions} sessions of {keys} key(s) round robin, {warmup} s warm-up then {duration} s per variant and route, best of {rounds} round(s); a measurement is retried (up to {TRIES} tries, {budget} s in all) when other processes use more than {noisy_pct:.0}% of a CPU meanwhile\n{background}\n{table}\n`server CPU` is the server process's CPU time per request (all its threads, from /proc); `CPU ratio` is `none`'s CPU per request over the row's: the throughput ratio the row would have if the server alone were the bottleneck. Redis's own CPU is in neither.\n\nThe targets of issue 6 (ratios of requests/s to `none` on the same route, same run):\n\n{targets}\n{users}\n{sealed}\n{migrating}",
        date = report::now(),
        machine = report::machine(&wrk_version, redis_version.as_deref()),
        server = if options.pin { "0" } else { "(none)" },
        client = if options.pin { "1" } else { "(none)" },
        conns = options.connections,
        sessions = options.sessions,
        keys = options.keys,
        warmup = options.warmup.as_secs(),
        duration = options.duration.as_secs(),
        rounds = options.rounds,
        noisy_pct = NOISY * 100.0,
        budget = options.retry_budget.as_secs(),
        table = results.table(),
        targets = results.targets(),
        users = results.users(),
        sealed = results.sealed(),
        migrating = results.migrating(),
    );
    println!("{section}");
    match &options.output {
        Some(path) if options.complete() || options.output_given => {
            report::write_section(path, &section, SKELETON)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("session-bench: results written to {}", path.display());
        }
        Some(_) => eprintln!(
            "session-bench: a partial run: BENCHMARKS.md left as it is (--output PATH writes anyway)"
        ),
        None => {}
    }
    Ok(())
}

/// BENCHMARKS.md, for a checkout that lacks it.
const SKELETON: &str =
    "# Benchmarks\n\nRun `cargo run --release -p session-bench` to fill this in.\n";

/// A measurement during which other processes used more than this many
/// CPUs is taken again.
const NOISY: f64 = 0.15;
/// Tries per measurement, when the machine is busy with other work.
const TRIES: u32 = 3;

fn measure_variant(
    variant: Variant,
    options: &Options,
    load: &Load,
    scripts: &Path,
    ours: &[u32],
    budget: &mut Duration,
) -> Result<Vec<Row>, String> {
    let server = Server::start(variant, options)?;
    let cookies = prime(variant, server.port, options.sessions, options.keys)?;
    check(variant, server.port, &cookies)?;
    let mut ours = ours.to_vec();
    ours.push(server.child.id());
    let mut rows = Vec::new();
    for &route in &options.routes {
        // Every login's session is in use at once, and the filesystem store
        // at its threshold refuses new ones rather than evict a session in
        // use: past 500 logins, `/login` would measure the refusals.
        if route == "/login" && variant == Variant::OursFilesystem {
            continue;
        }
        let script = scripts.join(format!("{variant}{}.lua", route.replace('/', "_")));
        let route_cookies: &[String] = if route == "/" { &[] } else { &cookies };
        wrk::write_script(&script, route, route_cookies)
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        let url = format!("http://127.0.0.1:{}{route}", server.port);
        let mut best: Option<Row> = None;
        for attempt in 1..=TRIES {
            if !options.warmup.is_zero() {
                wrk::run(load, &script, &url, options.warmup)?;
            }
            let perf = match &options.perf {
                Some(dir) => Some(Perf::start(
                    server.child.id(),
                    &dir.join(format!("{variant}{}.data", route.replace('/', "_"))),
                )?),
                None => None,
            };
            let mut ours = ours.clone();
            ours.extend(perf.as_ref().map(|p| p.0.id()));
            let before = cpu::Snapshot::take();
            let cpu_before = cpu::process_ns(server.child.id());
            let m = wrk::run(load, &script, &url, options.duration)?;
            let cpu_after = cpu::process_ns(server.child.id());
            let others = before.others_until(&cpu::Snapshot::take(), &ours);
            drop(perf);
            let server_cpu_us = match (cpu_before, cpu_after) {
                (Some(b), Some(a)) if m.requests > 0 => {
                    Some(a.saturating_sub(b) as f64 / 1e3 / m.requests as f64)
                }
                _ => None,
            };
            eprintln!(
                "  {variant:<16} {route:<8} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  server CPU {:>5.1} us/req  others {:>3.0}% CPU{}",
                m.rps,
                m.p50_us as f64 / 1000.0,
                m.p99_us as f64 / 1000.0,
                server_cpu_us.unwrap_or(f64::NAN),
                others * 100.0,
                if m.bad_status + m.socket_errors > 0 {
                    format!(
                        "  ({} bad statuses, {} socket errors)",
                        m.bad_status, m.socket_errors
                    )
                } else {
                    String::new()
                }
            );
            let row = Row {
                variant,
                route,
                m,
                server_cpu_us,
                others,
            };
            best = Some(match best {
                Some(old) if !row.better_than(&old) => old,
                _ => row,
            });
            let retry = options.warmup + options.duration;
            if others <= NOISY || attempt == TRIES {
                break;
            }
            if *budget < retry {
                eprintln!("  other processes were busy; the retry budget is spent");
                break;
            }
            *budget -= retry;
            eprintln!("  other processes were busy: measuring again");
        }
        rows.extend(best);
    }
    drop(server);
    Ok(rows)
}

/// `perf record` attached to a server; stopped (SIGINT, so it writes its
/// file) when dropped.
struct Perf(Child);

impl Perf {
    fn start(pid: u32, file: &Path) -> Result<Self, String> {
        let child = Command::new("perf")
            .args(["record", "-e", "cpu-clock", "-F", "4999", "-g", "-q", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(file)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run perf (apt-get install linux-perf): {e}"))?;
        // Let it attach before the load starts.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Self(child))
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Creates `n` sessions with `GET /`, grows each to `keys` keys with
/// `GET /fill`, and returns their cookies (`session=...`); for `none`,
/// which sets none, cookies of the same shape.
fn prime(variant: Variant, port: u16, n: usize, keys: usize) -> Result<Vec<String>, String> {
    if !variant.has_sessions() {
        return Ok((0..n)
            .map(|_| {
                format!(
                    "{COOKIE_NAME}={}",
                    session_core::SessionId::generate().as_str()
                )
            })
            .collect());
    }
    let mut client = Client::connect(port).map_err(|e| format!("{variant}: connect: {e}"))?;
    let mut cookies = Vec::with_capacity(n);
    for _ in 0..n {
        let res = client
            .get("/", None)
            .map_err(|e| format!("{variant}: priming GET /: {e}"))?;
        let cookie = res
            .cookie(COOKIE_NAME)
            .filter(|_| res.status == 200)
            .ok_or_else(|| {
                format!(
                    "{variant}: GET / answered {} without a `{COOKIE_NAME}` cookie",
                    res.status
                )
            })?;
        let mut cookie = cookie.to_owned();
        if keys > 1 {
            let res = client
                .get(&format!("/fill?keys={}", keys - 1), Some(&cookie))
                .map_err(|e| format!("{variant}: priming GET /fill: {e}"))?;
            if res.status != 200 {
                return Err(format!(
                    "{variant}: GET /fill?keys={} answered {} {:?}",
                    keys - 1,
                    res.status,
                    res.body
                ));
            }
            // The cookie stores carry the session: their cookie changed.
            if let Some(grown) = res.cookie(COOKIE_NAME) {
                cookie = grown.to_owned();
            }
        }
        cookies.push(cookie);
    }
    Ok(cookies)
}

/// Checks that the server answers the routes as the benchmark expects,
/// with one of the primed cookies.
fn check(variant: Variant, port: u16, cookies: &[String]) -> Result<(), String> {
    let mut client = Client::connect(port).map_err(|e| format!("{variant}: connect: {e}"))?;
    let cookie = cookies.first().map(String::as_str);
    let res = client
        .get("/index", cookie)
        .map_err(|e| format!("{variant}: GET /index: {e}"))?;
    if res.status != 200 || res.body != "nick" {
        return Err(format!(
            "{variant}: GET /index with a primed cookie answered {} {:?}, expected 200 \"nick\"",
            res.status, res.body
        ));
    }
    let res = client
        .get("/visits", cookie)
        .map_err(|e| format!("{variant}: GET /visits: {e}"))?;
    if res.status != 200 || res.body.parse::<u64>().is_err() {
        return Err(format!(
            "{variant}: GET /visits answered {} {:?}, expected 200 and a count",
            res.status, res.body
        ));
    }
    // Without a cookie: a login with a primed one would move that session
    // to a new id before `/index` and `/visits` are measured.
    let res = client
        .get("/login", None)
        .map_err(|e| format!("{variant}: GET /login: {e}"))?;
    let cookie_ok = !variant.has_sessions() || res.cookie(COOKIE_NAME).is_some();
    if res.status != 200 || res.body != "welcome" || !cookie_ok {
        return Err(format!(
            "{variant}: GET /login answered {} {:?}{}, expected 200 \"welcome\" and a session cookie",
            res.status,
            res.body,
            if cookie_ok { "" } else { " without a cookie" }
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- redis --

fn redis_connection(url: &str) -> Result<redis::Connection, String> {
    let missing = |e: redis::RedisError| {
        format!(
            "Redis at {url} is not answering ({e}). Start it with scripts/services.sh \
             (or `redis-server --daemonize yes`), pass --redis URL, or leave out the Redis \
             variants with --variants"
        )
    };
    redis::Client::open(url)
        .map_err(missing)?
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(missing)
}

/// Pings Redis and returns its version and process id.
fn redis_check(url: &str) -> Result<(String, Option<u32>), String> {
    let mut con = redis_connection(url)?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut con)
        .map_err(|e| format!("Redis at {url}: INFO failed: {e}"))?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    Ok((
        field("redis_version:").unwrap_or_else(|| "(unknown version)".to_owned()),
        field("process_id:").and_then(|p| p.parse().ok()),
    ))
}

/// The URL of the master that Sentinel names now.
fn sentinel_master() -> Result<String, String> {
    let mut con = redis_connection("redis://127.0.0.1:26379")?;
    let (host, port): (String, u16) = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg("mymaster")
        .query(&mut con)
        .map_err(|e| format!("Sentinel on 26379 (run scripts/services.sh): {e}"))?;
    Ok(format!("redis://{host}:{port}"))
}

/// The processes of Sentinel's master and its replicas: their CPU is the
/// variant's own (replication is what it measures), not other load.
fn sentinel_pids() -> Result<Vec<u32>, String> {
    let master = sentinel_master()?;
    let mut pids: Vec<u32> = redis_check(&master)?.1.into_iter().collect();
    let mut con = redis_connection(&master)?;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut con)
        .map_err(|e| format!("Redis at {master}: INFO failed: {e}"))?;
    for line in info.lines().filter(|l| l.starts_with("slave")) {
        let port = line
            .split(',')
            .find_map(|f| f.strip_prefix("port="))
            .ok_or_else(|| format!("Redis at {master}: a replica without a port: {line}"))?;
        pids.extend(redis_check(&format!("redis://127.0.0.1:{port}"))?.1);
    }
    Ok(pids)
}

/// Removes every key the benchmark's Redis variants wrote.
fn redis_cleanup(url: &str) -> Result<(), String> {
    let mut con = redis_connection(url)?;
    for prefix in [OURS_REDIS_PREFIX, ACTIX_REDIS_PREFIX] {
        let pattern = format!("{prefix}*");
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(10_000)
                .query(&mut con)
                .map_err(|e| format!("Redis: SCAN failed: {e}"))?;
            if !keys.is_empty() {
                redis::cmd("UNLINK")
                    .arg(&keys)
                    .query::<()>(&mut con)
                    .map_err(|e| format!("Redis: UNLINK failed: {e}"))?;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    Ok(())
}
