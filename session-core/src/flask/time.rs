//! A Python `datetime` (timezone-aware) as Flask-Session stores it.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// An instant as Flask-Session stores a timezone-aware `datetime`: the
/// MessagePack timestamp extension (type -1) in MessagePack, an RFC 3339
/// string (`2026-11-26T12:30:15.123456Z`) in JSON, as msgspec writes them.
///
/// Read one Flask stored with `session.get::<Timestamp>("key")`, or as a
/// field of a typed session; writing one gives Flask back a `datetime` in
/// UTC. A naive `datetime` is stored by Flask-Session as a plain string:
/// read it as a `String`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use session_core::Codec;
/// use session_core::flask::Timestamp;
///
/// // datetime(2026, 11, 26, 12, 30, 15, 123456, tzinfo=timezone.utc), as msgspec writes it:
/// let stored = [0xd7, 0xff, 0x1d, 0x6f, 0x28, 0x00, 0x6b, 0x08, 0x26, 0x57];
/// let when: Timestamp = Codec::MessagePack.decode(&stored)?;
/// let expected = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_696_215_123_456);
/// assert_eq!(SystemTime::from(when), expected);
/// assert_eq!(Codec::MessagePack.encode(&when)?, &stored[..]);
/// # Ok::<(), session_core::codec::CodecError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since the Unix epoch (negative before it).
    seconds: i64,
    /// Nanoseconds within the second.
    nanos: u32,
}

impl Timestamp {
    /// The instant as seconds since the Unix epoch and nanoseconds; `None`
    /// if `nanos` is not below 1,000,000,000.
    pub fn new(seconds: i64, nanos: u32) -> Option<Self> {
        (nanos < 1_000_000_000).then_some(Self { seconds, nanos })
    }

    /// Now.
    pub fn now() -> Self {
        SystemTime::now().into()
    }

    /// Seconds since the Unix epoch.
    pub fn seconds(self) -> i64 {
        self.seconds
    }

    /// Nanoseconds within the second.
    pub fn nanos(self) -> u32 {
        self.nanos
    }

    /// The timestamp extension's payload, in the shortest of its three
    /// forms, as msgspec chooses it.
    fn payload(self) -> Vec<u8> {
        match u64::try_from(self.seconds) {
            Ok(s) if self.nanos == 0 && s <= u64::from(u32::MAX) => {
                (s as u32).to_be_bytes().to_vec()
            }
            Ok(s) if s < 1 << 34 => ((u64::from(self.nanos) << 34) | s).to_be_bytes().to_vec(),
            _ => {
                let mut out = self.nanos.to_be_bytes().to_vec();
                out.extend(self.seconds.to_be_bytes());
                out
            }
        }
    }

    fn from_payload(data: &[u8]) -> Option<Self> {
        match data.len() {
            4 => Self::new(i64::from(u32::from_be_bytes(data.try_into().ok()?)), 0),
            8 => {
                let v = u64::from_be_bytes(data.try_into().ok()?);
                Self::new((v & ((1 << 34) - 1)) as i64, (v >> 34) as u32)
            }
            12 => Self::new(
                i64::from_be_bytes(data[4..].try_into().ok()?),
                u32::from_be_bytes(data[..4].try_into().ok()?),
            ),
            _ => None,
        }
    }

    /// RFC 3339 in UTC, with microseconds when there are any (Python's
    /// precision), as msgspec writes a UTC `datetime`.
    fn rfc3339(self) -> String {
        let days = self.seconds.div_euclid(86_400);
        let secs = self.seconds.rem_euclid(86_400);
        // Civil from days (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let mut out = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        if self.nanos != 0 {
            out.push_str(&format!(".{:06}", self.nanos / 1000));
        }
        out.push('Z');
        out
    }

    fn parse_rfc3339(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let num = |range: std::ops::Range<usize>| -> Option<i64> {
            let digits = text.get(range)?;
            digits
                .bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| digits.parse().ok())?
        };
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut rest = &text[19..];
        let mut nanos = 0u32;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let padded = format!("{:0<9}", &fraction[..digits.min(9)]);
            nanos = padded.parse().ok()?;
            rest = &fraction[digits..];
        }
        let offset = match rest {
            "Z" | "z" => 0,
            _ => {
                let sign = match rest.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                    return None;
                }
                sign * (num_of(&rest[1..3])? * 3600 + num_of(&rest[4..6])? * 60)
            }
        };
        // Days from civil.
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Self::new(
            days * 86_400 + hour * 3600 + minute * 60 + second - offset,
            nanos,
        )
    }
}

fn num_of(digits: &str) -> Option<i64> {
    digits
        .bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| digits.parse().ok())?
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => Self {
                seconds: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let (mut seconds, mut nanos) = (-(d.as_secs() as i64), d.subsec_nanos());
                if nanos > 0 {
                    seconds -= 1;
                    nanos = 1_000_000_000 - nanos;
                }
                Self { seconds, nanos }
            }
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        let whole = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(t.seconds.max(0) as u64))
            .and_then(|at| at.checked_sub(Duration::from_secs(t.seconds.min(0).unsigned_abs())))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        whole + Duration::from_nanos(u64::from(t.nanos))
    }
}

/// The extension's `(type, data)` as rmp-serde hands it over.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return serializer.serialize_str(&self.rfc3339());
        }
        let payload = self.payload();
        serializer
            .serialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, &(-1i8, Bytes(&payload)))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 date and time with an offset")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        struct Ext;
        impl<'de> Visitor<'de> for Ext {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a MessagePack timestamp (extension type -1)")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Timestamp, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Timestamp, A::Error> {
                let kind: i8 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                if kind != -1 {
                    return Err(de::Error::invalid_value(
                        de::Unexpected::Signed(kind.into()),
                        &self,
                    ));
                }
                let data: Payload = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                Timestamp::from_payload(&data.0)
                    .ok_or_else(|| de::Error::invalid_length(data.0.len(), &self))
            }
        }
        struct Payload(Vec<u8>);
        impl<'de> Deserialize<'de> for Payload {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = Payload;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Payload, E> {
                        Ok(Payload(v.to_vec()))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(Text)
        } else {
            deserializer.deserialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, Ext)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Codec;

    #[test]
    fn each_of_the_three_forms_round_trips_as_msgspec_writes_it() {
        // msgspec: datetime(2026,1,1,tzinfo=utc) -> d6 ff 69 55 b9 00;
        // with microseconds -> fixext8; before 1970 -> ext8 of 12 bytes.
        let cases: &[(i64, u32, &str)] = &[
            (1_767_225_600, 0, "d6ff6955b900"),
            (1_795_696_215, 123_456_000, "d7ff1d6f28006b082657"),
            (-1, 500_000_000, "c70cff1dcd6500ffffffffffffffff"),
        ];
        for (seconds, nanos, hex_form) in cases {
            let t = Timestamp::new(*seconds, *nanos).unwrap();
            let bytes = Codec::MessagePack.encode(&t).unwrap();
            assert_eq!(hex::encode(&bytes), *hex_form);
            assert_eq!(Codec::MessagePack.decode::<Timestamp>(&bytes).unwrap(), t);
        }
        assert!(
            Codec::MessagePack
                .decode::<Timestamp>(&[0xd4, 0xff, 0x00])
                .is_err(),
            "1 byte"
        );
        assert!(
            Codec::MessagePack
                .decode::<Timestamp>(&[0xd6, 0x01, 0, 0, 0, 0])
                .is_err(),
            "type 1"
        );
        assert!(Codec::MessagePack.decode::<Timestamp>(&[0x01]).is_err());
    }

    #[test]
    fn json_is_rfc3339_as_msgspec_writes_it() {
        let t = Timestamp::new(1_795_696_215, 123_456_000).unwrap();
        let json = Codec::Json.encode(&t).unwrap();
        assert_eq!(json, "\"2026-11-26T12:30:15.123456Z\"");
        assert_eq!(Codec::Json.decode::<Timestamp>(&json).unwrap(), t);
        let whole = Timestamp::new(951_782_400, 0).unwrap();
        assert_eq!(
            Codec::Json.encode(&whole).unwrap(),
            "\"2000-02-29T00:00:00Z\""
        );
        for (text, expected) in [
            ("2026-11-26T13:30:15.123456+01:00", t),
            (
                "2026-11-26T12:30:15.123456789Z",
                Timestamp::new(1_795_696_215, 123_456_789).unwrap(),
            ),
            (
                "1969-12-31T23:59:59.5Z",
                Timestamp::new(-1, 500_000_000).unwrap(),
            ),
        ] {
            assert_eq!(
                Codec::Json
                    .decode::<Timestamp>(format!("\"{text}\"").as_bytes())
                    .unwrap(),
                expected,
                "{text}"
            );
        }
        for bad in [
            "2026-11-26T12:30:15",
            "2026-13-01T00:00:00Z",
            "2026-11-26T12:30:15.Z",
            "x",
        ] {
            assert!(
                Codec::Json
                    .decode::<Timestamp>(format!("\"{bad}\"").as_bytes())
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn system_times_convert_both_ways() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_795_696_215, 42);
        assert_eq!(SystemTime::from(Timestamp::from(at)), at);
        let before = SystemTime::UNIX_EPOCH - Duration::from_millis(1500);
        let t = Timestamp::from(before);
        assert_eq!((t.seconds(), t.nanos()), (-2, 500_000_000));
        assert_eq!(SystemTime::from(t), before);
        assert!(Timestamp::new(0, 1_000_000_000).is_none());
        assert!(Timestamp::now() > Timestamp::new(1_795_000_000, 0).unwrap());
    }
}
