//! The roster, presences and subscriptions: who our contacts are, which
//! of their resources (and of our own account's) are online, subscription
//! requests, and our caps shown to a new contact. (Not their items:
//! `receive`.)

use std::collections::BTreeSet;

use minidom::Element;
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::parsers::roster::{Ask, Roster, Subscription};
use tokio_xmpp::parsers::stanza_error::StanzaError;

use tokio::sync::oneshot;
use tokio_xmpp::parsers::ns;

use super::iq::{error_text, Pending};
use super::Session;
use crate::events::Event;
use crate::xmpp::{self, Contact};

/// Our roster's view of a subscription (the wire's `remove` never gets
/// here: such items leave the roster).
fn ours(s: &Subscription) -> xmpp::Subscription {
    match s {
        Subscription::To => xmpp::Subscription::To,
        Subscription::From => xmpp::Subscription::From,
        Subscription::Both => xmpp::Subscription::Both,
        Subscription::None | Subscription::Remove => xmpp::Subscription::None,
    }
}

impl Session {
    /// The roster, as asked for after a connect: PEP events held back until
    /// it came are handled now.
    pub(super) async fn on_roster_answer(&mut self, answer: Result<Option<Element>, StanzaError>) {
        match answer {
            Ok(Some(query)) => {
                self.apply_roster(query, false);
                self.roster_loaded = true;
                for (from, event) in std::mem::take(&mut self.deferred) {
                    self.on_pep_event(from, event).await;
                }
                self.fetch_all_restricted().await;
            }
            other => {
                tracing::warn!("roster request failed: {other:?}");
                self.roster_loaded = true;
            }
        }
    }

    pub(super) fn apply_roster(&mut self, query: Element, push: bool) {
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
                self.chunks.forget(&item.jid);
                self.forget_restricted(&item.jid);
                continue;
            }
            // A request from them is only pending while they do not see our
            // presence yet.
            let they_see_us = matches!(item.subscription, Subscription::From | Subscription::Both);
            let pending_in =
                !they_see_us && self.roster.get(&item.jid).is_some_and(|c| c.pending_in);
            let mut groups: Vec<String> = item
                .groups
                .iter()
                .map(|g| g.0.clone())
                .filter(|g| !g.is_empty())
                .collect();
            groups.sort();
            groups.dedup();
            self.roster.insert(
                item.jid.clone(),
                Contact {
                    jid: item.jid.to_string(),
                    name: item.name.clone(),
                    subscription: ours(&item.subscription),
                    pending_out: item.ask == Ask::Subscribe,
                    pending_in,
                    groups,
                },
            );
        }
        self.events.send(Event::RosterChanged);
    }

    /// Asks the server to put the contact `jid` in exactly `groups` (a
    /// roster set naming the item's name and groups, and no subscription:
    /// RFC 6121 2.1.5); the server's answer goes to `reply`. The roster
    /// push that follows updates our roster.
    pub(super) async fn set_groups(
        &mut self,
        jid: BareJid,
        groups: Vec<String>,
        reply: oneshot::Sender<Result<(), String>>,
    ) {
        let Some(contact) = self.roster.get(&jid) else {
            let _ = reply.send(Err(format!("{jid} is not in your contacts")));
            return;
        };
        if self.bound.is_none() {
            let _ = reply.send(Err(
                "offline: groups can be changed once connected to the server".into(),
            ));
            return;
        }
        let mut item = Element::builder("item", ns::ROSTER)
            .attr("jid".try_into().expect("a name"), jid.to_string());
        if let Some(name) = &contact.name {
            item = item.attr("name".try_into().expect("a name"), name.as_str());
        }
        for group in &groups {
            item = item.append(Element::builder("group", ns::ROSTER).append(group.as_str()));
        }
        let query = Element::builder("query", ns::ROSTER).append(item).build();
        let pending = Pending::SetGroups { jid, groups, reply };
        self.send_iq(None, false, query, pending).await;
    }

    /// The server's answer to our roster set: once it took the groups, our
    /// roster has them at once (its roster push may come a moment later),
    /// so a change made right after starts from them.
    pub(super) fn on_groups_set(
        &mut self,
        jid: BareJid,
        mut groups: Vec<String>,
        reply: oneshot::Sender<Result<(), String>>,
        answer: Result<Option<Element>, StanzaError>,
    ) {
        let result = match answer {
            Ok(_) => {
                groups.sort();
                groups.dedup();
                if let Some(c) = self.roster.get_mut(&jid) {
                    c.groups = groups;
                    self.events.send(Event::RosterChanged);
                }
                Ok(())
            }
            Err(e) => Err(format!(
                "the server refused the change of groups: {}",
                error_text(&e)
            )),
        };
        let _ = reply.send(result);
    }

    /// Sends our presence with caps to each contact whose presence we see
    /// since this roster push (they accepted us): ejabberd learns a
    /// contact's caps, and so whom to send our PEP items, only from a
    /// presence of theirs that arrives while they may see ours. Theirs came
    /// when they accepted, before our side of the subscription was
    /// complete, and was not kept; so this one makes them receive our items
    /// (see docs/PROTOCOL.md, "Server notes").
    pub(super) async fn show_caps_to_new_contacts(&mut self, seen_before: &BTreeSet<BareJid>) {
        let new: Vec<BareJid> = self
            .roster
            .keys()
            .filter(|j| self.is_contact(j) && !seen_before.contains(*j))
            .cloned()
            .collect();
        for jid in new {
            self.fetch_restricted(jid.clone()).await;
            tracing::debug!(contact = %jid, "showing our caps to a new contact");
            let presence = Presence::available()
                .with_to(jid)
                .with_payload(self.disco.caps());
            self.send(presence).await;
        }
    }

    /// Whether we see `jid`'s presence (so the server sends us their PEP).
    pub(super) fn is_contact(&self, jid: &BareJid) -> bool {
        self.roster
            .get(jid)
            .is_some_and(|c| c.subscription.we_see_them())
    }

    pub(super) async fn on_presence(&mut self, p: Presence) {
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
                                subscription: xmpp::Subscription::None,
                                pending_out: false,
                                pending_in: true,
                                groups: Vec::new(),
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
}
