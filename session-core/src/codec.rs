//! How session values become bytes.
//!
//! Values are encoded one key at a time, so a store can keep a session as a
//! set of fields and touch only the ones a request changed.

use std::collections::HashMap;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format session values are stored in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// JSON, readable in any store's console. The default.
    #[default]
    Json,
    /// MessagePack: smaller and faster than JSON.
    #[cfg(feature = "msgpack")]
    #[cfg_attr(docsrs, doc(cfg(feature = "msgpack")))]
    MessagePack,
}

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(Box<dyn std::error::Error + Send + Sync>);

impl Codec {
    /// Encodes one value.
    ///
    /// # Errors
    ///
    /// [`CodecError`] if serde cannot serialize the value in this format
    /// (a map with non-string keys in JSON, say).
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Bytes, CodecError> {
        match self {
            Codec::Json => serde_json::to_vec(value)
                .map(Bytes::from)
                .map_err(|e| CodecError(e.into())),
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => rmp_serde::to_vec_named(value)
                .map(Bytes::from)
                .map_err(|e| CodecError(e.into())),
        }
    }

    /// Decodes one value.
    ///
    /// # Errors
    ///
    /// [`CodecError`] if `bytes` are not this format, or not a `T`.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| CodecError(e.into())),
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => {
                let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
                // rmp-serde's default (1024) overflows a 2 MiB thread stack
                // in debug builds: a stored value nested that deep would
                // abort the process instead of failing to decode.
                de.set_max_depth(MAX_DEPTH);
                T::deserialize(&mut de).map_err(|e| CodecError(e.into()))
            }
        }
    }
}

/// How deep a MessagePack value may nest: serde_json's own limit.
#[cfg(feature = "msgpack")]
const MAX_DEPTH: usize = 128;

/// The bytes one entry takes in [`encode_entries`]: the key, the value and
/// two 4-byte lengths. Sessions count their size in this unit.
pub fn entry_size(key: &str, value: &[u8]) -> usize {
    8 + key.len() + value.len()
}

/// Encodes a whole session as length-prefixed entries, for stores that keep
/// a session in one blob (files, cookies).
pub fn encode_entries(entries: &HashMap<String, Bytes>, out: &mut Vec<u8>) {
    for (key, value) in entries {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
}

/// Decodes what [`encode_entries`] wrote; `None` if the bytes are not that.
pub fn decode_entries(mut input: &[u8]) -> Option<HashMap<String, Bytes>> {
    fn take<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
        let (len, rest) = input.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (item, rest) = rest.split_at(len);
        *input = rest;
        Some(item)
    }
    let mut entries = HashMap::new();
    while !input.is_empty() {
        let key = std::str::from_utf8(take(&mut input)?).ok()?.to_owned();
        let value = Bytes::copy_from_slice(take(&mut input)?);
        entries.insert(key, value);
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let bytes = Codec::Json.encode(&("nick", 3u32)).unwrap();
        assert_eq!(&bytes[..], br#"["nick",3]"#);
        let back: (String, u32) = Codec::Json.decode(&bytes).unwrap();
        assert_eq!(back, ("nick".to_owned(), 3));
        assert!(Codec::Json.decode::<u32>(b"\"x\"").is_err());
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn msgpack_round_trip() {
        let bytes = Codec::MessagePack.encode(&vec![1u8, 2, 3]).unwrap();
        let back: Vec<u8> = Codec::MessagePack.decode(&bytes).unwrap();
        assert_eq!(back, vec![1, 2, 3]);
    }

    #[test]
    fn entries_round_trip_and_size() {
        let mut entries = HashMap::new();
        entries.insert("name".to_owned(), Bytes::from_static(b"\"nick\""));
        entries.insert(String::new(), Bytes::new());
        let mut out = Vec::new();
        encode_entries(&entries, &mut out);
        assert_eq!(
            out.len(),
            entry_size("name", b"\"nick\"") + entry_size("", b"")
        );
        assert_eq!(decode_entries(&out), Some(entries));
    }

    #[test]
    fn garbage_entries_are_rejected() {
        assert_eq!(decode_entries(&[]), Some(HashMap::new()));
        assert_eq!(decode_entries(&[1]), None);
        assert_eq!(decode_entries(&[5, 0, 0, 0, b'a']), None);
        assert_eq!(
            decode_entries(&[1, 0, 0, 0, 0xff, 0, 0, 0, 0]),
            None,
            "bad utf-8"
        );
        assert_eq!(decode_entries(&[0, 0, 0, 0, 255, 255, 255, 255]), None);
    }
}
