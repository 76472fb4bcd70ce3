//! The worker with every outside port replaced in-process: scripted miners, a scripted
//! reference, a recording notifier, over the embedded stores. Only the ports are doubles; the
//! selection, validation, scoring and transitions are the real ones.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

use taogate_app::drain::DeliveryHandler;
use taogate_app::ports::{CallbackNotifier, Delivery, MinerClient, ReferenceEndpoints};
use taogate_core::config::Settings;
use taogate_core::domain::{Outcome, Task, now_millis};
use taogate_core::scoring::Scorer;
use tokio::time::Instant;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;

use taogate_app::ports::{
    AttemptEnd, HealthStore, NoticeLedger, QueueConsume, QueueSend, ReferenceInput, StoreError,
    TaskCreate, TaskLease, TaskReader,
};
use taogate_app::worker::*;
use taogate_bittensor::LiveDirectory;
use taogate_core::domain::{ClaimOutcome, GiveUp, MinerHealth};
use taogate_core::domain::{
    Language, Miner, MinerReply, Priority, ServiceKind, SynapseAnswer, SynapseRequest, TaskInput,
    TaskStatus,
};

const TRUTH: &str = "the council approved the new bridge budget on monday";

/// A source that [`TRUTH`] summarizes: a summary is shorter than its source.
const LONGER_SOURCE: &str = "The council approved the new bridge budget on Monday, after a long \
    debate about the cost of the repairs and the schedule for the work on the river crossing.";

/// Miner `port` answers the summary `answers[port]` at once.
struct Scripted {
    answers: Vec<&'static str>,
}

impl MinerClient for Scripted {
    async fn query(&self, miner: &Miner, _: &SynapseRequest, _: Duration) -> MinerReply {
        let text = self.answers[usize::from(miner.port)];
        MinerReply {
            outcome: Outcome::Success,
            latency: Duration::from_millis(10 + u64::from(miner.port)),
            body: Some(Arc::new(SynapseAnswer {
                output_data: Some(base64::engine::general_purpose::STANDARD.encode(text)),
                ..Default::default()
            })),
            error: None,
            memory: None,
        }
    }
}

/// A reference pipeline that knows the right summary.
struct Oracle;

impl ReferenceEndpoints for Oracle {
    fn covers(&self, kind: ServiceKind) -> bool {
        kind == ServiceKind::Summarization
    }

    fn hears_speech(&self) -> bool {
        false
    }

    async fn reference(
        &self,
        _: ServiceKind,
        _: Language,
        input: &ReferenceInput,
        _: Duration,
    ) -> Result<String, String> {
        match input {
            ReferenceInput::Text(_) => Ok(TRUTH.to_owned()),
            ReferenceInput::Audio { .. } => Err("no audio here".into()),
        }
    }

    async fn transcribe(
        &self,
        _: Bytes,
        _: &str,
        _: Language,
        _: Duration,
    ) -> Result<String, String> {
        Err("no recognizer".into())
    }
}

/// Records every callback it is asked to deliver, with its delivery id and deadline; refuses
/// the first `refusals` of them, as a receiver that is down would.
#[derive(Default, Clone)]
struct Recorder(
    Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    Arc<Mutex<Vec<String>>>,
    Arc<std::sync::atomic::AtomicU32>,
    Arc<Mutex<Vec<Instant>>>,
);

impl Recorder {
    fn refusing(refusals: u32) -> Self {
        let r = Self::default();
        r.2.store(refusals, std::sync::atomic::Ordering::SeqCst);
        r
    }

    fn ids(&self) -> Vec<String> {
        self.1.lock().unwrap().clone()
    }
}

impl CallbackNotifier for Recorder {
    type Error = String;

    async fn deliver(
        &self,
        url: &str,
        body: &serde_json::Value,
        delivery_id: &str,
        _secrets: &[String],
        deadline: Instant,
    ) -> Result<u32, Self::Error> {
        self.1.lock().unwrap().push(delivery_id.to_owned());
        self.3.lock().unwrap().push(deadline);
        let refusals = &self.2;
        if refusals
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
        {
            return Err("HTTP 503".into());
        }
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((url.to_owned(), body.clone()));
        Ok(1)
    }
}

/// The worker `settings` configure over `ports`, never asking the hotkey `own`.
/// Ports with two scripted miners that both answer [`TRUTH`].
fn two_truthful_miners<T, R, N>(
    tasks: T,
    blobs: taogate_embedded::BlobDir,
    reference: R,
    callbacks: N,
) -> WorkerPorts<T, taogate_embedded::BlobDir, LiveDirectory, Scripted, R, N> {
    WorkerPorts {
        tasks,
        blobs,
        directory: LiveDirectory::new(snapshot(2)),
        client: Scripted {
            answers: vec![TRUTH, TRUTH],
        },
        reference,
        callbacks,
    }
}

fn worker_of<T, B, D, C, R, N>(
    settings: &Settings,
    ports: WorkerPorts<T, B, D, C, R, N>,
) -> Worker<T, B, D, C, R, N> {
    let policy = AttemptPolicy::new(
        &settings.selection,
        Scorer::new(&settings.scoring),
        "own",
        taogate_app::memory::ByteBudget::new(settings.miner_client.input_memory),
    );
    Worker::new(ports, &settings.worker, policy)
}

/// An English summarization task of `text`, with a callback to `callback` if given.
fn summary_task(text: &str, callback: Option<&str>) -> Task {
    Task::new(
        ServiceKind::Summarization,
        Priority::Normal,
        Language::parse("en").unwrap(),
        TaskInput::Text { text: text.into() },
        callback.map(str::to_owned),
        now_millis(),
    )
}

/// The first delivery of `task`'s message.
fn first_delivery(task: &Task) -> Delivery {
    Delivery {
        task_id: task.id,
        priority: task.priority,
        receive_count: 1,
        receipt: String::new(),
        dead_letter: false,
    }
}

fn snapshot(n: u16) -> taogate_core::domain::MinerSnapshot {
    taogate_core::domain::MinerSnapshot {
        netuid: 1,
        network: "test".into(),
        miners: (0..n)
            .map(|uid| Miner {
                uid,
                hotkey: format!("hk{uid}"),
                ip: "1.2.3.9".parse().unwrap(),
                port: uid,
                stake: 100.0 - f64::from(uid),
                incentive: 0.0,
                chain: None,
            })
            .collect(),
        taken_at: 0,
        block: None,
    }
}

#[tokio::test]
async fn the_reference_port_outvotes_a_wrong_majority_and_the_notifier_hears_the_end() {
    let settings = Settings::from_lookup(|k| {
        [
            ("SCORING_MODE", "reference"),
            ("REFERENCE_URL", "http://127.0.0.1:9/never-called"),
            ("MAX_MINERS_PER_REQUEST", "3"),
            ("SELECTION_EXPLORATION", "0"),
        ]
        .iter()
        .find(|(n, _)| *n == k)
        .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let recorder = Recorder::default();
    let ports = WorkerPorts {
        tasks: db.clone(),
        blobs,
        directory: LiveDirectory::new(snapshot(3)),
        // Miners 0 and 1 agree on a wrong summary; miner 2 says what the reference says.
        client: Scripted {
            answers: vec![
                "stock markets fell sharply as investors feared rising rates",
                "stock markets fell sharply as investors feared rising rates",
                TRUTH,
            ],
        },
        reference: Oracle,
        callbacks: recorder.clone(),
    };
    let worker = worker_of(&settings, ports);

    let task = summary_task(
        "At Monday's meeting the council approved the budget for the new bridge.",
        Some("https://example.com/hook"),
    );
    db.insert(&task).await.unwrap();
    let delivery = first_delivery(&task);
    assert_eq!(worker.handle(&delivery).await, Disposition::Done);

    let done = db.get(task.id).await.unwrap().unwrap();
    assert_eq!(
        done.status,
        TaskStatus::Completed,
        "{:?}",
        done.error_message
    );
    assert_eq!(done.result.as_ref().unwrap().miner_uid, 2);
    assert!(
        done.candidates
            .iter()
            .all(|c| c.scores.as_ref().is_some_and(|s| s.basis == "reference")),
        "{:?}",
        done.candidates
    );
    let calls = recorder.0.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, "https://example.com/hook");
    assert_eq!(calls[0].1["status"], "completed");
    assert_eq!(calls[0].1["task_id"], task.id.to_string());
}

/// A task id made `age` ago.
fn id_made_ago(age: Duration) -> taogate_core::domain::TaskId {
    let then = std::time::SystemTime::now() - age;
    let since = then.duration_since(std::time::UNIX_EPOCH).unwrap();
    let stamp = uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos());
    uuid::Uuid::new_v7(stamp).to_string().parse().unwrap()
}

#[tokio::test]
async fn with_no_miner_to_ask_a_task_waits_without_an_attempt_until_it_is_too_old() {
    let settings =
        Settings::from_lookup(|k| (k == "MAX_TASK_AGE").then(|| "600".to_owned())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let mut silent = snapshot(2);
    for miner in &mut silent.miners {
        miner.ip = "0.0.0.0".parse().unwrap(); // registered, serving no axon
    }
    let recorder = Recorder::default();
    let ports = WorkerPorts {
        tasks: db.clone(),
        blobs,
        directory: LiveDirectory::new(silent),
        client: Scripted { answers: vec![] },
        reference: Oracle,
        callbacks: recorder.clone(),
    };
    let worker = worker_of(&settings, ports);
    let text = || TaskInput::Text {
        text: "nobody is listening".into(),
    };
    let en = Language::parse("en").unwrap();
    let young = Task::new(
        ServiceKind::Tts,
        Priority::Normal,
        en,
        text(),
        None,
        now_millis(),
    );
    let mut old = Task::new(
        ServiceKind::Tts,
        Priority::Normal,
        en,
        text(),
        Some("https://example.com/hook".into()),
        now_millis(),
    );
    old.id = id_made_ago(Duration::from_secs(601));
    for task in [&young, &old] {
        db.insert(task).await.unwrap();
    }
    let delivery = first_delivery;

    for _ in 0..3 {
        assert_eq!(
            worker.handle(&delivery(&young)).await,
            Disposition::Postpone(WAIT_BACKOFF)
        );
    }
    let waiting = db.get(young.id).await.unwrap().unwrap();
    assert_eq!((waiting.status, waiting.attempts), (TaskStatus::Pending, 0));

    assert_eq!(worker.handle(&delivery(&old)).await, Disposition::Done);
    let given_up = db.get(old.id).await.unwrap().unwrap();
    assert_eq!(given_up.status, TaskStatus::Failed);
    let reason = given_up.error_message.unwrap_or_default();
    assert!(reason.contains("no miner was available for 60"), "{reason}");
    assert!(reason.contains("serves at an address"), "{reason}");
    assert_eq!(recorder.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_dead_lettered_task_fails_with_the_reason_and_its_submitter_is_told() {
    let settings =
        Settings::from_lookup(|k| (k == "MAX_ATTEMPTS").then(|| "2".to_owned())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let recorder = Recorder::default();
    let ports = WorkerPorts {
        tasks: db.clone(),
        blobs,
        directory: LiveDirectory::new(snapshot(1)),
        client: Scripted {
            answers: vec![TRUTH],
        },
        reference: Oracle,
        callbacks: recorder.clone(),
    };
    let worker = worker_of(&settings, ports);
    let task = Task::new(
        ServiceKind::Tts,
        Priority::Normal,
        Language::parse("en").unwrap(),
        TaskInput::Text {
            text: "never finished".into(),
        },
        Some("https://example.com/hook".into()),
        now_millis(),
    );
    db.insert(&task).await.unwrap();
    db.send(task.id, task.priority).await.unwrap();
    // Three deliveries whose worker was stopped before it ended the attempt: this store
    // dead-letters on the receive after the third.
    for _ in 0..3 {
        let d = db
            .receive(1, Duration::from_secs(60))
            .await
            .unwrap()
            .remove(0);
        assert!(!d.dead_letter);
        db.claim(task.id, now_millis() - 120_000, Duration::from_secs(1))
            .await
            .unwrap();
        db.release(&d.receipt, Duration::ZERO).await.unwrap();
    }
    let dead = db
        .receive(1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    assert!(dead.dead_letter, "{dead:?}");
    assert_eq!(dead.task_id, task.id);
    assert_eq!(worker.handle(&dead).await, Disposition::Done);
    db.ack(&dead.receipt).await.unwrap();

    let failed = db.get(task.id).await.unwrap().unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    let reason = failed.error_message.unwrap_or_default();
    assert!(reason.contains("dead letters"), "{reason}");
    let calls = recorder.0.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].1["status"], "failed");
    assert!(
        db.dead_letters().await.unwrap().is_empty(),
        "explained, so gone"
    );
    // A second copy of the dead letter finds the task finished and does nothing.
    assert_eq!(worker.handle(&dead).await, Disposition::Done);
    assert_eq!(recorder.0.lock().unwrap().len(), 1);
}

/// A reference endpoint that never answers, whatever deadline it is given.
struct Hanging;

impl ReferenceEndpoints for Hanging {
    fn covers(&self, _: ServiceKind) -> bool {
        true
    }

    fn hears_speech(&self) -> bool {
        false
    }

    async fn reference(
        &self,
        _: ServiceKind,
        _: Language,
        _: &ReferenceInput,
        _: Duration,
    ) -> Result<String, String> {
        std::future::pending().await
    }

    async fn transcribe(
        &self,
        _: Bytes,
        _: &str,
        _: Language,
        _: Duration,
    ) -> Result<String, String> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn an_attempt_the_invocation_cannot_finish_is_handed_back_uncounted() {
    let settings = Settings::from_lookup(|k| match k {
        "SCORING_MODE" => Some("reference".to_owned()),
        "REFERENCE_URL" => Some("http://127.0.0.1:9/hangs".to_owned()),
        "TASK_TIMEOUT" => Some("0.2".to_owned()),
        _ => None,
    })
    .unwrap();
    let lease = settings.worker.lease();
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let ports = two_truthful_miners(db.clone(), blobs, Hanging, Recorder::default());
    let worker = worker_of(&settings, ports);
    let task = summary_task(LONGER_SOURCE, None);
    db.insert(&task).await.unwrap();
    let delivery = first_delivery(&task);

    // Too little time left for a whole lease: not even claimed, and not counted.
    let short = Instant::now() + lease;
    assert_eq!(
        worker.handle_before(&delivery, short).await,
        Disposition::Postpone(HANDBACK_DELAY)
    );
    let untouched = db.get(task.id).await.unwrap().unwrap();
    assert_eq!(
        (untouched.status, untouched.attempts),
        (TaskStatus::Pending, 0)
    );

    // Enough for a lease, but the attempt hangs on its reference: cut within its lease (so
    // before the deadline), uncounted.
    let deadline = Instant::now() + lease + DEADLINE_MARGIN + Duration::from_millis(300);
    let started = Instant::now();
    assert_eq!(
        worker.handle_before(&delivery, deadline).await,
        Disposition::Retry(Duration::ZERO)
    );
    assert!(
        Instant::now() <= deadline,
        "answered before the invocation ended"
    );
    assert!(
        started.elapsed() >= lease - DEADLINE_MARGIN,
        "{:?}",
        started.elapsed()
    );
    let handed_back = db.get(task.id).await.unwrap().unwrap();
    assert_eq!(
        (
            handed_back.status,
            handed_back.attempts,
            handed_back.lease_until
        ),
        (TaskStatus::Processing, 0, None)
    );
}

#[tokio::test]
async fn a_callback_refused_at_the_end_is_delivered_later_by_the_sweeper_under_the_same_id() {
    let settings = Settings::from_lookup(|_| None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let receiver = Recorder::refusing(1);
    let ports = two_truthful_miners(db.clone(), blobs.clone(), Oracle, receiver.clone());
    let worker = worker_of(&settings, ports);
    let task = summary_task(
        "At Monday's meeting the council approved the budget for the new bridge.",
        Some("https://example.com/hook"),
    );
    db.insert(&task).await.unwrap();
    let delivery = first_delivery(&task);
    assert_eq!(worker.handle(&delivery).await, Disposition::Done);
    let done = db.get(task.id).await.unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Completed);
    let notice = done.notice.clone().unwrap();
    assert_eq!(
        (notice.tries, notice.delivered_at),
        (1, None),
        "refused: still owed"
    );

    let bound = Duration::from_secs(60);
    let sweeper = taogate_app::sweep::Sweeper {
        tasks: db.clone(),
        queue: db.clone(),
        blobs,
        callbacks: receiver.clone(),
        bound,
    };
    let within = || Instant::now() + Duration::from_secs(30);
    let soon = sweeper.run(now_millis(), within()).await.unwrap();
    assert_eq!(soon.callbacks_tried, 0, "not due within the bound");
    let later = sweeper.run(now_millis() + 61_000, within()).await.unwrap();
    assert_eq!((later.callbacks_tried, later.callbacks_delivered), (1, 1));
    let after = sweeper.run(now_millis() + 200_000, within()).await.unwrap();
    assert_eq!(after.callbacks_tried, 0, "delivered: owed no more");

    assert_eq!(receiver.ids(), vec![notice.id.clone(), notice.id.clone()]);
    let delivered = receiver.0.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].1["status"], "completed");
    let stored = db.get(task.id).await.unwrap().unwrap().notice.unwrap();
    assert_eq!(stored.tries, 2);
    assert!(stored.delivered_at.is_some());
}

#[tokio::test]
async fn the_callback_at_the_end_keeps_to_the_invocation_deadline() {
    let settings = Settings::from_lookup(|k| match k {
        "TASK_TIMEOUT" => Some("0.2".to_owned()),
        _ => None,
    })
    .unwrap();
    let lease = settings.worker.lease();
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let receiver = Recorder::default();
    let ports = two_truthful_miners(db.clone(), blobs, Oracle, receiver.clone());
    let worker = worker_of(&settings, ports);
    let text = "At Monday's meeting the council approved the budget for the new bridge.";

    // In an invocation: the delivery ends by its deadline less the margin, which comes
    // before the callback's own deadline.
    let task = summary_task(text, Some("https://example.com/hook"));
    db.insert(&task).await.unwrap();
    let deadline = Instant::now() + lease + DEADLINE_MARGIN + Duration::from_millis(300);
    assert_eq!(
        worker.handle_before(&first_delivery(&task), deadline).await,
        Disposition::Done
    );
    assert_eq!(
        receiver.3.lock().unwrap().clone(),
        vec![deadline - DEADLINE_MARGIN]
    );

    // Outside one (the local runtime's workers): its own deadline only.
    let task = summary_task(text, Some("https://example.com/hook"));
    db.insert(&task).await.unwrap();
    let before = Instant::now();
    assert_eq!(
        worker.handle(&first_delivery(&task)).await,
        Disposition::Done
    );
    let own = receiver.3.lock().unwrap()[1];
    assert!(
        own >= before + taogate_app::notify::DELIVERY_DEADLINE
            && own <= Instant::now() + taogate_app::notify::DELIVERY_DEADLINE,
        "{:?} after the start",
        own - before
    );
}

/// The embedded store, rigged: ending an attempt fails while `failures` lasts (a database
/// that errors at the worst moment, the final write of the last attempt), and claiming the
/// task `panic_on` panics (a bug that strikes one record only), counted in `struck`.
#[derive(Default)]
struct Rigged {
    db: Option<taogate_embedded::Database>,
    failures: std::sync::atomic::AtomicU32,
    panic_on: Option<taogate_core::domain::TaskId>,
    struck: Arc<std::sync::atomic::AtomicU32>,
}

impl Rigged {
    fn over(db: &taogate_embedded::Database) -> Self {
        Self {
            db: Some(db.clone()),
            ..Self::default()
        }
    }

    fn db(&self) -> &taogate_embedded::Database {
        self.db.as_ref().expect("a rigged store wraps a database")
    }
}

impl TaskLease for Rigged {
    async fn input_size(
        &self,
        id: taogate_core::domain::TaskId,
    ) -> Result<Option<u64>, StoreError> {
        self.db().input_size(id).await
    }

    async fn claim_as(
        &self,
        id: taogate_core::domain::TaskId,
        now: taogate_core::domain::Millis,
        lease: Duration,
        holder: Option<String>,
    ) -> Result<ClaimOutcome, StoreError> {
        if self.panic_on == Some(id) {
            self.struck
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            panic!("injected panic while claiming {id}");
        }
        self.db().claim_as(id, now, lease, holder).await
    }

    async fn give_up(
        &self,
        id: taogate_core::domain::TaskId,
        reason: String,
        now: taogate_core::domain::Millis,
    ) -> Result<GiveUp, StoreError> {
        self.db().give_up(id, reason, now).await
    }

    async fn end_attempt_as(
        &self,
        id: taogate_core::domain::TaskId,
        attempt: u32,
        holder: Option<String>,
        end: AttemptEnd,
        now: taogate_core::domain::Millis,
    ) -> Result<Task, StoreError> {
        let failing = self
            .failures
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok();
        if failing {
            return Err(StoreError::backend(anyhow::anyhow!("injected: throttled")));
        }
        self.db()
            .end_attempt_as(id, attempt, holder, end, now)
            .await
    }
}

impl NoticeLedger for Rigged {
    async fn note_notice(
        &self,
        id: taogate_core::domain::TaskId,
        delivered: bool,
        now: taogate_core::domain::Millis,
    ) -> Result<(), StoreError> {
        self.db().note_notice(id, delivered, now).await
    }
}

impl taogate_app::ports::KeyLookup for Rigged {
    async fn key(
        &self,
        id: &taogate_core::domain::KeyId,
    ) -> Result<Option<taogate_core::domain::ApiKey>, StoreError> {
        self.db().key(id).await
    }
}

impl HealthStore for Rigged {
    async fn load_health(&self, hotkeys: Vec<String>) -> Result<Vec<MinerHealth>, StoreError> {
        self.db().load_health(hotkeys).await
    }

    async fn save_health(&self, records: Vec<MinerHealth>) -> Result<(), StoreError> {
        self.db().save_health(records).await
    }

    async fn observe_health(
        &self,
        observations: Vec<taogate_core::domain::Observation>,
    ) -> Result<Vec<MinerHealth>, StoreError> {
        self.db().observe_health(observations).await
    }
}

#[tokio::test]
async fn a_store_failing_on_the_last_attempt_still_ends_the_task_with_one_callback() {
    let settings = Settings::from_lookup(|k| match k {
        "MAX_ATTEMPTS" => Some("1".to_owned()),
        "TASK_TIMEOUT" => Some("0.2".to_owned()),
        _ => None,
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let receiver = Recorder::default();
    let rigged = Rigged {
        failures: std::sync::atomic::AtomicU32::new(1),
        ..Rigged::over(&db)
    };
    let ports = two_truthful_miners(rigged, blobs, Oracle, receiver.clone());
    let worker = worker_of(&settings, ports);
    let task = summary_task(
        "At Monday's meeting the council approved the budget for the new bridge.",
        Some("https://example.com/hook"),
    );
    db.insert(&task).await.unwrap();
    db.send(task.id, task.priority).await.unwrap();

    // The queue and the worker as the drain loop runs them, with delays cut short.
    let started = Instant::now();
    let done = loop {
        let stored = db.get(task.id).await.unwrap().unwrap();
        if stored.status.is_terminal() && !receiver.ids().is_empty() {
            break stored;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stranded: {stored:?}"
        );
        let Some(d) = db.receive(1, Duration::from_secs(60)).await.unwrap().pop() else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        match worker.handle(&d).await {
            Disposition::Done => db.ack(&d.receipt).await.unwrap(),
            Disposition::Retry(delay) | Disposition::Postpone(delay) => {
                db.release(&d.receipt, delay.min(Duration::from_millis(300)))
                    .await
                    .unwrap();
            }
        }
    };
    // The one attempt's result could not be stored; its message went to the dead letters once
    // the lease ran out, and the task failed with that reason.
    assert_eq!(done.status, TaskStatus::Failed, "{done:?}");
    assert!(
        done.error_message
            .as_deref()
            .unwrap_or_default()
            .contains("dead letters"),
        "{:?}",
        done.error_message
    );
    assert_eq!(
        receiver.ids().len(),
        1,
        "one callback: {:?}",
        receiver.ids()
    );
    assert!(
        db.dead_letters().await.unwrap().is_empty(),
        "nothing left unexplained"
    );
}

/// Settings for the quorum tests: consensus, two miners first, no hedge, `escalation` more.
fn quorum_settings(escalation: &str) -> Settings {
    Settings::from_lookup(|k| {
        [
            ("MAX_MINERS_PER_REQUEST", "2"),
            ("REQUIRED_ANSWERS", "2"),
            ("HEDGE_MINERS", "0"),
            ("ESCALATION_MINERS", escalation),
            ("SELECTION_EXPLORATION", "0"),
        ]
        .iter()
        .find(|(n, _)| *n == k)
        .map(|(_, v)| (*v).to_owned())
    })
    .unwrap()
}

const SOURCE: &str = "At Monday's meeting the council approved the new bridge budget after a \
    long debate. Residents had asked for the bridge for years, and the mayor said work would \
    start in spring. The opposition voted against, citing the cost of the project.";

/// Miner 1 answers fastest with a summary of something else; miners 2 and 3 say the same
/// right thing. Only 1 and 2 are in the first selection (uid 0 serves no axon).
const SPLIT: [&str; 4] = [
    "",
    "stock markets fell sharply as investors feared rising interest rates again",
    TRUTH,
    TRUTH,
];

async fn summarized_by(
    settings: &Settings,
    health: Vec<MinerHealth>,
    answers: [&'static str; 4],
) -> (Task, taogate_embedded::Database) {
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    db.save_health(health).await.unwrap();
    let ports = WorkerPorts {
        tasks: db.clone(),
        blobs,
        directory: LiveDirectory::new(snapshot(4)),
        client: Scripted {
            answers: answers.to_vec(),
        },
        reference: Oracle,
        callbacks: Recorder::default(),
    };
    let worker = worker_of(settings, ports);
    let task = summary_task(SOURCE, None);
    db.insert(&task).await.unwrap();
    assert_eq!(
        worker.handle(&first_delivery(&task)).await,
        Disposition::Done
    );
    std::mem::forget(dir);
    (db.get(task.id).await.unwrap().unwrap(), db)
}

/// Two plausible summaries of the source that do not agree with each other (ROUGE-L F1 below
/// `ROUGE_FULL`), both above the accuracy floor; miner 1 is the faster.
const PARTIAL: [&str; 4] = [
    "",
    "residents waited years for the bridge and the mayor expects work in spring",
    TRUTH,
    TRUTH,
];

#[tokio::test]
async fn two_disagreeing_answers_ask_a_reserve_miner_and_the_majority_wins() {
    let (done, _) = summarized_by(&quorum_settings("2"), Vec::new(), SPLIT).await;
    assert_eq!(
        done.status,
        TaskStatus::Completed,
        "{:?}",
        done.error_message
    );
    let result = done.result.unwrap();
    assert!(
        [2, 3].contains(&result.miner_uid),
        "the agreeing pair wins, not the fastest: {result:?}"
    );
    let quorum = result.quorum.unwrap();
    assert_eq!(
        (quorum.valid_answers, quorum.supporting, quorum.escalated),
        (3, 2, 1),
        "{quorum:?}"
    );
    assert_eq!(quorum.confidence, taogate_core::domain::Confidence::High);
    assert_eq!(done.candidates.len(), 3, "the reserve is a candidate too");
}

#[tokio::test]
async fn with_no_one_left_to_ask_the_track_record_decides_before_latency_at_low_confidence() {
    // Miner 2 has a long good record; miner 1 (faster) has none.
    let mut record = MinerHealth::new("hk2");
    for _ in 0..10 {
        record.observe(Outcome::Success, 50.0, Some(0.9), now_millis());
    }
    let (done, _) = summarized_by(&quorum_settings("0"), vec![record], PARTIAL).await;
    let result = done.result.unwrap();
    assert_eq!(result.miner_uid, 2, "{result:?}");
    let quorum = result.quorum.unwrap();
    assert_eq!(quorum.confidence, taogate_core::domain::Confidence::Low);
    assert_eq!((quorum.valid_answers, quorum.supporting), (2, 1));
    assert!(
        quorum.note.unwrap_or_default().contains("track record"),
        "the result says how it was chosen"
    );

    // Without any record, the scores decide, and the result still says it is unsure.
    let (done, _) = summarized_by(&quorum_settings("0"), Vec::new(), PARTIAL).await;
    let result = done.result.unwrap();
    assert_eq!(result.miner_uid, 1);
    assert_eq!(
        result.quorum.unwrap().confidence,
        taogate_core::domain::Confidence::Low
    );
}

#[tokio::test]
async fn a_panic_on_one_task_hands_back_only_its_message_and_the_slot_goes_on() {
    let settings = quorum_settings("0");
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let tasks: Vec<Task> = (0..3).map(|_| summary_task(SOURCE, None)).collect();
    for t in &tasks {
        db.insert(t).await.unwrap();
        db.send(t.id, t.priority).await.unwrap();
    }
    let struck = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let ports = WorkerPorts {
        tasks: Rigged {
            panic_on: Some(tasks[1].id),
            struck: struck.clone(),
            ..Rigged::over(&db)
        },
        blobs,
        directory: LiveDirectory::new(snapshot(4)),
        client: Scripted {
            answers: vec!["", TRUTH, TRUTH, TRUTH],
        },
        reference: Oracle,
        callbacks: Recorder::default(),
    };
    let worker = Arc::new(worker_of(&settings, ports));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // One slot, one message at a time, in order: the third task is handled only if the slot
    // outlives the second's panic.
    let pool = tokio::spawn(taogate_app::drain::drain(
        Arc::new(db.clone()),
        worker,
        taogate_app::drain::DrainOptions {
            slots: 1,
            batch: 1,
            visibility: Duration::from_secs(60),
            idle: Duration::from_millis(50),
        },
        stopped,
    ));
    let started = Instant::now();
    loop {
        let first = db.get(tasks[0].id).await.unwrap().unwrap();
        let third = db.get(tasks[2].id).await.unwrap().unwrap();
        if first.status.is_terminal() && third.status.is_terminal() {
            assert_eq!(first.status, TaskStatus::Completed);
            assert_eq!(third.status, TaskStatus::Completed);
            assert_eq!((first.attempts, third.attempts), (1, 1));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the slot died with the panic: {third:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored = db.get(tasks[1].id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts),
        (TaskStatus::Pending, 0),
        "nothing else changed"
    );
    // Its message was handed back at once (not left to its 60 s visibility): it comes again
    // after the panic back-off.
    let first_panic = Instant::now();
    while struck.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(
            first_panic.elapsed() < taogate_app::drain::PANIC_BACKOFF + Duration::from_secs(3),
            "the message was not handed back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    pool.await.unwrap();
}

/// A queue whose first receive panics (a bug outside any message's handling).
struct PanicsOnce {
    db: taogate_embedded::Database,
    armed: std::sync::atomic::AtomicBool,
}

impl QueueConsume for PanicsOnce {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError> {
        assert!(
            !self.armed.swap(false, std::sync::atomic::Ordering::SeqCst),
            "injected panic in receive"
        );
        self.db.receive(max, visibility).await
    }

    async fn ack(&self, receipt: &str) -> Result<(), StoreError> {
        self.db.ack(receipt).await
    }

    async fn release(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        self.db.release(receipt, delay).await
    }

    async fn postpone(&self, delivery: &Delivery, delay: Duration) -> Result<(), StoreError> {
        self.db.postpone(delivery, delay).await
    }
}

#[tokio::test]
async fn a_slot_that_panics_outside_a_message_is_replaced() {
    let settings = quorum_settings("0");
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let task = summary_task(SOURCE, None);
    db.insert(&task).await.unwrap();
    db.send(task.id, task.priority).await.unwrap();
    let ports = WorkerPorts {
        tasks: db.clone(),
        blobs,
        directory: LiveDirectory::new(snapshot(4)),
        client: Scripted {
            answers: vec!["", TRUTH, TRUTH, TRUTH],
        },
        reference: Oracle,
        callbacks: Recorder::default(),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let pool = tokio::spawn(taogate_app::drain::drain(
        Arc::new(PanicsOnce {
            db: db.clone(),
            armed: std::sync::atomic::AtomicBool::new(true),
        }),
        Arc::new(worker_of(&settings, ports)),
        taogate_app::drain::DrainOptions {
            slots: 1,
            batch: 1,
            visibility: Duration::from_secs(60),
            idle: Duration::from_millis(50),
        },
        stopped,
    ));
    let started = Instant::now();
    while !db.get(task.id).await.unwrap().unwrap().status.is_terminal() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the only slot died and was not replaced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    pool.await.unwrap();
}

/// Miners that answer `summary` after a pause, counting the queries in flight and the most
/// ever in flight at once.
#[derive(Clone, Default)]
struct Paced {
    summary: String,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<std::sync::atomic::AtomicUsize>,
}

impl MinerClient for Paced {
    async fn query(&self, _: &Miner, _: &SynapseRequest, _: Duration) -> MinerReply {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        // Long enough for attempts started together to overlap whatever the machine's load.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.in_flight.fetch_sub(1, SeqCst);
        MinerReply {
            outcome: Outcome::Success,
            latency: Duration::from_millis(200),
            body: Some(Arc::new(SynapseAnswer {
                output_data: Some(base64::engine::general_purpose::STANDARD.encode(&self.summary)),
                ..Default::default()
            })),
            error: None,
            memory: None,
        }
    }
}

/// Three texts of 30,000 characters (each held as 70,000 bytes with its base64 form) handled at
/// once by a worker whose `MAX_INPUT_MEMORY` is `budget`; returns the most attempts that were
/// ever at the miners at once (one miner per attempt).
async fn attempts_at_once(budget: &str) -> usize {
    let settings = Settings::from_lookup(|k| {
        [
            ("MAX_MINERS_PER_REQUEST", "1"),
            ("REQUIRED_ANSWERS", "1"),
            ("HEDGE_MINERS", "0"),
            ("ESCALATION_MINERS", "0"),
            ("SELECTION_EXPLORATION", "0"),
            ("MAX_INPUT_MEMORY", budget),
        ]
        .iter()
        .find(|(n, _)| *n == k)
        .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    // Words that never repeat, so that the summary is not judged a loop.
    let mut text = String::new();
    for i in 0.. {
        if text.len() >= 30_000 {
            break;
        }
        text.push_str(&format!("topic{i} "));
    }
    text.truncate(30_000);
    // A tenth of the text: within the accepted compression.
    let client = Paced {
        summary: text[..3_000].to_owned(),
        ..Paced::default()
    };
    let ports = WorkerPorts {
        tasks: db.clone(),
        blobs,
        directory: LiveDirectory::new(snapshot(2)),
        client: client.clone(),
        reference: Oracle,
        callbacks: Recorder::default(),
    };
    let worker = worker_of(&settings, ports);
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let task = summary_task(&text, None);
        db.insert(&task).await.unwrap();
        tasks.push(task);
    }
    let deliveries: Vec<Delivery> = tasks.iter().map(first_delivery).collect();
    let handled = futures::future::join_all(deliveries.iter().map(|d| worker.handle(d))).await;
    for (task, disposition) in tasks.iter().zip(handled) {
        let stored = db.get(task.id).await.unwrap().unwrap();
        assert_eq!(disposition, Disposition::Done, "{:?}", stored.candidates);
        assert_eq!(
            (stored.status, stored.attempts),
            (TaskStatus::Completed, 1),
            "{:?}",
            stored.error_message
        );
    }
    client.most.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn attempts_whose_inputs_pass_the_input_budget_wait_for_each_other() {
    // 100 KiB holds one 70,000-byte input: the three attempts go to the miners one by one.
    assert_eq!(attempts_at_once("102400").await, 1);
    // 1 MiB holds all three: they go at once.
    assert_eq!(attempts_at_once("1048576").await, 3);
}

#[tokio::test]
async fn a_task_whose_input_finds_no_room_before_the_invocation_ends_is_handed_back_unclaimed() {
    let settings = Settings::from_lookup(|k| match k {
        "TASK_TIMEOUT" => Some("0.2".to_owned()),
        "MAX_INPUT_MEMORY" => Some("102400".to_owned()),
        _ => None,
    })
    .unwrap();
    let lease = settings.worker.lease();
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let ports = two_truthful_miners(db.clone(), blobs, Oracle, Recorder::default());
    let worker = worker_of(&settings, ports);
    // Other records hold the whole budget for as long as this invocation lasts.
    let held = worker.policy().inputs.reserve(100 * 1024).await.unwrap();
    let task = summary_task(LONGER_SOURCE, None);
    db.insert(&task).await.unwrap();

    let deadline = Instant::now() + lease + DEADLINE_MARGIN + Duration::from_millis(300);
    assert_eq!(
        worker.handle_before(&first_delivery(&task), deadline).await,
        Disposition::Postpone(HANDBACK_DELAY)
    );
    assert!(
        Instant::now() <= deadline,
        "answered before the invocation ended"
    );
    let untouched = db.get(task.id).await.unwrap().unwrap();
    assert_eq!(
        (untouched.status, untouched.attempts),
        (TaskStatus::Pending, 0),
        "waiting for room used no attempt and no lease"
    );
    // With room, the same delivery goes through.
    drop(held);
    assert_eq!(
        worker.handle(&first_delivery(&task)).await,
        Disposition::Done
    );
}

/// Waiting is not failing, for every hand-back: a task handed back more times than the queue's
/// dead-letter limit (for lack of room in the input budget, then because a validator holds it)
/// is never dead-lettered and completes once it can be claimed.
#[tokio::test]
async fn a_task_handed_back_more_often_than_the_dead_letter_limit_still_completes() {
    let settings = Settings::from_lookup(|k| match k {
        "TASK_TIMEOUT" => Some("0.2".to_owned()),
        "MAX_INPUT_MEMORY" => Some("102400".to_owned()),
        "MAX_ATTEMPTS" => Some("2".to_owned()),
        _ => None,
    })
    .unwrap();
    let lease = settings.worker.lease();
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let blobs_for_finisher = blobs.clone();
    let ports = two_truthful_miners(db.clone(), blobs, Oracle, Recorder::default());
    let worker = worker_of(&settings, ports);
    let task = summary_task(LONGER_SOURCE, None);
    db.insert(&task).await.unwrap();
    db.send(task.id, task.priority).await.unwrap();
    // Receives the task's message and settles it as the drain loop does.
    let deliver = |deadline: Instant| {
        let (db, worker) = (db.clone(), &worker);
        async move {
            let delivery = loop {
                let mut batch = db.receive(1, Duration::from_secs(30)).await.unwrap();
                if let Some(d) = batch.pop() {
                    break d;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            assert!(!delivery.dead_letter, "handed back, never dead-lettered");
            let disposition = worker.handle_before(&delivery, deadline).await;
            match disposition {
                Disposition::Done => db.ack(&delivery.receipt).await.unwrap(),
                Disposition::Retry(d) => db.release(&delivery.receipt, d).await.unwrap(),
                Disposition::Postpone(d) => db.postpone(&delivery, d).await.unwrap(),
            }
            disposition
        }
    };
    // No room in the input budget, three times.
    let held = worker.policy().inputs.reserve(100 * 1024).await.unwrap();
    for _ in 0..3 {
        let deadline = Instant::now() + lease + DEADLINE_MARGIN + Duration::from_millis(200);
        let handed = deliver(deadline).await;
        assert_eq!(handed, Disposition::Postpone(HANDBACK_DELAY));
    }
    drop(held);
    // A validator leases it: every delivery meanwhile waits, three times more.
    let leased = db
        .claim_as(
            task.id,
            now_millis(),
            Duration::from_secs(60),
            Some(taogate_core::domain::lease_token_digest("tgl_test")),
        )
        .await
        .unwrap();
    assert!(matches!(leased, ClaimOutcome::Claimed(_)));
    for _ in 0..3 {
        let delivery = Delivery {
            receive_count: 1,
            ..first_delivery(&task)
        };
        assert!(matches!(
            worker.handle(&delivery).await,
            Disposition::Postpone(_)
        ));
    }
    // The lease ends unanswered (the validator gave up): the next delivery completes it. (A
    // worker with the default lease finishes the attempt: a 0.2 s lease is for the hand-backs.)
    let given_back = db
        .end_attempt(task.id, 1, AttemptEnd::Interrupted, now_millis())
        .await
        .unwrap();
    assert_eq!(given_back.attempts, 0);
    let unhurried =
        Settings::from_lookup(|k| (k == "MAX_ATTEMPTS").then(|| "2".to_owned())).unwrap();
    let finisher = worker_of(
        &unhurried,
        two_truthful_miners(db.clone(), blobs_for_finisher, Oracle, Recorder::default()),
    );
    let delivery = loop {
        if let Some(d) = db.receive(1, Duration::from_secs(30)).await.unwrap().pop() {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!delivery.dead_letter, "handed back, never dead-lettered");
    assert_eq!(finisher.handle(&delivery).await, Disposition::Done);
    let done = db.get(task.id).await.unwrap().unwrap();
    assert_eq!(
        done.status,
        TaskStatus::Completed,
        "{:?}",
        done.error_message
    );
}

/// Every miner speaks the same tone: valid speech for any text.
struct Speaking(f64);

impl MinerClient for Speaking {
    async fn query(&self, miner: &Miner, _: &SynapseRequest, _: Duration) -> MinerReply {
        let samples = taogate_core::audio::tone(1.5, self.0, 16_000);
        let wav = taogate_core::audio::wav_pcm16(&samples, 16_000, None);
        MinerReply {
            outcome: Outcome::Success,
            latency: Duration::from_millis(10 + u64::from(miner.port)),
            body: Some(Arc::new(SynapseAnswer {
                output_data: Some(base64::engine::general_purpose::STANDARD.encode(wav)),
                ..Default::default()
            })),
            error: None,
            memory: None,
        }
    }
}

/// A finished result is never replaced: a stale attempt that stores its speech after another
/// attempt completed the task writes a key of its own, loses the conditional end, and the
/// audio the task serves is unchanged.
#[tokio::test]
async fn a_stale_attempts_speech_never_replaces_the_served_audio() {
    let settings = Settings::from_lookup(|_| None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let ports = |tone: f64| WorkerPorts {
        tasks: db.clone(),
        blobs: blobs.clone(),
        directory: LiveDirectory::new(snapshot(3)),
        client: Speaking(tone),
        reference: Oracle,
        callbacks: Recorder::default(),
    };
    let (current, stale_worker) = (
        worker_of(&settings, ports(220.0)),
        worker_of(&settings, ports(880.0)),
    );
    let task = Task::new(
        ServiceKind::Tts,
        Priority::Normal,
        Language::parse("en").unwrap(),
        TaskInput::Text {
            text: "Spoken once, kept once.".into(),
        },
        None,
        now_millis(),
    );
    db.insert(&task).await.unwrap();
    // Attempt 1 is claimed by a worker whose lease then runs out...
    let ClaimOutcome::Claimed(stale) = db
        .claim(task.id, now_millis() - 120_000, Duration::from_secs(1))
        .await
        .unwrap()
    else {
        panic!("claimable");
    };
    // ...and attempt 2 completes the task.
    assert_eq!(
        current.handle(&first_delivery(&task)).await,
        Disposition::Done
    );
    let done = db.get(task.id).await.unwrap().unwrap();
    assert_eq!((done.status, done.attempts), (TaskStatus::Completed, 2));
    let served_key = taogate_app::views::TaskView::audio_key(&done)
        .unwrap()
        .to_owned();
    let served = taogate_app::ports::BlobGet::get(&blobs, &served_key)
        .await
        .unwrap()
        .unwrap();
    // The stale attempt finishes late: it stores its speech, then loses the conditional end.
    let snapshot = Arc::new(snapshot(3));
    let late = stale_worker
        .attempt(&stale, snapshot, &std::collections::HashMap::new())
        .await;
    let Ok((result, candidates, _)) = late else {
        panic!("the stale attempt found an answer");
    };
    let taogate_core::domain::TaskOutput::Audio { blob_key, .. } = &result.output else {
        panic!("speech");
    };
    assert_ne!(blob_key, &served_key, "a key of its own");
    let ended = db
        .end_attempt(
            task.id,
            stale.attempts,
            AttemptEnd::Completed { result, candidates },
            now_millis(),
        )
        .await;
    assert!(matches!(ended, Err(StoreError::Conflict(_))), "{ended:?}");
    let after = db.get(task.id).await.unwrap().unwrap();
    assert_eq!(
        taogate_app::views::TaskView::audio_key(&after),
        Some(served_key.as_str())
    );
    let still = taogate_app::ports::BlobGet::get(&blobs, &served_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still, served, "the served audio is unchanged");
}
