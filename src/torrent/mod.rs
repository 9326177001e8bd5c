//! The BitTorrent engine on librqbit: share files and folders in place,
//! download by info hash from the contacts who have it, feed sources found
//! later into running torrents, and survive restarts.
//!
//! No DHT, no public trackers, no local service discovery: the only peers
//! are the addresses our contacts published (see `tracker.rs` for how they
//! reach running torrents). Not here: what we publish (the XMPP session) and
//! which addresses are ours (`addresses`).

mod create;
mod safety;
mod stats;
mod storage;
mod store;
mod tracker;

use stats::share_problem;

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use librqbit::dht::Id20;
use librqbit::storage::StorageFactoryExt;
use librqbit::{
    AddTorrent, AddTorrentOptions, AddTorrentResponse, ConnectionOptions, ListenerMode,
    ListenerOptions, ManagedTorrent, Session, SessionOptions, SessionPersistenceConfig,
};
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventBus};
pub use crate::events::{Peer, Transfer, TransferKind, TransferState};
use crate::net::PeerPaths;
use crate::shares::{Catalog, InfoHash, Share, ShareName};
pub use safety::{check_file_names, MAX_FILES};
pub use storage::{available_space, fresh_target};
use storage::{Access, Layout, SafeStorageFactory};
pub use store::{Kind, Record, Stamp};
pub use tracker::ANNOUNCE_INTERVAL;

/// How long one attempt to fetch a torrent's metadata from its sources may
/// take before we wait for new sources and try again.
const METADATA_ATTEMPT: Duration = Duration::from_secs(30);
/// How often transfer statistics are sent as events.
pub(crate) const STATS_EVERY: Duration = Duration::from_secs(1);
/// How often shared files are checked for changes on disk.
pub const SHARE_CHECK_EVERY: Duration = Duration::from_secs(5);

/// How often hashing reports its progress.
const HASHING_PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// librqbit's fastresume folder inside the data dir (emptied at start).
const RESUME_DIR: &str = "resume";

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where the engine keeps its state (`torrents.json`, metainfo files).
    pub data_dir: PathBuf,
    /// Where downloads go unless a download names another folder.
    pub download_dir: PathBuf,
    /// The BitTorrent port; 0 picks a free one on first start and keeps it.
    pub listen_port: u16,
    /// Upload limit in bytes per second for the whole session (None: none).
    pub upload_limit: Option<std::num::NonZeroU32>,
    /// Download limit in bytes per second for the whole session.
    pub download_limit: Option<std::num::NonZeroU32>,
    /// Contacts' loopback addresses may be dialed. `Service` allows them
    /// only when this is set *and* our own XMPP server is on this machine
    /// (tests, the demo); false refuses them always (tests of the punched
    /// and relayed paths on loopback).
    pub allow_loopback_peers: bool,
    /// Make and accept relayed connections (through the XMPP servers'
    /// bytestream proxies, whose operators could read the bytes, as any
    /// network on a direct path could).
    pub relay: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            data_dir: crate::paths::data_dir(),
            download_dir: crate::paths::download_dir(),
            listen_port: 0,
            upload_limit: None,
            download_limit: None,
            allow_loopback_peers: true,
            relay: true,
        }
    }
}

impl EngineConfig {
    /// The platform's Downloads folder + `Bitween`.
    pub fn default_download_dir() -> PathBuf {
        crate::paths::download_dir()
    }
}

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
    /// Held while a save takes its snapshot of `state` and writes it, so
    /// saves happen one at a time and the last one writes the newest state.
    saving: Mutex<()>,
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

/// Writes librqbit's fastresume bitfield for a torrent of `pieces` pieces
/// that are all present: one bit per piece, most significant bit first,
/// the bits past the last piece clear (as librqbit's own check leaves them).
fn write_full_bitfield(dir: &Path, hash: &InfoHash, pieces: usize) -> std::io::Result<()> {
    let mut bits = vec![0xffu8; pieces.div_ceil(8)];
    if let (Some(last), rest @ 1..) = (bits.last_mut(), pieces % 8) {
        *last = 0xffu8 << (8 - rest);
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{:?}.bitv", id20(hash))), bits)
}

/// The running torrent librqbit answered an add with, if it is `hash`'s.
fn handle_of(added: AddTorrentResponse, hash: &InfoHash) -> Option<ManagedTorrentHandle> {
    added
        .into_handle()
        .filter(|handle| handle.info_hash().0 == hash.0)
}

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Engine(format!("{e:#}"))
}

/// The librqbit session settings of every Bitween session before what
/// Bitween adds to them (its local tracker and the path layer that carries
/// outgoing connections): no DHT and no local service discovery,
/// fastresume with librqbit's JSON persistence in the data dir's `resume`
/// folder, TCP and uTP on `port` of every address, no port forwarding of
/// librqbit's own, the rate limits. The benchmark of librqbit alone (`benches/system.rs`)
/// starts its sessions from these too, so both sides of that comparison
/// run the same session.
pub fn base_session_options(config: &EngineConfig, port: u16) -> SessionOptions {
    SessionOptions {
        dht: None,
        disable_trackers: false,
        disable_local_service_discovery: true,
        fastresume: true,
        persistence: Some(SessionPersistenceConfig::Json {
            folder: Some(config.data_dir.join(RESUME_DIR)),
        }),
        listen: Some(ListenerOptions {
            mode: ListenerMode::TcpAndUtp,
            listen_addr: (Ipv6Addr::UNSPECIFIED, port).into(),
            // Port mapping is ours (`addresses::upnp`, `natpmp`):
            // librqbit's forwarder knows only WANIPConnection:1 and
            // reports neither the external address nor the port.
            enable_upnp_port_forwarding: false,
            ..Default::default()
        }),
        ratelimits: librqbit::limits::LimitsConfig {
            upload_bps: config.upload_limit,
            download_bps: config.download_limit,
        },
        ..Default::default()
    }
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
        let session = Self::session(&config, tracker.url(), &paths, wanted).await;
        // A saved port may be taken now: fall back to a fresh one.
        let session = match session {
            Ok(s) => s,
            Err(e) if config.listen_port == 0 && wanted != 0 => {
                tracing::warn!("port {wanted} is not available ({e}); picking another");
                Self::session(&config, tracker.url(), &paths, 0).await?
            }
            Err(e) => return Err(e),
        };
        let port = session
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
                download_dir: config.download_dir.clone(),
                resume_dir: config.data_dir.join(RESUME_DIR),
                next_id: AtomicUsize::new(0),
                port,
                fetching: Mutex::new(HashMap::new()),
                watchers: Mutex::new(HashMap::new()),
                stop,
            }),
        };
        tracing::info!(port, "BitTorrent engine listening");
        // The path layer answers contacts' requests only for torrents we
        // serve, and splices what arrives into our listener.
        let weak = Arc::downgrade(&engine.inner);
        engine.inner.paths.set_engine(
            Arc::new(move |hash: &InfoHash| {
                weak.upgrade()
                    .is_some_and(|inner| Engine { inner }.record(hash).is_some())
            }),
            port,
        );
        // Saved torrents come back in the background: start-up does not wait
        // for their files to be checked.
        let restoring = engine.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                for record in state.torrents {
                    restoring.restore(record).await;
                }
            },
            tracing::info_span!("restore"),
        ));
        engine.spawn_stats();
        engine.spawn_share_check();
        Ok(engine)
    }

    async fn session(
        config: &EngineConfig,
        tracker_url: &str,
        paths: &PeerPaths,
        port: u16,
    ) -> Result<Arc<Session>, EngineError> {
        // librqbit's own persistence is used for one thing only: the piece
        // bitfields of fastresume, so that a share we have just hashed
        // starts seeding without a second full read (see `share`). The
        // engine keeps its own list of torrents (`store`), so librqbit's is
        // emptied before every start: it restores nothing, and every torrent
        // restored by the engine is checked in full as before.
        let resume = config.data_dir.join(RESUME_DIR);
        if let Err(e) = std::fs::remove_dir_all(&resume) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(EngineError::Engine(format!(
                    "cannot clear {}: {e}; remove that folder and start again",
                    resume.display()
                )));
            }
        }
        let mut opts = base_session_options(config, port);
        opts.trackers = [tracker_url.parse().expect("our tracker URL parses")].into();
        // Every outgoing peer connection (and the announce to our own
        // tracker) goes through the path layer, which connects only to
        // contacts who list the torrent (`crate::net`).
        opts.connect = Some(ConnectionOptions {
            proxy_url: Some(paths.proxy_url()),
            // The path layer may try direct, then punched, then
            // relayed before the peer's handshake can come back.
            peer_opts: Some(librqbit::PeerConnectionOptions {
                connect_timeout: Some(Duration::from_secs(20)),
                read_write_timeout: Some(Duration::from_secs(30)),
                ..Default::default()
            }),
            ..Default::default()
        });
        Session::new_with_opts(config.download_dir.clone(), opts)
            .await
            .map_err(|e| {
                EngineError::Engine(format!("cannot start BitTorrent on port {port}: {e:#}"))
            })
    }

    /// The port peers reach us on.
    pub fn listen_port(&self) -> u16 {
        self.inner.port
    }

    /// The path layer (for the XMPP side's signalling and the addresses).
    pub fn paths(&self) -> &PeerPaths {
        &self.inner.paths
    }

    /// Writes the torrent list. Saves are serialized and each one snapshots
    /// the list once it has its turn, so an older snapshot can never land
    /// after a newer one.
    fn save(&self) {
        let _turn = self.inner.saving.lock().unwrap();
        let state = self.inner.state.lock().unwrap().clone();
        if let Err(e) = self.inner.store.save(&state) {
            tracing::error!("cannot save the torrent list: {e}");
        }
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
        self.save();
    }

    fn forget(&self, hash: &InfoHash) {
        self.inner
            .state
            .lock()
            .unwrap()
            .torrents
            .retain(|r| r.info_hash != *hash);
        self.save();
        self.inner.store.remove_torrent(hash);
    }

    /// What we publish: every share, and every download whose metadata we
    /// have (a downloader is a source too).
    pub fn local_shares(&self) -> Vec<Share> {
        let state = self.inner.state.lock().unwrap();
        state
            .torrents
            .iter()
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
                Some(Share {
                    hash: r.info_hash,
                    name: ShareName::new(&r.name).ok()?,
                    size: r.size,
                })
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

    // ----- sharing ---------------------------------------------------------

    /// Hashes `path` (a file or a folder) in place and seeds it. Sharing the
    /// same path again returns the existing share.
    pub async fn share(&self, path: &Path) -> Result<Share, EngineError> {
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
        self.inner.events.send(Event::Hashing {
            path: shown.clone(),
            size: plan.size,
        });
        let created = self.hash_and_seed(plan, &name, &shown).await;
        self.inner.events.send(Event::HashingDone {
            path: shown,
            error: created.as_ref().err().map(|e| e.to_string()),
        });
        let (created, handle) = created?;
        let hash = created.info_hash;
        self.inner
            .store
            .save_torrent(&hash, &created.torrent)
            .map_err(err)?;
        // librqbit opens the files for writing (which touches their
        // modification time), so the stamp is taken once it has.
        handle.wait_until_initialized().await.map_err(err)?;
        let stamp = Stamp::of(&path);
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
        });
        self.changed();
        Ok(Share {
            hash,
            name: share_name,
            size,
        })
    }

    /// Builds the torrent of what `plan` lists by reading it once
    /// (`create`), then seeds it. The pieces were hashed a moment ago, so librqbit is told
    /// (through its fastresume bitfield) that all of them are there: it
    /// samples a few pieces instead of reading everything a second time.
    async fn hash_and_seed(
        &self,
        plan: create::Plan,
        name: &str,
        shown: &str,
    ) -> Result<(create::Created, ManagedTorrentHandle), EngineError> {
        let failed =
            |e: &dyn std::fmt::Display| EngineError::Engine(format!("cannot share {shown}: {e:#}"));
        let size = plan.size;
        let created = {
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
            .map_err(EngineError::BadPath)?
        };
        if let Err(e) =
            write_full_bitfield(&self.inner.resume_dir, &created.info_hash, created.pieces)
        {
            // Only costs the second read this avoids.
            tracing::warn!(hash = %created.info_hash, "cannot write the fastresume bitfield: {e}");
        }
        let peers = self.inner.paths.peers_for(&created.info_hash);
        let layout = share_layout(&created.output_folder, name, created.multi);
        let storage = SafeStorageFactory::new(layout.clone(), Access::Seed);
        let added = self
            .inner
            .session
            .add_torrent(
                AddTorrent::TorrentFileBytes(created.torrent.clone().into()),
                Some(self.add_options(storage, &layout, peers, false)),
            )
            .await
            .map_err(|e| failed(&e))?;
        let handle = handle_of(added, &created.info_hash)
            .ok_or_else(|| failed(&"the BitTorrent session did not take it"))?;
        Ok((created, handle))
    }

    fn refuse_unfinished_download(&self, path: &Path) -> Result<(), EngineError> {
        for t in self.transfers() {
            if t.kind == TransferKind::Download
                && t.state != TransferState::Seeding
                && path.starts_with(&t.path)
            {
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

    async fn remove(&self, hash: &InfoHash, delete_files: bool) -> Result<(), EngineError> {
        let known = self.record(hash).is_some();
        if let Some(token) = self.inner.fetching.lock().unwrap().remove(hash) {
            token.cancel();
        }
        if let Some(token) = self.inner.watchers.lock().unwrap().remove(hash) {
            token.cancel();
        }
        if self.inner.session.get(id20(hash).into()).is_some() {
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

    // ----- downloading -------------------------------------------------------

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
        });
        self.spawn_fetch(hash);
        Ok(())
    }

    fn spawn_fetch(&self, hash: InfoHash) {
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
        let list = tokio::time::timeout(
            METADATA_ATTEMPT,
            self.inner.session.add_torrent(
                AddTorrent::from_url(magnet),
                Some(AddTorrentOptions {
                    list_only: true,
                    initial_peers: Some(peers.clone()),
                    ..Default::default()
                }),
            ),
        )
        .await
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
        let (top, reopen) = match &record.target {
            Some(t) => (t.clone(), true),
            None => (
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
        let storage = SafeStorageFactory::new(layout.clone(), Access::Download { reopen });
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
        let handle = handle_of(added, &hash).ok_or_else(|| Retry("not added".into()))?;
        let size = handle.stats().total_bytes;
        if layout.top.file_name() != Some(std::ffi::OsStr::new(&name)) {
            tracing::info!(%hash, "{name:?} is saved as {}: that name was taken", layout.top.display());
        }
        self.upsert(Record {
            name,
            size,
            target: Some(layout.top),
            multi: Some(multi),
            ..record
        });
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
    fn watch_completion(&self, hash: InfoHash, handle: ManagedTorrentHandle) {
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
        self.save();
        self.inner.watchers.lock().unwrap().remove(hash);
        self.inner
            .events
            .send(Event::DownloadFinished { hash: *hash, name });
    }

    /// Re-adds a saved torrent after a restart: shares seed again (their
    /// files are checked first), downloads continue from their verified
    /// pieces.
    async fn restore(&self, record: Record) {
        let hash = record.info_hash;
        let Some(bytes) = self.inner.store.load_torrent(&hash) else {
            if matches!(record.kind, Kind::Download { .. }) {
                self.spawn_fetch(hash);
            }
            return;
        };
        if let Kind::Share { path, .. } = &record.kind {
            if let Some(reason) = share_problem(path, record.stamp) {
                tracing::warn!(path = %path.display(), "{reason}");
                self.forget(&hash);
                self.inner.events.send(Event::ShareBroken { hash, reason });
                self.changed();
                return;
            }
            // Opening the files again touches them: the stamp is renewed
            // once the check after this restart has passed.
            self.upsert(Record {
                stamp: None,
                ..record.clone()
            });
        }
        let multi = match record.multi {
            Some(m) => m,
            None => match librqbit_core::torrent_metainfo::torrent_from_bytes(&bytes) {
                Ok(t) => t.info.data.files.is_some(),
                Err(e) => {
                    tracing::error!(%hash, "cannot restore {}: its saved torrent is damaged ({e})", record.name);
                    return;
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
                if let Some(handle) = handle_of(added, &hash) {
                    if let Kind::Share { path, .. } = &record.kind {
                        self.verify_share(hash, path.clone(), handle);
                    } else if !record.finished && !record.paused {
                        self.watch_completion(hash, handle);
                    }
                }
            }
            Err(e) => tracing::error!(%hash, "cannot restore {}: {e:#}", record.name),
        }
    }

    /// After the check that follows a restart: a share whose files no
    /// longer match its hashes is unshared (never serve bad data).
    fn verify_share(&self, hash: InfoHash, path: PathBuf, handle: ManagedTorrentHandle) {
        let engine = self.clone();
        tokio::spawn(async move {
            if handle.wait_until_initialized().await.is_err() {
                return;
            }
            let stats = handle.stats();
            if stats.progress_bytes == stats.total_bytes {
                if let Some(r) = engine.record(&hash) {
                    engine.upsert(Record {
                        stamp: Stamp::of(&path),
                        ..r
                    });
                }
            } else {
                tracing::warn!(path = %path.display(), "a shared file changed on disk; unsharing it");
                let _ = engine.remove(&hash, false).await;
                engine.inner.events.send(Event::ShareBroken {
                    hash,
                    reason: format!(
                        "{} changed on disk since it was shared; share it again to publish the new content",
                        path.display()
                    ),
                });
            }
        });
    }

    // ----- control and statistics -----------------------------------------

    fn handle(&self, hash: &InfoHash) -> Result<ManagedTorrentHandle, EngineError> {
        self.inner
            .session
            .get(id20(hash).into())
            .ok_or(EngineError::Unknown(*hash))
    }

    pub async fn pause(&self, hash: &InfoHash) -> Result<(), EngineError> {
        let h = self.handle(hash)?;
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
        let h = self.handle(hash)?;
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

/// Where a share's content is: the shared file, or the shared folder
/// (`output_folder` is the file's parent, or the folder itself).
fn share_layout(output_folder: &Path, name: &str, multi: bool) -> Layout {
    Layout {
        top: if multi {
            output_folder.to_path_buf()
        } else {
            output_folder.join(name)
        },
        multi,
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

enum FetchError {
    Retry(String),
    Fatal(String),
}
use FetchError::{Fatal, Retry};

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
