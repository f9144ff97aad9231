//! Keeping the directory within its threshold: sweeping expired files and
//! evicting sessions on probation, never sessions in use.

use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::dir::{TMP_PREFIX, no_follow};
use super::format::{EXPIRY_HEADER, expiry};
use super::{Inner, SUFFIX, now_ms};
use crate::store::StoreError;

/// How often expired files are swept when nothing else scans the
/// directory: the sweep reads the header of every file, so it runs seldom.
const SWEEP_EVERY: Duration = Duration::from_secs(300);
/// How long a full directory (every session in use) is not scanned again.
const FULL_RETRY: Duration = Duration::from_secs(1);
/// A temporary file this old was left by a crash: a write takes far less.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// What a scan found, once expired files are gone.
struct Scan {
    /// Session files left in both directories.
    total: usize,
    /// Expired session files removed.
    removed: usize,
    /// Sessions on probation, with when their file was written.
    probation: Vec<(SystemTime, String)>,
    /// When the first session in use expires (ms).
    first_expiry: u64,
}

impl Inner {
    /// Runs `create` with room for one more file, first making room if the
    /// directory is full; [`StoreError::Full`] if none can be made.
    /// `create` says whether it added a file; if not, the room is given back.
    ///
    /// Creates run under the shared side of `gate` and scans that recount
    /// under its exclusive side, so a recount never misses a file being
    /// written: the count stays exact for this process.
    pub(super) fn admit<T>(
        &self,
        create: impl FnOnce() -> io::Result<(T, bool)>,
    ) -> Result<T, StoreError> {
        let _creating = loop {
            let creating = self.gate.read().unwrap_or_else(|p| p.into_inner());
            if self.try_reserve() {
                break creating;
            }
            drop(creating);
            if !self.make_room()? {
                return Err(StoreError::Full {
                    setting: "SESSION_FILE_THRESHOLD",
                    limit: self.threshold,
                });
            }
        };
        let result = create();
        if !matches!(result, Ok((_, true))) {
            self.uncount(1);
        }
        Ok(result?.0)
    }

    /// Counts one more file if the threshold allows it.
    fn try_reserve(&self) -> bool {
        self.count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
                (self.threshold == 0 || count < self.threshold).then_some(count + 1)
            })
            .is_ok()
    }

    /// Sweeps expired files if the last sweep is [`SWEEP_EVERY`] old: the
    /// only clean-up a store without a threshold gets.
    pub(super) fn sweep_if_due(&self) -> io::Result<()> {
        let now = now_ms();
        let due = self.next_sweep.load(Ordering::Relaxed);
        let next = now + SWEEP_EVERY.as_millis() as u64;
        if now < due
            || self
                .next_sweep
                .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        self.purge().map(drop)
    }

    /// Removes every expired session file now; returns how many.
    pub(super) fn purge(&self) -> io::Result<usize> {
        let _one = self.scanning();
        let scan = self.scan(now_ms())?;
        // Creates run meanwhile, so the scan's total may be stale: only
        // what it removed is taken off the count.
        self.uncount(scan.removed);
        Ok(scan.removed)
    }

    /// Brings a full directory down to nine tenths of the threshold (at
    /// least one file below it), removing expired files, then sessions on
    /// probation, oldest created first. False if it stays full: every
    /// session left is in use.
    fn make_room(&self) -> io::Result<bool> {
        let _no_creates = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let _one = self.scanning();
        if self.count.load(Ordering::Relaxed) < self.threshold {
            return Ok(true); // another thread made room meanwhile
        }
        let now = now_ms();
        if now < self.retry_at.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let mut scan = self.scan(now)?;
        let keep = self.threshold - (self.threshold / 10).max(1);
        scan.probation.sort_unstable();
        for (_, name) in &scan.probation {
            if scan.total <= keep {
                break;
            }
            let _guard = self.lock(name)?;
            // Gone already: promoted or deleted since the scan.
            if remove_if_there(&self.probation.join(name))? {
                scan.total -= 1;
            }
        }
        // A delete that ran during the scan may be counted twice here: the
        // count errs towards full, never past the threshold.
        self.count.store(scan.total, Ordering::Relaxed);
        self.next_sweep
            .store(now + SWEEP_EVERY.as_millis() as u64, Ordering::Relaxed);
        if scan.total < self.threshold {
            return Ok(true);
        }
        let retry = now + FULL_RETRY.as_millis() as u64;
        self.retry_at
            .store(retry.min(scan.first_expiry), Ordering::Relaxed);
        Ok(false)
    }

    fn scanning(&self) -> MutexGuard<'_, ()> {
        self.scanning.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists both directories, removing expired session files and stale
    /// temporary files on the way. Files that are not a session of a
    /// format this version knows are counted but left alone.
    fn scan(&self, now: u64) -> io::Result<Scan> {
        let mut scan = Scan {
            total: 0,
            removed: 0,
            probation: Vec::new(),
            first_expiry: u64::MAX,
        };
        for (dir, on_probation) in [(&self.dir, false), (&self.probation, true)] {
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let path = entry.path();
                if name.starts_with(TMP_PREFIX) {
                    let stale = entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_TMP));
                    if stale {
                        remove_if_there(&path)?;
                    }
                    continue;
                }
                if !name.ends_with(SUFFIX) {
                    continue;
                }
                match peek(&path)? {
                    Peek::Gone => continue,
                    Peek::Unknown => {}
                    Peek::Session { expires, .. } if expires <= now => {
                        let _guard = self.lock(&name)?;
                        // Rewritten since (a create over it, a touch)?
                        let still =
                            matches!(peek(&path)?, Peek::Session { expires, .. } if expires <= now);
                        if still && remove_if_there(&path)? {
                            scan.removed += 1;
                            continue;
                        }
                    }
                    Peek::Session { expires, written } => {
                        if on_probation {
                            scan.probation.push((written, name));
                        } else {
                            scan.first_expiry = scan.first_expiry.min(expires);
                        }
                    }
                }
                scan.total += 1;
            }
        }
        Ok(scan)
    }
}

/// A file's header, as a scan needs it.
enum Peek {
    /// Removed since it was listed.
    Gone,
    /// Not a session file of a known format, or a link.
    Unknown,
    /// A session file: when it expires (ms) and when it was written.
    Session { expires: u64, written: SystemTime },
}

fn peek(path: &Path) -> io::Result<Peek> {
    let mut file = match no_follow().read(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Peek::Gone),
        Err(_) => return Ok(Peek::Unknown),
    };
    let mut header = [0u8; EXPIRY_HEADER];
    if file.read_exact(&mut header).is_err() {
        return Ok(Peek::Unknown);
    }
    Ok(match expiry(&header) {
        Some(expires) => Peek::Session {
            expires,
            written: file.metadata()?.modified()?,
        },
        None => Peek::Unknown,
    })
}

/// Removes a file that is there, without counting it; true if it was.
fn remove_if_there(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bytes::Bytes;

    use super::*;
    use crate::StoreKey;
    use crate::store::filesystem::FileStore;
    use crate::store::{Applied, Record, SessionStore};

    const LONG: Duration = Duration::from_secs(3600);

    fn rec() -> Record {
        Record::from(HashMap::from([("k".to_owned(), Bytes::from_static(b"v"))]))
    }

    fn key(name: &str) -> StoreKey {
        StoreKey::from_raw(name)
    }

    /// Session files in both directories.
    fn files(store: &FileStore) -> usize {
        let count = |dir: &Path| super::super::session_files(dir).unwrap().count();
        count(store.dir()) + count(&store.dir().join(super::super::PROBATION))
    }

    #[tokio::test]
    async fn expired_files_go_first_then_the_oldest_created() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::builder(dir.path()).threshold(3).build().unwrap();
        assert!(
            store
                .create(&key("expired"), &rec(), Duration::ZERO)
                .await
                .unwrap()
        );
        // Created first, expiring last: age decides, not expiry.
        assert!(store.create(&key("s1"), &rec(), LONG * 2).await.unwrap());
        assert!(store.create(&key("s2"), &rec(), LONG).await.unwrap());
        assert!(store.create(&key("s3"), &rec(), LONG).await.unwrap());
        assert_eq!(files(&store), 3, "the expired one made room");
        assert!(store.create(&key("s4"), &rec(), LONG).await.unwrap());
        assert_eq!(files(&store), 3);
        assert_eq!(
            store.load(&key("s1")).await.unwrap(),
            None,
            "the oldest went"
        );
        for name in ["s2", "s3", "s4"] {
            assert!(store.load(&key(name)).await.unwrap().is_some(), "{name}");
        }
        // Making room was a sweep: the next periodic one is a period away.
        let next = store.inner.next_sweep.load(Ordering::Relaxed);
        let (now, period) = (now_ms(), SWEEP_EVERY.as_millis() as u64);
        assert!(
            next > now && next <= now + period,
            "next sweep at {next}, now {now}, every {period} ms"
        );
    }

    /// A login leaves a short-lived note at the old id; evicting by expiry
    /// would drop it first and let a logout miss the new session.
    #[tokio::test]
    async fn a_move_note_outlives_older_sessions_on_probation() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::builder(dir.path())
            .threshold(10)
            .build()
            .unwrap();
        for i in 0..9 {
            assert!(
                store
                    .create(&key(&format!("s{i}")), &rec(), LONG)
                    .await
                    .unwrap()
            );
        }
        let note = key("s0:moved");
        assert!(
            store
                .create(&note, &rec(), Duration::from_secs(300))
                .await
                .unwrap()
        );
        assert!(store.create(&key("flood"), &rec(), LONG).await.unwrap());
        assert_eq!(files(&store), 10);
        assert!(
            store.take(&note).await.unwrap().is_some(),
            "the note was evicted"
        );
        assert_eq!(store.load(&key("s0")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn expired_files_are_swept_without_a_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::builder(dir.path()).threshold(0).build().unwrap();
        for i in 0..5 {
            assert!(
                store
                    .create(&key(&format!("p{i}")), &rec(), Duration::ZERO)
                    .await
                    .unwrap()
            );
        }
        // Expired while in use, in the main directory.
        assert!(store.create(&key("used"), &rec(), LONG).await.unwrap());
        assert_eq!(
            store.touch(&key("used"), Duration::ZERO).await.unwrap(),
            Applied::Done
        );
        assert!(store.create(&key("live"), &rec(), LONG).await.unwrap());
        assert_eq!(files(&store), 7, "swept at most every few minutes");

        store.inner.next_sweep.store(0, Ordering::Relaxed);
        assert!(store.create(&key("next"), &rec(), LONG).await.unwrap());
        assert_eq!(files(&store), 2, "only the live sessions are left");
        assert_eq!(store.inner.count.load(Ordering::Relaxed), 2);
        assert!(store.load(&key("live")).await.unwrap().is_some());
        // The next sweep is due one period after this one, not later.
        let next = store.inner.next_sweep.load(Ordering::Relaxed);
        let period = SWEEP_EVERY.as_millis() as u64;
        let now = now_ms();
        assert!(
            next > now && next <= now + period,
            "next sweep at {next}, now {now}, every {period} ms"
        );
    }

    #[tokio::test]
    async fn a_sweep_removes_temporary_files_a_crash_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::builder(dir.path()).build().unwrap();
        let (stale, fresh) = (
            dir.path().join(format!("{TMP_PREFIX}stale")),
            dir.path().join(format!("{TMP_PREFIX}fresh")),
        );
        let file = fs::File::create(&stale).unwrap();
        file.set_modified(SystemTime::now() - STALE_TMP * 2)
            .unwrap();
        fs::write(&fresh, b"").unwrap();
        store.inner.next_sweep.store(0, Ordering::Relaxed);
        assert!(store.create(&key("a"), &rec(), LONG).await.unwrap());
        assert!(!stale.exists());
        assert!(fresh.exists(), "a write in progress was removed");
    }

    /// A full store's search for room finds the store no longer full
    /// (another thread made room meanwhile): it evicts no one.
    #[tokio::test]
    async fn making_room_in_a_store_no_longer_full_evicts_no_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::builder(dir.path())
            .threshold(100)
            .build()
            .unwrap();
        for i in 0..95 {
            assert!(
                store
                    .create(&key(&format!("s{i}")), &rec(), LONG)
                    .await
                    .unwrap()
            );
        }
        assert!(store.inner.make_room().unwrap());
        assert_eq!(
            files(&store),
            95,
            "sessions were evicted from a store with room"
        );
        assert_eq!(store.inner.count.load(Ordering::Relaxed), 95);
    }

    /// A file that went between the listing and the look is gone; one that
    /// cannot be opened (a socket) is not a session, and counts as a file.
    #[test]
    fn peeking_tells_a_vanished_file_from_an_unreadable_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            peek(&dir.path().join("gone.session")),
            Ok(Peek::Gone)
        ));
        let socket = dir.path().join("socket.session");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert!(matches!(peek(&socket), Ok(Peek::Unknown)));
    }

    /// Removing a file that is not there is no error; failing to remove one
    /// that is (a directory in its place) is.
    #[test]
    fn removing_tells_a_missing_file_from_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!remove_if_there(&dir.path().join("missing")).unwrap());
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(remove_if_there(&file).unwrap());
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        assert!(
            remove_if_there(&sub).is_err(),
            "a directory was taken for a missing file"
        );
    }
}
