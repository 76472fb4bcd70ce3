//! The task table: conditional transitions under the single writer connection.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::Database;
use crate::db::sql_error;
use crate::domain::{ClaimOutcome, GiveUp, Millis, StatusCounts, Task, TaskId, TaskStatus};
use crate::ports::{
    AttemptEnd, NoticeLedger, StoreError, TaskCreate, TaskLease, TaskPage, TaskQuery, TaskReader,
    TaskSweep,
};

fn decode(body: &str) -> Result<Task, StoreError> {
    serde_json::from_str(body).map_err(StoreError::backend)
}

fn encode(task: &Task) -> Result<String, StoreError> {
    serde_json::to_string(task).map_err(StoreError::backend)
}

/// Whether a finished task still owes its submitter a callback.
pub(super) fn owes_notice(task: &Task) -> bool {
    task.status.is_terminal() && task.notice.as_ref().is_some_and(|n| n.owed())
}

pub(super) fn load(conn: &Connection, id: &str) -> Result<Option<Task>, StoreError> {
    let body: Option<String> = conn
        .query_row("SELECT body FROM tasks WHERE id = ?1", [id], |r| r.get(0))
        .optional()
        .map_err(sql_error)?;
    body.as_deref().map(decode).transpose()
}

/// Rewrites a task whose status and attempt count are still `expected`: the one conditional
/// write every transition goes through.
pub(super) fn replace(
    conn: &Connection,
    task: &Task,
    expected: (TaskStatus, u32),
) -> Result<(), StoreError> {
    let changed = conn
        .execute(
            "UPDATE tasks SET status = ?2, attempts = ?3, lease_until = ?4, body = ?5,
             notice_owed = ?8
         WHERE id = ?1 AND status = ?6 AND attempts = ?7",
            params![
                task.id.to_string(),
                task.status.as_str(),
                task.attempts,
                task.lease_until,
                encode(task)?,
                expected.0.as_str(),
                expected.1,
                owes_notice(task)
            ],
        )
        .map_err(sql_error)?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "task {} changed underneath",
            task.id
        )))
    }
}

impl TaskReader for Database {
    async fn get(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        self.read(move |c| load(c, &id.to_string())).await
    }

    async fn list(&self, query: TaskQuery) -> Result<TaskPage, StoreError> {
        self.read(move |c| {
            let limit = query.limit.clamp(1, 100);
            let mut stmt = c
                .prepare_cached(
                    "SELECT body FROM tasks
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2)
                   AND (?3 IS NULL OR id < ?3) AND (?5 IS NULL OR owner = ?5)
                 ORDER BY id DESC LIMIT ?4",
                )
                .map_err(sql_error)?;
            let rows = stmt
                .query_map(
                    params![
                        query.status.map(TaskStatus::as_str),
                        query.kind.map(|k| k.as_str()),
                        query.after.map(|a| a.to_string()),
                        (limit + 1) as i64,
                        query.owner
                    ],
                    |r| r.get::<_, String>(0),
                )
                .map_err(sql_error)?;
            let tasks = rows
                .map(|b| decode(&b.map_err(sql_error)?))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(TaskPage::from_overfetch(tasks, limit))
        })
        .await
    }

    async fn counts(&self) -> Result<StatusCounts, StoreError> {
        self.read(|c| {
            let mut counts = StatusCounts::default();
            let mut stmt = c
                .prepare_cached("SELECT status, COUNT(*) FROM tasks GROUP BY status")
                .map_err(sql_error)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql_error)?;
            for row in rows {
                let (status, n) = row.map_err(sql_error)?;
                let n = n as u64;
                match TaskStatus::parse(&status) {
                    Some(TaskStatus::Pending) => counts.pending = n,
                    Some(TaskStatus::Processing) => counts.processing = n,
                    Some(TaskStatus::Completed) => counts.completed = n,
                    Some(TaskStatus::Failed) => counts.failed = n,
                    None => {}
                }
                counts.total += n;
            }
            Ok(counts)
        })
        .await
    }
}

impl TaskCreate for Database {
    async fn insert(&self, task: &Task) -> Result<(), StoreError> {
        let row = (
            task.id.to_string(),
            task.owner.clone(),
            task.kind.as_str(),
            task.status.as_str(),
            task.attempts,
            task.lease_until,
            encode(task)?,
        );
        self.write(move |c| {
            let inserted = c.execute(
                "INSERT OR IGNORE INTO tasks (id, owner, kind, status, attempts, lease_until, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![row.0, row.1, row.2, row.3, row.4, row.5, row.6],
            ).map_err(sql_error)?;
            if inserted == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict(format!(
                    "task {} already exists",
                    row.0
                )))
            }
        })
        .await
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

impl TaskLease for Database {
    async fn input_size(&self, id: TaskId) -> Result<Option<u64>, StoreError> {
        Ok(self.get(id).await?.map(|t| t.input.size()))
    }

    async fn claim_as(
        &self,
        id: TaskId,
        now: Millis,
        lease: Duration,
        holder: Option<String>,
    ) -> Result<ClaimOutcome, StoreError> {
        self.write(move |tx| {
            let Some(mut task) = load(tx, &id.to_string())? else {
                return Ok(ClaimOutcome::Missing);
            };
            let expected = match task.begin_attempt_as(now, lease, holder) {
                Ok(expected) => expected,
                Err(outcome) => return Ok(outcome),
            };
            replace(tx, &task, expected)?;
            Ok(ClaimOutcome::Claimed(Box::new(task)))
        })
        .await
    }

    async fn give_up(&self, id: TaskId, reason: String, now: Millis) -> Result<GiveUp, StoreError> {
        self.write(move |tx| {
            let outcome = give_up_in(tx, &id.to_string(), reason, now)?;
            Ok(outcome)
        })
        .await
    }

    async fn end_attempt_as(
        &self,
        id: TaskId,
        attempt: u32,
        holder: Option<String>,
        end: AttemptEnd,
        now: Millis,
    ) -> Result<Task, StoreError> {
        self.write(move |tx| {
            let Some(mut task) = load(tx, &id.to_string())? else {
                return Err(StoreError::Conflict(format!("task {id} does not exist")));
            };
            let expected = task
                .finish_attempt_as(attempt, holder.as_deref(), end, now)
                .map_err(StoreError::Conflict)?;
            replace(tx, &task, expected)?;
            Ok(task)
        })
        .await
    }
}

impl Database {
    /// Reads task `id`, applies `change` (a domain method that says what the write must still
    /// find), and writes it conditionally, in one transaction. Conflict if it is gone or moved on.
    async fn change(
        &self,
        id: TaskId,
        change: impl FnOnce(&mut Task) -> Result<(TaskStatus, u32), String> + Send + 'static,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            let Some(mut task) = load(tx, &id.to_string())? else {
                return Err(StoreError::Conflict(format!("task {id} does not exist")));
            };
            let expected = change(&mut task).map_err(StoreError::Conflict)?;
            replace(tx, &task, expected)?;
            Ok(())
        })
        .await
    }

    /// Up to `limit` of the tasks `sql` selects (their bodies) that `keep`.
    async fn matching(
        &self,
        sql: &'static str,
        limit: usize,
        keep: impl Fn(&Task) -> bool + Send + 'static,
    ) -> Result<Vec<Task>, StoreError> {
        self.read(move |c| {
            let mut query = c.prepare_cached(sql).map_err(sql_error)?;
            let bodies = query
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(sql_error)?;
            let mut out = Vec::new();
            for body in bodies {
                let task = decode(&body.map_err(sql_error)?)?;
                if keep(&task) {
                    out.push(task);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }
}

impl NoticeLedger for Database {
    async fn note_notice(
        &self,
        id: TaskId,
        delivered: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.change(id, move |task| task.note_try(delivered, now))
            .await
    }
}

impl TaskSweep for Database {
    async fn stranded(
        &self,
        now: Millis,
        bound: Duration,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let sql = "SELECT body FROM tasks WHERE status IN ('pending', 'processing') ORDER BY id";
        self.matching(sql, limit, move |t| t.stranded(now, bound))
            .await
    }

    async fn due_notices(
        &self,
        now: Millis,
        bound: Duration,
        limit: usize,
    ) -> Result<Vec<Task>, StoreError> {
        let sql = "SELECT body FROM tasks WHERE notice_owed = 1 ORDER BY id";
        self.matching(sql, limit, move |t| t.notice_due(now, bound))
            .await
    }

    async fn mark_requeued(&self, id: TaskId, now: Millis) -> Result<(), StoreError> {
        self.change(id, move |task| task.mark_requeued(now)).await
    }
}

impl crate::ports::HealthStore for Database {
    async fn load_health(
        &self,
        hotkeys: Vec<String>,
    ) -> Result<Vec<crate::domain::MinerHealth>, StoreError> {
        self.read(move |c| {
            let mut query = c
                .prepare_cached("SELECT body FROM miner_health WHERE hotkey = ?1")
                .map_err(StoreError::backend)?;
            let mut records = Vec::new();
            for hotkey in &hotkeys {
                let body: Option<String> = query
                    .query_row(params![hotkey], |r| r.get(0))
                    .optional()
                    .map_err(StoreError::backend)?;
                if let Some(body) = body {
                    records.push(serde_json::from_str(&body).map_err(StoreError::backend)?);
                }
            }
            Ok(records)
        })
        .await
    }

    async fn save_health(
        &self,
        records: Vec<crate::domain::MinerHealth>,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            upsert_health(tx, &records)?;
            Ok(())
        })
        .await
    }

    async fn observe_health(
        &self,
        observations: Vec<crate::domain::Observation>,
    ) -> Result<Vec<crate::domain::MinerHealth>, StoreError> {
        // Read, apply and write in one transaction: concurrent observers add up.
        self.write(move |tx| {
            let mut updated: Vec<crate::domain::MinerHealth> = Vec::new();
            for o in &observations {
                let index = match updated.iter().position(|h| h.hotkey == o.hotkey) {
                    Some(i) => i,
                    None => {
                        let body: Option<String> = tx
                            .query_row(
                                "SELECT body FROM miner_health WHERE hotkey = ?1",
                                params![o.hotkey],
                                |r| r.get(0),
                            )
                            .optional()
                            .map_err(StoreError::backend)?;
                        updated.push(match body {
                            Some(body) => {
                                serde_json::from_str(&body).map_err(StoreError::backend)?
                            }
                            None => crate::domain::MinerHealth::new(o.hotkey.clone()),
                        });
                        updated.len() - 1
                    }
                };
                updated[index].apply(o);
            }
            upsert_health(tx, &updated)?;
            Ok(updated)
        })
        .await
    }
}

/// Writes health records inside a transaction, replacing older ones.
fn upsert_health(
    tx: &rusqlite::Connection,
    records: &[crate::domain::MinerHealth],
) -> Result<(), StoreError> {
    for record in records {
        let body = serde_json::to_string(record).map_err(StoreError::backend)?;
        tx.execute(
            "INSERT INTO miner_health (hotkey, body) VALUES (?1, ?2)
             ON CONFLICT (hotkey) DO UPDATE SET body = excluded.body",
            params![record.hotkey, body],
        )
        .map_err(StoreError::backend)?;
    }
    Ok(())
}

/// Gives up on task `id` inside a transaction (see `Task::give_up`): shared by the port and by
/// the queue, which dead-letters a message and reconciles its task in one transaction.
pub(super) fn give_up_in(
    tx: &rusqlite::Connection,
    id: &str,
    reason: String,
    now: Millis,
) -> Result<GiveUp, StoreError> {
    let Some(mut task) = load(tx, id)? else {
        return Ok(GiveUp::Missing);
    };
    match task.give_up(reason, now) {
        Ok(expected) => {
            replace(tx, &task, expected)?;
            Ok(GiveUp::Failed(Box::new(task)))
        }
        Err(outcome) => Ok(outcome),
    }
}
