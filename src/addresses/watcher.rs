//! The background task that owns [`OwnAddresses`]: it publishes what is
//! known at once, adds the public IPv4 when a lookup decides it, re-reads
//! the interfaces periodically, asks the services again now and then (with
//! backoff while none answers), adds the mapped port and the gateway's
//! external address while a NAT-PMP or UPnP mapping lasts, and announces
//! every change.
//!
//! Not here: how addresses and mappings are found (`interfaces`,
//! `public_ip`, `natpmp`, `upnp`) and where they go (`publish`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::sleep_until;
use tracing::Instrument;

use super::config::{AddressConfig, AddressConfigError};
use super::interfaces::{self, is_public_v4, InterfaceAddr, Selected};
use super::natpmp::Mapper;
use super::public_ip::{LookupFailed, PublicIpDecision, PublicIpLookup};
use super::upnp::{UpnpMapper, UpnpState};
use super::{MappingStatus, OwnAddresses, PortMapping, Ports};
use crate::events::{Event, EventBus, MappingProtocol};

/// Lists the interface addresses; [`interfaces::list_system`] by default,
/// a fixed list in tests.
pub type InterfaceLister =
    Arc<dyn Fn() -> std::io::Result<Vec<InterfaceAddr>> + Send + Sync + 'static>;

/// Owns the address discovery task. Dropping it stops the task too (the
/// stop channel closes); [`AddressWatcher::shutdown`] also waits for the
/// task to end.
pub struct AddressWatcher {
    state: watch::Receiver<OwnAddresses>,
    ports: watch::Sender<Ports>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AddressWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressWatcher")
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

type LookupFuture = Pin<Box<dyn Future<Output = Result<PublicIpDecision, LookupFailed>> + Send>>;

struct Task {
    config: AddressConfig,
    interfaces: InterfaceLister,
    lookup: Option<PublicIpLookup>,
    events: EventBus,
    state: watch::Sender<OwnAddresses>,
    ports: watch::Receiver<Ports>,
    selected: Selected,
    public_ipv4: Option<std::net::Ipv4Addr>,
    /// The NAT-PMP client for the listen port, while `config.natpmp`.
    mapper: Option<Mapper>,
    /// Its mapping, while it has one.
    natpmp_mapping: Option<PortMapping>,
    natpmp_status: MappingStatus,
    /// The UPnP client for the listen port, while `config.upnp`.
    upnp: Option<UpnpMapper>,
    upnp_mapping: Option<PortMapping>,
    upnp_status: MappingStatus,
}

impl AddressWatcher {
    /// Starts discovery with the system's interfaces. Must be called inside
    /// a tokio runtime. Returns at once: static and interface addresses
    /// are in [`current`](Self::current) already; the public IPv4 and a
    /// NAT-PMP mapped port follow.
    pub fn start(
        config: AddressConfig,
        ports: Ports,
        events: EventBus,
    ) -> Result<AddressWatcher, AddressConfigError> {
        Self::start_with(config, ports, events, Arc::new(interfaces::list_system))
    }

    /// Like [`start`](Self::start), with interfaces listed by `lister`.
    pub fn start_with(
        config: AddressConfig,
        ports: Ports,
        events: EventBus,
        lister: InterfaceLister,
    ) -> Result<AddressWatcher, AddressConfigError> {
        config.validate()?;
        let lookup = if config.public_ipv4 && !config.services.is_empty() {
            match PublicIpLookup::new(config.services.clone(), config.service_timeout) {
                Ok(l) => Some(l.allow_reserved(config.allow_reserved)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up HTTP for the public IPv4 lookup; going on without it");
                    None
                }
            }
        } else {
            None
        };
        let selected = read_interfaces(&config, &lister, Selected::default());
        let initial =
            OwnAddresses::assemble(&config.static_addresses, &selected, None, None, &ports);
        let (state_tx, state_rx) = watch::channel(initial);
        let (ports_tx, ports_rx) = watch::channel(ports);
        let task = Task {
            config,
            interfaces: lister,
            lookup,
            events,
            state: state_tx,
            ports: ports_rx,
            selected,
            public_ipv4: None,
            mapper: None,
            natpmp_mapping: None,
            natpmp_status: MappingStatus::Off,
            upnp: None,
            upnp_mapping: None,
            upnp_status: MappingStatus::Off,
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let handle = tokio::spawn(
            task.run(stop_rx)
                .instrument(tracing::info_span!("addresses")),
        );
        Ok(AddressWatcher {
            state: state_rx,
            ports: ports_tx,
            stop: Some(stop_tx),
            task: Some(handle),
        })
    }

    /// What we know now.
    pub fn current(&self) -> OwnAddresses {
        self.state.borrow().clone()
    }

    /// A receiver that wakes on every change of [`OwnAddresses`].
    pub fn subscribe(&self) -> watch::Receiver<OwnAddresses> {
        self.state.clone()
    }

    /// Sets the BitTorrent ports (the engine's listen port, and a mapped
    /// external port known elsewhere). NAT-PMP is mapped for the listen
    /// port (again, when it changes); while it holds a mapping, its
    /// external port is the published mapped port, whatever `ports.mapped`
    /// says.
    pub fn set_ports(&self, ports: Ports) {
        self.ports.send_if_modified(|p| {
            let changed = *p != ports;
            *p = ports;
            changed
        });
    }

    /// Stops the task and waits until it has ended (a NAT-PMP mapping is
    /// deleted first, waiting at most two requests' timeouts).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The interface addresses to publish now; `previous` when listing fails
/// (a failed listing says nothing about the addresses themselves).
fn read_interfaces(
    config: &AddressConfig,
    lister: &InterfaceLister,
    previous: Selected,
) -> Selected {
    if !config.lan && !config.ipv6 {
        return Selected::default();
    }
    match lister() {
        Ok(list) => interfaces::select(&list, config),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the network interfaces");
            previous
        }
    }
}

impl Task {
    fn read_interfaces(&mut self) {
        let previous = std::mem::take(&mut self.selected);
        self.selected = read_interfaces(&self.config, &self.interfaces, previous);
    }

    /// The ports to publish: the listen port, and a mapped port (NAT-PMP's,
    /// else UPnP's) over the one given.
    fn ports(&self) -> Ports {
        let given = *self.ports.borrow();
        let mapped = self
            .natpmp_mapping
            .or(self.upnp_mapping)
            .map(|m| m.external_port);
        Ports {
            listen: given.listen,
            mapped: mapped.or(given.mapped),
        }
    }

    /// The external IPv4 a gateway reports with its mapping (only public
    /// ones are kept as mappings: behind a second NAT it is not).
    fn gateway_ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.natpmp_mapping
            .or(self.upnp_mapping)
            .map(|m| m.external_ip)
    }

    fn assemble(&self) -> OwnAddresses {
        OwnAddresses {
            natpmp: self.natpmp_status.clone(),
            upnp: self.upnp_status.clone(),
            ..OwnAddresses::assemble(
                &self.config.static_addresses,
                &self.selected,
                self.gateway_ipv4(),
                self.public_ipv4,
                &self.ports(),
            )
        }
    }

    /// A mapping (or its end) over `protocol`. A mapping on a gateway whose
    /// external address is not public is not published: nobody outside
    /// the second NAT in front of it can use it.
    fn set_mapping(&mut self, protocol: MappingProtocol, mapping: Option<PortMapping>) {
        let allow_reserved = self.config.allow_reserved;
        let (slot, status) = match protocol {
            MappingProtocol::NatPmp => (&mut self.natpmp_mapping, &mut self.natpmp_status),
            MappingProtocol::Upnp => (&mut self.upnp_mapping, &mut self.upnp_status),
        };
        match mapping {
            Some(m) if is_public_v4(m.external_ip, allow_reserved) => {
                *slot = Some(m);
                *status = MappingStatus::Mapped {
                    external: std::net::SocketAddr::new(m.external_ip.into(), m.external_port),
                };
            }
            Some(m) => {
                tracing::warn!(
                    ?protocol,
                    external_ip = %m.external_ip,
                    "the gateway's external address is not public: another NAT is in front of \
                     it, so its port mapping is not published"
                );
                *slot = None;
                *status = MappingStatus::Failed {
                    reason: format!(
                        "the gateway's external address {} is not public (another NAT is in \
                         front of it)",
                        m.external_ip
                    ),
                };
            }
            None => {
                *slot = None;
                if matches!(status, MappingStatus::Mapped { .. }) {
                    *status = MappingStatus::Trying;
                }
            }
        }
    }

    /// A failed attempt over `protocol`.
    fn set_failure(&mut self, protocol: MappingProtocol, reason: String) {
        let (held, status) = match protocol {
            MappingProtocol::NatPmp => (self.natpmp_mapping.is_some(), &mut self.natpmp_status),
            MappingProtocol::Upnp => (self.upnp_mapping.is_some(), &mut self.upnp_status),
        };
        if !held && !matches!(status, MappingStatus::Off) {
            *status = MappingStatus::Failed { reason };
        }
    }

    /// Runs the NAT-PMP client for the current listen port: starts it,
    /// or replaces it (deleting the old mapping) when the port changed.
    async fn sync_mapper(&mut self) {
        let wanted = match self.ports.borrow().listen {
            Some(p) if p != 0 && self.config.natpmp => Some(p),
            _ => None,
        };
        if self.mapper.as_ref().map(Mapper::port) != wanted {
            if let Some(old) = self.mapper.take() {
                old.shutdown().await;
                self.natpmp_mapping = None;
                self.natpmp_status = MappingStatus::Off;
            }
            if let Some(port) = wanted {
                self.mapper = Some(Mapper::start(
                    self.config.natpmp_mapper(),
                    port,
                    self.events.clone(),
                ));
                self.natpmp_status = MappingStatus::Trying;
            }
        }
        let wanted = match self.ports.borrow().listen {
            Some(p) if p != 0 && self.config.upnp => Some(p),
            _ => None,
        };
        if self.upnp.as_ref().map(UpnpMapper::port) != wanted {
            if let Some(old) = self.upnp.take() {
                old.shutdown().await;
                self.upnp_mapping = None;
                self.upnp_status = MappingStatus::Off;
            }
            if let Some(port) = wanted {
                self.upnp = Some(UpnpMapper::start(
                    self.config.upnp_mapper(),
                    port,
                    self.events.clone(),
                ));
                self.upnp_status = MappingStatus::Trying;
            }
        }
    }

    /// Recomputes the state; announces it if the published list changed.
    fn update(&mut self) {
        let new = self.assemble();
        let mut old_addresses = None;
        self.state.send_if_modified(|s| {
            if *s == new {
                return false;
            }
            old_addresses = Some(std::mem::replace(s, new.clone()).addresses);
            true
        });
        if old_addresses.is_some_and(|old| old != new.addresses) {
            tracing::info!(addresses = ?new.addresses, "our addresses changed");
            self.events.send(Event::AddressesChanged {
                addresses: new.addresses,
            });
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        super::backoff(self.config.retry_first, self.config.retry_max, failures)
    }

    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        tracing::debug!("started");
        let initial = self.state.borrow().addresses.clone();
        if !initial.is_empty() {
            tracing::info!(addresses = ?initial, "our addresses");
            self.events
                .send(Event::AddressesChanged { addresses: initial });
        }
        let period = self.config.recheck_interval;
        let mut recheck = tokio::time::interval_at(Instant::now() + period, period);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_lookup = self.lookup.as_ref().map(|_| Instant::now());
        let mut running: Option<LookupFuture> = None;
        let mut failures = 0u32;
        let mut ports_open = true;
        let mut bus = self.events.subscribe();
        self.sync_mapper().await;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                changed = self.ports.changed(), if ports_open => {
                    // The sender lives in the watcher, so this ends only
                    // with it; `stop` then fires as well.
                    ports_open = changed.is_ok();
                    self.sync_mapper().await;
                    self.update();
                }
                mapping = mapping_changed(&mut self.mapper), if self.mapper.is_some() => {
                    match mapping {
                        Some(mapping) => self.set_mapping(MappingProtocol::NatPmp, mapping),
                        None => {
                            // The client ended on its own: nothing is mapped.
                            self.mapper = None;
                            self.set_mapping(MappingProtocol::NatPmp, None);
                        }
                    }
                    self.update();
                }
                state = upnp_changed(&mut self.upnp), if self.upnp.is_some() => {
                    match state {
                        Some(UpnpState { mapping, failure }) => {
                            self.set_mapping(MappingProtocol::Upnp, mapping);
                            if let Some(reason) = failure {
                                self.set_failure(MappingProtocol::Upnp, reason);
                            }
                        }
                        None => {
                            self.upnp = None;
                            self.set_mapping(MappingProtocol::Upnp, None);
                        }
                    }
                    self.update();
                }
                // NAT-PMP's failures reach us as events.
                ev = bus.recv() => match ev {
                    Ok(Event::PortMappingFailed { protocol: MappingProtocol::NatPmp, reason, .. }) => {
                        self.set_failure(MappingProtocol::NatPmp, reason);
                        self.update();
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    // The bus outlives us (we hold a sender); never seen.
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        bus = self.events.subscribe();
                    }
                },
                _ = recheck.tick() => {
                    self.read_interfaces();
                    self.update();
                }
                _ = sleep_until(next_lookup), if running.is_none() && next_lookup.is_some() => {
                    next_lookup = None;
                    if let Some(lookup) = self.lookup.clone() {
                        running = Some(Box::pin(async move { lookup.lookup().await }));
                    }
                }
                result = async { running.as_mut().expect("guarded").await }, if running.is_some() => {
                    running = None;
                    match result {
                        Ok(decision) => {
                            failures = 0;
                            self.public_ipv4 = Some(decision.ip);
                            self.events.send(Event::PublicIpDecided { decision });
                            next_lookup = Some(Instant::now() + self.config.public_ipv4_interval);
                            self.update();
                        }
                        Err(failed) => {
                            // Keep the last answer: the services being
                            // unreachable says nothing about our address.
                            failures += 1;
                            let wait = self.backoff(failures);
                            tracing::warn!(
                                error = %failed,
                                retry_in = ?wait,
                                kept = ?self.public_ipv4,
                                "public IPv4 lookup failed"
                            );
                            self.events.send(Event::PublicIpLookupFailed {
                                reason: failed.to_string(),
                                retry_in_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                            });
                            next_lookup = Some(Instant::now() + wait);
                        }
                    }
                }
            }
        }
        let natpmp = self.mapper.take();
        let upnp = self.upnp.take();
        tokio::join!(
            async {
                if let Some(m) = natpmp {
                    m.shutdown().await
                }
            },
            async {
                if let Some(m) = upnp {
                    m.shutdown().await
                }
            }
        );
        tracing::debug!("stopped");
    }
}

/// The next change of the UPnP mapper's state; `None` when it ended.
async fn upnp_changed(mapper: &mut Option<UpnpMapper>) -> Option<UpnpState> {
    match mapper {
        Some(m) => m.changed().await,
        None => std::future::pending().await,
    }
}

/// The next change of the NAT-PMP mapping; `None` when the client ended.
async fn mapping_changed(
    mapper: &mut Option<Mapper>,
) -> Option<Option<super::natpmp::PortMapping>> {
    match mapper {
        Some(m) => m.changed().await,
        None => std::future::pending().await,
    }
}
