//! The store cycle's end, on actix-web's response: the engine saves the
//! session, and its [`Outcome`] becomes a `Set-Cookie` header or a status.

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use session_core::CookieConfig;
use session_core::engine::Outcome;

use crate::slot::Slot;

/// After the handler: saves what the request changed and sets or removes
/// the cookie on `res`.
pub(crate) async fn finish<B: MessageBody>(
    slot: &Slot,
    mut res: ServiceResponse<B>,
) -> ServiceResponse<EitherBody<B>> {
    let Some(session) = slot.loaded() else {
        return res.map_into_left_body();
    };
    // The response depends on the cookie: shared caches must not mix users.
    res.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Cookie"));
    let engine = slot.engine();
    let config = engine.cookie();
    let server_error = res.status().is_server_error();
    let cookie = match engine.finish(session, server_error).await {
        Outcome::Set { value, max_age } => set_cookie(config, value, max_age),
        Outcome::Remove => removal_cookie(config),
        Outcome::Unavailable => return replace(res, HttpResponse::ServiceUnavailable()),
        Outcome::Failed => return replace(res, HttpResponse::InternalServerError()),
        _ => return res.map_into_left_body(),
    };
    match HeaderValue::from_str(&cookie.to_string()) {
        Ok(value) => {
            res.headers_mut().append(header::SET_COOKIE, value);
            keep_private(res.headers_mut());
            res.map_into_left_body()
        }
        Err(error) => {
            tracing::error!(%error, "the session cookie is not a valid header value");
            replace(res, HttpResponse::InternalServerError())
        }
    }
}

/// Marks a response that sets or removes the session cookie
/// `Cache-Control: private`, so that no shared cache stores it and hands
/// one user's cookie to another. A response already `private` or
/// `no-store` keeps its header; `public` and `s-maxage` (read by shared
/// caches only) are dropped, other directives kept.
fn keep_private(headers: &mut HeaderMap) {
    let directives: Vec<String> = headers
        .get_all(header::CACHE_CONTROL)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    let lower = |d: &String| d.to_ascii_lowercase();
    if directives
        .iter()
        .map(lower)
        .any(|d| d.starts_with("private") || d == "no-store")
    {
        return;
    }
    let kept = directives.iter().filter(|d| {
        let d = lower(d);
        d != "public" && !d.starts_with("s-maxage")
    });
    let value = std::iter::once("private")
        .chain(kept.map(String::as_str))
        .collect::<Vec<_>>()
        .join(", ");
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("private")),
    );
}

/// `res` with its body and status replaced by an empty `with` response.
fn replace<B>(
    res: ServiceResponse<B>,
    mut with: actix_web::HttpResponseBuilder,
) -> ServiceResponse<EitherBody<B>> {
    let (req, _) = res.into_parts();
    ServiceResponse::new(req, with.finish()).map_into_right_body()
}

fn base_cookie(config: &CookieConfig, value: String) -> Cookie<'static> {
    let mut cookie = Cookie::new(config.name.clone(), value);
    cookie.set_path(config.path.clone());
    if let Some(domain) = &config.domain {
        cookie.set_domain(domain.clone());
    }
    cookie.set_secure(config.secure);
    cookie.set_http_only(config.http_only);
    cookie.set_same_site(match config.same_site {
        session_core::SameSite::Lax => SameSite::Lax,
        session_core::SameSite::Strict => SameSite::Strict,
        session_core::SameSite::None => SameSite::None,
    });
    cookie
}

/// The session cookie; a permanent one lives `max_age` (the session's
/// lifetime, cut short by its absolute lifetime).
fn set_cookie(config: &CookieConfig, value: String, max_age: Option<Duration>) -> Cookie<'static> {
    let mut cookie = base_cookie(config, value);
    if let Some(ttl) = max_age {
        let lifetime = time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX);
        cookie.set_max_age(lifetime);
        cookie.set_expires(time::OffsetDateTime::now_utc().saturating_add(lifetime));
    }
    cookie
}

/// A cookie that deletes the session cookie: the same name, Path, Domain,
/// Secure and SameSite it was set with, already expired.
fn removal_cookie(config: &CookieConfig) -> Cookie<'static> {
    let mut cookie = base_cookie(config, String::new());
    cookie.set_max_age(time::Duration::ZERO);
    cookie.set_expires(time::OffsetDateTime::UNIX_EPOCH);
    cookie
}
