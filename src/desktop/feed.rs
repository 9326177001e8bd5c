//! What the window gets from the backend: every event (a `Resync` when it
//! fell behind), desktop notifications (a contact's new shares batched for
//! a few seconds; downloads finished or failed), until a client asks the
//! app to quit. The shell supplies the [`Window`]; this is the loop.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::{DesktopApp, Notices};
use crate::events::Event;

/// How long new shares of contacts are collected before one notification.
const BATCH: Duration = Duration::from_secs(3);

/// Where events and notifications go (the shell's window and tray).
pub trait Window: Send + Sync {
    /// An event for the page (and the tray).
    fn event(&self, event: &Event);
    /// A desktop notification.
    fn notify(&self, title: &str, body: &str);
}

impl DesktopApp {
    /// Feeds `window` until `Api.exit` is asked for (then returns: the
    /// shell quits) or the backend's events end.
    pub async fn feed(&self, window: &dyn Window) {
        let mut rx = self.events().subscribe();
        let mut notices = Notices::new();
        let mut flush_at: Option<tokio::time::Instant> = None;
        loop {
            let flush = async {
                match flush_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.exit().cancelled() => return,
                _ = flush => {
                    flush_at = None;
                    for n in notices.flush() {
                        window.notify(&n.title, &n.body);
                    }
                }
                ev = rx.recv() => match ev {
                    Ok(event) => {
                        window.event(&event);
                        if let Event::Connected { .. } = event {
                            notices.reset();
                        }
                        let Ok(api) = self.api().await else { continue };
                        if let Some(n) = notices.on_event(&event, &api.catalog_handle()) {
                            window.notify(&n.title, &n.body);
                        }
                        if matches!(event, Event::ContactSharesChanged { .. }) && flush_at.is_none() {
                            flush_at = Some(tokio::time::Instant::now() + BATCH);
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        // The window reloads rather than miss a change.
                        tracing::debug!("the window missed {n} events; it reloads");
                        window.event(&Event::Resync);
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

/// Waits for a request to stop from outside ([`crate::shutdown`]:
/// SIGTERM, SIGINT; Ctrl-C and the console's close, logoff and shutdown
/// events on Windows). A second one while the app shuts down exits at
/// once.
pub async fn quit_signal() {
    let mut signals = match crate::shutdown::Signals::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch for signals: {e}");
            return std::future::pending().await;
        }
    };
    let why = signals.recv().await;
    tracing::info!("{why}: quitting");
    tokio::spawn(async move {
        signals.recv().await;
        tracing::warn!("a second signal: exiting at once");
        std::process::exit(130);
    });
}

/// Hands `path` to the desktop's default application (a file opens, a
/// folder shows).
pub fn open_with_system(path: &std::path::Path) -> Result<(), String> {
    #[cfg(target_os = "windows")]
    let mut cmd = {
        let mut c = std::process::Command::new("explorer");
        c.arg(path);
        c
    };
    #[cfg(target_os = "macos")]
    let mut cmd = {
        let mut c = std::process::Command::new("open");
        c.arg(path);
        c
    };
    #[cfg(not(any(target_os = "windows", target_os = "macos")))]
    let mut cmd = {
        let mut c = std::process::Command::new("xdg-open");
        c.arg(path);
        c
    };
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|mut child| {
            std::thread::spawn(move || child.wait());
        })
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}
