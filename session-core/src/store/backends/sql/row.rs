//! A session's row as the store reads and writes it: the entries as one
//! JSON object, and the times in the units the columns keep.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::store::{ChangeSet, Record, StoreError};

/// A live session's row, as `load` and `take` read it.
pub(super) struct Row {
    pub(super) data: String,
    /// `None` from `take`, which has no use for it.
    pub(super) expires_at: Option<SystemTime>,
    /// Unix milliseconds.
    pub(super) created_at: Option<i64>,
}

impl Row {
    pub(super) fn into_record(self) -> Result<Record, StoreError> {
        Ok(Record {
            entries: decode(&self.data)?,
            expires_at: self.expires_at,
            created_at: self.created_at.map(from_unix_ms),
        })
    }
}
/// A time as Unix milliseconds (negative before 1970), the unit
/// `created_at` is kept in, whatever the column's type.
pub(super) fn unix_ms(t: SystemTime) -> i64 {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => ms(after),
        // Round down before 1970 too, so that every time in one
        // millisecond is kept as that millisecond.
        Err(before) => {
            let before = before.duration();
            let part = i64::from(before.subsec_nanos() % 1_000_000 != 0);
            ms(before).saturating_add(part).saturating_neg()
        }
    }
}

fn from_unix_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}
/// A value as JSON: the text itself if it can be, else `["<base64>"]`.
fn encode_value(value: &[u8]) -> Value {
    match std::str::from_utf8(value) {
        Ok(text) if !text.contains('\0') => Value::String(text.to_owned()),
        _ => Value::Array(vec![Value::String(B64.encode(value))]),
    }
}

fn decode_value(key: &str, value: Value) -> Result<Bytes, StoreError> {
    match value {
        Value::String(text) => Ok(Bytes::from(text)),
        Value::Array(mut items) if items.len() == 1 => match items.pop() {
            Some(Value::String(b64)) => B64.decode(b64).map(Bytes::from).map_err(|e| {
                StoreError::backend(format!("session key {key:?}: bad base64 in the row: {e}"))
            }),
            _ => Err(corrupt(key)),
        },
        _ => Err(corrupt(key)),
    }
}

fn corrupt(key: &str) -> StoreError {
    StoreError::backend(format!(
        "session key {key:?}: the row holds a value this store did not write"
    ))
}

/// Entries as the JSON object kept in `data`.
pub(super) fn encode<'a>(entries: impl Iterator<Item = (&'a String, &'a Bytes)>) -> String {
    let object: Map<String, Value> = entries.map(|(k, v)| (k.clone(), encode_value(v))).collect();
    Value::Object(object).to_string()
}

/// The entries a change set writes, as a JSON object.
pub(super) fn encode_set(changes: &ChangeSet) -> String {
    encode(changes.set.iter().map(|(k, v)| (k, v)))
}

/// A change set (without `clear`) as an RFC 7396 merge patch: the new
/// values, and `null` for each removed key.
#[cfg(any(feature = "sql-mysql", feature = "sql-sqlite"))]
pub(super) fn merge_patch(changes: &ChangeSet) -> String {
    let mut object = Map::new();
    for key in &changes.remove {
        object.insert(key.clone(), Value::Null);
    }
    for (key, value) in &changes.set {
        object.insert(key.clone(), encode_value(value));
    }
    Value::Object(object).to_string()
}

pub(super) fn decode(data: &str) -> Result<HashMap<String, Bytes>, StoreError> {
    let object: Map<String, Value> = serde_json::from_str(data)
        .map_err(|e| StoreError::backend(format!("the session row is not a JSON object: {e}")))?;
    object
        .into_iter()
        .map(|(k, v)| {
            let value = decode_value(&k, v)?;
            Ok((k, value))
        })
        .collect()
}
/// A lifetime in whole units of `unit` (at least one).
pub(super) fn ttl_in(ttl: Duration, unit: Duration) -> i64 {
    i64::try_from(ttl.as_nanos() / unit.as_nanos())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// The time `remaining` units of `unit` from now (none left: now).
#[cfg(any(feature = "sql-postgres", feature = "sql-mysql"))]
pub(super) fn expires_in(remaining: i64, unit: Duration) -> std::time::SystemTime {
    let units = u64::try_from(remaining).unwrap_or(0);
    let nanos = units.saturating_mul(u64::try_from(unit.as_nanos()).unwrap_or(u64::MAX));
    std::time::SystemTime::now() + Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_text_when_they_can_be() {
        assert_eq!(encode_value(b"\"nick\""), Value::String("\"nick\"".into()));
        assert_eq!(encode_value(b""), Value::String(String::new()));
        assert_eq!(
            encode_value(&[0, 255]),
            Value::Array(vec![Value::String("AP8=".into())])
        );
        assert_eq!(
            encode_value(b"a\0b"),
            Value::Array(vec![Value::String("YQBi".into())])
        );
        for value in [&b"\"nick\""[..], b"", &[0, 255], b"a\0b"] {
            assert_eq!(decode_value("k", encode_value(value)).unwrap(), value);
        }
        assert!(decode_value("k", Value::Bool(true)).is_err());
        assert!(decode_value("k", serde_json::json!(["not base64!"])).is_err());
    }

    #[test]
    fn creation_times_round_down_to_the_millisecond() {
        let at = |ms: i64, nanos: u64| {
            let base = from_unix_ms(ms);
            (unix_ms(base + Duration::from_nanos(nanos)), ms)
        };
        for ms in [0, 1, 1_764_000_000_123, -1, -1_000, -86_400_001] {
            for nanos in [0, 1, 999_999] {
                let (got, want) = at(ms, nanos);
                assert_eq!(got, want, "{ms} ms + {nanos} ns");
            }
        }
        assert_eq!(
            unix_ms(UNIX_EPOCH + Duration::from_millis(1_764_000_000_123)),
            1_764_000_000_123
        );
    }

    #[test]
    fn durations_in_units() {
        assert_eq!(
            ttl_in(Duration::from_secs(1), Duration::from_millis(1)),
            1000
        );
        assert_eq!(ttl_in(Duration::ZERO, Duration::from_millis(1)), 1);
        assert_eq!(ttl_in(Duration::MAX, Duration::from_micros(1)), i64::MAX);
    }
}
