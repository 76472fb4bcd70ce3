//! The task table on DynamoDB.
//!
//! Item: `id` (key), `status`, `kind`, `attempts`, `lease_until`, `created_at`, the whole task as
//! JSON in `body`, and `expires_at` (TTL) once finished. A body too large for DynamoDB's 400 KB
//! item limit (a 50,000-character text with its summary and candidates can be) is written to S3
//! under `tasks/{id}/…` first, and the item holds its key in `body_key` instead.
//!
//! Global secondary indexes serve the list newest first without scanning: `by_created`
//! (`list_all`, `id`), `by_kind` (`list_kind`, `id`) and `by_status_kind` (`list_status_kind`,
//! `id`); ids are UUIDv7, so they sort by creation time. A list by status alone reads
//! `by_status_kind` once per service: an index keyed by status alone would be written on every
//! status change, a delete and a put (2 write units), which is most of what a task's index
//! writes cost, while lists by status are rare.
//! Each hash key ends in one of [`LIST_SHARDS`] shards taken from the task id, so one busy value
//! (every task, `pending`, one service) is spread over that many index partitions, and the
//! indexes project keys only: an index write costs one write unit whatever the body's size. A
//! page queries every shard for its newest ids, merges them, and reads the items with
//! `BatchGetItem`.
//!
//! Every transition is a put conditioned on the status and attempt count read before it: a
//! concurrent writer makes it fail as a conflict, never overwrite.
//!
//! Health counts live in [`COUNTER_SHARDS`] counter items (`id = "#counts#N"`), bumped with an
//! atomic `ADD` after each transition and summed on read, so they never need a scan. They are not
//! in a transaction with the transition: concurrent transactions on one hot item cancel each other
//! (`TransactionConflict`), and sharding spreads the write load. The price: a crash between a
//! transition and its counter update leaves the counts off by one; the tasks themselves are exact.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{AwsResources, S3Blobs};
use crate::domain::{ClaimOutcome, GiveUp, Millis, StatusCounts, Task, TaskId, TaskStatus};
use crate::dynamo_batch::{Item, Read, batch_get};
use crate::ports::{
    AttemptEnd, BlobGet, BlobPut, NoticeLedger, StoreError, TaskCreate, TaskLease, TaskPage,
    TaskQuery, TaskReader, TaskSweep,
};

/// Index reads one owner's filtered page may take (see `list_owned`).
const OWNER_SCAN_ROUNDS: usize = 8;

/// The `list_owner` value of `owner`'s tasks in `shard` (`o` keeps the anonymous tenant's
/// value non-empty).
fn owner_shard(owner: &str, shard: impl std::fmt::Display) -> String {
    format!("o{owner}#{shard}")
}

/// Counter items the health counts are spread over.
pub const COUNTER_SHARDS: usize = 8;

/// Bodies larger than this go to S3 (the item limit is 400 KB, attribute names included).
const INLINE_BODY_BYTES: usize = 300 * 1024;

/// DynamoDB task table.
#[derive(Debug, Clone)]
pub struct DynamoTasks {
    pub(super) client: aws_sdk_dynamodb::Client,
    pub(super) table: String,
    /// Each key's rate state as this process last wrote it: which conditional update to try
    /// first (see `tenants.rs`).
    pub(super) rate_hints: std::sync::Arc<std::sync::Mutex<HashMap<String, i64>>>,
    ttl: Duration,
    large_bodies: S3Blobs,
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn backend(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::backend(e)
}

impl DynamoTasks {
    /// The table named in `resources`; bodies too large for an item go to `large_bodies`.
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        large_bodies: S3Blobs,
        resources: &AwsResources,
    ) -> Self {
        Self {
            client,
            table: resources.table.clone(),
            rate_hints: Default::default(),
            ttl: Duration::from_secs(u64::from(resources.task_ttl_days) * 86_400),
            large_bodies,
        }
    }

    async fn item(&self, task: &Task) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let body = serde_json::to_string(task).map_err(backend)?;
        let body_attribute = if body.len() > INLINE_BODY_BYTES {
            // A fresh key per write: a write that loses its condition leaves only an orphan
            // object (expired by the bucket's lifecycle rule), never a changed body.
            let key = crate::domain::BlobKey::task_body(task.id).into_string();
            self.large_bodies
                .put(&key, body.into(), "application/json")
                .await?;
            ("body_key", key)
        } else {
            ("body", body)
        };
        let (status, kind, shard) = (
            task.status.as_str(),
            task.kind.as_str(),
            list_shard(task.id),
        );
        let mut item = HashMap::from([
            ("id".to_owned(), s(task.id.to_string())),
            ("owner".to_owned(), s(task.owner.clone())),
            ("kind".to_owned(), s(kind)),
            ("status".to_owned(), s(status)),
            ("list_all".to_owned(), s(format!("all#{shard}"))),
            ("list_owner".to_owned(), s(owner_shard(&task.owner, shard))),
            ("list_kind".to_owned(), s(format!("{kind}#{shard}"))),
            (
                "list_status_kind".to_owned(),
                s(format!("{status}#{kind}#{shard}")),
            ),
            ("attempts".to_owned(), n(task.attempts)),
            ("created_at".to_owned(), n(task.created_at)),
            (body_attribute.0.to_owned(), s(body_attribute.1)),
        ]);
        if let Some(lease) = task.lease_until {
            item.insert("lease_until".into(), n(lease));
        }
        // Present only while a callback is owed: a sparse index of what the sweeper must send.
        if task.status.is_terminal() && task.notice.as_ref().is_some_and(|n| n.owed()) {
            item.insert("notice_owed".into(), s(format!("owed#{shard}")));
        }
        // The TTL runs from the end (or from this write, if that is later: the objects the
        // item names are written no earlier), so the bucket's rules, which keep task objects
        // two days past the same TTL, never delete them while the item is readable.
        if let (true, Some(done)) = (task.status.is_terminal(), task.completed_at) {
            let from = done.max(crate::domain::now_millis());
            item.insert(
                "expires_at".into(),
                n(from / 1000 + self.ttl.as_secs() as i64),
            );
        }
        Ok(item)
    }

    /// Whether the spilled body an item names is absent from the bucket.
    async fn body_missing(&self, item: &HashMap<String, AttributeValue>) -> bool {
        match item.get("body_key").and_then(|b| b.as_s().ok()) {
            Some(key) => matches!(self.large_bodies.size(key).await, Ok(None)),
            None => false,
        }
    }

    async fn decode(&self, item: &HashMap<String, AttributeValue>) -> Result<Task, StoreError> {
        if let Some(body) = item.get("body").and_then(|b| b.as_s().ok()) {
            return serde_json::from_str(body).map_err(backend);
        }
        let key = item
            .get("body_key")
            .and_then(|b| b.as_s().ok())
            .ok_or_else(|| backend(anyhow::anyhow!("task item without body")))?;
        let body = self
            .large_bodies
            .get(key)
            .await?
            .ok_or_else(|| backend(anyhow::anyhow!("task body {key} is missing")))?;
        serde_json::from_slice(&body).map_err(backend)
    }

    async fn load(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        match out
            .item()
            .filter(|i| !expired(i, crate::domain::now_millis() / 1000))
        {
            Some(item) => match self.decode(item).await {
                Ok(task) => Ok(Some(task)),
                // Its spilled body is gone: the task is, too (its objects outlive the item's
                // TTL by two days, so only a hand or an old rule deletes one first).
                Err(e) if self.body_missing(item).await => {
                    tracing::warn!(task_id = %id, error = ?anyhow::Error::from(e), "a task's body is missing; answered as gone");
                    Ok(None)
                }
                Err(e) => Err(e),
            },
            None => Ok(None),
        }
    }

    /// Up to `limit` ids of one listing shard, newest first, older than `after` if given. The
    /// index holds keys only, so a page of up to 101 keys is far below DynamoDB's 1 MB page.
    async fn list_shard(
        &self,
        index: &str,
        key_name: &str,
        key: String,
        after: Option<TaskId>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .expression_attribute_names("#k", key_name)
            .expression_attribute_values(":k", s(key))
            .scan_index_forward(false)
            .limit(limit as i32);
        request = match after {
            Some(after) => request
                .key_condition_expression("#k = :k AND id < :after")
                .expression_attribute_values(":after", s(after.to_string())),
            None => request.key_condition_expression("#k = :k"),
        };
        let out = request.send().await.map_err(backend)?;
        Ok(out
            .items()
            .iter()
            .filter_map(|item| item.get("id").and_then(|v| v.as_s().ok()).cloned())
            .collect())
    }

    /// A page of one owner's tasks: the owner's index, newest first, filtered by status and
    /// service as the items are read. At most [`OWNER_SCAN_ROUNDS`] rounds of `limit + 1` ids
    /// per shard are read for one page; a page cut short by that bound still says where the
    /// next one starts.
    async fn list_owned(
        &self,
        owner: &str,
        query: &TaskQuery,
        limit: usize,
    ) -> Result<TaskPage, StoreError> {
        let keep = |t: &Task| {
            t.owner == owner
                && query.status.is_none_or(|st| t.status == st)
                && query.kind.is_none_or(|k| t.kind == k)
        };
        let mut kept: Vec<Task> = Vec::new();
        let mut after = query.after;
        for _ in 0..OWNER_SCAN_ROUNDS {
            let shards = (0..LIST_SHARDS).map(|shard| {
                let key = owner_shard(owner, shard);
                self.list_shard("by_owner", "list_owner", key, after, limit + 1)
            });
            let mut ids: Vec<String> = Vec::new();
            for shard in futures::future::join_all(shards).await {
                ids.extend(shard?);
            }
            ids.sort_unstable_by(|a, b| b.cmp(a));
            ids.truncate(limit + 1);
            let exhausted = ids.len() <= limit;
            let scanned_to = ids.last().and_then(|id| id.parse::<TaskId>().ok());
            for task in self.load_many(&ids).await? {
                if keep(&task) {
                    kept.push(task);
                }
            }
            kept.sort_unstable_by_key(|t| std::cmp::Reverse(t.id));
            if kept.len() > limit || exhausted {
                return Ok(TaskPage::from_overfetch(kept, limit));
            }
            after = scanned_to;
        }
        // Bounded: answer what was found, and continue the next page where the scan stopped.
        let next = after;
        Ok(TaskPage { tasks: kept, next })
    }

    /// Reads task `id`, applies `change` (a domain method that says what the write must still
    /// find), and writes it conditionally. Conflict if it is gone or moved on.
    async fn change(
        &self,
        id: TaskId,
        change: impl FnOnce(&mut Task) -> Result<(TaskStatus, u32), String>,
    ) -> Result<(), StoreError> {
        let mut task = self
            .load(id)
            .await?
            .ok_or_else(|| StoreError::Conflict(format!("task {id} does not exist")))?;
        let expected = change(&mut task).map_err(StoreError::Conflict)?;
        self.write(&task, Some(expected)).await
    }

    /// Up to `limit` of the tasks the index `queries` find that `keep`, oldest first.
    async fn matching<F>(
        &self,
        queries: impl IntoIterator<Item = F>,
        limit: usize,
        keep: impl Fn(&Task) -> bool,
    ) -> Result<Vec<Task>, StoreError>
    where
        F: std::future::Future<Output = Result<Vec<String>, StoreError>>,
    {
        let mut ids = Vec::new();
        for found in futures::future::join_all(queries).await {
            ids.extend(found?);
        }
        ids.sort_unstable();
        let mut out = Vec::new();
        for chunk in ids.chunks(100) {
            out.extend(self.load_many(chunk).await?.into_iter().filter(&keep));
            if out.len() >= limit {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// The tasks `ids` name, in that order; an id whose item is gone (expired) is skipped.
    async fn load_many(&self, ids: &[String]) -> Result<Vec<Task>, StoreError> {
        let keys = ids
            .iter()
            .map(|id| HashMap::from([("id".to_owned(), s(id.clone()))]))
            .collect();
        let read = Read {
            consistent: true,
            projection: None,
        };
        let items: HashMap<String, Item> = batch_get(&self.client, &self.table, keys, read)
            .await?
            .into_iter()
            .filter_map(|item| Some((item.get("id")?.as_s().ok()?.clone(), item)))
            .collect();
        let mut tasks = Vec::with_capacity(ids.len());
        let now_s = crate::domain::now_millis() / 1000;
        for id in ids {
            let Some(item) = items.get(id).filter(|item| !expired(item, now_s)) else {
                continue;
            };
            match self.decode(item).await {
                Ok(task) => tasks.push(task),
                // A page answers without an item whose spilled body is gone (deleted by hand,
                // or an old lifecycle rule); the rest of the page is still true.
                Err(e) if self.body_missing(item).await => {
                    tracing::warn!(task_id = %id, error = ?anyhow::Error::from(e), "a listed task's body is missing; left out of the page");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(tasks)
    }

    /// Moves one count from `from` (None: a new task) to `to`, on a random shard.
    async fn count_move(&self, from: Option<TaskStatus>, to: TaskStatus) -> Result<(), StoreError> {
        if from == Some(to) {
            return Ok(());
        }
        let shard = rand_shard();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(format!("#counts#{shard}")))
            .expression_attribute_names("#to", to.as_str())
            .expression_attribute_values(":one", n(1));
        request = match from {
            Some(f) => request
                .update_expression("ADD #to :one, #from :minus")
                .expression_attribute_names("#from", f.as_str())
                .expression_attribute_values(":minus", n(-1)),
            None => request
                .update_expression("ADD #to :one, #total :one")
                .expression_attribute_names("#total", "total"),
        };
        request.send().await.map_err(backend)?;
        Ok(())
    }

    /// Writes `task` if the stored one still has `expected` (status, attempts); `None` expects
    /// no item at all. Then moves the counts.
    async fn write(
        &self,
        task: &Task,
        expected: Option<(TaskStatus, u32)>,
    ) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.item(task).await?));
        put = match expected {
            None => put.condition_expression("attribute_not_exists(id)"),
            Some((status, attempts)) => put
                .condition_expression("#status = :status AND attempts = :attempts")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()))
                .expression_attribute_values(":attempts", n(attempts)),
        };
        match put.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                return Err(StoreError::Conflict(format!(
                    "task {} changed underneath",
                    task.id
                )));
            }
            Err(e) => return Err(backend(e)),
        }
        if let Err(e) = self.count_move(expected.map(|e| e.0), task.status).await {
            // The transition stands; only the health counts are off.
            tracing::warn!(error = ?anyhow::Error::from(e), "health counter update failed");
        }
        Ok(())
    }
}

/// Shards of each listing index key: a task's index entries carry `{value}#{shard}`, so the
/// writes of one busy value (all tasks, `pending`, one service) spread over this many index
/// partitions instead of one. A list page queries every shard.
pub const LIST_SHARDS: u128 = 16;

/// The listing shard of a task: from the random low bits of its UUIDv7, so it never changes.
fn list_shard(id: TaskId) -> u128 {
    id.as_uuid().as_u128() % LIST_SHARDS
}

/// The `by_status_kind` values of `status`, one per service.
fn status_keys(status: TaskStatus) -> Vec<String> {
    crate::domain::ServiceKind::ALL
        .iter()
        .map(|kind| format!("{}#{}", status.as_str(), kind.as_str()))
        .collect()
}

/// Whether a task item is past its TTL (`expires_at`, Unix seconds) at `now_s`. DynamoDB
/// deletes such items days later, not at once; until then they read as gone, so an item is
/// never read after the objects it names may have been deleted.
fn expired(item: &HashMap<String, AttributeValue>, now_s: i64) -> bool {
    item.get("expires_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .is_some_and(|at| at <= now_s)
}

fn rand_shard() -> usize {
    // Spreading, not security: the low bits of a v4 uuid are random enough.
    (uuid::Uuid::new_v4().as_u128() % COUNTER_SHARDS as u128) as usize
}

impl TaskReader for DynamoTasks {
    async fn get(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        self.load(id).await
    }

    async fn list(&self, query: TaskQuery) -> Result<TaskPage, StoreError> {
        let limit = query.limit.clamp(1, 100);
        if let Some(owner) = &query.owner {
            return self.list_owned(owner, &query, limit).await;
        }
        let (index, key_name, values) = match (query.status, query.kind) {
            (Some(st), Some(k)) => (
                "by_status_kind",
                "list_status_kind",
                vec![format!("{}#{}", st.as_str(), k.as_str())],
            ),
            (Some(st), None) => ("by_status_kind", "list_status_kind", status_keys(st)),
            (None, Some(k)) => ("by_kind", "list_kind", vec![k.as_str().to_owned()]),
            (None, None) => ("by_created", "list_all", vec!["all".to_owned()]),
        };
        // Every shard's newest `limit + 1` ids, merged: the page is the newest of them all.
        let shards = values.iter().flat_map(|value| {
            (0..LIST_SHARDS).map(move |shard| {
                let key = format!("{value}#{shard}");
                self.list_shard(index, key_name, key, query.after, limit + 1)
            })
        });
        let mut ids: Vec<String> = Vec::new();
        for shard in futures::future::join_all(shards).await {
            ids.extend(shard?);
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        // The cursor comes from the ids, not the tasks read: a page that leaves an item out
        // (its body gone) still leads to the next.
        let more = ids.len() > limit;
        ids.truncate(limit);
        let next = more
            .then(|| ids.last().and_then(|id| id.parse::<TaskId>().ok()))
            .flatten();
        let tasks = self.load_many(&ids).await?;
        Ok(TaskPage { tasks, next })
    }

    async fn counts(&self) -> Result<StatusCounts, StoreError> {
        let keys = (0..COUNTER_SHARDS)
            .map(|shard| HashMap::from([("id".to_owned(), s(format!("#counts#{shard}")))]))
            .collect();
        let shards = batch_get(&self.client, &self.table, keys, Read::default()).await?;
        let mut totals = [0i64; 5];
        let names = ["pending", "processing", "completed", "failed", "total"];
        for item in &shards {
            for (total, name) in totals.iter_mut().zip(names) {
                *total += item
                    .get(name)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0);
            }
        }
        let [pending, processing, completed, failed, total] = totals.map(|v| v.max(0) as u64);
        Ok(StatusCounts {
            pending,
            processing,
            completed,
            failed,
            total,
        })
    }
}

impl TaskCreate for DynamoTasks {
    async fn insert(&self, task: &Task) -> Result<(), StoreError> {
        self.write(task, None).await
    }

    async fn abandon(&self, id: TaskId, reason: String, now: Millis) -> Result<(), StoreError> {
        let end = AttemptEnd::Failed {
            reason,
            candidates: Vec::new(),
        };
        TaskLease::end_attempt(self, id, 0, end, now)
            .await
            .map(|_| ())
    }
}

impl TaskLease for DynamoTasks {
    async fn input_size(&self, id: TaskId) -> Result<Option<u64>, StoreError> {
        Ok(self.load(id).await?.map(|t| t.input.size()))
    }

    async fn claim_as(
        &self,
        id: TaskId,
        now: Millis,
        lease: Duration,
        holder: Option<String>,
    ) -> Result<ClaimOutcome, StoreError> {
        let Some(mut task) = self.load(id).await? else {
            return Ok(ClaimOutcome::Missing);
        };
        let expected = match task.begin_attempt_as(now, lease, holder) {
            Ok(expected) => expected,
            Err(outcome) => return Ok(outcome),
        };
        match self.write(&task, Some(expected)).await {
            Ok(()) => Ok(ClaimOutcome::Claimed(Box::new(task))),
            // Another worker claimed it between our read and write.
            Err(StoreError::Conflict(_)) => match self.load(id).await? {
                Some(t) if t.status.is_terminal() => Ok(ClaimOutcome::Finished(Box::new(t))),
                Some(t) => Ok(ClaimOutcome::Leased(t.lease_until.unwrap_or(now))),
                None => Ok(ClaimOutcome::Missing),
            },
            Err(e) => Err(e),
        }
    }

    async fn give_up(&self, id: TaskId, reason: String, now: Millis) -> Result<GiveUp, StoreError> {
        let Some(mut task) = self.load(id).await? else {
            return Ok(GiveUp::Missing);
        };
        let expected = match task.give_up(reason, now) {
            Ok(expected) => expected,
            Err(outcome) => return Ok(outcome),
        };
        match self.write(&task, Some(expected)).await {
            Ok(()) => Ok(GiveUp::Failed(Box::new(task))),
            // It moved on between our read and write: look again next time.
            Err(StoreError::Conflict(_)) => Ok(GiveUp::Leased(now + 1_000)),
            Err(e) => Err(e),
        }
    }

    async fn end_attempt_as(
        &self,
        id: TaskId,
        attempt: u32,
        holder: Option<String>,
        end: AttemptEnd,
        now: Millis,
    ) -> Result<Task, StoreError> {
        let mut task = self
            .load(id)
            .await?
            .ok_or_else(|| StoreError::Conflict(format!("task {id} does not exist")))?;
        let expected = task
            .finish_attempt_as(attempt, holder.as_deref(), end, now)
            .map_err(StoreError::Conflict)?;
        self.write(&task, Some(expected)).await?;
        Ok(task)
    }
}

impl NoticeLedger for DynamoTasks {
    async fn note_notice(
        &self,
        id: TaskId,
        delivered: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.change(id, |task| task.note_try(delivered, now)).await
    }
}

impl TaskSweep for DynamoTasks {
    async fn stranded(
        &self,
        now: Millis,
        bound: Duration,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        // Pending ones accepted before the bound (ids sort by time), and every processing one:
        // few, as many as the workers hold or retry.
        let cutoff = TaskId::first_at(now - bound.as_millis() as i64);
        let mut queries = Vec::new();
        for (status, after) in [
            (TaskStatus::Pending, Some(cutoff)),
            (TaskStatus::Processing, None),
        ] {
            for value in status_keys(status) {
                for shard in 0..LIST_SHARDS {
                    let key = format!("{value}#{shard}");
                    queries.push(self.list_shard(
                        "by_status_kind",
                        "list_status_kind",
                        key,
                        after,
                        1_000,
                    ));
                }
            }
        }
        self.matching(queries, limit, |t| t.stranded(now, bound))
            .await
    }

    async fn due_notices(
        &self,
        now: Millis,
        bound: Duration,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let shards = (0..LIST_SHARDS).map(|shard| {
            let key = format!("owed#{shard}");
            self.list_shard("by_notice", "notice_owed", key, None, 1_000)
        });
        self.matching(shards, limit, |t| t.notice_due(now, bound))
            .await
    }

    async fn mark_requeued(&self, id: TaskId, now: Millis) -> Result<(), StoreError> {
        self.change(id, |task| task.mark_requeued(now)).await
    }
}

/// The item key of a miner's health record, beside the tasks and the counter items.
fn health_key(hotkey: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("id".to_owned(), s(format!("#miner#{hotkey}")))])
}

impl crate::ports::HealthStore for DynamoTasks {
    async fn load_health(
        &self,
        hotkeys: Vec<String>,
    ) -> Result<Vec<crate::domain::MinerHealth>, StoreError> {
        let keys = hotkeys.iter().map(|h| health_key(h)).collect();
        let read = Read {
            consistent: false,
            projection: Some("body"),
        };
        let mut records = Vec::new();
        for item in batch_get(&self.client, &self.table, keys, read).await? {
            if let Some(body) = item.get("body").and_then(|v| v.as_s().ok()) {
                records.push(serde_json::from_str(body).map_err(backend)?);
            }
        }
        Ok(records)
    }

    async fn save_health(
        &self,
        records: Vec<crate::domain::MinerHealth>,
    ) -> Result<(), StoreError> {
        let puts = records.iter().map(|record| async move {
            let mut item = health_key(&record.hotkey);
            item.insert(
                "body".to_owned(),
                s(serde_json::to_string(record).map_err(backend)?),
            );
            // A miner not seen for the task retention period is forgotten.
            item.insert(
                "expires_at".to_owned(),
                n(record.updated_at / 1000 + self.ttl.as_secs() as i64),
            );
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(backend)
                .map(|_| ())
        });
        futures::future::try_join_all(puts).await.map(|_| ())
    }

    async fn observe_health(
        &self,
        observations: Vec<crate::domain::Observation>,
    ) -> Result<Vec<crate::domain::MinerHealth>, StoreError> {
        let mut by_miner: Vec<(String, Vec<crate::domain::Observation>)> = Vec::new();
        for o in observations {
            match by_miner.iter_mut().find(|(h, _)| *h == o.hotkey) {
                Some((_, list)) => list.push(o),
                None => by_miner.push((o.hotkey.clone(), vec![o])),
            }
        }
        let updates = by_miner
            .iter()
            .map(|(hotkey, list)| self.observe_one(hotkey, list));
        futures::future::try_join_all(updates).await
    }
}

/// Conflicting writers one health update outlasts before it gives up (health is advisory:
/// the worker logs it and goes on).
const HEALTH_TRIES: u32 = 16;

impl DynamoTasks {
    /// Adds `observations` to one miner's record: read, apply, and write only if nobody wrote
    /// in between (the record's `rev`), else again.
    async fn observe_one(
        &self,
        hotkey: &str,
        observations: &[crate::domain::Observation],
    ) -> Result<crate::domain::MinerHealth, StoreError> {
        for tries in 0..HEALTH_TRIES {
            if tries > 0 {
                // Writers that collided spread out: a random pause growing with the tries.
                let pause = rand::random_range(1..=10 * u64::from(tries.min(8)));
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            let stored = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(health_key(hotkey)))
                .consistent_read(true)
                .send()
                .await
                .map_err(backend)?;
            let item = stored.item();
            let mut record = match item.and_then(|i| i.get("body")).and_then(|b| b.as_s().ok()) {
                Some(body) => serde_json::from_str(body).map_err(backend)?,
                None => crate::domain::MinerHealth::new(hotkey),
            };
            let rev = item
                .and_then(|i| i.get("rev"))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u64>().ok());
            for o in observations {
                record.apply(o);
            }
            let mut put_item = health_key(hotkey);
            put_item.insert(
                "body".to_owned(),
                s(serde_json::to_string(&record).map_err(backend)?),
            );
            put_item.insert("rev".to_owned(), n(rev.unwrap_or(0) + 1));
            put_item.insert(
                "expires_at".to_owned(),
                n(record.updated_at / 1000 + self.ttl.as_secs() as i64),
            );
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put_item));
            let put = match (item, rev) {
                (None, _) => put.condition_expression("attribute_not_exists(id)"),
                (Some(_), None) => put.condition_expression("attribute_not_exists(rev)"),
                (Some(_), Some(rev)) => put
                    .condition_expression("rev = :rev")
                    .expression_attribute_values(":rev", n(rev)),
            };
            match put.send().await {
                Ok(_) => return Ok(record),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(backend(e)),
            }
        }
        Err(StoreError::Conflict(format!(
            "the health of {hotkey} kept changing underneath"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_shards_are_stable_per_task_and_spread_evenly() {
        let mut per_shard = [0u32; LIST_SHARDS as usize];
        for _ in 0..1_600 {
            let id = TaskId::new();
            assert_eq!(list_shard(id), list_shard(id));
            per_shard[list_shard(id) as usize] += 1;
        }
        // 100 expected per shard; a shard outside 40..=160 would mean the bits are not random.
        assert!(
            per_shard.iter().all(|n| (40..=160).contains(n)),
            "{per_shard:?}"
        );
    }
}
