//! The requests of an owner's restricted-list flow (docs/PROTOCOL.md,
//! "Restricted lists") and the checks of what the server reads back: a node
//! made `whitelist`, its configuration and affiliations read back, a
//! publish that carries the access model as a precondition, a delete.

use minidom::Element;

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
const DATA: &str = "jabber:x:data";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// The feature a server must show for our precondition to be checked.
pub const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

fn node_el(name: &str, ns: &str, node: &str) -> minidom::element::ElementBuilder {
    Element::builder(name, ns).attr("node".try_into().expect("a name"), node)
}

/// A submitted data form of `form_type` with `fields` (name, value).
fn form(form_type: &str, fields: &[(&str, &str)]) -> Element {
    let field = |var: &str, value: &str| {
        Element::builder("field", DATA)
            .attr("var".try_into().expect("a name"), var)
            .append(Element::builder("value", DATA).append(value))
            .build()
    };
    let mut x = Element::builder("x", DATA)
        .attr("type".try_into().expect("a name"), "submit")
        .append(
            Element::builder("field", DATA)
                .attr("var".try_into().expect("a name"), "FORM_TYPE")
                .attr("type".try_into().expect("a name"), "hidden")
                .append(Element::builder("value", DATA).append(form_type)),
        );
    for (var, value) in fields {
        x = x.append(field(var, value));
    }
    x.build()
}

/// `<query xmlns='…disco#info'/>`.
pub fn disco_info() -> Element {
    Element::builder("query", DISCO_INFO).build()
}

/// Whether a disco#info answer lists `feature`.
pub fn has_feature(answer: &Element, feature: &str) -> bool {
    answer
        .children()
        .any(|c| c.is("feature", DISCO_INFO) && c.attr("var") == Some(feature))
}

/// Creates `node` as a `whitelist` node keeping one persistent item.
pub fn create_whitelisted(node: &str) -> Element {
    Element::builder("pubsub", PUBSUB)
        .append(node_el("create", PUBSUB, node))
        .append(Element::builder("configure", PUBSUB).append(form(
            "http://jabber.org/protocol/pubsub#node_config",
            &[
                ("pubsub#access_model", "whitelist"),
                ("pubsub#persist_items", "1"),
                ("pubsub#max_items", "1"),
            ],
        )))
        .build()
}

/// Asks for `node`'s configuration (owner).
pub fn get_config(node: &str) -> Element {
    Element::builder("pubsub", PUBSUB_OWNER)
        .append(node_el("configure", PUBSUB_OWNER, node))
        .build()
}

/// The access model a configuration answer gives.
pub fn access_model(answer: &Element) -> Option<String> {
    let x = answer
        .get_child("configure", PUBSUB_OWNER)?
        .get_child("x", DATA)?;
    x.children()
        .filter(|f| f.is("field", DATA) && f.attr("var") == Some("pubsub#access_model"))
        .find_map(|f| f.get_child("value", DATA).map(|v| v.text()))
}

/// Makes `jid` a member of `node` (owner).
pub fn set_member(node: &str, jid: &str) -> Element {
    Element::builder("pubsub", PUBSUB_OWNER)
        .append(
            node_el("affiliations", PUBSUB_OWNER, node).append(
                Element::builder("affiliation", PUBSUB_OWNER)
                    .attr("jid".try_into().expect("a name"), jid)
                    .attr("affiliation".try_into().expect("a name"), "member"),
            ),
        )
        .build()
}

/// Asks for `node`'s affiliations (owner).
pub fn get_affiliations(node: &str) -> Element {
    Element::builder("pubsub", PUBSUB_OWNER)
        .append(node_el("affiliations", PUBSUB_OWNER, node))
        .build()
}

/// Whether an affiliations answer lists `reader` as the one member and
/// nobody else but ourselves (`own`) as owner: exactly who may read.
pub fn only_member(answer: &Element, reader: &str, own: &str) -> Result<(), String> {
    let list = answer
        .get_child("affiliations", PUBSUB_OWNER)
        .ok_or("the server sent no affiliations")?;
    let mut member = false;
    for a in list
        .children()
        .filter(|c| c.is("affiliation", PUBSUB_OWNER))
    {
        let jid = a.attr("jid").unwrap_or("").to_lowercase();
        match a.attr("affiliation") {
            Some("member") if jid == reader => member = true,
            Some("owner") if jid == own => {}
            Some("none") => {}
            other => {
                return Err(format!(
                    "the node also lets {jid} in (as {})",
                    other.unwrap_or("?")
                ))
            }
        }
    }
    if member {
        Ok(())
    } else {
        Err(format!("{reader} is not a member of the node"))
    }
}

/// Publishes `payload` as `node`'s item `current`, on the condition that
/// the node is still `whitelist` (the server refuses it otherwise).
pub fn publish_whitelisted(node: &str, payload: Element) -> Element {
    let mut pubsub = crate::xmpp::pubsub::publish_current(node, payload);
    pubsub.append_child(
        Element::builder("publish-options", PUBSUB)
            .append(form(
                "http://jabber.org/protocol/pubsub#publish-options",
                &[("pubsub#access_model", "whitelist")],
            ))
            .build(),
    );
    pubsub
}

/// Deletes `node` with its item (owner).
pub fn delete(node: &str) -> Element {
    Element::builder("pubsub", PUBSUB_OWNER)
        .append(node_el("delete", PUBSUB_OWNER, node))
        .build()
}

/// Asks for the nodes of a PEP service (disco#items).
pub fn disco_items() -> Element {
    Element::builder("query", "http://jabber.org/protocol/disco#items").build()
}

/// The node names a disco#items answer lists.
pub fn item_nodes(answer: &Element) -> Vec<String> {
    answer
        .children()
        .filter(|c| c.name() == "item")
        .filter_map(|c| c.attr("node").map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    #[test]
    fn the_access_model_is_read_back() {
        let answer = parse(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'>\
             <x xmlns='jabber:x:data' type='form'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>\
             <field var='pubsub#access_model' type='list-single'><value>presence</value></field>\
             </x></configure></pubsub>",
        );
        assert_eq!(access_model(&answer).as_deref(), Some("presence"));
        assert_eq!(
            access_model(&parse(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'/>"
            )),
            None
        );
    }

    #[test]
    fn only_the_reader_may_be_a_member() {
        let answer = |inner: &str| {
            parse(&format!(
                "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='n'>{inner}</affiliations></pubsub>"
            ))
        };
        let ok = answer("<affiliation jid='alice@x' affiliation='owner'/><affiliation jid='Bob@x' affiliation='member'/>");
        assert_eq!(only_member(&ok, "bob@x", "alice@x"), Ok(()));
        let more = answer("<affiliation jid='bob@x' affiliation='member'/><affiliation jid='carol@x' affiliation='member'/>");
        assert!(only_member(&more, "bob@x", "alice@x")
            .unwrap_err()
            .contains("carol@x"));
        let none = answer("<affiliation jid='alice@x' affiliation='owner'/>");
        assert!(only_member(&none, "bob@x", "alice@x").is_err());
        let publisher = answer("<affiliation jid='bob@x' affiliation='member'/><affiliation jid='eve@x' affiliation='publisher'/>");
        assert!(only_member(&publisher, "bob@x", "alice@x").is_err());
    }

    #[test]
    fn a_publish_carries_its_precondition() {
        let p = publish_whitelisted("n", Element::builder("a", "urn:x").build());
        let text = String::from(&p);
        assert!(text.contains("publish-options"), "{text}");
        assert!(text.contains("<value>whitelist</value>"), "{text}");
        assert!(
            text.contains("<item id='current'><a xmlns='urn:x'/></item>"),
            "{text}"
        );
    }
}
