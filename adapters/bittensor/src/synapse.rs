//! The subnet's `AudioTask` synapse on the wire: the full JSON body both sides send. The
//! request and the kept answer fields are domain values (`domain::SynapseRequest`,
//! `domain::SynapseAnswer`).

use serde::{Deserialize, Serialize};

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
