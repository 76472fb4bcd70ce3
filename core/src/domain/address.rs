//! Which network addresses the gateway may reach: callbacks and miners must be at public
//! addresses unless an operator's allowlist (`CALLBACK_ALLOWLIST`, `MINER_ALLOWLIST`) opens a
//! network, so that the gateway cannot be aimed at its own infrastructure.

use std::net::IpAddr;

use ipnet::IpNet;
use url::Url;

use super::InvalidValue;

/// Longest accepted callback URL.
const MAX_URL_LEN: usize = 2048;

/// Whether `ip` may be reached: public, or inside an allow-listed network.
pub fn ip_allowed(ip: IpAddr, allowlist: &[IpNet]) -> bool {
    if allowlist.iter().any(|net| net.contains(&ip)) {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xC0) == 64) // 100.64.0.0/10 carrier-grade NAT
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)) // 192.0.0.0/24 protocol assignments
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return ip_allowed(IpAddr::V4(v4), allowlist);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80) // link-local
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
        assert!(parse_callback_url("http://203.0.113.7:9000/hook", &[]).is_ok());
    }

    #[test]
    fn an_allowlist_opens_chosen_networks_only() {
        let allow: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        assert!(parse_callback_url("http://127.0.0.1:9/x", &allow).is_ok());
        assert!(parse_callback_url("http://localhost:9/x", &allow).is_ok());
        assert!(parse_callback_url("http://10.0.0.1/x", &allow).is_err());
    }
}
