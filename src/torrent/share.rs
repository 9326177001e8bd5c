//! Sharing: a file or folder hashed in place (`create`) and seeded,
//! unsharing, and the check after a restart that a share's files still
//! match their hashes. (Not the periodic check of shared files on disk:
//! `stats`.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    create, err, id20, rebuild, Engine, EngineError, Kind, ManagedTorrentHandle, Record, Stamp,
};
use crate::events::Event;
use crate::shares::{Audience, InfoHash, Share, ShareName};

/// How often hashing reports its progress.
const HASHING_PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Where librqbit keeps the fastresume bitfield of `hash` in `dir`.
fn bitfield_path(dir: &Path, hash: &InfoHash) -> PathBuf {
    dir.join(format!("{:?}.bitv", id20(hash)))
}

/// Writes librqbit's fastresume bitfield for a torrent of `pieces` pieces
/// that are all present: one bit per piece, most significant bit first,
/// the bits past the last piece clear (as librqbit's own check leaves them).
pub(super) fn write_full_bitfield(
    dir: &Path,
    hash: &InfoHash,
    pieces: usize,
) -> std::io::Result<()> {
    let mut bits = vec![0xffu8; pieces.div_ceil(8)];
    if let (Some(last), rest @ 1..) = (bits.last_mut(), pieces % 8) {
        *last = 0xffu8 << (8 - rest);
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(bitfield_path(dir, hash), bits)
}

impl Engine {
    /// Hashes `path` (a file or a folder) in place and seeds it, for
    /// everyone. Sharing the same path again returns the existing share.
    pub async fn share(&self, path: &Path) -> Result<Share, EngineError> {
        self.share_for(path, None).await
    }

    /// [`share`](Self::share) for `audience` (none: everyone, or as it was
    /// for a path already shared; given, an existing share is now for it).
    pub async fn share_for(
        &self,
        path: &Path,
        audience: Option<Audience>,
    ) -> Result<Share, EngineError> {
        let _busy = self.sharing();
        let path = std::fs::canonicalize(path)
            .map_err(|e| EngineError::BadPath(format!("cannot share {}: {e}", path.display())))?;
        let meta = std::fs::metadata(&path)
            .map_err(|e| EngineError::BadPath(format!("cannot share {}: {e}", path.display())))?;
        if meta.is_file() {
            std::fs::File::open(&path).map_err(|e| {
                EngineError::BadPath(format!("cannot read {}: {e}", path.display()))
            })?;
        } else if std::fs::read_dir(&path).is_err() {
            return Err(EngineError::BadPath(format!(
                "cannot read the folder {}",
                path.display()
            )));
        }
        let existing = {
            let state = self.inner.state.lock().unwrap();
            state.torrents.iter().find_map(|r| match &r.kind {
                Kind::Share { path: p, .. } if *p == path => Some(r.clone()),
                _ => None,
            })
        };
        if let Some(r) = existing {
            if let Some(audience) = audience {
                self.set_audience(&r.info_hash, audience)?;
            }
            return Ok(Share {
                hash: r.info_hash,
                name: ShareName::new(&r.name).map_err(err)?,
                size: r.size,
            });
        }
        self.refuse_unfinished_download(&path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| EngineError::BadPath(format!("cannot share {}", path.display())))?;
        let share_name = ShareName::new(&name)
            .map_err(|e| EngineError::BadPath(format!("cannot share {}: {e}", path.display())))?;
        tracing::info!(path = %path.display(), "hashing");
        let plan = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || create::plan(&path))
                .await
                .map_err(err)?
                .map_err(EngineError::BadPath)?
        };
        let shown = path.display().to_string();
        let stamps = plan.stamps();
        // Taken before the files are read: one changed while it is hashed
        // no longer matches it, and is checked before it is ever served.
        let stamp = Stamp::of(&path);
        self.inner.events.send(Event::Hashing {
            path: shown.clone(),
            size: plan.size,
        });
        let created = self.hash_share(plan, &name, &shown).await;
        self.inner.events.send(Event::HashingDone {
            path: shown,
            error: created.as_ref().err().map(|e| e.to_string()),
        });
        let created = created?;
        let hash = created.info_hash;
        self.inner
            .store
            .save_torrent(&hash, &created.torrent)
            .map_err(err)?;
        rebuild::save_manifest(self.inner.watch.manifests(), &hash, &stamps);
        let size = created.size;
        self.upsert(Record {
            info_hash: hash,
            name: name.clone(),
            size,
            kind: Kind::Share {
                path: path.clone(),
                folder: created.output_folder.clone(),
            },
            paused: false,
            finished: true,
            stamp,
            target: None,
            multi: Some(created.multi),
            listed_size: None,
            listed_name: None,
            updated_at: Some(rebuild::unix_now()),
            replaces: None,
            audience: audience.unwrap_or_default(),
        });
        self.changed();
        Ok(Share {
            hash,
            name: share_name,
            size,
        })
    }

    /// Makes the share or download `hash` visible to `audience` from now on
    /// (published with the next burst of changes).
    pub fn set_audience(&self, hash: &InfoHash, audience: Audience) -> Result<(), EngineError> {
        let record = self.record(hash);
        let Some(record) = record else {
            return Err(EngineError::Unknown(*hash));
        };
        if record.audience != audience {
            self.upsert(Record { audience, ..record });
            self.changed();
        }
        Ok(())
    }

    /// Builds the torrent of what `plan` lists by reading it once
    /// (`create`). The new share is then idle (`idle`): it seeds without
    /// being added to librqbit, until a contact wants it. Adding it now
    /// would cost what the share is not yet used for: librqbit's check of a
    /// piece of every file against the bitfield, its open files and its
    /// announces (thousands of new shares ran out of file descriptors).
    pub(super) async fn hash_share(
        &self,
        plan: create::Plan,
        name: &str,
        shown: &str,
    ) -> Result<create::Created, EngineError> {
        let failed =
            |e: &dyn std::fmt::Display| EngineError::Engine(format!("cannot share {shown}: {e:#}"));
        // (A rebuild reads only what changed.)
        let size = plan.to_read();
        let (name, shown) = (name.to_string(), shown.to_string());
        let (events, stop) = (self.inner.events.clone(), self.inner.stop.clone());
        tokio::task::spawn_blocking(move || {
            let mut last = std::time::Instant::now();
            create::create(plan, &name, &mut |done| {
                if last.elapsed() >= HASHING_PROGRESS_EVERY {
                    last = std::time::Instant::now();
                    events.send(Event::HashingProgress {
                        path: shown.clone(),
                        done,
                        size: size.max(done),
                    });
                }
                // A shutdown does not wait for a large file's hashing.
                if stop.is_cancelled() {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            })
        })
        .await
        .map_err(|e| failed(&e))?
        .map_err(EngineError::BadPath)
    }

    fn refuse_unfinished_download(&self, path: &Path) -> Result<(), EngineError> {
        for t in self.unfinished_downloads() {
            if path.starts_with(&t.path) {
                return Err(EngineError::BadPath(format!(
                    "{} is inside the folder of the unfinished download {:?}; share it once it is complete",
                    path.display(),
                    t.name
                )));
            }
        }
        Ok(())
    }

    /// Stops seeding `hash`; the data stays on disk.
    pub async fn unshare(&self, hash: &InfoHash) -> Result<(), EngineError> {
        self.remove(hash, false).await
    }

    /// Checks every piece of a share against its hashes (`bitweenc verify`):
    /// the share is taken out of the session (if it is not idle) and added
    /// again without its bitfield, so librqbit reads all of it. Returns
    /// whether the files still match; a share that does not is unshared, as
    /// after a restart.
    pub async fn verify(&self, hash: &InfoHash) -> Result<bool, EngineError> {
        let record = self.record(hash).ok_or(EngineError::Unknown(*hash))?;
        if !matches!(record.kind, Kind::Share { .. }) {
            return Err(EngineError::Engine(format!(
                "{} is a download: its pieces were checked as they arrived; only shares are verified",
                record.name
            )));
        }
        // No idle share is loaded meanwhile with a bitfield that would
        // spare it the read (`idle`).
        let turn = self.inner.loading.lock().await;
        if self.inner.session.get(id20(hash).into()).is_some() {
            self.inner
                .session
                .delete(id20(hash).into(), false)
                .await
                .map_err(err)?;
        }
        let bitv = bitfield_path(&self.inner.resume_dir, hash);
        if let Err(e) = std::fs::remove_file(&bitv) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(EngineError::Engine(format!(
                    "cannot remove {}: {e}; the check would trust it",
                    bitv.display()
                )));
            }
        }
        let Kind::Share { path, .. } = &record.kind else {
            unreachable!("checked above")
        };
        let handle = self
            .restore_with(
                Record {
                    stamp: None,
                    ..record.clone()
                },
                false,
                false,
            )
            .await
            .ok_or_else(|| {
                EngineError::Engine(format!(
                    "{} could not be added again to check it",
                    record.name
                ))
            })?;
        drop(turn);
        self.check_share(*hash, path.clone(), handle)
            .await
            .ok_or_else(|| {
                EngineError::Engine(format!(
                    "{}'s files could not be read to check them; see the transfer's error",
                    record.name
                ))
            })
    }

    /// After the check that follows a restart: a share whose files no
    /// longer match its hashes is unshared (never serve bad data).
    pub(super) fn verify_share(&self, hash: InfoHash, path: PathBuf, handle: ManagedTorrentHandle) {
        let engine = self.clone();
        tokio::spawn(async move { engine.check_share(hash, path, handle).await });
    }

    /// Waits for a share's check to end, then keeps its new stamp (intact)
    /// or unshares it (changed). `None` if the check itself failed.
    async fn check_share(
        &self,
        hash: InfoHash,
        path: PathBuf,
        handle: ManagedTorrentHandle,
    ) -> Option<bool> {
        handle.wait_until_initialized().await.ok()?;
        let stats = handle.stats();
        if stats.progress_bytes == stats.total_bytes {
            if let Some(r) = self.record(&hash) {
                self.upsert(Record {
                    stamp: Stamp::of(&path),
                    ..r
                });
            }
            return Some(true);
        }
        tracing::warn!(path = %path.display(), "a shared file changed on disk; unsharing it");
        let _ = self.remove(&hash, false).await;
        self.inner.events.send(Event::ShareBroken {
            hash,
            reason: format!(
                "{} changed on disk since it was shared; share it again to publish the new content",
                path.display()
            ),
        });
        Some(false)
    }
}
