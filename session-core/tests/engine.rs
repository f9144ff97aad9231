//! The session engine driven with no web framework: what an adapter does
//! per request (load with the cookies sent, let the handler work, finish),
//! on the memory store, and the contracts that hold between requests.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use session_core::engine::{Engine, Outcome};
use session_core::store::Backend;
use session_core::store::memory::MemoryStore;
use session_core::{EncryptAtRest, Session, SessionConfig, SessionId, SessionStore, StoreKey};

const SECRET: &str = "an engine test secret, thirty-two bytes or more";

fn engine_with(store: &Arc<MemoryStore>, config: &SessionConfig) -> Arc<Engine> {
    Arc::new(Engine::new(Backend::from(Arc::clone(store)), config).expect("valid settings"))
}

fn engine(store: &Arc<MemoryStore>) -> Arc<Engine> {
    engine_with(store, &SessionConfig::default())
}

/// A request that sends `cookie` (if any).
async fn load(engine: &Arc<Engine>, cookie: Option<&str>) -> Session {
    let cookies = cookie.map(str::to_owned).into_iter().collect();
    engine
        .load(cookies, None, SystemTime::now())
        .await
        .expect("the memory store does not fail")
}

/// The cookie value an outcome sets.
fn set(outcome: Outcome) -> String {
    match outcome {
        Outcome::Set { value, .. } => value,
        other => panic!("expected a cookie, got {other:?}"),
    }
}

/// A stored session holding `name = "ann"`, and its cookie.
async fn stored(engine: &Arc<Engine>) -> String {
    let session = load(engine, None).await;
    session.insert("name", "ann").unwrap();
    set(engine.finish(&session, false).await)
}

#[tokio::test]
async fn a_request_that_changes_nothing_writes_nothing_and_sends_no_cookie() {
    let store = Arc::new(MemoryStore::new());
    let engine = engine(&store);
    let session = load(&engine, None).await;
    assert_eq!(session.get::<String>("name").unwrap(), None);
    assert_eq!(engine.finish(&session, false).await, Outcome::Keep);
    assert_eq!(store.len(), 0, "nothing stored");
    // A forged cookie is a fresh session, not an error.
    let session = load(&engine, Some("forged")).await;
    assert!(session.is_empty());
    assert_eq!(engine.finish(&session, false).await, Outcome::Keep);
}

#[tokio::test]
async fn the_next_request_reads_what_the_last_one_stored() {
    let store = Arc::new(MemoryStore::new());
    let engine = engine(&store);
    let cookie = stored(&engine).await;
    let session = load(&engine, Some(&cookie)).await;
    assert_eq!(
        session.get::<String>("name").unwrap().as_deref(),
        Some("ann")
    );
    // Read only: nothing written, the cookie the client holds is right.
    assert_eq!(engine.finish(&session, false).await, Outcome::Keep);
}

#[tokio::test]
async fn concurrent_requests_keep_each_others_keys() {
    let store = Arc::new(MemoryStore::new());
    let engine = engine(&store);
    let cookie = stored(&engine).await;
    let (a, b) = (
        load(&engine, Some(&cookie)).await,
        load(&engine, Some(&cookie)).await,
    );
    a.insert("cart", 3).unwrap();
    b.insert("theme", "dark").unwrap();
    engine.finish(&a, false).await;
    engine.finish(&b, false).await;
    let after = load(&engine, Some(&cookie)).await;
    assert_eq!(after.get::<u32>("cart").unwrap(), Some(3));
    assert_eq!(
        after.get::<String>("theme").unwrap().as_deref(),
        Some("dark")
    );
    assert_eq!(after.get::<String>("name").unwrap().as_deref(), Some("ann"));
}

#[tokio::test]
async fn a_logout_wins_over_a_request_in_flight() {
    let store = Arc::new(MemoryStore::new());
    let engine = engine(&store);
    let cookie = stored(&engine).await;
    let (logout, in_flight) = (
        load(&engine, Some(&cookie)).await,
        load(&engine, Some(&cookie)).await,
    );
    logout.purge();
    assert_eq!(engine.finish(&logout, false).await, Outcome::Remove);
    in_flight.insert("cart", 1).unwrap();
    assert_eq!(
        engine.finish(&in_flight, false).await,
        Outcome::Keep,
        "the late write brings nothing back"
    );
    assert!(load(&engine, Some(&cookie)).await.is_empty());
    assert_eq!(store.len(), 0);
}

#[tokio::test]
async fn a_login_moves_the_session_and_keeps_what_others_wrote_before_it() {
    let store = Arc::new(MemoryStore::new());
    let engine = engine(&store);
    let cookie = stored(&engine).await;
    let (login, other) = (
        load(&engine, Some(&cookie)).await,
        load(&engine, Some(&cookie)).await,
    );
    login.renew();
    login.insert("user", "ann").unwrap();
    other.insert("cart", 2).unwrap();
    engine.finish(&other, false).await;
    let moved = set(engine.finish(&login, false).await);
    assert_ne!(moved, cookie, "a new id");
    assert!(
        load(&engine, Some(&cookie)).await.is_empty(),
        "the old id holds nothing"
    );
    let after = load(&engine, Some(&moved)).await;
    assert_eq!(after.get::<String>("user").unwrap().as_deref(), Some("ann"));
    assert_eq!(after.get::<u32>("cart").unwrap(), Some(2), "carried over");
}

#[tokio::test]
async fn a_failed_response_saves_nothing_but_a_logout() {
    let store = Arc::new(MemoryStore::new());
    let engine = engine(&store);
    let cookie = stored(&engine).await;
    let session = load(&engine, Some(&cookie)).await;
    session.insert("name", "half-way").unwrap();
    assert_eq!(engine.finish(&session, true).await, Outcome::Keep);
    let session = load(&engine, Some(&cookie)).await;
    assert_eq!(
        session.get::<String>("name").unwrap().as_deref(),
        Some("ann")
    );
    session.purge();
    assert_eq!(engine.finish(&session, true).await, Outcome::Remove);
    assert!(load(&engine, Some(&cookie)).await.is_empty());
}

#[tokio::test]
async fn a_save_in_the_middle_of_a_request_is_seen_by_others_and_its_cookie_sent() {
    let store = Arc::new(MemoryStore::new());
    let engine = engine(&store);
    let session = load(&engine, None).await;
    session.insert("step", 1).unwrap();
    session.save().await.unwrap();
    // The cookie the save decided on goes out with the response.
    let cookie = set(engine.finish(&session, false).await);
    let other = load(&engine, Some(&cookie)).await;
    assert_eq!(other.get::<u32>("step").unwrap(), Some(1));
    other.insert("step", 2).unwrap();
    engine.finish(&other, false).await;
    // A reload shows what another request stored meanwhile.
    session.reload().await.unwrap();
    assert_eq!(session.get::<u32>("step").unwrap(), Some(2));
}

#[tokio::test]
async fn a_users_sessions_are_listed_and_ended_from_anywhere() {
    let store = Arc::new(MemoryStore::new());
    let engine = engine(&store);
    let mut cookies = Vec::new();
    for _ in 0..2 {
        let login = load(&engine, None).await;
        login.renew();
        login.bind_user("ann");
        login.insert("name", "ann").unwrap();
        cookies.push(set(engine.finish(&login, false).await));
    }
    let users = engine.users();
    let listed = users.list("ann").await.unwrap();
    assert_eq!(listed.len(), 2);
    let mine = load(&engine, Some(&cookies[0])).await;
    let others = mine.user_sessions().await.unwrap();
    assert_eq!(others.iter().filter(|s| s.current).count(), 1);
    assert_eq!(mine.log_out_other_sessions().await.unwrap(), 1);
    assert!(load(&engine, Some(&cookies[1])).await.is_empty());
    assert_eq!(users.revoke_all("ann").await.unwrap(), 1);
    assert!(load(&engine, Some(&cookies[0])).await.is_empty());
}

#[tokio::test]
async fn values_are_sealed_at_rest_and_open_for_the_cookie_holder() {
    let store = Arc::new(MemoryStore::new());
    let mut config = SessionConfig::default();
    config.secret_key = Some(SECRET.to_owned());
    config.encrypt_at_rest = EncryptAtRest::On;
    let engine = engine_with(&store, &config);
    let cookie = stored(&engine).await;
    let key = StoreKey::new("session:", &SessionId::parse(&cookie).unwrap(), true);
    let record = store
        .load(&key)
        .await
        .unwrap()
        .expect("stored under the id's hash");
    let value = &record.entries["name"];
    assert!(
        !value.windows(3).any(|w| w == b"ann"),
        "the store sees no value in clear: {value:?}"
    );
    let session = load(&engine, Some(&cookie)).await;
    assert_eq!(
        session.get::<String>("name").unwrap().as_deref(),
        Some("ann")
    );
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_whatever_its_activity() {
    let store = Arc::new(MemoryStore::new());
    let mut config = SessionConfig::default();
    config.absolute_lifetime = Some(Duration::from_secs(2));
    let engine = engine_with(&store, &config);
    let cookie = stored(&engine).await;
    // Active until its end: each request refreshes it, and it still ends.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let session = load(&engine, Some(&cookie)).await;
        assert_eq!(
            session.get::<String>("name").unwrap().as_deref(),
            Some("ann")
        );
        session.insert("seen", 1).unwrap();
        engine.finish(&session, false).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let session = load(&engine, Some(&cookie)).await;
    assert!(session.is_empty(), "over: a fresh session");
    let outcome = engine.finish(&session, false).await;
    assert!(
        matches!(outcome, Outcome::Keep | Outcome::Remove),
        "no cookie for it again: {outcome:?}"
    );
    // The store was told to forget it at its end, not a lifetime later.
    assert_eq!(store.len(), 0, "gone from the store");
}
