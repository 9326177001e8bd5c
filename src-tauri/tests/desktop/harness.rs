//! What the desktop app's end-to-end tests share: the app under Xvfb
//! through tauri-driver and WebKitWebDriver, in a process group killed
//! whole at the end, with its folders (`HOME`, XDG dirs, `TMPDIR`) in a
//! test's own folder, one app at a time; screenshots; moving between
//! screens; and looking for processes through /proc. The checks of the
//! page itself are `bitween_testkit::pages`, shared with the web UI's test.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use bitween_testkit::free_port;
use bitween_testkit::pages::{self, dismiss_toasts};
use bitween_testkit::webdriver::{DriverProcess, Session};
use serde_json::json;
use tokio::sync::{Mutex, MutexGuard};

pub use bitween_testkit::pages::WAIT;

/// One app at a time: each brings Xvfb, a software-rendered webview and
/// often a Prosody, which is plenty for two cores. [`start_desktop`] takes
/// it; the [`Desktop`] holds it until dropped.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Saves a screenshot of the window to `<target dir>/screenshots/desktop-NAME.png`
/// and returns its path.
pub async fn shot(app: &Session, name: &str) -> Result<PathBuf> {
    // Let the webview paint what the last step changed: WebKit's snapshot
    // otherwise may show the frame before.
    app.execute(
        "return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 300))));",
        json!([]),
    )
    .await?;
    pages::save_shot(app, &format!("desktop-{name}")).await
}

/// Xvfb, tauri-driver, WebKitWebDriver and the app, in one process group
/// that is killed as a whole when dropped.
pub struct Desktop {
    pub driver: Option<DriverProcess>,
    group: u32,
    _one_at_a_time: MutexGuard<'static, ()>,
}

impl Desktop {
    pub fn url(&self) -> String {
        self.driver.as_ref().expect("the driver runs").url.clone()
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        drop(self.driver.take());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.group)])
            .stderr(Stdio::null())
            .status();
    }
}

/// Starts tauri-driver under its own Xvfb with the app's folders in `home`
/// (`config`, `data`, `tmp`; the app's log goes to `home/desktop.log`).
pub async fn start_desktop(home: &Path) -> Result<Desktop> {
    let one_at_a_time = ONE_AT_A_TIME.lock().await;
    let port = free_port();
    std::fs::create_dir_all(home.join("tmp"))?;
    let mut cmd = Command::new("xvfb-run");
    cmd.args(["-a", "-s", "-screen 0 1280x800x24", "tauri-driver"])
        .args(["--port", &port.to_string()])
        .args(["--native-port", &free_port().to_string()])
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("TMPDIR", home.join("tmp"))
        // Software GL: under Xvfb, WebKitGTK otherwise paints nothing (and
        // with compositing disabled, screenshots never return).
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .env_remove("WEBKIT_DISABLE_COMPOSITING_MODE")
        // No session bus, hence no keyring: the account screen must say so.
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("RUST_LOG", "bitween=debug,bitween_desktop=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.join("desktop.log"))?)
        .process_group(0);
    let driver = DriverProcess::spawn(cmd, port)
        .await
        .context("tauri-driver under xvfb-run (packages xvfb, webkit2gtk-driver; cargo install tauri-driver)")?;
    // The group's id is its leader's pid: the xvfb-run shell.
    let group = driver.pid();
    Ok(Desktop {
        driver: Some(driver),
        group,
        _one_at_a_time: one_at_a_time,
    })
}

/// A session with the app, started with `args`.
pub async fn open_app(desktop: &Desktop, args: &[&str]) -> Result<Session> {
    Session::new(
        &desktop.url(),
        json!({"tauri:options": {
            "application": env!("CARGO_BIN_EXE_bitween"),
            "args": args,
        }}),
    )
    .await
}

/// The app's log so far, for a failure's output.
pub fn app_log(home: &Path) -> String {
    std::fs::read_to_string(home.join("desktop.log")).unwrap_or_default()
}

/// Opens one of the main screens through its button in the sidebar, after
/// closing the messages in the corner (they may cover it).
pub async fn open_view(app: &Session, view: &str) -> Result<()> {
    dismiss_toasts(app).await?;
    pages::open_view(app, view).await
}

/// The processes (pid and command line) whose command line mentions
/// `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// The running app processes whose `HOME` is `home` (this test's app).
pub fn app_pids(home: &Path) -> Vec<u32> {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_bitween"));
    let want = format!("HOME={}", home.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read_link(entry.path().join("exe")).ok().as_deref() != Some(exe.as_path()) {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
            found.push(pid);
        }
    }
    found
}
