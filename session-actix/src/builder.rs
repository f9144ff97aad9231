//! Building a [`SessionMiddleware`]: the constructors and the setters.

use std::time::Duration;

use actix_web::cookie::SameSite;
use session_core::signing::SigningKey;
use session_core::store::Backend;
use session_core::{Codec, ConfigError, EncryptAtRest, OutagePolicy, SessionConfig};

use crate::middleware::SessionMiddleware;

impl SessionMiddleware {
    /// A middleware on `store` whose cookies carry ids signed with `key`,
    /// and Flask-Session's defaults for everything else: permanent 31-day
    /// sessions, cookie `session`, `HttpOnly`, `SameSite=Lax`, not `Secure`
    /// (see [`cookie_secure`](SessionMiddlewareBuilder::cookie_secure)).
    ///
    /// `store` is any [`SessionStore`](session_core::SessionStore), or the
    /// [`CookieStore`](session_core::store::cookie::CookieStore) (which
    /// keeps the whole session in the cookie under its own key).
    ///
    /// # Panics
    ///
    /// Never: the default settings are valid, and `key` was checked when
    /// it was made.
    pub fn new(store: impl Into<Backend>, key: SigningKey) -> Self {
        Self::builder(store)
            .signing_key(key)
            .build()
            .expect("the default settings and a checked key are valid")
    }

    /// Starts configuring a middleware on `store`: any
    /// [`SessionStore`](session_core::SessionStore), or the
    /// [`CookieStore`](session_core::store::cookie::CookieStore). Ids are
    /// not signed unless [`signing_key`](SessionMiddlewareBuilder::signing_key)
    /// is set (they are 256 random bits either way; signing adds a check
    /// that needs no store call, and key rotation).
    pub fn builder(store: impl Into<Backend>) -> SessionMiddlewareBuilder {
        SessionMiddlewareBuilder {
            backend: store.into(),
            config: SessionConfig::default(),
            hash_ids_set: false,
        }
    }

    /// Opens the store that `config` names (`SESSION_TYPE`) and builds the
    /// middleware with every setting of `config`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the key to fix, if a setting is invalid or
    /// the store cannot be opened (a server that cannot be reached, a
    /// directory that cannot be used).
    pub async fn from_config(config: SessionConfig) -> Result<Self, ConfigError> {
        let backend = session_core::store::open(&config).await?;
        SessionMiddlewareBuilder {
            backend,
            config,
            hash_ids_set: false,
        }
        .build()
    }
}

/// Configures a [`SessionMiddleware`]; every setting has the default of
/// the matching [`SessionConfig`] field.
#[must_use]
pub struct SessionMiddlewareBuilder {
    backend: Backend,
    config: SessionConfig,
    /// [`hash_ids`](Self::hash_ids) was called: a store in Flask-Session's
    /// layout then refuses `true` instead of keeping ids in clear.
    hash_ids_set: bool,
}

impl std::fmt::Debug for SessionMiddlewareBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMiddlewareBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SessionMiddlewareBuilder {
    /// Replaces every setting with those of `config` (its `store` field and
    /// the keys of the stores are ignored: the store is the one given to
    /// the builder).
    pub fn config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// The cookie's name. Defaults to `session`.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.config.cookie.name = name.into();
        self
    }

    /// The cookie's `Domain`. Defaults to none: the cookie goes back to the
    /// host that set it only.
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.config.cookie.domain = Some(domain.into());
        self
    }

    /// The cookie's `Path`. Defaults to `/`.
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.config.cookie.path = path.into();
        self
    }

    /// Whether the cookie is `Secure` (sent over HTTPS only). Defaults to
    /// false, as Flask's `SESSION_COOKIE_SECURE`, so that an app works on
    /// plain `http://` during development; turn it on in production
    /// (browsers treat `http://localhost` as secure, so a local app works
    /// with it on too). A cookie name with the `__Host-` or `__Secure-`
    /// prefix requires it.
    pub fn cookie_secure(mut self, secure: bool) -> Self {
        self.config.cookie.secure = secure;
        self
    }

    /// Whether the cookie is `HttpOnly` (hidden from JavaScript). Defaults
    /// to true.
    pub fn cookie_http_only(mut self, http_only: bool) -> Self {
        self.config.cookie.http_only = http_only;
        self
    }

    /// The cookie's `SameSite`. Defaults to `Lax`.
    pub fn cookie_same_site(mut self, same_site: SameSite) -> Self {
        self.config.cookie.same_site = self::same_site(same_site);
        self
    }

    /// Whether the cookie outlives the browser (`Max-Age` and `Expires`
    /// set to the lifetime) or is a browser-session cookie. Defaults to true.
    pub fn permanent(mut self, permanent: bool) -> Self {
        self.config.permanent = permanent;
        self
    }

    /// How long a session lives after its last refresh, on the server and
    /// (when permanent) in the browser. Defaults to 31 days.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.config.lifetime = lifetime;
        self
    }

    /// Whether requests that read a session extend its lifetime. Defaults
    /// to true.
    ///
    /// To spare the store a write on every read, the extension is made only
    /// once the session has aged by a tenth of its lifetime (at most a
    /// minute), when the store reports its expiry.
    pub fn refresh_each_request(mut self, refresh: bool) -> Self {
        self.config.refresh_each_request = refresh;
        self
    }

    /// Signs the id in the cookie with HMAC-SHA256 under `secret`: a
    /// [`SigningKey`], or text of at least 32 bytes (checked by
    /// [`build`](Self::build)). Defaults to no signing: ids are 256 random
    /// bits either way.
    pub fn signing_key(mut self, secret: impl Into<String>) -> Self {
        self.config.secret_key = Some(secret.into());
        self.config.use_signer = true;
        self
    }

    /// The app's secret (`SECRET_KEY`), without signing the cookie: for
    /// what needs a secret besides signing, such as values sealed at rest
    /// ([`encrypt_at_rest`](Self::encrypt_at_rest): `strict` requires one)
    /// and ids kept in clear ([`hash_ids(false)`](Self::hash_ids), a store
    /// in Flask-Session's layout), whose records this crate seals under it.
    /// At least 32 bytes, checked by [`build`](Self::build).
    pub fn secret_key(mut self, secret: impl Into<String>) -> Self {
        self.config.secret_key = Some(secret.into());
        self
    }

    /// Older signing keys that still verify, so a key can be rotated
    /// without logging everyone out. Defaults to none.
    pub fn fallback_keys<I: IntoIterator<Item = K>, K: Into<String>>(mut self, keys: I) -> Self {
        self.config.secret_key_fallbacks = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Put before every store key. Defaults to `session:`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.key_prefix = prefix.into();
        self
    }

    /// Whether stores see `prefix + hex(sha256(id))` rather than the id.
    /// Defaults to true; with a store in Flask-Session's layout
    /// ([`FlaskStore`](session_core::flask::FlaskStore)), ids are in clear
    /// and `true` is refused.
    pub fn hash_ids(mut self, hash: bool) -> Self {
        self.config.hash_ids = hash;
        self.hash_ids_set = true;
        self
    }

    /// How values are encoded. Defaults to JSON.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.config.codec = codec;
        self
    }

    /// The largest a session may grow, in bytes of keys and encoded values.
    /// Defaults to 256 KiB (less for the cookie store: what fits a cookie).
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.config.max_size = bytes;
        self
    }

    /// The longest a store call may take before it counts as an outage.
    /// Defaults to 5 seconds.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.config.store_timeout = timeout;
        self
    }

    /// What a request gets when the store fails: `503`, or an empty
    /// session. Defaults to [`OutagePolicy::Fail`].
    pub fn outage_policy(mut self, policy: OutagePolicy) -> Self {
        self.config.outage = policy;
        self
    }

    /// Ends a session this long after it was created, however often it is
    /// refreshed; a login ([`Session::renew`](crate::Session::renew)) keeps
    /// the creation time, and a permanent cookie's `Max-Age` never outlives
    /// it. Defaults to none (`SESSION_ABSOLUTE_LIFETIME` unset): only the
    /// idle lifetime applies.
    ///
    /// Sessions written before creation times were kept have none and end
    /// at their next request once this is on.
    pub fn absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.absolute_lifetime = Some(lifetime);
        self
    }

    /// Whether a response with a 5xx status still saves the session's
    /// changes (a [`purge`](crate::Session::purge) is carried out either
    /// way). Defaults to false: a handler that failed may have stopped
    /// half-way through its changes.
    pub fn save_on_error(mut self, save: bool) -> Self {
        self.config.save_on_error = save;
        self
    }

    /// Whether binding a session to a user ([`Session::bind_user`](crate::Session::bind_user))
    /// records the client's `User-Agent` and address, for the user's list
    /// of sessions (`SESSION_TRACK_CLIENT`). Defaults to false.
    pub fn track_client(mut self, track: bool) -> Self {
        self.config.track_client = track;
        self
    }

    /// The most sessions one user may have (`SESSION_MAX_PER_USER`):
    /// binding one more ends the user's least recently seen ones. Defaults
    /// to 50; [`build`](Self::build) refuses 0 and anything over 1000.
    pub fn max_sessions_per_user(mut self, max: usize) -> Self {
        self.config.max_per_user = max;
        self
    }

    /// Whether session values are encrypted in the store
    /// (`SESSION_ENCRYPT_AT_REST`): `true`, `false`, or
    /// [`EncryptAtRest::Strict`]. Defaults to false.
    ///
    /// On, each value is sealed with XChaCha20-Poly1305 under a key derived
    /// from the session's id (which the store never sees) and the
    /// [`signing_key`](Self::signing_key), if set: a dump of the store, a
    /// replica or a backup shows none of the values, only a request with
    /// the cookie reads them. A value moved to another key or session, or
    /// changed in the store, reads as absent. Turning it on or off logs no
    /// one out (see [`EncryptAtRest`]); each value weighs 42 bytes more
    /// against [`max_size`](Self::max_size). Server-side stores only, not
    /// with Flask-Session's layout.
    pub fn encrypt_at_rest(mut self, mode: impl Into<EncryptAtRest>) -> Self {
        self.config.encrypt_at_rest = mode.into();
        self
    }

    /// Checks the settings and builds the middleware.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the setting (by its configuration key) that
    /// is wrong: a signing key shorter than 32 bytes (`SECRET_KEY`), a
    /// cookie name that breaks its `__Host-` prefix's rules
    /// (`SESSION_COOKIE_NAME`), a zero lifetime, and so on.
    pub fn build(self) -> Result<SessionMiddleware, ConfigError> {
        if self.hash_ids_set && self.config.hash_ids && is_flask(&self.backend) {
            return Err(ConfigError::new(
                "SESSION_HASH_IDS",
                "must be false with a store in Flask-Session's layout: Flask-Session keys \
                 sessions by the id in clear",
            ));
        }
        Ok(SessionMiddleware::from_engine(session_core::Engine::new(
            self.backend,
            &self.config,
        )?))
    }
}

/// Whether `backend` is a store in Flask-Session's layout.
fn is_flask(backend: &Backend) -> bool {
    #[cfg(feature = "flask")]
    if let Backend::Store(store) = backend {
        return store.flask().is_some();
    }
    let _ = backend;
    false
}

/// The cookie crate's `SameSite`, as the configuration keeps it.
fn same_site(same_site: SameSite) -> session_core::SameSite {
    match same_site {
        SameSite::Strict => session_core::SameSite::Strict,
        SameSite::Lax => session_core::SameSite::Lax,
        SameSite::None => session_core::SameSite::None,
    }
}
