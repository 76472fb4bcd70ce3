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

mod counters;
mod health;
mod listing;
use listing::{list_shard, owner_shard, status_keys};
mod transitions;

pub use counters::COUNTER_SHARDS;
pub use listing::LIST_SHARDS;

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

/// Whether a task item is past its TTL (`expires_at`, Unix seconds) at `now_s`. DynamoDB
/// deletes such items days later, not at once; until then they read as gone, so an item is
/// never read after the objects it names may have been deleted.
fn expired(item: &HashMap<String, AttributeValue>, now_s: i64) -> bool {
    item.get("expires_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .is_some_and(|at| at <= now_s)
}
