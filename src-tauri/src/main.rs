//! Bitween's desktop app: a thin Tauri 2 shell over the `bitween` core.
//! It owns the window, the tray, notifications and the OS keyring; every
//! operation is the core's (`Api::call`, `desktop::*`), and every backend
//! event is forwarded to the frontend (`ui/`) as `bitween-event`.
//!
//! Flags: `--hidden` starts in the tray without showing the window;
//! `--demo` starts in demo mode (a private server and a demo contact on
//! this computer, nothing saved; see `bitween::desktop::demo`).
//!
//! Quit (tray), `Api.exit`, SIGTERM and SIGINT all stop the backend and the
//! demo, if one runs, before the app exits; a second signal exits at once.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod autostart;
mod commands;
mod forward;
mod instance;
mod keyring_store;
mod shell;
mod tray;

use tauri::{Manager, WindowEvent};

use shell::Shell;

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
    let shell = match Shell::load() {
        Ok(s) => s,
        Err(e) => {
            // Nothing is lost: the settings file is left as it is.
            eprintln!("bitween: {e}");
            std::process::exit(2);
        }
    };
    let listener = match instance::claim(&shell.data_dir) {
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
                shell::on_hidden_to_tray(window.app_handle());
            }
        })
        .setup(move |app| {
            let handle = app.handle().clone();
            tray::create(&handle)?;
            forward::spawn(handle.clone());
            instance::serve(handle.clone(), listener);
            spawn_signal_handler(handle.clone());
            // Demo folders of apps that were killed: their servers died
            // with them, their folders are removed here.
            tauri::async_runtime::spawn_blocking(|| {
                bitween::desktop::demo::remove_stale(&std::env::temp_dir())
            });
            let shell = handle.state::<Shell>();
            let show = demo_flag || !(hidden_flag || shell.starts_hidden());
            if show {
                if let Some(w) = handle.get_webview_window("main") {
                    w.show()?;
                    w.set_focus()?;
                }
            }
            tauri::async_runtime::spawn(async move {
                // (Not in demo mode: the saved account waits for its end.)
                handle.state::<Shell>().auto_login().await;
            });
            Ok(())
        })
        .build(tauri::generate_context!())
        .expect("the desktop app could not start (is a display available?)")
        .run(|app, event| {
            if let tauri::RunEvent::ExitRequested { api, code, .. } = event {
                // Closing the last window is not quitting; only Quit (code
                // set) is.
                if code.is_none() {
                    api.prevent_exit();
                } else {
                    let _ = app;
                }
            }
        });
}

/// SIGTERM and SIGINT (Ctrl-C) quit like the tray's Quit: the backend signs
/// out and the demo, if one runs, is stopped and removed. A second signal
/// while that runs exits at once.
fn spawn_signal_handler(app: tauri::AppHandle) {
    use tokio::signal::unix::{signal, SignalKind};
    tauri::async_runtime::spawn(async move {
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            tracing::warn!("cannot watch for SIGTERM");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: quitting"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: quitting"),
        }
        tauri::async_runtime::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::warn!("a second signal: exiting at once");
            std::process::exit(130);
        });
        Shell::quit(&app).await;
    });
}
