//! Our own addresses and ports: what this resource publishes as its
//! `<ip_address/>`s, kept true while the network changes, and never
//! waiting on the network to do so.
//!
//! Sources: static addresses from the configuration, IPv4 (LAN and
//! global) and IPv6 addresses of our interfaces ([`interfaces`]), and our
//! public IPv4 as what-is-my-IP services see it ([`public_ip`]). The
//! [`AddressWatcher`] owns the result ([`OwnAddresses`]): it starts with
//! what is known at once, adds the public IPv4 when it arrives, re-checks
//! periodically and announces each change on a watch channel and as
//! [`Event::AddressesChanged`](crate::events::Event::AddressesChanged).
//! [`keep_published`] feeds the changes to the XMPP session;
//! [`diagnose`](diagnose::diagnose) and [`order_addresses`] use a
//! contact's addresses.
//!
//! Ports: every address is published with every BitTorrent port in
//! [`Ports`], the engine's listen port and a NAT-mapped external port.
//! The watcher runs the [`natpmp`] and [`upnp`] clients: a mapped external
//! port becomes [`Ports::mapped`] while the mapping lasts (NAT-PMP's when
//! both map), and the external IPv4 the gateway reports with it is
//! published (source [`Source::Gateway`]: the router is the authority for
//! it, and it works when every what-is-my-IP service fails).

pub mod config;
pub mod diagnose;
pub mod interfaces;
pub mod natpmp;
pub mod public_ip;
mod publish;
pub mod upnp;
mod watcher;

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

pub use config::{AddressConfig, AddressConfigError, DEFAULT_SERVICES};
pub use diagnose::{diagnose, order_addresses, Diagnosis, Verdict};
pub use interfaces::{InterfaceAddr, Network};
pub use natpmp::PortMapping;
pub use public_ip::{PublicIpDecision, PublicIpLookup, Rule};
pub use publish::keep_published;
pub use upnp::{UpnpConfig, UpnpMapper};
pub use watcher::{AddressWatcher, InterfaceLister};

/// The BitTorrent ports peers can connect to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    /// The port the engine listens on; `None` before it listens.
    pub listen: Option<u16>,
    /// The external port a NAT maps to us, if any: the NAT-PMP mapping's
    /// while there is one, else what [`AddressWatcher::set_ports`] says.
    /// Published beside `listen`.
    pub mapped: Option<u16>,
}

impl Ports {
    /// Only a listen port, no mapping.
    pub fn listen(port: u16) -> Ports {
        Ports {
            listen: Some(port),
            mapped: None,
        }
    }

    /// The distinct non-zero ports, listen port first.
    pub fn list(&self) -> Vec<u16> {
        let mut out = Vec::new();
        for p in [self.listen, self.mapped].into_iter().flatten() {
            if p != 0 && !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }
}

/// Where one of our addresses comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// From the configuration (`--address`).
    Static,
    /// An IPv4 address of one of our interfaces (LAN or global).
    InterfaceIpv4,
    /// A global IPv6 address of one of our interfaces.
    InterfaceIpv6,
    /// The external IPv4 our gateway reports for its port mapping
    /// (NAT-PMP or UPnP).
    Gateway,
    /// What the what-is-my-IP services see.
    PublicIpv4,
}

/// Where a port mapping stands (NAT-PMP or UPnP), for the status and the
/// diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MappingStatus {
    /// Switched off, or no listen port yet.
    #[default]
    Off,
    /// Asked; no answer yet.
    Trying,
    /// The gateway maps `external` to our listen port.
    Mapped { external: SocketAddr },
    /// The last attempt failed (retried with backoff).
    Failed { reason: String },
}

/// One of our addresses and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OwnIp {
    pub ip: IpAddr,
    pub source: Source,
}

/// Everything we know about our own reachability now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OwnAddresses {
    /// Our addresses, each once: static, interface IPv4, interface IPv6,
    /// public IPv4.
    pub ips: Vec<OwnIp>,
    /// Our BitTorrent ports.
    pub ports: Vec<u16>,
    /// The networks our interfaces are on (for "same LAN" ordering).
    pub networks: Vec<Network>,
    /// What we publish: each address with each port. Empty while no port
    /// is known.
    pub addresses: Vec<SocketAddr>,
    /// Our port mappings at the gateway.
    pub natpmp: MappingStatus,
    pub upnp: MappingStatus,
}

impl OwnAddresses {
    /// Puts the sources together; an address found by several sources is
    /// kept once, under the first (the gateway's report before the
    /// services').
    pub fn assemble(
        statics: &[IpAddr],
        selected: &interfaces::Selected,
        gateway_ipv4: Option<std::net::Ipv4Addr>,
        public_ipv4: Option<std::net::Ipv4Addr>,
        ports: &Ports,
    ) -> OwnAddresses {
        let mut ips: Vec<OwnIp> = Vec::new();
        let candidates = statics
            .iter()
            .map(|ip| (*ip, Source::Static))
            .chain(
                selected
                    .ipv4
                    .iter()
                    .map(|ip| (IpAddr::V4(*ip), Source::InterfaceIpv4)),
            )
            .chain(
                selected
                    .ipv6
                    .iter()
                    .map(|ip| (IpAddr::V6(*ip), Source::InterfaceIpv6)),
            )
            .chain(gateway_ipv4.map(|ip| (IpAddr::V4(ip), Source::Gateway)))
            .chain(public_ipv4.map(|ip| (IpAddr::V4(ip), Source::PublicIpv4)));
        for (ip, source) in candidates {
            if !ips.iter().any(|o| o.ip == ip) {
                ips.push(OwnIp { ip, source });
            }
        }
        let ports = ports.list();
        let addresses = ips
            .iter()
            .flat_map(|o| ports.iter().map(move |p| SocketAddr::new(o.ip, *p)))
            .collect();
        OwnAddresses {
            ips,
            ports,
            networks: selected.networks.clone(),
            addresses,
            natpmp: MappingStatus::Off,
            upnp: MappingStatus::Off,
        }
    }
}

/// The wait after `failures` failures in a row (1 = the first): `first`,
/// doubling each time, at most `max`. Shared by the public-IP lookup and
/// the NAT-PMP mapper.
pub(crate) fn backoff(
    first: std::time::Duration,
    max: std::time::Duration,
    failures: u32,
) -> std::time::Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    first.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_goes_with_each_port_once() {
        let selected = interfaces::Selected {
            ipv4: vec!["192.168.1.20".parse().unwrap(), "10.8.0.2".parse().unwrap()],
            ipv6: vec!["2a01:4f8:1:2::3".parse().unwrap()],
            networks: vec![],
        };
        let own = OwnAddresses::assemble(
            &["10.8.0.2".parse().unwrap()],
            &selected,
            Some("81.2.69.161".parse().unwrap()),
            Some("81.2.69.160".parse().unwrap()),
            &Ports {
                listen: Some(6881),
                mapped: Some(40000),
            },
        );
        let sources: Vec<Source> = own.ips.iter().map(|o| o.source).collect();
        assert_eq!(
            sources,
            [
                Source::Static,
                Source::InterfaceIpv4,
                Source::InterfaceIpv6,
                Source::Gateway,
                Source::PublicIpv4
            ]
        );
        let shown: Vec<String> = own.addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            shown,
            [
                "10.8.0.2:6881",
                "10.8.0.2:40000",
                "192.168.1.20:6881",
                "192.168.1.20:40000",
                "[2a01:4f8:1:2::3]:6881",
                "[2a01:4f8:1:2::3]:40000",
                "81.2.69.161:6881",
                "81.2.69.161:40000",
                "81.2.69.160:6881",
                "81.2.69.160:40000",
            ]
        );
    }

    #[test]
    fn no_port_means_nothing_to_publish_and_ports_are_distinct() {
        let own = OwnAddresses::assemble(
            &["127.0.0.1".parse().unwrap()],
            &interfaces::Selected::default(),
            None,
            None,
            &Ports::default(),
        );
        assert_eq!(own.ips.len(), 1);
        assert!(own.addresses.is_empty());
        // A gateway that maps the external port to the same number.
        let same = Ports {
            listen: Some(6881),
            mapped: Some(6881),
        };
        assert_eq!(same.list(), [6881]);
        assert_eq!(Ports::listen(0).list(), Vec::<u16>::new());
    }
}
