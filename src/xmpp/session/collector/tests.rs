//! The chunk collector's unit tests: events in, decisions out.

use super::*;
use crate::shares::{chunks::More, ResourceShares};

fn jid(user: &str) -> BareJid {
    BareJid::new(&format!("{user}@example.org")).unwrap()
}

/// `n` shares, numbered from `from` (so lists can be told apart).
fn shares(from: usize, n: usize) -> Vec<Share> {
    (from..from + n)
        .map(|i| Share::from_wire(&format!("{i:040x}"), &format!("file {i}"), "1").unwrap())
        .collect()
}

fn more(version: &str, chunks: u16) -> More {
    More {
        version: version.into(),
        chunks,
        total: 0,
    }
}

/// An item: per resource, the shares it carries and its pointer.
fn item(resources: &[(&str, Vec<Share>, Option<More>)]) -> UserShares {
    let mut item = UserShares::default();
    for (resource, shares, more) in resources {
        item.resources.insert(
            resource.to_string(),
            ResourceShares {
                shares: shares.clone(),
                addresses: Vec::new(),
                more: more.clone(),
            },
        );
    }
    item
}

/// One resource `r`, no shares in the item, a pointer to `version`.
fn pointing(version: &str, chunks: u16) -> UserShares {
    item(&[("r", Vec::new(), Some(more(version, chunks)))])
}

fn fetches(plan: &Plan) -> Vec<(&str, &str, u16)> {
    plan.fetch
        .iter()
        .map(|(r, m)| (r.as_str(), m.version.as_str(), m.chunks))
        .collect()
}

fn expanded(plan: &Plan, resource: &str) -> Option<Vec<Share>> {
    plan.expand.get(resource).map(|rest| rest.to_vec())
}

#[test]
fn a_fresh_pointer_is_fetched_once_and_its_chunks_joined_in_order() {
    let mut c = ChunkCollector::default();
    let alice = jid("alice");
    let plan = c.item(&alice, &pointing("v1", 3));
    assert_eq!(fetches(&plan), [("r", "v1", 3)]);
    assert!(plan.expand.is_empty());
    // The same item again (a push after our fetch, say): under way already.
    assert_eq!(c.item(&alice, &pointing("v1", 3)), Plan::default());
    // Chunks come in any order; the list is theirs in order.
    assert_eq!(
        c.chunk(&alice, "r", "v1", 3, Some(shares(20, 5))),
        Chunked::Waiting
    );
    assert_eq!(
        c.chunk(&alice, "r", "v1", 1, Some(shares(0, 10))),
        Chunked::Waiting
    );
    let done = c.chunk(&alice, "r", "v1", 2, Some(shares(10, 10)));
    assert_eq!(done, Chunked::Complete);
    assert!(done.deliver_again());
    // Nothing of it is under way any more.
    assert_eq!(
        c.chunk(&alice, "r", "v1", 1, Some(shares(0, 10))),
        Chunked::Stale
    );
    let plan = c.item(&alice, &pointing("v1", 3));
    assert!(plan.fetch.is_empty());
    assert_eq!(expanded(&plan, "r").unwrap(), shares(0, 25));
}

#[test]
fn a_repeated_item_is_expanded_from_what_was_fetched() {
    let mut c = ChunkCollector::default();
    let alice = jid("alice");
    c.item(&alice, &pointing("v1", 1));
    c.chunk(&alice, "r", "v1", 1, Some(shares(0, 7)));
    let first = c.item(&alice, &pointing("v1", 1));
    let again = c.item(&alice, &pointing("v1", 1));
    assert!(first.fetch.is_empty() && again.fetch.is_empty());
    // The same allocation each time (the catalog shares it).
    assert!(Arc::ptr_eq(&first.expand["r"], &again.expand["r"]));
    assert_eq!(first.expand["r"].to_vec(), shares(0, 7));
}

#[test]
fn a_newer_version_replaces_an_older_fetch_under_way() {
    let mut c = ChunkCollector::default();
    let alice = jid("alice");
    c.item(&alice, &pointing("v1", 2));
    assert_eq!(
        c.chunk(&alice, "r", "v1", 1, Some(shares(0, 5))),
        Chunked::Waiting
    );
    let plan = c.item(&alice, &pointing("v2", 2));
    assert_eq!(fetches(&plan), [("r", "v2", 2)]);
    // What is still coming for v1 counts for nothing.
    assert_eq!(
        c.chunk(&alice, "r", "v1", 2, Some(shares(5, 5))),
        Chunked::Stale
    );
    assert_eq!(
        c.chunk(&alice, "r", "v2", 2, Some(shares(60, 3))),
        Chunked::Waiting
    );
    assert_eq!(
        c.chunk(&alice, "r", "v2", 1, Some(shares(50, 10))),
        Chunked::Complete
    );
    let plan = c.item(&alice, &pointing("v2", 2));
    assert_eq!(expanded(&plan, "r").unwrap(), shares(50, 13));
}

#[test]
fn an_older_list_stays_to_expand_a_stale_item_while_a_newer_is_fetched() {
    // Several resources of an account publishing at once pass stale items
    // around: v1, then v2, then v1 again.
    let mut c = ChunkCollector::default();
    let alice = jid("alice");
    c.item(&alice, &pointing("v1", 1));
    c.chunk(&alice, "r", "v1", 1, Some(shares(0, 4)));
    assert_eq!(
        fetches(&c.item(&alice, &pointing("v2", 1))),
        [("r", "v2", 1)]
    );
    let stale = c.item(&alice, &pointing("v1", 1));
    assert!(stale.fetch.is_empty(), "v2 is under way, v1 is held");
    assert_eq!(expanded(&stale, "r").unwrap(), shares(0, 4));
    // v2's fetch went on meanwhile.
    assert_eq!(
        c.chunk(&alice, "r", "v2", 1, Some(shares(9, 2))),
        Chunked::Complete
    );
    assert_eq!(
        expanded(&c.item(&alice, &pointing("v2", 1)), "r").unwrap(),
        shares(9, 2)
    );
}

#[test]
fn a_failed_chunk_is_fetched_again_with_the_next_item_of_that_list() {
    let mut c = ChunkCollector::default();
    let alice = jid("alice");
    c.item(&alice, &pointing("v1", 2));
    let failed = c.chunk(&alice, "r", "v1", 1, None);
    assert_eq!(failed, Chunked::Failed);
    assert!(!failed.deliver_again());
    // The other chunk's answer finds nothing under way.
    assert_eq!(
        c.chunk(&alice, "r", "v1", 2, Some(shares(0, 3))),
        Chunked::Stale
    );
    // Nothing was kept: the same item fetches again.
    let plan = c.item(&alice, &pointing("v1", 2));
    assert_eq!(fetches(&plan), [("r", "v1", 2)]);
    assert!(plan.expand.is_empty());
}

#[test]
fn a_failed_chunk_of_a_list_superseded_meanwhile_delivers_the_item_again() {
    let mut c = ChunkCollector::default();
    let alice = jid("alice");
    // v2 is held; a stale item names v1, which is fetched ...
    c.item(&alice, &pointing("v2", 1));
    c.chunk(&alice, "r", "v2", 1, Some(shares(0, 2)));
    assert_eq!(
        fetches(&c.item(&alice, &pointing("v1", 1))),
        [("r", "v1", 1)]
    );
    // ... then v2 comes again (shown from what is held; v1's fetch goes on)
    // and v1's chunk cannot be had: v2 replaced it on the contact's server.
    assert!(c.item(&alice, &pointing("v2", 1)).fetch.is_empty());
    let outcome = c.chunk(&alice, "r", "v1", 1, None);
    assert_eq!(outcome, Chunked::Superseded);
    assert!(outcome.deliver_again());
    let plan = c.item(&alice, &pointing("v2", 1));
    assert_eq!(expanded(&plan, "r").unwrap(), shares(0, 2));
    assert!(plan.fetch.is_empty());
}

#[test]
fn a_failed_chunk_of_a_list_no_longer_pointed_to_is_not_fetched_again() {
    let mut c = ChunkCollector::default();
    let alice = jid("alice");
    c.item(&alice, &pointing("v1", 1));
    // The resource now lists everything in its item.
    let plain = item(&[("r", shares(0, 1), None)]);
    assert_eq!(c.item(&alice, &plain), Plan::default());
    assert_eq!(c.chunk(&alice, "r", "v1", 1, None), Chunked::Failed);
}

#[test]
fn a_resources_chunks_keep_at_most_max_shares_in_the_order_they_arrive() {
    let mut c = ChunkCollector::default();
    let alice = jid("alice");
    let third = chunks::MAX_SHARES * 2 / 5;
    c.item(&alice, &pointing("v1", 3));
    // Chunk 3 first, then 1: together 80 %; chunk 2 fills the rest only.
    assert_eq!(
        c.chunk(&alice, "r", "v1", 3, Some(shares(2 * third, third))),
        Chunked::Waiting
    );
    assert_eq!(
        c.chunk(&alice, "r", "v1", 1, Some(shares(0, third))),
        Chunked::Waiting
    );
    assert_eq!(
        c.chunk(&alice, "r", "v1", 2, Some(shares(third, third))),
        Chunked::Complete
    );
    let rest = expanded(&c.item(&alice, &pointing("v1", 3)), "r").unwrap();
    assert_eq!(rest.len(), chunks::MAX_SHARES);
    let kept_of_two = chunks::MAX_SHARES - 2 * third;
    let mut expected = shares(0, third);
    expected.extend(shares(third, kept_of_two));
    expected.extend(shares(2 * third, third));
    assert!(rest == expected, "chunk 2 is cut, in place");
}

#[test]
fn a_contacts_bound_counts_its_item_and_its_other_resources() {
    let mut c = ChunkCollector::default();
    let alice = jid("alice");
    // 50,000 shares in the item (a's entry); a and b each point to more.
    let in_item = MAX_CONTACT_SHARES / 4;
    let both = item(&[
        ("a", shares(0, in_item), Some(more("va", 2))),
        ("b", Vec::new(), Some(more("vb", 1))),
    ]);
    let plan = c.item(&alice, &both);
    assert_eq!(fetches(&plan), [("a", "va", 2), ("b", "vb", 1)]);
    // a may add up to a resource's bound (100,000); b what is left of the
    // contact's (200,000 - 50,000 - 100,000).
    let a_room = chunks::MAX_SHARES;
    let b_room = MAX_CONTACT_SHARES - in_item - a_room;
    let big = chunks::MAX_SHARES;
    c.chunk(&alice, "a", "va", 1, Some(shares(1_000_000, big / 2)));
    c.chunk(&alice, "a", "va", 2, Some(shares(2_000_000, big)));
    assert_eq!(
        c.chunk(&alice, "b", "vb", 1, Some(shares(3_000_000, big))),
        Chunked::Complete
    );
    let plan = c.item(&alice, &both);
    assert_eq!(plan.expand["a"].len(), a_room);
    assert_eq!(plan.expand["b"].len(), b_room);
    assert_eq!(
        plan.expand["b"].to_vec(),
        shares(3_000_000, b_room),
        "the first of b's chunk"
    );
    // A new list of b's gets the room that a's fetched rest leaves.
    let b_new = item(&[
        ("a", shares(0, in_item), Some(more("va", 2))),
        ("b", Vec::new(), Some(more("vb2", 1))),
    ]);
    assert_eq!(fetches(&c.item(&alice, &b_new)), [("b", "vb2", 1)]);
    c.chunk(&alice, "b", "vb2", 1, Some(shares(4_000_000, big)));
    assert_eq!(c.item(&alice, &b_new).expand["b"].len(), b_room);
    // Another contact has a bound of their own.
    let bob = jid("bob");
    c.item(&bob, &pointing("v1", 1));
    c.chunk(&bob, "r", "v1", 1, Some(shares(0, big)));
    assert_eq!(c.item(&bob, &pointing("v1", 1)).expand["r"].len(), big);
}

#[test]
fn what_a_resource_leaves_the_item_with_goes() {
    let mut c = ChunkCollector::default();
    let alice = jid("alice");
    let two = item(&[
        ("r1", Vec::new(), Some(more("v1", 1))),
        ("r2", Vec::new(), Some(more("v2", 1))),
    ]);
    c.item(&alice, &two);
    c.chunk(&alice, "r1", "v1", 1, Some(shares(0, 3)));
    // r2's fetch is still under way when r1 is gone from the item; later r2
    // is gone and r1 back.
    let only_r2 = item(&[("r2", Vec::new(), Some(more("v2", 1)))]);
    assert!(c.item(&alice, &only_r2).fetch.is_empty());
    let only_r1 = item(&[("r1", Vec::new(), Some(more("v1", 1)))]);
    assert_eq!(fetches(&c.item(&alice, &only_r1)), [("r1", "v1", 1)]);
    assert_eq!(
        c.chunk(&alice, "r2", "v2", 1, Some(shares(9, 1))),
        Chunked::Stale
    );
    assert_eq!(fetches(&c.item(&alice, &only_r2)), [("r2", "v2", 1)]);
    // An empty item (a retraction) leaves nothing.
    c.item(&alice, &UserShares::default());
    assert!(c.expansions.is_empty() && c.fetches.is_empty());
}

#[test]
fn what_a_contact_leaves_the_roster_with_goes_and_only_that() {
    let mut c = ChunkCollector::default();
    let (alice, bob) = (jid("alice"), jid("bob"));
    for who in [&alice, &bob] {
        c.item(who, &pointing("v1", 2));
        c.chunk(who, "r", "v1", 1, Some(shares(0, 1)));
        c.chunk(who, "r", "v1", 2, Some(shares(1, 1)));
        c.item(who, &pointing("v2", 1));
    }
    c.forget(&alice);
    assert_eq!(
        c.chunk(&alice, "r", "v2", 1, Some(shares(5, 1))),
        Chunked::Stale
    );
    assert_eq!(
        fetches(&c.item(&alice, &pointing("v1", 2))),
        [("r", "v1", 2)]
    );
    // Bob's are untouched.
    assert_eq!(
        expanded(&c.item(&bob, &pointing("v1", 2)), "r").unwrap(),
        shares(0, 2)
    );
    assert_eq!(
        c.chunk(&bob, "r", "v2", 1, Some(shares(5, 1))),
        Chunked::Complete
    );
}

#[test]
fn a_reconnect_drops_the_fetches_under_way_and_keeps_what_was_fetched() {
    let mut c = ChunkCollector::default();
    let alice = jid("alice");
    let two = item(&[
        ("r1", Vec::new(), Some(more("v1", 1))),
        ("r2", Vec::new(), Some(more("v2", 1))),
    ]);
    c.item(&alice, &two);
    c.chunk(&alice, "r1", "v1", 1, Some(shares(0, 3)));
    c.reconnected();
    assert_eq!(
        c.chunk(&alice, "r2", "v2", 1, Some(shares(3, 1))),
        Chunked::Stale
    );
    let plan = c.item(&alice, &two);
    assert_eq!(fetches(&plan), [("r2", "v2", 1)]);
    assert_eq!(expanded(&plan, "r1").unwrap(), shares(0, 3));
}
