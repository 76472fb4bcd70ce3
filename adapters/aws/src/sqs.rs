//! The priority queues on SQS: one queue per class (`urgent` shares `high`), each with a
//! dead-letter queue whose redrive policy (`maxReceiveCount = MAX_ATTEMPTS`) is set by the
//! template. Messages carry the task id and priority, never the payload.

use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use super::AwsResources;
use crate::domain::{Priority, TaskId};
use crate::ports::{Delivery, QueueConsume, QueueDepth, QueueDepths, QueueSend, StoreError};

/// The message body.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct QueueMessage {
    /// The task.
    pub task_id: TaskId,
    /// Its priority.
    pub priority: Priority,
}

/// SQS queues, most urgent first.
#[derive(Debug, Clone)]
pub struct SqsQueues {
    client: aws_sdk_sqs::Client,
    queues: [String; 3],
    dead: [Option<String>; 3],
}

fn index(priority: Priority) -> usize {
    match priority {
        Priority::Urgent | Priority::High => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    }
}

const CLASSES: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

impl SqsQueues {
    /// The queues named in `resources`.
    pub fn new(client: aws_sdk_sqs::Client, resources: &AwsResources) -> Self {
        Self {
            client,
            queues: resources.queues.clone(),
            dead: resources.dead_letter_queues.clone(),
        }
    }

    /// The queue URLs, most urgent first.
    pub fn urls(&self) -> &[String; 3] {
        &self.queues
    }

    /// Parses a message body into a delivery (used by the worker Lambda for event records).
    pub fn delivery(
        body: &str,
        receive_count: u32,
        receipt: String,
        dead_letter: bool,
    ) -> Option<Delivery> {
        let message: QueueMessage = serde_json::from_str(body).ok()?;
        Some(Delivery {
            task_id: message.task_id,
            priority: message.priority,
            receive_count,
            receipt,
            dead_letter,
        })
    }

    /// Every queue by receipt index: the three classes, then their dead-letter queues.
    fn url(&self, index: usize) -> Option<&str> {
        match index {
            0..3 => Some(&self.queues[index]),
            3..6 => self.dead[index - 3].as_deref(),
            _ => None,
        }
    }

    /// Whether the queue whose ARN is `arn` is one of the dead-letter queues.
    pub fn is_dead_letter(&self, arn: Option<&str>) -> bool {
        self.index_of(arn).is_some_and(|i| i >= 3)
    }

    fn index_of(&self, arn: Option<&str>) -> Option<usize> {
        let name = arn?.rsplit(':').next()?;
        (0..6).find(|&i| {
            self.url(i)
                .is_some_and(|url| url.rsplit('/').next() == Some(name))
        })
    }

    /// The receipt of a message: which of our queues it came from, and its SQS receipt handle.
    /// This and [`Self::split`] are the one place the format is known.
    fn receipt(queue: usize, handle: &str) -> String {
        format!("{queue}|{handle}")
    }

    /// The receipt of an event record from the queue whose ARN is `arn` (matched by the queue
    /// name at its end), for settling it outside the event source mapping.
    pub fn record_receipt(&self, arn: Option<&str>, handle: &str) -> Option<String> {
        Some(Self::receipt(self.index_of(arn)?, handle))
    }

    /// The queue URL and SQS receipt handle of one of our receipts.
    fn split<'r>(&self, receipt: &'r str) -> Result<(&str, &'r str), StoreError> {
        receipt
            .split_once('|')
            .and_then(|(i, h)| Some((self.url(i.parse::<usize>().ok()?)?, h)))
            .ok_or_else(|| StoreError::backend(anyhow::anyhow!("malformed receipt")))
    }

    async fn depth(&self, url: &str) -> Result<(u64, u64), StoreError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(StoreError::backend)?;
        let get = |name: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

impl QueueSend for SqsQueues {
    async fn send(&self, id: TaskId, priority: Priority) -> Result<(), StoreError> {
        self.send_after(id, priority, Duration::ZERO).await
    }
}

impl SqsQueues {
    /// Sends a task's message, invisible for `delay` (SQS allows at most 15 minutes).
    pub async fn send_after(
        &self,
        id: TaskId,
        priority: Priority,
        delay: Duration,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(&QueueMessage {
            task_id: id,
            priority,
        })
        .map_err(StoreError::backend)?;
        self.client
            .send_message()
            .queue_url(&self.queues[index(priority)])
            .message_body(body)
            .delay_seconds(delay.as_secs().min(900) as i32)
            .send()
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }
}

impl QueueConsume for SqsQueues {
    /// Receives from the most urgent non-empty queue. Used by the local poller that stands in for
    /// the event source mappings; in Lambda, SQS delivers the batches itself.
    /// Receives from the most urgent non-empty queue, then from the dead-letter queues: their
    /// messages come marked, for the worker to reconcile their tasks.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, StoreError> {
        for (i, url) in (0..6).filter_map(|i| Some((i, self.url(i)?))) {
            let out = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(max.clamp(1, 10) as i32)
                .visibility_timeout(visibility.as_secs().clamp(1, 43_200) as i32)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(StoreError::backend)?;
            let mut deliveries = Vec::new();
            for m in out.messages() {
                let count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                let (Some(body), Some(handle)) = (m.body(), m.receipt_handle()) else {
                    continue;
                };
                match Self::delivery(body, count, Self::receipt(i, handle), i >= 3) {
                    Some(d) => deliveries.push(d),
                    None => {
                        // Not ours: drop it rather than let it cycle into the dead letters.
                        let _ = self
                            .client
                            .delete_message()
                            .queue_url(url)
                            .receipt_handle(handle)
                            .send()
                            .await;
                    }
                }
            }
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
        }
        Ok(Vec::new())
    }

    async fn ack(&self, receipt: &str) -> Result<(), StoreError> {
        let (url, handle) = self.split(receipt)?;
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(handle)
            .send()
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }

    async fn release(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        let (url, handle) = self.split(receipt)?;
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(handle)
            .visibility_timeout(delay.as_secs().min(43_200) as i32)
            .send()
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }

    async fn postpone(&self, delivery: &Delivery, delay: Duration) -> Result<(), StoreError> {
        self.resend_later(delivery, delay).await
    }
}

impl SqsQueues {
    /// The postponement of [`QueueConsume::postpone`]: a delayed copy, then the original gone.
    async fn resend_later(&self, delivery: &Delivery, delay: Duration) -> Result<(), StoreError> {
        self.send_after(delivery.task_id, delivery.priority, delay)
            .await?;
        self.ack(&delivery.receipt).await
    }
}

impl QueueDepths for SqsQueues {
    async fn depths(&self) -> Result<Vec<(Priority, QueueDepth)>, StoreError> {
        let mut out = Vec::with_capacity(3);
        for (i, priority) in CLASSES.into_iter().enumerate() {
            let (visible, in_flight) = self.depth(&self.queues[i]).await?;
            // Waiting or being reconciled: either way not yet explained.
            let dead = match &self.dead[i] {
                Some(url) => {
                    let (visible, in_flight) = self.depth(url).await?;
                    visible + in_flight
                }
                None => 0,
            };
            out.push((
                priority,
                QueueDepth {
                    visible,
                    in_flight,
                    dead,
                },
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_are_matched_to_their_queue_by_arn_and_receipts_round_trip() {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .build();
        let queues = SqsQueues {
            client: aws_sdk_sqs::Client::from_conf(config),
            queues: [
                "http://localhost:4566/000000000000/taogate-high".to_owned(),
                "http://localhost:4566/000000000000/taogate-normal".to_owned(),
                "http://localhost:4566/000000000000/taogate-low".to_owned(),
            ],
            dead: [None, None, None],
        };
        let receipt = queues
            .record_receipt(
                Some("arn:aws:sqs:us-east-1:000000000000:taogate-low"),
                "handle|with|bars",
            )
            .unwrap();
        assert_eq!(
            queues.split(&receipt).unwrap(),
            (queues.queues[2].as_str(), "handle|with|bars")
        );
        assert_eq!(
            queues.record_receipt(Some("arn:aws:sqs:us-east-1:000000000000:other"), "h"),
            None
        );
        assert!(queues.split("9|h").is_err());
        assert!(
            queues.split("4|h").is_err(),
            "no dead-letter queue is configured"
        );
    }
}
