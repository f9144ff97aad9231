//! Counts heap allocations (and time) per request, in process, without the
//! network: every variant's app is driven through `actix_web::test`, and a
//! counting global allocator tells what one request allocates. The test
//! harness allocates too, the same for every variant: the `none` row is
//! that floor, and the `extra` columns are what the session layer adds.
//!
//! ```sh
//! cargo run --release -p session-bench --bin session-bench-alloc
//! cargo run --release -p session-bench --bin session-bench-alloc -- ours-memory ours-redis
//! ```
//!
//! Redis variants need Redis on 127.0.0.1:6379 (`SESSION_BENCH_REDIS`
//! overrides); their time per request includes the round trips.

use std::alloc::System;
use std::process::ExitCode;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header;
use actix_web::test::{self, TestRequest};
use session_bench::{COOKIE_NAME, Variant};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Requests per measurement.
const N: u32 = 20_000;
/// Sessions the read and write routes go through, round robin.
const SESSIONS: usize = 64;

/// What one request costs, averaged.
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    allocations: f64,
    bytes: f64,
    micros: f64,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut variants = vec![Variant::None];
    for arg in &args {
        match arg.parse::<Variant>() {
            Ok(v) if !variants.contains(&v) => variants.push(v),
            Ok(_) => {}
            Err(e) => {
                eprintln!("session-bench-alloc: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if args.is_empty() {
        variants = Variant::ALL.to_vec();
    }
    let redis = std::env::var("SESSION_BENCH_REDIS")
        .unwrap_or_else(|_| session_bench::DEFAULT_REDIS.into());
    let result = actix_web::rt::System::new().block_on(async {
        let mut rows = Vec::new();
        for variant in variants {
            let built = session_bench::build(variant, &redis).await?;
            let costs =
                session_bench::with_app!(&built, |app| measure(test::init_service(app()).await)
                    .await?);
            rows.push((variant, costs));
        }
        Ok::<_, String>(rows)
    });
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("session-bench-alloc: {e}");
            return ExitCode::FAILURE;
        }
    };
    let floor = rows.iter().find(|(v, _)| *v == Variant::None).map(|r| r.1);
    println!(
        "| variant | route | allocations/req | bytes/req | µs/req (in process) | extra allocations | extra bytes | extra µs |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (variant, costs) in &rows {
        for (i, route) in ROUTES.iter().enumerate() {
            let c = costs[i];
            let base = floor.map(|f| f[i]).unwrap_or_default();
            println!(
                "| {variant} | `{route}` | {:.1} | {:.0} | {:.2} | {:+.1} | {:+.0} | {:+.2} |",
                c.allocations,
                c.bytes,
                c.micros,
                c.allocations - base.allocations,
                c.bytes - base.bytes,
                c.micros - base.micros
            );
        }
    }
    if rows.iter().any(|(v, _)| *v == Variant::OursMemory) {
        let held = actix_web::rt::System::new().block_on(async {
            let built = session_bench::build(Variant::OursMemory, &redis).await?;
            session_bench::with_app!(&built, |app| idle_memory(test::init_service(app()).await)
                .await)
        });
        match held {
            Ok(bytes) => {
                println!();
                println!(
                    "| memory store: sessions held | net heap bytes | bytes per idle session |"
                );
                println!("| ---: | ---: | ---: |");
                println!("| {IDLE} | {bytes} | {:.0} |", bytes as f64 / IDLE as f64);
            }
            Err(e) => {
                eprintln!("session-bench-alloc: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Sessions created for the idle-memory measurement.
const IDLE: usize = 100_000;

/// Creates [`IDLE`] sessions with `GET /` (each holds `name`, as the
/// benchmark's sessions do) and returns the heap bytes still held after
/// them: what the store keeps per idle session, its map's growth included.
async fn idle_memory<S, B>(app: S) -> Result<i64, String>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    // Warm up the app's own one-time allocations first.
    run(&app, "/", None, 100).await?;
    let region = Region::new(GLOBAL);
    run(&app, "/", None, IDLE as u32).await?;
    let stats = region.change();
    Ok(
        stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
            + stats.bytes_reallocated as i64,
    )
}

const ROUTES: [&str; 3] = ["/index", "/visits", "/"];

/// Primes sessions, then measures each route.
async fn measure<S, B>(app: S) -> Result<[Cost; 3], String>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut cookies = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let res = test::call_service(&app, TestRequest::get().uri("/").to_request()).await;
        let cookie = res
            .headers()
            .get_all(header::SET_COOKIE)
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|c| c.starts_with(&format!("{COOKIE_NAME}=")))
            .map(str::to_owned)
            // `none` sets no cookie: send one of the same shape anyway.
            .unwrap_or_else(|| format!("{COOKIE_NAME}=bench-cookie-{i:031}"));
        cookies.push(cookie);
    }
    let mut costs = [Cost::default(); 3];
    for (i, route) in ROUTES.iter().enumerate() {
        let with_cookie = *route != "/";
        // Warm up, then count.
        run(&app, route, with_cookie.then_some(&cookies[..]), N / 10).await?;
        let region = Region::new(GLOBAL);
        let started = Instant::now();
        run(&app, route, with_cookie.then_some(&cookies[..]), N).await?;
        let elapsed = started.elapsed();
        let stats = region.change();
        costs[i] = Cost {
            allocations: stats.allocations as f64 / f64::from(N),
            bytes: stats.bytes_allocated as f64 / f64::from(N),
            micros: elapsed.as_secs_f64() * 1e6 / f64::from(N),
        };
    }
    Ok(costs)
}

async fn run<S, B>(app: &S, route: &str, cookies: Option<&[String]>, n: u32) -> Result<(), String>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    for i in 0..n as usize {
        let mut req = TestRequest::get().uri(route);
        if let Some(cookies) = cookies {
            req = req.insert_header((header::COOKIE, cookies[i % cookies.len()].as_str()));
        }
        let res = test::call_service(app, req.to_request()).await;
        if !res.status().is_success() {
            return Err(format!("{route} answered {}", res.status()));
        }
        let _ = test::read_body(res).await;
    }
    Ok(())
}
