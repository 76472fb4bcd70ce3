//! Keys, metering and idempotent requests in the task table, beside the tasks:
//!
//! - `#key#ID`: a key record (`body`, JSON); `#keys`: the string set `ids` of every key, so
//!   listing keys reads one item instead of scanning the table;
//! - `#usage#ID#YYYY-MM`: atomic counters `requests`, `tasks` and one per service, and the
//!   key's rate state `tat` (microseconds). A request is admitted and counted by one update
//!   that adds one interval to `tat` on the condition that the result stays within the burst,
//!   so concurrent requests are admitted exactly, with one write each; a new month starts with
//!   a rested bucket. A task is counted only while `tasks` is below the quota (one conditional
//!   `ADD`);
//! - `#idem#SCOPE`: a remembered `Idempotency-Key` (`fingerprint`, `started_at`, `answer`),
//!   claimed with a conditional put; expired by the table's TTL after 24 hours.
//!
//! None of these items has a list attribute, so the task indexes never see them.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::DynamoTasks;
use super::dynamo::{backend, n, s};
use crate::domain::tenant::{
    IDEMPOTENCY_RETENTION, IdempotentRequest, Period, Rate, RateDecision, StoredAnswer,
};
use crate::domain::{ApiKey, KeyId, Millis, ServiceKind};
use crate::dynamo_batch::{Read, batch_get};
use crate::ports::{
    Begun, Idempotency, KeyAdmin, KeyLookup, Metering, StoreError, Usage, claim, judge,
};

/// Tries of a rate update that raced a rested key's first request.
const RATE_TRIES: usize = 4;
/// Days usage counters are kept.
const USAGE_TTL_DAYS: i64 = 400;

type Item = HashMap<String, AttributeValue>;

fn key_of(id: &str) -> Item {
    HashMap::from([("id".to_owned(), s(id))])
}

fn conditional_failed<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

fn number(item: Option<&Item>, name: &str) -> Option<i64> {
    item?.get(name)?.as_n().ok()?.parse().ok()
}

fn text<'a>(item: Option<&'a Item>, name: &str) -> Option<&'a str> {
    item?.get(name)?.as_s().ok().map(String::as_str)
}

impl DynamoTasks {
    async fn consistent(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.item)
    }

    /// Applies `rate` to one request: adds one interval to a running key's state, or starts a
    /// rested key's, each conditional on the state it assumes. Which to try first is guessed
    /// from the state this process saw last, so a request usually takes one write; a wrong
    /// guess costs a failed condition, never a wrong count.
    async fn rate(&self, key: &KeyId, rate: Rate, now: Millis) -> Result<RateDecision, StoreError> {
        let period = Period::of(now);
        let id = format!("#usage#{key}#{}", period.label);
        let now_us = now * 1_000;
        let (t, tau) = (rate.interval_us(), rate.tolerance_us());
        let mut guess = self
            .rate_hints
            .lock()
            .ok()
            .and_then(|h| h.get(&id).copied());
        for _ in 0..RATE_TRIES {
            let rested = guess.is_none_or(|tat| tat <= now_us);
            let applied = if rested {
                self.rate_update(&id, &period, RateStep::Start { at: now_us + t }, now_us)
                    .await?
            } else {
                self.rate_update(
                    &id,
                    &period,
                    RateStep::Add {
                        t,
                        last: now_us + tau - t,
                    },
                    now_us,
                )
                .await?
            };
            if let Some(tat) = applied {
                if let Ok(mut hints) = self.rate_hints.lock() {
                    if hints.len() >= 10_000 {
                        hints.clear();
                    }
                    hints.insert(id.clone(), tat);
                }
                return Ok(admitted(rate, tat, now_us));
            }
            let stored = number(self.consistent(&id).await?.as_ref(), "tat");
            if let Some(tat) = stored.filter(|tat| *tat > now_us + tau - t) {
                return Ok(rate.decide(Some(tat), now_us));
            }
            guess = stored;
        }
        // Raced on every try: refuse this one rather than count it twice.
        Ok(RateDecision::Refuse { retry_after_s: 1 })
    }

    /// One conditional update of a key's rate state, counting the request with it; the new
    /// state, or `None` if the state was not the one assumed.
    async fn rate_update(
        &self,
        id: &str,
        period: &Period,
        step: RateStep,
        now_us: i64,
    ) -> Result<Option<i64>, StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(id)))
            .expression_attribute_values(
                ":exp",
                n(period.resets_at / 1000 + USAGE_TTL_DAYS * 86_400),
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now_us))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew);
        let request = match step {
            RateStep::Add { t, last } => request
                .update_expression("SET tat = tat + :t, expires_at = :exp ADD requests :one")
                .condition_expression("tat > :now AND tat <= :last")
                .expression_attribute_values(":t", n(t))
                .expression_attribute_values(":last", n(last)),
            RateStep::Start { at } => request
                .update_expression("SET tat = :start, expires_at = :exp ADD requests :one")
                .condition_expression("attribute_not_exists(tat) OR tat <= :now")
                .expression_attribute_values(":start", n(at)),
        };
        match request.send().await {
            Ok(out) => Ok(number(out.attributes.as_ref(), "tat")),
            Err(e) if conditional_failed(&e) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn count(
        &self,
        key: &KeyId,
        now: Millis,
        update: &str,
        condition: Option<(&str, u64)>,
        delta: i64,
    ) -> Result<bool, StoreError> {
        let period = Period::of(now);
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&format!("#usage#{key}#{}", period.label))))
            .update_expression(update)
            .expression_attribute_values(":d", n(delta))
            .expression_attribute_values(
                ":exp",
                n(period.resets_at / 1000 + USAGE_TTL_DAYS * 86_400),
            );
        if let Some((condition, quota)) = condition {
            request = request
                .condition_expression(condition)
                .expression_attribute_values(":quota", n(quota));
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }
}

/// How a request changes a key's rate state.
enum RateStep {
    /// A running key: one interval more, if that stays within the burst (`tat <= last`).
    Add { t: i64, last: i64 },
    /// A rested key (no state, or state in the past): the state starts at `at`.
    Start { at: i64 },
}

fn admitted(rate: Rate, tat: i64, now_us: i64) -> RateDecision {
    let (t, tau) = (rate.interval_us(), rate.tolerance_us());
    RateDecision::Admit {
        tat,
        remaining: ((now_us + tau - tat).max(0) / t) as u32,
        reset_s: ((tat - now_us).max(0) as u64).div_ceil(1_000_000),
    }
}

impl KeyLookup for DynamoTasks {
    async fn key(&self, id: &KeyId) -> Result<Option<ApiKey>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&format!("#key#{id}"))))
            .send()
            .await
            .map_err(backend)?;
        text(out.item.as_ref(), "body")
            .map(|b| serde_json::from_str(b).map_err(backend))
            .transpose()
    }
}

impl KeyAdmin for DynamoTasks {
    async fn save_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut item = key_of(&format!("#key#{}", key.id));
        item.insert(
            "body".into(),
            s(serde_json::to_string(key).map_err(backend)?),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend)?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of("#keys")))
            .update_expression("ADD ids :id")
            .expression_attribute_values(":id", AttributeValue::Ss(vec![key.id.to_string()]))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let index = self.consistent("#keys").await?;
        let ids: Vec<String> = index
            .as_ref()
            .and_then(|i| i.get("ids"))
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        let wanted = ids.iter().map(|id| key_of(&format!("#key#{id}"))).collect();
        let mut keys = Vec::with_capacity(ids.len());
        for item in batch_get(&self.client, &self.table, wanted, Read::default()).await? {
            if let Some(body) = text(Some(&item), "body") {
                keys.push(serde_json::from_str::<ApiKey>(body).map_err(backend)?);
            }
        }
        keys.sort_by_key(|k| (k.created_at, k.id.clone()));
        Ok(keys)
    }
}

impl Metering for DynamoTasks {
    async fn admit(
        &self,
        key: &KeyId,
        rate: Option<Rate>,
        now: Millis,
    ) -> Result<RateDecision, StoreError> {
        match rate {
            // Admitted and counted by one update.
            Some(rate) => self.rate(key, rate, now).await,
            None => {
                self.count(key, now, "ADD requests :d SET expires_at = :exp", None, 1)
                    .await?;
                Ok(RateDecision::Admit {
                    tat: 0,
                    remaining: u32::MAX,
                    reset_s: 0,
                })
            }
        }
    }

    async fn reserve_task(
        &self,
        key: &KeyId,
        kind: ServiceKind,
        quota: Option<u64>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let update = format!(
            "ADD tasks :d, {} :d SET expires_at = :exp",
            Usage::column(kind)
        );
        let condition = quota.map(|q| ("attribute_not_exists(tasks) OR tasks < :quota", q));
        self.count(key, now, &update, condition, 1).await
    }

    async fn release_task(
        &self,
        key: &KeyId,
        kind: ServiceKind,
        now: Millis,
    ) -> Result<(), StoreError> {
        let update = format!(
            "ADD tasks :d, {} :d SET expires_at = :exp",
            Usage::column(kind)
        );
        self.count(key, now, &update, None, -1).await.map(|_| ())
    }

    async fn usage(&self, key: &KeyId, now: Millis) -> Result<Usage, StoreError> {
        let id = format!("#usage#{key}#{}", Period::of(now).label);
        let item = self.consistent(&id).await?;
        let get = |name: &str| number(item.as_ref(), name).unwrap_or(0).max(0) as u64;
        Ok(Usage::new(get("requests"), |kind| get(Usage::column(kind))))
    }
}

fn remembered(item: &Item) -> Option<IdempotentRequest> {
    Some(IdempotentRequest {
        fingerprint: text(Some(item), "fingerprint")?.to_owned(),
        started_at: number(Some(item), "started_at")?,
        resource: text(Some(item), "resource").map(str::to_owned),
        answer: text(Some(item), "answer").and_then(|a| serde_json::from_str(a).ok()),
    })
}

impl Idempotency for DynamoTasks {
    async fn begin(
        &self,
        scope: &str,
        fingerprint: &str,
        resource: &str,
        now: Millis,
    ) -> Result<Begun, StoreError> {
        let id = format!("#idem#{scope}");
        // Read, judge, and claim on the condition that nothing changed in between; a lost
        // race is judged against the winner's claim.
        for _ in 0..2 {
            let previous = self.consistent(&id).await?.as_ref().and_then(remembered);
            if let Some(found) = judge(previous.as_ref(), fingerprint, now) {
                return Ok(found);
            }
            let mine = claim(fingerprint, resource, previous.as_ref(), now);
            let chosen = mine.resource.clone().unwrap_or_else(|| resource.to_owned());
            let mut item = key_of(&id);
            item.insert("fingerprint".into(), s(fingerprint));
            item.insert("started_at".into(), n(now));
            item.insert("resource".into(), s(chosen.clone()));
            item.insert(
                "expires_at".into(),
                n((now + IDEMPOTENCY_RETENTION.as_millis() as Millis) / 1000 + 3600),
            );
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item));
            let put = match &previous {
                None => put.condition_expression("attribute_not_exists(id)"),
                Some(old) => put
                    .condition_expression("started_at = :seen")
                    .expression_attribute_values(":seen", n(old.started_at)),
            };
            match put.send().await {
                Ok(_) => {
                    return Ok(Begun::Owned {
                        token: now,
                        resource: chosen,
                    });
                }
                Err(e) if conditional_failed(&e) => continue,
                Err(e) => return Err(backend(e)),
            }
        }
        // Claimed by another request just now.
        Ok(Begun::InFlight)
    }

    async fn finish(
        &self,
        scope: &str,
        token: Millis,
        answer: StoredAnswer,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(&answer).map_err(backend)?;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&format!("#idem#{scope}"))))
            .update_expression("SET answer = :a")
            .condition_expression("started_at = :token")
            .expression_attribute_values(":a", s(body))
            .expression_attribute_values(":token", n(token))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn forget(&self, scope: &str, token: Millis) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&format!("#idem#{scope}"))))
            .condition_expression("started_at = :token")
            .expression_attribute_values(":token", n(token))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}
