//! Miner health records, beside the tasks and the counter items.

use super::*;

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
