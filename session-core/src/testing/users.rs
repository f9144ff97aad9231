//! The per-user index of sessions on a store: listing, revoking and capping a user's sessions.

use super::*;

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
    let keys = crate::keyspace::Keyspace::hashed(&prefix);
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
    let keys = crate::keyspace::Keyspace::hashed(&prefix);
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
    let keys = crate::keyspace::Keyspace::hashed(&prefix);
    let index = UserIndex::new(&*store, &keys, "ann", crate::Codec::Json);
    let (k1, h1) = bound_session(&index, &*store, "ann", LONG, None).await;
    let (k2, h2) = bound_session(&index, &*store, "ann", LONG, None).await;
    let keys = crate::keyspace::Keyspace::hashed(&prefix);
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
    let keys = crate::keyspace::Keyspace::hashed(&prefix);
    let index = UserIndex::new(&*store, &keys, "ann", crate::Codec::Json);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(bound_session(&index, &*store, "ann", LONG, None).await);
    }
    let keys = crate::keyspace::Keyspace::hashed(&prefix);
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
    let keys = crate::keyspace::Keyspace::hashed(&prefix);
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
    let keys = crate::keyspace::Keyspace::hashed(&prefix);
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
                    let keys = crate::keyspace::Keyspace::hashed(&prefix);
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
        let keys = crate::keyspace::Keyspace::hashed(&prefix);
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
        let keys = crate::keyspace::Keyspace::hashed(&prefix);
        let index = UserIndex::new(&**store, &keys, "ann", crate::Codec::Json);
        let (key, handle) = bound_session(&index, &**store, "ann", LONG, None).await;
        let s = Arc::clone(store);
        let end: BoxFuture<'static, ()> = Box::pin(async move {
            let keys = crate::keyspace::Keyspace::hashed(&prefix);
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
    let keys = crate::keyspace::Keyspace::hashed(&prefix);
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
