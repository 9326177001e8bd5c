//! Settings of address discovery: which sources are on, extra addresses,
//! the what-is-my-IP services, NAT-PMP port mapping, timeouts and
//! intervals. Serializable, so the
//! daemon's and the desktop app's settings files can carry it.
//!
//! Not here: the discovery itself (see the sibling modules).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The services asked for our public IPv4 by default (HTTPS, plain-text
/// answers). Never contacted by tests: they configure fakes on loopback.
pub const DEFAULT_SERVICES: &[&str] = &[
    "https://api.ipify.org",
    "https://ipv4.icanhazip.com",
    "https://ifconfig.me/ip",
];

/// What to discover and publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AddressConfig {
    /// Ask the what-is-my-IP `services` for our public IPv4.
    pub public_ipv4: bool,
    /// Publish global IPv6 addresses of our interfaces.
    pub ipv6: bool,
    /// Publish the IPv4 addresses of our interfaces (LAN ones, so contacts
    /// behind the same router connect directly, and global ones).
    pub lan: bool,
    /// Also publish unique local IPv6 addresses (fc00::/7), for sites that
    /// route them (a VPN, a company network).
    pub ula: bool,
    /// Also publish interface addresses in documentation ranges
    /// (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32): only for
    /// test networks built on them.
    pub allow_documentation: bool,
    /// Take addresses in 198.18.0.0/15 (RFC 2544, benchmarking) for public
    /// ones: from what-is-my-IP services, from a gateway's report and on
    /// our interfaces. Only for network labs, whose "internet" is that
    /// range (`--allow-reserved-addresses`); never on real networks.
    pub allow_reserved: bool,
    /// Always published, unfiltered (`--address IP`): a VPN address, or
    /// 127.0.0.1 in tests. Unspecified, multicast and broadcast addresses
    /// are refused by [`AddressConfig::validate`].
    pub static_addresses: Vec<IpAddr>,
    /// What-is-my-IP services, `http://` or `https://` URLs answering our
    /// IPv4 as plain text. Asked in parallel; see `public_ip` for how the
    /// answers are cross-checked.
    pub services: Vec<String>,
    /// How long one service may take to answer.
    #[serde(rename = "service_timeout_ms", with = "millis")]
    pub service_timeout: Duration,
    /// How often interface addresses are re-read.
    #[serde(rename = "recheck_interval_ms", with = "millis")]
    pub recheck_interval: Duration,
    /// How often the public IPv4 is asked again after a successful lookup.
    #[serde(rename = "public_ipv4_interval_ms", with = "millis")]
    pub public_ipv4_interval: Duration,
    /// After a lookup where no service answered, or a failed NAT-PMP
    /// attempt, the first wait before retrying; it doubles on each further
    /// failure up to `retry_max`.
    #[serde(rename = "retry_first_ms", with = "millis")]
    pub retry_first: Duration,
    #[serde(rename = "retry_max_ms", with = "millis")]
    pub retry_max: Duration,
    /// Ask the gateway for a port mapping over NAT-PMP (RFC 6886) and
    /// publish the external port beside the listen port while it lasts.
    pub natpmp: bool,
    /// Ask the gateway for a port mapping over UPnP IGD (found by SSDP on
    /// the LAN) and publish its external address and port while it lasts.
    pub upnp: bool,
    /// How long the UPnP gateway search waits for an answer.
    #[serde(rename = "upnp_search_timeout_ms", with = "millis")]
    pub upnp_search_timeout: Duration,
    /// The NAT-PMP gateway (IPv4 address and port) to ask instead of the
    /// default gateway on port 5351: a fake one in tests, or a router that
    /// is not the default gateway.
    pub natpmp_gateway: Option<SocketAddr>,
    /// How long the first NAT-PMP request waits for an answer; each
    /// further one waits twice as long (RFC 6886: 250 ms).
    #[serde(rename = "natpmp_first_timeout_ms", with = "millis")]
    pub natpmp_first_timeout: Duration,
    /// How many NAT-PMP requests are sent before the gateway counts as
    /// silent, 1 to [`MAX_NATPMP_ATTEMPTS`] (RFC 6886: 9, about two
    /// minutes in all).
    pub natpmp_attempts: u32,
}

/// The most NAT-PMP requests per attempt (250 ms doubled 11 times is
/// over eight minutes).
pub const MAX_NATPMP_ATTEMPTS: u32 = 12;

impl Default for AddressConfig {
    fn default() -> Self {
        AddressConfig {
            public_ipv4: true,
            ipv6: true,
            lan: true,
            ula: false,
            allow_documentation: false,
            allow_reserved: false,
            static_addresses: Vec::new(),
            services: DEFAULT_SERVICES.iter().map(|s| s.to_string()).collect(),
            service_timeout: Duration::from_secs(5),
            recheck_interval: Duration::from_secs(30),
            public_ipv4_interval: Duration::from_secs(10 * 60),
            retry_first: Duration::from_secs(5),
            retry_max: Duration::from_secs(5 * 60),
            natpmp: true,
            upnp: true,
            upnp_search_timeout: Duration::from_secs(3),
            natpmp_gateway: None,
            natpmp_first_timeout: Duration::from_millis(250),
            natpmp_attempts: 9,
        }
    }
}

/// Why an [`AddressConfig`] cannot be used; the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressConfigError {
    #[error("service {0:?} is not an http:// or https:// URL")]
    Service(String),
    #[error(
        "static address {0} can never be a peer's address (unspecified, multicast or broadcast)"
    )]
    StaticAddress(IpAddr),
    #[error("{0} must be more than zero")]
    ZeroDuration(&'static str),
    #[error("NAT-PMP gateway {0} must be an IPv4 address with a port (NAT-PMP is IPv4 only)")]
    NatPmpGateway(SocketAddr),
    #[error("natpmp_attempts must be between 1 and {MAX_NATPMP_ATTEMPTS}, not {0}")]
    NatPmpAttempts(u32),
}

impl AddressConfig {
    /// Checks the values a user can get wrong.
    pub fn validate(&self) -> Result<(), AddressConfigError> {
        for s in &self.services {
            let ok = reqwest::Url::parse(s)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !ok {
                return Err(AddressConfigError::Service(s.clone()));
            }
        }
        for ip in &self.static_addresses {
            let bad = ip.is_unspecified()
                || ip.is_multicast()
                || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
            if bad {
                return Err(AddressConfigError::StaticAddress(*ip));
            }
        }
        for (name, d) in [
            ("service_timeout_ms", self.service_timeout),
            ("recheck_interval_ms", self.recheck_interval),
            ("public_ipv4_interval_ms", self.public_ipv4_interval),
            ("retry_first_ms", self.retry_first),
            ("retry_max_ms", self.retry_max),
            ("natpmp_first_timeout_ms", self.natpmp_first_timeout),
            ("upnp_search_timeout_ms", self.upnp_search_timeout),
        ] {
            if d.is_zero() {
                return Err(AddressConfigError::ZeroDuration(name));
            }
        }
        if let Some(gw) = self.natpmp_gateway {
            let usable = gw.is_ipv4() && !gw.ip().is_unspecified() && gw.port() != 0;
            if !usable {
                return Err(AddressConfigError::NatPmpGateway(gw));
            }
        }
        if !(1..=MAX_NATPMP_ATTEMPTS).contains(&self.natpmp_attempts) {
            return Err(AddressConfigError::NatPmpAttempts(self.natpmp_attempts));
        }
        Ok(())
    }

    /// What the UPnP mapper needs from these settings.
    pub fn upnp_mapper(&self) -> super::upnp::UpnpConfig {
        super::upnp::UpnpConfig {
            search_timeout: self.upnp_search_timeout,
            search_to: super::upnp::SSDP,
            lease_secs: 3600,
            retry_first: self.retry_first,
            retry_max: self.retry_max,
            allow_reserved: self.allow_reserved,
        }
    }

    /// What the NAT-PMP mapper needs from these settings.
    pub fn natpmp_mapper(&self) -> super::natpmp::MapperConfig {
        super::natpmp::MapperConfig {
            gateway: self.natpmp_gateway,
            timing: super::natpmp::Timing {
                first_timeout: self.natpmp_first_timeout,
                attempts: self.natpmp_attempts,
            },
            retry_first: self.retry_first,
            retry_max: self.retry_max,
        }
    }
}

/// A `Duration` as whole milliseconds in settings files.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_use_https_services() {
        let c = AddressConfig::default();
        c.validate().unwrap();
        assert!(c.services.iter().all(|s| s.starts_with("https://")));
        assert!(c.public_ipv4 && c.ipv6 && c.lan && !c.ula);
        assert!(c.natpmp && c.upnp && c.natpmp_gateway.is_none());
        assert_eq!(c.upnp_mapper().search_to, super::super::upnp::SSDP);
        assert_eq!(
            c.natpmp_mapper().timing,
            super::super::natpmp::Timing::default()
        );
    }

    #[test]
    fn settings_round_trip_and_fill_in_defaults() {
        let c: AddressConfig = serde_json::from_str(
            r#"{"static_addresses": ["10.8.0.2", "::1"], "service_timeout_ms": 1500, "ula": true}"#,
        )
        .unwrap();
        assert_eq!(c.static_addresses.len(), 2);
        assert_eq!(c.service_timeout, Duration::from_millis(1500));
        assert!(c.ula);
        assert_eq!(c.services, AddressConfig::default().services);
        let back: AddressConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(serde_json::from_str::<AddressConfig>(r#"{"ulla": true}"#).is_err());
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let bad_service = AddressConfig {
            services: vec!["ftp://example.org".into()],
            ..Default::default()
        };
        assert!(matches!(
            bad_service.validate(),
            Err(AddressConfigError::Service(_))
        ));
        let bad_static = AddressConfig {
            static_addresses: vec!["0.0.0.0".parse().unwrap()],
            ..Default::default()
        };
        assert!(matches!(
            bad_static.validate(),
            Err(AddressConfigError::StaticAddress(_))
        ));
        let zero = AddressConfig {
            service_timeout: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(
            zero.validate(),
            Err(AddressConfigError::ZeroDuration("service_timeout_ms"))
        );
        for gw in ["[::1]:5351", "0.0.0.0:5351", "192.168.1.1:0"] {
            let bad_gateway = AddressConfig {
                natpmp_gateway: Some(gw.parse().unwrap()),
                ..Default::default()
            };
            assert!(
                matches!(
                    bad_gateway.validate(),
                    Err(AddressConfigError::NatPmpGateway(_))
                ),
                "{gw}"
            );
        }
        for attempts in [0, MAX_NATPMP_ATTEMPTS + 1] {
            let bad = AddressConfig {
                natpmp_attempts: attempts,
                ..Default::default()
            };
            assert_eq!(
                bad.validate(),
                Err(AddressConfigError::NatPmpAttempts(attempts))
            );
        }
    }

    #[test]
    fn the_natpmp_gateway_is_a_plain_socket_address_in_settings() {
        let c: AddressConfig = serde_json::from_str(
            r#"{"natpmp_gateway": "127.0.0.1:15351", "natpmp_first_timeout_ms": 50, "natpmp_attempts": 2}"#,
        )
        .unwrap();
        c.validate().unwrap();
        let m = c.natpmp_mapper();
        assert_eq!(m.gateway, Some("127.0.0.1:15351".parse().unwrap()));
        assert_eq!(m.timing.first_timeout, Duration::from_millis(50));
        assert_eq!(m.timing.attempts, 2);
        let off: AddressConfig = serde_json::from_str(r#"{"natpmp": false}"#).unwrap();
        assert!(!off.natpmp);
    }
}
