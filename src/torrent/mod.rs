//! The BitTorrent engine on librqbit: share files and folders in place,
//! download by info hash from the contacts who have it, feed sources found
//! later into running torrents, and survive restarts.
//!
//! No DHT, no public trackers, no local service discovery: the only peers
//! are the addresses our contacts published (see `tracker.rs` for how they
//! reach running torrents). Not here: what we publish (the XMPP session) and
//! which addresses are ours (`addresses`).
//!
//! Here: the engine's state and the calls on a torrent (pause, resume,
//! cancel, restore after a restart); `share` and `download` add torrents,
//! `session` sets up librqbit and the listener on the public port, `stats`
//! reports and checks shares on disk, `idle` keeps own shares nobody uses
//! out of librqbit, `records` journals changes of the list and finds
//! running torrents.

mod config;
mod create;
mod download;
mod idle;
mod rebuild;
mod records;
mod safety;
mod session;
mod share;
use share::write_full_bitfield;
mod stats;
mod storage;
mod store;
mod tracker;
mod update;
mod watch;

use stats::{on_disk, OnDisk};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use librqbit::dht::Id20;
use librqbit::storage::StorageFactoryExt;
use librqbit::{AddTorrent, AddTorrentOptions, ManagedTorrent, Session};
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventBus};
pub use crate::events::{Peer, Transfer, TransferKind, TransferState};
use crate::net::PeerPaths;
use crate::shares::{Audience, Catalog, InfoHash, Share, ShareName};
pub use config::EngineConfig;
pub use create::{hash_path, hashing_threads};
pub use idle::IDLE_UNLOAD;
pub use safety::{check_file_names, MAX_FILES};
pub use session::base_session_options;
pub use storage::{available_space, fresh_target};
use storage::{Access, Layout, SafeStorageFactory};
pub use store::{Kind, Record, Stamp};
pub use tracker::ANNOUNCE_INTERVAL;
pub use watch::{QUIET as WATCH_QUIET, QUIET_ENV as WATCH_QUIET_ENV};

/// How often transfer statistics are sent as events.
pub(crate) const STATS_EVERY: Duration = Duration::from_secs(1);
/// How often shared files are checked for changes on disk.
pub const SHARE_CHECK_EVERY: Duration = Duration::from_secs(5);

/// librqbit's fastresume folder inside the data dir (emptied at start).
const RESUME_DIR: &str = "resume";

/// A clear, user-facing engine error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    BadPath(String),
    #[error("no torrent {0} here")]
    Unknown(InfoHash),
    #[error("{0}")]
    Engine(String),
}

struct Inner {
    session: Arc<Session>,
    /// Every outgoing peer connection goes through it.
    paths: PeerPaths,
    tracker_url: String,
    catalog: Catalog,
    events: EventBus,
    store: store::Store,
    state: Mutex<store::State>,
    /// Held while a change to `state` is written to the store (`persist`),
    /// so writes happen one at a time and the last one is the newest.
    saving: Mutex<()>,
    /// How many shares are being made right now (see `is_sharing`).
    sharing: AtomicUsize,
    /// The id librqbit knows each running torrent by (see `live`).
    ids: Mutex<HashMap<InfoHash, usize>>,
    download_dir: PathBuf,
    /// librqbit's fastresume folder (`RESUME_DIR`).
    resume_dir: PathBuf,
    /// The id of the next torrent added to the session (see `add_options`).
    next_id: AtomicUsize,
    port: u16,
    /// Downloads still fetching their metadata, and how to stop them.
    fetching: Mutex<HashMap<InfoHash, CancellationToken>>,
    /// Completion watchers of running downloads, and how to stop them.
    watchers: Mutex<HashMap<InfoHash, CancellationToken>>,
    /// Shares watched for changes, rebuilt and replaced (`watch.rs`).
    watch: watch::Watch,
    /// Held while an idle share is loaded or unloaded (`idle`), and while a
    /// share is taken out and added again to be verified.
    loading: tokio::sync::Mutex<()>,
    /// Saved torrents the restart has not looked at yet (`idle`).
    unsorted: Mutex<std::collections::HashSet<InfoHash>>,
    /// Since when each loaded own share has had no peer wanting it.
    quiet_since: Mutex<HashMap<InfoHash, std::time::Instant>>,
    idle_unload: Duration,
    stop: CancellationToken,
}

/// The engine handle; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

type ManagedTorrentHandle = Arc<ManagedTorrent>;

fn id20(h: &InfoHash) -> Id20 {
    Id20::new(h.0)
}

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Engine(format!("{e:#}"))
}

impl Engine {
    /// Starts the session, the local tracker and every saved torrent.
    pub async fn start(
        config: EngineConfig,
        catalog: Catalog,
        events: EventBus,
    ) -> Result<Engine, EngineError> {
        let store = store::Store::open(&config.data_dir).map_err(|e| {
            EngineError::BadPath(format!(
                "cannot use the data folder {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let mut state = store.load().map_err(EngineError::Engine)?;
        crate::paths::check_download_dir(&config.download_dir).map_err(EngineError::BadPath)?;
        std::fs::create_dir_all(&config.download_dir).map_err(|e| {
            EngineError::BadPath(format!(
                "cannot create the download folder {}: {e}",
                config.download_dir.display()
            ))
        })?;
        let stop = CancellationToken::new();
        let paths = PeerPaths::start(catalog.clone(), config.allow_loopback_peers, stop.clone())
            .await
            .map_err(err)?;
        let tracker = tracker::LocalTracker::start(paths.clone(), stop.clone())
            .await
            .map_err(err)?;
        paths.allow_passthrough(tracker.addr());
        paths.set_relay(config.relay);
        let wanted = match config.listen_port {
            0 => state.listen_port,
            p => p,
        };
        // Peers connect to our listener on the public port; librqbit's own
        // is on loopback (`net::splice`).
        let listener = session::listen_public(wanted, config.listen_port == 0)?;
        let port = listener.local_addr().map_err(err)?.port();
        let session = Self::session(&config, tracker.url(), &paths).await?;
        let librqbit_port = session
            .listen_addr()
            .map(|a| a.port())
            .ok_or_else(|| EngineError::Engine("the BitTorrent listener did not start".into()))?;
        state.listen_port = port;
        store.save(&state).map_err(err)?;
        let engine = Engine {
            inner: Arc::new(Inner {
                session,
                paths,
                tracker_url: tracker.url().to_string(),
                catalog,
                events,
                store,
                state: Mutex::new(state.clone()),
                saving: Mutex::new(()),
                ids: Mutex::new(HashMap::new()),
                sharing: AtomicUsize::new(0),
                download_dir: config.download_dir.clone(),
                resume_dir: config.data_dir.join(RESUME_DIR),
                next_id: AtomicUsize::new(0),
                port,
                fetching: Mutex::new(HashMap::new()),
                watchers: Mutex::new(HashMap::new()),
                watch: watch::Watch::new(&config.data_dir),
                loading: tokio::sync::Mutex::new(()),
                unsorted: Mutex::new(state.torrents.iter().map(|r| r.info_hash).collect()),
                quiet_since: Mutex::new(HashMap::new()),
                idle_unload: config.idle_unload,
                stop,
            }),
        };
        tracing::info!(port, "BitTorrent engine listening");
        // The path layer answers contacts' requests only for torrents we
        // serve, and splices what arrives into librqbit's listener, once
        // the torrent is live (an idle share is loaded for it).
        let (serving, wake) = engine.path_hooks();
        let (paths, stop) = (&engine.inner.paths, engine.inner.stop.clone());
        paths.set_engine(serving, wake, librqbit_port);
        paths.serve_listener(listener, stop);
        engine.spawn_restore(state.torrents);
        engine.spawn_stats();
        engine.spawn_share_check();
        engine.spawn_unload_idle();
        engine.spawn_watch();
        Ok(engine)
    }

    /// The port peers reach us on.
    pub fn listen_port(&self) -> u16 {
        self.inner.port
    }

    /// The path layer (for the XMPP side's signalling and the addresses).
    pub fn paths(&self) -> &PeerPaths {
        &self.inner.paths
    }

    fn record(&self, hash: &InfoHash) -> Option<Record> {
        let state = self.inner.state.lock().unwrap();
        state
            .torrents
            .iter()
            .find(|r| r.info_hash == *hash)
            .cloned()
    }

    fn upsert(&self, record: Record) {
        let hash = record.info_hash;
        {
            let mut state = self.inner.state.lock().unwrap();
            match state
                .torrents
                .iter_mut()
                .find(|r| r.info_hash == record.info_hash)
            {
                Some(r) => *r = record,
                None => state.torrents.push(record),
            }
        }
        self.persist(&hash);
    }

    fn forget(&self, hash: &InfoHash) {
        let gone = self.record(hash);
        self.inner
            .state
            .lock()
            .unwrap()
            .torrents
            .retain(|r| r.info_hash != *hash);
        self.persist(hash);
        self.inner.store.remove_torrent(hash);
        self.inner.watch.forget(hash, gone);
        self.inner.ids.lock().unwrap().remove(hash);
    }

    /// What we publish: every share, and every download whose metadata we
    /// have (a downloader is a source too).
    pub fn local_shares(&self) -> Vec<Share> {
        self.published(|a| a.is_everyone())
            .into_iter()
            .map(|(share, _)| share)
            .collect()
    }

    /// What we publish only to some contacts (`crate::restricted`), each
    /// with its audience.
    pub fn restricted_shares(&self) -> Vec<(Share, Audience)> {
        self.published(|a| !a.is_everyone())
    }

    /// Who sees the share or download `hash` (none: not ours).
    pub fn audience_of(&self, hash: &InfoHash) -> Option<Audience> {
        self.record(hash).map(|r| r.audience)
    }

    /// What we publish (our shares and what we have downloaded) whose
    /// audience `which` picks.
    fn published(&self, which: impl Fn(&Audience) -> bool) -> Vec<(Share, Audience)> {
        let state = self.inner.state.lock().unwrap();
        state
            .torrents
            .iter()
            .filter(|r| which(&r.audience))
            .filter(|r| r.size > 0 || matches!(r.kind, Kind::Share { .. }))
            .filter(|r| {
                !self
                    .inner
                    .fetching
                    .lock()
                    .unwrap()
                    .contains_key(&r.info_hash)
            })
            .filter_map(|r| {
                let share = Share {
                    hash: r.info_hash,
                    name: ShareName::new(&r.name).ok()?,
                    size: r.size,
                };
                Some((share, r.audience.clone()))
            })
            .collect()
    }

    fn changed(&self) {
        self.inner.events.send(Event::LocalSharesChanged);
    }

    /// How a torrent is added: its files through `storage` (our rules on
    /// what may be read, written or deleted), `peers` to start with.
    fn add_options(
        &self,
        storage: SafeStorageFactory,
        layout: &Layout,
        peers: Vec<SocketAddr>,
        paused: bool,
    ) -> AddTorrentOptions {
        // librqbit's idea of the output folder: a folder torrent's own
        // folder (which makes it ask the storage to remove that folder on
        // cancel-with-delete), a file's parent folder.
        let output_folder = if layout.multi {
            &layout.top
        } else {
            layout.top.parent().unwrap_or(&layout.top)
        };
        let output_folder = output_folder.to_string_lossy().into_owned();
        AddTorrentOptions {
            // With its JSON persistence on, librqbit takes a new torrent's
            // id from what it has saved so far, so two adds at the same
            // moment get the same id and the second is handed the first's
            // torrent. Ids from our own counter are unique.
            preferred_id: Some(self.inner.next_id.fetch_add(1, Ordering::Relaxed)),
            paused,
            // Our storage decides what is opened and how (`storage.rs`);
            // librqbit's own flag is unused by it.
            overwrite: false,
            output_folder: Some(output_folder),
            storage_factory: Some(storage.boxed()),
            force_tracker_interval: Some(ANNOUNCE_INTERVAL),
            initial_peers: Some(peers),
            trackers: Some(vec![self.inner.tracker_url.clone()]),
            ..Default::default()
        }
    }

    async fn remove(&self, hash: &InfoHash, delete_files: bool) -> Result<(), EngineError> {
        let known = self.record(hash).is_some();
        if let Some(token) = self.inner.fetching.lock().unwrap().remove(hash) {
            token.cancel();
        }
        if let Some(token) = self.inner.watchers.lock().unwrap().remove(hash) {
            token.cancel();
        }
        if self.live(hash).is_some() {
            self.inner
                .session
                .delete(id20(hash).into(), delete_files)
                .await
                .map_err(err)?;
        } else if !known {
            return Err(EngineError::Unknown(*hash));
        }
        self.forget(hash);
        self.changed();
        Ok(())
    }

    /// Adds a saved torrent (after a restart, or an idle share that is
    /// wanted): a share whose files are exactly as they were when last
    /// verified (its stamp) seeds again without reading them (librqbit only
    /// samples a piece per file), or, with `idle_ok` and unpaused, stays
    /// idle without even that (`idle`: returns None); any other share is
    /// checked in full first, in the background unless `spawn_check` is
    /// false (the caller awaits it); downloads continue from their verified
    /// pieces. Returns the torrent, once added.
    async fn restore_with(
        &self,
        record: Record,
        spawn_check: bool,
        idle_ok: bool,
    ) -> Option<ManagedTorrentHandle> {
        let hash = record.info_hash;
        // A share's files against its stamp, from one walk over them.
        let disk = match &record.kind {
            Kind::Share { path, .. } => Some(on_disk(path, record.stamp)),
            Kind::Download { .. } => None,
        };
        if idle_ok && !record.paused && matches!(disk, Some(OnDisk::Unchanged)) {
            tracing::debug!(%hash, "{} is unchanged: idle until someone wants it", record.name);
            return None;
        }
        let Some(bytes) = self.inner.store.load_torrent(&hash) else {
            if matches!(record.kind, Kind::Download { .. }) {
                self.spawn_fetch(hash);
            }
            return None;
        };
        if let (Kind::Share { path, .. }, Some(disk)) = (&record.kind, disk) {
            let pieces = match disk {
                // Changed while the app was closed: rebuilt, not withdrawn.
                OnDisk::Broken(_) if self.inner.watch.rebuild_later(path) => return None,
                OnDisk::Broken(reason) => {
                    tracing::warn!(path = %path.display(), "{reason}");
                    self.forget(&hash);
                    self.inner.events.send(Event::ShareBroken { hash, reason });
                    self.changed();
                    return None;
                }
                OnDisk::Unchanged => librqbit_core::torrent_metainfo::torrent_from_bytes(&bytes)
                    .ok()
                    .map(|t| t.info.data.pieces.as_ref().len() / 20),
                OnDisk::Touched | OnDisk::Unconfirmed => None,
            };
            match pieces {
                Some(pieces) => {
                    if let Err(e) = write_full_bitfield(&self.inner.resume_dir, &hash, pieces) {
                        tracing::warn!(%hash, "cannot write the fastresume bitfield: {e}");
                    }
                }
                // Checked in full; the stamp is taken again once the check
                // has passed (`verify_share`).
                None => self.upsert(Record {
                    stamp: None,
                    ..record.clone()
                }),
            }
        }
        let multi = match record.multi {
            Some(m) => m,
            None => match librqbit_core::torrent_metainfo::torrent_from_bytes(&bytes) {
                Ok(t) => t.info.data.files.is_some(),
                Err(e) => {
                    tracing::error!(%hash, "cannot restore {}: its saved torrent is damaged ({e})", record.name);
                    return None;
                }
            },
        };
        let layout = layout_of(&record, multi);
        let access = match record.kind {
            Kind::Share { .. } => Access::Seed,
            // Files this download created before (our record says so).
            Kind::Download { .. } => Access::Download { reopen: true },
        };
        let storage = SafeStorageFactory::new(layout.clone(), access);
        let peers = self.inner.paths.peers_for(&hash);
        match self
            .inner
            .session
            .add_torrent(
                AddTorrent::TorrentFileBytes(bytes.into()),
                Some(self.add_options(storage, &layout, peers, record.paused)),
            )
            .await
        {
            Ok(added) => {
                let handle = self.handle_of(added, &hash)?;
                if let Kind::Share { path, .. } = &record.kind {
                    if spawn_check {
                        self.verify_share(hash, path.clone(), handle.clone());
                    }
                } else if !record.finished && !record.paused {
                    self.watch_completion(hash, handle.clone());
                }
                Some(handle)
            }
            Err(e) => {
                tracing::error!(%hash, "cannot restore {}: {e:#}", record.name);
                None
            }
        }
    }

    // ----- control and statistics -----------------------------------------

    /// The torrent in the session, an idle share loaded first.
    async fn live_handle(&self, hash: &InfoHash) -> Result<ManagedTorrentHandle, EngineError> {
        self.load(hash).await.ok_or(EngineError::Unknown(*hash))
    }

    pub async fn pause(&self, hash: &InfoHash) -> Result<(), EngineError> {
        let h = self.live_handle(hash).await?;
        if !h.is_paused() {
            self.inner.session.pause(&h).await.map_err(err)?;
        }
        if let Some(w) = self.inner.watchers.lock().unwrap().remove(hash) {
            w.cancel();
        }
        if let Some(r) = self.record(hash) {
            self.upsert(Record { paused: true, ..r });
        }
        Ok(())
    }

    pub async fn resume(&self, hash: &InfoHash) -> Result<(), EngineError> {
        let h = self.live_handle(hash).await?;
        if h.is_paused() {
            self.inner.session.unpause(&h).await.map_err(err)?;
        }
        if self.record(hash).is_some_and(|r| !r.finished) {
            self.watch_completion(*hash, h);
        }
        if let Some(r) = self.record(hash) {
            self.upsert(Record { paused: false, ..r });
        }
        Ok(())
    }

    /// Cancels a download (or stops a share), optionally deleting its data.
    /// Deleting the data of a share of the user's own files is refused.
    pub async fn cancel(&self, hash: &InfoHash, delete_data: bool) -> Result<(), EngineError> {
        let record = self.record(hash).ok_or(EngineError::Unknown(*hash))?;
        if delete_data && matches!(record.kind, Kind::Share { .. }) {
            return Err(EngineError::BadPath(
                "this is one of your own shares: unshare it instead; Bitween never deletes your files".into(),
            ));
        }
        self.remove(hash, delete_data).await
    }

    /// Changes the session's upload limit (bytes per second; None: none).
    pub fn set_upload_limit(&self, bps: Option<std::num::NonZeroU32>) {
        self.inner.session.ratelimits.set_upload_bps(bps);
    }

    /// Changes the session's download limit (bytes per second; None: none).
    pub fn set_download_limit(&self, bps: Option<std::num::NonZeroU32>) {
        self.inner.session.ratelimits.set_download_bps(bps);
    }

    /// Stops every torrent and the listener.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        self.inner.session.stop().await;
    }
}

/// Where a recorded torrent's content is on disk, once its metadata is
/// known (`multi`: whether the torrent is a folder). Downloads recorded
/// before `Record::target` existed kept the torrent's folder in `folder`
/// (folder torrents) or wrote the torrent's name into it (single files).
fn layout_of(record: &Record, multi: bool) -> Layout {
    match &record.kind {
        Kind::Share { path, .. } => Layout {
            top: path.clone(),
            multi,
        },
        Kind::Download { folder } => Layout {
            top: match &record.target {
                Some(t) => t.clone(),
                None if multi => folder.clone(),
                None => folder.join(&record.name),
            },
            multi,
        },
    }
}
