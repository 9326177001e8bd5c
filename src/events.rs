//! Typed events of the backend on one broadcast channel: any part (the
//! torrent engine, the UI bridge, the API's event stream, tests) subscribes
//! and reacts; nobody polls.

use serde::Serialize;
use tokio::sync::broadcast;

use std::net::SocketAddr;

use crate::addresses::natpmp::PortMapping;
use crate::addresses::PublicIpDecision;
use crate::shares::{InfoHash, UserShares};
use crate::torrent::Transfer;

/// Something that happened in the backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum Event {
    /// Logged in and bound; presence and our item follow.
    Connected { jid: String },
    /// The connection dropped or could not be made; `retrying` tells whether
    /// we keep trying on our own (a wrong password stops the retries).
    Disconnected { reason: String, retrying: bool },
    /// The catalog's entry for a contact changed (new item or retraction).
    ContactSharesChanged { jid: String },
    /// Entries of a contact's item were invalid and dropped; the rest of the
    /// item was kept. One reason per dropped entry.
    InvalidEntries { jid: String, reasons: Vec<String> },
    /// A contact's resource came online or went offline.
    ContactPresenceChanged {
        jid: String,
        resource: String,
        online: bool,
    },
    /// The server confirmed our publish of the account's merged item.
    OwnItemPublished { item: UserShares },
    /// Our share list is larger than a server accepts in one item: only
    /// the first `published` of `total` shares were published.
    PublishTruncated { published: usize, total: usize },
    /// Publishing our item failed; the reason is the server's.
    PublishFailed { reason: String },
    /// The roster (contacts and subscription states) changed.
    RosterChanged,
    /// Someone asks to become our contact; answer with accept or decline.
    SubscriptionRequest { jid: String },
    /// Hashing of a new share started: `size` bytes under `path` are read
    /// once before the share is published.
    Hashing { path: String, size: u64 },
    /// Hashing of `path` has read `done` of its `size` bytes (a few times
    /// a second while it runs).
    HashingProgress { path: String, done: u64, size: u64 },
    /// Hashing of `path` ended; `error` says why it failed, if it did.
    HashingDone { path: String, error: Option<String> },
    /// What this resource shares changed (a share added or removed, a
    /// download got its metadata): the published item needs an update.
    LocalSharesChanged,
    /// Live statistics of every transfer, about once a second while any
    /// exists.
    Transfers { transfers: Vec<Transfer> },
    /// A download completed and was verified.
    DownloadFinished { hash: InfoHash, name: String },
    /// A download stopped for good; the reason says why.
    DownloadFailed { hash: InfoHash, reason: String },
    /// A share was withdrawn because its files vanished or changed.
    ShareBroken { hash: InfoHash, reason: String },
    /// The addresses we publish (each address with each port) changed; an
    /// address that is gone is no longer in the list.
    AddressesChanged { addresses: Vec<SocketAddr> },
    /// A lookup decided our public IPv4; `decision.rule` says how
    /// (agreement, a lone answer, or the first of disagreeing answers).
    PublicIpDecided { decision: PublicIpDecision },
    /// No what-is-my-IP service answered usably; the last known public
    /// IPv4 (if any) is kept and the lookup retried after `retry_in_ms`.
    PublicIpLookupFailed { reason: String, retry_in_ms: u64 },
    /// The NAT-PMP gateway granted, renewed with other values, or lost our
    /// port mapping (`None`: no mapping any more).
    PortMappingChanged { mapping: Option<PortMapping> },
    /// A NAT-PMP mapping attempt failed (`gateway`: the one asked, if one
    /// was found); a held mapping is kept until it expires unless the
    /// gateway refused it. Retried after `retry_in_ms`.
    PortMappingFailed {
        gateway: Option<SocketAddr>,
        reason: String,
        retry_in_ms: u64,
    },
    /// Demo mode only: what the demo peer did, in words for the user
    /// ("demo-bob downloaded x").
    DemoActivity { text: String },
}

/// The sending side; clone it to hand out subscriptions.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        // Slow subscribers lag rather than block the backend; 1024 events is
        // far more than a UI falls behind by.
        let (tx, _) = broadcast::channel(1024);
        EventBus { tx }
    }

    /// A new receiver that sees every event sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    pub fn send(&self, event: Event) {
        tracing::debug!(?event, "event");
        // No subscriber is not an error: the backend runs without a UI.
        let _ = self.tx.send(event);
    }
}
