//! Keys, metering and remembered idempotent requests.
//!
//! One process owns the data directory, so a key's rate state lives in that process's memory
//! (exact, and a write saved per request; a restart gives every key a rested bucket), and
//! counts that limit nothing (requests; the tasks of keys without a quota) are added up in
//! memory and written at most once a second (and before every usage read), so a crash loses at
//! most a second of them. The task counts of a key with a quota are checked and written with
//! each task, one transaction of the single writer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};

use super::Database;
use crate::db::sql_error;
use crate::domain::tenant::{
    IDEMPOTENCY_RETENTION, IdempotentRequest, Period, Rate, RateDecision, StoredAnswer,
};
use crate::domain::{ApiKey, KeyId, Millis, ServiceKind};
use crate::ports::{
    Begun, Idempotency, KeyAdmin, KeyLookup, Metering, StoreError, Usage, claim, judge,
};

/// How often counted requests are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Counts not yet written: requests, then tasks by service in `ServiceKind::ALL` order.
type Pending = [i64; 1 + ServiceKind::COUNT];

fn slot(kind: ServiceKind) -> usize {
    1 + kind.index()
}

/// The task counters' columns of `key_usage`, in `ServiceKind::ALL` order.
fn task_columns() -> Vec<&'static str> {
    ServiceKind::ALL.iter().map(|k| Usage::column(*k)).collect()
}

/// The in-memory part of metering (see the module's introduction).
#[derive(Default)]
pub(crate) struct Meter {
    /// Each key's rate state (microseconds).
    tat: HashMap<String, i64>,
    /// Counts since the last write, by key and month.
    pending: HashMap<(String, String), Pending>,
    /// When they were last written.
    flushed_at: Option<Instant>,
}

impl Database {
    /// Takes the requests counted so far if a write is due (or `force`).
    fn due_counts(&self, force: bool) -> Vec<((String, String), Pending)> {
        let Ok(mut meter) = self.inner.meter.lock() else {
            return Vec::new();
        };
        let due = force
            || meter
                .flushed_at
                .is_none_or(|at| at.elapsed() >= FLUSH_EVERY);
        if !due || meter.pending.is_empty() {
            return Vec::new();
        }
        meter.flushed_at = Some(Instant::now());
        meter.pending.drain().collect()
    }

    /// Writes counted requests, in one transaction; on failure they go back to be written
    /// with the next ones.
    async fn write_counts(
        &self,
        counts: Vec<((String, String), Pending)>,
    ) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let kept = counts.clone();
        let written = self.write_counts_once(counts).await;
        if written.is_err()
            && let Ok(mut meter) = self.inner.meter.lock()
        {
            for (k, n) in kept {
                let slot = meter.pending.entry(k).or_default();
                for (a, b) in slot.iter_mut().zip(n) {
                    *a += b;
                }
            }
        }
        written
    }

    async fn write_counts_once(
        &self,
        counts: Vec<((String, String), Pending)>,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            let columns: Vec<&str> = std::iter::once("requests").chain(task_columns()).collect();
            let sql = format!(
                "INSERT INTO key_usage (key_id, period, {}) VALUES (?1, ?2, {})
                 ON CONFLICT (key_id, period) DO UPDATE SET {}",
                columns.join(", "),
                (0..columns.len())
                    .map(|i| format!("MAX(?{}, 0)", i + 3))
                    .collect::<Vec<_>>()
                    .join(", "),
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c} = MAX({c} + ?{}, 0)", i + 3))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for ((id, period), n) in &counts {
                let values = [id as &dyn rusqlite::ToSql, period]
                    .into_iter()
                    .chain(n.iter().map(|c| c as &dyn rusqlite::ToSql));
                tx.execute(&sql, rusqlite::params_from_iter(values))
                    .map_err(sql_error)?;
            }
            Ok(())
        })
        .await
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::backend)
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(StoreError::backend)
}

impl KeyLookup for Database {
    async fn key(&self, id: &KeyId) -> Result<Option<ApiKey>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| {
            let body: Option<String> = conn
                .query_row("SELECT body FROM api_keys WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql_error)?;
            body.as_deref().map(parse).transpose()
        })
        .await
    }
}

impl KeyAdmin for Database {
    async fn save_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let (id, body) = (key.id.to_string(), json(key)?);
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO api_keys (id, body) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                params![id, body],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT body FROM api_keys")
                .map_err(sql_error)?;
            let bodies = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            let mut keys = bodies
                .iter()
                .map(|b| parse::<ApiKey>(b))
                .collect::<Result<Vec<_>, _>>()?;
            keys.sort_by_key(|k| (k.created_at, k.id.clone()));
            Ok(keys)
        })
        .await
    }
}

impl Metering for Database {
    async fn admit(
        &self,
        key: &KeyId,
        rate: Option<Rate>,
        now: Millis,
    ) -> Result<RateDecision, StoreError> {
        let (id, period) = (key.to_string(), Period::of(now).label);
        let decision = {
            let mut meter = self
                .inner
                .meter
                .lock()
                .map_err(|_| StoreError::backend(anyhow::anyhow!("meter poisoned")))?;
            let decision = match rate {
                None => RateDecision::Admit {
                    tat: 0,
                    remaining: u32::MAX,
                    reset_s: 0,
                },
                Some(rate) => rate.decide(meter.tat.get(&id).copied(), now * 1_000),
            };
            if let RateDecision::Admit { tat, .. } = decision {
                if rate.is_some() {
                    meter.tat.insert(id.clone(), tat);
                }
                meter.pending.entry((id, period)).or_default()[0] += 1;
            }
            decision
        };
        self.write_counts(self.due_counts(false)).await?;
        Ok(decision)
    }

    async fn reserve_task(
        &self,
        key: &KeyId,
        kind: ServiceKind,
        quota: Option<u64>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let (id, period) = (key.to_string(), Period::of(now).label);
        if quota.is_none() {
            // Nothing to check: counted in memory like requests.
            if let Ok(mut meter) = self.inner.meter.lock() {
                meter.pending.entry((id, period)).or_default()[slot(kind)] += 1;
            }
            self.write_counts(self.due_counts(false)).await?;
            return Ok(true);
        }
        let column = Usage::column(kind);
        self.write(move |tx| {
            let used: i64 = tx
                .query_row(
                    &format!(
                        "SELECT {} FROM key_usage WHERE key_id = ?1 AND period = ?2",
                        task_columns().join(" + ")
                    ),
                    params![id, period],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?
                .unwrap_or(0);
            if quota.is_some_and(|q| used.max(0) as u64 >= q) {
                return Ok(false);
            }
            tx.execute(
                &format!(
                    "INSERT INTO key_usage (key_id, period, {column}) VALUES (?1, ?2, 1)
                     ON CONFLICT (key_id, period) DO UPDATE SET {column} = {column} + 1"
                ),
                params![id, period],
            )
            .map_err(sql_error)?;
            Ok(true)
        })
        .await
    }

    async fn release_task(
        &self,
        key: &KeyId,
        kind: ServiceKind,
        now: Millis,
    ) -> Result<(), StoreError> {
        let (id, period) = (key.to_string(), Period::of(now).label);
        if let Ok(mut meter) = self.inner.meter.lock()
            && let Some(counts) = meter.pending.get_mut(&(id.clone(), period.clone()))
            && counts[slot(kind)] > 0
        {
            counts[slot(kind)] -= 1;
            return Ok(());
        }
        let column = Usage::column(kind);
        self.write(move |conn| {
            conn.execute(
                &format!(
                    "UPDATE key_usage SET {column} = MAX({column} - 1, 0)
                     WHERE key_id = ?1 AND period = ?2"
                ),
                params![id, period],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn usage(&self, key: &KeyId, now: Millis) -> Result<Usage, StoreError> {
        self.write_counts(self.due_counts(true)).await?;
        let (id, period) = (key.to_string(), Period::of(now).label);
        self.read(move |conn| {
            let usage = conn
                .query_row(
                    &format!(
                        "SELECT requests, {} FROM key_usage WHERE key_id = ?1 AND period = ?2",
                        task_columns().join(", ")
                    ),
                    params![id, period],
                    |r| {
                        let count = |i: usize| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
                        let mut tasks = [0; ServiceKind::COUNT];
                        for (i, n) in tasks.iter_mut().enumerate() {
                            *n = count(1 + i)?;
                        }
                        Ok(Usage::new(count(0)?, |kind| tasks[kind.index()]))
                    },
                )
                .optional()
                .map_err(sql_error)?;
            Ok(usage.unwrap_or_default())
        })
        .await
    }
}

impl Idempotency for Database {
    async fn begin(
        &self,
        scope: &str,
        fingerprint: &str,
        resource: &str,
        now: Millis,
    ) -> Result<Begun, StoreError> {
        let (scope, fingerprint, resource) = (
            scope.to_owned(),
            fingerprint.to_owned(),
            resource.to_owned(),
        );
        self.write(move |tx| {
            let body: Option<String> = tx
                .query_row(
                    "SELECT body FROM idempotency WHERE scope = ?1",
                    [&scope],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            let previous = body
                .as_deref()
                .map(parse::<IdempotentRequest>)
                .transpose()?;
            if let Some(found) = judge(previous.as_ref(), &fingerprint, now) {
                return Ok(found);
            }
            let mine = claim(&fingerprint, &resource, previous.as_ref(), now);
            tx.execute(
                "INSERT INTO idempotency (scope, started_at, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (scope) DO UPDATE SET started_at = excluded.started_at,
                     body = excluded.body",
                params![scope, now, json(&mine)?],
            )
            .map_err(sql_error)?;
            // Forget what is past its retention while here.
            let horizon = now - IDEMPOTENCY_RETENTION.as_millis() as Millis;
            tx.execute("DELETE FROM idempotency WHERE started_at < ?1", [horizon])
                .map_err(sql_error)?;
            Ok(Begun::Owned {
                token: now,
                resource: mine.resource.unwrap_or(resource),
            })
        })
        .await
    }

    async fn finish(
        &self,
        scope: &str,
        token: Millis,
        answer: StoredAnswer,
    ) -> Result<(), StoreError> {
        let scope = scope.to_owned();
        self.write(move |tx| {
            let body: Option<String> = tx
                .query_row(
                    "SELECT body FROM idempotency WHERE scope = ?1 AND started_at = ?2",
                    params![scope, token],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            let Some(body) = body else {
                return Ok(());
            };
            let mut record: IdempotentRequest = parse(&body)?;
            record.answer = Some(answer);
            tx.execute(
                "UPDATE idempotency SET body = ?3 WHERE scope = ?1 AND started_at = ?2",
                params![scope, token, json(&record)?],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn forget(&self, scope: &str, token: Millis) -> Result<(), StoreError> {
        let scope = scope.to_owned();
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM idempotency WHERE scope = ?1 AND started_at = ?2",
                params![scope, token],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> KeyId {
        KeyId::parse(&format!("{n:016x}")).unwrap()
    }

    #[tokio::test]
    async fn counts_kept_in_memory_show_in_usage_and_quotas_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = crate::test_stores(dir.path());
        let now = 1_798_000_000_000;
        let (free, metered) = (key(1), key(2));
        for _ in 0..3 {
            db.admit(&free, None, now).await.unwrap();
            assert!(
                db.reserve_task(&free, ServiceKind::Tts, None, now)
                    .await
                    .unwrap()
            );
        }
        db.release_task(&free, ServiceKind::Tts, now).await.unwrap();
        let used = db.usage(&free, now).await.unwrap();
        assert_eq!(
            (used.requests, used.of(ServiceKind::Tts), used.tasks()),
            (3, 2, 2)
        );
        // Written once read: another connection sees them.
        let again = Database::open_beside(dir.path()).unwrap();
        assert_eq!(
            again.usage(&free, now).await.unwrap().of(ServiceKind::Tts),
            2
        );
        // A quota is checked against what is written, task by task.
        for expected in [true, true, false] {
            let kind = ServiceKind::Summarization;
            assert_eq!(
                db.reserve_task(&metered, kind, Some(2), now).await.unwrap(),
                expected
            );
        }
        // Next month starts over.
        let next = Period::of(now).resets_at;
        let kind = ServiceKind::Transcription;
        assert!(
            db.reserve_task(&metered, kind, Some(2), next)
                .await
                .unwrap()
        );
        assert_eq!(
            db.usage(&metered, now)
                .await
                .unwrap()
                .of(ServiceKind::Summarization),
            2
        );
    }
}
