//! A process-wide budget of bytes, counted in KiB: what holds a share waits for room, and gives
//! it back when the share is dropped. Miner answers (`MAX_ANSWER_MEMORY`) and the task inputs
//! attempts send to miners (`MAX_INPUT_MEMORY`) each have one, so that the worker's memory is
//! bounded by its settings, not by how many records or answers arrive at once.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A budget of bytes shared by clones.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
    /// The whole budget, in KiB.
    total_kib: usize,
}

impl ByteBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        let total_kib = (bytes / 1024).min(Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(total_kib)),
            total_kib,
        }
    }

    /// No budget beyond what each holder is allowed on its own.
    pub fn unbounded() -> Self {
        Self::new(usize::MAX)
    }

    /// Bytes not held.
    pub fn available(&self) -> usize {
        self.permits.available_permits().saturating_mul(1024)
    }

    /// A share of `bytes`, once there is room; `None` if it can never fit.
    pub async fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024)).ok()?;
        self.permits.clone().acquire_many_owned(kib).await.ok()
    }

    /// A share of `bytes`, or of the whole budget when `bytes` is more: what is larger than
    /// the budget waits until it has the budget to itself.
    pub async fn reserve_up_to(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        self.reserve(bytes.min(self.total_kib.saturating_mul(1024)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_share_waits_for_room_and_a_share_larger_than_the_budget_takes_all_of_it() {
        let budget = ByteBudget::new(100 * 1024);
        let first = budget.reserve(60 * 1024).await.unwrap();
        assert_eq!(budget.available(), 40 * 1024);
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            budget.reserve(60 * 1024),
        )
        .await;
        assert!(waiting.is_err(), "60 KiB does not fit beside 60 KiB");
        drop(first);
        let whole = budget.reserve_up_to(1024 * 1024).await.unwrap();
        assert_eq!(budget.available(), 0);
        drop(whole);
        assert_eq!(budget.available(), 100 * 1024);
    }
}
