//! Sessions shared with a real Flask app: Flask 3.1 and Flask-Session 0.8
//! (pinned in `scripts/flask-requirements.txt`, installed into a
//! virtualenv by `scripts/services.sh`) run `tests/flask/app.py`, and the
//! quickstart runs with `SESSION_INTEROP=flask-session`, both on the same
//! store. One HTTP client, with one cookie jar, goes back and forth
//! between them, on every store both sides support.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use reqwest::cookie::{CookieStore as _, Jar};
use session_core::StoreKey;
use std::collections::BTreeMap;

use session_core::Codec;
use session_core::flask::{Blob, BlobStore, FlaskStore, Timestamp};
use session_core::store::memcached::MemcachedStore;
use session_core::store::mongodb::{FlaskCollection, MongoStore};
use session_core::store::redis::RedisStore;
use session_core::store::sql::{FlaskTable, SqlStore};
use session_core::store::{SessionStore, StoreError};

mod common;

use common::{Server, free_port, start};

const SECRET: &str = "a secret both apps share, 32+ bytes long";
const LIFETIME: u64 = 31 * 24 * 3600;

/// The Python of the virtualenv `scripts/services.sh` makes.
fn python() -> String {
    let venv =
        std::env::var("SESSION_FLASK_VENV").unwrap_or_else(|_| "/opt/session-flask-venv".into());
    let python = format!("{venv}/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: run scripts/services.sh, which installs Flask and Flask-Session"
    );
    python
}

/// The Flask app, killed when dropped.
struct Flask {
    child: Child,
    base: String,
}

impl Drop for Flask {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_flask(env: &[(&str, &str)]) -> Flask {
    let port = free_port();
    let app = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/flask/app.py");
    let mut child = Command::new(python())
        .arg(app)
        .env("FLASK_PORT", port.to_string())
        .env("SECRET_KEY", SECRET)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the Flask app starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the Flask app exited early: {status}");
        }
        assert!(Instant::now() < deadline, "the Flask app did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Flask {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// Where the test reads and plants the stored values, to compare bytes.
#[derive(Clone)]
enum Raw {
    Redis(RedisStore),
    Memcached(MemcachedStore),
    Sql(FlaskTable),
    Mongo(FlaskCollection),
}

/// Calls the same method on whichever store `raw` is.
macro_rules! on_raw {
    ($raw:expr, $s:ident => $call:expr) => {
        match $raw {
            Raw::Redis($s) => $call,
            Raw::Memcached($s) => $call,
            Raw::Sql($s) => $call,
            Raw::Mongo($s) => $call,
        }
    };
}

impl BlobStore for Raw {
    async fn get(&self, key: &StoreKey) -> Result<Option<Blob>, StoreError> {
        on_raw!(self, s => s.get(key).await)
    }
    async fn insert(
        &self,
        key: &StoreKey,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        on_raw!(self, s => s.insert(key, value, ttl).await)
    }
    async fn replace(
        &self,
        key: &StoreKey,
        current: &Blob,
        value: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        on_raw!(self, s => s.replace(key, current, value, ttl).await)
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        on_raw!(self, s => BlobStore::delete(s, key).await)
    }
}

impl Raw {
    /// Stores `value` under `key` in place of what is there.
    async fn put(&self, key: &StoreKey, value: &[u8]) {
        BlobStore::delete(self, key)
            .await
            .expect("the store answers");
        let stored = self.insert(key, value, Duration::from_secs(600)).await;
        assert!(stored.expect("the store answers"), "stored");
    }

    async fn value(&self, key: &StoreKey) -> Option<Vec<u8>> {
        let blob = BlobStore::get(self, key).await;
        blob.expect("the store answers").map(|b| b.value.to_vec())
    }
}

/// What the Flask app's `/types` stores, as Rust reads it.
#[derive(Debug, PartialEq, serde::Deserialize)]
struct Types {
    bytes: serde_bytes::ByteBuf,
    float: f64,
    big: u64,
    negative: i64,
    none: Option<String>,
    list: (u8, String, f64, Vec<bool>),
    int_keys: BTreeMap<u8, String>,
    when: Timestamp,
    empty: BTreeMap<String, String>,
}

/// One store, as each side names it.
struct Setup {
    ours: Vec<(&'static str, String)>,
    flask: Vec<(&'static str, String)>,
    raw: Raw,
    signed: bool,
    json: bool,
}

async fn redis_on(url: &str, flask_store: &str, flask_url: &str) -> Setup {
    Setup {
        ours: vec![
            ("SESSION_TYPE", "redis".into()),
            ("SESSION_REDIS", url.into()),
        ],
        flask: vec![
            ("FLASK_STORE", flask_store.into()),
            ("FLASK_STORE_URL", flask_url.into()),
        ],
        raw: Raw::Redis(RedisStore::builder(url).build().await.expect("redis is up")),
        signed: true,
        json: false,
    }
}

async fn sql(ours: &str, flask: &str) -> Setup {
    let table = "flask_interop";
    let raw = SqlStore::builder(ours)
        .table(table)
        .build_flask_session()
        .await
        .expect("the database is up");
    Setup {
        ours: vec![
            ("SESSION_TYPE", "sql".into()),
            ("SESSION_SQL_URL", ours.into()),
            ("SESSION_SQL_TABLE", table.into()),
        ],
        flask: vec![
            ("FLASK_STORE", "sql".into()),
            ("FLASK_STORE_URL", flask.into()),
            ("FLASK_SQL_TABLE", table.into()),
        ],
        raw: Raw::Sql(raw),
        signed: true,
        json: false,
    }
}

fn env<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The session cookie's value in the jar, for `base`.
fn cookie(jar: &Jar, base: &str) -> Option<String> {
    let header = jar.cookies(&base.parse().unwrap())?;
    header
        .to_str()
        .unwrap()
        .split("; ")
        .find_map(|c| c.strip_prefix("session="))
        .map(str::to_owned)
}

/// The store key of the session in the jar, as both sides name it.
fn store_key(jar: &Jar, base: &str) -> StoreKey {
    let value = cookie(jar, base).expect("a session cookie");
    let sid = value.split('.').next().unwrap();
    assert_eq!(sid.len(), 43, "Flask's 43-character ids: {value}");
    StoreKey::from_raw(format!("session:{sid}"))
}

struct Client {
    http: reqwest::Client,
    jar: Arc<Jar>,
}

impl Client {
    fn new() -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Client { http, jar }
    }

    async fn call(&self, post: bool, url: String) -> (StatusCode, String, Option<String>) {
        let request = if post {
            self.http.post(url)
        } else {
            self.http.get(url)
        };
        let res = request.send().await.expect("a response");
        let set_cookie = res
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned());
        (res.status(), res.text().await.unwrap(), set_cookie)
    }

    async fn get(&self, url: String) -> (StatusCode, String) {
        let (status, body, _) = self.call(false, url).await;
        (status, body)
    }

    async fn post(&self, url: String) -> (StatusCode, String) {
        let (status, body, _) = self.call(true, url).await;
        (status, body)
    }
}

/// When a `Set-Cookie` says the cookie expires: `Max-Age` (ours) or
/// `Expires` (Flask's); `None` for a browser-session cookie.
fn expiry(set_cookie: &str) -> Option<SystemTime> {
    for attr in set_cookie.split(';').map(str::trim) {
        let lower = attr.to_ascii_lowercase();
        if let Some(secs) = lower.strip_prefix("max-age=") {
            return Some(SystemTime::now() + Duration::from_secs(secs.parse().unwrap()));
        }
        if lower.starts_with("expires=") {
            return Some(http_date(&attr["expires=".len()..]));
        }
    }
    None
}

/// `Sun, 27 Dec 2026 07:24:19 GMT`, as both sides write dates.
fn http_date(text: &str) -> SystemTime {
    let parts: Vec<&str> = text.split([' ', ':']).collect();
    let [_, day, month, year, h, m, s, "GMT"] = parts[..] else {
        panic!("an HTTP date: {text}");
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|name| *name == month)
    .expect("a month") as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse().unwrap(), year.parse().unwrap());
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400
        + h.parse::<i64>().unwrap() * 3600
        + m.parse::<i64>().unwrap() * 60
        + s.parse::<i64>().unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
}

fn close(a: SystemTime, b: SystemTime) -> bool {
    let gap = a
        .duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap();
    gap < Duration::from_secs(120)
}

/// The status of `GET base/get?key=KEY` sent with the cookie `value` only.
async fn with_cookie(base: &str, key: &str, value: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{base}/get?key={key}"))
        .header("cookie", format!("session={value}"))
        .send()
        .await
        .expect("a response")
        .status()
}

/// What the Flask app answers a request that carries `cookie` as its
/// session cookie's text, whatever its shape: Flask-Session opens
/// `prefix + cookie` without checking it when `SESSION_USE_SIGNER` is off.
async fn flask_with_cookie(post: bool, url: String, cookie: &str) -> (StatusCode, String) {
    let c = reqwest::Client::new();
    let request = if post { c.post(url) } else { c.get(url) };
    let res = request
        .header("cookie", format!("session={cookie}"))
        .send()
        .await
        .expect("a response");
    (res.status(), res.text().await.unwrap())
}

/// Every key of the Redis at 6379 that holds `needle`, with its value.
fn redis_dump(needle: &str) -> Vec<(String, Vec<u8>)> {
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(args)
            .output()
            .expect("redis-cli runs");
        assert!(out.status.success(), "redis-cli {args:?}");
        out.stdout
    };
    let keys = cli(&["--scan", "--pattern", &format!("*{needle}*")]);
    String::from_utf8(keys)
        .unwrap()
        .lines()
        .map(|key| {
            let mut value = cli(&["--raw", "GET", key]);
            value.pop(); // redis-cli's newline
            (key.to_owned(), value)
        })
        .collect()
}

/// The audit's finding: a Flask app opens `prefix + <any cookie text>`,
/// where this crate kept a user's index (`prefix + "user:" + sha256`) and
/// a login's note (`prefix + id + ":moved"`), both holding live ids. Now
/// they live where no Flask cookie reaches, and hold no id: through the
/// quickstart with the Flask layout on Redis, after a login, no value in
/// the store holds a live id, the Flask app reads and ends nothing of
/// this crate's, and logging out everywhere still ends every session.
#[tokio::test]
async fn flask_clients_reach_none_of_this_crates_records() {
    let prefix = format!("flaskaudit{}:", free_port());
    let user = format!("victim{}", free_port());
    let rust = start(&[
        ("SESSION_TYPE", "redis"),
        ("SESSION_REDIS", "redis://127.0.0.1:6379"),
        ("SESSION_INTEROP", "flask-session"),
        ("SECRET_KEY", SECRET),
        ("SESSION_KEY_PREFIX", &prefix),
    ]);
    let flask = start_flask(&[
        ("FLASK_STORE", "redis"),
        ("FLASK_STORE_URL", "redis://127.0.0.1:6379/0"),
        ("FLASK_KEY_PREFIX", &prefix),
    ]);
    let (r, f) = (rust.base.as_str(), flask.base.as_str());

    // The id an attacker would plant, then the victim's login on it.
    let victim = Client::new();
    assert_eq!(
        victim.post(format!("{r}/set?key=cart&value=1")).await.0,
        StatusCode::OK
    );
    let planted = cookie(&victim.jar, r).expect("a session");
    let login = victim.post(format!("{r}/login?user={user}")).await;
    assert_eq!(login, (StatusCode::OK, format!("welcome {user}")));
    let live = cookie(&victim.jar, r).expect("the login's session");
    assert_ne!(live, planted);

    // A dump of every key: no value holds an id, and the only key under
    // the prefix (what Flask can address) is the session itself.
    let dump = redis_dump(&prefix);
    let keys =
        session_core::testing::layout::Keyspace::new(&prefix, false, true, Some(SECRET), [""; 0])
            .unwrap();
    let index = keys.user_index(&user);
    let note = keys.move_note(&StoreKey::from_raw(format!("{prefix}{planted}")));
    for (key, value) in &dump {
        for id in [&planted, &live] {
            assert!(
                !value.windows(id.len()).any(|w| w == id.as_bytes()),
                "{key} holds the id {id}"
            );
        }
        if key.starts_with(&prefix) {
            assert_eq!(key, &format!("{prefix}{live}"), "Flask can address {key}");
        } else {
            assert!(!key.contains(&live) && !key.contains(&planted), "{key}");
        }
    }
    let names: Vec<&str> = dump.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        names.contains(&index.as_str()),
        "the index is kept: {names:?}"
    );
    assert!(
        names.contains(&note.as_str()),
        "the note is kept: {names:?}"
    );

    // Through Flask, the cookie texts that reached this crate's records
    // before, and the records' keys without the prefix: a fresh session
    // each time, and a Flask logout with them ends nothing.
    let user_hash = index.as_str().rsplit(':').next().unwrap().to_owned();
    let texts = [
        format!("user:{user_hash}"),
        format!("{planted}:moved"),
        note.as_str()[1 + prefix.len()..].to_owned(),
        index.as_str()[1..].to_owned(),
    ];
    for text in &texts {
        let whoami = flask_with_cookie(false, format!("{f}/whoami"), text).await;
        assert_eq!(whoami, (StatusCode::OK, String::new()), "{text}");
        let logout = flask_with_cookie(true, format!("{f}/logout"), text).await;
        assert_eq!(logout.0, StatusCode::OK, "{text}");
    }
    assert_eq!(
        redis_dump(&prefix).len(),
        dump.len(),
        "a Flask logout removed a record"
    );

    // Logging out everywhere still reaches the victim's session.
    let other = Client::new();
    assert_eq!(
        other.post(format!("{r}/login?user={user}")).await.0,
        StatusCode::OK
    );
    let (status, body) = other.post(format!("{r}/logout-everywhere")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "2 ended"));
    assert_eq!(
        victim.get(format!("{r}/get?key=cart")).await.0,
        StatusCode::NOT_FOUND,
        "the victim's session outlived logging out everywhere"
    );
}

/// Every promise of the interop, on one store.
async fn share(setup: Setup) {
    let mut ours = env(&setup.ours);
    let mut flask_env = env(&setup.flask);
    ours.extend([("SESSION_INTEROP", "flask-session"), ("SECRET_KEY", SECRET)]);
    if setup.signed {
        ours.push(("SESSION_USE_SIGNER", "true"));
        flask_env.push(("SESSION_USE_SIGNER", "1"));
    }
    if setup.json {
        ours.push(("SESSION_SERIALIZATION_FORMAT", "json"));
        flask_env.push(("FLASK_FORMAT", "json"));
    }
    let rust: Server = start(&ours);
    let flask = start_flask(&flask_env);
    let (r, f) = (rust.base.as_str(), flask.base.as_str());
    let c = Client::new();

    // Set on Flask, read on actix.
    let (status, _, set_cookie) = c.call(true, format!("{f}/set?key=name&value=nick")).await;
    assert_eq!(status, StatusCode::OK);
    let flask_expiry = expiry(&set_cookie.expect("Flask sets its cookie")).expect("permanent");
    let value = cookie(&c.jar, f).unwrap();
    assert_eq!(
        value.contains('.'),
        setup.signed,
        "signed as configured: {value}"
    );
    assert_eq!(
        c.get(format!("{r}/get?key=name")).await,
        (StatusCode::OK, "nick".into())
    );

    // Set on actix, read on Flask.
    assert_eq!(
        c.post(format!("{r}/set?key=color&value=blue")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        c.get(format!("{f}/get?key=color")).await,
        (StatusCode::OK, "blue".into())
    );

    // Integers, each side adding one to what the other wrote.
    for (n, base) in [(1, f), (2, r), (3, f), (4, r)] {
        assert_eq!(
            c.get(format!("{base}/visits")).await,
            (StatusCode::OK, n.to_string())
        );
    }

    // A value of every kind Flask writes survives a write here byte for
    // byte: the stored map is the same, with the new key added at the end.
    let key = store_key(&c.jar, f);
    assert_eq!(c.post(format!("{f}/types")).await.0, StatusCode::OK);
    let before = setup.raw.value(&key).await.expect("the session is stored");
    if !setup.json {
        // What Flask wrote reads as Rust types through serde, as
        // `Session::get` and typed sessions read it.
        let record = FlaskStore::new(setup.raw.clone())
            .load(&key)
            .await
            .unwrap()
            .unwrap();
        let types: Types = Codec::MessagePack.decode(&record.entries["types"]).unwrap();
        assert_eq!(
            types,
            Types {
                bytes: serde_bytes::ByteBuf::from(b"\x00\xffraw".to_vec()),
                float: 1.1,
                big: (1 << 62) + 1,
                negative: -(1 << 40),
                none: None,
                list: (1, "two".into(), 3.0, vec![true, false]),
                int_keys: [(1, "one".into()), (2, "two".into())].into(),
                when: Timestamp::new(1_795_696_215, 123_456_000).unwrap(),
                empty: BTreeMap::new(),
            }
        );
    }
    assert_eq!(
        c.post(format!("{r}/set?key=rust&value=x")).await.0,
        StatusCode::OK
    );
    let after = setup.raw.value(&key).await.expect("still stored");
    let mut expected = before.clone();
    if setup.json {
        expected.pop();
        expected.extend(br#","rust":"x"}"#);
    } else {
        assert_eq!(before[0], 0x85, "a map of five: {before:?}");
        expected[0] = 0x86;
        expected.extend(b"\xa4rust\xa1x");
    }
    assert_eq!(after, expected, "Flask's values kept as they were");
    assert_eq!(
        c.get(format!("{f}/whoami")).await,
        (StatusCode::OK, "color,name,rust,types,visits".into())
    );

    // Concurrent writes here to different keys are all kept.
    let writes: Vec<_> = (0..12)
        .map(|i| tokio::spawn(c.http.post(format!("{r}/set?key=k{i:02}&value={i}")).send()))
        .collect();
    for write in writes {
        assert_eq!(write.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    let (_, keys) = c.get(format!("{f}/whoami")).await;
    for i in 0..12 {
        assert!(keys.contains(&format!("k{i:02}")), "k{i:02} kept: {keys}");
    }

    // Logout here ends the session on Flask, for the cookie it had too.
    let old = cookie(&c.jar, r).unwrap();
    assert_eq!(with_cookie(f, "name", &old).await, StatusCode::OK);
    assert_eq!(c.post(format!("{r}/logout")).await.0, StatusCode::OK);
    assert_eq!(setup.raw.value(&key).await, None, "deleted from the store");
    assert_eq!(with_cookie(f, "name", &old).await, StatusCode::NOT_FOUND);

    // A session made here: Flask accepts its cookie, and sees it permanent
    // with the same expiry.
    let c = Client::new();
    let (status, _, set_cookie) = c.call(true, format!("{r}/set?key=name&value=ann")).await;
    assert_eq!(status, StatusCode::OK);
    let our_expiry = expiry(&set_cookie.expect("our cookie")).expect("permanent");
    assert!(close(our_expiry, flask_expiry), "both sides give 31 days");
    let (status, body, set_cookie) = c.call(false, format!("{f}/get?key=name")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ann"));
    let flask_again = expiry(&set_cookie.expect("Flask refreshes its cookie")).expect("permanent");
    assert!(close(
        flask_again,
        SystemTime::now() + Duration::from_secs(LIFETIME)
    ));

    // Logout on Flask ends the session here, for the cookie it had too.
    let key = store_key(&c.jar, r);
    let old = cookie(&c.jar, r).unwrap();
    assert_eq!(with_cookie(r, "name", &old).await, StatusCode::OK);
    assert_eq!(c.post(format!("{f}/logout")).await.0, StatusCode::OK);
    assert_eq!(setup.raw.value(&key).await, None);
    assert_eq!(with_cookie(r, "name", &old).await, StatusCode::NOT_FOUND);

    // A browser-session cookie on Flask stays one after a write here.
    let c = Client::new();
    let (_, _, set_cookie) = c
        .call(true, format!("{f}/set?key=a&value=1&permanent=false"))
        .await;
    assert_eq!(expiry(&set_cookie.unwrap()), None, "Flask: no Expires");
    assert_eq!(
        c.get(format!("{r}/visits")).await,
        (StatusCode::OK, "1".into())
    );
    assert_eq!(
        c.get(format!("{f}/get?key=visits")).await,
        (StatusCode::OK, "1".into())
    );
    // (Flask sends the cookie of a session that is not permanent only when
    // the session changes.)
    let (_, _, set_cookie) = c.call(true, format!("{f}/set?key=b&value=2")).await;
    assert_eq!(expiry(&set_cookie.unwrap()), None, "still not permanent");
    // ... and one made here is one for Flask.
    let c = Client::new();
    let user = format!("bob-{}", std::process::id());
    let (status, _, set_cookie) = c
        .call(true, format!("{r}/login?user={user}&remember=false"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(expiry(&set_cookie.unwrap()), None, "ours: no Max-Age");
    assert_eq!(
        c.get(format!("{f}/get?key=user")).await,
        (StatusCode::OK, user)
    );
    let (_, _, set_cookie) = c.call(true, format!("{f}/set?key=b&value=2")).await;
    assert_eq!(expiry(&set_cookie.unwrap()), None, "Flask agrees");

    // A stored value that is not a map (a pickle) is no session here: a
    // fresh one, never a 500, and the value is left as it was.
    let c = Client::new();
    assert_eq!(
        c.post(format!("{f}/set?key=name&value=eve")).await.0,
        StatusCode::OK
    );
    let key = store_key(&c.jar, f);
    let pickled = b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.";
    setup.raw.put(&key, pickled).await;
    assert_eq!(
        c.get(format!("{r}/get?key=name")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.post(format!("{r}/set?key=name&value=new")).await.0,
        StatusCode::OK
    );
    assert_ne!(store_key(&c.jar, r), key, "a new session, with a new id");
    assert_eq!(
        setup.raw.value(&key).await.unwrap(),
        pickled,
        "left as it was"
    );

    // A forged signature is a fresh session on both sides.
    if setup.signed {
        let value = cookie(&c.jar, r).unwrap();
        // A tag character changed (not the last: its low bits are padding).
        let at = value.len() - 10;
        let swap = if &value[at..=at] == "A" { "B" } else { "A" };
        let forged = format!("{}{swap}{}", &value[..at], &value[at + 1..]);
        for base in [r, f] {
            assert_eq!(
                with_cookie(base, "name", &value).await,
                StatusCode::OK,
                "{base}"
            );
            assert_eq!(
                with_cookie(base, "name", &forged).await,
                StatusCode::NOT_FOUND,
                "{base}"
            );
        }
    }
}

#[tokio::test]
async fn redis() {
    share(redis_setup().await).await;
}

async fn redis_setup() -> Setup {
    redis_on(
        "redis://127.0.0.1:6379",
        "redis",
        "redis://127.0.0.1:6379/0",
    )
    .await
}

#[tokio::test]
async fn redis_json_unsigned() {
    let mut setup = redis_setup().await;
    setup.json = true;
    setup.signed = false;
    share(setup).await;
}

#[tokio::test]
async fn redis_cluster() {
    let url = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002";
    share(redis_on(url, "redis-cluster", "127.0.0.1:7000").await).await;
}

#[tokio::test]
async fn redis_sentinel() {
    let url = "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster";
    share(redis_on(url, "redis-sentinel", "127.0.0.1:26379").await).await;
}

#[tokio::test]
async fn memcached() {
    let server = "127.0.0.1:11211";
    let raw = MemcachedStore::builder([server]).build().unwrap();
    share(Setup {
        ours: vec![
            ("SESSION_TYPE", "memcached".into()),
            ("SESSION_MEMCACHED", server.into()),
        ],
        flask: vec![
            ("FLASK_STORE", "memcached".into()),
            ("FLASK_STORE_URL", server.into()),
        ],
        raw: Raw::Memcached(raw),
        signed: false,
        json: false,
    })
    .await;
}

#[tokio::test]
async fn postgres() {
    share(
        sql(
            "postgres://postgres@127.0.0.1:5432/test",
            "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
        )
        .await,
    )
    .await;
}

#[tokio::test]
async fn mariadb() {
    share(
        sql(
            "mysql://root@127.0.0.1:3306/test",
            "mysql+pymysql://root@127.0.0.1:3306/test",
        )
        .await,
    )
    .await;
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let ours = format!("sqlite://{}?mode=rwc", path.display());
    let flask = format!("sqlite:///{}", path.display());
    share(sql(&ours, &flask).await).await;
}

#[tokio::test]
async fn mongodb() {
    let uri = "mongodb://127.0.0.1:27017/?directConnection=true";
    let db = "flask_interop";
    let raw = MongoStore::builder(uri)
        .database(db)
        .build_flask_session()
        .await
        .expect("mongodb is up");
    share(Setup {
        ours: vec![
            ("SESSION_TYPE", "mongodb".into()),
            ("SESSION_MONGODB", uri.into()),
            ("SESSION_MONGODB_DB", db.into()),
        ],
        flask: vec![
            ("FLASK_STORE", "mongodb".into()),
            ("FLASK_STORE_URL", "mongodb://127.0.0.1:27017".into()),
            ("FLASK_MONGODB_DB", db.into()),
        ],
        raw: Raw::Mongo(raw),
        signed: true,
        json: false,
    })
    .await;
}
