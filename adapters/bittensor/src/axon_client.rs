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

use bytes::Bytes;

use super::hotkey::Hotkey;
use super::transport::{AnswerMemory, Answered, MinerReplyError, read_answer, to_reply};
use crate::domain::Miner;
use crate::domain::{MinerReply, SynapseRequest};
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
    memory: AnswerMemory,
}

impl AxonClient {
    /// A client signing as `hotkey`.
    pub fn new(hotkey: Arc<Hotkey>, config: AxonClientConfig) -> anyhow::Result<Self> {
        let http = super::transport::http_client()?;
        Ok(Self {
            http,
            hotkey,
            config: Arc::new(config),
            memory: AnswerMemory::unbounded(),
        })
    }

    /// The client, holding at most `memory` of answers at once across its queries.
    pub fn with_memory(mut self, memory: AnswerMemory) -> Self {
        self.memory = memory;
        self
    }

    /// Queries `miner` with a given nonce and request uuid instead of fresh ones: a retry under
    /// the same identity, or a replay (which an axon refuses with 401).
    pub async fn query_stamped(
        &self,
        miner: &Miner,
        request: &SynapseRequest,
        deadline: Duration,
        stamp: Stamp,
    ) -> MinerReply {
        let started = Instant::now();
        let result =
            tokio::time::timeout(deadline, self.send(miner, request, deadline, stamp)).await;
        to_reply(
            result,
            started.elapsed(),
            request.answer_limit(self.config.max_response_bytes),
        )
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
        stamp: Stamp,
    ) -> Result<Answered, MinerReplyError> {
        let timeout_s = (deadline.as_secs_f64() * 1000.0).round() / 1000.0;
        let Stamp { nonce, uuid } = stamp;
        let message = signing_message(
            nonce,
            self.hotkey.ss58(),
            &miner.hotkey,
            &uuid,
            EMPTY_BODY_HASH,
        );
        let signature = self.hotkey.sign_hex(message.as_bytes());
        let parts = self.body_parts(miner, request, timeout_s, nonce, &uuid, &signature);
        let (body, total) = super::transport::streamed(parts);
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
        // An axon echoes the whole request: its size, plus the answer's own limit.
        let limit = request.answer_limit(self.config.max_response_bytes);
        read_answer(response, total + limit, limit, &self.memory).await
    }
}

impl MinerClient for AxonClient {
    async fn query(
        &self,
        miner: &Miner,
        request: &SynapseRequest,
        deadline: Duration,
    ) -> MinerReply {
        self.query_stamped(miner, request, deadline, Stamp::fresh())
            .await
    }
}

/// The identity of one request: its nonce and uuid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// Nanoseconds since the epoch, strictly increasing within the process.
    pub nonce: u64,
    /// A fresh uuid.
    pub uuid: String,
}

impl Stamp {
    /// A new stamp: the current time in nanoseconds (bumped past the last one issued) and a new
    /// uuid.
    pub fn fresh() -> Self {
        Self {
            nonce: super::transport::next_nonce(),
            uuid: uuid::Uuid::new_v4().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Outcome;
    use sha3::Digest;

    #[test]
    fn the_empty_body_hash_is_sha3_of_nothing() {
        assert_eq!(hex::encode(sha3::Sha3_256::digest(b"")), EMPTY_BODY_HASH);
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
            chain: None,
        };
        let request = SynapseRequest::new("tts", Bytes::from_static(b"aGVsbG8="), "en");
        let parts = client.body_parts(&miner, &request, 12.0, 42, "u-1", "0xsig");
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let body: crate::SynapseBody = serde_json::from_slice(&joined).unwrap();
        assert_eq!(body.input_data.as_deref(), Some("aGVsbG8="));
        assert_eq!(body.name.as_deref(), Some("AudioTask"));
        assert_eq!(body.dendrite.unwrap().nonce, Some(42));
        assert_eq!(body.axon.unwrap().port, Some(9000));
        assert_eq!(body.language.as_deref(), Some("en"));
    }

    /// Miner `uid` listening on loopback `port`.
    fn loopback(uid: u16, port: u16) -> Miner {
        Miner {
            uid,
            hotkey: "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty".into(),
            ip: "127.0.0.1".parse().unwrap(),
            port,
            stake: 1.0,
            incentive: 0.0,
            chain: None,
        }
    }

    /// A miner on loopback answering 200 with a body that never ends: a chunk of `chunk` bytes
    /// every `every`.
    async fn endless_miner(chunk: usize, every: std::time::Duration) -> Miner {
        use futures::StreamExt as _;
        let app = axum::Router::new().fallback(move || async move {
            let head = futures::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(b"{\"output_data\": \""))
            });
            let body = futures::stream::unfold((), move |()| async move {
                tokio::time::sleep(every).await;
                Some((Ok(Bytes::from(vec![b'A'; chunk])), ()))
            });
            axum::body::Body::from_stream(head.chain(body))
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        loopback(1, port)
    }

    fn client() -> AxonClient {
        let key = Arc::new(Hotkey::from_secret(&crate::config::Secret::new("//Alice")).unwrap());
        AxonClient::new(
            key,
            AxonClientConfig {
                synapse_name: "AudioTask".into(),
                dendrite_version: 10_005_000,
                dendrite_ip: "0.0.0.0".into(),
                max_response_bytes: 64 * 1024 * 1024,
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn an_answer_past_the_task_budget_is_cut_off_while_it_streams() {
        let miner = endless_miner(64 * 1024, std::time::Duration::from_millis(1)).await;
        let task = crate::domain::Task::new(
            crate::domain::ServiceKind::Summarization,
            crate::domain::Priority::Normal,
            crate::domain::Language::parse("en").unwrap(),
            crate::domain::TaskInput::Text {
                text: "a short source".into(),
            },
            None,
            0,
        );
        let budget = crate::domain::AnswerBudget::for_task(&task);
        let request =
            SynapseRequest::new("summarization", Bytes::from_static(b"aGk="), "en").within(&budget);
        let reply = client()
            .query(&miner, &request, std::time::Duration::from_secs(30))
            .await;
        assert_eq!(reply.outcome, Outcome::Oversized, "{reply:?}");
        let limit = request.answer_limit(64 * 1024 * 1024);
        assert!(
            limit < 32 * 1024,
            "a 14-character source allows a small answer: {limit}"
        );
        assert!(reply.error.unwrap().contains(&limit.to_string()));
    }

    #[tokio::test]
    async fn an_endless_drip_ends_at_the_deadline() {
        let miner = endless_miner(1, std::time::Duration::from_millis(50)).await;
        let request = SynapseRequest::new("summarization", Bytes::from_static(b"aGk="), "en");
        let reply = client()
            .query(&miner, &request, std::time::Duration::from_millis(800))
            .await;
        assert_eq!(reply.outcome, Outcome::Timeout, "{reply:?}");
    }

    /// A miner on loopback answering 200 with an echo of `echo` bytes of input and `output`
    /// bytes of output.
    async fn echoing_miner(echo: usize, output: usize) -> Miner {
        let body = format!(
            "{{\"input_data\":\"{}\",\"output_data\":\"{}\"}}",
            "A".repeat(echo),
            "B".repeat(output)
        );
        let app = axum::Router::new().fallback(move |request: Bytes| {
            let body = body.clone();
            // The request is read in full, as an axon does, before the answer.
            async move {
                drop(request);
                body
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        loopback(2, port)
    }

    #[tokio::test]
    async fn an_answer_holds_its_output_against_the_process_budget_until_dropped() {
        let memory = AnswerMemory::new(8 * 1024 * 1024);
        let client = client().with_memory(memory.clone());
        // As an axon does, the miners echo the request's 1 MiB input.
        let input = Bytes::from(vec![b'A'; 1024 * 1024]);
        let request = SynapseRequest::new("tts", input, "en");
        // A small answer needs no share.
        let small = echoing_miner(1024 * 1024, 100 * 1024).await;
        let reply = client
            .query(&small, &request, std::time::Duration::from_secs(10))
            .await;
        assert_eq!(reply.outcome, Outcome::Success, "{reply:?}");
        assert_eq!(memory.available(), 8 * 1024 * 1024);
        // A large one reserves its limit, then keeps only its output's share: the echo was
        // read but not kept.
        let large = echoing_miner(1024 * 1024, 2 * 1024 * 1024).await;
        let request = request.within(&crate::domain::AnswerBudget {
            kind: crate::domain::ServiceKind::Tts,
            output_bytes: 3 * 1024 * 1024,
            text_chars: 0,
            audio_seconds: 10.0,
        });
        let reply = client
            .query(&large, &request, std::time::Duration::from_secs(10))
            .await;
        assert_eq!(reply.outcome, Outcome::Success, "{reply:?}");
        let held = 8 * 1024 * 1024 - memory.available();
        assert!(
            (2 * 1024 * 1024..=2 * 1024 * 1024 + 2048).contains(&held),
            "{held} bytes held"
        );
        drop(reply);
        assert_eq!(memory.available(), 8 * 1024 * 1024);
    }

    #[tokio::test]
    async fn with_the_budget_full_a_large_answer_waits_and_ends_at_its_deadline() {
        let memory = AnswerMemory::new(1024 * 1024);
        let client = client().with_memory(memory.clone());
        let miner = echoing_miner(0, 2 * 1024 * 1024).await;
        // Its limit (MAX_RESPONSE_BYTES here) does not fit the budget: it waits for room.
        let request = SynapseRequest::new("tts", Bytes::from_static(b"aGk="), "en");
        let reply = client
            .query(&miner, &request, std::time::Duration::from_millis(800))
            .await;
        assert_eq!(reply.outcome, Outcome::Timeout, "{reply:?}");
        assert_eq!(
            memory.available(),
            1024 * 1024,
            "a cut-off answer holds nothing"
        );
    }
}
