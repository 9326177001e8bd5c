//! The plain data the backend's events carry and the front ends show:
//! transfers and their peers, how our public address was decided, a port
//! mapping. Owned here, at the leaf, so that the parts which produce them
//! (`torrent`, `net`, `addresses`) and everyone who listens depend on this
//! module, never the other way round.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::shares::{Audience, InfoHash};

/// One transfer (share or download) as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    pub hash: InfoHash,
    pub name: String,
    pub kind: TransferKind,
    pub state: TransferState,
    pub done_bytes: u64,
    pub total_bytes: u64,
    pub uploaded_bytes: u64,
    /// Bytes received from peers since this start (a resumed download
    /// fetches only what it did not have).
    pub fetched_bytes: u64,
    pub down_bytes_per_sec: u64,
    pub up_bytes_per_sec: u64,
    pub eta_secs: Option<u64>,
    pub peers: Vec<Peer>,
    /// The folder that holds the transfer's file or folder.
    pub folder: PathBuf,
    /// The file or folder itself on disk. A download's name there can
    /// differ from the torrent's (`name (1).ext` when the name was taken);
    /// until its metadata arrived this is the folder it goes to.
    pub path: PathBuf,
    /// A download's name as the contact's list gave it, when it differs
    /// from the name on disk (show both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_name: Option<String>,
    pub error: Option<String>,
    /// A share whose files are watched (kept current as they change): when
    /// its current version was made, in Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<u64>,
    /// An own share seeding but not loaded until a peer wants it (nobody
    /// transfers it now).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idle: bool,
    /// A folder (a torrent with a file list), once its metadata is known.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_folder: bool,
    /// Who sees it in our lists (a share's audience; a download of a
    /// restricted share is for nobody but us).
    #[serde(default)]
    pub audience: Audience,
}

/// A share of ours, or a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    Share,
    Download,
}

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    FetchingMetadata,
    Checking,
    Downloading,
    Seeding,
    Paused,
    Error,
}

impl TransferState {
    /// Whether bytes still have to arrive (not seeding, not paused).
    pub fn is_active_download(self) -> bool {
        !matches!(self, TransferState::Seeding | TransferState::Paused)
    }
}

/// A connected peer, named by the contact that published its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Where the peer is (for a connection of ours, the address we reached;
    /// for one of theirs, where it came from).
    pub address: String,
    /// `contact/resource`, when known.
    pub contact: Option<String>,
    /// How the connection was made.
    pub path: PathKind,
    /// For a relayed connection: the relay (the XMPP server's proxy) the
    /// bytes cross.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// How a connection reached its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathKind {
    /// A TCP connection to (or from) an address the contact published.
    Direct,
    /// Both sides dialed each other at once (through NAT or a firewall).
    Punched,
    /// Through a SOCKS5 bytestream proxy of an XMPP server.
    Relayed,
}

/// How a port mapping was asked of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingProtocol {
    /// NAT-PMP (RFC 6886).
    #[default]
    NatPmp,
    /// UPnP IGD (WANIPConnection:1 or :2).
    Upnp,
}

/// A mapping a gateway (NAT-PMP or UPnP) granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Which protocol granted it (NAT-PMP when absent: older events).
    #[serde(default)]
    pub protocol: MappingProtocol,
    pub gateway: SocketAddr,
    /// The gateway's external IPv4 address, as it reports it (behind a
    /// second NAT it is not public).
    pub external_ip: Ipv4Addr,
    /// Our listen port.
    pub internal_port: u16,
    /// The port to publish.
    pub external_port: u16,
    pub lifetime_secs: u32,
}

/// How the public IPv4 was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Two (or more) services gave the same answer.
    TwoAgree,
    /// Only one service answered; its answer is taken unchecked.
    OnlyOneAnswered,
    /// Several answered, no two agreed: the first in the list wins.
    FirstInList,
}

impl Rule {
    /// A sentence for logs and the UI.
    pub fn describe(self) -> &'static str {
        match self {
            Rule::TwoAgree => "two services agree",
            Rule::OnlyOneAnswered => "only one service answered, so its answer is taken unchecked",
            Rule::FirstInList => {
                "the services disagree and no two agree, so the first service in the list wins"
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// What one what-is-my-IP service said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ServiceResult {
    Answered {
        ip: Ipv4Addr,
    },
    Failed {
        reason: String,
    },
    /// Not waited for: a decision was reached without it.
    NotAwaited,
}

/// One service's part in a lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAnswer {
    pub service: String,
    #[serde(flatten)]
    pub result: ServiceResult,
}

/// The outcome of one lookup: the address, the rule that chose it and what
/// each service said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicIpDecision {
    pub ip: Ipv4Addr,
    pub rule: Rule,
    pub answers: Vec<ServiceAnswer>,
}

impl PublicIpDecision {
    /// Whether some service answered something else than the decision.
    pub fn disputed(&self) -> bool {
        self.answers
            .iter()
            .any(|a| matches!(a.result, ServiceResult::Answered { ip } if ip != self.ip))
    }
}

/// Why the connection to the XMPP server is down, kept as a kind (not only
/// prose) so a front end can say what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OfflineCause {
    /// The server refused the JID and password (not retried).
    WrongLogin,
    /// No login mechanism we may use (not retried).
    NoMechanism,
    /// The server's name was not found.
    Dns,
    /// The secure (TLS) connection failed: certificate or handshake.
    Tls,
    /// Nothing answers at the server's address.
    Refused,
    /// A connection that was up was lost.
    Lost,
    /// We signed out.
    SignedOut,
    /// Anything else; the reason says what.
    #[default]
    Other,
}
