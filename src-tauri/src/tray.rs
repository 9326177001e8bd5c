//! The tray icon: offline / online / transferring, a one-line summary as
//! its tooltip, and a menu with Show/Hide, Pause all/Resume all and Quit.
//! (On Linux, clicks on the icon itself are not delivered; the menu is.)

use std::sync::Mutex;

use bitween::events::{Event, TransferKind, TransferState};
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};

use crate::shell::Shell;

const TRAY_ID: &str = "bitween";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    Offline,
    Online,
    Busy,
}

/// What the tray shows now.
struct TrayState {
    online: Option<String>,
    offline_reason: Option<String>,
    downloading: usize,
    uploading: usize,
    look: Option<Look>,
    tip: String,
}

static STATE: Mutex<TrayState> = Mutex::new(TrayState {
    online: None,
    offline_reason: None,
    downloading: 0,
    uploading: 0,
    look: None,
    tip: String::new(),
});

fn icon(look: Look) -> tauri::Result<Image<'static>> {
    Image::from_bytes(match look {
        Look::Offline => include_bytes!("../../icons/tray-offline.png").as_slice(),
        Look::Online => include_bytes!("../../icons/tray-online.png").as_slice(),
        Look::Busy => include_bytes!("../../icons/tray-busy.png").as_slice(),
    })
}

pub fn create(app: &AppHandle) -> tauri::Result<()> {
    let menu = Menu::with_items(
        app,
        &[
            &MenuItem::with_id(app, "show", "Show/Hide Bitween", true, None::<&str>)?,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, "pause_all", "Pause all", true, None::<&str>)?,
            &MenuItem::with_id(app, "resume_all", "Resume all", true, None::<&str>)?,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?,
        ],
    )?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(Look::Offline)?)
        .tooltip("Bitween — offline")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "show" => toggle_window(app),
            "pause_all" => all(app, true),
            "resume_all" => all(app, false),
            "quit" => {
                let app = app.clone();
                tauri::async_runtime::spawn(async move { Shell::quit(&app).await });
            }
            _ => {}
        })
        .build(app)?;
    Ok(())
}

fn toggle_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        if w.is_visible().unwrap_or(false) {
            let _ = w.hide();
        } else {
            let _ = w.show();
            let _ = w.unminimize();
            let _ = w.set_focus();
        }
    }
}

/// Pauses every running transfer, or resumes every paused one.
fn all(app: &AppHandle, pause: bool) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let Some(api) = app.state::<Shell>().backend.api().await else {
            return;
        };
        let engine = &api.service().engine;
        for t in engine.transfers() {
            let paused = t.state == TransferState::Paused;
            let result = if pause && !paused {
                engine.pause(&t.hash).await
            } else if !pause && paused {
                engine.resume(&t.hash).await
            } else {
                Ok(())
            };
            if let Err(e) = result {
                tracing::warn!("{}: {e}", t.name);
            }
        }
    });
}

/// Keeps icon and tooltip in step with the backend.
pub fn on_event(app: &AppHandle, event: &Event) {
    let mut s = STATE.lock().unwrap();
    match event {
        Event::Connected { jid } => {
            s.online = Some(jid.clone());
            s.offline_reason = None;
        }
        Event::Disconnected { reason, .. } => {
            s.online = None;
            s.offline_reason = Some(reason.clone());
        }
        Event::Transfers { transfers } => {
            s.downloading = transfers
                .iter()
                .filter(|t| {
                    t.kind == TransferKind::Download
                        && t.state != TransferState::Seeding
                        && t.state != TransferState::Paused
                })
                .count();
            s.uploading = transfers.iter().filter(|t| t.up_bytes_per_sec > 0).count();
        }
        _ => return,
    }
    let look = match (&s.online, s.downloading + s.uploading) {
        (None, _) => Look::Offline,
        (Some(_), 0) => Look::Online,
        _ => Look::Busy,
    };
    let tip = match &s.online {
        None => format!(
            "Bitween — offline{}",
            s.offline_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        Some(jid) => format!(
            "Bitween — online as {jid} · {} downloading · {} uploading",
            s.downloading, s.uploading
        ),
    };
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    if s.look != Some(look) {
        if let Ok(img) = icon(look) {
            let _ = tray.set_icon(Some(img));
        }
        s.look = Some(look);
    }
    if s.tip != tip {
        let _ = tray.set_tooltip(Some(&tip));
        s.tip = tip;
    }
}
