//! The quickstart binary under hostile clients, black-box: garbled, forged,
//! tampered, oversized and repeated cookies and headers, sent as raw bytes
//! over TCP (a client library would refuse most of them).
//!
//! For every request: no 5xx, no panic in the server, and the session is a
//! fresh one: a read finds nothing (`GET /index` is 404 and issues no
//! session) and a write starts a new session under a new id (`/visits`
//! counts 1, and the cookie it sets appears nowhere in what was sent). The
//! one exception is a request HTTP itself refuses (a control byte in a
//! header, more than 96 headers, a head over 128 KiB, a broken
//! `Content-Length`): actix answers 400 or 431 or closes the connection,
//! still never a 5xx.
//!
//! Requests come from proptest strategies with a fixed seed, so a run is
//! reproducible and a failure is shrunk to a minimal request.

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use session_core::id::SessionId;
use session_core::signing::Signer;

/// Generated hostile requests per store and signing setting.
const CASES: u32 = 400;
const SECRET: &str = "the hostile suite's secret, long enough to sign";
/// What an attacker who guessed wrong would sign with.
const WRONG_SECRET: &str = "a secret the server does not know, also long";
/// The head size past which actix refuses a request (its `MAX_BUFFER_SIZE`
/// is 128 KiB), with room for the request line and our own headers.
const HEAD_LIMIT: usize = 120 * 1024;
/// httparse's header limit in actix is 96; leave room for ours.
const HEADER_LIMIT: usize = 90;

/// The base64url alphabet of session ids.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// ---------------------------------------------------------------------------
// The server

struct Server {
    /// Locked only to poll it: proptest's test closures take `&self`.
    child: Mutex<Child>,
    port: u16,
    stderr: Arc<Mutex<Vec<u8>>>,
    signed: bool,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Server {
    /// Starts the quickstart on `store` (a temporary directory for the
    /// filesystem store), signing ids when `signed`; waits until it listens.
    fn start(store: &str, signed: bool) -> Self {
        let dir = (store == "filesystem").then(|| tempfile::tempdir().unwrap());
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_quickstart"));
        for key in session_actix::config::KEYS {
            cmd.env_remove(key);
        }
        cmd.env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .env("SESSION_TYPE", store)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(dir) = &dir {
            cmd.env("SESSION_FILE_DIR", dir.path());
        }
        if signed {
            cmd.env("SESSION_USE_SIGNER", "true")
                .env("SECRET_KEY", SECRET);
        }
        let mut child = cmd.spawn().expect("the quickstart starts");
        // Drained all along, so a chatty server never blocks on a full pipe.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the quickstart exited early: {status}");
            }
            assert!(Instant::now() < deadline, "the quickstart did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child: Mutex::new(child),
            port,
            stderr,
            signed,
            _dir: dir,
        }
    }

    /// The process still runs and has not panicked (actix would restart a
    /// worker that panicked, so only stderr tells).
    fn check_alive(&self) -> Result<(), String> {
        if let Some(status) = self.child.lock().unwrap().try_wait().unwrap() {
            return Err(format!("the quickstart exited: {status}"));
        }
        let stderr = self.stderr.lock().unwrap();
        if stderr.windows(8).any(|w| w == b"panicked") {
            return Err(format!(
                "the quickstart panicked:\n{}",
                String::from_utf8_lossy(&stderr)
            ));
        }
        Ok(())
    }

    /// Whether `value` has the shape of a session cookie this server
    /// issues: an id, followed by `.` and a tag when ids are signed.
    fn is_issued_shape(&self, value: &str) -> bool {
        let id = if self.signed {
            match value.split_once('.') {
                Some((id, tag)) if tag.len() == 43 => id,
                _ => return false,
            }
        } else {
            value
        };
        SessionId::parse(id).is_some()
    }
}

// ---------------------------------------------------------------------------
// A raw HTTP/1.1 client

struct Response {
    status: u16,
    /// The values of `Set-Cookie: session=...`.
    session_cookies: Vec<String>,
    body: Vec<u8>,
}

/// Sends `request` on a connection of its own and reads the answer to the
/// end (every request says `Connection: close`).
fn exchange(port: u16, request: &[u8]) -> Result<Response, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // A server that refuses an oversized head may close before reading it
    // all: the answer it sent first may still be there to read.
    let written = stream.write_all(request);
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        return Err(format!("no answer (write: {written:?}, read: {read:?})"));
    }
    parse(&raw).ok_or_else(|| format!("not HTTP: {}", String::from_utf8_lossy(&raw)))
}

fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let session_cookies = lines
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, value)| value.trim().strip_prefix("session="))
        .map(|cookie| cookie.split(';').next().unwrap_or_default().to_owned())
        .collect();
    Some(Response {
        status,
        session_cookies,
        body: raw[end + 4..].to_vec(),
    })
}

// ---------------------------------------------------------------------------
// Hostile requests

#[derive(Clone, Copy, Debug)]
enum Route {
    /// `GET /index`: reads the name.
    Read,
    /// `POST /visits`: counts a visit.
    WritePost,
    /// `GET /visits`: the same, the demo's way.
    WriteGet,
}

#[derive(Clone)]
struct Hostile {
    route: Route,
    /// The value of each `Cookie` header.
    cookies: Vec<Vec<u8>>,
    /// Other headers.
    headers: Vec<(String, Vec<u8>)>,
}

/// Shows at most 100 bytes of each value: some are 100 KiB long.
struct Short<'a>(&'a [u8]);

impl fmt::Debug for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(100)];
        write!(f, "\"{}\"", shown.escape_ascii())?;
        if shown.len() < self.0.len() {
            write!(f, "...({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hostile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hostile")
            .field("route", &self.route)
            .field(
                "cookies",
                &self.cookies.iter().map(|c| Short(c)).collect::<Vec<_>>(),
            )
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, v)| (n, Short(v)))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Hostile {
    fn to_bytes(&self) -> Vec<u8> {
        let line = match self.route {
            Route::Read => "GET /index",
            Route::WritePost => "POST /visits",
            Route::WriteGet => "GET /visits",
        };
        let mut out =
            format!("{line} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n").into_bytes();
        if matches!(self.route, Route::WritePost) {
            out.extend_from_slice(b"Content-Length: 0\r\n");
        }
        for cookie in &self.cookies {
            out.extend_from_slice(b"Cookie: ");
            out.extend_from_slice(cookie);
            out.extend_from_slice(b"\r\n");
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Whether HTTP itself may refuse this request, before any session
    /// code runs.
    fn http_may_refuse(&self, size: usize) -> bool {
        let values = self
            .cookies
            .iter()
            .chain(self.headers.iter().map(|(_, v)| v));
        size > HEAD_LIMIT
            || self.cookies.len() + self.headers.len() > HEADER_LIMIT
            || self
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            || values
                .flatten()
                .any(|&b| !(b == b'\t' || (0x20..=0x7e).contains(&b) || b >= 0x80))
    }
}

/// A byte a header value may hold, weighted towards the ones cookie
/// parsing cares about.
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => select(b" \t\"';=,\\%{}()<>@:/?[]".to_vec()),
        4 => 0x21u8..0x7f,
        2 => 0x80u8..=0xff,
    ]
}

fn junk(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(header_byte(), 0..=max)
}

/// A byte no header value may hold.
fn control_byte() -> impl Strategy<Value = u8> {
    prop_oneof![0u8..9, 11u8..32, Just(0x7f)]
}

/// An id of the right shape that the server never issued.
fn forged_id() -> impl Strategy<Value = Vec<u8>> {
    // The last character carries two padding bits that must be zero.
    let last: Vec<u8> = ALPHABET.iter().step_by(4).copied().collect();
    (
        prop::collection::vec(select(ALPHABET.to_vec()), 42),
        select(last),
    )
        .prop_map(|(mut id, last)| {
            id.push(last);
            id
        })
}

fn quoted(value: &[u8]) -> Vec<u8> {
    [b"\"", value, b"\""].concat()
}

/// Session cookie values a client may send. `issued` is a value the server
/// really issued, for tampering; `light` leaves out the oversized values,
/// for requests that carry many cookies.
fn session_value(issued: Vec<u8>, light: bool) -> BoxedStrategy<Vec<u8>> {
    let mutated = {
        let issued = issued.clone();
        (any::<Index>(), header_byte()).prop_map(move |(at, byte)| {
            let mut value = issued.clone();
            let i = at.index(value.len());
            value[i] = if value[i] == byte { byte ^ 0x01 } else { byte };
            value
        })
    };
    let affixed = {
        let issued = issued.clone();
        (
            select(vec![&b""[..], b"x", b"\"", b"=", b"A"]),
            // Never `;` or blanks: those would leave the issued value as it is.
            select(vec![&b"x"[..], b"=", b"\"", b".", b"A", b"%00"]),
        )
            // Quotes on both sides are the same cookie (RFC 6265's
            // quoted cookie-value), not a tampered one.
            .prop_filter("a quoted cookie is the cookie", |(before, after)| {
                (*before, *after) != (&b"\""[..], &b"\""[..])
            })
            .prop_map(move |(before, after)| [before, &issued, after].concat())
    };
    let not_utf8 = (any::<Index>(), 0x80u8..=0xff).prop_map(move |(at, byte)| {
        let mut value = issued.clone();
        let i = at.index(value.len());
        value[i] = byte;
        value
    });
    let wrong_key = Signer::new("session-id", WRONG_SECRET, [] as [&str; 0]).unwrap();
    let strategy = prop_oneof![
        3 => junk(80),
        2 => forged_id(),
        1 => forged_id().prop_map(|id| quoted(&id)),
        1 => (forged_id(), forged_id()).prop_map(|(id, tag)| [&id[..], b".", &tag].concat()),
        1 => forged_id().prop_map(move |id| {
            wrong_key.sign(std::str::from_utf8(&id).unwrap()).into_bytes()
        }),
        3 => mutated,
        1 => affixed,
        1 => not_utf8,
    ];
    if light {
        return strategy.boxed();
    }
    prop_oneof![
        10 => strategy,
        1 => (select(vec![4096usize, 16_384, 65_536, 100_000]), select(b"A.-_x\"".to_vec()))
            .prop_map(|(len, byte)| vec![byte; len]),
    ]
    .boxed()
}

/// One `name=value` pair of a `Cookie` header, or something that fails to
/// be one.
fn pair(value: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let names = vec![
        &b"session"[..],
        b" session",
        b"session ",
        b"session\t",
        b"SESSION",
        b"Session",
        b"\"session\"",
        b"session2",
    ];
    prop_oneof![
        6 => (select(names), value).prop_map(|(name, value)| [name, b"=", &value].concat()),
        2 => (junk(12), junk(40)).prop_map(|(name, value)| [&name[..], b"=", &value].concat()),
        1 => select(vec![
            &b""[..], b"session", b"=", b"=x", b"session=", b"===", b"session==", b";", b"\"",
        ])
        .prop_map(<[u8]>::to_vec),
        1 => junk(40),
    ]
}

fn cookie_header(value: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(pair(value), 0..12),
        select(vec![&b"; "[..], b";", b" ; ", b";;", b", "]),
    )
        .prop_map(|(pairs, separator)| pairs.join(separator))
}

fn cookies(issued: Vec<u8>) -> impl Strategy<Value = Vec<Vec<u8>>> {
    let light = || session_value(issued.clone(), true);
    prop_oneof![
        6 => prop::collection::vec(cookie_header(session_value(issued.clone(), false)), 0..4),
        // Many session cookies in one header.
        1 => prop::collection::vec(light().prop_map(|v| [&b"session="[..], &v].concat()), 20..200)
            .prop_map(|pairs| vec![pairs.join(&b"; "[..])]),
        // Many Cookie headers, past the header limit at times.
        1 => prop::collection::vec(light().prop_map(|v| [&b"session="[..], &v].concat()), 20..100),
    ]
}

fn other_header() -> impl Strategy<Value = (String, Vec<u8>)> {
    let names = vec![
        "X-Junk",
        "User-Agent",
        "Accept",
        "Referer",
        "X-Forwarded-For",
        "Cookie2",
        "Set-Cookie",
        "Session",
        "Authorization",
        "Accept-Language",
        "Host",
    ];
    prop_oneof![
        6 => (select(names), junk(64)).prop_map(|(n, v)| (n.to_owned(), v)),
        1 => (
            select(vec!["User-Agent", "X-Huge"]),
            select(vec![8192usize, 32_768, 65_536]),
        )
            .prop_map(|(n, len)| (n.to_owned(), vec![b'A'; len])),
    ]
}

/// A header HTTP refuses: kept to one request in ten, so most requests
/// reach the session code.
fn refused_header() -> impl Strategy<Value = (String, Vec<u8>)> {
    let control = || prop::collection::vec(control_byte(), 1..4);
    prop_oneof![
        select(vec!["abc", "-1", "1, 2", "99999999999999999999999"])
            .prop_map(|v| ("Content-Length".to_owned(), v.as_bytes().to_vec())),
        control().prop_map(|v| ("X-Ctl".to_owned(), v)),
        control().prop_map(|v| ("Cookie".to_owned(), [&b"session="[..], &v].concat())),
        (forged_id(), control())
            .prop_map(|(id, v)| { ("Cookie".to_owned(), [&b"session="[..], &id, &v].concat()) }),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let some = prop_oneof![
        6 => prop::collection::vec(other_header(), 0..4),
        // One header repeated, past the header limit at times.
        1 => (select(vec!["X-Forwarded-For", "Accept", "Host"]), junk(20), 20usize..100)
            .prop_map(|(name, value, n)| vec![(name.to_owned(), value); n]),
    ];
    (some, prop::option::weighted(0.1, refused_header())).prop_map(|(mut headers, refused)| {
        headers.extend(refused);
        headers
    })
}

fn hostile(issued: Vec<u8>) -> impl Strategy<Value = Hostile> {
    (
        select(vec![Route::Read, Route::WritePost, Route::WriteGet]),
        cookies(issued),
        headers(),
    )
        .prop_map(|(route, cookies, headers)| Hostile {
            route,
            cookies,
            headers,
        })
}

/// The requests every run sends, whatever the generator draws: each size
/// up to and past what actix takes, and the degenerate headers.
fn fixed_cases(issued: &[u8]) -> Vec<Hostile> {
    let mut cases = Vec::new();
    let mut add = |cookies: Vec<Vec<u8>>, headers: Vec<(String, Vec<u8>)>| {
        for route in [Route::Read, Route::WritePost] {
            cases.push(Hostile {
                route,
                cookies: cookies.clone(),
                headers: headers.clone(),
            });
        }
    };
    for len in [4096, 16_384, 65_536, 120_000, 200_000] {
        add(vec![[&b"session="[..], &vec![b'A'; len]].concat()], vec![]);
        let padded = [&b"session="[..], issued, &vec![b'A'; len]].concat();
        add(vec![padded], vec![]);
    }
    add(vec![b"".to_vec()], vec![]);
    add(
        vec![b";;;;".to_vec(), b"session".to_vec(), b"=".to_vec()],
        vec![],
    );
    add(vec![b"session=; session=\"\"".to_vec()], vec![]);
    add(vec![b"session=".to_vec(); 100], vec![]);
    add(vec![], vec![("X-Big".to_owned(), vec![b'x'; 100_000])]);
    add(vec![], vec![("X-Many".to_owned(), b"1".to_vec()); 95]);
    cases
}

// ---------------------------------------------------------------------------
// The checks

/// Sends one hostile request and checks what came back.
fn check(server: &Server, hostile: &Hostile) -> Result<(), TestCaseError> {
    let request = hostile.to_bytes();
    let may_refuse = hostile.http_may_refuse(request.len());
    let result = exchange(server.port, &request);
    server.check_alive().map_err(TestCaseError::fail)?;
    let res = match result {
        Ok(res) => res,
        Err(_) if may_refuse => return Ok(()),
        Err(error) => return Err(TestCaseError::fail(error)),
    };
    prop_assert!(res.status < 500, "answered {}", res.status);
    if may_refuse && matches!(res.status, 400 | 431) {
        return Ok(());
    }
    match hostile.route {
        Route::Read => {
            prop_assert_eq!(res.status, 404);
            prop_assert_eq!(&res.body[..], b"no name in the session");
            // A read of a session that does not exist issues none (at
            // most a removal of the bad cookie).
            prop_assert!(
                res.session_cookies.iter().all(String::is_empty),
                "a read issued {:?}",
                res.session_cookies
            );
        }
        Route::WritePost | Route::WriteGet => {
            prop_assert_eq!(res.status, 200);
            prop_assert_eq!(&res.body[..], b"1", "not a fresh session");
            let issued: Vec<_> = res
                .session_cookies
                .iter()
                .filter(|c| !c.is_empty())
                .collect();
            prop_assert_eq!(issued.len(), 1, "{:?}", res.session_cookies);
            let new = issued[0];
            prop_assert!(server.is_issued_shape(new), "issued {:?}", new);
            prop_assert!(
                !request.windows(new.len()).any(|w| w == new.as_bytes()),
                "the new session took an id the client sent: {:?}",
                new
            );
        }
    }
    Ok(())
}

fn plain(route: &str, cookie: Option<&[u8]>) -> Vec<u8> {
    let mut out =
        format!("{route} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n").into_bytes();
    if let Some(cookie) = cookie {
        out.extend_from_slice(b"Cookie: session=");
        out.extend_from_slice(cookie);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Runs the fixed and the generated hostile requests against one server.
fn hostile_run(store: &str, signed: bool) {
    let server = Server::start(store, signed);
    // A real session, with a name: a hostile cookie that loaded it would
    // show as a 200 on /index.
    let hello = exchange(server.port, &plain("GET /", None)).unwrap();
    assert_eq!(hello.status, 200);
    let issued = hello.session_cookies[0].clone().into_bytes();
    let index = |server: &Server| exchange(server.port, &plain("GET /index", Some(&issued)));
    assert_eq!(index(&server).unwrap().body, b"nick");

    let fixed = fixed_cases(&issued);
    for case in &fixed {
        if let Err(error) = check(&server, case) {
            panic!("{store} (signed: {signed}): {case:?}: {error}");
        }
    }
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    if let Err(error) = runner.run(&hostile(issued.clone()), |case| check(&server, &case)) {
        panic!("{store} (signed: {signed}): {error}");
    }

    server.check_alive().unwrap();
    // The real session went through it all untouched, and new clients are
    // served as usual.
    assert_eq!(index(&server).unwrap().body, b"nick");
    let visit = exchange(server.port, &plain("GET /visits", None)).unwrap();
    assert_eq!((visit.status, &visit.body[..]), (200, &b"1"[..]));
    let sent = fixed.len() + CASES as usize;
    eprintln!("{store} (signed: {signed}): {sent} hostile requests");
}

#[test]
fn hostile_clients_get_fresh_sessions_on_the_memory_store() {
    hostile_run("memory", false);
}

#[test]
fn hostile_clients_get_fresh_sessions_on_the_memory_store_with_signed_ids() {
    hostile_run("memory", true);
}

#[test]
fn hostile_clients_get_fresh_sessions_on_the_filesystem_store() {
    hostile_run("filesystem", false);
}

#[test]
fn hostile_clients_get_fresh_sessions_on_the_filesystem_store_with_signed_ids() {
    hostile_run("filesystem", true);
}
