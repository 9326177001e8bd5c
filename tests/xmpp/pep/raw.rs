//! A bare tokio-xmpp client for what our own client would never send:
//! hostile items, forged messages, and IQs whose raw answer a test reads.

use std::time::Duration;

use bitween_testkit::{XmppServer, PASSWORD};
use minidom::Element;
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{Client, IqRequest};

use super::{jid, NS};

/// Logs in with a bare tokio-xmpp client and sends one IQ set, for payloads
/// our own client would never write. It publishes as a real client does:
/// after its initial presence, once its contacts' presence came in (ejabberd
/// sends a PEP item to the contacts whose presence the publishing session
/// has seen; Prosody to every contact online).
pub async fn raw_iq_set(
    server: &impl XmppServer,
    user: &str,
    payload: Element,
) -> Result<(), String> {
    raw_iq(server, user, None, IqRequest::Set(payload), true)
        .await
        .map(|_| ())
}

/// Logs in with a bare tokio-xmpp client and sends one IQ; the answer's
/// payload. Every IQ sent here is idempotent (a publish of item "current",
/// or a get), so a lost answer is retried with a fresh client: under load,
/// tokio-xmpp's `Client` now and then never yields an answer its stream
/// received and acknowledged (Prosody's log shows the result sent and the
/// client's `<a h=…>` counting it). A publish answered `item-not-found` is
/// sent again too, as our client does: ejabberd answers so when two accounts
/// create their PEP node at the same moment (see docs/PROTOCOL.md).
pub async fn raw_iq(
    server: &impl XmppServer,
    user: &str,
    to: Option<tokio_xmpp::jid::Jid>,
    req: IqRequest,
    available: bool,
) -> Result<Option<Element>, String> {
    let mut last = String::new();
    let req_kind = match &req {
        IqRequest::Get(_) => IqKind::Get,
        IqRequest::Set(_) => IqKind::Set,
    };
    for _attempt in 0..3 {
        let req = match &req {
            IqRequest::Get(p) => IqRequest::Get(p.clone()),
            IqRequest::Set(p) => IqRequest::Set(p.clone()),
        };
        match raw_iq_once(
            server,
            user,
            to.clone(),
            req,
            available,
            Duration::from_secs(7),
        )
        .await
        {
            Err(e) if e.starts_with("no answer") => last = e,
            Err(e) if e == "ItemNotFound" && matches!(req_kind, IqKind::Set) => last = e,
            other => return other,
        }
    }
    Err(last)
}

enum IqKind {
    Get,
    Set,
}

async fn raw_iq_once(
    server: &impl XmppServer,
    user: &str,
    to: Option<tokio_xmpp::jid::Jid>,
    req: IqRequest,
    available: bool,
    wait: Duration,
) -> Result<Option<Element>, String> {
    use futures::StreamExt;
    let mut client = Client::new_plaintext(
        tokio_xmpp::jid::BareJid::new(&jid(user)).unwrap(),
        PASSWORD,
        DnsConfig::addr(&server.server()),
        Timeouts::tight(),
    );
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), client.next())
            .await
            .map_err(|_| "raw client: no Online event".to_string())?;
        if ev.is_some_and(|e| e.is_online()) {
            break;
        }
    }
    if available {
        // Initial presence, then up to 5 s for a contact's presence (every
        // test that publishes this way has one contact online).
        let presence = tokio_xmpp::parsers::presence::Presence::available();
        client
            .send_stanza(presence.into())
            .await
            .map_err(|e| format!("raw client: cannot send presence: {e}"))?;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(ev) = client.next().await {
                if let tokio_xmpp::Event::Stanza(tokio_xmpp::Stanza::Presence(p)) = ev {
                    let other = p
                        .from
                        .as_ref()
                        .is_some_and(|f| f.node().map(|n| n.as_str()) != Some(user));
                    if other && p.type_ == tokio_xmpp::parsers::presence::Type::None {
                        break;
                    }
                }
            }
        })
        .await;
    }
    // The answer is matched by its id here rather than by tokio-xmpp's IQ
    // tracker, which under load sometimes let a result pass unmatched (the
    // server's log showed the result sent; the token never completed).
    let id = format!("raw-{}", rand::random::<u64>());
    let iq = match req {
        IqRequest::Get(payload) => Iq::Get {
            from: None,
            to,
            id: id.clone(),
            payload,
        },
        IqRequest::Set(payload) => Iq::Set {
            from: None,
            to,
            id: id.clone(),
            payload,
        },
    };
    client
        .send_stanza(iq.into())
        .await
        .map_err(|e| format!("raw client: cannot send the IQ: {e}"))?;
    let result = tokio::time::timeout(wait, async {
        loop {
            match client.next().await {
                Some(tokio_xmpp::Event::Stanza(tokio_xmpp::Stanza::Iq(iq))) if iq.id() == id => {
                    break Some(iq)
                }
                Some(_) => {}
                None => break None,
            }
        }
    })
    .await
    .map_err(|_| format!("no answer to {user}'s IQ within {wait:?} (see the server log)"))?;
    let _ = client.send_end().await;
    match result {
        Some(Iq::Result { payload, .. }) => Ok(payload),
        Some(Iq::Error { error, .. }) => Err(format!("{:?}", error.defined_condition)),
        Some(other) => Err(format!("an IQ request instead of an answer: {other:?}")),
        None => Err("raw client: the stream ended before the answer".into()),
    }
}

/// A publish of item "current" of our node holding `item`.
pub fn publish_payload(item: Element) -> Element {
    Element::builder("pubsub", "http://jabber.org/protocol/pubsub")
        .append(
            Element::builder("publish", "http://jabber.org/protocol/pubsub")
                .attr("node".try_into().unwrap(), NS)
                .append(
                    Element::builder("item", "http://jabber.org/protocol/pubsub")
                        .attr("id".try_into().unwrap(), "current")
                        .append(item)
                        .build(),
                )
                .build(),
        )
        .build()
}

/// Logs `user` in with a bare client and sends `msg` as it is.
pub async fn send_raw_message(server: &impl XmppServer, user: &str, msg: Element) {
    use futures::StreamExt;
    let mut client = Client::new_plaintext(
        tokio_xmpp::jid::BareJid::new(&jid(user)).unwrap(),
        PASSWORD,
        DnsConfig::addr(&server.server()),
        Timeouts::tight(),
    );
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(ev) = client.next().await {
            if ev.is_online() {
                break;
            }
        }
    })
    .await
    .expect("the raw client logs in within 20 s");
    let stanza = tokio_xmpp::parsers::message::Message::try_from(msg).unwrap();
    client.send_stanza(stanza.into()).await.unwrap();
    let _ = client.send_end().await;
}
