//! What the desktop app needs beyond the headless operations, kept in the
//! core so it builds and tests without the GUI toolchain: the app's
//! settings file, the password file used when no keyring is available, the
//! backend's life cycle (log in, apply settings, log out), the drop
//! handler (paths in, shares out), and the demo mode (a private server and
//! a demo contact on this computer).
//!
//! Not here: the window, the tray, notifications and the OS keyring; those
//! live in the Tauri shell (`src-tauri/`).

pub mod backend;
pub mod demo;
pub mod drop;
pub mod notices;
pub mod secret;
pub mod settings;

pub use backend::{Backend, LoginError};
pub use demo::{Demo, DemoError};
pub use drop::{share_paths, ShareOutcome};
pub use notices::{Notice, Notices};
pub use settings::{Account, DesktopSettings, SettingsError};
