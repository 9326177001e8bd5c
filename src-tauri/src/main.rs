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
            eprintln!("bitween: {e}");
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
    tauri::Builder::default()
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
        .build(tauri::generate_context!())
        .expect("the desktop app could not start (is a display available?)")
        .run(|_, event| {
            // Closing the last window is not quitting; only Quit (a code) is.
            if let tauri::RunEvent::ExitRequested {
                api, code: None, ..
            } = event
            {
                api.prevent_exit();
            }
        });
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
