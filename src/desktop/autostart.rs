//! "Start at login", starting the app hidden in the tray: the desktop
//! app's [`Autostart`](super::Autostart), kept in the core (it needs no
//! GUI toolkit). Linux (and other XDG desktops): an XDG autostart entry,
//! `$XDG_CONFIG_HOME/autostart/bitween.desktop`. Windows: a `Bitween`
//! value in the user's Run key
//! (`HKCU\Software\Microsoft\Windows\CurrentVersion\Run`), which Windows
//! lists under Settings > Apps > Startup.

#[cfg(not(windows))]
use std::path::PathBuf;

/// Start at login the way this system does it.
pub struct SystemAutostart;

impl super::Autostart for SystemAutostart {
    fn set(&self, enabled: bool) -> Result<(), String> {
        set(enabled)
    }
}

#[cfg(not(windows))]
fn entry_path() -> PathBuf {
    crate::paths::system_config_dir().join("autostart/bitween.desktop")
}

/// Creates or removes the entry.
#[cfg(not(windows))]
fn set(enabled: bool) -> Result<(), String> {
    let path = entry_path();
    if !enabled {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("cannot remove {}: {e}", path.display()))
            }
            _ => Ok(()),
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the app's own executable: {e}"))?;
    let text = format!(
        "[Desktop Entry]\nType=Application\nName=Bitween\nComment=Share files with your XMPP contacts\nExec=\"{}\" --hidden\nIcon=bitween\nTerminal=false\nX-GNOME-Autostart-enabled=true\n",
        exe.display()
    );
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(path.parent().unwrap_or(&path))?;
        std::fs::write(&path, text)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Sets or removes the Run key's `Bitween` value.
#[cfg(windows)]
fn set(enabled: bool) -> Result<(), String> {
    let command = if enabled {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find the app's own executable: {e}"))?;
        Some(format!("\"{}\" --hidden", exe.display()))
    } else {
        None
    };
    crate::windows::run_at_login("Bitween", command.as_deref())
        .map_err(|e| format!("cannot change the Run key: {e}"))
}
