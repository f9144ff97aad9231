//! The SQL store against real databases: PostgreSQL and MariaDB (started by
//! `scripts/services.sh`) and SQLite (a temporary file), each running the
//! acceptance suite on a table of its own, plus the schema and its upgrade
//! from the previous version, size limits counted in bytes, the cleanup of
//! expired rows and the checks on the table name.

mod proxy;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use session_core::store::sql::{SqlStore, sqlx};
use session_core::store::{Applied, ChangeSet, Record, SessionStore};
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

async fn schema_exists_with_its_expiry_index(url: &str, table: &str, types: [&str; 4]) {
    let raw = Raw::connect(url).await;
    raw.exec(&format!("DROP TABLE IF EXISTS {table}")).await;
    let store = raw.store(table, None).await;
    let columns = raw.columns(table).await;
    let names: Vec<_> = columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["id", "data", "expires_at", "created_at"],
        "{columns:?}"
    );
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
        ["text", "jsonb", "timestamp", "timestamp"],
    )
    .await;
}

#[tokio::test]
async fn mysql_schema() {
    // MariaDB reports JSON as longtext.
    schema_exists_with_its_expiry_index(
        MYSQL,
        "schema_sessions",
        ["varchar(255)", "", "datetime(6)", "datetime(6)"],
    )
    .await;
}

#[tokio::test]
async fn sqlite_schema() {
    schema_exists_with_its_expiry_index(
        &sqlite_url("schema"),
        "schema_sessions",
        ["text", "text", "integer", "integer"],
    )
    .await;
}

/// The schema of the version before `created_at`, exactly as it created it
/// (index included), and a row written as it wrote one.
fn old_schema(raw: &Raw, table: &str, key: &str) -> Vec<String> {
    match raw {
        Raw::Postgres(_) => vec![
            format!(
                "CREATE TABLE IF NOT EXISTS \"{table}\" (\
                 id TEXT PRIMARY KEY, \
                 data JSONB NOT NULL, \
                 expires_at TIMESTAMPTZ NOT NULL)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_expires_at_idx\" ON \"{table}\" (expires_at)"
            ),
            format!(
                "INSERT INTO \"{table}\" (id, data, expires_at) \
                 VALUES ('{key}', '{{\"a\": \"1\"}}'::jsonb, now() + 600000 * interval '1 millisecond')"
            ),
        ],
        Raw::MySql(_) => vec![
            format!(
                "CREATE TABLE IF NOT EXISTS `{table}` (\
                 id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, \
                 data JSON NOT NULL, \
                 expires_at DATETIME(6) NOT NULL, \
                 INDEX `{table}_expires_at_idx` (expires_at)\
                 ) ENGINE = InnoDB"
            ),
            format!(
                "INSERT INTO `{table}` (id, data, expires_at) \
                 VALUES ('{key}', '{{\"a\": \"1\"}}', UTC_TIMESTAMP(6) + INTERVAL 600000000 MICROSECOND)"
            ),
        ],
        Raw::Sqlite(_) => {
            let expires = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 600_000;
            vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS \"{table}\" (\
                     id TEXT PRIMARY KEY NOT NULL, \
                     data TEXT NOT NULL, \
                     expires_at INTEGER NOT NULL)"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS \"{table}_expires_at_idx\" ON \"{table}\" (expires_at)"
                ),
                format!(
                    "INSERT INTO \"{table}\" (id, data, expires_at) \
                     VALUES ('{key}', '{{\"a\": \"1\"}}', {expires})"
                ),
            ]
        }
    }
}

/// A table made by the version before `created_at` gains the column when
/// stores start on it (two at once, as app servers do), its rows load
/// without a creation time and stay writable, and new sessions keep theirs.
async fn old_table_gains_created_at(url: &str, table: &str) {
    let raw = Raw::connect(url).await;
    raw.exec(&format!("DROP TABLE IF EXISTS {table}")).await;
    let old = unique_key("old-row");
    let from = SystemTime::now();
    for sql in old_schema(&raw, table, old.as_str()) {
        raw.exec(&sql).await;
    }
    let (store, other) = tokio::join!(raw.store(table, None), raw.store(table, None));
    drop(other);
    let names: Vec<_> = raw
        .columns(table)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["id", "data", "expires_at", "created_at"], "{url}");
    // Building again on the upgraded table is fine.
    drop(raw.store(table, None).await);

    let loaded = store.load(&old).await.unwrap().expect("the old row loads");
    assert_eq!(loaded.entries, record(&[("a", "1")]).entries, "{url}");
    assert_eq!(
        loaded.created_at, None,
        "{url}: a creation time was invented"
    );
    // Written 600 s ahead, in the database's clock (or ours, for SQLite),
    // sometime between `from` and now.
    let at = loaded.expires_at.expect("the old row's expiry is reported");
    let ms = Duration::from_millis(5);
    assert!(
        at + ms >= from + Duration::from_secs(600)
            && at <= SystemTime::now() + Duration::from_secs(600) + ms,
        "{url}: the old row expires at {at:?}"
    );
    let ttl = Duration::from_secs(60);
    let changes = ChangeSet {
        set: vec![("b".into(), Bytes::from("2"))],
        max_size: Some(1000),
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&old, &changes, ttl).await.unwrap(),
        Applied::Done
    );
    let loaded = store.load(&old).await.unwrap().expect("still live");
    assert_eq!(loaded.entries.len(), 2, "{url}");
    assert_eq!(loaded.created_at, None, "{url}");

    let new = unique_key("new-row");
    let created = UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
    let rec = Record {
        created_at: Some(created),
        ..record(&[("a", "1")])
    };
    assert!(store.create(&new, &rec, ttl).await.unwrap());
    assert_eq!(store.touch(&new, ttl).await.unwrap(), Applied::Done);
    let loaded = store.load(&new).await.unwrap().expect("just created");
    assert_eq!(loaded.created_at, Some(created), "{url}");
    let taken = store.take(&old).await.unwrap().expect("still live");
    assert_eq!(taken.created_at, None, "{url}");
}

#[tokio::test]
async fn postgres_old_table_gains_created_at() {
    old_table_gains_created_at(POSTGRES, "old_sessions").await;
}

#[tokio::test]
async fn mysql_old_table_gains_created_at() {
    old_table_gains_created_at(MYSQL, "old_sessions").await;
}

#[tokio::test]
async fn sqlite_old_table_gains_created_at() {
    old_table_gains_created_at(&sqlite_url("old"), "old_sessions").await;
}

/// The size limit counts bytes, as `session_size` does, not characters:
/// multi-byte keys and values, and binary values (kept in base64, with
/// each of its paddings) count what they hold. A change set exactly at the
/// limit is written, one byte over is refused with the size it would have
/// had.
async fn size_limit_counts_bytes(url: &str) {
    let store = connect(url, "suite_sessions").await;
    let ttl = Duration::from_secs(60);
    let key = unique_key("bytes");
    let mut base = record(&[("clé", "\"ü😀\""), ("ascii", "1")]);
    for (name, value) in [
        ("b1", &[0xff][..]),
        ("b2", &[0, 0xfe]),
        ("b3", &[1, 2, 0xfd]),
    ] {
        base.entries
            .insert(name.into(), Bytes::copy_from_slice(value));
    }
    assert!(store.create(&key, &base, ttl).await.unwrap());
    let grow = ChangeSet {
        set: vec![
            ("ключ".into(), Bytes::from("\"значение\"")),
            ("b4".into(), Bytes::from_static(&[0xff, 0, 0, 0])),
        ],
        remove: vec!["ascii".into()],
        ..ChangeSet::default()
    };
    let size = grow.size_after(&base.entries);
    let over = ChangeSet {
        max_size: Some(size - 1),
        ..grow.clone()
    };
    assert_eq!(
        store.apply(&key, &over, ttl).await.unwrap(),
        Applied::TooLarge { size },
        "{url}"
    );
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().entries,
        base.entries,
        "{url}: a refused change was written"
    );
    let at = ChangeSet {
        max_size: Some(size),
        ..grow.clone()
    };
    assert_eq!(
        store.apply(&key, &at, ttl).await.unwrap(),
        Applied::Done,
        "{url}"
    );
    let mut merged = base.entries.clone();
    grow.apply_to(&mut merged);
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().entries,
        merged,
        "{url}"
    );

    // A clear whose new entries pass the limit on their own writes
    // nothing; on a session that is gone it says so.
    let clear = ChangeSet {
        clear: true,
        set: vec![("é".into(), Bytes::from("ü"))],
        max_size: Some(8 + 2 + 2 - 1),
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&key, &clear, ttl).await.unwrap(),
        Applied::TooLarge { size: 12 },
        "{url}"
    );
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().entries,
        merged,
        "{url}"
    );
    store.delete(&key).await.unwrap();
    assert_eq!(
        store.apply(&key, &clear, ttl).await.unwrap(),
        Applied::Gone,
        "{url}"
    );
    assert_eq!(
        store.apply(&key, &over, ttl).await.unwrap(),
        Applied::Gone,
        "{url}"
    );
    assert!(store.load(&key).await.unwrap().is_none(), "{url}");
}

#[tokio::test]
async fn postgres_size_limit_counts_bytes() {
    size_limit_counts_bytes(POSTGRES).await;
}

#[tokio::test]
async fn mysql_size_limit_counts_bytes() {
    size_limit_counts_bytes(MYSQL).await;
}

#[tokio::test]
async fn sqlite_size_limit_counts_bytes() {
    size_limit_counts_bytes(&sqlite_url("bytes")).await;
}

/// Creates `short` sessions that expire in a second and `long` ones that
/// do not, and waits until the short ones have expired as the store sees
/// it (`load` no longer returns them; it leaves their rows in place).
async fn expired_and_live(store: &SqlStore, short: usize, long: usize) {
    let mut expiring = Vec::new();
    for _ in 0..short {
        let key = unique_key("cleanup-short");
        assert!(
            store
                .create(&key, &record(&[("a", "1")]), Duration::from_secs(1))
                .await
                .unwrap()
        );
        expiring.push(key);
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
    let deadline = Instant::now() + Duration::from_secs(10);
    for key in &expiring {
        while store.load(key).await.unwrap().is_some() {
            assert!(
                Instant::now() < deadline,
                "a one-second session is still live after ten"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until `table` holds `rows` rows, for at most five seconds.
async fn rows_become(raw: &Raw, table: &str, rows: i64, why: &str) {
    let count = format!("SELECT COUNT(*) FROM {table}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = raw.count(&count).await;
        if now == rows {
            return;
        }
        assert!(Instant::now() < deadline, "{why}: {now} rows, not {rows}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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

/// The background task deletes expired rows, goes on while a clone of the
/// store lives, and stops with the last one.
async fn background_cleanup(url: &str, table: &str) {
    const EVERY: Duration = Duration::from_millis(300);
    let raw = Raw::connect(url).await;
    let control_table = format!("{table}_control");
    for table in [table, &control_table] {
        raw.exec(&format!("DROP TABLE IF EXISTS {table}")).await;
    }
    let store = raw.store(table, Some(EVERY)).await;
    expired_and_live(&store, 3, 2).await;
    rows_become(&raw, table, 2, &format!("{url}: the task did not clean up")).await;

    let clone = store.clone();
    drop(store);
    let other = raw.store(table, None).await;
    expired_and_live(&other, 2, 0).await;
    rows_become(&raw, table, 2, &format!("{url}: a clone stopped the task")).await;

    // Once the last clone is dropped, rows that expire stay. What proves
    // that the task had time to delete them: a live store's task, as
    // frequent, on a table of its own, deletes rows that expire a second
    // after them (three of its periods).
    drop(clone);
    expired_and_live(&other, 2, 0).await;
    let control = raw.store(&control_table, Some(EVERY)).await;
    expired_and_live(&control, 2, 0).await;
    rows_become(
        &raw,
        &control_table,
        0,
        &format!("{url}: the control's task did not clean up"),
    )
    .await;
    assert_eq!(
        raw.count(&format!("SELECT COUNT(*) FROM {table}")).await,
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
            assert_eq!(
                store.load(&key).await.unwrap().map(|r| r.entries),
                Some(record(&[("a", "1")]).entries),
                "{url} {table}"
            );
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
    // Through a store of its own on the same file and table.
    let direct = connect(&url, "open_sessions").await;
    assert_eq!(
        direct.load(&key).await.unwrap().map(|r| r.entries),
        Some(record(&[("a", "1")]).entries)
    );

    let error = open(&config(&[])).await.unwrap_err();
    assert_eq!(error.key(), "SESSION_SQL_URL", "{error}");
    assert!(error.to_string().contains("is required"), "{error}");
    let error = open(&config(&[
        ("SESSION_SQL_URL", &url),
        ("SESSION_SQL_TABLE", "bad name"),
    ]))
    .await
    .unwrap_err();
    assert_eq!(error.key(), "SESSION_SQL_TABLE", "{error}");
    assert!(
        error.to_string().contains("not a plain SQL identifier"),
        "{error}"
    );
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
        let message = error.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(
            message.contains("cannot use") && message.contains("Connection refused"),
            "{message}"
        );
    }
}

// The near cache (`SESSION_LOCAL_CACHE`): on PostgreSQL kept right by
// LISTEN/NOTIFY, on SQLite local to the process, refused on MySQL.

async fn cached(url: &str, table: &str) -> session_core::store::NearCache<SqlStore> {
    SqlStore::builder(url)
        .table(table)
        .cleanup_interval(None)
        .build_near_cache(10_000)
        .await
        .unwrap_or_else(|e| panic!("{url} must be up (run scripts/services.sh): {e}"))
}

mod postgres_near_cache {
    session_core::store_suite!(super::cached(super::POSTGRES, "suite_cached"));
}

mod sqlite_near_cache {
    session_core::store_suite!(super::cached(
        &super::sqlite_url("suite_cached"),
        "suite_sessions"
    ));
}

async fn value_of(store: &impl SessionStore, key: &session_core::StoreKey) -> Option<String> {
    let record = store.load(key).await.unwrap()?;
    Some(String::from_utf8(record.entries.get("v")?.to_vec()).unwrap())
}

fn set_v(value: &str) -> ChangeSet {
    ChangeSet {
        set: vec![("v".to_owned(), Bytes::from(format!("\"{value}\"")))],
        ..ChangeSet::default()
    }
}

/// Waits until `store` reads `want` under `key`, at most `limit`.
async fn reads_within(
    store: &impl SessionStore,
    key: &session_core::StoreKey,
    want: Option<&str>,
    limit: Duration,
    what: &str,
) -> Duration {
    let start = Instant::now();
    let want = want.map(|v| format!("\"{v}\""));
    while value_of(store, key).await != want {
        assert!(start.elapsed() < limit, "{what}: unseen after {limit:?}");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_near_cache_serves_own_writes_at_once_and_others_after_their_notify() {
    let (a, b) = (
        cached(POSTGRES, "cached_two").await,
        cached(POSTGRES, "cached_two").await,
    );
    let key = unique_key("pg-near");
    assert!(
        a.create(&key, &record(&[("v", "\"0\"")]), Duration::from_secs(600))
            .await
            .unwrap()
    );
    let mut delays = Vec::new();
    for i in 1..=30 {
        // This process's own write is read back at once.
        let own = format!("a{i}");
        let _ = a
            .apply(&key, &set_v(&own), Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(
            value_of(&a, &key).await,
            Some(format!("\"{own}\"")),
            "own write"
        );
        // Cached again (its own notification may have dropped it).
        reads_within(&a, &key, Some(&own), Duration::from_secs(2), "own write").await;
        let hits = a.stats().hits;
        assert_eq!(value_of(&a, &key).await, Some(format!("\"{own}\"")));
        assert!(a.stats().hits > hits || a.stats().invalidations > 0);
        // Another process's write, seen once its notification arrives.
        let other = format!("b{i}");
        let _ = b
            .apply(&key, &set_v(&other), Duration::from_secs(600))
            .await
            .unwrap();
        delays.push(
            reads_within(
                &a,
                &key,
                Some(&other),
                Duration::from_secs(2),
                "another process's write",
            )
            .await,
        );
    }
    delays.sort();
    eprintln!(
        "postgres invalidation delay: p50 {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    let stats = a.stats();
    assert!(stats.hits > 0 && stats.invalidations >= 30, "{stats:?}");
    // A logout elsewhere ends the session here too.
    b.delete(&key).await.unwrap();
    reads_within(&a, &key, None, Duration::from_secs(2), "a logout elsewhere").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_near_cache_is_emptied_when_its_listener_comes_back() {
    let table = "cached_listener";
    let a = cached(POSTGRES, table).await;
    let b = connect(POSTGRES, table).await;
    let raw = sqlx::PgPool::connect(POSTGRES).await.unwrap();
    let key = unique_key("pg-near-down");
    assert!(
        a.create(&key, &record(&[("v", "\"1\"")]), Duration::from_secs(600))
            .await
            .unwrap()
    );
    assert_eq!(value_of(&a, &key).await.as_deref(), Some("\"1\""));
    let flushes = a.stats().flushes;
    // End the listening connection, and write at once: the notification of
    // that write may go nowhere.
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
    )
    .bind(format!("LISTEN \"{table}_changes\""))
    .fetch_all(&raw)
    .await
    .unwrap();
    assert_eq!(ended, [true], "one listener on the table");
    let _ = b
        .apply(&key, &set_v("2"), Duration::from_secs(600))
        .await
        .unwrap();
    reads_within(
        &a,
        &key,
        Some("2"),
        Duration::from_secs(10),
        "a write while the listener was down",
    )
    .await;
    let back = Instant::now();
    while !a.stats().live || a.stats().flushes < flushes + 2 {
        assert!(back.elapsed() < Duration::from_secs(10), "{:?}", a.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Listening again: a later change still reaches the cache.
    assert_eq!(value_of(&a, &key).await.as_deref(), Some("\"2\""));
    let _ = b
        .apply(&key, &set_v("3"), Duration::from_secs(600))
        .await
        .unwrap();
    reads_within(
        &a,
        &key,
        Some("3"),
        Duration::from_secs(2),
        "a write after the listener came back",
    )
    .await;
}

/// The heartbeat of a cache behind the stalling proxy: short, so that a
/// stall is noticed in a fraction of a second.
const BEAT_EVERY: Duration = Duration::from_millis(100);
const BEAT_DEADLINE: Duration = Duration::from_millis(200);

/// A listening connection that stops delivering without closing (a NAT or
/// a firewall dropping it silently): the cache stops serving within a few
/// heartbeats, so a logout elsewhere, whose notification never arrives,
/// ends the session here too; once the connection flows again, a new
/// listener is in place and the cache is used, and kept right, again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_near_cache_stops_serving_when_its_listener_stalls_without_closing() {
    let table = "cached_stalled";
    let proxy = proxy::Proxy::start("127.0.0.1:5432").await;
    let a = SqlStore::builder(format!("postgres://postgres@{}/test", proxy.address()))
        .table(table)
        .cleanup_interval(None)
        .timeout(Duration::from_secs(1))
        .heartbeat(BEAT_EVERY, BEAT_DEADLINE)
        .build_near_cache(100)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES} must be up (run scripts/services.sh): {e}"));
    let b = connect(POSTGRES, table).await;
    let key = unique_key("pg-near-stall");
    assert!(
        a.create(&key, &record(&[("v", "\"1\"")]), Duration::from_secs(600))
            .await
            .unwrap()
    );
    assert_eq!(value_of(&a, &key).await.as_deref(), Some("\"1\""));
    let hits = a.stats().hits;
    assert_eq!(value_of(&a, &key).await.as_deref(), Some("\"1\""));
    assert_eq!(a.stats().hits, hits + 1, "cached: {:?}", a.stats());

    proxy.stall();
    b.delete(&key).await.unwrap();
    let stalled = Instant::now();
    let mut served = 0;
    // Served from the cache, or not at all: the store is behind the
    // stall too, so a load that goes to it hangs (and is cut here).
    while let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::from_millis(50), a.load(&key)).await
    {
        served += 1;
        assert!(
            stalled.elapsed() < Duration::from_secs(3),
            "a logged-out session served {served} times over 3 s after the listener stalled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "after the stall: served {served} times, for {:?}",
        stalled.elapsed()
    );
    while a.stats().live || a.stats().entries > 0 {
        assert!(
            stalled.elapsed() < Duration::from_secs(3),
            "not emptied: {:?}",
            a.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    proxy.resume();
    let resumed = Instant::now();
    while !a.stats().live {
        assert!(
            resumed.elapsed() < Duration::from_secs(10),
            "no listener 10 s after the connection flowed again: {:?}",
            a.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.load(&key).await.unwrap(), None);
    let key = unique_key("pg-near-stall-after");
    assert!(
        a.create(&key, &record(&[("v", "\"1\"")]), Duration::from_secs(600))
            .await
            .unwrap()
    );
    assert_eq!(value_of(&a, &key).await.as_deref(), Some("\"1\""));
    let _ = b
        .apply(&key, &set_v("2"), Duration::from_secs(600))
        .await
        .unwrap();
    reads_within(
        &a,
        &key,
        Some("2"),
        Duration::from_secs(2),
        "a change after the listener came back",
    )
    .await;
    assert!(a.stats().hits > hits + 1, "{:?}", a.stats());
}

#[tokio::test]
async fn mysql_near_cache_is_refused_naming_the_setting() {
    let error = SqlStore::builder(MYSQL)
        .table("cached_refused")
        .build_near_cache(10)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("SESSION_LOCAL_CACHE"), "{error}");
}
