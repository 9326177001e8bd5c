//! Our service discovery identity (XEP-0030) and the entity capabilities
//! (XEP-0115) hash that goes into every presence.
//!
//! The server only pushes PEP items of the shares node to clients whose caps
//! list `<node>+notify`, and it checks the `ver` against our disco#info; so
//! both are computed from one [`DiscoInfoResult`] here.
//!
//! The `ver` is computed here, not with xmpp-parsers' `compute_disco`: that
//! one appends the `<` separator before sorting, so `…/shares+notify` sorts
//! before `…/shares` (`+` is below `<`), the reverse of XEP-0115's order.
//! ejabberd checks the hash, finds it wrong and ignores our features:
//! nothing reaches us and nothing we publish reaches anyone (Prosody does
//! not check it). See docs/PROTOCOL.md, "Server notes".

use sha1w::{ISha1, Sha1};
use tokio_xmpp::parsers::caps::Caps;
use tokio_xmpp::parsers::disco::{DiscoInfoResult, Identity};
use tokio_xmpp::parsers::hashes::{Algo, Hash};
use tokio_xmpp::parsers::ns;

use crate::NS_SHARES;

/// The caps `node` naming this application.
pub const CAPS_NODE: &str = "https://github.com/bitween/bitween";

/// Our disco#info and the matching caps element.
#[derive(Debug, Clone)]
pub struct Disco {
    info: DiscoInfoResult,
    caps: Caps,
    /// `node#ver`, the node the server asks about.
    caps_node: String,
}

impl Disco {
    pub fn new() -> Disco {
        let features = [
            ns::DISCO_INFO.to_string(),
            ns::CAPS.to_string(),
            ns::PING.to_string(),
            NS_SHARES.to_string(),
            format!("{NS_SHARES}+notify"),
            crate::net::signal::NS_PATHS.to_string(),
            crate::shares::NS_RESTRICTED.to_string(),
        ];
        let info = DiscoInfoResult {
            node: None,
            identities: vec![Identity::new("client", "pc", "en", "Bitween")],
            features: features.into_iter().collect(),
            extensions: vec![],
        };
        let caps = Caps::new(CAPS_NODE, caps_hash(&info));
        let caps_node = tokio_xmpp::parsers::caps::query_caps(caps.clone())
            .node
            .expect("query_caps always sets a node");
        Disco {
            info,
            caps,
            caps_node,
        }
    }

    pub fn caps(&self) -> Caps {
        self.caps.clone()
    }

    /// The answer to a disco#info query for `node` (`None` or our
    /// `node#ver`), or `None` for a node we do not know.
    pub fn answer(&self, node: Option<&str>) -> Option<DiscoInfoResult> {
        match node {
            None => Some(self.info.clone()),
            Some(n) if n == self.caps_node => Some(DiscoInfoResult {
                node: Some(n.to_string()),
                ..self.info.clone()
            }),
            Some(_) => None,
        }
    }
}

/// The XEP-0115 (section 5.1) verification string of `info`: identities
/// `category/type/lang/name`, then features, each list sorted as strings
/// (i;octet) and each entry followed by `<`. We advertise no data forms.
fn verification_string(info: &DiscoInfoResult) -> String {
    let mut identities: Vec<String> = info
        .identities
        .iter()
        .map(|i| {
            format!(
                "{}/{}/{}/{}",
                i.category,
                i.type_,
                i.lang.as_deref().unwrap_or_default(),
                i.name.as_deref().unwrap_or_default()
            )
        })
        .collect();
    identities.sort();
    let mut features: Vec<&str> = info.features.iter().map(String::as_str).collect();
    features.sort_unstable();
    features.dedup();
    let mut s = String::new();
    for part in identities.iter().map(String::as_str).chain(features) {
        s.push_str(part);
        s.push('<');
    }
    s
}

/// The SHA-1 `ver` of `info`.
fn caps_hash(info: &DiscoInfoResult) -> Hash {
    let mut sha = Sha1::new();
    sha.update(verification_string(info).as_bytes());
    Hash {
        algo: Algo::Sha_1,
        hash: sha.finish().to_vec(),
    }
}

impl Default for Disco {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ver` in base64, as it goes on the wire.
    fn b64(ver: &[u8]) -> String {
        let hash = Hash {
            algo: Algo::Sha_1,
            hash: ver.to_vec(),
        };
        let node = tokio_xmpp::parsers::caps::query_caps(Caps::new("n", hash)).node;
        node.unwrap().trim_start_matches("n#").to_string()
    }

    #[test]
    fn the_verification_string_follows_xep_0115() {
        // XEP-0115 section 5.2, the simple example.
        let info = DiscoInfoResult {
            node: None,
            identities: vec![Identity {
                category: "client".into(),
                type_: "pc".into(),
                lang: None,
                name: Some("Exodus 0.9.1".into()),
            }],
            features: [
                "http://jabber.org/protocol/disco#info",
                "http://jabber.org/protocol/disco#items",
                "http://jabber.org/protocol/muc",
                "http://jabber.org/protocol/caps",
            ]
            .map(String::from)
            .into_iter()
            .collect(),
            extensions: vec![],
        };
        assert_eq!(b64(&caps_hash(&info).hash), "QgayPKawpkPSDYmwT/WM94uAlu0=");
        // A feature sorts before a longer one it is a prefix of, whatever
        // character follows (`+` is below `<`): the order ejabberd checks.
        let info = DiscoInfoResult {
            features: ["urn:x+notify", "urn:x"]
                .map(String::from)
                .into_iter()
                .collect(),
            ..info
        };
        assert_eq!(
            verification_string(&info),
            "client/pc//Exodus 0.9.1<urn:x<urn:x+notify<"
        );
    }

    #[test]
    fn the_caps_hash_matches_the_disco_info_we_answer() {
        let d = Disco::new();
        let answered = d.answer(Some(&d.caps_node)).unwrap();
        // Computed as ejabberd's mod_caps does (the string checked by hand
        // with `printf … | openssl sha1 -binary | base64`; a feature added
        // to the list above changes both).
        let expected = concat!(
            "client/pc/en/Bitween<",
            "http://jabber.org/protocol/caps<",
            "http://jabber.org/protocol/disco#info<",
            "https://xmpp.kwoh.de/protocol/shares<",
            "https://xmpp.kwoh.de/protocol/shares+notify<",
            "urn:bitween:paths:0<",
            "urn:bitween:restricted:0<",
            "urn:xmpp:ping<",
        );
        let again = DiscoInfoResult {
            node: None,
            ..answered.clone()
        };
        assert_eq!(verification_string(&again), expected);
        assert_eq!(b64(&d.caps().ver), "xs/TIhU6U0biamj+DzrLHtjiPFk=");
        assert!(answered
            .features
            .contains("https://xmpp.kwoh.de/protocol/shares+notify"));
        assert!(d.answer(Some("https://other#x")).is_none());
    }
}
