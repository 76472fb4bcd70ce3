//! How each queried miner fared in an attempt: its outcome, latency and scores.

use serde::{Deserialize, Serialize};

/// How one miner's answer turned out. Only `Success` answers are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A valid answer.
    Success,
    /// HTTP 200 with `error_message` set.
    MinerError,
    /// The answer arrived but failed validation (bad base64, not WAV, empty or non-UTF-8 text,
    /// unparsable or oversized body).
    InvalidAnswer,
    /// The answer passed the task's budget (bytes on the wire, characters of text, seconds of
    /// audio) and was cut off or refused unread.
    Oversized,
    /// No answer before the deadline.
    Timeout,
    /// The connection failed.
    Unavailable,
    /// 401: the miner did not accept our signature or nonce.
    Unauthorized,
    /// 403: the miner blacklists our hotkey (typically: not registered, or no validator permit).
    Blacklisted,
    /// 404: the miner does not serve this synapse (protocol or version mismatch).
    UnknownSynapse,
    /// 503: the miner refused on priority.
    Busy,
    /// Any other HTTP status (500 and the like).
    HttpError,
    /// Not waited for: enough valid answers were in before this miner answered.
    Cancelled,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::MinerError => "miner_error",
            Self::InvalidAnswer => "invalid_answer",
            Self::Oversized => "oversized",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Unauthorized => "unauthorized",
            Self::Blacklisted => "blacklisted",
            Self::UnknownSynapse => "unknown_synapse",
            Self::Busy => "busy",
            Self::HttpError => "http_error",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One queried miner and how its answer fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Miner uid.
    pub uid: u16,
    /// Miner hotkey (SS58).
    pub hotkey: String,
    /// Classification of its answer.
    pub outcome: Outcome,
    /// Milliseconds until the answer (or the failure) as measured by taogate.
    pub latency_ms: u64,
    /// Accuracy, for scored answers.
    pub accuracy: Option<f64>,
    /// Speed, for scored answers.
    pub speed: Option<f64>,
    /// Combined score, for scored answers.
    pub combined: Option<f64>,
    /// What went wrong, for the others.
    pub error: Option<String>,
    /// The measurements behind `accuracy` and `speed`, for scored answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<ScoreDetail>,
}

/// The sub-scores of one scored answer. Which fields are present depends on the service and
/// on what the accuracy was measured against (`basis`); see SCORING.md.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScoreDetail {
    /// What accuracy was measured against: `reference` (the configured reference endpoint),
    /// `consensus` (the other answers), `single` (one answer, nothing to compare with),
    /// `intelligibility` (TTS audio transcribed by the reference recognizer) or `signal`
    /// (TTS without a recognizer: a signal-quality score, not intelligibility).
    pub basis: String,
    /// Word error rate against the reference or the consensus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wer: Option<f64>,
    /// Character error rate (ja, zh, ko).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cer: Option<f64>,
    /// ROUGE-L F1 against the reference or the consensus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rouge_l: Option<f64>,
    /// ROUGE-1 F1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rouge_1: Option<f64>,
    /// ROUGE-2 F1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rouge_2: Option<f64>,
    /// Summary length over source length, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<f64>,
    /// Share of the source's most frequent content words the summary keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
    /// Share of the source reproduced in order (LCS over source length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied: Option<f64>,
    /// Share of repeated n-grams (word trigrams, character 4-grams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition: Option<f64>,
    /// Share of letters in the requested language's script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<f64>,
    /// TTS: audio duration over the duration expected for the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ratio: Option<f64>,
    /// TTS: signal level in dBFS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rms_dbfs: Option<f64>,
    /// TTS: share of clipped samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clipped: Option<f64>,
    /// TTS: mean sample value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc_offset: Option<f64>,
    /// TTS: sample rate of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    /// TTS: channels of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u16>,
    /// TTS with a recognizer: 1 − WER of its transcript against the input text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intelligibility: Option<f64>,
    /// Latency per unit of work: real-time factor (transcription), ms per input character
    /// (TTS, summarization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_rate: Option<f64>,
    /// How many of the other valid answers agree with this one (consensus only): within
    /// `scoring::AGREE_WER` word error of it (transcription) or at `scoring::ROUGE_FULL`
    /// ROUGE-L F1 or more (summarization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support: Option<u32>,
    /// Why the score is what it is: rejections, penalties, fallbacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}
