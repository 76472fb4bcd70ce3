//! The task record and its lifecycle.
//!
//! `pending → processing → completed | failed`. Every transition is applied by a store as a
//! conditional write whose condition is written next to the transition here, so that the embedded
//! and the AWS stores enforce the same rules.

use serde::{Deserialize, Serialize};

use super::{Candidate, Language, Millis, Priority, ServiceKind, TaskId};

/// Where a task is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Accepted and queued.
    Pending,
    /// A worker holds a lease on it (or held one that expired, pending a retake).
    Processing,
    /// Finished with a result.
    Completed,
    /// Finished without one, after its last attempt.
    Failed,
}

impl TaskStatus {
    /// All statuses, in lifecycle order.
    pub const ALL: [TaskStatus; 4] = [
        Self::Pending,
        Self::Processing,
        Self::Completed,
        Self::Failed,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Parses a wire name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether no transition leaves this status.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

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

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Identifier.
    pub id: TaskId,
    /// The submitting principal. Empty until access control exists; stored from the start so
    /// that adding it needs no migration.
    pub owner: String,
    /// Service.
    pub kind: ServiceKind,
    /// Lifecycle state.
    pub status: TaskStatus,
    /// Priority class.
    pub priority: Priority,
    /// Source language.
    pub language: Language,
    /// When it was accepted.
    pub created_at: Millis,
    /// When the first attempt started.
    pub started_at: Option<Millis>,
    /// When it reached a terminal state.
    pub completed_at: Option<Millis>,
    /// Attempts started so far.
    pub attempts: u32,
    /// Until when the current attempt's worker holds the task.
    pub lease_until: Option<Millis>,
    /// Who holds the current attempt when it is not a worker: the digest of the lease token
    /// handed to an external validator ([`lease_token_digest`]). A worker's attempt has none, so
    /// no lease token can end it; the token itself is never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_holder: Option<String>,
    /// Why the last attempt failed (retrying), or why the task failed.
    pub error_message: Option<String>,
    /// Where to POST the terminal state.
    pub callback_url: Option<String>,
    /// The input.
    pub input: TaskInput,
    /// The chosen answer, once completed.
    pub result: Option<TaskResult>,
    /// Every queried miner of the latest attempt.
    pub candidates: Vec<Candidate>,
    /// When the sweeper last sent it a new message, believing its message lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeued_at: Option<Millis>,
    /// The callback owed since it finished, if a callback URL was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<super::Notice>,
}

impl Task {
    /// A new pending task with a fresh id.
    pub fn new(
        kind: ServiceKind,
        priority: Priority,
        language: Language,
        input: TaskInput,
        callback_url: Option<String>,
        now: Millis,
    ) -> Self {
        Self::with_id(
            TaskId::new(),
            kind,
            priority,
            language,
            input,
            callback_url,
            now,
        )
    }

    /// A new pending task with the id `id` (chosen first when the input is stored under it).
    pub fn with_id(
        id: TaskId,
        kind: ServiceKind,
        priority: Priority,
        language: Language,
        input: TaskInput,
        callback_url: Option<String>,
        now: Millis,
    ) -> Self {
        Self {
            id,
            owner: String::new(),
            kind,
            status: TaskStatus::Pending,
            priority,
            language,
            created_at: now,
            started_at: None,
            completed_at: None,
            attempts: 0,
            lease_until: None,
            lease_holder: None,
            error_message: None,
            callback_url,
            input,
            result: None,
            candidates: Vec::new(),
            requeued_at: None,
            notice: None,
        }
    }

    /// Whether a worker may start an attempt now: the task is pending, or it is processing
    /// under a lease that has run out (its worker died or gave the attempt up).
    pub fn claimable(&self, now: Millis) -> bool {
        match self.status {
            TaskStatus::Pending => true,
            TaskStatus::Processing => self.lease_until.is_none_or(|until| until <= now),
            TaskStatus::Completed | TaskStatus::Failed => false,
        }
    }
}

/// How an attempt ended, as written back to the task.
#[derive(Debug, Clone)]
pub enum AttemptEnd {
    /// A best answer was found: `processing → completed`.
    Completed {
        /// The best answer.
        result: TaskResult,
        /// Every queried miner.
        candidates: Vec<Candidate>,
    },
    /// The attempt failed and another will follow; the task stays `processing` with its lease
    /// released so the next delivery can claim it.
    Retry {
        /// Why, for the user.
        reason: String,
        /// Every queried miner.
        candidates: Vec<Candidate>,
    },
    /// The attempt was cut short by its worker's own deadline (a Lambda invocation ending): it
    /// does not count, so the task stays `processing` with its lease released and the attempt
    /// count it had before the claim.
    Interrupted,
    /// The last attempt failed: `→ failed`.
    Failed {
        /// Why, for the user.
        reason: String,
        /// Every queried miner.
        candidates: Vec<Candidate>,
    },
}

/// The `(status, attempts)` a conditional write must still find for a transition to apply.
pub type Expected = (TaskStatus, u32);

impl Task {
    /// Starts an attempt in memory if the task is claimable: `processing`, one more attempt, a
    /// lease until `now + lease`. Returns what the store must still find to write it, or the
    /// claim's outcome when there is nothing to start.
    pub fn begin_attempt(
        &mut self,
        now: Millis,
        lease: std::time::Duration,
    ) -> Result<Expected, ClaimOutcome> {
        self.begin_attempt_as(now, lease, None)
    }

    /// [`Self::begin_attempt`] for `holder`: `None` for a worker, the digest of a lease token
    /// for an external validator.
    pub fn begin_attempt_as(
        &mut self,
        now: Millis,
        lease: std::time::Duration,
        holder: Option<String>,
    ) -> Result<Expected, ClaimOutcome> {
        if self.status.is_terminal() {
            return Err(ClaimOutcome::Finished(Box::new(self.clone())));
        }
        if !self.claimable(now) {
            return Err(ClaimOutcome::Leased(self.lease_until.unwrap_or(now)));
        }
        let expected = (self.status, self.attempts);
        self.status = TaskStatus::Processing;
        self.attempts += 1;
        self.started_at.get_or_insert(now);
        self.lease_until = Some(now + lease.as_millis() as i64);
        self.lease_holder = holder;
        Ok(expected)
    }

    /// Whether the current attempt is held by the validator that was handed `token`, and its
    /// lease is live at `now` (compared in constant time).
    pub fn leased_to(&self, token: &str, now: Millis) -> bool {
        use subtle::ConstantTimeEq as _;
        let held = self.lease_holder.as_ref().is_some_and(|digest| {
            bool::from(
                digest
                    .as_bytes()
                    .ct_eq(lease_token_digest(token).as_bytes()),
            )
        });
        self.validator_lease_live(now) && held
    }

    /// Whether a validator (not a worker) holds a lease on the current attempt that is live at
    /// `now`, whoever the validator is.
    pub fn validator_lease_live(&self, now: Millis) -> bool {
        self.lease_holder.is_some()
            && self.status == TaskStatus::Processing
            && self.lease_until.is_some_and(|until| until > now)
    }

    /// [`Self::finish_attempt`] for `holder`: `None` ends a worker's attempt; the digest of a
    /// lease token ends it only while that validator's lease is live at `now`.
    pub fn finish_attempt_as(
        &mut self,
        attempt: u32,
        holder: Option<&str>,
        end: AttemptEnd,
        now: Millis,
    ) -> Result<Expected, String> {
        if let Some(digest) = holder {
            let held = self.lease_holder.as_deref() == Some(digest)
                && self.lease_until.is_some_and(|until| until > now);
            if !held {
                return Err(format!("task {} is not leased to this holder", self.id));
            }
        }
        self.finish_attempt(attempt, end, now)
    }

    /// Ends attempt number `attempt` in memory, if the task is still unfinished and on that
    /// attempt. Returns what the store must still find to write it, or why it may not.
    pub fn finish_attempt(
        &mut self,
        attempt: u32,
        end: AttemptEnd,
        now: Millis,
    ) -> Result<Expected, String> {
        if self.status.is_terminal() || self.attempts != attempt {
            return Err(format!(
                "task {} is {} on attempt {}, not on attempt {attempt}",
                self.id,
                self.status.as_str(),
                self.attempts
            ));
        }
        let expected = (self.status, self.attempts);
        self.lease_until = None;
        self.lease_holder = None;
        match end {
            AttemptEnd::Completed { result, candidates } => {
                self.status = TaskStatus::Completed;
                self.completed_at = Some(now);
                self.error_message = None;
                self.result = Some(result);
                self.candidates = candidates;
                self.owe_notice();
            }
            AttemptEnd::Retry { reason, candidates } => {
                self.error_message = Some(reason);
                self.candidates = candidates;
                // Stays `processing` (never back to `pending`) with no lease: the next delivery
                // claims it.
                if self.status == TaskStatus::Pending {
                    self.status = TaskStatus::Processing;
                }
            }
            AttemptEnd::Interrupted => {
                self.attempts = self.attempts.saturating_sub(1);
                if self.status == TaskStatus::Pending {
                    self.status = TaskStatus::Processing;
                }
            }
            AttemptEnd::Failed { reason, candidates } => {
                self.status = TaskStatus::Failed;
                self.completed_at = Some(now);
                self.error_message = Some(reason);
                self.candidates = candidates;
                self.owe_notice();
            }
        }
        Ok(expected)
    }
}

impl Task {
    /// Whether the task looks stranded at `now`: unfinished, nothing has happened to it for
    /// `bound` (pending since it was accepted, processing since its lease ran out or its last
    /// attempt started), and the sweeper has not already sent it a message within `bound`.
    /// Its message may be lost (a submission stopped between storing the task and sending its
    /// message; a queue that dropped it), so the sweeper sends another: a duplicate is harmless.
    pub fn stranded(&self, now: Millis, bound: std::time::Duration) -> bool {
        let bound = bound.as_millis() as i64;
        let quiet_since = match self.status {
            TaskStatus::Pending => self.created_at,
            TaskStatus::Processing => self
                .lease_until
                .or(self.started_at)
                .unwrap_or(self.created_at),
            TaskStatus::Completed | TaskStatus::Failed => return false,
        };
        let quiet_since = quiet_since.max(self.requeued_at.unwrap_or(Millis::MIN));
        quiet_since + bound <= now
    }

    /// Records that the sweeper sent the task a new message at `now`. Returns what the store
    /// must still find to write it.
    pub fn mark_requeued(&mut self, now: Millis) -> Result<Expected, String> {
        if self.status.is_terminal() {
            return Err(format!("task {} has finished", self.id));
        }
        let expected = (self.status, self.attempts);
        self.requeued_at = Some(now);
        Ok(expected)
    }
}

/// The digest under which a task records the lease token of the validator holding it.
pub fn lease_token_digest(token: &str) -> String {
    super::tenant::digest_hex(&[b"taogate lease token", token.as_bytes()])
}

/// A fresh lease token: two random UUIDs (244 bits from the operating system's generator).
pub fn new_lease_token() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("tgl_{a}{b}")
}

/// What giving up on a dead-lettered task found.
#[derive(Debug, Clone, PartialEq)]
pub enum GiveUp {
    /// The task was unfinished and is now failed.
    Failed(Box<Task>),
    /// It had already finished: nothing to do.
    Finished,
    /// A worker holds a live lease until then: ask again after it.
    Leased(Millis),
    /// There is no such task.
    Missing,
}

impl Task {
    /// Fails an unfinished task whose message went to the dead letters, unless a worker holds a
    /// live lease on it. Returns what the store must still find to write it, or why not.
    pub fn give_up(&mut self, reason: String, now: Millis) -> Result<Expected, GiveUp> {
        if self.status.is_terminal() {
            return Err(GiveUp::Finished);
        }
        if let Some(until) = self.lease_until.filter(|until| *until > now) {
            return Err(GiveUp::Leased(until));
        }
        let expected = (self.status, self.attempts);
        self.status = TaskStatus::Failed;
        self.lease_until = None;
        self.lease_holder = None;
        self.completed_at = Some(now);
        self.error_message = Some(reason);
        self.owe_notice();
        Ok(expected)
    }
}

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// The caller now holds the task for attempt number `task.attempts`.
    Claimed(Box<Task>),
    /// Another worker holds a live lease until the given time.
    Leased(Millis),
    /// Already completed or failed: nothing to do but the callback, if it is still owed.
    Finished(Box<Task>),
    /// No such task.
    Missing,
}

/// Task counts by status, for health reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// Pending tasks.
    pub pending: u64,
    /// Processing tasks.
    pub processing: u64,
    /// Completed tasks.
    pub completed: u64,
    /// Failed tasks.
    pub failed: u64,
    /// All tasks.
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task::new(
            ServiceKind::Tts,
            Priority::Normal,
            Language::parse("en").unwrap(),
            TaskInput::Text { text: "hi".into() },
            None,
            1_000,
        )
    }

    #[test]
    fn only_the_holder_of_a_live_lease_ends_its_attempt() {
        let token = new_lease_token();
        let digest = lease_token_digest(&token);
        let mut t = task();
        t.begin_attempt_as(
            1_000,
            std::time::Duration::from_secs(10),
            Some(digest.clone()),
        )
        .unwrap();
        assert!(t.leased_to(&token, 5_000));
        assert!(!t.leased_to("tgl_other", 5_000));
        assert!(!t.leased_to(&token, 11_000), "the lease ran out");
        let other = lease_token_digest("tgl_other");
        for (holder, now) in [(other.as_str(), 5_000), (digest.as_str(), 11_000)] {
            let mut copy = t.clone();
            let refused = copy.finish_attempt_as(1, Some(holder), AttemptEnd::Interrupted, now);
            assert!(refused.is_err(), "{holder} at {now}");
        }
        let mut ended = t.clone();
        ended
            .finish_attempt_as(1, Some(&digest), AttemptEnd::Interrupted, 5_000)
            .unwrap();
        assert_eq!(ended.lease_holder, None);
        // A worker's attempt has no holder: no token ends it.
        let mut worked = task();
        worked
            .begin_attempt(1_000, std::time::Duration::from_secs(10))
            .unwrap();
        assert!(!worked.leased_to(&token, 5_000));
        let refused = worked.finish_attempt_as(1, Some(&digest), AttemptEnd::Interrupted, 5_000);
        assert!(refused.is_err());
        // The stored digest is not the token.
        assert_ne!(digest, token);
        assert!(!serde_json::to_string(&t).unwrap().contains(&token));
    }

    #[test]
    fn a_pending_task_is_claimable_and_a_finished_one_is_not() {
        let mut t = task();
        assert!(t.claimable(0));
        t.status = TaskStatus::Completed;
        assert!(!t.claimable(i64::MAX));
    }

    #[test]
    fn a_processing_task_is_claimable_only_after_its_lease() {
        let mut t = task();
        t.status = TaskStatus::Processing;
        t.lease_until = Some(5_000);
        assert!(!t.claimable(4_999));
        assert!(t.claimable(5_000));
    }

    #[test]
    fn a_task_is_stranded_only_after_a_quiet_bound_and_once_per_bound() {
        let bound = std::time::Duration::from_secs(60);
        let mut t = task();
        t.created_at = 1_000;
        assert!(!t.stranded(60_999, bound));
        assert!(t.stranded(61_000, bound));
        t.mark_requeued(61_000).unwrap();
        assert!(!t.stranded(120_000, bound), "re-sent within the bound");
        assert!(t.stranded(121_000, bound));
        t.begin_attempt(200_000, std::time::Duration::from_secs(30))
            .unwrap();
        assert!(
            !t.stranded(250_000, bound),
            "leased until 230 s, quiet only since then"
        );
        assert!(t.stranded(290_000, bound));
        t.status = TaskStatus::Completed;
        assert!(!t.stranded(i64::MAX / 2, bound));
        assert!(t.mark_requeued(300_000).is_err());
    }
}
