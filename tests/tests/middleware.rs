//! Middleware behaviour that needs a look inside: store calls, change sets,
//! store keys, signing, outages, configuration errors, limits.
//!
//! Store doubles wrap the real memory store to record or fail calls; they
//! are used only where a real store cannot show the behaviour (a store that
//! hangs on demand, the exact calls made).

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use actix_web::{App, HttpRequest, HttpResponse, web};
use serde::Deserialize;
use session_actix::store::cookie::CookieStore;
use session_actix::store::memory::MemoryStore;
use session_actix::{
    OutagePolicy, SameSite, Session, SessionConfig, SessionErrorKind, SessionExt,
    SessionMiddleware, SessionMiddlewareBuilder, SessionRejection, StoreConfig,
};
use session_core::store::ChangeSet;
use session_core::{AnyStore, SessionId};
use session_tests::doubles::{Call, Fault, Faulty, Gated, Recorder};
use session_tests::{Hooks, OLD_SECRET, SECRET, TestApp, within};

// ---------------------------------------------------------------------------
// Extra routes

#[derive(Deserialize)]
struct Big {
    key: String,
    len: usize,
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

/// Takes the session three ways; all must be one session.
async fn twice(a: Session, b: Session, req: HttpRequest) -> actix_web::Result<String> {
    let c = req.session().await?;
    a.insert("x", 1)?;
    Ok(format!("{:?} {:?}", b.get::<i32>("x")?, c.get::<i32>("x")?))
}

/// Inserts `len` bytes under `key`; 413 with the error if too large.
async fn set_big(session: Session, q: web::Query<Big>) -> actix_web::Result<HttpResponse> {
    match session.insert(q.key.as_str(), "x".repeat(q.len)) {
        Ok(()) => Ok(HttpResponse::Ok().body("ok")),
        Err(e) => match e.kind() {
            SessionErrorKind::TooLarge { limit, .. } => {
                Ok(HttpResponse::PayloadTooLarge().body(format!("limit={limit}; {e}")))
            }
            _ => Err(e.into()),
        },
    }
}

/// Reads `key` as a u32; 422 with the error if it is not one.
async fn get_u32(session: Session, q: web::Query<Key>) -> actix_web::Result<HttpResponse> {
    match session.get::<u32>(&q.key) {
        Ok(v) => Ok(HttpResponse::Ok().body(format!("{v:?}"))),
        Err(e) => match e.kind() {
            SessionErrorKind::Deserialize { key, .. } => {
                Ok(HttpResponse::UnprocessableEntity().body(format!("key={key}; {e}")))
            }
            _ => Err(e.into()),
        },
    }
}

/// Writes to the session from a task on the runtime (which needs `Send`),
/// before the handler returns.
async fn spawned(session: Session) -> actix_web::Result<&'static str> {
    let handle = session.clone();
    tokio::spawn(async move { handle.insert("from_task", 7) })
        .await
        .expect("the spawned task")?;
    let handle = session.clone();
    std::thread::spawn(move || handle.insert("from_thread", 8))
        .join()
        .expect("the thread")?;
    Ok("ok")
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    value: String,
}

/// Sets `key`, saves, holds (notifying `loaded`, waiting for `release`),
/// then sets `after`.
async fn save_hold(
    session: Session,
    hooks: web::Data<Hooks>,
    q: web::Query<KeyValue>,
) -> Result<&'static str, actix_web::Error> {
    session.insert(&q.key, &q.value)?;
    session.save().await?;
    hooks.loaded.notify_one();
    hooks.release.notified().await;
    session.insert("after", "1")?;
    Ok("saved")
}

/// Logs in and saves at once; nothing changes after.
async fn login_save(
    session: Session,
    q: web::Query<HashMap<String, String>>,
) -> Result<&'static str, actix_web::Error> {
    session.renew();
    session.insert("user", &q["user"])?;
    session.save().await?;
    Ok("welcome")
}

/// Sets `mine` without saving, holds, reloads, and answers the keys.
async fn reload_hold(
    session: Session,
    hooks: web::Data<Hooks>,
) -> Result<String, actix_web::Error> {
    session.insert("mine", "1")?;
    hooks.loaded.notify_one();
    hooks.release.notified().await;
    session.reload().await?;
    let mut keys = session.keys();
    keys.sort();
    Ok(keys.join(","))
}

/// Sets `key` and saves; answers `ok` or the error's status.
async fn save_report(
    session: Session,
    q: web::Query<KeyValue>,
) -> Result<String, actix_web::Error> {
    session.insert(&q.key, &q.value)?;
    Ok(match session.save().await {
        Ok(()) => "ok".to_owned(),
        Err(error) => actix_web::ResponseError::status_code(&error)
            .as_u16()
            .to_string(),
    })
}

/// Makes the session end with the browser.
async fn forget_me(session: Session) -> &'static str {
    session.set_permanent(false);
    "ok"
}

/// Logs in as ann, bound, asking for a lifetime of 1000 days.
async fn login_for_years(session: Session) -> &'static str {
    session.renew();
    session.bind_user("ann");
    session.set_lifetime(Duration::from_secs(1000 * 24 * 3600));
    "ok"
}

/// Sets `a` and saves, then sets `b` for the save after the handler.
async fn save_then_more(session: Session) -> Result<&'static str, actix_web::Error> {
    session.insert("a", 1)?;
    session.save().await?;
    session.insert("b", 2)?;
    Ok("ok")
}

/// Saves a session it did not change.
async fn save_unchanged(session: Session) -> Result<String, actix_web::Error> {
    let keys = session.keys().join(",");
    session.save().await?;
    Ok(keys)
}

/// A login on a session with nothing in it.
async fn renew_only(session: Session) -> &'static str {
    session.renew();
    "ok"
}

/// Inserts a key and removes it again.
async fn insert_remove(session: Session) -> Result<&'static str, actix_web::Error> {
    session.insert("x", 1)?;
    session.remove_key("x");
    Ok("ok")
}

/// Reloads the session, then answers its keys.
async fn reload_keys(session: Session) -> Result<String, actix_web::Error> {
    session.reload().await?;
    let mut keys = session.keys();
    keys.sort();
    Ok(keys.join(","))
}

/// Sets `a`, saves, reloads, and answers the keys.
async fn save_reload(session: Session) -> Result<String, actix_web::Error> {
    session.insert("a", 1)?;
    session.save().await?;
    session.reload().await?;
    let mut keys = session.keys();
    keys.sort();
    Ok(keys.join(","))
}

/// Logs in as ann, bound, with a 2-second lifetime (so that a refresh, and
/// a new "last seen", are due 200 ms after each use).
async fn login_short(session: Session) -> &'static str {
    session.renew();
    session.bind_user("ann");
    session.set_lifetime(Duration::from_secs(2));
    "ok"
}

/// Binds the session to `user`, without a login.
async fn bind(session: Session, q: web::Query<HashMap<String, String>>) -> &'static str {
    session.bind_user(&q["user"]);
    "ok"
}

fn extra(cfg: &mut web::ServiceConfig) {
    cfg.route("/forget_me", web::get().to(forget_me))
        .route("/login_short", web::post().to(login_short))
        .route("/bind", web::post().to(bind))
        .route("/reload_keys", web::get().to(reload_keys))
        .route("/save_reload", web::get().to(save_reload))
        .route("/save_then_more", web::get().to(save_then_more))
        .route("/save_unchanged", web::get().to(save_unchanged))
        .route("/renew_only", web::post().to(renew_only))
        .route("/insert_remove", web::get().to(insert_remove))
        .route("/login_for_years", web::post().to(login_for_years))
        .route("/save_hold", web::get().to(save_hold))
        .route("/login_save", web::post().to(login_save))
        .route("/reload_hold", web::get().to(reload_hold))
        .route("/save_report", web::get().to(save_report))
        .route("/twice", web::get().to(twice))
        .route("/set_big", web::get().to(set_big))
        .route("/get_u32", web::get().to(get_u32))
        .route("/spawned", web::get().to(spawned));
}

async fn start(builder: SessionMiddlewareBuilder) -> TestApp {
    TestApp::start_with(
        builder.build().expect("valid settings"),
        Hooks::new(1),
        extra,
    )
    .await
}

/// An app on `store` (a store double), and the cookie of a session that
/// holds `cart`.
async fn app_with_a_cart(store: &Gated) -> (TestApp, String) {
    let app = start(SessionMiddleware::builder(store.clone())).await;
    let cookie = app
        .get("/set?key=cart&value=3", None)
        .await
        .expect_new_session("set");
    (app, cookie)
}

async fn recorded(
    recorder: &Recorder,
    configure: impl FnOnce(SessionMiddlewareBuilder) -> SessionMiddlewareBuilder,
) -> TestApp {
    start(configure(SessionMiddleware::builder(recorder.clone()))).await
}

// ---------------------------------------------------------------------------
// Laziness

#[actix_web::test]
async fn no_store_call_unless_the_session_is_used() {
    let store = Recorder::default();
    let app = recorded(&store, |b| b).await;
    app.get("/noop", None).await.assert_ok("noop", "noop");
    app.get("/peek", None)
        .await
        .assert_ok("", "peek without a cookie");
    assert_eq!(
        store.drain_kinds(),
        Vec::<&str>::new(),
        "no cookie: nothing to load, nothing to save"
    );

    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    assert_eq!(
        store.drain_kinds(),
        ["create"],
        "a first write only creates"
    );
    app.get("/noop", Some(&cookie))
        .await
        .assert_ok("noop", "noop with a cookie")
        .assert_no_cookie("noop with a cookie");
    assert_eq!(
        store.drain_kinds(),
        Vec::<&str>::new(),
        "a route that does not extract the session makes no store call"
    );
}

#[actix_web::test]
async fn one_load_per_request_however_often_the_session_is_taken() {
    let store = Recorder::default();
    let app = recorded(&store, |b| b).await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    store.drain();
    app.get("/twice", Some(&cookie)).await.assert_ok(
        "Some(1) Some(1)",
        "two extractors and SessionExt share one session",
    );
    assert_eq!(store.drain_kinds(), ["load", "apply"]);
}

#[actix_web::test]
async fn a_read_that_is_not_due_for_refresh_only_loads() {
    let store = Recorder::default();
    let app = recorded(&store, |b| b).await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    store.drain();
    app.get("/get?key=a", Some(&cookie))
        .await
        .assert_ok("1", "read")
        .assert_no_cookie("a read not due for refresh");
    app.get("/get?key=missing", Some(&cookie)).await;
    app.get("/remove?key=missing", Some(&cookie))
        .await
        .assert_ok("absent", "removing a missing key");
    assert_eq!(
        store.drain_kinds(),
        ["load", "load", "load"],
        "unchanged requests make no create, apply or touch"
    );
}

#[actix_web::test]
async fn a_read_refreshes_when_the_store_cannot_tell_the_expiry() {
    let store = Recorder {
        hide_expiry: true,
        ..Recorder::default()
    };
    let app = recorded(&store, |b| b).await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    store.drain();
    let reply = app.get("/get?key=a", Some(&cookie)).await;
    reply.assert_ok("1", "read");
    assert_eq!(store.drain_kinds(), ["load", "touch"]);
    assert_eq!(
        reply.new_session().as_deref(),
        Some(cookie.as_str()),
        "a refreshed permanent cookie is re-sent with the same id"
    );

    let store = Recorder {
        hide_expiry: true,
        ..Recorder::default()
    };
    let app = recorded(&store, |b| b.refresh_each_request(false)).await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    store.drain();
    app.get("/get?key=a", Some(&cookie))
        .await
        .assert_ok("1", "read")
        .assert_no_cookie("no refresh");
    assert_eq!(store.drain_kinds(), ["load"], "refresh off: no touch");
}

// ---------------------------------------------------------------------------
// Change sets and store keys

fn bytes(s: &str) -> session_core::bytes::Bytes {
    session_core::bytes::Bytes::copy_from_slice(s.as_bytes())
}

fn applied(calls: Vec<Call>) -> ChangeSet {
    match calls.as_slice() {
        [Call::Load(_), Call::Apply(_, changes)] => changes.clone(),
        other => panic!("expected a load then an apply, got {other:?}"),
    }
}

#[actix_web::test]
async fn change_sets_carry_only_the_changed_keys() {
    let store = Recorder::default();
    let app = recorded(&store, |b| b).await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    match store.drain().as_slice() {
        [Call::Create(_, record)] => {
            assert_eq!(record.entries.len(), 1);
            assert_eq!(record.entries["a"], bytes("\"1\""));
        }
        other => panic!("expected one create, got {other:?}"),
    }
    app.get("/set?key=b&value=2", Some(&cookie)).await;
    app.get("/set?key=c&value=3", Some(&cookie)).await;
    store.drain();

    app.get("/set?key=b&value=20", Some(&cookie)).await;
    assert_eq!(
        applied(store.drain()),
        ChangeSet {
            clear: false,
            set: vec![("b".to_owned(), bytes("\"20\""))],
            remove: vec![],
            max_size: Some(256 * 1024),
        },
        "only the key set is sent"
    );

    app.get("/remove?key=c", Some(&cookie)).await;
    assert_eq!(
        applied(store.drain()),
        ChangeSet {
            clear: false,
            set: vec![],
            remove: vec!["c".to_owned()],
            max_size: Some(256 * 1024),
        },
        "only the key removed is sent"
    );

    app.get("/visits", Some(&cookie)).await;
    assert_eq!(
        applied(store.drain()),
        ChangeSet {
            clear: false,
            set: vec![("visits".to_owned(), bytes("1"))],
            remove: vec![],
            max_size: Some(256 * 1024),
        }
    );

    app.get("/clear", Some(&cookie)).await;
    assert_eq!(
        applied(store.drain()),
        ChangeSet {
            clear: true,
            set: vec![],
            remove: vec![],
            max_size: Some(256 * 1024),
        },
        "clear sends no per-key changes"
    );
}

fn assert_hashed_key(key: &str, prefix: &str, cookie: &str) {
    let rest = key
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("store key {key:?} does not start with {prefix:?}"));
    // The note a login leaves names the old key by its hash.
    let rest = rest.strip_prefix("moved:").unwrap_or(rest);
    assert_eq!(
        rest.len(),
        64,
        "store key {key:?}: 64 hex digits after the prefix"
    );
    assert!(
        rest.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "store key {key:?}: lowercase hex after the prefix"
    );
    let id = cookie.split('.').next().unwrap();
    assert!(
        !key.contains(id),
        "store key {key:?} contains the cookie's id"
    );
}

#[actix_web::test]
async fn stores_see_hashed_ids_only() {
    for (prefix, signed) in [("session:", false), ("app:", false), ("session:", true)] {
        let store = Recorder::default();
        let app = recorded(&store, |b| {
            let b = b.key_prefix(prefix);
            if signed { b.signing_key(SECRET) } else { b }
        })
        .await;
        let cookie = app
            .get("/set?key=a&value=1", None)
            .await
            .expect_new_session("set");
        app.get("/set?key=b&value=2", Some(&cookie)).await;
        app.post("/login?user=nick", Some(&cookie)).await;
        let calls = store.drain();
        assert!(calls.len() >= 4, "{calls:?}");
        for call in &calls {
            assert_hashed_key(call.key(), prefix, &cookie);
        }
        assert!(
            calls.iter().all(|c| !c.key().contains(cookie.as_str())),
            "no store key holds the cookie"
        );
    }
}

#[actix_web::test]
async fn ids_are_43_char_base64url_and_unique() {
    let app = start(SessionMiddleware::builder(MemoryStore::new())).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let cookie = app
            .get("/set?key=a&value=1", None)
            .await
            .expect_new_session("set");
        assert!(
            SessionId::parse(&cookie).is_some(),
            "{cookie:?} is a session id"
        );
        assert!(seen.insert(cookie), "ids repeat");
    }
}

// ---------------------------------------------------------------------------
// Signing

#[actix_web::test]
async fn signed_cookies_are_id_dot_tag_and_tampering_is_a_fresh_session() {
    let store = AnyStore::new(MemoryStore::new());
    let app = start(SessionMiddleware::builder(store.clone()).signing_key(SECRET)).await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    let (id, tag) = cookie.split_once('.').expect("a signed cookie is id.tag");
    assert!(SessionId::parse(id).is_some(), "{id:?} is a session id");
    assert_eq!(tag.len(), 43, "a base64url HMAC-SHA256 tag");
    app.get("/get?key=a", Some(&cookie))
        .await
        .assert_ok("1", "a signed cookie");

    let mut chars: Vec<char> = tag.chars().collect();
    chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
    let forged_tag: String = chars.into_iter().collect();
    let other = start(SessionMiddleware::builder(store.clone()).signing_key(OLD_SECRET)).await;
    let other_key = other
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set under another key");
    let (other_id, other_tag) = other_key.split_once('.').unwrap();
    for forged in [
        format!("{id}.{forged_tag}"),
        id.to_owned(),
        format!("{id}."),
        format!("{id}.{other_tag}"),
        format!("{other_id}.{tag}"),
        other_key.clone(),
        format!("{cookie}.{tag}"),
    ] {
        app.get("/get?key=a", Some(&forged))
            .await
            .assert_status(StatusCode::NOT_FOUND, &format!("forged cookie {forged:?}"))
            .assert_no_cookie(&format!("forged cookie {forged:?}"));
    }
    app.get("/get?key=a", Some(&cookie))
        .await
        .assert_ok("1", "the real cookie still works");
}

#[actix_web::test]
async fn fallback_keys_verify_until_dropped() {
    let store = AnyStore::new(MemoryStore::new());
    let old = start(SessionMiddleware::builder(store.clone()).signing_key(OLD_SECRET)).await;
    let rotated = start(
        SessionMiddleware::builder(store.clone())
            .signing_key(SECRET)
            .fallback_keys([OLD_SECRET]),
    )
    .await;
    let dropped = start(SessionMiddleware::builder(store.clone()).signing_key(SECRET)).await;

    let old_cookie = old
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set under the old key");
    rotated
        .get("/get?key=a", Some(&old_cookie))
        .await
        .assert_ok("1", "an old-key cookie with the old key as a fallback");
    dropped
        .get("/get?key=a", Some(&old_cookie))
        .await
        .assert_status(
            StatusCode::NOT_FOUND,
            "an old-key cookie once the key is dropped",
        );

    // A write under the rotated settings re-signs the cookie with the new key.
    let reply = rotated.get("/set?key=b&value=2", Some(&old_cookie)).await;
    let resigned = reply.expect_new_session("a write after rotation");
    assert_ne!(resigned, old_cookie, "re-signed with the new key");
    dropped
        .get("/get?key=b", Some(&resigned))
        .await
        .assert_ok("2", "the re-signed cookie under the new key alone");
}

/// An app that signs with [`SECRET`] and accepts [`OLD_SECRET`], and a
/// cookie of a session signed with the old key.
async fn rotated_with_an_old_key_cookie() -> (TestApp, String) {
    let store = AnyStore::new(MemoryStore::new());
    let old = start(SessionMiddleware::builder(store.clone()).signing_key(OLD_SECRET)).await;
    let rotated = start(
        SessionMiddleware::builder(store.clone())
            .signing_key(SECRET)
            .fallback_keys([OLD_SECRET]),
    )
    .await;
    let old_cookie = old
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set under the old key");
    (rotated, old_cookie)
}

#[actix_web::test]
async fn a_read_signs_a_fallback_key_cookie_again() {
    let (rotated, old_cookie) = rotated_with_an_old_key_cookie().await;
    let reply = rotated.get("/get?key=a", Some(&old_cookie)).await;
    reply.assert_ok("1", "a read of an old-key cookie");
    let resigned = reply.expect_new_session("a read of an old-key cookie re-signs it");
    assert_ne!(resigned, old_cookie);
    // Signed with the current key now: the next read sends nothing.
    rotated
        .get("/get?key=a", Some(&resigned))
        .await
        .assert_ok("1", "a read of the re-signed cookie")
        .assert_no_cookie("a read of a current-key cookie");
}

#[actix_web::test]
async fn a_write_does_not_resend_a_fresh_cookie() {
    let app = start(SessionMiddleware::builder(MemoryStore::new())).await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    // The cookie was just sent with a 31-day expiry: a write saves the key
    // and leaves the cookie alone.
    app.get("/set?key=b&value=2", Some(&cookie))
        .await
        .assert_ok("ok", "a second write")
        .assert_no_cookie("a write to a fresh session");
    app.get("/get?key=b", Some(&cookie))
        .await
        .assert_ok("2", "the write was saved");
}

#[actix_web::test]
async fn cookie_store_keys_rotate_too() {
    let cookie_app = |secret: &str, fallbacks: &[&str]| {
        let store = CookieStore::new(secret, fallbacks).expect("long enough secrets");
        start(SessionMiddleware::builder(store))
    };
    let old = cookie_app(OLD_SECRET, &[]).await;
    let rotated = cookie_app(SECRET, &[OLD_SECRET]).await;
    let dropped = cookie_app(SECRET, &[]).await;
    let cookie = old
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    rotated
        .get("/get?key=a", Some(&cookie))
        .await
        .assert_ok("1", "an old-key cookie with a fallback");
    dropped
        .get("/get?key=a", Some(&cookie))
        .await
        .assert_status(StatusCode::NOT_FOUND, "an old-key cookie once dropped");
    // A read of an old-key cookie seals it anew with the current key, so
    // the old key can be dropped without logging anyone out.
    let reply = rotated.get("/get?key=a", Some(&cookie)).await;
    reply.assert_ok("1", "an old-key cookie, read");
    let resealed = reply.new_session().expect("the cookie is sealed anew");
    assert_ne!(resealed, cookie);
    dropped
        .get("/get?key=a", Some(&resealed))
        .await
        .assert_ok("1", "the resealed cookie opens with the current key alone");
    // A cookie already under the current key is not sent again on a read.
    rotated
        .get("/get?key=a", Some(&resealed))
        .await
        .assert_ok("1", "a current cookie, read")
        .assert_no_cookie("a current cookie is not sent again");
}

#[actix_web::test]
async fn cookie_store_cookies_are_sealed_unless_signed_is_asked_for() {
    let secret_value = "card-4111-1111";
    let sealed = start(SessionMiddleware::builder(
        CookieStore::new(SECRET, [""; 0]).unwrap(),
    ))
    .await;
    let cookie = sealed
        .get(&format!("/set?key=card&value={secret_value}"), None)
        .await
        .expect_new_session("set");
    let raw = base64_decode(&cookie).expect("a sealed cookie is one base64url text");
    assert!(
        !String::from_utf8_lossy(&raw).contains("card") && !cookie.contains("card"),
        "the session is readable in the sealed cookie: {cookie}"
    );
    sealed
        .get("/get?key=card", Some(&cookie))
        .await
        .assert_ok(secret_value, "the sealed cookie opens");
    // Any change to it is a fresh session.
    let mut forged = raw.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    sealed
        .get("/get?key=card", Some(&base64_encode(&forged)))
        .await
        .assert_status(StatusCode::NOT_FOUND, "a changed sealed cookie");

    // SESSION_COOKIE_CONTENT=signed: readable text and a signature.
    let config = SessionConfig::from_source([
        ("SESSION_TYPE", "cookie"),
        ("SECRET_KEY", SECRET),
        ("SESSION_COOKIE_CONTENT", "signed"),
    ])
    .unwrap();
    let signed = TestApp::start_with(
        SessionMiddleware::from_config(config).await.unwrap(),
        Hooks::new(1),
        extra,
    )
    .await;
    let cookie = signed
        .get(&format!("/set?key=card&value={secret_value}"), None)
        .await
        .expect_new_session("set");
    let (payload, _tag) = cookie.rsplit_once('.').expect("payload.tag");
    let raw = base64_decode(payload).expect("base64url text");
    assert!(
        String::from_utf8_lossy(&raw).contains(secret_value),
        "a signed cookie carries the session as it is"
    );
    // The sealed app reads the signed cookie and seals it on its response.
    let reply = sealed.get("/get?key=card", Some(&cookie)).await;
    reply.assert_ok(secret_value, "a signed cookie read by a sealing app");
    let resealed = reply.new_session().expect("sealed anew");
    assert!(!resealed.contains('.'), "{resealed}");
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------
// Outages

const SHORT: Duration = Duration::from_millis(200);

fn faulty(load: Fault, write: Fault) -> SessionMiddlewareBuilder {
    SessionMiddleware::builder(Faulty::new(load, write)).store_timeout(SHORT)
}

fn some_id() -> String {
    SessionId::generate().as_str().to_owned()
}

#[actix_web::test]
async fn a_failing_load_answers_503() {
    let app = start(faulty(Fault::Fail, Fault::None)).await;
    within("a request", app.get("/get?key=a", Some(&some_id())))
        .await
        .assert_status(StatusCode::SERVICE_UNAVAILABLE, "a failing load")
        .assert_no_cookie("a failing load");
    app.get("/noop", Some(&some_id())).await.assert_ok(
        "noop",
        "a route without the session does not need the store",
    );
}

#[actix_web::test]
async fn a_hanging_load_answers_503_after_the_store_timeout() {
    let app = start(faulty(Fault::Hang, Fault::None)).await;
    within(
        "a request to a hanging store",
        app.get("/get?key=a", Some(&some_id())),
    )
    .await
    .assert_status(StatusCode::SERVICE_UNAVAILABLE, "a hanging load")
    .assert_no_cookie("a hanging load");
}

#[actix_web::test]
async fn failing_or_hanging_writes_answer_503() {
    for write in [Fault::Fail, Fault::Hang] {
        let app = start(faulty(Fault::None, write)).await;
        within("a write", app.get("/set?key=a&value=1", None))
            .await
            .assert_status(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{write:?} create"),
            )
            .assert_no_cookie("a failed write");
    }
}

#[actix_web::test]
async fn serve_empty_serves_an_empty_session_and_saves_nothing() {
    for load in [Fault::Fail, Fault::Hang] {
        let app = start(faulty(load, Fault::None).outage_policy(OutagePolicy::ServeEmpty)).await;
        let cookie = some_id();
        within("a read", app.get("/peek", Some(&cookie)))
            .await
            .assert_ok("", &format!("{load:?} load, serve empty"))
            .assert_no_cookie("serve empty");
        within("a write", app.get("/set?key=a&value=1", Some(&cookie)))
            .await
            .assert_ok("ok", &format!("a write after a {load:?} load, serve empty"))
            .assert_no_cookie("a write on a degraded session is not saved");
    }
    for write in [Fault::Fail, Fault::Hang] {
        let app = start(faulty(Fault::None, write).outage_policy(OutagePolicy::ServeEmpty)).await;
        within("a write", app.get("/set?key=a&value=1", None))
            .await
            .assert_ok("ok", &format!("a {write:?} write, serve empty"))
            .assert_no_cookie("a failed save sends no cookie");
    }
}

// ---------------------------------------------------------------------------
// The null store, configuration

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[actix_web::test]
async fn the_null_store_reads_empty_and_refuses_writes() {
    use tracing_subscriber::util::SubscriberInitExt as _;

    let log = Captured::default();
    let writer = log.clone();
    let _guard = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .set_default();

    let config = SessionConfig::from_source([("SESSION_TYPE", "null")]).expect("valid");
    let middleware = SessionMiddleware::from_config(config)
        .await
        .expect("the null store opens");
    let app = TestApp::start(middleware, Hooks::new(1)).await;
    app.get("/peek", None)
        .await
        .assert_ok("", "a read without a store")
        .assert_no_cookie("a read without a store");
    app.get("/get?key=a", Some(&some_id())).await.assert_status(
        StatusCode::NOT_FOUND,
        "a read with a cookie, without a store",
    );
    app.get("/set?key=a&value=1", None)
        .await
        .assert_status(StatusCode::INTERNAL_SERVER_ERROR, "a write without a store")
        .assert_no_cookie("a write without a store");

    let log = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    assert!(
        log.contains("no session store is configured"),
        "the log says no store is configured: {log:?}"
    );
}

#[actix_web::test]
async fn bad_configuration_names_the_key() {
    // A store that cannot be reached fails start-up, naming the key to fix
    // and never printing the password.
    let config = SessionConfig::from_source([
        ("SESSION_TYPE", "redis"),
        ("SESSION_REDIS", "redis://user:hunter2@127.0.0.1:1"),
        ("SESSION_STORE_TIMEOUT", "2"),
    ])
    .expect("redis parses");
    let err = SessionMiddleware::from_config(config).await.unwrap_err();
    assert_eq!(err.key(), "SESSION_REDIS", "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");

    let err = SessionConfig::from_source([("SESSION_TYPE", "cookie")]).unwrap_err();
    assert_eq!(err.key(), "SECRET_KEY", "{err}");
    let mut config = SessionConfig::default();
    config.store = StoreConfig::Cookie;
    let err = SessionMiddleware::from_config(config).await.unwrap_err();
    assert_eq!(err.key(), "SECRET_KEY", "{err}");
    assert!(err.to_string().contains("SECRET_KEY"), "{err}");

    let err = SessionConfig::from_source([("SESSION_TYPE", "cookie"), ("SECRET_KEY", "short")])
        .unwrap_err();
    assert_eq!(err.key(), "SECRET_KEY", "{err}");

    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    let mut config = SessionConfig::default();
    config.store = StoreConfig::filesystem(file.path().join("sessions"));
    let err = SessionMiddleware::from_config(config).await.unwrap_err();
    assert_eq!(err.key(), "SESSION_FILE_DIR", "{err}");

    for (key, value) in [
        ("SESSION_TYPE", "redsi"),
        ("PERMANENT_SESSION_LIFETIME", "a month"),
        ("SESSION_PERMANENT", "yes please"),
        ("SESSION_COOKIE_SAMESITE", "sometimes"),
        ("SESSION_STORE_OUTAGE", "panic"),
        ("SESSION_COOKIE_PATH", "no-slash"),
    ] {
        let err = SessionConfig::from_source([(key, value)]).unwrap_err();
        assert_eq!(err.key(), key, "{err}");
    }
    let err = SessionConfig::from_source([("SESSION_COOKIE_SAMESITE", "None")]).unwrap_err();
    assert_eq!(
        err.key(),
        "SESSION_COOKIE_SAMESITE",
        "None without Secure: {err}"
    );

    let err = SessionMiddleware::builder(MemoryStore::new())
        .signing_key("too short")
        .build()
        .unwrap_err();
    assert_eq!(err.key(), "SECRET_KEY", "{err}");
    let err = SessionMiddleware::builder(MemoryStore::new())
        .cookie_same_site(SameSite::None)
        .build()
        .unwrap_err();
    assert_eq!(err.key(), "SESSION_COOKIE_SAMESITE", "{err}");
}

#[actix_web::test]
async fn from_config_applies_every_setting() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dir_text = dir.path().to_str().expect("a UTF-8 path");
    let config = SessionConfig::from_source([
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", dir_text),
        ("SESSION_COOKIE_NAME", "flask"),
        ("SESSION_COOKIE_SAMESITE", "None"),
        ("SESSION_COOKIE_SECURE", "true"),
        ("SESSION_PERMANENT", "false"),
        ("SESSION_USE_SIGNER", "1"),
        ("SECRET_KEY", SECRET),
    ])
    .expect("valid");
    let app = TestApp::start(
        SessionMiddleware::from_config(config).await.expect("opens"),
        Hooks::new(1),
    )
    .await
    .named("flask");
    let reply = app.get("/set?key=a&value=1", None).await;
    let c = reply.session_cookie().expect("a cookie named flask");
    assert_eq!(
        c.same_site(),
        Some(actix_web::cookie::SameSite::None),
        "{c}"
    );
    assert_eq!(c.secure(), Some(true), "{c}");
    assert_eq!(c.max_age(), None, "not permanent: {c}");
    assert!(c.value().contains('.'), "signed: {c}");
    app.get("/get?key=a", Some(c.value()))
        .await
        .assert_ok("1", "round trip");
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".session"))
        .count();
    assert_eq!(files, 1, "one session file in SESSION_FILE_DIR");
}

/// The settings `from_config_applies_every_setting` leaves out: the
/// cookie's Domain, Path, HttpOnly and lifetime (cut by the absolute
/// lifetime), the size limit, the codec, the file mode.
#[actix_web::test]
async fn from_config_applies_the_lifetime_size_codec_and_file_settings() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dir_text = dir.path().to_str().expect("a UTF-8 path");
    let config = SessionConfig::from_source([
        ("SESSION_TYPE", "filesystem"),
        ("SESSION_FILE_DIR", dir_text),
        ("SESSION_FILE_MODE", "0640"),
        ("SESSION_COOKIE_DOMAIN", "example.com"),
        ("SESSION_COOKIE_PATH", "/app"),
        ("SESSION_COOKIE_HTTPONLY", "false"),
        ("PERMANENT_SESSION_LIFETIME", "3600"),
        ("SESSION_ABSOLUTE_LIFETIME", "1800"),
        ("SESSION_MAX_SIZE", "100"),
        ("SESSION_SERIALIZATION_FORMAT", "msgpack"),
    ])
    .expect("valid");
    let app = TestApp::start_with(
        SessionMiddleware::from_config(config).await.expect("opens"),
        Hooks::new(1),
        extra,
    )
    .await;
    let reply = app.get("/set?key=a&value=1", None).await;
    let c = reply.session_cookie().expect("a session cookie");
    assert_eq!(c.domain(), Some("example.com"), "{c}");
    assert_eq!(c.path(), Some("/app"), "{c}");
    assert_eq!(c.http_only(), None, "not HttpOnly: {c}");
    let max_age = c.max_age().expect("permanent").whole_seconds();
    assert!(
        (1790..=1800).contains(&max_age),
        "Max-Age {max_age}: the absolute lifetime (1800) cuts the idle one (3600)"
    );
    app.get("/set_big?key=b&len=200", Some(c.value()))
        .await
        .assert_status(StatusCode::PAYLOAD_TOO_LARGE, "past SESSION_MAX_SIZE")
        .body
        .contains("limit=100")
        .then_some(())
        .expect("the error names the limit of 100");
    // Seen again by /set_big, the session has left new/ (probation).
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(".session"))
        .expect("the session's file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        file.metadata().unwrap().permissions().mode() & 0o777,
        0o640,
        "SESSION_FILE_MODE"
    );
    let bytes = std::fs::read(file.path()).unwrap();
    // MessagePack encodes the string "1" as fixstr 0xa1 '1'; JSON as "\"1\"".
    assert!(
        bytes.windows(2).any(|w| w == [0xa1, b'1']) && !bytes.windows(3).any(|w| w == b"\"1\""),
        "the value is not MessagePack: {bytes:?}"
    );
}

// ---------------------------------------------------------------------------
// The Session API through the middleware

#[actix_web::test]
async fn session_is_send_and_usable_from_spawned_tasks() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Session>();

    let app = start(SessionMiddleware::builder(MemoryStore::new())).await;
    let cookie = app
        .get("/spawned", None)
        .await
        .assert_ok("ok", "spawned")
        .expect_new_session("spawned");
    let reply = app.get("/get_u32?key=from_task", Some(&cookie)).await;
    reply.assert_ok("Some(7)", "a write from a tokio task is saved");
    app.get("/get_u32?key=from_thread", Some(&cookie))
        .await
        .assert_ok("Some(8)", "a write from a thread is saved");
}

#[actix_web::test]
async fn without_the_middleware_the_extractor_fails_with_a_hint() {
    let app = actix_web::test::init_service(App::new().route(
        "/peek",
        web::get().to(|s: Session| async move { s.len().to_string() }),
    ))
    .await;
    let res =
        actix_web::test::call_service(&app, TestRequest::get().uri("/peek").to_request()).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);

    let req = TestRequest::get().to_http_request();
    let err = req.session().await.unwrap_err();
    assert!(
        matches!(err, SessionRejection::MissingMiddleware),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(".wrap(SessionMiddleware"),
        "the error says how to fix it: {err}"
    );
}

#[actix_web::test]
async fn the_size_limit_is_a_clear_error_and_keeps_the_data() {
    let app = start(SessionMiddleware::builder(MemoryStore::new()).max_size(100)).await;
    let cookie = app
        .get("/set?key=a&value=small", None)
        .await
        .expect_new_session("set");
    let reply = app.get("/set_big?key=big&len=200", Some(&cookie)).await;
    reply.assert_status(StatusCode::PAYLOAD_TOO_LARGE, "over the limit");
    assert!(reply.body.starts_with("limit=100;"), "{}", reply.body);
    assert!(
        reply.body.contains("100"),
        "the message names the limit: {}",
        reply.body
    );
    let reply = app.get("/set_big?key=a&len=200", Some(&cookie)).await;
    reply.assert_status(
        StatusCode::PAYLOAD_TOO_LARGE,
        "replacing a key over the limit",
    );
    app.get("/get?key=a", Some(&cookie))
        .await
        .assert_ok("small", "the previous value is kept");
    app.get("/peek", Some(&cookie))
        .await
        .assert_ok("a", "nothing of the refused inserts is stored");
    app.get("/set_big?key=b&len=20", Some(&cookie))
        .await
        .assert_ok("ok", "an insert within the limit");
}

#[actix_web::test]
async fn the_cookie_store_never_sends_a_cookie_a_browser_drops() {
    let store = CookieStore::new(SECRET, [] as [&str; 0]).expect("a long secret");
    let app = start(SessionMiddleware::builder(store)).await;
    let reply = app.get("/set_big?key=big&len=5000", None).await;
    reply.assert_status(
        StatusCode::PAYLOAD_TOO_LARGE,
        "a session over 4 KB in a cookie",
    );
    reply.assert_no_cookie("a refused insert");
    let reply = app.get("/set_big?key=big&len=2500", None).await;
    reply.assert_ok("ok", "2500 bytes fit");
    let raw = reply.raw_set_cookies();
    let pair = raw[0].split(';').next().unwrap();
    assert!(
        pair.len() <= 4096,
        "the cookie fits a browser: {} bytes",
        pair.len()
    );
}

#[actix_web::test]
async fn a_value_of_the_wrong_type_is_an_error_for_that_key_only() {
    let app = start(SessionMiddleware::builder(MemoryStore::new())).await;
    let cookie = app
        .get("/set?key=name&value=nick", None)
        .await
        .expect_new_session("set");
    app.get("/visits", Some(&cookie)).await;
    let reply = app.get("/get_u32?key=name", Some(&cookie)).await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY, "a string read as u32");
    assert!(reply.body.starts_with("key=name;"), "{}", reply.body);
    assert!(
        reply.body.contains("\"name\""),
        "the message names the key: {}",
        reply.body
    );
    assert!(
        reply.body.contains("u32"),
        "the message names the type: {}",
        reply.body
    );
    app.get("/get_u32?key=visits", Some(&cookie))
        .await
        .assert_ok("Some(1)", "another key still loads");
    app.get("/get?key=name", Some(&cookie))
        .await
        .assert_ok("nick", "the entry is kept as it is");
}

// ---------------------------------------------------------------------------
// Logout against a login in flight, at the store level

/// A login (renew) has moved the data to a new id and is about to delete
/// the old one when a logout of the same session completes. The login's
/// response must not bring the logged-out session back under the new id.
/// A logout with the old cookie that lands between any two steps of a
/// login that is moving the session: the session must end, under the old id
/// and the new one.
async fn logout_during_login(op: &'static str, nth: usize) {
    let store = Gated::new(op, nth);
    let (app, cookie) = app_with_a_cart(&store).await;
    store.arm();

    let login = app.spawn(app.request(Method::POST, "/login?user=nick", Some(&cookie)));
    within("the login to reach the gate", store.0.paused.notified()).await;
    let logout = app.post("/logout", Some(&cookie)).await;
    logout.assert_ok("bye", "logout");
    assert!(logout.removes_session(), "logout removes the cookie");
    store.0.release.notify_one();
    let login = within("the login", login).await.expect("the request task");
    login.assert_status(StatusCode::OK, "the login in flight");
    assert_eq!(
        login.new_session(),
        None,
        "a login in flight during the logout (held at {op} #{nth}) sent a session cookie"
    );
    app.get("/peek", Some(&cookie))
        .await
        .assert_ok("", "the old cookie after logout");
    assert!(
        store.0.store.is_empty(),
        "a login in flight during the logout (held at {op} #{nth}) left a session in the store"
    );
}

#[actix_web::test]
async fn logout_wins_over_a_login_before_it_leaves_its_note() {
    logout_during_login("create", 1).await;
}

#[actix_web::test]
async fn logout_wins_over_a_login_before_it_creates_the_new_session() {
    logout_during_login("create", 2).await;
}

#[actix_web::test]
async fn logout_wins_over_a_login_before_it_takes_the_old_session() {
    logout_during_login("take", 1).await;
}

#[actix_web::test]
async fn logout_wins_over_a_login_before_it_carries_writes_over() {
    logout_during_login("apply", 1).await;
}

#[actix_web::test]
async fn logout_wins_over_a_login_that_already_moved_the_data() {
    logout_during_login("apply", 2).await;
}

// ---------------------------------------------------------------------------
// Writes made to the old id during a login are carried over

/// A login is held just before it takes the old session; meanwhile another
/// request of the same session writes a key with the old cookie. The
/// logged-in session must have that key: a login drops nothing.
#[actix_web::test]
async fn writes_to_the_old_id_during_a_login_are_carried_over() {
    let store = Gated::new("take", 1);
    let (app, cookie) = app_with_a_cart(&store).await;
    store.arm();
    let login = app.spawn(app.request(Method::POST, "/login?user=nick", Some(&cookie)));
    within("the login to reach its take", store.0.paused.notified()).await;
    app.get("/set?key=coupon&value=half", Some(&cookie))
        .await
        .assert_ok("ok", "a write with the old cookie during the login")
        .assert_no_cookie("the old session is written in place");
    store.0.release.notify_one();
    let login = within("the login", login).await.expect("the request task");
    let new = login.expect_new_session("the login");
    app.get("/peek", Some(&new))
        .await
        .assert_ok("cart,coupon,user", "the logged-in session after the login");
    app.get("/get?key=coupon", Some(&new))
        .await
        .assert_ok("half", "the carried-over value");
}

// ---------------------------------------------------------------------------
// Every store call is cut at the configured timeout

/// A store call that never answers is cut at `SESSION_STORE_TIMEOUT`,
/// whichever call it is: the request answers 503 after about the timeout
/// (at least the timeout, less than twice it), not later and not sooner.
#[actix_web::test]
async fn each_store_call_is_cut_at_the_store_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(400);
    // (operation, how to reach it: method, path, with a cookie, hide expiry)
    let cases: [(&str, Method, &str, bool, bool); 6] = [
        ("load", Method::GET, "/peek", true, false),
        ("create", Method::GET, "/set?key=b&value=2", false, false),
        ("apply", Method::GET, "/set?key=b&value=2", true, false),
        ("touch", Method::GET, "/peek", true, true),
        ("delete", Method::POST, "/logout", true, false),
        ("take", Method::POST, "/login?user=nick", true, false),
    ];
    for (op, method, path, with_cookie, hide_expiry) in cases {
        let mut store = Gated::new(op, 1);
        if hide_expiry {
            store = store.hiding_expiry();
        }
        let app = start(SessionMiddleware::builder(store.clone()).store_timeout(TIMEOUT)).await;
        let cookie = app
            .get("/set?key=a&value=1", None)
            .await
            .expect_new_session("set");
        store.arm();
        let started = std::time::Instant::now();
        let reply = within(
            op,
            app.send(app.request(method.clone(), path, with_cookie.then_some(cookie.as_str()))),
        )
        .await;
        let elapsed = started.elapsed();
        reply
            .assert_status(StatusCode::SERVICE_UNAVAILABLE, &format!("a hanging {op}"))
            .assert_no_cookie(&format!("a hanging {op}"));
        assert!(
            elapsed >= TIMEOUT && elapsed < 2 * TIMEOUT,
            "a hanging {op} was cut after {elapsed:?}, with a timeout of {TIMEOUT:?}"
        );
        // The held call notified `paused` (a permit is kept for a later
        // waiter): proof that the case reached the operation it names.
        assert!(
            tokio::time::timeout(Duration::ZERO, store.0.paused.notified())
                .await
                .is_ok(),
            "the {op} call was never made: the case does not test it"
        );
    }
}

// ---------------------------------------------------------------------------
// The public API around the extractor

/// The `session` cookie's value in a response, if it sets one.
fn session_cookie_value<B>(res: &actix_web::dev::ServiceResponse<B>) -> Option<String> {
    res.response()
        .cookies()
        .find(|c| c.name() == "session")
        .map(|c| c.value().to_owned())
}

#[actix_web::test]
async fn a_middleware_inside_the_session_middleware_writes_after_the_handler() {
    use actix_web::dev::Service as _;
    // Registered first, so it runs inside the session middleware: after the
    // handler and before the save.
    let app = actix_web::test::init_service(
        App::new()
            .wrap_fn(|req, srv| {
                let call = srv.call(req);
                async move {
                    let res = call.await?;
                    let session = res.session().await?;
                    let seen = session.update("seen", |n: Option<u32>| n.unwrap_or(0) + 1)?;
                    assert!(seen >= 1);
                    Ok(res)
                }
            })
            .wrap(
                SessionMiddleware::builder(MemoryStore::new())
                    .build()
                    .unwrap(),
            )
            .route(
                "/seen",
                web::get()
                    .to(|s: Session| async move { format!("{:?}", s.get::<u32>("seen").unwrap()) }),
            ),
    )
    .await;
    let first =
        actix_web::test::call_service(&app, TestRequest::get().uri("/seen").to_request()).await;
    let cookie = session_cookie_value(&first).expect("the write after the handler made a session");
    let body = actix_web::test::read_body(first).await;
    assert_eq!(body, "None", "the handler ran before the outer write");
    let second = actix_web::test::call_service(
        &app,
        TestRequest::get()
            .uri("/seen")
            .insert_header(("Cookie", format!("session={cookie}")))
            .to_request(),
    )
    .await;
    assert_eq!(
        actix_web::test::read_body(second).await,
        "Some(1)",
        "the write made on the ServiceResponse was saved"
    );
}

#[actix_web::test]
async fn new_with_a_key_signs_the_ids_it_sends() {
    let key = session_actix::SigningKey::new(SECRET).unwrap();
    let app = TestApp::start_with(
        SessionMiddleware::new(MemoryStore::new(), key),
        Hooks::new(1),
        extra,
    )
    .await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    let (id, tag) = cookie.split_once('.').expect("a signed id: id.tag");
    assert_eq!((id.len(), tag.len()), (43, 43), "{cookie}");
    app.get("/get?key=a", Some(&cookie))
        .await
        .assert_ok("1", "the signed cookie names the session");
    // The same id under another key's tag is a fresh session.
    let other = session_core::Signer::new("session-id", OLD_SECRET, [""; 0])
        .unwrap()
        .sign(id);
    app.get("/get?key=a", Some(&other))
        .await
        .assert_status(StatusCode::NOT_FOUND, "a tag of another key");
}

#[actix_web::test]
async fn a_session_attached_to_a_test_request_is_what_handlers_get() {
    async fn whoami(req: HttpRequest) -> Result<String, actix_web::Error> {
        let session = req.session().await?;
        Ok(session.get::<String>("user")?.unwrap_or_default())
    }
    let session = Session::new();
    session.insert("user", "ann").unwrap();
    let req = TestRequest::default().to_http_request();
    session.attach_to(&req);
    assert_eq!(whoami(req).await.unwrap(), "ann");
    // Writes the handler makes are visible to the test through its handle.
    let req = TestRequest::default().to_http_request();
    session.attach_to(&req);
    req.session().await.unwrap().insert("seen", true).unwrap();
    assert_eq!(session.get::<bool>("seen").unwrap(), Some(true));
}

// ---------------------------------------------------------------------------
// Explicit save and reload

#[actix_web::test]
async fn save_writes_in_the_middle_of_the_handler_and_the_end_saves_the_rest() {
    let app = start(SessionMiddleware::builder(MemoryStore::new())).await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    let held = app.spawn(app.request(Method::GET, "/save_hold?key=a&value=2", Some(&cookie)));
    within("the save", app.hooks().loaded.notified()).await;
    // The handler is still running: what it saved is already there.
    app.get("/get?key=a", Some(&cookie))
        .await
        .assert_ok("2", "a value saved in the middle of a handler");
    app.get("/get?key=after", Some(&cookie))
        .await
        .assert_status(StatusCode::NOT_FOUND, "not yet set");
    app.hooks().release.notify_one();
    let reply = within("the held request", held).await.unwrap();
    reply.assert_ok("saved", "the held request");
    app.get("/get?key=after", Some(&cookie))
        .await
        .assert_ok("1", "the change after the save is saved at the end");
    app.get("/get?key=a", Some(&cookie))
        .await
        .assert_ok("2", "and the saved one stays");
}

#[actix_web::test]
async fn a_login_saved_in_the_handler_sends_its_new_cookie() {
    for (what, builder) in [
        ("memory", SessionMiddleware::builder(MemoryStore::new())),
        (
            "cookie",
            SessionMiddleware::builder(CookieStore::new(SECRET, [""; 0]).unwrap()),
        ),
    ] {
        let app = start(builder).await;
        let cookie = app
            .get("/set?key=a&value=1", None)
            .await
            .expect_new_session("set");
        let reply = app.post("/login_save?user=ann", Some(&cookie)).await;
        reply.assert_ok("welcome", what);
        let new = reply.expect_new_session(what);
        assert_ne!(new, cookie, "{what}: the login's cookie");
        app.get("/get?key=user", Some(&new))
            .await
            .assert_ok("ann", what);
        app.get("/get?key=a", Some(&new))
            .await
            .assert_ok("1", "the login keeps the data");
        if what == "memory" {
            app.get("/get?key=a", Some(&cookie))
                .await
                .assert_status(StatusCode::NOT_FOUND, "the pre-login id is gone");
        }
    }
}

#[actix_web::test]
async fn reload_drops_unsaved_changes_and_reads_what_others_stored() {
    let app = start(SessionMiddleware::builder(MemoryStore::new())).await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    let held = app.spawn(app.request(Method::GET, "/reload_hold", Some(&cookie)));
    within("the load", app.hooks().loaded.notified()).await;
    app.get("/set?key=other&value=2", Some(&cookie))
        .await
        .assert_ok("ok", "a write while the first request holds");
    app.hooks().release.notify_one();
    let reply = within("the held request", held).await.unwrap();
    reply
        .assert_ok(
            "a,other",
            "after reload: the stored session, not the unsaved change",
        )
        .assert_no_cookie("nothing left to save");
    app.get("/get?key=mine", Some(&cookie))
        .await
        .assert_status(StatusCode::NOT_FOUND, "the dropped change was never saved");
}

#[actix_web::test]
async fn a_failing_save_is_returned_to_the_handler() {
    let app = start(faulty(Fault::None, Fault::Fail).outage_policy(OutagePolicy::ServeEmpty)).await;
    let reply = app.get("/save_report?key=a&value=1", None).await;
    reply.assert_ok("503", "the store's failure, as the handler sees it");
    reply.assert_no_cookie("nothing was saved");
}

#[actix_web::test]
async fn changing_a_session_s_permanence_sends_its_cookie_again() {
    let app = start(SessionMiddleware::builder(MemoryStore::new())).await;
    let reply = app.get("/set?key=a&value=1", None).await;
    let cookie = reply.expect_new_session("set");
    assert!(
        reply.session_cookie().unwrap().max_age().is_some(),
        "permanent by default"
    );
    let reply = app.get("/forget_me", Some(&cookie)).await;
    reply.assert_ok("ok", "forget me");
    let c = reply.session_cookie().expect("the cookie, sent again");
    assert_eq!(c.value(), cookie, "the same session");
    assert_eq!(
        (c.max_age(), c.expires()),
        (None, None),
        "now a browser-session cookie: {c}"
    );
    app.get("/get?key=a", Some(&cookie))
        .await
        .assert_ok("1", "the data stays")
        .assert_no_cookie("nothing changed since");
}

// ---------------------------------------------------------------------------
// A user's sessions

/// Logs in as `user` (renew, bind) with a fresh session, sending `headers`.
async fn login_as(app: &TestApp, user: &str, headers: &[(&str, &str)]) -> String {
    let mut req = app.request(Method::POST, &format!("/login_as?user={user}"), None);
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    app.send(req).await.expect_new_session("a login")
}

async fn listed(app: &TestApp, cookie: &str) -> Vec<serde_json::Value> {
    let reply = app.get("/sessions", Some(cookie)).await;
    reply.assert_status(StatusCode::OK, "the user's sessions");
    serde_json::from_str(&reply.body).expect("JSON")
}

#[actix_web::test]
async fn the_client_is_listed_only_when_tracked() {
    let headers = [
        ("User-Agent", "TestBrowser/1.0 (X11)"),
        ("X-Forwarded-For", "203.0.113.7"),
    ];
    let tracked = start(session_tests::memory().builder.track_client(true)).await;
    let cookie = login_as(&tracked, "ann", &headers).await;
    let sessions = listed(&tracked, &cookie).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["user_agent"], "TestBrowser/1.0 (X11)");
    assert_eq!(sessions[0]["ip"], "203.0.113.7");
    assert_eq!(sessions[0]["current"], true);

    let untracked = start(session_tests::memory().builder).await;
    let cookie = login_as(&untracked, "ann", &headers).await;
    let sessions = listed(&untracked, &cookie).await;
    let mut fields: Vec<&String> = sessions[0].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["created_at", "current", "handle", "last_seen"],
        "no client fields unless tracked"
    );
}

#[actix_web::test]
async fn a_user_agent_is_kept_to_256_bytes() {
    let app = start(session_tests::memory().builder.track_client(true)).await;
    let long = format!("{}{}", "a".repeat(256), "b".repeat(100));
    let cookie = login_as(&app, "ann", &[("User-Agent", long.as_str())]).await;
    let sessions = listed(&app, &cookie).await;
    assert_eq!(sessions[0]["user_agent"], "a".repeat(256));
}

#[actix_web::test]
async fn users_are_listed_and_ended_from_outside_a_request() {
    let middleware = session_tests::memory().builder.build().unwrap();
    let app = TestApp::start_with(middleware.clone(), Hooks::new(1), extra).await;
    let a = login_as(&app, "ann", &[]).await;
    let b = login_as(&app, "ann", &[]).await;
    let users = middleware.users();
    let sessions = users.list("ann").await.unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(
        sessions.iter().all(|s| !s.current),
        "no request: none is current"
    );
    assert!(users.list("bob").await.unwrap().is_empty());
    assert!(!users.revoke("bob", &sessions[0].handle).await.unwrap());
    assert!(!users.revoke("ann", "garbage").await.unwrap());
    assert_eq!(
        users
            .revoke_all_except("ann", &sessions[1].handle)
            .await
            .unwrap(),
        1
    );
    assert_eq!(users.list("ann").await.unwrap().len(), 1);
    assert_eq!(users.revoke_all("ann").await.unwrap(), 1);
    for cookie in [&a, &b] {
        app.get("/peek", Some(cookie))
            .await
            .assert_ok("", "a session ended from outside");
    }
}

#[actix_web::test]
async fn the_binding_follows_the_session_across_a_login() {
    let app = start(session_tests::memory().builder).await;
    let a = login_as(&app, "ann", &[]).await;
    let handle = listed(&app, &a).await[0]["handle"].clone();
    // A second login (renew) without binding again: same user, same handle.
    let a2 = app
        .post("/login?user=ann", Some(&a))
        .await
        .expect_new_session("the second login");
    let sessions = listed(&app, &a2).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["handle"], handle);
    assert_eq!(sessions[0]["current"], true);
    // The index follows the move: ending the handle ends the new id.
    let b = login_as(&app, "ann", &[]).await;
    let handle = handle.as_str().unwrap();
    app.post(&format!("/sessions/revoke?handle={handle}"), Some(&b))
        .await
        .assert_ok("revoked", "ending the moved session");
    app.get("/peek", Some(&a2))
        .await
        .assert_ok("", "the moved session, ended");
}

#[actix_web::test]
async fn clearing_a_session_takes_it_off_its_users_list() {
    let app = start(session_tests::memory().builder).await;
    let a = login_as(&app, "ann", &[]).await;
    let b = login_as(&app, "ann", &[]).await;
    assert!(app.get("/clear", Some(&a)).await.removes_session());
    assert_eq!(listed(&app, &b).await.len(), 1);
    app.get("/sessions", Some(&a))
        .await
        .assert_status(StatusCode::UNAUTHORIZED, "a cleared session has no user");
}

#[actix_web::test]
async fn a_bound_session_holds_its_user_beside_its_entries() {
    let app = start(session_tests::memory().builder).await;
    let a = login_as(&app, "ann", &[]).await;
    app.get("/peek", Some(&a))
        .await
        .assert_ok("user", "the binding is not an entry");
    // Removing the last entry leaves the session: it still has its user.
    app.get("/remove?key=user", Some(&a))
        .await
        .assert_no_cookie("still bound");
    assert_eq!(listed(&app, &a).await.len(), 1);
}

#[actix_web::test]
async fn the_cookie_store_cannot_list_or_end_a_users_sessions() {
    let middleware = session_tests::cookie().builder.build().unwrap();
    let app = TestApp::start_with(middleware.clone(), Hooks::new(1), extra).await;
    let a = login_as(&app, "ann", &[]).await;
    app.get("/sessions", Some(&a)).await.assert_status(
        StatusCode::INTERNAL_SERVER_ERROR,
        "listing on the cookie store",
    );
    let error = middleware.users().list("ann").await.unwrap_err();
    assert!(
        matches!(error.kind(), SessionErrorKind::NoUserIndex(_)),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("needs a server-side store"),
        "{error}"
    );
    let error = middleware.users().revoke_all("ann").await.unwrap_err();
    assert!(
        matches!(error.kind(), SessionErrorKind::NoUserIndex(_)),
        "{error:?}"
    );
}

#[actix_web::test]
async fn max_sessions_per_user_is_from_1_to_1000() {
    for max in [0, 1001] {
        let error = session_tests::memory()
            .builder
            .max_sessions_per_user(max)
            .build()
            .unwrap_err();
        assert_eq!(error.key(), "SESSION_MAX_PER_USER", "{max}");
    }
    for max in [1, 1000] {
        let built = session_tests::memory()
            .builder
            .max_sessions_per_user(max)
            .build();
        assert!(built.is_ok(), "{max}");
    }
}

#[actix_web::test]
async fn a_bound_session_lives_at_most_400_days() {
    let app = start(session_tests::memory().builder).await;
    let reply = app.post("/login_for_years", None).await;
    let cookie = reply.session_cookie().expect("a cookie");
    assert_eq!(
        cookie.max_age(),
        Some(actix_web::cookie::time::Duration::days(400)),
        "capped so that the user's index outlives the session"
    );
}

#[actix_web::test]
async fn each_login_drops_the_index_entries_of_ended_sessions() {
    use session_core::SessionStore;
    let store = Arc::new(MemoryStore::new());
    let app = start(SessionMiddleware::builder(Arc::clone(&store))).await;
    let index = session_core::testing::layout::Keyspace::hashed("session:").user_index("ann");
    let entries = async || {
        store
            .load(&index)
            .await
            .unwrap()
            .map_or(0, |r| r.entries.len())
    };
    let a = login_as(&app, "ann", &[]).await;
    assert_eq!(entries().await, 1);
    assert!(app.post("/logout", Some(&a)).await.removes_session());
    assert_eq!(
        entries().await,
        1,
        "a logout leaves the entry until the next login"
    );
    let b = login_as(&app, "ann", &[]).await;
    assert_eq!(
        entries().await,
        1,
        "the next login dropped the ended session's entry"
    );
    let _c = login_as(&app, "ann", &[]).await;
    assert_eq!(entries().await, 2);
    assert_eq!(listed(&app, &b).await.len(), 2);
}

/// The audit's finding: with no limit by default, every login loaded
/// every live session of its user (3,000 logins: 3,002 loads per login).
/// Now a user keeps `SESSION_MAX_PER_USER` (50 by default) sessions, the
/// least recently seen going first, and a login loads a bounded number of
/// sessions however many logins came before.
#[actix_web::test]
async fn by_default_a_user_keeps_50_sessions_and_a_login_loads_a_bounded_number() {
    use session_core::SessionStore;
    let store = Recorder::default();
    let app = start(SessionMiddleware::builder(store.clone())).await;
    let first = login_as(&app, "ann", &[]).await;
    for _ in 0..200 {
        login_as(&app, "ann", &[]).await;
    }
    store.drain();
    let last = login_as(&app, "ann", &[]).await;
    let loads = store.drain().iter().filter(|c| c.kind() == "load").count();
    assert!(
        (50..=2 * 50 + 16 + 2).contains(&loads),
        "a login loaded {loads} sessions"
    );
    assert_eq!(listed(&app, &last).await.len(), 50);
    let index = session_core::testing::layout::Keyspace::hashed("session:").user_index("ann");
    let record = store.inner.load(&index).await.unwrap().unwrap();
    assert_eq!(
        record.entries.len(),
        50,
        "the index holds the live sessions"
    );
    app.get("/peek", Some(&first))
        .await
        .assert_ok("", "the least recently seen session ended");
}

/// With ids in clear, a user's index names each session sealed under
/// `SECRET_KEY`. Rotating the secret keeps every session in its user's
/// reach: while the old secret is a fallback, the next listing (every
/// login lists) writes the names anew, so once it goes, logging out
/// everywhere still ends sessions bound under it.
#[actix_web::test]
async fn rotating_the_secret_keeps_every_session_in_its_users_reach() {
    let store = Arc::new(MemoryStore::new());
    let app = |secret: &str, fallbacks: &[&str]| {
        let builder = SessionMiddleware::builder(Arc::clone(&store))
            .hash_ids(false)
            .secret_key(secret)
            .fallback_keys(fallbacks.iter().copied());
        start(builder)
    };
    let old = app(OLD_SECRET, &[]).await;
    let first = login_as(&old, "ann", &[]).await;
    let rotating = app(SECRET, &[OLD_SECRET]).await;
    let second = login_as(&rotating, "ann", &[]).await;
    assert_eq!(listed(&rotating, &second).await.len(), 2);
    let rotated = app(SECRET, &[]).await;
    rotated
        .post("/logout-everywhere", Some(&second))
        .await
        .assert_ok(
            "2 ended",
            "both sessions, the one bound under the old secret too",
        );
    rotated
        .get("/peek", Some(&first))
        .await
        .assert_ok("", "the session bound under the old secret ended");
}

/// Many logins at once can leave an index past what one login ends; at
/// its size limit (under memcached's 1 MB items) a login ends the user's
/// oldest sessions first, and logs in.
#[actix_web::test]
async fn a_user_whose_index_is_full_still_logs_in() {
    use session_core::SessionStore;
    use session_core::store::Applied;
    use session_core::testing::layout::{Entry, Handle, INDEX_MAX_BYTES};
    let store = Arc::new(MemoryStore::new());
    let app = start(SessionMiddleware::builder(Arc::clone(&store))).await;
    let oldest = login_as(&app, "ann", &[]).await;
    let index = session_core::testing::layout::Keyspace::hashed("session:").user_index("ann");
    // Entries of sessions that are long gone, as left by a flood of
    // logins, up to the limit.
    let ua = "x".repeat(250);
    let entry = |n: usize| {
        let key = format!("session:{n:064x}");
        serde_json::to_vec(&Entry::new(key, Some(&ua), None)).unwrap()
    };
    let per_entry = entry(0).len() + 22;
    let filler: Vec<_> = (0..INDEX_MAX_BYTES / per_entry)
        .map(|n| (Handle::generate().as_str().to_owned(), entry(n).into()))
        .collect();
    let fill = ChangeSet {
        set: filler,
        ..ChangeSet::default()
    };
    let ttl = session_core::testing::layout::INDEX_TTL;
    assert_eq!(
        store.apply(&index, &fill, ttl).await.unwrap(),
        Applied::Done
    );
    let full = store.load(&index).await.unwrap().unwrap();
    let size: usize = full.entries.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(
        size + per_entry > INDEX_MAX_BYTES,
        "the index is full: {size}"
    );

    let last = login_as(&app, "ann", &[]).await;
    let left = store.load(&index).await.unwrap().unwrap().entries.len();
    assert!(left <= 50, "the login trimmed the index to {left} entries");
    assert_eq!(listed(&app, &last).await.len(), 2);
    app.get("/peek", Some(&oldest))
        .await
        .assert_ok("user", "a live session within the limit stays");
}

#[actix_web::test]
async fn a_login_sent_twice_keeps_the_cookie_of_the_login_that_moved_the_session() {
    // The first login is held where it takes the old session; the second,
    // with the same cookie, moves the session meanwhile.
    let store = Gated::new("take", 1);
    let (app, cookie) = app_with_a_cart(&store).await;
    store.arm();
    let first = app.spawn(app.request(Method::POST, "/login?user=nick", Some(&cookie)));
    within("the first login to take", store.0.paused.notified()).await;
    let moved = app
        .post("/login?user=nick", Some(&cookie))
        .await
        .expect_new_session("the second login");
    store.0.release.notify_one();
    within("the first login", first)
        .await
        .expect("the request task")
        .assert_ok("welcome nick", "the login that lost")
        .assert_no_cookie("the login that lost leaves the other login's cookie alone");
    app.get("/peek", Some(&moved))
        .await
        .assert_ok("cart,user", "the session the second login moved");
    app.get("/peek", Some(&cookie))
        .await
        .assert_ok("", "the old cookie");
}

#[actix_web::test]
async fn a_logout_reaches_a_login_that_found_another_login_under_way() {
    use session_core::SessionStore;
    use session_core::store::Record;
    use session_core::testing::layout::MOVE_NOTE_TTL;
    // Held at its second apply: the carry-over, after it took the old
    // session; its first apply added its new id to the note of the other
    // login.
    let store = Gated::new("apply", 2);
    let (app, cookie) = app_with_a_cart(&store).await;
    let old = session_core::StoreKey::new("session:", &SessionId::parse(&cookie).unwrap(), true);
    let elsewhere = HashMap::from([("session:elsewhere".to_owned(), Default::default())]);
    assert!(
        store
            .0
            .store
            .create(
                &session_core::testing::layout::Keyspace::hashed("session:").move_note(&old),
                &Record::from(elsewhere),
                MOVE_NOTE_TTL,
            )
            .await
            .unwrap()
    );
    store.arm();
    let login = app.spawn(app.request(Method::POST, "/login?user=nick", Some(&cookie)));
    within("the login to carry over", store.0.paused.notified()).await;
    assert!(app.post("/logout", Some(&cookie)).await.removes_session());
    store.0.release.notify_one();
    let login = within("the login", login).await.expect("the request task");
    assert_eq!(
        login.new_session(),
        None,
        "the login in flight sent a session"
    );
    assert!(
        store.0.store.is_empty(),
        "the logout left the session the login was moving in the store"
    );
}

#[actix_web::test]
async fn a_failed_save_after_the_handler_keeps_the_cookie_of_an_earlier_save_only_when_serving_empty()
 {
    for (policy, status) in [
        (OutagePolicy::ServeEmpty, StatusCode::OK),
        (OutagePolicy::Fail, StatusCode::SERVICE_UNAVAILABLE),
    ] {
        // The handler's save creates the session; the save after it (an
        // apply, the first after arming) fails.
        let store = Gated::failing("apply", 1);
        store.arm();
        let app = start(SessionMiddleware::builder(store.clone()).outage_policy(policy)).await;
        let reply = app.get("/save_then_more", None).await;
        reply.assert_status(status, &format!("{policy:?}"));
        match policy {
            OutagePolicy::ServeEmpty => {
                let cookie = reply.expect_new_session("the session the handler saved");
                app.get("/peek", Some(&cookie))
                    .await
                    .assert_ok("a", "what the handler saved, without the failed change");
            }
            _ => {
                reply.assert_no_cookie("a failed request sends no cookie");
            }
        }
    }
}

#[actix_web::test]
async fn saving_an_unchanged_session_writes_nothing() {
    let store = Recorder {
        hide_expiry: true,
        ..Recorder::default()
    };
    let app = recorded(&store, |b| b).await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    store.drain();
    app.get("/save_unchanged", Some(&cookie))
        .await
        .assert_ok("a", "save of an unchanged session");
    assert_eq!(
        store.drain_kinds(),
        ["load", "touch"],
        "one refresh, after the handler: the handler's save wrote nothing"
    );
}

#[actix_web::test]
async fn a_login_or_an_insert_that_leaves_a_new_session_empty_stores_nothing() {
    let store = Recorder::default();
    let app = recorded(&store, |b| b).await;
    app.post("/renew_only", None)
        .await
        .assert_ok("ok", "a login of an empty session")
        .assert_no_cookie("nothing to keep");
    app.get("/insert_remove", None)
        .await
        .assert_ok("ok", "an insert taken back")
        .assert_no_cookie("nothing to keep");
    assert_eq!(
        store.drain_kinds(),
        Vec::<&str>::new(),
        "no call: no cookie to load, nothing to create"
    );
}

#[actix_web::test]
async fn the_middleware_and_its_service_debug_print_no_secret() {
    use actix_web::dev::Transform;
    let middleware = session_tests::memory()
        .builder
        .signing_key(SECRET)
        .build()
        .unwrap();
    let printed = format!("{middleware:?}");
    assert!(
        printed.starts_with("SessionMiddleware { engine: Engine { settings: Settings {")
            && printed.ends_with(".. }"),
        "{printed}"
    );
    assert!(
        !printed.contains(SECRET),
        "the signing key is not printed: {printed}"
    );
    let service = middleware
        .new_transform(actix_web::dev::fn_service(
            |req: actix_web::dev::ServiceRequest| async move {
                Ok::<_, actix_web::Error>(req.into_response(HttpResponse::Ok().finish()))
            },
        ))
        .await
        .unwrap();
    assert_eq!(format!("{service:?}"), "SessionService { .. }");
}

#[actix_web::test]
async fn a_cookie_session_whose_absolute_lifetime_ends_during_a_request_loses_its_cookie() {
    const ABSOLUTE: Duration = Duration::from_secs(2);
    let app = start(session_tests::cookie().builder.absolute_lifetime(ABSOLUTE)).await;
    let started = std::time::Instant::now();
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    // Loaded while alive, saved after its absolute lifetime is over.
    let held = app.spawn(app.request(Method::GET, "/hold_set?key=b&value=2", Some(&cookie)));
    within("the request to load", app.hooks().loaded.notified()).await;
    assert!(
        started.elapsed() < ABSOLUTE,
        "loaded too late to test anything"
    );
    tokio::time::sleep(ABSOLUTE.saturating_sub(started.elapsed()) + Duration::from_millis(100))
        .await;
    app.hooks().release.notify_one();
    let reply = within("the request", held).await.expect("the request task");
    reply.assert_ok("ok", "the request that outlived the session");
    assert!(
        reply.removes_session(),
        "the ended session's cookie is removed: {:?}",
        reply.raw_set_cookies()
    );
}

#[actix_web::test]
async fn a_save_during_the_handler_is_not_written_again_after_it() {
    let store = Recorder::default();
    let app = recorded(&store, |b| b).await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    store.drain();
    app.get("/save_report?key=b&value=2", Some(&cookie))
        .await
        .assert_ok("ok", "a save during the handler");
    assert_eq!(
        store.drain_kinds(),
        ["load", "apply"],
        "the save after the handler had nothing left to write"
    );
}

#[actix_web::test]
async fn changes_a_failed_save_took_are_saved_after_the_handler() {
    let store = Gated::failing("apply", 1);
    let app = start(SessionMiddleware::builder(store.clone())).await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    store.arm();
    app.get("/save_report?key=b&value=2", Some(&cookie))
        .await
        .assert_ok("503", "the handler's save failed");
    app.get("/get?key=b", Some(&cookie))
        .await
        .assert_ok("2", "the change was saved after the handler");
}

#[actix_web::test]
async fn a_reload_still_signs_a_fallback_key_cookie_again() {
    let (rotated, old_cookie) = rotated_with_an_old_key_cookie().await;
    let reply = rotated.get("/reload_keys", Some(&old_cookie)).await;
    reply.assert_ok("a", "a reload of an old-key cookie");
    assert_ne!(
        reply.expect_new_session("the reloaded session's cookie is signed again"),
        old_cookie
    );
}

#[actix_web::test]
async fn a_reload_after_a_save_reads_what_the_save_wrote() {
    for backend in [session_tests::memory(), session_tests::cookie()] {
        let app = start(backend.builder).await;
        let reply = app.get("/save_reload", None).await;
        reply.assert_ok("a", "a reload after a save in the same request");
        let cookie = reply.expect_new_session("the saved session");
        app.get("/peek", Some(&cookie))
            .await
            .assert_ok("a", "the saved session");
    }
}

#[actix_web::test]
async fn last_seen_follows_reads_and_writes_of_a_bound_session() {
    let app = start(session_tests::memory().builder).await;
    let cookie = app
        .post("/login_short", None)
        .await
        .expect_new_session("a login");
    let last_seen = async || {
        let listed = listed(&app, &cookie).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        listed[0]["last_seen"].as_str().unwrap().to_owned()
    };
    let bound = last_seen().await;
    // Past a tenth of the lifetime: a read refreshes the session, and says
    // it was seen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.get("/peek", Some(&cookie))
        .await
        .assert_ok("", "a read");
    let read = last_seen().await;
    assert!(read > bound, "a read: {read} after {bound}");
    // A write says it too, and keeps what it wrote.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.get("/set?key=k&value=v", Some(&cookie))
        .await
        .assert_ok("ok", "a write");
    let written = last_seen().await;
    assert!(written > read, "a write: {written} after {read}");
    app.get("/get?key=k", Some(&cookie))
        .await
        .assert_ok("v", "the write that said it was seen");
}

/// An app that allows one session per user, the cookie of ann's session,
/// and, a few milliseconds later (not a tie for "least recently seen"),
/// the cookie of a visitor's session holding `x`.
async fn capped_at_one_with_ann_logged_in() -> (TestApp, String, String) {
    let app = start(session_tests::memory().builder.max_sessions_per_user(1)).await;
    let ann = login_as(&app, "ann", &[]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let visitor = app
        .get("/set?key=x&value=1", None)
        .await
        .expect_new_session("a visitor's session");
    (app, ann, visitor)
}

#[actix_web::test]
async fn binding_a_session_without_a_login_applies_the_cap() {
    let (app, a, b) = capped_at_one_with_ann_logged_in().await;
    app.post("/bind?user=ann", Some(&b))
        .await
        .assert_ok("ok", "binding without a login")
        .assert_no_cookie("the same session, the same cookie");
    app.get("/peek", Some(&a))
        .await
        .assert_ok("", "the older session, past the cap");
    let sessions = listed(&app, &b).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["current"], true);
}

#[actix_web::test]
async fn a_login_of_a_bound_session_keeps_its_entry_in_the_users_list() {
    let app = start(session_tests::memory().builder.track_client(true)).await;
    let first = login_as(&app, "ann", &[("User-Agent", "First/1")]).await;
    let before = listed(&app, &first).await;
    let mut req = app.request(Method::POST, "/login?user=ann", Some(&first));
    req = req.insert_header(("User-Agent", "Second/2"));
    let moved = app
        .send(req)
        .await
        .expect_new_session("a login without binding again");
    let after = listed(&app, &moved).await;
    assert_eq!(after.len(), 1, "{after:?}");
    for field in ["handle", "user_agent", "created_at"] {
        assert_eq!(after[0][field], before[0][field], "{field} after the login");
    }
}

#[actix_web::test]
async fn a_bound_session_writes_its_entry_again_before_the_index_could_expire() {
    use session_core::SessionStore;
    use session_core::testing::layout::{Binding, USER_KEY};
    let store = Arc::new(MemoryStore::new());
    let app = start(SessionMiddleware::builder(Arc::clone(&store)).track_client(true)).await;
    let cookie = login_as(&app, "ann", &[("User-Agent", "First/1")]).await;
    let key = session_core::StoreKey::new("session:", &SessionId::parse(&cookie).unwrap(), true);
    let binding = async || -> Binding {
        let record = store.load(&key).await.unwrap().expect("the session");
        serde_json::from_slice(&record.entries[USER_KEY]).unwrap()
    };
    // As if the entry was written 800 days ago: the index could expire
    // before the session.
    let old = Binding {
        indexed_at: 0,
        ..binding().await
    };
    let set_old = ChangeSet {
        set: vec![(
            USER_KEY.to_owned(),
            serde_json::to_vec(&old).unwrap().into(),
        )],
        ..ChangeSet::default()
    };
    let ttl = Duration::from_secs(3600);
    assert_eq!(
        store.apply(&key, &set_old, ttl).await.unwrap(),
        session_core::Applied::Done
    );
    app.get("/set?key=k&value=v", Some(&cookie))
        .await
        .assert_ok("ok", "a write");
    let now = session_core::testing::layout::millis(std::time::SystemTime::now());
    let written = binding().await;
    assert!(now - written.indexed_at < 60_000, "{written:?}");
    assert_eq!(written.handle, old.handle);
    let sessions = listed(&app, &cookie).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0]["user_agent"], "First/1",
        "the entry kept its client"
    );
    app.get("/get?key=k", Some(&cookie))
        .await
        .assert_ok("v", "the write");
}

#[actix_web::test]
async fn a_login_that_moves_a_session_applies_the_cap() {
    let (app, a, visitor) = capped_at_one_with_ann_logged_in().await;
    let b = app
        .post("/login_as?user=ann", Some(&visitor))
        .await
        .expect_new_session("the visitor logs in: the session moves");
    app.get("/peek", Some(&a))
        .await
        .assert_ok("", "the older session, past the cap");
    app.get("/peek", Some(&b))
        .await
        .assert_ok("user,x", "the moved session");
    assert_eq!(listed(&app, &b).await.len(), 1);
}
