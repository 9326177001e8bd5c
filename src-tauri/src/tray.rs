//! The tray icon: offline / online / transferring, a one-line summary as
//! its tooltip, and a menu with Show/Hide, Pause all/Resume all and Quit.
//! (On Linux, clicks on the icon itself are not delivered; the menu is.)

use std::sync::Mutex;

use bitween::desktop::tray::{Look, TrayStatus};
use bitween::desktop::DesktopApp;
use bitween::events::Event;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};

const TRAY_ID: &str = "bitween";

static STATUS: Mutex<Option<TrayStatus>> = Mutex::new(None);

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
                tauri::async_runtime::spawn(async move { crate::quit(&app).await });
            }
            _ => {}
        })
        .build(app)?;
    Ok(())
}

fn toggle_window(app: &AppHandle) {
    match app.get_webview_window("main") {
        Some(w) if w.is_visible().unwrap_or(false) => {
            let _ = w.hide();
        }
        _ => crate::show_window(app),
    }
}

/// Pauses every running transfer, or resumes every paused one.
fn all(app: &AppHandle, pause: bool) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Ok(api) = app.state::<DesktopApp>().api().await {
            if pause {
                api.pause_all().await
            } else {
                api.resume_all().await
            }
        }
    });
}

/// Keeps icon and tooltip in step with the backend.
pub fn on_event(app: &AppHandle, event: &Event) {
    let Some((look, tip)) = STATUS
        .lock()
        .unwrap()
        .get_or_insert_default()
        .on_event(event)
    else {
        return;
    };
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        if let Ok(img) = icon(look) {
            let _ = tray.set_icon(Some(img));
        }
        let _ = tray.set_tooltip(Some(&tip));
    }
}
