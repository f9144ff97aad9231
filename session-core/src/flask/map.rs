//! A session as Flask-Session stores it: one map, each value kept as the
//! exact bytes Flask wrote, so that a key this side does not change is
//! written back unchanged.

use std::collections::HashMap;

use bytes::Bytes;
use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::FlaskFormat;
use super::msgpack::{str_body, value_len, write_len, write_str};
use crate::store::ChangeSet;

/// A key of the map: text (every key Flask's `session` has), or, for a
/// map some other code wrote, a MessagePack key of another type, kept as
/// its encoded bytes and written back as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Key {
    Text(String),
    Other(Bytes),
}

/// The map, in the order it was stored (new keys go last, as Python's
/// `dict` does).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Map {
    entries: Vec<(Key, Bytes)>,
}

impl Map {
    /// A map of text keys, sorted so that the bytes written are the same
    /// for the same entries.
    pub(super) fn from_entries(entries: &HashMap<String, Bytes>) -> Self {
        let mut entries: Vec<(Key, Bytes)> = entries
            .iter()
            .map(|(k, v)| (Key::Text(k.clone()), v.clone()))
            .collect();
        entries.sort_by(|a, b| match (&a.0, &b.0) {
            (Key::Text(a), Key::Text(b)) => a.cmp(b),
            _ => std::cmp::Ordering::Equal,
        });
        Self { entries }
    }

    /// Reads a stored value; `None` if it is not one map in `format`.
    pub(super) fn decode(format: FlaskFormat, value: &Bytes) -> Option<Self> {
        match format {
            FlaskFormat::MessagePack => decode_msgpack(value),
            FlaskFormat::Json => decode_json(value),
        }
    }

    /// The bytes to store.
    pub(super) fn encode(&self, format: FlaskFormat) -> Vec<u8> {
        match format {
            FlaskFormat::MessagePack => self.encode_msgpack(),
            FlaskFormat::Json => self.encode_json(),
        }
    }

    /// The entries under text keys.
    pub(super) fn text_entries(&self) -> HashMap<String, Bytes> {
        self.entries
            .iter()
            .filter_map(|(k, v)| match k {
                Key::Text(k) => Some((k.clone(), v.clone())),
                Key::Other(_) => None,
            })
            .collect()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Applies a change set in its documented order: a set key keeps its
    /// place, a new key goes last.
    pub(super) fn apply(&mut self, changes: &ChangeSet) {
        if changes.clear {
            self.entries.clear();
        }
        if !changes.remove.is_empty() {
            self.entries.retain(|(k, _)| match k {
                Key::Text(k) => !changes.remove.contains(k),
                Key::Other(_) => true,
            });
        }
        for (key, value) in &changes.set {
            match self
                .entries
                .iter_mut()
                .find(|(k, _)| matches!(k, Key::Text(k) if k == key))
            {
                Some((_, old)) => *old = value.clone(),
                None => self.entries.push((Key::Text(key.clone()), value.clone())),
            }
        }
    }

    /// Replaces each value by `f(value)`.
    pub(super) fn map_values(&mut self, mut f: impl FnMut(&Bytes) -> Option<Bytes>) -> Option<()> {
        for (_, value) in &mut self.entries {
            *value = f(value)?;
        }
        Some(())
    }

    fn encode_msgpack(&self) -> Vec<u8> {
        let size: usize = self.entries.iter().map(|(_, v)| v.len() + 16).sum();
        let mut out = Vec::with_capacity(size + 5);
        write_len(&mut out, self.entries.len(), [0x80, 0, 0xde, 0xdf], 16);
        for (key, value) in &self.entries {
            match key {
                Key::Text(key) => write_str(&mut out, key),
                Key::Other(raw) => out.extend_from_slice(raw),
            }
            out.extend_from_slice(value);
        }
        out
    }

    fn encode_json(&self) -> Vec<u8> {
        let size: usize = self.entries.iter().map(|(_, v)| v.len() + 16).sum();
        let mut out = Vec::with_capacity(size + 2);
        out.push(b'{');
        for (i, (key, value)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let Key::Text(key) = key else {
                unreachable!("a JSON object has text keys only")
            };
            serde_json::to_writer(&mut out, key).expect("a string always serializes");
            out.push(b':');
            out.extend_from_slice(value);
        }
        out.push(b'}');
        out
    }
}

fn decode_msgpack(value: &Bytes) -> Option<Map> {
    let input = &value[..];
    let (count, mut pos) = match *input.first()? {
        m @ 0x80..=0x8f => (usize::from(m & 0x0f), 1),
        0xde => (
            usize::from(u16::from_be_bytes(*input.get(1..3)?.first_chunk()?)),
            3,
        ),
        0xdf => (
            u32::from_be_bytes(*input.get(1..5)?.first_chunk()?) as usize,
            5,
        ),
        _ => return None,
    };
    // Each entry takes at least two bytes: a larger count is a lie.
    if count > input.len() / 2 {
        return None;
    }
    let mut map = Map::default();
    for _ in 0..count {
        let key_end = pos + value_len(&input[pos..])?;
        let key = match str_body(&input[pos..key_end]) {
            Some(text) => Key::Text(std::str::from_utf8(text).ok()?.to_owned()),
            None => Key::Other(value.slice(pos..key_end)),
        };
        let end = key_end + value_len(&input[key_end..])?;
        map.insert(key, value.slice(key_end..end));
        pos = end;
    }
    (pos == input.len()).then_some(map)
}

impl Map {
    /// Adds an entry read from storage; a repeated key keeps the last
    /// value, as Python's `dict` does.
    fn insert(&mut self, key: Key, value: Bytes) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => *old = value,
            None => self.entries.push((key, value)),
        }
    }
}

fn decode_json(value: &Bytes) -> Option<Map> {
    struct Entries<'a>(&'a Bytes);
    impl<'de> Visitor<'de> for Entries<'_> {
        type Value = Map;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Map, A::Error> {
            let mut map = Map::default();
            while let Some((key, raw)) = access.next_entry::<String, &'de RawValue>()? {
                // The raw text is a slice of the input: keep it as it is.
                let text = raw.get().as_bytes();
                let start = text.as_ptr() as usize - self.0.as_ptr() as usize;
                map.insert(Key::Text(key), self.0.slice(start..start + text.len()));
            }
            Ok(map)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(value);
    let map = de.deserialize_map(Entries(value)).ok()?;
    de.end().ok()?;
    Some(map)
}

/// Whether `value` is exactly one value in `format`.
pub(super) fn is_one_value(format: FlaskFormat, value: &[u8]) -> bool {
    match format {
        FlaskFormat::MessagePack => value_len(value) == Some(value.len()),
        FlaskFormat::Json => serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FLASK-SESSION.md's example: `{"_permanent": True, "name": "nick",
    /// "visits": 3}` as Flask-Session writes it.
    const FLASK: &str = "83aa5f7065726d616e656e74c3a46e616d65a46e69636ba6766973697473 03";

    fn flask_bytes() -> Bytes {
        Bytes::from(hex::decode(FLASK.replace(' ', "")).unwrap())
    }

    #[test]
    fn reads_and_writes_back_what_flask_session_wrote() {
        let stored = flask_bytes();
        let map = Map::decode(FlaskFormat::MessagePack, &stored).unwrap();
        let entries = map.text_entries();
        assert_eq!(entries["_permanent"], &[0xc3][..]);
        assert_eq!(entries["name"], &b"\xa4nick"[..]);
        assert_eq!(entries["visits"], &[0x03][..]);
        assert_eq!(map.encode(FlaskFormat::MessagePack), stored);
    }

    #[test]
    fn a_change_keeps_the_other_values_and_the_order() {
        let mut map = Map::decode(FlaskFormat::MessagePack, &flask_bytes()).unwrap();
        map.apply(&ChangeSet {
            set: vec![
                ("visits".into(), Bytes::from_static(&[0x04])),
                ("new".into(), Bytes::from_static(&[0xc0])),
            ],
            remove: vec!["name".into()],
            ..ChangeSet::default()
        });
        let mut expected =
            hex::decode("83aa5f7065726d616e656e74c3a6766973697473 04a36e6577c0".replace(' ', ""))
                .unwrap();
        assert_eq!(map.encode(FlaskFormat::MessagePack), expected);
        map.apply(&ChangeSet {
            clear: true,
            ..ChangeSet::default()
        });
        expected.clear();
        expected.push(0x80);
        assert_eq!(map.encode(FlaskFormat::MessagePack), expected);
        assert!(map.is_empty());
    }

    #[test]
    fn keys_of_other_types_are_kept_but_not_shown() {
        // {1: "a", "k": [1, {"x": nil}]}
        let raw = Bytes::from(hex::decode("8201a161a16b920181a178c0").unwrap());
        let map = Map::decode(FlaskFormat::MessagePack, &raw).unwrap();
        assert_eq!(map.text_entries().keys().collect::<Vec<_>>(), ["k"]);
        assert_eq!(map.encode(FlaskFormat::MessagePack), raw);
    }

    #[test]
    fn values_that_are_not_one_map_are_refused() {
        for bad in [
            &b""[..],
            b"\x80\xc0",
            b"\x81\xa1a",
            b"\x93\x01\x02\x03",
            b"\x81\xa1\xff\xc0",
        ] {
            assert_eq!(
                Map::decode(FlaskFormat::MessagePack, &Bytes::copy_from_slice(bad)),
                None
            );
        }
        for bad in [&b""[..], b"[1]", b"{\"a\":1} x", b"{\"a\":}", b"\x80"] {
            assert_eq!(
                Map::decode(FlaskFormat::Json, &Bytes::copy_from_slice(bad)),
                None
            );
        }
    }

    #[test]
    fn json_keeps_each_value_as_written() {
        let stored = Bytes::from_static(br#"{"_permanent":true,"f":1.50,"n":{"a":[1, 2]}}"#);
        let mut map = Map::decode(FlaskFormat::Json, &stored).unwrap();
        assert_eq!(map.text_entries()["f"], "1.50");
        assert_eq!(map.text_entries()["n"], r#"{"a":[1, 2]}"#);
        map.apply(&ChangeSet {
            set: vec![
                ("f".into(), Bytes::from_static(b"2")),
                ("k\"".into(), Bytes::from_static(b"null")),
            ],
            ..ChangeSet::default()
        });
        assert_eq!(
            map.encode(FlaskFormat::Json),
            br#"{"_permanent":true,"f":2,"n":{"a":[1, 2]},"k\"":null}"#
        );
        assert!(is_one_value(FlaskFormat::Json, b" [1] "));
        assert!(!is_one_value(FlaskFormat::Json, b"[1] 2"));
        assert!(is_one_value(FlaskFormat::MessagePack, b"\x92\x01\x02"));
        assert!(!is_one_value(FlaskFormat::MessagePack, b"\x92\x01"));
        assert!(!is_one_value(FlaskFormat::MessagePack, b""));
    }

    #[test]
    fn a_map_made_here_is_sorted_by_key() {
        let entries: HashMap<String, Bytes> = ["b", "c", "a", "_permanent"]
            .into_iter()
            .map(|k| (k.to_owned(), Bytes::from_static(&[0xc0])))
            .collect();
        assert_eq!(
            Map::from_entries(&entries).encode(FlaskFormat::MessagePack),
            b"\x84\xaa_permanent\xc0\xa1a\xc0\xa1b\xc0\xa1c\xc0"
        );
        assert!(!Map::from_entries(&entries).is_empty());
        assert!(Map::from_entries(&HashMap::new()).is_empty());
    }

    #[test]
    fn maps_and_keys_in_their_32_and_16_bit_forms_are_read() {
        // {"k" * 300: 1} as map32 with a str16 key, as another writer may
        // encode it.
        let mut raw = vec![0xdf, 0, 0, 0, 1, 0xda, 0x01, 0x2c];
        raw.extend("k".repeat(300).as_bytes());
        raw.push(0x01);
        let map = Map::decode(FlaskFormat::MessagePack, &Bytes::from(raw)).unwrap();
        assert_eq!(map.text_entries()["k".repeat(300).as_str()], &[0x01][..]);
        let str32 = Bytes::from_static(&[0x81, 0xdb, 0, 0, 0, 1, b'k', 0x02]);
        let map = Map::decode(FlaskFormat::MessagePack, &str32).unwrap();
        assert_eq!(map.text_entries()["k"], &[0x02][..]);
    }

    #[test]
    fn long_strings_and_maps_use_the_longer_headers() {
        let mut entries = HashMap::new();
        for i in 0..20 {
            entries.insert(
                format!("{i:02}{}", "k".repeat(40)),
                Bytes::from_static(&[0xc0]),
            );
        }
        let map = Map::from_entries(&entries);
        let bytes = Bytes::from(map.encode(FlaskFormat::MessagePack));
        assert_eq!(bytes[0], 0xde);
        assert_eq!(bytes[3], 0xd9, "a 42-byte key takes str8");
        assert_eq!(
            Map::decode(FlaskFormat::MessagePack, &bytes)
                .unwrap()
                .text_entries(),
            entries
        );
    }
}
