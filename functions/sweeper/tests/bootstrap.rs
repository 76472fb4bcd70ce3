//! The real `sweeper` bootstrap binary, driven through a Lambda Runtime API emulator with a
//! scheduled event, against LocalStack and moto.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

use std::time::Duration;

use taogate_shared::aws::{DynamoTasks, S3Blobs, SqsQueues};
use taogate_shared::domain::{
    Language, Priority, ServiceKind, Task, TaskId, TaskInput, now_millis,
};
use taogate_shared::ports::{QueueConsume, TaskCreate};
use taogate_testkit::{InvocationResult, RuntimeApi, fresh_resources};

#[tokio::test]
async fn a_scheduled_run_sends_a_stranded_task_a_new_message() {
    let (clients, resources, mut env) = fresh_resources(3).await.unwrap();
    let tasks = DynamoTasks::new(
        clients.dynamodb.clone(),
        S3Blobs::new(clients.s3.clone(), &resources),
        &resources,
    );
    let queues = SqsQueues::new(clients.sqs.clone(), &resources);
    // Stored twenty minutes ago and never sent: a submission stopped between its two writes.
    let then = now_millis() - 20 * 60_000;
    let mut stranded = Task::new(
        ServiceKind::Summarization,
        Priority::Low,
        Language::parse("en").unwrap(),
        TaskInput::Text {
            text: "a long text".into(),
        },
        None,
        then,
    );
    stranded.id = TaskId::first_at(then);
    tasks.insert(&stranded).await.unwrap();

    env.push(("SWEEP_AFTER".into(), "600".into()));
    let api = RuntimeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _function = api
        .spawn(
            env!("CARGO_BIN_EXE_sweeper"),
            &env,
            &dir.path().join("sweeper.log"),
        )
        .unwrap();
    let event =
        serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
    let InvocationResult::Response(r) = api
        .invoke(event.clone(), Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("the sweep failed");
    };
    assert_eq!(
        (&r["stranded"], &r["requeued"]),
        (&serde_json::json!(1), &serde_json::json!(1)),
        "{r}"
    );
    let mut sent = Vec::new();
    for _ in 0..20 {
        sent = queues.receive(10, Duration::from_secs(30)).await.unwrap();
        if !sent.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].task_id, sent[0].priority),
        (stranded.id, Priority::Low)
    );

    // Within the bound it is not sent again.
    let InvocationResult::Response(r) = api.invoke(event, Duration::from_secs(60)).await.unwrap()
    else {
        panic!("the sweep failed");
    };
    assert_eq!(r["stranded"], 0, "{r}");
}
