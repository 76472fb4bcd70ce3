//! Fault points: named places where a test build of a function can crash, fail a store call or
//! stall, so that the fault tests can stop the real binaries at the worst moments (after the
//! claim, after the final write, before the callback, before the answer to the runtime).
//!
//! They exist only with the `faults` feature, which the function crates turn on for their own
//! tests and nothing else does; a deployed build has no points at all ([`arm`] returns `()`,
//! [`wrap`] returns the store itself and the points compile to nothing). A test arms points
//! through the `FAILPOINTS` variable of the process it starts, in the `fail` crate's syntax:
//! `worker.ended=return` crashes at the first pass, `store.end_attempt=2*off->return` fails
//! the third and later calls, `attempt.stall=return(8000)` stalls 8 s.
//!
//! The points:
//!
//! | point | kind | where |
//! |---|---|---|
//! | `submission.stored` | crash | the task is stored, its message not yet sent |
//! | `worker.claimed` | crash | the attempt is claimed, no miner asked yet |
//! | `attempt.stall` | stall | the attempt has started (a slow store or network) |
//! | `worker.ended` | crash | the final transition is written, the callback not yet sent |
//! | `worker.told` | crash | the callback is sent, its delivery not yet recorded |
//! | `lambda.answering` | crash | the batch is handled, the runtime not yet answered |
//! | `store.<method>` | error | a task-store call of [`Faulty`] fails before reaching the store |

#[cfg(feature = "faults")]
pub use armed::*;

/// Crashes the process here if `name` is armed: aborted, as a killed process stops, with no
/// cleanup and nothing more written.
#[inline]
pub fn crash(name: &str) {
    #[cfg(feature = "faults")]
    fail::fail_point!(name, |_| {
        eprintln!("fault point {name}: crashing");
        std::process::abort()
    });
    let _ = name;
}

/// Waits here for the armed number of milliseconds if `name` is armed.
pub async fn stall(name: &str) {
    #[cfg(feature = "faults")]
    if let Some(pause) = armed::stall_for(name) {
        tokio::time::sleep(pause).await;
    }
    let _ = name;
}

/// Arms the points `FAILPOINTS` names, for the life of the process. Keep the value alive.
#[cfg(not(feature = "faults"))]
pub fn arm() {}

/// The task store as given: without the `faults` feature nothing wraps it.
#[cfg(not(feature = "faults"))]
pub fn wrap<T>(store: T) -> T {
    store
}

#[cfg(feature = "faults")]
mod armed {
    use std::time::Duration;

    use crate::domain::{ClaimOutcome, GiveUp, Millis, MinerHealth, Observation, Task, TaskId};
    use crate::ports::{AttemptEnd, HealthStore, NoticeLedger, StoreError, TaskLease};

    /// Arms the points `FAILPOINTS` names, for the life of the process. Keep the value alive.
    pub fn arm() -> fail::FailScenario<'static> {
        fail::FailScenario::setup()
    }

    /// The task store, wrapped so that `store.<method>` points can fail its calls.
    pub fn wrap<T>(store: T) -> Faulty<T> {
        Faulty(store)
    }

    pub(super) fn stall_for(name: &str) -> Option<Duration> {
        fail::fail_point!(name, |ms: Option<String>| {
            ms.and_then(|ms| ms.parse().ok()).map(Duration::from_millis)
        });
        None
    }

    /// Fails with an injected store error if `name` is armed.
    fn error(name: &str) -> Result<(), StoreError> {
        fail::fail_point!(name, |_| Err(StoreError::backend(anyhow::anyhow!(
            "injected fault at {name}"
        ))));
        Ok(())
    }

    /// A task store whose calls fail where a `store.<method>` point is armed: a store that
    /// errors at the worst moment (throttled, unreachable) without changing anything.
    #[derive(Debug, Clone)]
    pub struct Faulty<T>(pub T);

    impl<T: TaskLease> TaskLease for Faulty<T> {
        async fn input_size(&self, id: TaskId) -> Result<Option<u64>, StoreError> {
            self.0.input_size(id).await
        }

        async fn claim_as(
            &self,
            id: TaskId,
            now: Millis,
            lease: Duration,
            holder: Option<String>,
        ) -> Result<ClaimOutcome, StoreError> {
            error("store.claim")?;
            self.0.claim_as(id, now, lease, holder).await
        }

        async fn give_up(
            &self,
            id: TaskId,
            reason: String,
            now: Millis,
        ) -> Result<GiveUp, StoreError> {
            error("store.give_up")?;
            self.0.give_up(id, reason, now).await
        }

        async fn end_attempt_as(
            &self,
            id: TaskId,
            attempt: u32,
            holder: Option<String>,
            end: AttemptEnd,
            now: Millis,
        ) -> Result<Task, StoreError> {
            error("store.end_attempt")?;
            self.0.end_attempt_as(id, attempt, holder, end, now).await
        }
    }

    impl<T: NoticeLedger> NoticeLedger for Faulty<T> {
        async fn note_notice(
            &self,
            id: TaskId,
            delivered: bool,
            now: Millis,
        ) -> Result<(), StoreError> {
            error("store.note_notice")?;
            self.0.note_notice(id, delivered, now).await
        }
    }

    impl<T: crate::ports::KeyLookup> crate::ports::KeyLookup for Faulty<T> {
        async fn key(
            &self,
            id: &crate::domain::KeyId,
        ) -> Result<Option<crate::domain::ApiKey>, StoreError> {
            self.0.key(id).await
        }
    }

    impl<T: HealthStore> HealthStore for Faulty<T> {
        async fn load_health(&self, hotkeys: Vec<String>) -> Result<Vec<MinerHealth>, StoreError> {
            self.0.load_health(hotkeys).await
        }

        async fn save_health(&self, records: Vec<MinerHealth>) -> Result<(), StoreError> {
            self.0.save_health(records).await
        }

        async fn observe_health(
            &self,
            observations: Vec<Observation>,
        ) -> Result<Vec<MinerHealth>, StoreError> {
            self.0.observe_health(observations).await
        }
    }
}
