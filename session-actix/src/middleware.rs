//! `SessionMiddleware`: configuration and the actix-web plumbing.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage};
use session_core::config::{CookieConfig, SameSite};
use session_core::signing::Signer;
use session_core::store::{Backend, DynSessionStore};
use session_core::{AnyStore, Codec, ConfigError, OutagePolicy, SessionConfig, SessionStore};

use crate::cycle;
use crate::extract::Slot;

/// The session middleware: register it with `App::new().wrap(...)`.
///
/// It runs the store cycle around every request: the session is loaded
/// lazily (only if a handler or extractor asks for it, at most once per
/// request), changes are recorded per key, and after the handler only the
/// changed keys are saved and the cookie is set or removed. A request that
/// never touches its session costs no store call and sends no cookie.
///
/// Choose the store in code:
///
/// ```no_run
/// use actix_web::{App, HttpServer};
/// use session_actix::{SessionMiddleware, store::memory::MemoryStore};
///
/// # async fn run() -> std::io::Result<()> {
/// // Create the store once, outside the factory, so all workers share it.
/// let sessions = SessionMiddleware::new(MemoryStore::new());
/// HttpServer::new(move || App::new().wrap(sessions.clone()))
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await
/// # }
/// ```
///
/// or Flask-style, from `SESSION_TYPE` and the other keys:
///
/// ```no_run
/// use session_actix::{SessionConfig, SessionMiddleware};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let sessions = SessionMiddleware::from_config(SessionConfig::from_env()?).await?;
/// # Ok(()) }
/// ```
pub struct SessionMiddleware<S = AnyStore> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for SessionMiddleware<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for SessionMiddleware<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("settings", &self.inner.shared.settings)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner<S> {
    pub(crate) backend: StoreOrCookie<S>,
    pub(crate) shared: Arc<Shared>,
}

pub(crate) enum StoreOrCookie<S> {
    Store(Arc<S>),
    #[cfg(feature = "cookie")]
    Cookie,
}

/// What every request of one middleware shares: settings, and the store in
/// the type-erased form the `Session` extractor loads through.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) loader: Loader,
}

pub(crate) enum Loader {
    Store(Arc<dyn DynSessionStore>),
    #[cfg(feature = "cookie")]
    Cookie(session_core::store::cookie::CookieStore),
}

/// The settings the store cycle runs with, checked once at start-up.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) cookie: CookieConfig,
    pub(crate) permanent: bool,
    pub(crate) lifetime: Duration,
    pub(crate) refresh: bool,
    pub(crate) signer: Option<Signer>,
    pub(crate) key_prefix: String,
    pub(crate) hash_ids: bool,
    pub(crate) codec: Codec,
    pub(crate) max_size: usize,
    pub(crate) timeout: Duration,
    pub(crate) outage: OutagePolicy,
    pub(crate) absolute_lifetime: Option<Duration>,
    pub(crate) save_on_error: bool,
}

impl Settings {
    fn new(config: &SessionConfig, cookie_store: bool) -> Result<Self, ConfigError> {
        config.validate()?;
        let signer = match (&config.secret_key, config.use_signer) {
            (Some(secret), true) => Some(
                Signer::new("session-id", secret, &config.secret_key_fallbacks)
                    .map_err(|e| ConfigError::new("SECRET_KEY", e.to_string()))?,
            ),
            _ => None,
        };
        let mut max_size = config.max_size;
        #[cfg(feature = "cookie")]
        if cookie_store {
            max_size = max_size.min(session_core::store::cookie::CookieStore::max_session_size(
                &config.cookie.name,
            ));
        }
        #[cfg(not(feature = "cookie"))]
        let _ = cookie_store;
        Ok(Self {
            cookie: config.cookie.clone(),
            permanent: config.permanent,
            lifetime: config.lifetime,
            refresh: config.refresh_each_request,
            signer,
            key_prefix: config.key_prefix.clone(),
            hash_ids: config.hash_ids,
            codec: config.codec,
            max_size,
            timeout: config.store_timeout,
            outage: config.outage,
            absolute_lifetime: config.absolute_lifetime,
            save_on_error: config.save_on_error,
        })
    }

    /// The lifetime a session created at `created_at` gets when it is
    /// written now: the idle lifetime, cut short by what the absolute
    /// lifetime leaves of it. `None`: the absolute lifetime has run out (or
    /// it is on and the creation time is unknown), so the session is over.
    pub(crate) fn ttl(&self, created_at: Option<SystemTime>) -> Option<Duration> {
        let Some(absolute) = self.absolute_lifetime else {
            return Some(self.lifetime);
        };
        let end = created_at? + absolute;
        match end.duration_since(SystemTime::now()) {
            Ok(left) if !left.is_zero() => Some(self.lifetime.min(left)),
            _ => None,
        }
    }
}

impl<S: SessionStore> SessionMiddleware<S> {
    /// A middleware on `store` with the default settings (Flask-Session's:
    /// permanent 31-day sessions, cookie `session`, HttpOnly, SameSite=Lax).
    pub fn new(store: S) -> Self {
        Self::builder(store)
            .build()
            .expect("the default settings are valid")
    }

    /// Starts configuring a middleware on `store`.
    pub fn builder(store: S) -> SessionMiddlewareBuilder<S> {
        SessionMiddlewareBuilder {
            backend: BuilderBackend::Store(store),
            config: SessionConfig::default(),
        }
    }
}

impl SessionMiddleware<AnyStore> {
    /// Opens the store that `config` names (`SESSION_TYPE`) and builds the
    /// middleware with every setting of `config`.
    ///
    /// Fails, naming the key to fix, if a setting is invalid or the store
    /// cannot be opened.
    pub async fn from_config(config: SessionConfig) -> Result<Self, ConfigError> {
        let backend = match session_core::store::open(&config).await? {
            Backend::Store(store) => BuilderBackend::Store(store),
            #[cfg(feature = "cookie")]
            Backend::Cookie(store) => BuilderBackend::Cookie(store),
            #[allow(unreachable_patterns)]
            _ => return Err(ConfigError::new("SESSION_TYPE", "unsupported store")),
        };
        SessionMiddlewareBuilder { backend, config }.build()
    }

    /// Starts configuring a middleware that keeps whole sessions in a
    /// signed cookie (see [`CookieStore`](session_core::store::cookie::CookieStore)
    /// for what that store cannot do).
    #[cfg(feature = "cookie")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cookie")))]
    pub fn cookie_store_builder(
        store: session_core::store::cookie::CookieStore,
    ) -> SessionMiddlewareBuilder<AnyStore> {
        SessionMiddlewareBuilder {
            backend: BuilderBackend::Cookie(store),
            config: SessionConfig::default(),
        }
    }
}

enum BuilderBackend<S> {
    Store(S),
    #[cfg(feature = "cookie")]
    Cookie(session_core::store::cookie::CookieStore),
}

/// Configures a [`SessionMiddleware`]; every setting has the default of
/// the matching [`SessionConfig`] field.
#[must_use]
pub struct SessionMiddlewareBuilder<S> {
    backend: BuilderBackend<S>,
    config: SessionConfig,
}

impl<S> std::fmt::Debug for SessionMiddlewareBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMiddlewareBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: SessionStore> SessionMiddlewareBuilder<S> {
    /// Replaces every setting with those of `config` (its `store` field is
    /// ignored: the store is the one given to the builder).
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
    /// false; turn it on in production.
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
        self.config.cookie.same_site = same_site;
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

    /// Signs the id in the cookie with HMAC-SHA256 under `secret` (at least
    /// 32 bytes). Defaults to no signing: ids are 256 random bits either way.
    pub fn signing_key(mut self, secret: impl Into<String>) -> Self {
        self.config.secret_key = Some(secret.into());
        self.config.use_signer = true;
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
    /// Defaults to true.
    pub fn hash_ids(mut self, hash: bool) -> Self {
        self.config.hash_ids = hash;
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

    /// Checks the settings and builds the middleware; the error names the
    /// setting (by its configuration key) that is wrong.
    pub fn build(self) -> Result<SessionMiddleware<S>, ConfigError> {
        let (backend, loader, cookie_store) = match self.backend {
            BuilderBackend::Store(store) => {
                let store = Arc::new(store);
                let loader: Arc<dyn DynSessionStore> = store.clone();
                (StoreOrCookie::Store(store), Loader::Store(loader), false)
            }
            #[cfg(feature = "cookie")]
            BuilderBackend::Cookie(store) => (StoreOrCookie::Cookie, Loader::Cookie(store), true),
        };
        let settings = Settings::new(&self.config, cookie_store)?;
        Ok(SessionMiddleware {
            inner: Arc::new(Inner {
                backend,
                shared: Arc::new(Shared { settings, loader }),
            }),
        })
    }
}

impl<S, Svc, B> Transform<Svc, ServiceRequest> for SessionMiddleware<S>
where
    S: SessionStore,
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = SessionService<S, Svc>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: Svc) -> Self::Future {
        ready(Ok(SessionService {
            service: Rc::new(service),
            inner: Arc::clone(&self.inner),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around an app's routes.
pub struct SessionService<S, Svc> {
    service: Rc<Svc>,
    inner: Arc<Inner<S>>,
}

impl<S, Svc> std::fmt::Debug for SessionService<S, Svc> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

impl<S, Svc, B> Service<ServiceRequest> for SessionService<S, Svc>
where
    S: SessionStore,
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let slot = Slot::new(Arc::clone(&inner.shared));
            req.extensions_mut().insert(slot.clone());
            let res = service.call(req).await?;
            Ok(cycle::finish(&inner, &slot, res).await)
        })
    }
}
