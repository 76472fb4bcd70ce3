//! Listing pages from the sharded indexes, newest first, and the health counts' read.

use super::*;

/// Index reads one owner's filtered page may take (see `list_owned`).
const OWNER_SCAN_ROUNDS: usize = 8;

/// The `list_owner` value of `owner`'s tasks in `shard` (`o` keeps the anonymous tenant's
/// value non-empty).
pub(super) fn owner_shard(owner: &str, shard: impl std::fmt::Display) -> String {
    format!("o{owner}#{shard}")
}

/// Shards of each listing index key: a task's index entries carry `{value}#{shard}`, so the
/// writes of one busy value (all tasks, `pending`, one service) spread over this many index
/// partitions instead of one. A list page queries every shard.
pub const LIST_SHARDS: u128 = 16;

/// The listing shard of a task: from the random low bits of its UUIDv7, so it never changes.
pub(super) fn list_shard(id: TaskId) -> u128 {
    id.as_uuid().as_u128() % LIST_SHARDS
}

/// The `by_status_kind` values of `status`, one per service.
pub(super) fn status_keys(status: TaskStatus) -> Vec<String> {
    crate::domain::ServiceKind::ALL
        .iter()
        .map(|kind| format!("{}#{}", status.as_str(), kind.as_str()))
        .collect()
}

impl DynamoTasks {
    /// Up to `limit` ids of one listing shard, newest first, older than `after` if given. The
    /// index holds keys only, so a page of up to 101 keys is far below DynamoDB's 1 MB page.
    pub(super) async fn list_shard(
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

    /// Up to `limit` of the tasks the index `queries` find that `keep`, oldest first.
    pub(super) async fn matching<F>(
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
