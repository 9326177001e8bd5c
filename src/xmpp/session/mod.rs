//! The session task: owns the stanza stream, the roster, our published item
//! and the catalog's write side, and turns stanzas into events. This file
//! holds the state, the loop and the connection's lifecycle (connect,
//! loss, shutdown); each concern the loop hands work to has a file of its
//! own, all methods on the one [`Session`] (one owner, no locks):
//!
//! - `commands`: what the handle asks for;
//! - `iq`: the IQs we answer (disco, ping, roster pushes, path requests)
//!   and the answers to ours;
//! - `roster`: the roster, presences and subscriptions;
//! - `publish`: our item and its chunks within the stanza budget;
//! - `receive`: PEP events and fetched items into the catalog, with
//!   `collector` deciding which chunks to fetch and what they expand.
//!
//! Nothing here awaits an IQ response: requests are remembered by id in
//! `pending` and their answers handled as they arrive, so the loop never
//! stalls. After every (re)connect it sends presence with caps, fetches the
//! roster and our own item, and publishes the merged item.

mod collector;
mod commands;
mod iq;
mod publish;
pub(crate) mod pubsub;
mod receive;
mod restricted_in;
mod roster;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use minidom::Element;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::clock::sleep_until;
use tokio_xmpp::jid::{BareJid, FullJid, Jid};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::stanzastream::{Event as StreamEvent, StanzaStream, StreamEvent as Lifecycle};
use tokio_xmpp::Stanza;

use super::connect::ConnStatus;
use super::disco::Disco;
use super::limits::{self, StanzaBudget};
use super::{Command, ConnectionState, Contact};
use crate::events::{Event, EventBus};
use crate::shares::{CatalogWriter, ResourceShares, UserShares};
use crate::NS_SHARES;
use collector::ChunkCollector;
use iq::Pending;

/// How long a clean shutdown waits for the server to confirm the retraction.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);
const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";

pub(super) struct Session {
    /// Our own command queue (a path request's answer comes back on it).
    commands: mpsc::UnboundedSender<Command>,
    /// The path layer that answers contacts' path requests.
    paths: Option<crate::net::PeerPaths>,
    own: BareJid,
    stream: StanzaStream,
    events: EventBus,
    catalog: CatalogWriter,
    state: watch::Sender<ConnectionState>,
    disco: Disco,
    /// Our full JID while online.
    bound: Option<FullJid>,
    pending: HashMap<String, Pending>,
    next_id: u64,
    id_prefix: String,
    roster: BTreeMap<BareJid, Contact>,
    roster_loaded: bool,
    /// PEP events that arrived before the roster told us who our contacts
    /// are; handled once it has.
    deferred: Vec<(BareJid, Element)>,
    /// JIDs we asked to become contacts this session: their subscription
    /// request is accepted without asking the user.
    requested: BTreeSet<BareJid>,
    /// What this resource publishes.
    local: ResourceShares,
    /// The account's item as last seen (pushed, fetched or confirmed), once
    /// we know it after a connect.
    base: Option<UserShares>,
    /// Other resources of our account that the server says are online now
    /// (it sends us their presence when we come online, and every change).
    /// Only these keep their entries in the item we publish: a resource
    /// that crashed, or an earlier connection of this very device that died
    /// with its resource, does not stay listed.
    own_online: BTreeSet<String>,
    /// Own-item pushes received this session (to tell whether a publish
    /// confirmation is still the newest state).
    pushes: u64,
    publish_in_flight: bool,
    publish_again: bool,
    /// The version of our list whose chunks the server holds.
    chunks_published: Option<String>,
    /// A chunk publish failed: the server may lack part of our list, so it
    /// is published again even if the item itself is unchanged.
    chunks_stale: bool,
    /// Chunk publishes still to send (node, payload), one at a time, each
    /// after the previous one was answered; then the item and the version
    /// its pointer names. One at a time, so that a stanza the server finds
    /// too large is the only one lost with the connection (tokio-xmpp sends
    /// what was still queued on the next connection, where a chunk cut for
    /// the old budget would be too large again).
    chunk_queue: VecDeque<(String, Element)>,
    item_after_chunks: Option<(UserShares, String)>,
    /// The rest of contacts' lists beyond their items: what was fetched
    /// and what is being fetched.
    chunks: ChunkCollector,
    /// The retraction of our resource sent on shutdown awaits its answer.
    retract_pending: bool,
    /// How large our item and chunks may be (learned from the server).
    budget: StanzaBudget,
    /// Contacts whose current item we asked for this session, and how many
    /// items of theirs arrived this session (see `Pending::ContactItem`).
    pulled: BTreeSet<BareJid>,
    contact_events: HashMap<BareJid, u64>,
    /// Contacts' restricted lists for us; and, for those contacts only,
    /// their public item as last received (the catalog holds the two
    /// merged). Of everyone else the catalog's item is the public one, so
    /// it is not held twice.
    restricted_in: HashMap<BareJid, UserShares>,
    public_in: HashMap<BareJid, UserShares>,
    /// Contacts whose restricted list we are fetching (or will fetch again
    /// shortly), with when that fetch was sent; and those to fetch again
    /// when that answer is in (a notice came meanwhile).
    restricted_fetching: HashMap<BareJid, Instant>,
    restricted_again: BTreeSet<BareJid>,
    /// Publishes sent again after a passing refusal, since the last success.
    publish_retries: u8,
    shutdown: Option<(oneshot::Sender<()>, Instant)>,
}

/// Our own resource while bound (`""` otherwise).
fn resource_of(bound: &Option<FullJid>) -> &str {
    bound.as_ref().map(|b| b.resource().as_str()).unwrap_or("")
}

impl Session {
    pub(super) fn new(
        own: BareJid,
        stream: StanzaStream,
        events: EventBus,
        catalog: CatalogWriter,
        state: watch::Sender<ConnectionState>,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Session {
        Session {
            commands,
            paths: None,
            own,
            stream,
            events,
            catalog,
            state,
            disco: Disco::new(),
            bound: None,
            pending: HashMap::new(),
            next_id: 0,
            id_prefix: format!("bw{:08x}", rand::random::<u32>()),
            roster: BTreeMap::new(),
            roster_loaded: false,
            deferred: Vec::new(),
            requested: BTreeSet::new(),
            local: ResourceShares::default(),
            base: None,
            own_online: BTreeSet::new(),
            pushes: 0,
            publish_in_flight: false,
            publish_again: false,
            chunks_published: None,
            chunks_stale: false,
            chunk_queue: VecDeque::new(),
            item_after_chunks: None,
            chunks: ChunkCollector::default(),
            retract_pending: false,
            budget: StanzaBudget::default(),
            pulled: BTreeSet::new(),
            contact_events: HashMap::new(),
            public_in: HashMap::new(),
            restricted_in: HashMap::new(),
            restricted_fetching: HashMap::new(),
            restricted_again: BTreeSet::new(),
            publish_retries: 0,
            shutdown: None,
        }
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut status: mpsc::UnboundedReceiver<ConnStatus>,
    ) {
        loop {
            let deadline = self.shutdown.as_ref().map(|(_, d)| *d);
            tokio::select! {
                ev = self.stream.next() => match ev {
                    Some(ev) => self.on_stream(ev).await,
                    None => break,
                },
                cmd = commands.recv(), if self.shutdown.is_none() => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    // Every handle is gone: leave as on a shutdown request.
                    None => self.begin_shutdown(oneshot::channel().0).await,
                },
                Some(st) = status.recv() => {
                    self.set_state(ConnectionState::Offline { reason: st.reason.clone(), retrying: st.retrying });
                    self.events.send(Event::Disconnected { reason: st.reason, retrying: st.retrying, cause: st.cause });
                    if !st.retrying && self.shutdown.is_none() {
                        tracing::error!("giving up on logging in; the session stays offline until restarted");
                    }
                },
                _ = sleep_until(deadline) => {
                    tracing::warn!("the server did not confirm the retraction in time; closing anyway");
                    break;
                },
            }
            if self.shutdown.is_some() && !self.retract_pending {
                // Retraction confirmed or failed, or nothing to retract.
                break;
            }
        }
        let reply = self.shutdown.take().map(|(r, _)| r);
        self.set_state(ConnectionState::Offline {
            reason: "signed out".into(),
            retrying: false,
        });
        if self.bound.is_some() {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, self.stream.close()).await;
        }
        // Offline, there is no stream to close: dropping it stops the
        // reconnect attempts.
        tracing::info!("session ended");
        if let Some(reply) = reply {
            let _ = reply.send(());
        }
    }

    fn set_state(&self, s: ConnectionState) {
        self.state.send_replace(s);
    }

    async fn send(&mut self, stanza: impl Into<Stanza>) {
        // Enqueue only; the token would tell when it was written.
        let _token = self.stream.send(Box::new(stanza.into())).await;
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}-{}", self.id_prefix, self.next_id)
    }

    async fn send_iq(&mut self, to: Option<Jid>, get: bool, payload: Element, what: Pending) {
        let id = self.new_id();
        let iq = if get {
            Iq::Get {
                from: None,
                to,
                id: id.clone(),
                payload,
            }
        } else {
            Iq::Set {
                from: None,
                to,
                id: id.clone(),
                payload,
            }
        };
        if matches!(
            what,
            Pending::Publish { .. } | Pending::ChunkPublish { .. } | Pending::Retract
        ) {
            if let Iq::Set { payload, .. } = &iq {
                self.budget.sent(&id, limits::wire_bytes(payload));
            }
        }
        self.pending.insert(id, what);
        self.send(iq).await;
    }

    // ----- connection lifecycle -------------------------------------------

    async fn on_stream(&mut self, ev: StreamEvent) {
        match ev {
            StreamEvent::Stream(Lifecycle::Reset {
                bound_jid,
                features,
            }) => {
                self.budget.on_features(&features);
                self.on_online(bound_jid).await
            }
            StreamEvent::Stream(Lifecycle::Resumed) => {
                if let Some(b) = &self.bound {
                    let jid = b.to_string();
                    self.set_state(ConnectionState::Online { jid: jid.clone() });
                    self.events.send(Event::Connected { jid });
                }
            }
            StreamEvent::Stream(Lifecycle::Suspended) => self.on_lost().await,
            StreamEvent::Stanza(stanza) => {
                if self.bound.is_some() {
                    self.on_stanza(stanza).await;
                }
            }
        }
    }

    async fn on_online(&mut self, bound: Jid) {
        let Ok(full) = bound.clone().try_into_full() else {
            tracing::error!(%bound, "server bound us to a JID without a resource");
            return;
        };
        tracing::info!(jid = %full, "online");
        self.bound = Some(full.clone());
        self.pending.clear();
        self.chunks.reconnected();
        self.roster_loaded = false;
        self.deferred.clear();
        self.pulled.clear();
        self.contact_events.clear();
        self.restricted_fetching.clear();
        self.restricted_again.clear();
        self.base = None;
        self.own_online.clear();
        self.pushes = 0;
        self.publish_in_flight = false;
        self.publish_again = false;
        self.set_state(ConnectionState::Online {
            jid: full.to_string(),
        });
        self.events.send(Event::Connected {
            jid: full.to_string(),
        });
        if self.shutdown.is_some() {
            return;
        }
        // Roster first, so presences and items that follow our presence
        // find it loaded.
        let roster_query = Element::builder("query", ns::ROSTER).build();
        self.send_iq(None, true, roster_query, Pending::Roster)
            .await;
        let presence = Presence::available().with_payload(self.disco.caps());
        self.send(presence).await;
        let items = pubsub::fetch_current(NS_SHARES);
        self.send_iq(Some(self.own.clone().into()), true, items, Pending::OwnItem)
            .await;
    }

    async fn on_lost(&mut self) {
        if self.bound.take().is_none() {
            return;
        }
        tracing::warn!("connection lost; reconnecting");
        if self.budget.connection_lost() {
            // Publish the whole list again at the smaller size.
            self.chunks_published = None;
        }
        self.pending.clear();
        self.publish_in_flight = false;
        self.chunk_queue.clear();
        self.item_after_chunks = None;
        for (jid, resource) in self.catalog.all_offline() {
            self.events.send(Event::ContactPresenceChanged {
                jid,
                resource,
                online: false,
            });
        }
        let reason = "connection to the server lost".to_string();
        self.set_state(ConnectionState::Offline {
            reason: reason.clone(),
            retrying: true,
        });
        self.events.send(Event::Disconnected {
            reason,
            retrying: true,
            cause: crate::events::OfflineCause::Lost,
        });
    }

    async fn begin_shutdown(&mut self, reply: oneshot::Sender<()>) {
        self.shutdown = Some((reply, Instant::now() + SHUTDOWN_WAIT));
        if self.bound.is_none() {
            return;
        }
        // A clean shutdown publishes the item without our resource.
        let Some(base) = self.base.clone() else {
            return;
        };
        let item = base.merged(self.resource(), None);
        self.retract_pending = true;
        self.send_publish(item, true).await;
    }

    fn resource(&self) -> &str {
        resource_of(&self.bound)
    }
}
