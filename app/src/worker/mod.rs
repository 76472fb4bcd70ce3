//! The worker: takes one queued message to a terminal state, or hands it back for a retry.
//!
//! The same function serves the SQS-triggered Lambda (a `Disposition::Retry` becomes a batch item
//! failure) and the local runtime's worker pool (it becomes a visibility change). It is
//! idempotent under duplicate delivery: the claim is a conditional write, a finished task is
//! acknowledged without work, and a task leased by another worker is handed back untouched.

mod attempt;
mod selection;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

pub use attempt::{AttemptError, AttemptPolicy};
pub use selection::Selector;

use crate::config::WorkerSettings;
use crate::domain::{
    Candidate, ClaimOutcome, GiveUp, Millis, MinerHealth, MinerSnapshot, Observation, Outcome,
    Task, TaskResult, now_millis,
};
use crate::drain::DeliveryHandler;
pub use crate::drain::Disposition;
use crate::ports::{
    AttemptEnd, BlobGet, BlobPresign, BlobPut, CallbackNotifier, Delivery, HealthStore, KeyLookup,
    MinerClient, MinerDirectory, NoticeLedger, ReferenceEndpoints, StoreError, TaskLease,
};

/// The outside world the worker is given: its stores and its outbound clients. The bounds on
/// [`Worker`]'s handler are the worker Lambda's IAM policy.
pub struct WorkerPorts<T, B, D, C, R, N> {
    /// Task table and miner health.
    pub tasks: T,
    /// Blob store.
    pub blobs: B,
    /// Miner directory.
    pub directory: D,
    /// Miner client.
    pub client: C,
    /// Reference endpoints.
    pub reference: R,
    /// Callback notifier.
    pub callbacks: N,
}

/// How long a task waits before it looks for a miner again, when none was available.
pub const WAIT_BACKOFF: Duration = Duration::from_secs(10);

/// How long a task handed back unclaimed (no room in the input budget, or too little of the
/// invocation left) waits before it is delivered again. It used no attempt, and its delivery
/// does not count toward the dead-letter limit.
pub const HANDBACK_DELAY: Duration = Duration::from_secs(1);

/// Takes queued tasks through their attempts.
pub struct Worker<T, B, D, C, R, N> {
    ports: WorkerPorts<T, B, D, C, R, N>,
    /// Selection and scoring.
    policy: AttemptPolicy,
    /// Tries before a task fails (`MAX_ATTEMPTS`).
    max_attempts: u32,
    /// How long one attempt holds the task.
    lease: Duration,
    /// How long a task may wait for a miner (`MAX_TASK_AGE`).
    max_task_age: Duration,
}

impl<T, B, D, C, R, N> Worker<T, B, D, C, R, N> {
    /// A worker over `ports`, attempting tasks by `policy`.
    pub fn new(
        ports: WorkerPorts<T, B, D, C, R, N>,
        settings: &WorkerSettings,
        policy: AttemptPolicy,
    ) -> Self {
        Self {
            ports,
            policy,
            max_attempts: settings.max_attempts,
            lease: settings.lease(),
            max_task_age: settings.max_task_age,
        }
    }

    /// The worker's stores and clients.
    pub fn ports(&self) -> &WorkerPorts<T, B, D, C, R, N> {
        &self.ports
    }

    /// How it selects, asks and scores, and the input budget its attempts share.
    pub fn policy(&self) -> &AttemptPolicy {
        &self.policy
    }

    /// One attempt at `task` over `snapshot`, neither claimed nor ended: the result an
    /// attempt would store, every candidate, and when the last answer arrived. Handling a
    /// delivery claims the task around this and ends the attempt with what it returns.
    pub async fn attempt(
        &self,
        task: &Task,
        snapshot: Arc<MinerSnapshot>,
        health: &HashMap<String, MinerHealth>,
    ) -> Result<(TaskResult, Vec<Candidate>, std::time::Instant), AttemptError>
    where
        B: BlobGet + BlobPut,
        C: MinerClient,
        R: ReferenceEndpoints,
    {
        attempt::run(task, snapshot, &self.ports, &self.policy, health).await
    }
}

impl<T, B, D, C, R, N> DeliveryHandler for Worker<T, B, D, C, R, N>
where
    T: TaskLease + NoticeLedger + HealthStore + KeyLookup,
    B: BlobGet + BlobPut + BlobPresign,
    D: MinerDirectory,
    C: MinerClient,
    R: ReferenceEndpoints,
    N: CallbackNotifier,
{
    /// Handles one delivery.
    #[tracing::instrument(skip_all, fields(task_id = %delivery.task_id, receive_count = delivery.receive_count))]
    async fn handle(&self, delivery: &Delivery) -> Disposition {
        self.settle(self.try_handle(delivery, None).await)
    }

    /// Handles one delivery before an invocation's deadline.
    #[tracing::instrument(skip_all, fields(task_id = %delivery.task_id, receive_count = delivery.receive_count))]
    async fn handle_before(&self, delivery: &Delivery, deadline: Instant) -> Disposition {
        let handled = INVOCATION.scope(deadline, self.try_handle(delivery, Some(deadline)));
        self.settle(handled.await)
    }
}

pub use crate::config::DEADLINE_MARGIN;

tokio::task_local! {
    /// The deadline of the invocation handling this delivery (`handle_before`'s), which the
    /// callback at the task's end keeps to.
    static INVOCATION: Instant;
}

impl<T, B, D, C, R, N> Worker<T, B, D, C, R, N>
where
    T: TaskLease + NoticeLedger + HealthStore + KeyLookup,
    B: BlobGet + BlobPut + BlobPresign,
    D: MinerDirectory,
    C: MinerClient,
    R: ReferenceEndpoints,
    N: CallbackNotifier,
{
    fn settle(&self, handled: Result<Disposition, StoreError>) -> Disposition {
        handled.unwrap_or_else(|e| {
            warn!(error = ?anyhow::Error::from(e), "storage failed; the message will be delivered again");
            Disposition::Retry(Duration::from_secs(5))
        })
    }

    async fn try_handle(
        &self,
        delivery: &Delivery,
        deadline: Option<Instant>,
    ) -> Result<Disposition, StoreError> {
        let now = now_millis();
        if delivery.dead_letter {
            return self.reconcile_dead_letter(delivery, now).await;
        }
        // An attempt is started only if it can end, result stored, before the invocation does.
        let cutoff = deadline.map(|d| d - DEADLINE_MARGIN);
        // The input's share of the process's budget (`MAX_INPUT_MEMORY`) is taken before the
        // claim, so that waiting for room uses neither the lease nor an attempt; it is held
        // until the attempt ends. A missing task takes none (the claim reports it).
        let _input_share = match self.ports.tasks.input_size(delivery.task_id).await? {
            Some(size) => {
                let share = self.policy.inputs.reserve_up_to(attempt::input_share(size));
                match cutoff.map(|c| c.checked_sub(self.lease)) {
                    None => share.await,
                    Some(Some(latest)) => tokio::time::timeout_at(latest, share)
                        .await
                        .unwrap_or_default(),
                    Some(None) => None,
                }
            }
            None => None,
        };
        // Waiting is not failing: a task handed back for lack of room or time used no attempt,
        // so its delivery must not count toward the dead-letter limit either.
        if cutoff.is_some_and(|c| c.saturating_duration_since(Instant::now()) < self.lease) {
            info!("too little of the invocation is left for an attempt; handed back unclaimed");
            return Ok(Disposition::Postpone(HANDBACK_DELAY));
        }
        // Waiting is not failing: with no miner to ask, no attempt is claimed.
        let (snapshot, eligible) = match self.available_miners().await {
            Ok(found) => found,
            Err(cause) => return self.wait_or_give_up(delivery, &cause, now).await,
        };
        let task = match self
            .ports
            .tasks
            .claim(delivery.task_id, now, self.lease)
            .await?
        {
            ClaimOutcome::Claimed(task) => task,
            other => return Ok(self.unclaimed(other, now).await),
        };
        crate::faults::crash("worker.claimed");
        let attempt = task.attempts;
        let last = attempt >= self.max_attempts || delivery.receive_count >= self.max_attempts;
        let health = self.load_health(eligible).await;
        let attempt_run = attempt::run(&task, snapshot, &self.ports, &self.policy, &health);
        // Queries, checks, scoring and storing the output all end inside the lease (and so
        // before the invocation's deadline), leaving room to write the attempt's end.
        let lease_end = Instant::now() + self.lease.saturating_sub(DEADLINE_MARGIN);
        let end_at = cutoff.map_or(lease_end, |c| c.min(lease_end));
        let outcome = match tokio::time::timeout_at(end_at, attempt_run).await {
            Ok(outcome) => outcome,
            Err(_) => {
                warn!(
                    lease_s = self.lease.as_secs(),
                    "the attempt did not finish within its lease or the invocation; handed back uncounted"
                );
                let end = AttemptEnd::Interrupted;
                return self
                    .finish(
                        &task,
                        attempt,
                        end,
                        Disposition::Retry(Duration::ZERO),
                        None,
                    )
                    .await;
            }
        };
        let candidates = match &outcome {
            Ok((_, candidates, _)) | Err(AttemptError::NoAnswer { candidates, .. }) => {
                candidates.as_slice()
            }
            Err(AttemptError::Store(_)) => &[],
        };
        for refused in candidates
            .iter()
            .filter(|c| c.outcome == Outcome::Unauthorized)
        {
            warn!(miner_uid = refused.uid, hotkey = %refused.hotkey, "miner refused our signature; its metagraph entry is marked stale");
            self.ports.directory.mark_stale(&refused.hotkey);
        }
        let observations = self.observations(candidates);
        let mut answered = None;
        let (end, disposition) = match outcome {
            Ok((result, candidates, at)) => {
                info!(
                    miner_uid = result.miner_uid,
                    combined = result.combined_score,
                    "task completed"
                );
                answered = Some(at);
                (
                    AttemptEnd::Completed { result, candidates },
                    Disposition::Done,
                )
            }
            Err(AttemptError::Store(e)) => return Err(e),
            Err(AttemptError::NoAnswer { reason, candidates }) => {
                self.unanswered(attempt, last, reason, candidates)
            }
        };
        // The result is stored first; the miners' records wait for it, not the other way round.
        let finished = self
            .finish(&task, attempt, end, disposition, answered)
            .await;
        self.record_health(observations).await;
        finished
    }

    /// What to do with a message whose task could not be claimed. A finished task whose
    /// callback is still owed (its worker stopped after the final write) is told now.
    async fn unclaimed(&self, outcome: ClaimOutcome, now: Millis) -> Disposition {
        match outcome {
            ClaimOutcome::Finished(task) => {
                info!("task already finished; duplicate delivery acknowledged");
                self.notify(&task).await;
                Disposition::Done
            }
            ClaimOutcome::Claimed(_) => Disposition::Done,
            ClaimOutcome::Missing => {
                warn!("message names an unknown task; dropped");
                Disposition::Done
            }
            // Held by another worker or a validator: the holder ends the attempt, or the lease
            // runs out and the next delivery claims it. Waiting, not failing.
            ClaimOutcome::Leased(until) => {
                info!("task is leased by another worker or a validator; delivery postponed");
                Disposition::Postpone(Duration::from_millis((until - now).max(1_000) as u64))
            }
        }
    }

    /// A message that went to the dead letters: delivered the queue's maximum number of times
    /// and no attempt ended (the worker was stopped each time: a crash, a timeout, a store that
    /// kept failing). Its task, if still unfinished, fails with that reason and its submitter is
    /// told; a task a worker still holds is looked at again when the lease ends.
    async fn reconcile_dead_letter(
        &self,
        delivery: &Delivery,
        now: Millis,
    ) -> Result<Disposition, StoreError> {
        let reason = format!(
            "no attempt finished although the task was delivered {} times (the worker was \
             stopped each time: a crash, a timeout or a failing store); it went to the dead letters",
            self.max_attempts
        );
        match self
            .ports
            .tasks
            .give_up(delivery.task_id, reason, now)
            .await?
        {
            GiveUp::Failed(task) => {
                warn!(
                    reason = task.error_message.as_deref().unwrap_or_default(),
                    "dead-lettered task failed"
                );
                self.notify(&task).await;
                Ok(Disposition::Done)
            }
            GiveUp::Finished | GiveUp::Missing => {
                info!("dead letter of a finished task acknowledged");
                Ok(Disposition::Done)
            }
            GiveUp::Leased(until) => Ok(Disposition::Retry(Duration::from_millis(
                (until - now).max(1_000) as u64,
            ))),
        }
    }

    /// The snapshot and the hotkeys of the miners an attempt may ask, if there is one; else why
    /// not.
    async fn available_miners(&self) -> Result<(Arc<MinerSnapshot>, Vec<String>), String> {
        let snapshot = self
            .ports
            .directory
            .snapshot()
            .await
            .map_err(|e| format!("no miner snapshot could be read ({e})"))?;
        let eligible = self
            .policy
            .selector
            .candidates(&snapshot, &self.policy.own_hotkey);
        if eligible.is_empty() {
            return Err(format!(
                "none of the {} miners in the snapshot serves at an address the gateway may call",
                snapshot.miners.len()
            ));
        }
        Ok((snapshot, eligible))
    }

    /// With no miner to ask: the message comes back later without using an attempt, until the
    /// task is older than `MAX_TASK_AGE`; then the task fails, naming how long it waited.
    async fn wait_or_give_up(
        &self,
        delivery: &Delivery,
        cause: &str,
        now: Millis,
    ) -> Result<Disposition, StoreError> {
        let age = Duration::from_millis((now - delivery.task_id.created_at()).max(0) as u64);
        if age < self.max_task_age {
            info!(cause = %cause, waited_s = age.as_secs(), "no miner available; the task waits without using an attempt");
            return Ok(Disposition::Postpone(WAIT_BACKOFF));
        }
        let task = match self
            .ports
            .tasks
            .claim(delivery.task_id, now, self.lease)
            .await?
        {
            ClaimOutcome::Claimed(task) => task,
            other => return Ok(self.unclaimed(other, now).await),
        };
        let reason = format!(
            "no miner was available for {} s (MAX_TASK_AGE is {} s): {cause}",
            age.as_secs(),
            self.max_task_age.as_secs()
        );
        warn!(reason = %reason, "task failed");
        let end = AttemptEnd::Failed {
            reason,
            candidates: Vec::new(),
        };
        self.finish(&task, task.attempts, end, Disposition::Done, None)
            .await
    }

    /// Writes the end of attempt `attempt` and, for a terminal state, tells the submitter.
    /// `answered`: when the attempt's last needed answer came, for `timings::SETTLE`.
    async fn finish(
        &self,
        task: &Task,
        attempt: u32,
        end: AttemptEnd,
        disposition: Disposition,
        answered: Option<std::time::Instant>,
    ) -> Result<Disposition, StoreError> {
        match self
            .ports
            .tasks
            .end_attempt(task.id, attempt, end, now_millis())
            .await
        {
            Ok(stored) => {
                if let Some(at) = answered {
                    crate::timings::SETTLE.record(at.elapsed());
                }
                if stored.status.is_terminal() {
                    crate::faults::crash("worker.ended");
                    self.notify(&stored).await;
                }
                Ok(disposition)
            }
            Err(StoreError::Conflict(why)) => {
                warn!(why = %why, "attempt outlived its lease; its result is discarded");
                Ok(Disposition::Done)
            }
            Err(e) => Err(e),
        }
    }

    /// How an attempt without a usable answer ends: a retry with a backoff, or, on the last
    /// attempt, a failure. The failed task's own record explains it, so its message is deleted;
    /// the dead letters keep only messages whose attempts never ended.
    fn unanswered(
        &self,
        attempt: u32,
        last: bool,
        reason: String,
        candidates: Vec<Candidate>,
    ) -> (AttemptEnd, Disposition) {
        if last {
            let reason = format!("failed after {attempt} attempts: {reason}");
            warn!(reason = %reason, "task failed");
            return (AttemptEnd::Failed { reason, candidates }, Disposition::Done);
        }
        let reason = format!(
            "attempt {attempt} of {} failed, retrying: {reason}",
            self.max_attempts
        );
        info!(reason = %reason, "attempt failed");
        let backoff = Duration::from_millis(500 * u64::from(attempt));
        (
            AttemptEnd::Retry { reason, candidates },
            Disposition::Retry(backoff),
        )
    }

    /// The health records of `hotkeys`, the miners this attempt may pick. Health is advisory:
    /// if it cannot be read, the attempt goes on without it.
    async fn load_health(&self, hotkeys: Vec<String>) -> HashMap<String, MinerHealth> {
        match self.ports.tasks.load_health(hotkeys).await {
            Ok(records) => records.into_iter().map(|h| (h.hotkey.clone(), h)).collect(),
            Err(e) => {
                warn!(error = ?anyhow::Error::from(e), "miner health could not be read; selecting without it");
                HashMap::new()
            }
        }
    }

    /// What this attempt observed of the miners asked (a cancelled query observed nothing).
    fn observations(&self, asked: &[Candidate]) -> Vec<Observation> {
        let now = now_millis();
        asked
            .iter()
            .filter(|c| c.outcome != Outcome::Cancelled)
            .map(|c| Observation {
                hotkey: c.hotkey.clone(),
                // A well-formed answer below the accuracy floor is worthless: it counts as a
                // failure, so a miner that only answers garbage is ranked down and backed off.
                outcome: match c.accuracy {
                    Some(a) if c.outcome == Outcome::Success && a < self.policy.scorer.floor => {
                        Outcome::InvalidAnswer
                    }
                    _ => c.outcome,
                },
                latency_ms: c.latency_ms as f64,
                score: c.combined,
                at: now,
            })
            .collect()
    }

    /// Adds `observations` to the records of the miners asked, in the store, so that
    /// concurrent attempts add up rather than overwrite each other.
    async fn record_health(&self, observations: Vec<Observation>) {
        if observations.is_empty() {
            return;
        }
        match self.ports.tasks.observe_health(observations).await {
            Ok(records) => {
                for record in records
                    .iter()
                    .filter(|r| r.failures_in_a_row == crate::domain::health::BACKOFF_AFTER)
                {
                    info!(hotkey = %record.hotkey, "miner keeps failing; backed off");
                }
            }
            Err(e) => {
                warn!(error = ?anyhow::Error::from(e), "miner health could not be stored");
            }
        }
    }

    /// Tells the submitter, if a callback is owed, within the invocation's deadline less
    /// [`DEADLINE_MARGIN`] if there is one, and records the try: an unacknowledged one (or one
    /// there was no time to try) stays owed for the sweeper.
    async fn notify(&self, task: &Task) {
        // Inside an invocation the callback ends, and its try is recorded, before it does.
        let bound = INVOCATION.try_with(|d| *d - DEADLINE_MARGIN).ok();
        let Some(delivered) = crate::notify::tell_submitter(
            task,
            &self.ports.blobs,
            &self.ports.callbacks,
            &self.ports.tasks,
            bound,
        )
        .await
        else {
            return;
        };
        crate::faults::crash("worker.told");
        if let Err(e) = self
            .ports
            .tasks
            .note_notice(task.id, delivered, now_millis())
            .await
        {
            warn!(error = ?anyhow::Error::from(e), "the callback's try could not be recorded; it may be sent again");
        }
    }
}
