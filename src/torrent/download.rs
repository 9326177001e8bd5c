//! Downloading: a torrent's metadata fetched from the contacts who list
//! it (retried as sources come and go), its file names and size checked,
//! then the download itself, and the moment it completes. (Not where the
//! peers come from: `crate::net` and `tracker`.)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use librqbit::{AddTorrent, AddTorrentOptions, AddTorrentResponse};

use super::storage::{Access, Layout, SafeStorageFactory};
use super::{
    available_space, check_file_names, fresh_target, id20, Engine, EngineError, Kind,
    ManagedTorrentHandle, Record,
};
use crate::events::Event;
use crate::shares::{Audience, InfoHash};

/// How long one attempt to fetch a torrent's metadata from its sources may
/// take before we wait for new sources and try again.
const METADATA_ATTEMPT: Duration = Duration::from_secs(30);

impl Engine {
    /// Starts downloading `hash` from every contact who has it, into
    /// `folder` (default: the download folder). Returns once the download is
    /// registered; metadata, progress and completion arrive as events.
    pub async fn download(
        &self,
        hash: InfoHash,
        folder: Option<PathBuf>,
    ) -> Result<(), EngineError> {
        if self.record(&hash).is_some() {
            return Ok(()); // already shared or downloading
        }
        let folder = folder.unwrap_or_else(|| self.inner.download_dir.clone());
        crate::paths::check_download_dir(&folder).map_err(EngineError::BadPath)?;
        std::fs::create_dir_all(&folder).map_err(|e| {
            EngineError::BadPath(format!(
                "cannot create the folder {}: {e}",
                folder.display()
            ))
        })?;
        let listed = self.inner.catalog.share(&hash);
        let name = listed
            .as_ref()
            .map(|s| s.name.to_string())
            .unwrap_or_else(|| hash.to_hex());
        self.upsert(Record {
            info_hash: hash,
            name: name.clone(),
            size: 0,
            kind: Kind::Download { folder },
            paused: false,
            finished: false,
            stamp: None,
            target: None,
            multi: None,
            listed_size: listed.as_ref().map(|s| s.size),
            listed_name: listed.map(|_| name),
            updated_at: None,
            replaces: None,
            // A share that reached us in a restricted list is not passed on
            // to our contacts: its owner kept it from some of them.
            audience: if self.inner.catalog.from_restricted(&hash) {
                Audience::nobody()
            } else {
                Audience::Everyone
            },
        });
        self.spawn_fetch(hash);
        Ok(())
    }

    pub(super) fn spawn_fetch(&self, hash: InfoHash) {
        let token = self.inner.stop.child_token();
        self.inner
            .fetching
            .lock()
            .unwrap()
            .insert(hash, token.clone());
        let engine = self.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = engine.fetch(hash) => {}
                }
            },
            tracing::info_span!("fetch", %hash),
        ));
    }

    /// Gets the metadata from the sources (retrying as sources come and go),
    /// checks its file names, then starts the real download.
    async fn fetch(&self, hash: InfoHash) {
        let mut events = self.inner.events.subscribe();
        loop {
            let peers = self.inner.paths.peers_for(&hash);
            if !peers.is_empty() {
                match self.fetch_once(hash, peers).await {
                    Ok(()) => return,
                    Err(Fatal(reason)) => {
                        tracing::warn!("download refused: {reason}");
                        self.inner.fetching.lock().unwrap().remove(&hash);
                        let _ = self.inner.session.delete(id20(&hash).into(), false).await;
                        self.forget(&hash);
                        self.inner
                            .events
                            .send(Event::DownloadFailed { hash, reason });
                        return;
                    }
                    Err(Retry(reason)) => {
                        tracing::info!("no metadata yet ({reason}); waiting for sources")
                    }
                    Err(NewSource) => {
                        tracing::info!("a new source appeared; asking again with it");
                        continue;
                    }
                }
            }
            // Wait for the catalog to change (or a while) before trying again.
            let wait = tokio::time::sleep(Duration::from_secs(10));
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    ev = events.recv() => match ev {
                        Ok(Event::ContactSharesChanged { .. } | Event::ContactPresenceChanged { .. }) => break,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(_) => return,
                    },
                }
            }
        }
    }

    /// Returns when the catalog names a source of `hash` that is not in
    /// `known`.
    async fn new_source(&self, hash: &InfoHash, known: &[SocketAddr]) {
        let mut events = self.inner.events.subscribe();
        let news = || {
            self.inner
                .paths
                .peers_for(hash)
                .iter()
                .any(|p| !known.contains(p))
        };
        loop {
            if news() {
                return;
            }
            match events.recv().await {
                Ok(Event::ContactSharesChanged { .. } | Event::ContactPresenceChanged { .. })
                | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    std::future::pending::<()>().await
                }
            }
        }
    }

    async fn fetch_once(&self, hash: InfoHash, peers: Vec<SocketAddr>) -> Result<(), FetchError> {
        let magnet = format!(
            "magnet:?xt=urn:btih:{hash}&tr={}",
            url_escape(&self.inner.tracker_url)
        );
        let Some(record) = self.record(&hash) else {
            return Ok(()); // cancelled meanwhile
        };
        let Kind::Download { folder } = record.kind.clone() else {
            return Ok(());
        };
        // The attempt ends early when a source we did not ask appears (a
        // contact came online with it, or published a new address): it is
        // asked at once, not after this attempt's time is up.
        let request = self.inner.session.add_torrent(
            AddTorrent::from_url(magnet),
            Some(AddTorrentOptions {
                list_only: true,
                initial_peers: Some(peers.clone()),
                ..Default::default()
            }),
        );
        let list = tokio::select! {
            r = tokio::time::timeout(METADATA_ATTEMPT, request) => r,
            () = self.new_source(&hash, &peers) => return Err(NewSource),
        }
        .map_err(|_| Retry("timed out".into()))?
        .map_err(|e| {
            if is_bad_metadata(&e) {
                Fatal(format!(
                    "the metadata from the sources is invalid ({e:#}); nothing was written"
                ))
            } else {
                Retry(format!("{e:#}"))
            }
        })?;
        let AddTorrentResponse::ListOnly(list) = list else {
            return Err(Retry("unexpected answer to a metadata request".into()));
        };
        check_file_names(&list.info).map_err(Fatal)?;
        let multi = list.info.info().files.is_some();
        let name = list
            .info
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|| hash.to_hex());
        let size: u64 = list
            .info
            .iter_file_details()
            .filter(|f| !f.attrs().padding)
            .map(|f| f.len)
            .sum();
        let shown = record.listed_name.as_deref().unwrap_or(&name);
        if let Some(listed) = record.listed_size {
            if listed != size {
                return Err(Fatal(format!(
                    "{shown}'s metadata says {size} bytes, the list said {listed}; nothing was written"
                )));
            }
        }
        check_room(&folder, shown, size).map_err(Fatal)?;
        // A target we created before (a restart while the metadata was
        // being fetched again) is ours to reopen; otherwise a name that
        // nothing exists at.
        // A new version of a folder we downloaded before goes into the
        // same folder: only the changed pieces travel (`update.rs`).
        let earlier = match &record.target {
            None => self.earlier_version(&hash, &folder, &name, &list.info),
            Some(_) => None,
        };
        let (top, reopen) = match (&record.target, &earlier) {
            (Some(t), _) => (t.clone(), true),
            (None, Some(e)) => (e.top.clone(), true),
            (None, None) => (
                fresh_target(&folder, &name, multi).map_err(|e| {
                    Fatal(format!("cannot choose a name in {}: {e}", folder.display()))
                })?,
                false,
            ),
        };
        let layout = Layout { top, multi };
        self.inner
            .store
            .save_torrent(&hash, &list.torrent_bytes)
            .map_err(|e| Retry(e.to_string()))?;
        let mut all_peers = list.seen_peers.clone();
        all_peers.extend(peers);
        let mut storage = SafeStorageFactory::new(layout.clone(), Access::Download { reopen });
        if let Some(e) = &earlier {
            storage = storage.reopening_only(e.ours.clone());
            // The earlier version stops seeding before its files change.
            let _ = self.inner.session.delete(id20(&e.hash).into(), false).await;
            tracing::info!(old = %e.hash, "updating the earlier version in {}", layout.top.display());
        }
        let added = self
            .inner
            .session
            .add_torrent(
                AddTorrent::TorrentFileBytes(list.torrent_bytes.clone()),
                Some(self.add_options(storage.clone(), &layout, all_peers, record.paused)),
            )
            .await;
        let added = match added {
            Ok(added) => added,
            Err(e) => {
                if let Some(earlier) = &earlier {
                    // Seeded again as it was.
                    if let Some(r) = self.record(&earlier.hash) {
                        self.restore_with(r, true, false).await;
                    }
                }
                if storage.created_top() {
                    // Our storage made the target before librqbit failed:
                    // it is ours, and the next attempt reopens it.
                    self.upsert(Record {
                        target: Some(layout.top.clone()),
                        multi: Some(multi),
                        ..record
                    });
                }
                return Err(Retry(format!("{e:#}")));
            }
        };
        let handle = self
            .handle_of(added, &hash)
            .ok_or_else(|| Retry("not added".into()))?;
        let size = handle.stats().total_bytes;
        if layout.top.file_name() != Some(std::ffi::OsStr::new(&name)) {
            tracing::info!(%hash, "{name:?} is saved as {}: that name was taken", layout.top.display());
        }
        self.upsert(Record {
            name,
            size,
            target: Some(layout.top),
            multi: Some(multi),
            replaces: earlier.as_ref().map(|e| e.hash),
            ..record
        });
        if let Some(e) = &earlier {
            self.forget(&e.hash);
        }
        self.inner.fetching.lock().unwrap().remove(&hash);
        // The downloader becomes a source as soon as it has the metadata.
        self.changed();
        self.watch_completion(hash, handle);
        Ok(())
    }

    /// Announces the download's completion the moment it happens (the
    /// stats tick is the backstop). librqbit's `wait_until_completed` holds
    /// the live state it started with, which a pause replaces, so pausing
    /// stops this watcher and resuming starts a new one.
    pub(super) fn watch_completion(&self, hash: InfoHash, handle: ManagedTorrentHandle) {
        let stop = self.inner.stop.child_token();
        if let Some(old) = self
            .inner
            .watchers
            .lock()
            .unwrap()
            .insert(hash, stop.clone())
        {
            old.cancel();
        }
        let engine = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                r = handle.wait_until_completed() => {
                    if let (Ok(()), Some(inner)) = (r, engine.upgrade()) {
                        Engine { inner }.announce_finished(&hash);
                    }
                }
            }
        });
    }

    /// Marks a download finished and says so, once.
    pub(crate) fn announce_finished(&self, hash: &InfoHash) {
        let name = {
            let mut state = self.inner.state.lock().unwrap();
            let Some(r) = state.torrents.iter_mut().find(|r| r.info_hash == *hash) else {
                return;
            };
            if r.finished || !matches!(r.kind, Kind::Download { .. }) {
                return;
            }
            r.finished = true;
            r.name.clone()
        };
        self.persist(hash);
        self.inner.watchers.lock().unwrap().remove(hash);
        self.inner
            .events
            .send(Event::DownloadFinished { hash: *hash, name });
    }
}

/// Whether an error is librqbit refusing the torrent's metadata itself
/// (its hash matched, so the same bytes would be refused again): a fatal
/// refusal, not a reason to retry.
fn is_bad_metadata(e: &anyhow::Error) -> bool {
    use librqbit_core::Error as E;
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<E>(),
            Some(
                E::BadTorrentMultiFileEmpty
                    | E::BadTorrentFileNoName
                    | E::BadTorrentBothSingleAndMultiFile
                    | E::BadTorrentPathTraversal
                    | E::BadTorrentSeparatorInName
                    | E::BadTorrentZeroLength
                    | E::BadTorrentNoFiles
                    | E::BadTorrentDuplicateFilenames
                    | E::BadTorrentEmptyFilename
            )
        )
    })
}

/// Refuses a download of `size` bytes that does not fit in `folder`,
/// naming both sizes.
fn check_room(folder: &Path, name: &str, size: u64) -> Result<(), String> {
    use crate::units::human_size;
    match available_space(folder) {
        Ok(free) if free < size => Err(format!(
            "{name} needs {} ({size} bytes) but {} has only {} free; make room or choose another download folder; nothing was written",
            human_size(size),
            folder.display(),
            human_size(free)
        )),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(folder = %folder.display(), "cannot tell the free space: {e}");
            Ok(())
        }
    }
}

enum FetchError {
    /// Try again when the sources change (or after a while).
    Retry(String),
    /// A source we did not ask has appeared: try again at once.
    NewSource,
    /// Give up: the download is refused, with the reason.
    Fatal(String),
}
use FetchError::{Fatal, NewSource, Retry};

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
