//! What the engine must remember across restarts: the listen port, every
//! share (path, where it is seeded from) and every download (where it goes),
//! plus each torrent's metainfo file. Written atomically
//! ([`crate::fsutil::write_atomic`]), so a kill -9 at any moment leaves
//! either the old or the new state, never a torn one. The engine serializes
//! its saves (see `Engine::save`), so the newest state is written last.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::shares::InfoHash;

/// One torrent of ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub info_hash: InfoHash,
    /// Display name (the torrent's name once known).
    pub name: String,
    /// Total bytes (0 until the metadata is known).
    pub size: u64,
    pub kind: Kind,
    pub paused: bool,
    /// A download that completed (so a restart does not announce it again).
    #[serde(default)]
    pub finished: bool,
    /// For a share: what its files looked like when hashed, to notice
    /// changes without hashing again.
    #[serde(default)]
    pub stamp: Option<Stamp>,
    /// For a download: the file or folder it created on disk (its name may
    /// differ from the torrent's: `name (1).ext`). Set once the files were
    /// created, so it always names something of ours; only these files are
    /// ever reopened for writing or deleted. Records from before this field
    /// have `None` (see `Engine::layout_of`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PathBuf>,
    /// For a download: whether the torrent is a folder (with a file list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi: Option<bool>,
    /// For a download: the size the contact's list gave when the download
    /// was asked for; metadata of another size is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_size: Option<u64>,
    /// For a download: the name the contact's list gave (`name` becomes the
    /// torrent's own name once its metadata is known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_name: Option<String>,
}

/// Sizes and modification times of a share's files, summed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub files: u64,
    pub bytes: u64,
    pub newest_mtime_ns: u128,
}

impl Stamp {
    /// Reads the stamp of a file or folder; `None` if it is gone or
    /// unreadable.
    pub fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        let mut stamp = Stamp {
            files: 0,
            bytes: 0,
            newest_mtime_ns: 0,
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).ok()? {
                let s = Stamp::of(&entry.ok()?.path())?;
                stamp.files += s.files;
                stamp.bytes += s.bytes;
                stamp.newest_mtime_ns = stamp.newest_mtime_ns.max(s.newest_mtime_ns);
            }
        } else {
            let mtime = meta.modified().ok()?;
            stamp.files = 1;
            stamp.bytes = meta.len();
            stamp.newest_mtime_ns = mtime
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
        }
        Some(stamp)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kind {
    /// A file or folder of the user's, seeded in place from `folder`.
    Share { path: PathBuf, folder: PathBuf },
    /// A download into `folder`.
    Download { folder: PathBuf },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The BitTorrent port picked on first start (kept across restarts).
    pub listen_port: u16,
    pub torrents: Vec<Record>,
}

const STATE_FILE: &str = "torrents.json";

/// The state file and the metainfo folder in the data dir.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens the data dir, removing the temporary files of ours that a
    /// crash may have left (nothing else writes them before the engine
    /// starts).
    pub fn open(data_dir: &Path) -> std::io::Result<Store> {
        std::fs::create_dir_all(data_dir.join("torrents"))?;
        crate::fsutil::remove_stale_temporaries(data_dir, |n| n == STATE_FILE);
        crate::fsutil::remove_stale_temporaries(&data_dir.join("torrents"), |n| {
            n.ends_with(".torrent")
        });
        Ok(Store {
            dir: data_dir.to_path_buf(),
        })
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The saved state; a missing file is an empty state, an unreadable one
    /// an error that names the file (we never overwrite what we cannot read).
    pub fn load(&self) -> Result<State, String> {
        match std::fs::read(self.state_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{} is damaged ({e}); move it away to start with no shares",
                    self.state_path().display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(format!("cannot read {}: {e}", self.state_path().display())),
        }
    }

    pub fn save(&self, state: &State) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(state).expect("state serializes");
        crate::fsutil::write_atomic(&self.state_path(), &bytes)
    }

    fn torrent_path(&self, hash: &InfoHash) -> PathBuf {
        self.dir.join("torrents").join(format!("{hash}.torrent"))
    }

    pub fn save_torrent(&self, hash: &InfoHash, bytes: &[u8]) -> std::io::Result<()> {
        crate::fsutil::write_atomic(&self.torrent_path(hash), bytes)
    }

    pub fn load_torrent(&self, hash: &InfoHash) -> Option<Vec<u8>> {
        std::fs::read(self.torrent_path(hash)).ok()
    }

    pub fn remove_torrent(&self, hash: &InfoHash) {
        let _ = std::fs::remove_file(self.torrent_path(hash));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_damage_is_reported_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), State::default());
        let state = State {
            listen_port: 6881,
            torrents: vec![Record {
                info_hash: InfoHash([7; 20]),
                name: "x".into(),
                size: 3,
                kind: Kind::Download {
                    folder: "/tmp/d".into(),
                },
                paused: true,
                finished: false,
                stamp: None,
                target: Some("/tmp/d/x (1)".into()),
                multi: Some(false),
                listed_size: Some(3),
                listed_name: Some("x".into()),
            }],
        };
        store.save(&state).unwrap();
        assert_eq!(store.load().unwrap(), state);
        std::fs::write(dir.path().join("torrents.json"), b"{not json").unwrap();
        let err = store.load().unwrap_err();
        assert!(err.contains("torrents.json is damaged"), "{err}");
    }
}
