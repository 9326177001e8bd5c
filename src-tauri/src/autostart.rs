//! "Start at login": an XDG autostart entry
//! (`$XDG_CONFIG_HOME/autostart/bitween.desktop`) that starts the app
//! hidden in the tray; the core's `Autostart`.

use std::path::PathBuf;

/// The XDG autostart entry.
pub struct XdgAutostart;

impl bitween::desktop::Autostart for XdgAutostart {
    fn set(&self, enabled: bool) -> Result<(), String> {
        set(enabled)
    }
}

fn entry_path() -> PathBuf {
    bitween::paths::system_config_dir().join("autostart/bitween.desktop")
}

/// Creates or removes the entry.
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
