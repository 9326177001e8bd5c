//! Windows, run under Wine. The daemon: two `bitweend.exe` on the
//! Linux Prosody (127.0.0.1), driven only through `bitweenc.exe`; alice
//! shares a file, bob finds it, downloads it and gets it byte for byte.
//! The installer: it installs for the user, the programs run from where it
//! put them, and its uninstaller removes them and keeps the user's data.
//!
//! They need the Windows build and Wine, so they are ignored in a plain
//! `cargo test`: `scripts/test-windows.sh` (called by `scripts/test.sh`)
//! cross-builds the .exe files and the installer, prepares the Wine prefix
//! and runs them with `--ignored`, `BITWEEN_WINDOWS_BIN` naming the folder
//! of the .exe files and `BITWEEN_WINDOWS_INSTALLER` the installer.

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

/// Runs `cmd` to its end and returns what it printed, killing it after
/// `limit`. Its output goes to files, not pipes: Wine hands a process's
/// standard handles on to the wineserver and to the service processes it
/// starts (services.exe, explorer.exe, ...), and those outlive the program,
/// so waiting for the end of a pipe (`Command::output`) can wait for every
/// other Wine program of the run, the daemons of the other test included.
/// A program that has not ended after `limit` fails the test with its name
/// and what it printed, instead of holding the run.
fn run(mut cmd: Command, what: &str, limit: Duration) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not end within {} s; it printed: {}\n{}",
                limit.as_secs(),
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: std::fs::read(&err_path).unwrap(),
    }
}

/// How long one short Wine program (a `bitweenc.exe` call, `reg`, `cmd`)
/// may take, Wine's start included.
const SHORT: Duration = Duration::from_secs(60);

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
        self.cli_within(args, SHORT)
    }

    fn cli_within(&self, args: &[&str], limit: Duration) -> Output {
        let mut cmd = wine("bitweenc.exe");
        cmd.args(["--data-dir", &win(&self.data)]).args(args);
        run(cmd, &format!("bitweenc.exe {args:?}"), limit)
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
    let out = bob.cli_within(&["wait", &hash], Duration::from_secs(180));
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

/// `wine` running `program` with `args`, its output collected.
fn wine_run(program: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(std::env::var("BITWEEN_WINE").unwrap_or_else(|_| "wine".into()));
    cmd.arg(program)
        .args(args)
        .env("WINEDEBUG", "-all")
        .env_remove("DISPLAY");
    run(
        cmd,
        &format!("{program} {args:?}"),
        Duration::from_secs(120),
    )
}

/// A Windows folder of the Wine prefix (`%LOCALAPPDATA%` and such), as
/// Linux sees it.
fn wine_folder(variable: &str) -> PathBuf {
    let out = wine_run("cmd", &["/c", "echo", &format!("%{variable}%")]);
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let rest = path
        .strip_prefix("C:\\")
        .unwrap_or_else(|| panic!("%{variable}% is {path:?}, not on C:"));
    let prefix = std::env::var_os("WINEPREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".wine"));
    rest.split('\\')
        .fold(prefix.join("drive_c"), |p, part| p.join(part))
}

/// Whether `value` of the registry `key` (HKCU) exists.
fn registry_has(key: &str, value: &str) -> Option<String> {
    let out = wine_run("reg", &["query", &format!("HKCU\\{key}"), "/v", value]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.success() && text.contains(value)).then_some(text)
}

#[test]
#[ignore = "needs the Windows installer and Wine: scripts/test-windows.sh runs it"]
fn the_installer_installs_for_the_user_and_uninstalls_cleanly() {
    const UNINSTALL: &str = "Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\Bitween";
    const RUN: &str = "Software\\Microsoft\\Windows\\CurrentVersion\\Run";
    let installer = PathBuf::from(
        std::env::var_os("BITWEEN_WINDOWS_INSTALLER")
            .expect("BITWEEN_WINDOWS_INSTALLER names the installer"),
    );
    let dir = wine_folder("LOCALAPPDATA").join("Programs/Bitween");
    let menu = wine_folder("APPDATA").join("Microsoft/Windows/Start Menu/Programs/Bitween.lnk");
    // What an earlier, interrupted run may have left.
    let _ = std::fs::remove_dir_all(&dir);

    // Silent, for the user alone: no administrator rights asked.
    let out = wine_run(installer.to_str().unwrap(), &["/S"]);
    assert!(out.status.success(), "the installer failed: {out:?}");
    for file in [
        "bitween.exe",
        "bitweend.exe",
        "bitweenc.exe",
        "WebView2Loader.dll",
        "uninstall.exe",
    ] {
        assert!(
            dir.join(file).is_file(),
            "{file} is not in {}",
            dir.display()
        );
    }
    assert!(menu.is_file(), "no Start menu entry at {}", menu.display());
    let entry = registry_has(UNINSTALL, "UninstallString").expect("no entry in Installed apps");
    assert!(entry.contains("uninstall.exe"), "{entry}");

    // The installed programs run: the daemon says its version; the app,
    // without WebView2 (Wine has none) and without a display, says what it
    // needs instead of panicking.
    let out = wine_run(dir.join("bitweend.exe").to_str().unwrap(), &["--version"]);
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && version.trim_end() == concat!("bitweend ", env!("CARGO_PKG_VERSION")),
        "bitweend.exe --version: {out:?}"
    );
    let out = wine_run(dir.join("bitween.exe").to_str().unwrap(), &[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "bitween.exe: {said}");
    assert!(
        said.contains("could not open its window") && said.contains("WebView2 Runtime"),
        "bitween.exe said: {said}"
    );

    // "Start at login" was on, and the app left data: the uninstaller
    // removes the login entry and the programs, and keeps the data.
    let out = wine_run(
        "reg",
        &[
            "add",
            &format!("HKCU\\{RUN}"),
            "/v",
            "Bitween",
            "/d",
            "x",
            "/f",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let data = wine_folder("LOCALAPPDATA").join("bitween-installer-test");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("keep.txt"), b"mine").unwrap();
    let out = wine_run(dir.join("uninstall.exe").to_str().unwrap(), &["/S"]);
    assert!(out.status.success(), "the uninstaller failed: {out:?}");
    // It runs on from a copy in %TEMP% after uninstall.exe has ended: wait
    // for the folder and for its last step, the Installed apps entry.
    let deadline = Instant::now() + Duration::from_secs(60);
    while dir.exists() || registry_has(UNINSTALL, "UninstallString").is_some() {
        assert!(
            Instant::now() < deadline,
            "the uninstaller did not finish within 60 s: {} holds {:?}, and the Installed apps entry is {}",
            dir.display(),
            std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>()),
            if registry_has(UNINSTALL, "UninstallString").is_some() { "still there" } else { "gone" }
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!menu.exists(), "the Start menu entry stayed");
    assert!(
        registry_has(RUN, "Bitween").is_none(),
        "the login entry stayed"
    );
    assert_eq!(std::fs::read(data.join("keep.txt")).unwrap(), b"mine");
    std::fs::remove_dir_all(&data).unwrap();
}
