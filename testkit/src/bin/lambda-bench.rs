//! Measurements of the Lambda binaries, run against the Runtime API emulator.
//!
//! - `lambda-bench coldstart BINARY [RUNS]`: time from process start to the first poll of the
//!   Runtime API (what a cold start costs before the first event), median and p90 over RUNS.
//! - `lambda-bench worker-memory WORKER_BINARY [MIB] [MINERS] [RECORDS]`: the worker's peak
//!   resident memory (VmHWM) while it processes one batch of RECORDS (1) transcriptions of MIB
//!   MiB of audio each against MINERS simulated miners. Needs the local AWS emulators (`eval "$(localstack/local-aws.sh start)"`).
//! - `lambda-bench worker-hostile WORKER_BINARY [RECORDS] [MINERS] [MAX_ANSWER_MEMORY]`: the
//!   worker's peak resident memory and batch time while RECORDS text-to-speech tasks (10,000
//!   characters each, so every answer may be `MAX_RESPONSE_BYTES`) are each sent to MINERS
//!   miners that all flood their answers to the limit. Needs the local AWS emulators.
//! - `lambda-bench worker-mix WORKER_BINARY [RECORDS]`: the same with the hostile mix of the
//!   end-to-end test (3 good miners, the 7 hostile behaviours, 1 flooding) on a short text:
//!   every task must complete; the batch time includes the drip's full `TASK_TIMEOUT`.
//! - `lambda-bench submit-gate SUBMIT_BINARY [N]`: the cost of the tenancy gate on the submit
//!   Lambda: N warm `POST /api/v1/tts` invocations each without a key (`API_AUTH=optional`),
//!   with a key without limits, and with a rate-limited key, timed through the Runtime API
//!   emulator against LocalStack and moto. Needs the local AWS emulators.
//! - `lambda-bench cost BINARY_DIR [TASKS] [MINER_MS]`: what a task costs on AWS: TASKS tasks of
//!   each service through the `submit`, `worker` and `status` binaries of BINARY_DIR, against 5
//!   simulated miners answering after MINER_MS; prints each function's AWS usage per task (from
//!   the usage lines the functions log) and dollars per million tasks at list prices
//!   (`taogate_testkit::cost`). Needs the local AWS emulators.

use std::time::{Duration, Instant};

use taogate_shared::aws::{DynamoTasks, S3Blobs};
use taogate_shared::domain::{
    AudioInfo, Language, Priority, ServiceKind, Task, TaskInput, TaskStatus, now_millis,
};
use taogate_shared::ports::{BlobPut, TaskCreate, TaskReader};
use taogate_simulator::Behaviour;
use taogate_testkit::{InvocationResult, RuntimeApi, fresh_resources, subnet_in_snapshot};

fn dummy_env() -> Vec<(String, String)> {
    [
        ("TABLE_NAME", "bench"),
        ("BUCKET_NAME", "bench"),
        ("QUEUE_URL_HIGH", "http://127.0.0.1:9/q/high"),
        ("QUEUE_URL_NORMAL", "http://127.0.0.1:9/q/normal"),
        ("QUEUE_URL_LOW", "http://127.0.0.1:9/q/low"),
        ("BT_HOTKEY_URI", "//Alice"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// An SQS event with one first-delivery record per task, as from the queue at `queue_url`.
fn sqs_event(queue_url: &str, tasks: &[taogate_shared::domain::TaskId]) -> serde_json::Value {
    let queue = queue_url.rsplit('/').next().unwrap_or_default();
    let records: Vec<_> = tasks
        .iter()
        .enumerate()
        .map(|(i, id)| {
            serde_json::json!({
                "messageId": format!("m{i}"), "receiptHandle": "h", "md5OfBody": "", "eventSource": "aws:sqs",
                "body": serde_json::json!({"task_id": id, "priority": "normal"}).to_string(),
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:000000000000:{queue}"), "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

async fn coldstart(binary: &str, runs: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("lambda-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let api = RuntimeApi::start().await?;
        let function = api.spawn(binary, &dummy_env(), &dir.join("coldstart.log"))?;
        let limit = Instant::now() + Duration::from_secs(10);
        let first = loop {
            if let Some(at) = api.first_poll() {
                break at;
            }
            anyhow::ensure!(
                Instant::now() < limit,
                "{binary} never polled; see {}",
                dir.display()
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        samples.push(first.duration_since(function.started));
    }
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{binary}: start to first poll over {runs} runs: median {:.2} ms, p90 {:.2} ms, min {:.2} ms, max {:.2} ms",
        ms(samples[runs / 2]),
        ms(samples[(runs * 9 / 10).min(runs - 1)]),
        ms(samples[0]),
        ms(samples[runs - 1])
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM for {pid}"))
}

async fn worker_memory(
    binary: &str,
    mib: usize,
    miners: usize,
    records: usize,
) -> anyhow::Result<()> {
    let (clients, resources, mut env) = fresh_resources(3).await?;
    let (_subnet, blobs) = subnet_in_snapshot(
        &clients,
        &resources,
        vec![Behaviour::Good; miners],
        Duration::ZERO,
    )
    .await?;
    let seconds = (mib * 1024 * 1024) as f64 / 32_000.0;
    let wav = taogate_shared::audio::wav_pcm16(
        &taogate_shared::audio::tone(seconds, 200.0, 16_000),
        16_000,
        Some("memory"),
    );
    let size = wav.len();
    let wav = axum::body::Bytes::from(wav);
    for record in 0..records {
        blobs
            .put(&format!("input/bench-{record}"), wav.clone(), "audio/wav")
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    let tasks = DynamoTasks::new(
        clients.dynamodb.clone(),
        S3Blobs::new(clients.s3.clone(), &resources),
        &resources,
    );
    let info = AudioInfo {
        format: "wav".into(),
        duration_s: seconds,
        sample_rate: 16_000,
        channels: 1,
    };
    let mut ids = Vec::new();
    for record in 0..records {
        let input = TaskInput::Audio {
            blob_key: format!("input/bench-{record}"),
            filename: None,
            size_bytes: size as u64,
            info: info.clone(),
        };
        let task = Task::new(
            ServiceKind::Transcription,
            Priority::Normal,
            Language::parse("en")?,
            input,
            None,
            now_millis(),
        );
        tasks.insert(&task).await.map_err(|e| anyhow::anyhow!(e))?;
        ids.push(task.id);
    }

    env.extend([
        ("BT_HOTKEY_URI".to_owned(), "//Alice".to_owned()),
        ("TASK_TIMEOUT".to_owned(), "120".to_owned()),
        ("MAX_MINERS_PER_REQUEST".to_owned(), miners.to_string()),
    ]);
    let api = RuntimeApi::start().await?;
    let dir = std::env::temp_dir().join(format!("lambda-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let function = api.spawn(binary, &env, &dir.join("worker.log"))?;
    let idle = loop {
        if api.first_poll().is_some() {
            break peak_rss_kib(function.pid())?;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let event = sqs_event(&resources.queues[1], &ids);
    let started = Instant::now();
    let answer = api.invoke(event, Duration::from_secs(300)).await?;
    let elapsed = started.elapsed();
    let peak = peak_rss_kib(function.pid())?;
    anyhow::ensure!(
        matches!(answer, InvocationResult::Response(_)),
        "the worker failed: {answer:?}"
    );
    for id in &ids {
        let stored = tasks.get(*id).await.map_err(|e| anyhow::anyhow!(e))?;
        anyhow::ensure!(
            stored.as_ref().map(|t| t.status) == Some(TaskStatus::Completed),
            "task not completed: {stored:?}"
        );
    }
    let audio_mib = size as f64 / 1048576.0;
    println!(
        "worker: {records} x {audio_mib:.1} MiB audio to {miners} miners in {:.2} s; peak RSS {:.1} MiB (idle {:.1} MiB); target {:.1} MiB (3 x audio + 64 MiB)",
        elapsed.as_secs_f64(),
        peak as f64 / 1024.0,
        idle as f64 / 1024.0,
        3.0 * audio_mib * records as f64 + 64.0
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// What a hostile benchmark runs: which miners, on what text, expecting which end.
struct Hostile {
    behaviours: Vec<Behaviour>,
    text: String,
    expect: TaskStatus,
    label: String,
    /// `TASK_TIMEOUT`, seconds.
    task_timeout: u64,
}

async fn worker_hostile(
    binary: &str,
    records: usize,
    hostile: Hostile,
    answer_memory: Option<usize>,
) -> anyhow::Result<()> {
    let miners = hostile.behaviours.len();
    let (clients, resources, mut env) = fresh_resources(3).await?;
    let (_subnet, blobs) = subnet_in_snapshot(
        &clients,
        &resources,
        hostile.behaviours.clone(),
        Duration::ZERO,
    )
    .await?;
    let tasks = DynamoTasks::new(clients.dynamodb.clone(), blobs, &resources);
    let text = hostile.text.clone();
    let mut ids = Vec::new();
    for _ in 0..records {
        let task = Task::new(
            ServiceKind::Tts,
            Priority::Normal,
            Language::parse("en")?,
            TaskInput::Text { text: text.clone() },
            None,
            now_millis(),
        );
        tasks.insert(&task).await.map_err(|e| anyhow::anyhow!(e))?;
        ids.push(task.id);
    }
    env.extend([
        ("BT_HOTKEY_URI".to_owned(), "//Alice".to_owned()),
        ("TASK_TIMEOUT".to_owned(), hostile.task_timeout.to_string()),
        ("MAX_ATTEMPTS".to_owned(), "1".to_owned()),
        ("MAX_MINERS_PER_REQUEST".to_owned(), miners.to_string()),
        ("REQUIRED_ANSWERS".to_owned(), miners.to_string()),
        ("HEDGE_MINERS".to_owned(), "0".to_owned()),
        ("ESCALATION_MINERS".to_owned(), "0".to_owned()),
    ]);
    if let Some(bytes) = answer_memory {
        env.push(("MAX_ANSWER_MEMORY".to_owned(), bytes.to_string()));
    }
    let api = RuntimeApi::start().await?;
    let dir = std::env::temp_dir().join(format!("lambda-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let function = api.spawn(binary, &env, &dir.join("worker.log"))?;
    while api.first_poll().is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let event = sqs_event(&resources.queues[1], &ids);
    let started = Instant::now();
    let answer = api.invoke(event, Duration::from_secs(300)).await?;
    let elapsed = started.elapsed();
    let peak = peak_rss_kib(function.pid())?;
    anyhow::ensure!(
        matches!(answer, InvocationResult::Response(_)),
        "the worker failed: {answer:?}"
    );
    for id in &ids {
        let stored = tasks.get(*id).await.map_err(|e| anyhow::anyhow!(e))?;
        anyhow::ensure!(
            stored.as_ref().map(|t| t.status) == Some(hostile.expect),
            "a task did not end {:?}: {stored:?}",
            hostile.expect
        );
    }
    println!(
        "worker: {records} records x {miners} miners ({}; MAX_ANSWER_MEMORY {}) in {:.2} s; peak RSS {:.1} MiB of the Lambda's 512 MB",
        hostile.label,
        answer_memory.map_or("default 192 MiB".to_owned(), |b| format!("{} MiB", b >> 20)),
        elapsed.as_secs_f64(),
        peak as f64 / 1024.0,
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// Times `n` warm TTS submissions through the submit binary in `env`, sending `key` if given.
async fn submissions(
    binary: &str,
    env: &[(String, String)],
    key: Option<&str>,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let api = RuntimeApi::start().await?;
    let dir = std::env::temp_dir().join(format!("lambda-bench-gate-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _function = api.spawn(binary, env, &dir.join("submit.log"))?;
    let body = r#"{"text":"The quick brown fox jumps over the lazy dog.","source_language":"en"}"#;
    let mut event = taogate_testkit::http_event("POST", "/api/v1/tts", "", Some(body));
    if let Some(key) = key {
        event["headers"]["x-api-key"] = serde_json::Value::String(key.to_owned());
    }
    let mut times = Vec::with_capacity(n);
    // The first invocations build connections and fill the key cache; they are not counted.
    for i in 0..n + 5 {
        let started = Instant::now();
        let answer = api.invoke(event.clone(), Duration::from_secs(30)).await?;
        let status = match &answer {
            InvocationResult::Response(v) => v["statusCode"].as_u64().unwrap_or(0),
            InvocationResult::Error(e) => anyhow::bail!("the submission failed: {e}"),
        };
        anyhow::ensure!(status == 200, "submission answered {status}: {answer:?}");
        if i >= 5 {
            times.push(started.elapsed());
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    times.sort();
    Ok(times)
}

async fn submit_gate(binary: &str, n: usize) -> anyhow::Result<()> {
    use taogate_shared::domain::{ApiKey, Limits, Rate};
    use taogate_shared::ports::KeyAdmin;
    let (clients, resources, env) = fresh_resources(3).await?;
    let table = DynamoTasks::new(
        clients.dynamodb.clone(),
        S3Blobs::new(clients.s3.clone(), &resources),
        &resources,
    );
    let fill = |b: &mut [u8]| rand::RngCore::fill_bytes(&mut rand::rng(), b);
    let plain = ApiKey::issue("plain", Limits::default(), now_millis(), fill);
    let rated_limits = Limits {
        rate: Some(Rate::parse("1000000/s", None)?),
        ..Limits::default()
    };
    let rated = ApiKey::issue("rated", rated_limits, now_millis() + 1, fill);
    for issued in [&plain, &rated] {
        table
            .save_key(&issued.key)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    let with = |auth: &str| {
        let mut env = env.clone();
        env.push(("API_AUTH".into(), auth.into()));
        env
    };
    let runs = [
        ("no key (API_AUTH=optional)", with("optional"), None),
        (
            "a key without limits",
            with("required"),
            Some(plain.secret.as_str()),
        ),
        (
            "a key with a rate",
            with("required"),
            Some(rated.secret.as_str()),
        ),
    ];
    println!("| caller | invocations | median | p90 | min | max |");
    println!("|---|---|---|---|---|---|");
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    for (label, env, key) in runs {
        let t = submissions(binary, &env, key, n).await?;
        println!(
            "| {label} | {n} | {} | {} | {} | {} |",
            ms(t[t.len() / 2]),
            ms(t[t.len() * 9 / 10]),
            ms(t[0]),
            ms(t[t.len() - 1])
        );
    }
    Ok(())
}

async fn cost(dir: &str, tasks: usize, miner_ms: usize) -> anyhow::Result<()> {
    use taogate_testkit::cost;
    let logs = std::env::temp_dir().join(format!("lambda-bench-cost-{}", std::process::id()));
    let miners = cost::Miners {
        count: 5,
        delay: Duration::from_millis(miner_ms as u64),
    };
    let binaries = cost::Binaries::in_dir(std::path::Path::new(dir));
    let costs = cost::run(&binaries, tasks, miners, &logs).await?;
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))?;
    println!(
        "{tasks} tasks per service, 5 miners answering after {miner_ms} ms, binaries of {dir}\n"
    );
    print!(
        "{}",
        cost::report(&costs, |f| cost::memory_mb(&template, f).unwrap_or(128))
    );
    println!("\nBy operation, per task:\n\n{}", cost::operations(&costs));
    let _ = std::fs::remove_dir_all(logs);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let number =
        |i: usize, default: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default);
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("coldstart"), Some(binary)) => coldstart(binary, number(3, 20).max(1)).await,
        (Some("worker-memory"), Some(binary)) => {
            worker_memory(binary, number(3, 50), number(4, 5), number(5, 1).max(1)).await
        }
        (Some("worker-hostile"), Some(binary)) => {
            let memory = args.get(5).and_then(|v| v.parse().ok());
            let flood = Hostile {
                behaviours: vec![Behaviour::Flood; number(4, 7)],
                text: "Every word of this long text may be read aloud by a hostile miner. "
                    .repeat(150)
                    .chars()
                    .take(10_000)
                    .collect(),
                expect: TaskStatus::Failed,
                label: "all flooding".into(),
                task_timeout: 30,
            };
            worker_hostile(binary, number(3, 5), flood, memory).await
        }
        (Some("worker-mix"), Some(binary)) => {
            let mut behaviours = vec![Behaviour::Good; 3];
            behaviours.extend(Behaviour::HOSTILE);
            behaviours.push(Behaviour::Flood);
            let mix = Hostile {
                behaviours,
                text: "Fishing boats will use the south quay until the new lights arrive on \
                    the north pier, which the harbour master expects within two weeks."
                    .into(),
                expect: TaskStatus::Completed,
                label: "3 good, 7 hostile, 1 flooding".into(),
                task_timeout: 10,
            };
            worker_hostile(binary, number(3, 5), mix, None).await
        }
        (Some("submit-gate"), Some(binary)) => submit_gate(binary, number(3, 200).max(10)).await,
        (Some("cost"), Some(dir)) => cost(dir, number(3, 20).max(1), number(4, 1000)).await,
        _ => anyhow::bail!(
            "usage: lambda-bench coldstart BINARY [RUNS] | worker-memory WORKER_BINARY [MIB] [MINERS] [RECORDS] | worker-hostile WORKER_BINARY [RECORDS] [MINERS] [MAX_ANSWER_MEMORY] | worker-mix WORKER_BINARY [RECORDS] | submit-gate SUBMIT_BINARY [N] | cost BINARY_DIR [TASKS] [MINER_MS]"
        ),
    }
}
