//! The signed client-side cookie store.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Record;
use crate::codec::{decode_entries, encode_entries};
use crate::signing::{Signer, WeakSecret};

/// The most bytes a browser keeps for a cookie's name and value together.
pub const BROWSER_COOKIE_LIMIT: usize = 4096;

/// The payload starts with one little-endian `u64`: its top byte is the
/// format, the rest the expiry in seconds since the Unix epoch. Format 0
/// (the first, which had no creation time) is the expiry alone: a cookie it
/// wrote still decodes, without a creation time.
const FORMAT_SHIFT: u32 = 56;
const EXPIRY_MASK: u64 = (1 << FORMAT_SHIFT) - 1;
/// Format 1: the header is followed by the creation time.
const WITH_CREATED_AT: u64 = 1;
/// The creation time is 6 bytes of milliseconds since the Unix epoch
/// (enough until the year 10889): two bytes fewer than a `u64`, for a
/// cookie that must fit in 4 KiB.
const CREATED_AT_LEN: usize = 6;
/// The payload's bytes before the entries, at most.
const HEADER_LEN: usize = 8 + CREATED_AT_LEN;

/// Keeps the whole session in the cookie, signed with HMAC-SHA256: Flask's
/// default session, without a server-side store.
///
/// The cookie holds the entries, an expiry time and the session's creation
/// time, base64url-encoded and signed; a cookie whose signature fails, or
/// whose signed expiry has passed, is a fresh session. The contents are
/// signed, not encrypted: the user can read them, but not change them.
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
    ///
    /// # Errors
    ///
    /// [`WeakSecret`] if `secret` or a fallback is shorter than
    /// [`MIN_SECRET_LEN`](crate::signing::MIN_SECRET_LEN) bytes.
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

    /// Encodes a session that lives for `ttl` into a cookie value, with its
    /// entries and its [`created_at`](Record::created_at) (kept to the
    /// millisecond).
    pub fn encode(&self, record: &Record, ttl: Duration) -> String {
        let expires = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(ttl)
            .as_secs()
            .min(EXPIRY_MASK);
        let created_at = record.created_at.and_then(|t| {
            let millis = t.duration_since(UNIX_EPOCH).ok()?.as_millis();
            let bytes = u64::try_from(millis).ok()?.to_le_bytes();
            // A time past what 6 bytes hold is not a real one: leave it out.
            let (kept, over) = bytes.split_at(CREATED_AT_LEN);
            over.iter().all(|b| *b == 0).then(|| kept.to_vec())
        });
        let mut raw = Vec::with_capacity(HEADER_LEN + record.size());
        match created_at {
            Some(created_at) => {
                let head = (WITH_CREATED_AT << FORMAT_SHIFT) | expires;
                raw.extend_from_slice(&head.to_le_bytes());
                raw.extend_from_slice(&created_at);
            }
            // Format 0 says the same in fewer bytes.
            None => raw.extend_from_slice(&expires.to_le_bytes()),
        }
        encode_entries(&record.entries, &mut raw);
        self.signer.sign(&URL_SAFE_NO_PAD.encode(raw))
    }

    /// Decodes a cookie value made by [`encode`](Self::encode), or by the
    /// versions before it that did not record a creation time
    /// ([`created_at`](Record::created_at) is then `None`); `None` if it is
    /// forged, garbled or expired.
    pub fn decode(&self, value: &str) -> Option<Record> {
        let payload = self.signer.verify(value)?;
        let raw = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let (head, rest) = raw.split_first_chunk::<8>()?;
        let head = u64::from_le_bytes(*head);
        let (created_at, entries) = match head >> FORMAT_SHIFT {
            0 => (None, rest),
            WITH_CREATED_AT => {
                let (created_at, entries) = rest.split_first_chunk::<CREATED_AT_LEN>()?;
                let mut millis = [0; 8];
                millis[..CREATED_AT_LEN].copy_from_slice(created_at);
                let millis = Duration::from_millis(u64::from_le_bytes(millis));
                (Some(UNIX_EPOCH + millis), entries)
            }
            _ => return None,
        };
        let expires = head & EXPIRY_MASK;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        if expires <= now {
            return None;
        }
        decode_entries(entries).map(|entries| Record {
            entries,
            expires_at: Some(UNIX_EPOCH + Duration::from_secs(expires)),
            created_at,
        })
    }

    /// The largest session, in [`entry_size`](crate::codec::entry_size)
    /// units, whose cookie named `cookie_name` fits in a browser.
    pub fn max_session_size(cookie_name: &str) -> usize {
        let value_room = BROWSER_COOKIE_LIMIT.saturating_sub(cookie_name.len() + 1 + 44);
        // base64 turns 3 bytes into 4 characters; the header comes first.
        (value_room / 4 * 3).saturating_sub(HEADER_LEN)
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

    fn millis(t: SystemTime) -> u128 {
        t.duration_since(UNIX_EPOCH).unwrap().as_millis()
    }

    /// A creation time that is not a whole number of seconds, and not now.
    fn created() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_760_000_000_123)
    }

    /// A cookie as the format without a creation time wrote it.
    fn old_cookie(s: &CookieStore, rec: &Record, ttl: Duration) -> String {
        let expires = (SystemTime::now() + ttl)
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut raw = expires.to_le_bytes().to_vec();
        encode_entries(&rec.entries, &mut raw);
        s.signer.sign(&URL_SAFE_NO_PAD.encode(raw))
    }

    #[test]
    fn round_trip() {
        let rec = Record {
            created_at: Some(created() + Duration::from_micros(456)),
            ..record("\"nick\"")
        };
        let value = store().encode(&rec, Duration::from_secs(60));
        let back = store().decode(&value).unwrap();
        assert_eq!(back.entries, rec.entries);
        assert_eq!(back.created_at.map(millis), Some(millis(created())));
        let expires = back.expires_at.unwrap();
        assert!(expires > SystemTime::now() + Duration::from_secs(58));
        assert!(expires <= SystemTime::now() + Duration::from_secs(61));
    }

    #[test]
    fn a_session_without_a_creation_time_decodes_without_one() {
        let value = store().encode(&record("1"), Duration::from_secs(60));
        let back = store().decode(&value).unwrap();
        assert_eq!(back.created_at, None);
        assert_eq!(back.entries, record("1").entries);
    }

    #[test]
    fn cookies_of_the_format_without_created_at_still_decode() {
        let s = store();
        let rec = record("\"nick\"");
        let back = s.decode(&old_cookie(&s, &rec, Duration::from_secs(60)));
        let back = back.expect("an old cookie no longer decodes");
        assert_eq!(back.entries, rec.entries);
        assert_eq!(back.created_at, None);
        let expires = back.expires_at.unwrap();
        assert!(expires > SystemTime::now() + Duration::from_secs(58));
        assert_eq!(s.decode(&old_cookie(&s, &rec, Duration::ZERO)), None);
    }

    #[test]
    fn the_creation_time_is_signed() {
        let s = store();
        let rec = Record {
            created_at: Some(created()),
            ..record("1")
        };
        let value = s.encode(&rec, Duration::from_secs(60));
        let (payload, tag) = value.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(payload).unwrap();
        raw[8] ^= 1;
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(s.decode(&forged), None);
        // Signed anew, the same bytes decode: only the signature refused it.
        let resigned = s.signer.sign(&URL_SAFE_NO_PAD.encode(&raw));
        let back = s.decode(&resigned).unwrap().created_at.unwrap();
        assert_eq!(millis(back), millis(created()) ^ 1);
    }

    #[test]
    fn an_unknown_format_is_rejected() {
        let s = store();
        let expires = (SystemTime::now() + Duration::from_secs(60))
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut raw = ((2 << FORMAT_SHIFT) | expires).to_le_bytes().to_vec();
        raw.extend_from_slice(&[0; CREATED_AT_LEN]);
        assert_eq!(s.decode(&s.signer.sign(&URL_SAFE_NO_PAD.encode(raw))), None);
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
        let rec = Record {
            created_at: Some(SystemTime::now()),
            ..record(&value)
        };
        let cookie = store().encode(&rec, Duration::from_secs(60));
        assert!(store().decode(&cookie).unwrap().created_at.is_some());
        assert!("session".len() + 1 + cookie.len() <= BROWSER_COOKIE_LIMIT);
        assert!(max > 3000);
    }
}
