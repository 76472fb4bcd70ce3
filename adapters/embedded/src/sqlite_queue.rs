//! The priority queue with SQS semantics, and start-up recovery.

use std::time::Duration;

use rusqlite::params;

use super::Database;
use super::sqlite_tasks::{load, replace};
use crate::db::sql_error;
use crate::domain::{Priority, TaskId, now_millis};
use crate::ports::{
    AttemptEnd, Delivery, QueueConsume, QueueDepth, QueueDepths, QueueSend, StoreError,
};

/// The receipt prefix of a delivery from the dead letters. Released, a dead letter is delivered
/// again after the delay; left unsettled (the process died), it stays, and start-up recovery
/// fails its task.
const DEAD: &str = "dead:";

fn priority_of_rank(rank: i64) -> Priority {
    Priority::ALL
        .into_iter()
        .find(|p| p.rank() == rank)
        .unwrap_or_default()
}

/// What start-up recovery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// In-flight messages made visible again.
    pub released: usize,
    /// Unfinished tasks that had no message and were queued again.
    pub requeued: usize,
    /// Unfinished tasks whose message had been dead-lettered, now marked failed.
    pub failed: usize,
}

impl Database {
    /// Repairs what a killed process left behind. Safe because the data directory is locked:
    /// no other worker can hold a lease or a message.
    pub async fn recover(&self) -> Result<Recovery, StoreError> {
        self.write(|tx| {
            let now = now_millis();
            let mut out = Recovery {
                released: tx.execute(
                    "UPDATE queue SET visible_at = 0, receipt = NULL WHERE receipt IS NOT NULL",
                    [],
                ).map_err(sql_error)?,
                ..Recovery::default()
            };
            let leased: Vec<String> = tx
                .prepare("SELECT id FROM tasks WHERE status = 'processing' AND lease_until IS NOT NULL").map_err(sql_error)?
                .query_map([], |r| r.get(0)).map_err(sql_error)?
                .collect::<Result<_, _>>().map_err(sql_error)?;
            for id in leased {
                if let Some(mut task) = load(tx, &id)? {
                    let expected = (task.status, task.attempts);
                    task.lease_until = None;
                    replace(tx, &task, expected)?;
                }
            }
            let orphans: Vec<String> = tx
                .prepare(
                    "SELECT id FROM tasks t WHERE status IN ('pending', 'processing')
                     AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.task_id = t.id)",
                ).map_err(sql_error)?
                .query_map([], |r| r.get(0)).map_err(sql_error)?
                .collect::<Result<_, _>>().map_err(sql_error)?;
            for id in orphans {
                let Some(mut task) = load(tx, &id)? else { continue };
                let dead: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM dead_letters WHERE task_id = ?1)",
                    [&id],
                    |r| r.get(0),
                ).map_err(sql_error)?;
                if dead {
                    let reason = task.error_message.clone().unwrap_or_else(|| {
                        "the task was delivered the maximum number of times without finishing"
                            .into()
                    });
                    let candidates = std::mem::take(&mut task.candidates);
                    let attempt = task.attempts;
                    let expected = task
                        .finish_attempt(attempt, AttemptEnd::Failed { reason, candidates }, now)
                        .map_err(StoreError::Conflict)?;
                    replace(tx, &task, expected)?;
                    out.failed += 1;
                } else {
                    tx.execute(
                        "INSERT INTO queue (task_id, rank, enqueued_at, visible_at) VALUES (?1, ?2, ?3, 0)",
                        params![id, task.priority.rank(), task.created_at],
                    ).map_err(sql_error)?;
                    out.requeued += 1;
                }
            }
            Ok(out)
        })
        .await
    }
}

/// The message a receipt (`{message id}:{random}`) was issued for, so that settling it is a
/// key lookup; the receipt itself must still match (an older receipt of the message is stale).
fn message_id(receipt: &str) -> i64 {
    receipt
        .split_once(':')
        .and_then(|(id, _)| id.parse().ok())
        .unwrap_or(-1)
}

/// A waiting message: id, task id, rank, receive count, when it was enqueued.
type Waiting = (i64, String, i64, u32, i64);

/// Up to `max` visible messages in delivery order: first those waiting longer than
/// `starvation_age_ms`, oldest first; then by class, most urgent first, each in the order its
/// messages became visible. Every step is an index range scan that stops after `max` rows (it
/// skips only messages in flight or delayed), so a receive costs the same over a backlog of a
/// hundred or a million.
fn ready(
    tx: &rusqlite::Connection,
    now: i64,
    starvation_age_ms: i64,
    max: usize,
) -> Result<Vec<Waiting>, StoreError> {
    let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Waiting> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    };
    let mut out: Vec<Waiting> = tx
        .prepare_cached(
            "SELECT id, task_id, rank, receive_count, enqueued_at FROM queue INDEXED BY queue_by_age
             WHERE enqueued_at <= ?1 - ?2 AND visible_at <= ?1
             ORDER BY enqueued_at, id LIMIT ?3",
        ).map_err(sql_error)?
        .query_map(params![now, starvation_age_ms, max as i64], row).map_err(sql_error)?
        .collect::<Result<_, _>>().map_err(sql_error)?;
    let mut by_class = tx
        .prepare_cached(
            "SELECT id, task_id, rank, receive_count, enqueued_at FROM queue INDEXED BY queue_fifo
         WHERE rank = ?1 AND visible_at <= ?2
         ORDER BY visible_at, id LIMIT ?3",
        )
        .map_err(sql_error)?;
    for priority in Priority::ALL {
        let wanted = max - out.len();
        if wanted == 0 {
            break;
        }
        // Starved messages already taken may come again here: ask for enough to skip them.
        let taken: Vec<i64> = out.iter().map(|w| w.0).collect();
        let found = by_class
            .query_map(
                params![priority.rank(), now, (wanted + taken.len()) as i64],
                row,
            )
            .map_err(sql_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_error)?;
        out.extend(
            found
                .into_iter()
                .filter(|w| !taken.contains(&w.0))
                .take(wanted),
        );
    }
    Ok(out)
}

impl QueueSend for Database {
    async fn send(&self, id: TaskId, priority: Priority) -> Result<(), StoreError> {
        let now = now_millis();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO queue (task_id, rank, enqueued_at, visible_at) VALUES (?1, ?2, ?3, ?3)",
            ).map_err(sql_error)?
            .execute(params![id.to_string(), priority.rank(), now]).map_err(sql_error)?;
            Ok(())
        })
        .await?;
        // One message wakes one idle loop (or the next to look, if none is idle): waking them
        // all had every other loop run an empty receive through the writer.
        self.inner.notify.notify_one();
        Ok(())
    }
}

impl QueueConsume for Database {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError> {
        let policy = self.inner.policy;
        self.write(move |tx| {
            let now = now_millis();
            let candidates = ready(tx, now, policy.starvation_age_ms, max)?;
            let mut out = Vec::with_capacity(candidates.len());
            for (id, task_id, rank, count, enqueued_at) in candidates {
                if count >= policy.max_receives {
                    // SQS redrive: a message received maxReceiveCount times moves to the DLQ.
                    tx.execute(
                        "INSERT INTO dead_letters (id, task_id, rank, enqueued_at, receive_count, dead_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![id, task_id, rank, enqueued_at, count, now],
                    ).map_err(sql_error)?;
                    tx.execute("DELETE FROM queue WHERE id = ?1", [id]).map_err(sql_error)?;
                    // Delivered once more, from the dead letters, for the worker to reconcile.
                    if let Ok(task_id) = task_id.parse::<TaskId>() {
                        out.push(Delivery {
                            task_id,
                            priority: priority_of_rank(rank),
                            receive_count: count,
                            receipt: format!("{DEAD}{id}"),
                            dead_letter: true,
                        });
                    }
                    continue;
                }
                let receipt = format!("{id}:{}", uuid::Uuid::new_v4().simple());
                tx.execute(
                    "UPDATE queue SET receive_count = receive_count + 1, visible_at = ?2, receipt = ?3 WHERE id = ?1",
                    params![id, now + visibility.as_millis() as i64, receipt],
                ).map_err(sql_error)?;
                let Ok(task_id) = task_id.parse::<TaskId>() else {
                    tx.execute("DELETE FROM queue WHERE id = ?1", [id]).map_err(sql_error)?;
                    continue;
                };
                out.push(Delivery {
                    task_id,
                    priority: priority_of_rank(rank),
                    receive_count: count + 1,
                    receipt,
                    dead_letter: false,
                });
            }
            Ok(out)
        })
        .await
    }

    /// A dead letter, once handled, is gone: the task's own record explains it.
    async fn ack(&self, receipt: &str) -> Result<(), StoreError> {
        let receipt = receipt.to_owned();
        self.write(move |c| {
            match receipt.strip_prefix(DEAD) {
                Some(id) => c
                    .execute("DELETE FROM dead_letters WHERE id = ?1", [id])
                    .map_err(sql_error)?,
                None => c
                    .execute(
                        "DELETE FROM queue WHERE id = ?1 AND receipt = ?2",
                        params![message_id(&receipt), receipt],
                    )
                    .map_err(sql_error)?,
            };
            Ok(())
        })
        .await
    }

    async fn release(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        let receipt = receipt.to_owned();
        let visible_at = now_millis() + delay.as_millis() as i64;
        self.write(move |c| {
            match receipt.strip_prefix(DEAD) {
                // A dead letter handed back goes back to the queue at its receive limit, so its
                // next receive delivers it from the dead letters again.
                Some(id) => {
                    c.execute(
                        "INSERT INTO queue (task_id, rank, enqueued_at, visible_at, receive_count)
                         SELECT task_id, rank, enqueued_at, ?2, receive_count
                         FROM dead_letters WHERE id = ?1",
                        params![id, visible_at],
                    )
                    .map_err(sql_error)?;
                    c.execute("DELETE FROM dead_letters WHERE id = ?1", [id])
                        .map_err(sql_error)?;
                }
                None => {
                    c.execute(
                        "UPDATE queue SET visible_at = ?2, receipt = NULL
                         WHERE id = ?3 AND receipt = ?1",
                        params![receipt, visible_at, message_id(&receipt)],
                    )
                    .map_err(sql_error)?;
                }
            }
            Ok(())
        })
        .await?;
        self.inner.notify.notify_waiters();
        Ok(())
    }

    async fn postpone(&self, delivery: &Delivery, delay: Duration) -> Result<(), StoreError> {
        let receipt = delivery.receipt.clone();
        let visible_at = now_millis() + delay.as_millis() as i64;
        self.write(move |c| {
            c.execute(
                "UPDATE queue SET visible_at = ?2, receipt = NULL,
                    receive_count = MAX(receive_count - 1, 0) WHERE id = ?3 AND receipt = ?1",
                params![receipt, visible_at, message_id(&receipt)],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await?;
        self.inner.notify.notify_waiters();
        Ok(())
    }

    /// Wakes when a message is sent or released, so idle loops need not poll.
    fn arrival(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.inner.notify.clone().notified_owned()
    }
}

impl QueueDepths for Database {
    async fn depths(&self) -> Result<Vec<(Priority, QueueDepth)>, StoreError> {
        let now = now_millis();
        self.read(move |c| {
            let mut out: Vec<(Priority, QueueDepth)> = Priority::ALL
                .iter()
                .map(|p| (*p, QueueDepth::default()))
                .collect();
            let mut stmt = c.prepare_cached(
                "SELECT rank, SUM(visible_at <= ?1), SUM(visible_at > ?1) FROM queue GROUP BY rank",
            ).map_err(sql_error)?;
            let rows = stmt
                .query_map([now], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(sql_error)?;
            for row in rows {
                let (rank, visible, in_flight) = row.map_err(sql_error)?;
                if let Some((_, d)) = out.iter_mut().find(|(p, _)| p.rank() == rank) {
                    d.visible = visible as u64;
                    d.in_flight = in_flight as u64;
                }
            }
            let mut stmt = c
                .prepare_cached("SELECT rank, COUNT(*) FROM dead_letters GROUP BY rank")
                .map_err(sql_error)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql_error)?;
            for row in rows {
                let (rank, dead) = row.map_err(sql_error)?;
                if let Some((_, d)) = out.iter_mut().find(|(p, _)| p.rank() == rank) {
                    d.dead = dead as u64;
                }
            }
            Ok(out)
        })
        .await
    }
}

impl Database {
    /// Task ids in the dead-letter area (for operators and tests).
    pub async fn dead_letters(&self) -> Result<Vec<TaskId>, StoreError> {
        self.read(|c| {
            let ids: Vec<String> = c
                .prepare("SELECT task_id FROM dead_letters ORDER BY id")
                .map_err(sql_error)?
                .query_map([], |r| r.get(0))
                .map_err(sql_error)?
                .collect::<Result<_, _>>()
                .map_err(sql_error)?;
            Ok(ids.iter().filter_map(|s| s.parse().ok()).collect())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starved_messages_go_first_then_classes_by_urgency_each_in_visible_order() {
        let dir = tempfile::tempdir().expect("a directory");
        let db = Database::open(dir.path(), super::super::QueuePolicy::default()).expect("opens");
        let now = now_millis();
        let ids: Vec<TaskId> = (0..6).map(|_| TaskId::new()).collect();
        // (task, class, enqueued, visible): a low message waiting 2 minutes (starved), normal
        // and urgent ones, an urgent one made visible later than the other, and one in flight.
        let rows = [
            (ids[0], Priority::Normal, now - 1_000, now - 1_000),
            (ids[1], Priority::Urgent, now - 900, now - 100),
            (ids[2], Priority::Urgent, now - 500, now - 500),
            (ids[3], Priority::Low, now - 120_000, now - 120_000),
            (ids[4], Priority::High, now - 800, now + 30_000),
            (ids[5], Priority::Low, now - 700, now - 700),
        ];
        let raw: Vec<(String, i64, i64, i64)> = rows
            .iter()
            .map(|(id, p, e, v)| (id.to_string(), p.rank(), *e, *v))
            .collect();
        db.write(move |tx| {
            for (id, rank, enqueued, visible) in &raw {
                tx.execute(
                    "INSERT INTO queue (task_id, rank, enqueued_at, visible_at) VALUES (?1, ?2, ?3, ?4)",
                    params![id, rank, enqueued, visible],
                ).map_err(crate::db::sql_error)?;
            }
            Ok(())
        })
        .await
        .expect("queued");
        let got: Vec<TaskId> = db
            .receive(10, Duration::from_secs(30))
            .await
            .expect("received")
            .into_iter()
            .map(|d| d.task_id)
            .collect();
        assert_eq!(got, vec![ids[3], ids[2], ids[1], ids[0], ids[5]]);
        let again = db
            .receive(10, Duration::from_secs(30))
            .await
            .expect("received");
        assert!(again.is_empty(), "all were taken or in flight: {again:?}");
    }
}
