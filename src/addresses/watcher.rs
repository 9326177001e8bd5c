//! The background task that owns [`OwnAddresses`]: it publishes what is
//! known at once, adds the public IPv4 when a lookup decides it, re-reads
//! the interfaces periodically, asks the services again now and then (with
//! backoff while none answers), adds the NAT-PMP mapped port while a
//! mapping lasts, and announces every change.
//!
//! Not here: how addresses and mappings are found (`interfaces`,
//! `public_ip`, `natpmp`) and where they go (`publish`).

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
use super::interfaces::{self, InterfaceAddr, Selected};
use super::natpmp::Mapper;
use super::public_ip::{LookupFailed, PublicIpDecision, PublicIpLookup};
use super::{OwnAddresses, Ports};
use crate::events::{Event, EventBus};

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
    /// Its mapped external port, while it has a mapping.
    natpmp_port: Option<u16>,
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
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up HTTP for the public IPv4 lookup; going on without it");
                    None
                }
            }
        } else {
            None
        };
        let selected = read_interfaces(&config, &lister, Selected::default());
        let initial = OwnAddresses::assemble(&config.static_addresses, &selected, None, &ports);
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
            natpmp_port: None,
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

    /// The ports to publish: the listen port, and NAT-PMP's mapped port
    /// over the one given.
    fn ports(&self) -> Ports {
        let given = *self.ports.borrow();
        Ports {
            listen: given.listen,
            mapped: self.natpmp_port.or(given.mapped),
        }
    }

    fn assemble(&self) -> OwnAddresses {
        OwnAddresses::assemble(
            &self.config.static_addresses,
            &self.selected,
            self.public_ipv4,
            &self.ports(),
        )
    }

    /// Runs the NAT-PMP client for the current listen port: starts it,
    /// or replaces it (deleting the old mapping) when the port changed.
    async fn sync_mapper(&mut self) {
        let wanted = match self.ports.borrow().listen {
            Some(p) if p != 0 && self.config.natpmp => Some(p),
            _ => None,
        };
        if self.mapper.as_ref().map(Mapper::port) == wanted {
            return;
        }
        if let Some(old) = self.mapper.take() {
            old.shutdown().await;
            self.natpmp_port = None;
        }
        if let Some(port) = wanted {
            self.mapper = Some(Mapper::start(
                self.config.natpmp_mapper(),
                port,
                self.events.clone(),
            ));
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
                        Some(mapping) => self.natpmp_port = mapping.map(|m| m.external_port),
                        None => {
                            // The client ended on its own: nothing is mapped.
                            self.mapper = None;
                            self.natpmp_port = None;
                        }
                    }
                    self.update();
                }
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
        if let Some(mapper) = self.mapper.take() {
            mapper.shutdown().await;
        }
        tracing::debug!("stopped");
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
