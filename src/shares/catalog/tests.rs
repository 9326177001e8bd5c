//! Unit tests of the catalog: replacing, merging chunks, sources, search.

use super::*;
use crate::shares::ShareName;

fn share(hash_byte: u8, name: &str) -> Share {
    Share {
        hash: InfoHash([hash_byte; 20]),
        name: ShareName::new(name).unwrap(),
        size: 42,
    }
}

fn item(resources: &[(&str, Vec<Share>, &str)]) -> UserShares {
    let mut u = UserShares::default();
    for (r, shares, addr) in resources {
        u.resources.insert(
            r.to_string(),
            ResourceShares {
                shares: shares.clone(),
                addresses: vec![addr.parse().unwrap()],
                more: None,
            },
        );
    }
    u
}

#[test]
fn an_item_replaces_everything_known_about_the_contact() {
    let (cat, w) = Catalog::new();
    assert!(w.replace(
        "alice@x",
        item(&[
            ("laptop", vec![share(1, "Photos")], "10.0.0.1:1"),
            ("desk", vec![share(2, "b")], "10.0.0.2:2")
        ])
    ));
    assert!(!w.replace(
        "alice@x",
        item(&[
            ("laptop", vec![share(1, "Photos")], "10.0.0.1:1"),
            ("desk", vec![share(2, "b")], "10.0.0.2:2")
        ])
    ));
    assert_eq!(cat.sources(&InfoHash([2; 20])).len(), 1);
    assert!(w.replace(
        "alice@x",
        item(&[("laptop", vec![share(3, "c")], "10.0.0.1:1")])
    ));
    let c = cat.contact("alice@x").unwrap();
    assert_eq!(c.resources.len(), 1);
    assert!(cat.resource("alice@x", "desk").is_none());
    assert!(cat.sources(&InfoHash([1; 20])).is_empty());
    assert!(cat.sources(&InfoHash([2; 20])).is_empty());
    assert_eq!(
        cat.sources(&InfoHash([3; 20]))[0].address,
        "10.0.0.1:1".parse().unwrap()
    );
    assert!(w.replace("alice@x", UserShares::default()));
    assert!(cat.contact("alice@x").is_none());
    // The same empty item again (servers deliver twice) leaves no trace.
    assert!(!w.replace("alice@x", UserShares::default()));
    assert!(cat.contact("alice@x").is_none());
    assert!(cat.contacts().is_empty());
}

#[test]
fn sources_span_contacts_and_resources_with_online_state() {
    let (cat, w) = Catalog::new();
    w.replace(
        "alice@x",
        item(&[("a1", vec![share(1, "f")], "10.0.0.1:1")]),
    );
    w.replace(
        "bob@x",
        item(&[
            ("b1", vec![share(1, "f")], "10.0.0.2:2"),
            ("b2", vec![], "10.0.0.3:3"),
        ]),
    );
    assert!(w.set_online("bob@x", "b1", true));
    assert!(!w.set_online("bob@x", "b1", true));
    let s = cat.sources(&InfoHash([1; 20]));
    assert_eq!(s.len(), 2);
    assert_eq!((s[0].jid.as_str(), s[0].online), ("alice@x", false));
    assert_eq!(
        (s[1].jid.as_str(), s[1].resource.as_str(), s[1].online),
        ("bob@x", "b1", true)
    );
    assert_eq!(
        w.all_offline(),
        vec![("bob@x".to_string(), "b1".to_string())]
    );
    assert!(cat.sources(&InfoHash([1; 20])).iter().all(|s| !s.online));
}

#[test]
fn search_ignores_case_across_contacts() {
    let (cat, w) = Catalog::new();
    w.replace(
        "alice@x",
        item(&[(
            "a",
            vec![share(1, "Holiday PHOTOS"), share(2, "music")],
            "10.0.0.1:1",
        )]),
    );
    w.replace(
        "bob@x",
        item(&[("b", vec![share(3, "photos of ÄPFEL")], "10.0.0.2:1")]),
    );
    let hits = cat.search("photos");
    assert_eq!(hits.len(), 2);
    assert_eq!(cat.search("äpfel").len(), 1);
    assert!(cat.search("nothing").is_empty());
    // A name matching twice is one hit; an empty query lists everything;
    // a match never spans two names.
    assert_eq!(cat.search("s").len(), 3);
    assert_eq!(cat.search("").len(), 3);
    assert_eq!(cat.search_first("s", 2).len(), 2);
    assert_eq!(cat.search_first("", 1).len(), 1);
    assert!(cat.search("photos\nmusic").is_empty());
    assert!(cat.search("photosmusic").is_empty());
}

#[test]
fn a_contact_seen_online_before_its_item_is_found_by_hash() {
    let (cat, w) = Catalog::new();
    w.set_online("dora@x", "pc", true);
    w.replace("dora@x", item(&[("pc", vec![share(9, "n")], "10.0.0.9:9")]));
    let s = cat.sources(&InfoHash([9; 20]));
    assert_eq!((s[0].jid.as_str(), s[0].online), ("dora@x", true));
    assert_eq!(cat.share(&InfoHash([9; 20])).unwrap().name.as_str(), "n");
}

#[test]
fn presence_without_an_item_is_tracked_and_forgotten() {
    let (cat, w) = Catalog::new();
    w.set_online("carol@x", "phone", true);
    assert_eq!(
        cat.contact("carol@x").unwrap().online,
        vec!["phone".to_string()]
    );
    w.set_online("carol@x", "phone", false);
    assert!(cat.contact("carol@x").is_none());
}
