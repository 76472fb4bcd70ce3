//! One attempt: pick miners, query them all at once under one deadline, validate, score, and
//! keep the best answer. Its steps, in order:
//! - `request`: the shared synapse request, and the reference asked beside the miners;
//! - `gather`: querying, hedging and validating as answers arrive;
//! - `verdict`: scoring the valid answers, choosing the winner and storing its output.

mod gather;
mod request;
mod verdict;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::WorkerPorts;
use crate::config::{ScoringMode, SelectionSettings};
use crate::domain::{
    AnswerBudget, Candidate, MinerHealth, MinerSnapshot, Task, TaskResult, now_millis,
};
use crate::ports::{BlobGet, BlobPut, MinerClient, ReferenceEndpoints, StoreError};
use crate::scoring::Scorer;

/// How miners are picked and answers weighed.
#[derive(Debug, Clone)]
pub struct AttemptPolicy {
    /// Miners queried per attempt.
    pub miners_per_request: usize,
    /// Valid answers after which the attempt stops waiting for the rest.
    pub required_answers: usize,
    /// Share of the deadline after which, short of `required_answers`, extra miners are asked.
    pub hedge_after: f64,
    /// Extra miners a hedge asks.
    pub hedge_miners: usize,
    /// Further miners asked when the valid answers have no majority.
    pub escalation_miners: usize,
    /// The attempt's deadline for all miner answers.
    pub deadline: Duration,
    /// Weights, accuracy floor, summary compression range, scoring mode.
    pub scorer: Scorer,
    /// Our own hotkey, never queried.
    pub own_hotkey: String,
    /// Which miners to ask.
    pub selector: Arc<super::Selector>,
    /// The process's budget for the inputs attempts hold (`MAX_INPUT_MEMORY`), taken by the
    /// worker before it claims a task.
    pub inputs: crate::memory::ByteBudget,
}

impl AttemptPolicy {
    /// The policy `selection` configures, weighing answers with `scorer`, never asking
    /// `own_hotkey`, holding inputs within `inputs`.
    pub fn new(
        selection: &SelectionSettings,
        scorer: Scorer,
        own_hotkey: &str,
        inputs: crate::memory::ByteBudget,
    ) -> Self {
        Self {
            miners_per_request: selection.miners_per_request,
            required_answers: selection.required_answers.min(selection.miners_per_request),
            hedge_after: selection.hedge_after,
            hedge_miners: selection.hedge_miners,
            escalation_miners: selection.escalation_miners,
            deadline: selection.deadline,
            scorer,
            own_hotkey: own_hotkey.to_owned(),
            selector: Arc::new(super::Selector::from_settings(selection)),
            inputs,
        }
    }

    /// Whether the scoring mode asks the reference endpoints.
    fn uses_reference(&self) -> bool {
        self.scorer.mode.uses_reference()
    }

    /// Whether a missing reference is a failure to report (mode `reference`).
    fn requires_reference(&self) -> bool {
        self.scorer.mode == ScoringMode::Reference
    }
}

/// A failed attempt: why, and what each miner did.
#[derive(Debug)]
pub enum AttemptError {
    /// No usable answer; worth retrying.
    NoAnswer {
        /// Why no answer was kept.
        reason: String,
        /// What each miner asked did.
        candidates: Vec<Candidate>,
    },
    /// Infrastructure failed.
    Store(StoreError),
}

/// Queries, validates and scores. Returns the best answer's result and every candidate.
pub(super) async fn run<T, B, D, C, R, N>(
    task: &Task,
    snapshot: Arc<MinerSnapshot>,
    ports: &WorkerPorts<T, B, D, C, R, N>,
    policy: &AttemptPolicy,
    health: &HashMap<String, MinerHealth>,
) -> Result<(TaskResult, Vec<Candidate>, std::time::Instant), AttemptError>
where
    B: BlobGet + BlobPut,
    C: MinerClient,
    R: ReferenceEndpoints,
{
    let pool = policy.selector.select(
        &snapshot,
        &policy.own_hotkey,
        policy.miners_per_request + policy.hedge_miners + policy.escalation_miners,
        health,
        now_millis(),
    );
    if pool.is_empty() {
        return Err(AttemptError::NoAnswer {
            reason: "no serving miners are available on the subnet".into(),
            candidates: Vec::new(),
        });
    }
    crate::faults::stall("attempt.stall").await;
    let budget = AnswerBudget::for_task(task);
    let (request, input) = request::build(task, &budget, &ports.blobs).await?;
    let reference = policy.uses_reference().then_some(&ports.reference);
    let first = pool.len().min(policy.miners_per_request);
    let started = tokio::time::Instant::now();
    // The reference is asked at the same time as the miners, under the same deadline.
    let (gathered, task_reference) = tokio::join!(
        gather::gather(&pool, first, &request, &ports.client, policy, &budget),
        request::task_reference(reference, policy, task, &input)
    );
    // When the last answer this attempt waited for came in (for `timings::SETTLE`).
    let mut answered = std::time::Instant::now();
    crate::timings::GATHER.record(started.elapsed());
    // The next miner of the pool not yet asked.
    let mut next = gathered.0.iter().max().map_or(0, |&i| i + 1);
    let mut answers = verdict::sort(&pool, gathered)?;
    let mut escalated = 0usize;
    loop {
        let transcripts =
            request::transcripts(reference, policy, task, &answers.valid, started).await;
        let weighed =
            verdict::weigh(task, policy, answers, transcripts, task_reference.clone()).await;
        // Without a majority, ask the next miners of the pool (within the deadline) and weigh
        // everything again.
        let left = policy.deadline.saturating_sub(started.elapsed());
        let more = (policy.escalation_miners - escalated).min(pool.len() - next);
        if more == 0 || left < ESCALATION_MIN_TIME || !weighed.lacks_majority(policy) {
            return verdict::decide(
                task,
                policy,
                weighed,
                health,
                escalated as u32,
                &ports.blobs,
            )
            .await
            .map(|(result, candidates)| (result, candidates, answered));
        }
        tracing::info!(
            more,
            "the valid answers have no majority; asking more miners"
        );
        let reserves = &pool[next..next + more];
        let escalation = AttemptPolicy {
            required_answers: more,
            hedge_miners: 0,
            deadline: left,
            ..policy.clone()
        };
        let (asked, replies, validated) = gather::gather(
            reserves,
            more,
            &request,
            &ports.client,
            &escalation,
            &budget,
        )
        .await;
        answered = std::time::Instant::now();
        let asked = asked.into_iter().map(|i| i + next).collect();
        answers = weighed.into_answers();
        answers.add(&pool, (asked, replies, validated));
        next += more;
        escalated += more;
    }
}

/// What an attempt holds of an input of `size` bytes: the bytes and their base64 form.
pub(super) fn input_share(size: u64) -> usize {
    let raw = usize::try_from(size).unwrap_or(usize::MAX);
    raw.saturating_add(raw.div_ceil(3).saturating_mul(4))
}

/// Less of the deadline left than this, an attempt decides with the answers it has.
const ESCALATION_MIN_TIME: Duration = Duration::from_millis(500);
