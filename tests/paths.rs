//! The relayed path on loopback: two devices that refuse each other's
//! (loopback) addresses, so neither a direct nor a punched connection can
//! be made, transfer through the SOCKS5 bytestream proxy (XEP-0065) of
//! their real Prosody, and say so per peer. With relaying off on either
//! side nothing is transferred and the reason is named. (Punching through
//! NATs and firewalls needs a network: `tests/lab.rs`.)

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use bitween::events::{Event, PathKind, TransferState};
use bitween::service::Service;
use common::{Prosody, DOMAIN};

/// Prosody with its proxy65 component on a free loopback port.
fn server_with_relay() -> Prosody {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // (Prosody reads the ports and interfaces of proxy65 from the global
    // section only; under the Component they would be ignored, and every
    // test's server would take the default port 5000.)
    let extra = format!(
        r#"proxy65_ports = {{ {port} }}
proxy65_interfaces = {{ "127.0.0.1" }}
Component "proxy.{DOMAIN}" "proxy65"
    proxy65_address = "127.0.0.1"
"#
    );
    Prosody::start_with(&["alice", "bob"], &[("alice", "bob")], &extra)
}

/// A device that never dials loopback addresses (so never a direct or
/// punched connection here), relaying as `relay` says.
async fn device(server: &Prosody, user: &str, dir: &Path, relay: bool) -> Service {
    // Uploads at 1 MB/s, so a transfer lasts long enough to be watched.
    let mut config = common::service_config(server, user, dir, Some(1_000_000));
    config.engine.allow_loopback_peers = false;
    config.engine.relay = relay;
    Service::start(config).await.expect("service starts")
}

async fn wait_source(svc: &Service, user: &str, hash: &bitween::shares::InfoHash) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let jid = format!("{user}@{DOMAIN}");
    while !svc
        .catalog
        .sources(hash)
        .iter()
        .any(|s| s.jid == jid && s.online)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{user}'s list never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn devices_that_cannot_reach_each_other_transfer_through_the_servers_relay() {
    let server = server_with_relay();
    let tmp = tempfile::tempdir().unwrap();
    let alice = device(&server, "alice", &tmp.path().join("alice"), true).await;
    let bob = device(&server, "bob", &tmp.path().join("bob"), true).await;
    let mut events = bob.events.subscribe();
    let file = tmp.path().join("relayed.bin");
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(&file, &content).unwrap();
    let share = alice.engine.share(&file).await.unwrap();
    wait_source(&bob, "alice", &share.hash).await;
    bob.engine.download(share.hash, None).await.unwrap();
    let mut via = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(Event::Transfers { transfers })) => {
                let t = transfers.iter().find(|t| t.hash == share.hash);
                if let Some(p) = t.and_then(|t| t.peers.first()) {
                    via = Some((p.path, p.via.clone(), p.contact.clone()));
                }
            }
            Ok(Ok(Event::DownloadFinished { hash, .. })) if hash == share.hash => break,
            Ok(Ok(Event::DownloadFailed { reason, .. })) => panic!("the download failed: {reason}"),
            Ok(_) => {}
            Err(_) => panic!(
                "no relayed download in 90 s: {:#?}; why: {:?}",
                bob.engine.transfers(),
                bob.engine
                    .paths()
                    .last_failure(&format!("alice@{DOMAIN}"), "pc")
            ),
        }
    }
    let got = std::fs::read(tmp.path().join("bob/downloads/relayed.bin")).unwrap();
    assert!(got == content, "the relayed file differs");
    assert_eq!(
        via,
        Some((
            PathKind::Relayed,
            Some(format!("proxy.{DOMAIN}")),
            Some(format!("alice@{DOMAIN}/pc"))
        )),
        "the peer is shown relayed, via the server's proxy"
    );
    bob.shutdown().await;
    alice.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_relaying_off_on_either_side_nothing_is_relayed_and_the_reason_is_named() {
    let server = server_with_relay();
    for (alice_relays, bob_relays, reason) in [
        (true, false, "relaying is off"),
        (false, true, "relaying is off here"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let alice = device(&server, "alice", &tmp.path().join("alice"), alice_relays).await;
        let bob = device(&server, "bob", &tmp.path().join("bob"), bob_relays).await;
        let file = tmp.path().join("stays.bin");
        std::fs::write(&file, vec![5u8; 100_000]).unwrap();
        let share = alice.engine.share(&file).await.unwrap();
        wait_source(&bob, "alice", &share.hash).await;
        bob.engine.download(share.hash, None).await.unwrap();
        let alice_jid = format!("alice@{DOMAIN}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let why = loop {
            if let Some(why) = bob.engine.paths().last_failure(&alice_jid, "pc") {
                if why.contains("relay") {
                    break why;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no reason given: {:?}",
                bob.engine.paths().last_failure(&alice_jid, "pc")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(why.contains(reason), "{why}");
        assert!(
            why.contains("direct") || why.contains("no address"),
            "{why}"
        );
        let t = bob.engine.transfers();
        let t = t.iter().find(|t| t.hash == share.hash).unwrap();
        assert_eq!(t.state, TransferState::FetchingMetadata, "nothing arrived");
        bob.shutdown().await;
        alice.shutdown().await;
    }
}
