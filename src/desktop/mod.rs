//! What the desktop app needs beyond the headless operations, kept in the
//! core so it builds and tests without the GUI toolchain: the app itself
//! ([`DesktopApp`]: account, settings, demo mode, what the window shows),
//! the settings file, the password file used when no keyring is available,
//! the backend's life cycle, and the demo mode (a private server and a
//! demo contact on this computer). (Dropped paths are shared by the API:
//! `Api::share_paths`.)
//!
//! Not here: the window, the tray, notifications and the OS keyring; those
//! live in the Tauri shell (`src-tauri/`).

pub mod app;
pub mod autostart;
pub mod backend;
pub mod demo;
pub mod feed;
pub mod instance;
pub mod notices;
pub mod secret;
pub mod settings;
pub mod tray;

pub use crate::api::ShareOutcome;
pub use app::{AccountView, AppState, Autostart, DemoInfo, DesktopApp, LoginRequest, DEMO_REFUSAL};
pub use autostart::SystemAutostart;
pub use backend::{Backend, LoginError};
pub use demo::{Demo, DemoError};
pub use feed::{open_with_system, quit_signal, Window};
pub use notices::{Notice, Notices};
pub use secret::{FileStore, SecretStore};
pub use settings::{Account, DesktopSettings, EditableSettings, SecretStoreKind, SettingsError};
