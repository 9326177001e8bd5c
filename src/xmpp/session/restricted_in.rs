//! Contacts' restricted lists for us (issue 18; docs/PROTOCOL.md,
//! "Restricted lists"): each contact may keep, on their PEP service, a node
//! only we may read (`reader_node` of our bare JID) with the shares they
//! show to us alone or to a group of ours. We fetch it once per session for
//! every contact we see (the owner may be offline: the server answers for
//! them), for a contact who becomes one, and whenever they send a
//! `<changed/>` notice; what it lists is added to their public list in the
//! catalog. Their notice carries nothing but the fact of a change, so a
//! forged one costs one fetch, and notices in a row at most one fetch
//! every two seconds. (Not our own restricted lists:
//! `crate::restricted`.)

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use minidom::Element;
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::parsers::message::{Message, MessageType};
use tokio_xmpp::parsers::stanza_error::{ErrorType, StanzaError};

use super::iq::Pending;
use super::{pubsub, Session};
use crate::shares::{parse_user_shares, reader_node, UserShares, NS_RESTRICTED};
use crate::xmpp::Command;

/// The shortest time between two fetches of one contact's restricted list
/// that their notices cause.
const NOTICE_GAP: Duration = Duration::from_secs(2);

impl Session {
    /// Asks every contact we see for their restricted list for us.
    pub(super) async fn fetch_all_restricted(&mut self) {
        let contacts: Vec<BareJid> = self
            .roster
            .keys()
            .filter(|j| self.is_contact(j))
            .cloned()
            .collect();
        for jid in contacts {
            self.fetch_restricted(jid).await;
        }
    }

    /// Asks `jid` for their restricted list for us (once more after the
    /// answer, if a fetch is already on its way: notices coalesce).
    pub(super) async fn fetch_restricted(&mut self, jid: BareJid) {
        if self.bound.is_none() {
            return;
        }
        if self.restricted_fetching.contains_key(&jid) {
            self.restricted_again.insert(jid);
            return;
        }
        self.restricted_fetching.insert(jid.clone(), Instant::now());
        let payload = pubsub::fetch_current(&reader_node(&self.own.to_string()));
        let what = Pending::RestrictedItem { jid: jid.clone() };
        self.send_iq(Some(jid.into()), true, payload, what).await;
    }

    /// A message from a contact saying their restricted list for us
    /// changed: fetch it.
    pub(super) async fn on_restricted_notice(&mut self, msg: &Message) -> bool {
        let notice = msg.payloads.iter().any(|p| p.is("changed", NS_RESTRICTED));
        if !notice {
            return false;
        }
        if let Some(from) = &msg.from {
            let bare = from.to_bare();
            if self.is_contact(&bare) {
                tracing::debug!(contact = %bare, "their restricted list for us changed");
                self.fetch_restricted(bare).await;
            }
        }
        true
    }

    /// The answer to our fetch of `jid`'s restricted list for us.
    pub(super) async fn on_restricted_answer(
        &mut self,
        jid: BareJid,
        answer: Result<Option<Element>, StanzaError>,
    ) {
        let started = self.restricted_fetching.remove(&jid);
        let item = match answer {
            Ok(payload) => payload
                .as_ref()
                .and_then(|p| pubsub::answered_payloads(p).last().flatten())
                .and_then(|el| match parse_user_shares(el, &jid.to_string()) {
                    Ok(p) => Some(p.item),
                    Err(e) => {
                        tracing::warn!(contact = %jid, "ignoring a restricted list we cannot read: {e}");
                        None
                    }
                })
                .unwrap_or_default(),
            // Try again later; keep what we know meanwhile.
            Err(e) if e.type_ == ErrorType::Wait => {
                tracing::debug!(contact = %jid, "their restricted list is not available now: {:?}", e.defined_condition);
                return;
            }
            // item-not-found, forbidden, not-allowed, ...: nothing for us.
            Err(_) => UserShares::default(),
        };
        self.set_restricted_in(jid.clone(), item).await;
        if self.restricted_again.remove(&jid) {
            // Notices that came meanwhile: one more fetch, not sooner than
            // NOTICE_GAP after this one (a contact sending notices by the
            // thousand gets a fetch every NOTICE_GAP, no more).
            let wait = started.map_or(Duration::ZERO, |t| NOTICE_GAP.saturating_sub(t.elapsed()));
            if wait.is_zero() {
                self.fetch_restricted(jid).await;
            } else {
                self.restricted_fetching.insert(jid.clone(), Instant::now());
                let commands = self.commands.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = commands.send(Command::FetchRestricted(jid));
                });
            }
        }
    }

    /// The delayed fetch of [`on_restricted_answer`](Self::on_restricted_answer).
    pub(super) async fn fetch_restricted_again(&mut self, jid: BareJid) {
        self.restricted_fetching.remove(&jid);
        if self.is_contact(&jid) {
            self.fetch_restricted(jid).await;
        }
    }

    /// Holds `item` as `jid`'s restricted list for us, and shows their
    /// lists again with it.
    async fn set_restricted_in(&mut self, jid: BareJid, mut item: UserShares) {
        // (A restricted list is one item: a pointer to chunks is not
        // followed.)
        for entry in item.resources.values_mut() {
            entry.more = None;
        }
        item.resources.retain(|_, e| !e.shares.is_empty());
        if self.restricted_in.get(&jid).cloned().unwrap_or_default() == item {
            return;
        }
        let hashes: BTreeSet<_> = item
            .resources
            .values()
            .flat_map(|e| e.shares.iter().map(|s| s.hash))
            .collect();
        tracing::debug!(contact = %jid, shares = hashes.len(), "their restricted list for us");
        // (Taken before the list changes: see `public_item`.)
        let public = self.public_item(&jid).unwrap_or_default();
        self.catalog.set_restricted(&jid.to_string(), hashes);
        if item.resources.is_empty() {
            self.restricted_in.remove(&jid);
        } else {
            self.restricted_in.insert(jid.clone(), item);
        }
        self.deliver(jid, public).await;
    }

    /// `jid`'s public item as last received: held apart while they have a
    /// restricted list for us, else the catalog's item as received.
    pub(super) fn public_item(&self, jid: &BareJid) -> Option<UserShares> {
        match self.public_in.get(jid) {
            Some(item) => Some(item.clone()),
            None if !self.restricted_in.contains_key(jid) => {
                self.catalog.reader().received(&jid.to_string())
            }
            None => None,
        }
    }

    /// Forgets what `jid` showed us (they left the roster).
    pub(super) fn forget_restricted(&mut self, jid: &BareJid) {
        self.restricted_in.remove(jid);
        self.public_in.remove(jid);
        self.catalog
            .set_restricted(&jid.to_string(), BTreeSet::new());
    }

    /// Tells `to` that our restricted list for them changed: a headline to
    /// their bare JID (the server hands it to each online resource and
    /// keeps none for later: they fetch at login anyway).
    pub(super) async fn send_notice(&mut self, to: BareJid) {
        if self.bound.is_none() {
            return;
        }
        let mut msg = Message::new(Some(to.into()));
        msg.type_ = MessageType::Headline;
        msg.payloads
            .push(Element::builder("changed", NS_RESTRICTED).build());
        self.send(msg).await;
    }
}

/// `public` with the shares of `restricted` added: each resource's
/// restricted shares that its public entry does not list, and a resource
/// found only in `restricted` with the addresses given there.
pub(super) fn with_restricted(
    mut public: UserShares,
    restricted: Option<&UserShares>,
) -> UserShares {
    let Some(restricted) = restricted else {
        return public;
    };
    for (resource, entry) in &restricted.resources {
        let into = public.resources.entry(resource.clone()).or_insert_with(|| {
            crate::shares::ResourceShares {
                shares: Vec::new(),
                addresses: entry.addresses.clone(),
                more: None,
            }
        });
        for share in &entry.shares {
            if !into.shares.iter().any(|s| s.hash == share.hash) {
                into.shares.push(share.clone());
            }
        }
    }
    public
}
