//! The sweeper: the safety net for messages that were never sent or were lost. It finds tasks
//! that are [`Task::stranded`](crate::domain::Task::stranded) — unfinished and quiet for
//! `SWEEP_AFTER` (pending since accepted; processing since the lease ran out) — and sends each a
//! new message, marking it so that one sweep per bound sends at most one. It also tries every
//! callback still owed (its worker stopped after the final transition, or the receiver was
//! down), at most once per bound and [`MAX_NOTICE_TRIES`](crate::domain::MAX_NOTICE_TRIES)
//! times.
//!
//! Safe beside running workers: a task that still had its message gets two, and the second is
//! harmless (a claim of a leased or finished task does nothing). `taogate serve` sweeps every
//! minute; on AWS a scheduled function does.
//!
//! A sweep ends by the deadline it is given (the invocation's, less [`INVOCATION_MARGIN`], on
//! AWS). Owed callbacks are delivered [`CALLBACK_CONCURRENCY`] at a time, each within
//! [`DELIVERY_DEADLINE`](crate::notify::DELIVERY_DEADLINE) and the sweep's deadline, so
//! receivers that never answer hold a few slots for a while and delay nobody else's. Those the
//! sweep does not reach in time stay owed, their tries uncounted, for the next sweep.

use std::time::Duration;

use futures::StreamExt as _;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::domain::Millis;
use crate::ports::{
    BlobPresign, CallbackNotifier, KeyLookup, NoticeLedger, QueueSend, StoreError, TaskSweep,
};

/// Tasks one sweep handles at most, of each kind; the next sweep takes the rest.
pub const SWEEP_BATCH: usize = 500;

/// Owed callbacks one sweep delivers at once: 16. A receiver that never answers holds one slot
/// for a delivery's deadline at most; the others go on meanwhile.
pub const CALLBACK_CONCURRENCY: usize = 16;

/// What the sweeper function keeps of its invocation after the sweep's deadline: 2 s, to
/// record the last tries and answer the runtime.
pub const INVOCATION_MARGIN: Duration = Duration::from_secs(2);

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Stranded tasks found.
    pub stranded: usize,
    /// Tasks sent a new message.
    pub requeued: usize,
    /// Owed callbacks tried.
    pub callbacks_tried: usize,
    /// Owed callbacks acknowledged.
    pub callbacks_delivered: usize,
    /// Owed and due callbacks the sweep had no time left to try; still owed, their tries
    /// uncounted.
    pub callbacks_left: usize,
}

/// The sweeper's ports and its bound (`SWEEP_AFTER`).
#[derive(Debug, Clone)]
pub struct Sweeper<T, Q, B, N> {
    /// Task table (stranded tasks, owed callbacks).
    pub tasks: T,
    /// Queue (send).
    pub queue: Q,
    /// Blob store (the result URL in callbacks).
    pub blobs: B,
    /// Callback notifier.
    pub callbacks: N,
    /// How long a task may stay quiet, and how long between tries of an owed callback.
    pub bound: Duration,
}

impl<T, Q, B, N> Sweeper<T, Q, B, N>
where
    T: TaskSweep + NoticeLedger + KeyLookup,
    Q: QueueSend,
    B: BlobPresign,
    N: CallbackNotifier,
{
    /// Sends every stranded task (up to [`SWEEP_BATCH`]) a new message, and tries every
    /// callback that is owed and due (as many), [`CALLBACK_CONCURRENCY`] at a time, all ending
    /// by `deadline`. A store error ends the sweep (deliveries under way are dropped; one that
    /// was acknowledged but not recorded is sent again, under the same id).
    pub async fn run(&self, now: Millis, deadline: Instant) -> Result<SweepReport, StoreError> {
        let mut report = self.requeue(now).await?;
        let due = self.tasks.due_notices(now, self.bound, SWEEP_BATCH).await?;
        let mut told = futures::stream::iter(due)
            .map(|task| async move {
                let told = crate::notify::tell_submitter(
                    &task,
                    &self.blobs,
                    &self.callbacks,
                    &self.tasks,
                    Some(deadline),
                )
                .await;
                let recorded = match told {
                    Some(delivered) => self.tasks.note_notice(task.id, delivered, now).await,
                    None => Ok(()),
                };
                (told, recorded)
            })
            .buffer_unordered(CALLBACK_CONCURRENCY);
        while let Some((told, recorded)) = told.next().await {
            match told {
                // Every due task owes a callback: not told means not reached in time.
                None => report.callbacks_left += 1,
                Some(delivered) => {
                    report.callbacks_tried += 1;
                    report.callbacks_delivered += usize::from(delivered);
                }
            }
            match recorded {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    async fn requeue(&self, now: Millis) -> Result<SweepReport, StoreError> {
        let stranded = self.tasks.stranded(now, self.bound, SWEEP_BATCH).await?;
        let mut report = SweepReport {
            stranded: stranded.len(),
            ..SweepReport::default()
        };
        for task in stranded {
            warn!(task_id = %task.id, status = task.status.as_str(), "stranded task sent a new message");
            // Sent first: should the mark fail, the worst case is one more duplicate next time.
            self.queue.send(task.id, task.priority).await?;
            match self.tasks.mark_requeued(task.id, now).await {
                Ok(()) => report.requeued += 1,
                Err(StoreError::Conflict(why)) => {
                    info!(task_id = %task.id, why = %why, "moved on while swept");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Sweeps every `interval` until `shutdown` turns true (the local runtime's stand-in for
    /// the scheduled sweeper function), each sweep ending within `budget`. A failed sweep is
    /// logged and tried again next time.
    pub async fn every(
        self,
        interval: Duration,
        budget: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let deadline = Instant::now() + budget;
            match self.run(crate::domain::now_millis(), deadline).await {
                Ok(report) if report != SweepReport::default() => info!(?report, "swept"),
                Ok(_) => {}
                Err(e) => {
                    warn!(error = ?anyhow::Error::from(e), "sweep failed; trying again later")
                }
            }
        }
    }
}
