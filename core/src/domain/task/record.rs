//! What a task holds: its input, and its result with how much the answers agreed.

use super::*;

/// What was measured about an uploaded audio file when it was probed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInfo {
    /// Container format: `wav`, `flac`, `mp3` or `ogg`.
    pub format: String,
    /// Duration in seconds.
    pub duration_s: f64,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
}

/// A task's input. Audio lives in the blob store; the task holds its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskInput {
    /// Audio to transcribe.
    Audio {
        /// Blob key of the uploaded bytes.
        blob_key: String,
        /// The uploaded file's name, as the client sent it.
        filename: Option<String>,
        /// Size in bytes.
        size_bytes: u64,
        /// What probing found.
        info: AudioInfo,
    },
    /// Text to speak or summarize.
    Text {
        /// The trimmed text.
        text: String,
    },
}

impl TaskInput {
    /// Its size in bytes: the audio file's, or the text's in UTF-8.
    pub fn size(&self) -> u64 {
        match self {
            Self::Audio { size_bytes, .. } => *size_bytes,
            Self::Text { text } => text.len() as u64,
        }
    }
}

/// The chosen answer's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskOutput {
    /// Text (transcription, summarization).
    Text {
        /// The text.
        text: String,
    },
    /// Audio (TTS), stored as a blob and served by URL.
    Audio {
        /// Blob key of the WAV file.
        blob_key: String,
        /// Its size in bytes.
        size_bytes: u64,
    },
}

/// The best answer of a completed task and how it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The payload.
    pub output: TaskOutput,
    /// The model the miner says it used.
    pub model_used: Option<String>,
    /// Seconds from request to answer, measured by taogate.
    pub processing_time: f64,
    /// Accuracy in `[0, 1]`.
    pub accuracy_score: f64,
    /// Speed in `[0, 1]`.
    pub speed_score: f64,
    /// `ACCURACY_WEIGHT·accuracy + SPEED_WEIGHT·speed`.
    pub combined_score: f64,
    /// The winning miner's uid.
    pub miner_uid: u16,
    /// The winning miner's hotkey (SS58).
    pub miner_hotkey: String,
    /// How far the valid answers agreed with the chosen one (absent in results stored before
    /// it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<Quorum>,
}

/// How much the valid answers supported the chosen one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quorum {
    /// Valid answers weighed.
    pub valid_answers: u32,
    /// Of them, how many agree with the chosen one, itself included (consensus); 1 when a
    /// reference or a recognizer measured them instead.
    pub supporting: u32,
    /// `high`: a reference or recognizer measured the answers, or a strict majority of at
    /// least two valid answers agreed; `low`: otherwise.
    pub confidence: Confidence,
    /// Miners asked beyond the first selection because the answers had no majority.
    pub escalated: u32,
    /// Why the confidence is low.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How sure the gateway is of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Measured against a reference, or agreed by a majority.
    High,
    /// A lone answer, answers without a majority, or speech judged by its signal only.
    Low,
}
