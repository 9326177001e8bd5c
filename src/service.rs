//! Wires the parts together: the XMPP session, the contacts' catalog and
//! the BitTorrent engine, talking through typed events.
//!
//! When what we share changes, the published entry is rebuilt from the
//! engine's shares and our addresses (each address with the listen port).
//! The desktop shell and the headless daemon both run exactly this.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventBus};
use crate::shares::{Catalog, ResourceShares};
use crate::torrent::{Engine, EngineConfig, EngineError};
use crate::xmpp::{self, ConfigError, XmppConfig, XmppHandle};

/// Everything the backend needs to start.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub xmpp: XmppConfig,
    pub engine: EngineConfig,
    /// Addresses published with the listen port (until address discovery
    /// lands these are all we publish; tests use 127.0.0.1).
    pub addresses: Vec<IpAddr>,
}

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The running backend.
#[derive(Clone)]
pub struct Service {
    pub xmpp: XmppHandle,
    pub engine: Engine,
    pub catalog: Catalog,
    pub events: EventBus,
    stop: CancellationToken,
}

impl Service {
    pub async fn start(config: ServiceConfig) -> Result<Service, StartError> {
        let events = EventBus::new();
        let (catalog, writer) = Catalog::new();
        let engine = Engine::start(config.engine.clone(), catalog.clone(), events.clone()).await?;
        let xmpp = match xmpp::start(config.xmpp.clone(), events.clone(), writer) {
            Ok(x) => x,
            Err(e) => {
                engine.shutdown().await;
                return Err(e.into());
            }
        };
        let service = Service {
            xmpp,
            engine,
            catalog,
            events,
            stop: CancellationToken::new(),
        };
        service.spawn_publisher(config.addresses);
        Ok(service)
    }

    /// Keeps our published entry equal to the engine's shares.
    fn spawn_publisher(&self, ips: Vec<IpAddr>) {
        let mut rx = self.events.subscribe();
        let (engine, xmpp, stop) = (self.engine.clone(), self.xmpp.clone(), self.stop.clone());
        let publish = move || {
            let port = engine.listen_port();
            let entry = ResourceShares {
                shares: engine.local_shares(),
                addresses: ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
            };
            let _ = xmpp.set_local(entry);
        };
        publish();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        ev = rx.recv() => match ev {
                            Ok(Event::LocalSharesChanged) => publish(),
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => publish(),
                            Err(_) => break,
                            Ok(_) => {}
                        },
                    }
                }
            },
            tracing::debug_span!("publisher"),
        ));
    }

    /// Retracts our entry, stops the engine and the session.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.xmpp.shutdown().await;
        self.engine.shutdown().await;
    }

    /// Where downloads go by default.
    pub fn default_download_dir() -> PathBuf {
        EngineConfig::default_download_dir()
    }
}
