//! The quickstart binary, black-box: started as a user starts it, driven
//! over HTTP with a cookie-keeping client.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

mod common;

use common::{Server, free_port, start};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(c: &reqwest::Client, url: String) -> (StatusCode, String) {
    let res = c.get(url).send().await.expect("a response");
    (res.status(), res.text().await.unwrap())
}

async fn post(c: &reqwest::Client, url: String) -> (StatusCode, String) {
    let res = c.post(url).send().await.expect("a response");
    (res.status(), res.text().await.unwrap())
}

/// Every documented route, in the order a user meets them.
async fn exercise_routes(server: &Server) {
    let b = &server.base;
    let c = client();
    assert_eq!(get(&c, format!("{b}/index")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&c, format!("{b}/")).await,
        (StatusCode::OK, "hello".into())
    );
    assert_eq!(
        get(&c, format!("{b}/index")).await,
        (StatusCode::OK, "nick".into())
    );
    for n in 1..=3 {
        assert_eq!(
            get(&c, format!("{b}/visits")).await,
            (StatusCode::OK, n.to_string())
        );
    }
    assert_eq!(
        get(&c, format!("{b}/get?key=color")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&c, format!("{b}/set?key=color&value=blue")).await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        get(&c, format!("{b}/get?key=color")).await,
        (StatusCode::OK, "blue".into())
    );
    assert_eq!(
        post(&c, format!("{b}/login?user=ann")).await,
        (StatusCode::OK, "welcome ann".into())
    );
    // The login kept the session's data under its new id.
    assert_eq!(
        get(&c, format!("{b}/get?key=user")).await,
        (StatusCode::OK, "ann".into())
    );
    assert_eq!(
        get(&c, format!("{b}/visits")).await,
        (StatusCode::OK, "4".into())
    );
    assert_eq!(
        post(&c, format!("{b}/logout")).await,
        (StatusCode::OK, "bye".into())
    );
    assert_eq!(
        get(&c, format!("{b}/get?key=user")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&c, format!("{b}/visits")).await,
        (StatusCode::OK, "1".into())
    );
    // Another client has a session of its own.
    assert_eq!(
        get(&client(), format!("{b}/index")).await.0,
        StatusCode::NOT_FOUND
    );
}

/// `GET /sessions` for `c`: the user's sessions as JSON, each checked for
/// the documented fields.
async fn user_sessions(c: &reqwest::Client, b: &str) -> Vec<serde_json::Value> {
    let (status, body) = get(c, format!("{b}/sessions")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&body).expect("JSON");
    for session in &listed {
        assert_eq!(
            session["handle"].as_str().map(str::len),
            Some(22),
            "{session}"
        );
        assert!(session["current"].is_boolean(), "{session}");
        for field in ["created_at", "last_seen"] {
            // RFC 3339 in UTC: 2026-11-26T09:12:03.512Z
            let at = session[field]
                .as_str()
                .unwrap_or_else(|| panic!("{session}"));
            assert!(
                at.len() >= 20 && at.as_bytes()[10] == b'T' && at.ends_with('Z'),
                "{field}: {at}"
            );
        }
    }
    listed
}

/// The routes on a user's sessions, from three clients: two logged in as
/// ann, one as bob.
async fn exercise_user_sessions(server: &Server) {
    let b = &server.base;
    // Users of this server alone: tests share the stores' servers.
    let (ann, bob_name) = (format!("ann{}", server.port), format!("bob{}", server.port));
    let (one, two, bob) = (client(), client(), client());
    assert_eq!(
        get(&one, format!("{b}/sessions")).await.0,
        StatusCode::UNAUTHORIZED
    );
    for (c, user) in [(&one, &ann), (&two, &ann), (&bob, &bob_name)] {
        assert_eq!(
            post(c, format!("{b}/login?user={user}")).await,
            (StatusCode::OK, format!("welcome {user}"))
        );
    }
    let listed = user_sessions(&one, b).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let current: Vec<_> = listed.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{listed:?}");
    let other = listed.iter().find(|s| s["current"] == false).unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(user_sessions(&bob, b).await.len(), 1);
    let revoke = format!("{b}/sessions/revoke?handle={other}");
    assert_eq!(post(&bob, revoke.clone()).await.0, StatusCode::NOT_FOUND);
    assert_eq!(post(&one, revoke).await, (StatusCode::OK, "revoked".into()));
    assert_eq!(
        get(&two, format!("{b}/sessions")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&two, format!("{b}/get?key=user")).await.0,
        StatusCode::NOT_FOUND,
        "the ended session lost its data"
    );
    post(&two, format!("{b}/login?user={ann}")).await;
    assert_eq!(
        post(&one, format!("{b}/logout-others")).await,
        (StatusCode::OK, "1 ended".into())
    );
    assert_eq!(
        get(&two, format!("{b}/sessions")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(user_sessions(&one, b).await.len(), 1);
    assert_eq!(
        post(&one, format!("{b}/logout-everywhere")).await,
        (StatusCode::OK, "1 ended".into())
    );
    assert_eq!(
        get(&one, format!("{b}/sessions")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(user_sessions(&bob, b).await.len(), 1, "bob is still in");
}

#[tokio::test]
async fn routes_on_the_embedded_default_store() {
    let server = start(&[]);
    exercise_routes(&server).await;
    exercise_user_sessions(&server).await;
}

#[tokio::test]
async fn routes_on_the_filesystem_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&[
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", dir.path().to_str().unwrap()),
    ]);
    exercise_routes(&server).await;
    // Sessions in use sit in the directory, new ones on probation in new/.
    let files: usize = [dir.path().to_owned(), dir.path().join("new")]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".session")
        })
        .count();
    // The last /visits session, the note the login left at the old id
    // (it lives a few minutes, so a logout racing the login can follow it)
    // and ann's index of her sessions.
    assert_eq!(
        files, 3,
        "the live session, the login's move note and the user's index are on disk"
    );
    exercise_user_sessions(&server).await;
}

#[tokio::test]
async fn routes_on_the_cookie_store_with_a_signer() {
    let server = start(&[
        ("SESSION_TYPE", "cookie"),
        ("SECRET_KEY", "a quickstart secret that is long enough"),
    ]);
    exercise_routes(&server).await;
    // The cookie is the session: the server has no list of a user's.
    let c = client();
    post(&c, format!("{}/login?user=ann", server.base)).await;
    assert_eq!(
        get(&c, format!("{}/sessions", server.base)).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn routes_with_signed_ids() {
    let server = start(&[
        ("SESSION_USE_SIGNER", "true"),
        ("SECRET_KEY", "a quickstart secret that is long enough"),
    ]);
    exercise_routes(&server).await;
}

/// The settings of each store on a server `scripts/services.sh` starts.
const REDIS: &[(&str, &str)] = &[("SESSION_TYPE", "redis")];
const REDIS_CLUSTER: &[(&str, &str)] = &[
    ("SESSION_TYPE", "redis"),
    (
        "SESSION_REDIS",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002",
    ),
];
const REDIS_SENTINEL: &[(&str, &str)] = &[
    ("SESSION_TYPE", "redis"),
    (
        "SESSION_REDIS",
        "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster",
    ),
];
const MEMCACHED: &[(&str, &str)] = &[
    ("SESSION_TYPE", "memcached"),
    ("SESSION_MEMCACHED", "127.0.0.1:11211,127.0.0.1:11212"),
];
const POSTGRESQL: &[(&str, &str)] = &[
    ("SESSION_TYPE", "sql"),
    ("SESSION_SQL_URL", "postgres://postgres@127.0.0.1:5432/test"),
    ("SESSION_SQL_TABLE", "quickstart_sessions"),
];
const MARIADB: &[(&str, &str)] = &[
    ("SESSION_TYPE", "sql"),
    ("SESSION_SQL_URL", "mysql://root@127.0.0.1:3306/test"),
    ("SESSION_SQL_TABLE", "quickstart_sessions"),
];
const MONGODB: &[(&str, &str)] = &[
    ("SESSION_TYPE", "mongodb"),
    (
        "SESSION_MONGODB",
        "mongodb://127.0.0.1:27017/?directConnection=true",
    ),
    ("SESSION_MONGODB_COLLECT", "quickstart_sessions"),
];

/// The SQLite store's settings, on a database in `dir`.
fn sqlite(dir: &std::path::Path) -> [(&'static str, String); 2] {
    let url = format!("sqlite://{}?mode=rwc", dir.join("sessions.db").display());
    [("SESSION_TYPE", "sql".to_owned()), ("SESSION_SQL_URL", url)]
}

/// Every route, and the user's sessions, on the quickstart started with
/// `settings`.
async fn routes_on(settings: &[(&str, &str)]) {
    let server = start(settings);
    exercise_routes(&server).await;
    exercise_user_sessions(&server).await;
}

#[tokio::test]
async fn routes_on_redis() {
    routes_on(REDIS).await;
}

#[tokio::test]
async fn routes_on_redis_cluster() {
    routes_on(REDIS_CLUSTER).await;
}

#[tokio::test]
async fn routes_on_redis_sentinel() {
    routes_on(REDIS_SENTINEL).await;
}

#[tokio::test]
async fn routes_on_memcached() {
    routes_on(MEMCACHED).await;
}

#[tokio::test]
async fn routes_on_postgresql() {
    routes_on(POSTGRESQL).await;
}

#[tokio::test]
async fn routes_on_mariadb() {
    routes_on(MARIADB).await;
}

#[tokio::test]
async fn routes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let settings = sqlite(dir.path());
    routes_on(&settings.each_ref().map(|(k, v)| (*k, v.as_str()))).await;
}

#[tokio::test]
async fn routes_on_mongodb() {
    routes_on(MONGODB).await;
}

/// The same routes with `SESSION_ENCRYPT_AT_REST=true`, on every
/// server-side store: what a user sees does not change.
mod encrypted_at_rest {
    use super::*;

    async fn sealed_routes_on(settings: &[(&str, &str)]) {
        let mut settings = settings.to_vec();
        // A prefix of their own: the plain tests use the same servers, and
        // the same users.
        settings.extend([
            ("SESSION_ENCRYPT_AT_REST", "true"),
            ("SESSION_KEY_PREFIX", "sealed:"),
        ]);
        routes_on(&settings).await;
    }

    #[tokio::test]
    async fn memory() {
        sealed_routes_on(&[]).await;
    }

    #[tokio::test]
    async fn memory_with_signed_ids() {
        sealed_routes_on(&[
            ("SESSION_USE_SIGNER", "true"),
            ("SECRET_KEY", "a quickstart secret that is long enough"),
        ])
        .await;
    }

    #[tokio::test]
    async fn filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_str().unwrap();
        sealed_routes_on(&[("SESSION_TYPE", "filesystem"), ("SESSION_FILE_DIR", dir)]).await;
    }

    #[tokio::test]
    async fn redis() {
        sealed_routes_on(REDIS).await;
    }

    #[tokio::test]
    async fn redis_cluster() {
        sealed_routes_on(REDIS_CLUSTER).await;
    }

    #[tokio::test]
    async fn redis_sentinel() {
        sealed_routes_on(REDIS_SENTINEL).await;
    }

    #[tokio::test]
    async fn memcached() {
        sealed_routes_on(MEMCACHED).await;
    }

    #[tokio::test]
    async fn postgresql() {
        sealed_routes_on(POSTGRESQL).await;
    }

    #[tokio::test]
    async fn mariadb() {
        sealed_routes_on(MARIADB).await;
    }

    #[tokio::test]
    async fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let settings = super::sqlite(dir.path());
        sealed_routes_on(&settings.each_ref().map(|(k, v)| (*k, v.as_str()))).await;
    }

    #[tokio::test]
    async fn mongodb() {
        sealed_routes_on(MONGODB).await;
    }
}

/// Starts a private redis-server on `port`; killed on drop.
struct Redis(Child);

impl Redis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services.sh)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_redis_outage_gives_503_quickly_and_the_app_recovers() {
    const PORT: u16 = 6395;
    let redis = Redis::start(PORT);
    let url = format!("redis://127.0.0.1:{PORT}");
    let server = start(&[
        ("SESSION_TYPE", "redis"),
        ("SESSION_REDIS", &url),
        ("SESSION_STORE_TIMEOUT", "0.5"),
    ]);
    let b = &server.base;
    let c = client();
    assert_eq!(
        get(&c, format!("{b}/visits")).await,
        (StatusCode::OK, "1".into())
    );
    drop(redis);
    let started = Instant::now();
    assert_eq!(
        get(&c, format!("{b}/visits")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Routes that do not touch the session are not affected at all.
    assert_eq!(
        get(&c, format!("{b}/nowhere")).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the outage was not bounded"
    );
    let _redis = Redis::start(PORT);
    // The restarted server is empty: a new session starts, without restarting the app.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(&c, format!("{b}/visits")).await;
        if status == StatusCode::OK {
            assert_eq!(body, "1");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the app did not recover: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        get(&c, format!("{b}/visits")).await,
        (StatusCode::OK, "2".into())
    );
}

#[tokio::test]
async fn a_redis_outage_with_the_empty_policy_serves_empty_sessions() {
    const PORT: u16 = 6396;
    let redis = Redis::start(PORT);
    let url = format!("redis://127.0.0.1:{PORT}");
    let server = start(&[
        ("SESSION_TYPE", "redis"),
        ("SESSION_REDIS", &url),
        ("SESSION_STORE_TIMEOUT", "0.5"),
        ("SESSION_STORE_OUTAGE", "empty"),
    ]);
    let b = &server.base;
    let c = client();
    assert_eq!(get(&c, format!("{b}/")).await.0, StatusCode::OK);
    assert_eq!(
        get(&c, format!("{b}/index")).await,
        (StatusCode::OK, "nick".into())
    );
    drop(redis);
    assert_eq!(get(&c, format!("{b}/index")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&c, format!("{b}/visits")).await,
        (StatusCode::OK, "1".into())
    );
}

#[tokio::test]
async fn forged_cookies_get_a_fresh_session() {
    let server = start(&[]);
    let c = reqwest::Client::new();
    for cookie in [
        "session=garbage",
        "session=",
        "session=%%%",
        &format!("session={}", "A".repeat(10_000)),
        "session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let res = c
            .get(format!("{}/index", server.base))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{cookie:.40}");
    }
}

/// What the audit asks of every answer: plain text in UTF-8, which a
/// browser must not sniff as HTML.
fn assert_plain_text(res: &reqwest::Response, what: &str) {
    let header = |name| res.headers().get(name).and_then(|v| v.to_str().ok());
    assert_eq!(
        header("content-type"),
        Some("text/plain; charset=utf-8"),
        "{what}"
    );
    assert_eq!(header("x-content-type-options"), Some("nosniff"), "{what}");
}

#[tokio::test]
async fn every_answer_is_plain_text_a_browser_will_not_sniff() {
    let server = start(&[]);
    let c = client();
    for (method, path, status) in [
        (Method::GET, "/index", StatusCode::NOT_FOUND),
        (Method::GET, "/", StatusCode::OK),
        (Method::GET, "/index", StatusCode::OK),
        (Method::GET, "/visits", StatusCode::OK),
        (Method::POST, "/visits", StatusCode::OK),
        (Method::GET, "/get?key=color", StatusCode::NOT_FOUND),
        (Method::GET, "/set?key=color&value=blue", StatusCode::OK),
        (Method::POST, "/set?key=color&value=red", StatusCode::OK),
        (Method::GET, "/get?key=color", StatusCode::OK),
        (Method::POST, "/login?user=ann", StatusCode::OK),
        (Method::POST, "/logout", StatusCode::OK),
    ] {
        let what = format!("{method} {path}");
        let res = c
            .request(method, format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{what}");
        assert_plain_text(&res, &what);
    }
}

#[tokio::test]
async fn a_stored_script_comes_back_as_plain_text() {
    let server = start(&[]);
    let b = &server.base;
    let c = client();
    let script = "<script>alert(document.cookie)</script>";
    let encoded = "%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E";
    let res = c
        .post(format!("{b}/set?key=bio&value={encoded}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = c.get(format!("{b}/get?key=bio")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_plain_text(&res, "/get of a script");
    assert_eq!(res.text().await.unwrap(), script);
    let res = c
        .post(format!("{b}/login?user={encoded}"))
        .send()
        .await
        .unwrap();
    assert_plain_text(&res, "/login of a script");
    assert_eq!(res.text().await.unwrap(), format!("welcome {script}"));
}

#[tokio::test]
async fn state_changing_routes_answer_post_and_login_and_logout_only_post() {
    let server = start(&[]);
    let b = &server.base;
    let c = client();
    assert_eq!(
        post(&c, format!("{b}/visits")).await,
        (StatusCode::OK, "1".into())
    );
    assert_eq!(
        get(&c, format!("{b}/visits")).await,
        (StatusCode::OK, "2".into())
    );
    assert_eq!(
        post(&c, format!("{b}/set?key=color&value=green")).await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        get(&c, format!("{b}/get?key=color")).await,
        (StatusCode::OK, "green".into())
    );
    // A link or an <img> cannot log a user in or out.
    assert_eq!(
        get(&c, format!("{b}/login?user=mallory")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&c, format!("{b}/get?key=user")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&c, format!("{b}/logout")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&c, format!("{b}/visits")).await,
        (StatusCode::OK, "3".into())
    );
}

/// Runs the quickstart with a bad setting; returns its exit status and stderr.
fn start_failing(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quickstart"));
    for key in session_actix::config::KEYS {
        cmd.env_remove(key);
    }
    let mut child = cmd
        .env("PORT", free_port().to_string())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the quickstart started despite {env:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

#[test]
fn bad_configuration_exits_non_zero_naming_the_key() {
    for (env, key) in [
        (&[("SESSION_TYPE", "redsi")][..], "SESSION_TYPE"),
        (
            &[("PERMANENT_SESSION_LIFETIME", "31 days")][..],
            "PERMANENT_SESSION_LIFETIME",
        ),
        (
            &[("SESSION_PERMANENT", "yes please")][..],
            "SESSION_PERMANENT",
        ),
        (&[("SESSION_TYPE", "cookie")][..], "SECRET_KEY"),
        (
            &[("SESSION_FILE_MODE", "rw-------")][..],
            "SESSION_FILE_MODE",
        ),
        (&[("PORT", "eighty")][..], "PORT"),
        (
            &[
                ("SESSION_TYPE", "redis"),
                ("SESSION_REDIS", "redis://127.0.0.1:1"),
            ][..],
            "SESSION_REDIS",
        ),
        (
            &[("SESSION_TYPE", "redis"), ("SESSION_REDIS", "http://nope")][..],
            "SESSION_REDIS",
        ),
    ] {
        let (status, stderr) = start_failing(env);
        assert!(!status.success(), "{env:?} started");
        assert!(
            stderr.contains(key),
            "{env:?}: stderr does not name {key}: {stderr}"
        );
    }
}

// ---------------------------------------------------------------------------
// Ids are hashed at rest, checked in each real store

/// Starts the quickstart with `env` and a key prefix of its own, creates a
/// session (`GET /`), and returns the prefix, the cookie's id and the store
/// key the README promises (`prefix + hex(sha256(id))`).
async fn session_at_rest(env: &[(&str, &str)]) -> (Server, String, String, String) {
    let prefix = format!("atrest{}:", free_port());
    let mut env = env.to_vec();
    env.push(("SESSION_KEY_PREFIX", &prefix));
    let server = start(&env);
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let c = reqwest::Client::builder()
        .cookie_provider(std::sync::Arc::clone(&jar))
        .build()
        .unwrap();
    assert_eq!(
        get(&c, format!("{}/", server.base)).await,
        (StatusCode::OK, "hello".into())
    );
    use reqwest::cookie::CookieStore;
    let header = jar
        .cookies(&server.base.parse().unwrap())
        .expect("the session cookie");
    let id = header
        .to_str()
        .unwrap()
        .strip_prefix("session=")
        .expect("only the session cookie")
        .to_owned();
    let parsed = session_core::id::SessionId::parse(&id).expect("a well-formed id");
    let key = session_actix::store::StoreKey::new(&prefix, &parsed, true)
        .as_str()
        .to_owned();
    (server, prefix, id, key)
}

/// Runs a command and returns its standard output.
fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} could not run: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The store holds the session under the hashed key, and nowhere the id.
#[track_caller]
fn assert_hashed(store: &str, dump: &str, id: &str, key: &str) {
    assert!(
        dump.contains(key),
        "{store}: the session is not under prefix + hex(sha256(id)) {key:?}; the store holds:\n{dump}"
    );
    assert!(
        dump.contains("nick"),
        "{store}: the dump does not show the session's data:\n{dump}"
    );
    assert!(
        !dump.contains(id),
        "{store}: the cookie's id {id:?} is at rest:\n{dump}"
    );
}

#[tokio::test]
async fn ids_are_hashed_at_rest_in_redis() {
    let (_server, prefix, id, key) = session_at_rest(&[("SESSION_TYPE", "redis")]).await;
    let keys = output("redis-cli", &["--scan", "--pattern", &format!("{prefix}*")]);
    let values = output("redis-cli", &["HGETALL", &key]);
    assert_hashed("redis", &format!("{keys}\n{values}"), &id, &key);
}

#[tokio::test]
async fn ids_are_hashed_at_rest_in_a_redis_cluster() {
    let url = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002";
    let (_server, prefix, id, key) =
        session_at_rest(&[("SESSION_TYPE", "redis"), ("SESSION_REDIS", url)]).await;
    let dump = output("redis-cli", &["-c", "-p", "7000", "HGETALL", &key])
        + &["7000", "7001", "7002"]
            .iter()
            .map(|p| {
                output(
                    "redis-cli",
                    &["-p", p, "--scan", "--pattern", &format!("{prefix}*")],
                )
            })
            .collect::<String>();
    assert_hashed("redis cluster", &dump, &id, &key);
}

#[tokio::test]
async fn ids_are_hashed_at_rest_in_memcached() {
    let servers = "127.0.0.1:11211,127.0.0.1:11212";
    let (_server, _, id, key) = session_at_rest(&[
        ("SESSION_TYPE", "memcached"),
        ("SESSION_MEMCACHED", servers),
    ])
    .await;
    let mut dump = String::new();
    for port in [11211, 11212] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // Every key the server holds (memcached 1.5+; a crawl already
        // running answers BUSY: try again), then the item itself.
        let mut metadump = String::new();
        for _ in 0..50 {
            metadump = memcached_command(
                &mut stream,
                "lru_crawler metadump all",
                &["END", "DONE", "BUSY", "ERROR"],
            );
            if !metadump.starts_with("BUSY") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            !metadump.starts_with("BUSY") && !metadump.starts_with("ERROR"),
            "metadump on {port}: {metadump}"
        );
        dump.push_str(&metadump);
        dump.push_str(&memcached_command(
            &mut stream,
            &format!("get {key}"),
            &["END"],
        ));
    }
    assert_hashed("memcached", &dump, &id, &key);
}

/// Sends one command and reads its answer, up to a line ending in one of
/// `ends`.
fn memcached_command(stream: &mut std::net::TcpStream, command: &str, ends: &[&str]) -> String {
    use std::io::Write;
    write!(stream, "{command}\r\n").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let text = String::from_utf8_lossy(&seen);
        // Metadump lines end in a bare \n, the final line in \r\n.
        if text.ends_with("\r\n") {
            let last_line = text.trim_end().rsplit('\n').next().unwrap_or("");
            if ends.iter().any(|end| last_line.starts_with(end)) {
                return text.into_owned();
            }
        }
        let n = stream.read(&mut buf).expect("memcached answers");
        assert!(n > 0, "memcached closed the connection");
        seen.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn ids_are_hashed_at_rest_in_postgresql() {
    let table = format!("atrest_{}", free_port());
    let (_server, _, id, key) = session_at_rest(&[
        ("SESSION_TYPE", "sql"),
        ("SESSION_SQL_URL", "postgres://postgres@127.0.0.1:5432/test"),
        ("SESSION_SQL_TABLE", &table),
    ])
    .await;
    let sql = format!("SELECT id, data::text FROM {table}");
    let dump = output(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-At",
            "-c",
            &sql,
        ],
    );
    output(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-c",
            &format!("DROP TABLE {table}"),
        ],
    );
    assert_hashed("postgresql", &dump, &id, &key);
}

#[tokio::test]
async fn ids_are_hashed_at_rest_in_mariadb() {
    let table = format!("atrest_{}", free_port());
    let (_server, _, id, key) = session_at_rest(&[
        ("SESSION_TYPE", "sql"),
        ("SESSION_SQL_URL", "mysql://root@127.0.0.1:3306/test"),
        ("SESSION_SQL_TABLE", &table),
    ])
    .await;
    let dump = output(
        "mysql",
        &[
            "-h127.0.0.1",
            "-uroot",
            "test",
            "-N",
            "-e",
            &format!("SELECT id, data FROM {table}"),
        ],
    );
    output(
        "mysql",
        &[
            "-h127.0.0.1",
            "-uroot",
            "test",
            "-e",
            &format!("DROP TABLE {table}"),
        ],
    );
    assert_hashed("mariadb", &dump, &id, &key);
}

#[tokio::test]
async fn ids_are_hashed_at_rest_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sessions.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let (_server, _, id, key) =
        session_at_rest(&[("SESSION_TYPE", "sql"), ("SESSION_SQL_URL", &url)]).await;
    let dump = output(
        "sqlite3",
        &[file.to_str().unwrap(), "SELECT id, data FROM sessions"],
    );
    assert_hashed("sqlite", &dump, &id, &key);
}

#[tokio::test]
async fn ids_are_hashed_at_rest_in_mongodb() {
    let collection = format!("atrest_{}", free_port());
    let (_server, _, id, key) = session_at_rest(&[
        ("SESSION_TYPE", "mongodb"),
        (
            "SESSION_MONGODB",
            "mongodb://127.0.0.1:27017/?directConnection=true",
        ),
        ("SESSION_MONGODB_COLLECT", &collection),
    ])
    .await;
    let script = format!(
        "import pymongo\n\
         c = pymongo.MongoClient('mongodb://127.0.0.1:27017/?directConnection=true')\n\
         coll = c['flask_session']['{collection}']\n\
         for d in coll.find():\n    print(d['_id'], {{k: bytes(v).decode() for k, v in d['data'].items()}})\n\
         coll.drop()\n"
    );
    let dump = output("/opt/session-test-venv/bin/python", &["-c", &script]);
    assert_hashed("mongodb", &dump, &id, &key);
}

#[tokio::test]
async fn ids_are_hashed_at_rest_in_files() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, _, id, _) = session_at_rest(&[
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", dir.path().to_str().unwrap()),
    ])
    .await;
    // Names are hex(sha256(store key)); contents hold the entries only.
    let mut dump = String::new();
    for sub in [dir.path().to_owned(), dir.path().join("new")] {
        for entry in std::fs::read_dir(&sub).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                dump.push_str(&entry.file_name().to_string_lossy());
                dump.push('\n');
                dump.push_str(&String::from_utf8_lossy(
                    &std::fs::read(entry.path()).unwrap(),
                ));
                dump.push('\n');
            }
        }
    }
    assert!(dump.contains("nick"), "no session file:\n{dump}");
    assert!(
        !dump.contains(&id),
        "the cookie's id {id:?} is at rest:\n{dump}"
    );
}

// ---------------------------------------------------------------------------
// Two processes sharing one session directory

/// Two quickstart processes on one `SESSION_FILE_DIR`, as two app servers
/// behind a load balancer: concurrent requests of one session, spread over
/// both, that set different keys all persist (the striped file locks work
/// across processes, not only across threads).
#[tokio::test]
async fn two_processes_on_one_directory_lose_no_write() {
    const WRITERS: usize = 24;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", dir.path().to_str().unwrap()),
    ];
    let (a, b) = (start(&env), start(&env));
    let c = reqwest::Client::new();
    // Cookies are per host and port in a client's jar: pass it by hand.
    let res = c.get(format!("{}/", a.base)).send().await.unwrap();
    let cookie = common::session_cookie(&res);
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let base = if i % 2 == 0 { &a.base } else { &b.base };
            let req = c
                .post(format!("{base}/set?key=k{i}&value=v{i}"))
                .header(reqwest::header::COOKIE, &cookie);
            tokio::spawn(async move { req.send().await.unwrap().status() })
        })
        .collect();
    for writer in writers {
        assert_eq!(writer.await.unwrap(), StatusCode::OK);
    }
    for i in 0..WRITERS {
        // Read back through the other process.
        let base = if i % 2 == 0 { &b.base } else { &a.base };
        let res = c
            .get(format!("{base}/get?key=k{i}"))
            .header(reqwest::header::COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "k{i} was lost");
        assert_eq!(res.text().await.unwrap(), format!("v{i}"));
    }
}

/// `/set` stores under a name the client picks: the names the session
/// keeps its own user and settings under are refused (400), whatever the
/// value, and the client is never bound to the user it named, nor given
/// the lifetime it asked for.
#[tokio::test]
async fn set_refuses_the_names_the_session_keeps_its_user_and_settings_under() {
    let server = start(&[]);
    let b = &server.base;
    let c = client();
    assert_eq!(
        get(&c, format!("{b}/set?key=cart&value=1")).await.0,
        StatusCode::OK
    );
    let binding = r#"{"user":"victim","handle":"AAAAAAAAAAAAAAAAAAAAAA","indexed_at":0}"#;
    for (key, value) in [
        ("_user", binding),
        ("_user", "victim"),
        ("_lifetime", "31536000"),
        ("_permanent", "true"),
        ("_seen", "0"),
    ] {
        let url =
            reqwest::Url::parse_with_params(&format!("{b}/set"), [("key", key), ("value", value)])
                .unwrap();
        let (status, _) = post(&c, url.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key}={value}");
    }
    assert_eq!(
        get(&c, format!("{b}/sessions")).await.0,
        StatusCode::UNAUTHORIZED,
        "the client is bound to no user"
    );
    assert_eq!(
        get(&c, format!("{b}/get?key=cart")).await,
        (StatusCode::OK, "1".into()),
        "the session is as it was"
    );
}
