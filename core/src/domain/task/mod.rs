//! The task record and its lifecycle.
//!
//! `pending → processing → completed | failed`. Every transition is applied by a store as a
//! conditional write whose condition is written next to the transition here, so that the embedded
//! and the AWS stores enforce the same rules.

use serde::{Deserialize, Serialize};

use super::{Candidate, Language, Millis, Priority, ServiceKind, TaskId};

mod lifecycle;
mod record;

pub use lifecycle::{
    AttemptEnd, ClaimOutcome, Expected, GiveUp, StatusCounts, lease_token_digest, new_lease_token,
};
pub use record::{AudioInfo, Confidence, Quorum, TaskInput, TaskOutput, TaskResult};

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
