//! The `btauth/1` miner client: the task fields as a plain JSON body, signed with the headers of
//! [`super::btauth`], sent to `http://{ip}:{port}{MINER_PATH}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::btauth::sign_hashed;
use super::hotkey::Hotkey;
use super::transport::{
    AnswerMemory, Answered, MinerReplyError, next_nonce, read_answer, to_reply,
};
use crate::domain::Miner;
use crate::domain::{MinerReply, SynapseRequest};
use crate::ports::MinerClient;

/// A client signing `btauth/1` requests as one hotkey.
#[derive(Debug, Clone)]
pub struct BtauthClient {
    http: reqwest::Client,
    hotkey: Arc<Hotkey>,
    path: Arc<str>,
    max_response_bytes: usize,
    memory: AnswerMemory,
}

impl BtauthClient {
    /// A client posting to `path` (e.g. `/AudioTask`) and reading at most `max_response_bytes`.
    pub fn new(hotkey: Arc<Hotkey>, path: &str, max_response_bytes: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(path.starts_with('/'), "MINER_PATH must start with '/'");
        let http = super::transport::http_client()?;
        Ok(Self {
            http,
            hotkey,
            path: path.into(),
            max_response_bytes,
            memory: AnswerMemory::unbounded(),
        })
    }

    /// The client, holding at most `memory` of answers at once across its queries.
    pub fn with_memory(mut self, memory: AnswerMemory) -> Self {
        self.memory = memory;
        self
    }

    /// The JSON body `{"task_type", "input_data", "language"}` in three parts, sharing the input.
    fn body_parts(request: &SynapseRequest) -> [Bytes; 3] {
        let prefix = format!(
            "{{\"task_type\":{},\"input_data\":\"",
            serde_json::Value::from(request.task_type)
        );
        let suffix = format!(
            "\",\"language\":{}}}",
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
    ) -> Result<Answered, MinerReplyError> {
        let parts = Self::body_parts(request);
        let body_sha256 = request
            .btauth_digest
            .get_or_try_init(|| {
                // Tens of MB of audio: hash off the async threads.
                let parts = parts.clone();
                async move {
                    tokio::task::spawn_blocking(move || {
                        let mut digest = Sha256::new();
                        for part in &parts {
                            digest.update(part);
                        }
                        hex::encode(digest.finalize())
                    })
                    .await
                }
            })
            .await
            .map_err(|_| MinerReplyError::Internal)?;
        let (body, total) = super::transport::streamed(parts);
        let headers = sign_hashed(
            &self.hotkey,
            "POST",
            &self.path,
            body_sha256,
            &miner.hotkey,
            next_nonce(),
        );
        let url = format!(
            "http://{}{}",
            std::net::SocketAddr::new(miner.ip, miner.port),
            self.path
        );
        let mut builder = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("content-length", total);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }

        let response = builder
            .body(body)
            .send()
            .await
            .map_err(MinerReplyError::Transport)?;
        let limit = request.answer_limit(self.max_response_bytes);
        read_answer(response, limit, limit, &self.memory).await
    }
}

impl MinerClient for BtauthClient {
    async fn query(
        &self,
        miner: &Miner,
        request: &SynapseRequest,
        deadline: Duration,
    ) -> MinerReply {
        let started = Instant::now();
        let result = tokio::time::timeout(deadline, self.send(miner, request)).await;
        to_reply(
            result,
            started.elapsed(),
            request.answer_limit(self.max_response_bytes),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_task_fields_as_json() {
        let request = SynapseRequest::new("summarization", Bytes::from_static(b"aGVsbG8="), "en");
        let joined: Vec<u8> = BtauthClient::body_parts(&request)
            .iter()
            .flat_map(|p| p.iter().copied())
            .collect();
        let body: serde_json::Value = serde_json::from_slice(&joined).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"task_type": "summarization", "input_data": "aGVsbG8=", "language": "en"})
        );
    }
}
