//! Ports: the small capability traits handlers are written against.
//!
//! Each trait is sized to what one Lambda may do, so a handler's bounds read like its IAM policy:
//! the submit route needs [`TaskWriter`] + [`TaskQueue`] + [`BlobStore`]; the status routes need
//! [`TaskReader`]; the worker needs all of them plus a [`MinerDirectory`] and a [`MinerClient`].
//! Adapters (embedded, AWS) implement them and own every wire conversion.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::bittensor::{Miner, MinerReply, MinerSnapshot, SynapseRequest};
pub use crate::domain::AttemptEnd;
use crate::domain::{
    ClaimOutcome, Millis, MinerHealth, Priority, ServiceKind, StatusCounts, Task, TaskId,
    TaskStatus,
};

/// An infrastructure failure, translated once by the adapter.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item in another state.
    #[error("conditional write conflict: {0}")]
    Conflict(String),
    /// The backend failed.
    #[error("storage backend failed")]
    Backend(#[source] anyhow::Error),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(e: impl Into<anyhow::Error>) -> Self {
        Self::Backend(e.into())
    }
}

/// A page request for the task list.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    /// Only tasks in this status.
    pub status: Option<TaskStatus>,
    /// Only tasks of this service.
    pub kind: Option<ServiceKind>,
    /// At most this many (1–100).
    pub limit: usize,
    /// Continue after this task (exclusive), newest first.
    pub after: Option<TaskId>,
}

/// One page of tasks, newest first.
#[derive(Debug, Clone)]
pub struct TaskPage {
    /// The tasks.
    pub tasks: Vec<Task>,
    /// Where the next page starts, if there is one.
    pub next: Option<TaskId>,
}

impl TaskPage {
    /// A page from `limit + 1` tasks read: the extra one only says that a next page exists.
    pub fn from_overfetch(mut tasks: Vec<Task>, limit: usize) -> Self {
        let next = if tasks.len() > limit {
            tasks.truncate(limit);
            tasks.last().map(|t| t.id)
        } else {
            None
        };
        Self { tasks, next }
    }
}

/// Reads tasks (the status Lambda's `dynamodb:GetItem` + `Query`).
pub trait TaskReader: Send + Sync + 'static {
    /// One task.
    fn get(&self, id: TaskId) -> impl Future<Output = Result<Option<Task>, StoreError>> + Send;
    /// A page of tasks, newest first.
    fn list(&self, query: TaskQuery) -> impl Future<Output = Result<TaskPage, StoreError>> + Send;
    /// Counts by status.
    fn counts(&self) -> impl Future<Output = Result<StatusCounts, StoreError>> + Send;
}

/// Writes tasks through conditional transitions only.
pub trait TaskWriter: Send + Sync + 'static {
    /// Stores a new pending task. Conflict if the id exists.
    fn insert(&self, task: &Task) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Starts an attempt if the task is claimable (see [`Task::claimable`]): sets `processing`,
    /// increments `attempts`, sets the lease. Atomic.
    fn claim(
        &self,
        id: TaskId,
        now: Millis,
        lease: Duration,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send;

    /// Ends attempt number `attempt`. Conflict unless the task is still non-terminal and still
    /// on that attempt, so a worker whose lease was retaken cannot overwrite the newer attempt.
    fn end_attempt(
        &self,
        id: TaskId,
        attempt: u32,
        end: AttemptEnd,
        now: Millis,
    ) -> impl Future<Output = Result<Task, StoreError>> + Send;
}

/// Where and how a client uploads a file directly, bypassing the API's body limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTarget {
    /// The URL to send the file to.
    pub url: String,
    /// The HTTP method (`PUT`).
    pub method: &'static str,
    /// Headers the upload must carry (they are part of the signature on S3).
    pub headers: Vec<(String, String)>,
    /// Seconds the URL stays valid.
    pub expires_in_s: u64,
}

/// Stores blobs: input audio, TTS output.
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `key`.
    fn put(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Reads a blob.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;
    /// A URL a client can upload the blob `key` to, valid for `expires`.
    fn upload_target(
        &self,
        key: &str,
        content_type: &str,
        expires: Duration,
    ) -> impl Future<Output = Result<UploadTarget, StoreError>> + Send;
    /// A URL a client can fetch the blob of task `id` from.
    fn public_url(
        &self,
        id: TaskId,
        key: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// A message received from the task queue.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The task the message names.
    pub task_id: TaskId,
    /// Its priority class.
    pub priority: Priority,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
    /// The handle to acknowledge or release this delivery.
    pub receipt: String,
}

/// Queue depth per priority class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct QueueDepth {
    /// Messages waiting.
    pub visible: u64,
    /// Messages received and not yet acknowledged.
    pub in_flight: u64,
    /// Messages in the dead-letter area.
    pub dead: u64,
}

/// The priority-split task queue (SQS: one queue per class, each with a dead-letter queue).
pub trait TaskQueue: Send + Sync + 'static {
    /// Queues a task.
    fn send(
        &self,
        id: TaskId,
        priority: Priority,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Takes up to `max` messages, most urgent class first. Each becomes invisible for
    /// `visibility`; a message already received `max_receives` times goes to the dead letters
    /// instead.
    fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;
    /// Deletes a handled message.
    fn ack(&self, receipt: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Makes a message visible again after `delay`.
    fn release(
        &self,
        receipt: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Depth per class, most urgent first.
    fn depths(
        &self,
    ) -> impl Future<Output = Result<Vec<(Priority, QueueDepth)>, StoreError>> + Send;
}

/// Per-miner health records (see [`MinerHealth`]), shared by every worker.
pub trait HealthStore: Send + Sync + 'static {
    /// The records of these hotkeys that exist.
    fn load_health(
        &self,
        hotkeys: Vec<String>,
    ) -> impl Future<Output = Result<Vec<MinerHealth>, StoreError>> + Send;
    /// Stores these records, replacing older ones (last writer wins: health is advisory).
    fn save_health(
        &self,
        records: Vec<MinerHealth>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where the miners are: the metagraph snapshot.
pub trait MinerDirectory: Send + Sync + 'static {
    /// The current snapshot.
    fn snapshot(&self) -> impl Future<Output = Result<Arc<MinerSnapshot>, StoreError>> + Send;

    /// Reports that the miner with `hotkey` refused our signature (401): the directory's entry
    /// is probably stale. Directories that can re-read their source leave the miner out and
    /// re-read; the default does nothing.
    fn mark_stale(&self, hotkey: &str) {
        let _ = hotkey;
    }
}

/// Sends one synapse request to one miner.
pub trait MinerClient: Send + Sync + 'static {
    /// Queries `miner`, giving up at `deadline` after the call.
    fn query(
        &self,
        miner: &Miner,
        request: &SynapseRequest,
        deadline: Duration,
    ) -> impl Future<Output = MinerReply> + Send;
}
