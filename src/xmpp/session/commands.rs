//! What the [`XmppHandle`](crate::xmpp::XmppHandle) asks of the session
//! (`Command`), carried out in the session task. (Not the handle itself:
//! `xmpp/mod.rs`.)

use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use super::iq::Pending;
use super::publish::as_readers_see_it;
use super::Session;
use crate::xmpp::Command;

impl Session {
    pub(super) async fn on_command(&mut self, cmd: Command) {
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
            Command::SetGroups { jid, groups, reply } => self.set_groups(jid, groups, reply).await,
            Command::Shutdown(reply) => self.begin_shutdown(reply).await,
            Command::Iq {
                to,
                get,
                payload,
                reply,
            } => {
                if self.bound.is_none() {
                    let _ = reply.send(Err(crate::xmpp::IqError::local(
                        "offline",
                        "offline: not connected to the server".into(),
                    )));
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
            Command::Notice(to) => self.send_notice(to).await,
            Command::FetchRestricted(jid) => self.fetch_restricted_again(jid).await,
        }
    }
}
