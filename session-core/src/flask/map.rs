//! A session as Flask-Session stores it: one map, each value kept as the
//! exact bytes Flask wrote, so that a key this side does not change is
//! written back unchanged.

use std::cell::Cell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use serde::de::{Deserializer as _, Error as _, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::FlaskFormat;
use super::msgpack::{str_body, value_len, write_len, write_str};
use crate::store::ChangeSet;

/// The most entries a stored map may have, repeated keys counted: a map
/// past it is not read, and none is written. A session holds a few dozen
/// keys, a user's index one per live session; the limit bounds what one
/// load can cost.
pub const MAX_ENTRIES: usize = 10_000;

/// Why a stored value is not read as a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum DecodeError {
    /// Not one map in the format (pickle, say).
    #[error("not one {0:?} map (pickle is never read)")]
    NotAMap(FlaskFormat),
    /// More entries than [`MAX_ENTRIES`].
    #[error("a map of more than {MAX_ENTRIES} entries, the most one may have")]
    TooManyEntries,
}

/// A key of the map: text (every key Flask's `session` has), or, for a
/// map some other code wrote, a MessagePack key of another type, kept as
/// its encoded bytes and written back as it was.
#[derive(Clone, Debug)]
pub(super) enum Key {
    Text(String),
    Other(Bytes),
}

// By hand rather than derived, so that tests can count comparisons.
impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        #[cfg(test)]
        tests::KEY_COMPARISONS.with(|n| n.set(n.get() + 1));
        match (self, other) {
            (Key::Text(a), Key::Text(b)) => a == b,
            (Key::Other(a), Key::Other(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Key::Text(text) => {
                state.write_u8(0);
                text.hash(state);
            }
            Key::Other(raw) => {
                state.write_u8(1);
                raw.hash(state);
            }
        }
    }
}

/// The map, in the order it was stored (new keys go last, as Python's
/// `dict` does).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Map {
    entries: Vec<(Key, Bytes)>,
    /// Where each key is in `entries`, so that finding one takes no scan
    /// and reading a map of n entries takes O(n), not O(n²).
    at: HashMap<Key, usize>,
}

impl Map {
    /// A map of text keys, sorted so that the bytes written are the same
    /// for the same entries.
    pub(super) fn from_entries(entries: &HashMap<String, Bytes>) -> Self {
        let mut sorted: Vec<(&String, &Bytes)> = entries.iter().collect();
        sorted.sort_unstable_by_key(|(k, _)| *k);
        let mut map = Self::default();
        for (k, v) in sorted {
            map.insert(Key::Text(k.clone()), v.clone());
        }
        map
    }

    /// Reads a stored value: an error if it is not one map in `format`,
    /// or if it has more than [`MAX_ENTRIES`] entries.
    pub(super) fn decode(format: FlaskFormat, value: &Bytes) -> Result<Self, DecodeError> {
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

    /// How many entries the map has.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an entry: a key already there keeps its place and takes the
    /// new value (so a key repeated in storage keeps the last, as Python's
    /// `dict` does), a new key goes last.
    fn insert(&mut self, key: Key, value: Bytes) {
        match self.at.entry(key) {
            Entry::Occupied(at) => self.entries[*at.get()].1 = value,
            Entry::Vacant(at) => {
                self.entries.push((at.key().clone(), value));
                at.insert(self.entries.len() - 1);
            }
        }
    }

    /// Applies a change set in its documented order: a set key keeps its
    /// place, a new key goes last.
    pub(super) fn apply(&mut self, changes: &ChangeSet) {
        if changes.clear {
            self.entries.clear();
            self.at.clear();
        }
        if !changes.remove.is_empty() {
            let remove: HashSet<&str> = changes.remove.iter().map(String::as_str).collect();
            self.entries.retain(|(k, _)| match k {
                Key::Text(k) => !remove.contains(k.as_str()),
                Key::Other(_) => true,
            });
            self.at = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect();
        }
        for (key, value) in &changes.set {
            self.insert(Key::Text(key.clone()), value.clone());
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

fn decode_msgpack(value: &Bytes) -> Result<Map, DecodeError> {
    let not_a_map = DecodeError::NotAMap(FlaskFormat::MessagePack);
    let (count, start) = map_header(value).ok_or(not_a_map)?;
    if count > MAX_ENTRIES {
        return Err(DecodeError::TooManyEntries);
    }
    msgpack_entries(value, count, start).ok_or(not_a_map)
}

/// The entry count of the MessagePack map `input` starts with, and where
/// its first entry starts.
fn map_header(input: &[u8]) -> Option<(usize, usize)> {
    let (count, start) = match *input.first()? {
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
    (count <= input.len() / 2).then_some((count, start))
}

/// The `count` entries from `pos` on, which must end where `value` does.
fn msgpack_entries(value: &Bytes, count: usize, mut pos: usize) -> Option<Map> {
    let input = &value[..];
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

fn decode_json(value: &Bytes) -> Result<Map, DecodeError> {
    struct Entries<'a> {
        value: &'a Bytes,
        /// Set when the object has more than [`MAX_ENTRIES`] entries: the
        /// error that stops reading cannot say so itself.
        too_many: &'a Cell<bool>,
    }
    impl<'de> Visitor<'de> for Entries<'_> {
        type Value = Map;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Map, A::Error> {
            let mut map = Map::default();
            let mut count = 0;
            while let Some((key, raw)) = access.next_entry::<String, &'de RawValue>()? {
                count += 1;
                if count > MAX_ENTRIES {
                    self.too_many.set(true);
                    return Err(A::Error::custom(DecodeError::TooManyEntries));
                }
                // The raw text is a slice of the input: keep it as it is.
                let text = raw.get().as_bytes();
                let start = text.as_ptr() as usize - self.value.as_ptr() as usize;
                map.insert(Key::Text(key), self.value.slice(start..start + text.len()));
            }
            Ok(map)
        }
    }
    let too_many = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(value);
    let map = de.deserialize_map(Entries {
        value,
        too_many: &too_many,
    });
    match map.and_then(|map| de.end().map(|()| map)) {
        Ok(map) => Ok(map),
        Err(_) if too_many.get() => Err(DecodeError::TooManyEntries),
        Err(_) => Err(DecodeError::NotAMap(FlaskFormat::Json)),
    }
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
    use bytes::BufMut;

    use super::*;

    thread_local! {
        /// How many times this thread compared two keys.
        pub(super) static KEY_COMPARISONS: Cell<usize> = const { Cell::new(0) };
    }

    /// `n` as `format` writes it (in MessagePack, always as a uint 16).
    fn number(format: FlaskFormat, n: usize) -> Bytes {
        match format {
            FlaskFormat::MessagePack => {
                let mut out = vec![0xcd];
                out.put_u16(u16::try_from(n).unwrap());
                Bytes::from(out)
            }
            FlaskFormat::Json => Bytes::from(n.to_string()),
        }
    }

    /// A map of `keys` in `format`, in order, the value of each its
    /// position.
    fn map_of(format: FlaskFormat, keys: &[String]) -> Bytes {
        let mut out = Vec::new();
        match format {
            FlaskFormat::MessagePack => write_len(&mut out, keys.len(), [0x80, 0, 0xde, 0xdf], 16),
            FlaskFormat::Json => out.push(b'{'),
        }
        for (i, key) in keys.iter().enumerate() {
            match format {
                FlaskFormat::MessagePack => write_str(&mut out, key),
                FlaskFormat::Json => {
                    if i > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut out, key).unwrap();
                    out.push(b':');
                }
            }
            out.extend_from_slice(&number(format, i));
        }
        if format == FlaskFormat::Json {
            out.push(b'}');
        }
        Bytes::from(out)
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("k{i}")).collect()
    }

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
                Err(DecodeError::NotAMap(FlaskFormat::MessagePack))
            );
        }
        for bad in [&b""[..], b"[1]", b"{\"a\":1} x", b"{\"a\":}", b"\x80"] {
            assert_eq!(
                Map::decode(FlaskFormat::Json, &Bytes::copy_from_slice(bad)),
                Err(DecodeError::NotAMap(FlaskFormat::Json))
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

    #[test]
    fn a_map_of_max_entries_is_read() {
        let keys = keys(MAX_ENTRIES);
        for format in [FlaskFormat::MessagePack, FlaskFormat::Json] {
            let raw = map_of(format, &keys);
            let map = Map::decode(format, &raw).unwrap();
            assert_eq!(map.len(), MAX_ENTRIES, "{format:?}");
            assert_eq!(map.encode(format), raw, "{format:?}");
        }
    }

    #[test]
    fn a_map_past_max_entries_is_refused_naming_the_limit() {
        let keys = keys(MAX_ENTRIES + 1);
        for format in [FlaskFormat::MessagePack, FlaskFormat::Json] {
            let error = Map::decode(format, &map_of(format, &keys)).unwrap_err();
            assert_eq!(error, DecodeError::TooManyEntries, "{format:?}");
            assert_eq!(
                error.to_string(),
                "a map of more than 10000 entries, the most one may have"
            );
        }
        // Repeated keys count: the limit bounds the work, not the result.
        let repeated = vec!["k".to_owned(); MAX_ENTRIES + 1];
        for format in [FlaskFormat::MessagePack, FlaskFormat::Json] {
            assert_eq!(
                Map::decode(format, &map_of(format, &repeated)),
                Err(DecodeError::TooManyEntries),
                "{format:?}"
            );
        }
    }

    #[test]
    fn reading_a_map_compares_keys_a_number_of_times_linear_in_its_size() {
        // Every key twice. Scanning the entries read so far for each key
        // (the code before the index) took MAX_ENTRIES² / 4 comparisons.
        let half = keys(MAX_ENTRIES / 2);
        let twice: Vec<String> = half.iter().chain(&half).cloned().collect();
        for format in [FlaskFormat::MessagePack, FlaskFormat::Json] {
            let raw = map_of(format, &twice);
            KEY_COMPARISONS.with(|n| n.set(0));
            let map = Map::decode(format, &raw).unwrap();
            let comparisons = KEY_COMPARISONS.with(Cell::get);
            assert!(
                comparisons <= 2 * MAX_ENTRIES,
                "{format:?}: {comparisons} comparisons for {MAX_ENTRIES} entries"
            );
            // A repeated key keeps its first place and its last value, as
            // Python's `dict` does.
            assert_eq!(map.len(), half.len(), "{format:?}");
            for (i, entry) in map.entries.iter().enumerate() {
                let last = number(format, half.len() + i);
                assert_eq!(*entry, (Key::Text(half[i].clone()), last), "{format:?}");
            }
        }
    }

    #[test]
    fn a_change_set_keeps_each_key_in_place_and_compares_few_keys() {
        let format = FlaskFormat::MessagePack;
        let mut map = Map::decode(format, &map_of(format, &keys(MAX_ENTRIES))).unwrap();
        let nil = Bytes::from_static(&[0xc0]);
        let changes = ChangeSet {
            set: keys(MAX_ENTRIES / 2)
                .into_iter()
                .map(|k| (k, nil.clone()))
                .collect(),
            remove: vec!["k0".into()],
            ..ChangeSet::default()
        };
        KEY_COMPARISONS.with(|n| n.set(0));
        map.apply(&changes);
        let comparisons = KEY_COMPARISONS.with(Cell::get);
        assert!(comparisons <= MAX_ENTRIES, "{comparisons} comparisons");
        // k0 removed, then set again: last.
        assert_eq!(map.len(), MAX_ENTRIES);
        assert_eq!(map.entries[0], (Key::Text("k1".into()), nil.clone()));
        assert_eq!(map.entries[MAX_ENTRIES - 1], (Key::Text("k0".into()), nil));
        let unchanged = MAX_ENTRIES / 2 + 1;
        assert_eq!(
            map.entries[MAX_ENTRIES / 2],
            (
                Key::Text(format!("k{unchanged}")),
                number(format, unchanged)
            )
        );
    }
}
