//! Miners as the gateway sees them: who they are, the directory snapshot they are picked from,
//! the request an attempt sends them and what comes back, before it is validated.
//!
//! These are the values the ports speak in; the Bittensor adapters own their wire forms.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Millis, Outcome};

/// One neuron of the subnet, as far as the gateway needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Miner {
    /// Neuron uid.
    pub uid: u16,
    /// SS58 hotkey.
    pub hotkey: String,
    /// Axon IP; `0.0.0.0` when the neuron serves no axon.
    pub ip: IpAddr,
    /// Axon port; 0 when it serves none.
    pub port: u16,
    /// Stake in TAO.
    #[serde(default)]
    pub stake: f64,
    /// Incentive in [0, 1], as the chain reports it.
    #[serde(default)]
    pub incentive: f64,
    /// What else the chain says about the neuron (absent for static and simulated miners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainInfo>,
}

/// The rest of a neuron's on-chain record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainInfo {
    /// Coldkey, SS58.
    pub coldkey: String,
    /// Consensus in [0, 1].
    pub consensus: f64,
    /// Dividends in [0, 1].
    pub dividends: f64,
    /// Whether it holds a validator permit.
    pub validator_permit: bool,
    /// Whether it is active.
    pub active: bool,
    /// Block of its last update.
    pub last_update: u64,
}

impl Miner {
    /// Whether the neuron has an axon one can call.
    pub fn is_serving(&self) -> bool {
        !self.ip.is_unspecified() && self.port != 0
    }
}

/// The miner directory at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinerSnapshot {
    /// Subnet.
    pub netuid: u16,
    /// Network name or URL.
    pub network: String,
    /// Every neuron.
    pub miners: Vec<Miner>,
    /// When the snapshot was taken.
    pub taken_at: Millis,
    /// The chain's best block when it was read, for snapshots read from the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<u64>,
}

impl MinerSnapshot {
    /// The neurons with a callable axon.
    pub fn serving(&self) -> impl Iterator<Item = &Miner> {
        self.miners.iter().filter(|m| m.is_serving())
    }

    /// Total stake in TAO.
    pub fn total_stake(&self) -> f64 {
        self.miners.iter().map(|m| m.stake).sum()
    }

    /// A copy without the miners whose hotkey `left_out` names.
    pub fn without(&self, left_out: impl Fn(&str) -> bool) -> Self {
        let mut copy = self.clone();
        copy.miners.retain(|m| !left_out(&m.hotkey));
        copy
    }
}

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
    pub btauth_digest: Arc<tokio::sync::OnceCell<String>>,
    /// The most bytes of `output_data` an answer may carry (the task's
    /// [`AnswerBudget`](super::AnswerBudget)); unbounded unless set.
    pub answer_bytes: usize,
}

/// Room for an answer's fields besides `output_data` (terminal infos, model name, a short
/// error message), on top of its budget.
pub const ANSWER_ENVELOPE_BYTES: usize = 16 * 1024;

impl SynapseRequest {
    /// A request for `task_type` with the base64 `input_data`.
    pub fn new(task_type: &'static str, input_data: Bytes, language: &'static str) -> Self {
        Self {
            task_type,
            input_data,
            language,
            btauth_digest: Arc::default(),
            answer_bytes: usize::MAX,
        }
    }

    /// The request, with answers bounded to `budget`.
    pub fn within(mut self, budget: &super::AnswerBudget) -> Self {
        self.answer_bytes = budget.output_bytes;
        self
    }

    /// The most bytes read from one answer (besides an echo of the input): the budget and its
    /// envelope, or `configured` (`MAX_RESPONSE_BYTES`) if lower.
    pub fn answer_limit(&self, configured: usize) -> usize {
        configured.min(self.answer_bytes.saturating_add(ANSWER_ENVELOPE_BYTES))
    }
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
    /// The answer's share of the process's answer memory (`MAX_ANSWER_MEMORY`), given back
    /// when the last copy of the reply is dropped.
    pub memory: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
}

impl MinerReply {
    /// A failed reply.
    pub fn failed(outcome: Outcome, latency: Duration, error: impl Into<String>) -> Self {
        Self {
            outcome,
            latency,
            body: None,
            error: Some(error.into()),
            memory: None,
        }
    }

    /// A valid HTTP answer, holding `memory`.
    pub fn answered(
        latency: Duration,
        body: SynapseAnswer,
        memory: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Self {
        Self {
            outcome: Outcome::Success,
            latency,
            body: Some(Arc::new(body)),
            error: None,
            memory: memory.map(Arc::new),
        }
    }
}
