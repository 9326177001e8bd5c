//! The XEP-0060 requests the session sends (fetch a node's current item,
//! publish one) and the items their answers carry. The bytes are those of
//! docs/PROTOCOL.md: one item, id `current`; fetches ask for
//! `max_items='1'` (attributes are written in name order however they
//! were added).
//!
//! The requests are built with xmpp-parsers' pubsub types. An item's
//! payload (our share list, up to the stanza limit) is not passed through
//! them: xso copies it element by element through its event stream, which
//! for a 10,000-share item took about ten times as long as building the
//! whole stanza (a debug build: 200 ms against 25 ms, on the session's one
//! task). So the payload is appended to the typed envelope as it is, and
//! answers are read in place. (Not PEP events: `receive` reads those
//! element by element, because the typed event keeps published and
//! retracted items in separate lists, and which of them came last is what
//! tells the current state.)

use minidom::Element;
use tokio_xmpp::parsers::ns::PUBSUB;
use tokio_xmpp::parsers::pubsub::pubsub::{Item, Items, Publish};
use tokio_xmpp::parsers::pubsub::{ItemId, NodeName, PubSub};

/// The id of our one item per node.
const CURRENT: &str = "current";

/// `<pubsub><items node max_items='1'/></pubsub>`: the node's current item.
pub(crate) fn fetch_current(node: &str) -> Element {
    let mut items = Items::new(node);
    items.max_items = Some(1);
    PubSub::Items(items).into()
}

/// `<pubsub><publish node><item id='current'>payload</item></publish></pubsub>`.
pub(crate) fn publish_current(node: &str, payload: Element) -> Element {
    let mut pubsub: Element = PubSub::Publish {
        publish: Publish {
            node: NodeName(node.to_string()),
            items: vec![Item {
                id: Some(ItemId(CURRENT.to_string())),
                publisher: None,
                payload: None,
            }],
        },
        publish_options: None,
    }
    .into();
    pubsub
        .get_child_mut("publish", PUBSUB)
        .and_then(|publish| publish.get_child_mut("item", PUBSUB))
        .expect("built just above")
        .append_child(payload);
    pubsub
}

/// The payload of each item in the answer to a fetch, in the order they
/// came (`None`: an item without one). Only `<items>` is read: whatever
/// else a server adds to `<pubsub>`, a result set say, is left.
pub(crate) fn answered_payloads(answer: &Element) -> impl Iterator<Item = Option<&Element>> {
    answer
        .get_child("items", PUBSUB)
        .into_iter()
        .flat_map(|items| items.children().filter(|c| c.is("item", PUBSUB)))
        .map(|item| item.children().next())
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
    fn an_answer_gives_its_items_payloads_in_order_and_nothing_else() {
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
        let names: Vec<Option<&str>> = answered_payloads(&answer)
            .map(|p| p.map(|p| p.name()))
            .collect();
        assert_eq!(names, [Some("a"), None, Some("b")]);
        // No items: nothing.
        let empty = parse("<pubsub xmlns='http://jabber.org/protocol/pubsub'/>");
        assert_eq!(answered_payloads(&empty).count(), 0);
        let other = parse("<query xmlns='jabber:iq:roster'/>");
        assert_eq!(answered_payloads(&other).count(), 0);
    }
}
