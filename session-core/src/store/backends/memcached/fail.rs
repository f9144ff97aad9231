//! How one try of an operation fails, and the errors a caller sees.

use std::fmt;

use async_memcached::Error as McError;
use deadpool::managed::Object;

use super::builder::Connector;
use super::{MAX_ATTEMPTS, Server};
use crate::store::StoreError;

/// Why one try of an operation failed.
pub(super) enum Fail {
    /// A pooled connection that had already served calls broke: the server
    /// probably restarted, and a new connection may well work.
    Stale(StoreError),
    /// Anything else.
    Store(StoreError),
}

impl Fail {
    pub(super) fn from_client(server: &Server, conn: &Object<Connector>, error: McError) -> Self {
        let broken = matches!(error, McError::Io(_) | McError::ConnectionClosed);
        let error = server.error(error);
        if broken && Object::metrics(conn).recycle_count > 0 {
            Fail::Stale(error)
        } else {
            Fail::Store(error)
        }
    }

    pub(super) fn into_store(self) -> StoreError {
        match self {
            Fail::Stale(e) | Fail::Store(e) => e,
        }
    }
}

/// A memcached server refused or failed a command.
#[derive(Debug, thiserror::Error)]
#[error("memcached {server}: {error}")]
pub(super) struct ServerError {
    pub(super) server: String,
    #[source]
    pub(super) error: McError,
}

/// A session too large for one memcached item.
#[derive(Debug)]
pub(super) struct TooLarge {
    pub(super) server: String,
    pub(super) size: usize,
    /// The store's limit, or `None` when the server refused the item.
    pub(super) limit: Option<usize>,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { server, size, .. } = self;
        write!(
            f,
            "the session is {size} bytes encoded, more than memcached {server} accepts for one item "
        )?;
        match self.limit {
            Some(limit) => write!(
                f,
                "({limit} bytes with its key and header: the store's max_item_size, \
                 which should match the server's -I option, 1 MB by default)"
            )?,
            None => f.write_str(
                "(its -I option, 1 MB by default, is smaller than the store's max_item_size)",
            )?,
        }
        f.write_str(": store less in it")
    }
}

impl std::error::Error for TooLarge {}

/// `apply` or `take` lost the cas race every time.
#[derive(Debug, thiserror::Error)]
#[error(
    "memcached {server}: the session changed under each of {MAX_ATTEMPTS} tries to write it; \
     too many requests are writing it at once"
)]
pub(super) struct Contended {
    pub(super) server: String,
}
