//! The desktop app end to end, in its real webview under Xvfb through
//! tauri-driver and WebKitWebDriver: an account's whole flow against a real
//! Prosody and a real `bitweend` as the contact (`e2e`), and the demo mode
//! with nothing but the app (`demo`). What both need to run the app is in
//! `harness`; the page checks they share with the web UI's test are in
//! `bitween_testkit::pages`. One test binary: `cargo test -p
//! bitween-desktop --test desktop`, or one part, `... --test desktop demo::`.

mod demo;
mod e2e;
mod harness;
