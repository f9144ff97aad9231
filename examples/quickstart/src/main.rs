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
//! ```

use std::process::ExitCode;

use actix_web::{App, HttpResponse, HttpServer, Responder, get, post, web};
use serde::Deserialize;
use session_actix::{Session, SessionConfig, SessionMiddleware};

/// `session['name'] = 'nick'`
#[get("/")]
async fn hello(session: Session) -> actix_web::Result<impl Responder> {
    session.insert("name", "nick")?;
    Ok("hello")
}

/// `return session['name']`, or 404 when there is none.
#[get("/index")]
async fn index(session: Session) -> actix_web::Result<HttpResponse> {
    Ok(match session.get::<String>("name")? {
        Some(name) => HttpResponse::Ok().body(name),
        None => HttpResponse::NotFound().body("no name in the session"),
    })
}

/// Counts this session's visits.
#[get("/visits")]
async fn visits(session: Session) -> actix_web::Result<impl Responder> {
    let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", visits)?;
    Ok(visits.to_string())
}

#[derive(Deserialize)]
struct SetQuery {
    key: String,
    value: String,
}

/// Stores a string under any key.
#[get("/set")]
async fn set(session: Session, q: web::Query<SetQuery>) -> actix_web::Result<impl Responder> {
    let SetQuery { key, value } = q.into_inner();
    session.insert(key, value)?;
    Ok("ok")
}

#[derive(Deserialize)]
struct GetQuery {
    key: String,
}

/// Reads a string stored by `/set`, or 404.
#[get("/get")]
async fn get(session: Session, q: web::Query<GetQuery>) -> actix_web::Result<HttpResponse> {
    Ok(match session.get::<String>(&q.key)? {
        Some(value) => HttpResponse::Ok().body(value),
        None => HttpResponse::NotFound().body("no such key"),
    })
}

#[derive(Deserialize)]
struct LoginQuery {
    user: String,
}

/// Logs in: a new session id (fixation defence), then the user.
#[post("/login")]
async fn login(session: Session, q: web::Query<LoginQuery>) -> actix_web::Result<impl Responder> {
    session.renew();
    session.insert("user", &q.user)?;
    Ok(format!("welcome {}", q.user))
}

/// Logs out: the session is deleted, on the server and in the browser.
#[post("/logout")]
async fn logout(session: Session) -> impl Responder {
    session.purge();
    "bye"
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
    let config = SessionConfig::from_env()?;
    let store = config.store;
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
