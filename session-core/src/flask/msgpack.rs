//! The few pieces of MessagePack the map needs, without decoding values:
//! measuring one value, and writing lengths, strings and binary data in
//! their shortest forms, as msgspec does.

use bytes::BufMut;

/// Writes a MessagePack length header: `markers` are the fix form's base,
/// the 8-bit form (0: none), the 16-bit and the 32-bit forms; `fix_limit`
/// is the first length the fix form cannot hold.
pub(super) fn write_len(out: &mut Vec<u8>, len: usize, markers: [u8; 4], fix_limit: usize) {
    if len < fix_limit {
        out.push(markers[0] | len as u8);
    } else if markers[1] != 0 && len <= 0xff {
        out.push(markers[1]);
        out.push(len as u8);
    } else if len <= 0xffff {
        out.push(markers[2]);
        out.put_u16(len as u16);
    } else {
        out.push(markers[3]);
        out.put_u32(u32::try_from(len).expect("a session value under 4 GiB"));
    }
}

/// Writes a MessagePack string in its shortest form, as msgspec does.
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    write_len(out, s.len(), [0xa0, 0xd9, 0xda, 0xdb], 32);
    out.extend_from_slice(s.as_bytes());
}

/// Writes MessagePack binary data (Python `bytes`).
pub(super) fn write_bin(out: &mut Vec<u8>, data: &[u8]) {
    write_len(out, data.len(), [0, 0xc4, 0xc5, 0xc6], 0);
    out.extend_from_slice(data);
}

/// The body of a MessagePack string, if `raw` is exactly one.
pub(super) fn str_body(raw: &[u8]) -> Option<&[u8]> {
    let header = match *raw.first()? {
        0xa0..=0xbf => 1,
        0xd9 => 2,
        0xda => 3,
        0xdb => 5,
        _ => return None,
    };
    raw.get(header..)
}

/// The length in bytes of the one MessagePack value `input` starts with,
/// nested values included; `None` if it is not a whole, well-formed value.
/// Iterative, so that no nesting depth can exhaust the stack.
pub(super) fn value_len(input: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    // Values still to skip: the first, then the items of each container.
    let mut pending = 1usize;
    while pending > 0 {
        pending -= 1;
        let marker = *input.get(pos)?;
        let be = |at: usize, n: usize| -> Option<usize> {
            let bytes = input.get(pos + at..pos + at + n)?;
            Some(
                bytes
                    .iter()
                    .fold(0usize, |acc, b| acc << 8 | usize::from(*b)),
            )
        };
        let (header, body, items) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
            0x80..=0x8f => (1, 0, 2 * usize::from(marker & 0x0f)),
            0x90..=0x9f => (1, 0, usize::from(marker & 0x0f)),
            0xa0..=0xbf => (1, usize::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (2, be(1, 1)?, 0),
            0xc5 | 0xda => (3, be(1, 2)?, 0),
            0xc6 | 0xdb => (5, be(1, 4)?, 0),
            0xc7 => (3, be(1, 1)?, 0),
            0xc8 => (4, be(1, 2)?, 0),
            0xc9 => (6, be(1, 4)?, 0),
            0xca => (1, 4, 0),
            0xcb => (1, 8, 0),
            0xcc | 0xd0 => (1, 1, 0),
            0xcd | 0xd1 => (1, 2, 0),
            0xce | 0xd2 => (1, 4, 0),
            0xcf | 0xd3 => (1, 8, 0),
            0xd4 => (2, 1, 0),
            0xd5 => (2, 2, 0),
            0xd6 => (2, 4, 0),
            0xd7 => (2, 8, 0),
            0xd8 => (2, 16, 0),
            0xdc => (3, 0, be(1, 2)?),
            0xdd => (5, 0, be(1, 4)?),
            0xde => (3, 0, 2 * be(1, 2)?),
            0xdf => (5, 0, 2 * be(1, 4)?),
            0xc1 => return None,
        };
        pos = pos.checked_add(header)?.checked_add(body)?;
        if pos > input.len() {
            return None;
        }
        pending = pending.checked_add(items)?;
        // Each pending value takes at least a byte.
        if pending > input.len() - pos {
            return None;
        }
    }
    Some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_value_is_measured() {
        let values: &[&str] = &[
            "c0",
            "c2",
            "c3",
            "7f",
            "e0",
            "cc80",
            "cd0100",
            "ce00010000",
            "cf0000000100000000",
            "d0ff",
            "d1ff00",
            "d2ff000000",
            "d3ff00000000000000",
            "ca3f800000",
            "cb3ff0000000000000",
            "a3616263",
            "d903616263",
            "da0003616263",
            "db00000003616263",
            "c403010203",
            "c50003010203",
            "c600000003010203",
            "d6ff00000000",
            "d7ff0000000000000000",
            "c70cff000000000000000000000000",
            "d4010a",
            "d5010a0b",
            "d8010102030405060708090a0b0c0d0e0f10",
            "c8000101aa",
            "c90000000101aa",
            "92c0c3",
            "dc0002c0c3",
            "dd00000002c0c3",
            "81a161c0",
            "de0001a161c0",
            "df00000001a161c0",
            "82a161c0a162c0",
            "de0002a161c0a162c0",
            "df00000002a161c0a162c0",
        ];
        for hex_value in values {
            let value = hex::decode(hex_value).unwrap();
            assert_eq!(value_len(&value), Some(value.len()), "{hex_value}");
            assert_eq!(
                value_len(&value[..value.len() - 1]),
                None,
                "{hex_value} cut short"
            );
            let mut longer = value.clone();
            longer.push(0xc0);
            assert_eq!(
                value_len(&longer),
                Some(value.len()),
                "{hex_value} then nil"
            );
        }
        assert_eq!(value_len(&[0xc1]), None, "never used");
        assert_eq!(value_len(&[]), None);
        assert_eq!(
            value_len(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]),
            None,
            "a lying count"
        );
    }

    #[test]
    fn deep_nesting_does_not_exhaust_the_stack() {
        let mut deep = vec![0x91; 1_000_000];
        deep.push(0xc0);
        assert_eq!(value_len(&deep), Some(deep.len()));
    }

    #[test]
    fn long_binary_data_uses_the_longer_header() {
        let mut out = Vec::new();
        write_bin(&mut out, &[7; 300]);
        assert_eq!(&out[..3], &[0xc5, 0x01, 0x2c]);
        assert_eq!(value_len(&out), Some(303));
    }
}
