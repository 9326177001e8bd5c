//! The shell's state: the core's [`Backend`], the settings file, where
//! the password is kept, and the demo while it runs. Commands, the tray and
//! the event forwarder all go through it.
//!
//! In demo mode the backend runs as demo-alice from the demo's own config;
//! the real settings file, password file and keyring are neither read for
//! the login nor written ([`Shell::store_settings`] refuses), and leaving
//! the demo brings the real account back.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bitween::desktop::{secret, Backend, Demo, DesktopSettings, SettingsError};
use bitween::events::EventBus;
use tauri::{AppHandle, Manager};
use tokio_util::sync::CancellationToken;

use crate::keyring_store;

/// What the window shows of the running demo.
#[derive(Debug, Clone)]
pub struct DemoInfo {
    pub jid: String,
    /// The demo contact, demo-bob.
    pub peer: String,
    pub server: String,
    pub download_dir: PathBuf,
}

/// Why a change is refused in demo mode.
pub const DEMO_REFUSAL: &str =
    "this is the demo: your own account and settings are not changed by it. \
     Leave the demo (Leave demo, at the top) to sign in or change settings";

pub struct Shell {
    pub backend: Backend,
    pub settings: Mutex<DesktopSettings>,
    pub settings_path: PathBuf,
    pub password_path: PathBuf,
    pub data_dir: PathBuf,
    /// Cancelled when a client calls `Api.exit`: the app quits.
    pub exit: CancellationToken,
    /// Why the last start from saved settings failed, if it did.
    pub start_error: Mutex<Option<String>>,
    /// The running demo; locked while it starts or stops.
    demo: tokio::sync::Mutex<Option<Demo>>,
    /// Demo mode was asked for (`--demo`, "Try a demo") or runs.
    demo_mode: AtomicBool,
    demo_info: Mutex<Option<DemoInfo>>,
}

impl Shell {
    /// Reads the settings file; a broken one is reported, never replaced.
    pub fn load() -> Result<Shell, SettingsError> {
        let settings_path = DesktopSettings::default_path();
        let settings = DesktopSettings::load(&settings_path)?;
        let exit = CancellationToken::new();
        Ok(Shell {
            backend: Backend::new(EventBus::new(), exit.clone()),
            settings: Mutex::new(settings),
            settings_path,
            password_path: secret::default_path(),
            data_dir: bitween::paths::data_dir().join("desktop"),
            exit,
            start_error: Mutex::new(None),
            demo: tokio::sync::Mutex::new(None),
            demo_mode: AtomicBool::new(false),
            demo_info: Mutex::new(None),
        })
    }

    /// Whether the app is in demo mode (asked for, starting or running).
    pub fn in_demo(&self) -> bool {
        self.demo_mode.load(Ordering::SeqCst)
    }

    /// The running demo's account and server.
    pub fn demo_info(&self) -> Option<DemoInfo> {
        self.demo_info.lock().unwrap().clone()
    }

    /// `--demo`: the window starts the demo as soon as it loads, and the
    /// saved account is not logged in meanwhile.
    pub fn request_demo(&self) {
        self.demo_mode.store(true, Ordering::SeqCst);
    }

    /// Starts the demo and logs the backend in as demo-alice (waiting for
    /// the server's verdict); a demo already running is kept. A running
    /// backend of the real account makes way, and comes back if the demo
    /// fails or ends.
    pub async fn start_demo(&self) -> Result<(), String> {
        let mut slot = self.demo.lock().await;
        if slot.is_some() {
            return Ok(());
        }
        self.demo_mode.store(true, Ordering::SeqCst);
        self.backend.stop().await;
        let started = match Demo::start(self.backend.events().clone()).await {
            Ok(demo) => match self.backend.start(demo.alice_config(), true).await {
                Ok(_) => Ok(demo),
                Err(e) => {
                    demo.stop().await;
                    Err(format!(
                        "the demo server runs, but demo-alice cannot log in: {e}"
                    ))
                }
            },
            Err(e) => Err(e.to_string()),
        };
        match started {
            Ok(demo) => {
                let config = demo.alice_config();
                *self.demo_info.lock().unwrap() = Some(DemoInfo {
                    jid: demo.alice_jid(),
                    peer: demo.bob_jid(),
                    server: demo.server_address(),
                    download_dir: config.engine.download_dir,
                });
                tracing::info!("demo mode: logged in as {}", demo.alice_jid());
                *slot = Some(demo);
                Ok(())
            }
            Err(e) => {
                tracing::warn!("the demo could not start: {e}");
                self.demo_mode.store(false, Ordering::SeqCst);
                drop(slot);
                self.auto_login().await;
                Err(e)
            }
        }
    }

    /// Ends demo mode: demo-alice signs out (while her server still runs),
    /// then demo-bob and the server stop and the demo folder is removed.
    pub async fn stop_demo(&self) {
        let mut slot = self.demo.lock().await;
        if let Some(demo) = slot.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.backend.stop()).await;
            demo.stop().await;
        }
        *self.demo_info.lock().unwrap() = None;
        self.demo_mode.store(false, Ordering::SeqCst);
    }

    /// Leaves the demo and returns to the real account: logged in again if
    /// one is saved, else the first-run screen.
    pub async fn leave_demo(&self) {
        self.stop_demo().await;
        if self.backend.api().await.is_none() {
            self.auto_login().await;
        }
    }

    pub fn settings(&self) -> DesktopSettings {
        self.settings.lock().unwrap().clone()
    }

    pub fn starts_hidden(&self) -> bool {
        if self.in_demo() {
            return false;
        }
        let s = self.settings.lock().unwrap();
        s.start_hidden && s.account.is_some()
    }

    /// Saves and adopts `settings`; refused in demo mode, which never
    /// writes the real settings file.
    pub fn store_settings(&self, settings: DesktopSettings) -> Result<(), SettingsError> {
        if self.in_demo() {
            return Err(SettingsError::Value(DEMO_REFUSAL.into()));
        }
        settings.save(&self.settings_path)?;
        *self.settings.lock().unwrap() = settings;
        Ok(())
    }

    /// The saved password of the configured account, from where it is kept.
    pub fn saved_password(&self, settings: &DesktopSettings) -> Result<Option<String>, String> {
        let Some(account) = &settings.account else {
            return Ok(None);
        };
        match settings.secret_store.as_deref() {
            Some("file") => secret::load(&self.password_path).map_err(|e| {
                format!(
                    "cannot read the password file {}: {e}",
                    self.password_path.display()
                )
            }),
            _ => keyring_store::get(&account.jid),
        }
    }

    /// Starts the backend from the saved account, without waiting for the
    /// server (the status bar shows how it goes). Not in demo mode.
    pub async fn auto_login(&self) {
        if self.in_demo() {
            return;
        }
        let settings = self.settings();
        let Some(account) = settings.account.clone() else {
            return;
        };
        let result = match self.saved_password(&settings) {
            Ok(Some(password)) => self
                .backend
                .start(
                    settings.service_config(&account, password, self.data_dir.clone()),
                    false,
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Ok(None) => Err(format!(
                "no saved password for {}: log in again",
                account.jid
            )),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!("cannot start from the saved account: {e}");
            *self.start_error.lock().unwrap() = Some(e.clone());
            // A window already showing learns it from the status bar.
            self.backend
                .events()
                .send(bitween::events::Event::Disconnected {
                    reason: e,
                    retrying: false,
                });
        }
    }

    /// Stops the backend (retracting our list), ends the demo if one runs
    /// (its server stops, its folder goes), and leaves the app.
    pub async fn quit(app: &AppHandle) {
        let shell = app.state::<Shell>();
        let _ = tokio::time::timeout(Duration::from_secs(5), shell.backend.stop()).await;
        // (Up to a demo's whole start, should one be starting.)
        if tokio::time::timeout(Duration::from_secs(40), shell.stop_demo())
            .await
            .is_err()
        {
            tracing::warn!("the demo did not stop in time; its server dies with the app");
        }
        app.exit(0);
    }
}

/// The window was closed to the tray: the first time, say so.
pub fn on_hidden_to_tray(app: &AppHandle) {
    let shell = app.state::<Shell>();
    let mut settings = shell.settings();
    if settings.close_hint_shown {
        return;
    }
    settings.close_hint_shown = true;
    if shell.in_demo() {
        // Not saved: the demo leaves the settings file alone.
        *shell.settings.lock().unwrap() = settings;
    } else if let Err(e) = shell.store_settings(settings) {
        tracing::warn!("{e}");
    }
    crate::forward::notify(
        app,
        "Bitween is still running",
        "It keeps sharing from the tray. Use Quit in the tray menu to stop it.",
    );
}
