//! Property tests of the shares payload: any valid item written as XML (both
//! the wire element and the original's text form) reads back to the same
//! values, and arbitrary attribute strings never make the reader panic. The
//! catalog, which packs what it holds, gives back every item unchanged and
//! finds what `str::to_lowercase` finds.

use bitween::shares::{
    parse_user_shares, to_element, to_xml_string, Catalog, InfoHash, ResourceShares, Share,
    ShareName, UserShares,
};
use minidom::Element;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

fn name() -> impl Strategy<Value = ShareName> {
    // Printable text including XML specials and non-ASCII; the filter keeps
    // what the validator accepts.
    "[a-zA-Z0-9 _.&<>\"'äöü☀-]{1,60}".prop_filter_map("valid name", |s| ShareName::new(&s).ok())
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    let v4 = any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b)));
    let v6 = any::<[u16; 8]>().prop_map(|s| {
        IpAddr::V6(Ipv6Addr::new(
            s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
        ))
    });
    (prop_oneof![v4, v6], 1u16..=65535).prop_filter_map("usable address", |(ip, port)| {
        let usable =
            !ip.is_unspecified() && !ip.is_multicast() && ip != IpAddr::V4(Ipv4Addr::BROADCAST);
        usable.then_some(SocketAddr::new(ip, port))
    })
}

/// Names whose case is hard: letters that lower-case to other lengths or to
/// ASCII (`İ`, the Kelvin sign), a final sigma, `ẞ`.
fn cased_name() -> impl Strategy<Value = ShareName> {
    "[a-zA-Z0-9 .äÄßẞσςΣİıK\u{212a}☀-]{1,30}"
        .prop_filter_map("valid name", |s| ShareName::new(&s).ok())
}

fn resource() -> impl Strategy<Value = ResourceShares> {
    resource_of(name().boxed())
}

fn resource_of(name: BoxedStrategy<ShareName>) -> impl Strategy<Value = ResourceShares> {
    (
        prop::collection::vec((any::<[u8; 20]>(), name, any::<u64>()), 0..8),
        prop::collection::vec(addr(), 0..4),
    )
        .prop_map(|(shares, mut addresses)| {
            let mut seen = std::collections::HashSet::new();
            let shares = shares
                .into_iter()
                .filter(|(h, _, _)| seen.insert(*h))
                .map(|(h, name, size)| Share {
                    hash: InfoHash(h),
                    name,
                    size,
                })
                .collect();
            addresses.dedup();
            let mut unique = Vec::new();
            for a in addresses {
                if !unique.contains(&a) {
                    unique.push(a);
                }
            }
            ResourceShares {
                shares,
                addresses: unique,
                more: None,
            }
        })
}

fn item() -> impl Strategy<Value = UserShares> {
    prop::collection::btree_map("[a-zA-Z0-9_.-]{1,20}", resource(), 0..4)
        .prop_map(|resources| UserShares { resources })
}

fn cased_item() -> impl Strategy<Value = UserShares> {
    prop::collection::btree_map("[a-z]{1,5}", resource_of(cased_name().boxed()), 0..4)
        .prop_map(|resources| UserShares { resources })
}

proptest! {
    #[test]
    fn the_wire_element_reads_back_to_the_same_item(item in item()) {
        let parsed = parse_user_shares(&to_element(&item), "prop@test").unwrap();
        prop_assert!(parsed.rejections.is_empty(), "{:?}", parsed.rejections);
        prop_assert_eq!(parsed.item, item);
    }

    #[test]
    fn the_original_text_form_reads_back_to_the_same_item(item in item()) {
        let el: Element = to_xml_string(&item).parse().unwrap();
        let parsed = parse_user_shares(&el, "prop@test").unwrap();
        prop_assert!(parsed.rejections.is_empty(), "{:?}", parsed.rejections);
        prop_assert_eq!(parsed.item, item);
    }

    #[test]
    fn arbitrary_attribute_values_never_panic(
        hash in ".{0,50}", name in ".{0,50}", size in ".{0,25}",
        address in ".{0,45}", port in ".{0,8}", res in ".{0,10}",
    ) {
        let ns = bitween::NS_SHARES;
        let el = Element::builder("user_shares", ns)
            .append(
                Element::builder("resource", ns)
                    .attr("resource".try_into().unwrap(), res.as_str())
                    .append(Element::builder("share_item", ns)
                        .attr("hash".try_into().unwrap(), hash.as_str())
                        .attr("name".try_into().unwrap(), name.as_str())
                        .attr("size".try_into().unwrap(), size.as_str())
                        .build())
                    .append(Element::builder("ip_address", ns)
                        .attr("address".try_into().unwrap(), address.as_str())
                        .attr("port".try_into().unwrap(), port.as_str())
                        .build())
                    .build(),
            )
            .build();
        let parsed = parse_user_shares(&el, "fuzz@test").unwrap();
        // Whatever survived is valid by construction: it writes and reads back.
        let again = parse_user_shares(&to_element(&parsed.item), "fuzz@test").unwrap();
        prop_assert_eq!(again.item, parsed.item);
    }

    #[test]
    fn the_catalog_gives_back_what_it_holds_and_searches_like_to_lowercase(
        item in cased_item(),
        needle in "[a-zA-Z äÄßẞσςΣİıK\u{212a}\u{307}]{0,3}",
    ) {
        let (catalog, writer) = Catalog::new();
        writer.replace("c@x", item.clone());
        prop_assert_eq!(catalog.item("c@x").unwrap_or_default(), item.clone());
        let folded = needle.to_lowercase();
        let expected: Vec<(String, Share)> = item
            .resources
            .iter()
            .flat_map(|(r, e)| e.shares.iter().map(move |s| (r.clone(), s.clone())))
            .filter(|(_, s)| s.name.as_str().to_lowercase().contains(&folded))
            .collect();
        let found: Vec<(String, Share)> = catalog
            .search(&needle)
            .into_iter()
            .map(|h| (h.resource, h.share))
            .collect();
        prop_assert_eq!(found, expected);
    }
}
