//! The commands the frontend invokes. Each one delegates to the core: the
//! JSON-RPC operations through `api`, the rest through `bitween::desktop`.
//! Errors reach the frontend as `{code, kind, message}`.

use std::path::PathBuf;

use bitween::api::ApiError;
use bitween::desktop::DesktopSettings;
use bitween::desktop::{
    secret, share_paths as core_share_paths, Account, LoginError, ShareOutcome,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tauri::{AppHandle, State};
use tauri_plugin_dialog::DialogExt;

use crate::keyring_store;
use crate::shell::{Shell, DEMO_REFUSAL};

/// A failed command, as the frontend sees it.
#[derive(Debug, Serialize)]
pub struct CmdError {
    pub code: i64,
    /// `not_logged_in`, `config`, `refused`, `unreachable`, `no_pep`,
    /// `no_keyring`, `settings`, `failed`, `demo` (refused in demo mode, or
    /// the demo failed), or the API's error.
    pub kind: &'static str,
    pub message: String,
}

fn fail(kind: &'static str, message: impl Into<String>) -> CmdError {
    CmdError {
        code: bitween::api::OPERATION_FAILED,
        kind,
        message: message.into(),
    }
}

impl From<ApiError> for CmdError {
    fn from(e: ApiError) -> Self {
        CmdError {
            code: e.code,
            kind: "api",
            message: e.message,
        }
    }
}

impl From<LoginError> for CmdError {
    fn from(e: LoginError) -> Self {
        let kind = match e {
            LoginError::Config(_) => "config",
            LoginError::Refused(_) => "refused",
            LoginError::Unreachable(_) => "unreachable",
            LoginError::NoPep(_) => "no_pep",
        };
        fail(kind, e.to_string())
    }
}

async fn running(shell: &Shell) -> Result<bitween::api::Api, CmdError> {
    shell.backend.api().await.ok_or_else(|| {
        fail(
            "not_logged_in",
            "not logged in: enter your account on the account screen",
        )
    })
}

/// One JSON-RPC method of the core (the same list `bitweend` serves).
#[tauri::command]
pub async fn api(
    shell: State<'_, Shell>,
    method: String,
    params: Option<Value>,
) -> Result<Value, CmdError> {
    let api = running(&shell).await?;
    Ok(api.call(&method, params.unwrap_or(Value::Null)).await?)
}

/// What the frontend needs to choose its screen. In demo mode `account` is
/// demo-alice (once the demo runs) and `real_account` the saved one.
#[tauri::command]
pub async fn app_state(shell: State<'_, Shell>) -> Result<Value, CmdError> {
    let settings = shell.settings();
    let running = shell.backend.api().await.is_some();
    let demo = shell.in_demo();
    let keyring_error = match &settings.account {
        Some(a) if !demo && settings.secret_store.as_deref() != Some("file") => {
            keyring_store::probe(&a.jid).err()
        }
        _ => None,
    };
    let account = if demo {
        shell.demo_info().map(|d| {
            json!({
                "jid": d.jid,
                "server": d.server,
                "download_dir": d.download_dir,
            })
        })
    } else {
        settings.account.as_ref().map(|a| {
            json!({
                "jid": a.jid,
                "server": a.server,
                "download_dir": settings.download_dir,
            })
        })
    };
    Ok(json!({
        "mode": "desktop",
        "account": account,
        "running": running,
        "connection_error": if demo { None } else { shell.start_error.lock().unwrap().clone() },
        "secret_store": if demo { None } else { settings.secret_store.clone() },
        "keyring_error": keyring_error,
        "demo": demo,
        "real_account": settings.account.as_ref().map(|a| a.jid.clone()),
        "demo_peer": shell.demo_info().map(|d| d.peer),
        "default_download_dir": DesktopSettings::default().download_dir,
    }))
}

/// "Try a demo" (and `--demo`, through the window): starts a private
/// server with demo-alice and demo-bob on this computer and logs in as
/// demo-alice; returns once she is online. Nothing is saved.
#[tauri::command]
pub async fn start_demo(shell: State<'_, Shell>) -> Result<Value, CmdError> {
    shell.start_demo().await.map_err(|e| fail("demo", e))?;
    Ok(json!(true))
}

/// "Leave demo": stops the demo (its server, demo-bob, its folder) and
/// returns to the saved account, if there is one.
#[tauri::command]
pub async fn leave_demo(shell: State<'_, Shell>) -> Result<Value, CmdError> {
    shell.leave_demo().await;
    Ok(json!(true))
}

fn refuse_in_demo(shell: &Shell) -> Result<(), CmdError> {
    if shell.in_demo() {
        return Err(fail("demo", DEMO_REFUSAL));
    }
    Ok(())
}

/// Logs in with a new account; saves it (and the password) only once the
/// server accepted it.
#[tauri::command]
pub async fn login(
    shell: State<'_, Shell>,
    jid: String,
    password: String,
    server: Option<String>,
    download_dir: Option<String>,
    use_file: Option<bool>,
) -> Result<Value, CmdError> {
    refuse_in_demo(&shell)?;
    let jid = jid.trim().to_string();
    if jid.is_empty() || password.is_empty() {
        return Err(fail("config", "enter your JID (user@domain) and password"));
    }
    let use_file = use_file.unwrap_or(false);
    if !use_file {
        if let Err(e) = keyring_store::probe(&jid) {
            return Err(fail("no_keyring", e));
        }
    }
    let mut settings = shell.settings();
    if let Some(dir) = download_dir.filter(|d| !d.trim().is_empty()) {
        settings.download_dir = PathBuf::from(dir.trim());
    }
    settings
        .validate()
        .map_err(|e| fail("settings", e.to_string()))?;
    let account = Account {
        jid: jid.clone(),
        server: server
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    };
    let config = settings.service_config(&account, password.clone(), shell.data_dir.clone());
    shell.backend.start(config, true).await?;
    if use_file {
        secret::store(&shell.password_path, &password).map_err(|e| {
            fail(
                "failed",
                format!(
                    "logged in, but cannot write the password file {}: {e}",
                    shell.password_path.display()
                ),
            )
        })?;
    } else {
        keyring_store::set(&jid, &password).map_err(|e| fail("no_keyring", e))?;
        let _ = secret::forget(&shell.password_path);
    }
    settings.account = Some(account);
    settings.secret_store = Some(if use_file { "file" } else { "keyring" }.into());
    shell
        .store_settings(settings)
        .map_err(|e| fail("settings", e.to_string()))?;
    *shell.start_error.lock().unwrap() = None;
    Ok(json!(true))
}

/// Logs out: stops the backend and forgets the account and its password.
/// Shares and downloads stay on disk.
#[tauri::command]
pub async fn logout(shell: State<'_, Shell>) -> Result<Value, CmdError> {
    refuse_in_demo(&shell)?;
    shell.backend.stop().await;
    let mut settings = shell.settings();
    if let Some(a) = settings.account.take() {
        keyring_store::forget(&a.jid);
    }
    let _ = secret::forget(&shell.password_path);
    settings.secret_store = None;
    shell
        .store_settings(settings)
        .map_err(|e| fail("settings", e.to_string()))?;
    Ok(json!(true))
}

/// The settings the settings screen edits.
#[derive(Debug, Serialize, Deserialize)]
pub struct EditableSettings {
    pub download_dir: PathBuf,
    pub bt_port: u16,
    pub ipv4: bool,
    pub ipv6: bool,
    pub lan: bool,
    pub upnp: bool,
    pub start_at_login: bool,
    pub start_hidden: bool,
    pub upload_limit_kib: Option<u32>,
    pub download_limit_kib: Option<u32>,
}

fn editable(s: &DesktopSettings) -> EditableSettings {
    EditableSettings {
        download_dir: s.download_dir.clone(),
        bt_port: s.bt_port,
        ipv4: s.ipv4,
        ipv6: s.ipv6,
        lan: s.lan,
        upnp: s.upnp,
        start_at_login: s.start_at_login,
        start_hidden: s.start_hidden,
        upload_limit_kib: s.upload_limit_kib,
        download_limit_kib: s.download_limit_kib,
    }
}

/// The settings in force; in demo mode the demo's (its download folder,
/// loopback only), which cannot be changed.
#[tauri::command]
pub async fn get_settings(shell: State<'_, Shell>) -> Result<EditableSettings, CmdError> {
    if let Some(demo) = shell.demo_info() {
        return Ok(EditableSettings {
            download_dir: demo.download_dir,
            bt_port: 0,
            ipv4: false,
            ipv6: false,
            lan: false,
            upnp: false,
            start_at_login: false,
            start_hidden: false,
            upload_limit_kib: None,
            download_limit_kib: None,
        });
    }
    Ok(editable(&shell.settings()))
}

/// Validates, saves and applies the settings: limits at once, the rest by
/// restarting the backend.
#[tauri::command]
pub async fn save_settings(
    shell: State<'_, Shell>,
    settings: EditableSettings,
) -> Result<EditableSettings, CmdError> {
    refuse_in_demo(&shell)?;
    let old = shell.settings();
    let new = DesktopSettings {
        download_dir: settings.download_dir,
        bt_port: settings.bt_port,
        ipv4: settings.ipv4,
        ipv6: settings.ipv6,
        lan: settings.lan,
        upnp: settings.upnp,
        start_at_login: settings.start_at_login,
        start_hidden: settings.start_hidden,
        upload_limit_kib: settings.upload_limit_kib,
        download_limit_kib: settings.download_limit_kib,
        ..old.clone()
    };
    new.validate()
        .map_err(|e| fail("settings", e.to_string()))?;
    if new.start_at_login != old.start_at_login {
        crate::autostart::set(new.start_at_login).map_err(|e| fail("settings", e))?;
    }
    shell
        .store_settings(new.clone())
        .map_err(|e| fail("settings", e.to_string()))?;
    if let Some(api) = shell.backend.api().await {
        if old.needs_restart(&new) {
            shell.auto_login().await;
        } else {
            let engine = &api.service().engine;
            engine.set_upload_limit(new.upload_limit());
            engine.set_download_limit(new.download_limit());
        }
    }
    Ok(editable(&new))
}

/// The drop handler's command: shares each path, reporting each outcome.
#[tauri::command]
pub async fn share_paths(
    shell: State<'_, Shell>,
    paths: Vec<String>,
) -> Result<Vec<ShareOutcome>, CmdError> {
    let api = running(&shell).await?;
    let paths: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
    Ok(core_share_paths(&api.service().engine, &paths).await)
}

/// Opens the native picker for files (or folders) and shares the choice.
#[tauri::command]
pub async fn pick_and_share(
    app: AppHandle,
    shell: State<'_, Shell>,
    folder: bool,
) -> Result<Vec<ShareOutcome>, CmdError> {
    let api = running(&shell).await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let dialog = app.dialog().file().set_title(if folder {
        "Share folders"
    } else {
        "Share files"
    });
    let send = move |picked: Option<Vec<tauri_plugin_dialog::FilePath>>| {
        let _ = tx.send(picked.unwrap_or_default());
    };
    if folder {
        dialog.pick_folders(send);
    } else {
        dialog.pick_files(send);
    }
    let picked = rx.await.unwrap_or_default();
    let paths: Vec<PathBuf> = picked
        .into_iter()
        .filter_map(|p| p.into_path().ok())
        .collect();
    Ok(core_share_paths(&api.service().engine, &paths).await)
}

/// Opens a transfer's file (or the folder holding it) with the system.
#[tauri::command]
pub async fn open_path(
    shell: State<'_, Shell>,
    hash: String,
    folder: bool,
) -> Result<Value, CmdError> {
    let api = running(&shell).await?;
    let transfers = api.service().engine.transfers();
    let t = transfers
        .iter()
        .find(|t| t.hash.to_hex() == hash.to_ascii_lowercase())
        .ok_or_else(|| fail("failed", format!("no transfer {hash} here")))?;
    let target = if folder {
        t.folder.clone()
    } else {
        t.path.clone()
    };
    if !target.exists() {
        return Err(fail(
            "failed",
            format!("{} does not exist (yet)", target.display()),
        ));
    }
    std::process::Command::new("xdg-open")
        .arg(&target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|mut child| std::thread::spawn(move || child.wait()))
        .map_err(|e| {
            fail(
                "failed",
                format!(
                    "cannot open {} (is xdg-open installed?): {e}",
                    target.display()
                ),
            )
        })?;
    Ok(json!(true))
}
