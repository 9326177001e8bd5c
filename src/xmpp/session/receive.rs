//! Receiving share lists: PEP events and fetched items of our contacts (and
//! of our own account's other resources) into the catalog, with the rest of
//! a list too large for one item fetched from its chunks. (Not who is a
//! contact: `roster`; not our own publishing: `publish`.)

use minidom::Element;
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::parsers::message::Message;
use tokio_xmpp::parsers::stanza_error::StanzaError;

use super::collector::Chunked;
use super::iq::Pending;
use super::restricted_in::with_restricted;
use super::{pubsub, Session, NS_PUBSUB_EVENT};
use crate::events::Event;
use crate::shares::{chunks, parse_user_shares, Share, UserShares};
use crate::NS_SHARES;

impl Session {
    /// Asks for a contact's current item, once per session, when their
    /// presence first comes in. The server pushes it too, but ejabberd only
    /// when the contact's session has already verified our caps (the first
    /// login of a client version on a server misses it) and has our
    /// presence; asking costs one request and makes receiving independent
    /// of that (docs/PROTOCOL.md, "Server notes").
    pub(super) async fn pull_item(&mut self, jid: BareJid) {
        let events = self.contact_events.get(&jid).copied().unwrap_or(0);
        let items = pubsub::fetch_current(NS_SHARES);
        let what = Pending::ContactItem {
            jid: jid.clone(),
            events,
        };
        self.send_iq(Some(jid.into()), true, items, what).await;
    }

    pub(super) async fn on_message(&mut self, msg: Message) {
        let Some(from) = msg.from.clone() else { return };
        if self.on_restricted_notice(&msg).await {
            return;
        }
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

    pub(super) async fn on_pep_event(&mut self, from: BareJid, event: Element) {
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
    pub(super) async fn deliver(&mut self, jid: BareJid, raw: UserShares) {
        let raw = match self.restricted_in.get(&jid) {
            Some(restricted) => {
                self.public_in.insert(jid.clone(), raw.clone());
                with_restricted(raw, Some(restricted))
            }
            None => {
                self.public_in.remove(&jid);
                raw
            }
        };
        let plan = self.chunks.item(&jid, &raw);
        for (resource, more) in &plan.fetch {
            tracing::debug!(contact = %jid, resource, chunks = more.chunks, "fetching the rest of a large share list");
            for n in 1..=more.chunks {
                let payload = pubsub::fetch_current(&chunks::chunk_node(resource, n));
                let what = Pending::ChunkFetch {
                    jid: jid.clone(),
                    resource: resource.clone(),
                    version: more.version.clone(),
                    n,
                };
                self.send_iq(Some(jid.clone().into()), true, payload, what)
                    .await;
            }
        }
        if self
            .catalog
            .replace_expanded(&jid.to_string(), raw, &plan.expand)
        {
            self.events.send(Event::ContactSharesChanged {
                jid: jid.to_string(),
            });
        }
        // What parsing the item (or its chunks) and packing its lists left
        // freed, and any entry it replaced: give those pages back now.
        crate::memory::release_free_memory();
    }

    /// The answer to our request for a contact's current item.
    pub(super) async fn on_contact_item_answer(
        &mut self,
        jid: BareJid,
        events: u64,
        answer: Result<Option<Element>, StanzaError>,
    ) {
        let payload = match answer {
            Ok(Some(payload)) => payload,
            answer => {
                // Nothing published (item-not-found), or not for us to see.
                tracing::debug!(contact = %jid, "no current item to fetch: {answer:?}");
                return;
            }
        };
        if self.contact_events.get(&jid).copied().unwrap_or(0) != events {
            return; // an item was pushed meanwhile: as new as this one
        }
        let Some(item) = pubsub::answered_payloads(&payload).last().flatten() else {
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

    /// The answer to our request for chunk `n` of a contact resource's list.
    pub(super) async fn on_chunk_answer(
        &mut self,
        jid: BareJid,
        resource: String,
        version: String,
        n: u16,
        answer: Result<Option<Element>, StanzaError>,
    ) {
        let shares = answer.ok().flatten().and_then(|payload| {
            let chunk = pubsub::answered_payloads(&payload).next().flatten()?;
            chunks::shares_of_chunk(chunk, &version)
        });
        self.on_chunk(jid, resource, version, n, shares).await;
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
        let outcome = self.chunks.chunk(&jid, &resource, &version, n, shares);
        if outcome == Chunked::Failed {
            tracing::warn!(contact = %jid, %resource, "could not fetch the rest of a large share list; showing the part that fit in the item");
        }
        if outcome.deliver_again() {
            if let Some(raw) = self.public_item(&jid) {
                Box::pin(self.deliver(jid, raw)).await;
            }
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
