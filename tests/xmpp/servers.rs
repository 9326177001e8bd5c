//! Servers differ; the client copes. Each test runs on Prosody and on
//! ejabberd: a server whose stanza limit is 64 KiB (large lists still
//! travel whole, in smaller pieces); a server without stream management
//! (XEP-0198) and without carbons (XEP-0280); logins with SCRAM-SHA-1 and
//! SCRAM-SHA-256 as the only mechanism; and a plain XEP-0163 client, as the
//! original implementation was, exchanging items with ours.

use std::time::Duration;

use bitween::events::Event;
use bitween::shares::Share;
use bitween_testkit::on_each_server;
use bitween_testkit::{
    entry, share, Peer, Scram, Server, ServerKind, ServerOptions, XmppServer, DOMAIN, PASSWORD,
};
use futures::StreamExt;
use minidom::Element;
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::stanzastream::{Event as StreamEvent, StanzaStream, StreamEvent as Lifecycle};
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::Stanza;

const NS: &str = "https://xmpp.kwoh.de/protocol/shares";
const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const NS_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const NS_CATALOG: &str = "urn:bitween:catalog:0";

on_each_server!(
    a_64_kib_stanza_limit_gets_smaller_items_and_chunks,
    no_stream_management_and_no_carbons_change_nothing,
    scram_sha_1_and_scram_sha_256_logins_work,
    a_plain_xep_0163_client_and_ours_exchange_items,
);

fn jid(user: &str) -> String {
    format!("{user}@{DOMAIN}")
}

fn many_shares(n: u32) -> Vec<Share> {
    (0..n)
        .map(|i| {
            Share::from_wire(
                &format!("{i:040x}"),
                &format!("a fairly long file name number {i}.flac"),
                "1234567",
            )
            .unwrap()
        })
        .collect()
}

/// The bytes `el` takes when written.
fn wire_len(el: &Element) -> usize {
    let mut out = Vec::new();
    el.write_to(&mut out).unwrap();
    out.len()
}

/// A deployment's common setting: at most 65,536 bytes per stanza from a
/// client (ejabberd's `max_stanza_size`, Prosody's
/// `c2s_stanza_size_limit`). Neither server says so in its stream features
/// (XEP-0478): the first, 250,000-byte item makes the server close the
/// stream; the client reconnects, halves its budget until the pieces fit,
/// and 10,000 shares arrive whole.
async fn a_64_kib_stanza_limit_gets_smaller_items_and_chunks(kind: ServerKind) {
    const LIMIT: usize = 65_536;
    let options = ServerOptions {
        stanza_limit: Some(LIMIT),
        ..ServerOptions::default()
    };
    let server = Server::start_with(kind, &["alice", "bob"], &[("alice", "bob")], &options);
    let laptop = Peer::login(&server, "alice", "laptop").await;
    let mut bob = Peer::login(&server, "bob", "desk").await;
    let many = many_shares(10_000);
    laptop
        .xmpp
        .set_local(entry(many.clone(), &["127.0.0.1:6881"]))
        .unwrap();
    bob.wait_catalog_within(
        "all 10,000 of alice's shares",
        Duration::from_secs(60),
        |c| {
            c.resource(&jid("alice"), "laptop")
                .is_some_and(|r| r.shares == many)
        },
    )
    .await;

    // What the server holds fits its limit: the item and every chunk.
    let item = fetch_items(&server, "bob", &jid("alice"), NS).await;
    assert!(wire_len(&item) < LIMIT, "item of {} bytes", wire_len(&item));
    let laptop_el = item
        .get_child("items", NS_PUBSUB)
        .and_then(|i| i.children().next())
        .and_then(|i| i.children().next())
        .and_then(|u| u.children().find(|r| r.attr("resource") == Some("laptop")))
        .expect("alice's laptop in her item")
        .clone();
    let chunks: u16 = laptop_el
        .get_child("more", NS_CATALOG)
        .and_then(|m| m.attr("chunks"))
        .and_then(|c| c.parse().ok())
        .expect("a pointer to the rest");
    assert!(chunks > 10, "{chunks} chunks for 10,000 shares");
    for n in [1, chunks] {
        let node = format!("{NS_CATALOG}/laptop/{n}");
        let chunk = fetch_items(&server, "bob", &jid("alice"), &node).await;
        assert!(
            wire_len(&chunk) < LIMIT,
            "chunk {n} of {} bytes",
            wire_len(&chunk)
        );
    }

    // Once learned, the smaller size holds: a change travels without
    // another refusal.
    let mut laptop = laptop;
    while laptop.events.try_recv().is_ok() {}
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
    while let Ok(e) = laptop.events.try_recv() {
        if let Event::Disconnected { reason, .. } = &e {
            panic!("the change cost a reconnect: {reason}");
        }
    }
    laptop.xmpp.shutdown().await;
    bob.xmpp.shutdown().await;
}

/// Publishing, receiving, two resources and a server restart on a server
/// without stream management and without carbons.
async fn no_stream_management_and_no_carbons_change_nothing(kind: ServerKind) {
    let options = ServerOptions {
        stream_management: false,
        carbons: false,
        ..ServerOptions::default()
    };
    let mut server = Server::start_with(kind, &["alice", "bob"], &[("alice", "bob")], &options);
    let laptop = Peer::login(&server, "alice", "laptop").await;
    let desktop = Peer::login(&server, "alice", "desktop").await;
    let mut bob = Peer::login(&server, "bob", "desk").await;
    let on_laptop = entry(vec![share(1, "from laptop", 1)], &["127.0.0.1:1001"]);
    let on_desktop = entry(vec![share(2, "from desktop", 2)], &["127.0.0.1:1002"]);
    laptop.xmpp.set_local(on_laptop.clone()).unwrap();
    desktop.xmpp.set_local(on_desktop.clone()).unwrap();
    bob.wait_catalog("both of alice's resources", |c| {
        c.resource(&jid("alice"), "laptop")
            .is_some_and(|r| r.shares == on_laptop.shares)
            && c.resource(&jid("alice"), "desktop")
                .is_some_and(|r| r.shares == on_desktop.shares)
    })
    .await;

    server.stop();
    bob.wait_for("bob notices", |e| {
        matches!(e, Event::Disconnected { retrying: true, .. })
    })
    .await;
    server.start_again();
    bob.wait_for_within("bob back online", Duration::from_secs(10), |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    let after = entry(vec![share(3, "after restart", 3)], &["127.0.0.1:1001"]);
    laptop.xmpp.set_local(after.clone()).unwrap();
    bob.wait_catalog("the laptop's new list", |c| {
        c.resource(&jid("alice"), "laptop")
            .is_some_and(|r| r.online && r.shares == after.shares)
            && c.resource(&jid("alice"), "desktop")
                .is_some_and(|r| r.online && r.shares == on_desktop.shares)
    })
    .await;
    laptop.xmpp.shutdown().await;
    bob.wait_catalog("the laptop withdrawn", |c| {
        c.resource(&jid("alice"), "laptop").is_none()
    })
    .await;
    desktop.xmpp.shutdown().await;
    bob.xmpp.shutdown().await;
}

/// A server that stores SCRAM-SHA-1 (or SCRAM-SHA-256) secrets and offers
/// no PLAIN: our login uses that mechanism, as the server's log confirms.
async fn scram_sha_1_and_scram_sha_256_logins_work(kind: ServerKind) {
    for (scram, mechanism) in [
        (Scram::Sha1, "SCRAM-SHA-1"),
        (Scram::Sha256, "SCRAM-SHA-256"),
    ] {
        let options = ServerOptions {
            scram,
            plain: false,
            ..ServerOptions::default()
        };
        let server = Server::start_with(kind, &["alice", "bob"], &[("alice", "bob")], &options);
        let alice = Peer::login(&server, "alice", "laptop").await;
        let mut bob = Peer::login(&server, "bob", "desk").await;
        let list = entry(vec![share(7, "over scram", 7)], &["127.0.0.1:6881"]);
        alice.xmpp.set_local(list.clone()).unwrap();
        bob.wait_catalog("alice's list", |c| {
            c.resource(&jid("alice"), "laptop")
                .is_some_and(|r| r.shares == list.shares)
        })
        .await;
        // The server writes its log a moment later.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut log = server.log();
        while !log.contains(mechanism) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            log = server.log();
        }
        match kind {
            ServerKind::Ejabberd => assert!(
                log.contains(&format!(
                    "Accepted c2s {mechanism} authentication for alice@{DOMAIN}"
                )),
                "ejabberd's log does not show a {mechanism} login"
            ),
            ServerKind::Prosody => {
                // Prosody logs what it offers (at debug level): exactly the
                // one mechanism, so the login that worked used it.
                let offers: Vec<&str> = log
                    .lines()
                    .filter_map(|l| l.split("Offering usable mechanisms: ").nth(1))
                    .collect();
                assert!(!offers.is_empty(), "no offer in Prosody's log");
                assert!(
                    offers.iter().all(|o| o.trim() == mechanism),
                    "Prosody offered {offers:?}"
                );
            }
        }
        // A wrong password is still told apart.
        let mut wrong = Peer::start(&server, "alice", "other", "wrong password");
        let e = wrong
            .wait_for("a refused login", |e| {
                matches!(e, Event::Disconnected { .. })
            })
            .await;
        assert!(
            matches!(&e, Event::Disconnected { retrying: false, reason, .. } if reason.contains("password")),
            "{e:?}"
        );
        wrong.xmpp.shutdown().await;
        alice.xmpp.shutdown().await;
        bob.xmpp.shutdown().await;
    }
}

/// A client that speaks XEP-0163 and nothing of ours, as the original did:
/// presence with XEP-0115 caps listing `<shares>+notify`, disco#info
/// answered for `node#ver`, items published in the original's format.
struct PlainClient {
    stream: Raw,
    caps: tokio_xmpp::parsers::caps::Caps,
    /// `node#ver`.
    caps_node: String,
}

impl PlainClient {
    const IDENTITY: (&'static str, &'static str, &'static str) = ("client", "pc", "Plain");
    const FEATURES: [&'static str; 4] = [
        "http://jabber.org/protocol/caps",
        "http://jabber.org/protocol/disco#info",
        NS,
        "https://xmpp.kwoh.de/protocol/shares+notify",
    ];

    /// Logs in, sends presence with caps and waits for `contact`'s
    /// presence, if given.
    async fn login(server: &impl XmppServer, user: &str, contact: Option<&str>) -> PlainClient {
        use sha1::{Digest, Sha1};
        let stream = Raw::login(server, user).await;
        // XEP-0115 section 5.1, written out: the features are sorted
        // already, and there is one identity with no xml:lang.
        let (cat, ty, name) = Self::IDENTITY;
        let mut s = format!("{cat}/{ty}//{name}<");
        for f in Self::FEATURES {
            s.push_str(f);
            s.push('<');
        }
        let hash = tokio_xmpp::parsers::hashes::Hash {
            algo: tokio_xmpp::parsers::hashes::Algo::Sha_1,
            hash: Sha1::digest(s.as_bytes()).to_vec(),
        };
        let caps = tokio_xmpp::parsers::caps::Caps::new("https://example.org/plain", hash);
        let caps_node = tokio_xmpp::parsers::caps::query_caps(caps.clone())
            .node
            .unwrap();
        let mut me = PlainClient {
            stream,
            caps,
            caps_node,
        };
        let presence = Presence::available().with_payload(me.caps.clone());
        me.stream.send(presence.into()).await;
        if let Some(contact) = contact {
            let contact = jid(contact);
            me.next_matching(&format!("{contact}'s presence"), |s| {
                matches!(s, Stanza::Presence(p) if p.type_ == PresenceType::None
                    && p.from.as_ref().is_some_and(|f| f.to_bare().to_string() == contact))
            })
            .await;
        }
        me
    }

    /// The next stanza matching `pred`, answering disco#info queries (and
    /// refusing other requests) meanwhile.
    async fn next_matching(&mut self, what: &str, pred: impl Fn(&Stanza) -> bool) -> Stanza {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let stanza = self.stream.next_stanza(what, deadline).await;
            if let Stanza::Iq(Iq::Get {
                from, id, payload, ..
            }) = &stanza
            {
                self.answer(from.clone(), id.clone(), payload).await;
                continue;
            }
            if pred(&stanza) {
                return stanza;
            }
        }
    }

    async fn answer(&mut self, to: Option<tokio_xmpp::jid::Jid>, id: String, query: &Element) {
        use tokio_xmpp::parsers::disco::{DiscoInfoResult, Identity};
        use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
        let node = query.attr("node");
        let reply = if query.is("query", "http://jabber.org/protocol/disco#info")
            && (node.is_none() || node == Some(self.caps_node.as_str()))
        {
            let (cat, ty, name) = Self::IDENTITY;
            let identity = Identity {
                category: cat.into(),
                type_: ty.into(),
                lang: None,
                name: Some(name.into()),
            };
            let info = DiscoInfoResult {
                node: node.map(String::from),
                identities: vec![identity],
                features: Self::FEATURES.iter().map(|f| f.to_string()).collect(),
                extensions: vec![],
            };
            Iq::from_result(id, Some(info))
        } else {
            let error = StanzaError::new(
                ErrorType::Cancel,
                DefinedCondition::ServiceUnavailable,
                "en",
                "",
            );
            Iq::Error {
                from: None,
                to: None,
                id,
                error,
                payload: None,
            }
        };
        let mut reply = reply;
        *reply.to_mut() = to;
        self.stream.send(reply.into()).await;
    }

    /// Publishes `item` (a `user_shares`) as the account's current item.
    async fn publish(&mut self, item: Element) {
        let payload = Element::builder("pubsub", NS_PUBSUB)
            .append(
                Element::builder("publish", NS_PUBSUB)
                    .attr("node".try_into().unwrap(), NS)
                    .append(
                        Element::builder("item", NS_PUBSUB)
                            .attr("id".try_into().unwrap(), "current")
                            .append(item)
                            .build(),
                    )
                    .build(),
            )
            .build();
        let id = format!("plain-{}", rand::random::<u32>());
        let iq = Iq::Set {
            from: None,
            to: None,
            id: id.clone(),
            payload,
        };
        self.stream.send(iq.into()).await;
        let answer = self
            .next_matching(
                "the publish's answer",
                |s| matches!(s, Stanza::Iq(iq) if iq.id() == id),
            )
            .await;
        assert!(
            matches!(answer, Stanza::Iq(Iq::Result { .. })),
            "publish refused: {answer:?}"
        );
    }

    /// Waits for a shares event from `from` whose item satisfies `pred`.
    async fn wait_item(&mut self, from: &str, what: &str, pred: impl Fn(&Element) -> bool) {
        let from = jid(from);
        self.next_matching(what, |s| {
            let Stanza::Message(m) = s else { return false };
            if m.from.as_ref().map(|f| f.to_string()) != Some(from.clone()) {
                return false;
            }
            m.payloads.iter().any(|p| {
                p.is("event", NS_EVENT)
                    && p.get_child("items", NS_EVENT)
                        .filter(|i| i.attr("node") == Some(NS))
                        .and_then(|i| i.get_child("item", NS_EVENT))
                        .and_then(|i| i.get_child("user_shares", NS))
                        .is_some_and(&pred)
            })
        })
        .await;
    }

    async fn end(self) {
        self.stream.end().await;
    }
}

/// The names of the shares listed in a `user_shares` element.
fn names(user_shares: &Element) -> Vec<String> {
    user_shares
        .children()
        .flat_map(|r| r.children())
        .filter(|c| c.is("share_item", NS))
        .filter_map(|c| c.attr("name").map(String::from))
        .collect()
}

/// Both directions between our client and a plain XEP-0163 client, on a
/// fresh server: ours gets the item the plain one published before we
/// logged in (ejabberd does not push it: it had not verified our caps yet;
/// we ask for it), and each gets the other's changes. (What a plain client
/// gets at its own login is the server's doing: ejabberd sends it only if
/// our session has seen the client's presence before its probe, a race;
/// see docs/PROTOCOL.md, "Server notes".)
async fn a_plain_xep_0163_client_and_ours_exchange_items(kind: ServerKind) {
    let server = Server::start(kind, &["alice", "carol"], &[("alice", "carol")]);
    let theirs = |name: &str| -> Element {
        format!(
            r#"<user_shares xmlns="{NS}"><resource resource="plain"><share_item hash="e3b0c44298fc1c149afbf4c8996fb92427ae41e4" name="{name}" size="42"/><ip_address address="127.0.0.1" port="7000"/></resource></user_shares>"#
        )
        .parse()
        .unwrap()
    };
    let carol_has = |name: &'static str| {
        move |c: &bitween::shares::Catalog| {
            c.resource(&jid("carol"), "plain")
                .is_some_and(|r| r.shares.len() == 1 && r.shares[0].name.as_str() == name)
        }
    };
    let mut carol = PlainClient::login(&server, "carol", None).await;
    carol.publish(theirs("published before")).await;

    let mut alice = Peer::login(&server, "alice", "laptop").await;
    alice
        .wait_catalog(
            "carol's item from before alice's login",
            carol_has("published before"),
        )
        .await;
    let first = entry(vec![share(1, "from alice", 1)], &["127.0.0.1:6881"]);
    alice.xmpp.set_local(first).unwrap();
    carol
        .wait_item("alice", "alice's item", |u| names(u) == ["from alice"])
        .await;

    carol.publish(theirs("changed by carol")).await;
    alice
        .wait_catalog("carol's change", carol_has("changed by carol"))
        .await;
    let second = entry(
        vec![share(1, "from alice", 1), share(2, "alice again", 2)],
        &["127.0.0.1:6881"],
    );
    alice.xmpp.set_local(second).unwrap();
    carol
        .wait_item("alice", "alice's change", |u| {
            names(u) == ["from alice", "alice again"]
        })
        .await;

    carol.end().await;
    alice.xmpp.shutdown().await;
}

/// `user` fetches `node`'s items from `owner` with a client of its own.
async fn fetch_items(server: &impl XmppServer, user: &str, owner: &str, node: &str) -> Element {
    let mut raw = Raw::login(server, user).await;
    let id = format!("fetch-{}", rand::random::<u32>());
    let iq = Iq::Get {
        from: None,
        to: Some(owner.parse().unwrap()),
        id: id.clone(),
        payload: Element::builder("pubsub", NS_PUBSUB)
            .append(
                Element::builder("items", NS_PUBSUB)
                    .attr("node".try_into().unwrap(), node)
                    .build(),
            )
            .build(),
    };
    raw.send(iq.into()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let answer = loop {
        match raw.next_stanza("the items", deadline).await {
            Stanza::Iq(iq) if iq.id() == id => break iq,
            _ => {}
        }
    };
    raw.end().await;
    match answer {
        Iq::Result {
            payload: Some(p), ..
        } => p,
        other => panic!("cannot fetch {node}: {other:?}"),
    }
}

/// A bare client stream: tokio-xmpp's `StanzaStream`, as our session uses
/// (its `Client` wrapper here now and then stopped yielding stanzas that
/// the server's log showed sent and the client acknowledged).
struct Raw(StanzaStream);

impl Raw {
    async fn login(server: &impl XmppServer, user: &str) -> Raw {
        let connector =
            tokio_xmpp::connect::TcpServerConnector::from(DnsConfig::addr(&server.server()));
        let mut stream = StanzaStream::new_c2s(
            connector,
            jid(user).parse().unwrap(),
            PASSWORD.into(),
            Timeouts::tight(),
            64,
        );
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(ev) = stream.next().await {
                if matches!(ev, StreamEvent::Stream(Lifecycle::Reset { .. })) {
                    break;
                }
            }
        })
        .await
        .expect("the raw client logs in");
        Raw(stream)
    }

    async fn send(&self, stanza: Stanza) {
        let _token = self.0.send(Box::new(stanza)).await;
    }

    async fn next_stanza(&mut self, what: &str, deadline: tokio::time::Instant) -> Stanza {
        loop {
            match tokio::time::timeout_at(deadline, self.0.next()).await {
                Err(_) => panic!("the raw client waited 20 s for {what}"),
                Ok(None) => panic!("the raw client's stream ended while waiting for {what}"),
                Ok(Some(StreamEvent::Stanza(s))) => return s,
                Ok(Some(_)) => {}
            }
        }
    }

    async fn end(self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.0.close()).await;
    }
}
