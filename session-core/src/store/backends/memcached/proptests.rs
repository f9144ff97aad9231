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

    #[test]
    fn values_of_the_previous_format_decode_without_a_creation_time(entries in entries()) {
        let mut value = MAGIC_V1.to_vec();
        crate::codec::encode_entries(&entries, &mut value);
        prop_assert_eq!(decode(Some(&value), "k"), Some(Record::from(entries)));
    }

    /// Whatever an item holds, decoding does not panic, and an item without
    /// one of this store's tags is not a session.
    #[test]
    fn arbitrary_values_never_panic_and_need_a_tag(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        tag in prop::sample::select(vec![&b""[..], MAGIC.as_slice(), MAGIC_V1.as_slice()]),
    ) {
        let value = [tag, &bytes].concat();
        let decoded = decode(Some(&value), "k");
        if !value.starts_with(MAGIC) && !value.starts_with(MAGIC_V1) {
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
