//! Typed events of the backend on one broadcast channel: any part (the
//! torrent engine, the UI bridge, the API's event stream, tests) subscribes
//! and reacts; nobody polls.
//!
//! A leaf: this module and its payload types (`types.rs`) import nothing of
//! the crate but the protocol's value types (`shares`, itself a leaf), so
//! every part can depend on it without an import circle.

mod types;

pub use types::{
    MappingProtocol, OfflineCause, PathKind, Peer, PortMapping, PublicIpDecision, Rule,
    ServiceAnswer, ServiceResult, Transfer, TransferKind, TransferState,
};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use std::net::SocketAddr;

use crate::shares::{InfoHash, UserShares};

/// Something that happened in the backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// Logged in and bound; presence and our item follow.
    Connected { jid: String },
    /// The connection dropped or could not be made; `retrying` tells whether
    /// we keep trying on our own (a wrong password stops the retries).
    Disconnected {
        reason: String,
        retrying: bool,
        /// What kind of failure, for a front end to act on.
        #[serde(default)]
        cause: OfflineCause,
    },
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
    /// How our restricted lists stand (published, refused by the server
    /// and why, waiting): `crate::restricted`.
    Restricted {
        status: crate::restricted::RestrictedStatus,
    },
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
    /// A share's files changed and it was rebuilt: `new` is published in
    /// place of `old` (the same share, a new version).
    ShareUpdated {
        old: InfoHash,
        new: InfoHash,
        name: String,
    },
    /// The addresses we publish (each address with each port) changed; an
    /// address that is gone is no longer in the list.
    AddressesChanged { addresses: Vec<SocketAddr> },
    /// A lookup decided our public IPv4; `decision.rule` says how
    /// (agreement, a lone answer, or the first of disagreeing answers).
    PublicIpDecided { decision: PublicIpDecision },
    /// No what-is-my-IP service answered usably; the last known public
    /// IPv4 (if any) is kept and the lookup retried after `retry_in_ms`.
    PublicIpLookupFailed { reason: String, retry_in_ms: u64 },
    /// A gateway granted, renewed with other values, or lost our port
    /// mapping (`None`: no mapping any more over `protocol`).
    PortMappingChanged {
        mapping: Option<PortMapping>,
        /// NAT-PMP when absent (older events).
        #[serde(default)]
        protocol: MappingProtocol,
    },
    /// A mapping attempt failed (`gateway`: the one asked, if one was
    /// found; none when no gateway answered at all); a held mapping is kept
    /// until it expires unless the gateway refused it. Retried after
    /// `retry_in_ms`.
    PortMappingFailed {
        #[serde(default)]
        protocol: MappingProtocol,
        gateway: Option<SocketAddr>,
        reason: String,
        retry_in_ms: u64,
    },
    /// Demo mode only: what the demo peer did, in words for the user
    /// ("demo-bob downloaded x").
    DemoActivity { text: String },
    /// Sent to a client (the window, the API's event stream) that missed
    /// events it cannot catch up on: it must reload everything.
    Resync,
}

/// One event with its sequence number (rising in the order sent; each run
/// starts from its start time in microseconds, so an id from an earlier
/// run is never taken for one of this run).
#[derive(Debug, Clone, PartialEq)]
pub struct Numbered {
    pub id: u64,
    pub event: Event,
}

/// How many events (not counting `Transfers`, which are snapshots sent
/// every second and never worth replaying) a client that reconnects can
/// catch up on.
const REPLAY: usize = 512;

#[derive(Debug, Default)]
struct Replay {
    /// The id the next event gets.
    next: u64,
    /// The last events worth replaying, oldest first.
    recent: std::collections::VecDeque<Numbered>,
    /// The id of the newest event worth replaying that fell out of `recent`
    /// (0: none yet). A client that saw it or later can catch up.
    lost_up_to: u64,
}

/// What a client that reconnects after `last` can be sent.
#[derive(Debug, Clone, PartialEq)]
pub enum CatchUp {
    /// Every event after `last` worth replaying, in order.
    Events(Vec<Numbered>),
    /// Too much happened since: the client must reload everything (send
    /// it [`Event::Resync`]).
    Resync,
}

/// The sending side; clone it to hand out subscriptions.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    numbered: broadcast::Sender<Numbered>,
    replay: std::sync::Arc<std::sync::Mutex<Replay>>,
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
        let (numbered, _) = broadcast::channel(1024);
        let first = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64)
            .max(1);
        EventBus {
            tx,
            numbered,
            replay: std::sync::Arc::new(std::sync::Mutex::new(Replay {
                next: first,
                // Anything before this run: too old to catch up from.
                lost_up_to: first - 1,
                ..Default::default()
            })),
        }
    }

    /// A new receiver that sees every event sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Like [`subscribe`](Self::subscribe), with each event's number (for
    /// clients that reconnect: the API's event stream, the window).
    pub fn subscribe_numbered(&self) -> broadcast::Receiver<Numbered> {
        self.numbered.subscribe()
    }

    /// The events after `last` that a reconnecting client missed.
    pub fn since(&self, last: u64) -> CatchUp {
        let replay = self.replay.lock().unwrap_or_else(|e| e.into_inner());
        if last >= replay.next || last < replay.lost_up_to {
            return CatchUp::Resync;
        }
        CatchUp::Events(
            replay
                .recent
                .iter()
                .filter(|n| n.id > last)
                .cloned()
                .collect(),
        )
    }

    pub fn send(&self, event: Event) {
        tracing::debug!(?event, "event");
        let mut replay = self.replay.lock().unwrap_or_else(|e| e.into_inner());
        let numbered = Numbered {
            id: replay.next,
            event,
        };
        replay.next += 1;
        if !matches!(numbered.event, Event::Transfers { .. }) {
            if replay.recent.len() == REPLAY {
                if let Some(old) = replay.recent.pop_front() {
                    replay.lost_up_to = old.id;
                }
            }
            replay.recent.push_back(numbered.clone());
        }
        // Sent while numbering is locked, so every receiver sees the order
        // of the numbers. No subscriber is not an error: the backend runs
        // without a UI.
        let _ = self.numbered.send(numbered.clone());
        let _ = self.tx.send(numbered.event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_numbered_and_a_client_catches_up_or_resyncs() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe_numbered();
        bus.send(Event::RosterChanged);
        bus.send(Event::Transfers { transfers: vec![] });
        bus.send(Event::LocalSharesChanged);
        let ids: Vec<u64> = (0..3).map(|_| rx.try_recv().unwrap().id).collect();
        let first = ids[0];
        assert_eq!(ids, [first, first + 1, first + 2]);
        assert!(first > 1_000_000_000_000, "numbered from the start time");
        match bus.since(first) {
            // Transfers snapshots are not replayed.
            CatchUp::Events(e) => assert_eq!(
                e.iter().map(|n| n.id).collect::<Vec<_>>(),
                [first + 2],
                "{e:?}"
            ),
            CatchUp::Resync => panic!("the first is recent"),
        }
        assert_eq!(bus.since(first + 2), CatchUp::Events(vec![]));
        assert_eq!(bus.since(first + 99), CatchUp::Resync, "an id not sent yet");
        assert_eq!(bus.since(5), CatchUp::Resync, "an id of an earlier run");
        for _ in 0..REPLAY {
            bus.send(Event::RosterChanged);
        }
        assert_eq!(bus.since(first), CatchUp::Resync, "too much happened");
        assert!(matches!(bus.since(first + 9), CatchUp::Events(e) if e.len() == REPLAY - 7));
    }
}
