//! The librqbit session under the engine: the settings every Bitween
//! session starts from (shared with the benchmark of librqbit alone), and
//! starting one on a port with its fastresume folder emptied first.

use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

use librqbit::{
    ConnectionOptions, ListenerMode, ListenerOptions, Session, SessionOptions,
    SessionPersistenceConfig,
};

use super::{Engine, EngineConfig, EngineError, RESUME_DIR};
use crate::net::PeerPaths;

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
    pub(super) async fn session(
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
}
