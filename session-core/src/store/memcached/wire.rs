//! How a session looks on the wire, and which server holds it: key
//! mapping, rendezvous hashing, expiration times and the value format.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_memcached::MetaValue;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::codec::{decode_entries, encode_entries};

/// The tag every value this store writes starts with.
pub(super) const MAGIC: &[u8; 4] = b"AXM1";
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

pub(super) fn encode(entries: &HashMap<String, Bytes>) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        MAGIC.len()
            + entries
                .iter()
                .map(|(k, v)| crate::codec::entry_size(k, v))
                .sum::<usize>(),
    );
    out.extend_from_slice(MAGIC);
    encode_entries(entries, &mut out);
    out
}

/// The entries of an item's value; `None` (and a warning) if this store did
/// not write it.
pub(super) fn decode(value: Option<&[u8]>, key: &str) -> Option<HashMap<String, Bytes>> {
    let entries = value
        .and_then(|v| v.strip_prefix(MAGIC))
        .and_then(decode_entries);
    if entries.is_none() {
        tracing::warn!(key, "ignoring a memcached item that is not a session");
    }
    entries
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

    #[test]
    fn values_carry_the_format_tag() {
        let mut entries = HashMap::new();
        entries.insert("a".to_owned(), Bytes::from_static(b"1"));
        let value = encode(&entries);
        assert!(value.starts_with(MAGIC));
        assert_eq!(decode(Some(&value), "k"), Some(entries));
        assert_eq!(decode(Some(MAGIC), "k"), Some(HashMap::new()));
        assert_eq!(decode(Some(b"foreign"), "k"), None);
        assert_eq!(decode(None, "k"), None);
    }
}
