//! The XMPP side of the path layer (`crate::net::Signal`): asks whether a
//! contact's device can be asked (its disco#info), sends path requests to
//! it, and finds, asks and activates the bytestream proxies (XEP-0065) of
//! the servers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use minidom::Element;
use tokio_xmpp::jid::Jid;

use super::{ConnectionState, XmppHandle};
use crate::net::signal::{Accept, Proxy, Request, NS_PATHS};
use crate::net::Signal;

const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const NS_BYTESTREAMS: &str = "http://jabber.org/protocol/bytestreams";
/// How long what we learnt about a device or a server is kept.
const REMEMBER: Duration = Duration::from_secs(600);
/// How long one IQ may take.
const IQ_TIMEOUT: Duration = Duration::from_secs(10);

/// The path layer's signalling over our XMPP session.
pub struct XmppSignal {
    xmpp: XmppHandle,
    /// Whether each full JID can be asked, and since when we know.
    can_ask: Mutex<HashMap<String, (bool, Instant)>>,
    /// Our server's relay (or that it has none), and since when we know.
    relay: Mutex<Option<(Option<Proxy>, Instant)>>,
}

impl XmppSignal {
    pub fn new(xmpp: XmppHandle) -> XmppSignal {
        XmppSignal {
            xmpp,
            can_ask: Mutex::new(HashMap::new()),
            relay: Mutex::new(None),
        }
    }

    async fn iq(&self, to: &str, get: bool, payload: Element) -> Result<Option<Element>, String> {
        let to = Jid::from_str(to).map_err(|e| format!("{to:?}: {e}"))?;
        self.xmpp.iq(to, get, payload, IQ_TIMEOUT).await
    }

    async fn features(&self, jid: &str) -> Result<(Vec<String>, Vec<(String, String)>), String> {
        let answer = self
            .iq(jid, true, Element::builder("query", NS_DISCO_INFO).build())
            .await?
            .ok_or_else(|| "an empty disco#info answer".to_string())?;
        let features = answer
            .children()
            .filter(|c| c.is("feature", NS_DISCO_INFO))
            .filter_map(|c| c.attr("var").map(str::to_string))
            .collect();
        let identities = answer
            .children()
            .filter(|c| c.is("identity", NS_DISCO_INFO))
            .map(|c| {
                (
                    c.attr("category").unwrap_or_default().to_string(),
                    c.attr("type").unwrap_or_default().to_string(),
                )
            })
            .collect();
        Ok((features, identities))
    }

    /// Finds our server's proxy: the disco item that says it is one.
    async fn find_relay(&self) -> Option<Proxy> {
        let ConnectionState::Online { jid } = self.xmpp.state() else {
            return None;
        };
        let domain = jid.split_once('@')?.1.split('/').next()?.to_string();
        let items = self
            .iq(
                &domain,
                true,
                Element::builder("query", NS_DISCO_ITEMS).build(),
            )
            .await
            .ok()??;
        for item in items.children().filter(|c| c.is("item", NS_DISCO_ITEMS)) {
            let Some(service) = item.attr("jid") else {
                continue;
            };
            let Ok((_, identities)) = self.features(service).await else {
                continue;
            };
            if !identities
                .iter()
                .any(|(c, t)| c == "proxy" && t == "bytestreams")
            {
                continue;
            }
            match self.streamhost_of(service).await {
                Ok(address) => {
                    return Some(Proxy {
                        jid: service.to_string(),
                        address,
                    })
                }
                Err(e) => {
                    tracing::info!(proxy = service, "our server's relay gives no address: {e}")
                }
            }
        }
        tracing::info!(%domain, "our server offers no relay (no SOCKS5 bytestream proxy)");
        None
    }

    async fn streamhost_of(&self, proxy: &str) -> Result<SocketAddr, String> {
        let answer = self
            .iq(
                proxy,
                true,
                Element::builder("query", NS_BYTESTREAMS).build(),
            )
            .await?
            .ok_or_else(|| format!("{proxy} gave an empty answer"))?;
        let host = answer
            .get_child("streamhost", NS_BYTESTREAMS)
            .ok_or_else(|| format!("{proxy} names no streamhost"))?;
        let name = host
            .attr("host")
            .ok_or_else(|| format!("{proxy}'s streamhost has no host"))?
            .to_string();
        let port: u16 = host
            .attr("port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1080);
        let mut found = tokio::net::lookup_host((name.clone(), port))
            .await
            .map_err(|e| format!("cannot find {proxy}'s host {name}: {e}"))?;
        found
            .next()
            .ok_or_else(|| format!("{proxy}'s host {name} has no address"))
    }
}

impl Signal for XmppSignal {
    fn can_ask<'a>(&'a self, jid: &'a str, resource: &'a str) -> BoxFuture<'a, bool> {
        async move {
            let full = format!("{jid}/{resource}");
            if let Some((yes, since)) = self.can_ask.lock().unwrap().get(&full) {
                if since.elapsed() < REMEMBER {
                    return *yes;
                }
            }
            let yes = self
                .features(&full)
                .await
                .is_ok_and(|(features, _)| features.iter().any(|f| f == NS_PATHS));
            self.can_ask
                .lock()
                .unwrap()
                .insert(full, (yes, Instant::now()));
            yes
        }
        .boxed()
    }

    fn ask<'a>(
        &'a self,
        jid: &'a str,
        resource: &'a str,
        req: Request,
    ) -> BoxFuture<'a, Result<Accept, String>> {
        async move {
            let answer = self
                .iq(&format!("{jid}/{resource}"), false, req.to_element())
                .await?
                .ok_or_else(|| "an empty answer".to_string())?;
            let accept = Accept::from_element(&answer).map_err(|e| e.to_string())?;
            if accept.sid != req.sid {
                return Err("the answer is for another request".into());
            }
            Ok(accept)
        }
        .boxed()
    }

    fn own_relay(&self) -> BoxFuture<'_, Option<Proxy>> {
        async move {
            if let Some((relay, since)) = self.relay.lock().unwrap().clone() {
                if since.elapsed() < REMEMBER {
                    return relay;
                }
            }
            let relay = self.find_relay().await;
            *self.relay.lock().unwrap() = Some((relay.clone(), Instant::now()));
            relay
        }
        .boxed()
    }

    fn streamhost<'a>(&'a self, proxy_jid: &'a str) -> BoxFuture<'a, Result<SocketAddr, String>> {
        self.streamhost_of(proxy_jid).boxed()
    }

    fn activate<'a>(
        &'a self,
        proxy_jid: &'a str,
        sid: &'a str,
        target: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        async move {
            let payload = Element::builder("query", NS_BYTESTREAMS)
                .attr("sid".try_into().unwrap(), sid)
                .append(
                    Element::builder("activate", NS_BYTESTREAMS)
                        .append(target)
                        .build(),
                )
                .build();
            self.iq(proxy_jid, false, payload)
                .await
                .map(|_| ())
                .map_err(|e| format!("the relay {proxy_jid} did not activate the stream: {e}"))
        }
        .boxed()
    }

    fn own_full_jid(&self) -> Option<String> {
        match self.xmpp.state() {
            ConnectionState::Online { jid } => Some(jid),
            _ => None,
        }
    }
}
