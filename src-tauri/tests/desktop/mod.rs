//! What the desktop app's end-to-end tests share: the app under Xvfb
//! through tauri-driver and WebKitWebDriver, in a process group killed
//! whole at the end, with its folders (`HOME`, XDG dirs, `TMPDIR`) in a
//! test's own folder; screenshots; moving between screens; and looking
//! for processes through /proc. Include it with `mod desktop;` beside
//! `common` and `webdriver`.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use crate::webdriver::{DriverProcess, Session};

/// How long a step of the UI may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// `<target dir>/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .and_then(|profile| profile.parent())
        .expect("the target dir")
        .join("screenshots")
}

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
    let path = screenshot_dir().join(format!("desktop-{name}.png"));
    app.save_screenshot(&path).await?;
    eprintln!("screenshot: {}", path.display());
    Ok(path)
}

/// Xvfb, tauri-driver, WebKitWebDriver and the app, in one process group
/// that is killed as a whole when dropped.
pub struct Desktop {
    pub driver: Option<DriverProcess>,
    group: u32,
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
    let port = crate::common::free_port();
    std::fs::create_dir_all(home.join("tmp"))?;
    let mut cmd = Command::new("xvfb-run");
    cmd.args(["-a", "-s", "-screen 0 1280x800x24", "tauri-driver"])
        .args(["--port", &port.to_string()])
        .args(["--native-port", &crate::common::free_port().to_string()])
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

/// Closes the messages in the corner (they may cover a button), as a user
/// would.
pub async fn dismiss_toasts(app: &Session) -> Result<()> {
    for button in app.find_all("#toast .dismiss").await? {
        let _ = button.click().await;
    }
    Ok(())
}

/// Opens one of the main screens through its button in the sidebar.
pub async fn open_view(app: &Session, view: &str) -> Result<()> {
    dismiss_toasts(app).await?;
    app.click(&format!("[data-nav=\"{view}\"]")).await?;
    app.wait_for(&format!("#view-{view}"), WAIT)
        .await
        .map(|_| ())
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
