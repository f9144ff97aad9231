//! Loading, creating, applying, taking, touching and deleting one session.

use super::*;

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
