//! Where sessions live in a store, where this crate's own records live
//! beside them, and how those records name a session.
//!
//! A session lives under its [`StoreKey`]: `prefix + hex(sha256(id))`, or
//! `prefix + id` when ids are kept in clear (`SESSION_HASH_IDS=false`, and
//! Flask-Session's layout, `SESSION_INTEROP=flask-session`). Beside the
//! sessions this crate keeps records of its own: the note a login leaves
//! where a session used to be ([`logout`](crate::logout)), and each user's
//! index of sessions ([`users`](crate::users)). Two rules keep them safe in
//! every layout:
//!
//! - **They never hold a live session id.** They name a session by its
//!   store key ([`Keyspace::name`]). With hashed ids that is a hash, no use
//!   as a cookie. With ids in clear the store key *is* the cookie, so they
//!   hold it sealed with XChaCha20-Poly1305 under a subkey of `SECRET_KEY`
//!   (which those layouts require), bound to the record that holds it: a
//!   copy of the store, or a client that reads a record through another
//!   app, learns no session from it.
//! - **Nothing a client can address reaches them.** Flask-Session reads,
//!   writes and deletes `prefix + <the cookie's text>` for any cookie
//!   (without `SESSION_USE_SIGNER` it checks nothing of its shape), so in
//!   its layout this crate's records live under a prefix of their own,
//!   [`Keyspace::own_prefix`], which does not start with the sessions'
//!   prefix. In the other layouts a client only ever names a store key
//!   through an id that parses, which no record's key is.

// Public items here are reached by the crate's engine and stores, and by
// tests through `testing::layout` (feature `testing`).
#![cfg_attr(not(feature = "testing"), allow(unreachable_pub))]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::id::{SessionId, StoreKey};
use crate::signing::{subkey, subkeys};

/// Where a middleware's sessions and its own records live, and how its
/// records name sessions: see the module docs.
#[derive(Clone)]
pub struct Keyspace {
    prefix: String,
    own: String,
    /// Set when ids are in clear (not hashed): how records seal the keys
    /// they hold.
    sealer: Option<Sealer>,
}

impl std::fmt::Debug for Keyspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyspace")
            .field("prefix", &self.prefix)
            .field("own_prefix", &self.own)
            .field("hash_ids", &self.hash_ids())
            .finish()
    }
}

/// Why a [`Keyspace`] cannot be had: a setting it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} {message}")]
pub struct KeyspaceError {
    /// The configuration key at fault.
    pub key: &'static str,
    /// What is wrong with it.
    pub message: &'static str,
}

impl Keyspace {
    /// The keyspace of sessions under `prefix`, their ids hashed or not,
    /// and (with `apart`) this crate's own records kept out of the
    /// sessions' prefix, as Flask-Session's layout needs. With ids in
    /// clear, records seal the keys they hold under `secret` (and open
    /// those sealed under one of `fallbacks`).
    ///
    /// # Errors
    ///
    /// A `KeyspaceError` naming `SECRET_KEY` when ids are in clear and
    /// there is no secret (or one is too short), and `SESSION_KEY_PREFIX`
    /// when records must be kept apart from an empty prefix (every key
    /// would then be one a client can address).
    pub fn new<F>(
        prefix: &str,
        hash_ids: bool,
        apart: bool,
        secret: Option<&str>,
        fallbacks: F,
    ) -> Result<Self, KeyspaceError>
    where
        F: IntoIterator,
        F::Item: AsRef<str>,
    {
        if apart && prefix.is_empty() {
            return Err(KeyspaceError {
                key: "SESSION_KEY_PREFIX",
                message: "may not be empty with SESSION_INTEROP=flask-session: the Flask app \
                          addresses every key under it, and this crate's own records (login \
                          notes, users' indexes) must live where it cannot",
            });
        }
        let sealer = if hash_ids {
            None
        } else {
            const NEEDED: &str = "is required with session ids in clear at rest \
                                  (SESSION_HASH_IDS=false, SESSION_INTEROP): login notes and \
                                  users' indexes name sessions sealed under it";
            let secret = secret.ok_or(KeyspaceError {
                key: "SECRET_KEY",
                message: NEEDED,
            })?;
            let weak = KeyspaceError {
                key: "SECRET_KEY",
                message: "must be at least 32 bytes long",
            };
            let mac = subkey(MAC_PURPOSE, secret.as_bytes()).map_err(|_| weak.clone())?;
            let ciphers = subkeys(SEAL_PURPOSE, secret, fallbacks)
                .map_err(|_| weak)?
                .into_iter()
                .map(|k| XChaCha20Poly1305::new(&Key::from(k)))
                .collect();
            Some(Sealer { mac, ciphers })
        };
        let own = if apart {
            // Its first character differs from the prefix's: no key under
            // it starts with the prefix.
            let mark = if prefix.starts_with('~') { '!' } else { '~' };
            format!("{mark}{prefix}")
        } else {
            prefix.to_owned()
        };
        Ok(Self {
            prefix: prefix.to_owned(),
            own,
            sealer,
        })
    }

    /// A keyspace of hashed ids under `prefix`, with no secret: for
    /// stores' own tests and tools.
    #[cfg(any(test, feature = "testing"))]
    pub fn hashed(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            own: prefix.to_owned(),
            sealer: None,
        }
    }

    /// The sessions' prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether store keys hold ids hashed.
    pub fn hash_ids(&self) -> bool {
        self.sealer.is_none()
    }

    /// The store key of session `id`.
    pub fn session(&self, id: &SessionId) -> StoreKey {
        StoreKey::new(&self.prefix, id, self.hash_ids())
    }

    /// The store key of `user`'s index of sessions:
    /// `own prefix + "user:" + hex(sha256(user))`.
    pub fn user_index(&self, user: &str) -> StoreKey {
        StoreKey::from_raw(format!(
            "{}{USER_INDEX}{}",
            self.own,
            hex::encode(Sha256::digest(user.as_bytes()))
        ))
    }

    /// The store key of the note a login leaves where the session under
    /// `old` used to be: `own prefix + "moved:" + hex(sha256(old))`.
    pub fn move_note(&self, old: &StoreKey) -> StoreKey {
        StoreKey::from_raw(format!(
            "{}{MOVE_NOTE}{}",
            self.own,
            hex::encode(Sha256::digest(old.as_str().as_bytes()))
        ))
    }

    /// What kind of record of this crate's `key` is, if it is one.
    pub fn record_kind(&self, key: &StoreKey) -> Option<RecordKind> {
        let rest = key.as_str().strip_prefix(&self.own)?;
        if rest.starts_with(USER_INDEX) {
            Some(RecordKind::UserIndex)
        } else if rest.starts_with(MOVE_NOTE) {
            Some(RecordKind::MoveNote)
        } else {
            None
        }
    }

    /// How the record under `record` names the session under `session`:
    /// the store key itself when ids are hashed, else the key sealed and
    /// bound to `record`. The same inputs always give the same name, so a
    /// record can be written to again by name.
    ///
    /// # Panics
    ///
    /// Never: XChaCha20-Poly1305 seals any key a session can have.
    pub fn name(&self, record: &StoreKey, session: &StoreKey) -> String {
        let Some(sealer) = &self.sealer else {
            return session.as_str().to_owned();
        };
        let aad = aad(record);
        // A synthetic nonce (SIV): a MAC of what is sealed, so that the
        // same key is always named alike, and two keys never share a nonce.
        let mut mac = Hmac::<Sha256>::new_from_slice(&sealer.mac).expect("HMAC takes any key");
        mac.update(&(aad.len() as u64).to_be_bytes());
        mac.update(&aad);
        mac.update(session.as_str().as_bytes());
        let tag = mac.finalize().into_bytes();
        let nonce: [u8; NONCE_LEN] = tag[..NONCE_LEN].try_into().expect("24 of 32 bytes");
        let sealed = sealer.ciphers[0]
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: session.as_str().as_bytes(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any store key");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{SEALED_MARK}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The session key a [`name`](Self::name) in the record under `record`
    /// stands for; `None` for a name that does not open (changed, copied
    /// from another record, sealed under a secret no longer configured) or
    /// that this layout does not write.
    pub fn resolve(&self, record: &StoreKey, name: &str) -> Option<StoreKey> {
        self.resolve_fresh(record, name).map(|(key, _)| key)
    }

    /// [`resolve`](Self::resolve), and whether the name is as
    /// [`name`](Self::name) writes it now: `false` when it opened under a
    /// fallback secret only, and is to be written anew before that secret
    /// goes.
    pub fn resolve_fresh(&self, record: &StoreKey, name: &str) -> Option<(StoreKey, bool)> {
        let Some(sealer) = &self.sealer else {
            // Hashed ids: a name is the key.
            return Some((StoreKey::from_raw(name), true));
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(name.strip_prefix(SEALED_MARK)?)
            .ok()?;
        let (nonce, sealed) = bytes.split_at_checked(NONCE_LEN)?;
        let nonce = XNonce::try_from(nonce).ok()?;
        let aad = aad(record);
        sealer.ciphers.iter().enumerate().find_map(|(i, cipher)| {
            let plain = cipher
                .decrypt(
                    &nonce,
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .ok()?;
            String::from_utf8(plain)
                .ok()
                .map(|key| (StoreKey::from_raw(key), i == 0))
        })
    }
}

/// The kinds of record this crate keeps beside the sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordKind {
    /// A user's index of sessions.
    UserIndex,
    /// The note a login left where a session used to be.
    MoveNote,
}

/// The keys of a middleware's records when ids are in clear.
#[derive(Clone)]
struct Sealer {
    /// Derives the synthetic nonce.
    mac: [u8; 32],
    /// The current secret's cipher, then the fallbacks'.
    ciphers: Vec<XChaCha20Poly1305>,
}

/// What follows the own prefix in a user's index key.
const USER_INDEX: &str = "user:";
/// What follows the own prefix in a login note's key.
const MOVE_NOTE: &str = "moved:";
/// What starts a sealed name (no store key starts with it).
const SEALED_MARK: &str = "sealed:";
const NONCE_LEN: usize = 24;
const MAC_PURPOSE: &str = "record-names-nonce";
const SEAL_PURPOSE: &str = "record-names";

/// The associated data of a name in the record under `record`.
fn aad(record: &StoreKey) -> Vec<u8> {
    let mut aad = b"record-name/v1/".to_vec();
    aad.extend_from_slice(record.as_str().as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a secret of at least thirty-two bytes";
    const OLD: &str = "the secret before it, also 32 bytes long";

    fn clear(prefix: &str, apart: bool, secret: &str, fallbacks: &[&str]) -> Keyspace {
        Keyspace::new(prefix, false, apart, Some(secret), fallbacks).unwrap()
    }

    #[test]
    fn hashed_keyspaces_name_sessions_by_their_hashed_key() {
        let keys = Keyspace::hashed("session:");
        let id = SessionId::generate();
        let session = keys.session(&id);
        let index = keys.user_index("ann");
        assert_eq!(keys.name(&index, &session), session.as_str());
        assert_eq!(
            keys.resolve(&index, session.as_str()),
            Some(session.clone())
        );
        let hash = index.as_str().strip_prefix("session:user:").unwrap();
        assert_eq!(hash, hex::encode(Sha256::digest(b"ann")));
        assert_eq!(keys.record_kind(&index), Some(RecordKind::UserIndex));
        assert_eq!(
            keys.record_kind(&keys.move_note(&session)),
            Some(RecordKind::MoveNote)
        );
        assert_eq!(keys.record_kind(&session), None);
    }

    #[test]
    fn with_ids_in_clear_names_hold_no_id_and_open_only_in_their_record() {
        let keys = clear("session:", true, SECRET, &[]);
        let id = SessionId::generate();
        let session = keys.session(&id);
        assert!(session.as_str().contains(id.as_str()), "ids in clear");
        let note = keys.move_note(&session);
        let name = keys.name(&note, &session);
        assert!(!name.contains(id.as_str()));
        assert!(!note.as_str().contains(id.as_str()));
        assert_eq!(name, keys.name(&note, &session), "the same name each time");
        assert_eq!(keys.resolve(&note, &name), Some(session.clone()));

        let other = keys.move_note(&keys.session(&SessionId::generate()));
        assert_eq!(
            keys.resolve(&other, &name),
            None,
            "copied to another record"
        );
        let mut changed = name.clone().into_bytes();
        let last = changed.len() - 2;
        changed[last] = if changed[last] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(changed).unwrap();
        assert_eq!(keys.resolve(&note, &changed), None, "changed");
        assert_eq!(keys.resolve(&note, session.as_str()), None, "in clear");

        let rotated = clear(
            "session:",
            true,
            "a new secret, also thirty-two bytes",
            &[SECRET],
        );
        assert_eq!(
            rotated.resolve_fresh(&note, &name),
            Some((session.clone(), false)),
            "opens under the fallback, to be written anew"
        );
        assert_eq!(
            keys.resolve_fresh(&note, &name),
            Some((session.clone(), true))
        );
        let forgotten = clear(
            "session:",
            true,
            "a new secret, also thirty-two bytes",
            &[OLD],
        );
        assert_eq!(forgotten.resolve(&note, &name), None);
    }

    #[test]
    fn flask_records_live_where_no_cookie_addresses_them() {
        for prefix in ["session:", "~", "~~x", "!", "a"] {
            let keys = clear(prefix, true, SECRET, &[]);
            let session = keys.session(&SessionId::generate());
            for record in [keys.user_index("ann"), keys.move_note(&session)] {
                assert!(
                    !record.as_str().starts_with(prefix),
                    "{record} is under {prefix:?}"
                );
                assert!(keys.record_kind(&record).is_some());
            }
        }
        let hashed_apart = Keyspace::new("s:", true, false, None, [""; 0]).unwrap();
        assert!(
            hashed_apart
                .user_index("ann")
                .as_str()
                .starts_with("s:user:")
        );
    }

    #[test]
    fn ids_in_clear_need_a_secret_and_flask_a_prefix() {
        let error = Keyspace::new("s:", false, false, None, [""; 0]).unwrap_err();
        assert_eq!(error.key, "SECRET_KEY");
        let error = Keyspace::new("s:", false, false, Some("short"), [""; 0]).unwrap_err();
        assert_eq!(error.key, "SECRET_KEY");
        let error = Keyspace::new("", false, true, Some(SECRET), [""; 0]).unwrap_err();
        assert_eq!(error.key, "SESSION_KEY_PREFIX");
    }

    #[test]
    fn debug_shows_no_secret() {
        let text = format!("{:?}", clear("s:", false, SECRET, &[]));
        assert!(!text.contains("thirty"));
    }
}
