//! The filesystem store: one file per session.

mod dir;
mod evict;
mod format;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use self::dir::{LOCKS, PROBATION, TMP_PREFIX, is_symlink_error, no_follow};
use self::format::Stored;
use crate::StoreKey;
use crate::store::{Applied, ChangeSet, Record, ScanPage, SessionStore, StoreError};

const SUFFIX: &str = ".session";
const LOCK_STRIPES: u8 = 64;

/// Keeps each session in a file of its own directory, like Flask-Session's
/// `filesystem` type.
///
/// - File names are `hex(sha256(store key))`: no path is ever built from
///   cookie text, whatever the key prefix or id hashing setting.
/// - The directory must be private: [`build`](FileStoreBuilder::build)
///   creates it with mode `0700` and refuses one that is writable by group
///   or others or owned by another user. Session files are never opened
///   through a symbolic link.
/// - Writes go to a temporary file that is renamed over the session's file,
///   so a reader never sees half a session.
/// - Changes are applied under an advisory file lock (one of 64 striped
///   locks in `.locks/`), so several workers, or several processes sharing
///   the directory, never lose each other's writes to different keys.
///
/// # The threshold, and who is evicted
///
/// A new session starts on probation, in the `new/` subdirectory; the first
/// [`load`](SessionStore::load), [`apply`](SessionStore::apply) or
/// [`touch`](SessionStore::touch) after its creation moves it (one rename)
/// into the main directory: it is in use. When creating a session would
/// pass the threshold (500 files by default), expired files are removed,
/// then sessions on probation, oldest created first, a tenth of the
/// threshold at a time so that a full directory is not scanned on every
/// create. A session in use is never evicted to make room: when nothing can
/// go, `create` fails with [`StoreError::Full`], and the directory is not
/// scanned again for a second (or until a session expires, if sooner). A
/// flood of cookieless requests thus only ever evicts sessions nobody came
/// back to, never a logged-in user.
///
/// Expired files are also swept every five minutes (by the first `create`
/// after that), whatever the threshold, even with none (0). The count of
/// files is kept per process between scans: several processes sharing the
/// directory may together pass the threshold by what each created since its
/// last scan.
///
/// Files are written without `fsync`: a session may be lost in a power
/// failure, but never read back half-written.
#[derive(Clone, Debug)]
pub struct FileStore {
    inner: Arc<Inner>,
    /// Bounds the writes of this process that run at once (see
    /// [`WRITERS`]).
    writers: Arc<tokio::sync::Semaphore>,
}

/// The most writes of one store that run at once. Every write takes the
/// directory's lock in the kernel (a create and a rename change the
/// directory): more writers in parallel only queue there, each on a thread
/// of its own, and the thread switches cost more than the writes. Reads
/// are not bounded.
const WRITERS: usize = 2;

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    probation: PathBuf,
    threshold: usize,
    mode: u32,
    /// Session files in both directories, as of the last scan plus this
    /// process's changes since.
    count: AtomicUsize,
    /// Creates hold it shared; a scan that recounts holds it exclusive.
    gate: RwLock<()>,
    /// One scan at a time in this process.
    scanning: Mutex<()>,
    /// Until when (ms) a full directory is not scanned again.
    retry_at: AtomicU64,
    /// When (ms) the next sweep of expired files is due.
    next_sweep: AtomicU64,
}

/// Configures a [`FileStore`].
#[derive(Debug)]
#[must_use]
pub struct FileStoreBuilder {
    dir: PathBuf,
    threshold: usize,
    mode: u32,
}

impl FileStoreBuilder {
    /// The most session files to keep: past it, sessions nobody came back
    /// to are evicted, and when every session is in use a new one is
    /// refused ([`StoreError::Full`]); see [`FileStore`]. 0 means no limit.
    /// Defaults to 500.
    pub fn threshold(mut self, threshold: usize) -> Self {
        self.threshold = threshold;
        self
    }

    /// The permission bits of session files. Defaults to `0o600`.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Creates the directory if needed (mode `0700`) and opens the store.
    ///
    /// Fails, with a message that names the directory and the problem, when
    /// the directory is writable by group or others or is not owned by the
    /// user this process creates files as: another user could then plant
    /// or swap sessions.
    ///
    /// # Errors
    ///
    /// The [`io::Error`] of creating or checking the directory, or one of
    /// kind [`io::ErrorKind::PermissionDenied`] for the ownership and mode
    /// checks above.
    pub fn build(self) -> io::Result<FileStore> {
        dir::prepare(&self.dir)?;
        let probation = self.dir.join(PROBATION);
        let count = session_files(&self.dir)?.count() + session_files(&probation)?.count();
        Ok(FileStore {
            inner: Arc::new(Inner {
                dir: self.dir,
                probation,
                threshold: self.threshold,
                mode: self.mode,
                count: AtomicUsize::new(count),
                gate: RwLock::new(()),
                scanning: Mutex::new(()),
                retry_at: AtomicU64::new(0),
                // The first create sweeps what expired while no process ran.
                next_sweep: AtomicU64::new(0),
            }),
            writers: Arc::new(tokio::sync::Semaphore::new(WRITERS)),
        })
    }
}

impl FileStore {
    /// Starts configuring a store that keeps its files in `dir`.
    pub fn builder(dir: impl Into<PathBuf>) -> FileStoreBuilder {
        FileStoreBuilder {
            dir: dir.into(),
            threshold: 500,
            mode: 0o600,
        }
    }

    /// The directory the sessions are kept in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(StoreError::backend)?
    }

    /// As [`run`](Self::run), for a write: at most [`WRITERS`] at once.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _turn = self.writers.acquire().await.map_err(StoreError::backend)?;
        self.run(f).await
    }
}

fn session_files(dir: &Path) -> io::Result<impl Iterator<Item = fs::DirEntry>> {
    Ok(fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(SUFFIX))))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn expiry_ms(ttl: Duration) -> u64 {
    now_ms().saturating_add(ttl.as_millis() as u64)
}

/// What is at a session's file name.
enum Slot {
    /// No file.
    Empty,
    /// A file, but no live session: expired, unreadable or a planted link.
    Dead,
    /// A live session.
    Live(Stored),
}

impl Inner {
    fn file_name(key: &StoreKey) -> String {
        let mut name = hex::encode(Sha256::digest(key.as_str().as_bytes()));
        name.push_str(SUFFIX);
        name
    }

    /// Locks the stripe that `name` belongs to until the returned file drops.
    fn lock(&self, name: &str) -> io::Result<File> {
        let stripe = u8::from_str_radix(&name[..2], 16).unwrap_or(0) % LOCK_STRIPES;
        let file = no_follow()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(LOCKS).join(format!("{stripe:02}")))?;
        file.lock()?;
        Ok(file)
    }

    fn read(&self, path: &Path) -> io::Result<Slot> {
        let mut bytes = Vec::new();
        match no_follow().read(true).open(path) {
            Ok(mut file) => file.read_to_end(&mut bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Slot::Empty),
            Err(e) if is_symlink_error(&e) => {
                let file = path.display();
                tracing::warn!(%file, "ignoring a symbolic link in the session directory");
                return Ok(Slot::Dead);
            }
            Err(e) => return Err(e),
        };
        Ok(match format::decode(&bytes) {
            Some(stored) if stored.expires > now_ms() => Slot::Live(stored),
            Some(_) => Slot::Dead,
            None => {
                let file = path.display();
                tracing::warn!(%file, "ignoring an unreadable session file");
                Slot::Dead
            }
        })
    }

    /// Writes a whole file and renames it to `dest`: a link there is
    /// replaced, never written through. A `created` file gets its
    /// modification time from the clock at full precision, which is what
    /// eviction orders sessions on probation by: the kernel's own stamp
    /// moves only with its tick, too coarse to tell close creates apart.
    fn write(
        &self,
        dest: &Path,
        key: &StoreKey,
        record: &Record,
        expires: u64,
        created: bool,
    ) -> io::Result<()> {
        let bytes = format::encode(key.as_str(), record, expires);
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(io::Error::other)?;
        let tmp = self
            .dir
            .join(format!("{TMP_PREFIX}{}", hex::encode(suffix)));
        let result = no_follow()
            .write(true)
            .create_new(true)
            .mode(self.mode)
            .open(&tmp)
            .and_then(|mut file| {
                file.write_all(&bytes)?;
                if created {
                    file.set_modified(SystemTime::now())?;
                }
                Ok(())
            })
            .and_then(|()| fs::rename(&tmp, dest));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Removes a file that is there; true if it was.
    fn remove(&self, path: &Path) -> io::Result<bool> {
        match fs::remove_file(path) {
            Ok(()) => {
                self.uncount(1);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn uncount(&self, n: usize) {
        let _ = self
            .count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(n))
            });
    }

    /// The live session named `name`, moved out of probation if it was on
    /// it: it has been seen since its creation. Call under its lock.
    fn locate(&self, name: &str) -> io::Result<Option<Stored>> {
        let main = self.dir.join(name);
        let in_main = self.read(&main)?;
        if let Slot::Live(stored) = in_main {
            return Ok(Some(stored));
        }
        let new = self.probation.join(name);
        let Slot::Live(stored) = self.read(&new)? else {
            return Ok(None);
        };
        fs::rename(&new, &main)?;
        if matches!(in_main, Slot::Dead) {
            // The rename replaced it.
            self.uncount(1);
        }
        Ok(Some(stored))
    }

    /// Writes a new session on probation, unless a live one has the name.
    /// Call under its lock.
    fn create(
        &self,
        name: &str,
        key: &StoreKey,
        record: &Record,
        expires: u64,
    ) -> io::Result<Created> {
        let main = self.dir.join(name);
        let in_main = self.read(&main)?;
        if matches!(in_main, Slot::Live(_)) {
            return Ok(Created::Taken);
        }
        let new = self.probation.join(name);
        let in_new = self.read(&new)?;
        if matches!(in_new, Slot::Live(_)) {
            return Ok(Created::Taken);
        }
        if matches!(in_main, Slot::Dead) {
            // Expired or unreadable: it holds nothing and counts against the threshold.
            self.remove(&main)?;
        }
        self.write(&new, key, record, expires, true)?;
        Ok(match in_new {
            Slot::Empty => Created::Added,
            _ => Created::Replaced,
        })
    }
}

/// What [`Inner::create`] did.
#[derive(PartialEq)]
enum Created {
    /// A live session has the name: nothing was written.
    Taken,
    /// Written over a dead file: the number of files is unchanged.
    Replaced,
    /// Written as one more file.
    Added,
}

fn loaded(stored: Stored) -> Record {
    Record {
        expires_at: Some(UNIX_EPOCH + Duration::from_millis(stored.expires)),
        ..stored.record
    }
}

impl SessionStore for FileStore {
    const KIND: &'static str = "filesystem";

    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let name = Inner::file_name(key);
        self.run(move |inner| {
            // Sessions in use are read without a lock: renames are atomic.
            if let Slot::Live(stored) = inner.read(&inner.dir.join(&name))? {
                return Ok(Some(loaded(stored)));
            }
            // On probation (or missing): promoting it needs the lock, and
            // under it no promotion can slip between the two reads.
            let _guard = inner.lock(&name)?;
            Ok(inner.locate(&name)?.map(loaded))
        })
        .await
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &Record,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let name = Inner::file_name(key);
        let (key, record) = (key.clone(), record.clone());
        self.write(move |inner| {
            inner.sweep_if_due()?;
            inner.admit(|| {
                let _guard = inner.lock(&name)?;
                let created = inner.create(&name, &key, &record, expiry_ms(ttl))?;
                Ok((created != Created::Taken, created == Created::Added))
            })
        })
        .await
    }

    async fn apply(
        &self,
        key: &StoreKey,
        changes: &ChangeSet,
        ttl: Duration,
    ) -> Result<Applied, StoreError> {
        let name = Inner::file_name(key);
        let (key, changes) = (key.clone(), changes.clone());
        self.write(move |inner| {
            let _guard = inner.lock(&name)?;
            let Some(mut stored) = inner.locate(&name)? else {
                return Ok(Applied::Gone);
            };
            if let Some(size) = changes.too_large(&stored.record.entries) {
                return Ok(Applied::TooLarge { size });
            }
            changes.apply_to(&mut stored.record.entries);
            let path = inner.dir.join(&name);
            if stored.record.entries.is_empty() {
                inner.remove(&path)?;
                return Ok(Applied::Deleted);
            }
            inner.write(&path, &key, &stored.record, expiry_ms(ttl), false)?;
            Ok(Applied::Done)
        })
        .await
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        let name = Inner::file_name(key);
        let key = key.clone();
        self.write(move |inner| {
            let _guard = inner.lock(&name)?;
            let Some(stored) = inner.locate(&name)? else {
                return Ok(Applied::Gone);
            };
            inner.write(
                &inner.dir.join(&name),
                &key,
                &stored.record,
                expiry_ms(ttl),
                false,
            )?;
            Ok(Applied::Done)
        })
        .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let name = Inner::file_name(key);
        self.write(move |inner| {
            let _guard = inner.lock(&name)?;
            inner.remove(&inner.dir.join(&name))?;
            inner.remove(&inner.probation.join(&name))?;
            Ok(())
        })
        .await
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let name = Inner::file_name(key);
        self.write(move |inner| {
            let _guard = inner.lock(&name)?;
            let (main, new) = (inner.dir.join(&name), inner.probation.join(&name));
            let stored = match inner.read(&main)? {
                Slot::Live(stored) => Some(stored),
                _ => match inner.read(&new)? {
                    Slot::Live(stored) => Some(stored),
                    _ => None,
                },
            };
            inner.remove(&main)?;
            inner.remove(&new)?;
            Ok(stored.map(|s| s.record))
        })
        .await
    }

    /// One page: every live session file of both directories whose key
    /// (kept in the file) starts with `prefix`.
    async fn scan(&self, prefix: &str, _cursor: Option<&str>) -> Result<ScanPage, StoreError> {
        let prefix = prefix.to_owned();
        self.run(move |inner| {
            let mut keys = std::collections::BTreeSet::new();
            for dir in [&inner.dir, &inner.probation] {
                for entry in session_files(dir)? {
                    let name = entry.file_name();
                    let Some(name) = name.to_str() else { continue };
                    let Slot::Live(stored) = inner.read(&entry.path())? else {
                        continue;
                    };
                    // A file is listed under the key it names only: one
                    // copied over another's name is not.
                    let key = stored.key;
                    if key.starts_with(&prefix)
                        && Inner::file_name(&StoreKey::from_raw(key.as_str())) == name
                    {
                        keys.insert(key);
                    }
                }
            }
            Ok(ScanPage {
                keys: keys.into_iter().map(StoreKey::from_raw).collect(),
                next: None,
            })
        })
        .await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.write(|inner| Ok(inner.purge()? as u64)).await
    }
}

#[cfg(test)]
mod tests {
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
            !is_link(&main_path(&store, &in_main))
                && !is_link(&probation_path(&store, &on_probation))
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
}
