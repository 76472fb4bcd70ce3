//! The subnet's `AudioTask` synapse: what is sent and what comes back.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::domain::Outcome;

/// One attempt's request, shared by every miner queried: the base64 input is built once and
/// referenced, never copied per miner.
#[derive(Debug, Clone)]
pub struct SynapseRequest {
    /// `transcription | tts | summarization`.
    pub task_type: &'static str,
    /// Base64 of the audio bytes or of the UTF-8 text.
    pub input_data: Bytes,
    /// The API's `source_language`.
    pub language: &'static str,
    /// The SHA-256 of the `btauth/1` body, which is the same for every miner: hashed once per
    /// attempt, on the first query that needs it.
    pub(super) btauth_digest: Arc<tokio::sync::OnceCell<String>>,
}

impl SynapseRequest {
    /// A request for `task_type` with the base64 `input_data`.
    pub fn new(task_type: &'static str, input_data: Bytes, language: &'static str) -> Self {
        Self {
            task_type,
            input_data,
            language,
            btauth_digest: Arc::default(),
        }
    }
}

/// The axon/dendrite terminal info blocks of a synapse body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TerminalInfo {
    /// Status code set by the receiving side.
    pub status_code: Option<i64>,
    /// Status message.
    pub status_message: Option<String>,
    /// Processing time claimed.
    pub process_time: Option<f64>,
    /// IP address.
    pub ip: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// SDK version integer.
    pub version: Option<u64>,
    /// Nanosecond nonce.
    pub nonce: Option<u64>,
    /// Request uuid.
    pub uuid: Option<String>,
    /// SS58 hotkey.
    pub hotkey: Option<String>,
    /// `0x`-hex signature.
    pub signature: Option<String>,
}

/// The full JSON body of an `AudioTask` synapse, as both sides send it. Unknown keys are ignored,
/// as the Python axon ignores them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SynapseBody {
    /// Synapse class name.
    #[serde(default)]
    pub name: Option<String>,
    /// Seconds the caller waits.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Body size hint.
    #[serde(default)]
    pub total_size: Option<u64>,
    /// Header size hint.
    #[serde(default)]
    pub header_size: Option<u64>,
    /// Caller info.
    #[serde(default)]
    pub dendrite: Option<TerminalInfo>,
    /// Callee info.
    #[serde(default)]
    pub axon: Option<TerminalInfo>,
    /// Body hash (empty in bodies; carried in the header).
    #[serde(default)]
    pub computed_body_hash: Option<String>,
    /// `transcription | tts | summarization`.
    #[serde(default)]
    pub task_type: Option<String>,
    /// Base64 input.
    #[serde(default)]
    pub input_data: Option<String>,
    /// Language code.
    #[serde(default)]
    pub language: Option<String>,
    /// Base64 output.
    #[serde(default)]
    pub output_data: Option<String>,
    /// The miner's own timing claim (not trusted).
    #[serde(default)]
    pub processing_time: Option<f64>,
    /// The model the miner says it used.
    #[serde(default)]
    pub pipeline_model: Option<String>,
    /// Set when the miner failed.
    #[serde(default)]
    pub error_message: Option<String>,
}

/// The fields of a miner's answer the gateway keeps. An axon answers with the whole synapse,
/// echoing `input_data` (up to 67 MB of base64 for a 50 MB upload); parsing into this type skips
/// every other field without storing it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct SynapseAnswer {
    /// Base64 output.
    #[serde(default)]
    pub output_data: Option<String>,
    /// The miner's own timing claim (not trusted).
    #[serde(default)]
    pub processing_time: Option<f64>,
    /// The model the miner says it used.
    #[serde(default)]
    pub pipeline_model: Option<String>,
    /// Set when the miner failed.
    #[serde(default)]
    pub error_message: Option<String>,
}

/// What came back from one miner, before its content is validated.
#[derive(Debug, Clone)]
pub struct MinerReply {
    /// The transport-level classification (`Success` means HTTP 200 with a parsable body).
    pub outcome: Outcome,
    /// Time from sending to the end of the answer, measured here.
    pub latency: Duration,
    /// The parsed answer, for HTTP 200.
    pub body: Option<Arc<SynapseAnswer>>,
    /// What went wrong otherwise, in words an operator understands.
    pub error: Option<String>,
}

impl MinerReply {
    /// A failed reply.
    pub fn failed(outcome: Outcome, latency: Duration, error: impl Into<String>) -> Self {
        Self {
            outcome,
            latency,
            body: None,
            error: Some(error.into()),
        }
    }
}
