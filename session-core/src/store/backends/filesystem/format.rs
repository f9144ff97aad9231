//! The bytes of a session file: a fixed header, then the entries.
//!
//! `AXS3`: magic, expiry (u64 LE, ms since the epoch), creation time (u64
//! LE, ms since the epoch; `u64::MAX` when unknown), the store key (u32 LE
//! length, then its bytes: file names are hashes, so a scan reads the key
//! here), then the entries as `encode_entries` writes them. A file that
//! does not start with the magic is not a session file. Eviction reads
//! only the first [`EXPIRY_HEADER`] bytes: the magic and the expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::codec::{decode_entries, encode_entries};
use crate::store::Record;

const MAGIC: &[u8; 4] = b"AXS3";
/// How many leading bytes of a file hold its magic and its expiry.
pub(super) const EXPIRY_HEADER: usize = 12;
/// The magic, the expiry and the creation time.
const HEADER: usize = 20;
/// The creation time of a record that has none.
const UNKNOWN: u64 = u64::MAX;

/// A session file as read.
pub(super) struct Stored {
    /// When it expires, in ms since the epoch.
    pub(super) expires: u64,
    /// What it holds; `expires_at` is left `None` (callers decide).
    pub(super) record: Record,
    /// The store key it was written under.
    pub(super) key: String,
}

fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(UNKNOWN - 1))
        .min(UNKNOWN - 1)
}

/// Encodes the record of `key` that expires at `expires` (ms since the
/// epoch).
pub(super) fn encode(key: &str, record: &Record, expires: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER + 4 + key.len() + 64);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&expires.to_le_bytes());
    let created = record.created_at.map_or(UNKNOWN, to_ms);
    bytes.extend_from_slice(&created.to_le_bytes());
    // Store keys are short (a prefix and 64 hex digits).
    let len = u32::try_from(key.len()).expect("a store key shorter than 4 GiB");
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(key.as_bytes());
    encode_entries(&record.entries, &mut bytes);
    bytes
}

/// Decodes a session file; `None` if it is not one.
pub(super) fn decode(bytes: &[u8]) -> Option<Stored> {
    let expires = expiry(bytes)?;
    let (header, body) = bytes.split_first_chunk::<HEADER>()?;
    let created = u64::from_le_bytes(header[EXPIRY_HEADER..].try_into().ok()?);
    let created_at = (created != UNKNOWN).then(|| UNIX_EPOCH + Duration::from_millis(created));
    let (len, rest) = body.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    let (key, body) = rest.split_at_checked(len)?;
    Some(Stored {
        expires,
        record: Record {
            entries: decode_entries(body)?,
            expires_at: None,
            created_at,
        },
        key: String::from_utf8(key.to_vec()).ok()?,
    })
}

/// The expiry (ms since the epoch) in the first bytes of a session file;
/// `None` if they are not a session file's.
pub(super) fn expiry(bytes: &[u8]) -> Option<u64> {
    let (header, _) = bytes.split_first_chunk::<EXPIRY_HEADER>()?;
    if !header.starts_with(MAGIC) {
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
        let stored = decode(&encode("session:k", &record, 42)).unwrap();
        assert_eq!(stored.expires, 42);
        assert_eq!(stored.key, "session:k");
        assert_eq!(
            stored.record.created_at,
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        );
        assert_eq!(stored.record.entries, entries());

        let unknown = decode(&encode("k", &Record::from(entries()), 42)).unwrap();
        assert_eq!(unknown.record.created_at, None);
    }

    #[test]
    fn files_of_another_format_are_refused() {
        assert!(decode(b"AXS9\0\0\0\0\0\0\0\0").is_none());
        assert!(decode(b"AXS3\0\0\0\0").is_none(), "a short header");
        assert!(
            decode(b"AXS3\x01\0\0\0\0\0\0\0\xff").is_none(),
            "a cut creation time"
        );
        let mut cut_key = b"AXS3".to_vec();
        cut_key.extend_from_slice(&[0; 16]);
        cut_key.extend_from_slice(&9u32.to_le_bytes());
        cut_key.extend_from_slice(b"short");
        assert!(decode(&cut_key).is_none(), "a key cut short");
    }
}
