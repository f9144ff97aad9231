//! The `tracing` spans around store calls: the store and the operation,
//! never the session id, its store key or a value.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, test, web};
use session_actix::store::memory::MemoryStore;
use session_actix::{Session, SessionMiddleware};
use tracing::field::{Field, Visit};
use tracing::span;

/// A span's or an event's name, and its fields as text.
type Entry = (String, BTreeMap<String, String>);

/// Every span and event.
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<Entry>>>);

impl tracing::Subscriber for Recorded {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        let mut fields = FieldText::default();
        span.record(&mut fields);
        let mut spans = self.0.lock().unwrap();
        spans.push((span.metadata().name().to_owned(), fields.0));
        span::Id::from_u64(spans.len() as u64)
    }

    fn record(&self, id: &span::Id, values: &span::Record<'_>) {
        let mut fields = FieldText::default();
        values.record(&mut fields);
        let mut spans = self.0.lock().unwrap();
        if let Some((_, known)) = spans.get_mut(id.into_u64() as usize - 1) {
            known.extend(fields.0);
        }
    }

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = FieldText::default();
        event.record(&mut fields);
        self.0.lock().unwrap().push(("event".to_owned(), fields.0));
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

#[derive(Default)]
struct FieldText(BTreeMap<String, String>);

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

#[actix_web::test]
async fn each_store_call_has_a_span_naming_the_store_and_the_operation_only() {
    const SECRET: &str = "the-value-nobody-may-log";
    let recorded = Recorded::default();
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

    let recorded = recorded.0.lock().unwrap().clone();
    let ops: Vec<&str> = recorded
        .iter()
        .filter(|(name, _)| name == "session_store")
        .map(|(_, fields)| {
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
    for (name, fields) in &recorded {
        for value in fields.values() {
            assert!(
                !value.contains(&id) && !value.contains(SECRET),
                "{name} recorded the session id or a value: {fields:?}"
            );
        }
    }
}
