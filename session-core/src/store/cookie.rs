//! The signed client-side cookie store.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Record;
use crate::codec::{decode_entries, encode_entries};
use crate::signing::{Signer, WeakSecret};

/// The most bytes a browser keeps for a cookie's name and value together.
pub const BROWSER_COOKIE_LIMIT: usize = 4096;

/// Keeps the whole session in the cookie, signed with HMAC-SHA256: Flask's
/// default session, without a server-side store.
///
/// The cookie holds the entries and an expiry time, base64url-encoded and
/// signed; a cookie whose signature fails, or whose signed expiry has
/// passed, is a fresh session. The contents are signed, not encrypted: the
/// user can read them, but not change them.
///
/// The browser holds the state, so two concurrent requests that change a
/// session each send back a whole cookie, and the browser keeps the last
/// one: this store cannot merge concurrent writes, and a logout cannot
/// revoke a copy of the cookie taken before it. Use a server-side store
/// when either matters. A session is limited to what fits in a 4 KiB cookie.
#[derive(Clone, Debug)]
pub struct CookieStore {
    signer: Signer,
}

impl CookieStore {
    /// Creates a cookie store signing with `secret`; cookies signed with one
    /// of `fallbacks` still verify (and are re-signed with `secret` when
    /// they next change).
    pub fn new<S, F>(secret: S, fallbacks: F) -> Result<Self, WeakSecret>
    where
        S: AsRef<[u8]>,
        F: IntoIterator,
        F::Item: AsRef<[u8]>,
    {
        Ok(Self {
            signer: Signer::new("cookie-store", secret, fallbacks)?,
        })
    }

    /// Encodes a session that lives for `ttl` into a cookie value.
    pub fn encode(&self, record: &Record, ttl: Duration) -> String {
        let expires = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(ttl)
            .as_secs();
        let mut raw = expires.to_le_bytes().to_vec();
        encode_entries(&record.entries, &mut raw);
        self.signer.sign(&URL_SAFE_NO_PAD.encode(raw))
    }

    /// Decodes a cookie value made by [`encode`](Self::encode); `None` if it
    /// is forged, garbled or expired.
    pub fn decode(&self, value: &str) -> Option<Record> {
        let payload = self.signer.verify(value)?;
        let raw = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let (expires, entries) = raw.split_first_chunk::<8>()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        if u64::from_le_bytes(*expires) <= now {
            return None;
        }
        let expires_at = UNIX_EPOCH + Duration::from_secs(u64::from_le_bytes(*expires));
        decode_entries(entries).map(|entries| Record {
            entries,
            expires_at: Some(expires_at),
            created_at: None,
        })
    }

    /// The largest session, in [`entry_size`](crate::codec::entry_size)
    /// units, whose cookie named `cookie_name` fits in a browser.
    pub fn max_session_size(cookie_name: &str) -> usize {
        let value_room = BROWSER_COOKIE_LIMIT.saturating_sub(cookie_name.len() + 1 + 44);
        // base64 turns 3 bytes into 4 characters; 8 bytes hold the expiry.
        (value_room / 4 * 3).saturating_sub(8)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::entry_size;

    const SECRET: &str = "a cookie secret of at least thirty-two bytes";

    fn store() -> CookieStore {
        CookieStore::new(SECRET, [] as [&str; 0]).unwrap()
    }

    fn record(value: &str) -> Record {
        Record::from(
            [("name".to_owned(), Bytes::copy_from_slice(value.as_bytes()))]
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )
    }

    #[test]
    fn round_trip() {
        let rec = record("\"nick\"");
        let value = store().encode(&rec, Duration::from_secs(60));
        let back = store().decode(&value).unwrap();
        assert_eq!(back.entries, rec.entries);
        let expires = back.expires_at.unwrap();
        assert!(expires > SystemTime::now() + Duration::from_secs(58));
        assert!(expires <= SystemTime::now() + Duration::from_secs(61));
    }

    #[test]
    fn forged_expired_and_garbage_values_are_rejected() {
        let s = store();
        let value = s.encode(&record("1"), Duration::from_secs(60));
        let (payload, tag) = value.rsplit_once('.').unwrap();
        let other = s.encode(&record("2"), Duration::from_secs(60));
        let (other_payload, _) = other.rsplit_once('.').unwrap();
        assert_eq!(s.decode(&format!("{other_payload}.{tag}")), None);
        assert_eq!(s.decode(payload), None);
        assert_eq!(s.decode(&s.encode(&record("1"), Duration::ZERO)), None);
        let other_key = CookieStore::new(
            "another secret of at least thirty-two bytes",
            [] as [&str; 0],
        );
        assert_eq!(other_key.unwrap().decode(&value), None);
        for bad in ["", "x", "x.y", "%%%.%%%"] {
            assert_eq!(s.decode(bad), None);
        }
    }

    #[test]
    fn rotated_keys_still_decode() {
        let old = store().encode(&record("1"), Duration::from_secs(60));
        let rotated =
            CookieStore::new("the new cookie secret, also long enough", [SECRET]).unwrap();
        assert_eq!(rotated.decode(&old).unwrap().entries, record("1").entries);
    }

    #[test]
    fn max_session_size_fits_a_browser_cookie() {
        let max = CookieStore::max_session_size("session");
        let value = "x".repeat(max - entry_size("name", b""));
        let cookie = store().encode(&record(&value), Duration::from_secs(60));
        assert!("session".len() + 1 + cookie.len() <= BROWSER_COOKIE_LIMIT);
        assert!(max > 3000);
    }
}
