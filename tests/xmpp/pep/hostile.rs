//! Hostile items: entries our reader refuses lose only themselves, a
//! payload that is not ours or is too large changes nothing, a forged event
//! from a non-contact is ignored, and a poisoned item (names and elements
//! at and beyond the XML reader's limits) neither ends the stream nor loses
//! the rest; a stream of "restricted list changed" notices costs a fetch
//! every two seconds, not one per notice.

use std::time::Duration;

use bitween::events::Event;
use bitween::shares::{ResourceShares, UserShares};
use bitween::xmpp::ConnectionState;
use bitween_testkit::on_each_server;
use bitween_testkit::{Peer, Prosody, Server, ServerKind, XmppServer};
use minidom::Element;

use super::raw::{publish_payload, raw_iq_set, send_raw_message};
use super::{jid, NS};

on_each_server!(hostile_items_lose_only_their_bad_entries);

async fn hostile_items_lose_only_their_bad_entries(kind: ServerKind) {
    let server = Server::start(kind, &["bob", "mallory", "stranger"], &[("bob", "mallory")]);
    let mut bob = Peer::login(&server, "bob", "desk").await;
    let good = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4";
    let hostile: Element = format!(
        r#"<user_shares xmlns="{NS}">
          <resource resource="evil">
            <share_item hash="{good}" name="good one" size="10"/>
            <share_item hash="not-a-hash" name="bad hash" size="1"/>
            <share_item hash="1111111111111111111111111111111111111111" name="bad size" size="-5"/>
            <share_item hash="2222222222222222222222222222222222222222" name="" size="1"/>
            <share_item hash="3333333333333333333333333333333333333333" name="../../.ssh/authorized_keys" size="1"/>
            <share_item hash="4444444444444444444444444444444444444444" name="ctl&#x85;char" size="1"/>
            <share_item hash="5555555555555555555555555555555555555555" name="{long}" size="1"/>
            <ip_address address="127.0.0.1" port="0"/>
            <ip_address address="127.0.0.1" port="65536"/>
            <ip_address address="attacker.example" port="80"/>
            <ip_address address="127.0.0.1" port="7000"/>
            <evil xmlns="urn:evil"><share_item xmlns="{NS}" hash="6666666666666666666666666666666666666666" name="hidden" size="1"/></evil>
          </resource>
          <resource resource="">
            <share_item hash="7777777777777777777777777777777777777777" name="empty resource" size="1"/>
          </resource>
          <unknown xmlns="urn:future"/>
        </user_shares>"#,
        long = "x".repeat(2000)
    )
    .parse()
    .unwrap();
    raw_iq_set(&server, "mallory", publish_payload(hostile))
        .await
        .unwrap();
    let Event::InvalidEntries { reasons, .. } = bob
        .wait_for(
            "mallory's rejected entries",
            |e| matches!(e, Event::InvalidEntries { jid: j, .. } if *j == jid("mallory")),
        )
        .await
    else {
        unreachable!()
    };
    let all = reasons.join("\n");
    for expected in [
        "info hash \"not-a-hash\"",
        "size \"-5\"",
        "name is empty",
        "path separator",
        "control character",
        "longer than 1024 bytes",
        "port \"0\"",
        "port \"65536\"",
        "address \"attacker.example\"",
    ] {
        assert!(
            all.contains(expected),
            "no rejection mentions {expected:?} in:\n{all}"
        );
    }
    assert_eq!(reasons.len(), 9, "{all}");
    // (Her presence alone puts her in the catalog: wait for the item.)
    bob.wait_catalog("mallory's valid entries", |c| {
        c.resource(&jid("mallory"), "evil").is_some()
    })
    .await;
    let evil = bob.catalog.resource(&jid("mallory"), "evil").unwrap();
    assert_eq!(evil.shares.len(), 1);
    assert_eq!(evil.shares[0].hash.to_hex(), good);
    assert_eq!(evil.addresses, vec!["127.0.0.1:7000".parse().unwrap()]);
    assert_eq!(
        bob.catalog
            .contact(&jid("mallory"))
            .unwrap()
            .resources
            .len(),
        1
    );

    // A payload we do not understand at all changes nothing we know ...
    let foreign: Element =
        r#"<something xmlns="urn:not-shares"><resource resource="x"/></something>"#
            .parse()
            .unwrap();
    raw_iq_set(&server, "mallory", publish_payload(foreign))
        .await
        .unwrap();

    // ... and an item just under the server's limit arrives whole: Prosody's
    // 256 KiB stanza limit; ejabberd's 250,000 bytes of PEP payload, counted
    // as an Erlang term (larger than the XML).
    let (low, high) = match server.kind() {
        ServerKind::Prosody => (255_000, 261_500),
        ServerKind::Ejabberd => (180_000, 186_500),
    };
    // Grow the item until it is just under the limit on the wire: the XMPP
    // library writes `<share_item ...></share_item>` (13 bytes more than the
    // self-closing text form) and the IQ around it adds a few hundred bytes.
    let mut big = UserShares::default();
    let mut r = ResourceShares::default();
    r.addresses.push("127.0.0.1:7001".parse().unwrap());
    let base_len = bitween::shares::to_xml_string(&{
        let mut u = UserShares::default();
        u.resources.insert("big".into(), r.clone());
        u
    })
    .len();
    let mut len = base_len;
    for n in 1u32.. {
        let share = bitween::shares::Share::from_wire(
            &format!("{n:040x}"),
            &format!("file number {n} with a longish name.bin"),
            "1",
        )
        .unwrap();
        let one = format!(
            r#"<share_item hash="{}" name="{}" size="1"/>"#,
            share.hash, share.name
        )
        .len()
            + "</share_item>".len()
            - 1;
        if len + one > high - 500 {
            break;
        }
        len += one;
        r.shares.push(share);
    }
    big.resources.insert("big".into(), r.clone());
    let wire_len = bitween::shares::to_xml_string(&big).len() + r.shares.len() * 12;
    assert!((low..high).contains(&wire_len), "item is {wire_len} bytes");
    let big_el = bitween::shares::to_element(&big);
    raw_iq_set(&server, "mallory", publish_payload(big_el))
        .await
        .unwrap();
    bob.wait_catalog("the big item", |c| {
        c.resource(&jid("mallory"), "big").is_some()
    })
    .await;
    let held = bob.catalog.resource(&jid("mallory"), "big").unwrap();
    assert_eq!(held.shares.len(), r.shares.len());
    assert_eq!(held.shares, r.shares);
    assert!(bob.catalog.resource(&jid("mallory"), "evil").is_none());

    // Someone who is not our contact sends a forged PEP event straight to us:
    // ignored.
    let forged: Element = format!(
        r#"<message xmlns="jabber:client" to="{bob}" type="headline"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="{NS}"><item id="current"><user_shares xmlns="{NS}"><resource resource="x"><share_item hash="{good}" name="forged" size="1"/><ip_address address="127.0.0.1" port="9"/></resource></user_shares></item></items></event></message>"#,
        bob = jid("bob")
    )
    .parse()
    .unwrap();
    send_raw_message(&server, "stranger", forged).await;
    // Make sure the forged message had its chance: a later item from a real
    // contact arrives after it on the same stream.
    raw_iq_set(
        &server,
        "mallory",
        publish_payload(bitween::shares::to_element(&UserShares::default())),
    )
    .await
    .unwrap();
    bob.wait_catalog("mallory's empty item", |c| {
        c.contact(&jid("mallory")).is_none()
    })
    .await;
    assert!(
        bob.catalog.contact(&jid("stranger")).is_none(),
        "a forged event from a non-contact was accepted"
    );
    assert!(bob.catalog.search("forged").is_empty());
    bob.xmpp.shutdown().await;
}

/// One item with names, hashes, resources, attribute and element names
/// just below and above the XML reader's limits (ours: 4096 bytes; rxml's
/// own: 8192) and a 70,000-character name: the stream stays up through it
/// and through a fresh login (when the server pushes the item again), and
/// the item's valid entries are kept.
#[tokio::test(flavor = "multi_thread")]
async fn a_poisoned_item_neither_ends_the_stream_nor_loses_the_rest() {
    let server = Prosody::start(&["bob", "mallory"], &[("bob", "mallory")]);
    let good = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    ];
    let limits = [
        bitween::xmpp::MAX_TOKEN - 1,
        bitween::xmpp::MAX_TOKEN + 1,
        8191,
        8193,
        70_000,
    ];
    // Built, not parsed: our own XML reader would refuse such a document.
    let share = |hash: &str, name: &str, size: &str| {
        Element::builder("share_item", NS)
            .attr("hash".try_into().unwrap(), hash)
            .attr("name".try_into().unwrap(), name)
            .attr("size".try_into().unwrap(), size)
    };
    let mut evil = Element::builder("resource", NS)
        .attr("resource".try_into().unwrap(), "evil")
        .append(share(good[0], "kept first", "10").build());
    // (Prosody takes stanzas up to 256 KiB: not every kind at every size.)
    for (i, n) in limits.iter().enumerate() {
        let long = |c: &str| c.repeat(*n);
        evil = evil.append(share(&format!("{i}{}", "0".repeat(39)), &long("n"), "1").build());
        if *n < 70_000 {
            evil = evil.append(share(&long("a"), "long hash", "1").build());
        }
        if i % 2 == 1 {
            evil = evil
                .append(
                    share(
                        &format!("{i}{}", "1".repeat(39)),
                        "long attribute name",
                        "1",
                    )
                    .attr(long("z").as_str().try_into().unwrap(), "x")
                    .build(),
                )
                .append(
                    Element::builder(long("e"), "urn:evil")
                        .append(Element::builder("inner", "urn:evil").build())
                        .build(),
                );
        }
    }
    let evil = evil
        .append(share(good[1], "kept last", "20").build())
        .append(
            Element::builder("ip_address", NS)
                .attr("address".try_into().unwrap(), "127.0.0.1")
                .attr("port".try_into().unwrap(), "7000")
                .build(),
        )
        .build();
    let mut item = Element::builder("user_shares", NS).append(evil);
    for n in [limits[0], limits[1], limits[3]] {
        item = item.append(
            Element::builder("resource", NS)
                .attr("resource".try_into().unwrap(), "r".repeat(n))
                .append(share(good[0], "in a long resource", "3").build())
                .build(),
        );
    }
    let item = item.build();
    raw_iq_set(&server, "mallory", publish_payload(item))
        .await
        .unwrap();

    for round in [
        "first login",
        "a fresh login (the server pushes the item again)",
    ] {
        let mut bob = Peer::login(&server, "bob", "desk").await;
        bob.wait_catalog_within(
            &format!("{round}: mallory's valid entries"),
            Duration::from_secs(20),
            |c| {
                c.resource(&jid("mallory"), "evil")
                    .is_some_and(|r| r.shares.len() == 4)
            },
        )
        .await;
        let evil = bob.catalog.resource(&jid("mallory"), "evil").unwrap();
        let names: Vec<&str> = evil.shares.iter().map(|s| s.name.as_str()).collect();
        // An over-long attribute name is an unknown attribute: left out,
        // the entry kept.
        assert_eq!(
            names,
            [
                "kept first",
                "long attribute name",
                "long attribute name",
                "kept last"
            ],
            "{round}"
        );
        assert_eq!(evil.addresses, vec!["127.0.0.1:7000".parse().unwrap()]);
        // Resources up to the validator's bound are kept, longer are not.
        let resources = bob.catalog.contact(&jid("mallory")).unwrap().resources;
        assert_eq!(resources.len(), 1, "{round}: only \"evil\" is valid");
        // The stream stays up: no reconnect in the next seconds.
        let quiet = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Ok(e @ (Event::Disconnected { .. } | Event::Connected { .. })) =
                    bob.events.recv().await
                {
                    break e;
                }
            }
        })
        .await;
        assert!(quiet.is_err(), "{round}: the stream went down: {quiet:?}");
        assert!(
            matches!(bob.xmpp.state(), ConnectionState::Online { .. }),
            "{round}"
        );
        bob.xmpp.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_notices_costs_one_fetch_every_two_seconds() {
    let server = Server::start(
        ServerKind::Prosody,
        &["bob", "mallory"],
        &[("bob", "mallory")],
    );
    let mut bob = Peer::login(&server, "bob", "desk").await;
    let mallory = Peer::login(&server, "mallory", "evil").await;
    bob.wait_for("mallory online", |e| {
        matches!(e, Event::ContactPresenceChanged { jid: j, online: true, .. } if *j == jid("mallory"))
    })
    .await;
    // (bob's fetch at login is done by now.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.log().len();
    // A notice every 20 ms for 4 s.
    for _ in 0..200 {
        mallory
            .xmpp
            .notify_changed(jid("bob").parse().unwrap())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Every fetch of bob's is an items request to mallory's bare JID; after
    // her login mallory asks herself for nothing.
    let log = server.log();
    let fetches = log[before..]
        .lines()
        .filter(|l| {
            l.contains("Received[c2s]: <iq") && l.contains(&format!("to='{}'", jid("mallory")))
        })
        .count();
    assert!(
        (1..=4).contains(&fetches),
        "200 notices in 4 s made bob fetch mallory's list {fetches} times"
    );
    assert_eq!(
        bob.xmpp.state(),
        ConnectionState::Online {
            jid: format!("{}/desk", jid("bob"))
        }
    );
    mallory.xmpp.shutdown().await;
    bob.xmpp.shutdown().await;
}
