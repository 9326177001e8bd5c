//! Idle own shares stay out of librqbit (issue 17: a restart reads no
//! shared bytes, and thousands of shares cost little memory).
//!
//! An own share that nobody transfers is *idle*: it is published and shown
//! as seeding, but it is not a torrent in the librqbit session. A new
//! share, and a new version of a changed one, start idle once hashed
//! (`hash_share`); at a restart a share whose files match their stamp
//! becomes idle at once, without a read (`restore_with`). It is loaded, with its saved full
//! bitfield, when someone wants it: a peer's handshake names it (the path
//! layer asks through [`Engine::wake`]), the user pauses, resumes or
//! verifies it. librqbit then samples a piece per file: that read is paid
//! only for the shares in use. A loaded share with no peer that wants
//! anything from it for [`IDLE_UNLOAD`] is taken out of the session again.
//!
//! Paused shares and downloads are never idle: they stay in the session as
//! before.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::{id20, Engine, Kind, ManagedTorrentHandle};
use crate::net::{Serving, Wake};
use crate::shares::InfoHash;

/// How long a loaded own share may have no peer before it is unloaded.
pub const IDLE_UNLOAD: Duration = Duration::from_secs(300);

impl Engine {
    /// What the path layer asks the engine: whether we serve a torrent
    /// (any we have a record of), and to make one live (`wake`).
    pub(super) fn path_hooks(&self) -> (Serving, Wake) {
        let weak = Arc::downgrade(&self.inner);
        let serving = Arc::new(move |hash: &InfoHash| {
            weak.upgrade().is_some_and(|inner| {
                // (An old version of a watched share seeds on while fetched.)
                inner.watch.is_retiring(hash) || Engine { inner }.record(hash).is_some()
            })
        });
        let weak = Arc::downgrade(&self.inner);
        let wake = Arc::new(move |hash: InfoHash| {
            let weak = weak.clone();
            let woken: BoxFuture<'static, bool> = Box::pin(async move {
                match weak.upgrade() {
                    Some(inner) => Engine { inner }.wake(&hash).await,
                    None => false,
                }
            });
            woken
        });
        (serving, wake)
    }

    /// Brings saved torrents back in the background (start-up does not
    /// wait for their files to be checked); unchanged own shares stay idle.
    /// Until it has looked at a share, the share is shown as checking.
    pub(super) fn spawn_restore(&self, torrents: Vec<super::Record>) {
        let engine = self.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                for record in torrents {
                    let hash = record.info_hash;
                    // (Unless a peer had it loaded already.)
                    if engine.inner.session.get(id20(&hash).into()).is_none() {
                        engine.restore_with(record, true, true).await;
                    }
                    engine.inner.unsorted.lock().unwrap().remove(&hash);
                }
            },
            tracing::info_span!("restore"),
        ));
    }

    /// Whether the restart has not yet looked at the saved torrent `hash`.
    pub(super) fn unsorted(&self, hash: &InfoHash) -> bool {
        self.inner.unsorted.lock().unwrap().contains(hash)
    }

    /// Makes the torrent `hash` live in the session: an idle share is
    /// loaded (checked in full first if its files changed since its stamp).
    /// True once it is live; false for a torrent we do not have, or one
    /// that cannot be loaded.
    pub async fn wake(&self, hash: &InfoHash) -> bool {
        let Some(handle) = self.load(hash).await else {
            return false;
        };
        handle.wait_until_initialized().await.is_ok() && handle.live().is_some()
    }

    /// The torrent `hash` in the session, loaded first if it is an idle
    /// share.
    pub(super) async fn load(&self, hash: &InfoHash) -> Option<ManagedTorrentHandle> {
        let handle = match self.inner.session.get(id20(hash).into()) {
            Some(h) => h,
            None => {
                let _turn = self.inner.loading.lock().await;
                match self.inner.session.get(id20(hash).into()) {
                    Some(h) => h,
                    None => {
                        let record = self.record(hash)?;
                        if !matches!(record.kind, Kind::Share { .. }) {
                            return None;
                        }
                        tracing::info!(%hash, "loading the idle share {}", record.name);
                        self.restore_with(record, true, false).await?
                    }
                }
            }
        };
        // Wanted now: not unloaded before the idle time from here.
        self.inner
            .quiet_since
            .lock()
            .unwrap()
            .insert(*hash, Instant::now());
        Some(handle)
    }

    /// Unloads own shares that nobody wants, every so often.
    pub(super) fn spawn_unload_idle(&self) {
        let engine = Arc::downgrade(&self.inner);
        let stop = self.inner.stop.clone();
        let every =
            (self.inner.idle_unload / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    let Some(inner) = engine.upgrade() else { break };
                    Engine { inner }.unload_idle().await;
                }
            },
            tracing::debug_span!("unload-idle"),
        ));
    }

    /// Unloads each loaded, unpaused own share that has had no peer wanting
    /// anything from it for the idle time.
    async fn unload_idle(&self) {
        let shares: Vec<InfoHash> = {
            let state = self.inner.state.lock().unwrap();
            state
                .torrents
                .iter()
                .filter(|r| matches!(r.kind, Kind::Share { .. }) && !r.paused)
                .map(|r| r.info_hash)
                .collect()
        };
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut quiet = self.inner.quiet_since.lock().unwrap();
            quiet.retain(|h, _| shares.contains(h));
            for hash in shares {
                let Some(handle) = self.inner.session.get(id20(&hash).into()) else {
                    quiet.remove(&hash);
                    continue;
                };
                let since = quiet.entry(hash).or_insert(now);
                if wanted(&handle) {
                    *since = now;
                } else if now.duration_since(*since) >= self.inner.idle_unload {
                    due.push(hash);
                }
            }
        }
        for hash in due {
            let _turn = self.inner.loading.lock().await;
            let Some(handle) = self.inner.session.get(id20(&hash).into()) else {
                continue;
            };
            // A peer may have come (or be on its way in: `load`), or the
            // share been paused, meanwhile.
            let paused = self.record(&hash).is_none_or(|r| r.paused);
            let quiet = self.inner.quiet_since.lock().unwrap().get(&hash).copied();
            let long_quiet = quiet.is_some_and(|t| t.elapsed() >= self.inner.idle_unload);
            if paused || !long_quiet || wanted(&handle) {
                continue;
            }
            match self.inner.session.delete(id20(&hash).into(), false).await {
                Ok(()) => {
                    tracing::info!(%hash, "unloaded the idle share {}", handle.name().unwrap_or_default());
                    self.inner.quiet_since.lock().unwrap().remove(&hash);
                }
                Err(e) => tracing::warn!(%hash, "cannot unload the idle share: {e:#}"),
            }
        }
    }
}

/// Whether a loaded share is in use: being checked, or live with a peer
/// that is not a seeder itself (a seeder wants nothing from us), or
/// uploading.
fn wanted(handle: &ManagedTorrentHandle) -> bool {
    let stats = handle.stats();
    if !matches!(stats.state, librqbit::TorrentStatsState::Live) {
        return !matches!(stats.state, librqbit::TorrentStatsState::Error);
    }
    stats.live.as_ref().is_some_and(|l| {
        let peers = &l.snapshot.peer_stats;
        peers.live > peers.live_seeders || l.upload_speed.mbps > 0.0
    })
}
