//! Demo mode: the whole flow on one machine, without an account. A
//! throwaway Prosody on a loopback port with two accounts that are contacts
//! of each other, `demo-alice` (the app logs in as her) and `demo-bob` (a
//! headless peer in this process that shares a few sample files, fetches
//! whatever alice shares and says so with [`Event::DemoActivity`]).
//!
//! Everything lives in one temporary folder
//! (`$TMPDIR/bitween-demo-<pid>-<random>`): the server's config, data and
//! log, both accounts' state, bob's samples and every download. Nothing is
//! written to the user's settings, keyring or data folders:
//! [`Demo::alice_config`] is a complete [`ServiceConfig`] of its own.
//! [`Demo::stop`] signs bob out, stops the server and removes the folder;
//! the server also dies with the app if the app is killed, and a folder
//! left by a killed app is removed by the next [`Demo::start`].

mod samples;
mod server;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::addresses::AddressConfig;
use crate::events::{Event, EventBus};
use crate::service::{Service, ServiceConfig};
use crate::shares::{InfoHash, Share};
use crate::torrent::EngineConfig;
use crate::xmpp::XmppConfig;

pub use samples::{FOLDER, PICTURE, WELCOME};
pub use server::{add_roster_entry, register, DOMAIN};

/// The account the app logs in as.
pub const ALICE: &str = "demo-alice";
/// The demo peer.
pub const BOB: &str = "demo-bob";
/// The start of the demo folders' names, `bitween-demo-<pid>-<random>`.
pub const FOLDER_PREFIX: &str = "bitween-demo-";
/// How long bob may take to log in and publish his list.
const BOB_READY: Duration = Duration::from_secs(20);

/// Why the demo could not start; the message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemoError {
    /// Prosody is not installed.
    #[error("{0}")]
    NoProsody(String),
    /// The demo server could not be set up or started.
    #[error("{0}")]
    Server(String),
    /// The demo folder or the demo peer failed.
    #[error("{0}")]
    Peer(String),
}

/// A running demo. Stop it with [`Demo::stop`]; dropping it stops it too,
/// less gracefully.
pub struct Demo {
    dir: PathBuf,
    server: Option<server::Server>,
    bob: Option<Service>,
    activity: CancellationToken,
    alice: ServiceConfig,
    bob_shares: Vec<Share>,
    samples: Vec<PathBuf>,
}

/// Publish 127.0.0.1 only: no interface discovery, no what-is-my-IP
/// lookups, no port mapping (nothing of the demo leaves this computer).
fn loopback_only() -> AddressConfig {
    AddressConfig {
        public_ipv4: false,
        ipv6: false,
        lan: false,
        natpmp: false,
        upnp: false,
        static_addresses: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        services: Vec::new(),
        ..AddressConfig::default()
    }
}

fn account_config(dir: &Path, user: &str, password: &str, server: &str) -> ServiceConfig {
    let home = dir.join(user);
    ServiceConfig {
        xmpp: XmppConfig {
            jid: format!("{user}@{DOMAIN}"),
            password: password.to_string(),
            resource: Some("demo".into()),
            server: Some(server.to_string()),
            insecure_plaintext: true,
            tls_ca: None,
        },
        engine: EngineConfig {
            data_dir: home.join("data"),
            download_dir: home.join("downloads"),
            listen_port: 0,
            upload_limit: None,
            download_limit: None,
            allow_loopback_peers: true,
            relay: true,
            idle_unload: crate::torrent::IDLE_UNLOAD,
        },
        addresses: loopback_only(),
    }
}

/// Whether process `pid` exists.
#[cfg(unix)]
fn alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks for the process.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether process `pid` exists (and has not exited).
#[cfg(windows)]
fn alive(pid: u32) -> bool {
    crate::windows::process_alive(pid)
}

/// Removes the demo folders in `base` whose app is gone (a crash, a
/// SIGKILL, a power cut). Folders of this process and of live processes
/// are kept. Returns the removed folders.
pub fn remove_stale(base: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(base) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(FOLDER_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || alive(pid) {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                tracing::info!(
                    "removed a demo folder left by an app that is gone: {}",
                    path.display()
                );
                removed.push(path);
            }
            Err(e) => tracing::warn!("cannot remove the old demo folder {}: {e}", path.display()),
        }
    }
    removed
}

fn password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

impl Demo {
    /// Starts the demo in the system's temporary folder; bob's activity
    /// goes to `events` (the app's bus) as [`Event::DemoActivity`].
    pub async fn start(events: EventBus) -> Result<Demo, DemoError> {
        Demo::start_in(&std::env::temp_dir(), events).await
    }

    /// [`start`](Self::start) with the demo folder under `base`.
    pub async fn start_in(base: &Path, events: EventBus) -> Result<Demo, DemoError> {
        let base = base.to_path_buf();
        let (dir, alice_password, bob_password, server) =
            tokio::task::spawn_blocking(move || -> Result<_, DemoError> {
                remove_stale(&base);
                let dir = base.join(format!(
                    "{FOLDER_PREFIX}{}-{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                ));
                // On Windows the temporary folder is the user's own
                // (%TEMP% in the profile), whose permissions it inherits.
                #[cfg_attr(not(unix), allow(unused_mut))]
                let mut builder = std::fs::DirBuilder::new();
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder.create(&dir).map_err(|e| {
                    DemoError::Peer(format!(
                        "cannot create the demo folder {}: {e}",
                        dir.display()
                    ))
                })?;
                let (a, b) = (password(), password());
                match server::Server::start(&dir, &[(ALICE, &a), (BOB, &b)]) {
                    Ok(server) => Ok((dir, a, b, server)),
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        Err(e)
                    }
                }
            })
            .await
            .map_err(|e| DemoError::Server(format!("the demo's set-up failed: {e}")))??;
        tracing::info!(
            "demo server on {} with its data in {}",
            server.address(),
            dir.display()
        );
        let mut demo = Demo {
            alice: account_config(&dir, ALICE, &alice_password, &server.address()),
            dir,
            server: Some(server),
            bob: None,
            activity: CancellationToken::new(),
            bob_shares: Vec::new(),
            samples: Vec::new(),
        };
        if let Err(e) = demo.start_bob(&bob_password, events).await {
            demo.stop().await;
            return Err(e);
        }
        Ok(demo)
    }

    /// Starts bob, shares the samples, waits until his list is published
    /// and starts his reactions to alice.
    async fn start_bob(&mut self, password: &str, app: EventBus) -> Result<(), DemoError> {
        let server = self.server.as_ref().expect("the server runs").address();
        let config = account_config(&self.dir, BOB, password, &server);
        let samples = samples::write(&self.dir.join(BOB).join("shared"))
            .map_err(|e| DemoError::Peer(format!("cannot write the demo's sample files: {e}")))?;
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let bob = Service::start_with(config, bus)
            .await
            .map_err(|e| DemoError::Peer(format!("cannot start {BOB}: {e}")))?;
        self.bob = Some(bob.clone());
        for path in &samples {
            let share = bob.engine.share(path).await.map_err(|e| {
                DemoError::Peer(format!("{BOB} cannot share {}: {e}", path.display()))
            })?;
            self.bob_shares.push(share);
        }
        self.samples = samples;
        // Alice sees bob's list as soon as she logs in when it is on the
        // server before: wait for bob's login and his publish of all three.
        let want = self.bob_shares.len();
        tokio::time::timeout(BOB_READY, async {
            loop {
                match rx.recv().await {
                    Ok(Event::OwnItemPublished { item })
                        if item.resources.values().any(|r| r.shares.len() >= want) =>
                    {
                        return Ok(())
                    }
                    Ok(Event::Disconnected {
                        reason,
                        retrying: false,
                        ..
                    }) => return Err(DemoError::Peer(format!("{BOB} cannot log in: {reason}"))),
                    Ok(Event::PublishFailed { reason }) => {
                        return Err(DemoError::Peer(format!(
                            "{BOB} cannot publish his list: {reason}"
                        )))
                    }
                    Err(RecvError::Closed) => {
                        return Err(DemoError::Peer(format!("{BOB} stopped")))
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| {
            DemoError::Peer(format!(
                "{BOB} did not log in to the demo server within {} s",
                BOB_READY.as_secs()
            ))
        })??;
        tokio::spawn(tracing::Instrument::instrument(
            bob_reacts(bob, rx, app, self.activity.clone()),
            tracing::info_span!("demo-bob"),
        ));
        Ok(())
    }

    /// The backend configuration that logs the app in as demo-alice, with
    /// her state and downloads in the demo folder.
    pub fn alice_config(&self) -> ServiceConfig {
        self.alice.clone()
    }

    /// The demo folder (removed by [`stop`](Self::stop)).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `127.0.0.1:port` of the demo server.
    pub fn server_address(&self) -> String {
        self.alice.xmpp.server.clone().unwrap_or_default()
    }

    /// The server's process id, while it runs.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(|s| s.pid())
    }

    pub fn alice_jid(&self) -> String {
        format!("{ALICE}@{DOMAIN}")
    }

    pub fn bob_jid(&self) -> String {
        format!("{BOB}@{DOMAIN}")
    }

    /// What bob shares: the text file, the picture and the folder.
    pub fn bob_shares(&self) -> &[Share] {
        &self.bob_shares
    }

    /// Where bob's shared samples are, in the order of
    /// [`bob_shares`](Self::bob_shares).
    pub fn samples(&self) -> &[PathBuf] {
        &self.samples
    }

    /// Stops bob (he signs out), the server, and removes the demo folder.
    /// The app's backend should be stopped first (alice signs out while the
    /// server still runs).
    pub async fn stop(mut self) {
        self.activity.cancel();
        if let Some(bob) = self.bob.take() {
            if tokio::time::timeout(Duration::from_secs(5), bob.shutdown())
                .await
                .is_err()
            {
                tracing::warn!("{BOB} did not sign out within 5 s");
            }
        }
        let server = self.server.take();
        let dir = self.dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            drop(server);
            remove_dir(&dir);
        })
        .await;
    }
}

fn remove_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => tracing::info!("the demo ended; {} is removed", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove the demo folder {}: {e}", dir.display()),
    }
}

impl Drop for Demo {
    /// Without [`Demo::stop`] (a panic, an early return): bob is shut down
    /// in the background if a runtime is at hand, the server stopped and
    /// the folder removed here.
    fn drop(&mut self) {
        self.activity.cancel();
        if let Some(bob) = self.bob.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { bob.shutdown().await });
            }
        }
        if let Some(server) = self.server.take() {
            drop(server);
            remove_dir(&self.dir);
        }
    }
}

/// Bob's side of the demo: he downloads what alice shares, and every step
/// is told to the app as [`Event::DemoActivity`].
async fn bob_reacts(
    bob: Service,
    mut rx: broadcast::Receiver<Event>,
    app: EventBus,
    stop: CancellationToken,
) {
    let alice = format!("{ALICE}@{DOMAIN}");
    let say = |text: String| {
        tracing::info!("{text}");
        app.send(Event::DemoActivity { text });
    };
    // Hashes bob asked for already (his own shares need no download).
    let mut asked: HashSet<InfoHash> = bob.engine.transfers().iter().map(|t| t.hash).collect();
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            ev = rx.recv() => ev,
        };
        match event {
            Ok(Event::ContactSharesChanged { jid }) if jid == alice => {}
            Err(RecvError::Lagged(_)) => {} // look at alice's list again
            Ok(Event::DownloadFinished { name, .. }) => {
                say(format!("{BOB} downloaded {name}"));
                continue;
            }
            Ok(Event::DownloadFailed { hash, reason }) => {
                let name = bob
                    .catalog
                    .share(&hash)
                    .map(|s| s.name.to_string())
                    .unwrap_or_else(|| hash.to_hex());
                say(format!("{BOB} could not download {name}: {reason}"));
                continue;
            }
            Err(RecvError::Closed) => break,
            Ok(_) => continue,
        }
        let shares: Vec<Share> = bob
            .catalog
            .contact(&alice)
            .map(|c| c.resources.into_iter().flat_map(|r| r.shares).collect())
            .unwrap_or_default();
        for share in shares {
            let have = bob.engine.transfers().iter().any(|t| t.hash == share.hash);
            if have || !asked.insert(share.hash) {
                continue;
            }
            match bob.engine.download(share.hash, None).await {
                Ok(()) => say(format!("{BOB} started downloading {}", share.name)),
                Err(e) => say(format!("{BOB} cannot download {}: {e}", share.name)),
            }
        }
    }
}
