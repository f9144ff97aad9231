//! Session ids and the keys stores see.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Number of random bytes in a session id: 256 bits.
const ID_BYTES: usize = 32;

/// Length of a session id in its text form (base64url without padding).
pub const ID_LEN: usize = 43;

/// A session id: 256 bits from the operating system's CSPRNG.
///
/// Its text form is 43 characters of unpadded base64url. It is what the
/// cookie carries; stores never see it, only the [`StoreKey`] derived from it.
///
/// `Debug` does not print the id, so it cannot leak into logs by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// Generates a fresh id from the operating system's random source.
    ///
    /// # Panics
    ///
    /// Panics if the operating system cannot provide random bytes, as a
    /// session id from a weaker source would be a security hole.
    pub fn generate() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses an id from its text form, as found in a cookie.
    ///
    /// Returns `None` unless `text` is exactly 43 base64url characters that
    /// decode to 32 bytes: anything else a client sends is not an id.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != ID_LEN
            || !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        // The last character carries 4 padding bits that must be zero for the
        // text to be the canonical encoding of 32 bytes.
        let mut bytes = [0u8; ID_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(ID_BYTES) => Some(Self(text.to_owned())),
            _ => None,
        }
    }

    /// The id's text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(..)")
    }
}

/// The key under which a store keeps a session.
///
/// By default it is `prefix + hex(sha256(id))`: a store's contents (a
/// backup, a `KEYS *`, a leaked table) do not reveal ids that could be
/// replayed as cookies.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct StoreKey(String);

impl StoreKey {
    /// Derives the store key of `id`: `prefix + hex(sha256(id))`, or
    /// `prefix + id` when `hash_ids` is false.
    ///
    /// # Panics
    ///
    /// Never: 32 bytes always fit their 64 hex digits (the `expect`s
    /// state invariants).
    pub fn new(prefix: &str, id: &SessionId, hash_ids: bool) -> Self {
        let mut key = String::with_capacity(prefix.len() + 64);
        key.push_str(prefix);
        if hash_ids {
            let mut hex = [0u8; 64];
            hex::encode_to_slice(Sha256::digest(id.as_str().as_bytes()), &mut hex)
                .expect("64 hex digits hold 32 bytes");
            key.push_str(std::str::from_utf8(&hex).expect("hex is ASCII"));
        } else {
            key.push_str(id.as_str());
        }
        Self(key)
    }

    /// Wraps a key as it is, for stores' own tests and tools.
    pub fn from_raw(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A store key as logs show it. A key may hold a session id in clear
/// (`SESSION_HASH_IDS=false`, Flask-Session's layout), which is as good as
/// the cookie, so only the start of its SHA-256 is shown: enough to tell
/// two keys apart in a log, nothing to find the session by.
#[cfg_attr(not(any(feature = "memcached", feature = "flask")), allow(dead_code))]
pub(crate) fn fingerprint(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("sha256:{}", hex::encode(&digest[..6]))
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_43_chars_and_parse_back() {
        let id = SessionId::generate();
        assert_eq!(id.as_str().len(), ID_LEN);
        assert_eq!(SessionId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn generated_ids_differ() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| SessionId::generate()).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn parse_rejects_anything_but_a_canonical_id() {
        let good = SessionId::generate();
        let s = good.as_str();
        assert!(SessionId::parse("").is_none());
        assert!(SessionId::parse(&s[1..]).is_none(), "too short");
        assert!(SessionId::parse(&format!("{s}A")).is_none(), "too long");
        assert!(
            SessionId::parse(&format!("{}/", &s[1..])).is_none(),
            "bad char"
        );
        assert!(
            SessionId::parse(&format!("{}=", &s[1..])).is_none(),
            "padding"
        );
        assert!(
            SessionId::parse(&format!("../{}", &s[3..])).is_none(),
            "path"
        );
        // 'B' as the last char sets a padding bit: not canonical.
        let non_canonical = format!("{}B", &"A".repeat(42));
        assert!(SessionId::parse(&non_canonical).is_none());
        assert!(SessionId::parse(&"A".repeat(43)).is_some());
        assert!(SessionId::parse(&"é".repeat(21)).is_none());
    }

    #[test]
    fn store_key_is_prefix_plus_sha256_hex() {
        let id = SessionId::parse(&"A".repeat(43)).unwrap();
        let key = StoreKey::new("session:", &id, true);
        let expected = hex::encode(Sha256::digest("A".repeat(43).as_bytes()));
        assert_eq!(key.as_str(), format!("session:{expected}"));
        assert!(!key.as_str().contains(id.as_str()));
        assert_eq!(
            StoreKey::new("p:", &id, false).as_str(),
            format!("p:{}", "A".repeat(43))
        );
    }

    #[test]
    fn store_keys_display_as_their_text() {
        let key = StoreKey::from_raw("session:abc");
        assert_eq!(key.to_string(), "session:abc");
        assert_eq!(format!("{key}:moved"), "session:abc:moved");
    }

    #[test]
    fn debug_does_not_leak_the_id() {
        let id = SessionId::generate();
        assert_eq!(format!("{id:?}"), "SessionId(..)");
        assert!(!format!("{id:#?}").contains(id.as_str()));
    }
}
