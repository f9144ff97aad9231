//! `METRICS=true`: the quickstart's Prometheus metrics at `GET /metrics`,
//! as a scraper reads them.

mod common;

use common::{session_cookie, start};

/// The value of the sample `name{labels}` (labels as Prometheus writes
/// them), or 0 if there is none.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let response = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain"), "{kind}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_store_calls_and_session_events() {
    let server = start(&[("METRICS", "true")]);
    let base = server.localhost();
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/login?user=ann"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = session_cookie(&login);
    for _ in 0..3 {
        let visit = http
            .get(format!("{base}/visits"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(visit.status(), 200);
    }
    let logout = http
        .post(format!("{base}/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 200);

    let metrics = scrape(&http, &base).await;
    assert_eq!(sample(&metrics, "session_created_total"), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "session_purged_total"), 1.0, "{metrics}");
    let loads = r#"session_store_calls_total{store="memory",op="load",outcome="found"}"#;
    assert_eq!(sample(&metrics, loads), 4.0, "{metrics}");
    let writes = r#"session_store_calls_total{store="memory",op="apply",outcome="done"}"#;
    assert!(sample(&metrics, writes) >= 3.0, "{metrics}");
    // Latencies as a histogram, one count per call.
    let buckets =
        r#"session_store_call_duration_seconds_bucket{store="memory",op="load",le="+Inf"}"#;
    assert_eq!(sample(&metrics, buckets), 4.0, "{metrics}");
    assert!(metrics.contains("# TYPE session_store_call_duration_seconds histogram"));
    // Neither the session id nor a user name is ever a label.
    let id = cookie.trim_start_matches("session=");
    assert!(
        !metrics.contains(id) && !metrics.contains("ann"),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_metrics_there_is_no_metrics_route() {
    let server = start(&[]);
    let response = reqwest::get(format!("{}/metrics", server.localhost()))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[test]
fn a_bad_metrics_value_stops_start_up_naming_it() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .env("METRICS", "perhaps")
        .env("PORT", common::free_port().to_string())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("METRICS"));
}

/// With a near cache, its hits and misses are counted too.
#[tokio::test]
async fn near_cache_lookups_are_counted() {
    let server = start(&[
        ("METRICS", "true"),
        ("SESSION_TYPE", "redis"),
        ("SESSION_LOCAL_CACHE", "100"),
    ]);
    let base = server.localhost();
    let http = reqwest::Client::new();
    let first = http.get(format!("{base}/visits")).send().await.unwrap();
    let cookie = session_cookie(&first);
    for _ in 0..5 {
        let response = http
            .get(format!("{base}/get?key=nothing"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
    let metrics = scrape(&http, &base).await;
    let hits = sample(&metrics, r#"session_cache_lookups_total{result="hit"}"#);
    let misses = sample(&metrics, r#"session_cache_lookups_total{result="miss"}"#);
    assert!(hits >= 4.0 && misses >= 1.0, "{metrics}");
    assert_eq!(hits + misses, 5.0, "one lookup per read: {metrics}");
}

/// A login in a session that exists moves it to a new id: a renewal.
#[tokio::test]
async fn a_login_in_a_session_counts_a_renewal() {
    let server = start(&[("METRICS", "true")]);
    let base = server.localhost();
    let http = reqwest::Client::new();
    let visit = http.get(format!("{base}/visits")).send().await.unwrap();
    let cookie = session_cookie(&visit);
    let metrics = scrape(&http, &base).await;
    assert_eq!(sample(&metrics, "session_renewed_total"), 0.0, "{metrics}");
    let login = http
        .post(format!("{base}/login?user=ann"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_ne!(session_cookie(&login), cookie, "the login kept the id");
    let metrics = scrape(&http, &base).await;
    assert_eq!(sample(&metrics, "session_renewed_total"), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "session_created_total"), 1.0, "{metrics}");
}

/// A store that fails: the outage policy's answers are counted, by phase
/// and policy. The store is a Redis user whose ACL refuses reads and
/// writes (it may only connect).
#[tokio::test]
async fn outage_answers_are_counted() {
    let user = format!("metrics-outage-{}", std::process::id());
    let acl = |args: &[&str]| {
        std::process::Command::new("redis-cli")
            .args(args)
            .output()
            .expect("redis-cli runs")
    };
    let made = acl(&[
        "ACL",
        "SETUSER",
        &user,
        "on",
        ">pw",
        "~*",
        "+@all",
        "-@read",
        "-@write",
        "-@scripting",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&made.stdout).trim(),
        "OK",
        "{made:?}"
    );
    let url = format!("redis://{user}:pw@127.0.0.1:6379");
    let server = start(&[
        ("METRICS", "true"),
        ("SESSION_TYPE", "redis"),
        ("SESSION_REDIS", &url),
    ]);
    let base = server.localhost();
    let http = reqwest::Client::new();
    // A new session: the write fails.
    let first = http.get(format!("{base}/visits")).send().await.unwrap();
    assert_eq!(first.status(), 503);
    // A session cookie (from another server): the read fails.
    let read = http
        .get(format!("{base}/get?key=user"))
        .header(
            "cookie",
            "session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 503);
    let metrics = scrape(&http, &base).await;
    acl(&["ACL", "DELUSER", &user]);
    let save = r#"session_outage_total{phase="save",policy="fail"}"#;
    let load = r#"session_outage_total{phase="load",policy="fail"}"#;
    assert_eq!(sample(&metrics, save), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, load), 1.0, "{metrics}");
    let errors = r#"session_store_calls_total{store="redis",op="load",outcome="error"}"#;
    assert_eq!(sample(&metrics, errors), 1.0, "{metrics}");
}
