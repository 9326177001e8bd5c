//! One app per user: the first instance listens on a Unix socket in the
//! data dir; a second one asks it to show its window and exits, so two
//! engines never fight over the same torrents and files.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use tauri::{AppHandle, Manager};
use tokio::io::AsyncReadExt;
use tokio::net::UnixListener;

/// `<data dir>/desktop.sock`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("desktop.sock")
}

/// Becomes the only instance, or returns `Err` after asking the running
/// one to show itself.
pub fn claim(data_dir: &Path) -> Result<std::os::unix::net::UnixListener, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let path = socket_path(data_dir);
    match std::os::unix::net::UnixListener::bind(&path) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if let Ok(mut other) = UnixStream::connect(&path) {
                let _ = other.write_all(b"show\n");
                return Err("Bitween is already running: its window was brought up".into());
            }
            // A socket left by an instance that died: take it over.
            let _ = std::fs::remove_file(&path);
            std::os::unix::net::UnixListener::bind(&path)
                .map_err(|e| format!("cannot listen on {}: {e}", path.display()))
        }
        Err(e) => Err(format!("cannot listen on {}: {e}", path.display())),
    }
}

/// Shows the window whenever a second instance knocks.
pub fn serve(app: AppHandle, listener: std::os::unix::net::UnixListener) {
    tauri::async_runtime::spawn(async move {
        let _ = listener.set_nonblocking(true);
        let Ok(listener) = UnixListener::from_std(listener) else {
            return;
        };
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 16];
            let _ = stream.read(&mut buf).await;
            if buf.starts_with(b"show") {
                if let Some(w) = app.get_webview_window("main") {
                    let _ = w.show();
                    let _ = w.unminimize();
                    let _ = w.set_focus();
                }
            }
        }
    });
}
