//! The network lab: an "internet", homes behind routers, and a `bitweend`
//! in each device, all in Linux network namespaces that the test makes and
//! removes itself (never the host's interfaces, routes or firewall).
//!
//! Layout (one lab per test; every name carries the test run's process id
//! and a counter, so parallel tests and crashed runs never collide):
//!
//! ```text
//!  ┌ internet ─────────────────────────────────────────────┐
//!  │ br0: 198.18.0.1/16, fd00:18::1/64 (forwarding)        │
//!  │ Prosody lab.example (STARTTLS required, test CA),     │
//!  │   proxy65 at proxy.lab.example (198.18.0.1:7777)      │
//!  │ what-is-my-IP :80 and :8080, STUN :3478               │
//!  └──────┬───────────────────────────────┬────────────────┘
//!   wan 198.18.1.1 / fd00:18::1:1    wan 198.18.2.1 / fd00:18::2:1
//!  ┌ router 1 ──────────┐            ┌ router 2 ──────────┐
//!  │ nftables: NAT,     │            │ ...                │
//!  │ stateful firewall, │            │                    │
//!  │ maybe miniupnpd    │            │                    │
//!  │ lan 192.168.1.1/24 │            │ lan 192.168.1.1/24 │
//!  │ fd00:18:1::1/64    │            │ fd00:18:2::1/64    │
//!  └──────┬─────────────┘            └──────┬─────────────┘
//!    device 192.168.1.10,             device 192.168.1.20, ...
//!    fd00:18:1::10 ...                fd00:18:2::20 ...
//! ```
//!
//! Both homes use 192.168.1.0/24, as most routers ship; devices get
//! distinct host numbers across the lab. The lab's servers other than
//! Prosody and miniupnpd run in this test process, on sockets made inside
//! the internet namespace by a thread that entered it (`setns`).
//!
//! Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN), `ip`, `nft`, `prosody`,
//! `openssl` and, for UPnP routers, `miniupnpd` (scripts/test.sh installs
//! them). When namespaces cannot be made the test fails saying why.

#![allow(dead_code)]

pub mod daemon;
pub mod router;
pub mod servers;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub use daemon::LabDaemon;
pub use router::{Home, RouterSpec};

/// The lab's XMPP domain; the certificate names it.
pub const DOMAIN: &str = "lab.example";
/// The relay's JID (Prosody's mod_proxy65 component).
pub const PROXY_JID: &str = "proxy.lab.example";
/// Every account's password.
pub const PASSWORD: &str = "lab password";
/// The internet namespace's address: Prosody, the what-is-my-IP services,
/// STUN and the relay.
pub const SERVER_V4: &str = "198.18.0.1";
pub const SERVER_V6: &str = "fd00:18::1";
/// The prefix every namespace of this program carries.
const PREFIX: &str = "bwl";

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// Runs a command to completion; panics with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e} (scripts/test.sh installs it)"));
    assert!(
        out.status.success(),
        "{shown} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ip ARGS`.
pub fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// `ip -n NS ARGS`: an `ip` command inside a namespace.
pub fn ip_in(ns: &str, args: &[&str]) {
    run(Command::new("ip").args(["-n", ns]).args(args));
}

/// A command run inside namespace `ns` (`ip netns exec`).
pub fn in_ns(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    c
}

/// Runs `f` on a thread that entered namespace `ns`: sockets it makes
/// live in that namespace for good, whichever thread uses them later.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        // SAFETY: setns on a valid namespace file descriptor affects only
        // this thread, which ends with `f`.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "cannot enter the namespace {path}: {}",
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .expect("the thread in the namespace")
}

/// Whether process `pid` exists.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Kills the processes inside `ns` and deletes it.
fn remove_namespace(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// Removes the namespaces of lab runs whose process is gone (a crashed or
/// killed test run): names `bwl-PID-...` of this program only.
fn remove_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let mut parts = name.split('-');
        if parts.next() != Some(PREFIX) {
            continue;
        }
        let Some(pid) = parts.next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !alive(pid) {
            eprintln!("lab: removing the namespace {name} of a finished run (pid {pid})");
            remove_namespace(name);
        }
    }
}

/// One lab: its namespaces, processes and files, all removed when dropped
/// (even when the test fails).
pub struct Lab {
    /// `bwl-PID-N`: the start of every namespace name of this lab.
    pub id: String,
    pub dir: tempfile::TempDir,
    /// The internet namespace.
    pub internet: String,
    namespaces: Vec<String>,
    /// Prosody, miniupnpd, …: killed when the lab is dropped.
    children: Vec<(String, Child)>,
    /// The test CA's certificate (what `--tls-ca` is given).
    pub ca: PathBuf,
    pub homes: Vec<Home>,
    /// The in-process servers (what-is-my-IP, STUN).
    pub(crate) runtime: Option<tokio::runtime::Runtime>,
    next_host: u8,
}

impl Lab {
    /// Makes the internet with Prosody (accounts `users`, each pair of
    /// `contacts` mutual contacts), the what-is-my-IP services and STUN.
    pub fn start(users: &[&str], contacts: &[(&str, &str)]) -> Lab {
        remove_leftovers();
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let id = format!("{PREFIX}-{}-{n}", std::process::id());
        let mut lab = Lab {
            internet: format!("{id}-inet"),
            id,
            dir: tempfile::tempdir().expect("a temp dir"),
            namespaces: Vec::new(),
            children: Vec::new(),
            ca: PathBuf::new(),
            homes: Vec::new(),
            runtime: None,
            next_host: 10,
        };
        let inet = lab.internet.clone();
        lab.namespace(&inet);
        ip_in(&inet, &["link", "add", "br0", "type", "bridge"]);
        ip_in(&inet, &["link", "set", "br0", "up"]);
        ip_in(&inet, &["addr", "add", "198.18.0.1/16", "dev", "br0"]);
        ip_in(
            &inet,
            &["-6", "addr", "add", "fd00:18::1/64", "dev", "br0", "nodad"],
        );
        run(in_ns(&inet, "sysctl").args(["-qw", "net.ipv6.conf.all.forwarding=1"]));
        run(in_ns(&inet, "sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
        servers::make_ca(&mut lab);
        servers::start_prosody(&mut lab, users, contacts);
        servers::start_services(&mut lab);
        lab
    }

    /// Creates namespace `name` (with loopback up) and remembers it for
    /// removal.
    pub(crate) fn namespace(&mut self, name: &str) {
        let out = Command::new("ip")
            .args(["netns", "add", name])
            .output()
            .expect("`ip` runs (scripts/test.sh installs iproute2)");
        assert!(
            out.status.success(),
            "the network lab cannot create the namespace {name}: {} \
             (it needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN, e.g. not inside an \
             unprivileged container)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        self.namespaces.push(name.to_string());
        ip_in(name, &["link", "set", "lo", "up"]);
    }

    /// Keeps `child` (named `what`) until the lab is dropped.
    pub(crate) fn keep(&mut self, what: &str, child: Child) {
        self.children.push((what.to_string(), child));
    }

    /// A host number not used yet in the lab (10, 20, 30, ...).
    pub(crate) fn next_host(&mut self) -> u8 {
        let h = self.next_host;
        self.next_host += 10;
        h
    }

    /// Prints the tail of each log file of the lab (on failure).
    fn show_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        let mut logs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "--- last lines of {} ---\n{}",
                log.display(),
                tail.join("\n")
            );
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.show_logs();
            for home in &self.homes {
                eprintln!(
                    "--- router {} nftables ---\n{}",
                    home.router,
                    String::from_utf8_lossy(
                        &in_ns(&home.router, "nft")
                            .args(["list", "ruleset"])
                            .output()
                            .map(|o| o.stdout)
                            .unwrap_or_default()
                    )
                );
            }
        }
        for (_, child) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        for ns in self.namespaces.iter().rev() {
            remove_namespace(ns);
        }
    }
}
