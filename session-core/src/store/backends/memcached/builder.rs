//! Configuring a [`MemcachedStore`]: its servers and their pools.

use std::io;
use std::time::Duration;

use async_memcached::{Client, Error as McError};
use deadpool::managed::{self, Metrics, Pool, RecycleError, RecycleResult};

use super::{MemcachedStore, Server};
#[cfg(doc)]
use crate::store::StoreError;

/// Configures a [`MemcachedStore`].
#[derive(Debug)]
#[must_use]
pub struct MemcachedStoreBuilder {
    pub(super) servers: Vec<String>,
    pub(super) pool_size: usize,
    pub(super) timeout: Duration,
    pub(super) max_item_size: usize,
}

/// Opens connections to one server for its pool.
pub(super) struct Connector {
    dsn: String,
}

impl managed::Manager for Connector {
    type Type = Client;
    type Error = McError;

    async fn create(&self) -> Result<Client, McError> {
        Client::new(&self.dsn).await
    }

    async fn recycle(&self, client: &mut Client, _: &Metrics) -> RecycleResult<McError> {
        if client.is_closed() {
            // An operation was cut short (a timeout, a broken connection):
            // the reply stream is out of step, so the connection is dropped.
            Err(RecycleError::message("the connection was closed"))
        } else {
            Ok(())
        }
    }
}

impl MemcachedStoreBuilder {
    /// The most connections to keep open to each server. Defaults to 16.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// The longest one call of the store may take (a `load`, an `apply` with
    /// all its tries), waiting for a free connection or opening one
    /// included; a call that takes longer fails with
    /// [`StoreError::Timeout`]. Defaults to 5 seconds, as
    /// `SESSION_STORE_TIMEOUT`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The servers' item size limit, their `-I` option: a session that would
    /// make a larger item (with its key and header) is refused before it is
    /// sent. Defaults to 1 MB, memcached's default.
    pub fn max_item_size(mut self, bytes: usize) -> Self {
        self.max_item_size = bytes;
        self
    }

    /// Creates the store. No connection is opened yet: a server that is
    /// down shows at first use (or with [`MemcachedStore::ping`]).
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] when there is no server,
    /// an address is empty or listed twice, or the pool size is 0.
    ///
    /// # Errors
    ///
    /// See above: [`io::ErrorKind::InvalidInput`] with the reason.
    pub fn build(self) -> io::Result<MemcachedStore> {
        let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
        if self.servers.is_empty() {
            return Err(invalid("no memcached server is given".to_owned()));
        }
        if self.pool_size == 0 {
            return Err(invalid(
                "the memcached pool size must be at least 1".to_owned(),
            ));
        }
        let mut servers: Vec<Server> = Vec::with_capacity(self.servers.len());
        for address in &self.servers {
            let address = address.trim();
            let name = address.strip_prefix("tcp://").unwrap_or(address);
            if name.is_empty() {
                return Err(invalid("a memcached server address is empty".to_owned()));
            }
            if servers.iter().any(|s| s.name == name) {
                return Err(invalid(format!("memcached server {name} is listed twice")));
            }
            // async-memcached parses addresses as URLs, which `127.0.0.1:11211`
            // is not: name the scheme unless one is given.
            let dsn = if name.contains("://") {
                name.to_owned()
            } else {
                format!("tcp://{name}")
            };
            let pool = Pool::builder(Connector { dsn })
                .max_size(self.pool_size)
                .build()
                .map_err(io::Error::other)?;
            servers.push(Server {
                name: name.to_owned(),
                pool,
            });
        }
        Ok(MemcachedStore {
            servers: servers.into(),
            timeout: self.timeout,
            max_item_size: self.max_item_size,
        })
    }
}
