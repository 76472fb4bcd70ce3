//! Tasks created, leased, finished and swept: each a conditional write of the item read before it.

use super::*;

impl DynamoTasks {
    /// Reads task `id`, applies `change` (a domain method that says what the write must still
    /// find), and writes it conditionally. Conflict if it is gone or moved on.
    pub(super) async fn change(
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
