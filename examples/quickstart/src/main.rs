//! The seed's two Flask-Session usages, made runnable on actix-web.
//!
//! The store comes from the environment, Flask-style (`SESSION_TYPE`,
//! `PERMANENT_SESSION_LIFETIME`, ...); with nothing set, sessions live in
//! memory and no server is needed.
//!
//! ```sh
//! cargo run -p quickstart                                  # memory
//! SESSION_TYPE=filesystem cargo run -p quickstart          # ./flask_session
//! PORT=3000 SESSION_TYPE=cookie SECRET_KEY=... cargo run -p quickstart
//! METRICS=true cargo run -p quickstart     # Prometheus metrics at GET /metrics
//! # the sessions of a Flask app with Flask-Session on the same Redis:
//! SESSION_INTEROP=flask-session SESSION_TYPE=redis cargo run -p quickstart
//! ```
//!
//! # Demo only: state changes on GET
//!
//! `GET /` sets the name, as in the seed's Flask tutorial, and `GET /set`
//! and `GET /visits` change the session so that a browser's address bar
//! can drive the demo. A real app changes state on POST only, with CSRF
//! protection: a GET can be triggered by any page the user visits (an
//! `<img src>` is enough). `/set` and `/visits` also answer POST, the way
//! a real app would expose them; `/login` and `/logout` answer POST only.
//!
//! Every answer is `text/plain; charset=utf-8` with `nosniff`, so a stored
//! value such as `<script>` is shown as text, never run as HTML.

use std::process::ExitCode;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{App, HttpResponse, HttpServer, get, post, route, web};
use serde::Deserialize;
use session_actix::{Session, SessionConfig, SessionError, SessionErrorKind, SessionMiddleware};

/// A plain-text answer. Without an explicit type a browser may sniff a
/// stored value as HTML and run a script in it; `nosniff` forbids the
/// guess.
fn text(status: StatusCode, body: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::plaintext())
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body.into())
}

/// `session['name'] = 'nick'`.
///
/// Demo only: it changes state on GET, as the seed does (see the module
/// docs).
#[get("/")]
async fn hello(session: Session) -> actix_web::Result<HttpResponse> {
    session.insert("name", "nick")?;
    Ok(text(StatusCode::OK, "hello"))
}

/// `return session['name']`, or 404 when there is none.
#[get("/index")]
async fn index(session: Session) -> actix_web::Result<HttpResponse> {
    Ok(match session.get::<String>("name")? {
        Some(name) => text(StatusCode::OK, name),
        None => text(StatusCode::NOT_FOUND, "no name in the session"),
    })
}

/// Counts this session's visits.
///
/// Demo only on GET: it changes state (see the module docs); a real app
/// would take the POST alone.
#[route("/visits", method = "GET", method = "POST")]
async fn visits(session: Session) -> actix_web::Result<HttpResponse> {
    let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", visits)?;
    Ok(text(StatusCode::OK, visits.to_string()))
}

#[derive(Deserialize)]
struct SetQuery {
    key: String,
    value: String,
}

/// Stores a string under any key: `/set?key=color&value=blue`.
///
/// Demo only on GET: it changes state (see the module docs); a real app
/// would take the POST alone.
#[route("/set", method = "GET", method = "POST")]
async fn set(session: Session, q: web::Query<SetQuery>) -> actix_web::Result<HttpResponse> {
    let SetQuery { key, value } = q.into_inner();
    session.insert(key, value)?;
    Ok(text(StatusCode::OK, "ok"))
}

#[derive(Deserialize)]
struct GetQuery {
    key: String,
}

/// Reads a string stored by `/set`, or 404.
#[get("/get")]
async fn get(session: Session, q: web::Query<GetQuery>) -> actix_web::Result<HttpResponse> {
    Ok(match session.get::<String>(&q.key)? {
        Some(value) => text(StatusCode::OK, value),
        None => text(StatusCode::NOT_FOUND, "no such key"),
    })
}

#[derive(Deserialize)]
struct LoginQuery {
    user: String,
    /// Remember me: a cookie that outlives the browser (the default), or
    /// (`false`) a browser-session cookie.
    #[serde(default = "yes")]
    remember: bool,
    /// This session's idle lifetime in seconds, instead of
    /// `PERMANENT_SESSION_LIFETIME`.
    lifetime: Option<u64>,
}

fn yes() -> bool {
    true
}

/// Logs in: a new session id (fixation defence), then the user, to whom
/// the session is bound (so that `/sessions` lists it); with
/// `remember=false` the cookie ends with the browser, with `lifetime=SECS`
/// the session ends SECS after its last use.
#[post("/login")]
async fn login(session: Session, q: web::Query<LoginQuery>) -> actix_web::Result<HttpResponse> {
    session.renew();
    session.insert("user", &q.user)?;
    session.bind_user(&q.user);
    session.set_permanent(q.remember);
    if let Some(secs) = q.lifetime {
        session.set_lifetime(std::time::Duration::from_secs(secs));
    }
    Ok(text(StatusCode::OK, format!("welcome {}", q.user)))
}

/// Logs out: the session is deleted, on the server and in the browser.
#[post("/logout")]
async fn logout(session: Session) -> HttpResponse {
    session.purge();
    text(StatusCode::OK, "bye")
}

/// A failure of a call on the user's sessions: 401 when the session has
/// no user, else the error's own answer.
fn not_logged_in(error: SessionError) -> actix_web::Result<HttpResponse> {
    match error.kind() {
        SessionErrorKind::NotLoggedIn => Ok(text(StatusCode::UNAUTHORIZED, "not logged in")),
        _ => Err(error.into()),
    }
}

/// The logged-in user's sessions, as JSON: `handle`, `current`,
/// `created_at` and `last_seen` (RFC 3339), and with
/// `SESSION_TRACK_CLIENT=true` the `user_agent` and `ip` seen at login;
/// 401 when not logged in.
#[get("/sessions")]
async fn list_sessions(session: Session) -> actix_web::Result<HttpResponse> {
    match session.user_sessions().await {
        Ok(list) => Ok(HttpResponse::Ok()
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .json(list)),
        Err(error) => not_logged_in(error),
    }
}

#[derive(Deserialize)]
struct RevokeQuery {
    handle: String,
}

/// Ends one of the logged-in user's sessions: 404 if it is not theirs.
#[post("/sessions/revoke")]
async fn revoke(session: Session, q: web::Query<RevokeQuery>) -> actix_web::Result<HttpResponse> {
    match session.revoke_user_session(&q.handle).await {
        Ok(true) => Ok(text(StatusCode::OK, "revoked")),
        Ok(false) => Ok(text(StatusCode::NOT_FOUND, "no such session")),
        Err(error) => not_logged_in(error),
    }
}

/// Ends every other session of the logged-in user.
#[post("/logout-others")]
async fn logout_others(session: Session) -> actix_web::Result<HttpResponse> {
    match session.log_out_other_sessions().await {
        Ok(ended) => Ok(text(StatusCode::OK, format!("{ended} ended"))),
        Err(error) => not_logged_in(error),
    }
}

/// Ends every session of the logged-in user, this one included.
#[post("/logout-everywhere")]
async fn logout_everywhere(session: Session) -> actix_web::Result<HttpResponse> {
    match session.log_out_everywhere().await {
        Ok(ended) => Ok(text(StatusCode::OK, format!("{ended} ended"))),
        Err(error) => not_logged_in(error),
    }
}

#[actix_web::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("quickstart: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT: invalid value {port:?}, expected a port number"))?,
        Err(_) => 8080,
    };
    let metrics = match std::env::var("METRICS").as_deref() {
        Ok("true" | "1") => Some(
            metrics_exporter_prometheus::PrometheusBuilder::new()
                // Latencies as histograms (summaries by default), from
                // 50 µs (a memory store) to 5 s (the default timeout).
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_duration_seconds".into()),
                    &[
                        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                        0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ],
                )
                .and_then(|builder| builder.install_recorder())
                .map_err(|e| format!("METRICS: cannot install the Prometheus recorder: {e}"))?,
        ),
        Ok("false" | "0" | "") | Err(_) => None,
        Ok(other) => {
            return Err(format!("METRICS: invalid value {other:?}, expected true or false").into());
        }
    };
    let config = SessionConfig::from_env()?;
    let store = config.store.kind();
    let sessions = SessionMiddleware::from_config(config).await?;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(sessions.clone())
            .service(hello)
            .service(index)
            .service(visits)
            .service(set)
            .service(get)
            .service(login)
            .service(logout)
            .service(list_sessions)
            .service(revoke)
            .service(logout_others)
            .service(logout_everywhere)
            .configure(|app| {
                if let Some(handle) = metrics.clone() {
                    app.route(
                        "/metrics",
                        web::get().to(move || {
                            let body = handle.render();
                            async move {
                                HttpResponse::Ok()
                                    .content_type("text/plain; version=0.0.4; charset=utf-8")
                                    .body(body)
                            }
                        }),
                    );
                }
            })
    })
    .workers(2)
    .bind(("127.0.0.1", port))?;
    println!(
        "quickstart: serving on http://127.0.0.1:{port} with SESSION_TYPE={}",
        store.name()
    );
    server.run().await?;
    Ok(())
}
