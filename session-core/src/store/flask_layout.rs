//! What a store in Flask-Session's layout tells the middleware.

#[cfg(doc)]
use super::SessionStore;
use crate::codec::Codec;

/// How a store in Flask-Session's layout keeps its sessions, as
/// [`SessionStore::flask_layout`] tells it: the middleware then speaks
/// Flask-Session's ids, cookies and values, in this format and under this
/// key prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlaskLayout {
    codec: Codec,
    key_prefix: String,
}

impl FlaskLayout {
    /// Sessions whose values are encoded with `codec`, under `key_prefix`.
    pub fn new(codec: Codec, key_prefix: impl Into<String>) -> Self {
        Self {
            codec,
            key_prefix: key_prefix.into(),
        }
    }

    /// The codec the sessions' values are encoded with.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The key prefix of the Flask app's sessions.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }
}
