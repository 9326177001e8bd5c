//! The desktop app's logic, without its window: the account (log in as a
//! transaction, log out), the settings (which changes apply at once and
//! which restart the backend), the demo mode, and what the window asks to
//! choose its screen. The Tauri shell holds one [`DesktopApp`] and its
//! commands are one-line delegations to it; the OS keyring and autostart,
//! which need the shell's platform crates, come in through
//! [`SecretStore`] and [`Autostart`].
//!
//! In demo mode the backend runs as demo-alice from the demo's own config;
//! the real settings file, password file and keyring are neither read for
//! the login nor written, and leaving the demo brings the real account
//! back.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::secret::{FileStore, SecretStore};
use super::settings::{Account, DesktopSettings, EditableSettings, SecretStoreKind};
use super::{Backend, Demo, SettingsError};
use crate::api::{Api, ApiError, ErrorKind};
use crate::events::{Event, EventBus, OfflineCause};

/// Why a change is refused in demo mode.
pub const DEMO_REFUSAL: &str =
    "this is the demo: your own account and settings are not changed by it. \
     Leave the demo (Leave demo, at the top) to sign in or change settings";

/// "Start at login", as the platform does it (the shell's).
pub trait Autostart: Send + Sync {
    fn set(&self, enabled: bool) -> Result<(), String>;
}

/// What the window shows of the running demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoInfo {
    pub jid: String,
    /// The demo contact, demo-bob.
    pub peer: String,
    pub server: String,
    pub download_dir: PathBuf,
}

/// Demo mode, in one place.
enum DemoMode {
    /// The real account (or none).
    Off,
    /// Asked for (`--demo`, "Try a demo"): the saved account waits.
    Asked,
    /// Starting: the window waits for the verdict.
    Starting,
    Running {
        demo: Box<Demo>,
        info: DemoInfo,
    },
}

/// The account the window shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub jid: String,
    pub server: Option<String>,
    pub download_dir: PathBuf,
}

/// What the window needs to choose its screen (`app_state`). In demo mode
/// `account` is demo-alice (once the demo runs) and `real_account` the
/// saved one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppState {
    pub mode: String,
    pub account: Option<AccountView>,
    pub running: bool,
    pub connection_error: Option<String>,
    pub secret_store: Option<SecretStoreKind>,
    pub keyring_error: Option<String>,
    pub demo: bool,
    pub real_account: Option<String>,
    pub demo_peer: Option<String>,
    pub default_download_dir: PathBuf,
}

/// What the account screen sends to log in.
#[derive(Debug, Clone, Deserialize)]
pub struct LoginRequest {
    pub jid: String,
    pub password: String,
    pub server: Option<String>,
    pub download_dir: Option<String>,
    /// Keep the password in a file only the user can read (no keyring).
    pub use_file: Option<bool>,
}

/// The desktop app's state and operations.
pub struct DesktopApp {
    backend: Backend,
    settings: Mutex<DesktopSettings>,
    settings_path: PathBuf,
    data_dir: PathBuf,
    keyring: Box<dyn SecretStore>,
    file: FileStore,
    autostart: Box<dyn Autostart>,
    /// Cancelled when a client calls `Api.exit`: the app quits.
    exit: CancellationToken,
    /// Why the last start from saved settings failed, if it did.
    start_error: Mutex<Option<String>>,
    demo: Mutex<DemoMode>,
    /// Held while the demo starts or stops, so a stop waits for a start.
    demo_transition: tokio::sync::Mutex<()>,
}

fn err(kind: ErrorKind, message: impl Into<String>) -> ApiError {
    ApiError::new(kind, message)
}

fn settings_error(e: SettingsError) -> ApiError {
    err(ErrorKind::Settings, e.to_string())
}

impl DesktopApp {
    /// Reads the settings file from its usual place; a broken one is
    /// reported, never replaced.
    pub fn load(
        keyring: Box<dyn SecretStore>,
        autostart: Box<dyn Autostart>,
    ) -> Result<DesktopApp, SettingsError> {
        Self::with_paths(
            DesktopSettings::default_path(),
            super::secret::default_path(),
            crate::paths::data_dir().join("desktop"),
            keyring,
            autostart,
        )
    }

    /// Like [`load`](Self::load), with its files elsewhere (tests).
    pub fn with_paths(
        settings_path: PathBuf,
        password_path: PathBuf,
        data_dir: PathBuf,
        keyring: Box<dyn SecretStore>,
        autostart: Box<dyn Autostart>,
    ) -> Result<DesktopApp, SettingsError> {
        let settings = DesktopSettings::load(&settings_path)?;
        let exit = CancellationToken::new();
        Ok(DesktopApp {
            backend: Backend::new(EventBus::new(), exit.clone()),
            settings: Mutex::new(settings),
            settings_path,
            data_dir,
            keyring,
            file: FileStore {
                path: password_path,
            },
            autostart,
            exit,
            start_error: Mutex::new(None),
            demo: Mutex::new(DemoMode::Off),
            demo_transition: tokio::sync::Mutex::new(()),
        })
    }

    pub fn events(&self) -> &EventBus {
        self.backend.events()
    }

    /// Cancelled when a client asks the app to quit.
    pub fn exit(&self) -> &CancellationToken {
        &self.exit
    }

    /// The app's own state folder (the single-instance lock lives there).
    pub fn data_dir(&self) -> &PathBuf {
        &self.data_dir
    }

    /// The running backend's operations.
    pub async fn api(&self) -> Result<Api, ApiError> {
        self.backend.api().await.ok_or_else(|| {
            err(
                ErrorKind::NotLoggedIn,
                "not logged in: enter your account on the account screen",
            )
        })
    }

    pub fn settings(&self) -> DesktopSettings {
        self.settings.lock().unwrap().clone()
    }

    fn secrets(&self, kind: Option<SecretStoreKind>) -> &dyn SecretStore {
        match kind {
            Some(SecretStoreKind::File) => &self.file,
            _ => self.keyring.as_ref(),
        }
    }

    // ----- demo mode ---------------------------------------------------------

    /// Whether the app is in demo mode (asked for, starting or running).
    pub fn in_demo(&self) -> bool {
        !matches!(*self.demo.lock().unwrap(), DemoMode::Off)
    }

    fn demo_info(&self) -> Option<DemoInfo> {
        match &*self.demo.lock().unwrap() {
            DemoMode::Running { info, .. } => Some(info.clone()),
            _ => None,
        }
    }

    fn refuse_in_demo(&self) -> Result<(), ApiError> {
        if self.in_demo() {
            return Err(err(ErrorKind::Demo, DEMO_REFUSAL));
        }
        Ok(())
    }

    /// `--demo`: the window starts the demo as soon as it loads, and the
    /// saved account is not logged in meanwhile.
    pub fn request_demo(&self) {
        let mut mode = self.demo.lock().unwrap();
        if matches!(*mode, DemoMode::Off) {
            *mode = DemoMode::Asked;
        }
    }

    /// Starts the demo and logs the backend in as demo-alice (waiting for
    /// the server's verdict); a demo already running or starting is kept.
    /// A running backend of the real account makes way, and comes back if
    /// the demo fails.
    pub async fn start_demo(&self) -> Result<(), ApiError> {
        let _transition = self.demo_transition.lock().await;
        {
            let mut mode = self.demo.lock().unwrap();
            if matches!(*mode, DemoMode::Running { .. } | DemoMode::Starting) {
                return Ok(());
            }
            *mode = DemoMode::Starting;
        }
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
                let info = DemoInfo {
                    jid: demo.alice_jid(),
                    peer: demo.bob_jid(),
                    server: demo.server_address(),
                    download_dir: demo.alice_config().engine.download_dir,
                };
                tracing::info!("demo mode: logged in as {}", info.jid);
                *self.demo.lock().unwrap() = DemoMode::Running {
                    demo: Box::new(demo),
                    info,
                };
                Ok(())
            }
            Err(e) => {
                tracing::warn!("the demo could not start: {e}");
                *self.demo.lock().unwrap() = DemoMode::Off;
                self.auto_login().await;
                Err(err(ErrorKind::Demo, e))
            }
        }
    }

    /// Ends demo mode: demo-alice signs out (while her server still runs),
    /// then demo-bob and the server stop and the demo folder is removed.
    pub async fn stop_demo(&self) {
        let _transition = self.demo_transition.lock().await;
        let running = std::mem::replace(&mut *self.demo.lock().unwrap(), DemoMode::Off);
        if let DemoMode::Running { demo, .. } = running {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.backend.stop()).await;
            demo.stop().await;
        }
    }

    /// Leaves the demo and returns to the real account: logged in again if
    /// one is saved, else the first-run screen.
    pub async fn leave_demo(&self) {
        self.stop_demo().await;
        if self.backend.api().await.is_none() {
            self.auto_login().await;
        }
    }

    // ----- the account -------------------------------------------------------

    /// Whether to start in the tray without showing the window.
    pub fn starts_hidden(&self) -> bool {
        if self.in_demo() {
            return false;
        }
        let s = self.settings.lock().unwrap();
        s.start_hidden && s.account.is_some()
    }

    /// Saves and adopts `settings`; refused in demo mode, which never
    /// writes the real settings file.
    fn store_settings(&self, settings: DesktopSettings) -> Result<(), ApiError> {
        self.refuse_in_demo()?;
        // Saved under the lock: two saves at once land in the order they
        // are adopted, so the file holds the settings in use.
        let mut current = self.settings.lock().unwrap();
        settings.save(&self.settings_path).map_err(settings_error)?;
        *current = settings;
        Ok(())
    }

    /// What the window needs to choose its screen.
    pub async fn state(&self) -> AppState {
        let settings = self.settings();
        let running = self.backend.api().await.is_some();
        let demo = self.in_demo();
        let keyring_error = match &settings.account {
            Some(a) if !demo && settings.secret_store != Some(SecretStoreKind::File) => {
                self.keyring.probe(&a.jid).err()
            }
            _ => None,
        };
        let info = self.demo_info();
        let account = if demo {
            info.as_ref().map(|d| AccountView {
                jid: d.jid.clone(),
                server: Some(d.server.clone()),
                download_dir: d.download_dir.clone(),
            })
        } else {
            settings.account.as_ref().map(|a| AccountView {
                jid: a.jid.clone(),
                server: a.server.clone(),
                download_dir: settings.download_dir.clone(),
            })
        };
        AppState {
            mode: "desktop".into(),
            account,
            running,
            connection_error: if demo {
                None
            } else {
                self.start_error.lock().unwrap().clone()
            },
            secret_store: if demo { None } else { settings.secret_store },
            keyring_error,
            demo,
            real_account: settings.account.as_ref().map(|a| a.jid.clone()),
            demo_peer: info.map(|d| d.peer),
            default_download_dir: DesktopSettings::default().download_dir,
        }
    }

    /// Logs in with a new account: the server's verdict first, then the
    /// password is kept and the account saved (nothing is saved if the
    /// server refuses).
    pub async fn login(&self, req: LoginRequest) -> Result<(), ApiError> {
        self.refuse_in_demo()?;
        let jid = req.jid.trim().to_string();
        if jid.is_empty() || req.password.is_empty() {
            return Err(err(
                ErrorKind::Config,
                "enter your JID (user@domain) and password",
            ));
        }
        let kind = if req.use_file.unwrap_or(false) {
            SecretStoreKind::File
        } else {
            SecretStoreKind::Keyring
        };
        if kind == SecretStoreKind::Keyring {
            self.keyring
                .probe(&jid)
                .map_err(|e| err(ErrorKind::NoKeyring, e))?;
        }
        let mut settings = self.settings();
        if let Some(dir) = req.download_dir.filter(|d| !d.trim().is_empty()) {
            settings.download_dir = PathBuf::from(dir.trim());
        }
        settings.validate().map_err(settings_error)?;
        let account = Account {
            jid: jid.clone(),
            server: req
                .server
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        };
        let config = settings.service_config(&account, req.password.clone(), self.data_dir.clone());
        self.backend.start(config, true).await?;
        let keep = self.secrets(Some(kind)).set(&jid, &req.password);
        keep.map_err(|e| match kind {
            SecretStoreKind::File => err(ErrorKind::Failed, format!("logged in, but {e}")),
            SecretStoreKind::Keyring => err(ErrorKind::NoKeyring, e),
        })?;
        if kind == SecretStoreKind::Keyring {
            self.file.forget(&jid);
        }
        settings.account = Some(account);
        settings.secret_store = Some(kind);
        self.store_settings(settings)?;
        *self.start_error.lock().unwrap() = None;
        Ok(())
    }

    /// Logs out: stops the backend and forgets the account and its
    /// password. Shares and downloads stay on disk.
    pub async fn logout(&self) -> Result<(), ApiError> {
        self.refuse_in_demo()?;
        self.backend.stop().await;
        let mut settings = self.settings();
        if let Some(a) = settings.account.take() {
            self.keyring.forget(&a.jid);
            self.file.forget(&a.jid);
        }
        settings.secret_store = None;
        self.store_settings(settings)
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
        let result = match self.secrets(settings.secret_store).get(&account.jid) {
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
            self.events().send(Event::Disconnected {
                reason: e,
                retrying: false,
                cause: OfflineCause::Other,
            });
        }
    }

    // ----- settings ----------------------------------------------------------

    /// The settings in force; in demo mode the demo's (its download folder,
    /// loopback only), which cannot be changed.
    pub fn editable_settings(&self) -> EditableSettings {
        match self.demo_info() {
            Some(demo) => EditableSettings {
                download_dir: demo.download_dir,
                bt_port: 0,
                ipv4: false,
                ipv6: false,
                lan: false,
                upnp: false,
                relay: true,
                start_at_login: false,
                start_hidden: false,
                upload_limit_kib: None,
                download_limit_kib: None,
            },
            None => EditableSettings::from(&self.settings()),
        }
    }

    /// Validates, saves and applies the settings: limits at once, the rest
    /// by restarting the backend.
    pub async fn save_settings(
        &self,
        edited: EditableSettings,
    ) -> Result<EditableSettings, ApiError> {
        self.refuse_in_demo()?;
        let old = self.settings();
        let new = edited.applied_to(&old);
        new.validate().map_err(settings_error)?;
        if new.start_at_login != old.start_at_login {
            self.autostart
                .set(new.start_at_login)
                .map_err(|e| err(ErrorKind::Settings, e))?;
        }
        self.store_settings(new.clone())?;
        if let Some(api) = self.backend.api().await {
            if old.needs_restart(&new) {
                self.auto_login().await;
            } else {
                api.set_limits(new.upload_limit(), new.download_limit());
            }
        }
        Ok(EditableSettings::from(&new))
    }

    /// The window was closed to the tray: whether to say so (only the first
    /// time; remembered in the settings, but never written in demo mode).
    pub fn hidden_to_tray(&self) -> bool {
        let mut settings = self.settings();
        if settings.close_hint_shown {
            return false;
        }
        settings.close_hint_shown = true;
        if self.in_demo() {
            *self.settings.lock().unwrap() = settings;
        } else if let Err(e) = self.store_settings(settings) {
            tracing::warn!("{e}");
        }
        true
    }

    /// Stops the backend (retracting our list) and the demo, if one runs
    /// (its server stops, its folder goes): everything before quitting.
    pub async fn shut_down(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.backend.stop()).await;
        // (Up to a demo's whole start, should one be starting.)
        if tokio::time::timeout(Duration::from_secs(40), self.stop_demo())
            .await
            .is_err()
        {
            tracing::warn!("the demo did not stop in time; its server dies with the app");
        }
    }
}
