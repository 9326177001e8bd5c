//! The shares protocol: the payload of `PROTOCOL.md` as validated Rust types,
//! its XML form, and the contacts' catalog built from received items.
//!
//! Not here: the transport (see `crate::xmpp`).

pub mod audience;
mod catalog;
pub mod chunks;
mod packed;
mod types;
mod xml;

pub use audience::{reader_node, Audience, NS_RESTRICTED};
pub use catalog::{Catalog, CatalogWriter, ContactView, ResourceView, SearchHit, Source};
pub(crate) use packed::PackedShares;
pub use types::{
    is_bidi_control, InfoHash, Invalid, ResourceShares, Share, ShareName, UserShares,
    MAX_ADDRESSES, MAX_RESOURCES,
};
pub use xml::{
    fit_to, parse_user_shares, to_element, to_xml_string, wire_len, NotOurs, Parsed, Rejection,
};
