//! The task queue's capabilities: send (submit), consume (worker), depths (status).

use std::future::Future;
use std::time::Duration;

use super::StoreError;
use crate::domain::{Priority, TaskId};

/// A message received from the task queue.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The task the message names.
    pub task_id: TaskId,
    /// Its priority class.
    pub priority: Priority,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
    /// The handle to acknowledge or release this delivery.
    pub receipt: String,
    /// Whether it comes from the dead letters: it was delivered the queue's maximum number of
    /// times and no attempt ended, so the worker reconciles the task instead of attempting it.
    pub dead_letter: bool,
}

/// Queue depth per priority class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct QueueDepth {
    /// Messages waiting.
    pub visible: u64,
    /// Messages received and not yet acknowledged.
    pub in_flight: u64,
    /// Messages in the dead-letter area.
    pub dead: u64,
}

/// Sends to the priority-split task queue (`sqs:SendMessage`; SQS: one queue per class, each
/// with a dead-letter queue).
pub trait QueueSend: Send + Sync + 'static {
    /// Queues a task.
    fn send(
        &self,
        id: TaskId,
        priority: Priority,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Takes messages off the queue and settles them (`sqs:ReceiveMessage`, `DeleteMessage`,
/// `ChangeMessageVisibility`): the worker's event source, or the local drain loop.
pub trait QueueConsume: Send + Sync + 'static {
    /// Takes up to `max` messages, most urgent class first. Each becomes invisible for
    /// `visibility`; a message already received `max_receives` times goes to the dead letters
    /// instead.
    fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;
    /// Deletes a handled message.
    fn ack(&self, receipt: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Makes a message visible again after `delay`.
    fn release(
        &self,
        receipt: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes a message visible again after `delay` without counting this delivery toward the
    /// dead-letter limit (on SQS, whose receive count cannot be lowered: a delayed copy is sent
    /// and the original deleted).
    fn postpone(
        &self,
        delivery: &Delivery,
        delay: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Resolves when a message may have arrived since this was called; the drain loop calls it
    /// before a receive and waits on it (besides a short poll) when the receive was empty. The
    /// default never resolves: the loop polls.
    fn arrival(&self) -> impl Future<Output = ()> + Send + 'static {
        std::future::pending()
    }
}

/// Reads the queue depths (`sqs:GetQueueAttributes`), for health reporting.
pub trait QueueDepths: Send + Sync + 'static {
    /// Depth per class, most urgent first.
    fn depths(
        &self,
    ) -> impl Future<Output = Result<Vec<(Priority, QueueDepth)>, StoreError>> + Send;
}
