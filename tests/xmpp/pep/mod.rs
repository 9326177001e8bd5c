//! Publishing and receiving share lists over PEP against a real Prosody and
//! a real ejabberd (every test runs on both): contacts see exactly what is
//! published and every change; non-contacts see nothing; several resources
//! of one account merge; hostile items lose only their bad entries
//! (`hostile.rs`); a server restart heals on its own.

mod hostile;
mod raw;

use std::time::Duration;

use bitween::events::Event;
use bitween::shares::ResourceShares;
use bitween::xmpp::{contact_jid, ConnectionState};
use bitween_testkit::on_each_server;
use bitween_testkit::{entry, share, Peer, Server, ServerKind, XmppServer, DOMAIN};
use minidom::Element;
use tokio_xmpp::IqRequest;

use raw::raw_iq;

const NS: &str = "https://xmpp.kwoh.de/protocol/shares";

on_each_server!(
    contacts_see_published_shares_and_every_change,
    two_resources_of_one_account_merge_and_leave_separately,
    a_server_restart_heals_within_seconds,
    a_wrong_password_is_reported_and_not_retried,
    ten_thousand_shares_travel_whole_and_the_original_reads_what_fits
);

fn jid(user: &str) -> String {
    format!("{user}@{DOMAIN}")
}

async fn wait_mutual(peer: &mut Peer, other: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let roster = peer.xmpp.roster().await.unwrap();
        if roster
            .iter()
            .any(|c| c.jid == other && c.subscription == bitween::xmpp::Subscription::Both)
        {
            return;
        }
        let left = deadline - tokio::time::Instant::now();
        peer.wait_for_within(&format!("roster: both with {other}"), left, |e| {
            matches!(e, Event::RosterChanged)
        })
        .await;
    }
}

/// The resource entry `peer` holds for `user/resource`, if any.
fn seen(peer: &Peer, user: &str, resource: &str) -> Option<ResourceShares> {
    peer.catalog
        .resource(&jid(user), resource)
        .map(|v| ResourceShares {
            shares: v.shares,
            addresses: v.addresses,
            more: None,
        })
}

async fn contacts_see_published_shares_and_every_change(kind: ServerKind) {
    let server = Server::start(kind, &["alice", "bob", "carol"], &[]);
    let mut alice = Peer::login(&server, "alice", "laptop").await;
    let mut bob = Peer::login(&server, "bob", "desk").await;
    let mut carol = Peer::login(&server, "carol", "phone").await;

    // Become contacts from the app: alice asks, bob accepts.
    alice
        .xmpp
        .add_contact(contact_jid(&jid("bob")).unwrap())
        .unwrap();
    bob.wait_for("alice's subscription request", |e| {
        *e == Event::SubscriptionRequest { jid: jid("alice") }
    })
    .await;
    bob.xmpp
        .accept_contact(contact_jid(&jid("alice")).unwrap())
        .unwrap();
    wait_mutual(&mut alice, &jid("bob")).await;
    wait_mutual(&mut bob, &jid("alice")).await;
    let roster = bob.xmpp.roster().await.unwrap();
    let alice_at_bob = roster.iter().find(|c| c.jid == jid("alice")).unwrap();
    assert!(
        !alice_at_bob.pending_in && !alice_at_bob.pending_out,
        "{alice_at_bob:?}"
    );

    let first = entry(
        vec![
            share(1, "holiday_photos", 123_456_789),
            share(2, "Thesis.pdf", 1_048_576),
            share(3, "music", 0),
        ],
        &["127.0.0.1:6881", "[::1]:6881"],
    );
    alice.xmpp.set_local(first.clone()).unwrap();
    bob.wait_catalog("alice's three shares", |c| {
        c.resource(&jid("alice"), "laptop")
            .is_some_and(|r| r.shares == first.shares && r.addresses == first.addresses)
    })
    .await;
    assert_eq!(seen(&bob, "alice", "laptop"), Some(first.clone()));
    let contact = bob.catalog.contact(&jid("alice")).unwrap();
    assert_eq!(contact.resources.len(), 1, "exactly alice's one resource");
    assert!(contact.resources[0].online);
    let sources = bob.catalog.sources(&share(2, "x", 0).hash);
    assert_eq!(sources.len(), 2, "one source per published address");

    let second = entry(
        vec![
            share(2, "Thesis.pdf", 1_048_576),
            share(4, "new film.mkv", 7),
        ],
        &["127.0.0.1:6882"],
    );
    alice.xmpp.set_local(second.clone()).unwrap();
    bob.wait_catalog("alice's changed list", |c| {
        c.resource(&jid("alice"), "laptop")
            .is_some_and(|r| r.shares == second.shares)
    })
    .await;
    assert_eq!(seen(&bob, "alice", "laptop"), Some(second.clone()));
    assert_eq!(bob.catalog.search("FILM").len(), 1);

    // carol is nobody's contact: she got nothing of alice's.
    assert!(carol.catalog.contact(&jid("alice")).is_none());
    while let Ok(e) = carol.events.try_recv() {
        assert!(
            !matches!(&e, Event::ContactSharesChanged { jid: j } if *j == jid("alice")),
            "carol received alice's shares: {e:?}"
        );
    }

    alice.xmpp.shutdown().await;
    assert!(matches!(
        alice.xmpp.state(),
        ConnectionState::Offline { .. }
    ));
    bob.wait_catalog("alice's resource gone", |c| {
        c.resource(&jid("alice"), "laptop").is_none()
    })
    .await;
    // Two people who both "add" each other (what bitweenc add-contact does
    // on each side) end up mutual contacts with nothing left pending.
    bob.xmpp
        .add_contact(contact_jid(&jid("carol")).unwrap())
        .unwrap();
    carol
        .wait_for("bob's request", |e| {
            *e == Event::SubscriptionRequest { jid: jid("bob") }
        })
        .await;
    carol
        .xmpp
        .add_contact(contact_jid(&jid("bob")).unwrap())
        .unwrap();
    wait_mutual(&mut bob, &jid("carol")).await;
    wait_mutual(&mut carol, &jid("bob")).await;
    for (peer, other) in [(&carol, "bob"), (&bob, "carol")] {
        let roster = peer.xmpp.roster().await.unwrap();
        let contact = roster.iter().find(|c| c.jid == jid(other)).unwrap();
        assert!(!contact.pending_in && !contact.pending_out, "{contact:?}");
    }
    carol.xmpp.shutdown().await;
    bob.xmpp.shutdown().await;
}

async fn two_resources_of_one_account_merge_and_leave_separately(kind: ServerKind) {
    let server = Server::start(kind, &["alice", "bob"], &[("alice", "bob")]);
    let mut bob = Peer::login(&server, "bob", "desk").await;
    let mut laptop = Peer::login(&server, "alice", "laptop").await;
    let mut desktop = Peer::login(&server, "alice", "desktop").await;
    let on_laptop = entry(vec![share(1, "from laptop", 1)], &["127.0.0.1:1001"]);
    let on_desktop = entry(
        vec![share(2, "from desktop", 2), share(3, "also desktop", 3)],
        &["127.0.0.1:1002"],
    );
    // Both publish at once: the merge rule must end with both entries.
    laptop.xmpp.set_local(on_laptop.clone()).unwrap();
    desktop.xmpp.set_local(on_desktop.clone()).unwrap();
    bob.wait_catalog("both of alice's resources", |c| {
        c.contact(&jid("alice"))
            .is_some_and(|v| v.resources.len() == 2 && v.resources.iter().all(|r| r.online))
            && c.resource(&jid("alice"), "laptop")
                .is_some_and(|r| r.shares == on_laptop.shares)
            && c.resource(&jid("alice"), "desktop")
                .is_some_and(|r| r.shares == on_desktop.shares)
    })
    .await;
    assert_eq!(seen(&bob, "alice", "laptop"), Some(on_laptop.clone()));
    assert_eq!(seen(&bob, "alice", "desktop"), Some(on_desktop.clone()));
    // Each resource also sees the other one of its own account. (The
    // laptop's leaving publishes the item as the laptop last saw it, less
    // its own entry: seen before, the desktop's entry stays as it is. Had
    // the laptop left before the desktop's last publish reached it, the
    // desktop would put its entry back on the push, a moment later.)
    desktop
        .wait_catalog("laptop seen from desktop", |c| {
            c.resource(&jid("alice"), "laptop")
                .is_some_and(|r| r.shares == on_laptop.shares)
        })
        .await;
    laptop
        .wait_catalog("desktop seen from laptop", |c| {
            c.resource(&jid("alice"), "desktop")
                .is_some_and(|r| r.shares == on_desktop.shares)
        })
        .await;

    laptop.xmpp.shutdown().await;
    bob.wait_catalog("only the desktop left", |c| {
        c.contact(&jid("alice"))
            .is_some_and(|v| v.resources.len() == 1 && v.resources[0].resource == "desktop")
    })
    .await;
    assert_eq!(seen(&bob, "alice", "desktop"), Some(on_desktop));
    desktop.xmpp.shutdown().await;
    bob.xmpp.shutdown().await;
}

async fn a_server_restart_heals_within_seconds(kind: ServerKind) {
    let mut server = Server::start(kind, &["alice", "bob"], &[("alice", "bob")]);
    let mut alice = Peer::login(&server, "alice", "laptop").await;
    let mut bob = Peer::login(&server, "bob", "desk").await;
    let list = entry(vec![share(9, "before restart", 9)], &["127.0.0.1:6881"]);
    alice.xmpp.set_local(list.clone()).unwrap();
    bob.wait_catalog("alice's list", |c| {
        c.resource(&jid("alice"), "laptop").is_some()
    })
    .await;

    server.stop();
    alice
        .wait_for("alice notices", |e| {
            matches!(e, Event::Disconnected { retrying: true, .. })
        })
        .await;
    bob.wait_for("bob notices", |e| {
        matches!(e, Event::Disconnected { retrying: true, .. })
    })
    .await;
    assert!(bob
        .catalog
        .sources(&share(9, "x", 0).hash)
        .iter()
        .all(|s| !s.online));

    server.start_again();
    let within = Duration::from_secs(10);
    alice
        .wait_for_within("alice back online", within, |e| {
            matches!(e, Event::Connected { .. })
        })
        .await;
    bob.wait_for_within("bob back online", within, |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    bob.wait_catalog_within("alice's current list, online, at bob", within, |c| {
        c.resource(&jid("alice"), "laptop")
            .is_some_and(|r| r.online && r.shares == list.shares)
    })
    .await;

    // And publishing works on the new connection.
    let after = entry(vec![share(10, "after restart", 10)], &["127.0.0.1:6881"]);
    alice.xmpp.set_local(after.clone()).unwrap();
    bob.wait_catalog("alice's new list", |c| {
        c.resource(&jid("alice"), "laptop")
            .is_some_and(|r| r.shares == after.shares)
    })
    .await;
    alice.xmpp.shutdown().await;
    bob.xmpp.shutdown().await;
}

async fn a_wrong_password_is_reported_and_not_retried(kind: ServerKind) {
    let server = Server::start(kind, &["alice"], &[]);
    let mut alice = Peer::start(&server, "alice", "laptop", "wrong password");
    let e = alice
        .wait_for("a login failure", |e| {
            matches!(e, Event::Disconnected { .. })
        })
        .await;
    let Event::Disconnected {
        reason, retrying, ..
    } = e
    else {
        unreachable!()
    };
    assert!(!retrying, "a wrong password must not be retried: {reason}");
    assert!(
        reason.contains("password"),
        "the reason should name the fix: {reason}"
    );
    assert!(matches!(
        alice.xmpp.state(),
        ConnectionState::Offline {
            retrying: false,
            ..
        }
    ));
    alice.xmpp.shutdown().await;
}

async fn ten_thousand_shares_travel_whole_and_the_original_reads_what_fits(kind: ServerKind) {
    let server = Server::start(kind, &["alice", "bob"], &[("alice", "bob")]);
    let laptop = Peer::login(&server, "alice", "laptop").await;
    let desktop = Peer::login(&server, "alice", "desktop").await;
    let phone = Peer::login(&server, "alice", "phone").await;
    let mut bob = Peer::login(&server, "bob", "desk").await;
    let many: Vec<_> = (0..10_000u32)
        .map(|i| {
            bitween::shares::Share::from_wire(
                &format!("{i:040x}"),
                &format!("a fairly long file name number {i}.flac"),
                "1234567",
            )
            .unwrap()
        })
        .collect();
    let addr = vec!["127.0.0.1:6881".parse().unwrap()];
    laptop
        .xmpp
        .set_local(entry(many.clone(), &["127.0.0.1:6881"]))
        .unwrap();
    desktop
        .xmpp
        .set_local(entry(vec![share(1, "small", 1)], &["127.0.0.1:6882"]))
        .unwrap();
    phone
        .xmpp
        .set_local(entry(vec![], &["127.0.0.1:6883"]))
        .unwrap();
    bob.wait_catalog(
        "all 10,000 of the laptop's shares and the other two resources",
        |c| {
            c.resource(&jid("alice"), "laptop")
                .is_some_and(|r| r.shares == many)
                && c.resource(&jid("alice"), "desktop").is_some()
                && c.resource(&jid("alice"), "phone").is_some()
        },
    )
    .await;
    let seen = bob.catalog.resource(&jid("alice"), "laptop").unwrap();
    assert_eq!(seen.shares, many, "complete, identical and in order");
    assert_eq!(seen.addresses, addr);

    // What the original implementation reads: the compatible item holds the
    // first shares that fit and a pointer it ignores.
    let items = Element::builder("pubsub", "http://jabber.org/protocol/pubsub")
        .append(
            Element::builder("items", "http://jabber.org/protocol/pubsub")
                .attr("node".try_into().unwrap(), NS)
                .build(),
        )
        .build();
    let answer = raw_iq(
        &server,
        "bob",
        Some(jid("alice").parse().unwrap()),
        IqRequest::Get(items),
        false,
    )
    .await
    .unwrap()
    .unwrap();
    let mut text = Vec::new();
    answer.write_to(&mut text).unwrap();
    assert!(
        text.len() < 262_144,
        "the item fits a stanza: {} bytes",
        text.len()
    );
    let user_shares = answer
        .get_child("items", "http://jabber.org/protocol/pubsub")
        .and_then(|i| i.children().next())
        .and_then(|i| i.children().next())
        .unwrap();
    let laptop_el = user_shares
        .children()
        .find(|r| r.attr("resource") == Some("laptop"))
        .unwrap();
    let in_item = laptop_el
        .children()
        .filter(|c| c.name() == "share_item")
        .count();
    // ejabberd refuses the first, 250,000-byte item (its PEP payload limit
    // of 250,000 bytes counts the payload as an Erlang term, which is
    // larger than the XML): the client halves its stanza budget and the
    // item holds about half as many shares.
    let at_least = match server.kind() {
        ServerKind::Prosody => 1_000,
        ServerKind::Ejabberd => 500,
    };
    assert!(
        in_item > at_least && in_item < 10_000,
        "{in_item} shares in the item"
    );
    let more = laptop_el
        .get_child("more", "urn:bitween:catalog:0")
        .expect("the pointer");
    assert_eq!(more.attr("total"), Some("10000"));

    // A change travels too (a new version of the list).
    let fewer = many[1..].to_vec();
    laptop
        .xmpp
        .set_local(entry(fewer.clone(), &["127.0.0.1:6881"]))
        .unwrap();
    bob.wait_catalog("the changed list", |c| {
        c.resource(&jid("alice"), "laptop")
            .is_some_and(|r| r.shares == fewer)
    })
    .await;
    for p in [&laptop, &desktop, &phone, &bob] {
        p.xmpp.shutdown().await;
    }
}
