//! The password in the OS keyring (Secret Service on Linux), under the
//! service name `bitween` and the account's JID: the core's `SecretStore`,
//! implemented here because it links the platform's keyring.

use bitween::desktop::SecretStore;

const SERVICE: &str = "bitween";

/// The system keyring.
pub struct Keyring;

fn entry(jid: &str) -> Result<keyring::Entry, String> {
    keyring::Entry::new(SERVICE, jid).map_err(|e| unavailable(&e))
}

fn unavailable(e: &keyring::Error) -> String {
    format!("no usable keyring (Secret Service) on this desktop: {e}")
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
