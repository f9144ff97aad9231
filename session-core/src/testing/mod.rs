//! The acceptance suite every store runs: one case per contract of
//! [`SessionStore`].
//!
//! Run it against your store with [`store_suite!`](crate::store_suite), which
//! generates one test per case:
//!
//! ```
//! mod memory {
//!     session_core::store_suite!(async { session_core::store::memory::MemoryStore::new() });
//! }
//! ```
//!
//! The cases use keys under a random prefix, so they can share a server
//! with other tests and with each other. Expiry is checked with a one-second
//! lifetime (the finest that memcached keeps), so the suite takes a few
//! seconds. The cases about concurrent calls run them on threads of their
//! own, released together, round after round until the rounds show that
//! the calls raced (for at most ten seconds): a case that could pass
//! without a race proves nothing about one.
//!
//! # Panics
//!
//! Every case panics, naming the broken contract, when the store breaks it.

// Each case's panic is its report (see the module docs).
#![allow(clippy::missing_panics_doc)]

/// Where this crate keeps its own records and how it lays out what it
/// stores beside the sessions: for tests that inspect a store, or plant in
/// it what an attacker with write access could. Not an API to build on.
pub mod layout {
    pub use crate::keyspace::Keyspace;
    pub use crate::logout::MOVE_NOTE_TTL;
    pub use crate::seal::{AtRest, OVERHEAD, is_sealed};
    pub use crate::users::{Binding, Entry, Handle, INDEX_MAX_BYTES, INDEX_TTL, USER_KEY, millis};
}

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::store::{Applied, BoxFuture, ChangeSet, Record, SessionStore};
use crate::{SessionId, StoreKey};

#[doc(hidden)]
pub use tokio as __tokio;

const LONG: Duration = Duration::from_secs(600);
/// A new lifetime given by `touch` and `apply`: shorter than `LONG`, so that
/// a store that adds it to the old one, or keeps the longer of the two, is
/// off by minutes.
const EXTENDED: Duration = Duration::from_secs(300);
const SHORT: Duration = Duration::from_secs(1);
/// Comfortably past `SHORT`, for stores that expire on whole seconds.
const PAST_SHORT: Duration = Duration::from_millis(2200);

/// How far off the expiry a store reports may be, for a store that keeps
/// times to the millisecond (the default of [`store_suite!`](crate::store_suite)):
/// a millisecond of rounding each way, and clock reads.
pub const MILLISECOND_PRECISION: Duration = Duration::from_millis(5);

/// A key no other test uses.
pub fn unique_key(name: &str) -> StoreKey {
    StoreKey::new(&format!("suite:{name}:"), &SessionId::generate(), true)
}

/// A record of string entries.
pub fn record(pairs: &[(&str, &str)]) -> Record {
    Record::from(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v.as_bytes())))
            .collect::<HashMap<_, _>>(),
    )
}

fn set(pairs: &[(&str, &str)]) -> ChangeSet {
    ChangeSet {
        set: record(pairs).entries.into_iter().collect(),
        ..ChangeSet::default()
    }
}

async fn entries<S: SessionStore>(store: &S, key: &StoreKey) -> Option<HashMap<String, Bytes>> {
    store
        .load(key)
        .await
        .expect("load failed")
        .map(|r| r.entries)
}

/// Checks that `reported` is `ttl` after some moment between `from` and
/// `to` (the clock read before the call that set the lifetime, and after
/// the load that reported it), give or take `precision`.
fn assert_expires(
    reported: Option<SystemTime>,
    (from, to): (SystemTime, SystemTime),
    ttl: Duration,
    precision: Duration,
    what: &str,
) {
    let at = reported.unwrap_or_else(|| panic!("{what}: load reported no expiry"));
    let (earliest, latest) = (from + ttl - precision, to + ttl + precision);
    if let Ok(early) = earliest.duration_since(at) {
        panic!("{what}: expires {early:?} before {ttl:?} from the call");
    }
    if let Ok(late) = at.duration_since(latest) {
        panic!("{what}: expires {late:?} after {ttl:?} from the call");
    }
}

/// A prefix of keys no other test uses, for one user's index.
fn unique_prefix() -> String {
    format!("suite:users:{}:", crate::users::Handle::generate())
}

mod concurrency;
mod expiry;
mod lifecycle;
mod racing;
mod scan;
mod users;
mod values;

use racing::{MIN_RACE_ROUNDS, Rounds, SWEEP_ROUNDS, race, racer, stagger};

pub use concurrency::*;
pub use expiry::*;
pub use lifecycle::*;
pub use scan::*;
pub use users::*;
pub use values::*;

/// Generates one test (on a two-thread tokio runtime) per case of the acceptance suite, for the
/// store that `$make` (an expression giving a future of the store) builds.
///
/// The expiry a store reports is checked to the millisecond; a store that
/// keeps coarser times says how coarse:
///
/// ```
/// mod coarse {
///     session_core::store_suite!(
///         async { session_core::store::memory::MemoryStore::new() };
///         expiry_precision = std::time::Duration::from_secs(1)
///     );
/// }
/// ```
///
/// A store whose layout keeps no creation time (Flask-Session's, say) adds
/// `; without_creation_time`, which leaves out the one case that checks it;
/// one that cannot list its sessions ([`SessionStore::scan`] is
/// unsupported) adds `; without_scan` after it, which leaves out the cases
/// of `scan` and `purge_expired`.
#[macro_export]
macro_rules! store_suite {
    ($make:expr) => {
        $crate::store_suite!($make; expiry_precision = $crate::testing::MILLISECOND_PRECISION);
    };
    ($make:expr; expiry_precision = $precision:expr) => {
        $crate::store_suite!($make; expiry_precision = $precision; without_creation_time);
        $crate::store_suite!(@cases $make; (); created_at_survives_apply_touch_and_take);
    };
    ($make:expr; expiry_precision = $precision:expr; without_creation_time) => {
        $crate::store_suite!($make; expiry_precision = $precision; without_creation_time; without_scan);
        $crate::store_suite!(@cases $make; ();
            scan_lists_each_live_session_under_its_prefix,
            scan_pages_through_many_sessions,
        );
    };
    ($make:expr; expiry_precision = $precision:expr; without_creation_time; without_scan) => {
        $crate::store_suite!(@cases $make; ();
            missing_session_is_none,
            create_then_load_round_trips,
            create_does_not_overwrite,
            concurrent_creates_of_one_key_have_one_winner,
            apply_merges_key_by_key,
            apply_clear_then_set,
            apply_never_creates,
            apply_that_empties_deletes,
            take_returns_and_deletes,
            concurrent_takes_of_one_key_have_one_winner,
            take_loses_no_concurrent_apply,
            touch_and_delete,
            expired_sessions_are_gone,
            concurrent_applies_to_different_keys_all_persist,
            delete_wins_over_concurrent_apply,
            keys_are_isolated,
            values_round_trip_byte_for_byte,
            apply_past_max_size_writes_nothing,
            max_size_holds_for_the_merged_session,
            users_list_each_live_session,
            users_revoke_one,
            users_revoke_all_and_all_but_current,
            users_cap_ends_the_least_recently_seen,
            users_gone_sessions_drop_out_of_the_index,
            users_concurrent_bindings_all_land,
            users_revocation_wins_over_writes_in_flight,
            users_revocation_follows_a_login_in_flight,
        );
        $crate::store_suite!(@cases $make; ($precision);
            touch_extends_the_lifetime,
            load_reports_expiry,
        );
    };
    (@cases $make:expr; $args:tt; $($case:ident),* $(,)?) => {
        $($crate::store_suite!(@case $make; $case; $args);)*
    };
    (@case $make:expr; $case:ident; ($($arg:expr),*)) => {
        #[test]
        fn $case() {
            $crate::testing::__tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime")
                .block_on(async {
                    let store = $make.await;
                    $crate::testing::$case(::std::sync::Arc::new(store) $(, $arg)*).await;
                });
        }
    };
}
