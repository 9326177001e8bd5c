//! The engine's settings: where it keeps its state and puts downloads, its
//! port, rate limits, which peers it may dial, and when idle shares leave
//! librqbit.

use std::path::PathBuf;
use std::time::Duration;

use super::IDLE_UNLOAD;

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
    /// How long a loaded own share may go without a peer before it is
    /// unloaded (`idle`); [`IDLE_UNLOAD`] but in tests.
    pub idle_unload: Duration,
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
            idle_unload: IDLE_UNLOAD,
        }
    }
}

impl EngineConfig {
    /// The platform's Downloads folder + `Bitween`.
    pub fn default_download_dir() -> PathBuf {
        crate::paths::download_dir()
    }
}
