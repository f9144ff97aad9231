//! How a session looks on the wire, and which server holds it: key
//! mapping, rendezvous hashing, expiration times and the value format.
//!
//! # The value format
//!
//! ```text
//! "AXM2" | header length: u32 LE | header | entries
//! header: created_at as i64 LE milliseconds since the Unix epoch, or nothing when unknown
//! ```
//!
//! The entries are what [`encode_entries`] writes. A reader takes the
//! header fields it knows from its start and skips the rest, so a later
//! version can append metadata (a session's own lifetime, its user) without
//! a new tag; a change that older readers must not ignore takes a new tag.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_memcached::MetaValue;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::codec::{decode_entries, encode_entries};
use crate::store::Record;

/// The tag every value this store writes starts with.
pub(super) const MAGIC: &[u8; 4] = b"AXM2";
/// The longest key memcached accepts.
pub(super) const MAX_KEY_LEN: usize = 250;
/// The longest expiration memcached takes as relative seconds: 30 days.
pub(super) const MAX_RELATIVE_EXPIRATION: u64 = 60 * 60 * 24 * 30;

/// The memcached key for a store key: itself when memcached accepts it,
/// else `h:` and the hex SHA-256 of it.
pub(super) fn wire_key(key: &str) -> Cow<'_, str> {
    if key.len() <= MAX_KEY_LEN
        && !key.is_empty()
        && key.bytes().all(|b| (0x21..=0x7e).contains(&b))
    {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(format!("h:{}", hex::encode(Sha256::digest(key.as_bytes()))))
    }
}

/// The index of the server with the highest rendezvous score for `key`.
pub(super) fn pick<'a>(servers: impl ExactSizeIterator<Item = &'a str>, key: &str) -> usize {
    if servers.len() == 1 {
        return 0;
    }
    let mut best = (0, 0);
    for (index, server) in servers.enumerate() {
        let score = score(server, key);
        if index == 0 || score > best.1 {
            best = (index, score);
        }
    }
    best.0
}

/// A server's weight for a key: stable across processes, versions and
/// platforms (no `Hash`-trait hasher, whose output may change).
pub(super) fn score(server: &str, key: &str) -> u64 {
    let mut hash = Sha256::new();
    hash.update((server.len() as u64).to_le_bytes());
    hash.update(server.as_bytes());
    hash.update(key.as_bytes());
    let digest = hash.finalize();
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// The expiration to send memcached for a lifetime of `ttl`, `now` being
/// the Unix time: whole seconds (at least 1) up to 30 days, an absolute
/// Unix time beyond (capped at the end of memcached's 32-bit clock).
pub(super) fn expiration(ttl: Duration, now: u64) -> i64 {
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0))
        .max(1);
    if secs <= MAX_RELATIVE_EXPIRATION {
        secs as i64
    } else {
        now.saturating_add(secs).min(i32::MAX as u64) as i64
    }
}

pub(super) fn ttl_flag(ttl: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("T{}", expiration(ttl, now))
}

/// The value of an item holding `entries`, created at `created_at`.
pub(super) fn encode(entries: &HashMap<String, Bytes>, created_at: Option<SystemTime>) -> Vec<u8> {
    let header = created_at.map(|at| to_millis(at).to_le_bytes());
    let header: &[u8] = header.as_ref().map_or(&[], |h| &h[..]);
    let mut out = Vec::with_capacity(
        MAGIC.len()
            + 4
            + header.len()
            + entries
                .iter()
                .map(|(k, v)| crate::codec::entry_size(k, v))
                .sum::<usize>(),
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(header);
    encode_entries(entries, &mut out);
    out
}

/// The session in an item's value, in either format, without its expiry;
/// `None` (and a warning) if this store did not write it.
pub(super) fn decode(value: Option<&[u8]>, key: &str) -> Option<Record> {
    let record = value.and_then(decode_value);
    if record.is_none() {
        tracing::warn!(
            key = %crate::id::fingerprint(key),
            "ignoring a memcached item that is not a session"
        );
    }
    record
}

fn decode_value(value: &[u8]) -> Option<Record> {
    let (len, rest) = value.strip_prefix(MAGIC)?.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return None;
    }
    let (header, entries) = rest.split_at(len);
    let created_at = match header.first_chunk::<8>() {
        // A time this platform cannot hold is unknown: not a reason to
        // lose the session.
        Some(millis) => from_millis(i64::from_le_bytes(*millis)),
        // Empty: not known. Anything shorter is not a header this store wrote.
        None if header.is_empty() => None,
        None => return None,
    };
    Some(Record {
        created_at,
        ..Record::from(decode_entries(entries)?)
    })
}

/// Milliseconds since the Unix epoch, negative before it (saturating).
fn to_millis(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |m| -m),
    }
}

/// The time `millis` after the Unix epoch; `None` if this platform's clock
/// cannot hold it.
fn from_millis(millis: i64) -> Option<SystemTime> {
    let offset = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    }
}

/// When an item read with the `t` flag expires; `None` if it never does.
pub(super) fn expires_at(item: &MetaValue) -> Option<SystemTime> {
    let remaining = u64::try_from(item.ttl_remaining?).ok()?;
    Some(SystemTime::now() + Duration::from_secs(remaining))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_memcached_accepts_are_sent_as_they_are() {
        let key = format!("session:{}", "ab".repeat(32));
        assert_eq!(wire_key(&key), key.as_str());
        let longest = "k".repeat(MAX_KEY_LEN);
        assert_eq!(wire_key(&longest), longest.as_str());
        assert_eq!(wire_key("!~"), "!~");
    }

    #[test]
    fn other_keys_are_hashed() {
        let hashed = |key: &str| format!("h:{}", hex::encode(Sha256::digest(key.as_bytes())));
        for key in [
            "k".repeat(MAX_KEY_LEN + 1),
            "with space".to_owned(),
            "tab\there".to_owned(),
            "new\r\nline".to_owned(),
            "del\x7f".to_owned(),
            "ключ".to_owned(),
            String::new(),
        ] {
            let wire = wire_key(&key);
            assert_eq!(wire, hashed(&key), "{key:?}");
            assert_eq!(wire.len(), 66);
            assert!(wire.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        }
        assert_ne!(wire_key("a b"), wire_key("a  b"));
    }

    #[test]
    fn lifetimes_up_to_30_days_are_relative_seconds() {
        let now = 1_800_000_000;
        assert_eq!(expiration(Duration::from_secs(60), now), 60);
        assert_eq!(expiration(Duration::from_millis(1500), now), 2);
        assert_eq!(expiration(Duration::from_millis(1), now), 1);
        assert_eq!(expiration(Duration::ZERO, now), 1, "0 would never expire");
        assert_eq!(
            expiration(Duration::from_secs(MAX_RELATIVE_EXPIRATION), now),
            2_592_000
        );
    }

    #[test]
    fn longer_lifetimes_are_absolute_unix_times() {
        let now = 1_800_000_000;
        let day = 86_400;
        assert_eq!(
            expiration(Duration::from_secs(MAX_RELATIVE_EXPIRATION + 1), now),
            now as i64 + 2_592_001
        );
        assert_eq!(
            expiration(Duration::from_secs(31 * day), now),
            now as i64 + 31 * day as i64
        );
        assert_eq!(
            expiration(
                Duration::from_secs(31 * day) - Duration::from_millis(1),
                now
            ),
            now as i64 + 31 * day as i64,
            "rounded up"
        );
        assert_eq!(expiration(Duration::MAX, now), i64::from(i32::MAX));
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("session:{}", hex::encode(Sha256::digest(i.to_le_bytes()))))
            .collect()
    }

    fn placement(servers: &[&str], keys: &[String]) -> Vec<String> {
        keys.iter()
            .map(|k| servers[pick(servers.iter().copied(), k)].to_owned())
            .collect()
    }

    #[test]
    fn keys_spread_over_every_server() {
        let servers = ["10.0.0.1:11211", "10.0.0.2:11211"];
        let keys = keys(2000);
        let placed = placement(&servers, &keys);
        for server in servers {
            let share = placed.iter().filter(|s| *s == server).count();
            assert!(
                (800..=1200).contains(&share),
                "{server} got {share} of 2000"
            );
        }
        assert_eq!(placed, placement(&servers, &keys), "placement is stable");
        let reversed = ["10.0.0.2:11211", "10.0.0.1:11211"];
        assert_eq!(
            placed,
            placement(&reversed, &keys),
            "the order of the list does not matter"
        );
    }

    #[test]
    fn removing_a_server_moves_only_its_keys() {
        let three = ["a:11211", "b:11211", "c:11211"];
        let two = ["a:11211", "c:11211"];
        let keys = keys(3000);
        let before = placement(&three, &keys);
        let after = placement(&two, &keys);
        for (old, new) in before.iter().zip(&after) {
            if old != "b:11211" {
                assert_eq!(old, new, "a key of a kept server moved");
            }
        }
        let moved = before.iter().filter(|s| *s == "b:11211").count();
        assert!((800..=1200).contains(&moved), "b held {moved} of 3000");
    }

    #[test]
    fn adding_a_server_moves_about_a_share_of_keys_to_it() {
        let three = ["a:11211", "b:11211", "c:11211"];
        let four = ["a:11211", "b:11211", "c:11211", "d:11211"];
        let keys = keys(4000);
        let before = placement(&three, &keys);
        let after = placement(&four, &keys);
        let mut moved = 0;
        for (old, new) in before.iter().zip(&after) {
            if old != new {
                assert_eq!(new, "d:11211", "a key moved between old servers");
                moved += 1;
            }
        }
        assert!((800..=1200).contains(&moved), "{moved} of 4000 moved");
    }

    fn entries(pairs: &[(&str, &[u8])]) -> HashMap<String, Bytes> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v)))
            .collect()
    }

    #[test]
    fn values_carry_the_format_tag_and_the_creation_time() {
        let entries = entries(&[("a", b"1"), ("", b""), ("ключ", &[0, 255])]);
        let created = UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        let value = encode(&entries, Some(created));
        assert!(value.starts_with(MAGIC));
        let record = decode(Some(&value), "k").unwrap();
        assert_eq!(record.entries, entries);
        assert_eq!(record.created_at, Some(created));
        assert_eq!(record.expires_at, None);

        let unknown = encode(&entries, None);
        let record = decode(Some(&unknown), "k").unwrap();
        assert_eq!((record.entries, record.created_at), (entries, None));
        assert_eq!(encode(&HashMap::new(), None), b"AXM2\0\0\0\0");
    }

    #[test]
    fn the_creation_time_is_kept_to_the_millisecond() {
        let created = UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_789);
        let record = decode(Some(&encode(&HashMap::new(), Some(created))), "k").unwrap();
        assert_eq!(
            record.created_at,
            Some(UNIX_EPOCH + Duration::from_millis(1_800_000_000_123))
        );
        let before_1970 = UNIX_EPOCH - Duration::from_millis(86_400_001);
        let record = decode(Some(&encode(&HashMap::new(), Some(before_1970))), "k").unwrap();
        assert_eq!(record.created_at, Some(before_1970));
    }

    #[test]
    fn header_fields_a_later_version_appends_are_skipped() {
        let created: i64 = 1_800_000_000_000;
        let mut value = MAGIC.to_vec();
        value.extend_from_slice(&12u32.to_le_bytes());
        value.extend_from_slice(&created.to_le_bytes());
        value.extend_from_slice(b"next");
        value.extend_from_slice(b"\x01\0\0\0a\x01\0\0\0x");
        let record = decode(Some(&value), "k").unwrap();
        assert_eq!(record.entries, entries(&[("a", b"x")]));
        assert_eq!(
            record.created_at,
            Some(UNIX_EPOCH + Duration::from_millis(created as u64))
        );
    }

    #[test]
    fn values_this_store_did_not_write_are_not_sessions() {
        for value in [
            &b"foreign"[..],
            b"AXM2",
            b"AXM2\x08\0\0\0short",
            b"AXM2\x04\0\0\0four",
            b"AXM3\0\0\0\0",
            b"AXM1\x05\0\0\0a",
        ] {
            assert_eq!(decode(Some(value), "k"), None, "{value:?}");
        }
        assert_eq!(decode(None, "k"), None);
    }
}

#[cfg(test)]
mod proptests {
    //! Properties of the memcached wire format: the key mapping and the value
    //! parser, which reads whatever a memcached server (or anyone who can
    //! write to it) hands back.

    use proptest::prelude::*;
    use proptest::test_runner::Config;

    use super::*;

    /// Any text of up to `max` characters, control and non-ASCII ones included.
    fn text(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter)
    }

    fn entries() -> impl Strategy<Value = HashMap<String, Bytes>> {
        prop::collection::hash_map(
            text(24),
            prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from),
            0..8,
        )
    }

    /// Creation times from 1970 to about 2286, to the nanosecond.
    fn created_at() -> impl Strategy<Value = Option<SystemTime>> {
        prop::option::of(
            (0u64..10_000_000_000, 0u32..1_000_000_000)
                .prop_map(|(secs, nanos)| UNIX_EPOCH + Duration::new(secs, nanos)),
        )
    }

    fn to_the_millisecond(at: SystemTime) -> SystemTime {
        let since = at.duration_since(UNIX_EPOCH).expect("after 1970");
        UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64)
    }

    /// Keys as stores make them, and anything else.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            text(300),
            "[!-~]{1,260}",
            "session:[0-9a-f]{64}",
            "h:[0-9a-f]{64}",
        ]
    }

    proptest! {
        #![proptest_config(Config::with_cases(512))]

        /// memcached takes 1 to 250 printable ASCII bytes; such a key is sent as
        /// it is, any other is hashed into one.
        #[test]
        fn every_key_maps_to_one_memcached_accepts(key in key()) {
            let wire = wire_key(&key);
            prop_assert!((1..=MAX_KEY_LEN).contains(&wire.len()), "{:?}", wire);
            prop_assert!(wire.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{:?}", wire);
            let acceptable = !key.is_empty()
                && key.len() <= MAX_KEY_LEN
                && key.bytes().all(|b| (0x21..=0x7e).contains(&b));
            prop_assert_eq!(wire == key.as_str(), acceptable);
        }

        #[test]
        fn distinct_keys_map_to_distinct_wire_keys(a in key(), b in key()) {
            prop_assume!(a != b);
            prop_assert_ne!(wire_key(&a), wire_key(&b));
        }

        /// Entries and the creation time (to the millisecond) come back.
        #[test]
        fn values_round_trip(entries in entries(), created_at in created_at()) {
            let expected = Record {
                created_at: created_at.map(to_the_millisecond),
                ..Record::from(entries.clone())
            };
            prop_assert_eq!(decode(Some(&encode(&entries, created_at)), "k"), Some(expected));
        }

        /// Whatever an item holds, decoding does not panic, and an item without
        /// this store's tag is not a session.
        #[test]
        fn arbitrary_values_never_panic_and_need_a_tag(
            bytes in prop::collection::vec(any::<u8>(), 0..256),
            tag in prop::sample::select(vec![&b""[..], MAGIC.as_slice(), b"AXM1".as_slice()]),
        ) {
            let value = [tag, &bytes].concat();
            let decoded = decode(Some(&value), "k");
            if !value.starts_with(MAGIC) {
                prop_assert_eq!(decoded, None);
            }
        }

        /// A value cut short (an item written half-way, a server bug) never
        /// decodes to values that were not written: at most to fewer entries.
        #[test]
        fn a_truncated_value_loses_entries_but_never_alters_them(
            entries in entries(),
            created_at in created_at(),
            cut in any::<prop::sample::Index>(),
        ) {
            let value = encode(&entries, created_at);
            let cut = cut.index(value.len());
            let decoded = decode(Some(&value[..cut]), "k");
            if cut < MAGIC.len() + 4 {
                prop_assert_eq!(decoded, None);
            } else if let Some(partial) = decoded {
                prop_assert_eq!(partial.created_at, created_at.map(to_the_millisecond));
                prop_assert!(partial.entries.len() < entries.len());
                for (key, value) in &partial.entries {
                    prop_assert_eq!(entries.get(key), Some(value));
                }
            }
        }

        /// Expirations are never 0 (which memcached reads as "never") and never
        /// shorter than the lifetime asked for.
        #[test]
        fn expirations_are_never_zero_nor_short(
            secs in prop_oneof![0u64..(2 * MAX_RELATIVE_EXPIRATION), any::<u64>()],
            nanos in 0u32..1_000_000_000,
            now in 0u64..(i32::MAX as u64),
        ) {
            let ttl = Duration::new(secs, nanos);
            let expiration = expiration(ttl, now);
            prop_assert!(expiration >= 1);
            let wanted = secs.saturating_add(u64::from(nanos > 0)).max(1);
            if wanted <= MAX_RELATIVE_EXPIRATION {
                prop_assert_eq!(expiration as u64, wanted);
            } else {
                let absolute = now.saturating_add(wanted).min(i32::MAX as u64);
                prop_assert_eq!(expiration as u64, absolute);
                // memcached reads up to 30 days as relative: an absolute time
                // must lie beyond.
                prop_assert!(expiration > MAX_RELATIVE_EXPIRATION as i64);
            }
        }
    }
}
