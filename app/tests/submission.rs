//! The submission use case over the embedded stores.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

use bytes::Bytes;
use taogate_app::ports::{QueueSend, StoreError};
use taogate_core::domain::{
    AudioInfo, BlobKey, Language, Priority, ServiceKind, TaskId, TaskInput,
};

use taogate_app::ports::TaskReader;
use taogate_app::submission::*;
use taogate_core::domain::TaskStatus;

/// A queue whose every send fails, as SQS does when it is unreachable.
struct Unreachable;

impl QueueSend for Unreachable {
    async fn send(&self, _id: TaskId, _priority: Priority) -> Result<(), StoreError> {
        Err(StoreError::backend(anyhow::anyhow!("connection refused")))
    }
}

fn submission() -> Submission {
    Submission {
        id: TaskId::new(),
        kind: ServiceKind::Summarization,
        priority: Priority::Normal,
        language: Language::parse("en").unwrap(),
        callback_url: None,
        owner: String::new(),
    }
}

#[tokio::test]
async fn a_task_whose_message_cannot_be_sent_is_failed_at_once_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let intake = Intake {
        tasks: db.clone(),
        queue: Unreachable,
        blobs,
    };
    let refused = submit(&intake, submission(), Payload::Text("some text".into())).await;
    assert!(
        matches!(refused, Err(StoreError::Backend(_))),
        "{refused:?}"
    );
    let page = db.list(taogate_app::ports::TaskQuery {
        limit: 10,
        ..Default::default()
    });
    let stored = page.await.unwrap().tasks;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, TaskStatus::Failed);
    assert!(
        stored[0]
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("could not be queued")),
        "{:?}",
        stored[0].error_message
    );
}

#[tokio::test]
async fn sent_audio_is_stored_under_the_tasks_input_key_before_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let intake = Intake {
        tasks: db.clone(),
        queue: db.clone(),
        blobs: blobs.clone(),
    };
    let info = AudioInfo {
        format: "wav".into(),
        duration_s: 1.0,
        sample_rate: 16_000,
        channels: 1,
    };
    let payload = Payload::Audio {
        data: Bytes::from_static(b"RIFF...."),
        filename: Some("a.wav".into()),
        info,
    };
    let mut sub = submission();
    sub.kind = ServiceKind::Transcription;
    let task = submit(&intake, sub, payload).await.unwrap();
    let TaskInput::Audio { blob_key, .. } = &task.input else {
        panic!("an audio task: {:?}", task.input);
    };
    assert_eq!(blob_key, BlobKey::input(task.id).as_str());
    let stored = taogate_app::ports::BlobGet::get(&blobs, blob_key)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(&b"RIFF...."[..]));
    assert_eq!(
        db.get(task.id).await.unwrap().unwrap().status,
        TaskStatus::Pending
    );
}
