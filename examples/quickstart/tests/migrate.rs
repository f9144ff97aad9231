//! `SESSION_MIGRATE_FROM` in the quickstart binary, as the README's
//! "Moving to another store" runs it: a site on the file store restarts on
//! Redis reading through to the files, then on Redis alone. The cookies
//! issued before the move keep working; a logout made during it stays.

mod common;

use std::io::Write as _;

use common::{session_cookie, start};

async fn get(http: &reqwest::Client, url: String, cookie: &str) -> (u16, String) {
    let response = http.get(url).header("cookie", cookie).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_site_moves_from_files_to_redis_with_no_one_logged_out() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("quickstart-migrate-{}:", std::process::id());
    let mut old = tempfile::NamedTempFile::new().unwrap();
    writeln!(old, "SESSION_TYPE=filesystem").unwrap();
    writeln!(old, "SESSION_FILE_DIR={}", dir.path().display()).unwrap();
    writeln!(old, "SESSION_KEY_PREFIX={prefix}").unwrap();
    let old_path = old.path().to_str().unwrap().to_owned();
    let files = [
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", dir.path().to_str().unwrap()),
        ("SESSION_KEY_PREFIX", prefix.as_str()),
    ];
    let http = reqwest::Client::new();

    // Before: two users on the file store.
    let server = start(&files);
    let base = server.localhost();
    let mut cookies = Vec::new();
    for user in ["ann", "bob"] {
        let login = http
            .post(format!("{base}/login?user={user}"))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        let cookie = session_cookie(&login);
        let set = get(
            &http,
            format!("{base}/set?key=color&value=teal-{user}"),
            &cookie,
        )
        .await;
        assert_eq!(set, (200, "ok".to_owned()));
        cookies.push(cookie);
    }
    drop(server);

    // Step 1: on Redis, reading through to the files.
    let moving = [
        ("SESSION_TYPE", "redis"),
        ("SESSION_KEY_PREFIX", prefix.as_str()),
        ("SESSION_MIGRATE_FROM", old_path.as_str()),
    ];
    let server = start(&moving);
    let base = server.localhost();
    let (ann, bob) = (&cookies[0], &cookies[1]);
    assert_eq!(
        get(&http, format!("{base}/get?key=color"), ann).await,
        (200, "teal-ann".to_owned())
    );
    let logout = http
        .post(format!("{base}/logout"))
        .header("cookie", bob)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 200);
    assert_eq!(
        get(&http, format!("{base}/get?key=color"), bob).await.0,
        404
    );
    drop(server);

    // Step 3: Redis alone. ann's session was moved by her request; bob's
    // logout ended his in both stores.
    let redis = [
        ("SESSION_TYPE", "redis"),
        ("SESSION_KEY_PREFIX", prefix.as_str()),
    ];
    let server = start(&redis);
    let base = server.localhost();
    assert_eq!(
        get(&http, format!("{base}/get?key=color"), ann).await,
        (200, "teal-ann".to_owned())
    );
    assert_eq!(
        get(&http, format!("{base}/get?key=color"), bob).await.0,
        404
    );
    // Nothing of bob's is left in the files to be copied back.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| std::fs::read(e.path()).is_ok_and(|b| b.windows(9).any(|w| w == b"teal-bob\"")))
        .collect();
    assert!(left.is_empty(), "bob's session is still in the files");
}

#[test]
fn a_bad_migrate_from_stops_start_up_naming_it() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .env("SESSION_MIGRATE_FROM", "/no/such/old-store.env")
        .env("PORT", common::free_port().to_string())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SESSION_MIGRATE_FROM"), "{stderr}");
}
