//! Wire views: the JSON shapes clients see, with the old proxy's field names. Built from domain
//! values here and nowhere else; the callback body is the same task view.

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Candidate, Millis, Task, TaskOutput};

/// RFC 3339 with milliseconds, UTC.
pub fn iso(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The answer to a submission.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubmitView {
    /// The new task's id.
    pub task_id: String,
    /// Always `pending`.
    pub status: String,
    /// A human-readable note.
    pub message: String,
    /// Seconds until the result is expected.
    pub estimated_completion_time: u64,
    /// `transcription | tts | summarization`.
    pub task_type: String,
    /// Lower-case language code.
    pub source_language: String,
    /// Priority class.
    pub priority: String,
}

/// One queried miner's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct CandidateView {
    /// Miner uid.
    pub uid: u16,
    /// Miner hotkey.
    pub hotkey: String,
    /// `success`, `timeout`, `miner_error`, …
    pub outcome: String,
    /// Measured latency.
    pub latency_ms: u64,
    /// Accuracy, when scored.
    pub accuracy: Option<f64>,
    /// Speed, when scored.
    pub speed: Option<f64>,
    /// Combined, when scored.
    pub combined: Option<f64>,
    /// The failure, when not scored.
    pub error: Option<String>,
    /// The sub-scores behind accuracy and speed, when scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<crate::domain::ScoreDetail>,
}

impl From<&Candidate> for CandidateView {
    fn from(c: &Candidate) -> Self {
        Self {
            uid: c.uid,
            hotkey: c.hotkey.clone(),
            outcome: c.outcome.as_str().to_owned(),
            latency_ms: c.latency_ms,
            accuracy: c.accuracy,
            speed: c.speed,
            combined: c.combined,
            error: c.error.clone(),
            scores: c.scores.clone(),
        }
    }
}

/// Text results up to this many bytes are carried inline in task views, list pages and
/// callbacks; longer ones are served at `output_url`. A list page of 100 tasks so stays far
/// below an AWS Lambda response's 6 MB.
pub const INLINE_OUTPUT_BYTES: usize = 32 * 1024;

/// Speech results up to this many bytes of WAV are carried as `output_data` (base64, about
/// 4 MiB) in the single-task view, as the old proxy did, beside `audio_url`; never in list
/// pages or callbacks. A Lambda response holds 6 MB.
pub const INLINE_AUDIO_BYTES: u64 = 3 * 1024 * 1024;

/// The chosen answer.
///
/// `output_data` is the old proxy's field: the output as the miner sent it, base64. It is
/// present for text results of at most [`INLINE_OUTPUT_BYTES`] (32 KiB of UTF-8); a longer
/// text omits it and gives `output_url` beside it. A speech result gives `audio_url`, and in
/// the single-task view also `output_data` (the WAV) when it is at most
/// [`INLINE_AUDIO_BYTES`]; list pages and callbacks never read blobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultView {
    /// The output as the miner sent it (base64): text results of at most 32 KiB, and in the
    /// single-task view speech results (the WAV) of at most 3 MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_data: Option<String>,
    /// Text output (transcription, summarization), when at most 32 KiB; longer ones are at
    /// `output_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_text: Option<String>,
    /// Where a text output longer than 32 KiB is served (`text/plain`), relative to the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_url: Option<String>,
    /// Size of a text output in bytes (UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<usize>,
    /// Where to fetch the audio output (TTS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_url: Option<String>,
    /// Model the miner reported.
    pub model_used: Option<String>,
    /// Seconds, measured by taogate.
    pub processing_time: f64,
    /// Accuracy in [0, 1].
    pub accuracy_score: f64,
    /// Speed in [0, 1].
    pub speed_score: f64,
    /// Combined score in [0, 1].
    pub combined_score: f64,
    /// Winning miner's uid.
    pub miner_uid: u16,
    /// Winning miner's hotkey.
    pub miner_hotkey: String,
    /// How much the valid answers agreed with this one, and how sure the gateway is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<crate::domain::Quorum>,
}

/// A task as the status API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    /// Id.
    pub task_id: String,
    /// `pending | processing | completed | failed`.
    pub status: String,
    /// Service.
    pub task_type: String,
    /// Language.
    pub source_language: String,
    /// Priority.
    pub priority: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once started.
    pub started_at: Option<String>,
    /// RFC 3339, once finished.
    pub completed_at: Option<String>,
    /// Attempts started.
    pub attempts: u32,
    /// The failure reason, or the last attempt's while retrying.
    pub error_message: Option<String>,
    /// The result's processing time (as the old proxy reported it).
    pub processing_time: Option<f64>,
    /// The result's accuracy.
    pub accuracy_score: Option<f64>,
    /// The result's speed.
    pub speed_score: Option<f64>,
    /// The chosen answer.
    pub result: Option<ResultView>,
    /// Every miner queried in the latest attempt.
    pub candidates: Vec<CandidateView>,
}

impl TaskView {
    /// Builds the view; `audio_url` is where an audio result is served.
    pub fn new(task: &Task, audio_url: Option<String>) -> Self {
        let result = task.result.as_ref().map(|r| {
            let (output_text, output_url, output_bytes) = match &r.output {
                TaskOutput::Text { text } if text.len() <= INLINE_OUTPUT_BYTES => {
                    (Some(text.clone()), None, Some(text.len()))
                }
                TaskOutput::Text { text } => (
                    None,
                    Some(format!("/api/v1/tasks/{}/output", task.id)),
                    Some(text.len()),
                ),
                TaskOutput::Audio { .. } => (None, None, None),
            };
            ResultView {
                output_data: output_text
                    .as_ref()
                    .map(|t| base64::engine::general_purpose::STANDARD.encode(t)),
                audio_url: if output_bytes.is_none() {
                    audio_url
                } else {
                    None
                },
                output_text,
                output_url,
                output_bytes,
                model_used: r.model_used.clone(),
                processing_time: r.processing_time,
                accuracy_score: r.accuracy_score,
                speed_score: r.speed_score,
                combined_score: r.combined_score,
                miner_uid: r.miner_uid,
                miner_hotkey: r.miner_hotkey.clone(),
                quorum: r.quorum.clone(),
            }
        });
        Self {
            task_id: task.id.to_string(),
            status: task.status.as_str().to_owned(),
            task_type: task.kind.as_str().to_owned(),
            source_language: task.language.code().to_owned(),
            priority: task.priority.as_str().to_owned(),
            created_at: iso(task.created_at),
            started_at: task.started_at.map(iso),
            completed_at: task.completed_at.map(iso),
            attempts: task.attempts,
            error_message: task.error_message.clone(),
            processing_time: result.as_ref().map(|r| r.processing_time),
            accuracy_score: result.as_ref().map(|r| r.accuracy_score),
            speed_score: result.as_ref().map(|r| r.speed_score),
            result,
            candidates: task.candidates.iter().map(CandidateView::from).collect(),
        }
    }

    /// The audio blob key of a completed TTS task.
    pub fn audio_key(task: &Task) -> Option<&str> {
        match task.result.as_ref().map(|r| &r.output) {
            Some(TaskOutput::Audio { blob_key, .. }) => Some(blob_key),
            _ => None,
        }
    }
}

/// Counts by status.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskCountsView {
    /// Pending.
    pub pending: u64,
    /// Processing.
    pub processing: u64,
    /// Completed.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
    /// All.
    pub total: u64,
}

/// The miner directory summary.
#[derive(Debug, Serialize, ToSchema)]
pub struct MinerDirectoryView {
    /// Subnet.
    pub netuid: u16,
    /// Network.
    pub network: String,
    /// Neurons.
    pub total_miners: usize,
    /// Neurons with a callable axon.
    pub serving_miners: usize,
    /// TAO.
    pub total_stake: f64,
    /// Seconds since the snapshot was taken.
    pub snapshot_age_s: f64,
    /// The chain block the snapshot was read at (absent for static and simulated miners).
    pub block: Option<u64>,
}

/// Health: the old proxy's fields first, then taogate's.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// `healthy`, or `degraded` when no miner is serving.
    pub status: String,
    /// When this was measured (RFC 3339).
    pub timestamp: String,
    /// Whether a miner snapshot is readable and has a serving miner.
    pub bittensor_connected: bool,
    /// Messages waiting or in flight, every priority together.
    pub queue_size: u64,
    /// Tasks pending.
    pub pending_tasks: u64,
    /// Tasks processing.
    pub processing_tasks: u64,
    /// Tasks completed.
    pub completed_tasks: u64,
    /// Tasks failed.
    pub failed_tasks: u64,
    /// Every task.
    pub total_tasks: u64,
    /// Why the service is degraded: tasks wait (using no attempt) until a miner serves again,
    /// at most `MAX_TASK_AGE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// taogate version.
    pub version: String,
    /// Messages waiting or in flight, per priority.
    pub queue_depth: std::collections::BTreeMap<String, u64>,
    /// Per priority: visible, in flight, dead-lettered.
    pub queues: std::collections::BTreeMap<String, crate::ports::QueueDepth>,
    /// Task counts.
    pub tasks: TaskCountsView,
    /// Miner directory.
    pub miners: MinerDirectoryView,
}

/// A serving miner, for validator integration (the old proxy's fields).
#[derive(Debug, Serialize, ToSchema)]
pub struct ServingMinerView {
    /// Uid.
    pub uid: u16,
    /// Hotkey.
    pub hotkey: String,
    /// Axon IP.
    pub ip: String,
    /// Axon port.
    pub port: u16,
    /// The address miners are reached at (the axon's; the old proxy's field).
    pub external_ip: String,
    /// The port miners are reached at.
    pub external_port: u16,
    /// Stake in TAO.
    pub stake: f64,
}

/// A waiting task, for validator integration.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingTaskView {
    /// Id.
    pub task_id: String,
    /// Service.
    pub task_type: String,
    /// Source language.
    pub language: String,
    /// Priority.
    pub priority: String,
    /// When it was accepted (RFC 3339; the old proxy's name).
    pub submitted_at: String,
    /// The same instant, under taogate's name.
    pub created_at: String,
}

/// The subnet as the old proxy summarized it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NetworkInfoView {
    /// Subnet.
    pub netuid: u16,
    /// Network.
    pub network: String,
    /// Neurons.
    pub total_miners: usize,
    /// Neurons with a callable axon.
    pub available_miners: usize,
}

/// Task counts as the old proxy reported them to validators.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueStatsView {
    /// Tasks pending.
    pub pending_count: u64,
    /// Tasks processing.
    pub processing_count: u64,
    /// Tasks completed.
    pub completed_count: u64,
    /// Tasks failed.
    pub failed_count: u64,
    /// Every task.
    pub total_tasks: u64,
    /// When this was measured (RFC 3339).
    pub timestamp: String,
}

/// What a validator operator needs to integrate with the gateway: the old proxy's fields,
/// then taogate's.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationView {
    /// Subnet summary.
    pub network_info: NetworkInfoView,
    /// Serving miners.
    pub miners: Vec<ServingMinerView>,
    /// Up to ten oldest pending tasks.
    pub pending_tasks: Vec<PendingTaskView>,
    /// Task counts.
    pub queue_stats: QueueStatsView,
    /// Network and snapshot.
    pub network: MinerDirectoryView,
    /// The gateway's own hotkey, which miners see as the caller.
    pub gateway_hotkey: String,
    /// Queue depth per priority.
    pub queues: std::collections::BTreeMap<String, crate::ports::QueueDepth>,
}

impl PendingTaskView {
    /// From a task.
    pub fn new(task: &Task) -> Self {
        Self {
            task_id: task.id.to_string(),
            task_type: task.kind.as_str().to_owned(),
            language: task.language.code().to_owned(),
            priority: task.priority.as_str().to_owned(),
            submitted_at: iso(task.created_at),
            created_at: iso(task.created_at),
        }
    }
}
