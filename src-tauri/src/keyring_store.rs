//! The password in the OS keyring (Secret Service on Linux, Credential
//! Manager on Windows, the Keychain on macOS), under the service name
//! `bitween` and the account's JID: the core's `SecretStore`, implemented
//! here because it links the platform's keyring. Where none is usable the
//! app offers the password file (`bitween::desktop::secret`) instead.

use bitween::desktop::SecretStore;

const SERVICE: &str = "bitween";

/// This system's keyring, by the name its users know.
const KEYRING: &str = if cfg!(windows) {
    "Windows Credential Manager"
} else if cfg!(target_os = "macos") {
    "Keychain"
} else {
    "Secret Service"
};

/// The system keyring.
pub struct Keyring;

fn entry(jid: &str) -> Result<keyring::Entry, String> {
    keyring::Entry::new(SERVICE, jid).map_err(|e| unavailable(&e))
}

fn unavailable(e: &keyring::Error) -> String {
    format!("no usable keyring ({KEYRING}) on this desktop: {e}")
}

impl SecretStore for Keyring {
    fn probe(&self, jid: &str) -> Result<(), String> {
        match entry(jid)?.get_password() {
            Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(unavailable(&e)),
        }
    }

    fn get(&self, jid: &str) -> Result<Option<String>, String> {
        match entry(jid)?.get_password() {
            Ok(p) => Ok(Some(p)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(unavailable(&e)),
        }
    }

    fn set(&self, jid: &str, password: &str) -> Result<(), String> {
        entry(jid)?
            .set_password(password)
            .map_err(|e| unavailable(&e))
    }

    fn forget(&self, jid: &str) {
        if let Ok(e) = entry(jid) {
            let _ = e.delete_credential();
        }
    }
}
