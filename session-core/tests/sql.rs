//! The SQL store against real databases: PostgreSQL and MariaDB (started by
//! `scripts/services.sh`) and SQLite (a temporary file), each running the
//! acceptance suite on a table of its own, plus the schema, the cleanup of
//! expired rows and the checks on the table name.

use std::time::Duration;

use session_core::store::sql::{SqlStore, sqlx};
use session_core::store::{Applied, ChangeSet, SessionStore};
use session_core::testing::{record, unique_key};

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL: &str = "mysql://root@127.0.0.1:3306/test";

/// A store on `table`, with the background cleanup off unless asked for.
async fn connect(url: &str, table: &str) -> SqlStore {
    SqlStore::builder(url)
        .table(table)
        .cleanup_interval(None)
        .build()
        .await
        .unwrap_or_else(|e| panic!("{url} must be up (run scripts/services.sh): {e}"))
}

/// A SQLite file in a directory that lives as long as the test process.
fn sqlite_url(name: &str) -> String {
    static DIR: std::sync::LazyLock<tempfile::TempDir> =
        std::sync::LazyLock::new(|| tempfile::tempdir().expect("a temporary directory"));
    format!(
        "sqlite://{}?mode=rwc",
        DIR.path().join(format!("{name}.db")).display()
    )
}

mod postgres {
    session_core::store_suite!(super::connect(super::POSTGRES, "suite_sessions"));
}

mod mysql {
    session_core::store_suite!(super::connect(super::MYSQL, "suite_sessions"));
}

mod sqlite {
    session_core::store_suite!(super::connect(
        &super::sqlite_url("suite"),
        "suite_sessions"
    ));
}

mod sqlite_memory {
    session_core::store_suite!(super::connect("sqlite::memory:", "suite_sessions"));
}

/// The three databases, each with a raw pool for checking what is stored.
enum Raw {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

impl Raw {
    async fn connect(url: &str) -> Raw {
        fn up<T>(url: &str, pool: Result<T, sqlx::Error>) -> T {
            pool.unwrap_or_else(|e| panic!("{url} must be up (run scripts/services.sh): {e}"))
        }
        if url.starts_with("postgres") {
            Raw::Postgres(up(url, sqlx::PgPool::connect(url).await))
        } else if url.starts_with("mysql") {
            Raw::MySql(up(url, sqlx::MySqlPool::connect(url).await))
        } else {
            Raw::Sqlite(up(url, sqlx::SqlitePool::connect(url).await))
        }
    }

    /// A store on this pool.
    async fn store(&self, table: &str, cleanup: Option<Duration>) -> SqlStore {
        let builder = match self {
            Raw::Postgres(p) => SqlStore::postgres(p.clone()),
            Raw::MySql(p) => SqlStore::mysql(p.clone()),
            Raw::Sqlite(p) => SqlStore::sqlite(p.clone()),
        };
        builder
            .table(table)
            .cleanup_interval(cleanup)
            .build()
            .await
            .expect("the store builds")
    }

    async fn exec(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Raw::Postgres(p) => drop(sqlx::query(sql).execute(p).await.unwrap()),
            Raw::MySql(p) => drop(sqlx::query(sql).execute(p).await.unwrap()),
            Raw::Sqlite(p) => drop(sqlx::query(sql).execute(p).await.unwrap()),
        }
    }

    /// One integer from a query.
    async fn count(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Raw::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Raw::MySql(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    /// One text from a query.
    async fn text(&self, sql: &str) -> String {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Raw::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Raw::MySql(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    /// The index names on `table`'s `expires_at` column.
    async fn expiry_indexes(&self, table: &str) -> Vec<String> {
        let sql = match self {
            Raw::Postgres(_) => format!(
                "SELECT indexname::text FROM pg_indexes \
                 WHERE tablename = '{table}' AND indexdef LIKE '%(expires_at)%'"
            ),
            Raw::MySql(_) => format!(
                "SELECT CAST(index_name AS CHAR) FROM information_schema.statistics \
                 WHERE table_schema = DATABASE() AND table_name = '{table}' \
                 AND column_name = 'expires_at'"
            ),
            Raw::Sqlite(_) => format!(
                "SELECT name FROM pragma_index_list('{table}') AS l \
                 WHERE EXISTS (SELECT 1 FROM pragma_index_info(l.name) WHERE name = 'expires_at')"
            ),
        };
        let sql = sqlx::AssertSqlSafe(sql);
        match self {
            Raw::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
            Raw::MySql(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await.unwrap(),
        }
    }

    /// The table's columns and their types, in order.
    async fn columns(&self, table: &str) -> Vec<(String, String)> {
        let sql = match self {
            Raw::Postgres(_) => format!(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_name = '{table}' ORDER BY ordinal_position"
            ),
            Raw::MySql(_) => format!(
                "SELECT CAST(column_name AS CHAR), CAST(column_type AS CHAR) \
                 FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = '{table}' \
                 ORDER BY ordinal_position"
            ),
            Raw::Sqlite(_) => format!("SELECT name, type FROM pragma_table_info('{table}')"),
        };
        let sql = sqlx::AssertSqlSafe(sql);
        match self {
            Raw::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            Raw::MySql(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            Raw::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        }
    }
}

async fn schema_exists_with_its_expiry_index(url: &str, table: &str, types: [&str; 3]) {
    let raw = Raw::connect(url).await;
    raw.exec(&format!("DROP TABLE IF EXISTS {table}")).await;
    let store = raw.store(table, None).await;
    let columns = raw.columns(table).await;
    let names: Vec<_> = columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["id", "data", "expires_at"], "{columns:?}");
    for ((_, got), want) in columns.iter().zip(types) {
        assert!(
            got.to_lowercase().contains(want),
            "{url}: {columns:?} lacks {want}"
        );
    }
    assert_eq!(
        raw.expiry_indexes(table).await,
        [format!("{table}_expires_at_idx")],
        "{url}"
    );
    // Building again on the existing table is fine.
    drop(raw.store(table, None).await);

    // A session is a row: readable JSON, binary values in base64.
    let key = unique_key("schema");
    let mut rec = record(&[("name", "\"nick\"")]);
    rec.entries.insert("bin".into(), vec![0u8, 255].into());
    assert!(
        store
            .create(&key, &rec, Duration::from_secs(60))
            .await
            .unwrap()
    );
    let cast = match raw {
        Raw::Postgres(_) => "data::text",
        Raw::MySql(_) => "CAST(data AS CHAR)",
        Raw::Sqlite(_) => "data",
    };
    let data = raw
        .text(&format!(
            "SELECT {cast} FROM {table} WHERE id = '{}'",
            key.as_str()
        ))
        .await;
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        data,
        serde_json::json!({ "name": "\"nick\"", "bin": ["AP8="] }),
        "{url}"
    );
    let changes = ChangeSet {
        clear: true,
        ..ChangeSet::default()
    };
    assert_eq!(
        store
            .apply(&key, &changes, Duration::from_secs(60))
            .await
            .unwrap(),
        Applied::Deleted
    );
    assert_eq!(
        raw.count(&format!("SELECT COUNT(*) FROM {table}")).await,
        0,
        "{url}: an emptied session leaves no row"
    );
}

#[tokio::test]
async fn postgres_schema() {
    schema_exists_with_its_expiry_index(
        POSTGRES,
        "schema_sessions",
        ["text", "jsonb", "timestamp"],
    )
    .await;
}

#[tokio::test]
async fn mysql_schema() {
    // MariaDB reports JSON as longtext.
    schema_exists_with_its_expiry_index(
        MYSQL,
        "schema_sessions",
        ["varchar(255)", "", "datetime(6)"],
    )
    .await;
}

#[tokio::test]
async fn sqlite_schema() {
    schema_exists_with_its_expiry_index(
        &sqlite_url("schema"),
        "schema_sessions",
        ["text", "text", "integer"],
    )
    .await;
}

/// Creates `short` sessions that expire in a second and `long` ones that
/// do not, on a fresh table, and waits for the short ones to expire.
async fn expired_and_live(store: &SqlStore, short: usize, long: usize) {
    for _ in 0..short {
        let key = unique_key("cleanup-short");
        assert!(
            store
                .create(&key, &record(&[("a", "1")]), Duration::from_secs(1))
                .await
                .unwrap()
        );
    }
    for _ in 0..long {
        let key = unique_key("cleanup-long");
        assert!(
            store
                .create(&key, &record(&[("a", "1")]), Duration::from_secs(600))
                .await
                .unwrap()
        );
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;
}

async fn cleanup_deletes_only_expired_rows(url: &str, table: &str) {
    let raw = Raw::connect(url).await;
    raw.exec(&format!("DROP TABLE IF EXISTS {table}")).await;
    let store = raw.store(table, None).await;
    expired_and_live(&store, 3, 2).await;
    let rows = format!("SELECT COUNT(*) FROM {table}");
    assert_eq!(
        raw.count(&rows).await,
        5,
        "{url}: expired rows stay until cleaned"
    );
    assert_eq!(store.cleanup().await.unwrap(), 3, "{url}");
    assert_eq!(raw.count(&rows).await, 2, "{url}");
    assert_eq!(store.cleanup().await.unwrap(), 0, "{url}");
}

#[tokio::test]
async fn postgres_cleanup_on_demand() {
    cleanup_deletes_only_expired_rows(POSTGRES, "cleanup_sessions").await;
}

#[tokio::test]
async fn mysql_cleanup_on_demand() {
    cleanup_deletes_only_expired_rows(MYSQL, "cleanup_sessions").await;
}

#[tokio::test]
async fn sqlite_cleanup_on_demand() {
    cleanup_deletes_only_expired_rows(&sqlite_url("cleanup"), "cleanup_sessions").await;
}

/// The background task deletes expired rows, and stops with the store.
async fn background_cleanup(url: &str, table: &str) {
    let raw = Raw::connect(url).await;
    raw.exec(&format!("DROP TABLE IF EXISTS {table}")).await;
    let rows = format!("SELECT COUNT(*) FROM {table}");
    let store = raw.store(table, Some(Duration::from_millis(300))).await;
    expired_and_live(&store, 3, 2).await;
    // The short sessions expired ~1.2 s ago: a 300 ms task has run since.
    assert_eq!(
        raw.count(&rows).await,
        2,
        "{url}: the task did not clean up"
    );

    // Once the store (and every clone of it) is dropped, the task stops.
    let clone = store.clone();
    drop(store);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = raw.store(table, None).await;
    expired_and_live(&other, 2, 0).await;
    assert_eq!(
        raw.count(&rows).await,
        2,
        "{url}: a clone still runs the task"
    );
    drop(clone);
    tokio::time::sleep(Duration::from_millis(100)).await;
    expired_and_live(&other, 2, 0).await;
    assert_eq!(
        raw.count(&rows).await,
        4,
        "{url}: the task outlived the store"
    );
}

#[tokio::test]
async fn postgres_background_cleanup() {
    background_cleanup(POSTGRES, "bg_cleanup_sessions").await;
}

#[tokio::test]
async fn mysql_background_cleanup() {
    background_cleanup(MYSQL, "bg_cleanup_sessions").await;
}

#[tokio::test]
async fn sqlite_background_cleanup() {
    background_cleanup(&sqlite_url("bg-cleanup"), "bg_cleanup_sessions").await;
}

#[tokio::test]
async fn a_bad_table_name_is_an_error() {
    for url in [POSTGRES, MYSQL, "sqlite::memory:"] {
        for table in [
            "",
            "1st",
            "sessions; DROP TABLE users",
            "a\"b",
            "a`b",
            "s.t",
        ] {
            let error = SqlStore::builder(url)
                .table(table)
                .build()
                .await
                .expect_err("a bad table name must fail");
            assert!(
                error.to_string().contains("invalid SQL table name"),
                "{url} {table:?}: {error}"
            );
        }
    }
}

#[tokio::test]
async fn an_unknown_url_is_an_error() {
    let error = SqlStore::builder("oracle://db/x")
        .build()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("postgres://"), "{error}");
}

/// The table name keeps its case: it is quoted in every query.
#[tokio::test]
async fn mixed_case_and_reserved_table_names() {
    for url in [POSTGRES, MYSQL, &sqlite_url("names")] {
        for table in ["MixedCase_Sessions", "select"] {
            let store = connect(url, table).await;
            let key = unique_key("names");
            store
                .create(&key, &record(&[("a", "1")]), Duration::from_secs(60))
                .await
                .unwrap();
            assert!(store.load(&key).await.unwrap().is_some(), "{url} {table}");
            store.delete(&key).await.unwrap();
        }
    }
}

/// A 31-day lifetime is kept, and reported by load.
#[tokio::test]
async fn a_31_day_lifetime_is_kept() {
    let lifetime = Duration::from_secs(31 * 24 * 3600);
    for url in [POSTGRES, MYSQL, &sqlite_url("31d")] {
        let store = connect(url, "suite_sessions").await;
        let key = unique_key("sql-31d");
        store
            .create(&key, &record(&[("a", "1")]), lifetime)
            .await
            .unwrap();
        let left = store
            .load(&key)
            .await
            .unwrap()
            .unwrap()
            .expires_at
            .unwrap()
            .duration_since(std::time::SystemTime::now())
            .unwrap();
        assert!(
            left > lifetime - Duration::from_secs(10) && left <= lifetime,
            "{url}: {left:?}"
        );
    }
}

/// Thousands of keys in one change set, set then removed.
#[tokio::test]
async fn thousands_of_keys_in_one_change_set() {
    for url in [POSTGRES, MYSQL, &sqlite_url("wide")] {
        let store = connect(url, "suite_sessions").await;
        let key = unique_key("sql-wide");
        let ttl = Duration::from_secs(60);
        store
            .create(&key, &record(&[("seed", "0")]), ttl)
            .await
            .unwrap();
        let changes = ChangeSet {
            set: (0..5000)
                .map(|i| (format!("k{i}"), format!("{i}").into()))
                .collect(),
            ..ChangeSet::default()
        };
        assert_eq!(
            store.apply(&key, &changes, ttl).await.unwrap(),
            Applied::Done
        );
        let removes = ChangeSet {
            remove: (0..4000).map(|i| format!("k{i}")).collect(),
            ..ChangeSet::default()
        };
        assert_eq!(
            store.apply(&key, &removes, ttl).await.unwrap(),
            Applied::Done
        );
        let entries = store.load(&key).await.unwrap().unwrap().entries;
        assert_eq!(entries.len(), 1001, "{url}");
        assert_eq!(&entries["k4999"][..], b"4999");
    }
}

/// `SESSION_TYPE=sql` opens the store; mistakes name their key, and a
/// password never shows in a message.
#[tokio::test]
async fn open_from_config() {
    use session_core::SessionConfig;
    use session_core::store::{Backend, open};

    let config = |pairs: &[(&str, &str)]| {
        let mut all = vec![("SESSION_TYPE", "sql")];
        all.extend_from_slice(pairs);
        SessionConfig::from_source(all).unwrap()
    };
    let url = sqlite_url("open");
    let backend = open(&config(&[
        ("SESSION_SQL_URL", &url),
        ("SESSION_SQL_TABLE", "open_sessions"),
    ]))
    .await
    .unwrap();
    let Backend::Store(store) = backend else {
        panic!("not a server-side store")
    };
    let key = unique_key("open");
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(store.load(&key).await.unwrap().is_some());

    let error = open(&config(&[])).await.unwrap_err();
    assert_eq!(error.key(), "SESSION_SQL_URL", "{error}");
    let error = open(&config(&[
        ("SESSION_SQL_URL", &url),
        ("SESSION_SQL_TABLE", "bad name"),
    ]))
    .await
    .unwrap_err();
    assert_eq!(error.key(), "SESSION_SQL_TABLE", "{error}");
    for url in [
        "postgres://app:hunter2@127.0.0.1:1/x",
        "mysql://app:hunter2@127.0.0.1:1/x",
    ] {
        let error = open(&config(&[
            ("SESSION_SQL_URL", url),
            ("SESSION_STORE_TIMEOUT", "1"),
        ]))
        .await
        .unwrap_err();
        assert_eq!(error.key(), "SESSION_SQL_URL", "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
