//! The memcached store as a [`BlobStore`]: Flask-Session's layout, one item
//! per session holding the serialized session as it is (flags 0, as
//! pymemcache writes bytes), under `SESSION_KEY_PREFIX` + the id.
//!
//! The compare-and-swap is memcached's own: the cas value read with the
//! item (`mg <key> v c t`) guards the write (`ms <key> C<cas>`) or the
//! delete (`md <key> C<cas>`).

use std::time::Duration;

use async_memcached::{Error as McError, MetaProtocol, MetaValue, Status};
use bytes::Bytes;

use super::wire::{expires_at, ttl_flag, wire_key};
use super::{Fail, MemcachedStore, Server};
use crate::StoreKey;
use crate::flask::{Blob, BlobStore};
use crate::store::{SessionStore, StoreError};

impl MemcachedStore {
    async fn get_once(&self, server: &Server, wire: &str) -> Result<Option<Blob>, Fail> {
        let mut conn = self.conn(server).await?;
        let reply = conn
            .meta_get(wire, false, None, Some(&["v", "c", "t"]))
            .await;
        let item = reply.map_err(|e| Fail::from_client(server, &conn, e))?;
        Ok(item.map(|item: MetaValue| Blob {
            expires_at: expires_at(&item),
            version: item.cas.unwrap_or(0),
            value: Bytes::from(item.data.unwrap_or_default()),
        }))
    }

    async fn replace_once(
        &self,
        server: &Server,
        wire: &str,
        cas: u64,
        value: Option<&[u8]>,
        ttl: &str,
    ) -> Result<bool, Fail> {
        let cas = format!("C{cas}");
        let mut conn = self.conn(server).await?;
        let reply = match value {
            Some(value) => {
                self.check_size(server, wire, value)?;
                let flags = [cas.as_str(), ttl];
                conn.meta_set(wire, value, false, None, Some(&flags))
                    .await
                    .map(drop)
            }
            None => {
                let flags = [cas.as_str()];
                conn.meta_delete(wire, false, None, Some(&flags))
                    .await
                    .map(drop)
            }
        };
        match reply {
            Ok(()) => Ok(true),
            // Changed (`EX`), or deleted or expired (`NF`), since it was read.
            Err(McError::Protocol(Status::Exists | Status::NotFound)) => Ok(false),
            Err(e) => Err(server.write_error(&conn, e, value.map_or(0, <[u8]>::len))),
        }
    }
}

impl BlobStore for MemcachedStore {
    async fn get(&self, key: &StoreKey) -> Result<Option<Blob>, StoreError> {
        let wire = wire_key(key.as_str());
        let server = self.pick(&wire);
        self.call(server, || self.get_once(server, &wire)).await
    }

    async fn insert(
        &self,
        key: &StoreKey,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let wire = wire_key(key.as_str());
        let server = self.pick(&wire);
        let ttl = ttl_flag(ttl);
        self.call(server, || self.create_once(server, &wire, value, &ttl))
            .await
    }

    async fn replace(
        &self,
        key: &StoreKey,
        current: &Blob,
        value: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let wire = wire_key(key.as_str());
        let server = self.pick(&wire);
        let ttl = ttl_flag(ttl);
        self.call(server, || {
            self.replace_once(server, &wire, current.version, value, &ttl)
        })
        .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        SessionStore::delete(self, key).await
    }
}
