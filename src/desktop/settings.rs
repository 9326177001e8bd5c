//! The desktop app's settings (`$XDG_CONFIG_HOME/bitween/desktop.json`):
//! the account (never its password), the download folder, the BitTorrent
//! port, which addresses to publish, rate limits and window behaviour; and
//! how they become the backend's [`ServiceConfig`].
//!
//! The file is written atomically; a file that cannot be read is reported
//! (and kept) rather than silently replaced by defaults.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::addresses::AddressConfig;
use crate::service::ServiceConfig;
use crate::torrent::EngineConfig;
use crate::xmpp::XmppConfig;

/// The XMPP account the app logs in with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub jid: String,
    /// `host:port`, when the JID's domain does not lead to the server.
    #[serde(default)]
    pub server: Option<String>,
}

/// Where the account's password is kept (`"keyring"`, `"file"` in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretStoreKind {
    /// The system keyring (Secret Service on Linux, Credential Manager on
    /// Windows, Keychain on macOS).
    Keyring,
    /// A file only the user can read (where there is no keyring).
    File,
}

/// The settings the settings screen edits (the rest is kept as it is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditableSettings {
    pub download_dir: PathBuf,
    pub bt_port: u16,
    pub ipv4: bool,
    pub ipv6: bool,
    pub lan: bool,
    pub upnp: bool,
    #[serde(default = "yes")]
    pub relay: bool,
    pub start_at_login: bool,
    pub start_hidden: bool,
    pub upload_limit_kib: Option<u32>,
    pub download_limit_kib: Option<u32>,
    /// A PEM bundle of certificate authorities trusted beside the system's.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

impl From<&DesktopSettings> for EditableSettings {
    fn from(s: &DesktopSettings) -> Self {
        EditableSettings {
            download_dir: s.download_dir.clone(),
            bt_port: s.bt_port,
            ipv4: s.ipv4,
            ipv6: s.ipv6,
            lan: s.lan,
            upnp: s.upnp,
            relay: s.relay,
            start_at_login: s.start_at_login,
            start_hidden: s.start_hidden,
            upload_limit_kib: s.upload_limit_kib,
            download_limit_kib: s.download_limit_kib,
            tls_ca: s.tls_ca.clone(),
        }
    }
}

impl EditableSettings {
    /// `base` with these values in it.
    pub fn applied_to(self, base: &DesktopSettings) -> DesktopSettings {
        DesktopSettings {
            download_dir: self.download_dir,
            bt_port: self.bt_port,
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            lan: self.lan,
            upnp: self.upnp,
            relay: self.relay,
            start_at_login: self.start_at_login,
            start_hidden: self.start_hidden,
            upload_limit_kib: self.upload_limit_kib,
            download_limit_kib: self.download_limit_kib,
            tls_ca: self.tls_ca.filter(|p| !p.as_os_str().is_empty()),
            ..base.clone()
        }
    }
}

/// Everything the user can set, with the defaults of a fresh install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DesktopSettings {
    pub account: Option<Account>,
    /// Where the password is kept.
    pub secret_store: Option<SecretStoreKind>,
    pub download_dir: PathBuf,
    /// 0 picks a free port on the first start and keeps it.
    pub bt_port: u16,
    /// Look up and publish our public IPv4 address.
    pub ipv4: bool,
    /// Publish our global IPv6 addresses.
    pub ipv6: bool,
    /// Publish our LAN addresses (contacts on the same network).
    pub lan: bool,
    /// Ask the router for a port mapping (UPnP and NAT-PMP).
    pub upnp: bool,
    /// Relay through the XMPP servers when no direct or punched path works
    /// (the server's operator could read what crosses it).
    pub relay: bool,
    pub start_at_login: bool,
    pub start_hidden: bool,
    /// KiB/s; `None` is unlimited.
    pub upload_limit_kib: Option<u32>,
    pub download_limit_kib: Option<u32>,
    /// The "still running in the tray" hint was shown once.
    pub close_hint_shown: bool,
    /// Advanced (not in the settings screen): addresses always published,
    /// and the what-is-my-IP services to ask instead of the defaults.
    pub addresses: Vec<IpAddr>,
    pub ip_services: Vec<String>,
    /// Advanced: a PEM bundle of certificate authorities trusted beside the
    /// system's, for a self-hosted XMPP server with a CA of its own.
    pub tls_ca: Option<PathBuf>,
}

impl Default for DesktopSettings {
    fn default() -> Self {
        DesktopSettings {
            account: None,
            secret_store: None,
            download_dir: crate::paths::download_dir(),
            bt_port: 0,
            ipv4: true,
            ipv6: true,
            lan: true,
            upnp: true,
            relay: true,
            start_at_login: false,
            start_hidden: false,
            upload_limit_kib: None,
            download_limit_kib: None,
            close_hint_shown: false,
            addresses: Vec::new(),
            ip_services: Vec::new(),
            tls_ca: None,
        }
    }
}

/// A settings file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the settings file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("the settings file {0} is not valid: {1} (fix or delete it)")]
    Invalid(PathBuf, serde_json::Error),
    #[error("cannot write the settings file {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("{0}")]
    Value(String),
}

/// A limit in KiB/s as the engine takes it: bytes per second, `None`
/// for none (0 also means none).
fn kib(limit: Option<u32>) -> Option<NonZeroU32> {
    limit.and_then(|k| NonZeroU32::new(k.saturating_mul(1024)))
}

pub use crate::xmpp::is_loopback_server;

impl DesktopSettings {
    /// `$XDG_CONFIG_HOME/bitween/desktop.json`.
    pub fn default_path() -> PathBuf {
        crate::paths::config_dir().join("desktop.json")
    }

    /// Reads the file; a missing file gives the defaults.
    pub fn load(path: &Path) -> Result<DesktopSettings, SettingsError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| SettingsError::Invalid(path.to_path_buf(), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DesktopSettings::default()),
            Err(e) => Err(SettingsError::Read(path.to_path_buf(), e)),
        }
    }

    /// Writes the file atomically (a crash leaves the old or the new one);
    /// the caller serializes saves (the desktop shell holds its settings
    /// lock while it saves).
    pub fn save(&self, path: &Path) -> Result<(), SettingsError> {
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            crate::fsutil::write_atomic(path, &serde_json::to_vec_pretty(self)?)
        };
        write().map_err(|e| SettingsError::Write(path.to_path_buf(), e))
    }

    /// Refuses values the backend cannot use, naming the setting.
    pub fn validate(&self) -> Result<(), SettingsError> {
        crate::paths::check_download_dir(&self.download_dir).map_err(SettingsError::Value)?;
        if self.bt_port != 0 && self.bt_port < 1024 {
            return Err(SettingsError::Value(format!(
                "BitTorrent port {} is reserved for system services: choose 1024-65535, or 0 for any free port",
                self.bt_port
            )));
        }
        if let Some(ca) = &self.tls_ca {
            crate::xmpp::tls::read_ca_bundle(ca).map_err(|e| {
                SettingsError::Value(format!(
                    "{e}: choose a PEM file of your server's certificate authority, or leave it empty"
                ))
            })?;
        }
        if self.upload_limit_kib == Some(0) || self.download_limit_kib == Some(0) {
            return Err(SettingsError::Value(
                "a rate limit of 0 KiB/s would stop all transfers: leave it empty for no limit"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The backend configuration for logging in to `account` with
    /// `password`; state goes to `data_dir`.
    pub fn service_config(
        &self,
        account: &Account,
        password: String,
        data_dir: PathBuf,
    ) -> ServiceConfig {
        let defaults = AddressConfig::default();
        ServiceConfig {
            xmpp: XmppConfig {
                jid: account.jid.trim().to_string(),
                password,
                resource: None,
                insecure_plaintext: account.server.as_deref().is_some_and(is_loopback_server),
                server: account.server.clone().filter(|s| !s.trim().is_empty()),
                tls_ca: self.tls_ca.clone(),
            },
            engine: EngineConfig {
                data_dir,
                download_dir: self.download_dir.clone(),
                listen_port: self.bt_port,
                upload_limit: self.upload_limit(),
                download_limit: self.download_limit(),
                allow_loopback_peers: true,
                relay: self.relay,
                idle_unload: crate::torrent::IDLE_UNLOAD,
            },
            addresses: AddressConfig {
                public_ipv4: self.ipv4,
                ipv6: self.ipv6,
                lan: self.lan,
                natpmp: self.upnp,
                upnp: self.upnp,
                static_addresses: self.addresses.clone(),
                services: if self.ip_services.is_empty() {
                    defaults.services.clone()
                } else {
                    self.ip_services.clone()
                },
                ..defaults
            },
        }
    }

    /// The upload limit in bytes per second, as the engine takes it.
    pub fn upload_limit(&self) -> Option<NonZeroU32> {
        kib(self.upload_limit_kib)
    }

    /// The download limit in bytes per second, as the engine takes it.
    pub fn download_limit(&self) -> Option<NonZeroU32> {
        kib(self.download_limit_kib)
    }

    /// Whether moving from `self` to `new` needs the backend restarted
    /// (everything but window behaviour and the speed limits does).
    pub fn needs_restart(&self, new: &DesktopSettings) -> bool {
        let strip = |s: &DesktopSettings| DesktopSettings {
            start_at_login: false,
            start_hidden: false,
            close_hint_shown: false,
            upload_limit_kib: None,
            download_limit_kib: None,
            ..s.clone()
        };
        strip(self) != strip(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers() {
        assert!(is_loopback_server("127.0.0.1:5222"));
        assert!(is_loopback_server("[::1]:5222"));
        assert!(is_loopback_server("localhost:5222"));
        assert!(!is_loopback_server("xmpp.example.org:5222"));
        assert!(!is_loopback_server("192.0.2.1:5222"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desktop.json");
        std::fs::write(&path, r#"{"bt_prot": 7000}"#).unwrap();
        let e = DesktopSettings::load(&path).unwrap_err().to_string();
        assert!(e.contains("bt_prot"), "{e}");
        let s = DesktopSettings {
            bt_port: 80,
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("1024"));
        for bad in ["relative", "/", "/etc"] {
            let s = DesktopSettings {
                download_dir: bad.into(),
                ..Default::default()
            };
            assert!(s.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trip_and_restart_rule() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/desktop.json");
        let s = DesktopSettings {
            account: Some(Account {
                jid: "alice@example.org".into(),
                server: None,
            }),
            upload_limit_kib: Some(100),
            ..Default::default()
        };
        s.save(&path).unwrap();
        assert_eq!(DesktopSettings::load(&path).unwrap(), s);
        let hidden = DesktopSettings {
            start_hidden: true,
            upload_limit_kib: Some(5),
            ..s.clone()
        };
        assert!(!s.needs_restart(&hidden));
        let moved = DesktopSettings {
            bt_port: 7000,
            ..s.clone()
        };
        assert!(s.needs_restart(&moved));
        let c = s.service_config(s.account.as_ref().unwrap(), "pw".into(), "/d".into());
        assert_eq!(c.engine.upload_limit.unwrap().get(), 100 * 1024);
        assert!(!c.xmpp.insecure_plaintext);
    }

    #[test]
    fn a_private_ca_reaches_the_login_and_changing_it_logs_in_again() {
        let s: DesktopSettings =
            serde_json::from_str(r#"{"tls_ca": "/etc/ssl/my-server-ca.pem", "upnp": false}"#)
                .unwrap();
        let account = Account {
            jid: "alice@example.org".into(),
            server: None,
        };
        let c = s.service_config(&account, "pw".into(), "/d".into());
        assert_eq!(
            c.xmpp.tls_ca.as_deref(),
            Some(Path::new("/etc/ssl/my-server-ca.pem"))
        );
        assert!(!c.addresses.upnp && !c.addresses.natpmp);
        // A refused certificate is not retried until the settings change:
        // a new CA restarts the backend, which logs in again.
        let other = DesktopSettings {
            tls_ca: Some("/etc/ssl/other.pem".into()),
            ..s.clone()
        };
        assert!(s.needs_restart(&other));
        assert_eq!(DesktopSettings::default().tls_ca, None);
    }

    #[test]
    fn the_settings_screen_sets_the_private_ca_and_a_file_that_is_none_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = DesktopSettings {
            download_dir: dir.path().join("downloads"),
            ..DesktopSettings::default()
        };
        let not_pem = dir.path().join("notes.txt");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let mut edited = EditableSettings::from(&base);
        edited.tls_ca = Some(not_pem.clone());
        let new = edited.clone().applied_to(&base);
        assert_eq!(new.tls_ca.as_deref(), Some(not_pem.as_path()));
        let e = new.validate().unwrap_err().to_string();
        assert!(
            e.contains("notes.txt") && e.contains("PEM"),
            "the error names the file and what it should be: {e}"
        );
        edited.tls_ca = Some(dir.path().join("missing.pem"));
        let e = edited.clone().applied_to(&base).validate().unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        // Emptied in the form: back to the system's authorities only.
        edited.tls_ca = Some(PathBuf::new());
        assert_eq!(edited.applied_to(&new).tls_ca, None);
        // An old window's form without the field keeps no CA.
        let old: EditableSettings = serde_json::from_value(serde_json::json!({
            "download_dir": "/d", "bt_port": 0, "ipv4": true, "ipv6": true, "lan": true,
            "upnp": true, "start_at_login": false, "start_hidden": false,
            "upload_limit_kib": null, "download_limit_kib": null
        }))
        .unwrap();
        assert_eq!(old.tls_ca, None);
    }
}
