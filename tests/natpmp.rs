//! NAT-PMP port mapping end to end: a fake gateway on 127.0.0.1 (written
//! here from RFC 6886, not with the crate's codec) answers, stays silent or
//! talks nonsense; the address watcher maps alice's listen port, and a real
//! Prosody shows what bob sees.
//!
//! Not here: packet encoding and decoding, and the route table parser
//! (unit tests in `src/addresses/natpmp.rs`).

mod common;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitween::addresses::{keep_published, AddressConfig, AddressWatcher, PortMapping, Ports};
use bitween::events::{Event, EventBus, MappingProtocol};
use common::{next_event, share, Peer, Prosody, DOMAIN};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

const LISTEN: u16 = 6881;
const MAPPED: u16 = 40000;
const EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(81, 2, 69, 160);

// ----- a fake NAT-PMP gateway ------------------------------------------------

/// What the fake gateway does with one request.
#[derive(Debug, Clone)]
enum Behaviour {
    /// Answer as RFC 6886 says: external address [`EXTERNAL_IP`], mapped
    /// external port `port`, at most `lifetime` seconds.
    Answer { port: u16, lifetime: u32 },
    /// Answer with this result code (an error response, 8 bytes).
    Refuse(u16),
    /// Answer with these bytes, whatever was asked.
    Raw(Vec<u8>),
    /// Never answer.
    Silent,
}

fn answer(lifetime: u32) -> Behaviour {
    Behaviour::Answer {
        port: MAPPED,
        lifetime,
    }
}

/// A request as the gateway received it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    ExternalAddress,
    /// opcode 2
    MapTcp {
        internal: u16,
        suggested: u16,
        lifetime: u32,
    },
    Other(Vec<u8>),
}

fn parse_request(p: &[u8]) -> Request {
    match p {
        [0, 0] => Request::ExternalAddress,
        [0, 2, 0, 0, i0, i1, s0, s1, l0, l1, l2, l3] => Request::MapTcp {
            internal: u16::from_be_bytes([*i0, *i1]),
            suggested: u16::from_be_bytes([*s0, *s1]),
            lifetime: u32::from_be_bytes([*l0, *l1, *l2, *l3]),
        },
        other => Request::Other(other.to_vec()),
    }
}

/// A UDP NAT-PMP gateway on 127.0.0.1 following a script: each request
/// takes the next behaviour, the last one repeats.
struct FakeGateway {
    addr: SocketAddr,
    script: Arc<Mutex<VecDeque<Behaviour>>>,
    requests: Arc<Mutex<Vec<Request>>>,
    count: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeGateway {
    async fn start(script: Vec<Behaviour>) -> FakeGateway {
        assert!(!script.is_empty());
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, count) = watch::channel(0);
        let (s, r) = (script.clone(), requests.clone());
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1100];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let request = parse_request(&buf[..n]);
                r.lock().unwrap().push(request.clone());
                count_tx.send_modify(|c| *c += 1);
                let behaviour = {
                    let mut script = s.lock().unwrap();
                    if script.len() > 1 {
                        script.pop_front().unwrap()
                    } else {
                        script[0].clone()
                    }
                };
                let epoch = started.elapsed().as_secs() as u32;
                let opcode = buf.get(1).copied().unwrap_or(0);
                let mut reply = vec![0, 128 | opcode];
                match behaviour {
                    Behaviour::Silent => continue,
                    Behaviour::Raw(bytes) => reply = bytes,
                    Behaviour::Refuse(code) => {
                        reply.extend_from_slice(&code.to_be_bytes());
                        reply.extend_from_slice(&epoch.to_be_bytes());
                    }
                    Behaviour::Answer { port, lifetime } => {
                        reply.extend_from_slice(&[0, 0]);
                        reply.extend_from_slice(&epoch.to_be_bytes());
                        match request {
                            Request::ExternalAddress => {
                                reply.extend_from_slice(&EXTERNAL_IP.octets());
                            }
                            Request::MapTcp {
                                internal,
                                lifetime: asked,
                                ..
                            } => {
                                // Lifetime 0 deletes: external port 0 too.
                                let (port, granted) = if asked == 0 {
                                    (0, 0)
                                } else {
                                    (port, asked.min(lifetime))
                                };
                                reply.extend_from_slice(&internal.to_be_bytes());
                                reply.extend_from_slice(&port.to_be_bytes());
                                reply.extend_from_slice(&granted.to_be_bytes());
                            }
                            Request::Other(_) => {
                                // Unsupported opcode: result code 5.
                                reply[3] = 5;
                            }
                        }
                    }
                }
                let _ = socket.send_to(&reply, from).await;
            }
        });
        FakeGateway {
            addr,
            script,
            requests,
            count,
            task,
        }
    }

    /// From now on, do `behaviour` for every request.
    fn behave_from_now_on(&self, behaviour: Behaviour) {
        let mut script = self.script.lock().unwrap();
        script.clear();
        script.push_back(behaviour);
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn mapping_requests(&self) -> Vec<(u16, u16, u32)> {
        self.requests()
            .into_iter()
            .filter_map(|r| match r {
                Request::MapTcp {
                    internal,
                    suggested,
                    lifetime,
                } => Some((internal, suggested, lifetime)),
                _ => None,
            })
            .collect()
    }

    /// Waits (up to 20 s) until the gateway has received `n` requests.
    async fn wait_requests(&self, n: usize) {
        let mut count = self.count.clone();
        tokio::time::timeout(Duration::from_secs(20), count.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("the gateway got {:?}, not {n} requests", self.requests()))
            .unwrap();
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ----- helpers -------------------------------------------------------------

/// Static 127.0.0.1 only, NAT-PMP at `gateway` with quick timings (no
/// UPnP: its search would leave this machine).
fn config(gateway: SocketAddr, first_timeout: Duration, attempts: u32) -> AddressConfig {
    AddressConfig {
        public_ipv4: false,
        ipv6: false,
        lan: false,
        static_addresses: vec!["127.0.0.1".parse().unwrap()],
        natpmp: true,
        upnp: false,
        natpmp_gateway: Some(gateway),
        natpmp_first_timeout: first_timeout,
        natpmp_attempts: attempts,
        retry_first: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
        ..AddressConfig::default()
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn listen_only() -> Vec<SocketAddr> {
    vec![sa("127.0.0.1:6881")]
}

/// With a mapping: the mapped port beside the listen port, and the
/// external address the gateway reports (the router is the authority for
/// it) with both.
fn with_mapped() -> Vec<SocketAddr> {
    vec![
        sa("127.0.0.1:6881"),
        sa("127.0.0.1:40000"),
        sa("81.2.69.160:6881"),
        sa("81.2.69.160:40000"),
    ]
}

fn alice_jid() -> String {
    format!("alice@{DOMAIN}")
}

fn published_with(event: &Event, addresses: &[SocketAddr]) -> bool {
    matches!(event, Event::OwnItemPublished { item }
        if item.resources.get("laptop").is_some_and(|r| r.addresses == addresses))
}

fn addresses_are(event: &Event, addresses: &[SocketAddr]) -> bool {
    matches!(event, Event::AddressesChanged { addresses: a } if a == addresses)
}

// ----- through a real Prosody ------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn bob_sees_alices_mapped_port_and_the_gateways_address_until_shutdown() {
    let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
    let mut alice = Peer::login(&server, "alice", "laptop").await;
    let mut bob = Peer::login(&server, "bob", "desk").await;
    let gateway = FakeGateway::start(vec![answer(3600)]).await;

    let watcher = AddressWatcher::start(
        config(gateway.addr, Duration::from_millis(250), 3),
        Ports::listen(LISTEN),
        alice.bus.clone(),
    )
    .unwrap();
    let (_shares_tx, shares) = watch::channel(vec![share(1, "holiday_photos", 42)]);
    let _glue = keep_published(alice.xmpp.clone(), watcher.subscribe(), shares);

    let mapped = alice
        .wait_for("the port mapping", |e| {
            matches!(
                e,
                Event::PortMappingChanged {
                    mapping: Some(_),
                    ..
                }
            )
        })
        .await;
    assert_eq!(
        mapped,
        Event::PortMappingChanged {
            protocol: MappingProtocol::NatPmp,
            mapping: Some(PortMapping {
                protocol: MappingProtocol::NatPmp,
                gateway: gateway.addr,
                external_ip: EXTERNAL_IP,
                internal_port: LISTEN,
                external_port: MAPPED,
                lifetime_secs: 3600,
            })
        }
    );
    // The external address first, then TCP for the listen port, asking
    // for the same external port and the RFC's two hours.
    assert_eq!(
        gateway.requests()[..2],
        [
            Request::ExternalAddress,
            Request::MapTcp {
                internal: LISTEN,
                suggested: LISTEN,
                lifetime: 7200
            }
        ]
    );

    bob.wait_catalog("alice at the listen port and the mapped port", |c| {
        c.resource(&alice_jid(), "laptop")
            .is_some_and(|r| r.addresses == with_mapped() && r.shares.len() == 1)
    })
    .await;
    assert_eq!(watcher.current().ports, [LISTEN, MAPPED]);

    // Shutdown deletes the mapping: lifetime 0, no suggested port.
    let before = gateway.requests().len();
    tokio::time::timeout(Duration::from_secs(10), watcher.shutdown())
        .await
        .expect("shutdown is bounded");
    let after = gateway.requests();
    assert_eq!(
        after[before..],
        [Request::MapTcp {
            internal: LISTEN,
            suggested: 0,
            lifetime: 0
        }]
    );
    alice.xmpp.shutdown().await;
    bob.xmpp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_gateway_delays_nothing() {
    let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
    let mut alice = Peer::login(&server, "alice", "laptop").await;
    let mut bob = Peer::login(&server, "bob", "desk").await;
    let gateway = FakeGateway::start(vec![Behaviour::Silent]).await;

    // Two requests, 2 s then 4 s: 6 s until the attempt fails.
    let first_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let watcher = AddressWatcher::start(
        config(gateway.addr, first_timeout, 2),
        Ports::listen(LISTEN),
        alice.bus.clone(),
    )
    .unwrap();
    assert_eq!(watcher.current().addresses, listen_only());
    let (_shares_tx, shares) = watch::channel(Vec::new());
    let _glue = keep_published(alice.xmpp.clone(), watcher.subscribe(), shares);

    let first = alice
        .wait_for(
            "the first publish with addresses, or a mapping event",
            |e| {
                // (The session publishes an empty entry at login, before the
                // glue's first.)
                matches!(e, Event::OwnItemPublished { item }
                if item.resources.get("laptop").is_some_and(|r| !r.addresses.is_empty()))
                    || matches!(
                        e,
                        Event::PortMappingFailed { .. } | Event::PortMappingChanged { .. }
                    )
            },
        )
        .await;
    assert!(
        published_with(&first, &listen_only()),
        "the first publish must come first, with the listen port only: {first:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < first_timeout,
        "the first publish took {elapsed:?}: it waited for the gateway"
    );
    bob.wait_catalog("alice at the listen port", |c| {
        c.resource(&alice_jid(), "laptop")
            .is_some_and(|r| r.addresses == listen_only())
    })
    .await;

    let failed = alice
        .wait_for("the attempt to fail", |e| {
            matches!(e, Event::PortMappingFailed { .. })
        })
        .await;
    let Event::PortMappingFailed {
        gateway: Some(asked),
        reason,
        retry_in_ms,
        ..
    } = failed
    else {
        panic!("{failed:?}")
    };
    assert_eq!(asked, gateway.addr);
    assert!(
        reason.contains(&gateway.addr.to_string()) && reason.contains("did not answer 2"),
        "{reason}"
    );
    assert_eq!(retry_in_ms, 100);
    assert!(started.elapsed() >= first_timeout * 3);
    assert_eq!(
        gateway.requests()[..2],
        [Request::ExternalAddress, Request::ExternalAddress]
    );
    assert_eq!(watcher.current().addresses, listen_only());

    // Nothing is held, so shutdown sends nothing and does not wait.
    let stopping = Instant::now();
    watcher.shutdown().await;
    assert!(stopping.elapsed() < first_timeout);
    alice.xmpp.shutdown().await;
    bob.xmpp.shutdown().await;
}

// ----- the watcher alone -------------------------------------------------------

#[tokio::test]
async fn malformed_responses_are_refused_without_a_crash() {
    common::init_logging();
    let mut short = vec![0, 130, 0, 0, 0, 0, 0, 1, 0x1a, 0xe1, 0x9c, 0x40];
    let gateway = FakeGateway::start(vec![
        // Not NAT-PMP's version.
        Behaviour::Raw(vec![2, 128, 0, 0, 0, 0, 0, 1, 81, 2, 69, 160]),
        // The external address, then a mapping answer cut short.
        answer(3600),
        Behaviour::Raw(short.clone()),
        // The external address, then the answer to a UDP mapping.
        answer(3600),
        Behaviour::Raw({
            short[1] = 129;
            short.extend_from_slice(&[0, 0, 14, 16]);
            short
        }),
        // Then all is well.
        answer(3600),
    ])
    .await;
    let bus = EventBus::new();
    let mut events = bus.subscribe();
    let watcher = AddressWatcher::start(
        config(gateway.addr, Duration::from_millis(500), 2),
        Ports::listen(LISTEN),
        bus.clone(),
    )
    .unwrap();

    let mut reasons = Vec::new();
    for _ in 0..3 {
        let e = next_event(&mut events, "a refused response", |e| {
            matches!(e, Event::PortMappingFailed { .. })
        })
        .await;
        let Event::PortMappingFailed { reason, .. } = e else {
            unreachable!()
        };
        reasons.push(reason);
    }
    assert!(reasons[0].contains("version 2"), "{reasons:?}");
    assert!(reasons[1].contains("12 bytes, expected 16"), "{reasons:?}");
    assert!(
        reasons[2].contains("opcode 129, expected 130"),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .all(|r| r.contains("malformed") && r.contains(&gateway.addr.to_string())),
        "{reasons:?}"
    );
    assert_eq!(watcher.current().addresses, listen_only());

    // Still running: the next attempt maps the port.
    next_event(&mut events, "the mapped port published", |e| {
        addresses_are(e, &with_mapped())
    })
    .await;
    watcher.shutdown().await;
}

#[tokio::test]
async fn the_mapping_is_renewed_at_half_its_lifetime_and_withdrawn_when_refused() {
    common::init_logging();
    // The gateway grants 2 s: renewal after 1 s.
    let gateway = FakeGateway::start(vec![answer(2)]).await;
    let bus = EventBus::new();
    let mut events = bus.subscribe();
    let watcher = AddressWatcher::start(
        config(gateway.addr, Duration::from_millis(500), 2),
        Ports::listen(LISTEN),
        bus.clone(),
    )
    .unwrap();
    next_event(&mut events, "the mapped port published", |e| {
        addresses_are(e, &with_mapped())
    })
    .await;
    let granted = Instant::now();
    // Request 4 is the renewal's mapping request, suggesting the port we
    // hold.
    gateway.wait_requests(4).await;
    let renewed_after = granted.elapsed();
    assert!(
        renewed_after >= Duration::from_millis(800) && renewed_after < Duration::from_secs(2),
        "renewed after {renewed_after:?}"
    );
    assert_eq!(gateway.mapping_requests()[1], (LISTEN, MAPPED, 7200));

    // The gateway now refuses: the port is withdrawn at once.
    gateway.behave_from_now_on(Behaviour::Refuse(2));
    let e = next_event(&mut events, "the refusal", |e| {
        matches!(e, Event::PortMappingFailed { .. })
    })
    .await;
    assert!(
        matches!(&e, Event::PortMappingFailed { reason, .. } if reason.contains("not authorized")),
        "{e:?}"
    );
    next_event(&mut events, "the mapped port withdrawn", |e| {
        addresses_are(e, &listen_only())
    })
    .await;

    // A gateway that falls silent: the mapping is kept until it expires.
    gateway.behave_from_now_on(answer(2));
    next_event(&mut events, "the mapping back", |e| {
        addresses_are(e, &with_mapped())
    })
    .await;
    gateway.behave_from_now_on(Behaviour::Silent);
    let silent = Instant::now();
    next_event(&mut events, "the expired mapping withdrawn", |e| {
        addresses_are(e, &listen_only())
    })
    .await;
    assert!(
        silent.elapsed() < Duration::from_secs(4),
        "withdrawn after {:?}",
        silent.elapsed()
    );
    watcher.shutdown().await;
}

#[tokio::test]
async fn a_closed_port_is_reported_and_natpmp_off_asks_nothing() {
    common::init_logging();
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let bus = EventBus::new();
    let mut events = bus.subscribe();
    let watcher = AddressWatcher::start(
        config(closed, Duration::from_secs(5), 2),
        Ports::listen(LISTEN),
        bus.clone(),
    )
    .unwrap();
    let started = Instant::now();
    let e = next_event(&mut events, "the failure", |e| {
        matches!(e, Event::PortMappingFailed { .. })
    })
    .await;
    assert!(
        matches!(&e, Event::PortMappingFailed { reason, .. } if reason.contains("connection refused")),
        "{e:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it waited for a timeout"
    );
    watcher.shutdown().await;

    let gateway = FakeGateway::start(vec![answer(3600)]).await;
    let off = AddressConfig {
        natpmp: false,
        ..config(gateway.addr, Duration::from_millis(100), 1)
    };
    let watcher = AddressWatcher::start(off, Ports::listen(LISTEN), bus.clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gateway.requests(), []);
    assert_eq!(watcher.current().addresses, listen_only());
    watcher.shutdown().await;
}
