//! The shares protocol: the payload of `PROTOCOL.md` as validated Rust types,
//! its XML form, and the contacts' catalog built from received items.
//!
//! Not here: the transport (see `crate::xmpp`).

mod catalog;
mod types;
mod xml;

pub use catalog::{Catalog, CatalogWriter, ContactView, ResourceView, SearchHit, Source};
pub use types::{InfoHash, Invalid, ResourceShares, Share, ShareName, UserShares};
pub use xml::{parse_user_shares, to_element, to_xml_string, NotOurs, Parsed, Rejection};
