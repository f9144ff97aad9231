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

/// One call of a [`race`]: how long it waits once the race starts, and
/// the call.
type Racer<T> = (Duration, BoxFuture<'static, T>);

fn racer<T>(late: Duration, call: impl Future<Output = T> + Send + 'static) -> Racer<T> {
    (late, Box::pin(call))
}

/// Runs the calls at once, each on a thread of its own, and returns their
/// results in order, and whether two of them were ever in flight at the
/// same time: proof that the round raced.
///
/// Threads, not tasks: a store whose calls never wait (an in-process one)
/// would run them one after the other on a runtime's worker. The threads
/// wait for each other spinning, not sleeping, so that they start together.
/// Needs as many blocking threads from the runtime as there are calls.
async fn race<T: Send + 'static>(calls: Vec<Racer<T>>) -> (Vec<T>, bool) {
    let runtime = tokio::runtime::Handle::current();
    let count = calls.len();
    let ready = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let overlapped = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = calls
        .into_iter()
        .map(|(late, call)| {
            let runtime = runtime.clone();
            let (ready, in_flight, overlapped) = (
                Arc::clone(&ready),
                Arc::clone(&in_flight),
                Arc::clone(&overlapped),
            );
            tokio::task::spawn_blocking(move || {
                ready.fetch_add(1, Ordering::SeqCst);
                let mut spins = 0u32;
                while ready.load(Ordering::SeqCst) < count {
                    spins = spins.wrapping_add(1);
                    // Now and then let a thread that has not arrived run.
                    if spins.is_multiple_of(4096) {
                        std::thread::yield_now();
                    }
                    std::hint::spin_loop();
                }
                // Sleeping is exact enough from a millisecond on; shorter
                // waits spin.
                let released = std::time::Instant::now();
                if late >= Duration::from_millis(1) {
                    std::thread::sleep(late);
                }
                while released.elapsed() < late {
                    std::hint::spin_loop();
                }
                if in_flight.fetch_add(1, Ordering::SeqCst) > 0 {
                    overlapped.store(true, Ordering::SeqCst);
                }
                let result = runtime.block_on(call);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                result
            })
        })
        .collect();
    let mut results = Vec::with_capacity(count);
    for thread in threads {
        results.push(thread.await.expect("a racing call panicked"));
    }
    (results, overlapped.load(Ordering::SeqCst))
}

/// The rounds of a race case: at least a minimum, then more until the
/// rounds have shown what proves they raced, for at most [`RACE_BUDGET`].
/// A store whose calls take a millisecond races in the first round; one
/// whose calls take a microsecond (an in-process store) may need a few
/// hundred, which take it well under a second.
struct Rounds {
    next: usize,
    min: usize,
    deadline: std::time::Instant,
}

/// The fewest rounds of a case whose calls all start together.
const MIN_RACE_ROUNDS: usize = 6;
const RACE_BUDGET: Duration = Duration::from_secs(10);

impl Rounds {
    fn new(min: usize) -> Self {
        Self {
            next: 0,
            min,
            deadline: std::time::Instant::now() + RACE_BUDGET,
        }
    }

    /// The next round, or `None` once `raced` (after the minimum) or out
    /// of time.
    fn next(&mut self, raced: bool) -> Option<usize> {
        let more = self.next < self.min || !raced && std::time::Instant::now() < self.deadline;
        let round = self.next;
        self.next += 1;
        more.then_some(round)
    }
}

/// The rounds [`stagger`] takes to go from no wait to its longest.
const SWEEP_ROUNDS: usize = 2 + 2 * (STAGGER_STEPS + 1);
/// Steps of a factor √2 from a microsecond to 65 ms.
const STAGGER_STEPS: usize = 32;

/// How late each of the two sides of a race round starts: in the first two
/// rounds neither; then, from a microsecond, each pair of rounds √2 times
/// as late as the pair before (up to 65 ms), the first side in even rounds
/// and the second in odd ones. Whichever side the store serves faster soon
/// starts late enough to lose, and the rounds about that point race
/// closely, whatever the store's speed.
fn stagger(round: usize) -> (Duration, Duration) {
    if round < 2 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let step = ((round - 2) / 2).min(STAGGER_STEPS);
    let late = Duration::from_micros(1 << (step / 2)).mul_f64(if step % 2 == 1 {
        std::f64::consts::SQRT_2
    } else {
        1.0
    });
    if round.is_multiple_of(2) {
        (late, Duration::ZERO)
    } else {
        (Duration::ZERO, late)
    }
}

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

/// A key that was never written loads as `None`.
pub async fn missing_session_is_none<S: SessionStore>(store: Arc<S>) {
    assert_eq!(entries(&*store, &unique_key("missing")).await, None);
}

/// What `create` stores, `load` returns.
pub async fn create_then_load_round_trips<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("create");
    let rec = record(&[("name", "\"nick\""), ("visits", "3")]);
    assert!(
        store.create(&key, &rec, LONG).await.unwrap(),
        "create on a free key"
    );
    assert_eq!(entries(&*store, &key).await, Some(rec.entries));
}

/// `create` on a live key writes nothing and returns false.
pub async fn create_does_not_overwrite<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("taken");
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    assert!(
        !store
            .create(&key, &record(&[("b", "2")]), LONG)
            .await
            .unwrap(),
        "create on a taken key must return false"
    );
    assert_eq!(
        entries(&*store, &key).await,
        Some(record(&[("a", "1")]).entries)
    );
}

/// `create`s of one free key at once (two logins that drew the same id, or
/// a retried one): exactly one wins, and the session holds the winner's
/// record, never a loser's nor a mix. Some round must have had creates in
/// flight at once (several contend, so that a store whose calls take a
/// microsecond races too).
pub async fn concurrent_creates_of_one_key_have_one_winner<S: SessionStore>(store: Arc<S>) {
    const CONTENDERS: usize = 6;
    let mut raced = false;
    let mut rounds = Rounds::new(MIN_RACE_ROUNDS);
    while let Some(round) = rounds.next(raced) {
        let key = unique_key("create-race");
        let records: Vec<_> = (0..CONTENDERS)
            .map(|who| record(&[("who", &who.to_string()), (&format!("only-{who}"), "1")]))
            .collect();
        let calls = records
            .iter()
            .map(|rec| {
                let (store, key, rec) = (Arc::clone(&store), key.clone(), rec.clone());
                racer(Duration::ZERO, async move {
                    store.create(&key, &rec, LONG).await.unwrap()
                })
            })
            .collect();
        let (created, overlapped) = race(calls).await;
        raced |= overlapped;
        let winners: Vec<_> = (0..CONTENDERS).filter(|&who| created[who]).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {created:?}: exactly one create of a free key must win"
        );
        assert_eq!(
            entries(&*store, &key).await,
            Some(records[winners[0]].entries.clone()),
            "round {round}: the session is not the winner's record"
        );
        store.delete(&key).await.unwrap();
    }
    assert!(raced, "no round had two creates in flight at once");
}

/// `apply` sets and removes only the keys in the change set.
pub async fn apply_merges_key_by_key<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("merge");
    store
        .create(&key, &record(&[("a", "1"), ("b", "2"), ("c", "3")]), LONG)
        .await
        .unwrap();
    let changes = ChangeSet {
        clear: false,
        set: vec![
            ("b".into(), Bytes::from("20")),
            ("d".into(), Bytes::from("4")),
        ],
        remove: vec!["c".into(), "never-there".into()],
        max_size: None,
    };
    assert_eq!(
        store.apply(&key, &changes, LONG).await.unwrap(),
        Applied::Done
    );
    assert_eq!(
        entries(&*store, &key).await,
        Some(record(&[("a", "1"), ("b", "20"), ("d", "4")]).entries)
    );
}

/// `clear` drops every entry before the set is applied.
pub async fn apply_clear_then_set<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("clear");
    store
        .create(&key, &record(&[("a", "1"), ("b", "2")]), LONG)
        .await
        .unwrap();
    let changes = ChangeSet {
        clear: true,
        ..set(&[("c", "3")])
    };
    assert_eq!(
        store.apply(&key, &changes, LONG).await.unwrap(),
        Applied::Done
    );
    assert_eq!(
        entries(&*store, &key).await,
        Some(record(&[("c", "3")]).entries)
    );
}

/// `apply` on a missing session is `Gone` and creates nothing: logout is final.
pub async fn apply_never_creates<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("gone");
    assert_eq!(
        store.apply(&key, &set(&[("a", "1")]), LONG).await.unwrap(),
        Applied::Gone
    );
    assert_eq!(
        entries(&*store, &key).await,
        None,
        "apply re-created a session"
    );
    store
        .create(&key, &record(&[("a", "1")]), LONG)
        .await
        .unwrap();
    store.delete(&key).await.unwrap();
    assert_eq!(
        store.apply(&key, &set(&[("b", "2")]), LONG).await.unwrap(),
        Applied::Gone
    );
    assert_eq!(
        entries(&*store, &key).await,
        None,
        "apply revived a deleted session"
    );
}

/// A session left with no entries is deleted.
pub async fn apply_that_empties_deletes<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("empty");
    store
        .create(&key, &record(&[("a", "1")]), LONG)
        .await
        .unwrap();
    let changes = ChangeSet {
        remove: vec!["a".into()],
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&key, &changes, LONG).await.unwrap(),
        Applied::Deleted
    );
    assert_eq!(entries(&*store, &key).await, None);
    let key = unique_key("cleared");
    store
        .create(&key, &record(&[("a", "1")]), LONG)
        .await
        .unwrap();
    let clear = ChangeSet {
        clear: true,
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&key, &clear, LONG).await.unwrap(),
        Applied::Deleted
    );
    assert_eq!(entries(&*store, &key).await, None);
}

/// `take` returns the session and deletes it; a missing one is `None`.
pub async fn take_returns_and_deletes<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("take");
    assert_eq!(store.take(&key).await.unwrap(), None);
    store
        .create(&key, &record(&[("a", "1"), ("b", "2")]), LONG)
        .await
        .unwrap();
    let taken = store.take(&key).await.unwrap().expect("a live session");
    assert_eq!(taken.entries, record(&[("a", "1"), ("b", "2")]).entries);
    assert_eq!(entries(&*store, &key).await, None);
    assert_eq!(store.take(&key).await.unwrap(), None);
    assert_eq!(
        store.apply(&key, &set(&[("c", "3")]), LONG).await.unwrap(),
        Applied::Gone,
        "apply after take re-created the session"
    );
    let expired = unique_key("take-expired");
    store
        .create(&expired, &record(&[("a", "1")]), SHORT)
        .await
        .unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        store.take(&expired).await.unwrap(),
        None,
        "take returned an expired session"
    );
}

/// `take`s of one session at once (two logins of one visitor, each moving
/// the session to a new id): exactly one gets the record, the others
/// `None`, and the session is gone. Some round must have had takes in
/// flight at once (several contend, as for creates).
pub async fn concurrent_takes_of_one_key_have_one_winner<S: SessionStore>(store: Arc<S>) {
    const CONTENDERS: usize = 6;
    let mut raced = false;
    let mut rounds = Rounds::new(MIN_RACE_ROUNDS);
    while let Some(round) = rounds.next(raced) {
        let key = unique_key("take-race");
        let rec = record(&[("user", "\"ann\""), ("cart", "[1]")]);
        assert!(store.create(&key, &rec, LONG).await.unwrap());
        let calls = (0..CONTENDERS)
            .map(|_| {
                let (store, key) = (Arc::clone(&store), key.clone());
                racer(
                    Duration::ZERO,
                    async move { store.take(&key).await.unwrap() },
                )
            })
            .collect();
        let (taken, overlapped) = race(calls).await;
        raced |= overlapped;
        let got: Vec<_> = taken.into_iter().flatten().collect();
        assert_eq!(
            got.len(),
            1,
            "round {round}: exactly one take must get the session"
        );
        assert_eq!(got[0].entries, rec.entries, "round {round}");
        assert_eq!(entries(&*store, &key).await, None, "round {round}");
    }
    assert!(raced, "no round had two takes in flight at once");
}

/// Applies racing a `take`: every apply that reported `Done` is in the
/// taken record; the others found the session gone. The rounds must show
/// both: the take landed among the applies, not always before or after
/// them.
pub async fn take_loses_no_concurrent_apply<S: SessionStore>(store: Arc<S>) {
    const WRITERS: usize = 8;
    /// What one call of a round came to.
    enum Outcome {
        Applied(Applied),
        Taken(Option<Record>),
    }
    let (mut done, mut gone) = (0, 0);
    let mut rounds = Rounds::new(SWEEP_ROUNDS);
    while let Some(round) = rounds.next(done > 0 && gone > 0) {
        let key = unique_key("take-apply-race");
        store
            .create(&key, &record(&[("seed", "0")]), LONG)
            .await
            .unwrap();
        let (take_late, writers_late) = stagger(round);
        let mut calls: Vec<_> = (0..WRITERS)
            .map(|i| {
                let (store, key) = (Arc::clone(&store), key.clone());
                racer(writers_late, async move {
                    let changes = set(&[(&format!("k{i}"), "1")]);
                    Outcome::Applied(store.apply(&key, &changes, LONG).await.unwrap())
                })
            })
            .collect();
        let (taker, taker_key) = (Arc::clone(&store), key.clone());
        calls.push(racer(take_late, async move {
            Outcome::Taken(taker.take(&taker_key).await.unwrap())
        }));
        let (mut results, _) = race(calls).await;
        let Some(Outcome::Taken(Some(taken))) = results.pop() else {
            panic!("round {round}: the take did not find the live session");
        };
        for (i, outcome) in results.into_iter().enumerate() {
            let has = taken.entries.contains_key(&format!("k{i}"));
            match outcome {
                Outcome::Applied(Applied::Done) => {
                    done += 1;
                    assert!(
                        has,
                        "round {round}: the write to k{i} was applied but not taken"
                    );
                }
                Outcome::Applied(Applied::Gone) => {
                    gone += 1;
                    assert!(
                        !has,
                        "round {round}: the write to k{i} was taken but reported gone"
                    );
                }
                Outcome::Applied(other) => {
                    panic!("a set without a limit cannot be {other:?}")
                }
                Outcome::Taken(_) => unreachable!("one take per round"),
            }
        }
        assert_eq!(
            entries(&*store, &key).await,
            None,
            "round {round}: take left the session"
        );
    }
    assert!(
        done > 0 && gone > 0,
        "{done} applies done and {gone} gone: the take never raced the applies"
    );
}

/// `touch` reports whether the session exists; `delete` is idempotent.
pub async fn touch_and_delete<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("touch");
    assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Gone);
    store
        .create(&key, &record(&[("a", "1")]), LONG)
        .await
        .unwrap();
    assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Done);
    store.delete(&key).await.unwrap();
    assert_eq!(entries(&*store, &key).await, None);
    store
        .delete(&key)
        .await
        .expect("deleting a missing session is not an error");
    assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Gone);
}

/// An expired session is missing for every method, and its key is free.
pub async fn expired_sessions_are_gone<S: SessionStore>(store: Arc<S>) {
    let keys: Vec<_> = (0..4).map(|_| unique_key("expiry")).collect();
    for key in &keys {
        store
            .create(key, &record(&[("a", "1")]), SHORT)
            .await
            .unwrap();
    }
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        entries(&*store, &keys[0]).await,
        None,
        "load returned an expired session"
    );
    assert_eq!(
        store
            .apply(&keys[1], &set(&[("b", "2")]), LONG)
            .await
            .unwrap(),
        Applied::Gone,
        "apply revived an expired session"
    );
    assert_eq!(entries(&*store, &keys[1]).await, None);
    assert_eq!(store.touch(&keys[2], LONG).await.unwrap(), Applied::Gone);
    assert!(
        store
            .create(&keys[3], &record(&[("c", "3")]), LONG)
            .await
            .unwrap(),
        "an expired session still held its key"
    );
    assert_eq!(
        entries(&*store, &keys[3]).await,
        Some(record(&[("c", "3")]).entries)
    );
}

/// `touch` and `apply` make the session live for the new lifetime from
/// now: past the old one if it was shorter, and not longer than the new one
/// if it was longer (`precision`: how coarse the store's times are).
pub async fn touch_extends_the_lifetime<S: SessionStore>(store: Arc<S>, precision: Duration) {
    let short_touched = unique_key("extend-touch");
    let short_applied = unique_key("extend-apply");
    let long_touched = unique_key("renew-touch");
    let long_applied = unique_key("renew-apply");
    for (key, ttl) in [
        (&short_touched, SHORT),
        (&short_applied, SHORT),
        (&long_touched, LONG),
        (&long_applied, LONG),
    ] {
        assert!(
            store
                .create(key, &record(&[("a", "1")]), ttl)
                .await
                .unwrap()
        );
    }
    let from = SystemTime::now();
    for key in [&short_touched, &long_touched] {
        assert_eq!(store.touch(key, EXTENDED).await.unwrap(), Applied::Done);
    }
    for key in [&short_applied, &long_applied] {
        assert_eq!(
            store
                .apply(key, &set(&[("b", "2")]), EXTENDED)
                .await
                .unwrap(),
            Applied::Done
        );
    }
    let mut reported = Vec::new();
    for key in [&short_touched, &long_touched, &short_applied, &long_applied] {
        reported.push(store.load(key).await.unwrap().expect("live").expires_at);
    }
    let to = SystemTime::now();
    let what = [
        "touch after a short lifetime",
        "touch after a long lifetime",
        "apply after a short lifetime",
        "apply after a long lifetime",
    ];
    for (reported, what) in reported.into_iter().zip(what) {
        assert_expires(reported, (from, to), EXTENDED, precision, what);
    }
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        entries(&*store, &short_touched).await,
        Some(record(&[("a", "1")]).entries),
        "touch did not extend"
    );
    assert_eq!(
        entries(&*store, &short_applied).await,
        Some(record(&[("a", "1"), ("b", "2")]).entries),
        "apply did not extend"
    );
}

/// `load` reports when the session expires: the lifetime `create` gave it,
/// from then (`precision`: how coarse the store's times are).
pub async fn load_reports_expiry<S: SessionStore>(store: Arc<S>, precision: Duration) {
    let key = unique_key("expires-at");
    let from = SystemTime::now();
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    let loaded = store.load(&key).await.unwrap().expect("just created");
    let to = SystemTime::now();
    assert_expires(loaded.expires_at, (from, to), LONG, precision, "create");
}

/// Many concurrent change sets to different keys of one session: none is
/// lost. Some round must have had applies in flight at once.
pub async fn concurrent_applies_to_different_keys_all_persist<S: SessionStore>(store: Arc<S>) {
    const WRITERS: usize = 16;
    let mut raced = false;
    let mut rounds = Rounds::new(MIN_RACE_ROUNDS);
    while let Some(round) = rounds.next(raced) {
        let key = unique_key("concurrent");
        store
            .create(&key, &record(&[("seed", "0")]), LONG)
            .await
            .unwrap();
        let calls = (0..WRITERS)
            .map(|i| {
                let (store, key) = (Arc::clone(&store), key.clone());
                racer(Duration::ZERO, async move {
                    let changes = set(&[(&format!("k{i}"), &i.to_string())]);
                    store.apply(&key, &changes, LONG).await.unwrap()
                })
            })
            .collect();
        let (results, overlapped) = race(calls).await;
        raced |= overlapped;
        assert!(
            results.iter().all(|a| *a == Applied::Done),
            "round {round}: {results:?}"
        );
        let got = entries(&*store, &key).await.expect("session vanished");
        for i in 0..WRITERS {
            assert_eq!(
                got.get(&format!("k{i}")).map(|v| &v[..]),
                Some(i.to_string().as_bytes()),
                "round {round}: the write to k{i} was lost"
            );
        }
        assert_eq!(got.len(), WRITERS + 1, "round {round}");
        store.delete(&key).await.unwrap();
    }
    assert!(raced, "no round had two applies in flight at once");
}

/// A delete racing an apply: once both are done, the session is gone,
/// whichever ran first. The rounds must show both orders: applies done
/// before the delete, and applies that found the session gone.
pub async fn delete_wins_over_concurrent_apply<S: SessionStore>(store: Arc<S>) {
    ending_wins_over_concurrent_apply(store, "delete", async |store| {
        let key = unique_key("logout-race");
        store
            .create(&key, &record(&[("user", "\"ann\"")]), LONG)
            .await
            .unwrap();
        let (s, k) = (Arc::clone(store), key.clone());
        let end: BoxFuture<'static, ()> = Box::pin(async move { s.delete(&k).await.unwrap() });
        (key, end)
    })
    .await;
}

/// Races an apply to a session against `end` (set up, with the session's
/// key, by `setup`), round after round: once both are done, the session is
/// gone and stays gone, whichever ran first. The rounds must show both
/// orders: applies done before the end, and applies that found the
/// session gone.
async fn ending_wins_over_concurrent_apply<S: SessionStore>(
    store: Arc<S>,
    what: &str,
    setup: impl AsyncFn(&Arc<S>) -> (StoreKey, BoxFuture<'static, ()>),
) {
    let (mut done, mut gone) = (0, 0);
    let mut rounds = Rounds::new(SWEEP_ROUNDS);
    while let Some(round) = rounds.next(done > 0 && gone > 0) {
        let (key, end) = setup(&store).await;
        let (end_late, apply_late) = stagger(round);
        let (s1, k1) = (Arc::clone(&store), key.clone());
        let writer = racer(apply_late, async move {
            Some(s1.apply(&k1, &set(&[("cart", "[1]")]), LONG).await.unwrap())
        });
        let ender = racer(end_late, async move {
            end.await;
            None
        });
        let (results, _) = race(vec![writer, ender]).await;
        match results[0] {
            Some(Applied::Done) => done += 1,
            Some(Applied::Gone) => gone += 1,
            other => panic!("round {round}: the apply came to {other:?}"),
        }
        assert_eq!(
            entries(&*store, &key).await,
            None,
            "round {round}: a write in flight brought back a session the {what} ended"
        );
    }
    assert!(
        done > 0 && gone > 0,
        "{done} applies done and {gone} gone: the {what} never raced the apply"
    );
}

/// Sessions under different keys never see each other's data.
pub async fn keys_are_isolated<S: SessionStore>(store: Arc<S>) {
    let (a, b) = (unique_key("iso"), unique_key("iso"));
    store
        .create(&a, &record(&[("who", "a")]), LONG)
        .await
        .unwrap();
    store
        .create(&b, &record(&[("who", "b")]), LONG)
        .await
        .unwrap();
    let _ = store.apply(&a, &set(&[("x", "1")]), LONG).await.unwrap();
    store.delete(&b).await.unwrap();
    assert_eq!(
        entries(&*store, &a).await,
        Some(record(&[("who", "a"), ("x", "1")]).entries)
    );
    assert_eq!(entries(&*store, &b).await, None);
}

/// Binary values, empty values, unicode and odd keys, and a large value
/// come back unchanged.
pub async fn values_round_trip_byte_for_byte<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("bytes");
    let mut rec = Record::default();
    rec.entries.insert(
        "bin".into(),
        Bytes::from_static(&[0, 255, 1, 254, b'\n', 0]),
    );
    rec.entries.insert("empty".into(), Bytes::new());
    rec.entries
        .insert("ключ 🔑".into(), Bytes::from("\"значение\""));
    rec.entries
        .insert("with.dots:and$dollars".into(), Bytes::from("1"));
    rec.entries
        .insert("big".into(), Bytes::from(vec![b'x'; 100 * 1024]));
    store.create(&key, &rec, LONG).await.unwrap();
    assert_eq!(entries(&*store, &key).await, Some(rec.entries.clone()));
    let _ = store
        .apply(&key, &set(&[("later", "2")]), LONG)
        .await
        .unwrap();
    rec.entries.insert("later".into(), Bytes::from("2"));
    assert_eq!(entries(&*store, &key).await, Some(rec.entries));
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}

/// The creation time given to `create` comes back, to the millisecond,
/// from `load` after `apply` and `touch`, and from `take`; a record created
/// without one loads without one.
pub async fn created_at_survives_apply_touch_and_take<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("created-at");
    // Not now, so that a store that stamps its own time fails.
    let created = SystemTime::now() - Duration::from_secs(3 * 86_400 + 1234);
    let rec = Record {
        created_at: Some(created),
        ..record(&[("a", "1")])
    };
    assert!(store.create(&key, &rec, LONG).await.unwrap());
    let loaded = store.load(&key).await.unwrap().expect("just created");
    let got = loaded.created_at.expect("created_at was not kept");
    assert_eq!(millis(got), millis(created), "created_at changed");
    assert_eq!(
        store.apply(&key, &set(&[("b", "2")]), LONG).await.unwrap(),
        Applied::Done
    );
    assert_eq!(store.touch(&key, LONG).await.unwrap(), Applied::Done);
    let loaded = store.load(&key).await.unwrap().expect("still live");
    assert_eq!(
        loaded.created_at.map(millis),
        Some(millis(created)),
        "apply or touch changed created_at"
    );
    let taken = store.take(&key).await.unwrap().expect("still live");
    assert_eq!(taken.created_at.map(millis), Some(millis(created)));

    let unknown = unique_key("created-at-none");
    assert!(
        store
            .create(&unknown, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    let loaded = store.load(&unknown).await.unwrap().expect("just created");
    assert_eq!(loaded.created_at, None, "a creation time was invented");
}

/// An `apply` whose merged result passes `max_size` writes nothing and says
/// `TooLarge` with the size the session would have had; one that stays
/// within it is written.
pub async fn apply_past_max_size_writes_nothing<S: SessionStore>(store: Arc<S>) {
    let key = unique_key("too-large");
    let base = record(&[("a", "1111111111")]);
    store.create(&key, &base, LONG).await.unwrap();
    let base_size = base.size();
    let grow = set(&[("b", "2222222222")]);
    let grown = grow.size_after(&base.entries);
    assert_eq!(
        store
            .apply(
                &key,
                &ChangeSet {
                    max_size: Some(grown - 1),
                    ..grow.clone()
                },
                LONG
            )
            .await
            .unwrap(),
        Applied::TooLarge { size: grown }
    );
    assert_eq!(
        entries(&*store, &key).await,
        Some(base.entries.clone()),
        "a refused change was written"
    );
    // Replacing a value counts the new value only, and removes count too.
    let replace = ChangeSet {
        max_size: Some(base_size),
        remove: vec!["a".into()],
        ..set(&[("c", "3333333333")])
    };
    assert_eq!(
        store.apply(&key, &replace, LONG).await.unwrap(),
        Applied::Done,
        "a change that keeps the size within the limit was refused"
    );
    assert_eq!(
        store
            .apply(
                &key,
                &ChangeSet {
                    max_size: Some(grown),
                    ..grow
                },
                LONG
            )
            .await
            .unwrap(),
        Applied::Done
    );
    assert_eq!(
        entries(&*store, &key).await,
        Some(record(&[("b", "2222222222"), ("c", "3333333333")]).entries)
    );
}

/// Concurrent applies, each within the limit on its own: the merged
/// session never passes it, and the refused ones say `TooLarge`.
pub async fn max_size_holds_for_the_merged_session<S: SessionStore>(store: Arc<S>) {
    const WRITERS: usize = 8;
    let value = "v".repeat(1000);
    let key = unique_key("merged-limit");
    let seed = record(&[("seed", "0")]);
    store.create(&key, &seed, LONG).await.unwrap();
    let one = set(&[("k0", &value)]).size_after(&seed.entries) - seed.size();
    // Room for the seed and three values.
    let limit = seed.size() + 3 * one;
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let (store, key) = (Arc::clone(&store), key.clone());
        let changes = ChangeSet {
            max_size: Some(limit),
            ..set(&[(&format!("k{i}"), &value)])
        };
        writers.spawn(async move { store.apply(&key, &changes, LONG).await.unwrap() });
    }
    let (mut done, mut refused) = (0, 0);
    while let Some(result) = writers.join_next().await {
        match result.unwrap() {
            Applied::Done => done += 1,
            Applied::TooLarge { size } => {
                assert!(size > limit, "refused at {size}, within {limit}");
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let stored = store.load(&key).await.unwrap().expect("live");
    assert!(
        stored.size() <= limit,
        "the merged session is {} bytes, over its limit of {limit}",
        stored.size()
    );
    assert_eq!(done, 3, "exactly three values fit");
    assert_eq!(refused, WRITERS - 3);
    assert_eq!(stored.entries.len(), 4);
}

// ---- Listing and purging (`scan`, `purge_expired`), for operator tools.

/// Every key `scan` lists under `prefix`, page after page, as a set (a
/// store may list a key twice). Panics on a scan that does not end.
pub async fn scan_all<S: SessionStore>(store: &S, prefix: &str) -> Vec<String> {
    let mut pages = 0;
    let keys = crate::store::scan_all(store, prefix, |_| {
        pages += 1;
        assert!(pages <= 100_000, "scan did not end");
    })
    .await
    .expect("scan failed (or made no progress)");
    keys.into_iter().map(|k| k.as_str().to_owned()).collect()
}

/// `scan` lists the live sessions under its prefix and nothing else: not
/// another prefix's, not a deleted or taken one, not an expired one; and
/// `purge_expired` leaves every live session in place.
pub async fn scan_lists_each_live_session_under_its_prefix<S: SessionStore>(store: Arc<S>) {
    let prefix = unique_prefix();
    let key = |n: u32| StoreKey::from_raw(format!("{prefix}{n:02}"));
    let other = StoreKey::from_raw(format!("{}00", unique_prefix()));
    for n in 0..6 {
        let ttl = if n == 5 { SHORT } else { LONG };
        assert!(
            store
                .create(&key(n), &record(&[("a", "1")]), ttl)
                .await
                .unwrap()
        );
    }
    assert!(
        store
            .create(&other, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    store.delete(&key(3)).await.unwrap();
    store.take(&key(4)).await.unwrap();
    let live: Vec<String> = [0, 1, 2].map(|n| key(n).as_str().to_owned()).into();
    let mut before = live.clone();
    before.push(key(5).as_str().to_owned());
    assert_eq!(
        scan_all(&*store, &prefix).await,
        before,
        "scan listed the wrong keys"
    );

    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        scan_all(&*store, &prefix).await,
        live,
        "scan listed an expired session"
    );
    store.purge_expired().await.expect("purge_expired failed");
    assert_eq!(
        scan_all(&*store, &prefix).await,
        live,
        "purge_expired removed a live session"
    );
    for n in 0..3 {
        assert_eq!(
            entries(&*store, &key(n)).await,
            Some(record(&[("a", "1")]).entries),
            "purge_expired changed a live session"
        );
    }
    let other_prefix = other.as_str().trim_end_matches("00");
    assert_eq!(
        scan_all(&*store, other_prefix).await,
        vec![other.as_str().to_owned()]
    );
}

/// A scan over more sessions than one page holds lists each of them.
pub async fn scan_pages_through_many_sessions<S: SessionStore>(store: Arc<S>) {
    // More than a page of every store, fewer than the file store keeps
    // by default (500).
    const SESSIONS: usize = 450;
    let prefix = unique_prefix();
    let keys: Vec<String> = (0..SESSIONS).map(|n| format!("{prefix}{n:04}")).collect();
    let mut writes = tokio::task::JoinSet::new();
    for chunk in keys.chunks(SESSIONS / 8 + 1) {
        let (store, chunk) = (Arc::clone(&store), chunk.to_vec());
        writes.spawn(async move {
            for key in chunk {
                let key = StoreKey::from_raw(key);
                assert!(
                    store
                        .create(&key, &record(&[("a", "1")]), LONG)
                        .await
                        .unwrap()
                );
            }
        });
    }
    while let Some(done) = writes.join_next().await {
        done.expect("a writer panicked");
    }
    assert_eq!(scan_all(&*store, &prefix).await, keys);
}

// ---- A user's sessions (`crate::users`), kept with the store's own calls.

/// A prefix of keys no other test uses, for one user's index.
fn unique_prefix() -> String {
    format!("suite:users:{}:", crate::users::Handle::generate())
}

/// Stores a session bound to `user` (entries `a`, the binding and, if
/// given, when it was last seen) and its entry in the user's index.
async fn bound_session<S: SessionStore>(
    index: &crate::users::UserIndex<'_, S>,
    store: &S,
    user: &str,
    ttl: Duration,
    seen: Option<SystemTime>,
) -> (StoreKey, crate::users::Handle) {
    use crate::users::{Binding, Entry, Handle, SEEN_KEY, USER_KEY, millis};
    let key = unique_key("bound");
    let handle = Handle::generate();
    let now = SystemTime::now();
    let codec = crate::Codec::Json;
    let binding = Binding {
        user: user.to_owned(),
        handle: handle.clone(),
        indexed_at: millis(now),
    };
    let mut entries = record(&[("a", "1")]).entries;
    entries.insert(USER_KEY.to_owned(), codec.encode(&binding).unwrap());
    if let Some(seen) = seen {
        entries.insert(SEEN_KEY.to_owned(), codec.encode(&millis(seen)).unwrap());
    }
    let record = Record {
        entries,
        expires_at: None,
        created_at: Some(now),
    };
    assert!(store.create(&key, &record, ttl).await.unwrap());
    let entry = Entry {
        key: key.as_str().to_owned(),
        bound_at: millis(now),
        user_agent: Some("suite".into()),
        ip: None,
    };
    index.add(&handle, &entry).await.expect("add to the index");
    (key, handle)
}

/// The handles of the user's live sessions, as the index lists them.
async fn listed_handles<S: SessionStore>(
    index: &crate::users::UserIndex<'_, S>,
) -> Vec<crate::users::Handle> {
    index
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.handle)
        .collect()
}

/// Listing a user's sessions gives each live one, with its handle, when it
/// was created and last seen, and the client recorded at binding; another
/// user's index lists none of them.
pub async fn users_list_each_live_session<S: SessionStore>(store: Arc<S>) {
    use crate::users::UserIndex;
    let prefix = unique_prefix();
    let keys = crate::Keyspace::hashed(&prefix);
    let index = UserIndex::new(&*store, &keys, "ann", crate::Codec::Json);
    let before = SystemTime::now() - Duration::from_millis(1);
    let seen = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let (_, h1) = bound_session(&index, &*store, "ann", LONG, None).await;
    let (_, h2) = bound_session(&index, &*store, "ann", LONG, Some(seen)).await;
    let after = SystemTime::now() + Duration::from_millis(1);
    let listed = index.list().await.unwrap();
    let mut handles: Vec<_> = listed.iter().map(|l| l.handle.clone()).collect();
    handles.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut expected = vec![h1.clone(), h2.clone()];
    expected.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(handles, expected, "the user's two sessions");
    for l in &listed {
        let created = l.created_at.expect("the store keeps created_at");
        assert!(
            before <= created && created <= after,
            "created_at {created:?}"
        );
        assert_eq!(l.user_agent.as_deref(), Some("suite"));
        if l.handle == h2 {
            assert_eq!(l.last_seen, seen, "last seen, as the session says");
        } else {
            assert!(
                before <= l.last_seen && l.last_seen <= after,
                "never seen since binding"
            );
        }
    }
    let keys = crate::Keyspace::hashed(&prefix);
    let other = UserIndex::new(&*store, &keys, "bob", crate::Codec::Json);
    assert_eq!(
        other.list().await.unwrap(),
        Vec::new(),
        "bob has no sessions"
    );
}

/// Revoking one session ends it at once and leaves the user's others; a
/// handle that is not the user's revokes nothing.
pub async fn users_revoke_one<S: SessionStore>(store: Arc<S>) {
    use crate::users::{Handle, UserIndex};
    let prefix = unique_prefix();
    let keys = crate::Keyspace::hashed(&prefix);
    let index = UserIndex::new(&*store, &keys, "ann", crate::Codec::Json);
    let (k1, h1) = bound_session(&index, &*store, "ann", LONG, None).await;
    let (k2, h2) = bound_session(&index, &*store, "ann", LONG, None).await;
    let keys = crate::Keyspace::hashed(&prefix);
    let bob = UserIndex::new(&*store, &keys, "bob", crate::Codec::Json);
    assert!(
        !bob.revoke(&h1).await.unwrap(),
        "bob cannot revoke ann's session"
    );
    assert!(entries(&*store, &k1).await.is_some());
    assert!(index.revoke(&h1).await.unwrap());
    assert_eq!(
        entries(&*store, &k1).await,
        None,
        "the revoked session is gone"
    );
    assert!(entries(&*store, &k2).await.is_some(), "the other one stays");
    let listed = listed_handles(&index).await;
    assert_eq!(listed, vec![h2]);
    assert!(!index.revoke(&h1).await.unwrap(), "already revoked");
    assert!(!index.revoke(&Handle::generate()).await.unwrap());
}

/// Revoking all of a user's sessions but one, then all of them.
pub async fn users_revoke_all_and_all_but_current<S: SessionStore>(store: Arc<S>) {
    use crate::users::UserIndex;
    let prefix = unique_prefix();
    let keys = crate::Keyspace::hashed(&prefix);
    let index = UserIndex::new(&*store, &keys, "ann", crate::Codec::Json);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(bound_session(&index, &*store, "ann", LONG, None).await);
    }
    let keys = crate::Keyspace::hashed(&prefix);
    let bob = UserIndex::new(&*store, &keys, "bob", crate::Codec::Json);
    let (bobs, _) = bound_session(&bob, &*store, "bob", LONG, None).await;
    // A session of ann's bound to bob since: her stale entry names it.
    let (rebound, _) = bound_session(&index, &*store, "ann", LONG, None).await;
    let to_bob = crate::users::Binding {
        user: "bob".into(),
        handle: crate::users::Handle::generate(),
        indexed_at: crate::users::millis(SystemTime::now()),
    };
    let rebind = ChangeSet {
        set: vec![(
            crate::users::USER_KEY.to_owned(),
            crate::Codec::Json.encode(&to_bob).unwrap(),
        )],
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&rebound, &rebind, LONG).await.unwrap(),
        Applied::Done
    );
    let (current_key, current) = sessions[2].clone();
    assert_eq!(index.revoke_all(Some(&current)).await.unwrap(), 2);
    for (key, _) in &sessions[..2] {
        assert_eq!(entries(&*store, key).await, None, "an other session stays");
    }
    assert!(
        entries(&*store, &current_key).await.is_some(),
        "the current one went"
    );
    let listed = listed_handles(&index).await;
    assert_eq!(listed, vec![current.clone()]);
    assert_eq!(index.revoke_all(None).await.unwrap(), 1);
    assert_eq!(entries(&*store, &current_key).await, None);
    assert_eq!(index.list().await.unwrap(), Vec::new());
    assert_eq!(
        index.entries().await.unwrap(),
        Vec::new(),
        "the index is empty"
    );
    assert!(
        entries(&*store, &bobs).await.is_some(),
        "bob's session is not ann's"
    );
    assert!(
        entries(&*store, &rebound).await.is_some(),
        "a session bound to bob since was ended through ann's stale entry"
    );
}

/// Capping a user's sessions ends the least recently seen ones, never the
/// one kept (the session that just logged in).
pub async fn users_cap_ends_the_least_recently_seen<S: SessionStore>(store: Arc<S>) {
    use crate::users::UserIndex;
    let prefix = unique_prefix();
    let keys = crate::Keyspace::hashed(&prefix);
    let index = UserIndex::new(&*store, &keys, "ann", crate::Codec::Json);
    let at = |s: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s));
    // Seen in the order: oldest, newest, middle, and the one kept is the
    // oldest of all.
    let (k_kept, kept) = bound_session(&index, &*store, "ann", LONG, at(0)).await;
    let (k_old, _) = bound_session(&index, &*store, "ann", LONG, at(10)).await;
    let (k_new, new) = bound_session(&index, &*store, "ann", LONG, at(30)).await;
    let (k_mid, mid) = bound_session(&index, &*store, "ann", LONG, at(20)).await;
    assert_eq!(index.cap(4, &kept).await.unwrap(), 0, "within the cap");
    assert_eq!(index.cap(3, &kept).await.unwrap(), 1);
    assert_eq!(
        entries(&*store, &k_old).await,
        None,
        "the least recently seen went"
    );
    assert_eq!(index.cap(2, &kept).await.unwrap(), 1);
    assert_eq!(entries(&*store, &k_mid).await, None);
    for key in [&k_kept, &k_new] {
        assert!(
            entries(&*store, key).await.is_some(),
            "a session within the cap went"
        );
    }
    let mut listed = listed_handles(&index).await;
    listed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut expected = vec![kept.clone(), new];
    expected.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(listed, expected);
    assert_eq!(index.cap(1, &kept).await.unwrap(), 1);
    let listed = listed_handles(&index).await;
    assert_eq!(listed, vec![kept]);
    let _ = mid;
}

/// Sessions that expired, or that no longer name the user under their
/// handle, drop out of the list, and out of the index.
pub async fn users_gone_sessions_drop_out_of_the_index<S: SessionStore>(store: Arc<S>) {
    use crate::users::{Binding, Handle, USER_KEY, UserIndex, millis};
    let prefix = unique_prefix();
    let keys = crate::Keyspace::hashed(&prefix);
    let index = UserIndex::new(&*store, &keys, "ann", crate::Codec::Json);
    let (_, short) = bound_session(&index, &*store, "ann", SHORT, None).await;
    let (_, long) = bound_session(&index, &*store, "ann", LONG, None).await;
    // An entry whose session names another handle (a stale entry).
    let (stale_key, stale) = bound_session(&index, &*store, "ann", LONG, None).await;
    let other = Binding {
        user: "ann".into(),
        handle: Handle::generate(),
        indexed_at: millis(SystemTime::now()),
    };
    let rebind = ChangeSet {
        set: vec![(
            USER_KEY.to_owned(),
            crate::Codec::Json.encode(&other).unwrap(),
        )],
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&stale_key, &rebind, LONG).await.unwrap(),
        Applied::Done
    );
    assert_eq!(index.entries().await.unwrap().len(), 3);
    // The stale entry ends nothing: its session is ann's under another handle.
    assert!(!index.revoke(&stale).await.unwrap());
    assert!(
        entries(&*store, &stale_key).await.is_some(),
        "a stale entry ended the session it named"
    );
    tokio::time::sleep(PAST_SHORT).await;
    let listed = listed_handles(&index).await;
    assert_eq!(listed, vec![long.clone()], "only the live session");
    let kept: Vec<_> = index
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    assert_eq!(kept, vec![long], "gone entries are dropped from the index");
    assert!(!index.revoke(&short).await.unwrap());
}

/// Two sessions of one user bound at once (the index being created by
/// both): both entries land.
pub async fn users_concurrent_bindings_all_land<S: SessionStore>(store: Arc<S>) {
    use crate::users::{Entry, Handle, UserIndex, millis};
    const LOGINS: usize = 4;
    let mut raced = false;
    let mut rounds = Rounds::new(MIN_RACE_ROUNDS);
    while let Some(round) = rounds.next(raced) {
        let prefix = unique_prefix();
        let handles: Vec<Handle> = (0..LOGINS).map(|_| Handle::generate()).collect();
        let calls = handles
            .iter()
            .map(|handle| {
                let (store, prefix, handle) = (Arc::clone(&store), prefix.clone(), handle.clone());
                racer(Duration::ZERO, async move {
                    let keys = crate::Keyspace::hashed(&prefix);
                    let index = UserIndex::new(&*store, &keys, "ann", crate::Codec::Json);
                    let entry = Entry {
                        key: unique_key("bound").as_str().to_owned(),
                        bound_at: millis(SystemTime::now()),
                        user_agent: None,
                        ip: None,
                    };
                    index.add(&handle, &entry).await.unwrap();
                })
            })
            .collect();
        let (_, overlapped) = race(calls).await;
        raced |= overlapped;
        let keys = crate::Keyspace::hashed(&prefix);
        let index = UserIndex::new(&*store, &keys, "ann", crate::Codec::Json);
        let got: std::collections::HashSet<_> = index
            .entries()
            .await
            .unwrap()
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        assert_eq!(
            got,
            handles.into_iter().collect(),
            "round {round}: a binding was lost"
        );
    }
    assert!(raced, "no round had two bindings in flight at once");
}

/// A revocation racing writes of the revoked session: once it returns,
/// the session is gone and stays gone, whichever ran first. The rounds
/// must show both orders.
pub async fn users_revocation_wins_over_writes_in_flight<S: SessionStore>(store: Arc<S>) {
    use crate::users::UserIndex;
    ending_wins_over_concurrent_apply(store, "revocation", async |store| {
        let prefix = unique_prefix();
        let keys = crate::Keyspace::hashed(&prefix);
        let index = UserIndex::new(&**store, &keys, "ann", crate::Codec::Json);
        let (key, handle) = bound_session(&index, &**store, "ann", LONG, None).await;
        let s = Arc::clone(store);
        let end: BoxFuture<'static, ()> = Box::pin(async move {
            let keys = crate::Keyspace::hashed(&prefix);
            let index = UserIndex::new(&*s, &keys, "ann", crate::Codec::Json);
            assert!(index.revoke(&handle).await.unwrap());
        });
        (key, end)
    })
    .await;
}

/// A revocation that arrives while a login moves the session to a new key
/// ends the session where the login is moving it too.
pub async fn users_revocation_follows_a_login_in_flight<S: SessionStore>(store: Arc<S>) {
    use crate::logout::MOVE_NOTE_TTL;
    use crate::users::UserIndex;
    let prefix = unique_prefix();
    let keys = crate::Keyspace::hashed(&prefix);
    let index = UserIndex::new(&*store, &keys, "ann", crate::Codec::Json);
    let (old, handle) = bound_session(&index, &*store, "ann", LONG, None).await;
    // The login's first two steps: the note (move under way), the new key.
    let new = unique_key("moved");
    let note = Record::from(HashMap::from([(new.as_str().to_owned(), Bytes::new())]));
    assert!(
        store
            .create(&keys.move_note(&old), &note, MOVE_NOTE_TTL)
            .await
            .unwrap()
    );
    assert!(
        store
            .create(&new, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    assert!(index.revoke(&handle).await.unwrap());
    assert_eq!(entries(&*store, &old).await, None);
    assert_eq!(
        entries(&*store, &new).await,
        None,
        "the login's new session lived on"
    );
}
