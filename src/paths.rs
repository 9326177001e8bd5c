//! The platform's default folders for Bitween (XDG on Linux): where state,
//! settings and downloads go unless the user says otherwise, and which
//! folders may never be the download folder.

use std::path::{Component, Path, PathBuf};

/// The user's home folder (empty if there is none).
pub fn home() -> PathBuf {
    dirs::home_dir().unwrap_or_default()
}

/// Where Bitween keeps its state: `$XDG_DATA_HOME/bitween`
/// (`~/.local/share/bitween`; `%LOCALAPPDATA%\bitween` on Windows).
pub fn data_dir() -> PathBuf {
    dirs::data_local_dir()
        .unwrap_or_else(|| home().join(".local/share"))
        .join("bitween")
}

/// Where Bitween's settings are: `$XDG_CONFIG_HOME/bitween`
/// (`~/.config/bitween`; `%APPDATA%\bitween` on Windows).
pub fn config_dir() -> PathBuf {
    system_config_dir().join("bitween")
}

/// The system's settings folder (`$XDG_CONFIG_HOME`, `%APPDATA%`).
pub fn system_config_dir() -> PathBuf {
    dirs::config_dir().unwrap_or_else(|| home().join(".config"))
}

/// `bitweend`'s settings file, `bitweend.json` in [`config_dir`].
pub fn config_file() -> PathBuf {
    config_dir().join("bitweend.json")
}

/// The Downloads folder (`XDG_DOWNLOAD_DIR` of `user-dirs.dirs`, else
/// `~/Downloads`) + `Bitween`.
pub fn download_dir() -> PathBuf {
    dirs::download_dir()
        .unwrap_or_else(|| home().join("Downloads"))
        .join("Bitween")
}

/// Folders of the system that downloads must never go into (nor below).
const SYSTEM_FOLDERS: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
    "/sbin", "/sys", "/usr", "/var", "/snap",
];

/// Whether `d` is (or is inside) a folder of the operating system.
fn is_system_folder(d: &Path) -> bool {
    if SYSTEM_FOLDERS.iter().any(|s| d.starts_with(s)) {
        return true;
    }
    // C:\Windows, C:\Program Files, ...: the component after the drive's root.
    cfg!(windows)
        && d.components().nth(2).is_some_and(|c| {
            let c = c.as_os_str().to_string_lossy();
            [
                "windows",
                "program files",
                "program files (x86)",
                "programdata",
            ]
            .iter()
            .any(|s| c.eq_ignore_ascii_case(s))
        })
}

/// `path` with `.` and `..` resolved lexically (no file system access).
fn normalized(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Refuses a download folder that would mix contacts' files with the
/// system's or the user's own top level: the root, the home folder itself
/// and system folders (and anything inside those). The message says why
/// and what to choose instead.
pub fn check_download_dir(dir: &Path) -> Result<(), String> {
    if !dir.is_absolute() {
        return Err(format!(
            "the download folder {} is not an absolute path",
            dir.display()
        ));
    }
    let mut candidates = vec![normalized(dir)];
    if let Ok(real) = std::fs::canonicalize(dir) {
        candidates.push(real);
    }
    let home = dirs::home_dir();
    for d in &candidates {
        let why = if d.parent().is_none() {
            Some("is the root of the file system")
        } else if home.as_deref().is_some_and(|h| normalized(h) == *d) {
            Some("is your home folder")
        } else if is_system_folder(d) {
            Some("is a system folder")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(format!(
                "the download folder {} {why}: downloads would land among files that are not Bitween's; choose a folder of its own, such as {}",
                dir.display(),
                download_dir().display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_home_and_system_folders_are_refused() {
        for bad in ["/", "/etc", "/usr/local/share", "/var/tmp/x", "/tmp/../etc"] {
            assert!(check_download_dir(Path::new(bad)).is_err(), "{bad}");
        }
        if let Some(home) = std::env::var_os("HOME") {
            let home = PathBuf::from(home);
            if home.parent().is_some() && !SYSTEM_FOLDERS.iter().any(|s| home.starts_with(s)) {
                let e = check_download_dir(&home).unwrap_err();
                assert!(e.contains("home folder"), "{e}");
                assert!(check_download_dir(&home.join("Downloads/Bitween")).is_ok());
            }
        }
        assert!(check_download_dir(Path::new("relative")).is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(check_download_dir(dir.path()).is_ok());
    }
}
