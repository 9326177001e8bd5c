//! The XMPP side: log in, keep the roster and presence, publish our share
//! list to PEP and receive our contacts' lists into the catalog.
//!
//! [`start`] spawns one task that owns the connection; everything else talks
//! to it through the returned [`XmppHandle`] and listens to the
//! [`EventBus`](crate::events::EventBus).

mod connect;
mod disco;
mod limits;
mod session;

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_xmpp::connect::{DnsConfig, StartTlsServerConnector, TcpServerConnector};
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::stanzastream::StanzaStream;
use tokio_xmpp::xmlstream::Timeouts;

use crate::events::EventBus;
use crate::shares::{CatalogWriter, ResourceShares};

pub use connect::{FIRST_RETRY, MAX_RETRY};
pub use disco::CAPS_NODE;

/// How to log in.
#[derive(Debug, Clone)]
pub struct XmppConfig {
    /// The account, `user@domain` (a resource part is ignored: see
    /// `resource`).
    pub jid: String,
    pub password: String,
    /// The resource to ask the server for; `None` lets the server choose.
    pub resource: Option<String>,
    /// `host:port` of the server; `None` looks up the domain's SRV records
    /// (`_xmpp-client._tcp`), falling back to the domain on port 5222.
    pub server: Option<String>,
    /// Log in without TLS. Only for a local test server on loopback: the
    /// password and everything else travel in the clear.
    pub insecure_plaintext: bool,
}

/// Why a configuration cannot be used; the message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0:?} is not a valid JID: {1} (expected user@domain)")]
    Jid(String, String),
    #[error("the JID {0:?} has no user part (expected user@domain)")]
    NoLocalPart(String),
    #[error("server {0:?} is not host:port (for example xmpp.example.org:5222)")]
    Server(String),
    #[error("resource {0:?} is not a valid XMPP resource: {1}")]
    Resource(String, String),
}

/// Whether we are logged in, as last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ConnectionState {
    Connecting,
    Online { jid: String },
    Offline { reason: String, retrying: bool },
}

/// A roster entry: a contact and our subscription state with them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    pub jid: String,
    pub name: Option<String>,
    /// `none`, `to` (we see their presence), `from` (they see ours), `both`.
    pub subscription: String,
    /// We asked to see their presence and wait for their answer.
    pub pending_out: bool,
    /// They asked to see ours and wait for our answer.
    pub pending_in: bool,
}

pub(crate) enum Command {
    SetLocal(ResourceShares),
    AddContact(BareJid),
    AcceptContact(BareJid),
    DeclineContact(BareJid),
    Roster(oneshot::Sender<Vec<Contact>>),
    Shutdown(oneshot::Sender<()>),
}

/// Talks to the session task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct XmppHandle {
    cmd: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<ConnectionState>,
    jid: BareJid,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::SetLocal(_) => "SetLocal",
            Command::AddContact(_) => "AddContact",
            Command::AcceptContact(_) => "AcceptContact",
            Command::DeclineContact(_) => "DeclineContact",
            Command::Roster(_) => "Roster",
            Command::Shutdown(_) => "Shutdown",
        })
    }
}

/// The session task is gone (it was shut down).
#[derive(Debug, thiserror::Error)]
#[error("the XMPP session has ended")]
pub struct SessionEnded;

fn parse_bare(jid: &str) -> Result<BareJid, ConfigError> {
    let parsed =
        Jid::from_str(jid.trim()).map_err(|e| ConfigError::Jid(jid.into(), e.to_string()))?;
    if parsed.node().is_none() {
        return Err(ConfigError::NoLocalPart(jid.into()));
    }
    Ok(parsed.to_bare())
}

/// Parses a JID as a contact address (`user@domain`).
pub fn contact_jid(jid: &str) -> Result<BareJid, ConfigError> {
    parse_bare(jid)
}

fn dns_config(server: &str) -> Result<DnsConfig, ConfigError> {
    let bad = || ConfigError::Server(server.to_string());
    let (host, port) = server.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok(match host.parse::<IpAddr>() {
        Ok(ip) => DnsConfig::addr(&std::net::SocketAddr::new(ip, port).to_string()),
        Err(_) => DnsConfig::no_srv(host, port),
    })
}

/// Starts the session task: it connects (and reconnects) on its own,
/// publishes `ResourceShares` given through the handle and writes what
/// contacts publish into `catalog`.
pub fn start(
    config: XmppConfig,
    events: EventBus,
    catalog: CatalogWriter,
) -> Result<XmppHandle, ConfigError> {
    // Two rustls providers are compiled in (ours and reqwest's); pick one.
    let _ = tokio_xmpp::rustls::crypto::aws_lc_rs::default_provider().install_default();

    let bare = parse_bare(&config.jid)?;
    let jid: Jid = match &config.resource {
        Some(r) => Jid::from(
            bare.with_resource_str(r)
                .map_err(|e| ConfigError::Resource(r.clone(), e.to_string()))?,
        ),
        None => Jid::from(bare.clone()),
    };
    let dns = match &config.server {
        Some(s) => dns_config(s)?,
        None => DnsConfig::srv_default_client(bare.domain().as_str()),
    };
    let server_name = dns.to_string();
    let timeouts = Timeouts {
        read_timeout: Duration::from_secs(60),
        response_timeout: Duration::from_secs(20),
    };
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    let reconnector = if config.insecure_plaintext {
        connect::reconnector(
            TcpServerConnector::from(dns),
            server_name,
            jid,
            config.password.clone(),
            timeouts,
            status_tx,
        )
    } else {
        connect::reconnector(
            StartTlsServerConnector::from(dns),
            server_name,
            jid,
            config.password.clone(),
            timeouts,
            status_tx,
        )
    };
    let stream = StanzaStream::new(reconnector, 1024);
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (state_tx, state_rx) = watch::channel(ConnectionState::Connecting);
    let session = session::Session::new(bare.clone(), stream, events, catalog, state_tx);
    tokio::spawn(tracing::Instrument::instrument(
        session.run(cmd_rx, status_rx),
        tracing::info_span!("xmpp", jid = %bare),
    ));
    Ok(XmppHandle {
        cmd: cmd_tx,
        state: state_rx,
        jid: bare,
    })
}

impl XmppHandle {
    /// Our account's bare JID.
    pub fn jid(&self) -> String {
        self.jid.to_string()
    }

    /// The connection state now.
    pub fn state(&self) -> ConnectionState {
        self.state.borrow().clone()
    }

    /// A receiver that wakes on every connection state change.
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    fn send(&self, cmd: Command) -> Result<(), SessionEnded> {
        self.cmd.send(cmd).map_err(|_| SessionEnded)
    }

    /// Sets what this resource publishes (its shares and addresses) and
    /// publishes the merged item now, or as soon as we are online.
    pub fn set_local(&self, entry: ResourceShares) -> Result<(), SessionEnded> {
        self.send(Command::SetLocal(entry))
    }

    /// Asks `jid` to become a contact (mutual presence subscription); we
    /// pre-approve their side.
    pub fn add_contact(&self, jid: BareJid) -> Result<(), SessionEnded> {
        self.send(Command::AddContact(jid))
    }

    /// Accepts `jid`'s request and asks for theirs in return.
    pub fn accept_contact(&self, jid: BareJid) -> Result<(), SessionEnded> {
        self.send(Command::AcceptContact(jid))
    }

    /// Declines `jid`'s request.
    pub fn decline_contact(&self, jid: BareJid) -> Result<(), SessionEnded> {
        self.send(Command::DeclineContact(jid))
    }

    /// The roster as last received from the server.
    pub async fn roster(&self) -> Result<Vec<Contact>, SessionEnded> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Roster(tx))?;
        rx.await.map_err(|_| SessionEnded)
    }

    /// Retracts our resource from the published item, closes the stream and
    /// ends the session task. Bounded: returns within a few seconds even if
    /// the server does not answer.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jids_and_servers_are_checked_with_clear_errors() {
        assert_eq!(
            parse_bare("alice@example.org/phone").unwrap().to_string(),
            "alice@example.org"
        );
        assert!(matches!(
            parse_bare("example.org"),
            Err(ConfigError::NoLocalPart(_))
        ));
        assert!(matches!(parse_bare("a@b@c"), Err(ConfigError::Jid(..))));
        assert!(dns_config("127.0.0.1:5222").is_ok());
        assert!(dns_config("[::1]:5222").is_ok());
        assert!(dns_config("xmpp.example.org:5222").is_ok());
        for bad in [
            "xmpp.example.org",
            ":5222",
            "host:0",
            "host:99999",
            "host:abc",
        ] {
            assert!(
                matches!(dns_config(bad), Err(ConfigError::Server(_))),
                "{bad}"
            );
        }
    }
}
