//! The typed example's page in real browsers: two independent headless
//! Chromium profiles log in as one user, the page lists both sessions, one
//! logs the other out, and the other's next page load shows it logged out.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/services.sh`
//! installs them); without them the test fails, it never skips.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../quickstart/tests/webdriver/mod.rs"]
mod webdriver;

use webdriver::Browser;

/// The typed example, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the example on a free port, with `env` and no other
/// configuration key of the test's environment.
fn start(env: &[(&str, &str)]) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_typed"));
    cmd.env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for key in session_actix::config::KEYS {
        cmd.env_remove(key);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("the typed example starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the typed example exited early: {status}");
        }
        assert!(Instant::now() < deadline, "the typed example did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, port }
}

/// Opens the page and logs in as `user` with its form.
async fn log_in(browser: &Browser, page: &str, user: &str) {
    browser.visit(page).await;
    browser
        .until(
            "the page loaded",
            "return document.getElementById('who').textContent === 'Not logged in.'",
        )
        .await;
    browser
        .script(&format!(
            "document.getElementById('user').value = {user:?}; \
             document.getElementById('login').click();"
        ))
        .await;
    browser
        .until(
            "logged in",
            &format!(
                "return document.getElementById('who').textContent === 'Logged in as {user}.'"
            ),
        )
        .await;
}

/// The number of entries in the page's list of sessions.
const LISTED: &str = "return document.querySelectorAll('#sessions li[data-handle]').length";

#[tokio::test]
async fn one_browser_logs_the_other_out_from_the_list_of_sessions() {
    let server = start(&[("SESSION_TRACK_CLIENT", "true")]);
    let page = format!("http://localhost:{}/", server.port);
    let (first, second) = (Browser::open().await, Browser::open().await);
    log_in(&first, &page, "ann").await;
    log_in(&second, &page, "ann").await;

    // The first browser's page lists both sessions, its own marked.
    first.visit(&page).await;
    first
        .until("two sessions listed", &format!("{LISTED} === 2"))
        .await;
    let own = first
        .script("return document.querySelector('#sessions li.current').textContent")
        .await;
    assert!(
        own.as_str()
            .unwrap()
            .starts_with("This browser, last seen "),
        "{own}"
    );
    let other = first
        .script("return document.querySelector('#sessions li.other').textContent")
        .await;
    assert!(
        other.as_str().unwrap().contains("HeadlessChrome")
            && other.as_str().unwrap().contains("from 127.0.0.1"),
        "the other browser, as tracked at its login: {other}"
    );

    // It logs the second browser out.
    first
        .script("document.querySelector('#sessions li.other button').click()")
        .await;
    first
        .until("one session left", &format!("{LISTED} === 1"))
        .await;
    assert_eq!(
        first
            .visit(&format!("http://localhost:{}/cart", server.port))
            .await
            .0,
        200
    );

    // The second browser's next page load shows it logged out.
    second.visit(&page).await;
    second
        .until(
            "the second browser logged out",
            "return document.getElementById('who').textContent === 'Not logged in.' \
             && document.getElementById('sessions').textContent === 'Log in to see your sessions.'",
        )
        .await;
    // The first is still logged in.
    first.visit(&page).await;
    first
        .until(
            "the first still logged in",
            "return document.getElementById('who').textContent === 'Logged in as ann.'",
        )
        .await;
}
