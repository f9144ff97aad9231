//! Properties of everything in session-core that reads bytes a client or a
//! store hands back: session ids, signatures, the cookie store's payload,
//! the entry and value codecs, and the Flask-style configuration.
//!
//! Each property states what must hold for every input proptest generates.
//! Case counts are fixed (not read from `PROPTEST_CASES`) so the suite's
//! cost is known: [`CASES`] per property, [`SLOW_CASES`] where one case
//! builds large inputs.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::Config;

/// Cases per property.
const CASES: u32 = 512;
/// Cases per property whose inputs are large or nested.
const SLOW_CASES: u32 = 256;

/// No fallback keys.
const NONE: [&[u8]; 0] = [];

/// Any text of up to `max` characters, control and non-ASCII ones included.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter)
}

/// A session as stores keep it: any keys, any value bytes.
fn entries() -> impl Strategy<Value = HashMap<String, Bytes>> {
    prop::collection::hash_map(
        text(24),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from),
        0..8,
    )
}

/// Replaces the byte at `at` with the ASCII byte `with` (another one if it
/// is the same), so the result is still text and differs from `value`.
fn mutate_ascii(value: &str, at: Index, with: u8) -> String {
    let mut bytes = value.as_bytes().to_vec();
    let i = at.index(bytes.len());
    assert!(bytes[i].is_ascii(), "signed values of ASCII text are ASCII");
    bytes[i] = if bytes[i] == with { with ^ 1 } else { with };
    String::from_utf8(bytes).expect("an ASCII byte replaced an ASCII byte")
}

mod id {
    use session_core::SessionId;
    use session_core::id::ID_LEN;

    use super::*;

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// The oracle: exactly the unpadded base64url text of 32 bytes, in its
    /// one canonical form.
    fn is_canonical_id(text: &str) -> bool {
        text.len() == ID_LEN
            && URL_SAFE_NO_PAD
                .decode(text)
                .is_ok_and(|bytes| bytes.len() == 32 && URL_SAFE_NO_PAD.encode(&bytes) == text)
    }

    fn id_text() -> impl Strategy<Value = String> {
        any::<[u8; 32]>().prop_map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A character a base64url id never holds.
    fn foreign_char() -> impl Strategy<Value = char> {
        prop_oneof![
            select(vec![
                '+', '/', '=', '.', ' ', '%', '\0', '"', ';', ',', '\n', '\t', 'é', '🔑', '\u{7f}',
                '~', '*', '\u{200b}',
            ]),
            any::<char>().prop_filter("outside base64url", |c| {
                !c.is_ascii_alphanumeric() && *c != '-' && *c != '_'
            }),
        ]
    }

    /// What a client may do to a valid id.
    #[derive(Clone, Debug)]
    enum Mutation {
        /// One character replaced by one outside the alphabet.
        Foreign { at: Index, with: char },
        /// One alphabet character inserted: 44 characters.
        Insert { at: Index, with: u8 },
        /// One character removed: 42 characters.
        Remove { at: Index },
        /// The last character's two unused low bits set: it still decodes
        /// to 32 bytes with a lenient decoder, but is not the canonical text.
        PaddingBits { bits: u8 },
        /// Padding, whitespace, quotes or a separator around the id.
        Affix {
            before: &'static str,
            after: &'static str,
        },
    }

    impl Mutation {
        fn apply(&self, id: &str) -> String {
            let mut chars: Vec<char> = id.chars().collect();
            let len = chars.len();
            match *self {
                Mutation::Foreign { at, with } => chars[at.index(len)] = with,
                Mutation::Insert { at, with } => {
                    chars.insert(at.index(len + 1), char::from(with));
                }
                Mutation::Remove { at } => {
                    chars.remove(at.index(len));
                }
                Mutation::PaddingBits { bits } => {
                    let last = chars.last_mut().expect("an id is not empty");
                    let index = ALPHABET
                        .iter()
                        .position(|&c| char::from(c) == *last)
                        .expect("an id is base64url");
                    *last = char::from(ALPHABET[index | usize::from(bits)]);
                }
                Mutation::Affix { before, after } => return format!("{before}{id}{after}"),
            }
            chars.into_iter().collect()
        }
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        const AFFIXES: &[&str] = &["", "=", "==", " ", "\t", "\"", ";", "%3D", "A", "\0"];
        prop_oneof![
            (any::<Index>(), foreign_char()).prop_map(|(at, with)| Mutation::Foreign { at, with }),
            (any::<Index>(), select(ALPHABET.to_vec()))
                .prop_map(|(at, with)| Mutation::Insert { at, with }),
            any::<Index>().prop_map(|at| Mutation::Remove { at }),
            (1u8..=3).prop_map(|bits| Mutation::PaddingBits { bits }),
            (select(AFFIXES), select(AFFIXES))
                .prop_filter("something around the id", |(b, a)| !(b.is_empty()
                    && a.is_empty()))
                .prop_map(|(before, after)| Mutation::Affix { before, after }),
        ]
    }

    /// 256 random bits, not only 256 bits of text: in a thousand fresh
    /// ids, every one of the 256 bits is set about half the time. A source
    /// that fills part of the id (a 64-bit random number, zeros after it)
    /// or none of it fails here, while its ids still parse. A bit of a
    /// true random source lands outside 30% to 70% of 1000 draws with a
    /// probability far below 10^-30.
    #[test]
    fn generated_ids_vary_in_every_one_of_their_256_bits() {
        const IDS: usize = 1000;
        let mut set = [0usize; 256];
        for _ in 0..IDS {
            let id = SessionId::generate();
            let bytes = URL_SAFE_NO_PAD.decode(id.as_str()).expect("base64url");
            assert_eq!(bytes.len(), 32, "{} is not 32 bytes", id.as_str());
            for (bit, count) in set.iter_mut().enumerate() {
                *count += usize::from(bytes[bit / 8] >> (bit % 8) & 1);
            }
        }
        for (bit, count) in set.iter().enumerate() {
            assert!(
                (IDS * 3 / 10..=IDS * 7 / 10).contains(count),
                "bit {bit} was set in {count} of {IDS} ids"
            );
        }
    }

    proptest! {
        #![proptest_config(Config::with_cases(CASES))]

        #[test]
        fn the_text_of_any_32_bytes_and_every_generated_id_round_trip(
            bytes in any::<[u8; 32]>(),
        ) {
            let text = URL_SAFE_NO_PAD.encode(bytes);
            let id = SessionId::parse(&text);
            prop_assert_eq!(id.as_ref().map(SessionId::as_str), Some(text.as_str()));
            let fresh = SessionId::generate();
            prop_assert_eq!(SessionId::parse(fresh.as_str()), Some(fresh));
        }

        #[test]
        fn parse_accepts_exactly_the_canonical_text_of_32_bytes(
            text in prop_oneof![
                text(64),
                "[A-Za-z0-9_-]{43}",
                "[A-Za-z0-9_+/=.-]{41,45}",
            ],
        ) {
            let parsed = SessionId::parse(&text);
            prop_assert_eq!(parsed.is_some(), is_canonical_id(&text), "{:?}", text);
            if let Some(id) = parsed {
                prop_assert_eq!(id.as_str(), text.as_str());
            }
        }

        #[test]
        fn every_mutation_of_a_valid_id_is_rejected(id in id_text(), mutation in mutation()) {
            let mutated = mutation.apply(&id);
            prop_assert_ne!(&mutated, &id);
            prop_assert_eq!(SessionId::parse(&mutated), None, "{:?} ({:?})", mutated, mutation);
        }
    }
}

mod signing {
    use session_core::Signer;
    use session_core::signing::MIN_SECRET_LEN;

    use super::*;

    fn secret() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), MIN_SECRET_LEN..80)
    }

    fn purpose() -> impl Strategy<Value = String> {
        "[a-z-]{1,16}"
    }

    proptest! {
        #![proptest_config(Config::with_cases(CASES))]

        #[test]
        fn values_round_trip_under_the_current_key_and_each_fallback(
            value in text(64),
            (current, old, older) in (secret(), secret(), secret()),
            purpose in purpose(),
        ) {
            let rotated = Signer::new(&purpose, &current, [&old, &older]).unwrap();
            let signed = rotated.sign(&value);
            prop_assert_eq!(rotated.verify_key(&signed), Some((value.as_str(), true)));
            for fallback in [&old, &older] {
                let signed = Signer::new(&purpose, fallback, NONE).unwrap().sign(&value);
                prop_assert_eq!(rotated.verify_key(&signed), Some((value.as_str(), false)));
            }
        }

        /// Signed values are ASCII when the value is: every single-byte
        /// change that leaves text (a cookie that is not UTF-8 never reaches
        /// the signer) must fail, whether it hits the value, the dot or
        /// the tag.
        #[test]
        fn any_single_byte_change_of_a_signed_value_fails_verification(
            value in "[ -~]{0,64}",
            key in secret(),
            old in secret(),
            at in any::<Index>(),
            with in 0u8..0x80,
        ) {
            let signer = Signer::new("p", &key, [&old]).unwrap();
            for signed in [signer.sign(&value), Signer::new("p", &old, NONE).unwrap().sign(&value)] {
                prop_assert!(signer.verify(&signed).is_some());
                let forged = mutate_ascii(&signed, at, with);
                prop_assert_eq!(signer.verify(&forged), None, "{:?}", forged);
            }
        }

        #[test]
        fn arbitrary_strings_never_verify(
            text in prop_oneof![
                text(128),
                "[ -~]{0,40}\\.[A-Za-z0-9_-]{43}",
                "[A-Za-z0-9_-]{43}\\.[A-Za-z0-9_-]{42,44}",
            ],
            key in secret(),
        ) {
            let signer = Signer::new("p", &key, NONE).unwrap();
            prop_assert_eq!(signer.verify_key(&text), None);
        }

        #[test]
        fn a_value_signed_under_another_secret_or_purpose_never_verifies(
            value in text(64),
            (a, b, c) in (secret(), secret(), secret()),
        ) {
            prop_assume!(a != b && a != c);
            let signed = Signer::new("p", &a, NONE).unwrap().sign(&value);
            prop_assert_eq!(Signer::new("p", &b, [&c]).unwrap().verify(&signed), None);
            prop_assert_eq!(Signer::new("q", &a, NONE).unwrap().verify(&signed), None);
        }
    }
}

#[cfg(feature = "cookie")]
mod cookie_store {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use session_core::CookieContent;
    use session_core::Record;
    use session_core::store::cookie::{BROWSER_COOKIE_LIMIT, CookieStore};

    use super::*;

    const SECRET: &str = "a cookie-store secret of at least thirty-two bytes";
    const OTHER: &str = "another cookie-store secret, also long enough!";

    fn store() -> CookieStore {
        CookieStore::new(SECRET, NONE).unwrap()
    }

    /// A live cookie value for `entries`.
    fn cookie(entries: &HashMap<String, Bytes>) -> String {
        store().encode(&Record::from(entries.clone()), Duration::from_secs(3600))
    }

    /// A cookie longer than a browser keeps is refused before any crypto:
    /// even one this store sealed or signed itself, which the crypto would
    /// open, does not decode. (A forged one of that length proves nothing:
    /// it fails the crypto anyway.)
    #[test]
    fn a_genuine_cookie_longer_than_a_browser_keeps_never_decodes() {
        for content in [CookieContent::Encrypted, CookieContent::Signed] {
            let store = store().with_content(content);
            let cookie_of = |size: usize| {
                let value = Bytes::from(vec![b'x'; size]);
                store.encode(
                    &Record::from(HashMap::from([("big".to_owned(), value)])),
                    Duration::from_secs(3600),
                )
            };
            // The largest value whose cookie a browser keeps.
            let mut size = 2000;
            while cookie_of(size + 1).len() <= BROWSER_COOKIE_LIMIT {
                size += 1;
            }
            assert!(
                store.decode(&cookie_of(size)).is_some(),
                "{content:?}: the largest cookie a browser keeps"
            );
            let over = cookie_of(size + 1);
            assert!(
                store.decode(&over).is_none(),
                "{content:?}: a cookie of {} bytes opened",
                over.len()
            );
        }
    }

    proptest! {
        #![proptest_config(Config::with_cases(CASES))]

        #[test]
        fn records_round_trip_in_a_cookie_safe_value(
            entries in entries(),
            created_at in prop::option::of((0u64..10_000_000_000, 0u32..1_000_000_000)),
            ttl in 60u64..100_000_000,
        ) {
            let ttl = Duration::from_secs(ttl);
            let created_at = created_at.map(|(s, n)| UNIX_EPOCH + Duration::new(s, n));
            let record = Record {
                created_at,
                ..Record::from(entries.clone())
            };
            let before = SystemTime::now();
            let value = store().encode(&record, ttl);
            let after = SystemTime::now();
            // No quote, semicolon, comma or space: the value needs no
            // quoting in a Set-Cookie header.
            prop_assert!(
                value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "{:?}", value
            );
            let back = store().decode(&value).expect("a fresh cookie decodes");
            prop_assert_eq!(&back.entries, &entries);
            // The creation time is kept to the millisecond.
            let millis = |at: SystemTime| at.duration_since(UNIX_EPOCH).unwrap().as_millis();
            prop_assert_eq!(back.created_at.map(millis), created_at.map(millis));
            let expires = back.expires_at.expect("the cookie carries its expiry");
            // The expiry is kept to the second.
            prop_assert!(expires + Duration::from_secs(1) > before + ttl);
            prop_assert!(expires <= after + ttl);
            let rotated = CookieStore::new(OTHER, [SECRET]).unwrap();
            prop_assert_eq!(rotated.decode(&value).map(|r| r.entries), Some(entries));
        }

        #[test]
        fn arbitrary_strings_never_decode(
            text in prop_oneof![
                text(256),
                "[A-Za-z0-9_-]{0,120}\\.[A-Za-z0-9_-]{43}",
            ],
        ) {
            prop_assert_eq!(store().decode(&text), None);
        }

        #[test]
        fn any_single_byte_change_of_a_cookie_fails_to_decode(
            entries in entries(),
            at in any::<Index>(),
            with in 0u8..0x80,
        ) {
            let forged = mutate_ascii(&cookie(&entries), at, with);
            prop_assert_eq!(store().decode(&forged), None, "{:?}", forged);
        }

        #[test]
        fn truncated_or_extended_cookies_fail_to_decode(
            entries in entries(),
            cut in any::<Index>(),
            tail in "[A-Za-z0-9_.=-]{1,8}",
        ) {
            let value = cookie(&entries);
            let truncated = &value[..cut.index(value.len())];
            prop_assert_eq!(store().decode(truncated), None, "{:?}", truncated);
            prop_assert_eq!(store().decode(&format!("{value}{tail}")), None);
        }

        #[test]
        fn a_cookie_signed_under_another_secret_never_decodes(entries in entries()) {
            let foreign = CookieStore::new(OTHER, NONE)
                .unwrap()
                .encode(&Record::from(entries), Duration::from_secs(3600));
            prop_assert_eq!(store().decode(&foreign), None);
        }
    }
}

mod codec {
    use serde::{Deserialize, Serialize};
    use session_core::Codec;
    use session_core::codec::{decode_entries, encode_entries, entry_size};

    use super::*;

    /// A session value of any shape the codecs must carry: nested lists
    /// and maps of text, integers, booleans and bytes. (Floats are left
    /// out: JSON does not promise their last bit.)
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum Value {
        Text(String),
        Int(i64),
        Nat(u64),
        Flag(bool),
        Blob(Vec<u8>),
        Nothing,
        List(Vec<Value>),
        Map(BTreeMap<String, Value>),
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            text(24).prop_map(Value::Text),
            any::<i64>().prop_map(Value::Int),
            any::<u64>().prop_map(Value::Nat),
            any::<bool>().prop_map(Value::Flag),
            prop::collection::vec(any::<u8>(), 0..32).prop_map(Value::Blob),
            Just(Value::Nothing),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
                prop::collection::btree_map(text(12), inner, 0..8).prop_map(Value::Map),
            ]
        })
    }

    fn codecs() -> Vec<Codec> {
        vec![
            Codec::Json,
            #[cfg(feature = "msgpack")]
            Codec::MessagePack,
        ]
    }

    /// Bytes shaped like [`encode_entries`] output, with lengths that lie.
    fn entry_like_bytes() -> impl Strategy<Value = Vec<u8>> {
        let length = prop_oneof![0u32..16, Just(u32::MAX), Just(u32::MAX / 2), any::<u32>()];
        prop::collection::vec((length, prop::collection::vec(any::<u8>(), 0..16)), 0..6).prop_map(
            |parts| {
                parts
                    .into_iter()
                    .flat_map(|(len, data)| len.to_le_bytes().into_iter().chain(data))
                    .collect()
            },
        )
    }

    /// Deep nesting, as a stack-overflow attempt: `[[[[...` in JSON, whose
    /// decoder stops at 128 levels.
    fn json_nesting_bomb() -> impl Strategy<Value = Vec<u8>> {
        (1usize..5000).prop_map(|depth| vec![b'['; depth])
    }

    proptest! {
        #![proptest_config(Config::with_cases(CASES))]

        #[test]
        fn entries_round_trip_at_their_counted_size(entries in entries()) {
            let mut out = Vec::new();
            encode_entries(&entries, &mut out);
            prop_assert_eq!(
                out.len(),
                entries.iter().map(|(k, v)| entry_size(k, v)).sum::<usize>()
            );
            prop_assert_eq!(decode_entries(&out), Some(entries));
        }

        /// Whatever decodes was in the input: decoding never invents bytes.
        #[test]
        fn arbitrary_bytes_never_panic_the_entry_decoder(
            bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..256), entry_like_bytes()],
        ) {
            if let Some(entries) = decode_entries(&bytes) {
                let size: usize = entries.iter().map(|(k, v)| entry_size(k, v)).sum();
                prop_assert!(size <= bytes.len());
            }
        }

        #[test]
        fn a_truncated_entry_or_a_partial_length_is_rejected(
            key in text(24),
            value in prop::collection::vec(any::<u8>(), 0..64),
            cut in any::<Index>(),
            tail in prop::collection::vec(any::<u8>(), 1..4),
        ) {
            let entries = HashMap::from([(key, Bytes::from(value))]);
            let mut out = Vec::new();
            encode_entries(&entries, &mut out);
            // Any cut inside the one entry leaves a length that lies.
            let cut = 1 + cut.index(out.len() - 1);
            prop_assert_eq!(decode_entries(&out[..cut]), None, "cut at {}", cut);
            // Fewer than 4 bytes after the last entry cannot be a length.
            out.extend_from_slice(&tail);
            prop_assert_eq!(decode_entries(&out), None);
        }
    }

    proptest! {
        #![proptest_config(Config::with_cases(SLOW_CASES))]

        #[test]
        fn maps_of_any_values_round_trip_through_every_codec(
            map in prop::collection::hash_map(text(16), value(), 0..8),
        ) {
            for codec in codecs() {
                let bytes = codec.encode(&map).unwrap();
                let back: HashMap<String, Value> = codec.decode(&bytes).unwrap();
                prop_assert_eq!(&back, &map, "{:?}", codec);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_value_decoders(
            bytes in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..256),
                json_nesting_bomb(),
            ],
        ) {
            for codec in codecs() {
                // Errors are expected; a panic or a stack overflow fails.
                let _ = codec.decode::<HashMap<String, Value>>(&bytes);
                let _ = codec.decode::<serde_json::Value>(&bytes);
                let _ = codec.decode::<String>(&bytes);
                let _ = codec.decode::<u64>(&bytes);
            }
        }
    }

    /// Stored bytes nested deeper than a decoder's stack can take must be
    /// an error, not a stack overflow that aborts the process.
    #[test]
    fn deep_nesting_is_an_error_for_every_codec() {
        for codec in codecs() {
            let bytes = match codec {
                Codec::Json => vec![b'['; 1024],
                #[cfg(feature = "msgpack")]
                Codec::MessagePack => vec![0x91; 1024],
                _ => unreachable!("a codec this test does not know"),
            };
            assert!(
                codec.decode::<serde_json::Value>(&bytes).is_err(),
                "{codec:?}"
            );
        }
    }
}

mod config {
    use session_core::SessionConfig;
    use session_core::config::KEYS;

    use super::*;

    /// Values that reach each parser's branches, valid and not.
    const PLAUSIBLE: &[&str] = &[
        "",
        " ",
        "true",
        "false",
        "1",
        "0",
        "TRUE",
        " yes ",
        "-1",
        "0.5",
        "3600",
        "1e400",
        "NaN",
        "inf",
        "-0",
        "18446744073709551616",
        "0600",
        "0o777",
        "01000",
        "0o",
        "384",
        "memory",
        "filesystem",
        "cookie",
        "null",
        "redis",
        "memcached",
        "sqlalchemy",
        "mongodb",
        "json",
        "msgpack",
        "fail",
        "empty",
        "Lax",
        "none",
        "Strict",
        "/",
        "/app",
        "session",
        "__Host-sid",
        "__Secure-sid",
        "sid;",
        "127.0.0.1:11211",
        ",",
        "redis://user:pw@host/?password=x",
    ];

    /// A secret that cannot show up in a message by coincidence; its
    /// length varies around the 32-byte minimum, and it may have blanks
    /// around it (the parser trims them).
    fn secret() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(any::<char>().prop_filter("no comma", |c| *c != ','), 0..40),
            select(vec!["", " ", "\t"]),
        )
            .prop_map(|(inner, pad)| format!("{pad}sk-{}-ks{pad}", String::from_iter(inner)))
    }

    fn fallbacks() -> impl Strategy<Value = String> {
        prop::collection::vec(secret(), 0..4).prop_map(|keys| keys.join(","))
    }

    fn value_of(key: &'static str) -> BoxedStrategy<String> {
        match key {
            "SECRET_KEY" => secret().boxed(),
            "SECRET_KEY_FALLBACKS" => fallbacks().boxed(),
            _ => prop_oneof![
                4 => select(PLAUSIBLE).prop_map(str::to_owned),
                1 => text(24),
                1 => "[ -~]{0,12}",
            ]
            .boxed(),
        }
    }

    /// Some of the keys, each with a value.
    fn settings() -> impl Strategy<Value = Vec<(&'static str, String)>> {
        KEYS.iter()
            .map(|&key| prop::option::weighted(0.4, value_of(key).prop_map(move |v| (key, v))))
            .collect::<Vec<_>>()
            .prop_map(|settings| settings.into_iter().flatten().collect())
    }

    /// The secrets in `settings`, as the configuration keeps them.
    fn secrets(settings: &[(&str, String)]) -> Vec<String> {
        settings
            .iter()
            .filter(|(key, _)| key.starts_with("SECRET_KEY"))
            .flat_map(|(_, value)| value.split(','))
            .map(|secret| secret.trim().to_owned())
            .filter(|secret| !secret.is_empty())
            .collect()
    }

    /// Checks an outcome of [`SessionConfig::from_source`]: an error names
    /// a key in [`KEYS`], and neither an error nor a configuration's
    /// `Debug` (what ends up in logs) shows a secret.
    fn check(
        settings: &[(&'static str, String)],
        outcome: Result<SessionConfig, session_core::ConfigError>,
    ) -> Result<(), TestCaseError> {
        let shown = match outcome {
            Ok(config) => format!("{config:?}"),
            Err(error) => {
                prop_assert!(KEYS.contains(&error.key()), "{:?}", error);
                let shown = format!("{error} {error:?}");
                prop_assert!(shown.contains(error.key()));
                shown
            }
        };
        for secret in secrets(settings) {
            prop_assert!(!shown.contains(&secret), "{:?} shows a secret", shown);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(Config::with_cases(SLOW_CASES))]

        #[test]
        fn any_values_for_any_keys_give_a_config_or_an_error_naming_a_key(
            settings in settings(),
        ) {
            check(&settings, SessionConfig::from_source(settings.clone()))?;
        }

        /// Settings that get past the parsers, so validation is reached
        /// with the secrets in hand.
        #[test]
        fn secrets_never_show_in_an_error_or_a_debug_print(
            store in select(vec!["memory", "cookie", "null", "filesystem"]),
            signer in select(vec!["true", "false"]),
            secret in prop::option::of(secret()),
            fallbacks in prop::option::of(fallbacks()),
            other in (
                select(KEYS).prop_filter("secrets come from `secret`", |k| {
                    !k.starts_with("SECRET_KEY")
                }),
                select(PLAUSIBLE),
            ),
        ) {
            let mut settings = vec![
                ("SESSION_TYPE", store.to_owned()),
                ("SESSION_USE_SIGNER", signer.to_owned()),
                (other.0, other.1.to_owned()),
            ];
            settings.extend(secret.map(|s| ("SECRET_KEY", s)));
            settings.extend(fallbacks.map(|f| ("SECRET_KEY_FALLBACKS", f)));
            check(&settings, SessionConfig::from_source(settings.clone()))?;
        }
    }

    proptest! {
        #![proptest_config(Config::with_cases(CASES))]

        /// A '#' fits no boolean, number, duration, mode or name of a
        /// choice: the error is about the key that holds it, not another.
        #[test]
        fn a_value_no_parser_accepts_is_blamed_on_its_key(
            key in select(vec![
                "SESSION_TYPE",
                "SESSION_PERMANENT",
                "PERMANENT_SESSION_LIFETIME",
                "SESSION_REFRESH_EACH_REQUEST",
                "SESSION_USE_SIGNER",
                "SESSION_HASH_IDS",
                "SESSION_SERIALIZATION_FORMAT",
                "SESSION_MAX_SIZE",
                "SESSION_STORE_TIMEOUT",
                "SESSION_STORE_OUTAGE",
                "SESSION_ABSOLUTE_LIFETIME",
                "SESSION_SAVE_ON_ERROR",
                "SESSION_MEMORY_MAX_SESSIONS",
                "SESSION_COOKIE_SECURE",
                "SESSION_COOKIE_HTTPONLY",
                "SESSION_COOKIE_SAMESITE",
                "SESSION_FILE_THRESHOLD",
                "SESSION_FILE_MODE",
            ]),
            junk in "[ -~]{0,8}#[ -~]{0,8}",
        ) {
            let error = SessionConfig::from_source([(key, junk.as_str())]).unwrap_err();
            prop_assert_eq!(error.key(), key);
        }
    }
}
