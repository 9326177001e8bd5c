//! The platform's default folders for Bitween (XDG on Linux): where state,
//! settings and downloads go unless the user says otherwise.

use std::path::PathBuf;

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(fallback))
}

/// `$XDG_DATA_HOME/bitween` (`~/.local/share/bitween`).
pub fn data_dir() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share").join("bitween")
}

/// `$XDG_CONFIG_HOME/bitween` (`~/.config/bitween`).
pub fn config_dir() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config").join("bitween")
}

/// `$XDG_CONFIG_HOME/bitween/bitweend.json` (`~/.config/...`).
pub fn config_file() -> PathBuf {
    config_dir().join("bitweend.json")
}

/// `$XDG_DOWNLOAD_DIR/Bitween` (`~/Downloads/Bitween`).
pub fn download_dir() -> PathBuf {
    xdg("XDG_DOWNLOAD_DIR", "Downloads").join("Bitween")
}
