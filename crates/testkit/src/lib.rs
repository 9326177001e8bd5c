//! Bitween's test support, shared by the core's integration tests and
//! benchmarks and by the desktop app's tests: a real Prosody or ejabberd
//! (the Debian packages) on a loopback port of its own with throwaway
//! accounts ([`Prosody`], [`Ejabberd`], one interface over both in
//! [`server`]); our own client logged in ([`Peer`]) and waits for its
//! events; `bitweend` as a child process ([`bitweend::Daemon`]); a W3C
//! WebDriver client ([`webdriver`]); and the checks of the UI's pages that
//! the web UI test and the desktop app's test both run ([`pages`]).
//!
//! Each test starts its own server in a temporary folder, so tests run in
//! parallel and can stop and restart their server. `scripts/test.sh`
//! installs Prosody and ejabberd when they are missing.

pub mod bitweend;
mod ejabberd;
pub mod pages;
mod peer;
mod prosody;
pub mod server;
pub mod webdriver;

pub use ejabberd::Ejabberd;
pub use peer::Peer;
pub use prosody::{keep_log_of_failure, Prosody};
pub use server::{Scram, Server, ServerKind, ServerOptions, XmppServer};

use std::net::TcpListener;
use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use bitween::events::Event;
use bitween::shares::{InfoHash, ResourceShares, Share, ShareName};
use bitween::xmpp::XmppConfig;
use tokio::sync::broadcast;

/// The test server's domain: the demo's, whose account helpers the harness uses.
pub const DOMAIN: &str = bitween::desktop::demo::DOMAIN;

/// Every test account's password.
pub const PASSWORD: &str = "correct horse";

/// Publish 127.0.0.1 only: no interface discovery, no what-is-my-IP lookup,
/// no NAT-PMP (tests never reach the internet, nor the router).
pub fn loopback_addresses() -> bitween::addresses::AddressConfig {
    bitween::addresses::AddressConfig {
        public_ipv4: false,
        ipv6: false,
        lan: false,
        natpmp: false,
        upnp: false,
        static_addresses: vec!["127.0.0.1".parse().unwrap()],
        ..Default::default()
    }
}

/// Logs of the code under test go to the test's output (shown on failure).
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "bitween=debug".into());
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .init();
    });
}

/// A loopback port nothing listens on (at the moment of asking).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The whole backend's settings for `user` on `server`, with its folders
/// under `dir`: loopback only, no port mapping (no router here).
pub fn service_config(
    server: &impl XmppServer,
    user: &str,
    dir: &Path,
    upload_limit: Option<u32>,
) -> bitween::service::ServiceConfig {
    init_logging();
    bitween::service::ServiceConfig {
        xmpp: XmppConfig {
            jid: format!("{user}@{DOMAIN}"),
            password: PASSWORD.into(),
            resource: Some("pc".into()),
            server: Some(server.server()),
            insecure_plaintext: true,
            tls_ca: None,
        },
        engine: bitween::torrent::EngineConfig {
            data_dir: dir.join("data"),
            download_dir: dir.join("downloads"),
            listen_port: 0,
            upload_limit: upload_limit.and_then(std::num::NonZeroU32::new),
            download_limit: None,
            allow_loopback_peers: true,
            relay: true,
            idle_unload: bitween::torrent::IDLE_UNLOAD,
        },
        addresses: loopback_addresses(),
    }
}

/// Waits up to 20 s for an event on `rx` matching `pred`.
pub async fn next_event(
    rx: &mut broadcast::Receiver<Event>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    next_event_within(rx, what, Duration::from_secs(20), pred).await
}

/// Waits up to `limit` for an event on `rx` matching `pred`; a test that
/// falls behind the bus or times out fails naming what it waited for.
pub async fn next_event_within(
    rx: &mut broadcast::Receiver<Event>,
    what: &str,
    limit: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) if pred(&e) => return e,
            Ok(Ok(_)) => continue,
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                panic!("test fell behind by {n} events waiting for {what}")
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("event bus closed"),
            Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
        }
    }
}

/// A share with a hash made from `n` and the given name.
pub fn share(n: u8, name: &str, size: u64) -> Share {
    Share {
        hash: InfoHash([n; 20]),
        name: ShareName::new(name).unwrap(),
        size,
    }
}

/// A resource's entry with these shares and addresses.
pub fn entry(shares: Vec<Share>, addresses: &[&str]) -> ResourceShares {
    ResourceShares {
        shares,
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        more: None,
    }
}
