//! Session ids signed as Flask-Session signs them (`SESSION_USE_SIGNER`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use crate::signing::{MIN_SECRET_LEN, WeakSecret, split_tag, verify_any};

type HmacSha1 = Hmac<Sha1>;

/// Length of a tag in its text form: 20 bytes as unpadded base64url.
pub const TAG_LEN: usize = 27;

/// Signs session ids exactly as Flask-Session 0.8 does with
/// `SESSION_USE_SIGNER=True`: itsdangerous's `Signer(SECRET_KEY,
/// salt="flask-session", key_derivation="hmac")`, that is
/// `sid + "." + base64url(HMAC-SHA1(HMAC-SHA1(SECRET_KEY, "flask-session"), sid))`.
///
/// SHA-1 is what Flask-Session uses; HMAC-SHA1 is still a sound MAC, and
/// the ids it signs are 256 random bits either way. Flask-Session signs
/// with its current `SECRET_KEY` only; this side also accepts the
/// fallback keys (and signs again with the current one), so a key can be
/// rotated here first.
///
/// ```
/// use session_core::flask::FlaskSigner;
///
/// // A test vector from Flask-Session itself (secret "k" * 32).
/// let signer = FlaskSigner::new("k".repeat(32), [""; 0]).unwrap();
/// assert_eq!(signer.sign("abc"), "abc.Uz7R3awaQesys0chcOS719Xpugg");
/// assert_eq!(signer.verify_key("abc.Uz7R3awaQesys0chcOS719Xpugg"), Some(("abc", true)));
/// ```
#[derive(Clone)]
pub struct FlaskSigner {
    current: HmacSha1,
    fallbacks: Vec<HmacSha1>,
}

impl FlaskSigner {
    /// A signer for `SECRET_KEY` (`current`) and the older keys that still
    /// verify.
    ///
    /// # Errors
    ///
    /// [`WeakSecret`] if a key is shorter than [`MIN_SECRET_LEN`] bytes:
    /// this crate refuses short secrets on both sides of the interop.
    pub fn new<S, F>(current: S, fallbacks: F) -> Result<Self, WeakSecret>
    where
        S: AsRef<[u8]>,
        F: IntoIterator,
        F::Item: AsRef<[u8]>,
    {
        Ok(Self {
            current: derive(current.as_ref())?,
            fallbacks: fallbacks
                .into_iter()
                .map(|secret| derive(secret.as_ref()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// `sid.tag`, signed with the current key.
    pub fn sign(&self, sid: &str) -> String {
        let mut mac = self.current.clone();
        mac.update(sid.as_bytes());
        let mut out = String::with_capacity(sid.len() + 1 + TAG_LEN);
        out.push_str(sid);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut out);
        out
    }

    /// The sid of a `sid.tag` signed with the current key (`true`) or a
    /// fallback (`false`); `None` for anything else. Tags are compared in
    /// constant time.
    pub fn verify_key<'a>(&self, signed: &'a str) -> Option<(&'a str, bool)> {
        let (sid, tag) = split_tag::<20>(signed)?;
        verify_any(&self.current, &self.fallbacks, sid, &tag)
    }
}

impl std::fmt::Debug for FlaskSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlaskSigner")
            .field("fallbacks", &self.fallbacks.len())
            .finish_non_exhaustive()
    }
}

/// itsdangerous's `key_derivation="hmac"`: the key is
/// HMAC-SHA1(secret, salt).
fn derive(secret: &[u8]) -> Result<HmacSha1, WeakSecret> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(WeakSecret { len: secret.len() });
    }
    let mut kdf = HmacSha1::new_from_slice(secret).expect("HMAC takes keys of any length");
    kdf.update(b"flask-session");
    let key = kdf.finalize().into_bytes();
    Ok(HmacSha1::new_from_slice(&key).expect("HMAC takes keys of any length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> FlaskSigner {
        FlaskSigner::new("k".repeat(32), [""; 0]).unwrap()
    }

    #[test]
    fn matches_flask_session_test_vectors() {
        let mut kdf = HmacSha1::new_from_slice("k".repeat(32).as_bytes()).unwrap();
        kdf.update(b"flask-session");
        assert_eq!(
            hex::encode(kdf.finalize().into_bytes()),
            "9edd4d008a05fb8c389dbb51a5a27dac8eeacc9c"
        );
        let s = signer();
        assert_eq!(s.sign("abc"), "abc.Uz7R3awaQesys0chcOS719Xpugg");
        let sid = "9ortbY5IJo0w1oecT72hNPMUNYfMldOBQZB1hXyGQ-g";
        let signed = "9ortbY5IJo0w1oecT72hNPMUNYfMldOBQZB1hXyGQ-g.unp3KlJgAqskwt9NrwOEqk1O-oY";
        assert_eq!(s.sign(sid), signed);
        assert_eq!(s.verify_key(signed), Some((sid, true)));
    }

    #[test]
    fn forged_and_garbled_values_fail() {
        let s = signer();
        let signed = s.sign("abc");
        for bad in [
            "",
            "abc",
            "abc.",
            "abd.Uz7R3awaQesys0chcOS719Xpugg",
            "abc.Uz7R3awaQesys0chcOS719Xpugh",
            "abc.Uz7R3awaQesys0chcOS719Xpug",
            "abc.Uz7R3awaQesys0chcOS719Xpugg=",
            "abc.Uz7R3awaQesys0chcOS719Xpu+g",
        ] {
            assert_eq!(s.verify_key(bad), None, "{bad}");
        }
        let other = FlaskSigner::new("j".repeat(32), [""; 0]).unwrap();
        assert_eq!(other.verify_key(&signed), None);
    }

    #[test]
    fn fallback_keys_verify_and_say_so() {
        let old = signer();
        let rotated = FlaskSigner::new("n".repeat(32), ["k".repeat(32)]).unwrap();
        assert_eq!(rotated.verify_key(&old.sign("abc")), Some(("abc", false)));
        assert_eq!(
            rotated.verify_key(&rotated.sign("abc")),
            Some(("abc", true))
        );
        assert_eq!(format!("{rotated:?}"), "FlaskSigner { fallbacks: 1, .. }");
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(
            FlaskSigner::new("short", [""; 0]).unwrap_err(),
            WeakSecret { len: 5 }
        );
    }
}
