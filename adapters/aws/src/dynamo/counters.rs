//! The health counts: sharded counter items moved by an atomic `ADD` after each transition.

use super::*;

/// Counter items the health counts are spread over.
pub const COUNTER_SHARDS: usize = 8;

fn rand_shard() -> usize {
    // Spreading, not security: the low bits of a v4 uuid are random enough.
    (uuid::Uuid::new_v4().as_u128() % COUNTER_SHARDS as u128) as usize
}

impl DynamoTasks {
    /// Moves one count from `from` (None: a new task) to `to`, on a random shard.
    pub(super) async fn count_move(
        &self,
        from: Option<TaskStatus>,
        to: TaskStatus,
    ) -> Result<(), StoreError> {
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
}
