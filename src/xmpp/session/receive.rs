//! Receiving share lists: PEP events and fetched items of our contacts (and
//! of our own account's other resources) into the catalog, with the rest of
//! a list too large for one item fetched from its chunks. (Not who is a
//! contact: `roster`; not our own publishing: `publish`.)

use std::collections::BTreeMap;
use std::sync::Arc;

use minidom::Element;
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::parsers::message::Message;
use tokio_xmpp::parsers::stanza_error::StanzaError;

use super::iq::Pending;
use super::{Session, NS_PUBSUB, NS_PUBSUB_EVENT};
use crate::events::Event;
use crate::shares::{chunks, parse_user_shares, PackedShares, Share, UserShares};
use crate::NS_SHARES;

/// A contact resource's list chunks being fetched.
#[derive(Debug)]
pub(super) struct Fetch {
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

impl Session {
    /// Asks for a contact's current item, once per session, when their
    /// presence first comes in. The server pushes it too, but ejabberd only
    /// when the contact's session has already verified our caps (the first
    /// login of a client version on a server misses it) and has our
    /// presence; asking costs one request and makes receiving independent
    /// of that (docs/PROTOCOL.md, "Server notes").
    pub(super) async fn pull_item(&mut self, jid: BareJid) {
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

    pub(super) async fn on_message(&mut self, msg: Message) {
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
