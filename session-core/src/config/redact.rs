//! Secrets kept out of logs: URLs without their passwords, and `Debug`
//! output of the configuration without `SECRET_KEY`.

use std::fmt;

use super::{SessionConfig, StoreConfig};

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |set: bool| if set { "<redacted>" } else { "<none>" };
        f.debug_struct("SessionConfig")
            .field("store", &self.store)
            .field("permanent", &self.permanent)
            .field("lifetime", &self.lifetime)
            .field("refresh_each_request", &self.refresh_each_request)
            .field("use_signer", &self.use_signer)
            .field(
                "secret_key",
                &format_args!("{}", secret(self.secret_key.is_some())),
            )
            .field(
                "secret_key_fallbacks",
                &format_args!("<{} redacted>", self.secret_key_fallbacks.len()),
            )
            .field("key_prefix", &self.key_prefix)
            .field("hash_ids", &self.hash_ids)
            .field("codec", &self.codec)
            .field("max_size", &self.max_size)
            .field("store_timeout", &self.store_timeout)
            .field("outage", &self.outage)
            .field("cookie_content", &self.cookie_content)
            .field("absolute_lifetime", &self.absolute_lifetime)
            .field("save_on_error", &self.save_on_error)
            .field("track_client", &self.track_client)
            .field("max_per_user", &self.max_per_user)
            .field("interop", &self.interop)
            .field("local_cache", &self.local_cache)
            .field("encrypt_at_rest", &self.encrypt_at_rest)
            .field("cookie", &self.cookie)
            .field("migrate_from", &self.migrate_from)
            .finish()
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory { max_sessions } => f
                .debug_struct("Memory")
                .field("max_sessions", max_sessions)
                .finish(),
            Self::Filesystem {
                dir,
                threshold,
                mode,
            } => f
                .debug_struct("Filesystem")
                .field("dir", dir)
                .field("threshold", threshold)
                .field("mode", &format_args!("{mode:#o}"))
                .finish(),
            Self::Redis { url, min_replicas } => f
                .debug_struct("Redis")
                .field("url", &redact_url(url))
                .field("min_replicas", min_replicas)
                .finish(),
            Self::Memcached { servers } => f
                .debug_struct("Memcached")
                .field("servers", servers)
                .finish(),
            Self::Sql { url, table } => f
                .debug_struct("Sql")
                .field("url", &url.as_deref().map(redact_url))
                .field("table", table)
                .finish(),
            Self::MongoDb {
                uri,
                db,
                collection,
            } => f
                .debug_struct("MongoDb")
                .field("uri", &redact_url(uri))
                .field("db", db)
                .field("collection", collection)
                .finish(),
            Self::Cookie => f.write_str("Cookie"),
            Self::Null => f.write_str("Null"),
        }
    }
}

/// Whether a URL query parameter named `name` carries a secret.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// A URL fit for a log line or an error message: the user-info part
/// (`user:password@`) and the value of every query parameter that looks
/// like a secret (`password`, `sslpassword`, `token`, `authSource`...) are
/// replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &base[..scheme], &base[at..])
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// The text of a failure to reach the store at `url`: the URL redacted,
/// and any secret of the URL that the driver's error repeats blanked out.
#[cfg_attr(
    not(any(
        feature = "redis",
        feature = "sql-postgres",
        feature = "sql-mysql",
        feature = "sql-sqlite",
        feature = "mongodb"
    )),
    allow(dead_code)
)]
pub(crate) fn redacted_failure(what: &str, url: &str, error: &dyn fmt::Display) -> String {
    let mut message = format!("{what} {}: {error}", redact_url(url));
    for secret in url_secrets(url) {
        message = message.replace(&secret, "***");
    }
    message
}

/// The secrets written in a URL: its password and secret-looking query
/// values, as written (drivers echo what they were given).
fn url_secrets(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    if let (Some(scheme), Some(at)) = (base.find("://"), base.rfind('@'))
        && at > scheme
        && let Some((_, password)) = base[scheme + 3..at].split_once(':')
    {
        secrets.push(password.to_owned());
    }
    for param in query.split('&') {
        if let Some((name, value)) = param.split_once('=')
            && is_secret_param(name)
        {
            secrets.push(value.to_owned());
        }
    }
    // Short strings would blank out unrelated text.
    secrets.retain(|s| s.len() >= 3);
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_no_secret() {
        let secret = "s3cr3t-signing-key-of-32-bytes-or-more";
        let fallback = "0ld-fallback-signing-key-of-32-bytes-or-more";
        // Each store keeps only its own URL: one configuration per store.
        let stores = [
            [
                ("SESSION_TYPE", "redis"),
                ("SESSION_REDIS", "redis://user:redispw@host:6379/0"),
            ],
            [
                ("SESSION_TYPE", "sql"),
                (
                    "SESSION_SQL_URL",
                    "postgres://app@db/test?sslmode=require&password=sqlpw",
                ),
            ],
            [
                ("SESSION_TYPE", "mongodb"),
                (
                    "SESSION_MONGODB",
                    "mongodb://u:mongopw@m/?authSource=admin&tlsCertificateKeyFilePassword=certpw",
                ),
            ],
        ];
        let mut text = String::new();
        for store in stores {
            let c = SessionConfig::from_source(
                [("SECRET_KEY", secret), ("SECRET_KEY_FALLBACKS", fallback)]
                    .into_iter()
                    .chain(store),
            )
            .unwrap();
            text.push_str(&format!("{c:?} {c:#?} "));
        }
        for leaked in [secret, fallback, "redispw", "sqlpw", "mongopw", "certpw"] {
            assert!(!text.contains(leaked), "{leaked} is in {text}");
        }
        assert!(text.contains("<redacted>"), "{text}");
        assert!(
            text.contains("sslmode=require"),
            "harmless parameters stay: {text}"
        );
        assert!(text.contains("host:6379"), "{text}");
    }

    #[test]
    fn urls_lose_passwords_and_secret_parameters() {
        assert_eq!(
            redact_url("redis://user:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            redact_url("postgres://db/test?user=app&password=pw&sslmode=require"),
            "postgres://db/test?user=app&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("mysql://u:p@h/d?sslpassword=x&PASSWORD=y"),
            "mysql://***@h/d?sslpassword=***&PASSWORD=***"
        );
        let message = redacted_failure(
            "cannot use",
            "postgres://u:hunter22@h/d?password=swordfish",
            &"connection to postgres://u:hunter22@h/d?password=swordfish refused",
        );
        assert!(
            !message.contains("hunter22") && !message.contains("swordfish"),
            "{message}"
        );
    }
}
