//! The worker: takes one queued message to a terminal state, or hands it back for a retry.
//!
//! The same function serves the SQS-triggered Lambda (a `Disposition::Retry` becomes a batch item
//! failure) and the local runtime's worker pool (it becomes a visibility change). It is
//! idempotent under duplicate delivery: the claim is a conditional write, a finished task is
//! acknowledged without work, and a task leased by another worker is handed back untouched.

mod answers;
mod attempt;
mod selection;

use std::time::Duration;

use tracing::{info, warn};

use attempt::AttemptError;
pub use attempt::AttemptPolicy;
pub use selection::{SelectionPolicy, Selector};

use std::collections::HashMap;
use std::sync::Arc;

use crate::bittensor::MinerSnapshot;
use crate::bittensor::{Hotkey, ProtocolClient};
use crate::callback::CallbackSender;
use crate::config::Settings;
use crate::domain::{Candidate, ClaimOutcome, MinerHealth, Outcome, Task, now_millis};
use crate::ports::{
    AttemptEnd, BlobStore, Delivery, HealthStore, MinerClient, MinerDirectory, StoreError,
    TaskWriter,
};
use crate::scoring::Scorer;
use crate::scoring::reference::ReferenceClient;
use crate::views::TaskView;

/// What to do with the message after handling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Delete it: the task is finished (or gone).
    Done,
    /// Leave it to be delivered again after the delay.
    Retry(Duration),
}

/// Everything the worker uses. Its bounds are the worker Lambda's IAM policy.
pub struct Worker<T, B, D, C> {
    /// Task table.
    pub tasks: T,
    /// Blob store.
    pub blobs: B,
    /// Miner directory.
    pub directory: D,
    /// Miner client.
    pub client: C,
    /// Selection and scoring.
    pub policy: AttemptPolicy,
    /// Tries before a task fails (`MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// How long one attempt holds the task.
    pub lease: Duration,
    /// Callback delivery.
    pub callbacks: CallbackSender,
}

impl<T: TaskWriter + HealthStore, B: BlobStore, D: MinerDirectory> Worker<T, B, D, ProtocolClient> {
    /// A worker that queries miners over the protocol `settings` name (`MINER_PROTOCOL`).
    pub fn with_miner_client(
        settings: &Settings,
        tasks: T,
        blobs: B,
        directory: D,
        hotkey: Arc<Hotkey>,
    ) -> anyhow::Result<Self> {
        let client = ProtocolClient::from_settings(settings, hotkey.clone())?;
        Ok(Self {
            tasks,
            blobs,
            directory,
            client,
            policy: AttemptPolicy {
                miners_per_request: settings.max_miners_per_request,
                required_answers: settings
                    .required_answers
                    .min(settings.max_miners_per_request),
                hedge_after: settings.hedge_after,
                hedge_miners: settings.hedge_miners,
                deadline: settings.task_timeout,
                scorer: Scorer::from_settings(settings),
                scoring_mode: settings.scoring_mode,
                reference: ReferenceClient::from_settings(settings).map(Arc::new),
                own_hotkey: hotkey.ss58().to_owned(),
                selector: Arc::new(
                    Selector::new(settings.selection_policy, settings.selection_exploration)
                        .with_allowlist(settings.miner_allowlist.clone()),
                ),
            },
            max_attempts: settings.max_attempts,
            lease: settings.lease(),
            callbacks: CallbackSender::new(
                settings.callback_allowlist.clone(),
                settings.callback_max_attempts,
            ),
        })
    }
}

impl<T: TaskWriter + HealthStore, B: BlobStore, D: MinerDirectory, C: MinerClient>
    Worker<T, B, D, C>
{
    /// Handles one delivery.
    #[tracing::instrument(skip_all, fields(task_id = %delivery.task_id, receive_count = delivery.receive_count))]
    pub async fn handle(&self, delivery: &Delivery) -> Disposition {
        match self.try_handle(delivery).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = ?anyhow::Error::from(e), "storage failed; the message will be delivered again");
                Disposition::Retry(Duration::from_secs(5))
            }
        }
    }

    async fn try_handle(&self, delivery: &Delivery) -> Result<Disposition, StoreError> {
        let now = now_millis();
        let task = match self.tasks.claim(delivery.task_id, now, self.lease).await? {
            ClaimOutcome::Claimed(task) => task,
            ClaimOutcome::Finished => {
                info!("task already finished; duplicate delivery acknowledged");
                return Ok(Disposition::Done);
            }
            ClaimOutcome::Missing => {
                warn!("message names an unknown task; dropped");
                return Ok(Disposition::Done);
            }
            ClaimOutcome::Leased(until) => {
                info!("task is leased by another worker; delivery handed back");
                return Ok(Disposition::Retry(Duration::from_millis(
                    (until - now).max(1_000) as u64,
                )));
            }
        };
        let attempt = task.attempts;
        let last = attempt >= self.max_attempts || delivery.receive_count >= self.max_attempts;
        let snapshot = self.directory.snapshot().await?;
        let health = self.load_health(&snapshot).await;
        let outcome = attempt::run(
            &task,
            snapshot,
            &self.client,
            &self.blobs,
            &self.policy,
            &health,
        )
        .await;
        let candidates = match &outcome {
            Ok((_, candidates)) | Err(AttemptError::NoAnswer { candidates, .. }) => {
                candidates.as_slice()
            }
            Err(AttemptError::Store(_)) => &[],
        };
        self.record_health(health, candidates).await;
        for refused in candidates
            .iter()
            .filter(|c| c.outcome == Outcome::Unauthorized)
        {
            warn!(miner_uid = refused.uid, hotkey = %refused.hotkey, "miner refused our signature; its metagraph entry is marked stale");
            self.directory.mark_stale(&refused.hotkey);
        }
        let (end, disposition) = match outcome {
            Ok((result, candidates)) => {
                info!(
                    miner_uid = result.miner_uid,
                    combined = result.combined_score,
                    "task completed"
                );
                (
                    AttemptEnd::Completed { result, candidates },
                    Disposition::Done,
                )
            }
            Err(AttemptError::Store(e)) => return Err(e),
            Err(AttemptError::NoAnswer { reason, candidates }) if last => {
                let reason = format!("failed after {attempt} attempts: {reason}");
                warn!(reason = %reason, "task failed");
                // Handing the message back lets the queue's redrive move it to the dead letters.
                (
                    AttemptEnd::Failed { reason, candidates },
                    Disposition::Retry(Duration::ZERO),
                )
            }
            Err(AttemptError::NoAnswer { reason, candidates }) => {
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
        };
        match self
            .tasks
            .end_attempt(task.id, attempt, end, now_millis())
            .await
        {
            Ok(stored) => {
                if stored.status.is_terminal() {
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

    /// The health records of the miners this attempt may pick. Health is advisory: if it cannot
    /// be read, the attempt goes on without it.
    async fn load_health(&self, snapshot: &MinerSnapshot) -> HashMap<String, MinerHealth> {
        let hotkeys = self
            .policy
            .selector
            .candidates(snapshot, &self.policy.own_hotkey);
        match self.tasks.load_health(hotkeys).await {
            Ok(records) => records.into_iter().map(|h| (h.hotkey.clone(), h)).collect(),
            Err(e) => {
                warn!(error = ?anyhow::Error::from(e), "miner health could not be read; selecting without it");
                HashMap::new()
            }
        }
    }

    /// Adds this attempt's observations to the records of the miners asked, and stores them.
    async fn record_health(&self, mut known: HashMap<String, MinerHealth>, asked: &[Candidate]) {
        let now = now_millis();
        let records: Vec<MinerHealth> = asked
            .iter()
            .filter(|c| c.outcome != Outcome::Cancelled)
            .map(|c| {
                let mut record = known
                    .remove(&c.hotkey)
                    .unwrap_or_else(|| MinerHealth::new(c.hotkey.clone()));
                // A well-formed answer below the accuracy floor is worthless: it counts as a
                // failure, so a miner that only answers garbage is ranked down and backed off.
                let outcome = match c.accuracy {
                    Some(a) if c.outcome == Outcome::Success && a < self.policy.scorer.floor => {
                        Outcome::InvalidAnswer
                    }
                    _ => c.outcome,
                };
                record.observe(outcome, c.latency_ms as f64, c.combined, now);
                if record.failures_in_a_row == crate::domain::health::BACKOFF_AFTER {
                    info!(miner_uid = c.uid, hotkey = %c.hotkey, "miner keeps failing; backed off");
                }
                record
            })
            .collect();
        if records.is_empty() {
            return;
        }
        if let Err(e) = self.tasks.save_health(records).await {
            warn!(error = ?anyhow::Error::from(e), "miner health could not be stored");
        }
    }

    async fn notify(&self, task: &Task) {
        let Some(url) = task.callback_url.as_deref() else {
            return;
        };
        let audio_url = match TaskView::audio_key(task) {
            Some(key) => self.blobs.public_url(task.id, key).await.ok(),
            None => None,
        };
        let body = serde_json::to_value(TaskView::new(task, audio_url)).unwrap_or_default();
        match self.callbacks.deliver(url, &body).await {
            Ok(attempts) => info!(attempts, "callback delivered"),
            Err(e) => warn!(error = %e, "callback not delivered"),
        }
    }
}
