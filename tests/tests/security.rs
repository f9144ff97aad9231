//! The defences of SECURITY.md, each shown the way an attacker (or an
//! unlucky user) would meet its absence: fixation at login, a logout sent
//! with a planted pre-login id, planted duplicate cookies, cacheable
//! cookies, changes saved by a failed request, the absolute lifetime, the
//! size limit on the merged session.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use session_actix::store::cookie::CookieStore;
use session_actix::store::memory::MemoryStore;
use session_actix::{OutagePolicy, Session, SessionMiddleware, SessionMiddlewareBuilder};
use session_core::store::{Record, SessionStore};
use session_core::{SessionId, StoreKey};
use session_tests::doubles::{Call, Gated, Recorder};
use session_tests::{Hooks, SECRET, TestApp, within};

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    value: String,
}

/// Sets `key`, then answers 500, as a handler that failed half-way.
async fn set_then_fail(
    session: Session,
    q: web::Query<KeyValue>,
) -> actix_web::Result<HttpResponse> {
    session.insert(q.key.as_str(), &q.value)?;
    Ok(HttpResponse::InternalServerError().body("failed after the insert"))
}

/// Logs out, then answers 500.
/// Logs out, starts a new session (a flash message), then fails.
async fn purge_then_fail(session: Session) -> HttpResponse {
    session.purge();
    if session.insert("flash", "bye").is_err() {
        return HttpResponse::BadRequest().finish();
    }
    HttpResponse::InternalServerError().finish()
}

/// Sets `key` and answers with a `Cache-Control` header of its own.
async fn set_with_cache_control(
    session: Session,
    q: web::Query<KeyValue>,
    cc: web::Query<CacheControl>,
) -> actix_web::Result<HttpResponse> {
    session.insert(q.key.as_str(), &q.value)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, cc.cc.as_str()))
        .body("ok"))
}

#[derive(Deserialize)]
struct CacheControl {
    cc: String,
}

/// Loads the session, waits for the test's go, then logs out.
async fn hold_logout(session: Session, hooks: web::Data<Hooks>) -> &'static str {
    let _ = session.len();
    hooks.loaded.notify_one();
    hooks.release.notified().await;
    session.purge();
    "bye"
}

fn extra(cfg: &mut web::ServiceConfig) {
    cfg.route("/set_then_fail", web::get().to(set_then_fail))
        .route("/purge_then_fail", web::post().to(purge_then_fail))
        .route("/set_cc", web::get().to(set_with_cache_control))
        .route("/hold_logout", web::post().to(hold_logout));
}

async fn start(builder: SessionMiddlewareBuilder) -> TestApp {
    TestApp::start_with(
        builder.build().expect("valid settings"),
        Hooks::new(2),
        extra,
    )
    .await
}

/// The steps of a login, as store calls counted from the login's first
/// write: the note, the new session, the take of the old one, the
/// carry-over, the note's "done" mark.
const LOGIN_STEPS: [(&str, usize); 5] = [
    ("create", 1),
    ("create", 2),
    ("take", 1),
    ("apply", 1),
    ("apply", 2),
];

// ---------------------------------------------------------------------------
// 1. Fixation at login

/// An attacker who planted the pre-login id polls it while the victim logs
/// in: at no step of the login may it show the logged-in state.
#[actix_web::test]
async fn the_pre_login_id_never_holds_post_login_data_at_any_step() {
    for (step, (op, nth)) in LOGIN_STEPS.into_iter().enumerate() {
        let store = Gated::new(op, nth);
        let app = start(SessionMiddleware::builder(store.clone())).await;
        let planted = app
            .get("/set?key=cart&value=3", None)
            .await
            .expect_new_session("the attacker's session");
        store.arm();
        let login = app.spawn(app.request(Method::POST, "/login?user=victim", Some(&planted)));
        within("the login to reach the gate", store.0.paused.notified()).await;
        app.get("/peek", Some(&planted)).await.assert_ok(
            // Held before the take, the old session is as it was; after
            // it, gone.
            if step <= 2 { "cart" } else { "" },
            &format!("the planted id, with the login held at {op} #{nth}"),
        );
        store.0.release.notify_one();
        let login = within("the login", login).await.expect("the request task");
        let cookie = login.expect_new_session("the login");
        app.get("/peek", Some(&cookie))
            .await
            .assert_ok("cart,user", "the new session has the data and the login");
        app.get("/peek", Some(&planted))
            .await
            .assert_ok("", "the planted id after the login");
    }
}

/// A login whose store call fails at any step leaves the pre-login id as
/// it was before the login (or gone), never logged in: under both outage
/// policies.
#[actix_web::test]
async fn a_login_failing_at_any_step_never_logs_in_the_pre_login_id() {
    for policy in [OutagePolicy::Fail, OutagePolicy::ServeEmpty] {
        for (op, nth) in LOGIN_STEPS {
            let store = Gated::failing(op, nth);
            let app = start(SessionMiddleware::builder(store.clone()).outage_policy(policy)).await;
            let planted = app
                .get("/set?key=cart&value=3", None)
                .await
                .expect_new_session("the attacker's session");
            store.arm();
            let what = format!("a login failing at {op} #{nth} with {policy:?}");
            let login = app.post("/login?user=victim", Some(&planted)).await;
            let peek = app.get("/peek", Some(&planted)).await;
            assert!(
                peek.body == "cart" || peek.body.is_empty(),
                "{what}: the planted id shows {:?}",
                peek.body
            );
            if (op, nth) == ("apply", 2) {
                // Marking the move as done is not needed for safety: the
                // login goes through.
                let cookie = login.expect_new_session(&what);
                app.get("/peek", Some(&cookie))
                    .await
                    .assert_ok("cart,user", &what);
                continue;
            }
            match policy {
                OutagePolicy::Fail => {
                    login.assert_status(StatusCode::SERVICE_UNAVAILABLE, &what);
                }
                _ => {
                    login.assert_ok("welcome victim", &what);
                }
            }
            assert_eq!(login.new_session(), None, "{what}: a cookie was sent");
            // What may be left: the old session (if the failure came before
            // the take) and the login's note (a pointer, no data).
            let old = StoreKey::new("session:", &SessionId::parse(&planted).unwrap(), true);
            let note = session_core::testing::layout::Keyspace::hashed("session:").move_note(&old);
            let has_note = store.0.store.load(&note).await.unwrap().is_some();
            assert_eq!(
                store.0.store.len(),
                usize::from(peek.body == "cart") + usize::from(has_note),
                "{what}: the failed login left a session behind ({:?})",
                peek.body
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 9. Which logouts follow a login's move

/// Once a login is over, a logout sent with the pre-login id (by whoever
/// planted it) ends nothing but that id.
#[actix_web::test]
async fn a_logout_with_the_pre_login_id_after_the_login_leaves_the_new_session() {
    let app = start(SessionMiddleware::builder(MemoryStore::new())).await;
    let planted = app
        .get("/set?key=cart&value=3", None)
        .await
        .expect_new_session("set");
    let cookie = app
        .post("/login?user=victim", Some(&planted))
        .await
        .expect_new_session("login");
    app.post("/logout", Some(&planted))
        .await
        .assert_ok("bye", "the stale logout");
    app.get("/get?key=user", Some(&cookie))
        .await
        .assert_ok("victim", "the logged-in session after a stale logout");
}

/// A logout that arrived while the login was running still wins, even when
/// it gets to the store after the login is over.
#[actix_web::test]
async fn a_logout_that_arrived_during_the_login_ends_the_new_session() {
    let app = start(SessionMiddleware::builder(MemoryStore::new())).await;
    let old = app
        .get("/set?key=cart&value=3", None)
        .await
        .expect_new_session("set");
    let logout = app.spawn(app.request(Method::POST, "/hold_logout", Some(&old)));
    within("the logout to load", app.hooks().loaded.notified()).await;
    // Let the request's clock move on, so "arrived before" is not a tie.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cookie = app
        .post("/login?user=nick", Some(&old))
        .await
        .expect_new_session("the login, while the logout is in flight");
    app.hooks().release.notify_one();
    within("the logout", logout)
        .await
        .expect("the request task")
        .assert_ok("bye", "logout");
    app.get("/peek", Some(&cookie))
        .await
        .assert_ok("", "the session the login moved to, after the logout");
}

// ---------------------------------------------------------------------------
// 5. Duplicate session cookies

fn header_of(cookies: &[(&str, &str)]) -> Vec<u8> {
    cookies
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
        .into_bytes()
}

/// A cookie tossed in from a sibling subdomain (or a plain-HTTP page) is
/// sent before the real one: the real session must still be found, signed
/// or not, and in the cookie store (which opens cookies, not ids) too.
#[actix_web::test]
async fn a_planted_cookie_sent_first_does_not_hide_the_real_session() {
    for sessions in ["memory", "memory, signed", "cookie store"] {
        let app = start(match sessions {
            "memory" => SessionMiddleware::builder(MemoryStore::new()),
            "memory, signed" => SessionMiddleware::builder(MemoryStore::new()).signing_key(SECRET),
            _ => SessionMiddleware::builder(
                CookieStore::new(SECRET, [""; 0]).expect("a long secret"),
            ),
        })
        .await;
        let real = app
            .post("/login?user=ann", None)
            .await
            .expect_new_session("login");
        let never_issued = SessionId::generate();
        for planted in [never_issued.as_str(), "garbage", "", "\"quoted\""] {
            let req = app.request_with_cookie_header(
                "/get?key=user",
                &header_of(&[("session", planted), ("session", &real)]),
            );
            app.send(req).await.assert_ok(
                "ann",
                &format!("planted {planted:?} before the real cookie ({sessions})"),
            );
        }
        // In a Cookie header of its own, too.
        let req = app
            .request(Method::GET, "/get?key=user", None)
            .append_header((header::COOKIE, format!("session={}", never_issued.as_str())))
            .append_header((header::COOKIE, format!("session={real}")));
        app.send(req).await.assert_ok(
            "ann",
            &format!("the real cookie in a second Cookie header ({sessions})"),
        );
    }
}

/// A client sending many cookies with the session's name costs at most a
/// handful of store reads.
#[actix_web::test]
async fn many_session_cookies_cost_a_bounded_number_of_loads() {
    let store = Recorder::default();
    let app = start(SessionMiddleware::builder(store.clone())).await;
    let ids: Vec<String> = (0..50)
        .map(|_| SessionId::generate().as_str().to_owned())
        .collect();
    let pairs: Vec<(&str, &str)> = ids.iter().map(|id| ("session", id.as_str())).collect();
    let req = app.request_with_cookie_header("/peek", &header_of(&pairs));
    app.send(req).await.assert_ok("", "fifty unknown ids");
    let loads = store
        .drain()
        .iter()
        .filter(|c| matches!(c, Call::Load(_)))
        .count();
    assert_eq!(
        loads, 4,
        "the first four distinct candidates are tried, no more"
    );
}

/// A session cookie whose name carries the `__Host-` prefix works end to
/// end, with the attributes the prefix demands.
#[actix_web::test]
async fn a_host_prefixed_cookie_is_set_with_its_rules() {
    let app = start(
        SessionMiddleware::builder(MemoryStore::new())
            .cookie_name("__Host-session")
            .cookie_secure(true),
    )
    .await
    .named("__Host-session");
    let reply = app.get("/set?key=a&value=1", None).await;
    let cookie = reply.session_cookie().expect("a session cookie");
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.domain(), None);
    let value = cookie.value().to_owned();
    app.get("/get?key=a", Some(&value))
        .await
        .assert_ok("1", "read back");
    let err = SessionMiddleware::builder(MemoryStore::new())
        .cookie_name("__Host-session")
        .cookie_secure(true)
        .cookie_domain("example.com")
        .build()
        .unwrap_err();
    assert_eq!(err.key(), "SESSION_COOKIE_DOMAIN");
}

// ---------------------------------------------------------------------------
// 7. Responses that set the cookie are not cacheable by shared caches

/// A response that sets or removes the cookie is `private`; one whose
/// handler read the session says `Vary: Cookie`, even without a cookie; one
/// whose handler never asked for the session is left as it was.
#[actix_web::test]
async fn responses_that_set_or_remove_the_cookie_are_private() {
    let app = start(SessionMiddleware::builder(MemoryStore::new())).await;
    let cc = |reply: &session_tests::Reply| {
        reply
            .headers
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    // Shared caches key on the headers Vary names: a response built from
    // the session must name the cookie, or one user's page goes to another.
    let varies_on_cookie = |reply: &session_tests::Reply| {
        reply
            .headers
            .get_all(header::VARY)
            .flat_map(|v| v.to_str().unwrap().split(','))
            .any(|name| name.trim().eq_ignore_ascii_case("cookie"))
    };
    let set = app.get("/set?key=a&value=1", None).await;
    let cookie = set.expect_new_session("set");
    assert_eq!(cc(&set).as_deref(), Some("private"), "a new session");
    assert!(varies_on_cookie(&set), "a new session: Vary: Cookie");
    let read = app.get("/get?key=a", Some(&cookie)).await;
    read.assert_ok("1", "a read");
    read.assert_no_cookie("a read");
    assert_eq!(cc(&read), None, "a response without a cookie is left alone");
    assert!(
        varies_on_cookie(&read),
        "a read sets no cookie but depends on it: Vary: Cookie, got {:?}",
        read.headers.get_all(header::VARY).collect::<Vec<_>>()
    );
    let untouched = app.get("/noop", Some(&cookie)).await;
    untouched.assert_ok("noop", "a handler that never asks for the session");
    untouched.assert_no_cookie("a handler that never asks for the session");
    assert!(
        !varies_on_cookie(&untouched) && cc(&untouched).is_none(),
        "a response that does not depend on the session stays cacheable: {:?}",
        untouched.headers
    );
    for (given, expected) in [
        ("public, max-age=60", "private, max-age=60"),
        ("max-age=60, s-maxage=600", "private, max-age=60"),
        ("no-store", "no-store"),
        ("private, max-age=5", "private, max-age=5"),
    ] {
        let reply = app
            .get(
                &format!("/set_cc?key=b&value=2&cc={}", given.replace(' ', "%20")),
                None,
            )
            .await;
        reply.expect_new_session("set with a Cache-Control");
        assert_eq!(cc(&reply).as_deref(), Some(expected), "given {given:?}");
    }
    let out = app.post("/logout", Some(&cookie)).await;
    assert!(out.removes_session());
    assert_eq!(cc(&out).as_deref(), Some("private"), "a removal");
    assert!(varies_on_cookie(&out), "a removal: Vary: Cookie");
}

// ---------------------------------------------------------------------------
// Nothing saved on a 5xx response

#[actix_web::test]
async fn a_failed_request_saves_nothing_unless_asked() {
    let store = Recorder::default();
    let app = start(SessionMiddleware::builder(store.clone())).await;
    let failed = app.get("/set_then_fail?key=a&value=1", None).await;
    failed.assert_status(StatusCode::INTERNAL_SERVER_ERROR, "the handler's 500");
    failed.assert_no_cookie("a failed request's new session");
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    store.drain();
    app.get("/set_then_fail?key=a&value=2", Some(&cookie))
        .await
        .assert_no_cookie("a failed change");
    assert_eq!(store.drain_kinds(), ["load"], "no write for a 500");
    app.get("/get?key=a", Some(&cookie))
        .await
        .assert_ok("1", "the change of a failed request is not saved");

    // A logout is carried out even when the response is an error; the
    // session the failed handler started after it is not.
    let out = app.post("/purge_then_fail", Some(&cookie)).await;
    out.assert_status(StatusCode::INTERNAL_SERVER_ERROR, "logout then 500");
    assert!(
        out.removes_session(),
        "the cookie is removed, and no new session is sent"
    );
    app.get("/peek", Some(&cookie))
        .await
        .assert_ok("", "the session is gone");

    let app = start(SessionMiddleware::builder(MemoryStore::new()).save_on_error(true)).await;
    let cookie = app
        .get("/set_then_fail?key=a&value=1", None)
        .await
        .expect_new_session("SESSION_SAVE_ON_ERROR=true");
    app.get("/get?key=a", Some(&cookie))
        .await
        .assert_ok("1", "saved on error when asked");
}

// ---------------------------------------------------------------------------
// Absolute lifetime

/// A session refreshed on every request still ends its absolute lifetime
/// after creation.
#[actix_web::test]
async fn the_absolute_lifetime_ends_a_session_however_often_it_is_used() {
    let app = start(
        SessionMiddleware::builder(MemoryStore::new())
            .lifetime(Duration::from_secs(3600))
            .absolute_lifetime(Duration::from_millis(1500)),
    )
    .await;
    let cookie = app
        .get("/visits", None)
        .await
        .expect_new_session("first visit");
    let created = std::time::Instant::now();
    let mut seen = 1;
    // Used every 100 ms: the idle lifetime (an hour) never runs out.
    while created.elapsed() < Duration::from_millis(1300) {
        let reply = app.get("/visits", Some(&cookie)).await;
        seen += 1;
        reply.assert_ok(&seen.to_string(), "within the absolute lifetime");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while created.elapsed() < Duration::from_millis(1600) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = app.get("/visits", Some(&cookie)).await;
    reply.assert_ok("1", "past the absolute lifetime: a fresh session");
    assert_ne!(
        reply.new_session().as_deref(),
        Some(cookie.as_str()),
        "a new id"
    );
}

/// A login whose session reaches its absolute lifetime while the request
/// runs ends the session: it does not move the old data to a fresh session
/// with a new creation time.
#[actix_web::test]
async fn a_login_past_the_absolute_lifetime_does_not_revive_the_session() {
    let app = start(
        SessionMiddleware::builder(MemoryStore::new())
            .absolute_lifetime(Duration::from_millis(1500)),
    )
    .await;
    let cookie = app
        .get("/set?key=cart&value=3", None)
        .await
        .expect_new_session("set");
    let created = std::time::Instant::now();
    let login = app.spawn(app.request(Method::GET, "/hold_login?user=eve", Some(&cookie)));
    within("the login to load", app.hooks().loaded.notified()).await;
    // The absolute lifetime runs out while the login is held.
    tokio::time::sleep(Duration::from_millis(1600).saturating_sub(created.elapsed())).await;
    app.hooks().release.notify_one();
    let login = within("the login", login).await.expect("the request task");
    assert!(
        login.removes_session(),
        "a login past the absolute lifetime kept a session: {:?}",
        login.raw_set_cookies()
    );
    app.get("/peek", Some(&cookie))
        .await
        .assert_ok("", "the old cookie after its absolute lifetime");
}

/// The cookie's Max-Age is cut to what the absolute lifetime leaves.
#[actix_web::test]
async fn the_cookie_never_outlives_the_absolute_lifetime() {
    let app = start(
        SessionMiddleware::builder(MemoryStore::new()).absolute_lifetime(Duration::from_secs(3600)),
    )
    .await;
    let reply = app.get("/set?key=a&value=1", None).await;
    let max_age = reply
        .session_cookie()
        .and_then(|c| c.max_age())
        .expect("a permanent cookie has a Max-Age");
    assert!(
        max_age.whole_seconds() <= 3600 && max_age.whole_seconds() > 3590,
        "Max-Age {max_age} with a one-hour absolute lifetime (the idle one is 31 days)"
    );
}

/// A login keeps the session's creation time: logging in again does not
/// buy a new absolute lifetime.
#[actix_web::test]
async fn a_login_keeps_the_creation_time() {
    let store = Recorder::default();
    let app = start(
        SessionMiddleware::builder(store.clone()).absolute_lifetime(Duration::from_secs(3600)),
    )
    .await;
    let cookie = app
        .get("/set?key=a&value=1", None)
        .await
        .expect_new_session("set");
    let created = match store.drain().as_slice() {
        [Call::Create(_, record)] => record.created_at.expect("a creation time"),
        other => panic!("expected one create, got {other:?}"),
    };
    app.post("/login?user=ann", Some(&cookie))
        .await
        .expect_new_session("login");
    let moved: Vec<SystemTime> = store
        .drain()
        .into_iter()
        .filter_map(|call| match call {
            Call::Create(key, record) if !key.ends_with(":moved") => record.created_at,
            _ => None,
        })
        .collect();
    assert_eq!(moved, [created], "the new session keeps the creation time");
}

/// With an absolute lifetime on, a session that does not know when it was
/// created (written before creation times were kept) ends.
#[actix_web::test]
async fn a_session_without_a_creation_time_ends_under_an_absolute_lifetime() {
    let store = MemoryStore::new();
    let id = SessionId::generate();
    let key = StoreKey::new("session:", &id, true);
    let legacy = Record::from(
        [(
            "user".to_owned(),
            session_core::bytes::Bytes::from_static(b"\"ann\""),
        )]
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>(),
    );
    assert!(
        store
            .create(&key, &legacy, Duration::from_secs(600))
            .await
            .unwrap()
    );
    let store = Arc::new(store);
    let app = start(
        SessionMiddleware::builder(Arc::clone(&store)).absolute_lifetime(Duration::from_secs(3600)),
    )
    .await;
    let reply = app.get("/peek", Some(id.as_str())).await;
    reply.assert_ok("", "a legacy session under an absolute lifetime");
    assert!(reply.removes_session(), "its cookie is removed");
    assert_eq!(store.load(&key).await.unwrap(), None, "and it is deleted");
}

// ---------------------------------------------------------------------------
// 4. The size limit holds for the merged session

/// Concurrent requests, each within the limit on its own, cannot together
/// store more than the limit: the one that would pass it fails, and
/// nothing of it is kept.
#[actix_web::test]
async fn concurrent_writes_cannot_pass_the_size_limit_together() {
    let store = Arc::new(MemoryStore::new());
    // The seed takes 15 bytes and each value 91: room for one value only.
    let limit = 150;
    let app = start(SessionMiddleware::builder(Arc::clone(&store)).max_size(limit)).await;
    let cookie = app
        .get("/set?key=seed&value=0", None)
        .await
        .expect_new_session("set");
    let value = "x".repeat(80);
    let a = app.spawn(app.request(
        Method::GET,
        &format!("/set_wait?key=a&value={value}"),
        Some(&cookie),
    ));
    let b = app.spawn(app.request(
        Method::GET,
        &format!("/set_wait?key=b&value={value}"),
        Some(&cookie),
    ));
    let a = within("a", a).await.expect("task");
    let b = within("b", b).await.expect("task");
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::INTERNAL_SERVER_ERROR],
        "one write fits, the other would pass the limit"
    );
    let stored = store
        .load(&StoreKey::new(
            "session:",
            &SessionId::parse(&cookie).unwrap(),
            true,
        ))
        .await
        .unwrap()
        .expect("the session");
    assert!(stored.size() <= limit, "stored {} bytes", stored.size());
    assert_eq!(stored.entries.len(), 2, "the seed and one of the two");
}

// ---------------------------------------------------------------------------
// 2. A flood of new sessions cannot push out sessions in use

/// Cookieless requests that each create a session, ten times the memory
/// store's cap: the store stays within its cap, and a logged-in user and a
/// returning visitor keep their sessions.
#[actix_web::test]
async fn a_flood_of_new_sessions_evicts_no_session_in_use() {
    const CAP: usize = 50;
    let store = Arc::new(MemoryStore::with_max_sessions(CAP));
    let app = start(SessionMiddleware::builder(Arc::clone(&store))).await;
    let user = app
        .post("/login?user=ann", None)
        .await
        .expect_new_session("login");
    let visitor = app
        .get("/visits", None)
        .await
        .expect_new_session("first visit");
    app.get("/visits", Some(&visitor))
        .await
        .assert_ok("2", "the visitor comes back");
    for i in 0..10 * CAP {
        app.get("/visits", None)
            .await
            .assert_ok("1", &format!("flood request {i}"));
        assert!(store.len() <= CAP, "{} sessions, over the cap", store.len());
    }
    app.get("/get?key=user", Some(&user))
        .await
        .assert_ok("ann", "the logged-in user after the flood");
    app.get("/visits", Some(&visitor))
        .await
        .assert_ok("3", "the returning visitor after the flood");
}
