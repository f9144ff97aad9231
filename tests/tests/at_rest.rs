//! Session values encrypted at rest (`SESSION_ENCRYPT_AT_REST`), seen the
//! way someone with a dump of the store sees them: every byte each server
//! holds for the app's sessions, read with the server's own client, holds
//! none of the values the app wrote (and, with the option off, the same
//! reader finds them all, so the check can fail). Then what someone who
//! can write to the store can do: a value moved to another key or session,
//! or changed, reads as absent, with a warning, never a 500. And the ways
//! in and out: turning the option on or off logs no one out, `strict`
//! drops values in clear, and `SECRET_KEY` rotation through the fallbacks.

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use base64::Engine as _;
use session_actix::store::memory::MemoryStore;
use session_actix::{SessionMiddleware, SessionMiddlewareBuilder};
use session_core::bytes::Bytes;
use session_core::store::{ChangeSet, SessionStore};
use session_core::{AnyStore, EncryptAtRest, SessionConfig, SessionId, StoreConfig, StoreKey};
use session_tests::{Hooks, OLD_SECRET, SECRET, TestApp};

/// Values no store writes by itself: found in a dump, they leaked.
const NOTE: &str = "canary-note-5b2f81d0";
const USER: &str = "canary-user-c47e19aa";
const CART: &str = "canary-cart-9e03d6f4";

/// A backend on a real server, as `SESSION_*` settings.
struct Server {
    name: &'static str,
    settings: Vec<(&'static str, String)>,
}

fn servers(dir: &std::path::Path) -> Vec<Server> {
    let server = |name, settings: &[(&'static str, &str)]| Server {
        name,
        settings: settings
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect(),
    };
    let sqlite = format!("sqlite://{}?mode=rwc", dir.join("at-rest.db").display());
    let files = dir.join("files").display().to_string();
    vec![
        server(
            "filesystem",
            &[("SESSION_TYPE", "filesystem"), ("SESSION_FILE_DIR", &files)],
        ),
        server(
            "redis",
            &[("SESSION_TYPE", "redis"), ("SESSION_REDIS", REDIS)],
        ),
        server(
            "memcached",
            &[
                ("SESSION_TYPE", "memcached"),
                ("SESSION_MEMCACHED", "127.0.0.1:11211,127.0.0.1:11212"),
            ],
        ),
        server(
            "postgres",
            &[
                ("SESSION_TYPE", "sql"),
                ("SESSION_SQL_URL", POSTGRES),
                ("SESSION_SQL_TABLE", TABLE),
            ],
        ),
        server(
            "mysql",
            &[
                ("SESSION_TYPE", "sql"),
                ("SESSION_SQL_URL", MYSQL),
                ("SESSION_SQL_TABLE", TABLE),
            ],
        ),
        server(
            "sqlite",
            &[
                ("SESSION_TYPE", "sql"),
                ("SESSION_SQL_URL", &sqlite),
                ("SESSION_SQL_TABLE", TABLE),
            ],
        ),
        server(
            "mongodb",
            &[
                ("SESSION_TYPE", "mongodb"),
                ("SESSION_MONGODB", MONGODB),
                ("SESSION_MONGODB_DB", "session_tests"),
                ("SESSION_MONGODB_COLLECT", TABLE),
            ],
        ),
    ]
}

const REDIS: &str = "redis://127.0.0.1:6379";
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL: &str = "mysql://root@127.0.0.1:3306/test";
const MONGODB: &str = "mongodb://127.0.0.1:27017/?directConnection=true";
/// The table (and collection) of the test's sessions; the queries of
/// [`dump`] spell it out.
const TABLE: &str = "at_rest_sessions";

/// The app on `server`'s store under a key prefix of its own, sealing as
/// `mode` says; and the configuration it was opened with.
async fn app_on(server: &Server, mode: EncryptAtRest) -> (TestApp, SessionConfig) {
    let prefix = format!("at-rest:{}:", &SessionId::generate().as_str()[..16]);
    let mode = match mode {
        EncryptAtRest::Off => "false",
        EncryptAtRest::Strict => "strict",
        _ => "true",
    };
    let config = SessionConfig::from_source(
        server
            .settings
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain([
                ("SESSION_KEY_PREFIX", prefix.as_str()),
                ("SESSION_ENCRYPT_AT_REST", mode),
            ]),
    )
    .expect("valid settings");
    let middleware = SessionMiddleware::from_config(config.clone())
        .await
        .unwrap_or_else(|e| panic!("{} must be up (run scripts/services.sh): {e}", server.name));
    (TestApp::start(middleware, Hooks::new(1)).await, config)
}

/// Writes the canaries the three ways a value reaches a store: a new
/// session, a login's move to a new id, and a change to a stored session;
/// checks that they read back; returns the cookie.
async fn write_canaries(app: &TestApp, what: &str) -> String {
    let first = app
        .get(&format!("/set?key=note&value={NOTE}"), None)
        .await
        .expect_new_session(what);
    let cookie = app
        .post(&format!("/login?user={USER}"), Some(&first))
        .await
        .expect_new_session(what);
    app.get(&format!("/set?key=cart&value={CART}"), Some(&cookie))
        .await
        .assert_ok("ok", what);
    app.get("/get?key=note", Some(&cookie))
        .await
        .assert_ok(NOTE, what);
    app.get("/get?key=user", Some(&cookie))
        .await
        .assert_ok(USER, what);
    app.get("/get?key=cart", Some(&cookie))
        .await
        .assert_ok(CART, what);
    cookie
}

/// Whether `dump` shows `secret`: as it is, or inside a base64 run (the
/// SQL store keeps binary values in base64).
fn shows(dump: &[u8], secret: &str) -> bool {
    let secret = secret.as_bytes();
    let found = |bytes: &[u8]| bytes.windows(secret.len()).any(|w| w == secret);
    if found(dump) {
        return true;
    }
    dump.split(|b| !(b.is_ascii_alphanumeric() || b"+/=-_".contains(b)))
        .filter(|run| run.len() >= 8)
        .any(|run| {
            let run = std::str::from_utf8(run).expect("ASCII");
            let trimmed = run.trim_end_matches('=');
            [
                base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed),
            ]
            .into_iter()
            .flatten()
            .any(|decoded| found(&decoded))
        })
}

/// Every byte `server` holds under the configuration's key prefix, as its
/// own client reads it (for files: every file of the directory).
async fn dump(server: &Server, config: &SessionConfig) -> Vec<u8> {
    let prefix = &config.key_prefix;
    let mut out = Vec::new();
    // The rows of the sessions under `prefix`, `data` as the database
    // prints it.
    macro_rules! sql_rows {
        ($pool:ty, $url:expr, $query:literal) => {{
            let pool = <$pool>::connect($url).await.expect("the database is up");
            let rows: Vec<(String, String)> = sqlx::query_as($query)
                .bind(format!("{prefix}%"))
                .fetch_all(&pool)
                .await
                .expect("the sessions' rows");
            for (id, data) in rows {
                out.extend(format!("{id} {data}\n").into_bytes());
            }
        }};
    }
    match server.name {
        "filesystem" => {
            let StoreConfig::Filesystem { dir, .. } = &config.store else {
                panic!("a file store: {:?}", config.store);
            };
            for entry in std::fs::read_dir(dir).expect("the session directory") {
                let path = entry.expect("a directory entry").path();
                if path.is_file() {
                    out.extend(std::fs::read(&path).expect("a session file"));
                }
            }
        }
        "redis" => {
            let client = redis::Client::open(REDIS).expect("a Redis URL");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("Redis is up");
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .expect("KEYS");
            for key in keys {
                let kind: String = redis::cmd("TYPE")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .expect("TYPE");
                let fields: Vec<Vec<u8>> = match kind.as_str() {
                    "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await,
                    _ => redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .map(|v: Vec<u8>| vec![v]),
                }
                .expect("the key's value");
                out.extend(key.into_bytes());
                fields.into_iter().for_each(|f| out.extend(f));
            }
        }
        "memcached" => {
            let StoreConfig::Memcached { servers } = &config.store else {
                panic!("a memcached store: {:?}", config.store);
            };
            for address in servers {
                out.extend(memcached_dump(address, prefix).await);
            }
        }
        "postgres" => sql_rows!(
            sqlx::PgPool,
            POSTGRES,
            "SELECT id, data::text FROM at_rest_sessions WHERE id LIKE $1"
        ),
        "mysql" => sql_rows!(
            sqlx::MySqlPool,
            MYSQL,
            "SELECT id, CAST(data AS CHAR) FROM at_rest_sessions WHERE id LIKE ?"
        ),
        "sqlite" => {
            let StoreConfig::Sql { url: Some(url), .. } = &config.store else {
                panic!("a SQLite URL: {:?}", config.store);
            };
            sql_rows!(
                sqlx::SqlitePool,
                url,
                "SELECT id, data FROM at_rest_sessions WHERE id LIKE ?"
            )
        }
        "mongodb" => {
            let client = mongodb::Client::with_uri_str(MONGODB)
                .await
                .expect("a MongoDB URI");
            let collection = client
                .database("session_tests")
                .collection::<mongodb::bson::RawDocumentBuf>(TABLE);
            let mut cursor = collection
                .find(mongodb::bson::doc! { "_id": { "$regex": format!("^{}", regex_escape(prefix)) } })
                .await
                .expect("MongoDB is up");
            while cursor.advance().await.expect("the next document") {
                out.extend(cursor.current().as_bytes());
            }
        }
        other => unreachable!("no dump for {other}"),
    }
    out
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escape = !c.is_ascii_alphanumeric();
            escape.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// Every item under `prefix` on the memcached server at `address`: its
/// key list from `lru_crawler metadump`, then each item with `get`.
async fn memcached_dump(address: &str, prefix: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn ask(address: &str, command: &str) -> Vec<u8> {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("memcached is up");
        stream.write_all(command.as_bytes()).await.expect("a write");
        let mut answer = Vec::new();
        let mut buf = [0u8; 65536];
        while !answer.ends_with(b"END\r\n") {
            let n = stream.read(&mut buf).await.expect("a read");
            assert!(n > 0, "memcached hung up");
            answer.extend_from_slice(&buf[..n]);
        }
        answer
    }
    let listing = ask(address, "lru_crawler metadump all\r\n").await;
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&listing).lines() {
        let Some(key) = line.split(' ').find_map(|f| f.strip_prefix("key=")) else {
            continue;
        };
        // Keys are url-encoded in the dump: `:` is `%3A`.
        let key = key.replace("%3A", ":");
        if key.starts_with(prefix) {
            out.extend(ask(address, &format!("get {key}\r\n")).await);
        }
    }
    out
}

#[actix_web::test]
async fn a_dump_of_any_store_shows_none_of_the_values() {
    // Directories of their own: a dump of files reads the whole directory.
    let clear_dir = tempfile::tempdir().expect("a temporary directory");
    let sealed_dir = tempfile::tempdir().expect("a temporary directory");
    let pairs = servers(clear_dir.path())
        .into_iter()
        .zip(servers(sealed_dir.path()));
    for (server, sealed_server) in pairs {
        let name = server.name;
        // Off: the same reader finds every value, so the check below can fail.
        let (app, config) = app_on(&server, EncryptAtRest::Off).await;
        write_canaries(&app, name).await;
        let clear = dump(&server, &config).await;
        for canary in [NOTE, USER, CART] {
            assert!(
                shows(&clear, canary),
                "{name}: a dump shows {canary} in clear"
            );
        }

        let (app, config) = app_on(&sealed_server, EncryptAtRest::On).await;
        write_canaries(&app, name).await;
        let sealed = dump(&sealed_server, &config).await;
        assert!(
            sealed.len() > 3 * session_core::testing::layout::OVERHEAD,
            "{name}: the dump holds the session ({} bytes)",
            sealed.len()
        );
        for canary in [NOTE, USER, CART] {
            assert!(!shows(&sealed, canary), "{name}: a dump shows {canary}");
        }
    }
}

/// A memory store the test and the app share, so the test can write to it
/// as someone with access to the store would.
fn shared_memory() -> AnyStore {
    AnyStore::new(MemoryStore::new())
}

async fn app(
    store: &AnyStore,
    configure: impl FnOnce(SessionMiddlewareBuilder) -> SessionMiddlewareBuilder,
) -> TestApp {
    let middleware = configure(SessionMiddleware::builder(store.clone()))
        .build()
        .expect("valid settings");
    TestApp::start(middleware, Hooks::new(1)).await
}

fn key_of(cookie: &str) -> StoreKey {
    let id = SessionId::parse(cookie).expect("an unsigned id");
    StoreKey::new("session:", &id, true)
}

async fn stored(store: &AnyStore, cookie: &str, name: &str) -> Bytes {
    let record = store
        .load(&key_of(cookie))
        .await
        .expect("the store answers")
        .expect("the session is stored");
    record.entries[name].clone()
}

async fn plant(store: &AnyStore, cookie: &str, name: &str, value: Bytes) {
    let changes = ChangeSet {
        set: vec![(name.to_owned(), value)],
        ..ChangeSet::default()
    };
    let applied = store
        .apply(
            &key_of(cookie),
            &changes,
            std::time::Duration::from_secs(600),
        )
        .await
        .expect("the store answers");
    assert_eq!(applied, session_core::Applied::Done);
}

/// Captures what is logged at WARN while it is alive (the test runs on
/// one thread).
struct Warnings {
    lines: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Warnings {
    fn capture() -> Self {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(Arc::clone(&lines));
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        Self {
            lines,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.lines.lock().unwrap()).into_owned()
    }
}

#[actix_web::test]
async fn a_value_moved_or_changed_in_the_store_reads_as_absent_with_a_warning() {
    let store = shared_memory();
    let app = app(&store, |b| b.encrypt_at_rest(true)).await;
    let warnings = Warnings::capture();
    let alice = app
        .get("/set?key=role&value=admin", None)
        .await
        .expect_new_session("alice");
    app.get("/set?key=plan&value=gold", Some(&alice))
        .await
        .assert_ok("ok", "alice's plan");
    let mallory = app
        .get("/set?key=role&value=guest", None)
        .await
        .expect_new_session("mallory");

    // Alice's sealed role copied into Mallory's session, under the same key.
    let admin = stored(&store, &alice, "role").await;
    plant(&store, &mallory, "role", admin.clone()).await;
    app.get("/get?key=role", Some(&mallory))
        .await
        .assert_status(StatusCode::NOT_FOUND, "another session's value");
    assert!(
        warnings.text().contains("did not open"),
        "{}",
        warnings.text()
    );

    // Alice's plan copied over her own role: another key.
    let gold = stored(&store, &alice, "plan").await;
    plant(&store, &alice, "role", gold).await;
    app.get("/get?key=role", Some(&alice))
        .await
        .assert_status(StatusCode::NOT_FOUND, "another key's value");
    app.get("/get?key=plan", Some(&alice))
        .await
        .assert_ok("gold", "the rest of the session still reads");

    // A byte of a sealed value changed.
    let mut changed = stored(&store, &alice, "plan").await.to_vec();
    let last = changed.len() - 1;
    changed[last] ^= 0x01;
    plant(&store, &alice, "plan", Bytes::from(changed)).await;
    app.get("/get?key=plan", Some(&alice))
        .await
        .assert_status(StatusCode::NOT_FOUND, "a changed value");

    // Alice's session still works: the next write of a key seals it anew.
    app.get("/set?key=plan&value=silver", Some(&alice))
        .await
        .assert_ok("ok", "a new value");
    app.get("/get?key=plan", Some(&alice))
        .await
        .assert_ok("silver", "the new value reads");
    let count = warnings.text().matches("did not open").count();
    assert!(
        count >= 3,
        "one warning per value that did not open: {count}"
    );
    assert!(
        !warnings.text().contains("gold") && !warnings.text().contains(&alice),
        "warnings name the key, never a value or an id: {}",
        warnings.text()
    );
}

#[actix_web::test]
async fn turning_it_on_then_off_logs_no_one_out() {
    let store = shared_memory();
    // Written before the option was on: in clear.
    let off = app(&store, |b| b.secret_key(SECRET)).await;
    let cookie = off
        .post("/login?user=ada", None)
        .await
        .expect_new_session("login");
    off.get("/set?key=cart&value=apples", Some(&cookie))
        .await
        .assert_ok("ok", "cart");
    assert_eq!(stored(&store, &cookie, "cart").await, "\"apples\"");

    // On: the values in clear still load; a write seals what it writes.
    let on = app(&store, |b| b.secret_key(SECRET).encrypt_at_rest(true)).await;
    on.get("/get?key=user", Some(&cookie))
        .await
        .assert_ok("ada", "a value in clear after turning it on");
    on.get("/set?key=cart&value=pears", Some(&cookie))
        .await
        .assert_ok("ok", "a write");
    assert!(session_core::testing::layout::is_sealed(
        &stored(&store, &cookie, "cart").await
    ));
    assert_eq!(
        stored(&store, &cookie, "user").await,
        "\"ada\"",
        "not written, not sealed"
    );

    // Strict: what is still in clear reads as absent, sealed values read.
    let strict = app(&store, |b| {
        b.secret_key(SECRET).encrypt_at_rest(EncryptAtRest::Strict)
    })
    .await;
    strict
        .get("/get?key=user", Some(&cookie))
        .await
        .assert_status(StatusCode::NOT_FOUND, "a value in clear in strict mode");
    strict
        .get("/get?key=cart", Some(&cookie))
        .await
        .assert_ok("pears", "a sealed value in strict mode");

    // Off again: sealed values still open; the next write is in clear.
    let off = app(&store, |b| b.secret_key(SECRET)).await;
    off.get("/get?key=cart", Some(&cookie))
        .await
        .assert_ok("pears", "a sealed value after turning it off");
    off.get("/set?key=cart&value=plums", Some(&cookie))
        .await
        .assert_ok("ok", "a write with the option off");
    assert_eq!(stored(&store, &cookie, "cart").await, "\"plums\"");
}

#[actix_web::test]
async fn rotating_the_secret_keeps_values_while_the_old_one_is_a_fallback() {
    let store = shared_memory();
    let old = app(&store, |b| b.signing_key(OLD_SECRET).encrypt_at_rest(true)).await;
    let cookie = old
        .get("/set?key=note&value=kept", None)
        .await
        .expect_new_session("write under the old secret");

    // The cookie alone is not enough: without the secret, values do not open.
    let plain_id = cookie.split('.').next().expect("id.tag").to_owned();
    let no_secret = app(&store, |b| b.encrypt_at_rest(true)).await;
    no_secret
        .get("/get?key=note", Some(&plain_id))
        .await
        .assert_status(StatusCode::NOT_FOUND, "the id without the secret");

    let rotated = app(&store, |b| {
        b.signing_key(SECRET)
            .fallback_keys([OLD_SECRET])
            .encrypt_at_rest(true)
    })
    .await;
    rotated
        .get("/get?key=note", Some(&cookie))
        .await
        .assert_ok("kept", "a value sealed under the fallback secret");
    // Written again, it is sealed under the current secret: it no longer
    // needs the fallback.
    rotated
        .get("/set?key=note&value=resealed", Some(&cookie))
        .await
        .assert_ok("ok", "write");
    let current = app(&store, |b| b.signing_key(SECRET).encrypt_at_rest(true)).await;
    let resigned = rotated
        .get("/get?key=note", Some(&cookie))
        .await
        .follow(Some(&cookie))
        .expect("a cookie");
    current
        .get("/get?key=note", Some(&resigned))
        .await
        .assert_ok("resealed", "a value sealed under the current secret");
}

#[actix_web::test]
async fn a_value_sealed_is_counted_with_its_overhead_against_the_size_limit() {
    let store = shared_memory();
    let limit = 8 + "k".len() + 102;
    // 100 characters of JSON string: 102 bytes, which fits in clear...
    let value = "x".repeat(100);
    let clear = app(&store, |b| b.max_size(limit)).await;
    clear
        .get(&format!("/set?key=k&value={value}"), None)
        .await
        .assert_ok("ok", "fits in clear");
    // ...but not sealed, 42 bytes more: refused before any write, not by
    // the store after the response was decided.
    let sealed = app(&store, |b| b.max_size(limit).encrypt_at_rest(true)).await;
    let reply = sealed.get(&format!("/set?key=k&value={value}"), None).await;
    assert_ne!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.new_session().is_none(), "nothing was stored");
}

#[actix_web::test]
async fn incompatible_settings_are_refused_at_start_up_naming_the_key() {
    for settings in [
        vec![
            ("SESSION_TYPE", "cookie"),
            ("SECRET_KEY", SECRET),
            ("SESSION_ENCRYPT_AT_REST", "true"),
        ],
        vec![
            ("SESSION_TYPE", "redis"),
            ("SESSION_INTEROP", "flask-session"),
            ("SESSION_ENCRYPT_AT_REST", "true"),
        ],
    ] {
        let error = SessionConfig::from_source(settings.clone()).unwrap_err();
        assert_eq!(
            error.key(),
            "SESSION_ENCRYPT_AT_REST",
            "{settings:?}: {error}"
        );
    }
    // Without a secret, the key of a session's values comes from its id
    // alone, which its user holds: strict mode would not keep a user who
    // can write to the store from sealing values of their own; and ids in
    // clear would be in the store beside the values sealed under them.
    for settings in [
        vec![("SESSION_ENCRYPT_AT_REST", "strict")],
        vec![
            ("SESSION_HASH_IDS", "false"),
            ("SESSION_ENCRYPT_AT_REST", "true"),
        ],
    ] {
        let error = SessionConfig::from_source(settings.clone()).unwrap_err();
        assert_eq!(error.key(), "SECRET_KEY", "{settings:?}: {error}");
        assert!(
            error.to_string().contains("SESSION_ENCRYPT_AT_REST=strict")
                || error.to_string().contains("SESSION_HASH_IDS=false"),
            "{error}"
        );
    }
    let strict = [
        ("SESSION_ENCRYPT_AT_REST", "strict"),
        ("SECRET_KEY", SECRET),
    ];
    assert!(SessionConfig::from_source(strict).is_ok());
    let error =
        SessionConfig::from_source([("SESSION_ENCRYPT_AT_REST", "yes please")]).unwrap_err();
    assert_eq!(error.key(), "SESSION_ENCRYPT_AT_REST");
    assert!(
        error.to_string().contains("true, false or strict"),
        "{error}"
    );
    // With a secret, ids in clear are allowed: the dump lacks the secret.
    let config = SessionConfig::from_source([
        ("SESSION_HASH_IDS", "false"),
        ("SECRET_KEY", SECRET),
        ("SESSION_ENCRYPT_AT_REST", "strict"),
    ])
    .expect("ids in clear with a secret");
    assert_eq!(config.encrypt_at_rest, EncryptAtRest::Strict);

    // In code: the cookie store (Flask-Session's layout: in flask.rs).
    let cookie_store = session_actix::store::cookie::CookieStore::new(SECRET, [""; 0]).unwrap();
    let error = SessionMiddleware::builder(cookie_store)
        .encrypt_at_rest(true)
        .build()
        .unwrap_err();
    assert_eq!(error.key(), "SESSION_ENCRYPT_AT_REST", "{error}");
}

/// The session's metadata (its user, lifetime, permanence) stays readable
/// in the store for the user's index, but not open to change: someone who
/// can write to the store cannot bind their session to another user, nor
/// give it a lifetime of their choosing. A tagged value copied from
/// another session, or changed behind its tag, is dropped whatever the
/// mode; one planted in clear is dropped in strict mode (`true` still
/// reads metadata written before the option was on).
#[actix_web::test]
async fn metadata_copied_changed_or_planted_in_the_store_is_not_trusted() {
    for mode in [EncryptAtRest::On, EncryptAtRest::Strict] {
        let store = shared_memory();
        let app = app(&store, |b| b.secret_key(SECRET).encrypt_at_rest(mode)).await;
        let alice = app
            .post("/login_as?user=alice", None)
            .await
            .expect_new_session("alice");
        app.get("/sessions", Some(&alice))
            .await
            .assert_status(StatusCode::OK, "alice is logged in");
        let binding = stored(&store, &alice, "_user").await;
        let clear = session_core::meta::clear(&binding);
        assert!(clear.starts_with(b"{\"user\":\"alice\""), "{clear:?}");
        assert_ne!(binding, clear, "{mode:?}: the binding carries a tag");

        let mallory = || async {
            app.get("/set?key=cart&value=1", None)
                .await
                .expect_new_session("mallory")
        };
        let not_bound = async |cookie: &str, what: &str| {
            app.get("/sessions", Some(cookie))
                .await
                .assert_status(StatusCode::UNAUTHORIZED, &format!("{mode:?}: {what}"));
        };
        // Alice's binding, tag and all, copied into Mallory's session.
        let copied = mallory().await;
        plant(&store, &copied, "_user", binding.clone()).await;
        not_bound(&copied, "a binding copied from another session").await;
        // Mallory's own binding, changed behind its tag to name Alice.
        let own = app
            .post("/login_as?user=mallory", None)
            .await
            .expect_new_session("mallory's login");
        let tagged = stored(&store, &own, "_user").await;
        let mut changed = tagged.to_vec();
        let at = changed
            .windows(9)
            .position(|w| w == b"\"mallory\"")
            .unwrap();
        changed.splice(at..at + 9, b"\"alice\"".iter().copied());
        plant(&store, &own, "_user", Bytes::from(changed)).await;
        not_bound(&own, "a binding changed behind its tag").await;
        // A binding planted in clear, and a year-long lifetime.
        let planted = mallory().await;
        plant(&store, &planted, "_user", clear.clone()).await;
        plant(
            &store,
            &planted,
            "_lifetime",
            Bytes::from_static(b"31536000"),
        )
        .await;
        let settings = app.get("/settings", Some(&planted)).await;
        if mode == EncryptAtRest::Strict {
            not_bound(&planted, "a binding planted in clear").await;
            settings.assert_ok("true 2678400", "a lifetime planted in clear");
        } else {
            settings.assert_ok("true 31536000", "`true` reads metadata in clear");
        }
    }
}

/// A refresh of a bound session (a read, once the session has aged) says
/// when it was seen: that write tags the metadata as every write does, so
/// that in strict mode the session stays bound and its `_seen` is read.
#[actix_web::test]
async fn a_refresh_tags_the_metadata_it_writes() {
    let store = shared_memory();
    let app = app(&store, |b| {
        b.secret_key(SECRET)
            .encrypt_at_rest(EncryptAtRest::Strict)
            .lifetime(std::time::Duration::from_secs(10))
    })
    .await;
    let ann = app
        .post("/login_as?user=ann", None)
        .await
        .expect_new_session("ann");
    let seen = stored(&store, &ann, "_seen").await;
    // The refresh step: a tenth of the lifetime.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.get("/get?key=user", Some(&ann))
        .await
        .assert_ok("ann", "a read that refreshes");
    let refreshed = stored(&store, &ann, "_seen").await;
    assert_ne!(refreshed, seen, "the refresh wrote when it was seen");
    assert!(
        session_core::testing::layout::is_sealed(&refreshed),
        "the refresh tagged `_seen`: {refreshed:?}"
    );
    app.get("/sessions", Some(&ann))
        .await
        .assert_status(StatusCode::OK, "still bound after the refresh");
}

/// Metadata written before sealing was on (a user binding, a lifetime) is
/// tagged by the session's first request once it is on, even one that
/// only reads: `strict` then keeps the user logged in.
#[actix_web::test]
async fn turning_it_on_tags_the_metadata_written_before_so_strict_keeps_users() {
    let store = shared_memory();
    let off = app(&store, |b| b.secret_key(SECRET)).await;
    let ann = off
        .post("/login_as?user=ann", None)
        .await
        .expect_new_session("login");
    let before = stored(&store, &ann, "_user").await;
    assert_eq!(session_core::meta::clear(&before), before, "in clear");

    let on = app(&store, |b| b.secret_key(SECRET).encrypt_at_rest(true)).await;
    on.get("/get?key=user", Some(&ann))
        .await
        .assert_ok("ann", "a read once the option is on");
    let after = stored(&store, &ann, "_user").await;
    assert!(
        session_core::testing::layout::is_sealed(&after),
        "tagged: {after:?}"
    );
    assert_eq!(session_core::meta::clear(&after), before);

    let strict = app(&store, |b| {
        b.secret_key(SECRET).encrypt_at_rest(EncryptAtRest::Strict)
    })
    .await;
    strict
        .get("/sessions", Some(&ann))
        .await
        .assert_status(StatusCode::OK, "still logged in under strict");
}
