//! The Redis store as a [`BlobStore`]: Flask-Session's layout, one Redis
//! string per session (`SET key value PX ttl`), read with `GET`.
//!
//! The compare-and-swap is a Lua script that compares the SHA-1 of the
//! stored value (`redis.sha1hex`) with the one read before writing, so the
//! old value is not sent back; the script touches the session's own key
//! only, so it works unchanged on Redis Cluster.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use redis::Script;
use sha1::{Digest, Sha1};

use super::{RedisStore, millis};
use crate::StoreKey;
use crate::flask::{Blob, BlobStore};
use crate::store::StoreError;

/// KEYS[1]: the value. ARGV: the SHA-1 (hex) of the value read, then the
/// new value and its lifetime in ms, or nothing to delete. Returns 1 when
/// written, 0 when the value changed or is gone.
static REPLACE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if not current or redis.sha1hex(current) ~= ARGV[1] then
    return 0
end
if ARGV[2] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
    redis.call('DEL', KEYS[1])
end
return 1
",
    )
});

fn sha1_hex(value: &[u8]) -> String {
    hex::encode(Sha1::digest(value))
}

impl BlobStore for RedisStore {
    async fn get(&self, key: &StoreKey) -> Result<Option<Blob>, StoreError> {
        let (value, pttl): (Option<Vec<u8>>, i64) = self
            .call(key, async |c| {
                redis::pipe()
                    .get(key.as_str())
                    .pttl(key.as_str())
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(value.map(|value| Blob {
            value: Bytes::from(value),
            expires_at: u64::try_from(pttl)
                .ok()
                .map(|ms| SystemTime::now() + Duration::from_millis(ms)),
            version: 0,
        }))
    }

    async fn insert(
        &self,
        key: &StoreKey,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let set: Option<String> = self
            .write(key, async |c| {
                redis::cmd("SET")
                    .arg(key.as_str())
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }

    async fn replace(
        &self,
        key: &StoreKey,
        current: &Blob,
        value: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let expected = sha1_hex(&current.value);
        let replaced: i64 = self
            .write(key, async |c| {
                let mut call = REPLACE.key(key.as_str());
                call.arg(&expected);
                if let Some(value) = value {
                    call.arg(value).arg(millis(ttl));
                }
                call.invoke_async(c).await
            })
            .await?;
        Ok(replaced == 1)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        crate::store::SessionStore::delete(self, key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_compares_the_digest_redis_computes() {
        // redis.sha1hex("") in redis-cli: da39a3ee5e6b4b0d3255bfef95601890afd80709.
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }
}
