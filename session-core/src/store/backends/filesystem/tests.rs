//! The filesystem store's unit tests: layout, format and links.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

use bytes::Bytes;

use super::*;

const LONG: Duration = Duration::from_secs(600);

fn record(pairs: &[(&str, &str)]) -> Record {
    Record::from(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v.as_bytes())))
            .collect::<HashMap<_, _>>(),
    )
}

fn main_path(store: &FileStore, key: &StoreKey) -> PathBuf {
    store.dir().join(Inner::file_name(key))
}

fn probation_path(store: &FileStore, key: &StoreKey) -> PathBuf {
    store.dir().join(PROBATION).join(Inner::file_name(key))
}

#[tokio::test]
async fn files_are_named_by_hash_with_the_configured_mode() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).mode(0o640).build().unwrap();
    let key = StoreKey::from_raw("../../etc/passwd");
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    let files: Vec<_> = session_files(&dir.path().join(PROBATION))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().into_string().unwrap();
    assert_eq!(name.len(), 64 + SUFFIX.len());
    assert!(name.bytes().take(64).all(|b| b.is_ascii_hexdigit()));
    let mode = files[0].metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[tokio::test]
async fn a_session_seen_after_its_creation_leaves_probation() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).build().unwrap();
    let rec = record(&[("a", "1")]);
    let (loaded, applied, touched) = (
        StoreKey::from_raw("loaded"),
        StoreKey::from_raw("applied"),
        StoreKey::from_raw("touched"),
    );
    for key in [&loaded, &applied, &touched] {
        assert!(store.create(key, &rec, LONG).await.unwrap());
        assert!(probation_path(&store, key).exists());
        assert!(!main_path(&store, key).exists());
    }
    assert!(store.load(&loaded).await.unwrap().is_some());
    let set = ChangeSet {
        set: vec![("b".into(), Bytes::from_static(b"2"))],
        ..ChangeSet::default()
    };
    assert_eq!(
        store.apply(&applied, &set, LONG).await.unwrap(),
        Applied::Done
    );
    assert_eq!(store.touch(&touched, LONG).await.unwrap(), Applied::Done);
    for key in [&loaded, &applied, &touched] {
        assert!(
            !probation_path(&store, key).exists(),
            "{key:?} stayed on probation"
        );
        assert!(main_path(&store, key).exists());
    }
    assert_eq!(
        store.load(&applied).await.unwrap().unwrap().entries.len(),
        2
    );
}

#[tokio::test]
async fn unreadable_files_are_missing_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).build().unwrap();
    let key = StoreKey::from_raw("k");
    fs::write(main_path(&store, &key), b"garbage").unwrap();
    assert_eq!(store.load(&key).await.unwrap(), None);
    assert!(
        store
            .create(&key, &record(&[("a", "1")]), Duration::from_secs(9))
            .await
            .unwrap()
    );
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.entries, record(&[("a", "1")]).entries);
    assert!(loaded.expires_at.unwrap() > SystemTime::now() + Duration::from_secs(8));
}

/// A link planted at a session's file name, pointing at a valid session
/// file elsewhere: following it would hand out (or overwrite) a session
/// someone else chose.
#[tokio::test]
async fn a_planted_symlink_is_neither_read_nor_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).build().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("planted.session");
    let planted = format::encode(
        "planted",
        &record(&[("user", "\"admin\"")]),
        now_ms() + 60_000,
    );
    fs::write(&target, &planted).unwrap();
    let link = |path: &Path| std::os::unix::fs::symlink(&target, path).unwrap();
    let is_link =
        |path: &Path| fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());

    // In the main directory, and on probation.
    let (in_main, on_probation) = (StoreKey::from_raw("main"), StoreKey::from_raw("new"));
    link(&main_path(&store, &in_main));
    link(&probation_path(&store, &on_probation));
    for key in [&in_main, &on_probation] {
        assert_eq!(store.load(key).await.unwrap(), None, "the link was read");
        assert_eq!(store.touch(key, LONG).await.unwrap(), Applied::Gone);
        assert!(
            store
                .create(key, &record(&[("a", "1")]), LONG)
                .await
                .unwrap()
        );
        assert_eq!(store.load(key).await.unwrap().unwrap().entries.len(), 1);
    }
    assert!(
        !is_link(&main_path(&store, &in_main)) && !is_link(&probation_path(&store, &on_probation))
    );

    // Swapped in for a live session: the session is gone, not replaced.
    let live = StoreKey::from_raw("live");
    assert!(
        store
            .create(&live, &record(&[("a", "1")]), LONG)
            .await
            .unwrap()
    );
    assert!(store.load(&live).await.unwrap().is_some());
    fs::remove_file(main_path(&store, &live)).unwrap();
    link(&main_path(&store, &live));
    assert_eq!(store.load(&live).await.unwrap(), None);
    let set = ChangeSet {
        set: vec![("b".into(), Bytes::from_static(b"2"))],
        ..ChangeSet::default()
    };
    assert_eq!(store.apply(&live, &set, LONG).await.unwrap(), Applied::Gone);
    assert_eq!(store.take(&live).await.unwrap(), None);

    assert_eq!(
        fs::read(&target).unwrap(),
        planted,
        "written through a link"
    );
}

#[tokio::test]
async fn the_count_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).build().unwrap();
    let rec = record(&[("a", "1")]);
    store
        .create(&StoreKey::from_raw("a"), &rec, LONG)
        .await
        .unwrap();
    store
        .create(&StoreKey::from_raw("b"), &rec, LONG)
        .await
        .unwrap();
    store.load(&StoreKey::from_raw("b")).await.unwrap();
    let reopened = FileStore::builder(dir.path()).build().unwrap();
    assert_eq!(reopened.inner.count.load(Ordering::Relaxed), 2);
}

/// A file the store cannot open for a reason other than its absence (a
/// socket in its place: `open` fails with `ENXIO`) is an I/O error the
/// outage policy answers, not a missing or dead session.
#[tokio::test]
async fn a_session_file_that_cannot_be_opened_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).build().unwrap();
    let key = StoreKey::from_raw("socket");
    let _socket = std::os::unix::net::UnixListener::bind(main_path(&store, &key)).unwrap();
    match store.load(&key).await {
        Err(StoreError::Io(e)) => assert_ne!(e.kind(), io::ErrorKind::NotFound, "{e}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

/// A session path that cannot be removed for a reason other than its
/// absence (a directory in its place) is an error, not "already gone".
#[tokio::test]
async fn a_session_file_that_cannot_be_removed_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path()).build().unwrap();
    let key = StoreKey::from_raw("a directory");
    fs::create_dir(main_path(&store, &key)).unwrap();
    assert!(
        matches!(store.delete(&key).await, Err(StoreError::Io(_))),
        "a directory in a session's place was taken for a missing session"
    );
    // Missing files are not an error.
    store
        .delete(&StoreKey::from_raw("never stored"))
        .await
        .unwrap();
}
