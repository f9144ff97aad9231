//! A shopping cart on typed sessions.
//!
//! The session is declared as plain structs; handlers take
//! `TypedSession<Cart>` and `TypedSession<Account>` instead of reading a
//! dictionary with string keys. Each field is one session key, so a request
//! that adds to the cart and one that changes the account never overwrite
//! each other.
//!
//! ```sh
//! cargo run -p typed            # then open http://127.0.0.1:8080
//! ```

use std::process::ExitCode;

use actix_web::{App, HttpResponse, HttpServer, Responder, get, post, web};
use serde::{Deserialize, Serialize};
use session_actix::{SessionConfig, SessionData, SessionMiddleware, TypedSession};

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

/// Logs in, keeping the cart: a new session id, then the user.
#[post("/login")]
async fn login(
    account: TypedSession<Account>,
    q: web::Query<LoginQuery>,
) -> actix_web::Result<impl Responder> {
    account.session().renew();
    account.set_user(Some(q.user.clone()))?;
    Ok(format!("welcome {}", q.user))
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
    })
    .workers(2)
    .bind(("127.0.0.1", port))?;
    println!("typed: serving on http://127.0.0.1:{port}");
    server.run().await?;
    Ok(())
}
