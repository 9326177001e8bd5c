//! Live statistics and watchers of the engine: per-transfer figures (as
//! events once a second), completion and failure notices, and the periodic
//! check of shared files on disk: a share whose files vanished is
//! withdrawn, one whose files changed is rebuilt (`watch.rs`: this check is
//! its fallback where watching is unavailable or lost events).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{layout_of, rebuild, Engine, Kind, Record, Stamp, SHARE_CHECK_EVERY, STATS_EVERY};
use crate::events::{Event, PathKind, Peer, Transfer, TransferKind, TransferState};
use crate::shares::InfoHash;

impl Engine {
    /// Every transfer with its live statistics.
    pub fn transfers(&self) -> Vec<Transfer> {
        self.transfers_of(|_| true)
    }

    /// The downloads not finished yet (which a new share may not be inside
    /// of): a look at the few downloads, not at every share.
    pub(super) fn unfinished_downloads(&self) -> Vec<Transfer> {
        self.transfers_of(|r| matches!(r.kind, Kind::Download { .. }) && !r.finished)
            .into_iter()
            .filter(|t| t.state != TransferState::Seeding)
            .collect()
    }

    /// The transfers of the records `keep` picks, with their statistics.
    fn transfers_of(&self, keep: impl Fn(&Record) -> bool) -> Vec<Transfer> {
        let records: Vec<Record> = (self.inner.state.lock().unwrap().torrents.iter())
            .filter(|r| keep(r))
            .cloned()
            .collect();
        let fetching: HashSet<InfoHash> = self
            .inner
            .fetching
            .lock()
            .unwrap()
            .keys()
            .copied()
            .collect();
        records
            .into_iter()
            .map(|r| self.transfer(r, &fetching))
            .collect()
    }

    fn transfer(&self, r: Record, fetching: &HashSet<InfoHash>) -> Transfer {
        let handle = self.live(&r.info_hash);
        let multi = r.multi.or_else(|| {
            let h = handle.as_ref()?;
            let metadata = h.metadata.load();
            Some(metadata.as_ref()?.info.info().files.is_some())
        });
        let (kind, path) = match (&r.kind, multi) {
            (Kind::Share { .. }, Some(m)) | (Kind::Download { .. }, Some(m)) => {
                let kind = if matches!(r.kind, Kind::Share { .. }) {
                    TransferKind::Share
                } else {
                    TransferKind::Download
                };
                (kind, layout_of(&r, m).top)
            }
            (Kind::Share { path, .. }, None) => (TransferKind::Share, path.clone()),
            (Kind::Download { folder }, None) => (TransferKind::Download, folder.clone()),
        };
        let folder = match (&r.kind, multi) {
            (Kind::Download { folder }, None) => folder.clone(),
            _ => path.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        let disk_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let listed_name = r
            .listed_name
            .clone()
            .filter(|l| multi.is_some() && disk_name.as_deref() != Some(l.as_str()));
        let mut t = Transfer {
            hash: r.info_hash,
            name: r.name.clone(),
            kind,
            state: TransferState::FetchingMetadata,
            done_bytes: 0,
            total_bytes: r.size,
            uploaded_bytes: 0,
            fetched_bytes: 0,
            down_bytes_per_sec: 0,
            up_bytes_per_sec: 0,
            eta_secs: None,
            peers: vec![],
            folder,
            path,
            listed_name,
            error: None,
            updated_at: None,
            idle: false,
            is_folder: multi == Some(true),
            audience: r.audience.clone(),
        };
        if let Kind::Share { path, .. } = &r.kind {
            if self.inner.watch.is_watched(path) {
                t.updated_at = r.updated_at;
            }
        }
        if fetching.contains(&r.info_hash) {
            return t;
        }
        let Some(h) = handle else {
            // An own share nobody transfers now seeds without being
            // loaded (`idle`), once the restart found its files unchanged.
            if matches!(r.kind, Kind::Share { .. }) && self.unsorted(&r.info_hash) {
                t.state = TransferState::Checking;
            } else if matches!(r.kind, Kind::Share { .. }) && !r.paused {
                t.state = TransferState::Seeding;
                t.done_bytes = r.size;
                t.idle = true;
            }
            return t;
        };
        let stats = h.stats();
        t.done_bytes = stats.progress_bytes;
        t.total_bytes = stats.total_bytes;
        t.uploaded_bytes = stats.uploaded_bytes;
        t.error = stats.error.clone();
        t.state = match stats.state {
            librqbit::TorrentStatsState::Initializing { .. } => TransferState::Checking,
            librqbit::TorrentStatsState::Paused => TransferState::Paused,
            librqbit::TorrentStatsState::Error => TransferState::Error,
            librqbit::TorrentStatsState::Live if stats.finished => TransferState::Seeding,
            librqbit::TorrentStatsState::Live => TransferState::Downloading,
        };
        if let Some(live) = &stats.live {
            t.fetched_bytes = live.snapshot.fetched_bytes;
            t.down_bytes_per_sec = (live.download_speed.mbps * 1024.0 * 1024.0) as u64;
            t.up_bytes_per_sec = (live.upload_speed.mbps * 1024.0 * 1024.0) as u64;
            if t.down_bytes_per_sec > 0 && t.total_bytes > t.done_bytes {
                t.eta_secs = Some((t.total_bytes - t.done_bytes) / t.down_bytes_per_sec);
            }
        }
        if let Some(live) = h.live() {
            let sources = self.inner.catalog.sources(&r.info_hash);
            let snapshot = live.per_peer_stats_snapshot(Default::default());
            t.peers = snapshot
                .peers
                .keys()
                .map(|key| {
                    let addr: Option<SocketAddr> = key.parse().ok();
                    // A direct peer spliced in from our listener: its
                    // real address.
                    let real = addr.map(|a| self.inner.paths.origin(a).unwrap_or(a));
                    // Our own connections went through the path layer under
                    // a virtual address; it knows whom and how.
                    match addr.and_then(|a| self.inner.paths.describe(&r.info_hash, a)) {
                        Some(p) => Peer {
                            address: p.address.to_string(),
                            contact: Some(p.contact),
                            path: p.path,
                            via: p.via,
                        },
                        None => Peer {
                            address: real.map_or_else(|| key.clone(), |a| a.to_string()),
                            contact: real.and_then(|a| contact_of(&sources, a)),
                            path: PathKind::Direct,
                            via: None,
                        },
                    }
                })
                .collect();
            t.peers.sort_by(|a, b| a.address.cmp(&b.address));
        }
        t
    }

    /// Withdraws shares whose files were deleted, and has those whose files
    /// changed rebuilt (or, for a share made before the files' stamps were
    /// kept whose modification times alone changed, checked in full).
    pub(super) fn spawn_share_check(&self) {
        let engine = Arc::downgrade(&self.inner);
        let stop = self.inner.stop.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut tick = tokio::time::interval(SHARE_CHECK_EVERY);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    let Some(inner) = engine.upgrade() else { break };
                    let e = Engine { inner };
                    let shares: Vec<(InfoHash, PathBuf, Option<Stamp>)> = {
                        let state = e.inner.state.lock().unwrap();
                        state
                            .torrents
                            .iter()
                            .filter_map(|r| match &r.kind {
                                Kind::Share { path, .. } => {
                                    Some((r.info_hash, path.clone(), r.stamp))
                                }
                                _ => None,
                            })
                            .collect()
                    };
                    let manifests = e.inner.watch.manifests().to_path_buf();
                    let (problems, touched, changed) = tokio::task::spawn_blocking(move || {
                        let (mut problems, mut touched, mut changed) =
                            (Vec::new(), Vec::new(), Vec::new());
                        for (hash, path, stamp) in shares {
                            let now = Stamp::of(&path);
                            match on_disk_at(&path, now, stamp) {
                                OnDisk::Broken(reason) if now.is_none() => {
                                    problems.push((hash, reason))
                                }
                                OnDisk::Touched if !rebuild::has_manifest(&manifests, &hash) => {
                                    touched.push(hash)
                                }
                                OnDisk::Broken(_) | OnDisk::Touched => changed.push((path, now)),
                                OnDisk::Unchanged | OnDisk::Unconfirmed => {}
                            }
                        }
                        (problems, touched, changed)
                    })
                    .await
                    .unwrap_or_default();
                    // Rebuilt once quiet (`watch.rs`).
                    for (path, now) in changed {
                        e.inner.watch.changed(&path, now);
                    }
                    // Read in full in the background; withdrawn if the
                    // bytes changed too.
                    for hash in touched {
                        tracing::info!(%hash, "a shared file's modification time changed; checking it");
                        let e = e.clone();
                        tokio::spawn(async move {
                            if let Err(err) = e.verify(&hash).await {
                                tracing::warn!(%hash, "cannot check the share: {err}");
                            }
                        });
                    }
                    for (hash, reason) in problems {
                        tracing::warn!(%hash, "{reason}");
                        let _ = e.remove(&hash, false).await;
                        e.inner.events.send(Event::ShareBroken { hash, reason });
                    }
                }
            },
            tracing::debug_span!("share-check"),
        ));
    }

    pub(super) fn spawn_stats(&self) {
        let engine = Arc::downgrade(&self.inner);
        let stop = self.inner.stop.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut tick = tokio::time::interval(STATS_EVERY);
                let mut failed = HashSet::new();
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    let Some(inner) = engine.upgrade() else { break };
                    let e = Engine { inner };
                    let transfers = e.transfers();
                    e.report_ends(&transfers, &mut failed);
                    if !transfers.is_empty() {
                        e.inner.events.send(Event::Transfers { transfers });
                    }
                }
            },
            tracing::debug_span!("transfer-stats"),
        ));
    }

    /// Announces downloads that completed or failed since the last tick.
    /// (Watched here rather than with librqbit's `wait_until_completed`,
    /// which never returns for a torrent that was paused and resumed.)
    fn report_ends(&self, transfers: &[Transfer], failed: &mut HashSet<InfoHash>) {
        for t in transfers
            .iter()
            .filter(|t| t.kind == TransferKind::Download)
        {
            match t.state {
                TransferState::Seeding => self.announce_finished(&t.hash),
                TransferState::Error if failed.insert(t.hash) => {
                    self.inner.events.send(Event::DownloadFailed {
                        hash: t.hash,
                        reason: t.error.clone().unwrap_or_else(|| "unknown error".into()),
                    });
                }
                _ => {}
            }
        }
    }
}

/// How a share's files compare with the stamp taken when they were last
/// verified, from one walk over them.
pub(super) enum OnDisk {
    /// Gone, unreadable, or other files or sizes: it can no longer be
    /// served as hashed (the reason).
    Broken(String),
    /// The same number and sizes of files, other modification times: the
    /// bytes may be the same (a copy back from a backup, a `touch`), so
    /// they are read in full to know.
    Touched,
    /// Every file exactly as stamped (path, size, modification time and
    /// identity): no need to read it.
    Unchanged,
    /// Looks the same, but no full stamp says so (none saved, or one from
    /// before the digest): reading it is the only proof.
    Unconfirmed,
}

pub(super) fn on_disk(path: &Path, stamp: Option<Stamp>) -> OnDisk {
    on_disk_at(path, Stamp::of(path), stamp)
}

/// [`on_disk`] with the files' stamp `now` already taken.
fn on_disk_at(path: &Path, now: Option<Stamp>, stamp: Option<Stamp>) -> OnDisk {
    let Some(now) = now else {
        return OnDisk::Broken(format!(
            "{} no longer exists or cannot be read; it is no longer shared",
            path.display()
        ));
    };
    let Some(then) = stamp else {
        return OnDisk::Unconfirmed;
    };
    if (now.files, now.bytes) != (then.files, then.bytes) {
        OnDisk::Broken(format!(
            "{} changed on disk since it was shared; it is no longer shared (share it again to publish the new content)",
            path.display()
        ))
    } else if !now.looks_like(&then) {
        OnDisk::Touched
    } else if now.unchanged_since(&then) {
        OnDisk::Unchanged
    } else {
        OnDisk::Unconfirmed
    }
}

/// The contact resource behind a peer address: the one that published
/// exactly this address, or else the only one that published its IP (a peer
/// that connected to us comes from another port).
fn contact_of(sources: &[crate::shares::Source], addr: SocketAddr) -> Option<String> {
    let name = |s: &crate::shares::Source| format!("{}/{}", s.jid, s.resource);
    if let Some(s) = sources.iter().find(|s| s.address == addr) {
        return Some(name(s));
    }
    let mut same_ip = sources
        .iter()
        .filter(|s| s.address.ip() == addr.ip())
        .map(name);
    let first = same_ip.next()?;
    same_ip.all(|n| n == first).then_some(first)
}
