//! Publishing our share list: the account's item merged with our entry,
//! cut to the stanza budget, the rest in chunks sent one at a time before
//! the item; the answers to those publishes, retries and the retraction on
//! shutdown. (Not the budget's rules: `xmpp::limits`; not the chunks' wire
//! format: `shares::chunks`.)

use minidom::Element;
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::parsers::stanza_error::StanzaError;

use super::iq::Pending;
use super::{pubsub, resource_of, Session};
use crate::events::Event;
use crate::shares::{chunks, fit_to, parse_user_shares, to_element, ResourceShares, UserShares};
use crate::xmpp::limits;
use crate::NS_SHARES;

/// How often a publish refused for a passing reason is sent again at once
/// (see `limits::transient`).
const PUBLISH_RETRIES: u8 = 3;

impl Session {
    /// Publishes the merged item now if we can, or remembers to.
    pub(super) async fn publish(&mut self) {
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
                        let payload =
                            pubsub::publish_current(&node, chunks::chunk_element(&version, part));
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

    pub(super) async fn send_publish(&mut self, item: UserShares, retract: bool) {
        let payload = pubsub::publish_current(NS_SHARES, to_element(&item));
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
    pub(super) async fn on_own_item(&mut self, item: UserShares) {
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

    /// The answer to our request for the account's item (after a connect).
    pub(super) async fn on_own_item_answer(
        &mut self,
        answer: Result<Option<Element>, StanzaError>,
    ) {
        match answer {
            Ok(payload) => {
                let item = payload
                    .as_ref()
                    .and_then(|p| pubsub::answered_payloads(p).last().flatten())
                    .and_then(|el| parse_user_shares(el, &self.own.to_string()).ok())
                    .map(|p| p.item)
                    .unwrap_or_default();
                self.on_own_item(item).await;
            }
            Err(e) => {
                // item-not-found: we never published; start from nothing.
                tracing::debug!("no own item yet ({:?})", e.defined_condition);
                self.on_own_item(UserShares::default()).await;
            }
        }
    }

    /// The answer to one chunk of our list: the next goes out, or, refused,
    /// the list is split again or the item goes out without the rest.
    pub(super) async fn on_chunk_published(
        &mut self,
        node: String,
        answer: Result<Option<Element>, StanzaError>,
    ) {
        let e = match answer {
            Ok(_) => return self.send_next_chunk().await,
            Err(e) => e,
        };
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

    /// The answer to our item's publish.
    pub(super) async fn on_publish_answer(
        &mut self,
        item: UserShares,
        pushes_before: u64,
        answer: Result<Option<Element>, StanzaError>,
    ) {
        match answer {
            Ok(_) => self.on_publish_result(item, pushes_before, None).await,
            Err(e) => {
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

    /// The answer to the retraction of our entry on shutdown.
    pub(super) fn on_retract_answer(&mut self, answer: Result<Option<Element>, StanzaError>) {
        if let Err(e) = answer {
            tracing::warn!("retracting our shares failed: {:?}", e.defined_condition);
        }
        self.retract_pending = false;
    }
}

/// `entry` as a reader of our item will see it (values dropped or changed
/// by the parser are dropped or changed here too), so comparing a pushed own
/// item with it cannot disagree forever.
pub(super) fn as_readers_see_it(own: &BareJid, entry: ResourceShares) -> ResourceShares {
    let mut item = UserShares::default();
    item.resources.insert("r".into(), entry);
    parse_user_shares(&to_element(&item), &own.to_string())
        .ok()
        .and_then(|mut p| p.item.resources.remove("r"))
        .unwrap_or_default()
}
