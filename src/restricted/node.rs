//! One reader's node of our restricted lists (see the module above): made
//! and checked before anything goes in (`ensure_node`), published with its
//! precondition, emptied or deleted when the reader may see nothing more,
//! and the notice that tells them.

use tokio_xmpp::jid::BareJid;

use super::{wire, Fail, Owner, IQ_TIMEOUT};
use crate::shares::{parse_user_shares, reader_node, to_element, UserShares};
use crate::xmpp::IqError;

/// The largest restricted list item we send: under the 250,000 bytes
/// ejabberd takes in a PEP item and Prosody's default 256 KiB stanza
/// limit, with room for the request around it (about 2,000 shares).
const MAX_ITEM_BYTES: usize = 200_000;

impl Owner {
    /// Publishes `item` (what is left for `reader` from our other devices)
    /// or, with nothing left, deletes their node; then tells them.
    pub(super) async fn withdraw(&mut self, reader: &str, item: UserShares) -> Result<(), Fail> {
        if item.resources.is_empty() {
            match self.iq_set(wire::delete(&reader_node(reader))).await {
                Ok(_) => {}
                Err(e) if e.condition == "item-not-found" => {}
                Err(e) => return Err(e.into()),
            }
            self.verified.remove(&reader_node(reader));
            self.notify(reader);
            Ok(())
        } else {
            self.ensure_node(reader).await?;
            self.publish(reader, item).await
        }
    }

    /// Makes sure `reader`'s node exists, is `whitelist` and lets in only
    /// them, reading both back from the server.
    pub(super) async fn ensure_node(&mut self, reader: &str) -> Result<(), Fail> {
        let node = reader_node(reader);
        if self.verified.contains(&node) {
            return Ok(());
        }
        if !self.server_checked {
            let info = self.iq_get(wire::disco_info()).await?;
            if !info
                .as_ref()
                .is_some_and(|i| wire::has_feature(i, wire::PUBLISH_OPTIONS))
            {
                return Err(Fail::Refused(
                    "the server does not check publish options".into(),
                ));
            }
            self.server_checked = true;
        }
        for attempt in 0..2 {
            match self.iq_set(wire::create_whitelisted(&node)).await {
                Ok(_) => {}
                Err(e) if e.condition == "conflict" => {} // it exists: check it
                Err(e) => return Err(e.into()),
            }
            let config = self.iq_get(wire::get_config(&node)).await?;
            let model = config.as_ref().and_then(wire::access_model);
            if model.as_deref() != Some("whitelist") {
                self.iq_set(wire::delete(&node)).await?;
                if attempt == 0 {
                    continue;
                }
                return Err(Fail::Refused(format!(
                    "node configuration ignored: its access model reads back as {}",
                    model.as_deref().unwrap_or("nothing")
                )));
            }
            self.iq_set(wire::set_member(&node, reader)).await?;
            let affiliations = self.iq_get(wire::get_affiliations(&node)).await?;
            let checked = affiliations
                .as_ref()
                .ok_or_else(|| "the server sent no affiliations".to_string())
                .and_then(|a| wire::only_member(a, reader, &self.own));
            if let Err(why) = checked {
                self.iq_set(wire::delete(&node)).await?;
                if attempt == 0 {
                    continue;
                }
                return Err(Fail::Refused(why));
            }
            self.verified.insert(node);
            return Ok(());
        }
        unreachable!("the second attempt returns")
    }

    /// The item `reader`'s node holds now (our other devices' entries).
    pub(super) async fn fetch_item(&mut self, reader: &str) -> Result<UserShares, Fail> {
        let node = reader_node(reader);
        let answer = match self.iq_get(crate::xmpp::pubsub::fetch_current(&node)).await {
            Ok(answer) => answer,
            Err(e) if e.condition == "item-not-found" => None,
            Err(e) => return Err(e.into()),
        };
        Ok(answer
            .as_ref()
            .and_then(|p| crate::xmpp::pubsub::answered_payloads(p).last().flatten())
            .and_then(|el| parse_user_shares(el, &self.own).ok())
            .map(|p| p.item)
            .unwrap_or_default())
    }

    /// Publishes `item` to `reader`'s (verified) node with the access
    /// model as a precondition; a node changed under us is made again
    /// once. Then tells the reader.
    pub(super) async fn publish(&mut self, reader: &str, item: UserShares) -> Result<(), Fail> {
        let node = reader_node(reader);
        let bytes = String::from(&to_element(&item)).len();
        if bytes > MAX_ITEM_BYTES {
            return Err(Fail::Other(format!(
                "the list of shares for {reader} is {bytes} bytes, more than a server takes in one item ({MAX_ITEM_BYTES}); share fewer files with them, or a folder instead"
            )));
        }
        for attempt in 0..2 {
            let payload = wire::publish_whitelisted(&node, to_element(&item));
            match self.iq_set(payload).await {
                Ok(_) => {
                    self.lost_on_publish = 0;
                    self.published.insert(reader.to_string(), item);
                    self.notify(reader);
                    return Ok(());
                }
                Err(e) if e.specific.as_deref() == Some("precondition-not-met") && attempt == 0 => {
                    tracing::warn!(
                        node,
                        "the restricted list's node changed under us; making it again"
                    );
                    self.verified.remove(&node);
                    self.iq_set(wire::delete(&node)).await?;
                    self.ensure_node(reader).await?;
                }
                // A server that finds a stanza too large may close the
                // connection instead of answering: do not do that forever.
                Err(e) if e.condition == "lost" => {
                    self.lost_on_publish += 1;
                    if self.lost_on_publish >= 2 {
                        return Err(Fail::Other(format!(
                            "the server closed the connection twice when the list of shares for {reader} ({bytes} bytes) was published: it is probably larger than the server takes"
                        )));
                    }
                    return Err(e.into());
                }
                Err(e) if too_big(&e) => {
                    return Err(Fail::Other(format!(
                        "the list of shares for {reader} is larger than your server takes in one item ({}); share fewer files with them, or share a folder instead",
                        e.text
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Fail::Refused(format!(
            "the node for {reader} keeps changing its access model"
        )))
    }

    fn notify(&self, reader: &str) {
        if let Ok(jid) = BareJid::new(reader) {
            let _ = self.xmpp.notify_changed(jid);
        }
    }

    pub(super) async fn iq_get(
        &self,
        payload: minidom::Element,
    ) -> Result<Option<minidom::Element>, IqError> {
        self.iq(true, payload).await
    }

    pub(super) async fn iq_set(
        &self,
        payload: minidom::Element,
    ) -> Result<Option<minidom::Element>, IqError> {
        self.iq(false, payload).await
    }

    /// A request to our own PEP service.
    async fn iq(
        &self,
        get: bool,
        payload: minidom::Element,
    ) -> Result<Option<minidom::Element>, IqError> {
        let own = self.own_jid.clone().into();
        self.xmpp.iq_checked(own, get, payload, IQ_TIMEOUT).await
    }
}

/// Whether a refused publish was refused for its size (Prosody closes the
/// stream instead; ejabberd and others answer one of these).
fn too_big(e: &IqError) -> bool {
    e.specific.as_deref() == Some("payload-too-big")
        || matches!(
            e.condition.as_str(),
            "policy-violation" | "resource-constraint"
        )
}
