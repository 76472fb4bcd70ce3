//! Fault injection with the real binaries on LocalStack and moto: the worker, submit and
//! sweeper functions run as processes behind the Runtime API emulator, the worker fed from the
//! real SQS queues by an emulated event source mapping (which deletes what succeeded and lets
//! the rest come back, into the dead letters past `maxReceiveCount`), the sweeper invoked every
//! few seconds as its schedule would. Each test arms one fault point (`taogate_shared::faults`)
//! in the first process and checks, against the same standard:
//!
//! - the task reaches a terminal state within the sweeper's bound (plus one sweep and one
//!   attempt);
//! - its callback reaches a receiver exactly once after de-duplication by `webhook-id`, and its
//!   delivery is recorded, so nothing will send it again;
//! - no message is left on any queue or dead-letter queue.
//!
//! The submit and sweeper binaries are the ones `cargo test --workspace` builds beside the
//! worker's, with the same fault points.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use taogate_shared::aws::{AwsClients, AwsResources, DynamoTasks, S3Blobs, SqsQueues};
use taogate_shared::domain::{
    Language, Priority, ServiceKind, Task, TaskId, TaskInput, TaskStatus, now_millis,
};
use taogate_shared::ports::{BlobPut, QueueSend, TaskCreate, TaskReader};
use taogate_simulator::{Behaviour, SimOptions, SimulatedSubnet};
use taogate_testkit::event_source::{EventSource, Invocation, Sandbox};
use taogate_testkit::{InvocationResult, fresh_resources, http_event};
use tokio::time::Instant;

/// `SWEEP_AFTER`, at its smallest.
const SWEEP_AFTER: Duration = Duration::from_secs(60);
/// How often the emulated schedule runs the sweeper.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// The worker function's timeout, and the queues' visibility timeout.
const WORKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Callbacks received: `(webhook-id, body)`.
#[derive(Clone, Default)]
struct Hooks(Arc<Mutex<Vec<(String, serde_json::Value)>>>);

impl Hooks {
    async fn serve(&self) -> String {
        let hooks = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: HeaderMap, body: axum::Json<serde_json::Value>| async move {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    hooks.0.lock().unwrap().push((id, body.0));
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// The callbacks about `task`, by `task_id` in the body.
    fn about(&self, task: TaskId) -> Vec<(String, serde_json::Value)> {
        let id = task.to_string();
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body["task_id"] == id.as_str())
            .cloned()
            .collect()
    }
}

/// One deployment: the emulators' resources, a simulated subnet, the worker and sweeper
/// functions and a callback receiver.
struct Stack {
    clients: AwsClients,
    resources: AwsResources,
    env: Vec<(String, String)>,
    tasks: DynamoTasks,
    subnet: SimulatedSubnet,
    hooks: Hooks,
    hook_url: String,
    worker: Sandbox,
    sweeper: Sandbox,
    source: EventSource,
    dir: tempfile::TempDir,
}

/// A binary `cargo test --workspace` builds beside this package's.
fn sibling(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_worker")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: these tests run under `cargo test --workspace` (make test), which builds it",
        path.display()
    );
    path
}

impl Stack {
    /// A stack whose worker runs with `worker_faults` armed (`FAILPOINTS` syntax) and whose
    /// miners behave as `behaviours`; with no miner snapshot stored if `snapshot` is false.
    async fn start(
        max_attempts: u32,
        behaviours: Vec<Behaviour>,
        worker_faults: &str,
        snapshot: bool,
    ) -> Self {
        let (clients, resources, mut env) = fresh_resources(max_attempts).await.unwrap();
        env.extend(
            [
                ("TASK_TIMEOUT", "2".to_owned()),
                ("WORKER_TIMEOUT", WORKER_TIMEOUT.as_secs().to_string()),
                ("SWEEP_AFTER", SWEEP_AFTER.as_secs().to_string()),
                ("CALLBACK_ALLOWLIST", "127.0.0.0/8".to_owned()),
                ("RUST_LOG", "info".to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        let subnet = SimulatedSubnet::start(SimOptions {
            behaviours,
            ..SimOptions::mixed(0)
        })
        .await
        .unwrap();
        let blobs = S3Blobs::new(clients.s3.clone(), &resources);
        if snapshot {
            put_snapshot(&blobs, &resources, &subnet).await;
        }
        let tasks = DynamoTasks::new(clients.dynamodb.clone(), blobs, &resources);
        let hooks = Hooks::default();
        let hook_url = hooks.serve().await;
        let dir = tempfile::tempdir().unwrap();

        let mut worker_env = env.clone();
        worker_env.push(("BT_HOTKEY_URI".into(), "//Alice".into()));
        if !worker_faults.is_empty() {
            worker_env.push(("FAILPOINTS".into(), worker_faults.into()));
        }
        let worker = sandbox(
            PathBuf::from(env!("CARGO_BIN_EXE_worker")),
            worker_env,
            &dir,
            "worker",
        )
        .await;
        let sweeper = sandbox(sibling("sweeper"), env.clone(), &dir, "sweeper").await;
        let mut queues = resources.queues.to_vec();
        queues.extend(resources.dead_letter_queues.iter().flatten().cloned());
        let source = EventSource::new(clients.sqs.clone(), queues, WORKER_TIMEOUT);
        Self {
            clients,
            resources,
            env,
            tasks,
            subnet,
            hooks,
            hook_url,
            worker,
            sweeper,
            source,
            dir,
        }
    }

    /// A text-to-speech task with a callback, stored and queued as a submission does.
    async fn submit(&self, text: &str) -> Task {
        let task = Task::new(
            ServiceKind::Tts,
            Priority::Normal,
            Language::parse("en").unwrap(),
            TaskInput::Text { text: text.into() },
            Some(self.hook_url.clone()),
            now_millis(),
        );
        self.tasks.insert(&task).await.unwrap();
        SqsQueues::new(self.clients.sqs.clone(), &self.resources)
            .send(task.id, task.priority)
            .await
            .unwrap();
        task
    }

    /// A submit function with `faults` armed, over the same resources, with `env_change`
    /// applied to its environment.
    async fn submit_function(
        &self,
        faults: &str,
        env_change: impl FnOnce(&mut Vec<(String, String)>),
    ) -> Sandbox {
        let mut env = self.env.clone();
        env_change(&mut env);
        if !faults.is_empty() {
            env.push(("FAILPOINTS".into(), faults.into()));
        }
        sandbox(sibling("submit"), env, &self.dir, "submit").await
    }

    /// Runs the event source and the sweeper until `id` is settled: terminal, its callback
    /// delivered and recorded, and no message left anywhere. Panics after `limit`.
    async fn settle(&mut self, id: TaskId, limit: Duration) -> Task {
        let started = Instant::now();
        let mut swept: Option<Instant> = None;
        loop {
            self.source.poll(&mut self.worker).await.unwrap();
            if swept.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
                let scheduled = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
                match self.sweeper.invoke(scheduled).await.unwrap() {
                    Invocation::Answered(InvocationResult::Response(_)) => {}
                    other => panic!("the sweeper failed: {other:?}\n{}", self.sweeper.log()),
                }
                swept = Some(Instant::now());
            }
            let task = self.tasks.get(id).await.unwrap().unwrap();
            let told = task
                .notice
                .as_ref()
                .is_some_and(|n| n.delivered_at.is_some());
            if task.status.is_terminal() && told && self.source.messages().await.unwrap() == 0 {
                return task;
            }
            assert!(
                started.elapsed() < limit,
                "not settled after {limit:?}: {task:?}\nqueued: {}\nworker:\n{}\nsweeper:\n{}",
                self.source.messages().await.unwrap(),
                self.worker.log(),
                self.sweeper.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The callbacks about `task`: asserts there is exactly one logical delivery (one
    /// `webhook-id`) reporting `status`, and returns how many requests carried it.
    fn callback_once(&self, task: &Task, status: &str) -> usize {
        let received = self.hooks.about(task.id);
        let ids: BTreeSet<&str> = received.iter().map(|(id, _)| id.as_str()).collect();
        let expected = task.notice.as_ref().unwrap().id.as_str();
        assert_eq!(
            ids,
            BTreeSet::from([expected]),
            "one delivery id: {received:?}"
        );
        for (_, body) in &received {
            assert_eq!(body["status"], status, "{body}");
        }
        received.len()
    }
}

async fn sandbox(
    binary: PathBuf,
    env: Vec<(String, String)>,
    dir: &tempfile::TempDir,
    name: &str,
) -> Sandbox {
    let logs = dir.path().join(name);
    std::fs::create_dir_all(&logs).unwrap();
    Sandbox::start(binary, env, &logs, WORKER_TIMEOUT)
        .await
        .unwrap()
}

async fn put_snapshot(blobs: &S3Blobs, resources: &AwsResources, subnet: &SimulatedSubnet) {
    let snapshot = serde_json::to_vec(&subnet.snapshot()).unwrap();
    blobs
        .put(&resources.snapshot_key, snapshot.into(), "application/json")
        .await
        .unwrap();
}

/// The bound a stranded task is held to: the sweeper's, one sweep, one attempt.
fn sweeper_bound() -> Duration {
    SWEEP_AFTER + SWEEP_EVERY + WORKER_TIMEOUT * 2
}

/// A stack whose worker crashes once at `fault`, one task through it: settled, and completed.
async fn completed_despite(fault: &str, text: &str) -> (Stack, Task) {
    let mut stack = Stack::start(3, vec![Behaviour::Good], fault, true).await;
    let task = stack.submit(text).await;
    let done = stack.settle(task.id, sweeper_bound()).await;
    assert_eq!(done.status, TaskStatus::Completed, "{done:?}");
    (stack, done)
}

/// Posts a text-to-speech submission with the stack's callback to the submit function.
async fn submit_tts(stack: &Stack, submit: &mut Sandbox, text: &str) -> Invocation {
    let body =
        serde_json::json!({"text": text, "source_language": "en", "callback_url": stack.hook_url});
    submit
        .invoke(http_event(
            "POST",
            "/api/v1/tts",
            "",
            Some(&body.to_string()),
        ))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_worker_killed_after_its_claim_leaves_the_task_to_the_next_delivery() {
    let (stack, done) = completed_despite("worker.claimed=return", "claimed, then lost").await;
    assert_eq!(stack.worker.starts(), 2, "{}", stack.worker.log());
    assert_eq!(stack.callback_once(&done, "completed"), 1);
    assert_eq!(
        stack.subnet.served(0),
        1,
        "asked only by the second process"
    );
}

#[tokio::test]
async fn a_worker_killed_after_the_final_write_leaves_the_callback_to_the_redelivery() {
    let (stack, done) = completed_despite("worker.ended=return", "finished, untold").await;
    assert_eq!(stack.worker.starts(), 2, "{}", stack.worker.log());
    assert_eq!(
        stack.callback_once(&done, "completed"),
        1,
        "sent by the worker the message came back to"
    );
    assert_eq!(done.notice.unwrap().tries, 1);
    assert_eq!(
        stack.subnet.served(0),
        1,
        "the redelivery did not ask again"
    );
}

#[tokio::test]
async fn a_worker_killed_between_the_callback_and_its_record_is_deduplicated_by_id() {
    let (stack, done) = completed_despite("worker.told=return", "told, unrecorded").await;
    // The first worker's request arrived; the worker the message came back to found the
    // callback still owed and sent it again, with the same id.
    assert_eq!(stack.callback_once(&done, "completed"), 2);
}

#[tokio::test]
async fn a_worker_killed_before_its_answer_leaves_a_message_the_redelivery_deletes() {
    let (stack, done) = completed_despite("lambda.answering=return", "done, not deleted").await;
    assert_eq!(stack.worker.starts(), 2, "{}", stack.worker.log());
    assert_eq!(stack.callback_once(&done, "completed"), 1);
    assert_eq!(done.attempts, 1, "the redelivery found it finished");
}

/// The first attempt fails on its own (every miner errs) and is written; the store then fails
/// every write of the second and last attempt. The message is delivered until the dead letters
/// take it, and their consumer fails the task with the reason and tells the submitter.
#[tokio::test]
async fn a_store_failing_on_the_last_attempt_ends_the_task_from_the_dead_letters() {
    let mut stack = Stack::start(
        2,
        vec![Behaviour::Erroring],
        "store.end_attempt=1*off->return",
        true,
    )
    .await;
    let task = stack.submit("the store gives out").await;
    let done = stack.settle(task.id, sweeper_bound()).await;
    assert_eq!(done.status, TaskStatus::Failed, "{done:?}");
    let reason = done.error_message.clone().unwrap_or_default();
    assert!(reason.contains("dead letters"), "{reason}");
    assert_eq!(stack.worker.starts(), 1, "no crash: {}", stack.worker.log());
    assert_eq!(stack.callback_once(&done, "failed"), 1);
}

/// The invocation's deadline passes while an attempt is under way (a store or network that
/// stalls): the attempt is written as interrupted before the deadline, uncounted, and the next
/// delivery completes the task.
#[tokio::test]
async fn an_attempt_cut_by_the_invocation_deadline_is_handed_back_uncounted() {
    let mut stack = Stack::start(
        3,
        vec![Behaviour::Good],
        "attempt.stall=1*return(30000)",
        true,
    )
    .await;
    let task = stack.submit("out of time").await;
    let done = stack.settle(task.id, sweeper_bound()).await;
    assert_eq!(done.status, TaskStatus::Completed, "{done:?}");
    assert_eq!(stack.worker.starts(), 1, "{}", stack.worker.log());
    assert_eq!(done.attempts, 1, "the interrupted attempt is not counted");
    assert!(
        stack
            .worker
            .log()
            .contains("did not finish within its lease or the invocation"),
        "{}",
        stack.worker.log()
    );
    assert_eq!(stack.callback_once(&done, "completed"), 1);
}

/// A fresh deploy: no miner snapshot until the first sync. The task waits (delayed copies of
/// its message, no attempt used) and completes once the snapshot is there.
#[tokio::test]
async fn with_no_snapshot_at_first_the_task_waits_and_then_completes() {
    let mut stack = Stack::start(3, vec![Behaviour::Good], "", false).await;
    let task = stack.submit("anyone there?").await;
    let started = Instant::now();
    while stack.worker_rounds_until_postponed().await == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "never waited");
    }
    let blobs = S3Blobs::new(stack.clients.s3.clone(), &stack.resources);
    put_snapshot(&blobs, &stack.resources, &stack.subnet).await;
    let done = stack.settle(task.id, sweeper_bound()).await;
    assert_eq!(done.status, TaskStatus::Completed, "{done:?}");
    assert_eq!(done.attempts, 1, "waiting used no attempt");
    assert_eq!(stack.callback_once(&done, "completed"), 1);
}

impl Stack {
    /// Polls once; returns how many records were handled (and deleted, their delayed copies
    /// sent) without the task being claimed.
    async fn worker_rounds_until_postponed(&mut self) -> usize {
        let round = self.source.poll(&mut self.worker).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        round.deleted
    }
}

/// The submit function stops after storing the task and before sending its message: the
/// client gets no answer, and the task has no message. The sweeper finds it after its bound and
/// sends one; the worker completes it and the submitter is told.
#[tokio::test]
async fn a_submission_stopped_before_its_message_is_swept_and_completes() {
    let mut stack = Stack::start(3, vec![Behaviour::Good], "", true).await;
    let mut submit = stack
        .submit_function("submission.stored=return", |_| {})
        .await;
    let answer = submit_tts(&stack, &mut submit, "stored, never sent").await;
    assert!(
        matches!(answer, Invocation::Crashed),
        "{answer:?}\n{}",
        submit.log()
    );
    let task = only_task(&stack).await;
    assert_eq!(task.status, TaskStatus::Pending);
    assert_eq!(stack.source.messages().await.unwrap(), 0, "no message sent");
    let done = stack.settle(task.id, sweeper_bound()).await;
    assert_eq!(done.status, TaskStatus::Completed, "{done:?}");
    assert!(done.requeued_at.is_some(), "sent by the sweeper: {done:?}");
    assert_eq!(stack.callback_once(&done, "completed"), 1);
}

/// SQS refuses the message: the client gets a 503 and the task is failed at once; the
/// submitter's callback still reports it, once.
#[tokio::test]
async fn a_submission_whose_message_is_refused_fails_the_task_and_says_so_once() {
    let mut stack = Stack::start(3, vec![Behaviour::Good], "", true).await;
    let mut submit = stack
        .submit_function("", |env| {
            for (name, value) in env.iter_mut() {
                if name == "QUEUE_URL_NORMAL" {
                    *value = format!("{value}-missing");
                }
            }
        })
        .await;
    let answer = submit_tts(&stack, &mut submit, "nowhere to go").await;
    let Invocation::Answered(InvocationResult::Response(r)) = answer else {
        panic!("{answer:?}\n{}", submit.log());
    };
    assert_eq!(r["statusCode"], 503, "{r}");
    let task = only_task(&stack).await;
    let done = stack.settle(task.id, sweeper_bound()).await;
    assert_eq!(done.status, TaskStatus::Failed, "{done:?}");
    assert_eq!(stack.callback_once(&done, "failed"), 1);
    assert_eq!(stack.subnet.served(0), 0);
}

/// The one task in the stack's table.
async fn only_task(stack: &Stack) -> Task {
    let scan = stack
        .clients
        .dynamodb
        .scan()
        .table_name(&stack.resources.table)
        .send()
        .await
        .unwrap();
    let tasks: Vec<Task> = scan
        .items()
        .iter()
        .filter_map(|item| item.get("body").and_then(|b| b.as_s().ok()))
        .filter_map(|body| serde_json::from_str(body).ok())
        .collect();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let id = tasks[0].id;
    stack.tasks.get(id).await.unwrap().unwrap()
}
