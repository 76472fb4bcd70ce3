//! The HTTP callback notifier: POSTs a task's terminal state to the URL its submitter gave.
//!
//! The gateway must not become a way to reach internal addresses. At submission the URL was
//! checked by [`parse_callback_url`]; at delivery every address the name resolves to is checked
//! the same way and the connection is pinned to the checked addresses, so DNS cannot swap in an
//! internal address afterwards. `CALLBACK_ALLOWLIST` (CIDRs) lifts the rule for chosen networks.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::CallbackSettings;
use crate::domain::tenant::webhook_signature;
use crate::domain::{ip_allowed, parse_callback_url};
use crate::ports::CallbackNotifier;

/// The header carrying the delivery id, as Standard Webhooks names it.
pub const DELIVERY_ID_HEADER: &str = "webhook-id";
/// The header carrying the try's Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The header carrying the signatures, `v1,<base64>` each, space-separated.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Delivers callbacks with bounded retries.
#[derive(Debug, Clone)]
pub struct HttpCallbacks {
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

impl CallbackNotifier for HttpCallbacks {
    type Error = CallbackError;

    async fn deliver(
        &self,
        url: &str,
        body: &serde_json::Value,
        delivery_id: &str,
        secrets: &[String],
    ) -> Result<u32, CallbackError> {
        self.post(url, body, delivery_id, secrets).await
    }
}

impl HttpCallbacks {
    /// A notifier honouring the allowlist, trying at most `max_attempts` times.
    pub fn new(settings: &CallbackSettings) -> Self {
        Self {
            allowlist: settings.allowlist.clone(),
            max_attempts: settings.max_attempts.max(1),
            timeout: Duration::from_secs(5),
        }
    }

    /// POSTs `body` as JSON to `raw_url`.
    async fn post(
        &self,
        raw_url: &str,
        body: &serde_json::Value,
        delivery_id: &str,
        secrets: &[String],
    ) -> Result<u32, CallbackError> {
        let body = bytes::Bytes::from(serde_json::to_vec(body).unwrap_or_default());
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
            // A fresh timestamp and signature per try: receivers refuse old timestamps.
            let timestamp = chrono::Utc::now().timestamp();
            let mut request = client
                .post(url.clone())
                .header(DELIVERY_ID_HEADER, delivery_id)
                .header(TIMESTAMP_HEADER, timestamp)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            let signature = webhook_signature(secrets, delivery_id, timestamp, &body);
            if !signature.is_empty() {
                request = request.header(SIGNATURE_HEADER, signature);
            }
            match request.send().await {
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
