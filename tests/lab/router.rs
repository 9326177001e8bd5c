//! A home: a router namespace between the lab's internet and a LAN bridge,
//! and device namespaces on that LAN. The router is configured per
//! scenario: IPv4 NAT keeping source ports (nftables `masquerade`) or
//! randomising them (`masquerade random`, like carrier-grade NAT), a
//! stateful firewall that drops unsolicited inbound (IPv4 and IPv6), IPv6
//! routed without NAT, and miniupnpd (Debian's) on the LAN side.

use std::process::Stdio;

use super::{in_ns, ip_in, run, servers, Lab, SERVER_V4};

/// How a home's IPv4 NAT maps source ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// `masquerade`: keeps the source port when it can (endpoint
    /// independent for our purposes: punching works).
    KeepsPorts,
    /// `masquerade random`: a random external port per connection.
    RandomPorts,
}

/// What a home's router does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterSpec {
    pub nat: Nat,
    /// Run miniupnpd (UPnP IGD) on the LAN side.
    pub upnp: bool,
    /// Also answer NAT-PMP in miniupnpd (only with `upnp`).
    pub natpmp: bool,
    /// Route IPv6 (unique local addresses, no NAT) through the same
    /// stateful firewall.
    pub ipv6: bool,
}

impl RouterSpec {
    /// IPv4 NAT that keeps ports, no UPnP, no IPv6.
    pub fn nat() -> RouterSpec {
        RouterSpec {
            nat: Nat::KeepsPorts,
            upnp: false,
            natpmp: false,
            ipv6: false,
        }
    }

    pub fn random_ports() -> RouterSpec {
        RouterSpec {
            nat: Nat::RandomPorts,
            ..RouterSpec::nat()
        }
    }

    /// miniupnpd answering UPnP IGD only (not NAT-PMP), so the scenario
    /// proves UPnP.
    pub fn upnp() -> RouterSpec {
        RouterSpec {
            upnp: true,
            ..RouterSpec::nat()
        }
    }

    pub fn with_ipv6(self) -> RouterSpec {
        RouterSpec { ipv6: true, ..self }
    }
}

/// A device of a home.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its namespace.
    pub ns: String,
    /// A short name (the XMPP resource of its daemon).
    pub name: String,
    pub ipv4: std::net::Ipv4Addr,
    pub ipv6: Option<std::net::Ipv6Addr>,
}

/// A home behind its router.
#[derive(Debug, Clone)]
pub struct Home {
    pub number: u8,
    pub router: String,
    pub spec: RouterSpec,
    /// The router's public (lab internet) addresses.
    pub wan_v4: std::net::Ipv4Addr,
    pub wan_v6: Option<std::net::Ipv6Addr>,
    pub devices: Vec<Device>,
}

impl Home {
    /// Whether `ip` is on this home's LAN.
    pub fn on_lan(&self, ip: std::net::IpAddr) -> bool {
        match ip {
            std::net::IpAddr::V4(v4) => v4.octets()[..3] == [192, 168, 1],
            std::net::IpAddr::V6(v6) => {
                v6.segments()[..4] == [0xfd00, 0x18, u16::from(self.number), 0]
            }
        }
    }
}

/// The router's nftables rules: one table, so one forward policy decides
/// (miniupnpd adds its rules to the chains named in its config).
fn ruleset(spec: &RouterSpec) -> String {
    let random = match spec.nat {
        Nat::KeepsPorts => "",
        Nat::RandomPorts => " random",
    };
    format!(
        r#"table inet lab {{
    chain forward {{
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        ct state invalid drop
        iifname "lan" accept
        meta l4proto ipv6-icmp accept
        jump miniupnpd
    }}
    chain miniupnpd {{
    }}
    chain input {{
        type filter hook input priority 0; policy accept;
        iifname "wan" ct state established,related accept
        iifname "wan" meta l4proto {{ icmp, ipv6-icmp }} accept
        iifname "wan" drop
    }}
    chain prerouting {{
        type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd
    }}
    chain prerouting_miniupnpd {{
    }}
    chain postrouting {{
        type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd
        oifname "wan" meta nfproto ipv4 masquerade{random}
    }}
    chain postrouting_miniupnpd {{
    }}
}}
"#
    )
}

/// miniupnpd's settings: WAN `wan`, LAN `lan`; the public address from the
/// lab's STUN server (miniupnpd refuses a reserved WAN address otherwise).
fn miniupnpd_conf(lab: &Lab, home: u8, natpmp: bool) -> String {
    format!(
        "ext_ifname=wan\n\
         listening_ip=lan\n\
         port=0\n\
         enable_upnp=yes\n\
         enable_natpmp={}\n\
         secure_mode=yes\n\
         system_uptime=no\n\
         ext_perform_stun=yes\n\
         ext_stun_host={SERVER_V4}\n\
         ext_stun_port={}\n\
         uuid=8b5e0d3c-6c1f-4d7e-9a3b-00000000000{home}\n\
         lease_file={}/miniupnpd-{home}.leases\n\
         upnp_table_name=lab\n\
         upnp_nat_table_name=lab\n\
         upnp_forward_chain=miniupnpd\n\
         upnp_nat_chain=prerouting_miniupnpd\n\
         upnp_nat_postrouting_chain=postrouting_miniupnpd\n\
         allow 1024-65535 192.168.1.0/24 1024-65535\n\
         deny 0-65535 0.0.0.0/0 0-65535\n",
        if natpmp { "yes" } else { "no" },
        servers::STUN_PORT,
        lab.dir.path().display(),
    )
}

impl Lab {
    /// Adds home `number` (1..=9) behind a router doing `spec`, with
    /// `devices` devices on its LAN.
    pub fn home(&mut self, number: u8, spec: RouterSpec, devices: usize) -> Home {
        assert!((1..=9).contains(&number));
        let router = format!("{}-r{number}", self.id);
        self.namespace(&router);
        let inet = self.internet.clone();
        // The internet side: a veth into the internet's bridge.
        let outside = format!("r{number}");
        ip_in(
            &inet,
            &[
                "link", "add", &outside, "type", "veth", "peer", "name", "wan", "netns", &router,
            ],
        );
        ip_in(&inet, &["link", "set", &outside, "master", "br0", "up"]);
        let wan_v4: std::net::Ipv4Addr = format!("198.18.{number}.1").parse().unwrap();
        ip_in(&router, &["link", "set", "wan", "up"]);
        ip_in(
            &router,
            &["addr", "add", &format!("{wan_v4}/16"), "dev", "wan"],
        );
        ip_in(&router, &["route", "add", "default", "via", SERVER_V4]);
        run(in_ns(&router, "sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
        // The LAN: a bridge the devices hang on.
        ip_in(
            &router,
            &[
                "link",
                "add",
                "lan",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        );
        ip_in(&router, &["link", "set", "lan", "up"]);
        ip_in(&router, &["addr", "add", "192.168.1.1/24", "dev", "lan"]);
        let wan_v6 = spec.ipv6.then(|| {
            let wan: std::net::Ipv6Addr = format!("fd00:18::{number}:1").parse().unwrap();
            run(in_ns(&router, "sysctl").args(["-qw", "net.ipv6.conf.all.forwarding=1"]));
            ip_in(
                &router,
                &[
                    "-6",
                    "addr",
                    "add",
                    &format!("{wan}/64"),
                    "dev",
                    "wan",
                    "nodad",
                ],
            );
            ip_in(
                &router,
                &["-6", "route", "add", "default", "via", super::SERVER_V6],
            );
            ip_in(
                &router,
                &[
                    "-6",
                    "addr",
                    "add",
                    &format!("fd00:18:{number}::1/64"),
                    "dev",
                    "lan",
                    "nodad",
                ],
            );
            ip_in(
                &inet,
                &[
                    "-6",
                    "route",
                    "add",
                    &format!("fd00:18:{number}::/64"),
                    "via",
                    &wan.to_string(),
                ],
            );
            wan
        });
        let rules = self.dir.path().join(format!("router-{number}.nft"));
        servers::write(&rules, &ruleset(&spec));
        run(in_ns(&router, "nft").arg("-f").arg(&rules));

        let mut home = Home {
            number,
            router: router.clone(),
            spec,
            wan_v4,
            wan_v6,
            devices: Vec::new(),
        };
        for i in 0..devices {
            let host = self.next_host();
            let name = format!("d{number}{}", (b'a' + i as u8) as char);
            let ns = format!("{}-{name}", self.id);
            self.namespace(&ns);
            let port = format!("p{host}");
            ip_in(
                &router,
                &[
                    "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            );
            ip_in(&router, &["link", "set", &port, "master", "lan", "up"]);
            let ipv4: std::net::Ipv4Addr = format!("192.168.1.{host}").parse().unwrap();
            ip_in(&ns, &["link", "set", "eth0", "up"]);
            ip_in(&ns, &["addr", "add", &format!("{ipv4}/24"), "dev", "eth0"]);
            ip_in(&ns, &["route", "add", "default", "via", "192.168.1.1"]);
            let ipv6 = spec.ipv6.then(|| {
                let v6: std::net::Ipv6Addr = format!("fd00:18:{number}::{host}").parse().unwrap();
                ip_in(
                    &ns,
                    &[
                        "-6",
                        "addr",
                        "add",
                        &format!("{v6}/64"),
                        "dev",
                        "eth0",
                        "nodad",
                    ],
                );
                ip_in(
                    &ns,
                    &[
                        "-6",
                        "route",
                        "add",
                        "default",
                        "via",
                        &format!("fd00:18:{number}::1"),
                    ],
                );
                v6
            });
            home.devices.push(Device {
                ns,
                name,
                ipv4,
                ipv6,
            });
        }
        if spec.upnp {
            let conf = self.dir.path().join(format!("miniupnpd-{number}.conf"));
            servers::write(&conf, &miniupnpd_conf(self, number, spec.natpmp));
            let log =
                std::fs::File::create(self.dir.path().join(format!("miniupnpd-{number}.log")))
                    .unwrap();
            let child = in_ns(&router, "miniupnpd")
                .arg("-f")
                .arg(&conf)
                .arg("-d")
                .arg("-P")
                .arg(self.dir.path().join(format!("miniupnpd-{number}.pid")))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("miniupnpd starts (scripts/test.sh installs miniupnpd-nftables)");
            self.keep(&format!("miniupnpd of home {number}"), child);
            wait_for_upnp(self, number);
        }
        self.homes.push(home.clone());
        home
    }
}

/// Waits until miniupnpd has found its public address over STUN and
/// listens (its log says so), or fails with its log.
fn wait_for_upnp(lab: &Lab, number: u8) {
    let log = lab.dir.path().join(format!("miniupnpd-{number}.log"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("HTTP listening on port")
            && text.contains("Port forwarding is now enabled")
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "miniupnpd of home {number} did not get ready: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
