//! The dendrite side of the axon protocol: how a request to a miner is built, signed, sent and
//! classified.
//!
//! Protocol facts (from the Python SDK, checked against real 10.x axons):
//! - route `POST http://{ip}:{port}/{synapse_name}`;
//! - header names use underscores (`bt_header_dendrite_nonce`); a proxy that drops underscore
//!   headers breaks the protocol;
//! - the signature is sr25519 over `"{nonce}.{dendrite_hotkey}.{axon_hotkey}.{uuid}.{body_hash}"`,
//!   `nonce` being nanoseconds since the epoch and `uuid` fresh per request;
//! - `AudioTask` declares no `required_hash_fields`, so the body hash is SHA3-256 of the empty
//!   string;
//! - every required synapse field needs a `bt_header_input_obj_<field>` header (base64 of the JSON
//!   of an empty value), or the axon answers 500;
//! - the `timeout` header widens the axon's nonce window, so it must be the real deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::keys::Hotkey;
use super::miners::Miner;
use super::synapse::{MinerReply, SynapseAnswer, SynapseRequest};
use crate::domain::Outcome;
use crate::ports::MinerClient;

/// SHA3-256 of the empty string: the body hash of a synapse with no required hash fields.
pub const EMPTY_BODY_HASH: &str =
    "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a";

/// base64 of `""`: the `input_obj` header value for a required `str` field.
const EMPTY_STR_JSON_B64: &str = "IiI=";

/// The bytes a dendrite signs.
pub fn signing_message(
    nonce: u64,
    dendrite: &str,
    axon: &str,
    uuid: &str,
    body_hash: &str,
) -> String {
    format!("{nonce}.{dendrite}.{axon}.{uuid}.{body_hash}")
}

/// How the client presents itself.
#[derive(Debug, Clone)]
pub struct AxonClientConfig {
    /// Synapse class name (`AudioTask`).
    pub synapse_name: String,
    /// SDK version integer sent in `bt_header_dendrite_version`.
    pub dendrite_version: u64,
    /// The IP reported in `bt_header_dendrite_ip` (informational).
    pub dendrite_ip: String,
    /// The most bytes read from one answer.
    pub max_response_bytes: usize,
}

/// A dendrite: signs and sends `AudioTask` requests.
#[derive(Debug, Clone)]
pub struct AxonClient {
    http: reqwest::Client,
    hotkey: Arc<Hotkey>,
    config: Arc<AxonClientConfig>,
}

impl AxonClient {
    /// A client signing as `hotkey`.
    pub fn new(hotkey: Arc<Hotkey>, config: AxonClientConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            hotkey,
            config: Arc::new(config),
        })
    }

    fn nonce() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default()
    }

    /// Builds the body as three parts so the (possibly 60 MB) base64 input is shared, not copied.
    fn body_parts(
        &self,
        miner: &Miner,
        request: &SynapseRequest,
        timeout_s: f64,
        nonce: u64,
        uuid: &str,
        signature: &str,
    ) -> [Bytes; 3] {
        let terminal_null = serde_json::json!({
            "status_code": null, "status_message": null, "process_time": null,
        });
        let mut dendrite = terminal_null.clone();
        let mut axon = terminal_null;
        if let (Some(d), Some(a)) = (dendrite.as_object_mut(), axon.as_object_mut()) {
            d.insert("ip".into(), self.config.dendrite_ip.clone().into());
            d.insert("port".into(), serde_json::Value::Null);
            d.insert("version".into(), self.config.dendrite_version.into());
            d.insert("nonce".into(), nonce.into());
            d.insert("uuid".into(), uuid.into());
            d.insert("hotkey".into(), self.hotkey.ss58().into());
            d.insert("signature".into(), signature.into());
            a.insert("ip".into(), miner.ip.to_string().into());
            a.insert("port".into(), miner.port.into());
            a.insert("version".into(), serde_json::Value::Null);
            a.insert("nonce".into(), serde_json::Value::Null);
            a.insert("uuid".into(), serde_json::Value::Null);
            a.insert("hotkey".into(), miner.hotkey.clone().into());
            a.insert("signature".into(), serde_json::Value::Null);
        }
        let head = serde_json::json!({
            "name": self.config.synapse_name,
            "timeout": timeout_s,
            "total_size": 0,
            "header_size": 0,
            "dendrite": dendrite,
            "axon": axon,
            "computed_body_hash": "",
            "task_type": request.task_type,
        });
        let mut prefix = head.to_string();
        prefix.pop(); // reopen the object
        prefix.push_str(",\"input_data\":\"");
        let suffix = format!(
            "\",\"language\":{},\"output_data\":null,\"processing_time\":null,\"pipeline_model\":null,\"error_message\":null}}",
            serde_json::Value::from(request.language)
        );
        [
            Bytes::from(prefix),
            request.input_data.clone(),
            Bytes::from(suffix),
        ]
    }

    async fn send(
        &self,
        miner: &Miner,
        request: &SynapseRequest,
        deadline: Duration,
    ) -> Result<Answered, MinerReplyError> {
        let timeout_s = (deadline.as_secs_f64() * 1000.0).round() / 1000.0;
        let nonce = Self::nonce();
        let uuid = uuid::Uuid::new_v4().to_string();
        let message = signing_message(
            nonce,
            self.hotkey.ss58(),
            &miner.hotkey,
            &uuid,
            EMPTY_BODY_HASH,
        );
        let signature = self.hotkey.sign_hex(message.as_bytes());
        let parts = self.body_parts(miner, request, timeout_s, nonce, &uuid, &signature);
        let total: usize = parts.iter().map(Bytes::len).sum();
        let body = reqwest::Body::wrap_stream(futures::stream::iter(
            parts.into_iter().map(Ok::<_, std::io::Error>),
        ));
        let url = format!(
            "http://{}/{}",
            std::net::SocketAddr::new(miner.ip, miner.port),
            self.config.synapse_name
        );
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("content-length", total)
            .header("name", &self.config.synapse_name)
            .header("timeout", format!("{timeout_s}"))
            .header("bt_header_axon_ip", miner.ip.to_string())
            .header("bt_header_axon_port", miner.port.to_string())
            .header("bt_header_axon_hotkey", &miner.hotkey)
            .header("bt_header_dendrite_ip", &self.config.dendrite_ip)
            .header(
                "bt_header_dendrite_version",
                self.config.dendrite_version.to_string(),
            )
            .header("bt_header_dendrite_nonce", nonce.to_string())
            .header("bt_header_dendrite_uuid", &uuid)
            .header("bt_header_dendrite_hotkey", self.hotkey.ss58())
            .header("bt_header_dendrite_signature", &signature)
            .header("bt_header_input_obj_input_data", EMPTY_STR_JSON_B64)
            .header("computed_body_hash", EMPTY_BODY_HASH)
            .header("header_size", "0")
            .header("total_size", total.to_string())
            .body(body)
            .send()
            .await
            .map_err(MinerReplyError::Transport)?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            // Refusals are small ({"message": …}); keep only the start.
            let mut head = BytesMut::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(MinerReplyError::Transport)?;
                head.extend_from_slice(
                    &chunk[..chunk
                        .len()
                        .min(ERROR_BODY_BYTES - head.len().min(ERROR_BODY_BYTES))],
                );
                if head.len() >= ERROR_BODY_BYTES {
                    break;
                }
            }
            return Ok(Answered::Refused(status.as_u16(), head.freeze()));
        }
        // The answer echoes our input: allow for it on top of what we keep.
        let allowed = total + self.config.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|len| len as usize > allowed)
        {
            return Err(MinerReplyError::TooLarge);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(8);
        let parser = tokio::task::spawn_blocking(move || {
            let reader = std::io::BufReader::with_capacity(
                64 * 1024,
                ChunkReader {
                    rx,
                    current: Bytes::new(),
                },
            );
            serde_json::from_reader::<_, SynapseAnswer>(reader)
        });
        let mut received = 0usize;
        let mut stream = response.bytes_stream();
        let mut outcome = Ok(());
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    outcome = Err(MinerReplyError::Transport(e));
                    break;
                }
            };
            received += chunk.len();
            if received > allowed {
                outcome = Err(MinerReplyError::TooLarge);
                break;
            }
            // The parser stopped early (the body is not JSON): stop reading.
            if tx.send(chunk).is_err() {
                break;
            }
        }
        drop(tx);
        let parsed = parser.await.map_err(|_| MinerReplyError::TooLarge)?;
        outcome?;
        Ok(Answered::Parsed(parsed.map_err(|e| e.to_string())))
    }
}

/// The most of a refusal's body kept for its message.
const ERROR_BODY_BYTES: usize = 16 * 1024;

/// Feeds the chunks of a streamed body to a blocking reader.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(chunk) => self.current = chunk,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// An answer as read off the wire.
enum Answered {
    /// HTTP 200, parsed (or why it did not parse).
    Parsed(Result<SynapseAnswer, String>),
    /// Another status, with the start of its body.
    Refused(u16, Bytes),
}

enum MinerReplyError {
    Transport(reqwest::Error),
    TooLarge,
}

impl MinerClient for AxonClient {
    async fn query(
        &self,
        miner: &Miner,
        request: &SynapseRequest,
        deadline: Duration,
    ) -> MinerReply {
        let started = Instant::now();
        let result = tokio::time::timeout(deadline, self.send(miner, request, deadline)).await;
        let latency = started.elapsed();
        let limit = self.config.max_response_bytes;
        match result {
            Err(_) => {
                MinerReply::failed(Outcome::Timeout, latency, "no answer before the deadline")
            }
            Ok(Err(MinerReplyError::TooLarge)) => MinerReply::failed(
                Outcome::InvalidAnswer,
                latency,
                format!("answer larger than {limit} bytes"),
            ),
            Ok(Err(MinerReplyError::Transport(e))) if e.is_timeout() => {
                MinerReply::failed(Outcome::Timeout, latency, "no answer before the deadline")
            }
            Ok(Err(MinerReplyError::Transport(e))) => MinerReply::failed(
                Outcome::Unavailable,
                latency,
                format!("miner unreachable: {}", error_chain(&e)),
            ),
            Ok(Ok(Answered::Parsed(Ok(answer)))) => MinerReply {
                outcome: Outcome::Success,
                latency,
                body: Some(Arc::new(answer)),
                error: None,
            },
            Ok(Ok(Answered::Parsed(Err(e)))) => MinerReply::failed(
                Outcome::InvalidAnswer,
                latency,
                format!("answer is not a synapse body: {e}"),
            ),
            Ok(Ok(Answered::Refused(status, body))) => classify(status, &body, latency),
        }
    }
}

/// Classifies an HTTP answer the way the Python dendrite does, with messages for operators.
fn classify(status: u16, body: &[u8], latency: Duration) -> MinerReply {
    let message = || {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
    };
    match status {
        200 => match serde_json::from_slice::<SynapseAnswer>(body) {
            Ok(parsed) => MinerReply {
                outcome: Outcome::Success,
                latency,
                body: Some(Arc::new(parsed)),
                error: None,
            },
            Err(e) => MinerReply::failed(
                Outcome::InvalidAnswer,
                latency,
                format!("answer is not a synapse body: {e}"),
            ),
        },
        401 => MinerReply::failed(
            Outcome::Unauthorized,
            latency,
            format!(
                "401 signature or nonce refused (stale metagraph or clock skew?): {}",
                message()
            ),
        ),
        403 => MinerReply::failed(
            Outcome::Blacklisted,
            latency,
            format!(
                "403 blacklisted: the miner refuses this hotkey (not registered on the subnet, or no validator permit): {}",
                message()
            ),
        ),
        404 => MinerReply::failed(
            Outcome::UnknownSynapse,
            latency,
            format!(
                "404 the miner does not serve this synapse (name or version mismatch): {}",
                message()
            ),
        ),
        503 => MinerReply::failed(Outcome::Busy, latency, format!("503 busy: {}", message())),
        other => MinerReply::failed(
            Outcome::HttpError,
            latency,
            format!("HTTP {other}: {}", message()),
        ),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha3::Digest;

    #[test]
    fn the_empty_body_hash_is_sha3_of_nothing() {
        assert_eq!(hex::encode(sha3::Sha3_256::digest(b"")), EMPTY_BODY_HASH);
    }

    #[test]
    fn statuses_map_to_outcomes_an_operator_can_read() {
        let d = Duration::from_millis(5);
        assert_eq!(
            classify(403, br#"{"message":"Forbidden"}"#, d).outcome,
            Outcome::Blacklisted
        );
        assert_eq!(classify(404, b"", d).outcome, Outcome::UnknownSynapse);
        assert_eq!(classify(401, b"", d).outcome, Outcome::Unauthorized);
        assert_eq!(classify(500, b"", d).outcome, Outcome::HttpError);
        assert_eq!(
            classify(200, b"{not json", d).outcome,
            Outcome::InvalidAnswer
        );
        assert_eq!(
            classify(200, br#"{"output_data":"aGk="}"#, d).outcome,
            Outcome::Success
        );
    }

    #[test]
    fn the_request_body_is_valid_json_with_the_shared_input() {
        let key = Arc::new(Hotkey::from_secret(&crate::config::Secret::new("//Alice")).unwrap());
        let client = AxonClient::new(
            key,
            AxonClientConfig {
                synapse_name: "AudioTask".into(),
                dendrite_version: 10_005_000,
                dendrite_ip: "0.0.0.0".into(),
                max_response_bytes: 1024,
            },
        )
        .unwrap();
        let miner = Miner {
            uid: 3,
            hotkey: "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty".into(),
            ip: "127.0.0.1".parse().unwrap(),
            port: 9000,
            stake: 1.0,
            incentive: 0.0,
        };
        let request = SynapseRequest {
            task_type: "tts",
            input_data: Bytes::from_static(b"aGVsbG8="),
            language: "en",
        };
        let parts = client.body_parts(&miner, &request, 12.0, 42, "u-1", "0xsig");
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let body: crate::bittensor::SynapseBody = serde_json::from_slice(&joined).unwrap();
        assert_eq!(body.input_data.as_deref(), Some("aGVsbG8="));
        assert_eq!(body.name.as_deref(), Some("AudioTask"));
        assert_eq!(body.dendrite.unwrap().nonce, Some(42));
        assert_eq!(body.axon.unwrap().port, Some(9000));
        assert_eq!(body.language.as_deref(), Some("en"));
    }
}
