//! `session-admin` as an operator runs it: a real binary against real
//! stores, while an app serves real HTTP requests on them.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, get, post, web};
use serde::Deserialize;
use session_actix::{Session, SessionConfig, SessionMiddleware};

const REDIS: &str = "redis://127.0.0.1:6379";

#[derive(Deserialize)]
struct UserQuery {
    user: String,
}

#[post("/login")]
async fn login(session: Session, q: web::Query<UserQuery>) -> actix_web::Result<HttpResponse> {
    session.renew();
    session.insert("user", &q.user)?;
    session.bind_user(&q.user);
    Ok(HttpResponse::Ok().body("welcome"))
}

#[derive(Deserialize)]
struct SetQuery {
    key: String,
    value: String,
}

#[get("/set")]
async fn set(session: Session, q: web::Query<SetQuery>) -> actix_web::Result<HttpResponse> {
    session.insert(&q.key, &q.value)?;
    Ok(HttpResponse::Ok().body("ok"))
}

#[post("/logout")]
async fn logout(session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::Ok().body("bye")
}

#[get("/whoami")]
async fn whoami(session: Session) -> actix_web::Result<HttpResponse> {
    Ok(match session.get::<String>("user")? {
        Some(user) => HttpResponse::Ok().body(user),
        None => HttpResponse::Unauthorized().body("not logged in"),
    })
}

/// A settings file for `session-admin --config`, and the same settings.
struct Settings {
    file: tempfile::NamedTempFile,
    pairs: Vec<(String, String)>,
}

impl Settings {
    fn new(pairs: &[(&str, &str)]) -> Self {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "# written by the admin test").unwrap();
        for (key, value) in pairs {
            writeln!(file, "{key}=\"{value}\"").unwrap();
        }
        Self {
            file,
            pairs: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn path(&self) -> &str {
        self.file.path().to_str().unwrap()
    }

    fn config(&self) -> SessionConfig {
        SessionConfig::from_source(self.pairs.iter().cloned()).unwrap()
    }
}

/// Starts the app on `settings`' store; its base URL.
async fn serve(settings: &Settings) -> String {
    let middleware = SessionMiddleware::from_config(settings.config())
        .await
        .expect("the store opens");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(middleware.clone())
            .service(login)
            .service(set)
            .service(logout)
            .service(whoami)
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    format!("http://127.0.0.1:{port}")
}

/// Runs `session-admin` with `args`, no SESSION_* key of the test's own
/// environment, off the async threads.
async fn admin(args: &[&str]) -> Output {
    admin_with_stdin(args, "").await
}

/// Runs `session-admin` as [`admin`] does, with `input` on its standard
/// input (how `show` takes a cookie).
async fn admin_with_stdin(args: &[&str], input: &str) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let input = input.to_owned();
    actix_web::rt::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_session-admin"));
        for key in session_actix::config::KEYS {
            cmd.env_remove(key);
        }
        let mut child = cmd
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("session-admin runs");
        let mut stdin = child.stdin.take().unwrap();
        // A command that does not read its input may have exited already.
        let _ = stdin.write_all(input.as_bytes());
        drop(stdin);
        child.wait_with_output().expect("session-admin runs")
    })
    .await
    .unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "session-admin failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// A browser: the session cookie, sent by hand (to whichever instance).
#[derive(Clone)]
struct Client {
    user: String,
    cookie: String,
}

async fn log_in(http: &reqwest::Client, base: &str, user: &str) -> Client {
    let response = http
        .post(format!("{base}/login?user={user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    Client {
        user: user.to_owned(),
        cookie,
    }
}

async fn who(http: &reqwest::Client, base: &str, client: &Client) -> (u16, String) {
    let response = http
        .get(format!("{base}/whoami"))
        .header("cookie", &client.cookie)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn unique_prefix(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("admin-test-{what}-{nanos}:")
}

/// The scenario, as the README's "Moving to another store" runs
/// it: a site on the file store outgrows one machine and moves to Redis.
/// The app restarts on Redis with the file store as its
/// `SESSION_MIGRATE_FROM`; `migrate` copies the idle sessions while
/// requests keep flowing, users keep logging in and some log out; then the
/// app drops the file store. No user is logged out, and no logout is
/// undone.
#[actix_web::test]
async fn migrate_moves_a_live_site_from_files_to_redis_and_no_user_is_logged_out() {
    const USERS: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("migrate");
    let files = Settings::new(&[
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", dir.path().to_str().unwrap()),
        ("SESSION_FILE_THRESHOLD", "0"),
        ("SESSION_KEY_PREFIX", &prefix),
        ("PERMANENT_SESSION_LIFETIME", "900"),
    ]);
    let redis_pairs = [
        ("SESSION_TYPE", "redis"),
        ("SESSION_REDIS", REDIS),
        ("SESSION_KEY_PREFIX", &prefix),
        ("PERMANENT_SESSION_LIFETIME", "900"),
    ];
    let redis = Settings::new(&redis_pairs);
    let mut moving_pairs = redis_pairs.to_vec();
    moving_pairs.push(("SESSION_MIGRATE_FROM", files.path()));
    let moving = Settings::new(&moving_pairs);

    // Before: the site on the file store.
    let on_files = serve(&files).await;
    let http = reqwest::Client::new();
    let mut clients = Vec::new();
    for n in 0..USERS {
        clients.push(log_in(&http, &on_files, &format!("user{n}")).await);
    }
    let leaving = clients.split_off(USERS - USERS / 5);

    // Step 1: the app restarts on Redis, reading through to the files.
    let on_redis = serve(&moving).await;

    // Traffic on it for as long as the copy runs: every user writes, new
    // users log in, and a fifth of the users log out.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let cookies: Vec<String> = clients.iter().map(|c| c.cookie.clone()).collect();
    let traffic = {
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        let (http, base) = (http.clone(), on_redis.clone());
        let mut leaving = leaving.clone();
        actix_web::rt::spawn(async move {
            let (mut late, mut left) = (Vec::new(), Vec::new());
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) || !leaving.is_empty() {
                let cookie = &cookies[round % cookies.len()];
                let ok = http
                    .get(format!("{base}/set?key=n&value={round}"))
                    .header("cookie", cookie)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                let counter = if ok { &served } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
                if round.is_multiple_of(10) {
                    late.push(log_in(&http, &base, &format!("late{round}")).await);
                }
                if round.is_multiple_of(3)
                    && let Some(client) = leaving.pop()
                {
                    let ok = http
                        .post(format!("{base}/logout"))
                        .header("cookie", &client.cookie)
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200);
                    let counter = if ok { &served } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                    left.push(client);
                }
                round += 1;
            }
            (late, left)
        })
    };

    // Step 2: the move of the idle sessions, while the traffic runs. The
    // tool refuses a target that does not read through to the source: the
    // sessions it moves would vanish for an app on the old store.
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    let refused = admin(&["migrate", "--from", files.path(), "--to", redis.path()]).await;
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("SESSION_MIGRATE_FROM"),
        "{refused:?}"
    );
    let migrate = [
        "--json",
        "migrate",
        "--from",
        files.path(),
        "--to",
        moving.path(),
    ];
    let served_before = served.load(Ordering::Relaxed);
    let copy = json(&admin(&migrate).await);
    let served_during = served.load(Ordering::Relaxed) - served_before;
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let (late, left) = traffic.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during the move"
    );
    assert!(
        served_during > 0,
        "no request was served while the copy ran"
    );
    assert_eq!(copy["failed"], 0, "{copy}");
    let done = ["copied", "already_there", "gone"]
        .map(|k| copy[k].as_u64().unwrap())
        .iter()
        .sum::<u64>();
    assert_eq!(done, copy["listed"].as_u64().unwrap(), "{copy}");
    assert!(copy["copied"].as_u64().unwrap() > 0, "{copy}");
    assert_eq!(left.len(), USERS / 5, "not every leaving user logged out");

    // Step 3: the app drops the file store; every session is in Redis.
    let on_redis_only = serve(&redis).await;
    for base in [&on_redis, &on_redis_only] {
        for client in clients.iter().chain(&late) {
            assert_eq!(
                who(&http, base, client).await,
                (200, client.user.clone()),
                "{} was logged out by the move",
                client.user
            );
        }
        for client in &left {
            assert_eq!(
                who(&http, base, client).await.0,
                401,
                "{}'s logout was undone by the move",
                client.user
            );
        }
    }
    // Each copy keeps the lifetime it had left, not a new one.
    let first_cookie = clients[0].cookie.trim_start_matches("session=");
    let shown =
        json(&admin_with_stdin(&["--json", "--config", redis.path(), "show"], first_cookie).await);
    let left_secs = shown["expires_in_secs"].as_u64().unwrap();
    assert!((800..=900).contains(&left_secs), "{shown}");
    assert_eq!(shown["values"]["user"], "user0");
    let counts = json(&admin(&["--json", "--config", redis.path(), "count"]).await);
    let logged_in = (clients.len() + late.len()) as u64;
    assert_eq!(counts["sessions"].as_u64().unwrap(), logged_in, "{counts}");
    // A logout leaves the user's index (its entry is dropped the next
    // time the index is listed), so the users who left have one too.
    let indexes = logged_in + left.len() as u64;
    assert_eq!(counts["users"].as_u64().unwrap(), indexes, "{counts}");

    // Tidy Redis: every user logs out everywhere, through the tool.
    for client in clients.iter().chain(&late) {
        let ended = json(
            &admin(&[
                "--json",
                "--config",
                redis.path(),
                "revoke-user",
                &client.user,
            ])
            .await,
        );
        assert_eq!(ended["ended"], 1);
    }
}

/// In Flask-Session's layout this crate keeps users' indexes under a
/// prefix of its own, out of the Flask app's reach: the tool still finds
/// them, and ends a user's sessions.
#[actix_web::test]
async fn revoke_user_finds_the_index_kept_apart_in_the_flask_layout() {
    let prefix = unique_prefix("flask");
    let redis = Settings::new(&[
        ("SESSION_TYPE", "redis"),
        ("SESSION_REDIS", REDIS),
        ("SESSION_KEY_PREFIX", &prefix),
        ("SESSION_INTEROP", "flask-session"),
        ("SECRET_KEY", "a secret key of at least thirty-two bytes"),
    ]);
    let base = serve(&redis).await;
    let http = reqwest::Client::new();
    let ann = log_in(&http, &base, "ann").await;
    let ann_too = log_in(&http, &base, "ann").await;
    let bob = log_in(&http, &base, "bob").await;
    let ended = json(&admin(&["--json", "--config", redis.path(), "revoke-user", "ann"]).await);
    assert_eq!(ended["ended"], 2, "{ended}");
    assert_eq!(who(&http, &base, &ann).await.0, 401);
    assert_eq!(who(&http, &base, &ann_too).await.0, 401);
    assert_eq!(who(&http, &base, &bob).await, (200, "bob".to_owned()));
}

/// `show`, `revoke-user`, `cleanup` and `count`, with their exit codes.
#[actix_web::test]
async fn admin_commands_report_and_exit_as_documented() {
    let prefix = unique_prefix("commands");
    let redis = Settings::new(&[
        ("SESSION_TYPE", "redis"),
        ("SESSION_REDIS", REDIS),
        ("SESSION_KEY_PREFIX", &prefix),
        ("SESSION_USE_SIGNER", "true"),
        ("SECRET_KEY", "a secret key of at least thirty-two bytes"),
        ("PERMANENT_SESSION_LIFETIME", "600"),
    ]);
    let base = serve(&redis).await;
    let http = reqwest::Client::new();
    let ann = log_in(&http, &base, "ann").await;
    let ann_too = log_in(&http, &base, "ann").await;
    let bob = log_in(&http, &base, "bob").await;
    let response = http
        .get(format!("{base}/set?key=cart&value=3%20books"))
        .header("cookie", &bob.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // show: the values of the session a (signed) cookie names, the cookie
    // on standard input.
    let bob_value = bob.cookie.trim_start_matches("session=");
    let shown = admin_with_stdin(&["--config", redis.path(), "show"], bob_value).await;
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("user = \"bob\""), "{text}");
    assert!(text.contains("cart = \"3 books\""), "{text}");
    assert!(text.contains("expires in:"), "{text}");
    let show_json = ["--json", "--config", redis.path(), "show"];
    let shown = json(&admin_with_stdin(&show_json, bob_value).await);
    assert_eq!(shown["values"]["user"], "bob");
    assert!(shown["expires_in_secs"].as_u64().unwrap() > 500);
    // A forged signature names no session: exit code 4. Both a tag that is
    // not the text of 32 bytes (its last character sets padding bits) and a
    // well-formed one the key did not make.
    let (id, tag) = bob_value
        .split_once('.')
        .expect("a signed cookie is id.tag");
    let other_first = if tag.starts_with('A') { 'B' } else { 'A' };
    for forged in [
        format!("{}x", &bob_value[..bob_value.len() - 1]),
        format!("{id}.{other_first}{}", &tag[1..]),
    ] {
        let missing = admin_with_stdin(&["--config", redis.path(), "show"], &forged).await;
        assert_eq!(missing.status.code(), Some(4), "{forged}: {missing:?}");
    }
    // Ids are base64url: a cookie may start with `-`, and is still a cookie
    // to look up.
    let dashed =
        admin_with_stdin(&["--config", redis.path(), "show"], "-PAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(dashed.status.code(), Some(4), "{dashed:?}");

    let counts = json(&admin(&["--json", "--config", redis.path(), "count"]).await);
    assert_eq!(
        (counts["sessions"].as_u64(), counts["users"].as_u64()),
        (Some(3), Some(2))
    );

    // revoke-user: both of ann's sessions end, bob's stays.
    let ended = json(&admin(&["--json", "--config", redis.path(), "revoke-user", "ann"]).await);
    assert_eq!(ended["ended"], 2);
    for client in [&ann, &ann_too] {
        assert_eq!(
            who(&http, &base, client).await.0,
            401,
            "a revoked session lives on"
        );
    }
    assert_eq!(who(&http, &base, &bob).await, (200, "bob".to_owned()));

    // cleanup: Redis expires sessions by itself.
    let cleaned = json(&admin(&["--json", "--config", redis.path(), "cleanup"]).await);
    assert_eq!(cleaned["deleted"], 0);

    // Bad configuration: exit code 2, naming the key.
    let bad = Settings::new(&[("SESSION_TYPE", "redis"), ("SESSION_STORE_TIMEOUT", "soon")]);
    let refused = admin(&["--config", bad.path(), "count"]).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("SESSION_STORE_TIMEOUT"));
    // A migration between different key prefixes would lose every user.
    let other = Settings::new(&[
        ("SESSION_TYPE", "redis"),
        ("SESSION_KEY_PREFIX", "elsewhere:"),
        ("SESSION_MIGRATE_FROM", redis.path()),
    ]);
    let refused = admin(&["migrate", "--from", redis.path(), "--to", other.path()]).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("SESSION_KEY_PREFIX"));
    // The cookie store keeps nothing to count.
    let cookie = Settings::new(&[
        ("SESSION_TYPE", "cookie"),
        ("SECRET_KEY", "a secret key of at least thirty-two bytes"),
    ]);
    assert_eq!(
        admin(&["--config", cookie.path(), "count"])
            .await
            .status
            .code(),
        Some(2)
    );

    let ended = json(&admin(&["--json", "--config", redis.path(), "revoke-user", "bob"]).await);
    assert_eq!(ended["ended"], 1);
}

/// `show` takes the cookie on standard input (one line, trimmed) or from
/// `--cookie-file` (`-`: standard input), and refuses it as an argument,
/// where other local users would see it in the process list and the shell
/// would keep it in its history: exit code 2, saying how to pass it.
#[actix_web::test]
async fn show_reads_the_cookie_from_stdin_or_a_file_and_refuses_it_as_an_argument() {
    let dir = tempfile::tempdir().unwrap();
    let files = Settings::new(&[
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", dir.path().to_str().unwrap()),
    ]);
    let base = serve(&files).await;
    let http = reqwest::Client::new();
    let cy = log_in(&http, &base, "cy").await;
    let cookie = cy.cookie.trim_start_matches("session=");
    let show = ["--json", "--config", files.path(), "show"];

    let refused = admin(&[&show[..], &[cookie]].concat()).await;
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(refused.stdout.is_empty(), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    for why in ["process list", "history", "standard input", "--cookie-file"] {
        assert!(stderr.contains(why), "{why:?} not in: {stderr}");
    }
    assert!(!stderr.contains(cookie), "the refusal echoes the cookie");
    // Ids are base64url: a cookie starting with `-` is refused the same
    // way, not taken for an option.
    let dashed = admin(&[&show[..], &["-PAAAAAAAAAAAAAAAAAAA"]].concat()).await;
    assert_eq!(dashed.status.code(), Some(2), "{dashed:?}");
    assert!(
        String::from_utf8_lossy(&dashed.stderr).contains("process list"),
        "{dashed:?}"
    );

    for input in [
        cookie.to_owned(),
        format!("  {cookie} \r\n"),
        format!("{cookie}\nmore\n"),
    ] {
        let shown = json(&admin_with_stdin(&show, &input).await);
        assert_eq!(shown["values"]["user"], "cy", "{input:?}");
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{cookie}").unwrap();
    let from_file = [&show[..], &["--cookie-file", file.path().to_str().unwrap()]].concat();
    let shown = json(&admin_with_stdin(&from_file, "not this one").await);
    assert_eq!(shown["values"]["user"], "cy");
    let dash = [&show[..], &["--cookie-file", "-"]].concat();
    let shown = json(&admin_with_stdin(&dash, cookie).await);
    assert_eq!(shown["values"]["user"], "cy");
    // A value starting with `-` on standard input is a cookie to look up.
    let dashed = admin_with_stdin(&show, "-PAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(dashed.status.code(), Some(4), "{dashed:?}");

    // Nothing to read, or a file that is not there: usage errors.
    let empty = admin_with_stdin(&show, " \n").await;
    assert_eq!(empty.status.code(), Some(2), "{empty:?}");
    assert!(
        String::from_utf8_lossy(&empty.stderr).contains("no cookie value on standard input"),
        "{empty:?}"
    );
    let missing = dir.path().join("no-such-file");
    let missing = [&show[..], &["--cookie-file", missing.to_str().unwrap()]].concat();
    let unreadable = admin_with_stdin(&missing, cookie).await;
    assert_eq!(unreadable.status.code(), Some(2), "{unreadable:?}");
    assert!(
        String::from_utf8_lossy(&unreadable.stderr).contains("cannot read --cookie-file"),
        "{unreadable:?}"
    );
}

/// A Redis user whose ACL refuses `refused`, deleted when dropped.
struct RedisUser(String);

impl RedisUser {
    fn refusing(what: &str, refused: &[&str]) -> Self {
        let name = unique_prefix(what).trim_end_matches(':').to_owned();
        let mut args = vec!["ACL", "SETUSER", &name, "on", ">pw", "~*", "+@all"];
        let refused: Vec<String> = refused.iter().map(|r| format!("-{r}")).collect();
        args.extend(refused.iter().map(String::as_str));
        let out = Command::new("redis-cli")
            .args(&args)
            .output()
            .expect("redis-cli runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK", "{out:?}");
        Self(name)
    }

    fn url(&self) -> String {
        format!("redis://{}:pw@127.0.0.1:6379", self.0)
    }
}

impl Drop for RedisUser {
    fn drop(&mut self) {
        let _ = Command::new("redis-cli")
            .args(["ACL", "DELUSER", &self.0])
            .output();
    }
}

/// Exit code 1 when the store fails during a command, and 3 when
/// `migrate` finishes with sessions it could not copy (each named on
/// stderr): Redis users whose ACL refuses what the command needs.
#[actix_web::test]
async fn a_failing_store_and_failed_copies_exit_as_documented() {
    let prefix = unique_prefix("exit-codes");
    // Listing needs SCAN.
    let no_scan = RedisUser::refusing("no-scan", &["scan"]);
    let url = no_scan.url();
    let failing = Settings::new(&[
        ("SESSION_TYPE", "redis"),
        ("SESSION_REDIS", &url),
        ("SESSION_KEY_PREFIX", &prefix),
    ]);
    let failed = admin(&["--config", failing.path(), "count"]).await;
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("scan"),
        "{failed:?}"
    );

    // Copies need writes; the source lists and reads.
    let dir = tempfile::tempdir().unwrap();
    let files = Settings::new(&[
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", dir.path().to_str().unwrap()),
        ("SESSION_KEY_PREFIX", &prefix),
    ]);
    let on_files = serve(&files).await;
    let http = reqwest::Client::new();
    log_in(&http, &on_files, "ann").await;
    let read_only = RedisUser::refusing("read-only", &["@write", "@scripting"]);
    let url = read_only.url();
    let target = Settings::new(&[
        ("SESSION_TYPE", "redis"),
        ("SESSION_REDIS", &url),
        ("SESSION_KEY_PREFIX", &prefix),
        ("SESSION_MIGRATE_FROM", files.path()),
    ]);
    let migrated = admin(&[
        "--json",
        "migrate",
        "--from",
        files.path(),
        "--to",
        target.path(),
    ])
    .await;
    assert_eq!(migrated.status.code(), Some(3), "{migrated:?}");
    let report: serde_json::Value = serde_json::from_slice(&migrated.stdout).unwrap();
    // The session and ann's index.
    assert_eq!(
        (report["listed"].as_u64(), report["failed"].as_u64()),
        (Some(2), Some(2)),
        "{report}"
    );
    let stderr = String::from_utf8_lossy(&migrated.stderr);
    assert!(
        stderr.contains(&prefix),
        "each failure names its key: {stderr}"
    );
}

/// `cleanup` deletes the expired sessions of a store that keeps them.
#[actix_web::test]
async fn cleanup_deletes_expired_session_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = Settings::new(&[
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", dir.path().to_str().unwrap()),
        ("PERMANENT_SESSION_LIFETIME", "1"),
    ]);
    let base = serve(&files).await;
    let http = reqwest::Client::new();
    for user in ["ann", "bob"] {
        log_in(&http, &base, user).await;
    }
    let counts = json(&admin(&["--json", "--config", files.path(), "count"]).await);
    assert_eq!(counts["sessions"], 2);
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let cleaned = json(&admin(&["--json", "--config", files.path(), "cleanup"]).await);
    // The two sessions; the users' indexes live on (800 days).
    assert_eq!(cleaned["deleted"], 2, "{cleaned}");
    let session_files = std::fs::read_dir(dir.path())
        .unwrap()
        .chain(std::fs::read_dir(dir.path().join("new")).unwrap())
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".session"))
        })
        .count();
    assert_eq!(session_files, 2, "the users' indexes");
    let counts = json(&admin(&["--json", "--config", files.path(), "count"]).await);
    assert_eq!(
        (counts["sessions"].as_u64(), counts["users"].as_u64()),
        (Some(0), Some(2))
    );
}

/// With values sealed at rest, `show` opens them with the cookie it is
/// given (and the secret); a store holding none of them in clear, and
/// `migrate` copies the sealed values as they are: they open on the new
/// store, whose keys derive from the same ids.
#[actix_web::test]
async fn show_opens_sealed_values_and_migrate_carries_them() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("sealed");
    let sealed = |pairs: &[(&str, &str)]| {
        let mut all = vec![
            ("SESSION_KEY_PREFIX", prefix.as_str()),
            ("SESSION_ENCRYPT_AT_REST", "true"),
            ("SECRET_KEY", "a secret key of at least thirty-two bytes"),
        ];
        all.extend_from_slice(pairs);
        Settings::new(&all)
    };
    let files = sealed(&[
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", dir.path().to_str().unwrap()),
    ]);
    let base = serve(&files).await;
    let http = reqwest::Client::new();
    let eve = log_in(&http, &base, "eve-a1b2c3").await;
    let cookie = eve.cookie.trim_start_matches("session=");
    let response = http
        .get(format!("{base}/set?key=note&value=note-d4e5f6"))
        .header("cookie", &eve.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let mut on_disk = Vec::new();
    for entry in walk(dir.path()) {
        on_disk.extend(std::fs::read(entry).unwrap());
    }
    assert!(!on_disk.is_empty());
    assert!(
        !on_disk.windows(11).any(|w| w == b"note-d4e5f6"),
        "the note is sealed in the file"
    );
    let shown =
        json(&admin_with_stdin(&["--json", "--config", files.path(), "show"], cookie).await);
    assert_eq!(shown["values"]["note"], "note-d4e5f6", "{shown}");
    assert_eq!(shown["values"]["user"], "eve-a1b2c3", "{shown}");

    // Without the secret the values do not open: `show` says so.
    let no_secret = Settings::new(&[
        ("SESSION_KEY_PREFIX", prefix.as_str()),
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", dir.path().to_str().unwrap()),
        ("SESSION_ENCRYPT_AT_REST", "true"),
    ]);
    let show = ["--json", "--config", no_secret.path(), "show"];
    let shown = json(&admin_with_stdin(&show, cookie).await);
    let note = shown["values"]["note"].as_str().unwrap();
    assert!(note.starts_with("<sealed, does not open"), "{note}");

    let redis = sealed(&[("SESSION_TYPE", "redis"), ("SESSION_REDIS", REDIS)]);
    let moving = sealed(&[
        ("SESSION_TYPE", "redis"),
        ("SESSION_REDIS", REDIS),
        ("SESSION_MIGRATE_FROM", files.path()),
    ]);
    let migrated = admin(&["migrate", "--from", files.path(), "--to", moving.path()]).await;
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let on_redis = serve(&redis).await;
    assert_eq!(
        who(&http, &on_redis, &eve).await,
        (200, "eve-a1b2c3".to_owned()),
        "the sealed values open on the new store"
    );
}

/// Every file under `dir`, in subdirectories too.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
