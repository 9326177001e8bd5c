//! What the engine must remember across restarts: the listen port, every
//! share (path, where it is seeded from) and every download (where it goes),
//! plus each torrent's metainfo file.
//!
//! The list is kept as a snapshot (`torrents.json`, written atomically with
//! [`crate::fsutil::write_atomic`]) and a journal of the changes since
//! (`torrents.journal`, one JSON line per changed record, flushed to disk
//! before the change is acknowledged), so a change costs one short append,
//! not a rewrite of the whole list: adding N shares costs O(N), not O(N²).
//! The journal is folded into the snapshot at every start and whenever it
//! has grown larger than the list itself. A kill -9 at any moment loses
//! nothing acknowledged: a torn last line (an append cut short) is ignored,
//! and replaying the journal over a snapshot that already holds its changes
//! changes nothing. Data dirs from before the journal have no journal file.
//! The engine serializes its changes (see `Engine::persist`), so the journal
//! lists them in the order they were made.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::shares::{Audience, InfoHash};

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
    /// For a share: when its current version was made (Unix seconds), at
    /// sharing or at the last rebuild after its files changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<u64>,
    /// For a share rebuilt after its files changed: the info hash of the
    /// version this one replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<InfoHash>,
    /// Who sees it in our lists: everyone (records from before audiences),
    /// or only some groups and contacts (`crate::restricted`).
    #[serde(default, skip_serializing_if = "Audience::is_everyone")]
    pub audience: Audience,
}

/// What a share's files looked like: their number, total size and newest
/// modification time (compared every few seconds to notice a change), and
/// a digest of every file's relative path, size, modification time in
/// nanoseconds and identity (device and inode on Unix, volume and file
/// index on Windows). A restart finds the digest unchanged and resumes the
/// share without reading it again (see `Engine::restore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub files: u64,
    pub bytes: u64,
    pub newest_mtime_ns: u128,
    /// SHA-1 of the files' lines, hex; `None` in records written before it
    /// was kept (their shares are checked in full once, then get one).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_digest")]
    pub files_digest: Option<[u8; 20]>,
}

impl Stamp {
    /// Reads the stamp of a file or folder; `None` if it is gone or
    /// unreadable.
    pub fn of(path: &Path) -> Option<Stamp> {
        let mut lines = Vec::new();
        let mut stamp = Stamp {
            files: 0,
            bytes: 0,
            newest_mtime_ns: 0,
            files_digest: None,
        };
        stamp.walk(path, Path::new(""), &mut lines)?;
        // The order of a folder's entries is the file system's: sorted, the
        // digest depends on the files alone.
        lines.sort_unstable();
        let mut digest = <sha1w::Sha1 as sha1w::ISha1>::new();
        for line in &lines {
            sha1w::ISha1::update(&mut digest, line);
        }
        stamp.files_digest = Some(sha1w::ISha1::finish(digest));
        Some(stamp)
    }

    fn walk(&mut self, path: &Path, relative: &Path, lines: &mut Vec<Vec<u8>>) -> Option<()> {
        let meta = std::fs::metadata(path).ok()?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).ok()? {
                let entry = entry.ok()?;
                self.walk(&entry.path(), &relative.join(entry.file_name()), lines)?;
            }
            return Some(());
        }
        let mtime_ns = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        self.files += 1;
        self.bytes += meta.len();
        self.newest_mtime_ns = self.newest_mtime_ns.max(mtime_ns);
        let (device, inode) = identity(&meta);
        let mut line = relative.as_os_str().as_encoded_bytes().to_vec();
        line.push(0);
        line.extend_from_slice(
            format!("{}\0{mtime_ns}\0{device}\0{inode}\n", meta.len()).as_bytes(),
        );
        lines.push(line);
        Some(())
    }

    /// Whether the files look as they did at `then` (number, total size,
    /// newest modification time): what the periodic check compares.
    pub fn looks_like(&self, then: &Stamp) -> bool {
        (self.files, self.bytes, self.newest_mtime_ns)
            == (then.files, then.bytes, then.newest_mtime_ns)
    }

    /// Whether every file is exactly as it was at `then` (each one's path,
    /// size, modification time and identity): a share can resume without
    /// reading its files. Never true against a stamp without a digest.
    pub fn unchanged_since(&self, then: &Stamp) -> bool {
        self.looks_like(then)
            && self.files_digest.is_some()
            && self.files_digest == then.files_digest
    }
}

/// A file's identity on its file system.
#[cfg(unix)]
pub(super) fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// A file's identity on its file system (stable `std` has no file index
/// on Windows; the creation time stands in for it).
#[cfg(not(unix))]
pub(super) fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    let created = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (0, created)
}

/// `files_digest` as 40 hex digits.
mod hex_digest {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<[u8; 20]>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&d.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 20]>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let mut out = [0u8; 20];
        if text.len() != 40 || !text.is_ascii() {
            return Err(serde::de::Error::custom("a files digest is 40 hex digits"));
        }
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| serde::de::Error::custom("a files digest is 40 hex digits"))?;
        }
        Ok(Some(out))
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
const JOURNAL_FILE: &str = "torrents.journal";

/// A journal that has grown past this many lines more than the list's
/// length is folded into the snapshot.
const JOURNAL_SLACK: usize = 1000;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// This record is now as given (added or changed).
    Put(Box<Record>),
    /// This torrent is gone.
    Drop(InfoHash),
}

impl State {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Put(record) => match self
                .torrents
                .iter_mut()
                .find(|r| r.info_hash == record.info_hash)
            {
                Some(r) => *r = *record,
                None => self.torrents.push(*record),
            },
            Change::Drop(hash) => self.torrents.retain(|r| r.info_hash != hash),
        }
    }
}

/// The state file, its journal and the metainfo folder in the data dir.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// The journal open for appending, and how many lines it holds.
    journal: std::sync::Mutex<(Option<std::fs::File>, usize)>,
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
            journal: std::sync::Mutex::new((None, 0)),
        })
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    /// The saved state: the snapshot with the journal's changes replayed
    /// over it. A missing file is an empty state (or journal), an
    /// unreadable one an error that names the file (we never overwrite
    /// what we cannot read).
    pub fn load(&self) -> Result<State, String> {
        let mut state: State = match std::fs::read(self.state_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{} is damaged ({e}); move it away to start with no shares",
                    self.state_path().display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", self.state_path().display())),
        };
        let journal = match std::fs::read(self.journal_path()) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(format!(
                    "cannot read {}: {e}",
                    self.journal_path().display()
                ))
            }
        };
        let mut lines = journal.split(|b| *b == b'\n').peekable();
        while let Some(line) = lines.next() {
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Change>(line) {
                Ok(change) => state.apply(change),
                // The last line without its newline: an append cut short
                // by a crash, never acknowledged.
                Err(_) if lines.peek().is_none() => {
                    tracing::warn!("ignoring the unfinished last line of {JOURNAL_FILE}");
                }
                Err(e) => {
                    return Err(format!(
                        "{} is damaged ({e}); move it away to start with the shares of {STATE_FILE} alone",
                        self.journal_path().display()
                    ))
                }
            }
        }
        Ok(state)
    }

    /// Writes `state` as the new snapshot and empties the journal (whose
    /// changes it holds).
    pub fn save(&self, state: &State) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(state).expect("state serializes");
        let mut journal = self.journal.lock().unwrap();
        crate::fsutil::write_atomic(&self.state_path(), &bytes)?;
        // A crash before this point replays the journal over a snapshot
        // that already holds its changes: no harm.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.journal_path())?;
        file.sync_all()?;
        crate::fsutil::sync_folder(&self.journal_path());
        *journal = (None, 0);
        Ok(())
    }

    /// Appends `change` to the journal and flushes it to disk. Returns
    /// whether the journal has grown so large (past `records`, the list's
    /// length, by `JOURNAL_SLACK` lines) that it should be folded into a
    /// new snapshot ([`save`](Self::save)).
    pub fn append(&self, change: &Change, records: usize) -> std::io::Result<bool> {
        use std::io::Write;
        let mut line = serde_json::to_vec(change).expect("a change serializes");
        line.push(b'\n');
        let mut journal = self.journal.lock().unwrap();
        if journal.0.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.journal_path())?;
            journal.0 = Some(file);
        }
        let file = journal.0.as_mut().expect("opened above");
        let before = file.metadata()?.len();
        if let Err(e) = file.write_all(&line).and_then(|()| file.sync_data()) {
            // No torn line may stay in front of the next one.
            let _ = file.set_len(before);
            return Err(e);
        }
        journal.1 += 1;
        Ok(journal.1 > records + JOURNAL_SLACK)
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
                updated_at: None,
                replaces: None,
                audience: Audience::Everyone,
            }],
        };
        store.save(&state).unwrap();
        assert_eq!(store.load().unwrap(), state);
        std::fs::write(dir.path().join("torrents.json"), b"{not json").unwrap();
        let err = store.load().unwrap_err();
        assert!(err.contains("torrents.json is damaged"), "{err}");
    }

    fn share(n: u8) -> Record {
        Record {
            info_hash: InfoHash([n; 20]),
            name: format!("f{n}"),
            size: 1,
            kind: Kind::Share {
                path: format!("/tmp/f{n}").into(),
                folder: "/tmp".into(),
            },
            paused: false,
            finished: true,
            stamp: None,
            target: None,
            multi: Some(false),
            listed_size: None,
            listed_name: None,
            updated_at: None,
            replaces: None,
            audience: Audience::Everyone,
        }
    }

    #[test]
    fn the_journal_replays_over_the_snapshot_and_a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // A data dir from before the journal: the snapshot alone.
        let old = State {
            listen_port: 6881,
            torrents: vec![share(1), share(2)],
        };
        std::fs::write(
            dir.path().join(STATE_FILE),
            serde_json::to_vec(&old).unwrap(),
        )
        .unwrap();
        assert_eq!(store.load().unwrap(), old);
        let changed = Record {
            paused: true,
            ..share(2)
        };
        for change in [
            Change::Put(Box::new(share(3))),
            Change::Drop(InfoHash([1; 20])),
            Change::Put(Box::new(changed.clone())),
        ] {
            assert!(!store.append(&change, 3).unwrap());
        }
        let want = State {
            listen_port: 6881,
            torrents: vec![changed, share(3)],
        };
        assert_eq!(store.load().unwrap(), want);
        // An append cut short by a crash: never acknowledged, ignored.
        let journal = dir.path().join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&journal).unwrap();
        bytes.extend_from_slice(br#"{"put":{"info_hash":"04"#);
        std::fs::write(&journal, &bytes).unwrap();
        assert_eq!(store.load().unwrap(), want);
        // Replaying the journal over a snapshot that holds it changes
        // nothing (a crash between the snapshot and emptying the journal).
        std::fs::write(
            dir.path().join(STATE_FILE),
            serde_json::to_vec(&want).unwrap(),
        )
        .unwrap();
        assert_eq!(store.load().unwrap(), want);
        // Folded: the snapshot holds it all, the journal is empty.
        store.save(&want).unwrap();
        assert_eq!(std::fs::metadata(&journal).unwrap().len(), 0);
        assert_eq!(store.load().unwrap(), want);
        // A damaged line before the last is reported, never skipped.
        std::fs::write(
            &journal,
            b"{bad}\n{\"drop\":\"0303030303030303030303030303030303030303\"}\n",
        )
        .unwrap();
        let err = store.load().unwrap_err();
        assert!(err.contains("torrents.journal is damaged"), "{err}");
    }

    #[test]
    fn a_journal_larger_than_the_list_asks_to_be_folded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let change = Change::Put(Box::new(share(1)));
        for _ in 0..JOURNAL_SLACK + 1 {
            assert!(!store.append(&change, 1).unwrap());
        }
        assert!(store.append(&change, 1).unwrap());
        store.save(&store.load().unwrap()).unwrap();
        assert!(!store.append(&change, 1).unwrap());
    }
}
