//! Which network addresses the gateway may reach: callbacks and miners must be at public
//! addresses unless an operator's allowlist (`CALLBACK_ALLOWLIST`, `MINER_ALLOWLIST`) opens a
//! network, so that the gateway cannot be aimed at its own infrastructure.

use std::net::IpAddr;

use ipnet::IpNet;
use url::Url;

use super::InvalidValue;

/// Longest accepted callback URL.
const MAX_URL_LEN: usize = 2048;

/// IPv4 blocks of the IANA special-purpose registry that are not globally reachable, plus
/// multicast and the reserved class E. (192.31.196.0/24, 192.52.193.0/24 and 192.175.48.0/24
/// are special-purpose but globally reachable, so they stay open.)
const REFUSED_V4: [&str; 16] = [
    "0.0.0.0/8",          // "this network"
    "10.0.0.0/8",         // private
    "100.64.0.0/10",      // shared address space (carrier-grade NAT)
    "127.0.0.0/8",        // loopback
    "169.254.0.0/16",     // link local
    "172.16.0.0/12",      // private
    "192.0.0.0/24",       // IETF protocol assignments
    "192.0.2.0/24",       // documentation (TEST-NET-1)
    "192.88.99.0/24",     // deprecated 6to4 relay anycast
    "192.168.0.0/16",     // private
    "198.18.0.0/15",      // benchmarking
    "198.51.100.0/24",    // documentation (TEST-NET-2)
    "203.0.113.0/24",     // documentation (TEST-NET-3)
    "224.0.0.0/4",        // multicast
    "240.0.0.0/4",        // reserved
    "255.255.255.255/32", // limited broadcast
];

/// IPv6 blocks that are not globally reachable. The blocks that carry an IPv4 address
/// (IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96`, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) are judged by that address instead, before this table.
const REFUSED_V6: [&str; 14] = [
    "::/128",         // unspecified
    "::1/128",        // loopback
    "64:ff9b:1::/48", // local-use IPv4/IPv6 translation
    "100::/64",       // discard-only
    "100:0:0:1::/64", // dummy prefix
    "2001::/32",      // Teredo (tunnels to an obfuscated IPv4 address)
    "2001:2::/48",    // benchmarking
    "2001:10::/28",   // deprecated ORCHID
    "2001:db8::/32",  // documentation
    "3fff::/20",      // documentation
    "5f00::/16",      // segment routing SIDs
    "fc00::/7",       // unique local
    "fe80::/10",      // link-local unicast
    "fec0::/10",      // deprecated site-local
];

/// Inside 2001::/23 (IETF protocol assignments, not globally reachable as a whole), the blocks
/// that are. (The PCP and TURN anycast addresses, 192.0.0.9, 192.0.0.10, 2001:1::1 and
/// 2001:1::2, are globally reachable too but stay refused: no callback or miner lives there.)
const REACHABLE_IN_2001_23: [&str; 4] = [
    "2001:3::/32",     // AMT
    "2001:4:112::/48", // AS112-v6
    "2001:20::/28",    // ORCHIDv2
    "2001:30::/28",    // drone remote ID
];

fn nets(raw: &[&str]) -> Vec<IpNet> {
    raw.iter().filter_map(|n| n.parse().ok()).collect()
}

static REFUSED: std::sync::LazyLock<(Vec<IpNet>, Vec<IpNet>, Vec<IpNet>)> =
    std::sync::LazyLock::new(|| {
        (
            nets(&REFUSED_V4),
            nets(&REFUSED_V6),
            nets(&REACHABLE_IN_2001_23),
        )
    });

/// The IPv4 address an IPv6 address carries, for the forms that route to it: IPv4-mapped,
/// IPv4-compatible (deprecated, but a stack may still route it), NAT64's well-known prefix
/// (RFC 6052) and 6to4 (RFC 3056).
pub fn embedded_v4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let tail = |hi: u16, lo: u16| {
        std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    // ::/96 except :: and ::1, which are the unspecified and loopback addresses themselves.
    if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
        return Some(tail(s[6], s[7]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(tail(s[1], s[2]));
    }
    None
}

/// Whether `ip` may be reached: globally reachable (not in any special-purpose block that is
/// not), or inside an allow-listed network. An IPv6 address that carries an IPv4 address gets
/// the verdict of that address.
pub fn ip_allowed(ip: IpAddr, allowlist: &[IpNet]) -> bool {
    if allowlist.iter().any(|net| net.contains(&ip)) {
        return true;
    }
    let (v4_refused, v6_refused, reachable_2001) = &*REFUSED;
    match ip {
        IpAddr::V4(_) => !v4_refused.iter().any(|net| net.contains(&ip)),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return ip_allowed(IpAddr::V4(v4), allowlist);
            }
            if v6_refused.iter().any(|net| net.contains(&ip)) || v6.is_multicast() {
                return false;
            }
            let in_2001_23 = (v6.segments()[0] == 0x2001) && v6.segments()[1] < 0x0200;
            !in_2001_23 || reachable_2001.iter().any(|net| net.contains(&ip))
        }
    }
}

/// Checks a callback URL at submission.
pub fn parse_callback_url(raw: &str, allowlist: &[IpNet]) -> Result<Url, InvalidValue> {
    if raw.len() > MAX_URL_LEN {
        return Err(InvalidValue(format!(
            "callback_url is longer than {MAX_URL_LEN} characters"
        )));
    }
    let url = Url::parse(raw.trim())
        .map_err(|e| InvalidValue(format!("callback_url is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InvalidValue("callback_url must use http or https".into()));
    }
    let refused =
        || InvalidValue("callback_url points to a private, loopback or link-local address".into());
    match url.host() {
        None => return Err(InvalidValue("callback_url has no host".into())),
        Some(url::Host::Ipv4(ip)) if !ip_allowed(IpAddr::V4(ip), allowlist) => {
            return Err(refused());
        }
        Some(url::Host::Ipv6(ip)) if !ip_allowed(IpAddr::V6(ip), allowlist) => {
            return Err(refused());
        }
        Some(url::Host::Domain(d))
            if (d.eq_ignore_ascii_case("localhost")
                || d.to_ascii_lowercase().ends_with(".localhost"))
                && !ip_allowed(IpAddr::from([127, 0, 0, 1]), allowlist) =>
        {
            return Err(refused());
        }
        _ => {}
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_destinations_are_refused_and_public_ones_accepted() {
        for bad in [
            "http://127.0.0.1/x",
            "http://10.1.2.3/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/x",
            "http://[fe80::1]/x",
            "http://[::ffff:192.168.0.1]/x",
            "http://localhost:8080/x",
            "http://0.0.0.0/",
            "ftp://example.com/x",
            "not a url",
        ] {
            assert!(parse_callback_url(bad, &[]).is_err(), "{bad} was accepted");
        }
        assert!(parse_callback_url("https://example.com/hook", &[]).is_ok());
        assert!(parse_callback_url("http://1.2.3.7:9000/hook", &[]).is_ok());
        assert!(parse_callback_url("http://203.0.113.7:9000/hook", &[]).is_err());
    }

    #[test]
    fn an_allowlist_opens_chosen_networks_only() {
        let allow: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        assert!(parse_callback_url("http://127.0.0.1:9/x", &allow).is_ok());
        assert!(parse_callback_url("http://localhost:9/x", &allow).is_ok());
        assert!(parse_callback_url("http://10.0.0.1/x", &allow).is_err());
    }

    /// One or more addresses per block of the IANA special-purpose registries (IPv4 and IPv6),
    /// plus multicast, class E and ordinary public addresses, with the verdict each must get.
    #[test]
    fn every_special_purpose_block_gets_its_verdict() {
        let table: &[(&str, bool)] = &[
            // IPv4
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("10.0.0.1", false),
            ("100.64.0.1", false),
            ("100.127.255.254", false),
            ("100.128.0.1", true),
            ("127.0.0.1", false),
            ("127.255.255.254", false),
            ("169.254.169.254", false),
            ("172.16.0.1", false),
            ("172.31.255.254", false),
            ("172.32.0.1", true),
            ("192.0.0.1", false),
            ("192.0.0.9", false),
            ("192.0.0.170", false),
            ("192.0.2.1", false),
            ("192.31.196.1", true),
            ("192.52.193.1", true),
            ("192.88.99.1", false),
            ("192.168.1.1", false),
            ("192.175.48.1", true),
            ("198.18.0.1", false),
            ("198.19.255.254", false),
            ("198.20.0.1", true),
            ("198.51.100.1", false),
            ("203.0.113.1", false),
            ("224.0.0.1", false),
            ("239.255.255.250", false),
            ("240.0.0.1", false),
            ("255.255.255.255", false),
            ("1.2.3.4", true),
            ("8.8.8.8", true),
            ("93.184.215.14", true),
            // IPv6
            ("::", false),
            ("::1", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("::10.0.0.1", false),
            ("::8.8.8.8", true),
            ("64:ff9b::10.1.2.3", false),
            ("64:ff9b::8.8.8.8", true),
            ("64:ff9b:1::1", false),
            ("100::1", false),
            ("100:0:0:1::1", false),
            ("2001::1", false),
            ("2001:1::1", false),
            ("2001:2::1", false),
            ("2001:3::1", true),
            ("2001:4:112::1", true),
            ("2001:10::1", false),
            ("2001:20::1", true),
            ("2001:30::1", true),
            ("2001:db8::1", false),
            ("2002:0a00:0001::1", false),
            ("2002:c0a8:0101::1", false),
            ("2002:0808:0808::1", true),
            ("2620:4f:8000::1", true),
            ("3fff::1", false),
            ("5f00::1", false),
            ("fc00::1", false),
            ("fd12:3456::1", false),
            ("fe80::1", false),
            ("fec0::1", false),
            ("ff02::1", false),
            ("2606:4700:4700::1111", true),
            ("2a00:1450:4001::1", true),
        ];
        for (raw, expected) in table {
            let ip: IpAddr = raw.parse().unwrap();
            assert_eq!(ip_allowed(ip, &[]), *expected, "{raw}");
        }
        // An allowlist opens exactly what it names.
        let allow: Vec<IpNet> = vec![
            "fec0::/10".parse().unwrap(),
            "198.18.0.0/15".parse().unwrap(),
        ];
        assert!(ip_allowed("fec0::1".parse().unwrap(), &allow));
        assert!(ip_allowed("198.18.3.4".parse().unwrap(), &allow));
        assert!(!ip_allowed("fc00::1".parse().unwrap(), &allow));
    }

    proptest::proptest! {
        /// Every IPv6 form that carries an IPv4 address (mapped, compatible, NAT64, 6to4) gets
        /// the verdict of the address it carries.
        #[test]
        fn an_embedded_ipv4_address_decides_its_ipv6_forms(raw in proptest::prelude::any::<u32>()) {
            let v4 = std::net::Ipv4Addr::from(raw);
            let [a, b, c, d] = v4.octets();
            let hi = u16::from_be_bytes([a, b]);
            let lo = u16::from_be_bytes([c, d]);
            let verdict = ip_allowed(IpAddr::V4(v4), &[]);
            let forms = [
                v4.to_ipv6_mapped(),
                std::net::Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
                std::net::Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
            ];
            for v6 in forms {
                proptest::prop_assert_eq!(ip_allowed(IpAddr::V6(v6), &[]), verdict, "{} as {}", v4, v6);
            }
            // The compatible form, but for :: and ::1 themselves (0.0.0.0 and 0.0.0.1 are
            // refused either way).
            let compatible = std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0, hi, lo);
            proptest::prop_assert_eq!(ip_allowed(IpAddr::V6(compatible), &[]), verdict);
        }
    }
}
