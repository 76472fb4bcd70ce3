//! The task table on DynamoDB.
//!
//! Item: `id` (key), `status`, `kind`, `attempts`, `lease_until`, `created_at`, the whole task as
//! JSON in `body`, and `expires_at` (TTL) once finished. Global secondary indexes serve the list
//! newest first without scanning: `by_created` (`all`, `id`), `by_status` (`status`, `id`),
//! `by_kind` (`kind`, `id`) and `by_status_kind` (`status_kind`, `id`); ids are UUIDv7, so they
//! sort by creation time. Health counts live in one counter item (`id = "#counts"`), changed in the
//! same transaction as every transition, so they never need a scan.
//!
//! Every transition is a `TransactWriteItems` whose put is conditioned on the status and attempt
//! count read before it: a concurrent writer makes it fail as a conflict, never overwrite.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::AwsResources;
use crate::domain::{ClaimOutcome, Millis, StatusCounts, Task, TaskId, TaskStatus};
use crate::embedded::apply_end;
use crate::ports::{AttemptEnd, StoreError, TaskPage, TaskQuery, TaskReader, TaskWriter};

const COUNTS_ID: &str = "#counts";

/// DynamoDB task table.
#[derive(Debug, Clone)]
pub struct DynamoTasks {
    client: aws_sdk_dynamodb::Client,
    table: String,
    ttl: Duration,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn backend(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::backend(e)
}

impl DynamoTasks {
    /// The table named in `resources`.
    pub fn new(client: aws_sdk_dynamodb::Client, resources: &AwsResources) -> Self {
        Self {
            client,
            table: resources.table.clone(),
            ttl: Duration::from_secs(u64::from(resources.task_ttl_days) * 86_400),
        }
    }

    fn item(&self, task: &Task) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let mut item = HashMap::from([
            ("id".to_owned(), s(task.id.to_string())),
            ("owner".to_owned(), s(task.owner.clone())),
            ("kind".to_owned(), s(task.kind.as_str())),
            ("status".to_owned(), s(task.status.as_str())),
            (
                "status_kind".to_owned(),
                s(format!("{}#{}", task.status.as_str(), task.kind.as_str())),
            ),
            ("all".to_owned(), s("task")),
            ("attempts".to_owned(), n(task.attempts)),
            ("created_at".to_owned(), n(task.created_at)),
            (
                "body".to_owned(),
                s(serde_json::to_string(task).map_err(backend)?),
            ),
        ]);
        if let Some(lease) = task.lease_until {
            item.insert("lease_until".into(), n(lease));
        }
        if let (true, Some(done)) = (task.status.is_terminal(), task.completed_at) {
            item.insert(
                "expires_at".into(),
                n(done / 1000 + self.ttl.as_secs() as i64),
            );
        }
        Ok(item)
    }

    fn decode(item: &HashMap<String, AttributeValue>) -> Result<Task, StoreError> {
        let body = item
            .get("body")
            .and_then(|b| b.as_s().ok())
            .ok_or_else(|| backend(anyhow::anyhow!("task item without body")))?;
        serde_json::from_str(body).map_err(backend)
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
        out.item().map(Self::decode).transpose()
    }

    /// The counter update of a move from `from` (None: a new task) to `to`.
    fn count_move(
        &self,
        from: Option<TaskStatus>,
        to: TaskStatus,
    ) -> Result<Option<TransactWriteItem>, StoreError> {
        if from == Some(to) {
            return Ok(None);
        }
        let mut names = HashMap::from([("#to".to_owned(), to.as_str().to_owned())]);
        let mut values = HashMap::from([(":one".to_owned(), n(1))]);
        let expression = match from {
            Some(f) => {
                names.insert("#from".into(), f.as_str().into());
                values.insert(":minus".into(), n(-1));
                "ADD #to :one, #from :minus"
            }
            None => {
                names.insert("#total".into(), "total".into());
                "ADD #to :one, #total :one"
            }
        };
        let update = Update::builder()
            .table_name(&self.table)
            .key("id", s(COUNTS_ID))
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(backend)?;
        Ok(Some(TransactWriteItem::builder().update(update).build()))
    }

    /// Writes `task` if the stored one still has `expected` (status, attempts); `None` expects
    /// no item at all.
    async fn write(
        &self,
        task: &Task,
        expected: Option<(TaskStatus, u32)>,
    ) -> Result<(), StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.item(task)?));
        put = match expected {
            None => put.condition_expression("attribute_not_exists(id)"),
            Some((status, attempts)) => put
                .condition_expression("#status = :status AND attempts = :attempts")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()))
                .expression_attribute_values(":attempts", n(attempts)),
        };
        let put = put.build().map_err(backend)?;
        let mut request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build());
        if let Some(count) = self.count_move(expected.map(|e| e.0), task.status)? {
            request = request.transact_items(count);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_transaction_canceled_exception()) =>
            {
                Err(StoreError::Conflict(format!(
                    "task {} changed underneath",
                    task.id
                )))
            }
            Err(e) => Err(backend(e)),
        }
    }
}

impl TaskReader for DynamoTasks {
    async fn get(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        self.load(id).await
    }

    async fn list(&self, query: TaskQuery) -> Result<TaskPage, StoreError> {
        let limit = query.limit.clamp(1, 100);
        let (index, key_name, key_value) = match (query.status, query.kind) {
            (Some(st), Some(k)) => (
                "by_status_kind",
                "status_kind",
                format!("{}#{}", st.as_str(), k.as_str()),
            ),
            (Some(st), None) => ("by_status", "status", st.as_str().to_owned()),
            (None, Some(k)) => ("by_kind", "kind", k.as_str().to_owned()),
            (None, None) => ("by_created", "all", "task".to_owned()),
        };
        let mut tasks = Vec::with_capacity(limit + 1);
        let mut start = query.after.map(|after| {
            HashMap::from([
                ("id".to_owned(), s(after.to_string())),
                (key_name.to_owned(), s(key_value.clone())),
            ])
        });
        // A page may come back short of `limit` (DynamoDB's 1 MB page); keep reading.
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", key_name)
                .expression_attribute_values(":k", s(key_value.clone()))
                .scan_index_forward(false)
                .limit((limit + 1 - tasks.len()) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            for item in out.items() {
                tasks.push(Self::decode(item)?);
            }
            match out.last_evaluated_key() {
                Some(key) if tasks.len() <= limit => start = Some(key.clone()),
                _ => break,
            }
        }
        let next = if tasks.len() > limit {
            tasks.truncate(limit);
            tasks.last().map(|t| t.id)
        } else {
            None
        };
        Ok(TaskPage { tasks, next })
    }

    async fn counts(&self) -> Result<StatusCounts, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(COUNTS_ID))
            .send()
            .await
            .map_err(backend)?;
        let get = |name: &str| -> u64 {
            out.item()
                .and_then(|i| i.get(name))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .map_or(0, |v| v.max(0) as u64)
        };
        Ok(StatusCounts {
            pending: get("pending"),
            processing: get("processing"),
            completed: get("completed"),
            failed: get("failed"),
            total: get("total"),
        })
    }
}

impl TaskWriter for DynamoTasks {
    async fn insert(&self, task: &Task) -> Result<(), StoreError> {
        self.write(task, None).await
    }

    async fn claim(
        &self,
        id: TaskId,
        now: Millis,
        lease: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        let Some(mut task) = self.load(id).await? else {
            return Ok(ClaimOutcome::Missing);
        };
        if task.status.is_terminal() {
            return Ok(ClaimOutcome::Finished);
        }
        if !task.claimable(now) {
            return Ok(ClaimOutcome::Leased(task.lease_until.unwrap_or(now)));
        }
        let expected = (task.status, task.attempts);
        task.status = TaskStatus::Processing;
        task.attempts += 1;
        task.started_at.get_or_insert(now);
        task.lease_until = Some(now + lease.as_millis() as i64);
        match self.write(&task, Some(expected)).await {
            Ok(()) => Ok(ClaimOutcome::Claimed(Box::new(task))),
            // Another worker claimed it between our read and write.
            Err(StoreError::Conflict(_)) => match self.load(id).await? {
                Some(t) if t.status.is_terminal() => Ok(ClaimOutcome::Finished),
                Some(t) => Ok(ClaimOutcome::Leased(t.lease_until.unwrap_or(now))),
                None => Ok(ClaimOutcome::Missing),
            },
            Err(e) => Err(e),
        }
    }

    async fn end_attempt(
        &self,
        id: TaskId,
        attempt: u32,
        end: AttemptEnd,
        now: Millis,
    ) -> Result<Task, StoreError> {
        let mut task = self
            .load(id)
            .await?
            .ok_or_else(|| StoreError::Conflict(format!("task {id} does not exist")))?;
        if task.status.is_terminal() || task.attempts != attempt {
            return Err(StoreError::Conflict(format!(
                "task {id} is {} on attempt {}, not on attempt {attempt}",
                task.status.as_str(),
                task.attempts
            )));
        }
        let expected = (task.status, task.attempts);
        apply_end(&mut task, end, now);
        self.write(&task, Some(expected)).await?;
        Ok(task)
    }
}
