//! The password file used when no OS keyring is available (the user agreed
//! to it on the account screen): `$XDG_CONFIG_HOME/bitween/password`
//! (`%APPDATA%\bitween\password` on Windows), created readable and
//! writable by the user only.

use std::path::{Path, PathBuf};

/// Where the desktop app keeps an account's password: the system keyring
/// (implemented by the shell, which links it) or [`FileStore`].
pub trait SecretStore: Send + Sync {
    /// Whether a password can be kept now; the error says why not.
    fn probe(&self, jid: &str) -> Result<(), String>;
    fn get(&self, jid: &str) -> Result<Option<String>, String>;
    fn set(&self, jid: &str, password: &str) -> Result<(), String>;
    /// Removes it; nothing there is fine.
    fn forget(&self, jid: &str);
}

/// The password file (one account: the JID is not used).
#[derive(Debug, Clone)]
pub struct FileStore {
    pub path: PathBuf,
}

impl SecretStore for FileStore {
    fn probe(&self, _jid: &str) -> Result<(), String> {
        Ok(())
    }

    fn get(&self, _jid: &str) -> Result<Option<String>, String> {
        load(&self.path)
            .map_err(|e| format!("cannot read the password file {}: {e}", self.path.display()))
    }

    fn set(&self, _jid: &str, password: &str) -> Result<(), String> {
        store(&self.path, password).map_err(|e| {
            format!(
                "cannot write the password file {}: {e}",
                self.path.display()
            )
        })
    }

    fn forget(&self, _jid: &str) {
        let _ = forget(&self.path);
    }
}

/// `$XDG_CONFIG_HOME/bitween/password` (`%APPDATA%\bitween\password`).
pub fn default_path() -> PathBuf {
    crate::paths::config_dir().join("password")
}

/// Writes the password, readable by the user only (mode 0600, or a DACL
/// for the user alone on Windows), atomically: `fsutil::write_private`.
pub fn store(path: &Path, password: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::fsutil::write_private(path, password.as_bytes())
}

/// The stored password, if there is one: the file's first line without its
/// line ending (`\n` or `\r\n`), as every password file of Bitween is read
/// (bitweend's `--password-file` too), so `echo secret > file` works.
pub fn load(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(p) => Ok(Some(p.lines().next().unwrap_or_default().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the file; a missing file is fine.
pub fn forget(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_user_can_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/password");
        super::store(&path, "s3cret").unwrap();
        assert_eq!(super::load(&path).unwrap().as_deref(), Some("s3cret"));
        assert!(crate::private_file::is_private(&path).unwrap());
        std::fs::write(&path, "with newline \r\nsecond line").unwrap();
        assert_eq!(
            super::load(&path).unwrap().as_deref(),
            Some("with newline ")
        );
        super::forget(&path).unwrap();
        super::forget(&path).unwrap();
        assert_eq!(super::load(&path).unwrap(), None);
    }
}
