//! The local runtime's worker pool: it stands in for SQS's event source mapping, taking messages
//! from the embedded queue (most urgent first) and handing each to the same [`Worker::handle`]
//! the worker Lambda calls.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{Instrument, warn};

use crate::embedded::Database;
use crate::ports::{BlobStore, MinerClient, MinerDirectory, TaskQueue};
use crate::worker::{Disposition, Worker};

/// Longest an idle worker sleeps before looking at the queue again (messages released with a
/// delay become visible without a notification).
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Runs `slots` workers until `shutdown` turns true. Each finishes the task in hand first.
pub async fn run_pool<B, D, C>(
    db: Database,
    worker: Arc<Worker<Database, B, D, C>>,
    slots: usize,
    visibility: Duration,
    mut shutdown: watch::Receiver<bool>,
) where
    B: BlobStore,
    D: MinerDirectory,
    C: MinerClient,
{
    let mut handles = Vec::with_capacity(slots);
    for slot in 0..slots {
        let db = db.clone();
        let worker = worker.clone();
        let mut stop = shutdown.clone();
        handles.push(tokio::spawn(
            async move {
                loop {
                    if *stop.borrow() {
                        break;
                    }
                    let wake = db.sent();
                    let batch = match db.receive(1, visibility).await {
                        Ok(b) => b,
                        Err(e) => {
                            warn!(error = ?anyhow::Error::from(e), "queue receive failed");
                            Vec::new()
                        }
                    };
                    if batch.is_empty() {
                        tokio::select! {
                            _ = wake => {}
                            _ = tokio::time::sleep(IDLE_POLL) => {}
                            _ = stop.changed() => {}
                        }
                        continue;
                    }
                    for delivery in batch {
                        let outcome = match worker.handle(&delivery).await {
                            Disposition::Done => db.ack(&delivery.receipt).await,
                            Disposition::Retry(delay) => db.release(&delivery.receipt, delay).await,
                        };
                        if let Err(e) = outcome {
                            warn!(error = ?anyhow::Error::from(e), "could not settle a message; it will be redelivered");
                        }
                    }
                }
            }
            .instrument(tracing::info_span!("worker", slot)),
        ));
    }
    let _ = shutdown.changed().await;
    for h in handles {
        let _ = h.await;
    }
}
