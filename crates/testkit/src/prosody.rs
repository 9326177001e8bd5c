//! A real Prosody (the Debian package) on a loopback port of its own, with
//! its configuration, data and log in a temporary folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::{Scram, ServerOptions};
use crate::{free_port, DOMAIN, PASSWORD};

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
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        for (name, source) in &options.prosody_plugins {
            std::fs::write(plugins.join(format!("mod_{name}.lua")), source).unwrap();
        }
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
plugin_paths = {{ "{plugins}" }}
{extra}
VirtualHost "{DOMAIN}"
"#,
            dir = dir.path().display(),
            data = data.display(),
            plugins = plugins.display(),
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
                let mut m = vec!["roster", "saslauth", "disco"];
                m.extend(
                    options
                        .prosody_plugins
                        .iter()
                        .map(|(name, _)| name.as_str()),
                );
                m.extend(["pep", "ping", "posix"]);
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
            p.add_roster_entry(a, b, &options.groups_of(a, b));
            p.add_roster_entry(b, a, &options.groups_of(b, a));
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

    /// Adds `contact` with subscription "both", in `groups`, to `user`'s
    /// stored roster.
    fn add_roster_entry(&self, user: &str, contact: &str, groups: &[&str]) {
        bitween::desktop::demo::add_roster_entry(self.dir.path(), user, contact, groups)
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
