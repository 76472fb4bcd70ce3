//! The drain loop: takes messages off a queue and hands each to a handler, standing in for
//! SQS's event source mapping wherever no Lambda runs. `taogate serve` drains the embedded queue
//! with it, and its AWS backend drains the SQS queues with the very same loop.
//!
//! Each of `slots` loops receives up to `batch` messages (most urgent class first), handles them
//! concurrently, and settles each as the handler says: acknowledged, or released for redelivery
//! after a delay. A loop finishes the batch in hand before it stops.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::watch;
use tracing::{Instrument, warn};

use crate::ports::{Delivery, QueueConsume};

/// What to do with a message after handling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Delete it: the task is finished (or gone).
    Done,
    /// Leave it to be delivered again after the delay.
    Retry(Duration),
    /// Deliver it again after the delay as if it had not been received: the task waited (no
    /// miner could be asked) and used no attempt, so this delivery must not count toward the
    /// queue's dead-letter limit either.
    Postpone(Duration),
}

/// Handles one delivered message (the worker).
pub trait DeliveryHandler: Send + Sync + 'static {
    /// Handles `delivery` and says what to do with its message.
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = Disposition> + Send;

    /// Handles `delivery` so that its outcome is recorded before `deadline` (a Lambda
    /// invocation's): what cannot finish by then is handed back without using an attempt. The
    /// default ignores the deadline.
    fn handle_before(
        &self,
        delivery: &Delivery,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Disposition> + Send {
        let _ = deadline;
        self.handle(delivery)
    }
}

/// How the loops poll.
#[derive(Debug, Clone, Copy)]
pub struct DrainOptions {
    /// Concurrent loops.
    pub slots: usize,
    /// Messages one receive takes (SQS allows 1 to 10).
    pub batch: usize,
    /// How long a received message stays invisible (the worker's lease).
    pub visibility: Duration,
    /// Longest an idle loop waits before receiving again (messages released with a delay
    /// become visible without any notification).
    pub idle: Duration,
}

/// Runs the loops until `shutdown` turns true. A loop that panics anyway (a handler's panic
/// is caught per message, see [`handle_caught`]) is replaced.
pub async fn drain<Q, H>(
    queue: Arc<Q>,
    handler: Arc<H>,
    options: DrainOptions,
    shutdown: watch::Receiver<bool>,
) where
    Q: QueueConsume,
    H: DeliveryHandler,
{
    let loops: Vec<_> = (0..options.slots)
        .map(|slot| {
            let (queue, handler, stop) = (queue.clone(), handler.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    let run = tokio::spawn(
                        drain_loop(queue.clone(), handler.clone(), options, stop.clone())
                            .instrument(tracing::info_span!("worker", slot)),
                    );
                    match run.await {
                        Err(e) if e.is_panic() && !*stop.borrow() => {
                            tracing::error!(slot, "a worker slot panicked; it is replaced");
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    for l in loops {
        let _ = l.await;
    }
}

/// Handles `delivery`, turning a panic into a retry: the message comes back after
/// [`PANIC_BACKOFF`] and no other message is affected. The panic is logged with the task id.
pub async fn handle_caught<F>(delivery: &Delivery, handled: F) -> Disposition
where
    F: Future<Output = Disposition>,
{
    use futures::FutureExt as _;
    match std::panic::AssertUnwindSafe(handled).catch_unwind().await {
        Ok(disposition) => disposition,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(task_id = %delivery.task_id, panic = %what, "handling the message panicked; it is handed back");
            Disposition::Retry(PANIC_BACKOFF)
        }
    }
}

/// How long a message whose handling panicked waits before it comes back.
pub const PANIC_BACKOFF: Duration = Duration::from_secs(5);

async fn drain_loop<Q: QueueConsume, H: DeliveryHandler>(
    queue: Arc<Q>,
    handler: Arc<H>,
    options: DrainOptions,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        // Asked for before the receive, so a message sent in between still wakes the loop.
        let arrival = queue.arrival();
        let batch = match queue.receive(options.batch, options.visibility).await {
            Ok(batch) => batch,
            Err(e) => {
                warn!(error = ?anyhow::Error::from(e), "queue receive failed");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                () = arrival => {}
                () = tokio::time::sleep(options.idle) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        join_all(
            batch
                .iter()
                .map(|delivery| settle(&*queue, &*handler, delivery)),
        )
        .await;
    }
}

async fn settle<Q: QueueConsume, H: DeliveryHandler>(queue: &Q, handler: &H, delivery: &Delivery) {
    let settled = match handle_caught(delivery, handler.handle(delivery)).await {
        Disposition::Done => queue.ack(&delivery.receipt).await,
        Disposition::Retry(delay) => queue.release(&delivery.receipt, delay).await,
        Disposition::Postpone(delay) => queue.postpone(delivery, delay).await,
    };
    if let Err(e) = settled {
        warn!(error = ?anyhow::Error::from(e), "could not settle a message; it will be redelivered");
    }
}
