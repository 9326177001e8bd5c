//! Where a torrent's bytes live on disk, under Bitween's rules rather than
//! librqbit's defaults:
//!
//! - a **share** is the user's own file or folder: opened read-only, never
//!   written, resized or deleted, whatever a peer sends;
//! - a **download** writes only files it creates itself, under a target
//!   (`name`, or `name (1).ext` when `name` is taken: see [`fresh_target`])
//!   that did not exist in any form when the download began. No path
//!   component is followed through a symbolic link, and "cancel and delete"
//!   removes only what the download created.
//!
//! The file layout is ours too: a single-file torrent is the file `top`, a
//! folder torrent the folder `top` with the torrent's inner paths below it,
//! so the name on disk can differ from the name in the metadata.
//!
//! Not here: checking the metadata's names (`safety.rs`) and choosing the
//! folder (the engine).

use std::any::TypeId;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use librqbit::storage::filesystem::FilesystemStorageFactory;
use librqbit::storage::{BoxStorageFactory, StorageFactory, StorageFactoryExt, TorrentStorage};
use librqbit::{ManagedTorrentShared, TorrentMetadata};

/// Where a torrent's content is: the file (single-file torrent) or the
/// folder (folder torrent) on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub top: PathBuf,
    /// A folder torrent (the metadata has a file list).
    pub multi: bool,
}

impl Layout {
    /// The path on disk of a file with the torrent's inner path `relative`.
    fn path_of(&self, relative: &Path) -> PathBuf {
        if self.multi {
            self.top.join(relative)
        } else {
            self.top.clone()
        }
    }
}

/// What the engine may do with a torrent's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The user's own files: read only.
    Seed,
    /// A download. `reopen`: our record says we created these files before
    /// (a restart, or a retry): existing files are opened again. Otherwise
    /// nothing under the target may exist yet.
    Download { reopen: bool },
}

/// Makes a [`SafeStorage`] for one torrent.
#[derive(Debug, Clone)]
pub struct SafeStorageFactory {
    layout: Layout,
    access: Access,
    /// Set once a storage of this factory created the target (shared by
    /// clones, so the engine can tell afterwards).
    created: Arc<AtomicBool>,
    /// A download that updates an earlier one: only these files (paths
    /// inside the torrent) were created by us and may be reopened; any
    /// other must be new. `None`: every existing file under a target we
    /// created (`reopen`).
    reopenable: Option<Arc<HashSet<PathBuf>>>,
}

impl SafeStorageFactory {
    pub fn new(layout: Layout, access: Access) -> Self {
        SafeStorageFactory {
            layout,
            access,
            created: Arc::default(),
            reopenable: None,
        }
    }

    /// Reopens only `files` (paths inside the torrent) under the target.
    pub fn reopening_only(mut self, files: Arc<HashSet<PathBuf>>) -> Self {
        self.reopenable = Some(files);
        self
    }

    /// Whether a storage of this factory created the target (so it is ours
    /// even if adding the torrent failed afterwards).
    pub fn created_top(&self) -> bool {
        self.created.load(Ordering::SeqCst)
    }
}

impl StorageFactory for SafeStorageFactory {
    type Storage = SafeStorage;

    fn create(
        &self,
        _shared: &ManagedTorrentShared,
        metadata: &TorrentMetadata,
    ) -> anyhow::Result<SafeStorage> {
        let multi = metadata.info.info().files.is_some();
        if multi != self.layout.multi {
            bail!(
                "{} was prepared as a {} but the torrent is a {}",
                self.layout.top.display(),
                if self.layout.multi { "folder" } else { "file" },
                if multi { "folder" } else { "file" }
            );
        }
        let paths = metadata
            .file_infos
            .iter()
            .map(|fi| {
                if fi.attrs.padding {
                    Ok(None)
                } else {
                    check_relative(&fi.relative_filename)?;
                    let ours = self
                        .reopenable
                        .as_ref()
                        .is_none_or(|r| r.contains(&fi.relative_filename));
                    Ok(Some((self.layout.path_of(&fi.relative_filename), ours)))
                }
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(SafeStorage {
            layout: self.layout.clone(),
            access: self.access,
            created: self.created.clone(),
            files: paths
                .into_iter()
                .map(|p| Slot {
                    reopen: p.as_ref().is_some_and(|p| p.1),
                    path: p.map(|p| p.0),
                    file: None,
                })
                .collect(),
        })
    }

    /// librqbit's JSON store (used here only for the fastresume bitfields)
    /// refuses every factory but its own filesystem one. This is one: the
    /// same plain files on disk, with stricter rules about which.
    fn is_type_id(&self, type_id: TypeId) -> bool {
        type_id == TypeId::of::<Self>() || type_id == TypeId::of::<FilesystemStorageFactory>()
    }

    fn clone_box(&self) -> BoxStorageFactory {
        self.clone().boxed()
    }
}

/// An inner path of the torrent must be plain names (the metadata check
/// refused anything else; this is the last line).
fn check_relative(p: &Path) -> anyhow::Result<()> {
    if p.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(())
    } else {
        bail!("refusing the path {p:?} inside a torrent")
    }
}

struct Slot {
    /// `None` for a BEP 47 padding file (never on disk).
    path: Option<PathBuf>,
    /// A download's file that may be reopened if it exists (see
    /// `SafeStorageFactory::reopenable`).
    reopen: bool,
    file: Option<Arc<File>>,
}

/// The files of one torrent (see the module doc).
pub struct SafeStorage {
    layout: Layout,
    access: Access,
    created: Arc<AtomicBool>,
    files: Vec<Slot>,
}

impl SafeStorage {
    fn file(&self, id: usize) -> anyhow::Result<(&Path, &File)> {
        let slot = self.files.get(id).context("no such file")?;
        match (&slot.path, &slot.file) {
            (Some(path), Some(file)) => Ok((path, file)),
            (None, _) => bail!("file {id} is padding"),
            (Some(path), None) => bail!("{} is not open", path.display()),
        }
    }

    /// The folders between the top and `path`, from the top down, created
    /// as real folders where missing; any of them that is anything else (a
    /// file, a symbolic link) is refused.
    fn make_parents(&self, path: &Path) -> anyhow::Result<()> {
        let Ok(inner) = path.strip_prefix(&self.layout.top) else {
            bail!(
                "{} is outside {}",
                path.display(),
                self.layout.top.display()
            );
        };
        let mut dir = self.layout.top.clone();
        let mut parts: Vec<_> = inner.components().collect();
        parts.pop(); // the file itself
        if self.layout.multi {
            ensure_dir(&dir)?;
        }
        for part in parts {
            dir.push(part);
            ensure_dir(&dir)?;
        }
        Ok(())
    }
}

/// `dir` exists as a real folder afterwards (created if missing); a
/// symbolic link or anything else there is an error.
fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!(
            "{} exists and is not a folder Bitween made; nothing was written there",
            dir.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => ensure_dir(dir),
            Err(e) => Err(e).with_context(|| format!("cannot create the folder {}", dir.display())),
        },
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// Opens a file without following a symbolic link at its last component
/// (`O_NOFOLLOW`; on Windows `FILE_FLAG_OPEN_REPARSE_POINT`, which opens a
/// link or junction itself instead of its target).
fn open_options(write: bool) -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true).write(write);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        o.custom_flags(windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT);
    }
    o
}

/// An existing regular file (not a link to one).
fn open_existing(path: &Path, write: bool) -> anyhow::Result<File> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "{} is not a regular file (a link, a folder or a device); it is left alone",
            path.display()
        );
    }
    open_options(write)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// A new file; fails if anything exists at `path`, a dangling link included.
fn create_new(path: &Path) -> anyhow::Result<File> {
    open_options(true)
        .create_new(true)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create {} (something by that name appeared; nothing was overwritten)",
                path.display()
            )
        })
}

#[cfg(unix)]
fn pread(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(unix)]
fn pwrite(file: &File, offset: u64, buf: &[u8]) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn pread(file: &File, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(windows)]
fn pwrite(file: &File, mut offset: u64, mut buf: &[u8]) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => {
                buf = &buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

impl TorrentStorage for SafeStorage {
    fn init(
        &mut self,
        _shared: &ManagedTorrentShared,
        _metadata: &TorrentMetadata,
    ) -> anyhow::Result<()> {
        if self.access == (Access::Download { reopen: false }) && self.layout.multi {
            // The whole folder is new: it must not exist in any form.
            std::fs::create_dir(&self.layout.top).with_context(|| {
                format!(
                    "cannot create the folder {} (something by that name appeared; nothing was overwritten)",
                    self.layout.top.display()
                )
            })?;
            self.created.store(true, Ordering::SeqCst);
        }
        for i in 0..self.files.len() {
            let Some(path) = self.files[i].path.clone() else {
                continue;
            };
            let file = match self.access {
                Access::Seed => open_existing(&path, false)?,
                Access::Download { reopen } => {
                    self.make_parents(&path)?;
                    let exists = std::fs::symlink_metadata(&path).is_ok();
                    if reopen && exists && self.files[i].reopen {
                        open_existing(&path, true)?
                    } else {
                        let file = create_new(&path)?;
                        if path == self.layout.top {
                            self.created.store(true, Ordering::SeqCst);
                        }
                        file
                    }
                }
            };
            self.files[i].file = Some(Arc::new(file));
        }
        Ok(())
    }

    fn pread_exact(&self, file_id: usize, offset: u64, buf: &mut [u8]) -> anyhow::Result<()> {
        let (path, file) = self.file(file_id)?;
        pread(file, offset, buf).with_context(|| format!("cannot read {}", path.display()))
    }

    fn pwrite_all(&self, file_id: usize, offset: u64, buf: &[u8]) -> anyhow::Result<()> {
        let (path, file) = self.file(file_id)?;
        if self.access == Access::Seed {
            bail!(
                "refusing to write to {}: it is a file you share, and Bitween never changes it",
                path.display()
            );
        }
        pwrite(file, offset, buf).with_context(|| format!("cannot write {}", path.display()))
    }

    fn remove_file(&self, file_id: usize, _filename: &Path) -> anyhow::Result<()> {
        if self.access == Access::Seed {
            bail!("Bitween never deletes files you share");
        }
        let Some(path) = self.files.get(file_id).and_then(|s| s.path.as_ref()) else {
            return Ok(());
        };
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_file() => std::fs::remove_file(path)
                .with_context(|| format!("cannot delete {}", path.display())),
            Ok(_) => bail!(
                "{} is no longer the file this download wrote; left alone",
                path.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn remove_directory_if_empty(&self, path: &Path) -> anyhow::Result<()> {
        // Only folders of a folder download, all of which it created; never
        // the download folder around a single file.
        if self.access == Access::Seed || !self.layout.multi {
            return Ok(());
        }
        check_relative(path).or_else(|e| {
            if path.as_os_str().is_empty() {
                Ok(())
            } else {
                Err(e)
            }
        })?;
        let dir = self.layout.top.join(path);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {
                if std::fs::read_dir(&dir)?.next().is_none() {
                    std::fs::remove_dir(&dir)
                        .with_context(|| format!("cannot remove {}", dir.display()))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn ensure_file_length(&self, file_id: usize, length: u64) -> anyhow::Result<()> {
        let (path, file) = self.file(file_id)?;
        let now = file.metadata()?.len();
        if now == length {
            return Ok(());
        }
        if self.access == Access::Seed {
            bail!(
                "{} is {now} bytes but was shared at {length}; it is left as it is",
                path.display()
            );
        }
        file.set_len(length)
            .with_context(|| format!("cannot size {}", path.display()))
    }

    fn take(&self) -> anyhow::Result<Box<dyn TorrentStorage>> {
        Ok(Box::new(SafeStorage {
            layout: self.layout.clone(),
            access: self.access,
            created: self.created.clone(),
            files: self
                .files
                .iter()
                .map(|s| Slot {
                    path: s.path.clone(),
                    reopen: s.reopen,
                    file: s.file.clone(),
                })
                .collect(),
        }))
    }
}

/// Bytes an unprivileged user may still write in the file system that
/// holds `dir`.
#[cfg(unix)]
pub fn available_space(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    // SAFETY: `c` is a valid C string and `st` a plain struct statvfs fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ by platform
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Bytes the user may still write on the volume that holds `dir`
/// (GetDiskFreeSpaceExW: quotas included).
#[cfg(windows)]
pub fn available_space(dir: &Path) -> io::Result<u64> {
    crate::windows::available_space(dir)
}

/// Bytes free in the file system that holds `dir` (not checked here:
/// assume enough, the write fails with a clear error if not).
#[cfg(not(any(unix, windows)))]
pub fn available_space(_dir: &Path) -> io::Result<u64> {
    Ok(u64::MAX)
}

/// The longest file or folder name we write, in bytes (what common file
/// systems allow).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// A name in `folder` that nothing exists at, in any form (file, folder,
/// symbolic link, dangling link): `name` itself, else `name (1).ext`,
/// `name (2).ext`, ... as browsers and qBittorrent do. For a folder
/// (`is_folder`) the number goes at the end: `photos (1)`.
pub fn fresh_target(folder: &Path, name: &str, is_folder: bool) -> io::Result<PathBuf> {
    let taken = |p: &Path| match std::fs::symlink_metadata(p) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    };
    let first = folder.join(name);
    if !taken(&first)? {
        return Ok(first);
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if !is_folder && i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    for n in 1..10_000u32 {
        let suffix = format!(" ({n}){ext}");
        let mut stem = stem.to_string();
        while stem.len() + suffix.len() > MAX_COMPONENT_BYTES && !stem.is_empty() {
            stem.pop();
        }
        let candidate = folder.join(format!("{stem}{suffix}"));
        if !taken(&candidate)? {
            return Ok(candidate);
        }
    }
    Err(io::Error::other(format!(
        "no free name for {name:?} in {}",
        folder.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names_skip_whatever_exists() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(fresh_target(d, "a.mkv", false).unwrap(), d.join("a.mkv"));
        std::fs::write(d.join("a.mkv"), b"x").unwrap();
        assert_eq!(
            fresh_target(d, "a.mkv", false).unwrap(),
            d.join("a (1).mkv")
        );
        #[cfg(unix)]
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("a (1).mkv")).unwrap();
        #[cfg(unix)]
        assert_eq!(
            fresh_target(d, "a.mkv", false).unwrap(),
            d.join("a (2).mkv")
        );
        std::fs::create_dir(d.join("photos")).unwrap();
        assert_eq!(
            fresh_target(d, "photos", true).unwrap(),
            d.join("photos (1)")
        );
        std::fs::write(d.join(".bashrc"), b"x").unwrap();
        assert_eq!(
            fresh_target(d, ".bashrc", false).unwrap(),
            d.join(".bashrc (1)")
        );
        let long = format!("{}.txt", "x".repeat(251));
        std::fs::write(d.join(&long), b"x").unwrap();
        let fresh = fresh_target(d, &long, false).unwrap();
        let fresh_name = fresh.file_name().unwrap().to_str().unwrap();
        assert!(fresh_name.len() <= MAX_COMPONENT_BYTES, "{fresh_name}");
        assert!(fresh_name.ends_with(" (1).txt"), "{fresh_name}");
    }

    #[test]
    fn folders_are_made_but_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        ensure_dir(&d.join("new")).unwrap();
        assert!(d.join("new").is_dir());
        std::fs::write(d.join("file"), b"x").unwrap();
        assert!(ensure_dir(&d.join("file")).is_err());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(d.join("new"), d.join("link")).unwrap();
            assert!(ensure_dir(&d.join("link")).is_err());
            std::fs::write(d.join("target"), b"keep").unwrap();
            std::os::unix::fs::symlink(d.join("target"), d.join("l2")).unwrap();
            assert!(open_existing(&d.join("l2"), true).is_err());
            assert!(create_new(&d.join("l2")).is_err());
            assert_eq!(std::fs::read(d.join("target")).unwrap(), b"keep");
        }
    }
}
