//! The session task: owns the stanza stream, the roster, our published item
//! and the catalog's write side, and turns stanzas into events.
//!
//! Nothing here awaits an IQ response: requests are remembered by id in
//! `pending` and their answers handled as they arrive, so the loop never
//! stalls. After every (re)connect it sends presence with caps, fetches the
//! roster and our own item, and publishes the merged item.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use minidom::Element;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::clock::sleep_until;
use tokio_xmpp::jid::{BareJid, FullJid, Jid};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::Message;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::parsers::roster::{Ask, Roster, Subscription};
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use tokio_xmpp::stanzastream::{Event as StreamEvent, StanzaStream, StreamEvent as Lifecycle};
use tokio_xmpp::Stanza;

use super::connect::ConnStatus;
use super::disco::Disco;
use super::limits::{self, StanzaBudget};
use super::{Command, ConnectionState, Contact};
use crate::events::{Event, EventBus};
use crate::shares::{
    chunks, fit_to, parse_user_shares, to_element, CatalogWriter, PackedShares, ResourceShares,
    Share, UserShares,
};
use crate::NS_SHARES;

/// How often a publish refused for a passing reason is sent again at once
/// (see `limits::transient`).
const PUBLISH_RETRIES: u8 = 3;
/// How long a clean shutdown waits for the server to confirm the retraction.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);
const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";

/// What an IQ we sent was for.
#[derive(Debug)]
enum Pending {
    Roster,
    OwnItem,
    Publish {
        item: UserShares,
        pushes_before: u64,
    },
    /// The publish without our resource, on shutdown.
    Retract,
    /// One chunk of our own list beyond what fits in the item.
    ChunkPublish {
        node: String,
    },
    /// A contact's current item, asked for when their presence first came
    /// in this session; `events` is how many items of theirs had arrived
    /// then (an item pushed meanwhile is as new, so the answer is dropped).
    ContactItem {
        jid: BareJid,
        events: u64,
    },
    /// Chunk `n` of a contact resource's list (see `shares::chunks`).
    ChunkFetch {
        jid: BareJid,
        resource: String,
        version: String,
        n: u16,
    },
    /// Another part's IQ (`Command::Iq`), answered through the channel.
    External(oneshot::Sender<Result<Option<Element>, String>>),
}

/// A contact resource's list chunks being fetched.
#[derive(Debug)]
struct Fetch {
    version: String,
    expected: u16,
    got: BTreeMap<u16, Vec<Share>>,
    /// Shares in `got`, and the most this list may keep (see
    /// [`MAX_CONTACT_SHARES`]): the rest of the chunks is dropped as it
    /// arrives, whatever the pointer claims.
    kept: usize,
    limit: usize,
    failed: bool,
}

/// The most shares we hold for one contact, all resources together (a
/// bound on what a contact can make us keep; chunks per resource are bound
/// by `chunks::MAX_SHARES` too).
const MAX_CONTACT_SHARES: usize = 2 * chunks::MAX_SHARES;

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
    /// Shares beyond the item, per contact resource, for one list version:
    /// kept to expand the item again when it is delivered again, even after
    /// an item of another version came in between (several resources of an
    /// account publishing at once pass stale items around). Shared with the
    /// catalog, which holds the same allocation while it shows that version.
    /// (The item as received is the catalog's: `Catalog::received`.)
    expansions: HashMap<(BareJid, String), (String, Arc<PackedShares>)>,
    /// Chunk fetches under way.
    fetches: HashMap<(BareJid, String), Fetch>,
    /// The retraction of our resource sent on shutdown awaits its answer.
    retract_pending: bool,
    /// How large our item and chunks may be (learned from the server).
    budget: StanzaBudget,
    /// Contacts whose current item we asked for this session, and how many
    /// items of theirs arrived this session (see `Pending::ContactItem`).
    pulled: BTreeSet<BareJid>,
    contact_events: HashMap<BareJid, u64>,
    /// Publishes sent again after a passing refusal, since the last success.
    publish_retries: u8,
    shutdown: Option<(oneshot::Sender<()>, Instant)>,
}

/// Our own resource while bound (`""` otherwise).
fn resource_of(bound: &Option<FullJid>) -> &str {
    bound.as_ref().map(|b| b.resource().as_str()).unwrap_or("")
}

fn error_reply(iq_id: String, to: Option<Jid>, condition: DefinedCondition) -> Iq {
    let error = StanzaError::new(ErrorType::Cancel, condition, "en", "");
    Iq::Error {
        from: None,
        to,
        id: iq_id,
        error,
        payload: None,
    }
}

/// Our roster's view of a subscription (the wire's `remove` never gets
/// here: such items leave the roster).
fn ours(s: &Subscription) -> super::Subscription {
    match s {
        Subscription::To => super::Subscription::To,
        Subscription::From => super::Subscription::From,
        Subscription::Both => super::Subscription::Both,
        Subscription::None | Subscription::Remove => super::Subscription::None,
    }
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
            expansions: HashMap::new(),
            fetches: HashMap::new(),
            retract_pending: false,
            budget: StanzaBudget::default(),
            pulled: BTreeSet::new(),
            contact_events: HashMap::new(),
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
        self.fetches.clear();
        self.roster_loaded = false;
        self.deferred.clear();
        self.pulled.clear();
        self.contact_events.clear();
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
        let items = Element::builder("pubsub", NS_PUBSUB)
            .append(
                Element::builder("items", NS_PUBSUB)
                    .attr("node".try_into().unwrap(), NS_SHARES)
                    .attr("max_items".try_into().unwrap(), "1")
                    .build(),
            )
            .build();
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

    // ----- commands --------------------------------------------------------

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::SetLocal(entry) => {
                let entry = as_readers_see_it(&self.own, entry);
                if entry != self.local {
                    self.local = entry;
                    self.publish().await;
                }
            }
            Command::AddContact(jid) => {
                self.requested.insert(jid.clone());
                // Pre-approve their subscription to us (RFC 6121 3.4), then
                // ask for theirs.
                self.send(Presence::subscribed().with_to(jid.clone())).await;
                self.send(Presence::subscribe().with_to(jid)).await;
            }
            Command::AcceptContact(jid) => {
                self.send(Presence::subscribed().with_to(jid.clone())).await;
                let subscribed_to_them = self
                    .roster
                    .get(&jid)
                    .is_some_and(|c| c.subscription.we_see_them() || c.pending_out);
                if !subscribed_to_them {
                    self.send(Presence::subscribe().with_to(jid.clone())).await;
                }
                if let Some(c) = self.roster.get_mut(&jid) {
                    c.pending_in = false;
                }
            }
            Command::DeclineContact(jid) => {
                self.send(Presence::new(PresenceType::Unsubscribed).with_to(jid.clone()))
                    .await;
                if let Some(c) = self.roster.get_mut(&jid) {
                    c.pending_in = false;
                }
            }
            Command::Roster(reply) => {
                let _ = reply.send(self.roster.values().cloned().collect());
            }
            Command::Shutdown(reply) => self.begin_shutdown(reply).await,
            Command::Iq {
                to,
                get,
                payload,
                reply,
            } => {
                if self.bound.is_none() {
                    let _ = reply.send(Err("offline".into()));
                } else {
                    self.send_iq(Some(to), get, payload, Pending::External(reply))
                        .await;
                }
            }
            Command::Answer { to, id, answer } => {
                let reply = match answer {
                    Ok(payload) => Iq::Result {
                        from: None,
                        to: Some(to),
                        id,
                        payload: Some(payload),
                    },
                    Err(text) => {
                        let error = StanzaError::new(
                            ErrorType::Cancel,
                            DefinedCondition::NotAcceptable,
                            "en",
                            text,
                        );
                        Iq::Error {
                            from: None,
                            to: Some(to),
                            id,
                            error,
                            payload: None,
                        }
                    }
                };
                self.send(reply).await;
            }
            Command::ServePaths(paths) => self.paths = Some(paths),
        }
    }

    /// A contact's device asks for a punched or relayed connection: only
    /// from a contact whose presence we see (or our own account); the path
    /// layer checks the rest and answers in its own time.
    fn on_path_request(&mut self, from: Option<Jid>, id: String, payload: Element) -> Option<Iq> {
        let refuse = |from, condition| Some(error_reply(id.clone(), from, condition));
        let Some(from_full) = from.clone().and_then(|f| f.try_into_full().ok()) else {
            return refuse(from, DefinedCondition::BadRequest);
        };
        let bare = from_full.to_bare();
        if bare != self.own && !self.is_contact(&bare) {
            return refuse(from, DefinedCondition::Forbidden);
        }
        let Some(paths) = self.paths.clone() else {
            return refuse(from, DefinedCondition::ServiceUnavailable);
        };
        let req = match crate::net::signal::Request::from_element(&payload) {
            Ok(r) => r,
            Err(_) => return refuse(from, DefinedCondition::BadRequest),
        };
        let commands = self.commands.clone();
        tokio::spawn(async move {
            let answer = paths
                .answer(&from_full.to_string(), req)
                .await
                .map(|a| a.to_element());
            let _ = commands.send(Command::Answer {
                to: from_full.into(),
                id,
                answer,
            });
        });
        None
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

    // ----- publishing --------------------------------------------------------

    fn resource(&self) -> &str {
        resource_of(&self.bound)
    }

    /// Publishes the merged item now if we can, or remembers to.
    async fn publish(&mut self) {
        if self.bound.is_none() || self.base.is_none() || self.shutdown.is_some() {
            return; // done after the next connect / own-item fetch
        }
        if self.publish_in_flight {
            self.publish_again = true;
            return;
        }
        let base = self.base.as_ref().expect("checked above");
        let mut item = base.merged(self.resource(), Some(&self.local));
        item.resources
            .retain(|r, _| r == resource_of(&self.bound) || self.own_online.contains(r));
        let resource = self.resource().to_string();
        let mut chunks = None;
        // The pointer to the rest needs a little room in the item. Other
        // resources' entries alone can fill it: with none of our shares
        // moved out there is nothing to point to (readers refuse a pointer
        // to no chunks, so our own item would never read back as sent and
        // we would publish it again and again).
        let fitted = fit_to(&mut item, &resource, self.budget.item_bytes() - 300)
            .filter(|(kept, total)| kept < total);
        if let Some((kept, total)) = fitted {
            match chunks::split_within(&self.local.shares[kept..], self.budget.chunk_bytes()) {
                Some(parts) => {
                    // Of what the chunks hold: when the split point
                    // moves, readers must fetch them again.
                    let version = chunks::version_of(&self.local.shares[kept..]);
                    if let Some(entry) = item.resources.get_mut(&resource) {
                        entry.more = Some(chunks::More {
                            version: version.clone(),
                            chunks: parts.len() as u16,
                            total: total as u32,
                        });
                    }
                    chunks = Some((version, parts));
                }
                None => {
                    tracing::warn!(
                        kept,
                        total,
                        "the share list is too large even for {} chunks; publishing the first {kept} shares",
                        chunks::MAX_CHUNKS
                    );
                    self.events.send(Event::PublishTruncated {
                        published: kept,
                        total,
                    });
                }
            }
        }
        if &item == base && !(self.chunks_stale && chunks.is_some()) {
            return; // the server already holds exactly this
        }
        self.publish_in_flight = true;
        if let Some((version, parts)) = chunks {
            if self.chunks_published.as_ref() != Some(&version) {
                // Sent before the item, so a contact who sees the pointer
                // finds the chunks in place.
                self.chunks_published = None;
                self.chunk_queue = parts
                    .iter()
                    .enumerate()
                    .map(|(i, part)| {
                        let node = chunks::chunk_node(&resource, i as u16 + 1);
                        let payload = publish_payload(&node, chunks::chunk_element(&version, part));
                        (node, payload)
                    })
                    .collect();
                self.item_after_chunks = Some((item, version));
                self.send_next_chunk().await;
                return;
            }
        }
        self.send_publish(item, false).await;
    }

    /// Sends the next chunk of our list, or, after the last, the item.
    async fn send_next_chunk(&mut self) {
        if let Some((node, payload)) = self.chunk_queue.pop_front() {
            self.send_iq(None, false, payload, Pending::ChunkPublish { node })
                .await;
        } else if let Some((item, version)) = self.item_after_chunks.take() {
            self.chunks_published = Some(version);
            self.chunks_stale = false;
            self.send_publish(item, false).await;
        }
    }

    async fn send_publish(&mut self, item: UserShares, retract: bool) {
        let payload = publish_payload(NS_SHARES, to_element(&item));
        let what = if retract {
            Pending::Retract
        } else {
            Pending::Publish {
                item,
                pushes_before: self.pushes,
            }
        };
        self.send_iq(None, false, payload, what).await;
    }

    /// Whether a refused publish should be sent again: it was too large and
    /// the budget could shrink (the list is split again, smaller), or the
    /// server had a passing problem (a few times in a row at most).
    fn may_publish_again(&mut self, error: &StanzaError) -> bool {
        if limits::too_big(error) {
            return self.budget.refused_last();
        }
        if limits::transient(error) && self.publish_retries < PUBLISH_RETRIES {
            self.publish_retries += 1;
            return true;
        }
        false
    }

    /// Our account's item arrived (pushed or fetched).
    async fn on_own_item(&mut self, item: UserShares) {
        let others = item.merged(self.resource(), None);
        self.deliver(self.own.clone(), others).await;
        self.base = Some(item);
        // If another resource's publish raced ours and dropped our entry (or
        // we just connected, or it lists a resource gone offline), this
        // publishes the corrected item; otherwise it does nothing.
        self.publish().await;
    }

    async fn on_publish_result(
        &mut self,
        item: UserShares,
        pushes_before: u64,
        error: Option<String>,
    ) {
        self.publish_in_flight = false;
        match error {
            None => {
                self.publish_retries = 0;
                if self.pushes == pushes_before {
                    self.base = Some(item.clone());
                }
                self.events.send(Event::OwnItemPublished { item });
            }
            Some(reason) => {
                tracing::warn!("publishing our shares failed: {reason}");
                self.events.send(Event::PublishFailed { reason });
            }
        }
        if std::mem::take(&mut self.publish_again) {
            self.publish().await;
        }
    }

    // ----- incoming stanzas ------------------------------------------------

    async fn on_stanza(&mut self, stanza: Stanza) {
        match stanza {
            Stanza::Iq(iq) => self.on_iq(iq).await,
            Stanza::Message(msg) => self.on_message(msg).await,
            Stanza::Presence(p) => self.on_presence(p).await,
        }
    }

    /// Whether `from` may speak for our account or server (IQ results,
    /// roster pushes).
    fn is_own_or_server(&self, from: Option<&Jid>) -> bool {
        match from {
            None => true,
            Some(j) => {
                j.to_bare() == self.own || (j.node().is_none() && j.domain() == self.own.domain())
            }
        }
    }

    /// The request an answer is for, if it comes from whom we asked.
    fn take_pending(&mut self, id: &str, from: Option<&Jid>) -> Option<Pending> {
        let expected = match self.pending.get(id)? {
            Pending::ChunkFetch { jid, .. } | Pending::ContactItem { jid, .. } => {
                from.is_some_and(|f| f.to_bare() == *jid)
            }
            // (Its ids are ours and random; whoever it went to answers.)
            Pending::External(_) => true,
            _ => self.is_own_or_server(from),
        };
        if expected {
            self.budget.answered(id);
            self.pending.remove(id)
        } else {
            None
        }
    }

    async fn on_iq(&mut self, iq: Iq) {
        match iq {
            Iq::Result {
                from, id, payload, ..
            } => {
                if let Some(p) = self.take_pending(&id, from.as_ref()) {
                    self.on_response(p, Ok(payload)).await;
                }
            }
            Iq::Error {
                from, id, error, ..
            } => {
                if let Some(p) = self.take_pending(&id, from.as_ref()) {
                    self.on_response(p, Err(error)).await;
                }
            }
            Iq::Get {
                from, id, payload, ..
            } => {
                let reply = if payload.is("query", ns::DISCO_INFO) {
                    let node = payload.attr("node").map(str::to_string);
                    match self.disco.answer(node.as_deref()) {
                        Some(info) => Iq::from_result(id, Some(info)).with_to_opt(from),
                        None => error_reply(id, from, DefinedCondition::ItemNotFound),
                    }
                } else if payload.is("ping", ns::PING) {
                    Iq::Result {
                        from: None,
                        to: from,
                        id,
                        payload: None,
                    }
                } else {
                    error_reply(id, from, DefinedCondition::ServiceUnavailable)
                };
                self.send(reply).await;
            }
            Iq::Set {
                from, id, payload, ..
            } if payload.is("connect", crate::net::signal::NS_PATHS) => {
                if let Some(refusal) = self.on_path_request(from, id, payload) {
                    self.send(refusal).await;
                }
            }
            Iq::Set {
                from, id, payload, ..
            } => {
                if payload.is("query", ns::ROSTER) && self.is_own_or_server(from.as_ref()) {
                    let seen_before: BTreeSet<BareJid> = self
                        .roster
                        .keys()
                        .filter(|j| self.is_contact(j))
                        .cloned()
                        .collect();
                    self.apply_roster(payload, true);
                    self.send(Iq::Result {
                        from: None,
                        to: from,
                        id,
                        payload: None,
                    })
                    .await;
                    self.show_caps_to_new_contacts(&seen_before).await;
                } else {
                    self.send(error_reply(id, from, DefinedCondition::ServiceUnavailable))
                        .await;
                }
            }
        }
    }

    async fn on_response(&mut self, what: Pending, answer: Result<Option<Element>, StanzaError>) {
        match (what, answer) {
            (Pending::External(reply), answer) => {
                let _ = reply.send(answer.map_err(|e| {
                    let text = e.texts.values().next().cloned().unwrap_or_default();
                    if text.is_empty() {
                        format!("{:?}", e.defined_condition)
                    } else {
                        text
                    }
                }));
            }
            (Pending::Roster, Ok(Some(query))) => {
                self.apply_roster(query, false);
                self.roster_loaded = true;
                for (from, event) in std::mem::take(&mut self.deferred) {
                    self.on_pep_event(from, event).await;
                }
            }
            (Pending::Roster, other) => {
                tracing::warn!("roster request failed: {other:?}");
                self.roster_loaded = true;
            }
            (Pending::OwnItem, Ok(payload)) => {
                let item = payload
                    .as_ref()
                    .and_then(|p| p.get_child("items", NS_PUBSUB))
                    .and_then(|items| items.children().filter(|c| c.is("item", NS_PUBSUB)).last())
                    .and_then(|item| item.children().next())
                    .and_then(|el| parse_user_shares(el, &self.own.to_string()).ok())
                    .map(|p| p.item)
                    .unwrap_or_default();
                self.on_own_item(item).await;
            }
            (Pending::ContactItem { jid, events }, Ok(Some(payload))) => {
                if self.contact_events.get(&jid).copied().unwrap_or(0) != events {
                    return; // an item was pushed meanwhile: as new as this one
                }
                let Some(item) = payload
                    .get_child("items", NS_PUBSUB)
                    .and_then(|items| items.children().filter(|c| c.is("item", NS_PUBSUB)).last())
                    .and_then(|item| item.children().next())
                else {
                    return;
                };
                match parse_user_shares(item, &jid.to_string()) {
                    Ok(p) => {
                        if !p.rejections.is_empty() {
                            self.events.send(Event::InvalidEntries {
                                jid: jid.to_string(),
                                reasons: p.rejections.iter().map(ToString::to_string).collect(),
                            });
                        }
                        self.deliver(jid, p.item).await;
                    }
                    Err(e) => {
                        tracing::warn!(contact = %jid, "ignoring an item we cannot read: {e}");
                    }
                }
            }
            (Pending::ContactItem { jid, .. }, answer) => {
                // Nothing published (item-not-found), or not for us to see.
                tracing::debug!(contact = %jid, "no current item to fetch: {answer:?}");
            }
            (Pending::OwnItem, Err(e)) => {
                // item-not-found: we never published; start from nothing.
                tracing::debug!("no own item yet ({:?})", e.defined_condition);
                self.on_own_item(UserShares::default()).await;
            }
            (Pending::ChunkPublish { .. }, Ok(_)) => self.send_next_chunk().await,
            (Pending::ChunkPublish { node }, Err(e)) => {
                let reason = format!(
                    "the server refused part of our share list ({node}): {:?}",
                    e.defined_condition
                );
                tracing::warn!("{reason}");
                self.chunk_queue.clear();
                let item = self.item_after_chunks.take();
                self.chunks_published = None;
                self.chunks_stale = true;
                if self.may_publish_again(&e) {
                    self.publish_in_flight = false;
                    self.publish().await;
                } else {
                    // The item still goes out: the part of the list in it
                    // is readable; the rest is published again with the
                    // next change.
                    self.events.send(Event::PublishFailed { reason });
                    match item {
                        Some((item, _)) => self.send_publish(item, false).await,
                        None => self.publish_in_flight = false,
                    }
                }
            }
            (
                Pending::ChunkFetch {
                    jid,
                    resource,
                    version,
                    n,
                },
                answer,
            ) => {
                let shares = answer.ok().flatten().and_then(|payload| {
                    let chunk = payload
                        .get_child("items", NS_PUBSUB)?
                        .children()
                        .find(|c| c.is("item", NS_PUBSUB))?
                        .children()
                        .next()?;
                    chunks::shares_of_chunk(chunk, &version)
                });
                self.on_chunk(jid, resource, version, n, shares).await;
            }
            (Pending::Retract, answer) => {
                if let Err(e) = answer {
                    tracing::warn!("retracting our shares failed: {:?}", e.defined_condition);
                }
                self.retract_pending = false;
            }
            (
                Pending::Publish {
                    item,
                    pushes_before,
                },
                Ok(_),
            ) => self.on_publish_result(item, pushes_before, None).await,
            (
                Pending::Publish {
                    item,
                    pushes_before,
                },
                Err(e),
            ) => {
                let text = e.texts.values().next().cloned().unwrap_or_default();
                let reason = format!(
                    "the server refused our publish: {:?} {text}",
                    e.defined_condition
                );
                if self.may_publish_again(&e) {
                    tracing::warn!("{reason}; publishing again");
                    self.publish_in_flight = false;
                    self.publish().await;
                } else {
                    self.on_publish_result(item, pushes_before, Some(reason))
                        .await
                }
            }
        }
    }

    fn apply_roster(&mut self, query: Element, push: bool) {
        let roster = match Roster::try_from(query) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("ignoring a roster we could not read: {e}");
                return;
            }
        };
        if !push {
            self.roster.clear();
        }
        for item in roster.items {
            if item.subscription == Subscription::Remove {
                self.roster.remove(&item.jid);
                self.expansions.retain(|(j, _), _| *j != item.jid);
                self.fetches.retain(|(j, _), _| *j != item.jid);
                continue;
            }
            // A request from them is only pending while they do not see our
            // presence yet.
            let they_see_us = matches!(item.subscription, Subscription::From | Subscription::Both);
            let pending_in =
                !they_see_us && self.roster.get(&item.jid).is_some_and(|c| c.pending_in);
            self.roster.insert(
                item.jid.clone(),
                Contact {
                    jid: item.jid.to_string(),
                    name: item.name.clone(),
                    subscription: ours(&item.subscription),
                    pending_out: item.ask == Ask::Subscribe,
                    pending_in,
                },
            );
        }
        self.events.send(Event::RosterChanged);
    }

    /// Sends our presence with caps to each contact whose presence we see
    /// since this roster push (they accepted us): ejabberd learns a
    /// contact's caps, and so whom to send our PEP items, only from a
    /// presence of theirs that arrives while they may see ours. Theirs came
    /// when they accepted, before our side of the subscription was
    /// complete, and was not kept; so this one makes them receive our items
    /// (see docs/PROTOCOL.md, "Server notes").
    async fn show_caps_to_new_contacts(&mut self, seen_before: &BTreeSet<BareJid>) {
        let new: Vec<BareJid> = self
            .roster
            .keys()
            .filter(|j| self.is_contact(j) && !seen_before.contains(*j))
            .cloned()
            .collect();
        for jid in new {
            tracing::debug!(contact = %jid, "showing our caps to a new contact");
            let presence = Presence::available()
                .with_to(jid)
                .with_payload(self.disco.caps());
            self.send(presence).await;
        }
    }

    /// Whether we see `jid`'s presence (so the server sends us their PEP).
    fn is_contact(&self, jid: &BareJid) -> bool {
        self.roster
            .get(jid)
            .is_some_and(|c| c.subscription.we_see_them())
    }

    async fn on_presence(&mut self, p: Presence) {
        let Some(from) = p.from.clone() else { return };
        let bare = from.to_bare();
        match p.type_ {
            PresenceType::None | PresenceType::Unavailable => {
                let Some(resource) = from.resource() else {
                    return;
                };
                if Some(&from) == self.bound.as_ref().map(|b| Jid::from(b.clone())).as_ref() {
                    return;
                }
                if bare != self.own && !self.is_contact(&bare) {
                    return;
                }
                let online = p.type_ == PresenceType::None;
                if online && bare != self.own && self.pulled.insert(bare.clone()) {
                    self.pull_item(bare.clone()).await;
                }
                if bare == self.own {
                    if online {
                        self.own_online.insert(resource.to_string());
                    } else {
                        self.own_online.remove(resource.as_str());
                        self.publish().await;
                    }
                }
                if self
                    .catalog
                    .set_online(&bare.to_string(), resource.as_str(), online)
                {
                    self.events.send(Event::ContactPresenceChanged {
                        jid: bare.to_string(),
                        resource: resource.to_string(),
                        online,
                    });
                }
            }
            PresenceType::Subscribe => {
                let expected = self.requested.contains(&bare)
                    || self
                        .roster
                        .get(&bare)
                        .is_some_and(|c| c.pending_out || c.subscription.we_see_them());
                if expected {
                    tracing::info!(contact = %bare, "accepting the subscription of a contact we asked");
                    self.send(Presence::subscribed().with_to(bare)).await;
                } else {
                    if let Some(c) = self.roster.get_mut(&bare) {
                        c.pending_in = true;
                    } else {
                        self.roster.insert(
                            bare.clone(),
                            Contact {
                                jid: bare.to_string(),
                                name: None,
                                subscription: super::Subscription::None,
                                pending_out: false,
                                pending_in: true,
                            },
                        );
                    }
                    self.events.send(Event::SubscriptionRequest {
                        jid: bare.to_string(),
                    });
                }
            }
            _ => {}
        }
    }

    /// Asks for a contact's current item, once per session, when their
    /// presence first comes in. The server pushes it too, but ejabberd only
    /// when the contact's session has already verified our caps (the first
    /// login of a client version on a server misses it) and has our
    /// presence; asking costs one request and makes receiving independent
    /// of that (docs/PROTOCOL.md, "Server notes").
    async fn pull_item(&mut self, jid: BareJid) {
        let events = self.contact_events.get(&jid).copied().unwrap_or(0);
        let items = Element::builder("pubsub", NS_PUBSUB)
            .append(
                Element::builder("items", NS_PUBSUB)
                    .attr("node".try_into().unwrap(), NS_SHARES)
                    .attr("max_items".try_into().unwrap(), "1")
                    .build(),
            )
            .build();
        let what = Pending::ContactItem {
            jid: jid.clone(),
            events,
        };
        self.send_iq(Some(jid.into()), true, items, what).await;
    }

    async fn on_message(&mut self, msg: Message) {
        let Some(from) = msg.from.clone() else { return };
        // PEP events come from the publisher's bare JID.
        if from.resource().is_some() {
            return;
        }
        let bare = from.to_bare();
        for payload in msg.payloads {
            if payload.is("event", NS_PUBSUB_EVENT) {
                self.on_pep_event(bare.clone(), payload).await;
            }
        }
    }

    async fn on_pep_event(&mut self, from: BareJid, event: Element) {
        // Only the shares node concerns us.
        let ours = event.children().any(|c| c.attr("node") == Some(NS_SHARES));
        if !ours {
            return;
        }
        if from != self.own {
            if !self.roster_loaded {
                self.deferred.push((from, event));
                return;
            }
            if !self.is_contact(&from) {
                tracing::warn!(%from, "ignoring shares from a JID that is not our contact");
                return;
            }
        }
        if from != self.own {
            *self.contact_events.entry(from.clone()).or_default() += 1;
        }
        let Some(item) = self.read_event(&from, &event) else {
            return;
        };
        if from == self.own {
            self.pushes += 1;
            self.on_own_item(item).await;
        } else {
            self.deliver(from, item).await;
        }
    }

    /// Puts a contact's item into the catalog, with the rest of any list
    /// that did not fit in it: from the chunks we fetched for that version,
    /// or fetched now (the catalog is updated again when they arrive).
    async fn deliver(&mut self, jid: BareJid, raw: UserShares) {
        // What belonged to resources this item no longer lists goes now (a
        // contact cycling resource names cannot make us keep more).
        self.expansions
            .retain(|(j, r), _| *j != jid || raw.resources.contains_key(r));
        self.fetches
            .retain(|(j, r), _| *j != jid || raw.resources.contains_key(r));
        let mut rests = BTreeMap::new();
        let mut to_fetch = Vec::new();
        for (resource, entry) in &raw.resources {
            let Some(more) = &entry.more else {
                continue;
            };
            let key = (jid.clone(), resource.clone());
            match self.expansions.get(&key) {
                Some((version, rest)) if *version == more.version => {
                    rests.insert(resource.clone(), rest.clone());
                }
                _ => {
                    let under_way = self
                        .fetches
                        .get(&key)
                        .is_some_and(|f| f.version == more.version);
                    if !under_way {
                        to_fetch.push((resource.clone(), more.clone()));
                    }
                }
            }
        }
        for (resource, more) in to_fetch {
            let limit = self.room_for(&jid, &resource, &raw);
            self.fetch_chunks(&jid, &resource, &more, limit).await;
        }
        if self.catalog.replace_expanded(&jid.to_string(), raw, &rests) {
            self.events.send(Event::ContactSharesChanged {
                jid: jid.to_string(),
            });
        }
        // What parsing the item (or its chunks) and packing its lists left
        // freed, and any entry it replaced: give those pages back now.
        crate::memory::release_free_memory();
    }

    /// How many shares the chunks of `jid/resource` may still add: the
    /// contact's bound less what its item and its other resources hold.
    fn room_for(&self, jid: &BareJid, resource: &str, raw: &UserShares) -> usize {
        let in_item: usize = raw.resources.values().map(|e| e.shares.len()).sum();
        let elsewhere: usize = self
            .expansions
            .iter()
            .filter(|((j, r), _)| j == jid && r != resource)
            .map(|(_, (_, rest))| rest.len())
            .chain(
                self.fetches
                    .iter()
                    .filter(|((j, r), _)| j == jid && r != resource)
                    .map(|(_, f)| f.limit),
            )
            .sum();
        MAX_CONTACT_SHARES
            .saturating_sub(in_item + elsewhere)
            .min(chunks::MAX_SHARES)
    }

    async fn fetch_chunks(
        &mut self,
        jid: &BareJid,
        resource: &str,
        more: &chunks::More,
        limit: usize,
    ) {
        tracing::debug!(contact = %jid, resource, chunks = more.chunks, "fetching the rest of a large share list");
        self.fetches.insert(
            (jid.clone(), resource.to_string()),
            Fetch {
                version: more.version.clone(),
                expected: more.chunks,
                got: BTreeMap::new(),
                kept: 0,
                limit,
                failed: false,
            },
        );
        for n in 1..=more.chunks {
            let payload = Element::builder("pubsub", NS_PUBSUB)
                .append(
                    Element::builder("items", NS_PUBSUB)
                        .attr("node".try_into().unwrap(), chunks::chunk_node(resource, n))
                        .attr("max_items".try_into().unwrap(), "1")
                        .build(),
                )
                .build();
            let what = Pending::ChunkFetch {
                jid: jid.clone(),
                resource: resource.to_string(),
                version: more.version.clone(),
                n,
            };
            self.send_iq(Some(jid.clone().into()), true, payload, what)
                .await;
        }
    }

    /// One chunk arrived (or could not be had).
    async fn on_chunk(
        &mut self,
        jid: BareJid,
        resource: String,
        version: String,
        n: u16,
        shares: Option<Vec<Share>>,
    ) {
        let key = (jid.clone(), resource.clone());
        let Some(fetch) = self.fetches.get_mut(&key).filter(|f| f.version == version) else {
            return; // a newer list replaced this one meanwhile
        };
        match shares {
            Some(mut s) => {
                s.truncate(fetch.limit - fetch.kept);
                fetch.kept += s.len();
                fetch.got.insert(n, s);
            }
            None => fetch.failed = true,
        }
        if !fetch.failed && fetch.got.len() < usize::from(fetch.expected) {
            return;
        }
        let fetch = self.fetches.remove(&key).expect("looked up above");
        if fetch.failed {
            // If the contact published a newer list meanwhile, its chunks
            // replaced the ones we asked for: fetch the current ones.
            let raw = self.catalog.reader().received(&jid.to_string());
            let current = raw
                .as_ref()
                .and_then(|raw| raw.resources.get(&resource))
                .and_then(|entry| entry.more.as_ref())
                .map(|more| more.version.clone());
            match (current, raw) {
                (Some(v), Some(raw)) if v != version => {
                    Box::pin(self.deliver(jid, raw)).await;
                }
                _ => {
                    tracing::warn!(contact = %jid, %resource, "could not fetch the rest of a large share list; showing the part that fit in the item");
                }
            }
            return;
        }
        let rest: Vec<Share> = fetch.got.into_values().flatten().collect();
        let rest = Arc::new(PackedShares::new(&rest));
        self.expansions.insert(key, (version, rest));
        if let Some(raw) = self.catalog.reader().received(&jid.to_string()) {
            Box::pin(self.deliver(jid, raw)).await;
        }
    }

    /// The item an event carries: the last published item; an empty item
    /// for a retraction, purge or delete; `None` when we cannot read it
    /// (then nothing we know changes).
    fn read_event(&self, from: &BareJid, event: &Element) -> Option<UserShares> {
        for child in event.children() {
            if child.attr("node") != Some(NS_SHARES) {
                continue;
            }
            if child.is("purge", NS_PUBSUB_EVENT) || child.is("delete", NS_PUBSUB_EVENT) {
                return Some(UserShares::default());
            }
            if child.is("items", NS_PUBSUB_EVENT) {
                let last = child
                    .children()
                    .filter(|c| c.is("item", NS_PUBSUB_EVENT) || c.is("retract", NS_PUBSUB_EVENT))
                    .last()?;
                if last.is("retract", NS_PUBSUB_EVENT) {
                    return Some(UserShares::default());
                }
                let Some(payload) = last.children().next() else {
                    tracing::warn!(contact = %from, "shares item without payload; ignored");
                    return None;
                };
                return match parse_user_shares(payload, &from.to_string()) {
                    Ok(p) => {
                        if !p.rejections.is_empty() {
                            self.events.send(Event::InvalidEntries {
                                jid: from.to_string(),
                                reasons: p.rejections.iter().map(ToString::to_string).collect(),
                            });
                        }
                        Some(p.item)
                    }
                    Err(e) => {
                        tracing::warn!(contact = %from, "ignoring an item we cannot read: {e}");
                        None
                    }
                };
            }
        }
        None
    }
}

/// `<pubsub><publish node><item id="current">payload</item></publish></pubsub>`.
fn publish_payload(node: &str, payload: Element) -> Element {
    Element::builder("pubsub", NS_PUBSUB)
        .append(
            Element::builder("publish", NS_PUBSUB)
                .attr("node".try_into().unwrap(), node)
                .append(
                    Element::builder("item", NS_PUBSUB)
                        .attr("id".try_into().unwrap(), "current")
                        .append(payload)
                        .build(),
                )
                .build(),
        )
        .build()
}

/// `entry` as a reader of our item will see it (values dropped or changed
/// by the parser are dropped or changed here too), so comparing a pushed own
/// item with it cannot disagree forever.
fn as_readers_see_it(own: &BareJid, entry: ResourceShares) -> ResourceShares {
    let mut item = UserShares::default();
    item.resources.insert("r".into(), entry);
    parse_user_shares(&to_element(&item), &own.to_string())
        .ok()
        .and_then(|mut p| p.item.resources.remove("r"))
        .unwrap_or_default()
}

trait WithToOpt {
    fn with_to_opt(self, to: Option<Jid>) -> Self;
}

impl WithToOpt for Iq {
    fn with_to_opt(mut self, to: Option<Jid>) -> Self {
        *self.to_mut() = to;
        self
    }
}
