//! Writing a file atomically, the one way every state file is written
//! (`torrents.json` and the metainfo files, the desktop settings, the
//! password file, the API token): the bytes go to a temporary file of their
//! own in the same folder (a fresh name per write, created with
//! `create_new`), which is flushed to disk, renamed over the target, and the
//! folder flushed too. A crash leaves the old file or the new one, never a
//! torn one; two writes at once never share a temporary file, and a failed
//! write removes its own.
//!
//! Which of two writes of the same file lands last is the caller's to
//! decide: a caller that saves a snapshot of shared state takes its snapshot
//! and writes it under one lock of its own (the engine does), so the newest
//! state is always the one written last.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The suffix of our temporary files: `.<name>.<16 hex digits>.tmp`.
const SUFFIX: &str = ".tmp";

/// Writes `bytes` to `path` atomically, readable by others as a plain
/// `File::create` would make it (0666 less the umask on Unix).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, bytes, 0o666)
}

/// Like [`write_atomic`], for secrets: the file is readable and writable by
/// its owner only (0600 on Unix, a DACL for the user alone on Windows:
/// `windows::create_owner_only`) from the moment it is created.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, bytes, 0o600)
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let (tmp, mut file) = create_temporary(path, mode)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            rename_over(&tmp, path)
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_folder(path);
    Ok(())
}

/// Renames `from` over `to`. Windows refuses (access denied) to replace a
/// file that another rename is replacing at that moment or that a virus
/// scanner or indexer holds open; such moments are short, so it tries
/// again for up to a second there.
fn rename_over(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(windows)]
    for _ in 0..100 {
        match std::fs::rename(from, to) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            done => return done,
        }
    }
    std::fs::rename(from, to)
}

/// A new temporary file next to `path`, under a name no other write uses.
fn create_temporary(path: &Path, mode: u32) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    // Windows: a secret (no bits for group and others) is created with a
    // DACL for the user alone; other files inherit the folder's.
    #[cfg(windows)]
    let private = mode & 0o077 == 0;
    #[cfg(not(any(unix, windows)))]
    let _ = mode;
    loop {
        let tmp = path.with_file_name(format!(
            ".{}.{:016x}{SUFFIX}",
            name.to_string_lossy(),
            rand::random::<u64>()
        ));
        #[cfg(windows)]
        let opened = if private {
            crate::windows::create_owner_only(&tmp)
        } else {
            options.open(&tmp)
        };
        #[cfg(not(windows))]
        let opened = options.open(&tmp);
        match opened {
            Ok(f) => return Ok((tmp, f)),
            // A name taken already (by chance): draw another.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Makes a rename (or a new file) in `path`'s folder durable (Unix; elsewhere a folder cannot be
/// opened as a file, and the rename is flushed by the file system).
pub(crate) fn sync_folder(path: &Path) {
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// The file whose temporary file `name` is, if it is one of ours.
fn temporary_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?.strip_suffix(SUFFIX)?;
    let (target, hex) = rest.rsplit_once('.')?;
    (!target.is_empty() && hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(target)
}

/// Removes the temporary files that a crash left in `dir` (not in its
/// subfolders) for the files that `which` accepts (by name). Call it
/// before this process writes those files: a write under way would lose
/// its temporary file.
pub fn remove_stale_temporaries(dir: &Path, which: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .and_then(temporary_of)
            .is_some_and(&which)
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_at_once_each_land_whole_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::thread::scope(|s| {
            for t in 0..16u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(path, &vec![b'a' + t; 10_000 + t as usize]).unwrap();
                    }
                });
            }
        });
        let bytes = std::fs::read(&path).unwrap();
        let t = bytes[0] - b'a';
        assert_eq!(bytes, vec![b'a' + t; 10_000 + t as usize], "a torn file");
        assert_eq!(names(dir.path()), ["state.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn modes_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("password");
        write_private(&secret, b"s3cret").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&secret), 0o600);
        let plain = dir.path().join("plain");
        write_atomic(&plain, b"x").unwrap();
        std::fs::write(dir.path().join("reference"), b"x").unwrap();
        assert_eq!(mode(&plain), mode(&dir.path().join("reference")));
    }

    #[test]
    fn a_failed_write_removes_its_temporary_file_and_keeps_the_target() {
        let dir = tempfile::tempdir().unwrap();
        // A folder that is not empty cannot be replaced by a file.
        let target = dir.path().join("taken");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"keep").unwrap();
        assert!(write_atomic(&target, b"new").is_err());
        assert_eq!(names(dir.path()), ["taken"]);
        assert_eq!(std::fs::read(target.join("inside")).unwrap(), b"keep");
    }

    #[test]
    fn stale_temporary_files_are_recognised_and_removed() {
        assert_eq!(
            temporary_of(".torrents.json.0123456789abcdef.tmp"),
            Some("torrents.json")
        );
        assert_eq!(temporary_of("torrents.tmp"), None);
        assert_eq!(temporary_of(".torrents.json.tmp"), None);
        assert_eq!(temporary_of("..0123456789abcdef.tmp"), None);
        assert_eq!(temporary_of(".x.0123456789abcdeg.tmp"), None);
        let dir = tempfile::tempdir().unwrap();
        for n in [
            ".torrents.json.0123456789abcdef.tmp",
            ".api-token.0123456789abcdef.tmp",
            "torrents.json",
            "notes.tmp",
        ] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        remove_stale_temporaries(dir.path(), |n| n == "torrents.json");
        assert_eq!(
            names(dir.path()),
            [
                ".api-token.0123456789abcdef.tmp",
                "notes.tmp",
                "torrents.json"
            ]
        );
        remove_stale_temporaries(dir.path(), |_| true);
        assert_eq!(names(dir.path()), ["notes.tmp", "torrents.json"]);
    }
}
