//! `bitweend` in a device of the lab: the debug binary run inside the
//! device's namespace (`ip netns exec`), logging in to the lab's Prosody by
//! its 198.18.x address with the lab's CA, and driven with `bitweenc`
//! inside the same namespace (the API stays on the device's loopback).

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::router::Device;
use super::{in_ns, Lab, DOMAIN, PASSWORD, SERVER_V4};

fn exe(name: &str, built: Option<&str>) -> PathBuf {
    PathBuf::from(built.unwrap_or_else(|| panic!("{name} is built with the tests")))
}

pub fn bitweend() -> PathBuf {
    exe("bitweend", option_env!("CARGO_BIN_EXE_bitweend"))
}

pub fn bitweenc() -> PathBuf {
    exe("bitweenc", option_env!("CARGO_BIN_EXE_bitweenc"))
}

/// A `bitweend` in a lab device; killed when dropped.
pub struct LabDaemon {
    pub child: Child,
    pub device: Device,
    pub user: String,
    pub data: PathBuf,
    pub downloads: PathBuf,
    pub log: PathBuf,
}

impl Lab {
    /// Starts `user`'s daemon in `device` with the lab's settings (the
    /// lab CA, 198.18/15 taken as public, the lab's what-is-my-IP
    /// services, unique local IPv6 published, UPnP and NAT-PMP on as a
    /// user at home has them) plus `extra` flags, and waits for its API.
    pub fn daemon(&self, device: &Device, user: &str, extra: &[&str]) -> LabDaemon {
        let dir = self.dir.path().join(format!("{user}-{}", device.name));
        let data = dir.join("data");
        let downloads = dir.join("downloads");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&downloads).unwrap();
        let log = self
            .dir
            .path()
            .join(format!("bitweend-{user}-{}.log", device.name));
        let out = std::fs::File::create(&log).unwrap();
        let child = in_ns(&device.ns, bitweend())
            .args(["--jid", &format!("{user}@{DOMAIN}")])
            .args(["--server", &format!("{SERVER_V4}:5222")])
            .arg("--tls-ca")
            .arg(&self.ca)
            .args(["--resource", &device.name])
            .arg("--allow-reserved-addresses")
            .arg("--publish-ula")
            .args(["--ip-service", &format!("http://{SERVER_V4}/")])
            .args(["--ip-service", &format!("http://{SERVER_V4}:8080/")])
            .arg("--data-dir")
            .arg(&data)
            .arg("--download-dir")
            .arg(&downloads)
            .args(extra)
            .env("BITWEEN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "bitween=debug")
            // Not the host's settings file.
            .env("XDG_CONFIG_HOME", &dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("bitweend starts");
        let mut d = LabDaemon {
            child,
            device: device.clone(),
            user: user.to_string(),
            data,
            downloads,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.data.join("api-token").exists() {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!(
                    "bitweend of {user} exited with {status}: {}",
                    std::fs::read_to_string(&d.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "bitweend of {user} wrote no api-token"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d.wait_online();
        d
    }
}

impl LabDaemon {
    /// `bitweenc ARGS` inside the device.
    pub fn cli(&self, args: &[&str]) -> Output {
        in_ns(&self.device.ns, bitweenc())
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `bitweenc --json ARGS`, parsed; panics with its error.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "bitweenc {args:?} of {}: {}",
            self.user,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// One JSON-RPC call (curl inside the device), its `result` or `error`.
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        let addr = std::fs::read_to_string(self.data.join("api-address")).unwrap();
        let token = std::fs::read_to_string(self.data.join("api-token")).unwrap();
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let out = in_ns(&self.device.ns, "curl")
            .args([
                "-sf",
                "--max-time",
                "60",
                &format!("http://{}/api", addr.trim()),
                "-H",
            ])
            .arg(format!("Authorization: Bearer {}", token.trim()))
            .args(["--data-binary", &body.to_string()])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{method}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
        if v.get("error").is_some() {
            v["error"].clone()
        } else {
            v["result"].clone()
        }
    }

    /// Waits until the daemon is logged in (over STARTTLS with the lab CA).
    pub fn wait_online(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.json(&["status"]);
            if status["connection"].get("Online").is_some() {
                return;
            }
            if let Some(s) = self.child.try_wait().unwrap() {
                panic!("bitweend of {} exited with {s}: {status}", self.user);
            }
            assert!(
                Instant::now() < deadline,
                "bitweend of {} is not online: {status}",
                self.user
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes `len` random bytes to a file of the daemon's folder and
    /// shares it; returns the bytes and the info hash.
    pub fn share_random_file(&self, name: &str, len: usize) -> (Vec<u8>, String) {
        let path = self.data.parent().unwrap().join(name);
        let content: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
        std::fs::write(&path, &content).unwrap();
        let shared = self.json(&["share", path.to_str().unwrap()]);
        let hash = shared[0]["hash"]
            .as_str()
            .expect("the share's hash")
            .to_string();
        (content, hash)
    }

    /// What `contact`'s resource `resource` publishes, as our catalog has
    /// it, once it lists `hash`.
    pub fn wait_for_source(&self, contact: &str, resource: &str, hash: &str) -> Value {
        let jid = format!("{contact}@{DOMAIN}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let catalog = self.json(&["catalog"]);
            let found = catalog.as_array().unwrap().iter().find_map(|c| {
                (c["jid"] == jid.as_str())
                    .then(|| {
                        c["resources"].as_array().unwrap().iter().find(|r| {
                            r["resource"] == resource
                                && r["online"] == true
                                && r["shares"]
                                    .as_array()
                                    .unwrap()
                                    .iter()
                                    .any(|s| s["hash"] == hash)
                        })
                    })
                    .flatten()
                    .cloned()
            });
            if let Some(r) = found {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{}'s catalog never listed {jid}/{resource} with {hash}: {catalog}",
                self.user
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The transfer of `hash`, if any.
    pub fn transfer(&self, hash: &str) -> Option<Value> {
        self.json(&["transfers"])
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["hash"] == hash)
            .cloned()
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.downloads.join(name)
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The folder the daemon keeps its state in.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for LabDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished (or stopped) download looked like, for the assertions.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// Every peer seen on the download: (path, address, via).
    pub peers: Vec<(String, String, Option<String>)>,
    /// From the Download call to the first byte arriving.
    pub first_byte: Option<Duration>,
    /// From the Download call to the end.
    pub total: Option<Duration>,
    pub done: bool,
}

impl LabDaemon {
    /// Downloads `hash` and follows it until it completes or `limit`
    /// passes, recording the peers' paths on the way (polled every 50 ms).
    pub fn download_and_follow(&self, hash: &str, limit: Duration) -> Observed {
        let started = Instant::now();
        let out = self.cli(&["--json", "download", hash]);
        assert!(
            out.status.success(),
            "download: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut seen = Observed::default();
        while started.elapsed() < limit {
            if let Some(t) = self.transfer(hash) {
                for p in t["peers"].as_array().into_iter().flatten() {
                    let entry = (
                        p["path"].as_str().unwrap_or_default().to_string(),
                        p["address"].as_str().unwrap_or_default().to_string(),
                        p["via"].as_str().map(str::to_string),
                    );
                    if !seen.peers.contains(&entry) {
                        seen.peers.push(entry);
                    }
                }
                let done = t["done_bytes"].as_u64().unwrap_or(0);
                let fetched = t["fetched_bytes"].as_u64().unwrap_or(0);
                if (done > 0 || fetched > 0) && seen.first_byte.is_none() {
                    seen.first_byte = Some(started.elapsed());
                }
                let total = t["total_bytes"].as_u64().unwrap_or(u64::MAX);
                if done == total && t["state"] == "seeding" {
                    seen.total = Some(started.elapsed());
                    seen.done = true;
                    return seen;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        seen
    }
}
