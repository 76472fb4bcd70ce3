//! The submission use case: a request the HTTP layer has parsed and validated becomes a stored,
//! queued task. The submission routes call [`accept`] after parsing (it decides the key's
//! priority cap and monthly quota, then [`submit`]s); nothing here knows HTTP.
//!
//! Accepted means queued: the task is stored first and its message sent second. If the send
//! fails, the stored task is failed at once (so nothing waits forever for a message that was
//! never sent) and the caller learns of the failure.

use bytes::Bytes;

use crate::domain::{
    ApiKey, AudioInfo, BlobKey, Language, Millis, Priority, ServiceKind, Task, TaskId, TaskInput,
    now_millis,
};
use crate::ports::{BlobPut, Metering, QueueSend, StoreError, TaskCreate};

/// What every submission says besides its payload.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The task's id, chosen by the caller (an idempotent request chooses it before it
    /// claims its key).
    pub id: TaskId,
    /// The service asked for.
    pub kind: ServiceKind,
    /// Its queue class.
    pub priority: Priority,
    /// The source language.
    pub language: Language,
    /// Where to report the end, already checked.
    pub callback_url: Option<String>,
    /// Who submits it: a key id, or empty for the anonymous tenant.
    pub owner: String,
}

/// The validated input of a submission.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Text to summarize or speak.
    Text(String),
    /// Audio sent with the request, probed: stored under the task's own input key.
    Audio {
        /// The file.
        data: Bytes,
        /// Its name, if the client gave one.
        filename: Option<String>,
        /// What the probe measured.
        info: AudioInfo,
    },
    /// Audio read once from an upload and probed: the bytes probed are stored under the task's
    /// own input key, so what was checked is what miners get, whatever happens to the upload.
    Uploaded {
        /// The upload they were read from.
        upload: BlobKey,
        /// The file as read.
        data: Bytes,
        /// What the probe measured.
        info: AudioInfo,
    },
}

/// The ports a submission uses: the submit Lambda's policy.
#[derive(Debug, Clone)]
pub struct Intake<W, Q, B> {
    /// Task table (insert; fail a task whose message could not be sent).
    pub tasks: W,
    /// Queue (send).
    pub queue: Q,
    /// Blob store (input audio).
    pub blobs: B,
}

/// Why a submission was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The key may not submit at the priority asked for.
    #[error("this key may submit at priority {} at most", .allowed.as_str())]
    PriorityAboveKey {
        /// The highest priority the key may use.
        allowed: Priority,
    },
    /// The key's monthly quota is used up.
    #[error("this key's quota of {quota} tasks a month is used up")]
    QuotaUsedUp {
        /// Tasks a month the key may submit.
        quota: u64,
        /// When it was found used up.
        at: Millis,
    },
    /// The store or the queue failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Accepts `submission` from the holder of `key` (`None`: the anonymous tenant, which has no
/// cap and no quota): refused above the key's priority cap or past its monthly quota; else one
/// task is counted against the quota, then [`submit`]ted, and given back if it is not accepted
/// after all.
///
/// If a task with the submission's id exists already, an earlier request under the same
/// `Idempotency-Key` created it (and counted it) before it died: that task is this one's, and
/// this is accepted too.
pub async fn accept<W: TaskCreate + Metering, Q: QueueSend, B: BlobPut>(
    intake: &Intake<W, Q, B>,
    key: Option<&ApiKey>,
    submission: Submission,
    payload: Payload,
) -> Result<(), Refusal> {
    let kind = submission.kind;
    if let Some(key) = key {
        let allowed = key.limits.max_priority;
        if submission.priority > allowed {
            return Err(Refusal::PriorityAboveKey { allowed });
        }
        let now = now_millis();
        let quota = key.limits.quota;
        if !intake.tasks.reserve_task(&key.id, kind, quota, now).await? {
            return Err(Refusal::QuotaUsedUp {
                quota: quota.unwrap_or_default(),
                at: now,
            });
        }
    }
    let outcome = submit(intake, submission, payload).await;
    if outcome.is_err()
        && let Some(key) = key
        && let Err(lost) = intake.tasks.release_task(&key.id, kind, now_millis()).await
    {
        tracing::warn!(error = ?anyhow::Error::from(lost), "a task refused after its quota was counted stays counted");
    }
    match outcome {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Stores the payload and the task, then queues it. Returns the stored task; a conflict if a
/// task with the submission's id exists already.
pub async fn submit<W: TaskCreate, Q: QueueSend, B: BlobPut>(
    intake: &Intake<W, Q, B>,
    submission: Submission,
    payload: Payload,
) -> Result<Task, StoreError> {
    let id = submission.id;
    let input = match payload {
        Payload::Text(text) => TaskInput::Text { text },
        Payload::Uploaded { data, info, .. } => store_input(intake, id, data, None, info).await?,
        Payload::Audio {
            data,
            filename,
            info,
        } => store_input(intake, id, data, filename, info).await?,
    };
    let mut task = Task::with_id(
        id,
        submission.kind,
        submission.priority,
        submission.language,
        input,
        submission.callback_url,
        now_millis(),
    );
    task.owner = submission.owner;
    intake.tasks.insert(&task).await?;
    crate::faults::crash("submission.stored");
    if let Err(e) = intake.queue.send(task.id, task.priority).await {
        // Never leave an accepted-looking task without a message.
        let reason = "the task could not be queued; please submit it again".to_owned();
        if let Err(lost) = intake.tasks.abandon(task.id, reason, now_millis()).await {
            tracing::warn!(task_id = %task.id, error = ?anyhow::Error::from(lost), "the unqueued task could not be marked failed; the sweeper will send it a message");
        }
        return Err(e);
    }
    Ok(task)
}

/// Stores a submission's audio under the task's own input key.
async fn store_input<W, Q, B: BlobPut>(
    intake: &Intake<W, Q, B>,
    id: TaskId,
    data: Bytes,
    filename: Option<String>,
    info: AudioInfo,
) -> Result<TaskInput, StoreError> {
    let key = BlobKey::input(id);
    let size_bytes = data.len() as u64;
    intake
        .blobs
        .put(key.as_str(), data, "application/octet-stream")
        .await?;
    Ok(TaskInput::Audio {
        blob_key: key.into_string(),
        filename,
        size_bytes,
        info,
    })
}
