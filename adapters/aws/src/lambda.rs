//! Lambda glue shared by the functions: JSON logs, each invocation's AWS usage, and SQS batches
//! handed to the worker.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use tracing::{Instrument, warn};

use super::{SqsQueues, Usage};
use crate::drain::{DeliveryHandler, Disposition};
use crate::ports::QueueConsume;

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

/// `router`, logging after each request (one invocation behind API Gateway) what AWS usage it
/// made ([`Usage::log_invocation`]).
pub fn metered(router: axum::Router, usage: Arc<Usage>) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let usage = usage.clone();
            async move {
                let response = next.run(request).await;
                usage.log_invocation();
                response
            }
        },
    ))
}

fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// The invocation's deadline as an instant, from the runtime's epoch milliseconds.
pub fn invocation_deadline(deadline_ms: u64) -> tokio::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    tokio::time::Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// Handles one SQS batch: every record concurrently, one span each, each outcome recorded
/// before `deadline` (the invocation's). Records the handler hands
/// back become batch item failures (SQS redelivers them; after `maxReceiveCount` they go to the
/// dead-letter queue); when the handler asks for a shorter delay than the visibility timeout,
/// the message's visibility is shortened to match.
pub async fn handle_sqs_batch(
    handler: &impl DeliveryHandler,
    queues: &SqsQueues,
    event: SqsEvent,
    deadline: tokio::time::Instant,
) -> SqsBatchResponse {
    let handled = join_all(event.records.into_iter().map(|record| {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("message", message_id = %id);
        async move {
            let count = receive_count(&record);
            let body = record.body.as_deref().unwrap_or_default();
            let dead_letter = queues.is_dead_letter(record.event_source_arn.as_deref());
            let Some(delivery) = SqsQueues::delivery(body, count, String::new(), dead_letter)
            else {
                warn!("message body is not a task message; dropped");
                return None;
            };
            let handled =
                crate::drain::handle_caught(&delivery, handler.handle_before(&delivery, deadline));
            match handled.await {
                Disposition::Done => None,
                // A delayed copy; the event source mapping deletes this one. Should the copy not
                // go out, the record is handed back and comes again (counted, but not lost).
                Disposition::Postpone(delay) => queues
                    .send_after(delivery.task_id, delivery.priority, delay)
                    .await
                    .err()
                    .map(|e| {
                        warn!(error = %e, "could not postpone the message; it will come back");
                        id
                    }),
                Disposition::Retry(delay) => {
                    let receipt = record.receipt_handle.as_deref().and_then(|handle| {
                        queues.record_receipt(record.event_source_arn.as_deref(), handle)
                    });
                    if let Some(receipt) = receipt
                        && let Err(e) = queues
                            .release(&receipt, delay.max(Duration::from_secs(1)))
                            .await
                    {
                        warn!(error = %e, "could not shorten the message's visibility");
                    }
                    Some(id)
                }
            }
        }
        .instrument(span)
    }))
    .await;
    crate::faults::crash("lambda.answering");
    let mut response = SqsBatchResponse::default();
    for id in handled.into_iter().flatten() {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}
