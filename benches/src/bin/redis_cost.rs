//! Redis's own CPU per session write: our store's write script against a
//! plain `SET ... XX EX`, the write actix-session's Redis store makes.
//!
//! ```sh
//! cargo run --release -p session-bench --bin session-bench-redis-cost -- [--writes N] [--redis URL]
//! ```
//!
//! Each side writes one key of a one-key session `N` times (default
//! 50,000), one write after the other; Redis's `INFO commandstats` gives
//! the time its main thread spent per call (`usec_per_call`), which is what
//! each write costs the server every app instance shares. The counters are
//! reset first (`CONFIG RESETSTAT`): point it at a Redis nothing else is
//! measuring.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use session_core::StoreKey;
use session_core::store::redis::RedisStore;
use session_core::store::{ChangeSet, Record, SessionStore};

const TTL: Duration = Duration::from_secs(3600);

/// `usec_per_call` of `command` in `INFO commandstats`.
fn usec_per_call(info: &str, command: &str) -> Option<f64> {
    let line = info
        .lines()
        .find(|l| l.starts_with(&format!("cmdstat_{command}:")))?;
    line.split(',')
        .find_map(|f| f.strip_prefix("usec_per_call="))?
        .parse()
        .ok()
}

async fn run(url: &str, writes: usize) -> Result<(f64, f64), String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    let client = redis::Client::open(url).map_err(|e| fail(&e))?;
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| fail(&e))?;
    let store = RedisStore::builder(url)
        .build()
        .await
        .map_err(|e| fail(&e))?;
    let key = StoreKey::from_raw(format!(
        "bench-redis-cost:{}",
        session_core::SessionId::generate().as_str()
    ));
    let record = Record::from(HashMap::from([(
        "name".to_owned(),
        Bytes::from_static(b"\"nick\""),
    )]));
    store
        .create(&key, &record, TTL)
        .await
        .map_err(|e| fail(&e))?;

    let reset = async |raw: &mut redis::aio::MultiplexedConnection| {
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async::<()>(raw)
            .await
            .map_err(|e| e.to_string())
    };
    let stats = async |raw: &mut redis::aio::MultiplexedConnection| {
        redis::cmd("INFO")
            .arg("commandstats")
            .query_async::<String>(raw)
            .await
            .map_err(|e| e.to_string())
    };

    reset(&mut raw).await?;
    for n in 0..writes {
        let changes = ChangeSet {
            set: vec![("visits".to_owned(), Bytes::from(n.to_string()))],
            max_size: Some(262_144),
            ..ChangeSet::default()
        };
        let _applied = store
            .apply(&key, &changes, TTL)
            .await
            .map_err(|e| fail(&e))?;
    }
    let ours = usec_per_call(&stats(&mut raw).await?, "evalsha").ok_or("no EVALSHA counted")?;

    // actix-session's state for the same session, as JSON of the map.
    let plain = format!("{}-plain", key.as_str());
    reset(&mut raw).await?;
    for n in 0..writes {
        let value = format!("{{\"name\":\"\\\"nick\\\"\",\"visits\":\"{n}\"}}");
        redis::cmd("SET")
            .arg(&plain)
            .arg(value)
            .arg(if n == 0 { "NX" } else { "XX" })
            .arg("EX")
            .arg(TTL.as_secs())
            .query_async::<Option<String>>(&mut raw)
            .await
            .map_err(|e| fail(&e))?;
    }
    let set = usec_per_call(&stats(&mut raw).await?, "set").ok_or("no SET counted")?;
    store.delete(&key).await.map_err(|e| fail(&e))?;
    redis::cmd("DEL")
        .arg(&plain)
        .query_async::<()>(&mut raw)
        .await
        .map_err(|e| fail(&e))?;
    Ok((ours, set))
}

fn main() {
    let mut writes = 50_000;
    let mut url = "redis://127.0.0.1:6379".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--writes", Some(n)) => writes = n.parse().unwrap_or(writes),
            ("--redis", Some(u)) => url = u,
            _ => {
                eprintln!("usage: session-bench-redis-cost [--writes N] [--redis URL]");
                std::process::exit(2);
            }
        }
    }
    let runtime = actix_web::rt::Runtime::new().expect("a runtime");
    match runtime.block_on(run(&url, writes)) {
        Ok((ours, set)) => {
            println!("| write | Redis CPU per call (µs) |");
            println!("| --- | ---: |");
            println!("| ours: `EVALSHA` of the write script | {ours:.2} |");
            println!("| actix-session: `SET ... XX EX` | {set:.2} |");
        }
        Err(error) => {
            eprintln!("session-bench-redis-cost: {error}");
            std::process::exit(1);
        }
    }
}
