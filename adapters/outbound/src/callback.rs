//! The HTTP callback notifier: POSTs a task's terminal state to the URL its submitter gave.
//!
//! The gateway must not become a way to reach internal addresses. At submission the URL was
//! checked by [`parse_callback_url`]; at delivery every address the name resolves to is checked
//! the same way and the connection is pinned to the checked addresses, so DNS cannot swap in an
//! internal address afterwards. `CALLBACK_ALLOWLIST` (CIDRs) lifts the rule for chosen networks.
//!
//! Every delivery is bounded in time: each try (resolving the name, checking its addresses,
//! connecting, sending the request and reading the response's status) ends within
//! [`CALLBACK_TRY_TIMEOUT`], and the whole delivery, every try and back-off, ends by the
//! deadline its caller gives. A receiver that accepts the connection and never answers costs
//! one delivery its deadline, no more.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use tokio::time::Instant;
use url::Url;

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

/// Longest one try of a callback may take, from resolving the receiver's name to reading the
/// response's status (connecting and sending included): 5 s. A try still waiting then has
/// failed, and the next one (if the delivery's deadline leaves time) starts after its back-off.
pub const CALLBACK_TRY_TIMEOUT: Duration = Duration::from_secs(5);

/// Delivers callbacks with bounded retries, each try within [`CALLBACK_TRY_TIMEOUT`].
#[derive(Debug, Clone)]
pub struct HttpCallbacks {
    allowlist: Vec<IpNet>,
    max_attempts: u32,
    try_timeout: Duration,
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
    /// The delivery's deadline came before its attempts were all made.
    #[error("callback not delivered by its deadline, after {attempts} attempts: {last}")]
    OutOfTime {
        /// Attempts made (the last one may have been cut short by the deadline).
        attempts: u32,
        /// The last failure (empty if no attempt could be made).
        last: String,
    },
}

/// Why one try failed.
enum TryError {
    /// Trying again cannot help: the name does not resolve, or only to forbidden addresses.
    Refused(String),
    /// This try failed; another may succeed.
    Failed(String),
}

impl CallbackNotifier for HttpCallbacks {
    type Error = CallbackError;

    async fn deliver(
        &self,
        url: &str,
        body: &serde_json::Value,
        delivery_id: &str,
        secrets: &[String],
        deadline: Instant,
    ) -> Result<u32, CallbackError> {
        self.post(url, body, delivery_id, secrets, deadline).await
    }
}

impl HttpCallbacks {
    /// A notifier honouring the allowlist, trying at most `max_attempts` times, each try within
    /// [`CALLBACK_TRY_TIMEOUT`].
    pub fn new(settings: &CallbackSettings) -> Self {
        Self {
            allowlist: settings.allowlist.clone(),
            max_attempts: settings.max_attempts.max(1),
            try_timeout: CALLBACK_TRY_TIMEOUT,
        }
    }

    /// The same notifier with each try bounded by `timeout` instead (tests use short ones).
    #[must_use]
    pub fn with_try_timeout(mut self, timeout: Duration) -> Self {
        self.try_timeout = timeout;
        self
    }

    /// POSTs `body` as JSON to `raw_url`, retrying with a back-off until a try is acknowledged,
    /// `max_attempts` were made or `deadline` comes.
    async fn post(
        &self,
        raw_url: &str,
        body: &serde_json::Value,
        delivery_id: &str,
        secrets: &[String],
        deadline: Instant,
    ) -> Result<u32, CallbackError> {
        let body = bytes::Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        let url = parse_callback_url(raw_url, &self.allowlist)
            .map_err(|e| CallbackError::Refused(e.0))?;
        let mut last = String::new();
        let mut made = 0;
        while made < self.max_attempts {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            made += 1;
            let limit = self.try_timeout.min(left);
            let one = self.try_once(&url, &body, delivery_id, secrets);
            match tokio::time::timeout(limit, one).await {
                Ok(Ok(())) => return Ok(made),
                Ok(Err(TryError::Refused(why))) => return Err(CallbackError::Refused(why)),
                Ok(Err(TryError::Failed(why))) => last = why,
                Err(_) => last = format!("no answer within {} ms", limit.as_millis()),
            }
            if made < self.max_attempts {
                let pause =
                    Duration::from_millis(250).saturating_mul(2u32.saturating_pow(made - 1));
                if Instant::now() + pause >= deadline {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
        }
        if made < self.max_attempts {
            return Err(CallbackError::OutOfTime {
                attempts: made,
                last,
            });
        }
        Err(CallbackError::Exhausted {
            attempts: made,
            last,
        })
    }

    /// One try: resolves the host, checks every address, connects to those only, sends the
    /// request (a fresh timestamp and signature: receivers refuse old timestamps) and reads the
    /// response's status. The caller bounds it in time.
    async fn try_once(
        &self,
        url: &Url,
        body: &bytes::Bytes,
        delivery_id: &str,
        secrets: &[String],
    ) -> Result<(), TryError> {
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| TryError::Refused(format!("cannot resolve {host}: {e}")))?
            .collect();
        if addrs.is_empty() || addrs.iter().any(|a| !ip_allowed(a.ip(), &self.allowlist)) {
            return Err(TryError::Refused(format!(
                "{host} resolves to a private, loopback or link-local address"
            )));
        }
        let client = reqwest::Client::builder()
            .resolve_to_addrs(&host, &addrs)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TryError::Refused(e.to_string()))?;
        let timestamp = chrono::Utc::now().timestamp();
        let mut request = client
            .post(url.clone())
            .header(DELIVERY_ID_HEADER, delivery_id)
            .header(TIMESTAMP_HEADER, timestamp)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        let signature = webhook_signature(secrets, delivery_id, timestamp, body);
        if !signature.is_empty() {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(TryError::Failed(format!("HTTP {}", r.status().as_u16()))),
            Err(e) => Err(TryError::Failed(e.without_url().to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn loopback(max_attempts: u32, try_timeout: Duration) -> HttpCallbacks {
        HttpCallbacks::new(&CallbackSettings {
            allowlist: vec!["127.0.0.0/8".parse().unwrap()],
            max_attempts,
        })
        .with_try_timeout(try_timeout)
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn a_try_whose_connection_stalls_ends_at_its_timeout() {
        // A listener that never accepts, its queue of one filled: further connections wait
        // for the handshake (or, queued, for an answer that never comes).
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            let connect = tokio::net::TcpStream::connect(addr);
            if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(100), connect).await
            {
                fillers.push(stream);
            }
        }
        let notifier = loopback(1, Duration::from_millis(300));
        let started = Instant::now();
        let url = format!("http://{addr}/hook");
        let outcome = notifier
            .deliver(&url, &serde_json::json!({}), "msg_1", &[], far())
            .await;
        let took = started.elapsed();
        let Err(CallbackError::Exhausted { attempts: 1, last }) = outcome else {
            panic!("{outcome:?}");
        };
        assert!(last.contains("no answer within 300 ms"), "{last}");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
        drop((listener, fillers));
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_costs_a_delivery_its_deadline_and_no_more() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        // Twenty tries of 400 ms with their back-offs would take minutes; the deadline is 1 s.
        let notifier = loopback(20, Duration::from_millis(400));
        let deadline = Instant::now() + Duration::from_secs(1);
        let url = format!("http://{addr}/hook");
        let outcome = notifier
            .deliver(&url, &serde_json::json!({}), "msg_2", &[], deadline)
            .await;
        assert!(
            Instant::now() < deadline + Duration::from_secs(1),
            "ended at its deadline"
        );
        let Err(CallbackError::OutOfTime { attempts, last }) = outcome else {
            panic!("{outcome:?}");
        };
        assert!((1..20).contains(&attempts), "{attempts}");
        assert!(last.contains("no answer within"), "{last}");
        assert!(accepted.load(Ordering::SeqCst) >= 1, "it was really tried");

        // A deadline already passed: no try at all.
        let outcome = notifier
            .deliver(&url, &serde_json::json!({}), "msg_2", &[], Instant::now())
            .await;
        assert!(
            matches!(outcome, Err(CallbackError::OutOfTime { attempts: 0, .. })),
            "{outcome:?}"
        );
    }
}
