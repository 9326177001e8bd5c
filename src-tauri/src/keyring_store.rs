//! The password in the OS keyring (Secret Service on Linux), under the
//! service name `bitween` and the account's JID.

const SERVICE: &str = "bitween";

fn entry(jid: &str) -> Result<keyring::Entry, String> {
    keyring::Entry::new(SERVICE, jid).map_err(|e| unavailable(&e))
}

fn unavailable(e: &keyring::Error) -> String {
    format!("no usable keyring (Secret Service) on this desktop: {e}")
}

/// Whether the keyring can store a password now; the error says why not.
pub fn probe(jid: &str) -> Result<(), String> {
    match entry(jid)?.get_password() {
        Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(unavailable(&e)),
    }
}

pub fn get(jid: &str) -> Result<Option<String>, String> {
    match entry(jid)?.get_password() {
        Ok(p) => Ok(Some(p)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(unavailable(&e)),
    }
}

pub fn set(jid: &str, password: &str) -> Result<(), String> {
    entry(jid)?
        .set_password(password)
        .map_err(|e| unavailable(&e))
}

/// Removes the entry; a missing entry or keyring is fine.
pub fn forget(jid: &str) {
    if let Ok(e) = entry(jid) {
        let _ = e.delete_credential();
    }
}
