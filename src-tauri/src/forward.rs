//! The window and tray side of the core's event feed: events go to the
//! page as `bitween-event` and to the tray; notifications to the desktop.

use bitween::desktop::{DesktopApp, Window};
use bitween::events::Event;
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_notification::NotificationExt;

/// Shows a desktop notification; without a notification service this is
/// only logged (the window shows its own messages anyway).
pub fn notify(app: &AppHandle, title: &str, body: &str) {
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::debug!("no desktop notification ({e}): {title}: {body}");
    }
}

struct Shell(AppHandle);

impl Window for Shell {
    fn event(&self, event: &Event) {
        let _ = self.0.emit("bitween-event", event);
        crate::tray::on_event(&self.0, event);
    }

    fn notify(&self, title: &str, body: &str) {
        notify(&self.0, title, body);
    }
}

/// Feeds the window until a client asks to quit, then quits.
pub fn spawn(app: AppHandle) {
    tauri::async_runtime::spawn(async move {
        app.state::<DesktopApp>().feed(&Shell(app.clone())).await;
        crate::quit(&app).await;
    });
}
