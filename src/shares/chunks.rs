//! Share lists larger than one PEP item (our extension of the protocol).
//!
//! Servers cap stanza sizes (Prosody: 256 KiB), which one item reaches at
//! about 2,500 shares. The compatible item (`current` on the shares node,
//! read by the original too) carries the first shares that fit, and inside
//! the resource a pointer in our own namespace, which the original's parser
//! ignores:
//!
//! ```xml
//! <more xmlns="urn:bitween:catalog:0" version="9f2c…" chunks="4" total="10000"/>
//! ```
//!
//! The rest sits in `chunks` further PEP nodes of the same account, named
//! `urn:bitween:catalog:0/<resource>/<n>` (n = 1..=chunks), each holding
//! one item `current`:
//!
//! ```xml
//! <chunk xmlns="urn:bitween:catalog:0" version="9f2c…">
//!   <share_item xmlns="https://xmpp.kwoh.de/protocol/shares" hash=… name=… size=…/> …
//! </chunk>
//! ```
//!
//! Why these choices: one node per chunk keeps PEP's default of one item
//! per node (no publish-options, which servers support unevenly); the
//! nodes have the default presence access model, so exactly the contacts
//! who receive the item can fetch them; contacts fetch them on demand when
//! the pointer's `version` changes, so an unchanged list costs nothing. The
//! version is a hash of the shares in the chunks, so a chunk of another
//! version is recognised and ignored, and a list split at another point
//! (the item's room depends on the account's other resources) is another
//! version.

use minidom::Element;
use serde::{Deserialize, Serialize};

use super::types::{Invalid, Share};
use super::xml::{share_element, share_from_element, share_wire_len};
use crate::NS_SHARES;

/// Our namespace for the pointer and the chunks.
pub const NS_CATALOG: &str = "urn:bitween:catalog:0";
/// The most chunks we publish or fetch.
pub const MAX_CHUNKS: u16 = 100;
/// The most shares we hold for one contact resource, whatever its pointer
/// claims (a bound on what a hostile contact can make us keep).
pub const MAX_SHARES: usize = 100_000;
/// The most bytes one chunk weighs on the wire.
pub const CHUNK_BYTES: usize = 200_000;

/// The pointer to the rest of a resource's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct More {
    pub version: String,
    pub chunks: u16,
    /// Shares in the whole list (item and chunks together).
    pub total: u32,
}

/// The PEP node of chunk `n` (1-based) of `resource`.
pub fn chunk_node(resource: &str, n: u16) -> String {
    format!("{NS_CATALOG}/{resource}/{n}")
}

/// A stable hash of a whole list (FNV-1a over hashes, sizes and names), as
/// 16 hex digits: equal lists give equal versions on every machine.
pub fn version_of(shares: &[Share]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for s in shares {
        eat(&s.hash.0);
        eat(&s.size.to_be_bytes());
        eat(s.name.as_str().as_bytes());
        eat(&[0]);
    }
    format!("{h:016x}")
}

/// Splits `rest` into chunks of at most [`CHUNK_BYTES`] on the wire.
/// `None` when that would need more than [`MAX_CHUNKS`].
pub fn split(rest: &[Share]) -> Option<Vec<Vec<Share>>> {
    split_within(rest, CHUNK_BYTES)
}

/// Splits `rest` into chunks of at most `max_bytes` on the wire (the
/// server's stanza limit may be smaller than [`CHUNK_BYTES`]). `None` when
/// that would need more than [`MAX_CHUNKS`].
pub fn split_within(rest: &[Share], max_bytes: usize) -> Option<Vec<Vec<Share>>> {
    let mut chunks: Vec<Vec<Share>> = Vec::new();
    let mut size = 0;
    // Inside a chunk each share_item also carries its namespace.
    let xmlns = " xmlns=''".len() + NS_SHARES.len();
    for share in rest {
        let len = share_wire_len(share) + xmlns;
        if chunks.is_empty() || size + len > max_bytes {
            chunks.push(Vec::new());
            size = 200; // the chunk element and the IQ around it
        }
        size += len;
        chunks.last_mut().expect("pushed above").push(share.clone());
    }
    (chunks.len() <= usize::from(MAX_CHUNKS)).then_some(chunks)
}

/// The `<more/>` pointer element.
pub fn more_element(more: &More) -> Element {
    Element::builder("more", NS_CATALOG)
        .attr("version".try_into().unwrap(), more.version.as_str())
        .attr("chunks".try_into().unwrap(), more.chunks.to_string())
        .attr("total".try_into().unwrap(), more.total.to_string())
        .build()
}

/// Reads a `<more/>` pointer; a contact's values are bounded.
pub fn more_from_element(el: &Element) -> Result<More, Invalid> {
    let version = el.attr("version").ok_or(Invalid::Missing("version"))?;
    let bad = || {
        Invalid::Pointer(format!(
            "version={:?} chunks={:?} total={:?}",
            el.attr("version"),
            el.attr("chunks"),
            el.attr("total")
        ))
    };
    if version.is_empty()
        || version.len() > 64
        || !version.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(bad());
    }
    let chunks: u16 = el
        .attr("chunks")
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    let total: u32 = el
        .attr("total")
        .and_then(|t| t.parse().ok())
        .ok_or_else(bad)?;
    if chunks == 0 || chunks > MAX_CHUNKS {
        return Err(bad());
    }
    Ok(More {
        version: version.to_string(),
        chunks,
        total,
    })
}

/// One chunk's payload.
pub fn chunk_element(version: &str, shares: &[Share]) -> Element {
    Element::builder("chunk", NS_CATALOG)
        .attr("version".try_into().unwrap(), version)
        .append_all(shares.iter().map(share_element))
        .build()
}

/// Reads a chunk of `version`: its valid shares (invalid entries are
/// dropped, as in an item), or `None` if it is not a chunk of that version.
pub fn shares_of_chunk(el: &Element, version: &str) -> Option<Vec<Share>> {
    if !el.is("chunk", NS_CATALOG) || el.attr("version") != Some(version) {
        return None;
    }
    Some(
        el.children()
            .filter(|c| c.is("share_item", NS_SHARES))
            .filter_map(|c| share_from_element(c).ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(n: u32) -> Vec<Share> {
        (0..n)
            .map(|i| Share::from_wire(&format!("{i:040x}"), &format!("file {i}.bin"), "7").unwrap())
            .collect()
    }

    #[test]
    fn versions_are_stable_and_tell_lists_apart() {
        let a = shares(10);
        assert_eq!(version_of(&a), version_of(&a.clone()));
        let mut b = a.clone();
        b[3].size = 8;
        assert_ne!(version_of(&a), version_of(&b));
        assert_eq!(version_of(&a).len(), 16);
    }

    #[test]
    fn chunks_round_trip_and_respect_their_size() {
        let all = shares(9_000);
        let chunks = split(&all).unwrap();
        assert!(chunks.len() > 1);
        assert_eq!(chunks.concat(), all);
        let v = version_of(&all);
        for c in &chunks {
            let el = chunk_element(&v, c);
            let mut out = Vec::new();
            el.write_to(&mut out).unwrap();
            assert!(out.len() + 12 * c.len() <= CHUNK_BYTES, "{}", out.len());
            assert_eq!(shares_of_chunk(&el, &v).unwrap(), *c);
            assert!(shares_of_chunk(&el, "other").is_none());
        }
        // A smaller limit gives smaller chunks, each within it.
        let small = split_within(&all, 60_000).unwrap();
        assert!(small.len() > chunks.len());
        assert_eq!(small.concat(), all);
        for c in &small {
            let mut out = Vec::new();
            chunk_element(&v, c).write_to(&mut out).unwrap();
            assert!(out.len() + 12 * c.len() <= 60_000, "{}", out.len());
        }
    }

    #[test]
    fn pointers_are_bounded() {
        let ok = More {
            version: "00ff".into(),
            chunks: 3,
            total: 9,
        };
        assert_eq!(more_from_element(&more_element(&ok)).unwrap(), ok);
        for (v, c, t) in [
            ("", "1", "1"),
            ("../x", "1", "1"),
            ("ab", "0", "1"),
            ("ab", "101", "1"),
            ("ab", "1", "-1"),
        ] {
            let el = Element::builder("more", NS_CATALOG)
                .attr("version".try_into().unwrap(), v)
                .attr("chunks".try_into().unwrap(), c)
                .attr("total".try_into().unwrap(), t)
                .build();
            assert!(more_from_element(&el).is_err(), "{v} {c} {t}");
        }
    }
}
