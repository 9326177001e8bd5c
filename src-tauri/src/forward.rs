//! Forwards every backend event to the window (`bitween-event`), keeps the
//! tray in step, and turns events into desktop notifications (new shares of
//! a contact are batched for a few seconds).

use std::time::Duration;

use bitween::desktop::Notices;
use bitween::events::Event;
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_notification::NotificationExt;
use tokio::sync::broadcast::error::RecvError;

use crate::shell::Shell;
use crate::tray;

/// How long new shares of contacts are collected before one notification.
const BATCH: Duration = Duration::from_secs(3);

/// Shows a desktop notification; without a notification service this is
/// only logged (the window shows its own messages anyway).
pub fn notify(app: &AppHandle, title: &str, body: &str) {
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::debug!("no desktop notification ({e}): {title}: {body}");
    }
}

pub fn spawn(app: AppHandle) {
    let mut rx = app.state::<Shell>().backend.events().subscribe();
    let exit = app.state::<Shell>().exit.clone();
    tauri::async_runtime::spawn(async move {
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
                _ = exit.cancelled() => {
                    Shell::quit(&app).await;
                    break;
                }
                _ = flush => {
                    flush_at = None;
                    for n in notices.flush() {
                        notify(&app, &n.title, &n.body);
                    }
                }
                ev = rx.recv() => match ev {
                    Ok(event) => {
                        let _ = app.emit("bitween-event", &event);
                        tray::on_event(&app, &event);
                        if let Event::Connected { .. } = event {
                            notices.reset();
                        }
                        let catalog = match app.state::<Shell>().backend.api().await {
                            Some(api) => api.service().catalog.clone(),
                            None => continue,
                        };
                        if let Some(n) = notices.on_event(&event, &catalog) {
                            notify(&app, &n.title, &n.body);
                        }
                        if matches!(event, Event::ContactSharesChanged { .. }) && flush_at.is_none() {
                            flush_at = Some(tokio::time::Instant::now() + BATCH);
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        // The window reloads rather than miss a change.
                        tracing::debug!("the window missed {n} events; it reloads");
                        let _ = app.emit("bitween-event", &Event::Resync);
                    }
                    Err(RecvError::Closed) => break,
                },
            }
        }
    });
}
