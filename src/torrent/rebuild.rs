//! Rebuilding a share whose files changed on disk (issue 17, item 2): a new
//! torrent of the same path, read only where files changed, published in
//! place of the old one as the same share; the old version keeps seeding
//! while someone is still fetching it, then is dropped.
//!
//! What makes a rebuild cheap: beside every share's torrent we keep each
//! file's stamp (size, modification time, identity) from when it was read
//! (`<hash>.files.json`). A folder torrent aligns every file to a piece
//! boundary (BEP 47 padding), so a file whose stamp is unchanged keeps its
//! pieces' hashes from the old torrent and is not read again.
//!
//! Not here: noticing the changes (`watch.rs`) and hashing (`create.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::create::{self, FileStamp, Plan, PIECE_LENGTH};
use super::{id20, Engine, Kind, Record, Stamp};
use crate::events::Event;
use crate::shares::InfoHash;

/// How often a replaced version is looked at to see whether anyone still
/// fetches it.
const RETIRE_CHECK_EVERY: Duration = Duration::from_secs(2);
/// A replaced version nobody has taken a byte of for this long is dropped
/// (a contact connected to it but idle, e.g. one that has all of it).
const RETIRE_IDLE: Duration = Duration::from_secs(30);

/// Each file's path inside a torrent and its stamp when it was read.
pub(super) type FileStamps = Vec<(Vec<String>, FileStamp)>;

#[derive(Serialize, Deserialize)]
struct Manifest {
    files: Vec<ManifestFile>,
}

#[derive(Serialize, Deserialize)]
struct ManifestFile {
    path: Vec<String>,
    stamp: FileStamp,
}

/// Where the stamps of `hash`'s files are kept in the data dir's torrent
/// folder `dir`.
fn manifest_path(dir: &Path, hash: &InfoHash) -> PathBuf {
    dir.join(format!("{hash}.files.json"))
}

pub(super) fn save_manifest(dir: &Path, hash: &InfoHash, files: &FileStamps) {
    let manifest = Manifest {
        files: files
            .iter()
            .map(|(path, stamp)| ManifestFile {
                path: path.clone(),
                stamp: *stamp,
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&manifest).expect("stamps serialize");
    if let Err(e) = crate::fsutil::write_atomic(&manifest_path(dir, hash), &bytes) {
        // Only costs reading every file at the next rebuild.
        tracing::warn!(%hash, "cannot keep the files' stamps: {e}");
    }
}

pub(super) fn load_manifest(dir: &Path, hash: &InfoHash) -> Option<FileStamps> {
    let bytes = std::fs::read(manifest_path(dir, hash)).ok()?;
    let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
    Some(
        manifest
            .files
            .into_iter()
            .map(|f| (f.path, f.stamp))
            .collect(),
    )
}

pub(super) fn has_manifest(dir: &Path, hash: &InfoHash) -> bool {
    manifest_path(dir, hash).exists()
}

pub(super) fn remove_manifest(dir: &Path, hash: &InfoHash) {
    let _ = std::fs::remove_file(manifest_path(dir, hash));
}

/// How a file's last piece sits in a torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Followed by padding (hashed with zeros up to the piece's end), or
    /// the file ends at a piece boundary.
    Padded,
    /// The torrent's last file: its last piece is hashed as it is.
    Last,
    /// Shares its last piece with the next file: that hash is not its own.
    Shared,
}

/// Per path inside a torrent: the file's size, its pieces' hashes and how
/// its last piece sits.
type FileHashes = HashMap<Vec<String>, (u64, Vec<[u8; 20]>, Tail)>;

/// The piece hashes of every file of a folder torrent that starts at a
/// piece boundary (every file of ours since padding), by path; `None` if
/// the torrent is not a folder torrent of our piece length.
fn hashes_by_file(torrent: &[u8]) -> Option<FileHashes> {
    let meta = librqbit_core::torrent_metainfo::torrent_from_bytes(torrent).ok()?;
    let info = &meta.info.data;
    if u64::from(info.piece_length) != PIECE_LENGTH {
        return None;
    }
    let pieces = info.pieces.as_ref();
    let files: Vec<_> = info
        .files
        .as_ref()?
        .iter()
        .map(|f| {
            // (A name that is not UTF-8 matches no file of a plan.)
            let path = f
                .path
                .iter()
                .map(|p| String::from_utf8(p.as_ref().to_vec()).unwrap_or_default())
                .collect::<Vec<_>>();
            let padding = f.attr.as_ref().is_some_and(|a| a.as_ref().contains(&b'p'));
            (path, f.length, padding)
        })
        .collect();
    let mut out = HashMap::new();
    let mut offset = 0u64;
    for (i, (path, len, padding)) in files.iter().enumerate() {
        let start = offset;
        offset += len;
        if *padding || *len == 0 || !start.is_multiple_of(PIECE_LENGTH) {
            continue;
        }
        let first = (start / PIECE_LENGTH) as usize;
        let count = len.div_ceil(PIECE_LENGTH) as usize;
        let Some(bytes) = pieces.get(first * 20..(first + count) * 20) else {
            continue;
        };
        let rest = files[i + 1..].iter().find(|f| f.1 > 0);
        let tail = match rest {
            _ if len.is_multiple_of(PIECE_LENGTH) => Tail::Padded,
            None => Tail::Last,
            Some((_, _, true)) => Tail::Padded,
            Some(_) => Tail::Shared,
        };
        let hashes = bytes
            .chunks_exact(20)
            .map(|c| c.try_into().expect("20 bytes"))
            .collect();
        out.insert(path.clone(), (*len, hashes, tail));
    }
    Some(out)
}

/// Gives `plan` the known piece hashes of every file whose stamp is the one
/// it had when `old` (the previous torrent) was built (`stamps`). Returns
/// how many files will not be read again.
pub(super) fn reuse_unchanged(plan: &mut Plan, old: &[u8], stamps: &FileStamps) -> usize {
    if !plan.is_folder() {
        return 0;
    }
    let Some(known) = hashes_by_file(old) else {
        return 0;
    };
    let then: HashMap<&Vec<String>, &FileStamp> = stamps.iter().map(|(p, s)| (p, s)).collect();
    let now = plan.stamps();
    let mut reused = 0;
    for (i, (path, stamp)) in now.iter().enumerate() {
        let Some((len, hashes, tail)) = known.get(path) else {
            continue;
        };
        if then.get(path) != Some(&stamp) || *len != stamp.len {
            continue;
        }
        let last_here = now[i + 1..].iter().all(|(_, s)| s.len == 0);
        let whole = match tail {
            _ if len.is_multiple_of(PIECE_LENGTH) => true,
            Tail::Padded => !last_here,
            Tail::Last => last_here,
            Tail::Shared => false,
        };
        let usable = if whole {
            hashes.len()
        } else {
            (len / PIECE_LENGTH) as usize // the last piece is read again
        };
        plan.reuse(i, hashes[..usable].to_vec());
        reused += 1;
    }
    reused
}

/// Seconds since the Unix epoch.
pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a rebuild came to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Rebuilt {
    /// A new version replaced `old`.
    Replaced { old: InfoHash, new: InfoHash },
    /// The files hold what they held: only the stamps were renewed.
    Same,
    /// The share was withdrawn (gone, or nothing left to share).
    Withdrawn,
    /// Nothing to do (unshared meanwhile), or it failed and may be retried.
    Skipped(Option<String>),
}

impl Engine {
    /// The share of `path`, if it is one.
    pub(super) fn share_at(&self, path: &Path) -> Option<Record> {
        let state = self.inner.state.lock().unwrap();
        state
            .torrents
            .iter()
            .find(|r| matches!(&r.kind, Kind::Share { path: p, .. } if p == path))
            .cloned()
    }

    /// Withdraws a share whose files are gone, and says why.
    pub(super) async fn withdraw(&self, hash: InfoHash, reason: String) {
        tracing::warn!(%hash, "{reason}");
        let _ = self.remove(&hash, false).await;
        self.inner.events.send(Event::ShareBroken { hash, reason });
    }

    /// Builds the share of `path` again from what is on disk now (reading
    /// only files whose stamps changed) and publishes the new version in
    /// place of the old one.
    pub(super) async fn rebuild(&self, path: &Path) -> Rebuilt {
        let Some(record) = self.share_at(path) else {
            return Rebuilt::Skipped(None);
        };
        let old = record.info_hash;
        if std::fs::symlink_metadata(path).is_err() {
            let reason = format!(
                "{} no longer exists or cannot be read; it is no longer shared",
                path.display()
            );
            self.withdraw(old, reason).await;
            return Rebuilt::Withdrawn;
        }
        // Taken before the files are read, as when it was shared.
        let stamp = Stamp::of(path);
        let dir = self.inner.watch.manifests().to_path_buf();
        let planned = {
            let (path, old_torrent) = (path.to_path_buf(), self.inner.store.load_torrent(&old));
            let stamps = load_manifest(&dir, &old);
            tokio::task::spawn_blocking(move || {
                let mut plan = create::plan(&path)?;
                if let (Some(bytes), Some(stamps)) = (old_torrent, stamps) {
                    let kept = reuse_unchanged(&mut plan, &bytes, &stamps);
                    tracing::debug!(path = %path.display(), kept, "files not read again");
                }
                Ok::<_, String>(plan)
            })
            .await
        };
        let plan = match planned {
            Ok(Ok(plan)) => plan,
            Ok(Err(reason)) if std::fs::symlink_metadata(path).is_err() => {
                self.withdraw(old, reason).await;
                return Rebuilt::Withdrawn;
            }
            Ok(Err(reason)) => return Rebuilt::Skipped(Some(reason)),
            Err(e) => return Rebuilt::Skipped(Some(e.to_string())),
        };
        let stamps = plan.stamps();
        let shown = path.display().to_string();
        tracing::info!(path = %shown, bytes = plan.to_read(), "rebuilding a changed share");
        self.inner.events.send(Event::Hashing {
            path: shown.clone(),
            size: plan.to_read(),
        });
        let started = Instant::now();
        let created = self.hash_share(plan, &record.name, &shown).await;
        self.inner.events.send(Event::HashingDone {
            path: shown.clone(),
            error: created.as_ref().err().map(|e| e.to_string()),
        });
        let created = match created {
            Ok(c) => c,
            Err(e) => return Rebuilt::Skipped(Some(e.to_string())),
        };
        let new = created.info_hash;
        if new == old {
            save_manifest(&dir, &new, &stamps);
            if let Some(r) = self.record(&old) {
                self.upsert(Record { stamp, ..r });
            }
            return Rebuilt::Same;
        }
        if let Err(e) = self.inner.store.save_torrent(&new, &created.torrent) {
            return Rebuilt::Skipped(Some(e.to_string()));
        }
        save_manifest(&dir, &new, &stamps);
        let swapped = {
            let mut state = self.inner.state.lock().unwrap();
            match state.torrents.iter_mut().find(|r| r.info_hash == old) {
                Some(r) => {
                    *r = Record {
                        info_hash: new,
                        size: created.size,
                        kind: Kind::Share {
                            path: path.to_path_buf(),
                            folder: created.output_folder.clone(),
                        },
                        stamp,
                        multi: Some(created.multi),
                        updated_at: Some(unix_now()),
                        replaces: Some(old),
                        ..r.clone()
                    };
                    true
                }
                None => false,
            }
        };
        if !swapped {
            // Unshared while it was rebuilt.
            self.inner.store.remove_torrent(&new);
            remove_manifest(&dir, &new);
            return Rebuilt::Skipped(None);
        }
        // (The journal: the old version's record goes, the new one's comes.)
        self.persist(&old);
        self.persist(&new);
        self.inner.store.remove_torrent(&old);
        remove_manifest(&dir, &old);
        tracing::info!(%old, %new, took = ?started.elapsed(), "published the new version of {shown}");
        self.changed();
        self.inner.events.send(Event::ShareUpdated {
            old,
            new,
            name: record.name.clone(),
        });
        self.retire(old);
        Rebuilt::Replaced { old, new }
    }

    /// Keeps the replaced version `old` seeding while a contact is still
    /// taking bytes of it, then drops it from the session (the files stay).
    fn retire(&self, old: InfoHash) {
        self.inner.watch.set_retiring(old, true);
        let engine = std::sync::Arc::downgrade(&self.inner);
        let stop = self.inner.stop.clone();
        tokio::spawn(async move {
            let mut last_upload = None;
            let mut idle_since = Instant::now();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RETIRE_CHECK_EVERY) => {}
                }
                let Some(inner) = engine.upgrade() else {
                    return;
                };
                let e = Engine { inner };
                let Some(handle) = e.inner.session.get(id20(&old).into()) else {
                    e.inner.watch.set_retiring(old, false);
                    return;
                };
                let stats = handle.stats();
                let peers = handle.live().map_or(0, |l| {
                    l.per_peer_stats_snapshot(Default::default()).peers.len()
                });
                if last_upload != Some(stats.uploaded_bytes) {
                    idle_since = Instant::now();
                    last_upload = Some(stats.uploaded_bytes);
                }
                if peers == 0 || idle_since.elapsed() >= RETIRE_IDLE {
                    tracing::info!(%old, "the replaced version is no longer fetched; dropping it");
                    if let Err(err) = e.inner.session.delete(id20(&old).into(), false).await {
                        tracing::warn!(%old, "cannot drop the replaced version: {err:#}");
                    }
                    e.inner.watch.set_retiring(old, false);
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests;
