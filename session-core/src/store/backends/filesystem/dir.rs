//! The store's directory: making sure it is ours, and opening files in it
//! without following symbolic links.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Subdirectory of the striped lock files.
pub(super) const LOCKS: &str = ".locks";
/// Subdirectory of the sessions on probation: created, not seen since.
pub(super) const PROBATION: &str = "new";
/// Prefix of files being written, renamed into place once complete.
pub(super) const TMP_PREFIX: &str = ".tmp-";

/// Options that never follow a symbolic link at the file's own name: a link
/// planted there fails with `ELOOP` instead of leading elsewhere.
pub(super) fn no_follow() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.custom_flags(libc::O_NOFOLLOW);
    options
}

/// True for the error that opening a symbolic link with [`no_follow`] gives.
pub(super) fn is_symlink_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// Creates `dir` if needed (private: `0700`; missing parents get the usual
/// permissions) with its subdirectories, and refuses a directory that
/// another user could write to: one writable by group or others, or owned
/// by another user than the one this process creates files as. A
/// subdirectory must be a real directory, not a link.
pub(super) fn prepare(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    create_private(dir)?;
    // The directory the setting names may itself be a link (`/var/run`);
    // what it points to is what must be private.
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(refused(dir, "is not a directory"));
    }
    check_mode(dir, &meta)?;
    let uid = own_uid(dir)?;
    check_owner(dir, &meta, uid)?;
    for sub in [LOCKS, PROBATION] {
        let path = dir.join(sub);
        create_private(&path)?;
        let meta = fs::symlink_metadata(&path)?;
        if !meta.is_dir() {
            return Err(refused(&path, "is not a directory (a link or a file)"));
        }
        check_mode(&path, &meta)?;
        check_owner(&path, &meta, uid)?;
    }
    Ok(())
}

fn create_private(path: &Path) -> io::Result<()> {
    match DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

fn refused(path: &Path, problem: &str) -> io::Error {
    io::Error::new(
        ErrorKind::PermissionDenied,
        format!("session directory {} {problem}", path.display()),
    )
}

fn check_mode(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refused(
            path,
            &format!(
                "is writable by group or others (mode {mode:o}), so another user could plant \
                 or replace sessions: make it private with `chmod 700 {}`",
                path.display()
            ),
        ));
    }
    Ok(())
}

fn check_owner(path: &Path, meta: &fs::Metadata, uid: u32) -> io::Result<()> {
    if meta.uid() != uid {
        return Err(refused(
            path,
            &format!(
                "is owned by uid {}, not by this process's user (uid {uid}): `chown` it to the \
                 user the server runs as",
                meta.uid()
            ),
        ));
    }
    Ok(())
}

/// The user that owns the files this process creates in `dir`, found by
/// creating one: std has no safe `geteuid`, and the owner of a new file (the
/// file-system uid) is exactly what the directory's owner must match.
fn own_uid(dir: &Path) -> io::Result<u32> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(io::Error::other)?;
    let probe = dir.join(format!("{TMP_PREFIX}probe-{}", hex::encode(suffix)));
    let file: File = no_follow()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create files in {}: {e}", dir.display()),
            )
        })?;
    let uid = file.metadata().map(|m| m.uid());
    fs::remove_file(&probe)?;
    uid
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_directory_and_its_subdirectories_are_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/sessions");
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(LOCKS)), 0o700);
        assert_eq!(mode(&dir.join(PROBATION)), 0o700);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2, "the probe is gone");
        prepare(&dir).expect("an existing private directory is accepted");
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let root = tempfile::tempdir().unwrap();
        for bad in [0o777, 0o770, 0o1777] {
            fs::set_permissions(root.path(), fs::Permissions::from_mode(bad)).unwrap();
            let err = prepare(root.path()).unwrap_err().to_string();
            assert!(err.contains("writable by group or others"), "{err}");
            assert!(err.contains(&root.path().display().to_string()), "{err}");
        }
    }

    #[test]
    fn a_linked_subdirectory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.path().join(PROBATION)).unwrap();
        let err = prepare(root.path()).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }
}
