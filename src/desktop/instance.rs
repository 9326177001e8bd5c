//! One app per user: the first instance listens on a local socket in its
//! data dir; a second one asks it to show its window and gives up, so two
//! engines never fight over the same torrents and files.
//!
//! On Windows: a named mutex in the session's namespace
//! (`Local\bitween-<hash of the data dir>`) makes the first instance, and
//! a named pipe of the same name carries the second one's knock.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `<data dir>/desktop.sock`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("desktop.sock")
}

/// What the only instance holds: on Unix its listening socket.
#[cfg(unix)]
pub type Listener = std::os::unix::net::UnixListener;

/// What the only instance holds: on Windows its mutex, and the name of
/// the pipe to listen on.
#[cfg(windows)]
pub struct Listener {
    _mutex: std::os::windows::io::OwnedHandle,
    pipe: String,
}

/// Becomes the only instance (the listener to [`serve`]), or returns why
/// not after asking the running one to show itself.
#[cfg(unix)]
pub fn claim(data_dir: &Path) -> Result<Listener, String> {
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
pub async fn serve(listener: Listener, show: impl Fn()) {
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

/// The name of the mutex and the pipe for `data_dir`: `bitween-` and a
/// hash (FNV-1a, stable across builds) of the path, case-folded as
/// Windows compares paths.
pub fn instance_name(data_dir: &Path) -> String {
    let text = data_dir.to_string_lossy().to_lowercase();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("bitween-{hash:016x}")
}

/// Becomes the only instance (the listener to [`serve`]), or returns why
/// not after asking the running one to show itself.
#[cfg(windows)]
pub fn claim(data_dir: &Path) -> Result<Listener, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let name = instance_name(data_dir);
    let pipe = format!(r"\\.\pipe\{name}");
    match crate::windows::claim_named_mutex(&format!(r"Local\{name}")) {
        Ok(Some(mutex)) => Ok(Listener {
            _mutex: mutex,
            pipe,
        }),
        Ok(None) => {
            // A pipe is opened for writing like a file.
            if let Ok(mut other) = std::fs::OpenOptions::new().write(true).open(&pipe) {
                let _ = other.write_all(b"show\n");
            }
            Err("Bitween is already running: its window was brought up".into())
        }
        Err(e) => Err(format!("cannot create the mutex {name}: {e}")),
    }
}

/// Calls `show` whenever a second instance knocks.
#[cfg(windows)]
pub async fn serve(listener: Listener, show: impl Fn()) {
    use tokio::io::AsyncReadExt;
    use tokio::net::windows::named_pipe::ServerOptions;
    let mut options = ServerOptions::new();
    options
        .first_pipe_instance(true)
        .reject_remote_clients(true);
    let Ok(mut server) = options.create(&listener.pipe) else {
        tracing::warn!("cannot create the pipe {}", listener.pipe);
        return;
    };
    options.first_pipe_instance(false);
    loop {
        if server.connect().await.is_err() {
            return;
        }
        let mut connected = server;
        server = match options.create(&listener.pipe) {
            Ok(s) => s,
            Err(_) => return,
        };
        let mut buf = [0u8; 16];
        let _ = connected.read(&mut buf).await;
        if buf.starts_with(b"show") {
            show();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_instance_knocks_and_gives_up() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let first = claim(dir.path()).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        rt.spawn(serve(first, move || {
            let _ = tx.send(());
        }));
        // Give the server a moment to listen (the pipe is created in serve).
        std::thread::sleep(std::time::Duration::from_millis(200));
        let second = claim(dir.path());
        assert!(second.is_err());
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
                .await
                .expect("the first instance was asked to show itself")
        });
        // Another data dir is another instance.
        let other = tempfile::tempdir().unwrap();
        assert!(claim(other.path()).is_ok());
        assert_ne!(instance_name(dir.path()), instance_name(other.path()));
    }
}
