//! Test support: `bitweend` as a child process on a test's XMPP server (loopback
//! addresses only, no port mapping, no what-is-my-IP lookups), driven
//! through `bitweenc` or JSON-RPC.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use bitween::api::http::{address_file, token_file};
use serde_json::{json, Value};

use crate::{XmppServer, DOMAIN, PASSWORD};

/// A binary of the root package, found in the target dir of the test that
/// runs (its executable is in `<target>/<profile>/deps/`, the binaries one
/// up). Cargo builds the root package's binaries with its integration tests;
/// the desktop crate's tests need `cargo build --bin bitweend --bin
/// bitweenc` first.
pub fn exe(name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("the test's own path");
    let path = me
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the target dir")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bin {name}` first",
        path.display()
    );
    path
}

/// Where a daemon whose data dir is `data` writes its standard output.
fn stdout_file(data: &Path) -> PathBuf {
    data.with_file_name("bitweend.out")
}

/// A `bitweend` child process of a test; killed (SIGKILL) when dropped.
pub struct Daemon {
    pub child: Child,
    /// Its data dir (API address and token, torrents.json).
    pub data: PathBuf,
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

impl Daemon {
    pub fn start(server: &impl XmppServer, user: &str, dir: &Path) -> Daemon {
        Self::start_with(server, user, dir, &[])
    }

    /// Starts `user`'s daemon with its folders under `dir` (data, downloads;
    /// its standard output goes to `dir/bitweend.out`), loopback only, and
    /// waits until its API is up.
    pub fn start_with(server: &impl XmppServer, user: &str, dir: &Path, extra: &[&str]) -> Daemon {
        Self::spawn(server, user, dir, extra, Some("pc"))
    }

    /// Like [`start`](Self::start) without `--resource`: the daemon uses its
    /// own device resource (kept in its data dir).
    pub fn start_device(server: &impl XmppServer, user: &str, dir: &Path) -> Daemon {
        Self::spawn(server, user, dir, &[], None)
    }

    fn spawn(
        server: &impl XmppServer,
        user: &str,
        dir: &Path,
        extra: &[&str],
        resource: Option<&str>,
    ) -> Daemon {
        let data = dir.join("data");
        std::fs::create_dir_all(dir).expect("the daemon's folder");
        // The daemon writes its token, then its address (atomically): a
        // start is done when both are there, and neither is left over from
        // an earlier start.
        let (token, address) = (token_file(&data), address_file(&data));
        let _ = std::fs::remove_file(&token);
        let _ = std::fs::remove_file(&address);
        let child = Command::new(exe("bitweend"))
            .args(extra)
            .args([
                "--jid",
                &format!("{user}@{DOMAIN}"),
                "--server",
                &server.server(),
            ])
            .args(resource.map(|r| ["--resource", r]).into_iter().flatten())
            .args([
                "--insecure-plaintext",
                "--no-public-ip",
                "--no-upnp",
                "--no-natpmp",
            ])
            .args(["--address", "127.0.0.1"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--download-dir")
            .arg(dir.join("downloads"))
            .env("BITWEEN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "bitween=debug")
            .stdout(std::fs::File::create(stdout_file(&data)).expect("bitweend's output file"))
            .spawn()
            .expect("bitweend starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(token.exists() && address.exists()) {
            assert!(
                Instant::now() < deadline,
                "bitweend wrote no api-token and api-address"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon { child, data }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(exe("bitweenc"))
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "bitweenc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Writes `len` random bytes to `path` and shares the file; returns the
    /// bytes and the share's info hash.
    pub fn share_random_file(&self, path: &Path, len: usize) -> (Vec<u8>, String) {
        let content = random_bytes(len);
        std::fs::write(path, &content).unwrap();
        let hash = self.json(&["share", path.to_str().unwrap()])[0]["hash"]
            .as_str()
            .expect("the share's hash")
            .to_string();
        (content, hash)
    }

    /// The API's address and token, from the files in the data dir.
    pub fn api(&self) -> (String, String) {
        let addr = std::fs::read_to_string(address_file(&self.data)).unwrap();
        let token = std::fs::read_to_string(token_file(&self.data)).unwrap();
        (addr, token)
    }

    /// One JSON-RPC call through curl, with the token.
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        let (addr, token) = self.api();
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let out = Command::new("curl")
            .args(["-sf", &format!("http://{addr}/api"), "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .args(["--data-binary", &body.to_string()])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["result"].clone()
    }

    /// The web UI's address (with the token) that bitweend printed at start.
    pub fn web_ui_url(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = std::fs::read_to_string(stdout_file(&self.data)).unwrap_or_default();
            if let Some(url) = out.lines().find_map(|l| l.strip_prefix("bitween web UI: ")) {
                return url.trim().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "bitweend printed no web UI address; its output: {out}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: gone at once, without signing out (as a crash or a power
    /// cut), so contacts keep its published item and see it offline.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status within 5 s.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "bitweend did not exit within 5 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
