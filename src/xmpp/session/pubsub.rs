//! The XEP-0060 requests the session sends (fetch a node's current item,
//! publish one) and the items their answers carry, built and read with
//! xmpp-parsers' pubsub types. The bytes are those of docs/PROTOCOL.md:
//! one item, id `current`; fetches ask for `max_items='1'` (attributes
//! are written in name order however they were added). (Not PEP
//! events: `receive` reads those element by element, because the typed
//! event keeps published and retracted items in separate lists, and which
//! of them came last is what tells the current state.)

use minidom::Element;
use tokio_xmpp::parsers::pubsub::pubsub::{Item, Items, Publish};
use tokio_xmpp::parsers::pubsub::{ItemId, NodeName, PubSub};

/// The id of our one item per node.
const CURRENT: &str = "current";

/// `<pubsub><items node max_items='1'/></pubsub>`: the node's current item.
pub(super) fn fetch_current(node: &str) -> Element {
    let mut items = Items::new(node);
    items.max_items = Some(1);
    PubSub::Items(items).into()
}

/// `<pubsub><publish node><item id='current'>payload</item></publish></pubsub>`.
pub(super) fn publish_current(node: &str, payload: Element) -> Element {
    PubSub::Publish {
        publish: Publish {
            node: NodeName(node.to_string()),
            items: vec![Item {
                id: Some(ItemId(CURRENT.to_string())),
                publisher: None,
                payload: Some(payload),
            }],
        },
        publish_options: None,
    }
    .into()
}

/// The items in the answer to a fetch, in the order they came: empty when
/// the answer carries none, or none we can read. (Only `<items>` is read:
/// whatever else a server adds to `<pubsub>`, a result set say, is left.)
pub(super) fn answered_items(mut answer: Element) -> Vec<Item> {
    answer
        .remove_child("items", tokio_xmpp::parsers::ns::PUBSUB)
        .and_then(|items| Items::try_from(items).ok())
        .map(|items| items.items)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    #[test]
    fn a_fetch_asks_for_the_current_item_only() {
        let built = fetch_current("urn:example:shares");
        let wire = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <items node='urn:example:shares' max_items='1'/></pubsub>",
        );
        assert_eq!(built, wire);
    }

    #[test]
    fn a_publish_replaces_the_item_called_current() {
        let payload = parse("<shares xmlns='urn:example:shares'><r name='a'/></shares>");
        let built = publish_current("urn:example:shares/x", payload);
        let wire = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='urn:example:shares/x'><item id='current'>\
             <shares xmlns='urn:example:shares'><r name='a'/></shares>\
             </item></publish></pubsub>",
        );
        assert_eq!(built, wire);
    }

    #[test]
    fn an_answer_gives_its_items_in_order_and_nothing_else() {
        let answer = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <items node='n'>\
             <item id='1'><a xmlns='urn:x'/></item>\
             <item id='2'/>\
             <item id='3' publisher='alice@example.org'>\n  <b xmlns='urn:x'/><c xmlns='urn:x'/>\n</item>\
             </items>\
             <set xmlns='http://jabber.org/protocol/rsm'><count>3</count></set>\
             </pubsub>",
        );
        let items = answered_items(answer);
        let payloads: Vec<Option<&str>> = items
            .iter()
            .map(|i| i.payload.as_ref().map(|p| p.name()))
            .collect();
        assert_eq!(payloads, [Some("a"), None, Some("b")]);
        // No items, or none readable: nothing.
        let empty = parse("<pubsub xmlns='http://jabber.org/protocol/pubsub'/>");
        assert!(answered_items(empty).is_empty());
        let other = parse("<query xmlns='jabber:iq:roster'/>");
        assert!(answered_items(other).is_empty());
    }
}
