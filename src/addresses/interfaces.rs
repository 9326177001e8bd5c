//! This machine's own interface addresses: which ones are worth publishing
//! (LAN and global IPv4, global IPv6 preferring stable over temporary ones)
//! and which networks we sit on (for "same LAN" ordering).
//!
//! The classification and selection are pure functions over
//! [`InterfaceAddr`] lists, tested on fixed lists; only [`list_system`]
//! touches the operating system. Not here: the public IPv4 seen from
//! outside (`public_ip`), ports, publishing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use super::config::AddressConfig;

/// Linux `IFA_F_TEMPORARY`: an RFC 8981 privacy address.
pub const IFA_F_TEMPORARY: u8 = 0x01;
/// Linux `IFA_F_DADFAILED`: duplicate address detection failed; unusable.
pub const IFA_F_DADFAILED: u8 = 0x08;
/// Linux `IFA_F_DEPRECATED`: preferred lifetime over; kept for old flows.
pub const IFA_F_DEPRECATED: u8 = 0x20;
/// Linux `IFA_F_TENTATIVE`: duplicate address detection still running.
pub const IFA_F_TENTATIVE: u8 = 0x40;

/// One address of one local interface, as the selection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddr {
    pub interface: String,
    pub ip: IpAddr,
    pub prefix_len: u8,
    /// IPv6 privacy address (rotates; others should not rely on it).
    pub temporary: bool,
    /// IPv6 address past its preferred lifetime (about to go away).
    pub deprecated: bool,
    /// Not usable (yet): duplicate address detection running or failed.
    pub unusable: bool,
}

impl InterfaceAddr {
    /// A plain address with no IPv6 flags.
    pub fn new(interface: &str, ip: IpAddr, prefix_len: u8) -> Self {
        InterfaceAddr {
            interface: interface.to_string(),
            ip,
            prefix_len,
            temporary: false,
            deprecated: false,
            unusable: false,
        }
    }
}

/// A network this machine is directly on (address and prefix length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Network {
    pub ip: IpAddr,
    pub prefix_len: u8,
}

impl Network {
    /// Whether `ip` lies in this network (same family, same prefix).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.ip, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                same_prefix(&a.octets(), &b.octets(), self.prefix_len.min(32))
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                same_prefix(&a.octets(), &b.octets(), self.prefix_len.min(128))
            }
            _ => false,
        }
    }
}

fn same_prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

/// What an IPv4 address is, for deciding whether to publish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum V4Class {
    /// Globally routable unicast.
    Global,
    /// RFC 1918 private (10/8, 172.16/12, 192.168/16): a LAN address.
    Private,
    Loopback,
    /// 169.254/16, self-assigned.
    LinkLocal,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24 (RFC 5737).
    Documentation,
    /// 100.64/10, carrier-grade NAT (RFC 6598): neither ours nor public.
    SharedCgnat,
    /// 198.18/15, for benchmarking networks (RFC 2544): never on the
    /// internet, but the "internet" of network labs (see
    /// [`is_public_v4`]).
    Benchmarking,
    /// Unspecified, broadcast, multicast, 0/8, 240/4, IETF 192.0.0/24:
    /// never a peer's address.
    Reserved,
}

/// Classifies an IPv4 address.
pub fn classify_v4(ip: Ipv4Addr) -> V4Class {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        V4Class::Loopback
    } else if ip.is_private() {
        V4Class::Private
    } else if ip.is_link_local() {
        V4Class::LinkLocal
    } else if ip.is_documentation() {
        V4Class::Documentation
    } else if a == 100 && (64..128).contains(&b) {
        V4Class::SharedCgnat
    } else if a == 198 && (b == 18 || b == 19) {
        V4Class::Benchmarking
    } else if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
    {
        V4Class::Reserved
    } else {
        V4Class::Global
    }
}

/// Whether `ip` counts as a public IPv4 address (ours as the internet
/// sees it): globally routable, or in 198.18/15 when `allow_reserved`
/// (`--allow-reserved-addresses`, for network labs whose "internet" is
/// that range). Used for what-is-my-IP answers, a gateway's external
/// address and our interfaces alike.
pub fn is_public_v4(ip: Ipv4Addr, allow_reserved: bool) -> bool {
    match classify_v4(ip) {
        V4Class::Global => true,
        V4Class::Benchmarking => allow_reserved,
        _ => false,
    }
}

/// What an IPv6 address is, for deciding whether to publish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum V6Class {
    /// Global unicast (2000::/3), minus the special ranges below.
    Global,
    /// Unique local, fc00::/7: routable only inside a site.
    UniqueLocal,
    /// fe80::/10.
    LinkLocal,
    Loopback,
    Multicast,
    /// 2001:db8::/32 (RFC 3849) and 3fff::/20 (RFC 9637).
    Documentation,
    /// Anything else outside global unicast: unspecified, IPv4-mapped,
    /// NAT64, discard, Teredo, benchmarking, ORCHID.
    Other,
}

/// Classifies an IPv6 address.
pub fn classify_v6(ip: Ipv6Addr) -> V6Class {
    let s = ip.segments();
    if ip.is_loopback() {
        V6Class::Loopback
    } else if ip.is_multicast() {
        V6Class::Multicast
    } else if s[0] & 0xffc0 == 0xfe80 {
        V6Class::LinkLocal
    } else if s[0] & 0xfe00 == 0xfc00 {
        V6Class::UniqueLocal
    } else if (s[0] == 0x2001 && s[1] == 0x0db8) || s[0] & 0xfff0 == 0x3ff0 {
        V6Class::Documentation
    } else if s[0] & 0xe000 != 0x2000 || special_2001(s[0], s[1], s[2]) {
        V6Class::Other
    } else {
        V6Class::Global
    }
}

/// Special-purpose blocks inside 2001::/23 that are no peer's stable
/// address: Teredo 2001::/32, benchmarking 2001:2::/48, ORCHID 2001:10::/28
/// and ORCHIDv2 2001:20::/28.
fn special_2001(s0: u16, s1: u16, s2: u16) -> bool {
    s0 == 0x2001
        && (s1 == 0 || (s1 == 2 && s2 == 0) || s1 & 0xfff0 == 0x0010 || s1 & 0xfff0 == 0x0020)
}

/// The interface addresses chosen for publishing, and our networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selected {
    /// IPv4 addresses of our interfaces: private (LAN) and global ones.
    pub ipv4: Vec<Ipv4Addr>,
    /// Global (and, if configured, unique local) IPv6 addresses, stable
    /// ones only when there are any.
    pub ipv6: Vec<Ipv6Addr>,
    /// The networks of every selected address.
    pub networks: Vec<Network>,
}

fn v4_publishable(ip: Ipv4Addr, config: &AddressConfig) -> bool {
    match classify_v4(ip) {
        V4Class::Global | V4Class::Private => true,
        V4Class::Documentation => config.allow_documentation,
        V4Class::Benchmarking => config.allow_reserved,
        _ => false,
    }
}

fn v6_publishable(ip: Ipv6Addr, config: &AddressConfig) -> bool {
    match classify_v6(ip) {
        V6Class::Global => true,
        V6Class::UniqueLocal => config.ula,
        V6Class::Documentation => config.allow_documentation,
        _ => false,
    }
}

/// Chooses what to publish among `addrs` under `config`'s switches:
/// IPv4 (`lan`): private and global addresses, never loopback, link-local,
/// carrier-grade NAT, reserved, nor documentation ranges unless
/// `allow_documentation`. IPv6 (`ipv6`): global unicast, unique local only
/// with `ula`; addresses under duplicate address detection are skipped,
/// deprecated ones are dropped when a preferred one exists, and temporary
/// (privacy) ones when a stable one exists.
pub fn select(addrs: &[InterfaceAddr], config: &AddressConfig) -> Selected {
    let mut out = Selected::default();
    let mut v6: Vec<&InterfaceAddr> = Vec::new();
    for a in addrs.iter().filter(|a| !a.unusable) {
        match a.ip {
            IpAddr::V4(ip)
                if config.lan && v4_publishable(ip, config) && !out.ipv4.contains(&ip) =>
            {
                out.ipv4.push(ip);
                out.networks.push(Network {
                    ip: a.ip,
                    prefix_len: a.prefix_len,
                });
            }
            IpAddr::V6(ip) if config.ipv6 && v6_publishable(ip, config) => v6.push(a),
            _ => {}
        }
    }
    if v6.iter().any(|a| !a.deprecated) {
        v6.retain(|a| !a.deprecated);
    }
    if v6.iter().any(|a| !a.temporary) {
        v6.retain(|a| !a.temporary);
    }
    for a in v6 {
        if let IpAddr::V6(ip) = a.ip {
            if !out.ipv6.contains(&ip) {
                out.ipv6.push(ip);
                out.networks.push(Network {
                    ip: a.ip,
                    prefix_len: a.prefix_len,
                });
            }
        }
    }
    out
}

/// One line of Linux's `/proc/net/if_inet6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inet6Line {
    pub ip: Ipv6Addr,
    pub prefix_len: u8,
    pub flags: u8,
    pub interface: String,
}

/// Parses `/proc/net/if_inet6`: per line 32 hex digits of address, then
/// interface index, prefix length, scope and flags in hex, then the
/// interface name. Lines that do not fit are skipped.
pub fn parse_if_inet6(text: &str) -> Vec<Inet6Line> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [addr, _index, prefix, _scope, flags, name] = f.as_slice() else {
                return None;
            };
            if addr.len() != 32 || !addr.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let ip = Ipv6Addr::from(u128::from_str_radix(addr, 16).ok()?);
            Some(Inet6Line {
                ip,
                prefix_len: u8::from_str_radix(prefix, 16).ok().filter(|p| *p <= 128)?,
                flags: u8::from_str_radix(flags, 16).ok()?,
                interface: name.to_string(),
            })
        })
        .collect()
}

/// Sets the IPv6 flags of `addrs` from parsed `/proc/net/if_inet6` lines
/// (matched by address and interface).
pub fn apply_inet6_flags(addrs: &mut [InterfaceAddr], lines: &[Inet6Line]) {
    let flags: HashMap<(Ipv6Addr, &str), u8> = lines
        .iter()
        .map(|l| ((l.ip, l.interface.as_str()), l.flags))
        .collect();
    for a in addrs {
        if let IpAddr::V6(ip) = a.ip {
            if let Some(f) = flags.get(&(ip, a.interface.as_str())) {
                a.temporary = f & IFA_F_TEMPORARY != 0;
                a.deprecated = f & IFA_F_DEPRECATED != 0;
                a.unusable = f & (IFA_F_TENTATIVE | IFA_F_DADFAILED) != 0;
            }
        }
    }
}

/// Lists this machine's interface addresses (with IPv6 flags on Linux and
/// Windows). A quick local call (getifaddrs and one small /proc file; on
/// Windows GetAdaptersAddresses), no network.
pub fn list_system() -> std::io::Result<Vec<InterfaceAddr>> {
    let mut out: Vec<InterfaceAddr> = if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| match i.addr {
            if_addrs::IfAddr::V4(a) => InterfaceAddr::new(&i.name, IpAddr::V4(a.ip), a.prefixlen),
            if_addrs::IfAddr::V6(a) => InterfaceAddr::new(&i.name, IpAddr::V6(a.ip), a.prefixlen),
        })
        .collect();
    if cfg!(target_os = "linux") {
        if let Ok(text) = std::fs::read_to_string("/proc/net/if_inet6") {
            apply_inet6_flags(&mut out, &parse_if_inet6(&text));
        }
    }
    #[cfg(windows)]
    match crate::windows::ipv6_states() {
        // Matched by address alone: if-addrs and Windows name interfaces
        // differently.
        Ok(states) => {
            for a in &mut out {
                if let Some(s) = states.iter().find(|s| IpAddr::V6(s.ip) == a.ip) {
                    a.temporary = s.temporary;
                    a.deprecated = s.deprecated;
                    a.unusable = s.unusable;
                }
            }
        }
        Err(e) => tracing::debug!("cannot read the IPv6 address states: {e}"),
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
