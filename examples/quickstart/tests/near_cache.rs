//! Two quickstart processes with a near cache (`SESSION_LOCAL_CACHE`) on
//! one store, as two instances behind a load balancer: each sees its own
//! writes at once, and the other's (a logout included) once the store's
//! invalidation arrives.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

mod common;

use common::{Server, start};

/// The longest an instance may serve what the other changed: far above
/// the delay measured on loopback (README, "Near cache"), so that a slow
/// machine does not fail the test, and far below forever, which is what a
/// cache without invalidation gives.
const BOUND: Duration = Duration::from_secs(2);

struct Client {
    http: reqwest::Client,
    cookie: String,
}

impl Client {
    async fn call(&self, post: bool, server: &Server, path: &str) -> (StatusCode, String) {
        let url = format!("{}{path}", server.base);
        let request = if post {
            self.http.post(url)
        } else {
            self.http.get(url)
        };
        let response = request
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("a response");
        (response.status(), response.text().await.unwrap())
    }

    async fn get(&self, server: &Server, path: &str) -> (StatusCode, String) {
        self.call(false, server, path).await
    }

    /// Waits until `server` answers `want` on `path`, at most [`BOUND`].
    async fn sees(&self, server: &Server, path: &str, want: (StatusCode, &str), what: &str) {
        let start = Instant::now();
        loop {
            let (status, body) = self.get(server, path).await;
            if (status, body.as_str()) == want {
                return;
            }
            assert!(
                start.elapsed() < BOUND,
                "{what}: still {status} {body:?} after {BOUND:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A client with a new session made on `server`, its cookie kept by hand
/// so that it can be sent again after a logout.
async fn new_session(server: &Server) -> Client {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = http.get(format!("{}/", server.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = common::session_cookie(&response);
    Client { http, cookie }
}

async fn two_instances_share_sessions(env: &[(&str, &str)]) {
    let env: Vec<_> = env
        .iter()
        .copied()
        .chain([("SESSION_LOCAL_CACHE", "1000")])
        .collect();
    let (a, b) = (start(&env), start(&env));
    let client = new_session(&a).await;

    // Each instance reads its own writes at once, however often.
    for n in 1..=20 {
        let value = format!("a{n}");
        let set = format!("/set?key=color&value={value}");
        assert_eq!(client.get(&a, &set).await, (StatusCode::OK, "ok".into()));
        assert_eq!(
            client.get(&a, "/get?key=color").await,
            (StatusCode::OK, value)
        );
    }

    // Each instance sees what the other wrote, in turn.
    for n in 1..=10 {
        let (writer, reader) = if n % 2 == 1 { (&a, &b) } else { (&b, &a) };
        let value = n.to_string();
        let set = format!("/set?key=color&value={value}");
        assert_eq!(
            client.get(writer, &set).await,
            (StatusCode::OK, "ok".into())
        );
        client
            .sees(
                reader,
                "/get?key=color",
                (StatusCode::OK, &value),
                "a write on the other instance",
            )
            .await;
    }

    // A logout on one instance ends the session on the other, the old
    // cookie included.
    assert_eq!(
        client.call(true, &b, "/logout").await,
        (StatusCode::OK, "bye".into())
    );
    client
        .sees(
            &a,
            "/get?key=color",
            (StatusCode::NOT_FOUND, "no such key"),
            "a logout on the other instance",
        )
        .await;
}

#[tokio::test]
async fn two_instances_on_redis_with_a_near_cache() {
    two_instances_share_sessions(&[("SESSION_TYPE", "redis")]).await;
}

#[tokio::test]
async fn two_instances_on_redis_sentinel_with_a_near_cache() {
    let url = "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster";
    two_instances_share_sessions(&[("SESSION_TYPE", "redis"), ("SESSION_REDIS", url)]).await;
}

#[tokio::test]
async fn two_instances_on_postgresql_with_a_near_cache() {
    two_instances_share_sessions(&[
        ("SESSION_TYPE", "sql"),
        ("SESSION_SQL_URL", "postgres://postgres@127.0.0.1:5432/test"),
        ("SESSION_SQL_TABLE", "quickstart_cached"),
    ])
    .await;
}

#[tokio::test]
async fn a_near_cache_where_nothing_keeps_it_right_stops_the_start_naming_the_key() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .env("SESSION_TYPE", "memcached")
        .env("SESSION_LOCAL_CACHE", "1000")
        .env("PORT", common::free_port().to_string())
        .output()
        .expect("the quickstart runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SESSION_LOCAL_CACHE"), "{stderr}");
}
