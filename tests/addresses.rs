//! Own addresses end to end: fake what-is-my-IP services on loopback (never
//! the real ones), a real Prosody to show what contacts see, injected
//! interface lists for changes, and the reachability diagnosis against
//! real loopback sockets.
//!
//! Not here: the pure filters and rules (unit tests in `src/addresses/`).

mod common;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitween::addresses::diagnose::Outcome;
use bitween::addresses::public_ip::ServiceResult;
use bitween::addresses::{
    diagnose, keep_published, AddressConfig, AddressWatcher, InterfaceAddr, InterfaceLister,
    OwnAddresses, Ports, PublicIpLookup, Rule, Verdict,
};
use bitween::events::{Event, EventBus};
use common::{next_event, share, Peer, Prosody, DOMAIN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

const PUBLIC_A: &str = "81.2.69.160";
const PUBLIC_B: &str = "81.2.69.161";
const OTHER_PUBLIC: &str = "8.8.8.8";

// ----- a fake what-is-my-IP service ----------------------------------------

#[derive(Debug, Clone)]
enum Reply {
    /// 200 with this body.
    Body(String),
    /// This status, empty body.
    Status(u16),
    /// Accept, read the request, never answer.
    Hang,
}

fn ip_reply(ip: &str) -> Reply {
    Reply::Body(format!("{ip}\n"))
}

/// An HTTP/1.1 server on 127.0.0.1 answering each request with the next
/// reply of its script; the last reply repeats.
struct FakeService {
    url: String,
    script: Arc<Mutex<VecDeque<Reply>>>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeService {
    async fn start(script: Vec<Reply>) -> FakeService {
        assert!(!script.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ip", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let requests = Arc::new(AtomicUsize::new(0));
        let (s, r) = (script.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (script, requests) = (s.clone(), r.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    let reply = {
                        let mut script = script.lock().unwrap();
                        if script.len() > 1 {
                            script.pop_front().unwrap()
                        } else {
                            script[0].clone()
                        }
                    };
                    let (status, body) = match reply {
                        Reply::Body(b) => ("200 OK".to_string(), b),
                        Reply::Status(code) => (format!("{code} Whatever"), String::new()),
                        Reply::Hang => {
                            // Keep the connection open, silent, until the
                            // client gives up.
                            let _ = stream.read(&mut chunk).await;
                            return;
                        }
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        FakeService {
            url,
            script,
            requests,
            task,
        }
    }

    /// From now on, answer `reply` to every request.
    fn answer_from_now_on(&self, reply: Reply) {
        let mut script = self.script.lock().unwrap();
        script.clear();
        script.push_back(reply);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ----- helpers -------------------------------------------------------------

/// Only static 127.0.0.1 and the given services; interfaces, NAT-PMP and
/// UPnP off (this machine has nothing publishable anyway, and no router is
/// asked);
/// quick timings.
fn test_config(services: &[&FakeService], service_timeout: Duration) -> AddressConfig {
    AddressConfig {
        public_ipv4: true,
        ipv6: false,
        lan: false,
        natpmp: false,
        upnp: false,
        static_addresses: vec!["127.0.0.1".parse().unwrap()],
        services: services.iter().map(|s| s.url.clone()).collect(),
        service_timeout,
        recheck_interval: Duration::from_secs(60),
        public_ipv4_interval: Duration::from_secs(60),
        retry_first: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
        ..AddressConfig::default()
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn alice_jid() -> String {
    format!("alice@{DOMAIN}")
}

/// Whether `event` is our own item published with `laptop` at exactly
/// `addresses`.
fn published_with(event: &Event, addresses: &[SocketAddr]) -> bool {
    matches!(event, Event::OwnItemPublished { item }
        if item.resources.get("laptop").is_some_and(|r| r.addresses == addresses))
}

// ----- publishing through a real Prosody -----------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_service_delays_nothing_and_a_late_answer_is_republished() {
    let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
    let mut alice = Peer::login(&server, "alice", "laptop").await;
    let mut bob = Peer::login(&server, "bob", "desk").await;

    // The first service fails on the first round and answers later; the
    // second never answers at all.
    let first = FakeService::start(vec![Reply::Status(503), ip_reply(PUBLIC_A)]).await;
    let hanging = FakeService::start(vec![Reply::Hang]).await;
    let timeout = Duration::from_secs(3);
    let config = test_config(&[&first, &hanging], timeout);

    let started = Instant::now();
    let watcher = AddressWatcher::start(config, Ports::listen(6881), alice.bus.clone()).unwrap();
    // Known at once, before any await: the static address.
    assert_eq!(watcher.current().addresses, [sa("127.0.0.1:6881")]);
    let (_shares_tx, shares) = watch::channel(vec![share(1, "holiday_photos", 42)]);
    let glue = keep_published(alice.xmpp.clone(), watcher.subscribe(), shares);

    alice
        .wait_for("the first publish, with 127.0.0.1 only", |e| {
            published_with(e, &[sa("127.0.0.1:6881")])
        })
        .await;
    let first_publish = started.elapsed();
    assert!(
        first_publish < timeout,
        "the first publish took {first_publish:?}, it waited for the hanging service ({timeout:?})"
    );
    bob.wait_catalog("alice/laptop at 127.0.0.1", |c| {
        c.resource(&alice_jid(), "laptop")
            .is_some_and(|r| r.addresses == [sa("127.0.0.1:6881")] && r.shares.len() == 1)
    })
    .await;

    // Round one: 503 plus silence until the timeout is a total failure.
    let failed = alice
        .wait_for("the first lookup to fail", |e| {
            matches!(e, Event::PublicIpLookupFailed { .. })
        })
        .await;
    assert!(
        started.elapsed() >= timeout,
        "the lookup gave up before the hanging service's timeout: {failed:?}"
    );
    assert!(hanging.requests() >= 1, "the hanging service was asked");

    // Round two (after the backoff): the first service answers alone.
    let decided = alice
        .wait_for("the public IPv4 decision", |e| {
            matches!(e, Event::PublicIpDecided { .. })
        })
        .await;
    let Event::PublicIpDecided { decision } = decided else {
        unreachable!()
    };
    assert_eq!(decision.ip.to_string(), PUBLIC_A);
    assert_eq!(decision.rule, Rule::OnlyOneAnswered);
    assert!(matches!(
        decision.answers[1].result,
        ServiceResult::Failed { .. }
    ));

    let both = [sa("127.0.0.1:6881"), sa(&format!("{PUBLIC_A}:6881"))];
    alice
        .wait_for("the republish with the public address", |e| {
            published_with(e, &both)
        })
        .await;
    bob.wait_catalog("alice/laptop at its public address too", |c| {
        c.resource(&alice_jid(), "laptop")
            .is_some_and(|r| r.addresses == both)
    })
    .await;

    watcher.shutdown().await;
    tokio::time::timeout(Duration::from_secs(20), glue)
        .await
        .expect("the glue task ends with the watcher")
        .unwrap();
    alice.xmpp.shutdown().await;
    bob.xmpp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bob_sees_alices_new_public_address_and_the_old_one_withdrawn() {
    let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
    let alice = Peer::login(&server, "alice", "laptop").await;
    let mut bob = Peer::login(&server, "bob", "desk").await;

    let service = FakeService::start(vec![ip_reply(PUBLIC_A)]).await;
    let config = AddressConfig {
        public_ipv4_interval: Duration::from_millis(300),
        ..test_config(&[&service], Duration::from_secs(2))
    };
    let watcher = AddressWatcher::start(config, Ports::listen(7000), alice.bus.clone()).unwrap();
    let (_shares_tx, shares) = watch::channel(Vec::new());
    let _glue = keep_published(alice.xmpp.clone(), watcher.subscribe(), shares);

    let old = sa(&format!("{PUBLIC_A}:7000"));
    let new = sa(&format!("{PUBLIC_B}:7000"));
    bob.wait_catalog("alice at her first public address", |c| {
        c.resource(&alice_jid(), "laptop")
            .is_some_and(|r| r.addresses.contains(&old))
    })
    .await;

    // The service now sees another address (the router reconnected).
    service.answer_from_now_on(ip_reply(PUBLIC_B));
    let changed = Instant::now();
    bob.wait_catalog("alice at her new public address only", |c| {
        c.resource(&alice_jid(), "laptop")
            .is_some_and(|r| r.addresses == [sa("127.0.0.1:7000"), new])
    })
    .await;
    assert!(
        changed.elapsed() < Duration::from_secs(10),
        "took {:?}",
        changed.elapsed()
    );
    assert!(!watcher.current().addresses.contains(&old));

    watcher.shutdown().await;
    alice.xmpp.shutdown().await;
    bob.xmpp.shutdown().await;
}

// ----- the cross-check rule --------------------------------------------------

#[tokio::test]
async fn disagreeing_services_are_decided_by_the_rule_which_is_reported() {
    common::init_logging();
    let a = FakeService::start(vec![ip_reply(PUBLIC_A)]).await;
    let b = FakeService::start(vec![ip_reply(OTHER_PUBLIC)]).await;
    let c = FakeService::start(vec![ip_reply(OTHER_PUBLIC)]).await;
    let hanging = FakeService::start(vec![Reply::Hang]).await;
    let timeout = Duration::from_secs(3);

    // Two disagree, no third: the first in the list wins, and says why.
    let lookup = PublicIpLookup::new(vec![a.url.clone(), b.url.clone()], timeout).unwrap();
    let d = lookup.lookup().await.unwrap();
    assert_eq!(d.ip.to_string(), PUBLIC_A);
    assert_eq!(d.rule, Rule::FirstInList);
    assert!(d.disputed());
    assert!(d.rule.describe().contains("disagree"));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["rule"], "first_in_list");
    assert_eq!(json["answers"][1]["ip"], OTHER_PUBLIC);

    // Two agree against the first: agreement wins, without waiting for the
    // hanging one.
    let lookup = PublicIpLookup::new(
        vec![
            a.url.clone(),
            hanging.url.clone(),
            b.url.clone(),
            c.url.clone(),
        ],
        timeout,
    )
    .unwrap();
    let started = Instant::now();
    let d = lookup.lookup().await.unwrap();
    assert!(started.elapsed() < timeout, "waited for the hanging one");
    assert_eq!(d.ip.to_string(), OTHER_PUBLIC);
    assert_eq!(d.rule, Rule::TwoAgree);
    assert_eq!(d.answers[1].result, ServiceResult::NotAwaited);

    // The watcher reports the same decision as an event and publishes it.
    let bus = EventBus::new();
    let mut events = bus.subscribe();
    let watcher = AddressWatcher::start(
        test_config(&[&a, &b], timeout),
        Ports::listen(6881),
        bus.clone(),
    )
    .unwrap();
    let e = next_event(&mut events, "PublicIpDecided", |e| {
        matches!(e, Event::PublicIpDecided { .. })
    })
    .await;
    let Event::PublicIpDecided { decision } = e else {
        unreachable!()
    };
    assert_eq!(decision.rule, Rule::FirstInList);
    next_event(&mut events, "AddressesChanged with the decision", |e| {
        *e == Event::AddressesChanged {
            addresses: vec![sa("127.0.0.1:6881"), sa(&format!("{PUBLIC_A}:6881"))],
        }
    })
    .await;
    watcher.shutdown().await;
}

#[tokio::test]
async fn untrusted_answers_are_refused_and_count_as_failures() {
    let html = FakeService::start(vec![Reply::Body("<html>81.2.69.160</html>".into())]).await;
    let private = FakeService::start(vec![ip_reply("10.0.0.1")]).await;
    let huge = FakeService::start(vec![Reply::Body("1".repeat(100_000))]).await;
    let down = FakeService::start(vec![Reply::Status(500)]).await;
    let lookup = PublicIpLookup::new(
        vec![
            html.url.clone(),
            private.url.clone(),
            huge.url.clone(),
            down.url.clone(),
            // Nothing listens here.
            "http://127.0.0.1:1/ip".into(),
        ],
        Duration::from_secs(3),
    )
    .unwrap();
    let err = lookup.lookup().await.unwrap_err();
    let reasons: Vec<String> = err
        .answers
        .iter()
        .map(|a| match &a.result {
            ServiceResult::Failed { reason } => reason.clone(),
            other => panic!("{} was not a failure: {other:?}", a.service),
        })
        .collect();
    assert!(reasons[0].contains("not an IPv4 address"), "{reasons:?}");
    assert!(reasons[1].contains("not a public address"), "{reasons:?}");
    assert!(reasons[2].contains("longer than"), "{reasons:?}");
    assert!(reasons[3].contains("500"), "{reasons:?}");
    assert!(!reasons[4].is_empty());
}

// ----- interface changes, ports, shutdown -----------------------------------

#[tokio::test]
async fn an_address_that_disappears_is_withdrawn_and_ports_multiply() {
    common::init_logging();
    let lan = InterfaceAddr::new("wlan0", "192.168.1.20".parse().unwrap(), 24);
    let v6 = InterfaceAddr::new("wlan0", "2a01:4f8:1:2::3".parse().unwrap(), 64);
    let list = Arc::new(Mutex::new(vec![lan.clone(), v6.clone()]));
    let lister: InterfaceLister = {
        let list = list.clone();
        Arc::new(move || Ok(list.lock().unwrap().clone()))
    };
    let config = AddressConfig {
        public_ipv4: false,
        natpmp: false,
        upnp: false,
        recheck_interval: Duration::from_millis(100),
        ..AddressConfig::default()
    };
    let bus = EventBus::new();
    let mut events = bus.subscribe();
    let watcher =
        AddressWatcher::start_with(config, Ports::listen(6881), bus.clone(), lister).unwrap();
    let mut state = watcher.subscribe();
    assert_eq!(
        watcher.current().addresses,
        [sa("192.168.1.20:6881"), sa("[2a01:4f8:1:2::3]:6881")]
    );
    next_event(
        &mut events,
        "the initial addresses",
        |e| matches!(e, Event::AddressesChanged { addresses } if addresses.len() == 2),
    )
    .await;

    list.lock().unwrap().retain(|a| a.ip != v6.ip);
    next_event(&mut events, "the IPv6 address withdrawn", |e| {
        *e == Event::AddressesChanged {
            addresses: vec![sa("192.168.1.20:6881")],
        }
    })
    .await;
    assert_eq!(
        state.borrow_and_update().addresses,
        [sa("192.168.1.20:6881")]
    );

    // A mapped external port is published beside the listen port.
    watcher.set_ports(Ports {
        listen: Some(6881),
        mapped: Some(40000),
    });
    next_event(&mut events, "both ports", |e| {
        *e == Event::AddressesChanged {
            addresses: vec![sa("192.168.1.20:6881"), sa("192.168.1.20:40000")],
        }
    })
    .await;
    let own: OwnAddresses = watcher.current();
    assert_eq!(own.ports, [6881, 40000]);
    assert_eq!(own.networks.len(), 1);
    state.borrow_and_update();

    tokio::time::timeout(Duration::from_secs(20), watcher.shutdown())
        .await
        .expect("the watcher ends on shutdown");
    assert!(
        state.changed().await.is_err(),
        "the state channel closes with the task"
    );
}

// ----- diagnosis ------------------------------------------------------------

fn ipv4_only_here() -> OwnAddresses {
    OwnAddresses::assemble(
        &["127.0.0.1".parse::<IpAddr>().unwrap()],
        &Default::default(),
        None,
        None,
        &Ports::listen(6881),
    )
}

#[tokio::test]
async fn an_ipv6_only_contact_cannot_be_reached_from_ipv4_only() {
    let d = diagnose(
        &[sa("[2001:db8::1]:6881")],
        &ipv4_only_here(),
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(d.verdict, Verdict::NoCommonFamily, "{d:#?}");
    assert!(d.message.contains("only IPv6"), "{}", d.message);
    assert_eq!(d.checks.len(), 1);
    assert_ne!(d.checks[0].outcome, Outcome::Connected);
}

#[tokio::test]
async fn a_refused_port_and_a_working_address_are_told_apart() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let d = diagnose(&[closed], &ipv4_only_here(), Duration::from_secs(2)).await;
    assert_eq!(d.verdict, Verdict::Unreachable, "{d:#?}");
    assert_eq!(d.checks[0].outcome, Outcome::Refused);
    assert!(d.checks[0].message.contains("refused"));
    assert!(d.message.contains("1 refused"), "{}", d.message);

    let open = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let working = open.local_addr().unwrap();
    assert_ne!(working, closed);
    let d = diagnose(
        &[closed, working],
        &ipv4_only_here(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(d.verdict, Verdict::Reachable, "{d:#?}");
    assert!(d.message.contains(&working.to_string()));
    let outcome = |a: SocketAddr| {
        d.checks
            .iter()
            .find(|c| c.address == a)
            .map(|c| c.outcome.clone())
    };
    assert_eq!(outcome(working), Some(Outcome::Connected));
    assert_eq!(outcome(closed), Some(Outcome::Refused));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["verdict"], "reachable");
}
