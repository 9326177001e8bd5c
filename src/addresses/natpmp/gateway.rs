//! Where the IPv4 default gateway is: the best default route in Linux's
//! `/proc/net/route`, or in Windows' routing table (GetIpForwardTable2).
//! Other systems name the gateway in the settings.

use std::net::Ipv4Addr;

/// The IPv4 default gateway in the text of Linux's `/proc/net/route`: the
/// up gateway route to 0.0.0.0/0 with the lowest metric (the first on a
/// tie). Lines that do not parse are skipped.
///
/// The kernel prints addresses as the in-memory (network order) 32 bits
/// read as a host-order number, so the text depends on the host's byte
/// order, and so does this function.
pub fn default_gateway_from_route_table(text: &str) -> Option<Ipv4Addr> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    let mut best: Option<(u32, Ipv4Addr)> = None;
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 8 {
            continue;
        }
        let (Some(dest), Some(gateway), Some(flags), Ok(metric), Some(mask)) = (
            hex(cols[1]),
            hex(cols[2]),
            hex(cols[3]),
            cols[6].parse::<u32>(),
            hex(cols[7]),
        ) else {
            continue;
        };
        let default_route = dest == 0 && mask == 0;
        let usable = flags & RTF_UP != 0 && flags & RTF_GATEWAY != 0 && gateway != 0;
        if default_route && usable && best.is_none_or(|(m, _)| metric < m) {
            best = Some((metric, Ipv4Addr::from(gateway.to_ne_bytes())));
        }
    }
    best.map(|(_, ip)| ip)
}

/// The system's IPv4 default gateway.
#[cfg(target_os = "linux")]
pub fn default_gateway() -> Result<Ipv4Addr, String> {
    let text = std::fs::read_to_string("/proc/net/route")
        .map_err(|e| format!("cannot read /proc/net/route: {e}"))?;
    default_gateway_from_route_table(&text)
        .ok_or_else(|| "no IPv4 default route in /proc/net/route".to_string())
}

/// The system's IPv4 default gateway: of the routes to 0.0.0.0/0 through
/// a gateway, the one with the lowest route metric (the first on a tie).
#[cfg(windows)]
pub fn default_gateway() -> Result<Ipv4Addr, String> {
    let routes = crate::windows::ipv4_default_routes()
        .map_err(|e| format!("cannot read the routing table: {e}"))?;
    routes
        .iter()
        .fold(
            None,
            |best: Option<&crate::windows::DefaultRoute>, r| match best {
                Some(b) if b.metric <= r.metric => Some(b),
                _ => Some(r),
            },
        )
        .map(|r| r.gateway)
        .ok_or_else(|| "no IPv4 default route in the routing table".to_string())
}

/// The system's IPv4 default gateway: not found here.
#[cfg(not(any(target_os = "linux", windows)))]
pub fn default_gateway() -> Result<Ipv4Addr, String> {
    Err(
        "finding the default gateway is only implemented on Linux and Windows; \
         set natpmp_gateway"
            .into(),
    )
}

// ----- talking to the gateway -------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    // The kernel prints the gateway in host byte order; this text is a
    // little-endian machine's.
    #[cfg(target_endian = "little")]
    #[test]
    fn the_default_gateway_is_the_best_default_route() {
        let table = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t0000A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0
wg0\t00000000\t00000000\t0001\t0\t0\t50\t00000000\t0\t0\t0
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
wlan0\t00000000\t FE01A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
down0\t00000000\t0102A8C0\t0002\t0\t0\t1\t00000000\t0\t0\t0
broken\tzzzz
";
        // wg0 has no gateway, down0 is not up: eth0 (metric 100) wins
        // over wlan0 (600).
        assert_eq!(
            default_gateway_from_route_table(table),
            Some(Ipv4Addr::new(192, 168, 1, 1))
        );
        let only_lan = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";
        assert_eq!(default_gateway_from_route_table(only_lan), None);
        assert_eq!(default_gateway_from_route_table(""), None);
    }

    /// Under Wine, Windows' routing table is Linux's: the routing table API
    /// must find the gateway `/proc/net/route` names (seen as `Z:\proc`).
    #[cfg(windows)]
    #[test]
    fn windows_finds_the_gateway_linux_names_under_wine() {
        let found = default_gateway();
        match std::fs::read_to_string(r"Z:\proc\net\route") {
            Ok(text) => match default_gateway_from_route_table(&text) {
                Some(gw) => assert_eq!(found, Ok(gw)),
                None => assert!(found.is_err(), "{found:?}"),
            },
            // On Windows itself: whatever it is, it is a real address.
            Err(_) => {
                if let Ok(gw) = found {
                    assert!(!gw.is_unspecified());
                }
            }
        }
    }
}
