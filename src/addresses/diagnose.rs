//! Using a contact's published addresses: in which order to try them, and
//! "why can't I reach X": a report that names the cause (nothing
//! published, no common IP family) and what a TCP connect to each address
//! gave (connected, refused, timed out), each with a sentence for people,
//! and whether this device can be reached the other way round (its own
//! port mapping: made, or why no gateway gave one).
//!
//! Not here: BitTorrent itself (a connect that works says the port is
//! open, not that the peer speaks BitTorrent or has the torrent).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use super::interfaces::{classify_v4, classify_v6, Network, V4Class, V6Class};
use super::{MappingStatus, OwnAddresses};

/// How promising a contact's address is, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    /// On one of our own networks: direct, no NAT, fastest.
    SameLan,
    /// Global IPv6: end to end, unless a firewall is in the way.
    Ipv6,
    /// Public IPv4: through the contact's NAT (needs a forwarded port).
    PublicIpv4,
    /// Anything else (their private LAN, loopback, unique local IPv6 of
    /// another site): rarely reachable from here, tried last.
    Other,
}

/// Where `ip` stands for a device on `networks` (our own networks).
pub fn preference(ip: IpAddr, networks: &[Network]) -> Preference {
    if !ip.is_loopback() && networks.iter().any(|n| n.contains(ip)) {
        return Preference::SameLan;
    }
    match ip {
        IpAddr::V6(v6) if classify_v6(v6) == V6Class::Global => Preference::Ipv6,
        IpAddr::V4(v4) if classify_v4(v4) == V4Class::Global => Preference::PublicIpv4,
        _ => Preference::Other,
    }
}

/// A contact resource's addresses in the order to try them: same LAN
/// first, then IPv6, then public IPv4, then the rest; the published order
/// is kept within each group.
pub fn order_addresses(addresses: &[SocketAddr], networks: &[Network]) -> Vec<SocketAddr> {
    let mut out = addresses.to_vec();
    out.sort_by_key(|a| preference(a.ip(), networks));
    out
}

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At least one address accepted a connection.
    Reachable,
    /// The contact published no address at all.
    NoAddressPublished,
    /// The contact has addresses only in a family we have none of, and
    /// none of them could be reached.
    NoCommonFamily,
    /// Every address failed; see each check.
    Unreachable,
}

/// What a TCP connect to one address gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Connected,
    Refused,
    TimedOut,
    /// Any other error, e.g. no route to that network.
    Failed {
        error: String,
    },
}

/// One address checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressCheck {
    pub address: SocketAddr,
    pub preference: Preference,
    pub outcome: Outcome,
    pub message: String,
}

/// The report: a verdict, a sentence, and each address checked (in the
/// order they would be tried).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub verdict: Verdict,
    pub message: String,
    pub checks: Vec<AddressCheck>,
    /// Whether contacts can connect to this device from outside: its port
    /// mapping at the router (UPnP or NAT-PMP), or why it has none.
    pub this_device: String,
}

/// Our own port mapping in words: where the router maps us, or why no
/// gateway did.
pub fn this_device(own: &OwnAddresses) -> String {
    let mapped = [("UPnP", &own.upnp), ("NAT-PMP", &own.natpmp)]
        .into_iter()
        .find_map(|(how, s)| match s {
            MappingStatus::Mapped { external } => Some((how, *external)),
            _ => None,
        });
    if let Some((how, external)) = mapped {
        return format!(
            "This device accepts connections from outside at {external} (a {how} port mapping \
             at its router), so the contact can connect to it."
        );
    }
    let why = |s: &MappingStatus| match s {
        MappingStatus::Off => "off".to_string(),
        MappingStatus::Trying => "still asking the router".to_string(),
        MappingStatus::Mapped { external } => format!("mapped at {external}"),
        MappingStatus::Failed { reason } => reason.clone(),
    };
    format!(
        "This device has no port mapping at its router (UPnP: {}; NAT-PMP: {}): unless it has \
         a public address of its own, contacts cannot connect to it either.",
        why(&own.upnp),
        why(&own.natpmp)
    )
}

fn check_message(address: SocketAddr, outcome: &Outcome, timeout: Duration) -> String {
    let port = address.port();
    match outcome {
        Outcome::Connected => format!("{address}: connected"),
        Outcome::Refused => format!(
            "{address}: connection refused: the device answered, but nothing accepts \
             connections on port {port} (Bitween is not running there, or it listens on \
             another port now)"
        ),
        Outcome::TimedOut => format!(
            "{address}: no answer within {} ms: a firewall or NAT drops the connection \
             (the contact may need to open or forward port {port}), or the device is \
             gone from this address",
            timeout.as_millis()
        ),
        Outcome::Failed { error } => format!("{address}: cannot connect: {error}"),
    }
}

async fn probe(address: SocketAddr, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_stream)) => Outcome::Connected,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Outcome::Refused,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => Outcome::TimedOut,
        Ok(Err(e)) => Outcome::Failed {
            error: e.to_string(),
        },
        Err(_) => Outcome::TimedOut,
    }
}

fn families(ips: impl IntoIterator<Item = IpAddr>) -> (bool, bool) {
    ips.into_iter().fold((false, false), |(v4, v6), ip| {
        (v4 || ip.is_ipv4(), v6 || ip.is_ipv6())
    })
}

/// Why the contact resource publishing `contact` can or cannot be reached
/// from here, given our own addresses. Every address is tried at once with
/// a TCP connect bounded by `timeout`, so this takes at most about
/// `timeout`.
pub async fn diagnose(contact: &[SocketAddr], own: &OwnAddresses, timeout: Duration) -> Diagnosis {
    if contact.is_empty() {
        return Diagnosis {
            verdict: Verdict::NoAddressPublished,
            message: "The contact published no address: their Bitween cannot tell where it \
                      accepts connections (it may still be starting, or every address source \
                      is switched off there)."
                .into(),
            checks: Vec::new(),
            this_device: this_device(own),
        };
    }
    let ordered = order_addresses(contact, &own.networks);
    let outcomes = futures::future::join_all(ordered.iter().map(|a| probe(*a, timeout))).await;
    let checks: Vec<AddressCheck> = ordered
        .iter()
        .zip(outcomes)
        .map(|(a, outcome)| AddressCheck {
            address: *a,
            preference: preference(a.ip(), &own.networks),
            message: check_message(*a, &outcome, timeout),
            outcome,
        })
        .collect();
    let (we_v4, we_v6) = families(own.ips.iter().map(|o| o.ip));
    let (they_v4, they_v6) = families(contact.iter().map(|a| a.ip()));
    let (verdict, message) =
        if let Some(ok) = checks.iter().find(|c| c.outcome == Outcome::Connected) {
            (
                Verdict::Reachable,
                format!("The contact is reachable at {}.", ok.address),
            )
        } else if !(we_v4 && they_v4 || we_v6 && they_v6) {
            let message = if they_v6 && !they_v4 {
                "The contact publishes only IPv6 addresses and this device has no IPv6 address: \
             one of you needs the other's family (IPv6 here, or an IPv4 address there)."
            } else {
                "The contact publishes only IPv4 addresses and this device has only IPv6: one of \
             you needs the other's family (IPv4 here, or an IPv6 address there)."
            };
            (Verdict::NoCommonFamily, message.to_string())
        } else {
            let refused = checks
                .iter()
                .filter(|c| c.outcome == Outcome::Refused)
                .count();
            let timed_out = checks
                .iter()
                .filter(|c| c.outcome == Outcome::TimedOut)
                .count();
            (
                Verdict::Unreachable,
                format!(
                    "None of the contact's {} addresses accepted a connection ({refused} refused, \
                 {timed_out} timed out, {} other errors); see each address.",
                    checks.len(),
                    checks.len() - refused - timed_out
                ),
            )
        };
    let this_device = this_device(own);
    let message = if verdict == Verdict::Reachable {
        message
    } else {
        format!("{message} {this_device}")
    };
    Diagnosis {
        verdict,
        message,
        checks,
        this_device,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(ip: &str, prefix_len: u8) -> Network {
        Network {
            ip: ip.parse().unwrap(),
            prefix_len,
        }
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn same_lan_then_ipv6_then_public_ipv4_then_the_rest() {
        let ours = [net("192.168.1.20", 24), net("2a01:4f8:1:2::3", 64)];
        let published = addrs(&[
            "81.2.69.160:6881",
            "10.0.0.5:6881",
            "[2a02:8070::7]:6881",
            "127.0.0.1:6881",
            "192.168.1.33:6881",
            "[fd00::9]:6881",
            "[2a01:4f8:1:2::9]:6881",
            "81.2.69.160:7000",
        ]);
        assert_eq!(
            order_addresses(&published, &ours),
            addrs(&[
                "192.168.1.33:6881",
                "[2a01:4f8:1:2::9]:6881",
                "[2a02:8070::7]:6881",
                "81.2.69.160:6881",
                "81.2.69.160:7000",
                "10.0.0.5:6881",
                "127.0.0.1:6881",
                "[fd00::9]:6881",
            ])
        );
        assert_eq!(
            preference("192.168.1.33".parse().unwrap(), &[]),
            Preference::Other,
            "a private address on none of our networks is their LAN"
        );
    }

    #[test]
    fn this_device_names_its_mapping_or_why_it_has_none() {
        let mut own = OwnAddresses {
            upnp: MappingStatus::Failed {
                reason: "no UPnP gateway answered on the LAN within 3s".into(),
            },
            natpmp: MappingStatus::Failed {
                reason: "nothing answers NAT-PMP at 192.168.1.1:5351 (connection refused)".into(),
            },
            ..OwnAddresses::default()
        };
        let text = this_device(&own);
        assert!(text.contains("no port mapping"), "{text}");
        assert!(!text.contains("  "), "{text}");
        assert!(text.contains("no UPnP gateway answered"), "{text}");
        assert!(text.contains("NAT-PMP: nothing answers"), "{text}");
        own.upnp = MappingStatus::Mapped {
            external: "198.18.2.1:6881".parse().unwrap(),
        };
        let text = this_device(&own);
        assert!(
            text.contains("198.18.2.1:6881") && text.contains("UPnP"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_contact_is_told_with_this_devices_side() {
        // A port nobody listens on (bound, then closed).
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let own = OwnAddresses {
            ips: vec![super::super::OwnIp {
                ip: "127.0.0.1".parse().unwrap(),
                source: super::super::Source::Static,
            }],
            upnp: MappingStatus::Failed {
                reason: "no UPnP gateway answered on the LAN within 3s".into(),
            },
            ..OwnAddresses::default()
        };
        let d = diagnose(&[closed], &own, Duration::from_secs(2)).await;
        assert_eq!(d.verdict, Verdict::Unreachable);
        assert!(
            d.message.contains("no UPnP gateway answered"),
            "{}",
            d.message
        );
    }

    #[tokio::test]
    async fn nothing_published_is_said_without_probing() {
        let d = diagnose(&[], &OwnAddresses::default(), Duration::from_millis(100)).await;
        assert_eq!(d.verdict, Verdict::NoAddressPublished);
        assert!(d.checks.is_empty());
        assert!(d.message.contains("no address"));
    }
}
