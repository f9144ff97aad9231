//! A shopping cart on typed sessions.
//!
//! The session is declared as plain structs; handlers take
//! `TypedSession<Cart>` and `TypedSession<Account>` instead of reading a
//! dictionary with string keys. Each field is one session key, so a request
//! that adds to the cart and one that changes the account never overwrite
//! each other.
//!
//! The page also shows where the user is logged in (every session bound
//! to them at login), and logs any of those sessions out.
//!
//! ```sh
//! cargo run -p typed            # then open http://localhost:8080
//! SESSION_TRACK_CLIENT=true cargo run -p typed   # list browsers and addresses too
//! ```

use std::process::ExitCode;

use actix_web::{App, HttpResponse, HttpServer, Responder, get, post, web};
use serde::{Deserialize, Serialize};
use session_actix::{Session, SessionConfig, SessionData, SessionMiddleware, TypedSession};

/// One line of the cart.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Line {
    sku: String,
    quantity: u32,
}

/// The cart: keys `cart.lines` and `cart.updates`.
#[derive(SessionData)]
#[session(prefix = "cart.")]
struct Cart {
    lines: Vec<Line>,
    /// How many times the cart changed.
    updates: u32,
}

/// Who is logged in: key `user`.
#[derive(SessionData)]
struct Account {
    user: Option<String>,
}

#[derive(Serialize)]
struct CartView {
    user: Option<String>,
    lines: Vec<Line>,
    items: u32,
    updates: u32,
}

fn view(cart: &CartSession, account: &AccountSession) -> CartView {
    let lines = cart.lines();
    CartView {
        user: account.user(),
        items: lines.iter().map(|l| l.quantity).sum(),
        lines,
        updates: cart.updates(),
    }
}

/// The cart as JSON.
#[get("/cart")]
async fn show(cart: TypedSession<Cart>, account: TypedSession<Account>) -> impl Responder {
    web::Json(view(&cart, &account))
}

#[derive(Deserialize)]
struct AddQuery {
    sku: String,
    #[serde(default = "one")]
    quantity: u32,
}

fn one() -> u32 {
    1
}

/// Adds `quantity` (default 1) of `sku`.
#[post("/cart/add")]
async fn add(
    cart: TypedSession<Cart>,
    account: TypedSession<Account>,
    q: web::Query<AddQuery>,
) -> actix_web::Result<impl Responder> {
    let AddQuery { sku, quantity } = q.into_inner();
    if sku.is_empty() || quantity == 0 {
        return Ok(HttpResponse::BadRequest().body("sku and a positive quantity are required"));
    }
    cart.update_lines(|lines| match lines.iter_mut().find(|l| l.sku == sku) {
        Some(line) => line.quantity = line.quantity.saturating_add(quantity),
        None => lines.push(Line { sku, quantity }),
    })?;
    cart.update_updates(|n| *n += 1)?;
    Ok(HttpResponse::Ok().json(view(&cart, &account)))
}

#[derive(Deserialize)]
struct SkuQuery {
    sku: String,
}

/// Removes `sku` from the cart.
#[post("/cart/remove")]
async fn remove(
    cart: TypedSession<Cart>,
    account: TypedSession<Account>,
    q: web::Query<SkuQuery>,
) -> actix_web::Result<impl Responder> {
    cart.update_lines(|lines| lines.retain(|l| l.sku != q.sku))?;
    cart.update_updates(|n| *n += 1)?;
    Ok(web::Json(view(&cart, &account)))
}

#[derive(Deserialize)]
struct LoginQuery {
    user: String,
}

/// Logs in, keeping the cart: a new session id, then the user, to whom
/// the session is bound (so that the page lists it among the user's).
#[post("/login")]
async fn login(
    account: TypedSession<Account>,
    q: web::Query<LoginQuery>,
) -> actix_web::Result<impl Responder> {
    account.session().renew();
    account.set_user(Some(q.user.clone()))?;
    account.session().bind_user(&q.user);
    Ok(format!("welcome {}", q.user))
}

/// Where the user is logged in: their sessions as JSON (401 when not
/// logged in).
#[get("/sessions")]
async fn list_sessions(session: Session) -> actix_web::Result<impl Responder> {
    Ok(web::Json(session.user_sessions().await?))
}

#[derive(Deserialize)]
struct HandleQuery {
    handle: String,
}

/// Logs one of the user's sessions out (404 if it is not theirs).
#[post("/sessions/revoke")]
async fn revoke(session: Session, q: web::Query<HandleQuery>) -> actix_web::Result<HttpResponse> {
    Ok(if session.revoke_user_session(&q.handle).await? {
        HttpResponse::Ok().body("revoked")
    } else {
        HttpResponse::NotFound().body("no such session")
    })
}

/// Logs every other session of the user out.
#[post("/logout-others")]
async fn logout_others(session: Session) -> actix_web::Result<impl Responder> {
    Ok(format!("{} ended", session.log_out_other_sessions().await?))
}

/// Logs out: the whole session, cart included, is gone.
#[post("/logout")]
async fn logout(account: TypedSession<Account>) -> impl Responder {
    account.session().purge();
    "bye"
}

/// A page to try it in a browser.
#[get("/")]
async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("page.html"))
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
            eprintln!("typed: {error}");
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
    let sessions = SessionMiddleware::from_config(SessionConfig::from_env()?).await?;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(sessions.clone())
            .service(page)
            .service(show)
            .service(add)
            .service(remove)
            .service(login)
            .service(logout)
            .service(list_sessions)
            .service(revoke)
            .service(logout_others)
    })
    .workers(2)
    .bind(("127.0.0.1", port))?;
    println!("typed: serving on http://127.0.0.1:{port}");
    server.run().await?;
    Ok(())
}
