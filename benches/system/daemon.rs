//! What every part of the benchmark uses: `bitweend` as a child process
//! and its API, our whole backend in-process, random files, and figures of
//! a process from /proc.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bitween::events::{Event, EventBus};
use bitween::service::Service;
use bitween::shares::Share;
use bitween_testkit::{Prosody, DOMAIN};
use serde_json::{json, Value};

pub fn random_file(path: &Path, bytes: u64) {
    use rand::RngCore;
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let mut buf = vec![0u8; 4 << 20];
    let mut rng = rand::rng();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_all().unwrap();
}

pub fn sha1sum(path: &Path) -> Duration {
    let t = Instant::now();
    let out = Command::new("sha1sum")
        .arg(path)
        .output()
        .expect("sha1sum runs");
    assert!(out.status.success());
    t.elapsed()
}

/// Flushes dirty pages, so that a transfer does not pay for the last one's.
pub fn sync() {
    let _ = Command::new("sync").status();
}

/// A field of `/proc/<pid>/status` in MiB (`VmHWM:`, `VmRSS:`, ...).
pub fn proc_mib(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

pub async fn start(
    server: &Prosody,
    user: &str,
    dir: &Path,
) -> (Service, tokio::sync::broadcast::Receiver<Event>) {
    let bus = EventBus::new();
    let rx = bus.subscribe();
    let svc = Service::start_with(
        bitween_testkit::service_config(server, user, dir, None),
        bus,
    )
    .await
    .unwrap();
    (svc, rx)
}

pub async fn wait(rx: &mut tokio::sync::broadcast::Receiver<Event>, pred: impl Fn(&Event) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) if pred(&e) => return,
            Ok(Ok(Event::DownloadFailed { reason, .. })) => panic!("download failed: {reason}"),
            Ok(_) => {}
            Err(_) => panic!("benchmark timed out"),
        }
    }
}

pub fn shares(n: u32, tag: u32) -> Vec<Share> {
    (0..n)
        .map(|i| {
            Share::from_wire(
                &format!("{tag:08x}{i:032x}"),
                &format!("track {i} of the collection {tag}.flac"),
                "4000000",
            )
            .unwrap()
        })
        .collect()
}

/// `bitweend` for `user`, loopback only, with its data in `data`: the
/// command, ready for more arguments. `wrap` runs it under another program
/// (a profiler).
pub fn bitweend(server: &Prosody, user: &str, data: &Path, wrap: &[String]) -> Command {
    let mut command = match wrap.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(env!("CARGO_BIN_EXE_bitweend"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_bitweend")),
    };
    command
        .args(["--jid", &format!("{user}@{DOMAIN}")])
        .args(["--server", &server.server(), "--insecure-plaintext"])
        .args(["--no-public-ip", "--no-upnp", "--no-natpmp"])
        .args(["--address", "127.0.0.1"])
        .arg("--data-dir")
        .arg(data)
        .arg("--download-dir")
        .arg(data.with_extension("downloads"))
        .env("BITWEEN_PASSWORD", bitween_testkit::PASSWORD)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null());
    // The daemon ends with the benchmark, even one that is interrupted.
    #[cfg(target_os = "linux")]
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command
}

/// A running `bitweend`'s JSON-RPC API, found through the address and
/// token files in its data dir.
pub struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    /// The API of the daemon with data dir `data`, once it has written both
    /// files.
    pub fn find(http: &reqwest::Client, data: &Path) -> Option<Api> {
        let addr = std::fs::read_to_string(bitween::api::http::address_file(data)).ok()?;
        let token = std::fs::read_to_string(bitween::api::http::token_file(data)).ok()?;
        Some(Api {
            http: http.clone(),
            url: format!("http://{}/api", addr.trim()),
            token: token.trim().to_string(),
        })
    }

    /// The result of `method`, or `None` if the call failed.
    pub async fn call(&self, method: &str, params: Value) -> Option<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let reply = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .ok()?;
        let v: Value = reply.json().await.ok()?;
        v.get("result").cloned()
    }

    pub async fn online(&self) -> bool {
        self.call("status", json!([]))
            .await
            .is_some_and(|v| v["connection"].get("Online").is_some())
    }

    pub async fn has_hit(&self, text: &str) -> bool {
        self.call("search", json!({"text": text, "limit": 1}))
            .await
            .and_then(|v| v.as_array().map(|a| !a.is_empty()))
            .unwrap_or(false)
    }
}

/// Waits until the daemon `child` with data dir `data` says through its
/// API that it is online; its API. Panics if it ends or takes a minute.
pub async fn api_online(http: &reqwest::Client, data: &Path, child: &mut Child) -> Api {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(api) = Api::find(http, data) {
            if api.online().await {
                return api;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "bitweend ended before it was online"
        );
        assert!(Instant::now() < deadline, "bitweend not online after 60 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
