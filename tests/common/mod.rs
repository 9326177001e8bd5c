//! Test support: a real Prosody or ejabberd (the Debian packages) on a
//! loopback port of its own, with throwaway accounts, plus helpers to wait
//! for events. `server.rs` puts both behind one interface; `ejabberd.rs`
//! starts ejabberd.
//!
//! Each test starts its own server in a temporary folder, so tests run in
//! parallel and can stop and restart their server. `scripts/test.sh`
//! installs Prosody and ejabberd when they are missing.

#![allow(dead_code)]

mod ejabberd;
mod server;

#[allow(unused_imports)]
pub use ejabberd::Ejabberd;
#[allow(unused_imports)]
pub use server::{Scram, Server, ServerKind, ServerOptions, XmppServer};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use bitween::events::{Event, EventBus};
use bitween::shares::{Catalog, InfoHash, ResourceShares, Share, ShareName};
use bitween::xmpp::{self, XmppConfig, XmppHandle};
use tokio::sync::broadcast;

/// The test server's domain: the demo's, whose account helpers the harness uses.
pub const DOMAIN: &str = bitween::desktop::demo::DOMAIN;

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
pub const PASSWORD: &str = "correct horse";

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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A running (or stopped) Prosody with its own config, data and port.
pub struct Prosody {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Prosody {
    /// Creates `users` (password [`PASSWORD`]), makes each pair in
    /// `contacts` mutual contacts (roster entries with subscription "both",
    /// written before the server starts), and starts the server.
    pub fn start(users: &[&str], contacts: &[(&str, &str)]) -> Prosody {
        Prosody::start_with(users, contacts, "")
    }

    /// [`start`](Self::start) with `extra` lines added to the server's
    /// global settings (e.g. `smacks_hibernation_time = 1`, so a client
    /// that dies shows offline within a second instead of ten minutes).
    pub fn start_with(users: &[&str], contacts: &[(&str, &str)], extra: &str) -> Prosody {
        let options = ServerOptions {
            prosody_extra: extra.to_string(),
            ..ServerOptions::default()
        };
        Prosody::start_opts(users, contacts, &options)
    }

    /// [`start`](Self::start) with the settings of `options`.
    pub fn start_opts(
        users: &[&str],
        contacts: &[(&str, &str)],
        options: &ServerOptions,
    ) -> Prosody {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = format!(
            r#"-- Throwaway Prosody for Bitween's tests: loopback only, plaintext.
daemonize = false
run_as_root = true
pidfile = "{dir}/prosody.pid"
data_path = "{data}"
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
storage = "internal"
log = {{ debug = "{dir}/prosody.log" }}
password_hash = "{hash}"
disable_sasl_mechanisms = {{ {disabled} }}
modules_enabled = {{ {modules} }}
modules_disabled = {{ "s2s" }}
{extra}
VirtualHost "{DOMAIN}"
"#,
            dir = dir.path().display(),
            data = data.display(),
            hash = match options.scram {
                Scram::Sha1 => "SHA-1",
                Scram::Sha256 => "SHA-256",
            },
            disabled = if options.plain {
                r#""DIGEST-MD5""#
            } else {
                r#""DIGEST-MD5"; "PLAIN""#
            },
            modules = {
                let mut m = vec!["roster", "saslauth", "disco", "pep", "ping", "posix"];
                if options.stream_management {
                    m.push("smacks");
                }
                if options.carbons {
                    m.push("carbons");
                }
                m.iter()
                    .map(|m| format!("\"{m}\""))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
            extra = {
                let mut extra = options.prosody_extra.clone();
                if let Some(limit) = options.stanza_limit {
                    extra.push_str(&format!("\nc2s_stanza_size_limit = {limit}\n"));
                }
                extra
            },
        );
        std::fs::write(dir.path().join("prosody.cfg.lua"), config).unwrap();
        let mut p = Prosody {
            dir,
            port,
            child: None,
        };
        for u in users {
            p.register(u);
        }
        for (a, b) in contacts {
            p.add_roster_entry(a, b);
            p.add_roster_entry(b, a);
        }
        p.start_again();
        p
    }

    /// A handle on a server another process started (for child processes
    /// of a test); it is not stopped when dropped.
    pub fn attach(port: u16) -> Prosody {
        Prosody {
            dir: tempfile::tempdir().expect("temp dir"),
            port,
            child: None,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("prosody.cfg.lua")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("prosody.log")
    }

    fn register(&self, user: &str) {
        bitween::desktop::demo::register(self.dir.path(), user, PASSWORD)
            .expect("prosodyctl registers the user (scripts/test.sh installs prosody)");
    }

    /// Adds `contact` with subscription "both" to `user`'s stored roster.
    fn add_roster_entry(&self, user: &str, contact: &str) {
        bitween::desktop::demo::add_roster_entry(self.dir.path(), user, contact)
            .expect("the roster is written");
    }

    /// Starts the server (again) on the same port and data, and waits until
    /// it accepts connections.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("prosody.out"))
            .unwrap();
        let child = Command::new("prosody")
            .arg("-F")
            .arg("--config")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prosody starts (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "prosody exited with {status}: {}",
                    std::fs::read_to_string(self.dir.path().join("prosody.out"))
                        .unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "prosody did not open port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGTERM, then waits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        if std::thread::panicking() {
            keep_log_of_failure(&self.log_path(), self.port);
            // The server's side of a failure, shown with the test's output.
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "--- last lines of {} ---\n{}",
                self.log_path().display(),
                tail.join("\n")
            );
            let out =
                std::fs::read_to_string(self.dir.path().join("prosody.out")).unwrap_or_default();
            eprintln!("--- prosody's own output ---\n{out}");
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// With `BITWEEN_KEEP_SERVER_LOGS=1`, a failed test's whole server log is
/// copied to the temp dir (the test's output shows only its end).
pub fn keep_log_of_failure(log: &Path, port: u16) {
    if std::env::var_os("BITWEEN_KEEP_SERVER_LOGS").is_some() {
        let name = log.file_stem().and_then(|s| s.to_str()).unwrap_or("server");
        let keep = std::env::temp_dir().join(format!("bitween-{name}-{port}.log"));
        let _ = std::fs::copy(log, &keep);
        eprintln!("--- the whole server log: {} ---", keep.display());
    }
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
        },
        addresses: loopback_addresses(),
    }
}

/// One logged-in client of ours: its handle, catalog and events.
pub struct Peer {
    pub xmpp: XmppHandle,
    pub catalog: Catalog,
    pub events: broadcast::Receiver<Event>,
    pub bus: EventBus,
}

impl Peer {
    /// Logs `user` in with `resource`, and waits until it is online.
    pub async fn login(server: &impl XmppServer, user: &str, resource: &str) -> Peer {
        let peer = Peer::start(server, user, resource, PASSWORD);
        let mut peer = peer;
        peer.wait_for("Connected", |e| matches!(e, Event::Connected { .. }))
            .await;
        peer
    }

    /// Starts the session without waiting for anything.
    pub fn start(server: &impl XmppServer, user: &str, resource: &str, password: &str) -> Peer {
        init_logging();
        let bus = EventBus::new();
        let events = bus.subscribe();
        let (catalog, writer) = Catalog::new();
        let xmpp = xmpp::start(
            XmppConfig {
                jid: format!("{user}@{DOMAIN}"),
                password: password.into(),
                resource: Some(resource.into()),
                server: Some(server.server()),
                insecure_plaintext: true,
                tls_ca: None,
            },
            bus.clone(),
            writer,
        )
        .expect("valid config");
        Peer {
            xmpp,
            catalog,
            events,
            bus,
        }
    }

    /// Waits (up to 20 s, generous: tests bound waits, benchmarks time them)
    /// for an event matching `pred` and returns it.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        self.wait_for_within(what, Duration::from_secs(20), pred)
            .await
    }

    pub async fn wait_for_within(
        &mut self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Event {
        next_event_within(&mut self.events, what, limit, pred).await
    }

    /// Waits until the catalog satisfies `check`, re-checking on every
    /// catalog or presence event (no polling).
    pub async fn wait_catalog(&mut self, what: &str, check: impl Fn(&Catalog) -> bool) {
        self.wait_catalog_within(what, Duration::from_secs(20), check)
            .await
    }

    pub async fn wait_catalog_within(
        &mut self,
        what: &str,
        limit: Duration,
        check: impl Fn(&Catalog) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + limit;
        while !check(&self.catalog) {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(_)) => {}
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => panic!("event bus closed"),
                Err(_) => {
                    let seen: Vec<_> = self
                        .catalog
                        .contacts()
                        .iter()
                        .map(|c| self.catalog.contact(c))
                        .collect();
                    panic!(
                        "timed out after {limit:?} waiting for {what}; the catalog holds {seen:#?}"
                    )
                }
            }
        }
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

pub fn entry(shares: Vec<Share>, addresses: &[&str]) -> ResourceShares {
    ResourceShares {
        shares,
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        more: None,
    }
}
