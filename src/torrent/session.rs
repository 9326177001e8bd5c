//! The librqbit session under the engine: the settings every Bitween
//! session starts from (shared with the benchmark of librqbit alone),
//! starting one with its fastresume folder emptied first and its listener
//! on loopback, and our listener on the public BitTorrent port (TCP, every
//! address) that peers connect to (`net::splice` hands them to librqbit).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
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
/// folder, TCP and uTP on `port` of every address (the engine moves it to
/// loopback, TCP only: see `Engine::session`), no port forwarding of
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
        // Peers reach librqbit only through our listener (`bind_public`),
        // which reads their handshake first: librqbit's own listener is on
        // loopback, TCP only (no incoming uTP: see `net::splice`).
        let mut opts = base_session_options(config, 0);
        opts.listen = Some(ListenerOptions {
            mode: ListenerMode::TcpOnly,
            listen_addr: (Ipv4Addr::LOCALHOST, 0).into(),
            enable_upnp_port_forwarding: false,
            ..Default::default()
        });
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
            .map_err(|e| EngineError::Engine(format!("cannot start the BitTorrent session: {e:#}")))
    }
}

/// Our listener for peers on `wanted` (0: a free one); when that port is
/// taken and `may_move` (it was only the port saved last time), a free one.
pub(super) fn listen_public(
    wanted: u16,
    may_move: bool,
) -> Result<tokio::net::TcpListener, EngineError> {
    match bind_public(wanted) {
        Ok(l) => Ok(l),
        Err(e) if may_move && wanted != 0 => {
            tracing::warn!("port {wanted} is not available ({e}); picking another");
            bind_public(0).map_err(|e| {
                EngineError::Engine(format!("cannot listen for BitTorrent peers: {e}"))
            })
        }
        Err(e) => Err(EngineError::Engine(format!(
            "cannot listen for BitTorrent peers on port {wanted}: {e}; choose another port or stop the program that uses it"
        ))),
    }
}

/// Our listener for peers on `port` (0: a free one) of every address, IPv6
/// and IPv4 alike (one dual-stack socket, as librqbit's own was).
fn bind_public(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (socket, addr) = match Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP)) {
        Ok(s) => {
            s.set_only_v6(false)?;
            (s, SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))
        }
        // A system without IPv6.
        Err(_) => (
            Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        ),
    };
    // A restart takes the same port back while old connections linger.
    #[cfg(not(windows))]
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}
