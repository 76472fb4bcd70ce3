//! The task lifecycle: priority order, restart, duplicate delivery, retries ending in `failed`
//! with their reason, and configuration refused at start.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use taogate_shared::bittensor::Hotkey;
use taogate_shared::domain::{
    Language, Priority, ServiceKind, Task, TaskInput, TaskStatus, now_millis,
};
use taogate_shared::drain::{DeliveryHandler, Disposition};
use taogate_shared::embedded::{BlobDir, Database, QueuePolicy};
use taogate_shared::ports::{QueueConsume, QueueSend, TaskCreate, TaskLease, TaskReader};
use taogate_simulator::{Behaviour, SimOptions, SimulatedSubnet};

use super::support::{Api, ServeProcess, in_process, settings};

#[tokio::test]
async fn with_the_queue_backed_up_high_work_finishes_before_low_work() {
    let dir = tempfile::tempdir().unwrap();
    // First run: the API alone, so the queue fills up.
    let running = in_process(dir.path(), "sim:good", 0, &[]).await;
    let api = Api::new(running.addr);
    let mut low = Vec::new();
    let mut high = Vec::new();
    for i in 0..8 {
        let (s, a) = api
            .post_json(
                "/api/v1/tts",
                &json!({"text": format!("low {i}"), "source_language": "en", "priority": "low"}),
            )
            .await;
        assert_eq!(s, 200);
        low.push(a["task_id"].as_str().unwrap().to_owned());
    }
    for i in 0..8 {
        let (s, a) = api
            .post_json(
                "/api/v1/tts",
                &json!({"text": format!("high {i}"), "source_language": "en", "priority": "high"}),
            )
            .await;
        assert_eq!(s, 200);
        high.push(a["task_id"].as_str().unwrap().to_owned());
    }
    let (_, health) = api.get("/api/v1/health").await;
    assert_eq!(health["queue_depth"]["low"], 8, "{health}");
    assert_eq!(health["queue_depth"]["high"], 8, "{health}");
    running.shutdown().await.unwrap();

    // Second run: one worker drains the backlog.
    let running = in_process(dir.path(), "sim:good", 1, &[]).await;
    let api = Api::new(running.addr);
    let started = |ids: &[String]| {
        let ids = ids.to_vec();
        let api = &api;
        async move {
            let mut out = Vec::new();
            for id in ids {
                let t = api.wait_terminal(&id, Duration::from_secs(60)).await;
                assert_eq!(t["status"], "completed", "{t}");
                out.push(t["started_at"].as_str().unwrap().to_owned());
            }
            out
        }
    };
    let high_started = started(&high).await;
    let low_started = started(&low).await;
    let last_high = high_started.iter().max().unwrap();
    let first_low = low_started.iter().min().unwrap();
    assert!(
        last_high <= first_low,
        "a low task started at {first_low}, before the last high one at {last_high}"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_task_accepted_before_a_kill_completes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let slow = [("TASK_TIMEOUT", "20"), ("TAOGATE_SIM_SLOW_MS", "5000")];
    let server = ServeProcess::spawn(&data, "sim:slow,slow", &slow);
    let api = Api::new(server.addr);
    let (status, accepted) = api
        .post_json(
            "/api/v1/tts",
            &json!({"text": "survive the crash", "source_language": "en"}),
        )
        .await;
    assert_eq!(status, 200);
    let id = accepted["task_id"].as_str().unwrap().to_owned();
    api.wait_status(&id, "processing", Duration::from_secs(10))
        .await;
    server.kill(); // SIGKILL mid-task: the miners have not answered yet

    let server = ServeProcess::spawn(&data, "sim:good,good", &[("TASK_TIMEOUT", "5")]);
    let api = Api::new(server.addr);
    let task = api.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "completed", "{task}\n{}", server.log());
    assert_eq!(task["attempts"], 2, "the killed attempt counts: {task}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_submission_answered_accepted_exists_after_a_kill_under_load() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The workers work beside the submissions, so group commits mix both kinds of writes.
    let server = ServeProcess::spawn(&data, "sim:good,good", &[]);
    let addr = server.addr;
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..32 {
        let answered = answered.clone();
        clients.push(tokio::spawn(async move {
            let http = super::support::http_client();
            let url = format!("http://{addr}/api/v1/tts");
            let mut accepted = Vec::new();
            // Until the server dies: each request either was answered or failed in flight.
            while let Ok(response) = http
                .post(&url)
                .json(&json!({"text": "kept through a kill", "source_language": "en"}))
                .send()
                .await
            {
                if response.status() != 200 {
                    break;
                }
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    break;
                };
                accepted.push(body["task_id"].as_str().unwrap().to_owned());
                answered.fetch_add(1, Ordering::Relaxed);
            }
            accepted
        }));
    }
    let waiting = std::time::Instant::now();
    while answered.load(Ordering::Relaxed) < 2_000 {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "the load did not get going:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill(); // SIGKILL with 32 submissions in flight
    let mut accepted = Vec::new();
    for client in clients {
        accepted.extend(client.await.unwrap());
    }
    assert!(accepted.len() >= 2_000, "{} accepted", accepted.len());

    let db = Database::open(&data, QueuePolicy::default()).unwrap();
    let mut missing = Vec::new();
    for id in &accepted {
        if db.get(id.parse().unwrap()).await.unwrap().is_none() {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} accepted tasks were lost: {:?}",
        missing.len(),
        accepted.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hotkey_secret_never_reaches_logs_errors_or_stored_tasks() {
    // The well-known development mnemonic: a real secret phrase the key is derived from.
    let phrase = "bottom drive obey lake curtain smoke basket hold race lonely fit walk";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServeProcess::spawn(
        &data,
        "sim:good,erroring,blacklisting",
        &[
            ("BT_HOTKEY_URI", phrase),
            ("RUST_LOG", "debug"),
            ("TASK_TIMEOUT", "5"),
        ],
    );
    let api = Api::new(server.addr);
    let (_, task) = api
        .submit_and_wait("/api/v1/summarization",
            &json!({"text": "A summary must be at least fifty characters long, so here is more text.", "source_language": "en"}), Duration::from_secs(30))
        .await;
    assert_eq!(task["status"], "completed", "{task}");
    // Miner errors (an error_message, a 403) are stored with the task.
    assert!(task.to_string().contains("blacklisted"), "{task}");
    let (status, problem) = api
        .post_json("/api/v1/tts", &json!({"text": "", "source_language": "en"}))
        .await;
    assert_eq!(status, 422, "{problem}");
    let admin = super::tenants::create_key(&data, &[], "ops", &["--admin"]);
    let (_, integration) =
        super::validator::get_with_key(&api, "/api/v1/validator/integration", &admin.secret).await;
    let log = server.log();
    server.kill();

    let words = ["curtain smoke", "lonely fit walk", "bottom drive"];
    let mut texts = vec![
        ("log".to_owned(), log),
        ("task".to_owned(), task.to_string()),
        ("problem".to_owned(), problem.to_string()),
        ("integration".to_owned(), integration.to_string()),
    ];
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            texts.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    assert!(texts.len() > 4, "the database files were read");
    for (name, text) in &texts {
        for w in words {
            assert!(!text.contains(w), "the secret leaked into {name}");
        }
    }
    // The key derived from it is the one in use (its public address may be shown).
    let public = Hotkey::from_secret(&taogate_shared::config::Secret::new(phrase)).unwrap();
    assert_eq!(
        integration["gateway_hotkey"],
        public.ss58(),
        "{integration}"
    );
}

async fn worker_setup(
    dir: &std::path::Path,
    behaviours: Vec<Behaviour>,
    pairs: &[(&str, &str)],
) -> (
    Database,
    SimulatedSubnet,
    taogate_shared::wiring::DeployedWorker<
        Database,
        BlobDir,
        taogate_shared::bittensor::LiveDirectory,
    >,
) {
    let mut settings = settings(pairs);
    settings
        .selection
        .allowlist
        .push("127.0.0.0/8".parse().unwrap());
    let db = Database::open(
        dir,
        QueuePolicy {
            max_receives: settings.worker.max_attempts,
            ..QueuePolicy::default()
        },
    )
    .unwrap();
    let subnet = SimulatedSubnet::start(SimOptions {
        behaviours,
        ..SimOptions::mixed(0)
    })
    .await
    .unwrap();
    let worker = local_worker(dir, &db, &subnet, &settings);
    (db, subnet, worker)
}

/// A worker over `db` and the simulated `subnet`, as one local worker slot (or one Lambda
/// container) would build it.
fn local_worker(
    dir: &std::path::Path,
    db: &Database,
    subnet: &SimulatedSubnet,
    settings: &taogate_shared::config::Settings,
) -> taogate_shared::wiring::DeployedWorker<
    Database,
    BlobDir,
    taogate_shared::bittensor::LiveDirectory,
> {
    let blobs = BlobDir::new(&dir.join("blobs"), "http://127.0.0.1:1", db).unwrap();
    let hotkey = Arc::new(
        Hotkey::from_secret(&taogate_shared::config::Secret::new(
            taogate_shared::secrets::DEV_HOTKEY_URI,
        ))
        .unwrap(),
    );
    taogate_cli::serve::build_worker(
        settings,
        db.clone(),
        blobs,
        taogate_shared::bittensor::LiveDirectory::new(subnet.snapshot()),
        hotkey,
    )
    .unwrap()
}

fn text_task(text: &str) -> Task {
    Task::new(
        ServiceKind::Summarization,
        Priority::Normal,
        Language::parse("en").unwrap(),
        TaskInput::Text { text: text.into() },
        None,
        now_millis(),
    )
}

#[tokio::test]
async fn a_failing_miners_record_demotes_it_for_every_worker() {
    use taogate_shared::ports::HealthStore;
    let dir = tempfile::tempdir().unwrap();
    // uid 0 has the most stake but answers garbage; two miners are asked per attempt. (Back-off
    // after repeated failures is covered by the selection and health unit tests.)
    let pairs = [
        ("MAX_MINERS_PER_REQUEST", "2"),
        ("REQUIRED_ANSWERS", "2"),
        ("HEDGE_MINERS", "0"),
        ("ESCALATION_MINERS", "0"),
        ("SELECTION_EXPLORATION", "0"),
    ];
    let (db, subnet, worker) = worker_setup(
        dir.path(),
        vec![Behaviour::Garbage, Behaviour::Good, Behaviour::Good],
        &pairs,
    )
    .await;
    let db_ = &db;
    let run_one = |worker| async move {
        let task =
            text_task("One sentence here. Another sentence there. A third one to summarize well.");
        db_.insert(&task).await.unwrap();
        db_.send(task.id, task.priority).await.unwrap();
        let delivery = db_
            .receive(1, Duration::from_secs(60))
            .await
            .unwrap()
            .remove(0);
        let disposition = DeliveryHandler::handle(worker, &delivery).await;
        assert_eq!(disposition, Disposition::Done);
        db_.get(task.id).await.unwrap().unwrap()
    };
    for round in 0..4 {
        let done = run_one(&worker).await;
        assert_eq!(done.status, TaskStatus::Completed, "round {round}");
        let asked: Vec<u16> = done.candidates.iter().map(|c| c.uid).collect();
        if round == 0 {
            assert_eq!(asked, vec![0, 1], "ranked by stake at first");
        } else {
            assert_eq!(
                asked,
                vec![1, 2],
                "round {round}: its record outweighs its stake"
            );
        }
    }
    assert_eq!(subnet.served(0), 1);
    let hk0 = subnet.snapshot().miners[0].hotkey.clone();
    let record = db.load_health(vec![hk0]).await.unwrap().remove(0);
    assert_eq!(record.failures_in_a_row, 1);
    assert_eq!(
        record.recent,
        vec![taogate_shared::domain::Outcome::InvalidAnswer]
    );
    assert!(record.weight() < 0.5);
    let hk1 = subnet.snapshot().miners[1].hotkey.clone();
    let good = db.load_health(vec![hk1]).await.unwrap().remove(0);
    assert_eq!((good.samples, good.success_rate), (4, 1.0));
    assert!(good.score.is_some());

    // Another worker (a new Lambda container) reads the same record from the store.
    let mut other_settings = settings(&pairs);
    other_settings
        .selection
        .allowlist
        .push("127.0.0.0/8".parse().unwrap());
    let other = local_worker(dir.path(), &db, &subnet, &other_settings);
    let done = run_one(&other).await;
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(subnet.served(0), 1, "the demoted miner was not asked");
}

#[tokio::test]
async fn a_duplicate_delivery_is_processed_once() {
    let dir = tempfile::tempdir().unwrap();
    let (db, subnet, worker) =
        worker_setup(dir.path(), vec![Behaviour::Good, Behaviour::Good], &[]).await;
    let task =
        text_task("One sentence here. Another sentence there. A third one to summarize well.");
    db.insert(&task).await.unwrap();
    // SQS may deliver a message twice: two copies reach two workers at the same time.
    db.send(task.id, task.priority).await.unwrap();
    db.send(task.id, task.priority).await.unwrap();
    let deliveries = db.receive(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(deliveries.len(), 2);
    let (a, b) = tokio::join!(worker.handle(&deliveries[0]), worker.handle(&deliveries[1]));
    let done = [a, b].iter().filter(|d| **d == Disposition::Done).count();
    assert!(done >= 1, "{a:?} {b:?}");
    assert_eq!(subnet.served(0), 1, "miner 0 was queried once");
    assert_eq!(subnet.served(1), 1, "miner 1 was queried once");

    // A late copy after completion is acknowledged without any work.
    let late = taogate_shared::ports::Delivery {
        receive_count: 3,
        ..deliveries[0].clone()
    };
    assert_eq!(worker.handle(&late).await, Disposition::Done);
    assert_eq!(subnet.served(0), 1);
    let stored = db.get(task.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TaskStatus::Completed);
    assert_eq!(stored.attempts, 1);
}

#[tokio::test]
async fn all_miners_bad_ends_in_failed_with_the_reason_and_no_message_left() {
    let dir = tempfile::tempdir().unwrap();
    let running = in_process(
        dir.path(),
        "sim:erroring,garbage",
        2,
        &[("MAX_ATTEMPTS", "3")],
    )
    .await;
    let api = Api::new(running.addr);
    let (status, accepted) = api
        .post_json("/api/v1/summarization", &json!({"text": "x".repeat(60) + ". Some more words to make it a summary input.", "source_language": "en"}))
        .await;
    assert_eq!(status, 200);
    let id = accepted["task_id"].as_str().unwrap().to_owned();
    let task = api.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["attempts"], 3);
    let reason = task["error_message"].as_str().unwrap();
    assert!(reason.contains("failed after 3 attempts"), "{reason}");
    assert!(
        reason.contains("miner_error") && reason.contains("invalid_answer"),
        "{reason}"
    );
    assert_eq!(task["candidates"].as_array().unwrap().len(), 2);

    // The failure is explained by the task itself: its message is gone, not dead-lettered.
    let started = std::time::Instant::now();
    loop {
        let (_, health) = api.get("/api/v1/health").await;
        let normal = &health["queues"]["normal"];
        if normal["visible"] == 0 && normal["in_flight"] == 0 {
            assert_eq!(normal["dead"], 0, "{health}");
            assert_eq!(health["tasks"]["failed"], 1, "{health}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the message is still queued: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        running
            .db
            .as_ref()
            .unwrap()
            .dead_letters()
            .await
            .unwrap()
            .is_empty()
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_processing_task_is_retaken_after_its_lease_and_the_stale_worker_cannot_finish_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), QueuePolicy::default()).unwrap();
    let task = text_task("A text long enough to be a valid summarization input for the test.");
    db.insert(&task).await.unwrap();
    let now = now_millis();
    let first = db
        .claim(task.id, now, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(matches!(
        first,
        taogate_shared::domain::ClaimOutcome::Claimed(_)
    ));
    assert!(matches!(
        db.claim(task.id, now + 50, Duration::from_secs(1))
            .await
            .unwrap(),
        taogate_shared::domain::ClaimOutcome::Leased(_)
    ));
    let second = db
        .claim(task.id, now + 150, Duration::from_secs(1))
        .await
        .unwrap();
    let taogate_shared::domain::ClaimOutcome::Claimed(retaken) = second else {
        panic!("{second:?}")
    };
    assert_eq!(retaken.attempts, 2);
    let end = taogate_shared::ports::AttemptEnd::Failed {
        reason: "stale".into(),
        candidates: vec![],
    };
    let stale = db.end_attempt(task.id, 1, end, now + 200).await;
    assert!(
        matches!(stale, Err(taogate_shared::ports::StoreError::Conflict(_))),
        "{stale:?}"
    );
    assert_eq!(
        db.get(task.id).await.unwrap().unwrap().status,
        TaskStatus::Processing
    );
}

#[test]
fn an_encrypted_wallet_hotkey_stops_the_start_with_instructions() {
    let dir = tempfile::tempdir().unwrap();
    let hotkeys = dir.path().join("wallets/gw/hotkeys");
    std::fs::create_dir_all(&hotkeys).unwrap();
    std::fs::write(hotkeys.join("default"), b"$NACLciphertext-never-shown").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taogate"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("BT_WALLET_PATH", dir.path().join("wallets"))
        .env("BT_WALLET_NAME", "gw")
        .env_remove("BT_HOTKEY_URI")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("encrypted") && stderr.contains("BT_HOTKEY_URI"),
        "{stderr}"
    );
    assert!(!stderr.contains("never-shown"), "{stderr}");
}

#[test]
fn invalid_configuration_is_refused_at_start_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taogate"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("ACCURACY_WEIGHT", "0.5")
        .env("MAX_CONCURRENT_TASKS", "0")
        .env("TASK_TIMEOUT", "soon")
        .env("MAX_INPUT_MEMORY", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "sum to 1",
        "MAX_CONCURRENT_TASKS",
        "TASK_TIMEOUT",
        "MAX_INPUT_MEMORY",
    ] {
        assert!(stderr.contains(needle), "{needle} missing from:\n{stderr}");
    }
}

#[tokio::test]
async fn with_no_miner_serving_tasks_wait_without_attempts_then_fail_naming_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("miners.json");
    // Registered on the subnet, serving no axon.
    std::fs::write(
        &file,
        serde_json::to_vec(&json!({"miners": [
            {"uid": 0, "hotkey": "5Dnone0", "ip": "0.0.0.0", "port": 0},
            {"uid": 1, "hotkey": "5Dnone1", "ip": "0.0.0.0", "port": 0}
        ]}))
        .unwrap(),
    )
    .unwrap();
    let running = in_process(
        &dir.path().join("data"),
        file.to_str().unwrap(),
        2,
        &[("MAX_TASK_AGE", "3")],
    )
    .await;
    let api = Api::new(running.addr);
    let (_, health) = api.get("/api/v1/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["cause"].as_str().unwrap().contains("no miner"),
        "{health}"
    );
    let (status, accepted) = api
        .post_json(
            "/api/v1/tts",
            &json!({"text": "is anyone there", "source_language": "en"}),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    let id = accepted["task_id"].as_str().unwrap();
    // While it waits it uses no attempt.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (_, waiting) = api.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(waiting["status"], "pending", "{waiting}");
    assert_eq!(waiting["attempts"], 0, "{waiting}");
    let task = api.wait_terminal(id, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "failed", "{task}");
    let reason = task["error_message"].as_str().unwrap();
    assert!(reason.contains("no miner was available for"), "{reason}");
    assert!(reason.contains("MAX_TASK_AGE is 3 s"), "{reason}");
    running.shutdown().await.unwrap();
}
