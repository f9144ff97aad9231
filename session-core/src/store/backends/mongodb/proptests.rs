//! Properties of the MongoDB store's field names: session keys are any
//! text, field names must not hold what MongoDB reads as a path (`.`), an
//! operator (`$`) or the end of a C string (NUL).

use proptest::prelude::*;
use proptest::test_runner::Config;

use super::*;

/// Any key, weighted towards the characters the escaping handles.
fn key() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec!['%', '.', '$', '\0', '2', 'E', '4', '0', '5']);
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..32).prop_map(String::from_iter),
        prop::collection::vec(special, 0..12).prop_map(String::from_iter),
    ]
}

/// A field as it may come back from a document someone else wrote.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..32).prop_map(String::from_iter),
        "[%.$0-9A-Fa-z]{0,12}",
        "(%(25|2E|24|00|2e|2|)[a-é]?){0,4}",
    ]
}

fn is_field_name(field: &str) -> bool {
    !field.is_empty() && !field.contains(['.', '$', '\0'])
}

proptest! {
    #![proptest_config(Config::with_cases(512))]

    #[test]
    fn keys_round_trip_through_field_names_mongodb_accepts(key in key()) {
        let field = encode_key(&key);
        prop_assert!(is_field_name(&field), "{:?} -> {:?}", key, field);
        prop_assert_eq!(decode_key(&field).ok(), Some(key));
    }

    #[test]
    fn distinct_keys_get_distinct_field_names(a in key(), b in key()) {
        prop_assume!(a != b);
        prop_assert_ne!(encode_key(&a), encode_key(&b));
    }

    /// Decoding never panics, and a field name this store could have
    /// written decodes to the one key that encodes to it: no two spellings
    /// of a key.
    #[test]
    fn any_field_decodes_without_panic_to_the_key_that_encodes_to_it(field in field()) {
        if let Ok(key) = decode_key(&field)
            && is_field_name(&field)
        {
            prop_assert_eq!(encode_key(&key), field);
        }
    }
}
