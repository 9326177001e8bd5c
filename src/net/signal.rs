//! The signalling of the path layer over XMPP (`urn:bitween:paths:0`),
//! as types and XML: one device asks a contact's device for a punched or
//! relayed connection for one torrent; the answer accepts (with its
//! candidates, or the relay it chose) or refuses. Sent as IQs to full JIDs;
//! documented in `docs/PROTOCOL.md`.
//!
//! Not here: sending them (`crate::xmpp`) and acting on them
//! (`net/mod.rs`).

use std::net::{IpAddr, SocketAddr};

use minidom::Element;

use crate::shares::InfoHash;

/// The namespace, and the disco/caps feature a device advertises when it
/// can be asked.
pub const NS_PATHS: &str = "urn:bitween:paths:0";

/// The most candidates read from one message.
const MAX_CANDIDATES: usize = 8;

/// Which path is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Both sides dial each other at once (TCP simultaneous open).
    Punch,
    /// Both sides connect to a SOCKS5 bytestream proxy (XEP-0065) that the
    /// answering side chose on its own server.
    Relay,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Punch => "punch",
            Mode::Relay => "relay",
        }
    }
}

/// `<connect/>`: the asking side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// A session id, fresh per request (names the relay's stream).
    pub sid: String,
    pub hash: InfoHash,
    pub mode: Mode,
    /// Where the asking side will dial from (punch).
    pub candidates: Vec<SocketAddr>,
}

/// A relay: the proxy's JID and the address it gave for its streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub jid: String,
    pub address: SocketAddr,
}

/// `<accept/>`: the answering side agrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    pub sid: String,
    /// Where the answering side dials from (punch).
    pub candidates: Vec<SocketAddr>,
    /// The relay it is connected to (relay).
    pub proxy: Option<Proxy>,
}

/// Why a message of ours could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed path signalling: {0}")]
pub struct Malformed(pub String);

fn bad(what: impl Into<String>) -> Malformed {
    Malformed(what.into())
}

fn sid_of(el: &Element) -> Result<String, Malformed> {
    let sid = el.attr("sid").ok_or_else(|| bad("no sid"))?;
    if sid.is_empty() || sid.len() > 64 || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad(format!("sid {sid:?}")));
    }
    Ok(sid.to_string())
}

fn candidate(a: &SocketAddr) -> Element {
    Element::builder("candidate", NS_PATHS)
        .attr("address".try_into().unwrap(), a.ip().to_string())
        .attr("port".try_into().unwrap(), a.port().to_string())
        .build()
}

fn candidates_of(el: &Element) -> Vec<SocketAddr> {
    el.children()
        .filter(|c| c.is("candidate", NS_PATHS))
        .filter_map(|c| {
            let ip: IpAddr = c.attr("address")?.parse().ok()?;
            let port: u16 = c.attr("port")?.parse().ok().filter(|p| *p != 0)?;
            (!ip.is_unspecified() && !ip.is_multicast()).then_some(SocketAddr::new(ip, port))
        })
        .take(MAX_CANDIDATES)
        .collect()
}

impl Request {
    pub fn to_element(&self) -> Element {
        Element::builder("connect", NS_PATHS)
            .attr("sid".try_into().unwrap(), self.sid.as_str())
            .attr("hash".try_into().unwrap(), self.hash.to_hex())
            .attr("mode".try_into().unwrap(), self.mode.as_str())
            .append_all(self.candidates.iter().map(candidate))
            .build()
    }

    pub fn from_element(el: &Element) -> Result<Request, Malformed> {
        if !el.is("connect", NS_PATHS) {
            return Err(bad("not a <connect/>"));
        }
        let hash = el
            .attr("hash")
            .ok_or_else(|| bad("no hash"))?
            .parse()
            .map_err(|e| bad(format!("{e}")))?;
        let mode = match el.attr("mode") {
            Some("punch") => Mode::Punch,
            Some("relay") => Mode::Relay,
            other => return Err(bad(format!("mode {other:?}"))),
        };
        Ok(Request {
            sid: sid_of(el)?,
            hash,
            mode,
            candidates: candidates_of(el),
        })
    }
}

impl Accept {
    pub fn to_element(&self) -> Element {
        let proxy = self.proxy.iter().map(|p| {
            Element::builder("proxy", NS_PATHS)
                .attr("jid".try_into().unwrap(), p.jid.as_str())
                .attr("address".try_into().unwrap(), p.address.ip().to_string())
                .attr("port".try_into().unwrap(), p.address.port().to_string())
                .build()
        });
        Element::builder("accept", NS_PATHS)
            .attr("sid".try_into().unwrap(), self.sid.as_str())
            .append_all(self.candidates.iter().map(candidate).chain(proxy))
            .build()
    }

    pub fn from_element(el: &Element) -> Result<Accept, Malformed> {
        if !el.is("accept", NS_PATHS) {
            return Err(bad("not an <accept/>"));
        }
        let proxy = match el.get_child("proxy", NS_PATHS) {
            None => None,
            Some(p) => {
                let jid = p.attr("jid").ok_or_else(|| bad("proxy without jid"))?;
                let ip: IpAddr = p
                    .attr("address")
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| bad("proxy without address"))?;
                let port: u16 = p
                    .attr("port")
                    .and_then(|a| a.parse().ok())
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("proxy without port"))?;
                Some(Proxy {
                    jid: jid.to_string(),
                    address: SocketAddr::new(ip, port),
                })
            }
        };
        Ok(Accept {
            sid: sid_of(el)?,
            candidates: candidates_of(el),
            proxy,
        })
    }
}

/// A fresh session id.
pub fn new_sid() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip_and_junk_is_refused() {
        let req = Request {
            sid: new_sid(),
            hash: InfoHash([3; 20]),
            mode: Mode::Punch,
            candidates: vec![
                "198.18.1.1:40000".parse().unwrap(),
                "[fd00::2]:40001".parse().unwrap(),
            ],
        };
        assert_eq!(Request::from_element(&req.to_element()).unwrap(), req);
        let ans = Accept {
            sid: req.sid.clone(),
            candidates: vec![],
            proxy: Some(Proxy {
                jid: "proxy.example.org".into(),
                address: "198.18.0.1:5000".parse().unwrap(),
            }),
        };
        assert_eq!(Accept::from_element(&ans.to_element()).unwrap(), ans);
        let xml = format!(
            "<connect xmlns='{NS_PATHS}' sid='a b' hash='{}' mode='punch'/>",
            "03".repeat(20)
        );
        assert!(Request::from_element(&xml.parse().unwrap()).is_err());
        let xml = format!("<connect xmlns='{NS_PATHS}' sid='ab' hash='x' mode='punch'/>");
        assert!(Request::from_element(&xml.parse().unwrap()).is_err());
        let many: String = (0..20)
            .map(|i| format!("<candidate address='10.0.0.{i}' port='1'/>"))
            .collect();
        let xml = format!(
            "<connect xmlns='{NS_PATHS}' sid='ab' hash='{}' mode='relay'>{many}<candidate address='0.0.0.0' port='1'/></connect>",
            "03".repeat(20)
        );
        let r = Request::from_element(&xml.parse().unwrap()).unwrap();
        assert_eq!(r.candidates.len(), MAX_CANDIDATES);
        assert_eq!(r.mode, Mode::Relay);
    }
}
