//! Criterion micro-benchmarks of the per-request building blocks: ids,
//! store keys, signing, the value codec, the cookie store and sealing
//! values at rest.
//!
//! ```sh
//! cargo bench -p session-bench
//! cargo bench -p session-bench -- signer     # a subset, by name
//! ```

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use session_core::bytes::Bytes;
use session_core::store::Record;
use session_core::store::cookie::CookieStore;
use session_core::{Codec, SessionId, Signer, StoreKey};

const SECRET: &str = "a benchmark secret of at least thirty-two bytes";

/// A small typed value, as an app might keep under one key.
#[derive(Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    roles: Vec<String>,
}

fn user() -> User {
    User {
        id: 42,
        name: "nick".to_owned(),
        roles: vec!["admin".to_owned(), "editor".to_owned()],
    }
}

fn ids(c: &mut Criterion) {
    c.bench_function("session_id/generate", |b| b.iter(SessionId::generate));
    let text = SessionId::generate().as_str().to_owned();
    c.bench_function("session_id/parse", |b| {
        b.iter(|| SessionId::parse(black_box(&text)))
    });
    c.bench_function("session_id/parse_rejects_garbage", |b| {
        b.iter(|| SessionId::parse(black_box("not-an-id-at-all-not-an-id-at-all-not-an-i")))
    });
    let id = SessionId::generate();
    c.bench_function("store_key/new_sha256_hex", |b| {
        b.iter(|| StoreKey::new(black_box("session:"), black_box(&id), true))
    });
    c.bench_function("store_key/new_raw", |b| {
        b.iter(|| StoreKey::new(black_box("session:"), black_box(&id), false))
    });
}

fn signing(c: &mut Criterion) {
    let signer = Signer::new("session-id", SECRET, [] as [&str; 0]).unwrap();
    let id = SessionId::generate();
    c.bench_function("signer/sign", |b| {
        b.iter(|| signer.sign(black_box(id.as_str())))
    });
    let signed = signer.sign(id.as_str());
    c.bench_function("signer/verify", |b| {
        b.iter(|| signer.verify(black_box(&signed)))
    });
    let mut forged = signed.clone();
    forged.replace_range(forged.len() - 2.., "AA");
    c.bench_function("signer/verify_forged", |b| {
        b.iter(|| signer.verify(black_box(&forged)))
    });
    // A fallback key: a cookie signed with the old key tries both.
    let rotated = Signer::new(
        "session-id",
        "a newer benchmark secret of at least 32 bytes",
        [SECRET],
    )
    .unwrap();
    c.bench_function("signer/verify_with_fallback", |b| {
        b.iter(|| rotated.verify(black_box(&signed)))
    });
}

fn codec(c: &mut Criterion) {
    let codec = Codec::Json;
    c.bench_function("codec_json/encode_str", |b| {
        b.iter(|| codec.encode(black_box("nick")).unwrap())
    });
    let nick = codec.encode("nick").unwrap();
    c.bench_function("codec_json/decode_string", |b| {
        b.iter(|| codec.decode::<String>(black_box(&nick)).unwrap())
    });
    c.bench_function("codec_json/encode_u64", |b| {
        b.iter(|| codec.encode(black_box(&12345u64)).unwrap())
    });
    let number = codec.encode(&12345u64).unwrap();
    c.bench_function("codec_json/decode_u64", |b| {
        b.iter(|| codec.decode::<u64>(black_box(&number)).unwrap())
    });
    let value = user();
    c.bench_function("codec_json/encode_struct", |b| {
        b.iter(|| codec.encode(black_box(&value)).unwrap())
    });
    let encoded = codec.encode(&value).unwrap();
    c.bench_function("codec_json/decode_struct", |b| {
        b.iter(|| codec.decode::<User>(black_box(&encoded)).unwrap())
    });
}

fn cookie_store(c: &mut Criterion) {
    let store = CookieStore::new(SECRET, [] as [&str; 0]).unwrap();
    let codec = Codec::Json;
    let entries: HashMap<String, Bytes> = [
        ("name".to_owned(), codec.encode("nick").unwrap()),
        ("visits".to_owned(), codec.encode(&3u64).unwrap()),
        ("user".to_owned(), codec.encode(&user()).unwrap()),
    ]
    .into_iter()
    .collect();
    let record = Record::from(entries);
    let ttl = Duration::from_secs(31 * 24 * 3600);
    c.bench_function("cookie_store/encode", |b| {
        b.iter(|| store.encode(black_box(&record), ttl))
    });
    let value = store.encode(&record, ttl);
    c.bench_function("cookie_store/decode", |b| {
        b.iter(|| store.decode(black_box(&value)).unwrap())
    });
}

/// Polls a future that never waits (the memory store's) to its end.
fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => unreachable!("the memory store never waits"),
    }
}

/// What the middleware's observation of each store call (a `tracing`
/// span; counts and latencies with the `metrics` feature) adds to it: a
/// memory-store load, bare and observed, with no subscriber listening and
/// with one at `INFO` (the span is at `DEBUG`).
fn instrumented_store(c: &mut Criterion) {
    use session_core::store::memory::MemoryStore;
    use session_core::store::{Instrumented, SessionStore};
    let key = StoreKey::new("session:", &SessionId::generate(), true);
    let bare = std::sync::Arc::new(MemoryStore::new());
    let record = Record::from(HashMap::from([(
        "name".to_owned(),
        Bytes::from_static(b"\"nick\""),
    )]));
    ready(bare.create(&key, &record, Duration::from_secs(600))).unwrap();
    c.bench_function("store_call/load_bare", |b| {
        b.iter(|| ready(bare.load(black_box(&key))).unwrap())
    });
    let observed = Instrumented::new(std::sync::Arc::clone(&bare), "memory");
    c.bench_function("store_call/load_observed", |b| {
        b.iter(|| ready(observed.load(black_box(&key))).unwrap())
    });
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        c.bench_function("store_call/load_observed_info_subscriber", |b| {
            b.iter(|| ready(observed.load(black_box(&key))).unwrap())
        });
    });
}

/// Encryption at rest: one value sealed, and opened, with the session's
/// key derived each time (a request's first use) or kept (its second).
fn at_rest(c: &mut Criterion) {
    use session_core::EncryptAtRest;
    use session_core::testing::layout::AtRest;
    let at_rest = AtRest::new(EncryptAtRest::On, Some(SECRET), [] as [&str; 0]).unwrap();
    let value = Codec::Json.encode(&user()).unwrap();
    let plain: HashMap<String, Bytes> = [("user".to_owned(), value)].into();
    let id = SessionId::generate();
    c.bench_function("at_rest/seal_one_value_key_kept", |b| {
        b.iter(|| {
            let mut entries = plain.clone();
            at_rest.seal_entries(black_box(&id), &mut entries);
            entries
        })
    });
    let mut sealed = plain.clone();
    at_rest.seal_entries(&id, &mut sealed);
    c.bench_function("at_rest/open_one_value_key_kept", |b| {
        b.iter(|| {
            let mut entries = sealed.clone();
            at_rest.open_entries(black_box(&id), &mut entries);
            entries
        })
    });
    let ids: Vec<SessionId> = (0..1024).map(|_| SessionId::generate()).collect();
    let mut next = 0;
    c.bench_function("at_rest/seal_one_value_key_derived", |b| {
        b.iter(|| {
            next = (next + 1) % ids.len();
            let mut entries = plain.clone();
            at_rest.seal_entries(black_box(&ids[next]), &mut entries);
            entries
        })
    });
}

criterion_group!(
    benches,
    ids,
    signing,
    codec,
    cookie_store,
    instrumented_store,
    at_rest
);
criterion_main!(benches);
