//! How a delivery ends besides a normal attempt: unclaimed, dead-lettered, waiting for miners,
//! written back, and the submitter told.

use super::*;

impl<T, B, D, C, R, N> Worker<T, B, D, C, R, N>
where
    T: TaskLease + NoticeLedger + HealthStore + KeyLookup,
    B: BlobGet + BlobPut + BlobPresign,
    D: MinerDirectory,
    C: MinerClient,
    R: ReferenceEndpoints,
    N: CallbackNotifier,
{
    /// What to do with a message whose task could not be claimed. A finished task whose
    /// callback is still owed (its worker stopped after the final write) is told now.
    pub(super) async fn unclaimed(&self, outcome: ClaimOutcome, now: Millis) -> Disposition {
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
    pub(super) async fn reconcile_dead_letter(
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

    /// With no miner to ask: the message comes back later without using an attempt, until the
    /// task is older than `MAX_TASK_AGE`; then the task fails, naming how long it waited.
    pub(super) async fn wait_or_give_up(
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
    pub(super) async fn finish(
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
    pub(super) fn unanswered(
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
    /// Tells the submitter, if a callback is owed, within the invocation's deadline less
    /// [`DEADLINE_MARGIN`] if there is one, and records the try: an unacknowledged one (or one
    /// there was no time to try) stays owed for the sweeper.
    pub(super) async fn notify(&self, task: &Task) {
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
