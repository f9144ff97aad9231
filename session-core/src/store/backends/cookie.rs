//! The client-side cookie store: the whole session in the cookie,
//! encrypted (the default) or signed.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};

use crate::codec::{decode_entries, encode_entries};
use crate::config::CookieContent;
use crate::signing::{Signer, WeakSecret, subkey};
use crate::store::Record;

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

/// A sealed cookie is `base64url(nonce || ciphertext || tag)`: a random
/// 24-byte XChaCha20 nonce, and Poly1305's 16-byte tag.
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// What a signed cookie adds to its payload's text: `.` and a 43-character tag.
const SIGNED_OVERHEAD: usize = 1 + 43;
/// The subkey purpose of the encryption key, and the associated data every
/// sealed cookie is bound to.
const SEAL_PURPOSE: &str = "cookie-store-seal";

/// Keeps the whole session in the cookie: Flask's default session, without
/// a server-side store.
///
/// The cookie holds the entries, an expiry time and the session's creation
/// time. By default ([`CookieContent::Encrypted`]) they are sealed with
/// XChaCha20-Poly1305 under a key derived from the secret for this use
/// only: the user can neither read nor change them. With
/// [`CookieContent::Signed`] they are base64url text signed with
/// HMAC-SHA256, which the user can read but not change. Either way a cookie
/// that does not open, or whose sealed or signed expiry has passed, is a
/// fresh session, and both kinds are read whatever the setting (a cookie of
/// the other kind, or made with a fallback key, is written anew in the
/// current kind and key on the next response), so switching costs no one
/// their session.
///
/// The browser holds the state, so two concurrent requests that change a
/// session each send back a whole cookie, and the browser keeps the last
/// one: this store cannot merge concurrent writes, and a logout cannot
/// revoke a copy of the cookie taken before it. Use a server-side store
/// when either matters. A session is limited to what fits in a 4 KiB cookie.
#[derive(Clone)]
pub struct CookieStore {
    signer: Signer,
    /// The current key first, then the fallbacks.
    sealers: Vec<XChaCha20Poly1305>,
    content: CookieContent,
}

impl fmt::Debug for CookieStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieStore")
            .field("content", &self.content)
            .field("fallbacks", &(self.sealers.len() - 1))
            .finish_non_exhaustive()
    }
}

impl CookieStore {
    /// Creates a cookie store that encrypts with a key derived from
    /// `secret`; cookies made with one of `fallbacks` still open (and are
    /// written anew with `secret` on the next response).
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
        let fallbacks: Vec<F::Item> = fallbacks.into_iter().collect();
        let sealers = std::iter::once(secret.as_ref())
            .chain(fallbacks.iter().map(AsRef::as_ref))
            .map(|secret| {
                let key = subkey(SEAL_PURPOSE, secret)?;
                Ok(XChaCha20Poly1305::new(&Key::from(key)))
            })
            .collect::<Result<_, WeakSecret>>()?;
        Ok(Self {
            signer: Signer::new("cookie-store", secret, &fallbacks)?,
            sealers,
            content: CookieContent::Encrypted,
        })
    }

    /// What the cookies this store writes hold: sealed (the default) or
    /// signed text (`SESSION_COOKIE_CONTENT`).
    #[must_use]
    pub fn with_content(mut self, content: CookieContent) -> Self {
        self.content = content;
        self
    }

    /// What the cookies this store writes hold.
    pub fn content(&self) -> CookieContent {
        self.content
    }

    /// Encodes a session that lives for `ttl` into a cookie value, with its
    /// entries and its [`created_at`](Record::created_at) (kept to the
    /// millisecond), sealed or signed as the store's content says.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails (a sealed
    /// cookie needs a fresh nonce).
    pub fn encode(&self, record: &Record, ttl: Duration) -> String {
        let raw = payload(record, ttl);
        match self.content {
            CookieContent::Signed => self.signer.sign(&URL_SAFE_NO_PAD.encode(raw)),
            CookieContent::Encrypted => {
                let mut nonce = [0u8; NONCE_LEN];
                getrandom::fill(&mut nonce)
                    .expect("the operating system's random number generator failed");
                let sealed = self.sealers[0]
                    .encrypt(
                        &XNonce::from(nonce),
                        Payload {
                            msg: &raw,
                            aad: SEAL_PURPOSE.as_bytes(),
                        },
                    )
                    .expect("a cookie-sized payload seals");
                let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
                URL_SAFE_NO_PAD.encode(out)
            }
        }
    }

    /// Decodes a cookie value made by [`encode`](Self::encode), sealed or
    /// signed, or by the versions before it (signed, some without a
    /// creation time: [`created_at`](Record::created_at) is then `None`);
    /// `None` if it is forged, garbled, expired or longer than a browser
    /// keeps.
    pub fn decode(&self, value: &str) -> Option<Record> {
        self.decode_fresh(value).map(|(record, _)| record)
    }

    /// Like [`decode`](Self::decode), and also says whether the cookie is
    /// as this store writes it now (`true`), or should be written anew: it
    /// was made with a fallback key, or is of the other content.
    pub fn decode_fresh(&self, value: &str) -> Option<(Record, bool)> {
        // The cheap checks first: nothing oversized reaches the crypto.
        if value.len() > BROWSER_COOKIE_LIMIT {
            return None;
        }
        let (raw, fresh) = if value.contains('.') {
            let (payload, current) = self.signer.verify_key(value)?;
            let raw = URL_SAFE_NO_PAD.decode(payload).ok()?;
            (raw, current && self.content == CookieContent::Signed)
        } else {
            let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
            if sealed.len() < NONCE_LEN + TAG_LEN {
                return None;
            }
            let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
            let nonce = XNonce::try_from(nonce).ok()?;
            let aad = SEAL_PURPOSE.as_bytes();
            let (index, raw) = self.sealers.iter().enumerate().find_map(|(i, key)| {
                let msg = ciphertext;
                key.decrypt(&nonce, Payload { msg, aad })
                    .ok()
                    .map(|raw| (i, raw))
            })?;
            (raw, index == 0 && self.content == CookieContent::Encrypted)
        };
        parse(&raw).map(|record| (record, fresh))
    }

    /// The largest session, in [`entry_size`](crate::codec::entry_size)
    /// units, whose cookie named `cookie_name` fits in a browser, as this
    /// store writes it.
    pub fn max_session_size(&self, cookie_name: &str) -> usize {
        let value_room = BROWSER_COOKIE_LIMIT.saturating_sub(cookie_name.len() + 1);
        // base64 turns 3 bytes into 4 characters; the header comes first.
        let raw_room = match self.content {
            CookieContent::Signed => value_room.saturating_sub(SIGNED_OVERHEAD) / 4 * 3,
            CookieContent::Encrypted => (value_room / 4 * 3).saturating_sub(NONCE_LEN + TAG_LEN),
        };
        raw_room.saturating_sub(HEADER_LEN)
    }
}

/// The bytes a cookie carries, before sealing or signing: the header (the
/// format and the expiry), the creation time, the entries.
fn payload(record: &Record, ttl: Duration) -> Vec<u8> {
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
    raw
}

/// The session in a payload made by [`payload`]; `None` if it is garbled
/// or has expired.
fn parse(raw: &[u8]) -> Option<Record> {
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::entry_size;

    const SECRET: &str = "a cookie secret of at least thirty-two bytes";

    /// A store writing signed cookies, whose format the older tests below
    /// take apart.
    fn store() -> CookieStore {
        sealed().with_content(CookieContent::Signed)
    }

    /// A store writing sealed cookies (the default).
    fn sealed() -> CookieStore {
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
        let rotated = CookieStore::new("the new cookie secret, also long enough", [SECRET])
            .unwrap()
            .with_content(CookieContent::Signed);
        let (back, fresh) = rotated.decode_fresh(&old).unwrap();
        assert_eq!(back.entries, record("1").entries);
        assert!(
            !fresh,
            "a cookie signed with a fallback key is to be signed anew"
        );
        let again = rotated.encode(&back, Duration::from_secs(60));
        assert!(rotated.decode_fresh(&again).unwrap().1);
        assert_eq!(store().decode(&again), None, "signed anew with the new key");
    }

    #[test]
    fn max_session_size_fits_a_browser_cookie() {
        let max = store().max_session_size("session");
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

    #[test]
    fn sealed_cookies_round_trip_and_show_nothing_of_the_session() {
        let s = sealed();
        let secret_text = "the-users-card-number-4111";
        let rec = Record {
            created_at: Some(created()),
            ..record(&format!("\"{secret_text}\""))
        };
        let value = s.encode(&rec, Duration::from_secs(60));
        assert!(
            !value.contains('.'),
            "sealed cookies are one base64url text"
        );
        let raw = URL_SAFE_NO_PAD.decode(&value).unwrap();
        let shown = String::from_utf8_lossy(&raw);
        for leak in [secret_text, "name", "card"] {
            assert!(!shown.contains(leak), "{leak:?} readable in the cookie");
            assert!(!value.contains(leak), "{leak:?} readable in the cookie");
        }
        let (back, fresh) = s.decode_fresh(&value).unwrap();
        assert!(fresh);
        assert_eq!(back.entries, rec.entries);
        assert_eq!(back.created_at.map(millis), Some(millis(created())));
        // The expiry is sealed too: an expired session does not open.
        assert_eq!(s.decode(&s.encode(&rec, Duration::ZERO)), None);
        // A fresh nonce each time: the same session seals differently.
        assert_ne!(s.encode(&rec, Duration::from_secs(60)), value);
    }

    #[test]
    fn any_change_to_a_sealed_cookie_gives_nothing() {
        let s = sealed();
        let value = s.encode(&record("1"), Duration::from_secs(60));
        let raw = URL_SAFE_NO_PAD.decode(&value).unwrap();
        for i in 0..raw.len() {
            for bit in [0x01, 0x80] {
                let mut forged = raw.clone();
                forged[i] ^= bit;
                assert_eq!(
                    s.decode(&URL_SAFE_NO_PAD.encode(&forged)),
                    None,
                    "byte {i} changed and the cookie still opened"
                );
            }
        }
        assert_eq!(
            s.decode(&URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1])),
            None
        );
        assert_eq!(
            s.decode(&URL_SAFE_NO_PAD.encode(&raw[..NONCE_LEN + TAG_LEN - 1])),
            None
        );
        let other = CookieStore::new("another secret of at least thirty-two bytes", [""; 0]);
        assert_eq!(other.unwrap().decode(&value), None, "another key opened it");
        // Oversized values are refused before any work.
        assert_eq!(s.decode(&"A".repeat(BROWSER_COOKIE_LIMIT + 1)), None);
    }

    #[test]
    fn sealed_cookies_of_a_fallback_key_open_and_are_sealed_anew() {
        let old = sealed().encode(&record("1"), Duration::from_secs(60));
        let rotated =
            CookieStore::new("the new cookie secret, also long enough", [SECRET]).unwrap();
        let (back, fresh) = rotated.decode_fresh(&old).unwrap();
        assert_eq!(back.entries, record("1").entries);
        assert!(!fresh, "a cookie of a fallback key is to be sealed anew");
        let again = rotated.encode(&back, Duration::from_secs(60));
        assert!(rotated.decode_fresh(&again).unwrap().1);
        assert_eq!(
            sealed().decode(&again),
            None,
            "sealed anew with the new key"
        );
    }

    #[test]
    fn switching_content_keeps_every_session() {
        let signed = store().encode(&record("1"), Duration::from_secs(60));
        let (back, fresh) = sealed().decode_fresh(&signed).unwrap();
        assert_eq!(back.entries, record("1").entries);
        assert!(!fresh, "a signed cookie is sealed on the next response");
        let sealed_value = sealed().encode(&record("2"), Duration::from_secs(60));
        let (back, fresh) = store().decode_fresh(&sealed_value).unwrap();
        assert_eq!(back.entries, record("2").entries);
        assert!(!fresh);
    }

    #[test]
    fn max_session_size_fits_a_browser_cookie_when_sealed() {
        let s = sealed();
        let max = s.max_session_size("session");
        let value = "x".repeat(max - entry_size("name", b""));
        let rec = Record {
            created_at: Some(SystemTime::now()),
            ..record(&value)
        };
        let cookie = s.encode(&rec, Duration::from_secs(60));
        assert!(s.decode(&cookie).unwrap().created_at.is_some());
        assert!("session".len() + 1 + cookie.len() <= BROWSER_COOKIE_LIMIT);
        assert!(max > 3000);
        assert_eq!(
            format!("{s:?}"),
            "CookieStore { content: Encrypted, fallbacks: 0, .. }"
        );
    }
}
