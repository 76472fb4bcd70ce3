//! The task store's capabilities: reading (status), creating (submit), leasing and ending
//! attempts (worker), and the miners' health records (worker).

use std::future::Future;
use std::time::Duration;

use super::StoreError;
pub use crate::domain::AttemptEnd;
use crate::domain::{
    ClaimOutcome, GiveUp, Millis, MinerHealth, Observation, ServiceKind, StatusCounts, Task,
    TaskId, TaskStatus,
};

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
    /// Only tasks of this owner (a key id; empty for the anonymous tenant). `None` lists
    /// every owner's (admins).
    pub owner: Option<String>,
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

/// Creates tasks (the submit Lambda's conditional `dynamodb:PutItem`).
pub trait TaskCreate: Send + Sync + 'static {
    /// Stores a new pending task. Conflict if the id exists.
    fn insert(&self, task: &Task) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Fails a task that was stored but could not be queued (so no attempt ever started):
    /// `pending → failed` with `reason`. Conflict if it is no longer pending.
    fn abandon(
        &self,
        id: TaskId,
        reason: String,
        now: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Moves tasks through their attempts with conditional transitions only (the worker's
/// conditional `dynamodb:PutItem`/`UpdateItem`).
pub trait TaskLease: Send + Sync + 'static {
    /// The size of task `id`'s input (its text, or its audio file), read before a claim to
    /// plan the attempt; `None` if there is no such task.
    fn input_size(
        &self,
        id: TaskId,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Starts a worker's attempt if the task is claimable (see [`Task::claimable`]): sets
    /// `processing`, increments `attempts`, sets the lease. Atomic.
    fn claim(
        &self,
        id: TaskId,
        now: Millis,
        lease: Duration,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send {
        self.claim_as(id, now, lease, None)
    }

    /// [`Self::claim`] for `holder`: `None` for a worker, the digest of the lease token handed
    /// to an external validator (see [`Task::begin_attempt_as`]).
    fn claim_as(
        &self,
        id: TaskId,
        now: Millis,
        lease: Duration,
        holder: Option<String>,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send;

    /// Fails an unfinished task whose message went to the dead letters (see
    /// [`Task::give_up`]): conditional on the state read, like every transition.
    fn give_up(
        &self,
        id: TaskId,
        reason: String,
        now: Millis,
    ) -> impl Future<Output = Result<GiveUp, StoreError>> + Send;

    /// Ends attempt number `attempt`. Conflict unless the task is still non-terminal and still
    /// on that attempt, so a worker whose lease was retaken cannot overwrite the newer attempt.
    fn end_attempt(
        &self,
        id: TaskId,
        attempt: u32,
        end: AttemptEnd,
        now: Millis,
    ) -> impl Future<Output = Result<Task, StoreError>> + Send {
        self.end_attempt_as(id, attempt, None, end, now)
    }

    /// [`Self::end_attempt`] for `holder` (see [`Task::finish_attempt_as`]): with the digest of
    /// a lease token, also a conflict unless that validator's lease is live at `now`.
    fn end_attempt_as(
        &self,
        id: TaskId,
        attempt: u32,
        holder: Option<String>,
        end: AttemptEnd,
        now: Millis,
    ) -> impl Future<Output = Result<Task, StoreError>> + Send;
}

/// Records the tries of owed callbacks (a conditional `dynamodb:PutItem` that changes no
/// status, hence no count): the worker after a task's end, the sweeper later.
pub trait NoticeLedger: Send + Sync + 'static {
    /// Records one try of the callback task `id` owes (see [`Task::note_try`]); conditional on
    /// the state read. Conflict if another try was recorded meanwhile.
    fn note_notice(
        &self,
        id: TaskId,
        delivered: bool,
        now: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Finds and marks stranded tasks (the sweeper's `dynamodb:Query` on the status index,
/// `BatchGetItem` and conditional `PutItem`).
pub trait TaskSweep: Send + Sync + 'static {
    /// Up to `limit` unfinished tasks that are [`Task::stranded`] at `now` for `bound`.
    fn stranded(
        &self,
        now: Millis,
        bound: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Task>, StoreError>> + Send;

    /// Up to `limit` finished tasks whose owed callback is due (see [`Task::notice_due`]).
    fn due_notices(
        &self,
        now: Millis,
        bound: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Task>, StoreError>> + Send;

    /// Records that a new message was sent for task `id` (see [`Task::mark_requeued`]);
    /// conditional on the state read. Conflict if it moved on meanwhile.
    fn mark_requeued(
        &self,
        id: TaskId,
        now: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Per-miner health records (see [`MinerHealth`]), shared by every worker.
pub trait HealthStore: Send + Sync + 'static {
    /// The records of these hotkeys that exist.
    fn load_health(
        &self,
        hotkeys: Vec<String>,
    ) -> impl Future<Output = Result<Vec<MinerHealth>, StoreError>> + Send;
    /// Stores these records, replacing older ones (seeding and repairs; workers observe).
    fn save_health(
        &self,
        records: Vec<MinerHealth>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds each observation to its miner's stored record, atomically per miner, so that
    /// concurrent attempts never overwrite each other's observations. Returns the updated
    /// records.
    fn observe_health(
        &self,
        observations: Vec<Observation>,
    ) -> impl Future<Output = Result<Vec<MinerHealth>, StoreError>> + Send;
}
