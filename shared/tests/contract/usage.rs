//! What the AWS adapters use is counted per operation (`aws::usage`), on the emulators.

use taogate_shared::domain::{Language, Priority, ServiceKind, Task, TaskInput};
use taogate_shared::ports::{BlobGet, BlobPut, QueueSend, TaskCreate, TaskReader};

#[tokio::test]
async fn every_adapter_counts_requests_bytes_and_capacity_on_aws() {
    let (b, usage) = crate::aws_fixture::aws_counted().await;
    usage.take(); // provisioning
    let text = "x".repeat(3000);
    let task = Task::new(
        ServiceKind::Summarization,
        Priority::Normal,
        Language::parse("en").unwrap(),
        TaskInput::Text { text },
        None,
        1_000,
    );
    b.tasks.insert(&task).await.unwrap();
    assert!(b.tasks.get(task.id).await.unwrap().is_some());
    b.queue.send(task.id, Priority::High).await.unwrap();
    let audio = vec![7u8; 100_000];
    b.blobs
        .put("inputs/usage.wav", audio.clone().into(), "audio/wav")
        .await
        .unwrap();
    let read = b.blobs.get("inputs/usage.wav").await.unwrap().unwrap();
    assert_eq!(read.len(), audio.len());

    let used = usage.take();
    let op = |name: &str| {
        *used
            .get(name)
            .unwrap_or_else(|| panic!("{name} not counted: {used:?}"))
    };
    let put = op("DynamoDB.PutItem");
    assert_eq!(put.requests, 1, "{used:?}");
    // The emulator reports capacity only when asked: a figure here means the interceptor asked.
    assert!(put.capacity_reported > 0.0, "{put:?}");
    // The item holds the 3,000-character text as JSON: more than 3 KB, so at least 4 units.
    assert!(put.capacity_estimated >= 4.0, "{put:?}");
    assert!(put.bytes_sent > 3000, "{put:?}");
    let get = op("DynamoDB.GetItem");
    assert!(
        get.capacity_reported > 0.0 && get.capacity_estimated > 0.0,
        "{get:?}"
    );
    assert!(get.bytes_received > 3000, "{get:?}");
    let send = op("SQS.SendMessage");
    assert_eq!((send.requests, send.billed_requests), (1, 1), "{send:?}");
    let upload = op("S3.PutObject");
    assert_eq!((upload.requests, upload.bytes_sent), (1, 100_000));
    let download = op("S3.GetObject");
    assert_eq!((download.requests, download.bytes_received), (1, 100_000));
    assert!(usage.take().is_empty(), "take leaves zero");
}
