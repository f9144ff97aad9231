//! Session values encrypted at rest (`SESSION_ENCRYPT_AT_REST`), under a
//! key only the holder of the session's cookie has.
//!
//! Store keys are hashes of the ids ([`StoreKey`](crate::StoreKey)), so a
//! dump of the store does not give the ids; with this on, it does not give
//! the values either. Each value is sealed on its own, with
//! XChaCha20-Poly1305, under a key derived for its session with
//! HKDF-SHA256:
//!
//! - input key material: the session id, which the store never sees;
//! - salt: a subkey of `SECRET_KEY` for this use, when one is set, so that
//!   a stolen dump and a cookie are not enough without the secret as well;
//! - associated data: the entry's key name, so a value copied to another
//!   key fails to open (as one copied to another session does: its key is
//!   another).
//!
//! A sealed value is `0xC1 0x01 nonce(24) ciphertext tag(16)`: 42 bytes
//! more than the value. `0xC1` begins no JSON text and no MessagePack
//! value, so a value written in clear (before the option was on) is told
//! apart from a sealed one without a flag.
//!
//! What stays in clear, because a store or a user's index needs it without
//! the id: the store key (a hash), the expiry and creation time the store
//! keeps, the entries' key names, and the session's [metadata](crate::meta)
//! (its own permanence and lifetime, the user it is bound to and when it
//! was last seen).
//!
//! The metadata is in clear but not open to change: each metadata value is
//! stored as `0xC1 0x02 nonce(24) tag(16) value`, the tag an
//! XChaCha20-Poly1305 seal of nothing under the session's key, with the
//! entry's name and the value as associated data. A user's index reads the
//! value after the header ([`meta::clear`](crate::meta::clear)); the
//! session's own load checks the tag, and drops a metadata value whose tag
//! does not check (changed in the store, or moved from another session or
//! entry) and, in [`EncryptAtRest::Strict`], one without a tag: someone who
//! can write to the store cannot bind a session to a user, nor give it a
//! lifetime of their choosing.
//!
//! A value that does not open (moved, changed in the store, or sealed
//! under a secret that is no longer `SECRET_KEY` nor among
//! `SECRET_KEY_FALLBACKS`) is read as absent, with a warning; never an
//! error.

// Public items here are reached by the crate's engine and stores, and by
// tests through `testing::layout` (feature `testing`).
#![cfg_attr(not(feature = "testing"), allow(unreachable_pub))]

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::Bytes;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::id::SessionId;
use crate::meta::{TAG_HEADER, TAG_OVERHEAD, is_metadata};
use crate::signing::{WeakSecret, subkeys};
use crate::store::ChangeSet;

/// Whether session values are sealed at rest: the value of
/// `SESSION_ENCRYPT_AT_REST`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncryptAtRest {
    /// `false`: values are written in clear. Values sealed while the
    /// option was on still open (with the same secrets), and are written
    /// in clear when next written: turning it off logs no one out. The
    /// default.
    #[default]
    Off,
    /// `true`: values are sealed when written. Values written in clear
    /// before still load, and are sealed when next written: turning it on
    /// logs no one out.
    On,
    /// `strict`: values are sealed when written, and a value in clear is
    /// read as absent. For once every session has been written since the
    /// option was turned on (or one lifetime has passed): then nobody with
    /// write access to the store can plant a value in clear either.
    Strict,
}

impl From<bool> for EncryptAtRest {
    fn from(on: bool) -> Self {
        if on { Self::On } else { Self::Off }
    }
}

impl EncryptAtRest {
    /// Whether values are sealed when written.
    pub fn seals(self) -> bool {
        self != Self::Off
    }

    /// What each value weighs more once stored, as `SESSION_MAX_SIZE`
    /// counts it: [`OVERHEAD`] when values are sealed, else 0.
    pub fn overhead(self) -> usize {
        if self.seals() { OVERHEAD } else { 0 }
    }
}

/// The first byte of a sealed value: `0xC1` starts no JSON text (it is
/// not UTF-8) and no MessagePack value ("never used").
const MAGIC: u8 = 0xC1;
/// The format's version, bound into every seal as associated data.
const VERSION: u8 = 1;
/// The second byte of a metadata value's tag header.
const META_VERSION: u8 = TAG_HEADER[1];
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// What sealing adds to a value: the two header bytes, the nonce and the tag.
pub const OVERHEAD: usize = 2 + NONCE_LEN + TAG_LEN;
/// The subkey purpose of the HKDF salt made from a secret.
const SALT_PURPOSE: &str = "at-rest-salt";
/// HKDF's `info`: what the derived key is for.
const INFO: &[u8] = b"actix-server-session/at-rest/v1";

/// Whether `value` was sealed, by its first byte (which no codec writes):
/// one that does not open, a version this one does not know included, is
/// dropped rather than read in clear.
pub fn is_sealed(value: &[u8]) -> bool {
    value.first() == Some(&MAGIC)
}

/// What [`AtRest::open_entries`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Values that were sealed and opened.
    pub opened: usize,
    /// Values that opened under a fallback secret only: they are sealed
    /// under the current one when next written.
    pub stale: usize,
    /// Values dropped: sealed ones that did not open, and (in
    /// [`EncryptAtRest::Strict`]) ones in clear.
    pub dropped: usize,
    /// Metadata values read in clear, without a tag, while the mode seals
    /// ([`EncryptAtRest::On`]: written before the option was on): the
    /// session's next write is to tag them, so that `strict` can come.
    pub metadata_in_clear: usize,
}

/// A key derived for a session: the salt and id it was derived from, and
/// its cipher.
type Derived = (Option<[u8; 32]>, SessionId, XChaCha20Poly1305);

/// Seals and opens session values for one middleware: the mode, and the
/// salts of the current secret and its fallbacks.
#[derive(Clone)]
pub struct AtRest {
    mode: EncryptAtRest,
    /// HKDF salts: the current secret's first, then the fallbacks'; one
    /// `None` when no secret is set.
    salts: Vec<Option<[u8; 32]>>,
}

impl std::fmt::Debug for AtRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtRest")
            .field("mode", &self.mode)
            .field("secrets", &self.salts.iter().flatten().count())
            .finish()
    }
}

impl AtRest {
    /// Seals values as `mode` says, under keys derived from each session's
    /// id and, if given, `secret`; values sealed under one of `fallbacks`
    /// still open.
    ///
    /// # Errors
    ///
    /// [`WeakSecret`] if `secret` or a fallback is shorter than
    /// [`MIN_SECRET_LEN`](crate::signing::MIN_SECRET_LEN) bytes.
    pub fn new<F>(
        mode: EncryptAtRest,
        secret: Option<&str>,
        fallbacks: F,
    ) -> Result<Self, WeakSecret>
    where
        F: IntoIterator,
        F::Item: AsRef<str>,
    {
        let salts = match secret {
            None => vec![None],
            Some(secret) => subkeys(SALT_PURPOSE, secret, fallbacks)?
                .into_iter()
                .map(Some)
                .collect(),
        };
        Ok(Self { mode, salts })
    }

    /// The mode.
    pub fn mode(&self) -> EncryptAtRest {
        self.mode
    }

    /// The cipher of `id` under the salt at `index`. The current salt's
    /// last one is kept per thread: a request loads and saves its session
    /// on one worker thread, and derives its key once.
    fn cipher(&self, id: &SessionId, index: usize) -> XChaCha20Poly1305 {
        thread_local! {
            static LAST: RefCell<Option<Derived>> = const { RefCell::new(None) };
        }
        let salt = self.salts[index];
        let derive = || {
            let hkdf = Hkdf::<Sha256>::new(salt.as_ref().map(|s| &s[..]), id.as_str().as_bytes());
            let mut key = [0u8; 32];
            hkdf.expand(INFO, &mut key)
                .expect("32 bytes is a valid HKDF-SHA256 output length");
            XChaCha20Poly1305::new(&Key::from(key))
        };
        if index > 0 {
            return derive();
        }
        LAST.with_borrow_mut(|last| match last {
            Some((s, i, cipher)) if *s == salt && i == id => cipher.clone(),
            _ => {
                let cipher = derive();
                *last = Some((salt, id.clone(), cipher.clone()));
                cipher
            }
        })
    }

    /// Seals the values of `entries` (but the [metadata](crate::meta)'s)
    /// under `id`'s key, if the mode seals.
    pub fn seal_entries(&self, id: &SessionId, entries: &mut HashMap<String, Bytes>) {
        self.seal_all(
            id,
            entries
                .iter_mut()
                .map(|(name, value)| (name.as_str(), value)),
        );
    }

    /// Seals the values `changes` sets (but the [metadata](crate::meta)'s)
    /// under `id`'s key, if the mode seals.
    pub fn seal_changes(&self, id: &SessionId, changes: &mut ChangeSet) {
        self.seal_all(
            id,
            changes
                .set
                .iter_mut()
                .map(|(name, value)| (name.as_str(), value)),
        );
    }

    /// Seals each value in place, and tags the metadata's; the key is
    /// derived only if there is one to seal.
    fn seal_all<'a>(&self, id: &SessionId, values: impl Iterator<Item = (&'a str, &'a mut Bytes)>) {
        if !self.mode.seals() {
            return;
        }
        let mut cipher = None;
        for (name, value) in values {
            let cipher = cipher.get_or_insert_with(|| self.cipher(id, 0));
            *value = if is_metadata(name) {
                tag(cipher, name, value)
            } else {
                seal(cipher, name, value)
            };
        }
    }

    /// Opens the sealed values of `entries` under `id`'s key (trying the
    /// fallback secrets' keys for those the current one does not open);
    /// drops, with a warning, those that do not open, and (in
    /// [`EncryptAtRest::Strict`]) those in clear. Whatever the mode:
    /// values sealed while it was on still open once it is off.
    pub fn open_entries(&self, id: &SessionId, entries: &mut HashMap<String, Bytes>) -> Opened {
        let mut found = Opened::default();
        let strict = self.mode == EncryptAtRest::Strict;
        if !strict && !entries.values().any(|v| is_sealed(v)) {
            if self.mode.seals() {
                found.metadata_in_clear = entries.keys().filter(|k| is_metadata(k)).count();
            }
            return found;
        }
        let mut ciphers: Vec<Option<XChaCha20Poly1305>> = vec![None; self.salts.len()];
        entries.retain(|name, value| {
            if !is_sealed(value) {
                if strict {
                    tracing::warn!(
                        key = %name,
                        "a session value stored in clear was dropped (SESSION_ENCRYPT_AT_REST=strict)"
                    );
                    found.dropped += 1;
                    return false;
                }
                if self.mode.seals() && is_metadata(name) {
                    found.metadata_in_clear += 1;
                }
                return true;
            }
            let meta = is_metadata(name);
            let opened = (0..ciphers.len()).find_map(|i| {
                let cipher = ciphers[i].get_or_insert_with(|| self.cipher(id, i));
                if meta {
                    check(cipher, name, value).map(|plain| (i, plain))
                } else {
                    open(cipher, name, value).map(|plain| (i, plain))
                }
            });
            match opened {
                Some((index, plain)) => {
                    found.opened += 1;
                    found.stale += usize::from(index > 0);
                    *value = plain;
                    true
                }
                None => {
                    tracing::warn!(
                        key = %name,
                        "a sealed session value did not open (moved from another key or session, \
                         changed in the store, or sealed under a secret no longer configured): \
                         read as absent"
                    );
                    found.dropped += 1;
                    false
                }
            }
        });
        #[cfg(feature = "metrics")]
        if found.dropped > 0 {
            metrics::counter!("session_values_unopened_total").increment(found.dropped as u64);
        }
        found
    }
}

/// The associated data of the metadata value `value` stored under `name`.
fn meta_aad(name: &str, value: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(2 + name.len() + value.len());
    aad.push(META_VERSION);
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(value);
    aad
}

/// The metadata value `value` of the entry `name`, with a tag under
/// `cipher` before it: a seal of nothing, with the value in the
/// associated data.
fn tag(cipher: &XChaCha20Poly1305, name: &str, value: &[u8]) -> Bytes {
    sealed_with(cipher, TAG_HEADER, &[], &meta_aad(name, value), value)
}

/// The metadata value `tagged` holds, if its tag checks under `cipher` as
/// the entry `name`.
fn check(cipher: &XChaCha20Poly1305, name: &str, tagged: &Bytes) -> Option<Bytes> {
    if tagged.get(1) != Some(&META_VERSION) || tagged.len() < TAG_OVERHEAD {
        return None;
    }
    let value = tagged.slice(TAG_OVERHEAD..);
    opened_with(cipher, &tagged[2..TAG_OVERHEAD], &meta_aad(name, &value))
        .filter(Vec::is_empty)
        .map(|_| value)
}

/// `header`, a random nonce, `msg` sealed under `cipher` with `aad`, then
/// `tail`: what [`seal`] and [`tag`] write.
fn sealed_with(
    cipher: &XChaCha20Poly1305,
    header: [u8; 2],
    msg: &[u8],
    aad: &[u8],
    tail: &[u8],
) -> Bytes {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).expect("the operating system's random number generator failed");
    let sealed = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg, aad })
        .expect("XChaCha20-Poly1305 seals any value a session can hold");
    let mut out = Vec::with_capacity(2 + NONCE_LEN + sealed.len() + tail.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out.extend_from_slice(tail);
    Bytes::from(out)
}

/// What `body` (a nonce, then the sealed bytes) opens to under `cipher`
/// with `aad`: what [`open`] and [`check`] read.
fn opened_with(cipher: &XChaCha20Poly1305, body: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let (nonce, msg) = body.split_at_checked(NONCE_LEN)?;
    let nonce = XNonce::try_from(nonce).ok()?;
    cipher.decrypt(&nonce, Payload { msg, aad }).ok()
}

/// The associated data of a value stored under `name`.
fn aad(name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + name.len());
    aad.push(VERSION);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// `value`, sealed under `cipher` for the entry `name`.
fn seal(cipher: &XChaCha20Poly1305, name: &str, value: &[u8]) -> Bytes {
    sealed_with(cipher, [MAGIC, VERSION], value, &aad(name), &[])
}

/// The value `sealed` holds, if it opens under `cipher` as the entry `name`.
fn open(cipher: &XChaCha20Poly1305, name: &str, sealed: &[u8]) -> Option<Bytes> {
    if sealed.get(1) != Some(&VERSION) {
        return None;
    }
    opened_with(cipher, sealed.get(2..)?, &aad(name)).map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{LIFETIME_KEY, PERMANENT_KEY, USER_KEY};

    const SECRET: &str = "a secret of at least thirty-two bytes";
    const OLD: &str = "the secret before it, also 32 bytes long";

    fn entries(pairs: &[(&str, &str)]) -> HashMap<String, Bytes> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Bytes::from(v.to_string())))
            .collect()
    }

    fn at_rest(mode: EncryptAtRest, secret: Option<&str>, fallbacks: &[&str]) -> AtRest {
        AtRest::new(mode, secret, fallbacks).unwrap()
    }

    #[test]
    fn values_round_trip_and_show_nothing_in_clear() {
        let id = SessionId::generate();
        for secret in [None, Some(SECRET)] {
            let at_rest = at_rest(EncryptAtRest::On, secret, &[]);
            let plain = entries(&[("user", "\"ada@example.com\""), ("cart", "[1,2,3]")]);
            let mut stored = plain.clone();
            at_rest.seal_entries(&id, &mut stored);
            for (name, value) in &stored {
                assert!(is_sealed(value), "{name} is sealed");
                assert_eq!(value.len(), plain[name].len() + OVERHEAD);
                assert!(!value.windows(5).any(|w| w == b"ada@e" || w == b"[1,2,"));
            }
            assert_eq!(
                at_rest.open_entries(&id, &mut stored),
                Opened {
                    opened: 2,
                    ..Opened::default()
                }
            );
            assert_eq!(stored, plain);
        }
    }

    #[test]
    fn each_seal_has_its_own_nonce() {
        let id = SessionId::generate();
        let at_rest = at_rest(EncryptAtRest::On, None, &[]);
        let mut a = entries(&[("k", "1")]);
        let mut b = a.clone();
        at_rest.seal_entries(&id, &mut a);
        at_rest.seal_entries(&id, &mut b);
        assert_ne!(a["k"], b["k"]);
    }

    #[test]
    fn metadata_stays_readable_in_clear_and_is_tagged() {
        let id = SessionId::generate();
        let at_rest = at_rest(EncryptAtRest::Strict, Some(SECRET), &[]);
        let mut changes = ChangeSet {
            set: vec![
                (
                    USER_KEY.to_owned(),
                    Bytes::from_static(b"{\"user\":\"ann\"}"),
                ),
                (PERMANENT_KEY.to_owned(), Bytes::from_static(b"true")),
                ("k".to_owned(), Bytes::from_static(b"1")),
            ],
            ..ChangeSet::default()
        };
        at_rest.seal_changes(&id, &mut changes);
        assert_eq!(crate::meta::clear(&changes.set[0].1), "{\"user\":\"ann\"}");
        assert_eq!(crate::meta::clear(&changes.set[1].1), "true");
        assert_eq!(changes.set[1].1.len(), 4 + TAG_OVERHEAD);
        assert!(is_sealed(&changes.set[2].1));
        let mut stored: HashMap<_, _> = changes.set.into_iter().collect();
        let found = at_rest.open_entries(&id, &mut stored);
        assert_eq!((found.opened, found.dropped), (3, 0));
        assert_eq!(stored[USER_KEY], "{\"user\":\"ann\"}");
        assert_eq!(stored[PERMANENT_KEY], "true");
    }

    #[test]
    fn metadata_changed_moved_or_planted_in_the_store_is_dropped() {
        let id = SessionId::generate();
        let strict = at_rest(EncryptAtRest::Strict, Some(SECRET), &[]);
        let on = at_rest(EncryptAtRest::On, Some(SECRET), &[]);
        let mut stored = entries(&[(USER_KEY, "{\"user\":\"ann\"}"), (LIFETIME_KEY, "60")]);
        strict.seal_entries(&id, &mut stored);

        // The clear copy changed behind the tag: another user.
        let mut changed = stored.clone();
        let mut bytes = changed[USER_KEY].to_vec();
        let at = bytes.len() - 3;
        bytes[at] = b'o';
        changed.insert(USER_KEY.to_owned(), Bytes::from(bytes));
        for mode in [&strict, &on] {
            let mut changed = changed.clone();
            assert_eq!(mode.open_entries(&id, &mut changed).dropped, 1);
            assert!(!changed.contains_key(USER_KEY));
            assert_eq!(changed[LIFETIME_KEY], "60");
        }
        // A tagged value moved to another entry, or to another session.
        let mut moved = entries(&[]);
        moved.insert(PERMANENT_KEY.to_owned(), stored[LIFETIME_KEY].clone());
        assert_eq!(on.open_entries(&id, &mut moved).dropped, 1);
        let mut elsewhere = stored.clone();
        assert_eq!(
            on.open_entries(&SessionId::generate(), &mut elsewhere)
                .dropped,
            2
        );
        // Planted in clear: dropped in strict, kept (written before the
        // option) otherwise.
        let planted = entries(&[
            (USER_KEY, "{\"user\":\"root\"}"),
            (LIFETIME_KEY, "31536000"),
        ]);
        let mut strictly = planted.clone();
        assert_eq!(strict.open_entries(&id, &mut strictly).dropped, 2);
        assert!(strictly.is_empty());
        let mut leniently = planted.clone();
        assert_eq!(on.open_entries(&id, &mut leniently).dropped, 0);
        assert_eq!(leniently, planted);
    }

    #[test]
    fn a_value_moved_to_another_key_or_session_or_changed_does_not_open() {
        let id = SessionId::generate();
        let other = SessionId::generate();
        let at_rest = at_rest(EncryptAtRest::On, Some(SECRET), &[]);
        let mut stored = entries(&[("role", "\"user\""), ("admin", "false")]);
        at_rest.seal_entries(&id, &mut stored);

        // The value of `role` copied over `admin`.
        let mut moved = stored.clone();
        moved.insert("admin".to_owned(), stored["role"].clone());
        let found = at_rest.open_entries(&id, &mut moved);
        assert_eq!((found.opened, found.dropped), (1, 1));
        assert!(!moved.contains_key("admin"));

        // The whole record under another session's id.
        let mut elsewhere = stored.clone();
        assert_eq!(at_rest.open_entries(&other, &mut elsewhere).dropped, 2);
        assert!(elsewhere.is_empty());

        // Any byte changed but the first (then it is no sealed value,
        // and reads as one in clear, which strict mode drops).
        for at in [1, 2, 30, stored["role"].len() - 1] {
            let mut bytes = stored["role"].to_vec();
            bytes[at] ^= 0x01;
            let mut changed = entries(&[]);
            changed.insert("role".to_owned(), Bytes::from(bytes));
            assert_eq!(
                at_rest.open_entries(&id, &mut changed).dropped,
                1,
                "byte {at}"
            );
            assert!(changed.is_empty());
        }
        // Cut short.
        let mut cut = entries(&[]);
        cut.insert("role".to_owned(), stored["role"].slice(..OVERHEAD));
        assert_eq!(at_rest.open_entries(&id, &mut cut).dropped, 1);
    }

    #[test]
    fn the_secret_is_part_of_the_key_and_fallbacks_open() {
        let id = SessionId::generate();
        let mut stored = entries(&[("k", "1")]);
        at_rest(EncryptAtRest::On, Some(OLD), &[]).seal_entries(&id, &mut stored);

        let mut without = stored.clone();
        assert_eq!(
            at_rest(EncryptAtRest::On, None, &[])
                .open_entries(&id, &mut without)
                .dropped,
            1
        );
        let mut rotated_away = stored.clone();
        let found =
            at_rest(EncryptAtRest::On, Some(SECRET), &[]).open_entries(&id, &mut rotated_away);
        assert_eq!(
            found.dropped, 1,
            "the old secret is gone from the fallbacks"
        );

        let mut rotated = stored.clone();
        let found =
            at_rest(EncryptAtRest::On, Some(SECRET), &[OLD]).open_entries(&id, &mut rotated);
        assert_eq!((found.opened, found.stale, found.dropped), (1, 1, 0));
        assert_eq!(rotated["k"], "1");
    }

    #[test]
    fn values_in_clear_load_unless_strict_and_sealed_ones_open_when_off() {
        let id = SessionId::generate();
        let mut clear = entries(&[("k", "1")]);
        for mode in [EncryptAtRest::Off, EncryptAtRest::On] {
            let found = at_rest(mode, None, &[]).open_entries(&id, &mut clear);
            assert_eq!(found, Opened::default());
            assert_eq!(clear["k"], "1");
        }
        let found = at_rest(EncryptAtRest::Strict, None, &[]).open_entries(&id, &mut clear);
        assert_eq!(found.dropped, 1);
        assert!(clear.is_empty());

        let mut sealed = entries(&[("k", "1")]);
        at_rest(EncryptAtRest::On, None, &[]).seal_entries(&id, &mut sealed);
        at_rest(EncryptAtRest::Off, None, &[]).open_entries(&id, &mut sealed);
        assert_eq!(sealed["k"], "1", "turning the option off logs no one out");

        let mut written_off = entries(&[("k", "1")]);
        at_rest(EncryptAtRest::Off, None, &[]).seal_entries(&id, &mut written_off);
        assert_eq!(written_off["k"], "1", "off writes in clear");
    }

    #[test]
    fn codecs_never_write_the_sealed_header() {
        let json = crate::Codec::Json.encode(&"x").unwrap();
        assert_ne!(json[0], MAGIC);
        assert!(std::str::from_utf8(&[MAGIC]).is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let text = format!("{:?}", at_rest(EncryptAtRest::On, Some(SECRET), &[OLD]));
        assert_eq!(text, "AtRest { mode: On, secrets: 2 }");
    }
}
