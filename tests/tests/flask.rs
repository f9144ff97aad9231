//! The middleware on Flask-Session's layout: the configuration it refuses
//! (each error names the key), and what it sends and stores. The interop
//! with a real Flask app is in `examples/quickstart/tests/flask.rs`.

use actix_web::{App, HttpResponse, web};
use session_actix::flask::{BlobStore, FlaskFormat, FlaskSigner, FlaskStore};
use session_actix::store::memory::MemoryStore;
use session_actix::store::redis::RedisStore;
use session_actix::{Session, SessionConfig, SessionMiddleware};
use session_core::StoreKey;
use session_core::signing::Signer;
use session_tests::SECRET;

const REDIS: &str = "redis://127.0.0.1:6379";

async fn redis() -> RedisStore {
    RedisStore::builder(REDIS)
        .build()
        .await
        .unwrap_or_else(|e| panic!("{REDIS} must be up (run scripts/services.sh): {e}"))
}

/// `pairs`, with [`SECRET`] as `SECRET_KEY` unless they give one.
fn config(pairs: &[(&str, &str)]) -> Result<SessionConfig, session_actix::ConfigError> {
    let secret = (!pairs.iter().any(|(k, _)| *k == "SECRET_KEY")).then_some(("SECRET_KEY", SECRET));
    SessionConfig::from_source(pairs.iter().copied().chain(secret))
}

#[test]
fn the_interop_takes_flask_sessions_defaults() {
    let c = config(&[
        ("SESSION_INTEROP", "flask-session"),
        ("SESSION_TYPE", "redis"),
    ])
    .unwrap();
    assert_eq!(
        c.interop,
        Some(session_actix::config::Interop::FlaskSession)
    );
    assert!(!c.hash_ids, "ids in clear, as Flask-Session keys them");
    assert_eq!(
        c.codec,
        session_actix::Codec::MessagePack,
        "Flask-Session's default"
    );
    let json = config(&[
        ("SESSION_INTEROP", "Flask-Session"),
        ("SESSION_SERIALIZATION_FORMAT", "json"),
    ])
    .unwrap();
    assert_eq!(json.codec, session_actix::Codec::Json);
    assert_eq!(config(&[("SESSION_INTEROP", "")]).unwrap().interop, None);
}

#[test]
fn settings_flask_session_cannot_honour_are_refused_naming_the_key() {
    let interop = ("SESSION_INTEROP", "flask-session");
    for (pairs, key) in [
        (
            vec![interop, ("SESSION_HASH_IDS", "true")],
            "SESSION_HASH_IDS",
        ),
        (
            vec![interop, ("SESSION_ABSOLUTE_LIFETIME", "60")],
            "SESSION_ABSOLUTE_LIFETIME",
        ),
        (vec![("SESSION_INTEROP", "django")], "SESSION_INTEROP"),
        // The Flask app addresses every key under the prefix: this
        // crate's own records need one to live apart from.
        (
            vec![interop, ("SESSION_KEY_PREFIX", "")],
            "SESSION_KEY_PREFIX",
        ),
    ] {
        let err = config(&pairs).unwrap_err();
        assert_eq!(err.key(), key, "{pairs:?}: {err}");
    }
    // Ids in clear: login notes and users' indexes seal the keys they
    // name under the secret.
    let err = SessionConfig::from_source([interop]).unwrap_err();
    assert_eq!(err.key(), "SECRET_KEY", "{err}");
    assert!(err.to_string().contains("SESSION_INTEROP"), "{err}");
}

#[actix_web::test]
async fn stores_flask_cannot_share_are_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    for (pairs, key, says) in [
        (
            vec![("SESSION_TYPE", "filesystem"), ("SESSION_FILE_DIR", dir)],
            "SESSION_TYPE",
            "pickle",
        ),
        (vec![("SESSION_TYPE", "memory")], "SESSION_TYPE", "memory"),
        (vec![("SESSION_TYPE", "null")], "SESSION_TYPE", "null"),
        (
            vec![
                ("SESSION_TYPE", "memcached"),
                ("SESSION_MEMCACHED", "127.0.0.1:11211,127.0.0.1:11212"),
            ],
            "SESSION_MEMCACHED",
            "one server",
        ),
    ] {
        let mut pairs = pairs;
        pairs.push(("SESSION_INTEROP", "flask-session"));
        let err = SessionMiddleware::from_config(config(&pairs).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.key(), key, "{pairs:?}: {err}");
        assert!(err.to_string().contains(says), "{err}");
    }
}

#[actix_web::test]
async fn the_builder_checks_a_flask_store_against_its_settings() {
    let err = SessionMiddleware::builder(FlaskStore::new(redis().await))
        .secret_key(SECRET)
        .hash_ids(true)
        .build()
        .unwrap_err();
    assert_eq!(err.key(), "SESSION_HASH_IDS", "{err}");
    let err = SessionMiddleware::builder(FlaskStore::new(redis().await).with_key_prefix("app:"))
        .secret_key(SECRET)
        .build()
        .unwrap_err();
    assert_eq!(err.key(), "SESSION_KEY_PREFIX", "{err}");
    let mut interop = SessionConfig::default();
    interop.interop = Some(session_actix::config::Interop::FlaskSession);
    interop.hash_ids = false;
    let err = SessionMiddleware::builder(MemoryStore::new())
        .config(interop)
        .build()
        .unwrap_err();
    assert_eq!(err.key(), "SESSION_INTEROP", "{err}");
    let err = SessionMiddleware::builder(FlaskStore::new(redis().await))
        .secret_key(SECRET)
        .absolute_lifetime(std::time::Duration::from_secs(60))
        .build()
        .unwrap_err();
    assert_eq!(err.key(), "SESSION_ABSOLUTE_LIFETIME", "{err}");
    let err = SessionMiddleware::builder(FlaskStore::new(redis().await))
        .secret_key(SECRET)
        .encrypt_at_rest(true)
        .build()
        .unwrap_err();
    assert_eq!(err.key(), "SESSION_ENCRYPT_AT_REST", "{err}");
    assert!(
        SessionMiddleware::builder(FlaskStore::new(redis().await).with_format(FlaskFormat::Json))
            .secret_key(SECRET)
            .hash_ids(false)
            .build()
            .is_ok()
    );
}

async fn set(session: Session) -> actix_web::Result<HttpResponse> {
    session.insert("name", "nick")?;
    Ok(HttpResponse::Ok().finish())
}

async fn get(session: Session) -> actix_web::Result<HttpResponse> {
    Ok(match session.get::<String>("name")? {
        Some(name) => HttpResponse::Ok().body(name),
        None => HttpResponse::NotFound().finish(),
    })
}

#[actix_web::test]
async fn cookies_and_values_are_flask_sessions() {
    use actix_web::test::{TestRequest, call_service, init_service, read_body};
    let blob = redis().await;
    let app = init_service(
        App::new()
            .wrap(
                SessionMiddleware::builder(FlaskStore::new(blob.clone()))
                    .secret_key(SECRET)
                    .signing_key(SECRET)
                    .build()
                    .unwrap(),
            )
            .route("/set", web::post().to(set))
            .route("/get", web::get().to(get)),
    )
    .await;
    let res = call_service(&app, TestRequest::post().uri("/set").to_request()).await;
    let cookie = res
        .response()
        .cookies()
        .find(|c| c.name() == "session")
        .expect("a session cookie")
        .into_owned();
    // sid.tag, as itsdangerous signs it for Flask-Session.
    let value = cookie.value();
    assert_eq!(value.len(), 43 + 1 + 27, "{value}");
    let signer = FlaskSigner::new(SECRET, [""; 0]).unwrap();
    let (sid, current) = signer.verify_key(value).expect("Flask's signature");
    assert!(current);
    // The store holds Flask's map under the prefix and the id in clear,
    // `_permanent` first written with the session, as Flask does.
    let stored = blob
        .get(&StoreKey::from_raw(format!("session:{sid}")))
        .await
        .unwrap()
        .expect("stored under session:<sid>");
    assert_eq!(&stored.value[..], b"\x82\xaa_permanent\xc3\xa4name\xa4nick");
    let res = call_service(
        &app,
        TestRequest::get()
            .uri("/get")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(read_body(res).await, "nick");
    // The same id signed this crate's own way is not Flask's: refused.
    let ours = Signer::new("session-id", SECRET, [""; 0])
        .unwrap()
        .sign(sid);
    let res = call_service(
        &app,
        TestRequest::get()
            .uri("/get")
            .cookie(actix_web::cookie::Cookie::new("session", ours))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), actix_web::http::StatusCode::NOT_FOUND);
}

/// What a Flask app keeps in its session, as a typed session reads it.
#[derive(Debug, PartialEq, session_actix::SessionData)]
struct FlaskUser {
    user: Option<String>,
    visits: u64,
    ratio: f64,
    when: Option<session_actix::flask::Timestamp>,
    raw: Option<serde_bytes_like::Raw>,
}

/// `bytes` as serde reads MessagePack binary (`serde_bytes` does the same).
mod serde_bytes_like {
    /// The bytes of a MessagePack `bin`.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub(crate) struct Raw(pub(crate) Vec<u8>);

    impl<'de> serde::Deserialize<'de> for Raw {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Raw;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Raw, E> {
                    Ok(Raw(v.to_vec()))
                }
            }
            d.deserialize_bytes(V)
        }
    }

    impl serde::Serialize for Raw {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }
}

#[actix_web::test]
async fn a_typed_session_reads_and_writes_what_flask_stores() {
    use actix_web::test::{TestRequest, call_service, init_service, read_body};
    let blob = redis().await;
    // A session as Flask-Session 0.8 writes it (msgspec): `_permanent`,
    // `user`, `visits`, `ratio` (float64), `when` (a UTC datetime: the
    // timestamp extension) and `raw` (Python bytes: bin).
    let sid = session_core::SessionId::generate();
    let key = StoreKey::from_raw(format!("session:{}", sid.as_str()));
    let mut flask = vec![0x86];
    flask.extend(b"\xaa_permanent\xc3\xa4user\xa3ann\xa6visits\x07");
    flask.extend(b"\xa5ratio\xcb\x3f\xf1\x99\x99\x99\x99\x99\x9a");
    flask.extend(b"\xa4when\xd7\xff\x1d\x6f\x28\x00\x6b\x08\x26\x57");
    flask.extend(b"\xa3raw\xc4\x02\x00\xff");
    assert!(
        blob.insert(&key, &flask, std::time::Duration::from_secs(600))
            .await
            .unwrap()
    );
    let app = init_service(
        App::new()
            .wrap(
                SessionMiddleware::builder(FlaskStore::new(blob.clone()))
                    .secret_key(SECRET)
                    .build()
                    .unwrap(),
            )
            .route(
                "/",
                web::get().to(|user: session_actix::TypedSession<FlaskUser>| async move {
                    assert_eq!(user.user().as_deref(), Some("ann"));
                    assert_eq!(user.ratio(), 1.1);
                    assert_eq!(
                        user.when(),
                        session_actix::flask::Timestamp::new(1_795_696_215, 123_456_000)
                    );
                    assert_eq!(user.raw(), Some(serde_bytes_like::Raw(vec![0, 255])));
                    user.set_visits(user.visits() + 1).unwrap();
                    HttpResponse::Ok().body(user.visits().to_string())
                }),
            ),
    )
    .await;
    let res = call_service(
        &app,
        TestRequest::get()
            .uri("/")
            .cookie(actix_web::cookie::Cookie::new(
                "session",
                sid.as_str().to_owned(),
            ))
            .to_request(),
    )
    .await;
    assert_eq!(read_body(res).await, "8");
    // Only `visits` changed; every other value is as Flask wrote it.
    let mut expected = flask.clone();
    let at = expected
        .windows(7)
        .position(|w| w == b"visits\x07")
        .unwrap();
    expected[at + 6] = 0x08;
    let stored = blob.get(&key).await.unwrap().unwrap();
    assert_eq!(&stored.value[..], &expected[..]);
}
