//! The shell's state: the core's [`Backend`], the settings file and where
//! the password is kept. Commands, the tray and the event forwarder all go
//! through it.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bitween::desktop::{secret, Backend, DesktopSettings, SettingsError};
use bitween::events::EventBus;
use tauri::{AppHandle, Manager};
use tokio_util::sync::CancellationToken;

use crate::keyring_store;

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
        })
    }

    pub fn settings(&self) -> DesktopSettings {
        self.settings.lock().unwrap().clone()
    }

    pub fn starts_hidden(&self) -> bool {
        let s = self.settings.lock().unwrap();
        s.start_hidden && s.account.is_some()
    }

    /// Saves and adopts `settings`.
    pub fn store_settings(&self, settings: DesktopSettings) -> Result<(), SettingsError> {
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
    /// server (the status bar shows how it goes).
    pub async fn auto_login(&self) {
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

    /// Stops the backend (retracting our list) and leaves the app.
    pub async fn quit(app: &AppHandle) {
        let shell = app.state::<Shell>();
        let _ = tokio::time::timeout(Duration::from_secs(5), shell.backend.stop()).await;
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
    if let Err(e) = shell.store_settings(settings) {
        tracing::warn!("{e}");
    }
    crate::forward::notify(
        app,
        "Bitween is still running",
        "It keeps sharing from the tray. Use Quit in the tray menu to stop it.",
    );
}
