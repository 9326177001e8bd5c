//! The programs people run, end to end against a real Prosody (and
//! ejabberd): `bitweend` driven through `bitweenc` and its API (`daemon`),
//! roster groups managed through it (`groups`),
//! its web UI in headless Chromium (`webui`), and the desktop app's core
//! without the GUI: the drop handler and login verdicts (`desktop`) and the
//! demo mode (`demo`). The desktop app in its real webview is tested by
//! `src-tauri/tests/desktop/`. One test binary: `cargo test --test apps`,
//! or one part, `cargo test --test apps webui::`.

mod daemon;
mod demo;
mod desktop;
mod groups;
mod restricted;
mod webui;
