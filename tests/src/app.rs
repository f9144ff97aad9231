//! The app the suite drives: quickstart-like routes, hooks to hold requests
//! at chosen points, and a small client over `actix_web::test`.

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::cookie::{Cookie, time};
use actix_web::dev::Service;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpResponse, web};
use serde::{Deserialize, Serialize};
use session_actix::{Session, SessionMiddleware};
use tokio::sync::{Barrier, Notify};

/// Points at which a test can hold requests.
#[derive(Debug)]
pub struct Hooks {
    /// `/set_wait` waits here after loading the session, so that all
    /// parties load before any of them writes.
    pub barrier: Barrier,
    /// `/hold_set` and `/hold_login` notify this once the session is loaded.
    pub loaded: Notify,
    /// `/hold_set` and `/hold_login` wait for this before changing the
    /// session.
    pub release: Notify,
    /// `/gated` holds on the gate its `gate` parameter names, so that a
    /// test releases each request on its own.
    pub gates: [Gate; 2],
}

impl Hooks {
    /// Hooks whose barrier lets `parties` requests through together.
    pub fn new(parties: usize) -> Arc<Self> {
        Arc::new(Self {
            barrier: Barrier::new(parties),
            loaded: Notify::new(),
            release: Notify::new(),
            gates: Default::default(),
        })
    }
}

/// Holds one request between loading its session and changing it: the
/// change, and so the save after the handler, waits for the test.
#[derive(Debug, Default)]
pub struct Gate {
    /// Notified once the request has loaded the session.
    pub loaded: Notify,
    /// The request waits for this before changing the session.
    pub release: Notify,
}

impl Gate {
    async fn hold(&self) {
        self.loaded.notify_one();
        self.release.notified().await;
    }
}

/// A profile, stored as a nested struct by `/typed/set`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// A name.
    pub name: String,
    /// An age.
    pub age: u8,
    /// Some tags.
    pub tags: Vec<String>,
    /// An optional nickname.
    pub nick: Option<String>,
}

/// Values of several serde shapes: `/typed/set` stores each field under its
/// own key, `/typed/get` reads each back with its type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Typed {
    /// A string with quotes, non-ASCII text and a newline.
    pub text: String,
    /// A negative integer.
    pub int: i64,
    /// The largest u64 (beyond what a double holds exactly).
    pub big: u64,
    /// A float.
    pub float: f64,
    /// A boolean.
    pub flag: bool,
    /// A vector.
    pub list: Vec<u32>,
    /// A nested struct.
    pub profile: Profile,
    /// A map.
    pub map: BTreeMap<String, i32>,
    /// An option that is `None`.
    pub missing: Option<String>,
}

impl Typed {
    /// The values `/typed/set` stores.
    pub fn sample() -> Self {
        Self {
            text: "héllo \"wörld\" 😀\n".to_owned(),
            int: -42,
            big: u64::MAX,
            float: 1.5,
            flag: true,
            list: vec![1, 2, 3],
            profile: Profile {
                name: "nick".to_owned(),
                age: 42,
                tags: vec!["admin".to_owned(), "beta".to_owned()],
                nick: None,
            },
            map: [("one".to_owned(), 1), ("two".to_owned(), 2)]
                .into_iter()
                .collect(),
            missing: None,
        }
    }
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    value: String,
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

#[derive(Deserialize)]
struct User {
    user: String,
}

type Result<T> = std::result::Result<T, actix_web::Error>;

async fn noop() -> &'static str {
    "noop"
}

/// The session's keys, sorted and comma-separated.
async fn peek(session: Session) -> String {
    let mut keys = session.keys();
    keys.sort();
    keys.join(",")
}

async fn set(session: Session, q: web::Query<KeyValue>) -> Result<&'static str> {
    let KeyValue { key, value } = q.into_inner();
    session.insert(key, value)?;
    Ok("ok")
}

async fn get(session: Session, q: web::Query<Key>) -> Result<HttpResponse> {
    Ok(match session.get::<String>(&q.key)? {
        Some(value) => HttpResponse::Ok().body(value),
        None => HttpResponse::NotFound().body("no such key"),
    })
}

async fn remove(session: Session, q: web::Query<Key>) -> &'static str {
    if session.remove_key(&q.key) {
        "removed"
    } else {
        "absent"
    }
}

async fn clear(session: Session) -> &'static str {
    session.clear();
    "cleared"
}

async fn visits(session: Session) -> Result<String> {
    let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", visits)?;
    Ok(visits.to_string())
}

#[derive(Deserialize)]
struct Login {
    user: String,
    remember: Option<bool>,
    lifetime: Option<u64>,
}

async fn login(session: Session, q: web::Query<Login>) -> Result<String> {
    session.renew();
    session.insert("user", &q.user)?;
    if let Some(remember) = q.remember {
        session.set_permanent(remember);
    }
    if let Some(secs) = q.lifetime {
        session.set_lifetime(std::time::Duration::from_secs(secs));
    }
    Ok(format!("welcome {}", q.user))
}

/// The session's own settings: `permanent lifetime-in-seconds`.
async fn settings(session: Session) -> String {
    format!(
        "{} {}",
        session.is_permanent(),
        session.lifetime().as_secs()
    )
}

async fn logout(session: Session) -> &'static str {
    session.purge();
    "bye"
}

async fn typed_set(session: Session) -> Result<&'static str> {
    let t = Typed::sample();
    session.insert("text", &t.text)?;
    session.insert("int", t.int)?;
    session.insert("big", t.big)?;
    session.insert("float", t.float)?;
    session.insert("flag", t.flag)?;
    session.insert("list", &t.list)?;
    session.insert("profile", &t.profile)?;
    session.insert("map", &t.map)?;
    session.insert("missing", &t.missing)?;
    Ok("ok")
}

async fn typed_get(session: Session) -> Result<web::Json<Typed>> {
    fn need<T>(key: &str, value: Option<T>) -> Result<T> {
        value.ok_or_else(|| actix_web::error::ErrorNotFound(format!("no {key}")))
    }
    Ok(web::Json(Typed {
        text: need("text", session.get("text")?)?,
        int: need("int", session.get("int")?)?,
        big: need("big", session.get("big")?)?,
        float: need("float", session.get("float")?)?,
        flag: need("flag", session.get("flag")?)?,
        list: need("list", session.get("list")?)?,
        profile: need("profile", session.get("profile")?)?,
        map: need("map", session.get("map")?)?,
        missing: need("missing", session.get("missing")?)?,
    }))
}

async fn set_wait(
    session: Session,
    hooks: web::Data<Hooks>,
    q: web::Query<KeyValue>,
) -> Result<&'static str> {
    hooks.barrier.wait().await;
    let KeyValue { key, value } = q.into_inner();
    session.insert(key, value)?;
    Ok("ok")
}

#[derive(Deserialize)]
struct Gated {
    gate: usize,
    key: String,
    value: Option<String>,
}

/// Sets `key` to `value`, or removes `key` without a `value`, once the
/// test opens the gate.
async fn gated(session: Session, hooks: web::Data<Hooks>, q: web::Query<Gated>) -> Result<String> {
    let Gated { gate, key, value } = q.into_inner();
    let gate = hooks
        .gates
        .get(gate)
        .ok_or_else(|| actix_web::error::ErrorBadRequest("no such gate"))?;
    gate.hold().await;
    Ok(match value {
        Some(value) => {
            session.insert(key, value)?;
            "ok".to_owned()
        }
        None => session.remove_key(&key).to_string(),
    })
}

async fn hold_set(
    session: Session,
    hooks: web::Data<Hooks>,
    q: web::Query<KeyValue>,
) -> Result<&'static str> {
    hooks.loaded.notify_one();
    hooks.release.notified().await;
    let KeyValue { key, value } = q.into_inner();
    session.insert(key, value)?;
    Ok("ok")
}

async fn hold_login(
    session: Session,
    hooks: web::Data<Hooks>,
    q: web::Query<User>,
) -> Result<String> {
    hooks.loaded.notify_one();
    hooks.release.notified().await;
    session.renew();
    session.insert("user", &q.user)?;
    Ok(format!("welcome {}", q.user))
}

/// Logs in as `user`: renew, store `user`, bind the session to the user.
async fn login_as(session: Session, q: web::Query<User>) -> Result<String> {
    session.renew();
    session.insert("user", &q.user)?;
    session.bind_user(&q.user);
    Ok(format!("welcome {}", q.user))
}

/// The user's sessions, as JSON; 401 when the session has no user.
async fn user_sessions(session: Session) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(session.user_sessions().await?))
}

#[derive(Deserialize)]
struct HandleQuery {
    handle: String,
}

/// Ends one of the user's sessions; 404 if the handle is not theirs.
async fn revoke_session(session: Session, q: web::Query<HandleQuery>) -> Result<HttpResponse> {
    Ok(if session.revoke_user_session(&q.handle).await? {
        HttpResponse::Ok().body("revoked")
    } else {
        HttpResponse::NotFound().body("no such session")
    })
}

async fn logout_others(session: Session) -> Result<String> {
    Ok(format!("{} ended", session.log_out_other_sessions().await?))
}

async fn logout_everywhere(session: Session) -> Result<String> {
    Ok(format!("{} ended", session.log_out_everywhere().await?))
}

/// Registers the suite's routes (the app must also have a `Data<Hooks>`):
///
/// - `GET /noop`: does not touch the session.
/// - `GET /peek`: the session's keys, sorted, comma-separated.
/// - `GET /set?key=&value=`, `GET /get?key=` (404 if absent),
///   `GET /remove?key=`, `GET /clear`, `GET /visits`.
/// - `POST /login?user=` (renew, then set `user`), `POST /logout` (purge).
/// - `GET /typed/set`, `GET /typed/get`: the values of [`Typed::sample`].
/// - `GET /set_wait?key=&value=`: waits on [`Hooks::barrier`] between
///   loading and writing.
/// - `POST /login?user=&remember=&lifetime=`: renews, stores `user`, and
///   sets the session's permanence and lifetime (seconds) when given.
/// - `GET /settings`: `permanent lifetime` of the session.
/// - `GET /hold_set?key=&value=`, `GET /hold_login?user=`: notify
///   [`Hooks::loaded`], then wait for [`Hooks::release`] before writing.
/// - `POST /login_as?user=`: renew, store `user` and bind the session to
///   that user; `GET /sessions` (the user's sessions as JSON, 401 without
///   a user), `POST /sessions/revoke?handle=` (404 if not the user's),
///   `POST /logout-others`, `POST /logout-everywhere`.
/// - `GET /gated?gate=&key=&value=`: hold on [`Hooks::gates`]`[gate]`,
///   then set `key` (answering `ok`), or remove it when there is no
///   `value` (answering whether it was there).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/noop", web::get().to(noop))
        .route("/peek", web::get().to(peek))
        .route("/set", web::get().to(set))
        .route("/get", web::get().to(get))
        .route("/remove", web::get().to(remove))
        .route("/clear", web::get().to(clear))
        .route("/visits", web::get().to(visits))
        .route("/login", web::post().to(login))
        .route("/settings", web::get().to(settings))
        .route("/logout", web::post().to(logout))
        .route("/typed/set", web::get().to(typed_set))
        .route("/typed/get", web::get().to(typed_get))
        .route("/set_wait", web::get().to(set_wait))
        .route("/hold_set", web::get().to(hold_set))
        .route("/hold_login", web::get().to(hold_login))
        .route("/gated", web::get().to(gated))
        .route("/login_as", web::post().to(login_as))
        .route("/sessions", web::get().to(user_sessions))
        .route("/sessions/revoke", web::post().to(revoke_session))
        .route("/logout-others", web::post().to(logout_others))
        .route("/logout-everywhere", web::post().to(logout_everywhere));
}

/// Awaits `fut`, panicking if it takes more than 10 seconds: a guard
/// against hangs, not a timing assertion.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 10 s"))
}

type Call = Rc<dyn Fn(TestRequest) -> Pin<Box<dyn Future<Output = Reply>>>>;

/// The suite's app, started with `actix_web::test::init_service`, and a
/// client for it that passes cookies explicitly (so a test can replay an
/// old cookie).
#[derive(Clone)]
pub struct TestApp {
    call: Call,
    hooks: Arc<Hooks>,
    cookie_name: String,
    _keep: Rc<Option<Box<dyn Any>>>,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("cookie_name", &self.cookie_name)
            .finish_non_exhaustive()
    }
}

impl TestApp {
    /// Starts the app with [`routes`] behind `middleware`.
    pub async fn start(middleware: SessionMiddleware, hooks: Arc<Hooks>) -> Self {
        Self::start_with(middleware, hooks, |_| {}).await
    }

    /// Starts the app with [`routes`] and the routes `extra` registers
    /// behind `middleware`.
    pub async fn start_with(
        middleware: SessionMiddleware,
        hooks: Arc<Hooks>,
        extra: impl FnOnce(&mut web::ServiceConfig),
    ) -> Self {
        let service = Rc::new(
            test::init_service(
                App::new()
                    .app_data(web::Data::from(Arc::clone(&hooks)))
                    .wrap(middleware)
                    .configure(routes)
                    .configure(extra),
            )
            .await,
        );
        let call: Call = Rc::new(move |req: TestRequest| {
            let service = Rc::clone(&service);
            Box::pin(async move {
                let response = match service.call(req.to_request()).await {
                    Ok(res) => res.map_into_boxed_body().into_parts().1,
                    // What the server would send for an error.
                    Err(error) => error.error_response(),
                };
                Reply::read(response).await
            })
        });
        Self {
            call,
            hooks,
            cookie_name: "session".to_owned(),
            _keep: Rc::new(None),
        }
    }

    /// Uses `name` as the session cookie's name (default `session`).
    #[must_use]
    pub fn named(mut self, name: &str) -> Self {
        name.clone_into(&mut self.cookie_name);
        self
    }

    /// Keeps `keep` alive as long as the app.
    #[must_use]
    pub fn keeping(mut self, keep: Box<dyn Any>) -> Self {
        self._keep = Rc::new(Some(keep));
        self
    }

    /// The hooks the app's routes wait on.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// A request, carrying the session cookie `cookie` if given.
    pub fn request(&self, method: Method, uri: &str, cookie: Option<&str>) -> TestRequest {
        let req = TestRequest::default().method(method).uri(uri);
        match cookie {
            Some(value) => req.cookie(Cookie::new(self.cookie_name.clone(), value.to_owned())),
            None => req,
        }
    }

    /// A `GET` with exactly `cookie_header` as the `Cookie` header.
    ///
    /// # Panics
    ///
    /// Panics if the bytes are not a valid header value.
    pub fn request_with_cookie_header(&self, uri: &str, cookie_header: &[u8]) -> TestRequest {
        TestRequest::get().uri(uri).insert_header((
            header::COOKIE,
            HeaderValue::from_bytes(cookie_header).expect("a valid header value"),
        ))
    }

    /// Sends a request and reads the whole response.
    pub async fn send(&self, req: TestRequest) -> Reply {
        let reply = (self.call)(req).await;
        Reply {
            cookie_name: self.cookie_name.clone(),
            ..reply
        }
    }

    /// Sends a request on a task of its own, so that several can be in
    /// flight at once.
    pub fn spawn(&self, req: TestRequest) -> actix_web::rt::task::JoinHandle<Reply> {
        let app = self.clone();
        actix_web::rt::spawn(async move { app.send(req).await })
    }

    /// `GET uri`, with the session cookie if given.
    pub async fn get(&self, uri: &str, cookie: Option<&str>) -> Reply {
        self.send(self.request(Method::GET, uri, cookie)).await
    }

    /// `POST uri`, with the session cookie if given.
    pub async fn post(&self, uri: &str, cookie: Option<&str>) -> Reply {
        self.send(self.request(Method::POST, uri, cookie)).await
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The body, as text (lossy).
    pub body: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The session cookie's name.
    pub cookie_name: String,
}

impl Reply {
    async fn read(response: HttpResponse) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .expect("the body can be read");
        Self {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            headers,
            cookie_name: "session".to_owned(),
        }
    }

    /// Every `Set-Cookie` header, as sent.
    pub fn raw_set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// Every `Set-Cookie` header, parsed.
    ///
    /// # Panics
    ///
    /// Panics if one does not parse as a cookie.
    pub fn set_cookies(&self) -> Vec<Cookie<'static>> {
        self.raw_set_cookies()
            .into_iter()
            .map(|raw| {
                Cookie::parse(raw.clone())
                    .unwrap_or_else(|e| panic!("Set-Cookie {raw:?} does not parse: {e}"))
            })
            .collect()
    }

    /// The `Set-Cookie` of the session cookie, if any.
    ///
    /// # Panics
    ///
    /// Panics if the response sets the session cookie more than once.
    pub fn session_cookie(&self) -> Option<Cookie<'static>> {
        let mut cookies: Vec<_> = self
            .set_cookies()
            .into_iter()
            .filter(|c| c.name() == self.cookie_name)
            .collect();
        assert!(
            cookies.len() <= 1,
            "the session cookie is set more than once: {:?}",
            self.raw_set_cookies()
        );
        cookies.pop()
    }

    /// True if the response removes the session cookie.
    pub fn removes_session(&self) -> bool {
        self.session_cookie().is_some_and(|c| is_removal(&c))
    }

    /// The session cookie's new value, if the response sets one (and does
    /// not remove it).
    pub fn new_session(&self) -> Option<String> {
        self.session_cookie()
            .filter(|c| !is_removal(c))
            .map(|c| c.value().to_owned())
    }

    /// The session cookie's new value.
    ///
    /// # Panics
    ///
    /// Panics, saying `what` failed, if the response does not set one.
    pub fn expect_new_session(&self, what: &str) -> String {
        self.new_session().unwrap_or_else(|| {
            panic!(
                "{what}: expected a new session cookie, got status {} and Set-Cookie {:?} (body {:?})",
                self.status,
                self.raw_set_cookies(),
                self.body
            )
        })
    }

    /// The cookie a browser would hold after this response, given it held
    /// `current` before.
    pub fn follow(&self, current: Option<&str>) -> Option<String> {
        match self.session_cookie() {
            Some(c) if is_removal(&c) => None,
            Some(c) => Some(c.value().to_owned()),
            None => current.map(str::to_owned),
        }
    }

    /// Panics, saying `what` failed, unless the status is `status`.
    ///
    /// # Panics
    ///
    /// As above.
    #[track_caller]
    pub fn assert_status(&self, status: StatusCode, what: &str) -> &Self {
        assert_eq!(
            self.status, status,
            "{what}: unexpected status (body {:?})",
            self.body
        );
        self
    }

    /// Panics, saying `what` failed, unless the status is 200 and the body
    /// is `body`.
    ///
    /// # Panics
    ///
    /// As above.
    #[track_caller]
    pub fn assert_ok(&self, body: &str, what: &str) -> &Self {
        self.assert_status(StatusCode::OK, what);
        assert_eq!(self.body, body, "{what}: unexpected body");
        self
    }

    /// Panics, saying `what` failed, if the response sets any cookie.
    ///
    /// # Panics
    ///
    /// As above.
    #[track_caller]
    pub fn assert_no_cookie(&self, what: &str) -> &Self {
        assert!(
            self.raw_set_cookies().is_empty(),
            "{what}: expected no Set-Cookie, got {:?}",
            self.raw_set_cookies()
        );
        self
    }
}

/// True if `cookie` tells the browser to delete the cookie.
pub fn is_removal(cookie: &Cookie<'_>) -> bool {
    // Max-Age wins over Expires (RFC 6265, 5.3): with a one-second lifetime
    // a fresh cookie's Expires, in whole seconds, can already look past.
    match cookie.max_age() {
        Some(age) => age <= time::Duration::ZERO,
        None => cookie
            .expires_datetime()
            .is_some_and(|at| at <= time::OffsetDateTime::now_utc()),
    }
}
