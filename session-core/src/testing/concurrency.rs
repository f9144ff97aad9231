//! Concurrent calls on one session: changes to different keys all land, and an ending wins.

use super::*;

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
pub(super) async fn ending_wins_over_concurrent_apply<S: SessionStore>(
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
