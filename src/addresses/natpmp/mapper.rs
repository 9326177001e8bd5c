//! The mapping task: asks the gateway for a TCP mapping of our listen
//! port, renews it at half its lifetime, reports it as events and deletes
//! it on shutdown; failures are retried with backoff.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::sleep_until;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::gateway::default_gateway;
use super::wire::*;
use super::PortMapping;
use crate::events::{Event, EventBus, MappingProtocol};

/// Never renew more often than this, whatever lifetime the gateway grants.
const MIN_RENEW: Duration = Duration::from_secs(1);
/// Requests sent to delete the mapping on shutdown, at most: shutting
/// down must not take the two minutes a full retry series can.
const DELETE_ATTEMPTS: u32 = 2;

/// Retransmission: the first request waits `first_timeout`, each further
/// one twice as long as the one before, `attempts` requests in all (RFC
/// 6886: 250 ms and 9, about two minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub first_timeout: Duration,
    pub attempts: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            first_timeout: Duration::from_millis(250),
            attempts: 9,
        }
    }
}

/// Why a mapping could not be made or kept.
#[derive(Debug, thiserror::Error)]
pub enum NatPmpError {
    #[error("no NAT-PMP gateway: {0}")]
    NoGateway(String),
    #[error("nothing answers NAT-PMP at {gateway} (connection refused)")]
    ConnectionRefused { gateway: SocketAddrV4 },
    #[error("cannot talk to {gateway}: {source}")]
    Io {
        gateway: SocketAddrV4,
        source: std::io::Error,
    },
    #[error("{gateway} did not answer {requests} NAT-PMP requests within {waited:?}")]
    NoAnswer {
        gateway: SocketAddrV4,
        requests: u32,
        waited: Duration,
    },
    #[error("{gateway}: {error}")]
    Response {
        gateway: SocketAddrV4,
        error: ResponseError,
    },
}

impl NatPmpError {
    /// Whether the gateway (or its absence) says there is no mapping, as
    /// opposed to not being heard from.
    fn withdraws(&self) -> bool {
        matches!(
            self,
            NatPmpError::NoGateway(_)
                | NatPmpError::Response {
                    error: ResponseError::Refused(_),
                    ..
                }
        )
    }
}

/// Sends `request` to `gateway` until a response arrives or `timing`
/// runs out; decodes the first response. The socket is connected, so the
/// kernel drops datagrams from anyone but the gateway (RFC 6886 3.1).
async fn exchange<T>(
    gateway: SocketAddrV4,
    request: &[u8],
    timing: Timing,
    decode: impl Fn(&[u8]) -> Result<T, ResponseError>,
) -> Result<T, NatPmpError> {
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::ConnectionRefused {
            NatPmpError::ConnectionRefused { gateway }
        } else {
            NatPmpError::Io { gateway, source }
        }
    };
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .await
        .map_err(io)?;
    socket.connect(gateway).await.map_err(io)?;
    // Larger than any valid response, so a long one shows its length.
    let mut buf = [0u8; 128];
    let started = Instant::now();
    let mut wait = timing.first_timeout;
    for _ in 0..timing.attempts {
        socket.send(request).await.map_err(io)?;
        match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                return decode(&buf[..n]).map_err(|error| NatPmpError::Response { gateway, error })
            }
            Ok(Err(e)) => return Err(io(e)),
            Err(_) => wait = wait.saturating_mul(2),
        }
    }
    Err(NatPmpError::NoAnswer {
        gateway,
        requests: timing.attempts,
        waited: started.elapsed(),
    })
}

/// Asks `gateway` for its external address and a TCP mapping of
/// `internal_port`, suggesting `suggested` as the external port.
async fn map_once(
    gateway: SocketAddrV4,
    internal_port: u16,
    suggested: u16,
    timing: Timing,
) -> Result<PortMapping, NatPmpError> {
    let external = exchange(
        gateway,
        &external_address_request(),
        timing,
        decode_external_address,
    )
    .await?;
    let request = mapping_request(Protocol::Tcp, internal_port, suggested, REQUESTED_LIFETIME);
    let mapped = exchange(gateway, &request, timing, |buf| {
        check_mapping(decode_mapping(buf, Protocol::Tcp)?, internal_port, false)
    })
    .await?;
    Ok(PortMapping {
        protocol: MappingProtocol::NatPmp,
        gateway: gateway.into(),
        external_ip: external.ip,
        internal_port,
        external_port: mapped.external_port,
        lifetime_secs: mapped.lifetime,
    })
}

/// Deletes the TCP mapping of `internal_port` (lifetime 0).
async fn unmap(
    gateway: SocketAddrV4,
    internal_port: u16,
    timing: Timing,
) -> Result<(), NatPmpError> {
    let request = mapping_request(Protocol::Tcp, internal_port, 0, 0);
    exchange(gateway, &request, timing, |buf| {
        check_mapping(decode_mapping(buf, Protocol::Tcp)?, internal_port, true)
    })
    .await
    .map(|_| ())
}

// ----- the mapper task ---------------------------------------------------------

/// What the mapper needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapperConfig {
    /// The gateway to ask; `None`: the default gateway, port 5351.
    pub gateway: Option<SocketAddr>,
    pub timing: Timing,
    /// After a failure, the first wait before trying again; it doubles on
    /// each further failure up to `retry_max`.
    pub retry_first: Duration,
    pub retry_max: Duration,
}

/// Keeps a TCP mapping of one port at the gateway. Dropping it stops the
/// task (which then still deletes the mapping if the runtime lets it);
/// [`Mapper::shutdown`] also waits for the deletion.
pub struct Mapper {
    port: u16,
    mapping: watch::Receiver<Option<PortMapping>>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Mapper {
    /// Starts mapping `internal_port` in the background; returns at once.
    pub fn start(config: MapperConfig, internal_port: u16, events: EventBus) -> Mapper {
        let (tx, rx) = watch::channel(None);
        let stop = CancellationToken::new();
        let task = MapperTask {
            config,
            port: internal_port,
            events,
            tx,
            held: None,
        };
        let handle = tokio::spawn(
            task.run(stop.clone())
                .instrument(tracing::info_span!("natpmp", port = internal_port)),
        );
        Mapper {
            port: internal_port,
            mapping: rx,
            stop,
            task: Some(handle),
        }
    }

    /// The internal port this mapper maps.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The mapping now, if there is one.
    pub fn current(&self) -> Option<PortMapping> {
        *self.mapping.borrow()
    }

    /// Waits for the next change of the mapping and returns it; `None`
    /// when the task has ended.
    pub async fn changed(&mut self) -> Option<Option<PortMapping>> {
        self.mapping.changed().await.ok()?;
        Some(*self.mapping.borrow_and_update())
    }

    /// Stops the task and waits until it has deleted the mapping (bounded
    /// by two requests' timeouts).
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Mapper {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Held {
    mapping: PortMapping,
    expires: Instant,
}

struct MapperTask {
    config: MapperConfig,
    port: u16,
    events: EventBus,
    tx: watch::Sender<Option<PortMapping>>,
    held: Option<Held>,
}

impl MapperTask {
    fn gateway(&self) -> Result<SocketAddrV4, NatPmpError> {
        match self.config.gateway {
            Some(SocketAddr::V4(gw)) => Ok(gw),
            Some(SocketAddr::V6(gw)) => Err(NatPmpError::NoGateway(format!(
                "{gw} is IPv6; NAT-PMP is IPv4 only"
            ))),
            None => default_gateway()
                .map(|ip| SocketAddrV4::new(ip, GATEWAY_PORT))
                .map_err(NatPmpError::NoGateway),
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        crate::addresses::backoff(self.config.retry_first, self.config.retry_max, failures)
    }

    /// Publishes `mapping` (or its absence) if it differs from what is held.
    fn set(&mut self, mapping: Option<PortMapping>, expires: Option<Instant>) {
        let before = self.held.as_ref().map(|h| h.mapping);
        self.held = mapping
            .zip(expires)
            .map(|(mapping, expires)| Held { mapping, expires });
        if before != mapping {
            self.tx.send_replace(mapping);
            self.events.send(Event::PortMappingChanged {
                mapping,
                protocol: MappingProtocol::NatPmp,
            });
        }
    }

    fn withdraw(&mut self, why: &str) {
        if let Some(h) = &self.held {
            tracing::warn!(
                gateway = %h.mapping.gateway,
                external_port = h.mapping.external_port,
                "port mapping withdrawn: {why}"
            );
            self.set(None, None);
        }
    }

    /// Waits for `fut`, withdrawing the mapping if it expires meanwhile;
    /// `None` if stopped first.
    async fn wait<F: std::future::Future>(
        &mut self,
        stop: &CancellationToken,
        fut: F,
    ) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            let expires = self.held.as_ref().map(|h| h.expires);
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = sleep_until(expires), if expires.is_some() => {
                    self.withdraw("it expired without being renewed");
                }
                out = &mut fut => return Some(out),
            }
        }
    }

    async fn run(mut self, stop: CancellationToken) {
        let mut failures = 0u32;
        let mut next = Instant::now();
        loop {
            if self
                .wait(&stop, tokio::time::sleep_until(next))
                .await
                .is_none()
            {
                break;
            }
            let gateway = match self.gateway() {
                Ok(gw) => gw,
                Err(e) => {
                    failures += 1;
                    next = self.failed(None, &e, failures);
                    continue;
                }
            };
            if self
                .held
                .as_ref()
                .is_some_and(|h| h.mapping.gateway != SocketAddr::V4(gateway))
            {
                self.withdraw("the default gateway changed");
            }
            let suggested = self
                .held
                .as_ref()
                .map_or(self.port, |h| h.mapping.external_port);
            let attempt = map_once(gateway, self.port, suggested, self.config.timing);
            let Some(result) = self.wait(&stop, attempt).await else {
                break;
            };
            match result {
                Ok(mapping) => {
                    failures = 0;
                    let lifetime = Duration::from_secs(mapping.lifetime_secs.into());
                    let now = Instant::now();
                    if self.held.as_ref().map(|h| h.mapping) != Some(mapping) {
                        tracing::info!(
                            gateway = %gateway,
                            external_ip = %mapping.external_ip,
                            external_port = mapping.external_port,
                            lifetime = mapping.lifetime_secs,
                            "port mapped over NAT-PMP"
                        );
                    } else {
                        tracing::debug!(lifetime = mapping.lifetime_secs, "port mapping renewed");
                    }
                    self.set(Some(mapping), Some(now + lifetime));
                    next = now + (lifetime / 2).max(MIN_RENEW);
                }
                Err(e) => {
                    failures += 1;
                    next = self.failed(Some(gateway), &e, failures);
                }
            }
        }
        self.delete().await;
    }

    /// Logs and reports a failure (before withdrawing the mapping, so the
    /// failure is announced before its consequence); returns when to try
    /// again.
    fn failed(&mut self, gateway: Option<SocketAddrV4>, e: &NatPmpError, failures: u32) -> Instant {
        let wait = self.backoff(failures);
        let gateway_shown = gateway.map_or_else(|| "none".to_string(), |g| g.to_string());
        tracing::warn!(gateway = %gateway_shown, error = %e, retry_in = ?wait, "NAT-PMP port mapping failed");
        self.events.send(Event::PortMappingFailed {
            protocol: MappingProtocol::NatPmp,
            gateway: gateway.map(SocketAddr::V4),
            reason: e.to_string(),
            retry_in_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        });
        if e.withdraws() {
            self.withdraw("the gateway refused it");
        }
        Instant::now() + wait
    }

    /// Deletes the mapping we hold, if any (shutdown).
    async fn delete(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        let SocketAddr::V4(gateway) = held.mapping.gateway else {
            return;
        };
        let timing = Timing {
            attempts: self.config.timing.attempts.min(DELETE_ATTEMPTS),
            ..self.config.timing
        };
        match unmap(gateway, self.port, timing).await {
            Ok(()) => tracing::info!(gateway = %gateway, "port mapping deleted"),
            Err(e) => {
                tracing::warn!(gateway = %gateway, error = %e, "cannot delete the port mapping")
            }
        }
        self.tx.send_replace(None);
        self.events.send(Event::PortMappingChanged {
            mapping: None,
            protocol: MappingProtocol::NatPmp,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let (tx, _rx) = watch::channel(None);
        let task = MapperTask {
            config: MapperConfig {
                gateway: None,
                timing: Timing::default(),
                retry_first: Duration::from_secs(5),
                retry_max: Duration::from_secs(60),
            },
            port: 6881,
            events: EventBus::new(),
            tx,
            held: None,
        };
        let waits: Vec<u64> = (1..=6).map(|n| task.backoff(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
    }
}
