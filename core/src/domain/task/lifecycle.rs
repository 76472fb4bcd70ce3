//! The transitions: each a change in memory that says what a store's conditional write must
//! still find.

use super::*;

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
    crate::domain::tenant::digest_hex(&[b"taogate lease token", token.as_bytes()])
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
