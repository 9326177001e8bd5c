//! NAT-PMP (RFC 6886) port mapping: asks the IPv4 default gateway to
//! forward an external TCP port to our BitTorrent listen port, renews the
//! mapping at half its lifetime, reports it (the watcher publishes the
//! external port beside the listen port) and deletes it on shutdown.
//!
//! Everything the gateway sends is untrusted: a response with the wrong
//! length, version, opcode or port, or an error result code, is refused
//! with a message that says which. Failures are logged with the gateway
//! and the reason and retried with backoff; nothing waits for them.
//!
//! Not here: PCP (RFC 6887), NAT-PMP's successor. A gateway that only
//! speaks PCP answers "unsupported version", which is reported as such.
//! The gateway's multicast announcements (224.0.0.1:5350) are not
//! listened to either: a mapping lost to a router reboot comes back at the
//! next renewal. Only TCP is mapped (librqbit's uTP would need UDP too),
//! and the default gateway is only discovered on Linux (`/proc/net/route`);
//! elsewhere `natpmp_gateway` must name it.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use crate::events::PortMapping;
use crate::events::{Event, EventBus};

/// The UDP port NAT-PMP gateways listen on.
pub const GATEWAY_PORT: u16 = 5351;
/// The lifetime we ask for: two hours, as RFC 6886 recommends.
pub const REQUESTED_LIFETIME: u32 = 7200;
/// Never renew more often than this, whatever lifetime the gateway grants.
const MIN_RENEW: Duration = Duration::from_secs(1);
/// Requests sent to delete the mapping on shutdown, at most: shutting
/// down must not take the two minutes a full retry series can.
const DELETE_ATTEMPTS: u32 = 2;

const VERSION: u8 = 0;
const OP_EXTERNAL_ADDRESS: u8 = 0;
const RESPONSE_BIT: u8 = 128;
const EXTERNAL_ADDRESS_RESPONSE_LEN: usize = 12;
const MAPPING_RESPONSE_LEN: usize = 16;

// ----- packets ---------------------------------------------------------------

/// The transport protocol of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
}

impl Protocol {
    fn opcode(self) -> u8 {
        match self {
            Protocol::Udp => 1,
            Protocol::Tcp => 2,
        }
    }
}

/// The request for the gateway's external IPv4 address.
pub fn external_address_request() -> [u8; 2] {
    [VERSION, OP_EXTERNAL_ADDRESS]
}

/// A request to map (or, with `lifetime` 0, delete the mapping of)
/// `internal_port`. `suggested_external_port` 0 lets the gateway choose.
pub fn mapping_request(
    protocol: Protocol,
    internal_port: u16,
    suggested_external_port: u16,
    lifetime: u32,
) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[0] = VERSION;
    p[1] = protocol.opcode();
    // p[2..4]: reserved, zero.
    p[4..6].copy_from_slice(&internal_port.to_be_bytes());
    p[6..8].copy_from_slice(&suggested_external_port.to_be_bytes());
    p[8..12].copy_from_slice(&lifetime.to_be_bytes());
    p
}

/// A non-zero result code of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultCode(pub u16);

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.0 {
            1 => "unsupported version (the gateway may speak only PCP)",
            2 => "not authorized or refused (NAT-PMP may be turned off on the router)",
            3 => "network failure (the gateway has no external address yet)",
            4 => "out of resources (no more mappings available)",
            5 => "unsupported opcode",
            _ => "unknown result code",
        };
        write!(f, "{what}, result code {}", self.0)
    }
}

/// Why a response is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("malformed response: {got} bytes, expected {expected}")]
    Length { got: usize, expected: usize },
    #[error("malformed response: version {0}, expected NAT-PMP's 0")]
    Version(u8),
    #[error("malformed response: opcode {got}, expected {expected}")]
    Opcode { got: u8, expected: u8 },
    #[error("the gateway refused: {0}")]
    Refused(ResultCode),
    #[error("malformed response: {0}")]
    Invalid(String),
}

/// The external-address response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalAddress {
    /// Seconds since the gateway's mapping table was (re)initialised.
    pub epoch: u32,
    pub ip: Ipv4Addr,
}

/// A mapping response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingResponse {
    pub epoch: u32,
    pub internal_port: u16,
    pub external_port: u16,
    /// Seconds the mapping lasts; 0 when it was deleted.
    pub lifetime: u32,
}

/// Checks version, opcode and result code; returns the epoch. A success
/// must be exactly `success_len` bytes. An error response only needs its
/// result code: RFC 6886 lets it be the 8-byte header or the echoed
/// request, so any length from 4 up to `success_len` is accepted.
fn header(buf: &[u8], request_opcode: u8, success_len: usize) -> Result<u32, ResponseError> {
    if buf.len() < 4 || buf.len() > success_len {
        return Err(ResponseError::Length {
            got: buf.len(),
            expected: success_len,
        });
    }
    if buf[0] != VERSION {
        return Err(ResponseError::Version(buf[0]));
    }
    let expected = RESPONSE_BIT | request_opcode;
    if buf[1] != expected {
        return Err(ResponseError::Opcode {
            got: buf[1],
            expected,
        });
    }
    let code = u16::from_be_bytes([buf[2], buf[3]]);
    if code != 0 {
        return Err(ResponseError::Refused(ResultCode(code)));
    }
    if buf.len() != success_len {
        return Err(ResponseError::Length {
            got: buf.len(),
            expected: success_len,
        });
    }
    Ok(u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]))
}

/// Decodes the answer to [`external_address_request`].
pub fn decode_external_address(buf: &[u8]) -> Result<ExternalAddress, ResponseError> {
    let epoch = header(buf, OP_EXTERNAL_ADDRESS, EXTERNAL_ADDRESS_RESPONSE_LEN)?;
    let ip = Ipv4Addr::new(buf[8], buf[9], buf[10], buf[11]);
    if ip.is_unspecified() {
        // RFC 6886 wants result code 3 then; 0.0.0.0 is no address.
        return Err(ResponseError::Invalid(
            "external address 0.0.0.0 with a success code".into(),
        ));
    }
    Ok(ExternalAddress { epoch, ip })
}

/// Decodes the answer to [`mapping_request`] for `protocol`.
pub fn decode_mapping(buf: &[u8], protocol: Protocol) -> Result<MappingResponse, ResponseError> {
    let epoch = header(buf, protocol.opcode(), MAPPING_RESPONSE_LEN)?;
    let port = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
    Ok(MappingResponse {
        epoch,
        internal_port: port(8),
        external_port: port(10),
        lifetime: u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]),
    })
}

/// Checks that a mapping response answers our request for
/// `internal_port`: the same port, and for a new mapping (`deleting`
/// false) an external port and a lifetime.
pub fn check_mapping(
    response: MappingResponse,
    internal_port: u16,
    deleting: bool,
) -> Result<MappingResponse, ResponseError> {
    if response.internal_port != internal_port {
        return Err(ResponseError::Invalid(format!(
            "internal port {}, we asked about {internal_port}",
            response.internal_port
        )));
    }
    if !deleting && response.external_port == 0 {
        return Err(ResponseError::Invalid(
            "external port 0 for a mapping".into(),
        ));
    }
    if !deleting && response.lifetime == 0 {
        return Err(ResponseError::Invalid(
            "lifetime 0 for a new mapping".into(),
        ));
    }
    Ok(response)
}

// ----- the default gateway ------------------------------------------------

/// The IPv4 default gateway in the text of Linux's `/proc/net/route`: the
/// up gateway route to 0.0.0.0/0 with the lowest metric (the first on a
/// tie). Lines that do not parse are skipped.
///
/// The kernel prints addresses as the in-memory (network order) 32 bits
/// read as a host-order number, so the text depends on the host's byte
/// order, and so does this function.
pub fn default_gateway_from_route_table(text: &str) -> Option<Ipv4Addr> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    let mut best: Option<(u32, Ipv4Addr)> = None;
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 8 {
            continue;
        }
        let (Some(dest), Some(gateway), Some(flags), Ok(metric), Some(mask)) = (
            hex(cols[1]),
            hex(cols[2]),
            hex(cols[3]),
            cols[6].parse::<u32>(),
            hex(cols[7]),
        ) else {
            continue;
        };
        let default_route = dest == 0 && mask == 0;
        let usable = flags & RTF_UP != 0 && flags & RTF_GATEWAY != 0 && gateway != 0;
        if default_route && usable && best.is_none_or(|(m, _)| metric < m) {
            best = Some((metric, Ipv4Addr::from(gateway.to_ne_bytes())));
        }
    }
    best.map(|(_, ip)| ip)
}

/// The system's IPv4 default gateway.
pub fn default_gateway() -> Result<Ipv4Addr, String> {
    if cfg!(target_os = "linux") {
        let text = std::fs::read_to_string("/proc/net/route")
            .map_err(|e| format!("cannot read /proc/net/route: {e}"))?;
        default_gateway_from_route_table(&text)
            .ok_or_else(|| "no IPv4 default route in /proc/net/route".to_string())
    } else {
        Err("finding the default gateway is only implemented on Linux; \
             set natpmp_gateway"
            .into())
    }
}

// ----- talking to the gateway -------------------------------------------------

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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
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
        super::backoff(self.config.retry_first, self.config.retry_max, failures)
    }

    /// Publishes `mapping` (or its absence) if it differs from what is held.
    fn set(&mut self, mapping: Option<PortMapping>, expires: Option<Instant>) {
        let before = self.held.as_ref().map(|h| h.mapping);
        self.held = mapping
            .zip(expires)
            .map(|(mapping, expires)| Held { mapping, expires });
        if before != mapping {
            self.tx.send_replace(mapping);
            self.events.send(Event::PortMappingChanged { mapping });
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
        self.events
            .send(Event::PortMappingChanged { mapping: None });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_laid_out_as_rfc_6886_says() {
        assert_eq!(external_address_request(), [0, 0]);
        assert_eq!(
            mapping_request(Protocol::Tcp, 6881, 40000, 7200),
            [0, 2, 0, 0, 0x1a, 0xe1, 0x9c, 0x40, 0, 0, 0x1c, 0x20]
        );
        // Deleting: lifetime 0, no suggested port; UDP is opcode 1.
        assert_eq!(
            mapping_request(Protocol::Udp, 6881, 0, 0),
            [0, 1, 0, 0, 0x1a, 0xe1, 0, 0, 0, 0, 0, 0]
        );
    }

    fn mapping_response(opcode: u8, code: u16, internal: u16, external: u16, life: u32) -> Vec<u8> {
        let mut p = vec![0, opcode];
        p.extend_from_slice(&code.to_be_bytes());
        p.extend_from_slice(&1234u32.to_be_bytes());
        p.extend_from_slice(&internal.to_be_bytes());
        p.extend_from_slice(&external.to_be_bytes());
        p.extend_from_slice(&life.to_be_bytes());
        p
    }

    #[test]
    fn good_responses_decode() {
        let ext = [0, 128, 0, 0, 0, 0, 0, 9, 81, 2, 69, 160];
        assert_eq!(
            decode_external_address(&ext),
            Ok(ExternalAddress {
                epoch: 9,
                ip: Ipv4Addr::new(81, 2, 69, 160)
            })
        );
        let m =
            decode_mapping(&mapping_response(130, 0, 6881, 40000, 3600), Protocol::Tcp).unwrap();
        assert_eq!(
            m,
            MappingResponse {
                epoch: 1234,
                internal_port: 6881,
                external_port: 40000,
                lifetime: 3600
            }
        );
        assert_eq!(check_mapping(m, 6881, false), Ok(m));
        // A deletion answers external port 0 and lifetime 0.
        let deleted = decode_mapping(&mapping_response(130, 0, 6881, 0, 0), Protocol::Tcp).unwrap();
        assert!(check_mapping(deleted, 6881, true).is_ok());
    }

    #[test]
    fn malformed_responses_are_refused_with_the_reason() {
        let good = mapping_response(130, 0, 6881, 40000, 3600);
        let err = |buf: &[u8]| decode_mapping(buf, Protocol::Tcp).unwrap_err();

        assert_eq!(
            err(&good[..15]),
            ResponseError::Length {
                got: 15,
                expected: 16
            }
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            err(&long),
            ResponseError::Length {
                got: 17,
                expected: 16
            }
        );
        assert_eq!(
            err(&[]),
            ResponseError::Length {
                got: 0,
                expected: 16
            }
        );

        let mut version = good.clone();
        version[0] = 2;
        assert_eq!(err(&version), ResponseError::Version(2));

        // The UDP answer to a TCP request, and a request echoed back.
        assert_eq!(
            err(&mapping_response(129, 0, 6881, 40000, 3600)),
            ResponseError::Opcode {
                got: 129,
                expected: 130
            }
        );
        assert_eq!(
            err(&mapping_request(Protocol::Tcp, 6881, 6881, 7200)),
            ResponseError::Opcode {
                got: 2,
                expected: 130
            }
        );

        // Error codes are refusals, short (8-byte) or full length.
        let refused = err(&mapping_response(130, 2, 6881, 0, 0));
        assert_eq!(refused, ResponseError::Refused(ResultCode(2)));
        assert!(refused.to_string().contains("not authorized"), "{refused}");
        assert_eq!(
            err(&mapping_response(130, 1, 0, 0, 0)[..8]),
            ResponseError::Refused(ResultCode(1))
        );
        assert!(ResultCode(77).to_string().contains("unknown result code"));

        // Decodes, but does not answer our request.
        let other_port =
            decode_mapping(&mapping_response(130, 0, 5000, 40000, 3600), Protocol::Tcp).unwrap();
        assert!(
            matches!(check_mapping(other_port, 6881, false), Err(ResponseError::Invalid(m)) if m.contains("5000"))
        );
        let no_port =
            decode_mapping(&mapping_response(130, 0, 6881, 0, 3600), Protocol::Tcp).unwrap();
        assert!(check_mapping(no_port, 6881, false).is_err());
        let no_life =
            decode_mapping(&mapping_response(130, 0, 6881, 40000, 0), Protocol::Tcp).unwrap();
        assert!(check_mapping(no_life, 6881, false).is_err());

        // External address: exact length, and never 0.0.0.0.
        assert_eq!(
            decode_external_address(&[0, 128, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0]),
            Err(ResponseError::Invalid(
                "external address 0.0.0.0 with a success code".into()
            ))
        );
        assert_eq!(
            decode_external_address(&[0, 128, 0, 3, 0, 0, 0, 9]),
            Err(ResponseError::Refused(ResultCode(3)))
        );
        assert_eq!(
            decode_external_address(&[0, 128, 0, 0, 0, 0, 0, 9]),
            Err(ResponseError::Length {
                got: 8,
                expected: 12
            })
        );
        assert_eq!(
            decode_external_address(&[0, 130, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4]),
            Err(ResponseError::Opcode {
                got: 130,
                expected: 128
            })
        );
    }

    // The kernel prints the gateway in host byte order; this text is a
    // little-endian machine's.
    #[cfg(target_endian = "little")]
    #[test]
    fn the_default_gateway_is_the_best_default_route() {
        let table = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t0000A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0
wg0\t00000000\t00000000\t0001\t0\t0\t50\t00000000\t0\t0\t0
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
wlan0\t00000000\t FE01A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
down0\t00000000\t0102A8C0\t0002\t0\t0\t1\t00000000\t0\t0\t0
broken\tzzzz
";
        // wg0 has no gateway, down0 is not up: eth0 (metric 100) wins
        // over wlan0 (600).
        assert_eq!(
            default_gateway_from_route_table(table),
            Some(Ipv4Addr::new(192, 168, 1, 1))
        );
        let only_lan = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";
        assert_eq!(default_gateway_from_route_table(only_lan), None);
        assert_eq!(default_gateway_from_route_table(""), None);
    }

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
