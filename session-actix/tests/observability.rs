//! The `tracing` spans around store calls: the store and the operation,
//! never the session id, its store key or a value.

mod common;

use actix_web::{App, HttpResponse, test, web};
use session_actix::store::memory::MemoryStore;
use session_actix::{Session, SessionMiddleware};

#[actix_web::test]
async fn each_store_call_has_a_span_naming_the_store_and_the_operation_only() {
    const SECRET: &str = "the-value-nobody-may-log";
    let recorded = common::Recorded::default();
    let _guard = tracing::subscriber::set_default(recorded.clone());
    let app = test::init_service(
        App::new()
            .wrap(
                SessionMiddleware::builder(MemoryStore::new())
                    .build()
                    .unwrap(),
            )
            .route(
                "/set",
                web::get().to(|session: Session| async move {
                    session.insert("card", SECRET).unwrap();
                    HttpResponse::Ok().finish()
                }),
            )
            .route(
                "/logout",
                web::get().to(|session: Session| async move {
                    session.purge();
                    HttpResponse::Ok().finish()
                }),
            ),
    )
    .await;
    let response =
        test::call_service(&app, test::TestRequest::get().uri("/set").to_request()).await;
    let cookie = response
        .response()
        .cookies()
        .next()
        .expect("a session cookie")
        .into_owned();
    let id = cookie.value().to_owned();
    let key = session_core::StoreKey::new(
        "session:",
        &session_core::SessionId::parse(&id).expect("an unsigned id"),
        true,
    );
    let key = key.as_str().trim_start_matches("session:").to_owned();
    for uri in ["/set", "/logout"] {
        let request = test::TestRequest::get()
            .uri(uri)
            .cookie(cookie.clone())
            .to_request();
        assert!(
            test::call_service(&app, request)
                .await
                .status()
                .is_success()
        );
    }

    let recorded = recorded.entries();
    let ops: Vec<&str> = recorded
        .iter()
        .filter(|e| e.name == "session_store")
        .map(|common::Entry { fields, .. }| {
            assert_eq!(
                fields.get("store").map(String::as_str),
                Some("memory"),
                "{fields:?}"
            );
            assert_eq!(
                fields.len(),
                2,
                "a store span carries store and op only: {fields:?}"
            );
            fields["op"].as_str()
        })
        .collect();
    // Created; loaded and changed; loaded and ended.
    for op in ["create", "load", "apply", "take"] {
        assert!(ops.contains(&op), "no {op} span in {ops:?}");
    }
    for common::Entry { name, fields, .. } in &recorded {
        for value in fields.values() {
            assert!(
                !value.contains(&id) && !value.contains(&key) && !value.contains(SECRET),
                "{name} recorded the session id, its store key or a value: {fields:?}"
            );
        }
    }
}
