//! Callbacks: POSTing a task's terminal state to the URL its submitter gave.
//!
//! The gateway must not become a way to reach internal addresses. A callback URL must be http(s);
//! at submission an IP-literal or `localhost` host is refused when it is loopback, private,
//! link-local or otherwise non-public; at delivery every address the name resolves to is checked
//! the same way and the connection is pinned to the checked addresses, so DNS cannot swap in an
//! internal address afterwards. `CALLBACK_ALLOWLIST` (CIDRs) lifts the rule for chosen networks.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

use crate::domain::InvalidValue;

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

/// Delivers callbacks with bounded retries.
#[derive(Debug, Clone)]
pub struct CallbackSender {
    allowlist: Vec<IpNet>,
    max_attempts: u32,
    timeout: Duration,
}

/// Why a callback was not delivered (logged, never fails the task).
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The URL or its resolved addresses are not allowed.
    #[error("callback refused: {0}")]
    Refused(String),
    /// Every attempt failed.
    #[error("callback failed after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

impl CallbackSender {
    /// A sender honouring `allowlist`, trying at most `max_attempts` times.
    pub fn new(allowlist: Vec<IpNet>, max_attempts: u32) -> Self {
        Self {
            allowlist,
            max_attempts: max_attempts.max(1),
            timeout: Duration::from_secs(5),
        }
    }

    /// POSTs `body` as JSON to `raw_url`.
    pub async fn deliver(
        &self,
        raw_url: &str,
        body: &serde_json::Value,
    ) -> Result<u32, CallbackError> {
        let url = parse_callback_url(raw_url, &self.allowlist)
            .map_err(|e| CallbackError::Refused(e.0))?;
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| CallbackError::Refused(format!("cannot resolve {host}: {e}")))?
            .collect();
        if addrs.is_empty() || addrs.iter().any(|a| !ip_allowed(a.ip(), &self.allowlist)) {
            return Err(CallbackError::Refused(format!(
                "{host} resolves to a private, loopback or link-local address"
            )));
        }
        let client = reqwest::Client::builder()
            .resolve_to_addrs(&host, &addrs)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .build()
            .map_err(|e| CallbackError::Refused(e.to_string()))?;
        let mut last = String::new();
        for attempt in 1..=self.max_attempts {
            match client.post(url.clone()).json(body).send().await {
                Ok(r) if r.status().is_success() => return Ok(attempt),
                Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
                Err(e) => last = e.without_url().to_string(),
            }
            if attempt < self.max_attempts {
                tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(attempt - 1))).await;
            }
        }
        Err(CallbackError::Exhausted {
            attempts: self.max_attempts,
            last,
        })
    }
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
