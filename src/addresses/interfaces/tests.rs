//! Unit tests of the interface addresses: address classes, which
//! addresses are chosen to publish (and the switches that change that),
//! the parsing of /proc/net/if_inet6, and what a network contains.

use super::*;

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn ipv4_classes() {
    for (ip, class) in [
        ("8.8.8.8", V4Class::Global),
        ("81.2.69.160", V4Class::Global),
        ("10.1.2.3", V4Class::Private),
        ("172.16.0.1", V4Class::Private),
        ("172.31.255.254", V4Class::Private),
        ("172.32.0.1", V4Class::Global),
        ("192.168.1.20", V4Class::Private),
        ("127.0.0.1", V4Class::Loopback),
        ("127.8.9.10", V4Class::Loopback),
        ("169.254.10.1", V4Class::LinkLocal),
        ("192.0.2.2", V4Class::Documentation),
        ("198.51.100.7", V4Class::Documentation),
        ("203.0.113.7", V4Class::Documentation),
        ("100.64.0.1", V4Class::SharedCgnat),
        ("100.127.255.1", V4Class::SharedCgnat),
        ("100.128.0.1", V4Class::Global),
        ("0.0.0.0", V4Class::Reserved),
        ("0.1.2.3", V4Class::Reserved),
        ("255.255.255.255", V4Class::Reserved),
        ("224.0.0.1", V4Class::Reserved),
        ("240.0.0.1", V4Class::Reserved),
        ("198.18.0.1", V4Class::Benchmarking),
        ("198.19.255.254", V4Class::Benchmarking),
        ("198.20.0.1", V4Class::Global),
        ("192.0.0.8", V4Class::Reserved),
    ] {
        assert_eq!(classify_v4(v4(ip)), class, "{ip}");
    }
}

#[test]
fn the_lab_range_is_public_only_when_allowed() {
    for (ip, strict, lab) in [
        ("81.2.69.160", true, true),
        ("198.18.0.1", false, true),
        ("198.19.7.1", false, true),
        ("192.168.1.1", false, false),
        ("100.64.0.1", false, false),
        ("203.0.113.7", false, false),
        ("0.0.0.0", false, false),
    ] {
        assert_eq!(is_public_v4(v4(ip), false), strict, "{ip}");
        assert_eq!(is_public_v4(v4(ip), true), lab, "{ip} in a lab");
    }
    let lab_router = vec![InterfaceAddr::new("wan", "198.18.1.1".parse().unwrap(), 16)];
    assert!(select(&lab_router, &AddressConfig::default())
        .ipv4
        .is_empty());
    let lab = AddressConfig {
        allow_reserved: true,
        ..AddressConfig::default()
    };
    assert_eq!(select(&lab_router, &lab).ipv4, [v4("198.18.1.1")]);
}

#[test]
fn ipv6_classes() {
    for (ip, class) in [
        ("2a01:4f8:1:2::3", V6Class::Global),
        ("2606:4700::1111", V6Class::Global),
        ("2002:c000:204::1", V6Class::Global),
        ("fd00::2", V6Class::UniqueLocal),
        ("fc12::1", V6Class::UniqueLocal),
        ("fe80::1", V6Class::LinkLocal),
        ("febf::1", V6Class::LinkLocal),
        ("::1", V6Class::Loopback),
        ("ff02::1", V6Class::Multicast),
        ("2001:db8::1", V6Class::Documentation),
        ("3fff:1::1", V6Class::Documentation),
        ("::", V6Class::Other),
        ("::ffff:8.8.8.8", V6Class::Other),
        ("64:ff9b::808:808", V6Class::Other),
        ("2001:0:4136:e378::1", V6Class::Other),
        ("2001:2::1", V6Class::Other),
        ("2001:10::1", V6Class::Other),
        ("2001:20::1", V6Class::Other),
        ("2001:4860::8888", V6Class::Global),
        ("4000::1", V6Class::Other),
    ] {
        assert_eq!(classify_v6(v6(ip)), class, "{ip}");
    }
}

fn flagged(ip: &str, temporary: bool, deprecated: bool) -> InterfaceAddr {
    InterfaceAddr {
        temporary,
        deprecated,
        ..InterfaceAddr::new("eth0", ip.parse().unwrap(), 64)
    }
}

/// A laptop at home: every kind of address at once.
fn home_laptop() -> Vec<InterfaceAddr> {
    vec![
        InterfaceAddr::new("lo", "127.0.0.1".parse().unwrap(), 8),
        InterfaceAddr::new("lo", "::1".parse().unwrap(), 128),
        InterfaceAddr::new("wlan0", "192.168.1.20".parse().unwrap(), 24),
        InterfaceAddr::new("wlan0", "169.254.3.4".parse().unwrap(), 16),
        InterfaceAddr::new("eth0", "192.0.2.2".parse().unwrap(), 24),
        InterfaceAddr::new("tun0", "100.64.7.1".parse().unwrap(), 10),
        flagged("2a01:4f8:1:2::3", false, false),
        flagged("2a01:4f8:1:2:1c3f:aa:bb:cc", true, false),
        flagged("2a01:4f8:1:2:9e2:aa:bb:dd", true, true),
        flagged("fe80::1c3f:aaff:febb:cc", false, false),
        flagged("fd00::2", false, false),
        flagged("2001:db8::5", false, false),
        flagged("ff02::1", false, false),
    ]
}

#[test]
fn selection_keeps_lan_and_stable_global_only() {
    let config = AddressConfig::default();
    let s = select(&home_laptop(), &config);
    assert_eq!(s.ipv4, [v4("192.168.1.20")]);
    assert_eq!(s.ipv6, [v6("2a01:4f8:1:2::3")]);
    assert_eq!(
        s.networks,
        [
            Network {
                ip: "192.168.1.20".parse().unwrap(),
                prefix_len: 24
            },
            Network {
                ip: "2a01:4f8:1:2::3".parse().unwrap(),
                prefix_len: 64
            },
        ]
    );
}

#[test]
fn temporary_addresses_are_used_only_without_a_stable_one() {
    let config = AddressConfig::default();
    let only_temporary = vec![
        flagged("2a01:4f8:1:2:1c3f:aa:bb:cc", true, false),
        flagged("2a01:4f8:1:2:9e2:aa:bb:dd", true, true),
    ];
    assert_eq!(
        select(&only_temporary, &config).ipv6,
        [v6("2a01:4f8:1:2:1c3f:aa:bb:cc")],
        "the non-deprecated temporary one"
    );
    let only_deprecated = vec![flagged("2a01:4f8:1:2:9e2:aa:bb:dd", true, true)];
    assert_eq!(
        select(&only_deprecated, &config).ipv6,
        [v6("2a01:4f8:1:2:9e2:aa:bb:dd")],
        "better than nothing"
    );
    let mut tentative = flagged("2a01:4f8:1:2::3", false, false);
    tentative.unusable = true;
    assert!(select(&[tentative], &config).ipv6.is_empty());
}

#[test]
fn switches_and_exceptions_are_honoured() {
    let ula = AddressConfig {
        ula: true,
        ..AddressConfig::default()
    };
    assert_eq!(
        select(&home_laptop(), &ula).ipv6,
        [v6("2a01:4f8:1:2::3"), v6("fd00::2")]
    );
    let docs = AddressConfig {
        allow_documentation: true,
        ..AddressConfig::default()
    };
    let s = select(&home_laptop(), &docs);
    assert_eq!(s.ipv4, [v4("192.168.1.20"), v4("192.0.2.2")]);
    assert_eq!(s.ipv6, [v6("2a01:4f8:1:2::3"), v6("2001:db8::5")]);
    let off = AddressConfig {
        lan: false,
        ipv6: false,
        ..AddressConfig::default()
    };
    assert_eq!(select(&home_laptop(), &off), Selected::default());
}

#[test]
fn this_test_machine_has_nothing_publishable() {
    // eth0 here: 192.0.2.2/24 and fd00::2 (see PITFALLS.md).
    let here = vec![
        InterfaceAddr::new("lo", "127.0.0.1".parse().unwrap(), 8),
        InterfaceAddr::new("lo", "::1".parse().unwrap(), 128),
        InterfaceAddr::new("eth0", "192.0.2.2".parse().unwrap(), 24),
        InterfaceAddr::new("eth0", "fd00::2".parse().unwrap(), 64),
        InterfaceAddr::new("eth0", "fe80::42:c0ff:fe00:202".parse().unwrap(), 64),
    ];
    assert_eq!(
        select(&here, &AddressConfig::default()),
        Selected::default()
    );
}

const IF_INET6: &str = "\
00000000000000000000000000000001 01 80 10 80       lo
2a0104f8000100020000000000000003 02 40 00 80     eth0
2a0104f8000100021c3f00aa00bb00cc 02 40 00 01     eth0
2a0104f80001000209e200aa00bb00dd 02 40 00 21     eth0
2a0104f8000100020000000000000099 02 40 00 40     eth0
fe80000000000000021c3ffffe00aa00 02 40 20 80     eth0
this line is garbage
2a0104f80001000200000000000000zz 02 40 00 80     eth0
";

#[test]
fn if_inet6_is_parsed_strictly() {
    let lines = parse_if_inet6(IF_INET6);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert_eq!(
        lines[0],
        Inet6Line {
            ip: v6("::1"),
            prefix_len: 128,
            flags: 0x80,
            interface: "lo".into()
        }
    );
    assert_eq!(lines[2].ip, v6("2a01:4f8:1:2:1c3f:aa:bb:cc"));
    assert_eq!(lines[2].flags, IFA_F_TEMPORARY);
    assert_eq!(lines[3].flags, IFA_F_TEMPORARY | IFA_F_DEPRECATED);
    assert_eq!(lines[4].flags, IFA_F_TENTATIVE);
}

#[test]
fn if_inet6_flags_decide_which_ipv6_is_published() {
    let mut addrs: Vec<InterfaceAddr> = parse_if_inet6(IF_INET6)
        .iter()
        .map(|l| InterfaceAddr::new(&l.interface, IpAddr::V6(l.ip), l.prefix_len))
        .collect();
    apply_inet6_flags(&mut addrs, &parse_if_inet6(IF_INET6));
    assert!(addrs[2].temporary && !addrs[2].deprecated);
    assert!(addrs[3].temporary && addrs[3].deprecated);
    assert!(addrs[4].unusable);
    let s = select(&addrs, &AddressConfig::default());
    assert_eq!(s.ipv6, [v6("2a01:4f8:1:2::3")]);
    // Without the stable one, the preferred temporary one is used.
    addrs.remove(1);
    let s = select(&addrs, &AddressConfig::default());
    assert_eq!(s.ipv6, [v6("2a01:4f8:1:2:1c3f:aa:bb:cc")]);
}

#[test]
fn networks_contain_their_hosts_only() {
    let lan = Network {
        ip: "192.168.1.20".parse().unwrap(),
        prefix_len: 24,
    };
    assert!(lan.contains("192.168.1.1".parse().unwrap()));
    assert!(!lan.contains("192.168.2.1".parse().unwrap()));
    assert!(!lan.contains("::1".parse().unwrap()));
    let odd = Network {
        ip: "10.0.0.1".parse().unwrap(),
        prefix_len: 20,
    };
    assert!(odd.contains("10.0.15.255".parse().unwrap()));
    assert!(!odd.contains("10.0.16.0".parse().unwrap()));
    let v6net = Network {
        ip: "2a01:4f8:1:2::3".parse().unwrap(),
        prefix_len: 64,
    };
    assert!(v6net.contains("2a01:4f8:1:2:ffff::1".parse().unwrap()));
    assert!(!v6net.contains("2a01:4f8:1:3::1".parse().unwrap()));
}
