//! The bytes of a session file: a fixed header, then the entries.
//!
//! - `AXS2` (written today): magic, expiry (u64 LE, ms since the epoch),
//!   creation time (u64 LE, ms since the epoch; `u64::MAX` when unknown),
//!   then the entries as `encode_entries` writes them.
//! - `AXS1` (written before sessions recorded their creation time): magic,
//!   expiry, entries. Still read, with no creation time, so that sessions
//!   written by the previous version survive an upgrade.
//!
//! Both start with the magic and the expiry, so eviction reads the first
//! [`EXPIRY_HEADER`] bytes of either without caring which it is.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::codec::{decode_entries, encode_entries};
use crate::store::Record;

const MAGIC_V1: &[u8; 4] = b"AXS1";
const MAGIC: &[u8; 4] = b"AXS2";
const HEADER_V1: usize = 12;
const HEADER: usize = 20;
/// The creation time of a record that has none.
const UNKNOWN: u64 = u64::MAX;
/// How many leading bytes of a file of any version hold its expiry.
pub(super) const EXPIRY_HEADER: usize = HEADER_V1;

/// A session file as read.
pub(super) struct Stored {
    /// When it expires, in ms since the epoch.
    pub(super) expires: u64,
    /// What it holds; `expires_at` is left `None` (callers decide).
    pub(super) record: Record,
}

fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(UNKNOWN - 1))
        .min(UNKNOWN - 1)
}

/// Encodes a record that expires at `expires` (ms since the epoch).
pub(super) fn encode(record: &Record, expires: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER + 64);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&expires.to_le_bytes());
    let created = record.created_at.map_or(UNKNOWN, to_ms);
    bytes.extend_from_slice(&created.to_le_bytes());
    encode_entries(&record.entries, &mut bytes);
    bytes
}

/// Decodes a file of either version; `None` if it is neither.
pub(super) fn decode(bytes: &[u8]) -> Option<Stored> {
    let expires = expiry(bytes)?;
    let (created_at, body) = if bytes.starts_with(MAGIC) {
        let (header, body) = bytes.split_first_chunk::<HEADER>()?;
        let created = u64::from_le_bytes(header[HEADER_V1..].try_into().ok()?);
        let created_at = (created != UNKNOWN).then(|| UNIX_EPOCH + Duration::from_millis(created));
        (created_at, body)
    } else {
        (None, &bytes[HEADER_V1..])
    };
    Some(Stored {
        expires,
        record: Record {
            entries: decode_entries(body)?,
            expires_at: None,
            created_at,
        },
    })
}

/// The expiry (ms since the epoch) in the first bytes of a file of either
/// version; `None` if they are not a session file's.
pub(super) fn expiry(bytes: &[u8]) -> Option<u64> {
    let (header, _) = bytes.split_first_chunk::<EXPIRY_HEADER>()?;
    if !(header.starts_with(MAGIC) || header.starts_with(MAGIC_V1)) {
        return None;
    }
    Some(u64::from_le_bytes(header[4..].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bytes::Bytes;

    use super::*;

    fn entries() -> HashMap<String, Bytes> {
        [("user".to_owned(), Bytes::from_static(b"\"ann\""))].into()
    }

    #[test]
    fn created_at_round_trips_to_the_millisecond() {
        let created = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let record = Record {
            entries: entries(),
            expires_at: None,
            created_at: Some(created),
        };
        let stored = decode(&encode(&record, 42)).unwrap();
        assert_eq!(stored.expires, 42);
        assert_eq!(
            stored.record.created_at,
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        );
        assert_eq!(stored.record.entries, entries());

        let unknown = decode(&encode(&Record::from(entries()), 42)).unwrap();
        assert_eq!(unknown.record.created_at, None);
    }

    #[test]
    fn files_of_neither_version_are_refused() {
        assert!(decode(b"AXS9\0\0\0\0\0\0\0\0").is_none());
        assert!(decode(b"AXS2\0\0\0\0").is_none(), "a short header");
        assert!(
            decode(b"AXS2\x01\0\0\0\0\0\0\0\xff").is_none(),
            "a cut creation time"
        );
    }
}
