//! HMAC-SHA256 signing with key rotation.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// A secret is shorter than [`MIN_SECRET_LEN`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a signing secret must be at least {MIN_SECRET_LEN} bytes long, got {len}")]
pub struct WeakSecret {
    /// The length of the rejected secret.
    pub len: usize,
}

/// A signing secret (`SECRET_KEY`) checked to be long enough: at least
/// [`MIN_SECRET_LEN`] bytes.
///
/// ```
/// use session_core::signing::SigningKey;
///
/// // From configuration (an environment variable, a secrets manager):
/// let key = SigningKey::new("a secret of at least thirty-two bytes!!").unwrap();
/// assert!(SigningKey::new("too short").is_err());
/// // Or fresh for this process (sessions end when it restarts):
/// let key = SigningKey::generate();
/// ```
///
/// Its `Debug` output never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(String);

impl SigningKey {
    /// Checks `secret`.
    ///
    /// # Errors
    ///
    /// [`WeakSecret`] if it is shorter than [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: impl Into<String>) -> Result<Self, WeakSecret> {
        let secret = secret.into();
        long_enough(secret.as_bytes())?;
        Ok(Self(secret))
    }

    /// A key of 64 random bytes (as base64url text) from the operating
    /// system's generator. Sessions it signs are valid only as long as it
    /// is kept: use it for development and tests, and load a fixed key in
    /// production.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails.
    pub fn generate() -> Self {
        let mut raw = [0u8; 64];
        getrandom::fill(&mut raw).expect("the operating system's random number generator failed");
        Self(URL_SAFE_NO_PAD.encode(raw))
    }

    /// The secret, as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl TryFrom<String> for SigningKey {
    type Error = WeakSecret;

    fn try_from(secret: String) -> Result<Self, WeakSecret> {
        Self::new(secret)
    }
}

impl TryFrom<&str> for SigningKey {
    type Error = WeakSecret;

    fn try_from(secret: &str) -> Result<Self, WeakSecret> {
        Self::new(secret)
    }
}

impl From<SigningKey> for String {
    fn from(key: SigningKey) -> String {
        key.0
    }
}

/// Signs values with a current key and verifies them against it and any
/// number of fallback keys, so that keys can be rotated without logging
/// every user out (Django's `SECRET_KEY_FALLBACKS`).
///
/// Each use (`purpose`) derives its own subkey from the secret, so a tag
/// made for one use never verifies for another. Tags are compared in
/// constant time.
#[derive(Clone)]
pub struct Signer {
    current: HmacSha256,
    fallbacks: Vec<HmacSha256>,
}

impl Signer {
    /// Creates a signer for `purpose` from the current secret and the older
    /// secrets that must still verify.
    ///
    /// # Errors
    ///
    /// [`WeakSecret`] if `current` or a fallback is shorter than
    /// [`MIN_SECRET_LEN`] bytes.
    pub fn new<S, F>(purpose: &str, current: S, fallbacks: F) -> Result<Self, WeakSecret>
    where
        S: AsRef<[u8]>,
        F: IntoIterator,
        F::Item: AsRef<[u8]>,
    {
        Ok(Self {
            current: derive(purpose, current.as_ref())?,
            fallbacks: fallbacks
                .into_iter()
                .map(|secret| derive(purpose, secret.as_ref()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Returns `value.tag`, with the tag made by the current key.
    pub fn sign(&self, value: &str) -> String {
        let mut mac = self.current.clone();
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(value.len() + 44);
        out.push_str(value);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut out);
        out
    }

    /// Checks a `value.tag` made by [`sign`](Self::sign) with the current or
    /// a fallback key, and returns the value. Anything else is `None`.
    pub fn verify<'a>(&self, signed: &'a str) -> Option<&'a str> {
        self.verify_key(signed).map(|(value, _)| value)
    }

    /// Like [`verify`](Self::verify), and also says whether the tag was made
    /// by the current key (`true`) or a fallback (`false`): a value signed
    /// with a fallback should be signed again, so the old key can be
    /// dropped.
    pub fn verify_key<'a>(&self, signed: &'a str) -> Option<(&'a str, bool)> {
        let (value, tag) = split_tag::<32>(signed)?;
        verify_any(&self.current, &self.fallbacks, value, &tag)
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("fallbacks", &self.fallbacks.len())
            .finish_non_exhaustive()
    }
}

/// Splits `value.tag` and decodes the tag: `N` bytes as unpadded base64url
/// (43 characters for 32 bytes). Anything else is `None`.
pub(crate) fn split_tag<const N: usize>(signed: &str) -> Option<(&str, [u8; N])> {
    let (value, tag) = signed.rsplit_once('.')?;
    if tag.len() != (4 * N).div_ceil(3) {
        return None;
    }
    let mut raw = [0u8; N];
    (URL_SAFE_NO_PAD.decode_slice(tag, &mut raw).ok()? == N).then_some((value, raw))
}

/// `value` if `tag` is its MAC under `current` (then `true`) or one of the
/// `fallbacks` (`false`), compared in constant time.
pub(crate) fn verify_any<'a, M: Mac + Clone>(
    current: &M,
    fallbacks: &[M],
    value: &'a str,
    tag: &[u8],
) -> Option<(&'a str, bool)> {
    std::iter::once(current)
        .chain(fallbacks)
        .position(|key| {
            let mut mac = key.clone();
            mac.update(value.as_bytes());
            mac.verify_slice(tag).is_ok()
        })
        .map(|index| (value, index == 0))
}

fn derive(purpose: &str, secret: &[u8]) -> Result<HmacSha256, WeakSecret> {
    let subkey = subkey(purpose, secret)?;
    Ok(HmacSha256::new_from_slice(&subkey).expect("HMAC takes keys of any length"))
}

/// Refuses a secret shorter than [`MIN_SECRET_LEN`].
fn long_enough(secret: &[u8]) -> Result<(), WeakSecret> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(WeakSecret { len: secret.len() });
    }
    Ok(())
}

/// The 32-byte key for one use (`purpose`) of `secret`: HMAC-SHA256 of the
/// purpose under the secret, so that keys made for different uses are
/// unrelated.
pub(crate) fn subkey(purpose: &str, secret: &[u8]) -> Result<[u8; 32], WeakSecret> {
    long_enough(secret)?;
    let mut kdf = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    kdf.update(b"actix-server-session/");
    kdf.update(purpose.as_bytes());
    Ok(kdf.finalize().into_bytes().into())
}

/// The keys for `purpose` of the current secret, then of each fallback,
/// in that order (see [`subkey`]).
pub(crate) fn subkeys<F>(
    purpose: &str,
    current: &str,
    fallbacks: F,
) -> Result<Vec<[u8; 32]>, WeakSecret>
where
    F: IntoIterator,
    F::Item: AsRef<str>,
{
    let mut keys = vec![subkey(purpose, current.as_bytes())?];
    for fallback in fallbacks {
        keys.push(subkey(purpose, fallback.as_ref().as_bytes())?);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_keys_are_checked_and_never_shown() {
        assert_eq!(SigningKey::new("x".repeat(31)), Err(WeakSecret { len: 31 }));
        let key = SigningKey::new("k".repeat(32)).unwrap();
        assert_eq!(key.as_str(), "k".repeat(32));
        assert_eq!(format!("{key:?}"), "SigningKey(..)");
        let a = SigningKey::generate();
        let b = SigningKey::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 86, "64 bytes as unpadded base64url");
        assert!(Signer::new("p", a.as_str(), [""; 0]).is_ok());
        assert_eq!(String::from(key.clone()), key.as_str());
        assert_eq!(SigningKey::try_from("k".repeat(32).as_str()), Ok(key));
    }

    const OLD: &str = "an old secret of at least thirty-two bytes";
    const NEW: &str = "a new secret of at least thirty-two bytes!";

    #[test]
    fn round_trip() {
        let s = Signer::new("id", NEW, [OLD]).unwrap();
        let signed = s.sign("hello");
        assert!(signed.starts_with("hello."));
        assert_eq!(s.verify(&signed), Some("hello"));
    }

    #[test]
    fn fallback_keys_verify_and_removed_keys_do_not() {
        let old = Signer::new("id", OLD, [] as [&str; 0]).unwrap();
        let signed_old = old.sign("v");
        let rotated = Signer::new("id", NEW, [OLD]).unwrap();
        assert_eq!(rotated.verify(&signed_old), Some("v"));
        assert_eq!(rotated.verify_key(&signed_old), Some(("v", false)));
        assert_eq!(rotated.verify_key(&rotated.sign("v")), Some(("v", true)));
        let dropped = Signer::new("id", NEW, [] as [&str; 0]).unwrap();
        assert_eq!(dropped.verify(&signed_old), None);
    }

    #[test]
    fn tampering_and_garbage_fail() {
        let s = Signer::new("id", NEW, [] as [&str; 0]).unwrap();
        let signed = s.sign("value");
        let forged = signed.replacen("value", "valuf", 1);
        assert_eq!(s.verify(&forged), None);
        for bad in ["", ".", "value", "value.", "value.abc", "a.b.c", "é.é"] {
            assert_eq!(s.verify(bad), None, "{bad}");
        }
        let mut flipped = signed.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(s.verify(&flipped), None);
    }

    #[test]
    fn purposes_are_separated() {
        let a = Signer::new("id", NEW, [] as [&str; 0]).unwrap();
        let b = Signer::new("cookie", NEW, [] as [&str; 0]).unwrap();
        assert_eq!(b.verify(&a.sign("v")), None);
    }

    #[test]
    fn debug_shows_no_key() {
        let secret = "a signing secret of at least 32 bytes";
        let signer = Signer::new("p", secret, ["an older secret, also 32 bytes long"]).unwrap();
        let text = format!("{signer:?}");
        assert_eq!(text, "Signer { fallbacks: 1, .. }");
    }

    #[test]
    fn short_secrets_are_rejected() {
        assert_eq!(
            Signer::new("id", "short", [] as [&str; 0]).unwrap_err(),
            WeakSecret { len: 5 }
        );
        assert!(Signer::new("id", NEW, ["short"]).is_err());
    }
}
