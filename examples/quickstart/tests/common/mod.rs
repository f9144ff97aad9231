//! Starting the quickstart binary as a user does, for the black-box tests.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The quickstart, killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// The port it listens on.
    pub(crate) port: u16,
    /// `http://127.0.0.1:PORT`.
    #[allow(dead_code)] // the browser test uses `localhost`
    pub(crate) base: String,
}

impl Server {
    /// `http://localhost:PORT`: browsers treat `localhost` as a secure
    /// context, while `127.0.0.1` in the address bar is another site.
    #[allow(dead_code)] // not every test binary opens a browser
    pub(crate) fn localhost(&self) -> String {
        format!("http://localhost:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts the quickstart with `env` (and no other configuration key of the
/// test's own environment) and waits until it accepts connections.
pub(crate) fn start(env: &[(&str, &str)]) -> Server {
    start_on(free_port(), env, None)
}

/// As [`start`], on `port`, with its output in `log` if given (else
/// dropped).
pub(crate) fn start_on(port: u16, env: &[(&str, &str)], log: Option<&std::path::Path>) -> Server {
    let output = || match log {
        Some(log) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("the quickstart's log"),
        ),
        None => Stdio::null(),
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quickstart"));
    cmd.env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(output())
        .stderr(output());
    for key in session_actix::config::KEYS {
        cmd.env_remove(key);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("the quickstart starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the quickstart on {port} exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the quickstart did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        port,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// The session cookie a response sets, as `name=value`, to send back by
/// hand (a client's jar keys cookies by host and port, and drops a cookie
/// a logout removes).
#[allow(dead_code)] // not every test binary sends cookies by hand
pub(crate) fn session_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}
