//! The quickstart binary, black-box: started as a user starts it, driven
//! over HTTP with a cookie-keeping client.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts the quickstart with `env` and waits until it accepts connections.
fn start(env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quickstart"));
    cmd.env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for key in session_actix::config::KEYS {
        cmd.env_remove(key);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("the quickstart starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the quickstart exited early: {status}");
        }
        assert!(Instant::now() < deadline, "the quickstart did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

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
    assert_eq!(get(&c, format!("{b}/")).await, (StatusCode::OK, "hello".into()));
    assert_eq!(get(&c, format!("{b}/index")).await, (StatusCode::OK, "nick".into()));
    for n in 1..=3 {
        assert_eq!(get(&c, format!("{b}/visits")).await, (StatusCode::OK, n.to_string()));
    }
    assert_eq!(get(&c, format!("{b}/get?key=color")).await.0, StatusCode::NOT_FOUND);
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
    assert_eq!(get(&c, format!("{b}/visits")).await, (StatusCode::OK, "4".into()));
    assert_eq!(post(&c, format!("{b}/logout")).await, (StatusCode::OK, "bye".into()));
    assert_eq!(get(&c, format!("{b}/get?key=user")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&c, format!("{b}/visits")).await, (StatusCode::OK, "1".into()));
    // Another client has a session of its own.
    assert_eq!(get(&client(), format!("{b}/index")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn routes_on_the_embedded_default_store() {
    exercise_routes(&start(&[])).await;
}

#[tokio::test]
async fn routes_on_the_filesystem_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&[
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", dir.path().to_str().unwrap()),
    ]);
    exercise_routes(&server).await;
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".session"))
        .count();
    assert_eq!(files, 1, "one live session (the last /visits) is on disk");
}

#[tokio::test]
async fn routes_on_the_cookie_store_with_a_signer() {
    let server = start(&[
        ("SESSION_TYPE", "cookie"),
        ("SECRET_KEY", "a quickstart secret that is long enough"),
    ]);
    exercise_routes(&server).await;
}

#[tokio::test]
async fn routes_with_signed_ids() {
    let server = start(&[
        ("SESSION_USE_SIGNER", "true"),
        ("SECRET_KEY", "a quickstart secret that is long enough"),
    ]);
    exercise_routes(&server).await;
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
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status, stderr)
}

#[test]
fn bad_configuration_exits_non_zero_naming_the_key() {
    for (env, key) in [
        (&[("SESSION_TYPE", "redsi")][..], "SESSION_TYPE"),
        (&[("PERMANENT_SESSION_LIFETIME", "31 days")][..], "PERMANENT_SESSION_LIFETIME"),
        (&[("SESSION_PERMANENT", "yes please")][..], "SESSION_PERMANENT"),
        (&[("SESSION_TYPE", "cookie")][..], "SECRET_KEY"),
        (&[("SESSION_FILE_MODE", "rw-------")][..], "SESSION_FILE_MODE"),
        (&[("PORT", "eighty")][..], "PORT"),
    ] {
        let (status, stderr) = start_failing(env);
        assert!(!status.success(), "{env:?} started");
        assert!(stderr.contains(key), "{env:?}: stderr does not name {key}: {stderr}");
    }
}
