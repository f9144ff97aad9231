//! How long a near cache (`SESSION_LOCAL_CACHE`) serves a session another
//! process has changed: the staleness bound the README states.
//!
//! ```sh
//! cargo run --release -p session-bench --bin session-bench-staleness -- [--writes N] [redis|postgres ...]
//! ```
//!
//! Two processes, each with its own store and near cache, as two instances
//! of an app: this one (the reader) and a child it starts (the writer). For
//! each of `N` writes (default 1000) the reader first holds the session in
//! its cache (a load it answers without the store), then asks the writer to
//! change the session; the writer applies the change and reports the wall
//! clock when its `apply` returned. The reader loads the session again and
//! again until it reads the new value, and notes the wall clock then. The
//! delay is the difference: how long after the writer's call returned the
//! reader still read the old value (0 when it saw the change before the
//! writer's reply). Both processes run on this machine, so their clocks are
//! one clock.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use session_core::StoreKey;
use session_core::store::redis::RedisStore;
use session_core::store::sql::SqlStore;
use session_core::store::{AnyStore, ChangeSet, NearCache, Record, SessionStore};

const REDIS_URL: &str = "redis://127.0.0.1:6379";
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const TABLE: &str = "bench_staleness";
const TTL: Duration = Duration::from_secs(600);

async fn store(kind: &str) -> Result<AnyStore, String> {
    Ok(match kind {
        "redis" => AnyStore::cached(
            RedisStore::builder(REDIS_URL)
                .build_near_cache(1000)
                .await
                .map_err(|e| format!("Redis at {REDIS_URL}: {e}"))?,
        ),
        "postgres" => AnyStore::cached(cached_sql().await?),
        other => return Err(format!("unknown store {other:?}: redis or postgres")),
    })
}

async fn cached_sql() -> Result<NearCache<SqlStore>, String> {
    SqlStore::builder(POSTGRES_URL)
        .table(TABLE)
        .build_near_cache(1000)
        .await
        .map_err(|e| format!("PostgreSQL at {POSTGRES_URL}: {e}"))
}

fn set(value: &str) -> ChangeSet {
    ChangeSet {
        set: vec![("v".to_owned(), Bytes::from(value.to_owned()))],
        ..ChangeSet::default()
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos()
}

async fn value(store: &AnyStore, key: &StoreKey) -> Result<Option<Bytes>, String> {
    let record = store.load(key).await.map_err(|e| e.to_string())?;
    Ok(record.and_then(|r| r.entries.get("v").cloned()))
}

/// The writer: applies each value read from stdin, and prints when the
/// call returned.
async fn writer(kind: &str, key: &str) -> Result<(), String> {
    let store = store(kind).await?;
    let key = StoreKey::from_raw(key);
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let _applied = store
            .apply(&key, &set(&line), TTL)
            .await
            .map_err(|e| e.to_string())?;
        writeln!(out, "{}", now_ns()).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The reader: returns the delays, in µs, sorted.
async fn reader(kind: &str, writes: usize) -> Result<(Vec<u128>, String), String> {
    let store = store(kind).await?;
    let key = StoreKey::from_raw(format!(
        "bench-staleness:{}",
        session_core::SessionId::generate().as_str()
    ));
    let record = Record::from(std::collections::HashMap::from([(
        "v".to_owned(),
        Bytes::from_static(b"start"),
    )]));
    store
        .create(&key, &record, TTL)
        .await
        .map_err(|e| e.to_string())?;
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["writer", kind, key.as_str()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("the writer process: {e}"))?;
    let mut to_writer = child.stdin.take().expect("piped");
    let mut from_writer = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut delays = Vec::with_capacity(writes);
    let mut current = Bytes::from_static(b"start");
    for i in 0..writes {
        // Held in the cache: a second load is a hit.
        loop {
            let hits = store.cache_stats().map_or(0, |s| s.hits);
            let read = value(&store, &key).await?;
            if read.as_ref() == Some(&current) && store.cache_stats().map_or(0, |s| s.hits) > hits {
                break;
            }
        }
        let next = format!("w{i}");
        writeln!(to_writer, "{next}").map_err(|e| e.to_string())?;
        to_writer.flush().map_err(|e| e.to_string())?;
        let seen = loop {
            if value(&store, &key).await?.as_deref() == Some(next.as_bytes()) {
                break now_ns();
            }
            // A hit does not wait: let the connections read what came in,
            // as a server does between requests.
            actix_web::rt::task::yield_now().await;
        };
        let written: u128 = from_writer
            .next()
            .ok_or("the writer ended")?
            .map_err(|e| e.to_string())?
            .parse()
            .map_err(|e| format!("the writer's answer: {e}"))?;
        delays.push(seen.saturating_sub(written) / 1000);
        current = Bytes::from(next);
    }
    drop(to_writer);
    let _ = child.wait();
    store.delete(&key).await.map_err(|e| e.to_string())?;
    let stats = store
        .cache_stats()
        .map(|s| {
            format!(
                "hits {}, misses {}, invalidations {}",
                s.hits, s.misses, s.invalidations
            )
        })
        .unwrap_or_default();
    delays.sort_unstable();
    Ok((delays, stats))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = actix_web::rt::Runtime::new().expect("a runtime");
    if args.first().map(String::as_str) == Some("writer") {
        if let Err(error) = runtime.block_on(writer(&args[1], &args[2])) {
            eprintln!("session-bench-staleness writer: {error}");
            std::process::exit(1);
        }
        return;
    }
    let mut writes = 1000;
    let mut kinds = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--writes" => {
                writes = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| {
                        eprintln!("--writes takes a number above 0");
                        std::process::exit(2)
                    });
            }
            kind => kinds.push(kind.to_owned()),
        }
    }
    if kinds.is_empty() {
        kinds = vec!["redis".to_owned(), "postgres".to_owned()];
    }
    println!("| store | writes | p50 (µs) | p99 (µs) | max (µs) | reader's cache |");
    println!("| --- | ---: | ---: | ---: | ---: | --- |");
    for kind in kinds {
        match runtime.block_on(reader(&kind, writes)) {
            Ok((delays, stats)) => {
                let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
                println!(
                    "| {kind} | {writes} | {} | {} | {} | {stats} |",
                    at(0.5),
                    at(0.99),
                    delays[delays.len() - 1]
                );
            }
            Err(error) => {
                eprintln!("session-bench-staleness: {kind}: {error}");
                std::process::exit(1);
            }
        }
    }
}
