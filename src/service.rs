//! Wires the parts together: the XMPP session, the contacts' catalog and
//! the BitTorrent engine, talking through typed events.
//!
//! When what we share or our addresses change, the published entry is
//! rebuilt from the engine's shares (once per burst of changes) and our
//! addresses (each address with
//! the listen port, and with the NAT-PMP mapped port while there is one).
//! The desktop shell and the headless daemon both run exactly this.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::addresses::{
    keep_published, AddressConfig, AddressConfigError, AddressWatcher, OwnAddresses, Ports,
};
use crate::events::{Event, EventBus};
use crate::restricted::{RestrictedLists, RestrictedStatus};
use crate::shares::Catalog;
use crate::torrent::{Engine, EngineConfig, EngineError};
use crate::xmpp::{self, ConfigError, XmppConfig, XmppHandle};

/// A burst of changes to our shares is published once no change came for
/// this long...
pub const PUBLISH_QUIET: Duration = Duration::from_millis(300);
/// ...or at least this often while the burst lasts.
pub const PUBLISH_AT_LEAST_EVERY: Duration = Duration::from_secs(3);

/// Everything the backend needs to start.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub xmpp: XmppConfig,
    pub engine: EngineConfig,
    /// Which of our addresses to discover and publish.
    pub addresses: AddressConfig,
}

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Addresses(#[from] AddressConfigError),
}

/// The running backend.
#[derive(Clone)]
pub struct Service {
    pub xmpp: XmppHandle,
    pub engine: Engine,
    pub catalog: Catalog,
    pub events: EventBus,
    addresses: Arc<Mutex<Option<AddressWatcher>>>,
    /// Our restricted lists (shares for some contacts only).
    restricted: Option<RestrictedLists>,
    stop: CancellationToken,
}

impl Service {
    pub async fn start(config: ServiceConfig) -> Result<Service, StartError> {
        Self::start_with(config, EventBus::new()).await
    }

    /// Like [`start`](Self::start), on an event bus the caller already
    /// subscribed to, so not even the events of start-up are missed.
    pub async fn start_with(
        config: ServiceConfig,
        events: EventBus,
    ) -> Result<Service, StartError> {
        let (catalog, writer) = Catalog::new();
        config.addresses.validate()?;
        let mut xmpp_config = config.xmpp.clone();
        if xmpp_config.resource.is_none() {
            // One resource per device, kept in the data dir.
            let resource = xmpp::device_resource(&config.engine.data_dir).map_err(|e| {
                EngineError::BadPath(format!(
                    "cannot keep this device's resource in {}: {e}",
                    config.engine.data_dir.display()
                ))
            })?;
            xmpp_config.resource = Some(resource);
        }
        let engine_config = EngineConfig {
            // Contacts' loopback addresses are this machine's own programs
            // unless our server (and so every contact here) is on it too.
            allow_loopback_peers: config.engine.allow_loopback_peers
                && config
                    .xmpp
                    .server
                    .as_deref()
                    .is_some_and(xmpp::is_loopback_server),
            ..config.engine.clone()
        };
        let engine = Engine::start(engine_config, catalog.clone(), events.clone()).await?;
        let xmpp = match xmpp::start(xmpp_config, events.clone(), writer) {
            Ok(x) => x,
            Err(e) => {
                engine.shutdown().await;
                return Err(e.into());
            }
        };
        // The path layer's requests go over our session, and contacts'
        // requests come to the path layer.
        let paths = engine.paths().clone();
        paths.set_signal(Arc::new(xmpp::XmppSignal::new(xmpp.clone())));
        let _ = xmpp.serve_paths(paths);
        let ports = Ports::listen(engine.listen_port());
        let watcher = AddressWatcher::start(config.addresses.clone(), ports, events.clone())?;
        let service = Service {
            xmpp,
            engine,
            catalog,
            events,
            addresses: Arc::new(Mutex::new(None)),
            restricted: None,
            stop: CancellationToken::new(),
        };
        let mut service = service;
        service.restricted = Some(service.spawn_publisher(watcher.subscribe()));
        *service.addresses.lock().unwrap() = Some(watcher);
        Ok(service)
    }

    /// Keeps our published entry equal to the engine's shares and our
    /// addresses. Changes of the shares go out together once they have
    /// been quiet for [`PUBLISH_QUIET`] with no share being made, or every
    /// [`PUBLISH_AT_LEAST_EVERY`] while a burst lasts: one publish (and one
    /// walk of the list) per burst of thousands of files shared, not one
    /// per share.
    fn spawn_publisher(&self, addresses: watch::Receiver<OwnAddresses>) -> RestrictedLists {
        let (shares_tx, shares_rx) = watch::channel(self.engine.local_shares());
        let (restricted_tx, restricted_rx) = watch::channel(self.engine.restricted_shares());
        self.spawn_candidates(addresses.clone());
        let restricted = RestrictedLists::spawn(
            self.xmpp.clone(),
            self.events.clone(),
            restricted_rx,
            addresses.clone(),
            self.stop.clone(),
        );
        let (engine, lists) = (self.engine.clone(), restricted.clone());
        self.engine.paths().set_may_see(Arc::new(
            move |jid: &str, hash: &crate::shares::InfoHash| match engine.audience_of(hash) {
                Some(a) if !a.is_everyone() => lists.admits(jid, hash),
                _ => true,
            },
        ));
        keep_published(self.xmpp.clone(), addresses, shares_rx);
        let mut rx = self.events.subscribe();
        let (engine, stop) = (self.engine.clone(), self.stop.clone());
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                // The first and the last change not published yet.
                let mut pending: Option<(Instant, Instant)> = None;
                loop {
                    let due = pending.map(|(first, last)| {
                        (last + PUBLISH_QUIET).min(first + PUBLISH_AT_LEAST_EVERY)
                    });
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                            let (first, _) = pending.expect("due only when pending");
                            let now = Instant::now();
                            if engine.is_sharing() && now < first + PUBLISH_AT_LEAST_EVERY {
                                // The next share of the burst is on its way.
                                pending = Some((first, now));
                            } else {
                                shares_tx.send_replace(engine.local_shares());
                                restricted_tx.send_if_modified(|now| {
                                    let new = engine.restricted_shares();
                                    let changed = *now != new;
                                    *now = new;
                                    changed
                                });
                                pending = None;
                            }
                        }
                        ev = rx.recv() => match ev {
                            Ok(Event::LocalSharesChanged)
                            | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                let now = Instant::now();
                                pending = Some((pending.map_or(now, |(first, _)| first), now));
                            }
                            Err(_) => break,
                            Ok(_) => {}
                        },
                    }
                }
            },
            tracing::debug_span!("shares-to-publish"),
        ));
        restricted
    }

    /// How our restricted lists stand.
    pub fn restricted(&self) -> RestrictedStatus {
        self.restricted
            .as_ref()
            .map(RestrictedLists::status)
            .unwrap_or_default()
    }

    /// Keeps the path layer's punching candidates equal to the addresses
    /// we publish.
    fn spawn_candidates(&self, mut addresses: watch::Receiver<OwnAddresses>) {
        let (paths, stop) = (self.engine.paths().clone(), self.stop.clone());
        tokio::spawn(async move {
            loop {
                let mut ips: Vec<std::net::IpAddr> = addresses
                    .borrow_and_update()
                    .addresses
                    .iter()
                    .map(|a| a.ip())
                    .collect();
                ips.dedup();
                paths.set_own_addresses(ips);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    changed = addresses.changed() => if changed.is_err() { break },
                }
            }
        });
    }

    /// Our addresses as published now.
    pub fn own_addresses(&self) -> OwnAddresses {
        self.addresses
            .lock()
            .unwrap()
            .as_ref()
            .map(|w| w.current())
            .unwrap_or_default()
    }

    /// Retracts our entry, stops the engine and the session.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.xmpp.shutdown().await;
        let watcher = self.addresses.lock().unwrap().take();
        if let Some(w) = watcher {
            w.shutdown().await;
        }
        self.engine.shutdown().await;
    }
}
