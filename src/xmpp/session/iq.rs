//! IQs in both directions: the requests we answer (disco#info for our
//! caps, ping, roster pushes, contacts' path requests) and the answers to
//! the requests we sent, each handed to the part that asked by what
//! [`Pending`] says it was for. (Not what the answers mean: that is in
//! `publish`, `receive` and `roster`.)

use std::collections::BTreeSet;

use minidom::Element;
use tokio::sync::oneshot;
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use tokio_xmpp::Stanza;

use super::Session;
use crate::shares::UserShares;
use crate::xmpp::Command;

/// What an IQ we sent was for.
#[derive(Debug)]
pub(super) enum Pending {
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
    External(oneshot::Sender<Result<Option<Element>, crate::xmpp::IqError>>),
    /// A contact's restricted list for us (`restricted_in.rs`).
    RestrictedItem {
        jid: BareJid,
    },
    /// Our roster set putting a contact in these groups (`roster.rs`).
    SetGroups {
        jid: BareJid,
        groups: Vec<String>,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// What an IQ error says: its text, or else its condition.
pub(super) fn error_text(e: &StanzaError) -> String {
    match e.texts.values().next() {
        Some(text) if !text.is_empty() => text.clone(),
        _ => format!("{:?}", e.defined_condition),
    }
}

/// An IQ error as [`crate::xmpp::IqError`]: its conditions by name.
pub(super) fn iq_error(e: &StanzaError) -> crate::xmpp::IqError {
    let condition = Element::from(e.defined_condition.clone())
        .name()
        .to_string();
    crate::xmpp::IqError {
        condition,
        specific: e.other.as_ref().map(|o| o.name().to_string()),
        text: error_text(e),
    }
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

impl Session {
    pub(super) async fn on_stanza(&mut self, stanza: Stanza) {
        match stanza {
            Stanza::Iq(iq) => self.on_iq(iq).await,
            Stanza::Message(msg) => self.on_message(msg).await,
            Stanza::Presence(p) => self.on_presence(p).await,
        }
    }

    /// Whether `from` may speak for our account or server (IQ results,
    /// roster pushes).
    pub(super) fn is_own_or_server(&self, from: Option<&Jid>) -> bool {
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
            Pending::ChunkFetch { jid, .. }
            | Pending::ContactItem { jid, .. }
            | Pending::RestrictedItem { jid } => from.is_some_and(|f| f.to_bare() == *jid),
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
        match what {
            Pending::External(reply) => {
                let _ = reply.send(answer.map_err(|e| iq_error(&e)));
            }
            Pending::SetGroups { jid, groups, reply } => {
                self.on_groups_set(jid, groups, reply, answer)
            }
            Pending::Roster => self.on_roster_answer(answer).await,
            Pending::RestrictedItem { jid } => self.on_restricted_answer(jid, answer).await,
            Pending::OwnItem => self.on_own_item_answer(answer).await,
            Pending::ContactItem { jid, events } => {
                self.on_contact_item_answer(jid, events, answer).await
            }
            Pending::ChunkFetch {
                jid,
                resource,
                version,
                n,
            } => {
                self.on_chunk_answer(jid, resource, version, n, answer)
                    .await
            }
            Pending::ChunkPublish { node } => self.on_chunk_published(node, answer).await,
            Pending::Publish {
                item,
                pushes_before,
            } => self.on_publish_answer(item, pushes_before, answer).await,
            Pending::Retract => self.on_retract_answer(answer),
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
