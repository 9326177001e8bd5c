//! Our service discovery identity (XEP-0030) and the entity capabilities
//! (XEP-0115) hash that goes into every presence.
//!
//! The server only pushes PEP items of the shares node to clients whose caps
//! list `<node>+notify`, and it checks the `ver` against our disco#info; so
//! both are computed from one [`DiscoInfoResult`] here.

use tokio_xmpp::parsers::caps::{compute_disco, hash_caps, Caps};
use tokio_xmpp::parsers::disco::{DiscoInfoResult, Identity};
use tokio_xmpp::parsers::hashes::Algo;
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
        ];
        let info = DiscoInfoResult {
            node: None,
            identities: vec![Identity::new("client", "pc", "en", "Bitween")],
            features: features.into_iter().collect(),
            extensions: vec![],
        };
        let hash = hash_caps(&compute_disco(&info), Algo::Sha_1).expect("SHA-1 is supported");
        let caps = Caps::new(CAPS_NODE, hash);
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

impl Default for Disco {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caps_hash_matches_the_disco_info_we_answer() {
        let d = Disco::new();
        let answered = d.answer(Some(&d.caps_node)).unwrap();
        let again = hash_caps(
            &compute_disco(&DiscoInfoResult {
                node: None,
                ..answered.clone()
            }),
            Algo::Sha_1,
        )
        .unwrap();
        assert_eq!(again.hash, d.caps().ver);
        assert!(answered
            .features
            .contains("https://xmpp.kwoh.de/protocol/shares+notify"));
        assert!(d.answer(Some("https://other#x")).is_none());
    }
}
