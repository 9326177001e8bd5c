//! The XMPP side: log in, keep the roster and presence, publish our share
//! list to PEP and receive our contacts' lists into the catalog.
//!
//! [`start`] spawns one task that owns the connection; everything else talks
//! to it through the returned [`XmppHandle`] and listens to the
//! [`EventBus`](crate::events::EventBus).

mod connect;
mod disco;
mod guard;
mod limits;
mod paths;
mod session;
pub mod tls;

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::stanzastream::StanzaStream;
use tokio_xmpp::xmlstream::Timeouts;

use crate::events::EventBus;
use crate::shares::{CatalogWriter, ResourceShares};

pub use connect::{FIRST_RETRY, MAX_RETRY, STABLE_AFTER};
pub use disco::CAPS_NODE;
pub use guard::{LONG_NAME, MAX_TOKEN};
pub use paths::XmppSignal;
pub(crate) use session::pubsub;

/// How to log in. Its `Debug` never shows the password.
#[derive(Clone)]
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
    /// A PEM bundle of certificate authorities trusted beside the system's
    /// (a self-hosted server with a CA of its own).
    pub tls_ca: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for XmppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppConfig")
            .field("jid", &self.jid)
            .field("password", &"<redacted>")
            .field("resource", &self.resource)
            .field("server", &self.server)
            .field("insecure_plaintext", &self.insecure_plaintext)
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
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
    #[error(transparent)]
    TlsCa(#[from] tls::CaBundleError),
    #[error(
        "logging in without TLS is only allowed to a server on this machine (127.0.0.1, ::1, localhost), \
         not {0}: it would send your password in the clear; remove the plaintext option"
    )]
    Plaintext(String),
}

/// Whether we are logged in, as last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionState {
    Connecting,
    Online { jid: String },
    Offline { reason: String, retrying: bool },
}

/// A roster entry: a contact and our subscription state with them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub jid: String,
    pub name: Option<String>,
    pub subscription: Subscription,
    /// We asked to see their presence and wait for their answer.
    pub pending_out: bool,
    /// They asked to see ours and wait for our answer.
    pub pending_in: bool,
    /// The roster groups it is in, sorted: kept on the server, so other
    /// clients of the account show the same groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

pub(crate) enum Command {
    SetLocal(ResourceShares),
    /// An IQ of another part (the path layer's signalling, the restricted
    /// lists), answered through `reply`.
    Iq {
        to: Jid,
        get: bool,
        payload: minidom::Element,
        reply: oneshot::Sender<Result<Option<minidom::Element>, IqError>>,
    },
    /// Tells `to` that the restricted list we keep for them changed: a
    /// content-free headline (`crate::restricted`).
    Notice(BareJid),
    /// The session's own: fetch this contact's restricted list for us
    /// again, now that the gap after the last fetch has passed.
    FetchRestricted(BareJid),
    /// The answer to a contact's path request, once the path layer has it.
    Answer {
        to: Jid,
        id: String,
        answer: Result<minidom::Element, String>,
    },
    /// The path layer that answers contacts' path requests.
    ServePaths(crate::net::PeerPaths),
    AddContact(BareJid),
    AcceptContact(BareJid),
    DeclineContact(BareJid),
    Roster(oneshot::Sender<Vec<Contact>>),
    /// Puts a contact in exactly these roster groups (`roster.rs`).
    SetGroups {
        jid: BareJid,
        groups: Vec<String>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// Who sees whose presence (RFC 6121), as the roster says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subscription {
    None,
    /// We see their presence (and so get their PEP items).
    To,
    /// They see ours.
    From,
    Both,
}

impl Subscription {
    /// Whether we see their presence, and so receive their share list.
    pub fn we_see_them(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }

    /// Whether they see ours.
    pub fn they_see_us(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }
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
            Command::Iq { .. } => "Iq",
            Command::Notice(_) => "Notice",
            Command::FetchRestricted(_) => "FetchRestricted",
            Command::Answer { .. } => "Answer",
            Command::ServePaths(_) => "ServePaths",
            Command::AddContact(_) => "AddContact",
            Command::AcceptContact(_) => "AcceptContact",
            Command::DeclineContact(_) => "DeclineContact",
            Command::Roster(_) => "Roster",
            Command::SetGroups { .. } => "SetGroups",
            Command::Shutdown(_) => "Shutdown",
        })
    }
}

/// Why an IQ of ours got no result: the error the other side answered
/// (its defined condition, e.g. `item-not-found`, and any
/// application-specific condition, e.g. `precondition-not-met`), or
/// `offline`, `lost` or `timeout` when no answer came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct IqError {
    pub condition: String,
    pub specific: Option<String>,
    /// What to tell a person: the error's text, or else its condition.
    pub text: String,
}

impl IqError {
    /// No answer came: `condition` is `offline`, `lost` or `timeout`.
    pub(crate) fn local(condition: &str, text: String) -> IqError {
        IqError {
            condition: condition.into(),
            specific: None,
            text,
        }
    }

    /// Whether no answer came (offline, lost, timed out) or the server
    /// asked to try again later: worth retrying as it was.
    pub fn passing(&self) -> bool {
        matches!(self.condition.as_str(), "offline" | "lost" | "timeout")
    }
}

/// `<pubsub><items node max_items='1'/></pubsub>`: a request for a PEP
/// node's current item (for tools and tests that read a node as any
/// client would).
pub fn pubsub_fetch_current(node: &str) -> minidom::Element {
    pubsub::fetch_current(node)
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

/// Whether `server` (`host:port`) names this machine, where logging in
/// without TLS exposes nothing to the network.
pub fn is_loopback_server(server: &str) -> bool {
    let host = split_host_port(server).map_or(server, |(h, _)| h);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host:port` (`[v6]:port` too) split in two; the port is `None` when it
/// is not a number.
pub fn split_host_port(server: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = server.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host, port.parse().ok()))
}

/// The file in the data dir that holds this device's resource.
pub const RESOURCE_FILE: &str = "resource";

/// This device's XMPP resource: chosen once (the host name and a random
/// suffix, `laptop-3f9a`), kept in `data_dir/resource`, and used at every
/// login, so a reconnect is the same device to the server and to the item
/// we publish (a server-chosen resource per connection left one dead entry
/// per reconnect behind). A damaged file is replaced.
pub fn device_resource(data_dir: &std::path::Path) -> std::io::Result<String> {
    let path = data_dir.join(RESOURCE_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let saved = text.trim();
        if !saved.is_empty()
            && BareJid::new("a@b")
                .unwrap()
                .with_resource_str(saved)
                .is_ok()
        {
            return Ok(saved.to_string());
        }
        tracing::warn!(path = %path.display(), "the saved resource is not usable; choosing a new one");
    }
    let host: String = host_name()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect();
    let host = if host.is_empty() {
        "bitween".to_string()
    } else {
        host
    };
    let resource = format!("{host}-{:04x}", rand::random::<u16>());
    std::fs::create_dir_all(data_dir)?;
    std::fs::write(&path, format!("{resource}\n"))?;
    Ok(resource)
}

/// The machine's name, as far as it can be had.
fn host_name() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes a
        // NUL-terminated name into it (or fails).
        if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            return String::from_utf8_lossy(&buf[..end]).into_owned();
        }
    }
    std::env::var("COMPUTERNAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// Parses a JID as a contact address (`user@domain`).
pub fn contact_jid(jid: &str) -> Result<BareJid, ConfigError> {
    parse_bare(jid)
}

fn dns_config(server: &str) -> Result<DnsConfig, ConfigError> {
    let bad = || ConfigError::Server(server.to_string());
    let (host, port) = split_host_port(server).ok_or_else(bad)?;
    let port = port.ok_or_else(bad)?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok(match host.parse::<IpAddr>() {
        Ok(ip) => DnsConfig::addr(&std::net::SocketAddr::new(ip, port).to_string()),
        Err(_) => DnsConfig::no_srv(host, port),
    })
}

/// Plaintext (and so SASL PLAIN in the clear) only where nothing leaves
/// the machine: decided here, in [`start`], so no front end can forget it.
fn check_plaintext(config: &XmppConfig, bare: &BareJid) -> Result<(), ConfigError> {
    if config.insecure_plaintext && !config.server.as_deref().is_some_and(is_loopback_server) {
        return Err(ConfigError::Plaintext(
            config
                .server
                .clone()
                .unwrap_or_else(|| bare.domain().to_string()),
        ));
    }
    Ok(())
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
    check_plaintext(&config, &bare)?;
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
    let tls = if config.insecure_plaintext {
        None
    } else {
        Some(tls::TrustedRoots::load(config.tls_ca.as_deref())?)
    };
    let connector = connect::GuardedConnector { dns, tls };
    let reconnector = connect::reconnector(
        connector,
        server_name,
        jid,
        config.password.clone(),
        timeouts,
        status_tx,
    );
    let stream = StanzaStream::new(reconnector, 1024);
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (state_tx, state_rx) = watch::channel(ConnectionState::Connecting);
    let session = session::Session::new(
        bare.clone(),
        stream,
        events,
        catalog,
        state_tx,
        cmd_tx.clone(),
    );
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

    /// Our account, as a JID.
    pub fn bare_jid(&self) -> &BareJid {
        &self.jid
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

    /// Sends an IQ and waits (up to `timeout`) for its answer's payload.
    pub async fn iq(
        &self,
        to: Jid,
        get: bool,
        payload: minidom::Element,
        timeout: Duration,
    ) -> Result<Option<minidom::Element>, String> {
        self.iq_checked(to, get, payload, timeout)
            .await
            .map_err(|e| e.text)
    }

    /// [`iq`](Self::iq), telling why it failed.
    pub async fn iq_checked(
        &self,
        to: Jid,
        get: bool,
        payload: minidom::Element,
        timeout: Duration,
    ) -> Result<Option<minidom::Element>, IqError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Iq {
            to,
            get,
            payload,
            reply,
        })
        .map_err(|e| IqError::local("offline", e.to_string()))?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(IqError::local(
                "lost",
                "the connection to the server was lost".into(),
            )),
            Err(_) => Err(IqError::local(
                "timeout",
                format!("no answer within {} s", timeout.as_secs()),
            )),
        }
    }

    /// Tells `to` that the restricted list we keep for them changed (sent
    /// when online; see `crate::restricted`).
    pub fn notify_changed(&self, to: BareJid) -> Result<(), SessionEnded> {
        self.send(Command::Notice(to))
    }

    /// Lets `paths` answer our contacts' path requests (punched and
    /// relayed connections); advertised in our caps from the start.
    pub fn serve_paths(&self, paths: crate::net::PeerPaths) -> Result<(), SessionEnded> {
        self.send(Command::ServePaths(paths))
    }

    /// The roster as last received from the server.
    pub async fn roster(&self) -> Result<Vec<Contact>, SessionEnded> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Roster(tx))?;
        rx.await.map_err(|_| SessionEnded)
    }

    /// Puts the contact `jid` in exactly `groups` on the server's roster
    /// (its name kept), and waits for the server to take it; our roster
    /// has the new groups when the server's roster push arrives, a moment
    /// later. Other clients of the account see the same groups.
    pub async fn set_groups(&self, jid: BareJid, groups: Vec<String>) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::SetGroups { jid, groups, reply })
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(30), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the connection to the server was lost".into()),
            Err(_) => Err("the server did not answer within 30 s".into()),
        }
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
    fn a_device_keeps_its_resource() {
        let dir = tempfile::tempdir().unwrap();
        let first = device_resource(dir.path()).unwrap();
        assert!(first.len() > 5, "{first}");
        assert_eq!(device_resource(dir.path()).unwrap(), first);
        std::fs::write(dir.path().join(RESOURCE_FILE), "\n").unwrap();
        let again = device_resource(dir.path()).unwrap();
        assert!(!again.is_empty());
        assert_eq!(device_resource(dir.path()).unwrap(), again);
    }

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
        let config = XmppConfig {
            jid: "alice@example.org".into(),
            password: "hunter2".into(),
            resource: None,
            server: Some("xmpp.example.org:5222".into()),
            insecure_plaintext: true,
            tls_ca: None,
        };
        assert!(!format!("{config:?}").contains("hunter2"));
        let bare = parse_bare(&config.jid).unwrap();
        assert!(matches!(
            check_plaintext(&config, &bare),
            Err(ConfigError::Plaintext(_))
        ));
        for local in ["127.0.0.1:5222", "[::1]:5222", "localhost:5222"] {
            let c = XmppConfig {
                server: Some(local.into()),
                ..config.clone()
            };
            assert!(check_plaintext(&c, &bare).is_ok(), "{local}");
        }
        let c = XmppConfig {
            server: None,
            ..config.clone()
        };
        assert!(check_plaintext(&c, &bare).is_err());
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
