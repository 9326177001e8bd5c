//! Bitween's desktop app: a thin Tauri 2 shell over the `bitween` core. It
//! owns the window, the tray, notifications and the OS keyring;
//! every operation and every event is the core's (`DesktopApp`, `Api`).
//!
//! Flags: `--hidden` starts in the tray without showing the window;
//! `--demo` starts in demo mode (a private server and a demo contact on
//! this computer, nothing saved; see `bitween::desktop::demo`).
//!
//! Quit (tray), `Api.exit`, SIGTERM and SIGINT all stop the backend and the
//! demo, if one runs, before the app exits; a second signal exits at once.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod forward;
mod keyring_store;
mod tray;

use bitween::desktop::DesktopApp;
use tauri::{AppHandle, Manager, WindowEvent};

fn main() {
    // Before any thread exists: the catalog's memory behaves as in bitweend.
    bitween::memory::limit_malloc_arenas();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "bitween=info,bitween_desktop=info".into()),
        )
        .init();
    let hidden_flag = std::env::args().any(|a| a == "--hidden");
    let demo_flag = std::env::args().any(|a| a == "--demo");
    let shell = match DesktopApp::load(
        Box::new(keyring_store::Keyring),
        Box::new(bitween::desktop::SystemAutostart),
    ) {
        Ok(s) => s,
        Err(e) => {
            // Nothing is lost: the settings file is left as it is.
            fatal(&e.to_string());
            std::process::exit(2);
        }
    };
    let listener = match bitween::desktop::instance::claim(shell.data_dir()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bitween: {e}");
            return;
        }
    };
    if demo_flag {
        // The window starts it when it loads (as its "Try a demo" button
        // does), and shows how it goes.
        shell.request_demo();
    }
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .manage(shell)
        .invoke_handler(tauri::generate_handler![
            commands::api,
            commands::app_state,
            commands::login,
            commands::logout,
            commands::start_demo,
            commands::leave_demo,
            commands::get_settings,
            commands::save_settings,
            commands::pick_and_share,
            commands::share_paths,
            commands::open_path,
        ])
        .on_window_event(|window, event| {
            if let WindowEvent::CloseRequested { api, .. } = event {
                // Closing hides to the tray; Quit is in the tray menu.
                api.prevent_close();
                let _ = window.hide();
                if window.app_handle().state::<DesktopApp>().hidden_to_tray() {
                    forward::notify(
                        window.app_handle(),
                        "Bitween is still running",
                        "It keeps sharing from the tray. Use Quit in the tray menu to stop it.",
                    );
                }
            }
        })
        .setup(move |app| {
            // The window is made here rather than from the config, so that
            // failing to make it (no WebView2 on Windows, no display) is
            // said in words, not in a panic.
            let config = app.config().app.windows.first().cloned();
            let made = config
                .ok_or_else(|| "no window in tauri.conf.json".to_string())
                .and_then(|c| {
                    tauri::WebviewWindowBuilder::from_config(app.handle(), &c)
                        .and_then(|b| b.build())
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = made {
                fatal(&format!(
                    "Bitween could not open its window: {e}. {WINDOW_HINT}"
                ));
                std::process::exit(1);
            }
            let handle = app.handle().clone();
            tray::create(&handle)?;
            forward::spawn(handle.clone());
            let shown = handle.clone();
            tauri::async_runtime::spawn(bitween::desktop::instance::serve(listener, move || {
                show_window(&shown)
            }));
            let signalled = handle.clone();
            tauri::async_runtime::spawn(async move {
                bitween::desktop::quit_signal().await;
                quit(&signalled).await;
            });
            // Demo folders of apps that were killed: their servers died
            // with them, their folders are removed here.
            tauri::async_runtime::spawn_blocking(|| {
                bitween::desktop::demo::remove_stale(&std::env::temp_dir())
            });
            let shell = handle.state::<DesktopApp>();
            let show = demo_flag || !(hidden_flag || shell.starts_hidden());
            if show {
                if let Some(w) = handle.get_webview_window("main") {
                    w.show()?;
                    w.set_focus()?;
                }
            }
            tauri::async_runtime::spawn(async move {
                // (Not in demo mode: the saved account waits for its end.)
                handle.state::<DesktopApp>().auto_login().await;
            });
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            fatal(&format!("Bitween could not start: {e}. {WINDOW_HINT}"));
            std::process::exit(1);
        }
    };
    app.run(|_, event| {
        // Closing the last window is not quitting; only Quit (a code) is.
        if let tauri::RunEvent::ExitRequested {
            api, code: None, ..
        } = event
        {
            api.prevent_exit();
        }
    });
}

/// What the window needs, said when it cannot open.
#[cfg(windows)]
const WINDOW_HINT: &str =
    "The window needs the Microsoft Edge WebView2 Runtime (part of Windows 11 \
     and of an up-to-date Windows 10): install it from \
     https://go.microsoft.com/fwlink/p/?LinkId=2124703 and start Bitween again.";
#[cfg(not(windows))]
const WINDOW_HINT: &str = "Is a display available (DISPLAY or WAYLAND_DISPLAY)?";

/// Says why the app stops before its window exists: on standard error,
/// and on Windows also in a message box (a Windows app has no console).
fn fatal(message: &str) {
    eprintln!("bitween: {message}");
    #[cfg(windows)]
    rfd::MessageDialog::new()
        .set_level(rfd::MessageLevel::Error)
        .set_title("Bitween")
        .set_description(message)
        .set_buttons(rfd::MessageButtons::Ok)
        .show();
}

/// Brings the window up (a second instance was started).
pub fn show_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Quit (tray), `Api.exit` and signals: the backend signs out, the demo
/// stops, then the app exits.
pub async fn quit(app: &AppHandle) {
    app.state::<DesktopApp>().shut_down().await;
    app.exit(0);
}
