//! Test support: a real ejabberd (Debian's `ejabberd` package, 23.01 on
//! Debian 12) on a loopback port of its own, beside the Prosody harness.
//!
//! The package's control script (`ejabberdctl`) pins the stock
//! configuration, which listens on every interface, and runs the server as a
//! distributed Erlang node (with an EPMD daemon that outlives it). So the
//! harness starts the Erlang VM itself, the way `ejabberdctl foreground`
//! does, but:
//! - with a private configuration (`ejabberd.yml`), Mnesia spool and logs
//!   in the test's temporary folder, listening on 127.0.0.1 only;
//! - as a non-distributed node (no `-sname`): no EPMD, no distribution
//!   port, no node name that two tests could share;
//! - accounts and rosters are created by an `-eval` run right after the
//!   server started (ejabberd's own `ejabberd_auth:try_register` and
//!   `mod_admin_extra:add_rosteritem`, what `ejabberdctl register` and
//!   `ejabberdctl add_rosteritem` call), which then writes a `ready` file.
//!
//! `scripts/test.sh` installs the package (and switches its system service
//! off).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::{Scram, ServerOptions};
use crate::{free_port, DOMAIN, PASSWORD};

/// Where Debian installs ejabberd's Erlang applications.
const ERL_LIBS: &str = "/usr/lib/x86_64-linux-gnu";

/// A running (or stopped) ejabberd with its own config, spool and port.
pub struct Ejabberd {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    /// Accounts and rosters still to create (first start only).
    seed: Option<String>,
}

/// `s` as the contents of an Erlang string or binary literal.
fn erl_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn bin(s: &str) -> String {
    format!("<<\"{}\"/utf8>>", erl_escape(s))
}

impl Ejabberd {
    /// Creates `users` (password [`PASSWORD`]), makes each pair in
    /// `contacts` mutual contacts (subscription "both"), and starts the
    /// server.
    pub fn start(users: &[&str], contacts: &[(&str, &str)], options: &ServerOptions) -> Ejabberd {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        std::fs::create_dir_all(dir.path().join("spool")).unwrap();
        std::fs::write(dir.path().join("ejabberd.yml"), config(port, options)).unwrap();
        let mut seed = Vec::new();
        for u in users {
            seed.push(format!(
                "ejabberd_auth:try_register({}, {}, {})",
                bin(u),
                bin(DOMAIN),
                bin(PASSWORD)
            ));
        }
        for (a, b) in contacts {
            for (u, c) in [(a, b), (b, a)] {
                // (add_rosteritem takes the groups joined with ';'.)
                let groups = options.groups_of(u, c).join(";");
                seed.push(format!(
                    "mod_admin_extra:add_rosteritem({u}, {d}, {c}, {d}, {c}, {g}, <<\"both\">>)",
                    u = bin(u),
                    c = bin(c),
                    d = bin(DOMAIN),
                    g = bin(&groups)
                ));
            }
        }
        let mut e = Ejabberd {
            dir,
            port,
            child: None,
            seed: Some(format!("[{}]", seed.join(", "))),
        };
        e.start_again();
        e
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("ejabberd.log")
    }

    fn ready_path(&self) -> PathBuf {
        self.dir.path().join("ready")
    }

    /// Starts the server (again) on the same port and data, and waits until
    /// it accepts connections and its accounts exist.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let ready = self.ready_path();
        let _ = std::fs::remove_file(&ready);
        // The first start creates the accounts and rosters; every start
        // writes the ready file with what that returned.
        let seed = self.seed.take().unwrap_or_else(|| "[]".into());
        let eval = format!(
            "R = {seed}, file:write_file(\"{}\", io_lib:format(\"~p\", [R])).",
            erl_escape(&ready.display().to_string())
        );
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("ejabberd.out"))
            .unwrap();
        let path = |p: &str| self.dir.path().join(p).display().to_string();
        let mut cmd = Command::new("erl");
        if debug_log() {
            // Every stanza in and out is logged at debug level: lift the
            // logger's burst limit (500 lines a second) and its rotation at
            // 10 MiB, so nothing is dropped.
            cmd.args(["-ejabberd", "log_burst_limit_count", "100000000"])
                .args(["log_rotate_size", "infinity"]);
        }
        let child = cmd
            // Schedulers sleep when idle instead of spinning (two cores are
            // shared by every test).
            .args(["+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none"])
            .args(["-noinput", "-noshell"])
            .args([
                "-mnesia",
                "dir",
                &format!("\"{}\"", erl_escape(&path("spool"))),
            ])
            .args(["-s", "ejabberd", "-eval", &eval])
            .env("EJABBERD_CONFIG_PATH", path("ejabberd.yml"))
            .env("EJABBERD_LOG_PATH", path("ejabberd.log"))
            .env("CONTRIB_MODULES_PATH", path("modules"))
            .env("ERL_LIBS", ERL_LIBS)
            .env("ERL_CRASH_DUMP_BYTES", "0")
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("erl starts (scripts/test.sh installs ejabberd)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                assert!(
                    !text.contains("error"),
                    "ejabberd could not create the test accounts: {text}"
                );
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "ejabberd exited with {status}: {}\n{}",
                    std::fs::read_to_string(self.dir.path().join("ejabberd.out"))
                        .unwrap_or_default(),
                    std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ejabberd did not open port {} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGTERM: the VM shuts down in order, Mnesia
    /// included), then waits.
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

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            super::keep_log_of_failure(&self.log_path(), self.port);
            for (name, lines) in [
                ("ejabberd.log", 120),
                ("error.log", 40),
                ("ejabberd.out", 40),
            ] {
                let path = self.dir.path().join(name);
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let all: Vec<&str> = text.lines().collect();
                eprintln!(
                    "--- last lines of {} ---\n{}",
                    path.display(),
                    all[all.len().saturating_sub(lines)..].join("\n")
                );
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `BITWEEN_EJABBERD_DEBUG=1` logs every stanza (add
/// `BITWEEN_KEEP_SERVER_LOGS=1` to keep the whole log of a failed test).
fn debug_log() -> bool {
    std::env::var_os("BITWEEN_EJABBERD_DEBUG").is_some()
}

/// The server's configuration: the Debian package's choices for a client
/// session (its module list without the web, MQTT, STUN, MUC and proxy
/// listeners; SCRAM password storage; caps, PEP, roster versioning, stream
/// management, carbons), on 127.0.0.1 without TLS and without the stock
/// 3,000 bytes/s input shaper (see README: it makes large publishes slow).
fn config(port: u16, o: &ServerOptions) -> String {
    let hash = match o.scram {
        Scram::Sha1 => "sha",
        Scram::Sha256 => "sha256",
    };
    let mut disabled = vec!["digest-md5", "X-OAUTH2"];
    if !o.plain {
        disabled.push("PLAIN");
    }
    let mut modules = vec![
        "mod_adhoc: {}",
        "mod_admin_extra: {}",
        "mod_blocking: {}",
        "mod_caps: {}",
        "mod_client_state: {}",
        "mod_disco: {}",
        "mod_last: {}",
        "mod_offline: {}",
        "mod_ping: {}",
        "mod_privacy: {}",
        "mod_private: {}",
        "mod_pubsub:\n    access_createnode: pubsub_createnode\n    plugins:\n      - flat\n      - pep",
        "mod_roster:\n    versioning: true",
        "mod_vcard:\n    search: false",
        "mod_version: {}",
    ];
    if o.stream_management {
        modules.push("mod_stream_mgmt:\n    resend_on_timeout: if_offline");
    }
    if o.carbons {
        modules.push("mod_carboncopy: {}");
    }
    format!(
        r#"# Throwaway ejabberd for Bitween's tests: loopback only, plaintext.
loglevel: {loglevel}
hosts:
  - {DOMAIN}
listen:
  -
    port: {port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: {limit}
    access: c2s
auth_method: internal
auth_password_format: scram
auth_scram_hash: {hash}
disable_sasl_mechanisms:
{disabled}
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  pubsub_createnode:
    allow: local
modules:
{modules}
{extra}
"#,
        loglevel = if debug_log() { "debug" } else { "info" },
        limit = o.stanza_limit.unwrap_or(262_144),
        disabled = disabled
            .iter()
            .map(|m| format!("  - \"{m}\""))
            .collect::<Vec<_>>()
            .join("\n"),
        modules = modules
            .iter()
            .map(|m| format!("  {m}"))
            .collect::<Vec<_>>()
            .join("\n"),
        extra = o.ejabberd_extra,
    )
}
