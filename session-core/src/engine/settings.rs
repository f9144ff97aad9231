//! The settings the engine runs with, checked once at start-up.

use std::time::{Duration, SystemTime};

use super::Sessions;
use crate::config::CookieConfig;
use crate::keyspace::Keyspace;
use crate::seal::AtRest;
use crate::signing::Signer;
use crate::store::Backend;
use crate::{Codec, ConfigError, OutagePolicy, SessionConfig};

/// `config` as it applies to `backend`: a store in Flask-Session's layout
/// turns Flask-Session's interop on, with its ids in clear and its format;
/// `SESSION_INTEROP` without such a store is an error.
#[cfg_attr(not(feature = "flask"), allow(clippy::unnecessary_wraps))]
pub(super) fn interop(
    backend: &Backend,
    config: &SessionConfig,
) -> Result<SessionConfig, ConfigError> {
    #[cfg(feature = "flask")]
    if let Backend::Store(store) = backend
        && let Some(flask) = store.flask()
    {
        let mut config = config.clone();
        if config.interop.is_none() {
            // Given in code: Flask-Session's ids and format follow.
            config.interop = Some(crate::Interop::FlaskSession);
            config.hash_ids = false;
            config.codec = flask.format().codec();
        }
        if config.codec != flask.format().codec() {
            return Err(ConfigError::new(
                "SESSION_SERIALIZATION_FORMAT",
                format!("must be the store's format, {:?}", flask.format()),
            ));
        }
        if config.key_prefix != flask.key_prefix() {
            return Err(ConfigError::new(
                "SESSION_KEY_PREFIX",
                format!("must be the store's key prefix, {:?}", flask.key_prefix()),
            ));
        }
        return Ok(config);
    }
    if config.interop.is_some() {
        return Err(ConfigError::new(
            "SESSION_INTEROP",
            "needs a store in Flask-Session's layout: open it from SESSION_TYPE, or wrap it in \
             crate::flask::FlaskStore",
        ));
    }
    let _ = backend;
    Ok(config.clone())
}

/// Signs the ids in cookies (`SESSION_USE_SIGNER`).
#[derive(Debug)]
pub(crate) enum IdSigner {
    /// HMAC-SHA256 under a subkey of `SECRET_KEY`.
    Ours(Signer),
    /// As Flask-Session signs them (itsdangerous, HMAC-SHA1).
    #[cfg(feature = "flask")]
    Flask(crate::flask::FlaskSigner),
}

impl IdSigner {
    fn new(config: &SessionConfig, secret: &str) -> Result<Self, ConfigError> {
        let weak = |e: crate::signing::WeakSecret| ConfigError::new("SECRET_KEY", e.to_string());
        #[cfg(feature = "flask")]
        if config.interop.is_some() {
            return crate::flask::FlaskSigner::new(secret, &config.secret_key_fallbacks)
                .map(IdSigner::Flask)
                .map_err(weak);
        }
        Signer::new("session-id", secret, &config.secret_key_fallbacks)
            .map(IdSigner::Ours)
            .map_err(weak)
    }

    /// `id.tag`.
    pub(crate) fn sign(&self, id: &str) -> String {
        match self {
            IdSigner::Ours(s) => s.sign(id),
            #[cfg(feature = "flask")]
            IdSigner::Flask(s) => s.sign(id),
        }
    }

    /// The id of a signed value, and whether the current key signed it.
    pub(crate) fn verify_key<'a>(&self, signed: &'a str) -> Option<(&'a str, bool)> {
        match self {
            IdSigner::Ours(s) => s.verify_key(signed),
            #[cfg(feature = "flask")]
            IdSigner::Flask(s) => s.verify_key(signed),
        }
    }

    /// The length of a signed id: anything else is refused unread.
    pub(crate) fn signed_len(&self) -> usize {
        use crate::id::ID_LEN;
        match self {
            IdSigner::Ours(_) => 2 * ID_LEN + 1,
            #[cfg(feature = "flask")]
            IdSigner::Flask(_) => ID_LEN + 1 + crate::flask::TAG_LEN,
        }
    }
}

/// The settings the store cycle runs with, checked once at start-up.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) cookie: CookieConfig,
    pub(crate) permanent: bool,
    pub(crate) lifetime: Duration,
    pub(crate) refresh: bool,
    pub(crate) signer: Option<IdSigner>,
    /// Where sessions and this crate's own records live, and how records
    /// name sessions.
    pub(crate) keys: Keyspace,
    pub(crate) codec: Codec,
    pub(crate) max_size: usize,
    pub(crate) outage: OutagePolicy,
    pub(crate) absolute_lifetime: Option<Duration>,
    pub(crate) save_on_error: bool,
    pub(crate) track_client: bool,
    pub(crate) max_per_user: usize,
    /// Sessions are shared with a Flask app (`SESSION_INTEROP`): a stored
    /// session without `_permanent` is not permanent, and a new one gets
    /// it, as on the Flask side.
    pub(crate) flask: bool,
    /// Seals and opens values at rest (`SESSION_ENCRYPT_AT_REST`).
    pub(crate) at_rest: AtRest,
}

impl Settings {
    pub(super) fn new(config: &SessionConfig, sessions: &Sessions) -> Result<Self, ConfigError> {
        config.validate()?;
        let signer = match (&config.secret_key, config.use_signer) {
            (Some(secret), true) => Some(IdSigner::new(config, secret)?),
            _ => None,
        };
        let max_size = match sessions {
            Sessions::Store(_) => config.max_size,
            #[cfg(feature = "cookie")]
            Sessions::Cookie(store) => {
                if config.encrypt_at_rest.seals() {
                    return Err(ConfigError::new(
                        "SESSION_ENCRYPT_AT_REST",
                        "is for server-side stores: the cookie store seals the whole session \
                         in the cookie already; set it to false",
                    ));
                }
                config
                    .max_size
                    .min(store.max_session_size(&config.cookie.name))
            }
        };
        Ok(Self {
            cookie: config.cookie.clone(),
            permanent: config.permanent,
            lifetime: config.lifetime,
            refresh: config.refresh_each_request,
            signer,
            keys: config.keyspace()?,
            codec: config.codec,
            max_size,
            outage: config.outage,
            absolute_lifetime: config.absolute_lifetime,
            save_on_error: config.save_on_error,
            track_client: config.track_client,
            max_per_user: config.max_per_user,
            flask: config.interop.is_some(),
            at_rest: config.at_rest()?,
        })
    }

    /// The lifetime a session created at `created_at`, whose idle lifetime
    /// is `lifetime`, gets when it is written now: the idle lifetime, cut
    /// short by what the absolute lifetime leaves of it. `None`: the
    /// absolute lifetime has run out (or it is on and the creation time is
    /// unknown), so the session is over.
    pub(crate) fn ttl(
        &self,
        created_at: Option<SystemTime>,
        lifetime: Duration,
    ) -> Option<Duration> {
        let Some(absolute) = self.absolute_lifetime else {
            return Some(lifetime);
        };
        let end = created_at? + absolute;
        match end.duration_since(SystemTime::now()) {
            Ok(left) if !left.is_zero() => Some(lifetime.min(left)),
            _ => None,
        }
    }
}
