//! The daemon on Windows, run under Wine: two `bitweend.exe` on the
//! Linux Prosody (127.0.0.1), driven only through `bitweenc.exe`; alice
//! shares a file, bob finds it, downloads it and gets it byte for byte.
//!
//! It needs the Windows build and Wine, so it is ignored in a plain
//! `cargo test`: `scripts/test-windows.sh` (called by `scripts/test.sh`)
//! cross-builds the .exe files, prepares the Wine prefix and runs it with
//! `--ignored`, `BITWEEN_WINDOWS_BIN` naming the folder of the .exe files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bitween_testkit::{Prosody, DOMAIN, PASSWORD};
use serde_json::Value;

/// A Linux path as the Windows programs see it under Wine (`Z:` is `/`).
fn win(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// The folder of `bitweend.exe` and `bitweenc.exe`.
fn bin_dir() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var_os("BITWEEN_WINDOWS_BIN")
            .expect("BITWEEN_WINDOWS_BIN names the folder of the Windows build"),
    );
    for exe in ["bitweend.exe", "bitweenc.exe"] {
        assert!(
            dir.join(exe).exists(),
            "{} is missing",
            dir.join(exe).display()
        );
    }
    dir
}

/// `wine` (or `BITWEEN_WINE`) running `exe` of the Windows build.
fn wine(exe: &str) -> Command {
    let mut cmd = Command::new(std::env::var("BITWEEN_WINE").unwrap_or_else(|_| "wine".into()));
    cmd.arg(bin_dir().join(exe)).env("WINEDEBUG", "-all");
    cmd
}

/// A `bitweend.exe` under Wine; killed when dropped.
struct WinDaemon {
    child: Child,
    /// Its data dir, as Linux sees it.
    data: PathBuf,
}

impl WinDaemon {
    fn start(server: &Prosody, user: &str, dir: &Path) -> WinDaemon {
        let data = dir.join("data");
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::File::create(dir.join("bitweend.out")).unwrap();
        let child = wine("bitweend.exe")
            .args(["--jid", &format!("{user}@{DOMAIN}")])
            .args(["--server", &server.server(), "--resource", "pc"])
            .args([
                "--insecure-plaintext",
                "--no-public-ip",
                "--no-upnp",
                "--no-natpmp",
            ])
            .args(["--address", "127.0.0.1"])
            .args(["--data-dir", &win(&data)])
            .args(["--download-dir", &win(&dir.join("downloads"))])
            .env("BITWEEN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "bitween=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("wine starts bitweend.exe");
        let mut daemon = WinDaemon { child, data };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !daemon.data.join("api-token").exists() {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("bitweend.exe exited ({status}): {}", daemon.output());
            }
            assert!(
                Instant::now() < deadline,
                "bitweend.exe wrote no api-token within 60 s: {}",
                daemon.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    /// What the daemon printed so far.
    fn output(&self) -> String {
        std::fs::read_to_string(self.data.with_file_name("bitweend.out")).unwrap_or_default()
    }

    fn cli(&self, args: &[&str]) -> Output {
        wine("bitweenc.exe")
            .args(["--data-dir", &win(&self.data)])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("wine starts bitweenc.exe")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "bitweenc.exe {args:?}: {}\nthe daemon's output: {}",
            String::from_utf8_lossy(&out.stderr),
            self.output()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "bitweenc.exe {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `bitweenc.exe exit`, then the daemon's exit within 20 s.
    fn exit(mut self) -> std::process::ExitStatus {
        let out = self.cli(&["exit"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "bitweend.exe did not exit: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for WinDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs the Windows build and Wine: scripts/test-windows.sh runs it"]
fn two_windows_daemons_share_and_download_under_wine() {
    let started = Instant::now();
    let server = Prosody::start(&["alice", "bob"], &[("alice", "bob")]);
    let tmp = tempfile::tempdir().unwrap();
    let alice = WinDaemon::start(&server, "alice", &tmp.path().join("alice"));
    let bob = WinDaemon::start(&server, "bob", &tmp.path().join("bob"));

    let file = tmp.path().join("report 2026.pdf");
    let content: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&file, &content).unwrap();
    let shared = alice.json(&["share", &win(&file)]);
    let hash = shared[0]["hash"].as_str().unwrap().to_string();
    assert_eq!(shared[0]["size"], 5_000_000);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let hits = bob.json(&["search", "REPORT"]);
        if hits
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["share"]["hash"] == hash.as_str() && h["online"] == true)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob's catalog never listed alice's file: {hits}\nbob: {}",
            bob.output()
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let transfer = Instant::now();
    bob.json(&["download", &hash]);
    let out = bob.cli(&["wait", &hash]);
    assert!(
        out.status.success(),
        "wait: {}\nbob: {}\nalice: {}",
        String::from_utf8_lossy(&out.stderr),
        bob.output(),
        alice.output()
    );
    let got = std::fs::read(tmp.path().join("bob/downloads/report 2026.pdf")).unwrap();
    assert!(got == content, "the downloaded file differs");
    assert_eq!(bob.json(&["transfers"])[0]["state"], "seeding");
    eprintln!(
        "under Wine: 5 MB downloaded in {:.1} s; the whole test took {:.1} s",
        transfer.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    assert!(alice.exit().success());
    assert!(bob.exit().success());
}
