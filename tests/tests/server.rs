//! A real `HttpServer` with two workers sharing one memory store, driven
//! over loopback by `reqwest` with a cookie jar.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde::Deserialize;
use session_actix::store::memory::MemoryStore;
use session_actix::{Session, SessionMiddleware};
use session_tests::{Hooks, routes, within};

/// The worker threads that served `/set_together`.
#[derive(Default)]
struct Threads(Mutex<HashSet<ThreadId>>);

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    value: String,
}

/// With the session loaded (the extractor loads it), waits at
/// [`Hooks::barrier`] until every party has loaded too, then sets one key:
/// all the parties are in flight at once, and none writes before all have
/// read.
async fn set_together(
    session: Session,
    threads: web::Data<Threads>,
    hooks: web::Data<Hooks>,
    q: web::Query<KeyValue>,
) -> actix_web::Result<&'static str> {
    threads
        .0
        .lock()
        .unwrap()
        .insert(std::thread::current().id());
    hooks.barrier.wait().await;
    session.insert(q.key.as_str(), q.value.as_str())?;
    Ok("ok")
}

struct Server {
    base: String,
    handle: ServerHandle,
    task: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
    threads: Arc<Threads>,
}

impl Server {
    /// A server whose [`Hooks::barrier`] lets `parties` requests through
    /// together.
    fn start(parties: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr: SocketAddr = listener.local_addr().expect("the bound address");
        // One store, created outside the factory, shared by both workers.
        let sessions = SessionMiddleware::builder(MemoryStore::new())
            .build()
            .unwrap();
        let hooks = Hooks::new(parties);
        let threads = Arc::new(Threads::default());
        let data = web::Data::from(Arc::clone(&threads));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::from(Arc::clone(&hooks)))
                .app_data(data.clone())
                .wrap(sessions.clone())
                .configure(routes)
                .route("/set_together", web::get().to(set_together))
        })
        .workers(2)
        .listen(listener)
        .expect("the server listens")
        .run();
        let handle = server.handle();
        let task = actix_web::rt::spawn(server);
        Self {
            base: format!("http://{addr}"),
            handle,
            task,
            threads,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server gracefully, once `client` has closed its
    /// connections (a graceful stop waits for idle keep-alive connections
    /// until they time out).
    async fn stop(self, client: reqwest::Client) {
        drop(client);
        self.handle.stop(true).await;
        within("the server to stop", self.task)
            .await
            .expect("the server task")
            .expect("the server ran");
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client")
}

async fn text(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.expect("a body"))
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .cookies()
        .find(|c| c.name() == "session")
        .map(|c| c.value().to_owned())
}

#[actix_web::test]
async fn login_set_get_visits_logout_through_a_real_server() {
    let server = Server::start(1);
    let client = browser();
    let get = |path: &str| client.get(server.url(path)).send();

    let response = get("/peek").await.expect("peek");
    assert!(
        response.headers().get(SET_COOKIE).is_none(),
        "no cookie for a fresh read"
    );
    assert_eq!(text(response).await, (StatusCode::OK, String::new()));

    let response = client
        .post(server.url("/login?user=nick"))
        .send()
        .await
        .expect("login");
    let login_cookie = session_cookie(&response).expect("login sets the cookie");
    assert_eq!(
        text(response).await,
        (StatusCode::OK, "welcome nick".to_owned())
    );

    let response = get("/set?key=name&value=nick").await.expect("set");
    assert_eq!(text(response).await, (StatusCode::OK, "ok".to_owned()));
    let response = get("/get?key=name").await.expect("get");
    assert_eq!(text(response).await, (StatusCode::OK, "nick".to_owned()));
    let response = get("/get?key=user").await.expect("get user");
    assert_eq!(text(response).await, (StatusCode::OK, "nick".to_owned()));
    for n in 1..=3 {
        let response = get("/visits").await.expect("visits");
        assert_eq!(text(response).await, (StatusCode::OK, n.to_string()));
    }

    let response = client
        .post(server.url("/logout"))
        .send()
        .await
        .expect("logout");
    assert_eq!(text(response).await, (StatusCode::OK, "bye".to_owned()));
    let response = get("/get?key=user").await.expect("get user after logout");
    assert!(
        response.headers().get(SET_COOKIE).is_none(),
        "no cookie for a logged-out read"
    );
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "logged out");

    // A copy of the cookie taken before the logout loads nothing.
    let response = reqwest::Client::new()
        .get(server.url("/peek"))
        .header(COOKIE, format!("session={login_cookie}"))
        .send()
        .await
        .expect("peek with the old cookie");
    assert_eq!(text(response).await, (StatusCode::OK, String::new()));

    server.stop(client).await;
}

#[actix_web::test]
async fn concurrent_requests_through_both_workers_keep_every_key() {
    const N: usize = 20;
    let server = Server::start(N);
    let client = browser();
    let response = client
        .post(server.url("/login?user=nick"))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);

    let requests: Vec<_> = (0..N)
        .map(|i| {
            let request = client.get(server.url(&format!("/set_together?key=k{i:02}&value={i}")));
            actix_web::rt::spawn(async move { request.send().await })
        })
        .collect();
    // None of them answers before all N have loaded the session: if they
    // did not overlap, they would time out here.
    for request in requests {
        let response = within("a concurrent request", request)
            .await
            .expect("the request task")
            .unwrap_or_else(|e| panic!("the {N} requests were never in flight together: {e}"));
        assert_eq!(text(response).await, (StatusCode::OK, "ok".to_owned()));
    }

    let response = client.get(server.url("/peek")).send().await.expect("peek");
    let mut expected: Vec<String> = (0..N).map(|i| format!("k{i:02}")).collect();
    expected.push("user".to_owned());
    assert_eq!(text(response).await, (StatusCode::OK, expected.join(",")));
    let workers = server.threads.0.lock().unwrap().len();
    assert_eq!(workers, 2, "the requests were served by both workers");

    server.stop(client).await;
}
