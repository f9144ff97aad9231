//! The filesystem store: one file per session.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{Applied, ChangeSet, Record, SessionStore, StoreError};
use crate::StoreKey;
use crate::codec::{decode_entries, encode_entries};

const MAGIC: &[u8; 4] = b"AXS1";
const HEADER: usize = 12;
const SUFFIX: &str = ".session";
const LOCK_STRIPES: u8 = 64;

/// Keeps each session in a file of its own directory, like Flask-Session's
/// `filesystem` type.
///
/// - File names are `hex(sha256(store key))`: no path is ever built from
///   cookie text, whatever the key prefix or id hashing setting.
/// - Writes go to a temporary file that is renamed over the session's file,
///   so a reader never sees half a session.
/// - Changes are applied under an advisory file lock (one of 64 striped
///   locks in `.locks/`), so several workers, or several processes sharing
///   the directory, never lose each other's writes to different keys.
/// - When creating a session would pass the threshold (500 files by
///   default), expired sessions are removed first, then the ones closest to
///   expiring, which are the least recently used, a tenth of the threshold
///   at a time so that a full directory is not scanned on every create.
///
/// Files are written without `fsync`: a session may be lost in a power
/// failure, but never read back half-written.
#[derive(Clone, Debug)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    threshold: usize,
    mode: u32,
    count: AtomicUsize,
    prune: Mutex<()>,
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
    /// The most session files to keep; 0 means no limit. Defaults to 500.
    pub fn threshold(mut self, threshold: usize) -> Self {
        self.threshold = threshold;
        self
    }

    /// The permission bits of session files. Defaults to `0o600`.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Creates the directory if needed and opens the store.
    pub fn build(self) -> io::Result<FileStore> {
        fs::create_dir_all(self.dir.join(".locks"))?;
        let count = session_files(&self.dir)?.count();
        Ok(FileStore {
            inner: Arc::new(Inner {
                dir: self.dir,
                threshold: self.threshold,
                mode: self.mode,
                count: AtomicUsize::new(count),
                prune: Mutex::new(()),
            }),
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
        f: impl FnOnce(&Inner) -> io::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(StoreError::backend)?
            .map_err(StoreError::Io)
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

/// A session file as read: when it expires and, if asked for, what it holds.
struct Stored {
    expires: u64,
    record: Record,
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
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(".locks").join(format!("{stripe:02}")))?;
        file.lock()?;
        Ok(file)
    }

    /// Reads a live session; expired, missing and unreadable files are `None`.
    fn read(&self, name: &str) -> io::Result<Option<Stored>> {
        let mut bytes = Vec::new();
        match File::open(self.dir.join(name)) {
            Ok(mut file) => file.read_to_end(&mut bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let parsed = bytes
            .split_first_chunk::<HEADER>()
            .filter(|(header, _)| header.starts_with(MAGIC))
            .and_then(|(header, body)| {
                let expires = u64::from_le_bytes(header[4..].try_into().ok()?);
                Some(Stored {
                    expires,
                    record: Record::from(decode_entries(body)?),
                })
            });
        match parsed {
            Some(stored) if stored.expires > now_ms() => Ok(Some(stored)),
            Some(_) => Ok(None),
            None => {
                tracing::warn!(file = name, "ignoring an unreadable session file");
                Ok(None)
            }
        }
    }

    fn write(&self, name: &str, record: &Record, expires: u64) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(HEADER + 64);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&expires.to_le_bytes());
        encode_entries(&record.entries, &mut bytes);
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(io::Error::other)?;
        let tmp = self.dir.join(format!(".tmp-{}", hex::encode(suffix)));
        let result = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(self.mode)
            .open(&tmp)
            .and_then(|mut file| file.write_all(&bytes))
            .and_then(|()| fs::rename(&tmp, self.dir.join(name)));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Removes a file that is there; true if it was.
    fn remove(&self, name: &str) -> io::Result<bool> {
        match fs::remove_file(self.dir.join(name)) {
            Ok(()) => {
                self.count.fetch_sub(1, Ordering::Relaxed);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes room for one more file: expired files go first, then the ones
    /// that expire soonest.
    fn prune(&self) -> io::Result<()> {
        let _one_pruner = self.prune.lock().unwrap_or_else(|p| p.into_inner());
        if self.count.load(Ordering::Relaxed) < self.threshold {
            return Ok(());
        }
        let now = now_ms();
        let mut files: Vec<(u64, String)> = session_files(&self.dir)?
            .filter_map(|entry| {
                let mut header = [0u8; HEADER];
                File::open(entry.path())
                    .and_then(|mut f| f.read_exact(&mut header))
                    .ok()?;
                let expires = u64::from_le_bytes(header[4..].try_into().ok()?);
                Some((expires, entry.file_name().into_string().ok()?))
            })
            .collect();
        self.count.store(files.len(), Ordering::Relaxed);
        files.sort_unstable();
        // Evict a tenth of the threshold at once (at least the one file
        // needed), so the directory is scanned once per that many creates,
        // not on every create once it is full.
        let keep = self.threshold - (self.threshold / 10).max(1);
        let excess = files.len().saturating_sub(keep);
        for (i, (expires, name)) in files.iter().enumerate() {
            if i >= excess && *expires > now {
                break;
            }
            let _guard = self.lock(name)?;
            self.remove(name)?;
        }
        Ok(())
    }
}

impl SessionStore for FileStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let name = Inner::file_name(key);
        // Renames are atomic, so reading needs no lock.
        self.run(move |inner| {
            Ok(inner.read(&name)?.map(|s| Record {
                expires_at: Some(UNIX_EPOCH + Duration::from_millis(s.expires)),
                ..s.record
            }))
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
        let record = record.clone();
        self.run(move |inner| {
            if inner.threshold > 0 && inner.count.load(Ordering::Relaxed) >= inner.threshold {
                inner.prune()?;
            }
            let _guard = inner.lock(&name)?;
            if inner.read(&name)?.is_some() {
                return Ok(false);
            }
            let existed = inner.dir.join(&name).exists();
            inner.write(&name, &record, expiry_ms(ttl))?;
            if !existed {
                inner.count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(true)
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
        let changes = changes.clone();
        self.run(move |inner| {
            let _guard = inner.lock(&name)?;
            let Some(mut stored) = inner.read(&name)? else {
                return Ok(Applied::Gone);
            };
            changes.apply_to(&mut stored.record.entries);
            if stored.record.entries.is_empty() {
                inner.remove(&name)?;
                return Ok(Applied::Deleted);
            }
            inner.write(&name, &stored.record, expiry_ms(ttl))?;
            Ok(Applied::Done)
        })
        .await
    }

    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<Applied, StoreError> {
        let name = Inner::file_name(key);
        self.run(move |inner| {
            let _guard = inner.lock(&name)?;
            let Some(stored) = inner.read(&name)? else {
                return Ok(Applied::Gone);
            };
            inner.write(&name, &stored.record, expiry_ms(ttl))?;
            Ok(Applied::Done)
        })
        .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let name = Inner::file_name(key);
        self.run(move |inner| {
            let _guard = inner.lock(&name)?;
            inner.remove(&name).map(drop)
        })
        .await
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let name = Inner::file_name(key);
        self.run(move |inner| {
            let _guard = inner.lock(&name)?;
            let stored = inner.read(&name)?;
            inner.remove(&name)?;
            Ok(stored.map(|s| s.record))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use bytes::Bytes;

    use super::*;

    fn record(pairs: &[(&str, &str)]) -> Record {
        Record::from(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v.as_bytes())))
                .collect::<std::collections::HashMap<_, _>>(),
        )
    }

    #[tokio::test]
    async fn files_are_named_by_hash_with_the_configured_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::builder(dir.path()).mode(0o640).build().unwrap();
        let key = StoreKey::from_raw("../../etc/passwd");
        assert!(
            store
                .create(&key, &record(&[("a", "1")]), Duration::from_secs(60))
                .await
                .unwrap()
        );
        let files: Vec<_> = session_files(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        let name = files[0].file_name().into_string().unwrap();
        assert_eq!(name.len(), 64 + SUFFIX.len());
        assert!(name.bytes().take(64).all(|b| b.is_ascii_hexdigit()));
        let mode = files[0].metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[tokio::test]
    async fn threshold_evicts_expired_then_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::builder(dir.path()).threshold(3).build().unwrap();
        let rec = record(&[("k", "v")]);
        let key = |i: u32| StoreKey::from_raw(format!("s{i}"));
        // s0 expires at once; s1 sooner than s2.
        assert!(store.create(&key(0), &rec, Duration::ZERO).await.unwrap());
        assert!(
            store
                .create(&key(1), &rec, Duration::from_secs(100))
                .await
                .unwrap()
        );
        assert!(
            store
                .create(&key(2), &rec, Duration::from_secs(200))
                .await
                .unwrap()
        );
        assert!(
            store
                .create(&key(3), &rec, Duration::from_secs(300))
                .await
                .unwrap()
        );
        assert_eq!(session_files(dir.path()).unwrap().count(), 3);
        assert!(
            store.load(&key(1)).await.unwrap().is_some(),
            "the expired one went first"
        );
        assert!(
            store
                .create(&key(4), &rec, Duration::from_secs(400))
                .await
                .unwrap()
        );
        assert_eq!(session_files(dir.path()).unwrap().count(), 3);
        assert!(
            store.load(&key(1)).await.unwrap().is_none(),
            "then the oldest"
        );
        for i in 2..=4 {
            assert!(store.load(&key(i)).await.unwrap().is_some());
        }
    }

    #[tokio::test]
    async fn a_full_directory_is_pruned_by_a_tenth_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::builder(dir.path())
            .threshold(20)
            .build()
            .unwrap();
        let rec = record(&[("k", "v")]);
        for i in 0..20u64 {
            let key = StoreKey::from_raw(format!("s{i}"));
            let ttl = Duration::from_secs(100 + i);
            assert!(store.create(&key, &rec, ttl).await.unwrap());
        }
        assert_eq!(session_files(dir.path()).unwrap().count(), 20);
        let key = StoreKey::from_raw("new");
        assert!(
            store
                .create(&key, &rec, Duration::from_secs(999))
                .await
                .unwrap()
        );
        // Two (a tenth of 20) went, the two oldest: room for the next creates.
        assert_eq!(session_files(dir.path()).unwrap().count(), 19);
        for i in 0..2 {
            let gone = StoreKey::from_raw(format!("s{i}"));
            assert!(store.load(&gone).await.unwrap().is_none());
        }
        assert!(
            store
                .load(&StoreKey::from_raw("s2"))
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn unreadable_files_are_missing_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::builder(dir.path()).build().unwrap();
        let key = StoreKey::from_raw("k");
        fs::write(dir.path().join(Inner::file_name(&key)), b"garbage").unwrap();
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

    #[tokio::test]
    async fn the_count_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::builder(dir.path()).build().unwrap();
        store
            .create(
                &StoreKey::from_raw("a"),
                &record(&[("a", "1")]),
                Duration::from_secs(9),
            )
            .await
            .unwrap();
        let reopened = FileStore::builder(dir.path()).build().unwrap();
        assert_eq!(reopened.inner.count.load(Ordering::Relaxed), 1);
    }
}
