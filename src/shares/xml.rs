//! The shares payload <-> XML, byte-compatible with the original
//! implementation (`PROTOCOL.md`).
//!
//! Reading is lenient per entry and strict per value: attributes are read as
//! strings and each entry is validated on its own, so one bad entry from a
//! contact drops only that entry (with a warning naming the contact and the
//! reason), never the whole item. Unknown elements and attributes are
//! ignored for forward compatibility.

use std::collections::HashSet;

use minidom::Element;

use super::chunks::{more_element, more_from_element, NS_CATALOG};
use super::types::{
    socket_addr_from_wire, validate_resource, Invalid, ResourceShares, Share, UserShares,
    MAX_ADDRESSES, MAX_RESOURCES,
};
use crate::NS_SHARES;

/// The element is not a `user_shares` payload of our namespace: nothing we
/// know should change because of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a shares payload: <{name} xmlns='{ns}'>")]
pub struct NotOurs {
    pub name: String,
    pub ns: String,
}

/// One entry dropped while reading an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The resource the entry was in, if it got that far.
    pub resource: Option<String>,
    /// The element that was dropped (`resource`, `share_item`, `ip_address`).
    pub element: &'static str,
    pub reason: Invalid,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.resource {
            Some(r) => write!(f, "<{}> in resource {r:?}: {}", self.element, self.reason),
            None => write!(f, "<{}>: {}", self.element, self.reason),
        }
    }
}

/// A read item: what was valid, and what was dropped and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub item: UserShares,
    pub rejections: Vec<Rejection>,
}

/// Reads a `<user_shares/>` payload published by `contact` (used only to
/// name the contact in warnings).
pub fn parse_user_shares(el: &Element, contact: &str) -> Result<Parsed, NotOurs> {
    if !el.is("user_shares", NS_SHARES) {
        return Err(NotOurs {
            name: el.name().to_string(),
            ns: el.ns(),
        });
    }
    let mut parsed = Parsed::default();
    for child in el.children() {
        if !child.is("resource", NS_SHARES) {
            tracing::debug!(%contact, element = child.name(), ns = %child.ns(), "ignoring unknown element in user_shares");
            continue;
        }
        let Some(name) = child.attr("resource") else {
            parsed.rejections.push(Rejection {
                resource: None,
                element: "resource",
                reason: Invalid::Missing("resource"),
            });
            continue;
        };
        if name.is_empty() {
            // PROTOCOL.md: a resource named "" is dropped (the original wrote
            // one when it had no resource yet).
            continue;
        }
        if let Err(reason) = validate_resource(name) {
            parsed.rejections.push(Rejection {
                resource: None,
                element: "resource",
                reason,
            });
            continue;
        }
        if parsed.item.resources.contains_key(name) {
            parsed.rejections.push(Rejection {
                resource: Some(name.to_string()),
                element: "resource",
                reason: Invalid::Duplicate(format!("resource {name:?}")),
            });
            continue;
        }
        if parsed.item.resources.len() == MAX_RESOURCES {
            parsed.rejections.push(Rejection {
                resource: Some(name.to_string()),
                element: "resource",
                reason: Invalid::TooMany(MAX_RESOURCES, "resources"),
            });
            break;
        }
        let entry = parse_resource(child, name, &mut parsed.rejections);
        parsed.item.resources.insert(name.to_string(), entry);
    }
    for r in &parsed.rejections {
        tracing::warn!(%contact, "dropped an invalid entry from a contact's shares: {r}");
    }
    Ok(parsed)
}

fn parse_resource(el: &Element, resource: &str, rejections: &mut Vec<Rejection>) -> ResourceShares {
    let mut entry = ResourceShares::default();
    let mut hashes = HashSet::new();
    let mut addresses = HashSet::new();
    let mut too_many_addresses = false;
    let mut reject = |element, reason| {
        rejections.push(Rejection {
            resource: Some(resource.to_string()),
            element,
            reason,
        })
    };
    for child in el.children() {
        if child.is("share_item", NS_SHARES) {
            match share_from_element(child) {
                Ok(share) if !hashes.insert(share.hash) => reject(
                    "share_item",
                    Invalid::Duplicate(format!("share {}", share.hash)),
                ),
                Ok(share) => entry.shares.push(share),
                Err(reason) => reject("share_item", reason),
            }
        } else if child.is("ip_address", NS_SHARES) {
            let addr = match (child.attr("address"), child.attr("port")) {
                (Some(a), Some(p)) => socket_addr_from_wire(a, p),
                (None, _) => Err(Invalid::Missing("address")),
                (_, None) => Err(Invalid::Missing("port")),
            };
            match addr {
                Ok(addr) if !addresses.insert(addr) => {
                    reject("ip_address", Invalid::Duplicate(format!("address {addr}")))
                }
                Ok(_) if entry.addresses.len() == MAX_ADDRESSES => {
                    // Said once per resource, however many follow.
                    if !std::mem::replace(&mut too_many_addresses, true) {
                        reject("ip_address", Invalid::TooMany(MAX_ADDRESSES, "addresses"));
                    }
                }
                Ok(addr) => entry.addresses.push(addr),
                Err(reason) => reject("ip_address", reason),
            }
        } else if child.is("more", NS_CATALOG) {
            match more_from_element(child) {
                Ok(more) => entry.more = Some(more),
                Err(reason) => reject("more", reason),
            }
        } else {
            tracing::debug!(resource, element = child.name(), ns = %child.ns(), "ignoring unknown element in resource");
        }
    }
    entry
}

/// Reads one `<share_item/>`.
pub(crate) fn share_from_element(el: &Element) -> Result<Share, Invalid> {
    match (el.attr("hash"), el.attr("name"), el.attr("size")) {
        (Some(h), Some(n), Some(s)) => Share::from_wire(h, n, s),
        (None, _, _) => Err(Invalid::Missing("hash")),
        (_, None, _) => Err(Invalid::Missing("name")),
        (_, _, None) => Err(Invalid::Missing("size")),
    }
}

/// Writes one `<share_item/>`.
pub(crate) fn share_element(s: &Share) -> Element {
    Element::builder("share_item", NS_SHARES)
        .attr("hash".try_into().unwrap(), s.hash.to_hex())
        .attr("name".try_into().unwrap(), s.name.as_str())
        .attr("size".try_into().unwrap(), s.size.to_string())
        .build()
}

/// Writes the payload as the original did: per resource all `share_item`s
/// first, then all `ip_address`es, every value a string attribute.
pub fn to_element(item: &UserShares) -> Element {
    let resources = item
        .resources
        .iter()
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, entry)| {
            let shares = entry.shares.iter().map(share_element);
            let addresses = entry.addresses.iter().map(|a| {
                Element::builder("ip_address", NS_SHARES)
                    .attr("address".try_into().unwrap(), a.ip().to_string())
                    .attr("port".try_into().unwrap(), a.port().to_string())
                    .build()
            });
            Element::builder("resource", NS_SHARES)
                .attr("resource".try_into().unwrap(), name.as_str())
                .append_all(
                    shares
                        .chain(addresses)
                        .chain(entry.more.iter().map(more_element)),
                )
                .build()
        });
    Element::builder("user_shares", NS_SHARES)
        .append_all(resources)
        .build()
}

/// The payload as XML text exactly as the original's serializer wrote it:
/// double-quoted attributes, the namespace on the root only, the same
/// escapes. (On the wire the stanza is written by the XMPP library; any XML
/// reader sees the same document.)
pub fn to_xml_string(item: &UserShares) -> String {
    fn esc(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&apos;"),
                c => out.push(c),
            }
        }
        out
    }
    let mut out = format!("<user_shares xmlns=\"{NS_SHARES}\">");
    for (name, entry) in item.resources.iter().filter(|(n, _)| !n.is_empty()) {
        out += &format!("<resource resource=\"{}\">", esc(name));
        for s in &entry.shares {
            out += &format!(
                "<share_item hash=\"{}\" name=\"{}\" size=\"{}\"/>",
                s.hash,
                esc(s.name.as_str()),
                s.size
            );
        }
        for a in &entry.addresses {
            out += &format!("<ip_address address=\"{}\" port=\"{}\"/>", a.ip(), a.port());
        }
        if let Some(m) = &entry.more {
            out += &format!(
                "<more xmlns=\"{NS_CATALOG}\" version=\"{}\" chunks=\"{}\" total=\"{}\"/>",
                esc(&m.version),
                m.chunks,
                m.total
            );
        }
        out += "</resource>";
    }
    out + "</user_shares>"
}

/// What an item weighs on the wire: the XMPP library writes each empty
/// element as `<x ...></x>`, 12 bytes more per entry than the text form.
pub fn wire_len(item: &UserShares) -> usize {
    let entries: usize = item
        .resources
        .values()
        .map(|r| r.shares.len() + r.addresses.len())
        .sum();
    to_xml_string(item).len() + 12 * entries
}

/// Drops shares from the end of `resource`'s entry until the item weighs at
/// most `budget` bytes on the wire (servers cap stanza sizes; Prosody at
/// 256 KiB). Returns (kept, total) when it had to drop any.
pub fn fit_to(item: &mut UserShares, resource: &str, budget: usize) -> Option<(usize, usize)> {
    let mut len = wire_len(item);
    if len <= budget {
        return None;
    }
    let entry = item.resources.get_mut(resource)?;
    let total = entry.shares.len();
    while len > budget {
        let Some(share) = entry.shares.pop() else {
            break;
        };
        len -= share_wire_len(&share);
    }
    Some((entry.shares.len(), total))
}

/// What one `<share_item/>` weighs on the wire (`<share_item …></share_item>`).
pub(crate) fn share_wire_len(s: &Share) -> usize {
    let mut name = String::new();
    for c in s.name.as_str().chars() {
        match c {
            '&' => name.push_str("&amp;"),
            '<' => name.push_str("&lt;"),
            '>' => name.push_str("&gt;"),
            '"' | '\'' => name.push_str("&quot;"),
            c => name.push(c),
        }
    }
    format!(
        "<share_item hash='{}' name='{}' size='{}'></share_item>",
        s.hash, name, s.size
    )
    .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Parsed {
        let el: Element = xml.parse().expect("test XML is well-formed");
        parse_user_shares(&el, "test@example.org").unwrap()
    }

    /// An item as the original implementation wrote it: namespace on the
    /// root only, shares before addresses, every value an attribute string.
    const ORIGINAL_SAMPLE: &str = concat!(
        r#"<user_shares xmlns="https://xmpp.kwoh.de/protocol/shares">"#,
        r#"<resource resource="laptop">"#,
        r#"<share_item hash="e3b0c44298fc1c149afbf4c8996fb92427ae41e4" name="holiday_photos" size="123456789"/>"#,
        r#"<share_item hash="0123456789abcdef0123456789abcdef01234567" name="notes &amp; more.txt" size="0"/>"#,
        r#"<ip_address address="203.0.113.7" port="6881"/>"#,
        r#"<ip_address address="2001:db8::1" port="6881"/>"#,
        r#"</resource>"#,
        r#"<resource resource="desktop">"#,
        r#"<ip_address address="192.168.1.20" port="51413"/>"#,
        r#"</resource>"#,
        r#"</user_shares>"#,
    );

    #[test]
    fn reads_the_original_sample() {
        let p = parse(ORIGINAL_SAMPLE);
        assert!(p.rejections.is_empty(), "{:?}", p.rejections);
        let laptop = &p.item.resources["laptop"];
        assert_eq!(laptop.shares.len(), 2);
        assert_eq!(laptop.shares[0].name.as_str(), "holiday_photos");
        assert_eq!(laptop.shares[0].size, 123456789);
        assert_eq!(laptop.shares[1].name.as_str(), "notes & more.txt");
        assert_eq!(
            laptop.addresses,
            vec![
                "203.0.113.7:6881".parse().unwrap(),
                "[2001:db8::1]:6881".parse().unwrap()
            ]
        );
        assert_eq!(p.item.resources["desktop"].addresses.len(), 1);
    }

    #[test]
    fn writes_exactly_what_the_original_wrote() {
        // The original wrote resources in its own order; ours are sorted by
        // name, so compare a single-resource item byte for byte.
        let p = parse(ORIGINAL_SAMPLE);
        let mut only_laptop = p.item.clone();
        only_laptop.resources.remove("desktop");
        let expected = ORIGINAL_SAMPLE
            .replace(
                r#"<resource resource="desktop"><ip_address address="192.168.1.20" port="51413"/></resource>"#,
                "",
            );
        assert_eq!(to_xml_string(&only_laptop), expected);
        // And the element we put on the wire is the same document.
        let ours = parse_user_shares(&to_element(&p.item), "me@x").unwrap();
        assert_eq!(ours.item, p.item);
    }

    #[test]
    fn order_inside_a_resource_does_not_matter() {
        let p = parse(concat!(
            r#"<user_shares xmlns="https://xmpp.kwoh.de/protocol/shares"><resource resource="r">"#,
            r#"<ip_address address="127.0.0.1" port="1"/>"#,
            r#"<share_item hash="e3b0c44298fc1c149afbf4c8996fb92427ae41e4" name="a" size="1"/>"#,
            r#"<ip_address address="::1" port="2"/>"#,
            r#"</resource></user_shares>"#
        ));
        assert_eq!(p.item.resources["r"].shares.len(), 1);
        assert_eq!(p.item.resources["r"].addresses.len(), 2);
    }

    #[test]
    fn a_foreign_payload_is_not_ours() {
        let el: Element = r#"<user_shares xmlns="urn:other"/>"#.parse().unwrap();
        assert!(parse_user_shares(&el, "x@y").is_err());
        let el: Element = r#"<shares xmlns="https://xmpp.kwoh.de/protocol/shares"/>"#
            .parse()
            .unwrap();
        assert!(parse_user_shares(&el, "x@y").is_err());
    }

    #[test]
    fn hostile_entries_are_dropped_one_by_one() {
        let p = parse(concat!(
            r#"<user_shares xmlns="https://xmpp.kwoh.de/protocol/shares">"#,
            r#"<resource resource="r">"#,
            r#"<share_item hash="E3B0C44298FC1C149AFBF4C8996FB92427AE41E4" name="good" size="10" extra="ignored"/>"#,
            r#"<share_item hash="xyz" name="bad hash" size="1"/>"#,
            r#"<share_item hash="1111111111111111111111111111111111111111" name="bad size" size="abc"/>"#,
            r#"<share_item hash="2222222222222222222222222222222222222222" name="" size="1"/>"#,
            r#"<share_item hash="3333333333333333333333333333333333333333" name="../../etc/passwd" size="1"/>"#,
            r#"<share_item hash="4444444444444444444444444444444444444444" name="tab&#9;name" size="1"/>"#,
            r#"<share_item hash="5555555555555555555555555555555555555555" size="1"/>"#,
            r#"<share_item hash="e3b0c44298fc1c149afbf4c8996fb92427ae41e4" name="dup" size="1"/>"#,
            r#"<ip_address address="127.0.0.1" port="0"/>"#,
            r#"<ip_address address="127.0.0.1" port="70000"/>"#,
            r#"<ip_address address="evil.example" port="80"/>"#,
            r#"<ip_address address="10.0.0.1" port="80"/>"#,
            r#"<unknown xmlns="urn:evil"><share_item hash="6666666666666666666666666666666666666666" name="x" size="1"/></unknown>"#,
            r#"<share_item xmlns="urn:evil" hash="7777777777777777777777777777777777777777" name="x" size="1"/>"#,
            r#"</resource>"#,
            r#"<resource resource="">"#,
            r#"<share_item hash="8888888888888888888888888888888888888888" name="dropped with its resource" size="1"/>"#,
            r#"</resource>"#,
            r#"<resource><ip_address address="10.0.0.2" port="80"/></resource>"#,
            r#"</user_shares>"#
        ));
        assert_eq!(p.item.resources.len(), 1);
        let r = &p.item.resources["r"];
        assert_eq!(r.shares.len(), 1);
        assert_eq!(
            r.shares[0].hash.to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4"
        );
        assert_eq!(r.addresses, vec!["10.0.0.1:80".parse().unwrap()]);
        let reasons: Vec<String> = p.rejections.iter().map(|r| r.reason.to_string()).collect();
        assert_eq!(p.rejections.len(), 11, "{reasons:#?}");
        assert!(matches!(p.rejections[0].reason, Invalid::Hash(_)));
        assert!(matches!(p.rejections[1].reason, Invalid::Size(_)));
        assert!(matches!(p.rejections[2].reason, Invalid::EmptyName));
        assert!(matches!(p.rejections[3].reason, Invalid::PathInName(_)));
        assert!(matches!(p.rejections[4].reason, Invalid::ControlInName(_)));
        assert!(matches!(p.rejections[5].reason, Invalid::Missing("name")));
        assert!(matches!(p.rejections[6].reason, Invalid::Duplicate(_)));
        assert!(matches!(p.rejections[7].reason, Invalid::Port(_)));
        assert!(matches!(p.rejections[8].reason, Invalid::Port(_)));
        assert!(matches!(p.rejections[9].reason, Invalid::Address(_)));
        assert!(matches!(
            p.rejections[10].reason,
            Invalid::Missing("resource")
        ));
    }

    #[test]
    fn resources_and_addresses_are_capped() {
        let mut xml = format!("<user_shares xmlns='{NS_SHARES}'>");
        for r in 0..20 {
            xml += &format!("<resource resource='r{r:02}'>");
            for a in 0..40 {
                xml += &format!("<ip_address address='10.0.{r}.{a}' port='1'/>");
            }
            xml += "</resource>";
        }
        xml += "</user_shares>";
        let p = parse(&xml);
        assert_eq!(p.item.resources.len(), MAX_RESOURCES);
        assert!(p.item.resources.contains_key("r00") && !p.item.resources.contains_key("r16"));
        assert!(p
            .item
            .resources
            .values()
            .all(|e| e.addresses.len() == MAX_ADDRESSES));
        // One remark per resource with too many addresses, one for the
        // resources beyond the cap.
        assert_eq!(p.rejections.len(), MAX_RESOURCES + 1, "{:?}", p.rejections);
    }

    #[test]
    fn fit_to_drops_shares_from_the_end_until_the_item_fits() {
        let mut item = UserShares::default();
        let shares: Vec<Share> = (0..50u32)
            .map(|i| {
                Share::from_wire(&format!("{i:040x}"), &format!("name {i} & more"), "1").unwrap()
            })
            .collect();
        item.resources.insert(
            "mine".into(),
            ResourceShares {
                shares: shares.clone(),
                addresses: vec![],
                more: None,
            },
        );
        item.resources.insert(
            "other".into(),
            ResourceShares {
                shares: shares[..5].to_vec(),
                addresses: vec![],
                more: None,
            },
        );
        let full = wire_len(&item);
        assert_eq!(fit_to(&mut item.clone(), "mine", full), None);
        let budget = full - 1000;
        let (kept, total) = fit_to(&mut item, "mine", budget).unwrap();
        assert_eq!(total, 50);
        assert!(kept < 50 && kept > 30, "{kept}");
        assert!(wire_len(&item) <= budget);
        assert_eq!(
            item.resources["mine"].shares,
            shares[..kept].to_vec(),
            "a prefix is kept"
        );
        assert_eq!(
            item.resources["other"].shares.len(),
            5,
            "other resources are not ours to trim"
        );
        // The wire estimate matches what minidom's writer would need, give
        // or take the self-closing tags.
        let mut out = Vec::new();
        to_element(&item).write_to(&mut out).unwrap();
        assert!(out.len() <= wire_len(&item));
    }

    #[test]
    fn a_nul_in_a_name_is_rejected_even_when_built_without_a_parser() {
        let el = Element::builder("user_shares", NS_SHARES)
            .append(
                Element::builder("resource", NS_SHARES)
                    .attr("resource".try_into().unwrap(), "r")
                    .append(
                        Element::builder("share_item", NS_SHARES)
                            .attr(
                                "hash".try_into().unwrap(),
                                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4",
                            )
                            .attr("name".try_into().unwrap(), "evil\0../x")
                            .attr("size".try_into().unwrap(), "1")
                            .build(),
                    )
                    .build(),
            )
            .build();
        let p = parse_user_shares(&el, "x@y").unwrap();
        assert!(p.item.resources["r"].shares.is_empty());
        assert!(matches!(p.rejections[0].reason, Invalid::ControlInName(_)));
    }
}
