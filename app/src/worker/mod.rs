//! The worker: takes one queued message to a terminal state, or hands it back for a retry.
//!
//! The same function serves the SQS-triggered Lambda (a `Disposition::Retry` becomes a batch item
//! failure) and the local runtime's worker pool (it becomes a visibility change). It is
//! idempotent under duplicate delivery: the claim is a conditional write, a finished task is
//! acknowledged without work, and a task leased by another worker is handed back untouched.

mod attempt;
mod ending;
mod health;
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
}
