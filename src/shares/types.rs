//! Validated value types of the shares payload: info hash, share name, one
//! share, one resource's entry and a whole account's item.
//!
//! Every constructor from a wire string validates, so code downstream of the
//! parser never sees an unchecked value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest share name we accept, in bytes (file systems cap names at 255
/// bytes; a display name gets some headroom, not unbounded memory).
pub const MAX_NAME_BYTES: usize = 1024;
/// Longest resource name we accept, in bytes (RFC 7622 caps resourceparts at
/// 1023 bytes).
pub const MAX_RESOURCE_BYTES: usize = 1023;
/// The most resources (devices) we keep of one contact's item: more is no
/// person's devices, and each costs memory and chunk fetches.
pub const MAX_RESOURCES: usize = 16;
/// The most addresses we keep of one resource (each address with each
/// port: a few IPv4 and IPv6 addresses fit many times over).
pub const MAX_ADDRESSES: usize = 16;

/// Why a value from the wire was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("missing attribute `{0}`")]
    Missing(&'static str),
    #[error("info hash {0:?} is not 40 hexadecimal characters")]
    Hash(String),
    #[error("size {0:?} is not a whole number of bytes (0..=18446744073709551615)")]
    Size(String),
    #[error("port {0:?} is not a number in 1..=65535")]
    Port(String),
    #[error("address {0:?} is not a usable IPv4 or IPv6 literal")]
    Address(String),
    #[error("name is empty")]
    EmptyName,
    #[error("name is longer than {MAX_NAME_BYTES} bytes ({0} bytes)")]
    LongName(usize),
    #[error("name {0:?} contains a control character or a bidirectional override")]
    ControlInName(String),
    #[error("name {0:?} contains a path separator or is `.`/`..`")]
    PathInName(String),
    #[error("resource name {0:?} is empty, too long or contains a control character")]
    Resource(String),
    #[error("duplicate {0}")]
    Duplicate(String),
    #[error("more than {0} {1}; the rest is ignored")]
    TooMany(usize, &'static str),
    #[error("malformed pointer to the rest of the list: {0}")]
    Pointer(String),
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Bidirectional embeddings, overrides and isolates (U+202A..U+202E,
/// U+2066..U+2069), which make a name read otherwise than it is
/// (`invoice\u{202e}fdp.exe` shows as `invoiceexe.pdf`).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A BitTorrent v1 info hash (SHA-1 of the info dictionary).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// Lower-case hex, as published.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl FromStr for InfoHash {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::Hash(s.to_string());
        if s.len() != 40 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0u8; 20];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(InfoHash(out))
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

impl Serialize for InfoHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for InfoHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A share's display name: non-empty, at most [`MAX_NAME_BYTES`], no control
/// characters, no path separators, not `.` or `..`. The name is only shown;
/// file names on disk come from the torrent metadata, checked separately.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ShareName(String);

impl ShareName {
    pub fn new(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() {
            return Err(Invalid::EmptyName);
        }
        if s.len() > MAX_NAME_BYTES {
            return Err(Invalid::LongName(s.len()));
        }
        if has_control(s) || s.chars().any(is_bidi_control) {
            return Err(Invalid::ControlInName(s.to_string()));
        }
        if s.contains(['/', '\\']) || s == "." || s == ".." {
            return Err(Invalid::PathInName(s.to_string()));
        }
        Ok(ShareName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name that passed [`ShareName::new`] before (read back from where
    /// the catalog packed it).
    pub(crate) fn already_valid(s: String) -> Self {
        debug_assert!(ShareName::new(&s).is_ok(), "{s:?}");
        ShareName(s)
    }
}

impl<'de> Deserialize<'de> for ShareName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ShareName::new(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ShareName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ShareName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// One shared torrent: `<share_item hash name size/>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Share {
    pub hash: InfoHash,
    pub name: ShareName,
    pub size: u64,
}

impl Share {
    /// Builds a share from the three wire strings, validating each.
    pub fn from_wire(hash: &str, name: &str, size: &str) -> Result<Self, Invalid> {
        Ok(Share {
            hash: hash.parse()?,
            name: ShareName::new(name)?,
            size: parse_digits(size).ok_or_else(|| Invalid::Size(size.to_string()))?,
        })
    }
}

/// Parses plain ASCII digits (no sign, no spaces) into an unsigned number.
fn parse_digits<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses one `<ip_address address port/>` pair. Addresses that can never be
/// a peer (unspecified, multicast, IPv4 broadcast) are refused.
pub fn socket_addr_from_wire(address: &str, port: &str) -> Result<SocketAddr, Invalid> {
    let port_num: u16 = parse_digits(port)
        .filter(|p| *p != 0)
        .ok_or_else(|| Invalid::Port(port.to_string()))?;
    let ip: IpAddr = address
        .parse()
        .map_err(|_| Invalid::Address(address.to_string()))?;
    let unusable = ip.is_unspecified()
        || ip.is_multicast()
        || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if unusable {
        return Err(Invalid::Address(address.to_string()));
    }
    Ok(SocketAddr::new(ip, port_num))
}

/// Checks a resource name from the wire (`""` is handled by the caller: the
/// protocol says it is dropped).
pub fn validate_resource(name: &str) -> Result<(), Invalid> {
    if name.is_empty() || name.len() > MAX_RESOURCE_BYTES || has_control(name) {
        return Err(Invalid::Resource(name.to_string()));
    }
    Ok(())
}

/// What one resource (device) of an account publishes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceShares {
    pub shares: Vec<Share>,
    pub addresses: Vec<SocketAddr>,
    /// When the list did not fit in the item: where the rest is (our
    /// extension, see `chunks.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more: Option<super::chunks::More>,
}

/// A whole account's item: resource name -> its entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserShares {
    pub resources: BTreeMap<String, ResourceShares>,
}

impl UserShares {
    /// The item with `resource`'s entry replaced by `entry` (or removed when
    /// `entry` is `None`), and the `""` resource dropped, as the protocol's
    /// merge rule says.
    pub fn merged(&self, resource: &str, entry: Option<&ResourceShares>) -> UserShares {
        let mut out = self.clone();
        out.resources.remove("");
        match entry {
            Some(e) => {
                out.resources.insert(resource.to_string(), e.clone());
            }
            None => {
                out.resources.remove(resource);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_hash_is_normalised_to_lower_case() {
        let h: InfoHash = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4".parse().unwrap();
        assert_eq!(h.to_string(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4");
    }

    #[test]
    fn info_hash_rejects_wrong_length_and_non_hex() {
        for bad in [
            "",
            "abc",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4a",
            "g3b0c44298fc1c149afbf4c8996fb92427ae41e4",
            "+3b0c44298fc1c149afbf4c8996fb92427ae41e4",
            "é3b0c44298fc1c149afbf4c8996fb92427ae41",
        ] {
            assert!(bad.parse::<InfoHash>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_are_bounded_and_clean() {
        assert!(ShareName::new("holiday photos ☀").is_ok());
        assert_eq!(ShareName::new(""), Err(Invalid::EmptyName));
        assert!(matches!(
            ShareName::new(&"x".repeat(1025)),
            Err(Invalid::LongName(1025))
        ));
        assert!(ShareName::new(&"x".repeat(1024)).is_ok());
        for bad in [
            "a\0b",
            "tab\there",
            "line\nbreak",
            "del\u{7f}",
            "c1\u{85}",
            "invoice\u{202e}fdp.exe",
            "x\u{2066}y",
        ] {
            assert!(
                matches!(ShareName::new(bad), Err(Invalid::ControlInName(_))),
                "{bad:?}"
            );
        }
        for bad in ["../etc", "a/b", "a\\b", ".", ".."] {
            assert!(
                matches!(ShareName::new(bad), Err(Invalid::PathInName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sizes_and_ports_are_plain_digits_in_range() {
        let h = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4";
        assert_eq!(
            Share::from_wire(h, "n", "18446744073709551615")
                .unwrap()
                .size,
            u64::MAX
        );
        for bad in ["", "-1", "+1", " 1", "1.5", "abc", "18446744073709551616"] {
            assert!(
                matches!(Share::from_wire(h, "n", bad), Err(Invalid::Size(_))),
                "{bad:?}"
            );
        }
        assert!(socket_addr_from_wire("127.0.0.1", "65535").is_ok());
        for bad in ["0", "65536", "-1", "+80", "", "80a"] {
            assert!(
                matches!(
                    socket_addr_from_wire("127.0.0.1", bad),
                    Err(Invalid::Port(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn addresses_must_be_usable_ip_literals() {
        assert!(socket_addr_from_wire("2001:db8::1", "1").is_ok());
        assert!(socket_addr_from_wire("::1", "1").is_ok());
        for bad in [
            "example.org",
            "1.2.3",
            "256.1.1.1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
            "ff02::1",
            "fe80::1%eth0",
            "[::1]",
            "",
        ] {
            assert!(
                matches!(socket_addr_from_wire(bad, "80"), Err(Invalid::Address(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn merge_replaces_only_our_resource_and_drops_the_empty_one() {
        let mut item = UserShares::default();
        item.resources.insert("".into(), ResourceShares::default());
        item.resources
            .insert("desktop".into(), ResourceShares::default());
        let ours = ResourceShares {
            addresses: vec!["127.0.0.1:1".parse().unwrap()],
            ..Default::default()
        };
        let merged = item.merged("laptop", Some(&ours));
        assert_eq!(
            merged.resources.keys().collect::<Vec<_>>(),
            ["desktop", "laptop"]
        );
        assert_eq!(merged.resources["laptop"], ours);
        let retracted = merged.merged("laptop", None);
        assert_eq!(retracted.resources.keys().collect::<Vec<_>>(), ["desktop"]);
    }
}
