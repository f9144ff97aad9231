//! `#[derive(SessionData)]` and `TypedSession`, driven through actix-web.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::cookie::Cookie;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, HttpResponse, test, web};
use serde::{Deserialize, Serialize};
use session_actix::store::StoreKey;
use session_actix::store::memory::MemoryStore;
use session_actix::store::{Applied, ChangeSet, Record, SessionStore, StoreError};
use session_actix::{Session, SessionData, SessionMiddleware, TypedSession};
use tokio::sync::Barrier;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Line {
    sku: String,
    quantity: u32,
}

#[derive(Debug, PartialEq, SessionData)]
#[session(prefix = "cart.")]
struct Cart {
    user_id: Option<u64>,
    #[session(key = "items")]
    lines: Vec<Line>,
    #[session(default = "one")]
    visits: u32,
    #[session(skip)]
    scratch: String,
}

fn one() -> u32 {
    1
}

#[derive(Debug, PartialEq, SessionData)]
#[session(rename_all = "camelCase", default)]
struct Prefs {
    dark_mode: bool,
    page_size: u32,
}

impl Default for Prefs {
    fn default() -> Self {
        Self {
            dark_mode: false,
            page_size: 25,
        }
    }
}

fn session_cookie<B>(res: &ServiceResponse<B>) -> Option<Cookie<'static>> {
    res.response()
        .cookies()
        .find(|c| c.name() == "session")
        .map(Cookie::into_owned)
}

#[actix_web::test]
async fn keys_follow_prefix_key_and_rename_all() {
    assert_eq!(Cart::KEYS, ["cart.user_id", "cart.items", "cart.visits"]);
    assert_eq!(Prefs::KEYS, ["darkMode", "pageSize"]);
}

#[actix_web::test]
async fn accessors_read_write_and_fall_back_to_defaults() {
    let app = test::init_service(
        App::new()
            .wrap(
                SessionMiddleware::builder(MemoryStore::new())
                    .build()
                    .unwrap(),
            )
            .route(
                "/",
                web::get().to(|cart: TypedSession<Cart>, raw: Session| async move {
                    // Missing keys: the field defaults.
                    assert_eq!(cart.user_id(), None);
                    assert!(cart.lines().is_empty());
                    assert_eq!(cart.visits(), 1, "default = \"one\"");
                    cart.set_user_id(Some(7)).unwrap();
                    cart.update_lines(|l| {
                        l.push(Line {
                            sku: "tea".into(),
                            quantity: 2,
                        })
                    })
                    .unwrap();
                    cart.set_visits(5).unwrap();
                    // Each field is one key of the plain session.
                    assert_eq!(raw.get::<u64>("cart.user_id").unwrap(), Some(7));
                    assert_eq!(raw.get::<u32>("cart.visits").unwrap(), Some(5));
                    assert_eq!(
                        raw.get::<Vec<Line>>("cart.items").unwrap().unwrap().len(),
                        1
                    );
                    assert!(cart.remove_visits());
                    assert!(!cart.remove_visits());
                    assert_eq!(cart.visits(), 1);
                    let loaded = cart.load();
                    assert_eq!(
                        loaded,
                        Cart {
                            user_id: Some(7),
                            lines: vec![Line {
                                sku: "tea".into(),
                                quantity: 2
                            }],
                            visits: 1,
                            scratch: String::new(),
                        }
                    );
                    HttpResponse::Ok().finish()
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status(), 200);
    assert!(session_cookie(&res).is_some());
}

#[actix_web::test]
async fn container_default_and_rename_all() {
    let app = test::init_service(
        App::new()
            .wrap(
                SessionMiddleware::builder(MemoryStore::new())
                    .build()
                    .unwrap(),
            )
            .route(
                "/",
                web::get().to(|prefs: TypedSession<Prefs>, raw: Session| async move {
                    assert_eq!(prefs.page_size(), 25, "from Prefs::default()");
                    prefs.set_dark_mode(true).unwrap();
                    assert_eq!(raw.get::<bool>("darkMode").unwrap(), Some(true));
                    HttpResponse::Ok().finish()
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn an_unreadable_value_reads_as_the_default_is_logged_and_kept() {
    // This test is the only one that reads an unreadable value, so the
    // warning's callsite is first seen while this thread's subscriber is
    // set (tracing caches per callsite whether anyone listens).
    let events = common::Recorded::default();
    let _guard = tracing::subscriber::set_default(events.clone());
    let app = test::init_service(
        App::new()
            .wrap(
                SessionMiddleware::builder(MemoryStore::new())
                    .build()
                    .unwrap(),
            )
            .route(
                "/old",
                web::get().to(|raw: Session| async move {
                    // An older version of the app stored these shapes.
                    raw.insert("cart.visits", "many").unwrap();
                    raw.insert("cart.user_id", 42).unwrap();
                    HttpResponse::Ok().finish()
                }),
            )
            .route(
                "/new",
                web::get().to(|cart: TypedSession<Cart>| async move {
                    HttpResponse::Ok().body(format!("{} {:?}", cart.visits(), cart.user_id()))
                }),
            )
            .route(
                "/raw",
                web::get().to(|raw: Session| async move {
                    HttpResponse::Ok().body(raw.get::<String>("cart.visits").unwrap().unwrap())
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/old").to_request()).await;
    let cookie = session_cookie(&res).unwrap();
    assert!(events.warnings().is_empty(), "{:?}", events.warnings());
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/new")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    // `visits` falls back to its default (1, from `one`); `user_id` is read.
    assert_eq!(test::read_body(res).await, "1 Some(42)");
    // One warning, for the one unreadable read, naming the key and the type.
    let warnings = events.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(
        warnings[0].get("key").map(String::as_str),
        Some("cart.visits"),
        "{warnings:?}"
    );
    assert_eq!(
        warnings[0].get("type").map(String::as_str),
        Some("u32"),
        "{warnings:?}"
    );
    // Reading did not wipe the stored value.
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/raw")
            .cookie(cookie)
            .to_request(),
    )
    .await;
    assert_eq!(test::read_body(res).await, "many");
}

#[actix_web::test]
async fn typed_structs_and_session_share_a_session_and_own_their_keys() {
    let app = test::init_service(
        App::new()
            .wrap(SessionMiddleware::builder(MemoryStore::new()).build().unwrap())
            .route(
                "/fill",
                web::get().to(
                    |cart: TypedSession<Cart>, prefs: TypedSession<Prefs>, raw: Session| async move {
                        cart.set_user_id(Some(1)).unwrap();
                        prefs.set_dark_mode(true).unwrap();
                        raw.insert("other", "kept").unwrap();
                        HttpResponse::Ok().finish()
                    },
                ),
            )
            .route(
                "/clear-cart",
                web::get().to(|cart: TypedSession<Cart>| async move {
                    cart.clear();
                    HttpResponse::Ok().finish()
                }),
            )
            .route(
                "/read",
                web::get().to(
                    |cart: TypedSession<Cart>, prefs: TypedSession<Prefs>, raw: Session| async move {
                        let mut keys = raw.keys();
                        keys.sort();
                        HttpResponse::Ok().body(format!(
                            "{:?} {} {:?}",
                            cart.user_id(),
                            prefs.dark_mode(),
                            keys
                        ))
                    },
                ),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/fill").to_request()).await;
    let cookie = session_cookie(&res).unwrap();
    let get = |uri: &'static str| test::TestRequest::get().uri(uri).cookie(cookie.clone());
    let res = test::call_service(&app, get("/read").to_request()).await;
    assert_eq!(
        test::read_body(res).await,
        r#"Some(1) true ["cart.user_id", "darkMode", "other"]"#
    );
    test::call_service(&app, get("/clear-cart").to_request()).await;
    let res = test::call_service(&app, get("/read").to_request()).await;
    assert_eq!(
        test::read_body(res).await,
        r#"None true ["darkMode", "other"]"#
    );
}

#[actix_web::test]
async fn save_records_only_the_fields_that_changed() {
    let recorder = Recorder::default();
    let app = test::init_service(
        App::new()
            .wrap(
                SessionMiddleware::builder(recorder.clone())
                    .build()
                    .unwrap(),
            )
            .route(
                "/fill",
                web::get().to(|cart: TypedSession<Cart>| async move {
                    // Missing keys are stored, even with their default value.
                    cart.save(&cart.load()).unwrap();
                    HttpResponse::Ok().body(format!("{:?}", cart.session().status()))
                }),
            )
            .route(
                "/",
                web::get().to(|cart: TypedSession<Cart>| async move {
                    let mut value = cart.load();
                    cart.save(&value).unwrap();
                    let unchanged = cart.session().status();
                    value.visits = 9;
                    cart.save(&value).unwrap();
                    let changes = cart.session().status();
                    HttpResponse::Ok().body(format!("{unchanged:?} {changes:?}"))
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/fill").to_request()).await;
    let cookie = session_cookie(&res).unwrap();
    assert_eq!(test::read_body(res).await, "Changed");
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/")
            .cookie(cookie)
            .to_request(),
    )
    .await;
    // Re-saving what was read changed nothing; changing one field changed it.
    assert_eq!(test::read_body(res).await, "Unchanged Changed");
    let applied = recorder.applied.lock().unwrap().clone();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].set.len(), 1);
    assert_eq!(applied[0].set[0].0, "cart.visits");
    assert!(!applied[0].clear && applied[0].remove.is_empty());
}

/// A memory store that records the change sets it is asked to apply.
#[derive(Clone, Default)]
struct Recorder {
    store: Arc<MemoryStore>,
    applied: Arc<Mutex<Vec<ChangeSet>>>,
}

impl SessionStore for Recorder {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.store.load(key).await
    }
    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.store.create(key, record, ttl).await
    }
    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        self.applied.lock().unwrap().push(changes.clone());
        self.store.apply(key, changes, ttl).await
    }
    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        self.store.touch(key, ttl).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.store.delete(key).await
    }
    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.store.take(key).await
    }
}

#[actix_web::test]
async fn concurrent_requests_setting_different_fields_both_persist() {
    // Every field starts away from its default (None, [], 1), so a write
    // lost by either request, or a seeded key lost by both, shows.
    fn seeded() -> Cart {
        Cart {
            user_id: Some(7),
            lines: vec![Line {
                sku: "tea".into(),
                quantity: 2,
            }],
            visits: 5,
            scratch: String::new(),
        }
    }
    fn coffee() -> Vec<Line> {
        vec![Line {
            sku: "coffee".into(),
            quantity: 3,
        }]
    }

    let barrier = web::Data::new(Barrier::new(2));
    let app = test::init_service(
        App::new()
            .app_data(barrier.clone())
            .wrap(
                SessionMiddleware::builder(MemoryStore::new())
                    .build()
                    .unwrap(),
            )
            .route(
                "/start",
                web::get().to(|cart: TypedSession<Cart>| async move {
                    cart.save(&seeded()).unwrap();
                    HttpResponse::Ok().finish()
                }),
            )
            .route(
                "/user",
                web::get().to(
                    |cart: TypedSession<Cart>, b: web::Data<Barrier>| async move {
                        // Both requests have loaded the session before either writes.
                        b.wait().await;
                        cart.set_user_id(Some(99)).unwrap();
                        HttpResponse::Ok().finish()
                    },
                ),
            )
            .route(
                "/lines",
                web::get().to(
                    |cart: TypedSession<Cart>, b: web::Data<Barrier>| async move {
                        b.wait().await;
                        // The whole struct, read and saved back with one
                        // field changed: `save` records only that field.
                        let mut value = cart.load();
                        value.lines = coffee();
                        cart.save(&value).unwrap();
                        HttpResponse::Ok().finish()
                    },
                ),
            )
            .route(
                "/read",
                web::get().to(|cart: TypedSession<Cart>| async move {
                    HttpResponse::Ok().body(format!("{:?}", cart.load()))
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/start").to_request()).await;
    let cookie = session_cookie(&res).unwrap();
    let get = |uri: &'static str| test::TestRequest::get().uri(uri).cookie(cookie.clone());
    let res = test::call_service(&app, get("/read").to_request()).await;
    assert_eq!(
        test::read_body(res).await,
        format!("{:?}", seeded()),
        "the seed is stored"
    );
    let (a, b) = tokio::join!(
        app.call(get("/user").to_request()),
        app.call(get("/lines").to_request())
    );
    assert_eq!(a.unwrap().status(), 200);
    assert_eq!(b.unwrap().status(), 200);
    let res = test::call_service(&app, get("/read").to_request()).await;
    let expected = Cart {
        user_id: Some(99),
        lines: coffee(),
        ..seeded()
    };
    assert_eq!(test::read_body(res).await, format!("{expected:?}"));
}

#[actix_web::test]
async fn without_the_middleware_the_error_says_what_to_add() {
    let app = test::init_service(App::new().route(
        "/",
        web::get().to(|cart: TypedSession<Cart>| async move {
            HttpResponse::Ok().body(cart.visits().to_string())
        }),
    ))
    .await;
    let req = test::TestRequest::get().uri("/").to_request();
    let err = match app.call(req).await {
        Ok(res) => res
            .response()
            .error()
            .expect("an error response")
            .to_string(),
        Err(err) => err.to_string(),
    };
    assert!(err.contains(".wrap(SessionMiddleware"), "{err}");
}

#[actix_web::test]
async fn a_session_can_be_viewed_typed() {
    let app = test::init_service(
        App::new()
            .wrap(
                SessionMiddleware::builder(MemoryStore::new())
                    .build()
                    .unwrap(),
            )
            .route(
                "/",
                web::get().to(|raw: Session| async move {
                    raw.insert("cart.visits", 3).unwrap();
                    HttpResponse::Ok().body(raw.typed::<Cart>().visits().to_string())
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(test::read_body(res).await, "3");
}

/// session-actix under another name, as a crate that re-exports it has it.
mod reexport {
    pub(crate) use session_actix as sessions;
}

/// Derived through the re-export: `#[session(crate = "...")]` makes the
/// generated code name session-actix by that path.
#[derive(Debug, PartialEq, reexport::sessions::SessionData)]
#[session(crate = "reexport::sessions", prefix = "renamed.")]
struct Renamed {
    visits: u32,
    #[session(default = "one")]
    pages: u32,
    #[session(skip)]
    scratch: String,
}

#[actix_web::test]
async fn the_crate_path_can_be_renamed() {
    assert_eq!(Renamed::KEYS, ["renamed.visits", "renamed.pages"]);
    let app = test::init_service(
        App::new()
            .wrap(
                SessionMiddleware::builder(MemoryStore::new())
                    .build()
                    .unwrap(),
            )
            .route(
                "/set",
                web::get().to(
                    |renamed: reexport::sessions::TypedSession<Renamed>| async move {
                        assert_eq!(renamed.visits(), 0);
                        assert_eq!(renamed.pages(), 1, "default = \"one\"");
                        renamed.set_visits(3).unwrap();
                        renamed.update_pages(|p| *p += 1).unwrap();
                        HttpResponse::Ok().finish()
                    },
                ),
            )
            .route(
                "/read",
                web::get().to(|renamed: TypedSession<Renamed>, raw: Session| async move {
                    let mut keys = raw.keys();
                    keys.sort();
                    HttpResponse::Ok().body(format!("{:?} {keys:?}", renamed.load()))
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/set").to_request()).await;
    assert_eq!(res.status(), 200);
    let cookie = session_cookie(&res).unwrap();
    let req = test::TestRequest::get().uri("/read").cookie(cookie);
    let res = test::call_service(&app, req.to_request()).await;
    let expected = Renamed {
        visits: 3,
        pages: 2,
        scratch: String::new(),
    };
    assert_eq!(
        test::read_body(res).await,
        format!(r#"{expected:?} ["renamed.pages", "renamed.visits"]"#)
    );
}

/// Items named like the prelude's (and two primitive types), which code the
/// derive generates here would pick up instead if it named anything by a
/// bare name: that this module compiles proves it uses full paths.
mod shadowed_prelude {
    // The shadowing items are never used (the generated code must not pick
    // them up), and the primitive types' lower-case names are the point.
    #![allow(dead_code, unused_imports, non_camel_case_types)]

    use session_actix::SessionData;

    pub(crate) struct Result;
    pub(crate) struct Option;
    pub(crate) struct Ok;
    pub(crate) trait Default {}
    pub(crate) struct Clone;
    pub(crate) struct Vec;
    pub(crate) trait FnOnce {}
    pub(crate) struct bool;
    pub(crate) struct str;
    // The prelude's `Debug` is a derive macro only: shadow it with another
    // derive (and its trait), which a `#[derive(Debug)]` would run instead.
    use serde::Serialize as Debug;

    fn two() -> u32 {
        2
    }

    /// Every way a field gets its default: the field type's, a function's,
    /// the struct's (`skip`), and the struct's `Default` impl for the rest.
    #[derive(SessionData)]
    #[session(prefix = "shadowed.", default)]
    pub(crate) struct Shadowed {
        pub(crate) user_id: ::core::option::Option<u64>,
        #[session(default)]
        pub(crate) lines: ::std::vec::Vec<::std::string::String>,
        #[session(default = "two")]
        pub(crate) visits: u32,
        pub(crate) page_size: u32,
        #[session(skip)]
        pub(crate) scratch: u32,
    }

    impl ::core::default::Default for Shadowed {
        fn default() -> Self {
            Self {
                user_id: ::core::option::Option::None,
                lines: ::std::vec::Vec::new(),
                visits: 0,
                page_size: 25,
                scratch: 7,
            }
        }
    }
}

#[actix_web::test]
async fn the_derive_works_where_the_prelude_is_shadowed() {
    use shadowed_prelude::Shadowed;

    let app = test::init_service(
        App::new()
            .wrap(
                SessionMiddleware::builder(MemoryStore::new())
                    .build()
                    .unwrap(),
            )
            .route(
                "/",
                web::get().to(|shadowed: TypedSession<Shadowed>| async move {
                    assert_eq!(shadowed.user_id(), None);
                    assert!(shadowed.lines().is_empty());
                    assert_eq!(shadowed.visits(), 2, "default = \"two\"");
                    assert_eq!(shadowed.page_size(), 25, "the struct's default");
                    shadowed.set_user_id(Some(5)).unwrap();
                    shadowed.update_lines(|l| l.push("tea".into())).unwrap();
                    // The accessors' Clone and Debug, written out by the derive.
                    let copy = (*shadowed).clone();
                    assert!(copy.remove_user_id());
                    assert_eq!(shadowed.user_id(), None, "the copy is the same session");
                    let debug = format!("{copy:?}");
                    assert!(
                        debug.starts_with("ShadowedSession { __session: "),
                        "{debug}"
                    );
                    let loaded = copy.load();
                    assert_eq!(loaded.lines, ["tea"]);
                    assert_eq!(loaded.scratch, 7, "skip takes the struct's default");
                    shadowed.save(&loaded).unwrap();
                    shadowed.clear();
                    assert!(shadowed.session().keys().is_empty());
                    HttpResponse::Ok().finish()
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status(), 200);
}
