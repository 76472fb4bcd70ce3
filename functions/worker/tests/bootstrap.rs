//! The real `worker` bootstrap binary, driven through a Lambda Runtime API emulator with SQS
//! batches, against LocalStack and moto and a simulated subnet.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

use std::time::Duration;

use taogate_shared::aws::{DynamoTasks, S3Blobs};
use taogate_shared::domain::{
    Language, Priority, ServiceKind, Task, TaskInput, TaskStatus, now_millis,
};
use taogate_shared::ports::{BlobPut, TaskCreate, TaskReader};
use taogate_simulator::{Behaviour, SimOptions, SimulatedSubnet};
use taogate_testkit::{Function, InvocationResult, RuntimeApi, fresh_resources};

fn record(id: &str, task: &Task, queue_name: &str, receive_count: u32) -> serde_json::Value {
    serde_json::json!({
        "messageId": id,
        "receiptHandle": format!("handle-{id}"),
        "body": serde_json::json!({"task_id": task.id, "priority": task.priority}).to_string(),
        "attributes": {"ApproximateReceiveCount": receive_count.to_string(), "SentTimestamp": "1795000000000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:us-east-1:000000000000:{queue_name}"),
        "awsRegion": "us-east-1"
    })
}

/// Simulated miners behaving as `behaviours`, published as the worker's miner snapshot.
async fn subnet_in_snapshot(
    clients: &taogate_shared::aws::AwsClients,
    resources: &taogate_shared::aws::AwsResources,
    behaviours: Vec<Behaviour>,
) -> (SimulatedSubnet, S3Blobs) {
    let subnet = SimulatedSubnet::start(SimOptions {
        behaviours,
        ..SimOptions::mixed(0)
    })
    .await
    .unwrap();
    let blobs = S3Blobs::new(clients.s3.clone(), resources);
    let snapshot = serde_json::to_vec(&subnet.snapshot()).unwrap();
    blobs
        .put(&resources.snapshot_key, snapshot.into(), "application/json")
        .await
        .unwrap();
    (subnet, blobs)
}

/// A stored text-to-speech task saying `text`.
async fn stored_tts(tasks: &DynamoTasks, text: &str) -> Task {
    let task = Task::new(
        ServiceKind::Tts,
        Priority::Normal,
        Language::parse("en").unwrap(),
        TaskInput::Text { text: text.into() },
        None,
        now_millis(),
    );
    tasks.insert(&task).await.unwrap();
    task
}

/// The worker binary, started against `env`; keep all three alive for the test.
async fn started_worker(env: &[(String, String)]) -> (RuntimeApi, tempfile::TempDir, Function) {
    let api = RuntimeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let function = api
        .spawn(
            env!("CARGO_BIN_EXE_worker"),
            env,
            &dir.path().join("worker.log"),
        )
        .unwrap();
    (api, dir, function)
}

#[tokio::test]
async fn the_binary_processes_a_batch_and_reports_failures_per_item() {
    let (clients, resources, mut env) = fresh_resources(3).await.unwrap();
    let (subnet, blobs) =
        subnet_in_snapshot(&clients, &resources, vec![Behaviour::Good, Behaviour::Good]).await;
    let tasks = DynamoTasks::new(clients.dynamodb.clone(), blobs, &resources);
    let good = stored_tts(&tasks, "speak").await;
    // A transcription whose audio was never stored: its attempt cannot run and is handed back.
    let broken = Task::new(
        ServiceKind::Transcription,
        Priority::Normal,
        Language::parse("en").unwrap(),
        TaskInput::Audio {
            blob_key: "input/missing".into(),
            filename: None,
            size_bytes: 1,
            info: taogate_shared::domain::AudioInfo {
                format: "wav".into(),
                duration_s: 1.0,
                sample_rate: 8000,
                channels: 1,
            },
        },
        None,
        now_millis(),
    );
    tasks.insert(&broken).await.unwrap();

    env.push(("BT_HOTKEY_URI".into(), "//Alice".into()));
    env.push(("TASK_TIMEOUT".into(), "5".into()));
    let (api, _dir, _function) = started_worker(&env).await;

    let queue_name = resources.queues[1].rsplit('/').next().unwrap().to_owned();
    let event = serde_json::json!({"Records": [record("m-good", &good, &queue_name, 1), record("m-broken", &broken, &queue_name, 1)]});
    let InvocationResult::Response(r) = api.invoke(event, Duration::from_secs(60)).await.unwrap()
    else {
        panic!("the handler failed");
    };
    assert_eq!(
        r["batchItemFailures"],
        serde_json::json!([{"itemIdentifier": "m-broken"}]),
        "{r}"
    );
    let done = tasks.get(good.id).await.unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Completed, "{done:?}");
    assert_eq!(subnet.served(0), 1);

    // The same message again (a duplicate delivery) is acknowledged without querying miners.
    let event = serde_json::json!({"Records": [record("m-dup", &good, &queue_name, 2)]});
    let InvocationResult::Response(r) = api.invoke(event, Duration::from_secs(60)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(r["batchItemFailures"], serde_json::json!([]));
    assert_eq!(subnet.served(0), 1);
}

#[tokio::test]
async fn a_record_the_invocation_cannot_finish_goes_back_without_using_an_attempt() {
    let (clients, resources, mut env) = fresh_resources(3).await.unwrap();
    let (subnet, blobs) = subnet_in_snapshot(&clients, &resources, vec![Behaviour::Good]).await;
    let tasks = DynamoTasks::new(clients.dynamodb.clone(), blobs, &resources);
    let task = stored_tts(&tasks, "too late").await;
    env.push(("BT_HOTKEY_URI".into(), "//Alice".into()));
    env.push(("TASK_TIMEOUT".into(), "5".into()));
    let (api, _dir, _function) = started_worker(&env).await;
    let queue_name = resources.queues[1].rsplit('/').next().unwrap().to_owned();
    let event = serde_json::json!({"Records": [record("m-late", &task, &queue_name, 1)]});
    // The attempt needs a 10 s lease; this invocation has 4 s.
    let InvocationResult::Response(r) = api
        .invoke_within(event, Duration::from_secs(4), Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("the handler failed");
    };
    // Handed back unclaimed, and not counted: the record is acknowledged and a copy of its
    // message, delayed by `HANDBACK_DELAY`, waits on the queue with a fresh receive count.
    assert_eq!(r["batchItemFailures"], serde_json::json!([]), "{r}");
    let stored = tasks.get(task.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts), (TaskStatus::Pending, 0));
    assert_eq!(subnet.served(0), 0, "no miner was asked");
    assert_eq!(waiting(&clients.sqs, &resources.queues[1]).await, 1);
}

/// Messages on a queue, visible or delayed.
async fn waiting(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .filter_map(|name| out.attributes().and_then(|a| a.get(name)))
    .map(|n| n.parse::<u64>().unwrap())
    .sum()
}

/// A fresh deploy has no miner snapshot yet: the task waits, using no attempt, and its message
/// comes back later as a delayed copy (so the dead-letter count is not approached).
#[tokio::test]
async fn with_no_snapshot_yet_the_task_waits_without_using_an_attempt() {
    let (clients, resources, mut env) = fresh_resources(3).await.unwrap();
    let tasks = DynamoTasks::new(
        clients.dynamodb.clone(),
        S3Blobs::new(clients.s3.clone(), &resources),
        &resources,
    );
    let task = stored_tts(&tasks, "anyone?").await;
    env.push(("BT_HOTKEY_URI".into(), "//Alice".into()));
    let (api, _dir, _function) = started_worker(&env).await;
    let queue_name = resources.queues[1].rsplit('/').next().unwrap().to_owned();
    let event = serde_json::json!({"Records": [record("m-wait", &task, &queue_name, 1)]});
    let InvocationResult::Response(r) = api.invoke(event, Duration::from_secs(30)).await.unwrap()
    else {
        panic!("the handler failed");
    };
    assert_eq!(r["batchItemFailures"], serde_json::json!([]), "{r}");
    let stored = tasks.get(task.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts), (TaskStatus::Pending, 0));
    let delayed = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&resources.queues[1])
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let count = delayed
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        count, "1",
        "a delayed copy of the message waits on the queue"
    );
}

#[tokio::test]
async fn without_a_hotkey_the_binary_refuses_to_start() {
    let (_, _, mut env) = fresh_resources(3).await.unwrap();
    // A mnemonic-looking secret that does not parse: the error must not echo it.
    env.push((
        "BT_HOTKEY_URI".into(),
        "correct horse battery staple not a phrase".into(),
    ));
    let api = RuntimeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let mut function = api.spawn(env!("CARGO_BIN_EXE_worker"), &env, &log).unwrap();
    let status = function
        .wait_exit(Duration::from_secs(20))
        .expect("the function exits during init");
    assert!(!status.success());
    let stderr = std::fs::read_to_string(log.with_extension("err")).unwrap();
    assert!(stderr.contains("not a valid secret URI"), "{stderr}");
    assert!(!stderr.contains("battery"), "the secret leaked: {stderr}");

    env.retain(|(k, _)| k != "BT_HOTKEY_URI");
    let mut function = api.spawn(env!("CARGO_BIN_EXE_worker"), &env, &log).unwrap();
    let status = function
        .wait_exit(Duration::from_secs(20))
        .expect("the function exits during init");
    assert!(!status.success());
    let stderr = std::fs::read_to_string(log.with_extension("err")).unwrap();
    assert!(stderr.contains("no hotkey"), "{stderr}");
    assert!(api.first_poll().is_none(), "it never asked for work");
}

/// A panic while one record is handled (here: the first claim the store is asked for) fails
/// that record only: it comes back as a batch item failure, and the others complete.
#[tokio::test]
async fn a_panic_in_one_record_fails_only_that_record() {
    let (clients, resources, mut env) = fresh_resources(3).await.unwrap();
    let (_subnet, blobs) = subnet_in_snapshot(&clients, &resources, vec![Behaviour::Good]).await;
    let tasks = DynamoTasks::new(clients.dynamodb.clone(), blobs, &resources);
    let mut stored = Vec::new();
    for text in ["one", "two", "three"] {
        stored.push(stored_tts(&tasks, text).await);
    }
    env.push(("BT_HOTKEY_URI".into(), "//Alice".into()));
    env.push(("TASK_TIMEOUT".into(), "5".into()));
    env.push(("FAILPOINTS".into(), "store.claim=1*panic(injected)".into()));
    let (api, _dir, _function) = started_worker(&env).await;
    let queue_name = resources.queues[1].rsplit('/').next().unwrap().to_owned();
    let records: Vec<_> = stored
        .iter()
        .enumerate()
        .map(|(i, t)| record(&format!("m{i}"), t, &queue_name, 1))
        .collect();
    let event = serde_json::json!({ "Records": records });
    let InvocationResult::Response(r) = api.invoke(event, Duration::from_secs(60)).await.unwrap()
    else {
        panic!("the whole invocation failed");
    };
    let failures = r["batchItemFailures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{r}");
    let struck: usize = failures[0]["itemIdentifier"].as_str().unwrap()[1..]
        .parse()
        .unwrap();
    for (i, task) in stored.iter().enumerate() {
        let now = tasks.get(task.id).await.unwrap().unwrap();
        if i == struck {
            assert_eq!(
                (now.status, now.attempts),
                (TaskStatus::Pending, 0),
                "{now:?}"
            );
        } else {
            assert_eq!(
                (now.status, now.attempts),
                (TaskStatus::Completed, 1),
                "{now:?}"
            );
        }
    }
}
