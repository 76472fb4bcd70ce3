//! The local stand-in for SQS event source mappings: polls the priority queues (most urgent
//! first) and hands each batch to [`handle_sqs_batch`] as an `SqsEvent`, exactly as Lambda would.
//! Records reported as batch item failures stay on the queue for redelivery; the rest are
//! deleted, as the event source mapping deletes them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use tokio::sync::watch;
use tracing::warn;

use super::{SqsQueues, handle_sqs_batch};
use crate::ports::{BlobStore, MinerClient, MinerDirectory, TaskWriter};
use crate::worker::Worker;

/// Messages per batch, as the template's `BatchSize`.
const BATCH_SIZE: i32 = 5;

fn arn_for(url: &str) -> String {
    let name = url.rsplit('/').next().unwrap_or_default();
    format!("arn:aws:sqs:local:000000000000:{name}")
}

async fn poll_once<T, B, D, C>(
    worker: &Worker<T, B, D, C>,
    queues: &SqsQueues,
    client: &aws_sdk_sqs::Client,
    visibility: Duration,
) -> anyhow::Result<bool>
where
    T: TaskWriter + crate::ports::HealthStore,
    B: BlobStore,
    D: MinerDirectory,
    C: MinerClient,
{
    for url in queues.urls() {
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(BATCH_SIZE)
            .visibility_timeout(visibility.as_secs().clamp(1, 43_200) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await?;
        if out.messages().is_empty() {
            continue;
        }
        let mut handles = HashMap::new();
        let mut event = SqsEvent::default();
        for m in out.messages() {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id().map(str::to_owned);
            record.receipt_handle = m.receipt_handle().map(str::to_owned);
            record.body = m.body().map(str::to_owned);
            record.event_source_arn = Some(arn_for(url));
            record.event_source = Some("aws:sqs".into());
            if let Some(count) = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            {
                record
                    .attributes
                    .insert("ApproximateReceiveCount".into(), count.clone());
            }
            if let (Some(id), Some(handle)) = (m.message_id(), m.receipt_handle()) {
                handles.insert(id.to_owned(), handle.to_owned());
            }
            event.records.push(record);
        }
        let response = handle_sqs_batch(worker, queues, event).await;
        for failure in &response.batch_item_failures {
            handles.remove(&failure.item_identifier);
        }
        for handle in handles.values() {
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(handle)
                .send()
                .await?;
        }
        return Ok(true);
    }
    Ok(false)
}

/// Runs `loops` pollers until `shutdown` turns true; each finishes its batch first.
pub async fn run_poller<T, B, D, C>(
    worker: Arc<Worker<T, B, D, C>>,
    queues: SqsQueues,
    client: aws_sdk_sqs::Client,
    loops: usize,
    visibility: Duration,
    shutdown: watch::Receiver<bool>,
) where
    T: TaskWriter + crate::ports::HealthStore,
    B: BlobStore,
    D: MinerDirectory,
    C: MinerClient,
{
    let mut tasks = Vec::new();
    for _ in 0..loops {
        let (worker, queues, client, mut stop) = (
            worker.clone(),
            queues.clone(),
            client.clone(),
            shutdown.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !*stop.borrow() {
                let busy = match poll_once(&worker, &queues, &client, visibility).await {
                    Ok(busy) => busy,
                    Err(e) => {
                        warn!(error = %e, "polling the queues failed");
                        false
                    }
                };
                if !busy {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
