//! One app per user: the first instance listens on a local socket in its
//! data dir; a second one asks it to show its window and gives up, so two
//! engines never fight over the same torrents and files.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `<data dir>/desktop.sock`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("desktop.sock")
}

/// Becomes the only instance (the listener to [`serve`]), or returns why
/// not after asking the running one to show itself.
#[cfg(unix)]
pub fn claim(data_dir: &Path) -> Result<std::os::unix::net::UnixListener, String> {
    use std::os::unix::net::{UnixListener, UnixStream};
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let path = socket_path(data_dir);
    match UnixListener::bind(&path) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if let Ok(mut other) = UnixStream::connect(&path) {
                let _ = other.write_all(b"show\n");
                return Err("Bitween is already running: its window was brought up".into());
            }
            // A socket left by an instance that died: take it over.
            let _ = std::fs::remove_file(&path);
            UnixListener::bind(&path)
                .map_err(|e| format!("cannot listen on {}: {e}", path.display()))
        }
        Err(e) => Err(format!("cannot listen on {}: {e}", path.display())),
    }
}

/// Calls `show` whenever a second instance knocks.
#[cfg(unix)]
pub async fn serve(listener: std::os::unix::net::UnixListener, show: impl Fn()) {
    use tokio::io::AsyncReadExt;
    let _ = listener.set_nonblocking(true);
    let Ok(listener) = tokio::net::UnixListener::from_std(listener) else {
        return;
    };
    while let Ok((mut stream, _)) = listener.accept().await {
        let mut buf = [0u8; 16];
        let _ = stream.read(&mut buf).await;
        if buf.starts_with(b"show") {
            show();
        }
    }
}
