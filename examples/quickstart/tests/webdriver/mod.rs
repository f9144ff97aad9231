//! A headless Chromium driven through chromedriver over the W3C WebDriver
//! protocol, for the examples' browser tests (each includes this file).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`); `scripts/services.sh` installs them. Without
//! them the tests fail, they never skip.

#![allow(dead_code)] // each test binary uses part of it

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const MISSING: &str = "install Debian's chromium and chromium-driver (scripts/services.sh does)";

/// A child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One WebDriver command; its `value`, or a panic with the driver's error.
async fn webdriver(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method.clone(), url);
    if let Some(body) = body {
        request = request
            .header(CONTENT_TYPE, "application/json")
            .body(serde_json::to_string(&body).unwrap());
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}"));
    let status = response.status();
    let bytes = response.bytes().await.expect("a WebDriver reply");
    let mut reply: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "WebDriver {method} {url}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert!(
        status.is_success(),
        "WebDriver {method} {url} failed with {status}: {reply}"
    );
    reply["value"].take()
}

/// Headless Chromium in a WebDriver session. Dropping it ends the session
/// (Chromium quits), then kills chromedriver, also when a test fails.
pub(crate) struct Browser {
    http: reqwest::Client,
    driver_port: u16,
    id: String,
    /// Dropped after `Browser::drop` has ended the session.
    _driver: Process,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // `drop` cannot await: a raw request ends the session, so that
        // Chromium quits rather than outliving a killed chromedriver.
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.driver_port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                self.id, self.driver_port
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
    }
}

impl Browser {
    /// Starts chromedriver on a free port, waits until it is ready and
    /// opens a headless Chromium.
    pub(crate) async fn open() -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: {MISSING}"
        );
        assert!(
            Path::new(CHROMEDRIVER).exists(),
            "{CHROMEDRIVER} is missing: {MISSING}"
        );
        let driver_port = free_port();
        let mut driver = Process(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={driver_port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{CHROMEDRIVER} does not start ({e}): {MISSING}")),
        );
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let root = format!("http://127.0.0.1:{driver_port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = http.get(format!("{root}/status")).send().await
                && let Ok(bytes) = response.bytes().await
                && let Ok(status) = serde_json::from_slice::<Value>(&bytes)
                && status["value"]["ready"] == true
            {
                break;
            }
            if let Some(status) = driver.0.try_wait().unwrap() {
                panic!("chromedriver exited early: {status}");
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // CI runs as root, where Chromium's sandbox cannot start.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            },
        }}});
        let session = webdriver(
            &http,
            Method::POST,
            &format!("{root}/session"),
            Some(capabilities),
        )
        .await;
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {session}"))
            .to_owned();
        Browser {
            http,
            driver_port,
            id,
            _driver: driver,
        }
    }

    async fn command(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let url = format!(
            "http://127.0.0.1:{}/session/{}{path}",
            self.driver_port, self.id
        );
        webdriver(&self.http, method, &url, body).await
    }

    /// Runs `script` in the page and returns what it returns.
    pub(crate) async fn script(&self, script: &str) -> Value {
        let body = json!({"script": script, "args": []});
        self.command(Method::POST, "/execute/sync", Some(body))
            .await
    }

    /// Goes to `url` as through the address bar: the status and the text
    /// of the page that loads.
    pub(crate) async fn visit(&self, url: &str) -> (u64, String) {
        self.command(Method::POST, "/url", Some(json!({"url": url})))
            .await;
        let page = self
            .script(
                "return [performance.getEntriesByType('navigation')[0].responseStatus, \
                 document.body.innerText]",
            )
            .await;
        page_answer(&page)
    }

    /// A POST to `path` from the page's own script, as a form or a button
    /// would send it: the status and the body.
    pub(crate) async fn post(&self, path: &str) -> (u64, String) {
        let script = format!(
            "const done = arguments[arguments.length - 1]; \
             fetch({path:?}, {{method: 'POST'}}) \
               .then(async r => done([r.status, await r.text()])) \
               .catch(e => done([0, String(e)]))"
        );
        let body = json!({"script": script, "args": []});
        let answer = self
            .command(Method::POST, "/execute/async", Some(body))
            .await;
        page_answer(&answer)
    }

    /// The `session` cookie the browser keeps for the current site.
    pub(crate) async fn session_cookie(&self) -> Option<Value> {
        let cookies = self.command(Method::GET, "/cookie", None).await;
        cookies
            .as_array()
            .unwrap_or_else(|| panic!("no cookie list: {cookies}"))
            .iter()
            .find(|c| c["name"] == "session")
            .cloned()
    }

    /// Stores a `session` cookie with `value` for the current site.
    pub(crate) async fn set_session_cookie(&self, value: &str) {
        let cookie = json!({"cookie": {"name": "session", "value": value, "path": "/"}});
        self.command(Method::POST, "/cookie", Some(cookie)).await;
    }
}

/// `[status, text]` from the page, the text without a trailing newline.
pub(crate) fn page_answer(answer: &Value) -> (u64, String) {
    let status = answer[0]
        .as_u64()
        .unwrap_or_else(|| panic!("no status in {answer}"));
    let text = answer[1]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"));
    (status, text.trim_end().to_owned())
}

impl Browser {
    /// Runs `script` until it returns `true`, for at most ten seconds: for a
    /// page that changes after a click.
    pub(crate) async fn until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.script(script).await == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "the page never showed: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
