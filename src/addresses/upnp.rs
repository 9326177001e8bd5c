//! UPnP IGD port mapping of our listen port (TCP), with igd-next, which
//! speaks both WANIPConnection:1 and :2 (librqbit's own forwarder knows
//! only :1, and routers such as miniupnpd describe themselves as IGDv2).
//!
//! The task finds the gateway by SSDP on the LAN, asks it for its external
//! address (the router is the authority for it), maps the listen port
//! (the same external port if free, any other otherwise), renews the lease
//! at half its time, reports the mapping like NAT-PMP's (as
//! [`PortMapping`] with [`MappingProtocol::Upnp`]) and deletes it on
//! shutdown. When no usable gateway answers, it says so once at INFO
//! level (and on the event bus); then it searches again with backoff.
//!
//! Not here: NAT-PMP (`natpmp`), what is published (the watcher).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use igd_next::aio::tokio::{search_gateway, Tokio};
use igd_next::aio::Gateway;
use igd_next::{AddAnyPortError, AddPortError, PortMappingProtocol, SearchOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::interfaces::{classify_v4, is_public_v4};
use super::PortMapping;
use crate::events::{Event, EventBus, MappingProtocol};

/// What the gateway sees as the mapping's name.
const DESCRIPTION: &str = "Bitween";
/// How long a request to the gateway (SOAP over HTTP) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The SSDP multicast group and port (UPnP Device Architecture 1.1).
pub const SSDP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 255, 255, 250)), 1900);
/// How often a permanent mapping (lease 0) is checked again.
const PERMANENT_RECHECK: Duration = Duration::from_secs(10 * 60);

/// What the UPnP mapper needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpnpConfig {
    /// How long to wait for a gateway to answer the SSDP search.
    pub search_timeout: Duration,
    /// Where the SSDP search goes: [`SSDP`], the multicast group, except in
    /// tests.
    pub search_to: SocketAddr,
    /// The lease asked for, in seconds (0: permanent).
    pub lease_secs: u32,
    /// After a failure, the first wait before trying again; it doubles on
    /// each further failure up to `retry_max`.
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// Accept an external address in 198.18.0.0/15 (network labs).
    pub allow_reserved: bool,
}

/// The mapper's state, as the watcher and the diagnosis read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpnpState {
    pub mapping: Option<PortMapping>,
    /// Why the last attempt failed, while there is no mapping.
    pub failure: Option<String>,
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum UpnpError {
    #[error("no UPnP gateway answered on the LAN within {0:?}")]
    NoGateway(Duration),
    #[error("the UPnP gateway search failed: {0}")]
    Search(String),
    #[error("the UPnP gateway at {gateway} did not tell its external address: {reason}")]
    ExternalAddress { gateway: SocketAddr, reason: String },
    #[error(
        "the UPnP gateway at {gateway} reports the external address {ip}, which is not public \
         ({class}): another NAT sits in front of it, so a mapping there is not reachable"
    )]
    NotPublic {
        gateway: SocketAddr,
        ip: IpAddr,
        class: String,
    },
    #[error("the UPnP gateway at {gateway} refused the mapping: {reason}")]
    Refused { gateway: SocketAddr, reason: String },
    #[error("no local address towards the UPnP gateway at {gateway}: {reason}")]
    NoRoute { gateway: SocketAddr, reason: String },
    #[error("the UPnP gateway at {0} did not answer within {REQUEST_TIMEOUT:?}")]
    Timeout(SocketAddr),
}

/// Keeps a UPnP mapping of one port. Dropping it stops the task (which
/// then still deletes the mapping if the runtime lets it);
/// [`UpnpMapper::shutdown`] also waits for the deletion.
pub struct UpnpMapper {
    port: u16,
    state: watch::Receiver<UpnpState>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl UpnpMapper {
    /// Starts mapping `internal_port` in the background; returns at once.
    pub fn start(config: UpnpConfig, internal_port: u16, events: EventBus) -> UpnpMapper {
        let (tx, rx) = watch::channel(UpnpState::default());
        let stop = CancellationToken::new();
        let task = Task {
            config,
            port: internal_port,
            events,
            tx,
            held: None,
            said_no_gateway: false,
        };
        let handle = tokio::spawn(
            task.run(stop.clone())
                .instrument(tracing::info_span!("upnp", port = internal_port)),
        );
        UpnpMapper {
            port: internal_port,
            state: rx,
            stop,
            task: Some(handle),
        }
    }

    /// The internal port this mapper maps.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The state now.
    pub fn current(&self) -> UpnpState {
        self.state.borrow().clone()
    }

    /// Waits for the next change and returns the new state; `None` when
    /// the task has ended.
    pub async fn changed(&mut self) -> Option<UpnpState> {
        self.state.changed().await.ok()?;
        Some(self.state.borrow_and_update().clone())
    }

    /// Stops the task and waits until it has deleted the mapping (bounded
    /// by one request's timeout).
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for UpnpMapper {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Held {
    gateway: Gateway<Tokio>,
    local: SocketAddr,
    mapping: PortMapping,
}

struct Task {
    config: UpnpConfig,
    port: u16,
    events: EventBus,
    tx: watch::Sender<UpnpState>,
    held: Option<Held>,
    /// "No gateway" was said at INFO level already (repeats go to DEBUG).
    said_no_gateway: bool,
}

/// Our address on the route to `gateway` (where the mapping must point).
fn local_ip_towards(gateway: SocketAddr) -> std::io::Result<IpAddr> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect(gateway)?;
    Ok(socket.local_addr()?.ip())
}

async fn bounded<T>(
    gateway: SocketAddr,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, UpnpError> {
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| UpnpError::Timeout(gateway))
}

/// Asks for `external` (TCP) to `local`; a gateway that grants only
/// permanent leases is asked again with lease 0. Returns the lease granted.
async fn add_port(
    gateway: &Gateway<Tokio>,
    external: u16,
    local: SocketAddr,
    lease: u32,
) -> Result<u32, AddPortError> {
    let add = |lease| {
        gateway.add_port(
            PortMappingProtocol::TCP,
            external,
            local,
            lease,
            DESCRIPTION,
        )
    };
    match add(lease).await {
        Err(AddPortError::OnlyPermanentLeasesSupported) if lease != 0 => add(0).await.map(|()| 0),
        other => other.map(|()| lease),
    }
}

impl Task {
    fn backoff(&self, failures: u32) -> Duration {
        super::backoff(self.config.retry_first, self.config.retry_max, failures)
    }

    fn set(&mut self, mapping: Option<PortMapping>, failure: Option<String>) {
        let before = self.tx.borrow().mapping;
        self.tx.send_replace(UpnpState { mapping, failure });
        if before != mapping {
            self.events.send(Event::PortMappingChanged {
                mapping,
                protocol: MappingProtocol::Upnp,
            });
        }
    }

    /// Finds the gateway and maps the port.
    async fn map(&self) -> Result<Held, UpnpError> {
        let mut options = SearchOptions::default();
        options.timeout = Some(self.config.search_timeout);
        options.single_search_timeout = Some(self.config.search_timeout);
        options.broadcast_address = self.config.search_to;
        let gateway = match search_gateway(options).await {
            Ok(g) => g,
            Err(igd_next::SearchError::NoResponseWithinTimeout) => {
                return Err(UpnpError::NoGateway(self.config.search_timeout))
            }
            Err(e) => return Err(UpnpError::Search(e.to_string())),
        };
        let addr = gateway.addr;
        tracing::debug!(gateway = %addr, service = %gateway.service_type, "UPnP gateway found");
        let external = bounded(addr, gateway.get_external_ip())
            .await?
            .map_err(|e| UpnpError::ExternalAddress {
                gateway: addr,
                reason: e.to_string(),
            })?;
        let external_ip = match external {
            IpAddr::V4(ip) if is_public_v4(ip, self.config.allow_reserved) => ip,
            IpAddr::V4(ip) => {
                return Err(UpnpError::NotPublic {
                    gateway: addr,
                    ip: ip.into(),
                    class: format!("{:?}", classify_v4(ip)),
                })
            }
            ip => {
                return Err(UpnpError::NotPublic {
                    gateway: addr,
                    ip,
                    class: "IPv6".into(),
                })
            }
        };
        let local_ip = local_ip_towards(addr).map_err(|e| UpnpError::NoRoute {
            gateway: addr,
            reason: e.to_string(),
        })?;
        let local = SocketAddr::new(local_ip, self.port);
        let lease = self.config.lease_secs;
        let (external_port, lease) =
            match bounded(addr, add_port(&gateway, self.port, local, lease)).await? {
                Ok(lease) => (self.port, lease),
                // Taken by someone else, or the gateway wants to choose.
                Err(AddPortError::PortInUse | AddPortError::SamePortValuesRequired) => {
                    let port = bounded(
                        addr,
                        gateway.add_any_port(PortMappingProtocol::TCP, local, lease, DESCRIPTION),
                    )
                    .await?
                    .map_err(|e: AddAnyPortError| UpnpError::Refused {
                        gateway: addr,
                        reason: e.to_string(),
                    })?;
                    (port, lease)
                }
                Err(e) => {
                    return Err(UpnpError::Refused {
                        gateway: addr,
                        reason: e.to_string(),
                    })
                }
            };
        Ok(Held {
            gateway,
            local,
            mapping: PortMapping {
                protocol: MappingProtocol::Upnp,
                gateway: addr,
                external_ip,
                internal_port: self.port,
                external_port,
                lifetime_secs: lease,
            },
        })
    }

    /// Asks for the held mapping again (a renewal); `false` if refused.
    async fn renew(&self, held: &Held) -> Result<(), UpnpError> {
        let addr = held.gateway.addr;
        bounded(
            addr,
            add_port(
                &held.gateway,
                held.mapping.external_port,
                held.local,
                held.mapping.lifetime_secs,
            ),
        )
        .await?
        .map(|_| ())
        .map_err(|e| UpnpError::Refused {
            gateway: addr,
            reason: e.to_string(),
        })
    }

    /// When to renew a mapping of `lease` seconds.
    fn renew_after(lease: u32) -> Duration {
        if lease == 0 {
            PERMANENT_RECHECK
        } else {
            (Duration::from_secs(lease.into()) / 2).max(Duration::from_secs(1))
        }
    }

    async fn run(mut self, stop: CancellationToken) {
        let mut failures = 0u32;
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {}
            }
            let attempt = async {
                match &self.held {
                    Some(held) => self.renew(held).await.map(|()| None),
                    None => self.map().await.map(Some),
                }
            };
            let result = tokio::select! {
                _ = stop.cancelled() => break,
                r = attempt => r,
            };
            match result {
                Ok(Some(held)) => {
                    failures = 0;
                    self.said_no_gateway = false;
                    let m = held.mapping;
                    tracing::info!(
                        gateway = %m.gateway,
                        external_ip = %m.external_ip,
                        external_port = m.external_port,
                        lease = m.lifetime_secs,
                        "port mapped over UPnP"
                    );
                    next = Instant::now() + Self::renew_after(m.lifetime_secs);
                    self.held = Some(held);
                    self.set(Some(m), None);
                }
                Ok(None) => {
                    tracing::debug!("UPnP port mapping renewed");
                    let lease = self.held.as_ref().map_or(0, |h| h.mapping.lifetime_secs);
                    next = Instant::now() + Self::renew_after(lease);
                }
                Err(e) => {
                    failures += 1;
                    let wait = self.backoff(failures);
                    match &e {
                        UpnpError::NoGateway(_) if self.said_no_gateway => {
                            tracing::debug!(retry_in = ?wait, "{e}")
                        }
                        UpnpError::NoGateway(_) => {
                            self.said_no_gateway = true;
                            tracing::info!(
                                retry_in = ?wait,
                                "{e}: no UPnP port mapping (contacts reach this device only \
                                 through NAT-PMP, IPv6, the same LAN, or paths that need no \
                                 open port)"
                            );
                        }
                        _ => tracing::warn!(retry_in = ?wait, "UPnP port mapping failed: {e}"),
                    }
                    self.events.send(Event::PortMappingFailed {
                        protocol: MappingProtocol::Upnp,
                        gateway: match &e {
                            UpnpError::NoGateway(_) | UpnpError::Search(_) => None,
                            _ => self.held.as_ref().map(|h| h.gateway.addr),
                        },
                        reason: e.to_string(),
                        retry_in_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    });
                    // A refused renewal or a gateway gone: search afresh.
                    self.held = None;
                    self.set(None, Some(e.to_string()));
                    next = Instant::now() + wait;
                }
            }
        }
        self.delete().await;
    }

    /// Deletes the mapping we hold, if any (shutdown).
    async fn delete(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        let addr = held.gateway.addr;
        let port = held.mapping.external_port;
        match bounded(
            addr,
            held.gateway.remove_port(PortMappingProtocol::TCP, port),
        )
        .await
        {
            Ok(Ok(())) => tracing::info!(gateway = %addr, port, "UPnP port mapping deleted"),
            Ok(Err(e)) => {
                tracing::warn!(gateway = %addr, "cannot delete the UPnP port mapping: {e}")
            }
            Err(e) => tracing::warn!("cannot delete the UPnP port mapping: {e}"),
        }
        self.set(None, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_renewed_at_half_time_and_permanent_ones_rechecked() {
        assert_eq!(Task::renew_after(3600), Duration::from_secs(1800));
        assert_eq!(Task::renew_after(1), Duration::from_secs(1));
        assert_eq!(Task::renew_after(0), PERMANENT_RECHECK);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let gw: SocketAddr = "192.168.1.1:5000".parse().unwrap();
        let e = UpnpError::NotPublic {
            gateway: gw,
            ip: "100.64.0.7".parse().unwrap(),
            class: "SharedCgnat".into(),
        };
        assert!(e.to_string().contains("another NAT"), "{e}");
        let e = UpnpError::NoGateway(Duration::from_secs(2));
        assert!(e.to_string().contains("no UPnP gateway answered"), "{e}");
    }

    #[tokio::test]
    async fn a_lan_without_a_gateway_is_reported_and_nothing_is_mapped() {
        // The search goes to a loopback port nobody answers on, never to a
        // real network.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let events = EventBus::new();
        let mut rx = events.subscribe();
        let mut mapper = UpnpMapper::start(
            UpnpConfig {
                search_timeout: Duration::from_millis(300),
                search_to: silent.local_addr().unwrap(),
                lease_secs: 3600,
                retry_first: Duration::from_secs(60),
                retry_max: Duration::from_secs(60),
                allow_reserved: false,
            },
            6881,
            events,
        );
        let state = tokio::time::timeout(Duration::from_secs(10), mapper.changed())
            .await
            .expect("a verdict within the search time")
            .expect("the task runs");
        assert_eq!(state.mapping, None);
        assert!(
            state
                .failure
                .as_deref()
                .is_some_and(|f| f.contains("no UPnP gateway answered")),
            "{state:?}"
        );
        let event = rx.recv().await.unwrap();
        assert!(
            matches!(&event, Event::PortMappingFailed { protocol: MappingProtocol::Upnp, gateway: None, reason, .. }
                if reason.contains("no UPnP gateway")),
            "{event:?}"
        );
        tokio::time::timeout(Duration::from_secs(5), mapper.shutdown())
            .await
            .expect("shutdown is bounded");
    }
}
