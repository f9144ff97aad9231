//! How a store fails.

use std::time::Duration;

#[cfg(doc)]
use super::SessionStore;

/// A store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The null store was asked to write.
    #[error(
        "no session store is configured (SESSION_TYPE is `null`): set SESSION_TYPE to a real store to keep sessions"
    )]
    NotConfigured,
    /// The store did not answer in time.
    #[error("the session store did not answer within {0:?}")]
    Timeout(Duration),
    /// Reading or writing local storage failed.
    #[error("session store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// A store with a bounded size holds as many sessions in use as it may
    /// (sessions seen again after their creation are never evicted to make
    /// room for new ones), so a new session cannot be created.
    #[error(
        "the session store is full: {limit} sessions are in use ({setting}); raise it, or shorten the lifetime"
    )]
    Full {
        /// The configuration key that sets the bound.
        setting: &'static str,
        /// The bound.
        limit: usize,
    },
    /// The store cannot do this at all (for example list its sessions:
    /// [`SessionStore::scan`] on the cookie-free stores that keep no index).
    #[error("this session store cannot {0}")]
    Unsupported(&'static str),
    /// The store's backend reported an error.
    #[error("the session store failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps any backend error.
    pub fn backend(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Backend(error.into())
    }
}
