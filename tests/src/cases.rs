//! The cases of the HTTP acceptance suite: each drives the app of
//! [`crate::app`] through the middleware on one backend and checks
//! behaviour users rely on. Run them with [`http_suite!`](crate::http_suite).

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite as CookieSameSite, time};
use actix_web::http::{Method, StatusCode};
use actix_web::rt::task::JoinHandle;
use session_actix::{SameSite, SessionMiddlewareBuilder};
use session_core::SessionId;

use crate::{Backend, Caps, Hooks, Reply, TestApp, Typed, within};

type Builder = SessionMiddlewareBuilder;

fn defaults(b: Builder) -> Builder {
    b
}

/// Custom cookie attributes, all different from the defaults.
fn custom_attributes(b: Builder) -> Builder {
    b.cookie_name("sid")
        .cookie_domain("example.test")
        .cookie_path("/app")
        .cookie_secure(true)
        .cookie_same_site(SameSite::Strict)
        .cookie_http_only(false)
}

/// Checks that `removal` deletes the cookie `set` created: same name, Path,
/// Domain, Secure and SameSite, empty and already expired.
#[track_caller]
fn assert_removes(removal: Option<Cookie<'static>>, set: &Cookie<'_>, what: &str) {
    let removal = removal.unwrap_or_else(|| panic!("{what}: the cookie is not removed"));
    assert!(
        crate::app::is_removal(&removal),
        "{what}: not a removal: {removal}"
    );
    assert_eq!(
        removal.max_age(),
        Some(time::Duration::ZERO),
        "{what}: {removal}"
    );
    assert_eq!(removal.value(), "", "{what}: {removal}");
    assert_eq!(removal.name(), set.name(), "{what}: name");
    assert_eq!(
        removal.path(),
        set.path(),
        "{what}: Path of {removal} vs {set}"
    );
    assert_eq!(
        removal.domain(),
        set.domain(),
        "{what}: Domain of {removal} vs {set}"
    );
    assert_eq!(
        removal.secure().unwrap_or(false),
        set.secure().unwrap_or(false),
        "{what}: Secure of {removal} vs {set}"
    );
    assert_eq!(
        removal.same_site(),
        set.same_site(),
        "{what}: SameSite of {removal} vs {set}"
    );
}

/// A request that does not touch the session, or only reads a session that
/// does not exist, sends no cookie; so does a read of an existing session
/// whose refresh is not due.
pub async fn untouched_sessions_send_no_cookie(backend: Backend, _: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    app.get("/noop", None)
        .await
        .assert_ok("noop", "a route without the session")
        .assert_no_cookie("a route without the session");
    app.get("/peek", None)
        .await
        .assert_ok("", "reading an empty session")
        .assert_no_cookie("reading an empty session");
    app.get("/get?key=name", None)
        .await
        .assert_status(StatusCode::NOT_FOUND, "reading a missing key")
        .assert_no_cookie("reading a missing key");

    let cookie = app
        .get("/set?key=name&value=nick", None)
        .await
        .expect_new_session("the first write");
    app.get("/get?key=name", Some(&cookie))
        .await
        .assert_ok("nick", "reading an existing session")
        .assert_no_cookie("reading an existing session just created");
    app.get("/noop", Some(&cookie))
        .await
        .assert_ok("noop", "a route without the session, with a cookie")
        .assert_no_cookie("a route without the session, with a cookie");
}

/// A value set in one request is read back in the next through the
/// cookie; a later write adds to the same session.
pub async fn set_then_get_round_trips(backend: Backend, _: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let first = app.get("/set?key=name&value=nick", None).await;
    first.assert_ok("ok", "set");
    let cookie = first.expect_new_session("set");
    app.get("/get?key=name", Some(&cookie))
        .await
        .assert_ok("nick", "get with the cookie");
    app.get("/get?key=name", None)
        .await
        .assert_status(StatusCode::NOT_FOUND, "get without the cookie");

    let second = app.get("/set?key=city&value=paris", Some(&cookie)).await;
    second.assert_ok("ok", "a second set");
    let cookie = second
        .follow(Some(&cookie))
        .expect("the session cookie stays");
    app.get("/get?key=name", Some(&cookie))
        .await
        .assert_ok("nick", "the first key after a second set");
    app.get("/get?key=city", Some(&cookie))
        .await
        .assert_ok("paris", "the second key");
    app.get("/peek", Some(&cookie))
        .await
        .assert_ok("city,name", "the keys");
    let third = app.get("/set?key=name&value=bob", Some(&cookie)).await;
    third.assert_ok("ok", "overwrite");
    let cookie = third
        .follow(Some(&cookie))
        .expect("the session cookie stays");
    app.get("/get?key=name", Some(&cookie))
        .await
        .assert_ok("bob", "an overwritten key");
}

/// Strings, integers (including u64::MAX), floats, booleans, vectors, maps,
/// nested structs and `None` all round-trip with their types.
pub async fn typed_values_round_trip(backend: Backend, _: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let cookie = app
        .get("/typed/set", None)
        .await
        .assert_ok("ok", "typed set")
        .expect_new_session("typed set");
    let reply = app.get("/typed/get", Some(&cookie)).await;
    reply.assert_status(StatusCode::OK, "typed get");
    let got: Typed = serde_json::from_str(&reply.body).expect("typed get returns JSON");
    assert_eq!(got, Typed::sample());
}

/// The quickstart's visit counter counts per session.
pub async fn visits_count_per_session(backend: Backend, _: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let first = app.get("/visits", None).await;
    first.assert_ok("1", "first visit");
    let mut cookie = first.follow(None);
    for n in 2..=4 {
        let reply = app.get("/visits", cookie.as_deref()).await;
        reply.assert_ok(&n.to_string(), "a later visit");
        cookie = reply.follow(cookie.as_deref());
    }
    app.get("/visits", None)
        .await
        .assert_ok("1", "another browser's first visit");
}

/// By default the cookie is `session`, HttpOnly, SameSite=Lax, Path=/, not
/// Secure, with no Domain, and permanent: Max-Age and Expires of 31 days.
pub async fn default_cookie_attributes(backend: Backend, _: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let reply = app.get("/set?key=name&value=nick", None).await;
    let c = reply.session_cookie().expect("a session cookie");
    assert_eq!(c.name(), "session");
    assert_eq!(c.http_only(), Some(true), "HttpOnly: {c}");
    assert_eq!(c.same_site(), Some(CookieSameSite::Lax), "SameSite: {c}");
    assert_eq!(c.path(), Some("/"), "Path: {c}");
    assert_eq!(c.domain(), None, "Domain: {c}");
    assert_ne!(c.secure(), Some(true), "Secure: {c}");
    let lifetime = time::Duration::days(31);
    assert_eq!(c.max_age(), Some(lifetime), "Max-Age: {c}");
    let expires = c
        .expires_datetime()
        .unwrap_or_else(|| panic!("a permanent cookie has Expires: {c}"));
    let now = time::OffsetDateTime::now_utc();
    assert!(
        expires > now + lifetime - time::Duration::hours(1)
            && expires < now + lifetime + time::Duration::hours(1),
        "Expires is about 31 days away: {c}"
    );
}

/// `.permanent(false)` gives a browser-session cookie: no Max-Age, no
/// Expires; the session still works.
pub async fn browser_session_cookie_has_no_expiry(backend: Backend, _: Caps) {
    let app = backend.start(|b| b.permanent(false), Hooks::new(1)).await;
    let reply = app.get("/set?key=name&value=nick", None).await;
    let c = reply.session_cookie().expect("a session cookie");
    assert_eq!(c.max_age(), None, "Max-Age: {c}");
    assert_eq!(c.expires(), None, "Expires: {c}");
    assert_eq!(c.http_only(), Some(true), "HttpOnly: {c}");
    app.get("/get?key=name", Some(c.value()))
        .await
        .assert_ok("nick", "a browser-session cookie loads its session");
}

/// A custom cookie name, Domain, Path, Secure, SameSite and HttpOnly are
/// all honoured, and the session is read from the custom name only.
pub async fn custom_cookie_attributes_are_honoured(backend: Backend, _: Caps) {
    let app = backend
        .start(custom_attributes, Hooks::new(1))
        .await
        .named("sid");
    let reply = app.get("/set?key=name&value=nick", None).await;
    assert!(
        reply.set_cookies().iter().all(|c| c.name() == "sid"),
        "only the custom name is set: {:?}",
        reply.raw_set_cookies()
    );
    let c = reply.session_cookie().expect("a cookie named sid");
    assert_eq!(c.domain(), Some("example.test"), "Domain: {c}");
    assert_eq!(c.path(), Some("/app"), "Path: {c}");
    assert_eq!(c.secure(), Some(true), "Secure: {c}");
    assert_eq!(c.same_site(), Some(CookieSameSite::Strict), "SameSite: {c}");
    assert_ne!(c.http_only(), Some(true), "HttpOnly off: {c}");
    assert!(c.max_age().is_some(), "still permanent: {c}");

    app.get("/get?key=name", Some(c.value()))
        .await
        .assert_ok("nick", "read through the custom name");
    let under_default_name = actix_web::test::TestRequest::get()
        .uri("/get?key=name")
        .cookie(Cookie::new("session", c.value().to_owned()));
    app.send(under_default_name)
        .await
        .assert_status(StatusCode::NOT_FOUND, "the default name is not read");
}

/// Removing a key keeps the session while others remain; removing the last
/// one deletes the session and removes the cookie with the attributes it
/// was set with.
pub async fn removing_the_last_key_removes_the_cookie(backend: Backend, caps: Caps) {
    let app = backend
        .start(custom_attributes, Hooks::new(1))
        .await
        .named("sid");
    let created = app.get("/set?key=a&value=1", None).await;
    let set = created.session_cookie().expect("a session cookie");
    let mut cookie = Some(set.value().to_owned());
    let reply = app.get("/set?key=b&value=2", cookie.as_deref()).await;
    cookie = reply.follow(cookie.as_deref());

    let reply = app.get("/remove?key=a", cookie.as_deref()).await;
    reply.assert_ok("removed", "removing one of two keys");
    assert!(
        !reply.removes_session(),
        "removing one of two keys must keep the cookie: {:?}",
        reply.raw_set_cookies()
    );
    cookie = reply.follow(cookie.as_deref());
    app.get("/get?key=b", cookie.as_deref())
        .await
        .assert_ok("2", "the other key");
    app.get("/get?key=a", cookie.as_deref())
        .await
        .assert_status(StatusCode::NOT_FOUND, "the removed key");

    let reply = app.get("/remove?key=b", cookie.as_deref()).await;
    reply.assert_ok("removed", "removing the last key");
    assert_removes(reply.session_cookie(), &set, "removing the last key");

    if caps.revokes_cookies {
        app.get("/peek", cookie.as_deref())
            .await
            .assert_ok("", "the old cookie after the last key was removed")
            .assert_no_cookie("the old cookie of a deleted session");
    }
}

/// `clear` deletes the session and removes the cookie (default attributes).
pub async fn clear_removes_the_session_and_the_cookie(backend: Backend, caps: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let created = app.get("/set?key=a&value=1", None).await;
    let set = created.session_cookie().expect("a session cookie");
    let reply = app.get("/set?key=b&value=2", Some(set.value())).await;
    let cookie = reply.follow(Some(set.value())).expect("a session");
    let reply = app.get("/clear", Some(&cookie)).await;
    reply.assert_ok("cleared", "clear");
    assert_removes(reply.session_cookie(), &set, "clear");
    if caps.revokes_cookies {
        app.get("/peek", Some(&cookie))
            .await
            .assert_ok("", "the old cookie after clear")
            .assert_no_cookie("the old cookie after clear");
        app.get("/get?key=a", Some(&cookie))
            .await
            .assert_status(StatusCode::NOT_FOUND, "a cleared key");
    }
}

/// `renew` (login) sends a new cookie that loads the data; with a
/// server-side store the id changes and the old cookie loads nothing.
pub async fn renew_moves_the_data_to_a_new_cookie(backend: Backend, caps: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let before = app
        .get("/set?key=cart&value=3", None)
        .await
        .expect_new_session("set before login");
    let reply = app.post("/login?user=nick", Some(&before)).await;
    reply.assert_ok("welcome nick", "login");
    let after = reply.expect_new_session("login");
    app.get("/get?key=cart", Some(&after))
        .await
        .assert_ok("3", "data set before the login, after it");
    app.get("/get?key=user", Some(&after))
        .await
        .assert_ok("nick", "the user after login");

    if caps.revokes_cookies {
        assert_ne!(after, before, "login must change the session id");
        app.get("/get?key=user", Some(&before))
            .await
            .assert_status(StatusCode::NOT_FOUND, "the pre-login cookie after login");
        app.get("/peek", Some(&before))
            .await
            .assert_ok("", "the pre-login cookie loads nothing after login")
            .assert_no_cookie("the pre-login cookie after login");
    }

    let fresh = app.post("/login?user=eve", None).await;
    let fresh = fresh.expect_new_session("login without a session");
    app.get("/peek", Some(&fresh))
        .await
        .assert_ok("user", "a login without a prior session");
}

/// `purge` (logout) removes the cookie with the attributes it was set
/// with; with a server-side store the old cookie then loads nothing.
pub async fn purge_removes_the_cookie(backend: Backend, caps: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let login = app.post("/login?user=nick", None).await;
    let set = login.session_cookie().expect("login sets a cookie");
    let reply = app.get("/set?key=cart&value=3", Some(set.value())).await;
    let cookie = reply.follow(Some(set.value())).expect("a session");

    let reply = app.post("/logout", Some(&cookie)).await;
    reply.assert_ok("bye", "logout");
    assert_removes(reply.session_cookie(), &set, "logout");

    if caps.revokes_cookies {
        app.get("/get?key=user", Some(&cookie))
            .await
            .assert_status(StatusCode::NOT_FOUND, "the user after logout")
            .assert_no_cookie("the old cookie after logout");
        app.get("/peek", Some(&cookie))
            .await
            .assert_ok("", "the old cookie after logout");
    }
    app.post("/logout", None)
        .await
        .assert_ok("bye", "logout without a session")
        .assert_no_cookie("logout without a session");
}

enum Bad {
    Value(String),
    Header(Vec<u8>),
}

/// Forged, garbled, oversized, wrongly signed and non-UTF-8 cookies are a
/// fresh, empty session: status 200, nothing of another session, and a
/// write gets a new cookie (the client's value is never adopted).
pub async fn bad_cookies_are_fresh_sessions(backend: Backend, _: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let good = app
        .get("/set?key=secret&value=42", None)
        .await
        .expect_new_session("the real session");
    let flip = |s: &str, at: usize| {
        let mut chars: Vec<char> = s.chars().collect();
        chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    let mut bad: Vec<(String, Bad)> = [
        "",
        "garbage",
        "a.b.c",
        ".....",
        "\"quoted\"",
        "../../etc/passwd",
        "%2e%2e%2fsession",
        "%00",
    ]
    .into_iter()
    .map(|v| (format!("{v:?}"), Bad::Value(v.to_owned())))
    .collect();
    bad.extend([
        ("10 KB".to_owned(), Bad::Value("A".repeat(10 * 1024))),
        (
            "a well-formed unknown id".to_owned(),
            Bad::Value(SessionId::generate().as_str().to_owned()),
        ),
        (
            "an unknown id with a made-up tag".to_owned(),
            Bad::Value(format!(
                "{}.{}",
                SessionId::generate().as_str(),
                "A".repeat(43)
            )),
        ),
        (
            "the real cookie, first char changed".to_owned(),
            Bad::Value(flip(&good, 0)),
        ),
        (
            "the real cookie, last char changed".to_owned(),
            Bad::Value(flip(&good, good.len() - 1)),
        ),
        (
            "the real cookie, truncated".to_owned(),
            Bad::Value(good[..good.len() - 1].to_owned()),
        ),
        (
            "the real cookie, extended".to_owned(),
            Bad::Value(format!("{good}A")),
        ),
        (
            "the real cookie with a second tag".to_owned(),
            Bad::Value(format!("{good}.{}", "A".repeat(43))),
        ),
        (
            "non-UTF-8 bytes".to_owned(),
            Bad::Header(b"session=\xff\xfe\x80abc".to_vec()),
        ),
        (
            "non-UTF-8 bytes in a signed-looking value".to_owned(),
            Bad::Header([b"session=".as_slice(), &[0xc3; 43], b".", &[0xa9; 43]].concat()),
        ),
        (
            "an empty value".to_owned(),
            Bad::Header(b"session=".to_vec()),
        ),
        (
            "a name without a value".to_owned(),
            Bad::Header(b"session".to_vec()),
        ),
    ]);

    for (label, bad) in &bad {
        let request = |uri: &str| match bad {
            Bad::Value(v) => app.request(Method::GET, uri, Some(v)),
            Bad::Header(h) => app.request_with_cookie_header(uri, h),
        };
        let what = format!("cookie {label}");
        app.send(request("/peek"))
            .await
            .assert_ok("", &what)
            .assert_no_cookie(&what);
        app.send(request("/get?key=secret"))
            .await
            .assert_status(StatusCode::NOT_FOUND, &what);
        let reply = app.send(request("/set?key=k&value=v")).await;
        reply.assert_ok("ok", &format!("a write with {what}"));
        let fresh = reply.expect_new_session(&format!("a write with {what}"));
        if let Bad::Value(v) = bad {
            assert_ne!(&fresh, v, "{what}: the client's value was adopted");
        }
        app.get("/peek", Some(&fresh))
            .await
            .assert_ok("k", &format!("the session started with {what}"));
    }
    app.get("/get?key=secret", Some(&good))
        .await
        .assert_ok("42", "the real session is untouched");
}

/// Other cookies the browser sends, even malformed ones (set by another
/// app on the same domain, or by JavaScript), do not hide the session
/// cookie.
pub async fn foreign_malformed_cookies_do_not_hide_the_session(backend: Backend, _: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let good = app
        .get("/set?key=name&value=nick", None)
        .await
        .expect_new_session("set");
    for header in [
        format!("theme=dark; session={good}; lang=en"),
        format!("tracking=%FF; session={good}"),
        format!("session={good}; tracking=%E9t%E9"),
        format!("orphan; session={good}"),
        format!("=nameless; session={good}"),
    ] {
        app.send(app.request_with_cookie_header("/get?key=name", header.as_bytes()))
            .await
            .assert_ok("nick", &format!("Cookie: {header}"));
    }
}

/// With a one-second lifetime, a session is gone after two seconds, in the
/// store (the test sends the old cookie regardless of its Max-Age); a write
/// with the old cookie starts a new session.
pub async fn sessions_expire_on_the_server(backend: Backend, _: Caps) {
    let app = backend
        .start(|b| b.lifetime(Duration::from_secs(1)), Hooks::new(1))
        .await;
    let cookie = app
        .get("/set?key=name&value=nick", None)
        .await
        .expect_new_session("set");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    app.get("/get?key=name", Some(&cookie))
        .await
        .assert_status(StatusCode::NOT_FOUND, "an expired session")
        .assert_no_cookie("reading an expired session");
    app.get("/peek", Some(&cookie))
        .await
        .assert_ok("", "an expired session is empty");
    let reply = app.get("/set?key=other&value=1", Some(&cookie)).await;
    let fresh = reply.expect_new_session("a write after expiry");
    assert_ne!(fresh, cookie, "an expired session's cookie is not reused");
    app.get("/peek", Some(&fresh))
        .await
        .assert_ok("other", "the new session holds only the new key");
}

/// Reading a session extends its lifetime (refresh each request): read
/// before it expires, it lives a whole lifetime from that read.
pub async fn reads_extend_the_lifetime(backend: Backend, _: Caps) {
    let app = backend
        .start(|b| b.lifetime(Duration::from_secs(5)), Hooks::new(1))
        .await;
    let mut cookie = Some(
        app.get("/set?key=name&value=nick", None)
            .await
            .expect_new_session("set"),
    );
    // 3 s into a 5 s lifetime: due for a refresh.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reply = app.get("/get?key=name", cookie.as_deref()).await;
    reply.assert_ok("nick", "a read 3 s into a 5 s lifetime");
    cookie = reply.follow(cookie.as_deref());
    // 6 s after creation: alive only if the read extended the lifetime.
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.get("/get?key=name", cookie.as_deref())
        .await
        .assert_ok("nick", "6 s after creation, 3 s after a read");
}

/// Ten concurrent requests of one session, all loaded before any writes,
/// each set a different key: every key persists.
pub async fn concurrent_writes_to_different_keys_all_persist(backend: Backend, _: Caps) {
    const N: usize = 10;
    let app = backend.start(defaults, Hooks::new(N)).await;
    let cookie = app
        .get("/set?key=base&value=0", None)
        .await
        .expect_new_session("set");
    let handles: Vec<_> = (0..N)
        .map(|i| {
            app.spawn(app.request(
                Method::GET,
                &format!("/set_wait?key=k{i}&value={i}"),
                Some(&cookie),
            ))
        })
        .collect();
    let mut current = Some(cookie.clone());
    for handle in handles {
        let reply = within("a concurrent write", handle)
            .await
            .expect("the request task");
        reply.assert_ok("ok", "a concurrent write");
        current = reply.follow(current.as_deref());
    }
    assert_eq!(
        current.as_deref(),
        Some(cookie.as_str()),
        "the session id stays"
    );
    let mut expected: Vec<String> = (0..N).map(|i| format!("k{i}")).collect();
    expected.push("base".to_owned());
    expected.sort();
    app.get("/peek", Some(&cookie))
        .await
        .assert_ok(&expected.join(","), "every concurrent write persists");
}

/// Which of two racing saves lands first.
#[derive(Clone, Copy, PartialEq)]
enum First {
    Write,
    Removal,
}

/// A session holding only `flash`; then one request removes `flash` while
/// another sets `cart`. Both load the session before either changes it;
/// the test then lets `first` save and answer before the other changes
/// anything. Returns the session's cookie as created, the removal's reply
/// and the write's.
async fn removal_racing_a_write(app: &TestApp, first: First) -> (Cookie<'static>, Reply, Reply) {
    let created = app
        .get("/set?key=flash&value=hi", None)
        .await
        .session_cookie()
        .expect("the first write sets a cookie");
    let cookie = Some(created.value());
    let removal = app.spawn(app.request(Method::GET, "/gated?gate=0&key=flash", cookie));
    let write = app.spawn(app.request(Method::GET, "/gated?gate=1&key=cart&value=3", cookie));
    let gates = &app.hooks().gates;
    within("the removal to load", gates[0].loaded.notified()).await;
    within("the write to load", gates[1].loaded.notified()).await;
    // A reply comes after its save: releasing one request and waiting for
    // its reply orders the two saves.
    let finish = async |gate: usize, handle: JoinHandle<Reply>| {
        gates[gate].release.notify_one();
        within("a racing request", handle)
            .await
            .expect("the request task")
    };
    let (removal, write) = match first {
        First::Removal => {
            let removal = finish(0, removal).await;
            (removal, finish(1, write).await)
        }
        First::Write => {
            let write = finish(1, write).await;
            (finish(0, removal).await, write)
        }
    };
    removal.assert_ok("true", "the removal of `flash`");
    write.assert_ok("ok", "the write of `cart`");
    (created, removal, write)
}

/// A request removes the session's last key while another, which loaded
/// the session at the same moment, adds a key and saves first: the added
/// key survives, so the removal does not end the session, and neither
/// reply touches the browser's cookie (no lost updates between keys).
pub async fn concurrent_removal_of_the_last_key_after_a_write_keeps_it(backend: Backend, _: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let (created, removal, write) = removal_racing_a_write(&app, First::Write).await;
    write.assert_no_cookie("a write to a live session");
    removal.assert_no_cookie("a removal that left `cart`, written first, in the session");
    let cookie = Some(created.value());
    app.get("/peek", cookie)
        .await
        .assert_ok("cart", "the session after both saves");
    app.get("/get?key=cart", cookie)
        .await
        .assert_ok("3", "the key written before the removal");
}

/// A request removes the session's last key while another, which loaded
/// the session at the same moment, adds a key and saves second: the
/// removal ends the session (deleted, cookie removed) and the late write
/// finds it gone, like a write racing a logout: it saves nothing and
/// sends no cookie.
pub async fn concurrent_removal_of_the_last_key_before_a_write_ends_the_session(
    backend: Backend,
    _: Caps,
) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let (created, removal, write) = removal_racing_a_write(&app, First::Removal).await;
    assert_removes(
        removal.session_cookie(),
        &created,
        "the removal of the last key",
    );
    write.assert_no_cookie("a write saved after the session ended");
    let cookie = Some(created.value());
    app.get("/peek", cookie)
        .await
        .assert_ok("", "the old cookie after the session ended")
        .assert_no_cookie("the old cookie after the session ended");
    app.get("/get?key=cart", cookie)
        .await
        .assert_status(StatusCode::NOT_FOUND, "the key written after the removal");
}

/// Request A has loaded the session and is still running when request B
/// logs out; A then writes a key. A's save finds the session gone: it
/// sends no cookie, and the old cookie loads nothing afterwards.
pub async fn logout_wins_over_a_write_in_flight(backend: Backend, _: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let cookie = app
        .post("/login?user=nick", None)
        .await
        .expect_new_session("login");
    let a = app.spawn(app.request(Method::GET, "/hold_set?key=cart&value=3", Some(&cookie)));
    within("request A to load", app.hooks().loaded.notified()).await;
    let b = app.post("/logout", Some(&cookie)).await;
    b.assert_ok("bye", "logout");
    assert!(b.removes_session(), "logout removes the cookie");
    app.hooks().release.notify_one();
    let a = within("request A", a).await.expect("the request task");
    a.assert_ok("ok", "the request in flight")
        .assert_no_cookie("a write in flight during the logout");
    app.get("/peek", Some(&cookie))
        .await
        .assert_ok("", "the old cookie after logout and the request in flight")
        .assert_no_cookie("the old cookie after logout");
}

/// Request A (a login: renew) has loaded the session and is still running
/// when request B logs out: the login loses. It sends no session cookie,
/// only the cookie's removal (the session it came for is over), and the
/// old cookie loads nothing.
pub async fn logout_wins_over_a_login_in_flight(backend: Backend, _: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let set = app
        .post("/login?user=nick", None)
        .await
        .session_cookie()
        .expect("login sets a cookie");
    let reply = app.get("/set?key=cart&value=3", Some(set.value())).await;
    let cookie = reply.follow(Some(set.value())).expect("a session");
    let a = app.spawn(app.request(Method::GET, "/hold_login?user=eve", Some(&cookie)));
    within("request A to load", app.hooks().loaded.notified()).await;
    let b = app.post("/logout", Some(&cookie)).await;
    assert!(b.removes_session(), "logout removes the cookie");
    app.hooks().release.notify_one();
    let a = within("request A", a).await.expect("the request task");
    a.assert_ok("welcome eve", "the login in flight");
    assert_removes(
        a.session_cookie(),
        &set,
        "a login in flight during the logout",
    );
    app.get("/peek", Some(&cookie))
        .await
        .assert_ok("", "the old cookie after logout and the login in flight")
        .assert_no_cookie("the old cookie after logout");
}

/// `set_permanent(false)` at login: a browser-session cookie, kept so
/// through later writes and another login, while a default login's cookie
/// is permanent.
pub async fn a_session_that_is_not_permanent_gets_a_browser_session_cookie(
    backend: Backend,
    _: Caps,
) {
    let app = backend.start(|b| b, Hooks::new(1)).await;
    let reply = app.post("/login?user=ann&remember=false", None).await;
    reply.assert_ok("welcome ann", "login without remember-me");
    let cookie = reply.expect_new_session("login");
    let c = reply.session_cookie().unwrap();
    assert_eq!(
        (c.max_age(), c.expires()),
        (None, None),
        "a browser-session cookie: {c}"
    );
    app.get("/settings", Some(&cookie))
        .await
        .assert_ok("false 2678400", "the choice is stored with the session");
    // Another login (renew) keeps it; so does a write.
    let reply = app.post("/login?user=bob", Some(&cookie)).await;
    let cookie = reply.follow(Some(&cookie)).expect("the login's new cookie");
    let c = reply.session_cookie().expect("a login sends its cookie");
    assert_eq!((c.max_age(), c.expires()), (None, None), "after renew: {c}");
    let reply = app.get("/set?key=k&value=v", Some(&cookie)).await;
    if let Some(c) = reply.session_cookie() {
        assert_eq!(c.max_age(), None, "a write's cookie: {c}");
    }
    app.get("/settings", Some(&cookie))
        .await
        .assert_ok("false 2678400", "still not permanent");
    // The default: permanent.
    let reply = app.post("/login?user=cy", None).await;
    let c = reply.session_cookie().expect("a login sends its cookie");
    assert_eq!(c.max_age(), Some(time::Duration::seconds(2678400)), "{c}");
}

/// `set_lifetime` at login: the cookie's Max-Age and the server's expiry
/// follow it, while a session on the default lifetime lives on.
pub async fn a_session_lifetime_sets_max_age_and_ends_it_on_the_server(backend: Backend, _: Caps) {
    let app = backend.start(|b| b, Hooks::new(1)).await;
    let reply = app.post("/login?user=ann&lifetime=1", None).await;
    let short = reply.expect_new_session("login with a 1 s lifetime");
    let c = reply.session_cookie().unwrap();
    assert_eq!(c.max_age(), Some(time::Duration::seconds(1)), "{c}");
    app.get("/settings", Some(&short))
        .await
        .assert_ok("true 1", "the lifetime is stored with the session");
    let long = app
        .post("/login?user=bob", None)
        .await
        .expect_new_session("a default login");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    app.get("/get?key=user", Some(&short))
        .await
        .assert_status(StatusCode::NOT_FOUND, "the 1 s session, 2.2 s later");
    app.get("/get?key=user", Some(&long))
        .await
        .assert_ok("bob", "the default session lives on");
}

/// Logs in as `user` with a fresh session; returns its cookie.
async fn login_as(app: &TestApp, user: &str) -> String {
    app.post(&format!("/login_as?user={user}"), None)
        .await
        .assert_ok(&format!("welcome {user}"), "login")
        .expect_new_session("a login")
}

/// `GET /sessions` with `cookie`: the user's sessions, as JSON objects.
async fn user_sessions(app: &TestApp, cookie: &str) -> Vec<serde_json::Value> {
    let reply = app.get("/sessions", Some(cookie)).await;
    reply.assert_status(StatusCode::OK, "listing the user's sessions");
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body));
    for session in &listed {
        let handle = session["handle"].as_str().expect("a handle");
        assert_eq!(handle.len(), 22, "{session}");
        assert_ne!(handle, cookie, "the handle is not the cookie");
        assert!(session["current"].is_boolean(), "{session}");
        for field in ["created_at", "last_seen"] {
            let at = session[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field}: {session}"));
            let at =
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|e| panic!("{field} is not RFC 3339: {e}: {session}"));
            let age = time::OffsetDateTime::now_utc() - at;
            assert!(
                age >= time::Duration::ZERO && age < time::Duration::minutes(5),
                "{field} {at} is not about now"
            );
        }
    }
    listed
}

/// The handle of the session marked current in a listing, and the others'.
fn split_current(listed: &[serde_json::Value]) -> (String, Vec<String>) {
    let handle = |s: &serde_json::Value| s["handle"].as_str().unwrap().to_owned();
    let current: Vec<_> = listed.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "one current session in {listed:?}");
    let others = listed
        .iter()
        .filter(|s| s["current"] == false)
        .map(handle)
        .collect();
    (handle(current[0]), others)
}

/// A logged-out cookie: it loads an empty session, and has no user.
async fn assert_logged_out(app: &TestApp, cookie: &str, what: &str) {
    app.get("/peek", Some(cookie)).await.assert_ok("", what);
    app.get("/sessions", Some(cookie))
        .await
        .assert_status(StatusCode::UNAUTHORIZED, what);
}

/// A user sees each of their sessions (theirs marked current, and no other
/// user's), ends one of them, ends all the others, then all of them; no
/// user can end another's session.
pub async fn users_list_and_end_their_sessions(backend: Backend, _: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    app.get("/sessions", None)
        .await
        .assert_status(StatusCode::UNAUTHORIZED, "a session without a user");
    let a = login_as(&app, "ann").await;
    let b = login_as(&app, "ann").await;
    let c = login_as(&app, "bob").await;

    let listed = user_sessions(&app, &a).await;
    assert_eq!(listed.len(), 2, "ann's two sessions: {listed:?}");
    let (a_handle, others) = split_current(&listed);
    let b_handle = others[0].clone();
    let (from_b, _) = split_current(&user_sessions(&app, &b).await);
    assert_eq!(
        from_b, b_handle,
        "B's own session is the current one from B"
    );
    assert_eq!(
        user_sessions(&app, &c).await.len(),
        1,
        "bob has one session"
    );

    for handle in [&b_handle, &a_handle] {
        app.post(&format!("/sessions/revoke?handle={handle}"), Some(&c))
            .await
            .assert_status(StatusCode::NOT_FOUND, "bob ending one of ann's sessions");
    }
    app.post("/sessions/revoke?handle=not-a-handle", Some(&a))
        .await
        .assert_status(StatusCode::NOT_FOUND, "a made-up handle");
    app.post(&format!("/sessions/revoke?handle={b_handle}"), Some(&a))
        .await
        .assert_ok("revoked", "ann ending B from A");
    assert_logged_out(&app, &b, "B after A ended it").await;
    let (current, others) = split_current(&user_sessions(&app, &a).await);
    assert_eq!(
        (current, others),
        (a_handle.clone(), vec![]),
        "only A is left"
    );

    let d = login_as(&app, "ann").await;
    let e = login_as(&app, "ann").await;
    app.post("/logout-others", Some(&a))
        .await
        .assert_ok("2 ended", "log out the other sessions")
        .assert_no_cookie("A stays logged in");
    assert_logged_out(&app, &d, "D after log out others").await;
    assert_logged_out(&app, &e, "E after log out others").await;
    assert_eq!(user_sessions(&app, &a).await.len(), 1);

    let everywhere = app.post("/logout-everywhere", Some(&a)).await;
    everywhere.assert_ok("1 ended", "log out everywhere");
    assert!(everywhere.removes_session(), "the caller's cookie goes too");
    assert_logged_out(&app, &a, "A after log out everywhere").await;
    assert_eq!(
        user_sessions(&app, &c).await.len(),
        1,
        "bob is still logged in"
    );
}

/// A request of a session that is in flight when another session of the
/// user ends it: it writes nothing back, sends no cookie, and the session
/// stays ended.
pub async fn ending_a_session_wins_over_its_request_in_flight(backend: Backend, _: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let a = login_as(&app, "ann").await;
    let b = login_as(&app, "ann").await;
    let (_, others) = split_current(&user_sessions(&app, &a).await);
    let held = app.spawn(app.request(Method::GET, "/hold_set?key=cart&value=3", Some(&b)));
    within("B's request to load", app.hooks().loaded.notified()).await;
    app.post(&format!("/sessions/revoke?handle={}", others[0]), Some(&a))
        .await
        .assert_ok("revoked", "ending B while its request runs");
    app.hooks().release.notify_one();
    within("B's request", held)
        .await
        .expect("the request task")
        .assert_ok("ok", "B's request in flight")
        .assert_no_cookie("B's request in flight after B was ended");
    assert_logged_out(&app, &b, "B after its request in flight").await;
    assert_eq!(user_sessions(&app, &a).await.len(), 1);
}

/// A login of one of the user's sessions that is in flight when the user
/// logs out everywhere: the login is undone (its cookie removed), and
/// neither its old nor a new session is left.
pub async fn log_out_everywhere_wins_over_a_login_in_flight(backend: Backend, _: Caps) {
    let app = backend.start(defaults, Hooks::new(1)).await;
    let a = login_as(&app, "ann").await;
    let b = login_as(&app, "ann").await;
    let held = app.spawn(app.request(Method::GET, "/hold_login?user=ann", Some(&b)));
    within("B's login to load", app.hooks().loaded.notified()).await;
    app.post("/logout-everywhere", Some(&a))
        .await
        .assert_ok("2 ended", "log out everywhere");
    app.hooks().release.notify_one();
    let login = within("B's login", held).await.expect("the request task");
    login.assert_ok("welcome ann", "the login in flight");
    assert!(
        login.removes_session(),
        "the login in flight removes its cookie: {:?}",
        login.raw_set_cookies()
    );
    assert_logged_out(&app, &a, "A after log out everywhere").await;
    assert_logged_out(&app, &b, "B's old cookie").await;
    let f = login_as(&app, "ann").await;
    assert_eq!(
        user_sessions(&app, &f).await.len(),
        1,
        "no session of the undone login is listed"
    );
}

/// With `SESSION_MAX_PER_USER`, a login past the limit ends the user's
/// least recently seen session, never the new one.
pub async fn a_login_past_the_cap_ends_the_least_recently_seen_session(backend: Backend, _: Caps) {
    let app = backend
        .start(|b| b.max_sessions_per_user(2), Hooks::new(1))
        .await;
    let mut cookies = Vec::new();
    for _ in 0..3 {
        cookies.push(login_as(&app, "ann").await);
        // Logins a few milliseconds apart: "least recently" is not a tie.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_logged_out(&app, &cookies[0], "the oldest session past the cap").await;
    for cookie in &cookies[1..] {
        app.get("/peek", Some(cookie))
            .await
            .assert_ok("user", "a session within the cap");
    }
    assert_eq!(user_sessions(&app, &cookies[2]).await.len(), 2);
}
