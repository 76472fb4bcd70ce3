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

use std::time::Duration;

use tracing::{info, warn};

use crate::domain::Millis;
use crate::ports::{
    BlobPresign, CallbackNotifier, KeyLookup, NoticeLedger, QueueSend, StoreError, TaskSweep,
};

/// Tasks one sweep handles at most, of each kind; the next sweep takes the rest.
pub const SWEEP_BATCH: usize = 500;

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
    /// callback that is owed and due.
    pub async fn run(&self, now: Millis) -> Result<SweepReport, StoreError> {
        let mut report = self.requeue(now).await?;
        for task in self.tasks.due_notices(now, self.bound, SWEEP_BATCH).await? {
            let Some(delivered) = crate::notice::tell_submitter(
                &task,
                &self.blobs,
                &self.callbacks,
                &self.tasks,
                None,
            )
            .await
            else {
                continue;
            };
            report.callbacks_tried += 1;
            report.callbacks_delivered += usize::from(delivered);
            match self.tasks.note_notice(task.id, delivered, now).await {
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
    /// the scheduled sweeper function). A failed sweep is logged and tried again next time.
    pub async fn every(self, interval: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            match self.run(crate::domain::now_millis()).await {
                Ok(report) if report != SweepReport::default() => info!(?report, "swept"),
                Ok(_) => {}
                Err(e) => {
                    warn!(error = ?anyhow::Error::from(e), "sweep failed; trying again later")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::domain::{Language, Priority, ServiceKind, Task, TaskInput, now_millis};
    use crate::ports::{QueueConsume, TaskCreate, TaskReader};

    #[tokio::test]
    async fn a_task_stored_without_a_message_is_sent_one_after_the_bound_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let (db, blobs) = crate::embedded::test_stores(dir.path());
        let now = now_millis();
        let mut old = Task::new(
            ServiceKind::Summarization,
            Priority::Low,
            Language::parse("en").unwrap(),
            TaskInput::Text {
                text: "lost on the way".into(),
            },
            None,
            now - 120_000,
        );
        old.created_at = now - 120_000;
        let fresh = Task::new(
            ServiceKind::Tts,
            Priority::High,
            Language::parse("en").unwrap(),
            TaskInput::Text { text: "new".into() },
            None,
            now,
        );
        // Both stored, neither sent: as if the submission stopped between the two writes.
        db.insert(&old).await.unwrap();
        db.insert(&fresh).await.unwrap();
        let bound = Duration::from_secs(60);

        let settings = Settings::from_lookup(|_| None).unwrap();
        let sweeper = Sweeper {
            tasks: db.clone(),
            queue: db.clone(),
            blobs,
            callbacks: crate::outbound::HttpCallbacks::new(&settings.callbacks),
            bound,
        };
        let report = sweeper.run(now).await.unwrap();
        assert_eq!((report.stranded, report.requeued), (1, 1));
        let sent = db.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].task_id, sent[0].priority), (old.id, Priority::Low));
        assert!(db.get(old.id).await.unwrap().unwrap().requeued_at.is_some());

        let again = sweeper.run(now + 30_000).await.unwrap();
        assert_eq!(again, SweepReport::default(), "sent once per bound");
        let later = sweeper.run(now + 61_000).await.unwrap();
        assert_eq!(later.requeued, 2, "both are quiet past the bound by then");
    }
}
