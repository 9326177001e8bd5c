//! The commands the frontend invokes, each a one-line delegation to the
//! core: the JSON-RPC operations through `Api`, the app's own through
//! `DesktopApp`. Errors reach the frontend as `{code, kind, message}`.

use std::path::PathBuf;

use bitween::api::{ApiError, ErrorKind};
use bitween::desktop::{AppState, DesktopApp, EditableSettings, LoginRequest, ShareOutcome};
use serde_json::Value;
use tauri::{AppHandle, State};
use tauri_plugin_dialog::DialogExt;

type Result<T> = std::result::Result<T, ApiError>;
type App<'a> = State<'a, DesktopApp>;

/// One JSON-RPC method of the core (the same list `bitweend` serves).
#[tauri::command]
pub async fn api(app: App<'_>, method: String, params: Option<Value>) -> Result<Value> {
    app.api()
        .await?
        .call(&method, params.unwrap_or(Value::Null))
        .await
}

/// What the frontend needs to choose its screen.
#[tauri::command]
pub async fn app_state(app: App<'_>) -> Result<AppState> {
    Ok(app.state().await)
}

/// "Try a demo" (and `--demo`, through the window).
#[tauri::command]
pub async fn start_demo(app: App<'_>) -> Result<bool> {
    app.start_demo().await.map(|()| true)
}

/// "Leave demo": back to the saved account, if there is one.
#[tauri::command]
pub async fn leave_demo(app: App<'_>) -> Result<bool> {
    app.leave_demo().await;
    Ok(true)
}

/// Logs in with a new account; saves it only once the server accepted it.
#[tauri::command]
pub async fn login(
    app: App<'_>,
    jid: String,
    password: String,
    server: Option<String>,
    download_dir: Option<String>,
    use_file: Option<bool>,
    tls_ca: Option<String>,
) -> Result<bool> {
    let req = LoginRequest {
        jid,
        password,
        server,
        download_dir,
        use_file,
        tls_ca,
    };
    app.login(req).await.map(|()| true)
}

/// Logs out and forgets the account and its password.
#[tauri::command]
pub async fn logout(app: App<'_>) -> Result<bool> {
    app.logout().await.map(|()| true)
}

/// The settings the settings screen shows.
#[tauri::command]
pub async fn get_settings(app: App<'_>) -> Result<EditableSettings> {
    Ok(app.editable_settings())
}

/// Validates, saves and applies the settings.
#[tauri::command]
pub async fn save_settings(app: App<'_>, settings: EditableSettings) -> Result<EditableSettings> {
    app.save_settings(settings).await
}

/// The drop handler's command: shares each path, for the groups and
/// contacts `to` names (none: everyone), reporting each outcome.
#[tauri::command]
pub async fn share_paths(
    app: App<'_>,
    paths: Vec<String>,
    to: Option<Vec<String>>,
) -> Result<Vec<ShareOutcome>> {
    let paths: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
    let to = to.unwrap_or_default();
    app.api().await?.share_paths_for(&paths, &to).await
}

/// Opens the native picker for files (or folders) and shares the choice,
/// for the groups and contacts `to` names (none: everyone).
#[tauri::command]
pub async fn pick_and_share(
    handle: AppHandle,
    app: App<'_>,
    folder: bool,
    to: Option<Vec<String>>,
) -> Result<Vec<ShareOutcome>> {
    let api = app.api().await?;
    let to = to.unwrap_or_default();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let dialog = handle.dialog().file().set_title(if folder {
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
    api.share_paths_for(&paths, &to).await
}

/// Opens a transfer's file or folder (or, `folder`, the folder holding it).
#[tauri::command]
pub async fn open_path(app: App<'_>, hash: String, folder: bool) -> Result<bool> {
    let hash = hash.parse().map_err(|e| ApiError::params(format!("{e}")))?;
    let target = app.api().await?.path_to_open(&hash, folder)?;
    bitween::desktop::open_with_system(&target).map_err(|e| ApiError::new(ErrorKind::Failed, e))?;
    Ok(true)
}
