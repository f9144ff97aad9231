//! The quickstart in a real browser: headless Chromium, driven through
//! chromedriver over the W3C WebDriver protocol, clicks through the routes
//! on plain `http://localhost` the way a user would, and the test reads
//! what the page says and which cookies the browser kept.
//!
//! Needs Debian's `chromium` and `chromium-driver` (see [`webdriver`]).

use serde_json::json;

mod common;
mod webdriver;

use common::start;
use webdriver::Browser;

/// Every quickstart route through the browser, on the default memory
/// store, with the session cookie `Secure` or not.
async fn browse(secure: bool) {
    let env: &[(&str, &str)] = if secure {
        &[("SESSION_COOKIE_SECURE", "true")]
    } else {
        &[]
    };
    browse_with(secure, env, None).await;
}

/// As [`browse`], on the quickstart started with `env`; with `sealed_in`
/// (the file store's directory), no session file shows a value the
/// browser set.
async fn browse_with(secure: bool, env: &[(&str, &str)], sealed_in: Option<&std::path::Path>) {
    let server = start(env);
    let browser = Browser::open().await;
    let b = &server.localhost();
    let ok = |text: &str| (200, text.to_owned());
    let not_found = |text: &str| (404, text.to_owned());

    assert_eq!(
        browser.visit(&format!("{b}/index")).await,
        not_found("no name in the session")
    );
    assert_eq!(browser.visit(&format!("{b}/")).await, ok("hello"));
    assert_eq!(browser.visit(&format!("{b}/index")).await, ok("nick"));

    // The browser sends the cookie back: the count goes on.
    assert_eq!(browser.visit(&format!("{b}/visits")).await, ok("1"));
    assert_eq!(
        browser.visit(&format!("{b}/visits")).await,
        ok("2"),
        "the browser kept the session cookie (secure: {secure})"
    );
    let first = browser
        .session_cookie()
        .await
        .expect("the browser keeps a `session` cookie");
    assert_eq!(first["httpOnly"], true, "{first}");
    assert_eq!(first["sameSite"], "Lax", "{first}");
    assert_eq!(first["secure"], secure, "{first}");
    let visible = browser.script("return document.cookie").await;
    assert!(
        !visible.as_str().unwrap().contains("session="),
        "scripts must not read the session cookie: {visible}"
    );

    assert_eq!(
        browser
            .visit(&format!("{b}/set?key=color&value=blue"))
            .await,
        ok("ok")
    );
    assert_eq!(
        browser.visit(&format!("{b}/get?key=color")).await,
        ok("blue")
    );
    if let Some(dir) = sealed_in {
        let files = walk(dir);
        assert!(!files.is_empty(), "the session is on disk");
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes.windows(4).any(|w| w == b"blue"),
                "{} shows the value in clear",
                file.display()
            );
        }
    }

    // Logging in renews the id and keeps the data.
    assert_eq!(browser.post("/login?user=ann").await, ok("welcome ann"));
    let renewed = browser
        .session_cookie()
        .await
        .expect("a `session` cookie after the login");
    assert_ne!(renewed["value"], first["value"], "a new id after the login");
    assert_eq!(renewed["httpOnly"], true, "{renewed}");
    assert_eq!(renewed["secure"], secure, "{renewed}");
    assert_eq!(browser.visit(&format!("{b}/get?key=user")).await, ok("ann"));
    assert_eq!(browser.visit(&format!("{b}/visits")).await, ok("3"));

    // Logging out deletes the session, in the browser too.
    assert_eq!(browser.post("/logout").await, ok("bye"));
    assert_eq!(
        browser.session_cookie().await,
        None,
        "the logout removes the cookie"
    );
    assert_eq!(
        browser.visit(&format!("{b}/get?key=user")).await,
        not_found("no such key")
    );
    assert_eq!(browser.visit(&format!("{b}/visits")).await, ok("1"));

    // A garbled cookie is a fresh session, not an error page.
    browser.set_session_cookie("garbage").await;
    assert_eq!(
        browser.session_cookie().await.map(|c| c["value"].clone()),
        Some(json!("garbage"))
    );
    assert_eq!(browser.visit(&format!("{b}/visits")).await, ok("1"));
    let fresh = browser
        .session_cookie()
        .await
        .expect("a new `session` cookie");
    assert_ne!(fresh["value"], "garbage", "{fresh}");
    assert_eq!(browser.visit(&format!("{b}/visits")).await, ok("2"));
}

#[tokio::test]
async fn a_browser_keeps_its_session_across_visits_login_and_logout() {
    browse(false).await;
}

/// The README's claim: a `Secure` cookie works on plain `http://localhost`,
/// which browsers treat as a secure context.
#[tokio::test]
async fn a_browser_keeps_a_secure_session_cookie_on_plain_http_localhost() {
    browse(true).await;
}

/// The same clicks with `SESSION_ENCRYPT_AT_REST=true` on the file store,
/// ids signed: the browser sees no difference, the files show no value.
#[tokio::test]
async fn a_browser_keeps_its_session_with_values_sealed_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let env = [
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", path),
        ("SESSION_ENCRYPT_AT_REST", "true"),
        ("SESSION_USE_SIGNER", "true"),
        ("SECRET_KEY", "a browser test secret, 32 bytes or more"),
    ];
    browse_with(false, &env, Some(dir.path())).await;
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
