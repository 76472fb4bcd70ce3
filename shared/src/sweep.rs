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
//! [`DELIVERY_DEADLINE`](crate::notice::DELIVERY_DEADLINE) and the sweep's deadline, so
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
                let told = crate::notice::tell_submitter(
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::config::Settings;
    use crate::domain::{Language, Priority, ServiceKind, Task, TaskId, TaskInput, now_millis};
    use crate::embedded::Database;
    use crate::outbound::{DELIVERY_ID_HEADER, HttpCallbacks};
    use crate::ports::{AttemptEnd, QueueConsume, TaskCreate, TaskLease, TaskReader};

    /// Time enough for a sweep that meets no stalled receiver.
    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    /// A receiver that accepts every connection and never answers, holding it open.
    async fn stalled_receiver() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        addr
    }

    /// A receiver that answers every callback 200 at once; it keeps the delivery ids.
    async fn good_receiver() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let kept = heard.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap| async move {
                let id = headers
                    .get(DELIVERY_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                kept.lock().unwrap().push(id.to_owned());
                axum::http::StatusCode::OK
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, heard)
    }

    /// A task, made at `made` (its id sorts by it), that failed at `made` and owes its
    /// callback to `receiver`.
    async fn owing(db: &Database, receiver: SocketAddr, made: Millis) -> Task {
        let task = Task::with_id(
            TaskId::first_at(made),
            ServiceKind::Summarization,
            Priority::Normal,
            Language::parse("en").unwrap(),
            TaskInput::Text {
                text: "finished".into(),
            },
            Some(format!("http://{receiver}/hook")),
            made,
        );
        db.insert(&task).await.unwrap();
        db.claim(task.id, made, Duration::from_secs(5))
            .await
            .unwrap();
        let end = AttemptEnd::Failed {
            reason: "no".into(),
            candidates: vec![],
        };
        db.end_attempt(task.id, 1, end, made).await.unwrap()
    }

    /// The callback notifier of the tests: loopback receivers allowed, three tries of 300 ms.
    fn loopback_callbacks() -> HttpCallbacks {
        let settings =
            Settings::from_lookup(|k| (k == "CALLBACK_ALLOWLIST").then(|| "127.0.0.0/8".into()))
                .unwrap();
        HttpCallbacks::new(&settings.callbacks).with_try_timeout(Duration::from_millis(300))
    }

    async fn tries(db: &Database, id: TaskId) -> (u32, bool) {
        let notice = db.get(id).await.unwrap().unwrap().notice.unwrap();
        (notice.tries, notice.delivered_at.is_some())
    }

    #[tokio::test]
    async fn receivers_that_never_answer_delay_no_one_else_and_the_sweep_keeps_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let (db, blobs) = crate::embedded::test_stores(dir.path());
        let now = now_millis();
        let made = now - 120_000;
        // Ten stalled receivers owed first (ids sort by time), the good one last: were the
        // callbacks delivered one at a time, it would wait behind all ten.
        let mut stalled = Vec::new();
        for i in 0..10 {
            stalled.push(owing(&db, stalled_receiver().await, made + i).await);
        }
        let (good_addr, heard) = good_receiver().await;
        let good = owing(&db, good_addr, made + 10).await;
        let bound = Duration::from_secs(60);
        let sweeper = Sweeper {
            tasks: db.clone(),
            queue: db.clone(),
            blobs,
            callbacks: loopback_callbacks(),
            bound,
        };

        let deadline = Instant::now() + Duration::from_millis(2_500);
        let report = sweeper.run(now, deadline).await.unwrap();
        assert!(
            Instant::now() <= deadline + Duration::from_secs(5),
            "the sweep kept (about) to its deadline"
        );
        assert_eq!(
            (
                report.callbacks_tried,
                report.callbacks_delivered,
                report.callbacks_left
            ),
            (11, 1, 0),
            "{report:?}"
        );
        let good_id = good.notice.as_ref().unwrap().id.clone();
        assert_eq!(
            *heard.lock().unwrap(),
            vec![good_id],
            "delivered in the one sweep"
        );
        assert_eq!(tries(&db, good.id).await, (1, true));
        for task in &stalled {
            assert_eq!(
                tries(&db, task.id).await,
                (1, false),
                "tried once, still owed"
            );
        }

        // Within the bound none is tried again; after it the stalled ones are, not the good one.
        let again = sweeper.run(now + 1_000, soon()).await.unwrap();
        assert_eq!(again.callbacks_tried, 0, "{again:?}");
        let deadline = Instant::now() + Duration::from_millis(2_500);
        let later = sweeper.run(now + 61_000, deadline).await.unwrap();
        assert_eq!(
            (
                later.callbacks_tried,
                later.callbacks_delivered,
                later.callbacks_left
            ),
            (10, 0, 0),
            "{later:?}"
        );
        for task in &stalled {
            assert_eq!(tries(&db, task.id).await, (2, false));
        }
        assert_eq!(heard.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn callbacks_a_sweep_has_no_time_for_stay_owed_and_untried() {
        let dir = tempfile::tempdir().unwrap();
        let (db, blobs) = crate::embedded::test_stores(dir.path());
        let now = now_millis();
        let (addr, heard) = good_receiver().await;
        let task = owing(&db, addr, now - 120_000).await;
        let sweeper = Sweeper {
            tasks: db.clone(),
            queue: db.clone(),
            blobs,
            callbacks: loopback_callbacks(),
            bound: Duration::from_secs(60),
        };

        // Less than a delivery's least time is left: not begun, not counted.
        let short = Instant::now() + crate::notice::LEAST_DELIVERY_TIME / 2;
        let report = sweeper.run(now, short).await.unwrap();
        assert_eq!(
            (report.callbacks_tried, report.callbacks_left),
            (0, 1),
            "{report:?}"
        );
        assert_eq!(tries(&db, task.id).await, (0, false));
        assert!(heard.lock().unwrap().is_empty());

        // The next sweep, at once (nothing was tried, so nothing waits for the bound).
        let report = sweeper.run(now, soon()).await.unwrap();
        assert_eq!(
            (report.callbacks_tried, report.callbacks_delivered),
            (1, 1),
            "{report:?}"
        );
        assert_eq!(tries(&db, task.id).await, (1, true));
    }

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
        let report = sweeper.run(now, soon()).await.unwrap();
        assert_eq!((report.stranded, report.requeued), (1, 1));
        let sent = db.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].task_id, sent[0].priority), (old.id, Priority::Low));
        assert!(db.get(old.id).await.unwrap().unwrap().requeued_at.is_some());

        let again = sweeper.run(now + 30_000, soon()).await.unwrap();
        assert_eq!(again, SweepReport::default(), "sent once per bound");
        let later = sweeper.run(now + 61_000, soon()).await.unwrap();
        assert_eq!(later.requeued, 2, "both are quiet past the bound by then");
    }
}
