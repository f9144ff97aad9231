//! The filesystem store's own contracts, through its public API: who a full
//! directory evicts, the directory it accepts, and two stores (as two
//! processes would) sharing one directory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use session_core::StoreError;
use session_core::StoreKey;
use session_core::store::filesystem::FileStore;
use session_core::store::{Applied, ChangeSet, Record, ScanPage, SessionStore};
use session_core::testing::{record, unique_key};

const LONG: Duration = Duration::from_secs(3600);

/// Session files anywhere under the store's directory.
fn session_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .map(|entry| match entry.file_type().unwrap().is_dir() {
            true => session_files(&entry.path()),
            false => usize::from(entry.file_name().to_string_lossy().ends_with(".session")),
        })
        .sum()
}

fn store(dir: &Path, threshold: usize) -> FileStore {
    FileStore::builder(dir)
        .threshold(threshold)
        .build()
        .unwrap()
}

/// `count` cookieless requests: each creates a session nobody comes back to.
async fn flood(store: &FileStore, count: usize, threshold: usize) {
    for _ in 0..count {
        let created = store
            .create(&unique_key("flood"), &record(&[("csrf", "x")]), LONG)
            .await
            .unwrap();
        assert!(created);
        let files = session_files(store.dir());
        assert!(
            files <= threshold,
            "{files} files, over the threshold of {threshold}"
        );
    }
}

#[tokio::test]
async fn a_session_loaded_once_after_creation_survives_a_flood() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), 20);
    let user = unique_key("user");
    assert!(
        store
            .create(&user, &record(&[("cart", "3")]), LONG)
            .await
            .unwrap()
    );
    assert!(store.load(&user).await.unwrap().is_some());
    flood(&store, 200, 20).await;
    let loaded = store
        .load(&user)
        .await
        .unwrap()
        .expect("the session was evicted");
    assert_eq!(loaded.entries, record(&[("cart", "3")]).entries);
}

/// A login creates the new session, then applies to it.
#[tokio::test]
async fn a_logged_in_session_survives_a_flood() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), 20);
    let user = unique_key("login");
    assert!(
        store
            .create(&user, &record(&[("csrf", "y")]), LONG)
            .await
            .unwrap()
    );
    let login = ChangeSet {
        set: vec![("user".into(), Bytes::from_static(b"\"ann\""))],
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&user, &login, LONG).await.unwrap(),
        Applied::Done
    );
    flood(&store, 200, 20).await;
    let loaded = store
        .load(&user)
        .await
        .unwrap()
        .expect("the login was evicted");
    assert_eq!(loaded.entries["user"], "\"ann\"");
}

#[tokio::test]
async fn a_concurrent_flood_keeps_to_the_threshold_and_evicts_no_session_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), 20);
    let users: Vec<StoreKey> = (0..5).map(|_| unique_key("user")).collect();
    for user in &users {
        assert!(
            store
                .create(user, &record(&[("a", "1")]), LONG)
                .await
                .unwrap()
        );
        assert_eq!(store.touch(user, LONG).await.unwrap(), Applied::Done);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.spawn(async move {
            for _ in 0..50 {
                let key = unique_key("flood");
                assert!(
                    store
                        .create(&key, &record(&[("a", "1")]), LONG)
                        .await
                        .unwrap()
                );
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert!(session_files(store.dir()) <= 20);
    for user in &users {
        assert!(
            store.load(user).await.unwrap().is_some(),
            "a session in use was evicted"
        );
    }
}

#[tokio::test]
async fn a_directory_of_sessions_in_use_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), 5);
    let users: Vec<StoreKey> = (0..5).map(|_| unique_key("user")).collect();
    for user in &users {
        assert!(
            store
                .create(user, &record(&[("a", "1")]), LONG)
                .await
                .unwrap()
        );
        assert!(store.load(user).await.unwrap().is_some());
    }
    for _ in 0..3 {
        let err = store
            .create(&unique_key("new"), &record(&[("a", "1")]), LONG)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Full {
                    setting: "SESSION_FILE_THRESHOLD",
                    limit: 5
                }
            ),
            "{err:?}"
        );
    }
    assert_eq!(session_files(dir.path()), 5);
    for user in &users {
        assert!(store.load(user).await.unwrap().is_some());
    }
    // A logout makes room at once.
    store.delete(&users[0]).await.unwrap();
    assert!(
        store
            .create(&unique_key("new"), &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
}

#[test]
fn a_new_directory_is_private() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("sessions");
    store(&dir, 500);
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn a_directory_anyone_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = FileStore::builder(dir.path())
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("writable by group or others"), "{err}");
    assert!(
        err.contains(&dir.path().display().to_string()),
        "the path is not named: {err}"
    );
}

/// Needs root, to give the directory away (to `nobody`) without losing it:
/// the suite runs as root (as CI does), and fails here, never skips, when
/// it cannot.
#[test]
fn a_directory_owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    const NOBODY: u32 = 65534;
    if let Err(e) = std::os::unix::fs::chown(dir.path(), Some(NOBODY), None) {
        panic!("cannot give the directory away ({e}): run the suite as root to check this");
    }
    let err = FileStore::builder(dir.path())
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("is owned by uid 65534"), "{err}");
    assert!(
        err.contains(&dir.path().display().to_string()),
        "the path is not named: {err}"
    );
}

/// Two stores on one directory, used in turn: what two processes sharing it
/// do. Only the file locks keep them from losing each other's writes.
struct TwoStores {
    stores: [FileStore; 2],
    next: AtomicUsize,
}

impl TwoStores {
    fn pick(&self) -> &FileStore {
        &self.stores[self.next.fetch_add(1, Ordering::Relaxed) % 2]
    }
}

impl SessionStore for TwoStores {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.pick().load(key).await
    }
    async fn create(
        &self,
        key: &StoreKey,
        rec: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.pick().create(key, rec, ttl).await
    }
    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        self.pick().apply(key, changes, ttl).await
    }
    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        self.pick().touch(key, ttl).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.pick().delete(key).await
    }
    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.pick().take(key).await
    }
    async fn scan(&self, prefix: &str, cursor: Option<&str>) -> Result<ScanPage, StoreError> {
        self.pick().scan(prefix, cursor).await
    }
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.pick().purge_expired().await
    }
}

mod two_stores_on_one_directory {
    session_core::store_suite!(async {
        let dir = tempfile::tempdir().expect("a temporary directory").keep();
        let open = || {
            session_core::store::filesystem::FileStore::builder(&dir)
                .build()
                .expect("a file store")
        };
        super::TwoStores {
            stores: [open(), open()],
            next: Default::default(),
        }
    });
}
