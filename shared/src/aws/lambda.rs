//! Lambda glue shared by the functions: JSON logs, and SQS batches handed to the worker.

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use tracing::{Instrument, warn};

use super::SqsQueues;
use crate::ports::{BlobStore, MinerClient, MinerDirectory, TaskWriter};
use crate::worker::{Disposition, Worker};

/// JSON logs on stderr. The filter is `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else `info`.
pub fn init_tracing() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .map(|l| l.to_lowercase())
        })
        .unwrap_or_else(|| "info".into());
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_current_span(true)
        .with_target(false)
        .without_time() // CloudWatch stamps every line
        .init();
}

fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// The queue a record came from, as an index into the configured queues, matched by the queue
/// name at the end of its ARN.
fn queue_index(queues: &[String; 3], arn: Option<&str>) -> Option<usize> {
    let name = arn?.rsplit(':').next()?;
    queues
        .iter()
        .position(|url| url.rsplit('/').next() == Some(name))
}

/// Handles one SQS batch: every record concurrently, one span each. Records the worker hands
/// back become batch item failures (SQS redelivers them; after `maxReceiveCount` they go to the
/// dead-letter queue); when the worker asks for a shorter delay than the visibility timeout, the
/// message's visibility is shortened to match.
pub async fn handle_sqs_batch<T, B, D, C>(
    worker: &Worker<T, B, D, C>,
    queues: &SqsQueues,
    event: SqsEvent,
) -> SqsBatchResponse
where
    T: TaskWriter + crate::ports::HealthStore,
    B: BlobStore,
    D: MinerDirectory,
    C: MinerClient,
{
    let handled = join_all(event.records.into_iter().map(|record| {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("message", message_id = %id);
        async move {
            let count = receive_count(&record);
            let body = record.body.as_deref().unwrap_or_default();
            let Some(delivery) = SqsQueues::delivery(body, count, String::new()) else {
                warn!("message body is not a task message; dropped");
                return None;
            };
            match worker.handle(&delivery).await {
                Disposition::Done => None,
                Disposition::Retry(delay) => {
                    let index = queue_index(queues.urls(), record.event_source_arn.as_deref());
                    if let (Some(i), Some(handle)) = (index, record.receipt_handle.as_deref()) {
                        let receipt = format!("{i}|{handle}");
                        if let Err(e) = crate::ports::TaskQueue::release(
                            queues,
                            &receipt,
                            delay.max(Duration::from_secs(1)),
                        )
                        .await
                        {
                            warn!(error = %e, "could not shorten the message's visibility");
                        }
                    }
                    Some(id)
                }
            }
        }
        .instrument(span)
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    for id in handled.into_iter().flatten() {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_matched_to_their_queue_by_arn() {
        let queues = [
            "http://localhost:4566/000000000000/taogate-high".to_owned(),
            "http://localhost:4566/000000000000/taogate-normal".to_owned(),
            "http://localhost:4566/000000000000/taogate-low".to_owned(),
        ];
        assert_eq!(
            queue_index(
                &queues,
                Some("arn:aws:sqs:us-east-1:000000000000:taogate-low")
            ),
            Some(2)
        );
        assert_eq!(
            queue_index(&queues, Some("arn:aws:sqs:us-east-1:000000000000:other")),
            None
        );
    }
}
