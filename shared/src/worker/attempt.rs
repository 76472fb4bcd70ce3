//! One attempt: pick miners, query them all at once under one deadline, validate, score, and
//! keep the best answer.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::future::join_all;

use super::answers::{Answer, validate};
use crate::bittensor::{MinerSnapshot, SynapseRequest};
use crate::domain::{Candidate, Task, TaskInput, TaskOutput, TaskResult};
use crate::ports::{BlobStore, MinerClient, StoreError};
use crate::scoring::{Weights, consensus, speed};

/// How miners are picked and answers weighed.
#[derive(Debug, Clone)]
pub struct AttemptPolicy {
    /// Miners queried per attempt.
    pub miners_per_request: usize,
    /// The attempt's deadline for all miner answers.
    pub deadline: Duration,
    /// Score weights.
    pub weights: Weights,
    /// Our own hotkey, never queried.
    pub own_hotkey: String,
    /// Which miners to ask.
    pub selector: Arc<super::Selector>,
}

/// A failed attempt: why, and what each miner did.
#[derive(Debug)]
pub(super) enum AttemptError {
    /// No usable answer; worth retrying.
    NoAnswer {
        reason: String,
        candidates: Vec<Candidate>,
    },
    /// Infrastructure failed.
    Store(StoreError),
}

/// Builds the shared request: all inputs are base64, as the subnet expects.
pub(super) async fn build_request<B: BlobStore>(
    task: &Task,
    blobs: &B,
) -> Result<SynapseRequest, AttemptError> {
    let engine = base64::engine::general_purpose::STANDARD;
    let input_data = match &task.input {
        TaskInput::Text { text } => Bytes::from(engine.encode(text)),
        TaskInput::Audio { blob_key, .. } => {
            let audio = blobs
                .get(blob_key)
                .await
                .map_err(AttemptError::Store)?
                .ok_or_else(|| {
                    AttemptError::Store(StoreError::backend(anyhow::anyhow!(
                        "input audio {blob_key} is missing"
                    )))
                })?;
            Bytes::from(engine.encode(&audio))
        }
    };
    Ok(SynapseRequest {
        task_type: task.kind.as_str(),
        input_data,
        language: task.language.code(),
    })
}

/// Queries, validates and scores. Returns the best answer's result and every candidate.
pub(super) async fn run<C: MinerClient, B: BlobStore>(
    task: &Task,
    snapshot: Arc<MinerSnapshot>,
    client: &C,
    blobs: &B,
    policy: &AttemptPolicy,
) -> Result<(TaskResult, Vec<Candidate>), AttemptError> {
    let miners = policy
        .selector
        .select(&snapshot, &policy.own_hotkey, policy.miners_per_request);
    if miners.is_empty() {
        return Err(AttemptError::NoAnswer {
            reason: "no serving miners are available on the subnet".into(),
            candidates: Vec::new(),
        });
    }
    let request = build_request(task, blobs).await?;
    let replies = join_all(
        miners
            .iter()
            .map(|m| client.query(m, &request, policy.deadline)),
    )
    .await;

    let mut candidates = Vec::with_capacity(miners.len());
    let mut valid: Vec<(usize, Answer)> = Vec::new();
    for (i, (miner, reply)) in miners.iter().zip(&replies).enumerate() {
        let outcome = validate(reply, task.kind);
        candidates.push(Candidate {
            uid: miner.uid,
            hotkey: miner.hotkey.clone(),
            outcome: outcome
                .as_ref()
                .map_or_else(|(o, _)| *o, |_| crate::domain::Outcome::Success),
            latency_ms: reply.latency.as_millis() as u64,
            accuracy: None,
            speed: None,
            combined: None,
            error: outcome.as_ref().err().map(|(_, e)| e.clone()),
        });
        if let Ok(answer) = outcome {
            valid.push((i, answer));
        }
    }
    if valid.is_empty() {
        let summary = summarize_failures(&candidates);
        return Err(AttemptError::NoAnswer {
            reason: format!("no miner returned a valid answer ({summary})"),
            candidates,
        });
    }

    let comparables: Vec<_> = valid
        .iter()
        .map(|(_, a)| a.comparable(task.language))
        .collect();
    let accuracies = consensus(&comparables);
    for ((i, _), accuracy) in valid.iter().zip(&accuracies) {
        let c = &mut candidates[*i];
        let s = speed(replies[*i].latency, policy.deadline);
        c.accuracy = Some(*accuracy);
        c.speed = Some(s);
        c.combined = Some(policy.weights.combine(*accuracy, s));
    }
    let best = valid
        .iter()
        .map(|(i, _)| *i)
        .max_by(|a, b| {
            let (ca, cb) = (&candidates[*a], &candidates[*b]);
            ca.combined
                .unwrap_or(0.0)
                .total_cmp(&cb.combined.unwrap_or(0.0))
                .then(cb.latency_ms.cmp(&ca.latency_ms))
                .then(cb.uid.cmp(&ca.uid))
        })
        .unwrap_or(valid[0].0);
    let Some((_, answer)) = valid.into_iter().find(|(i, _)| *i == best) else {
        return Err(AttemptError::NoAnswer {
            reason: "internal: best answer vanished".into(),
            candidates,
        });
    };
    let output = match answer {
        Answer::Text(text) => TaskOutput::Text { text },
        Answer::Audio { wav, .. } => {
            let key = format!("output/{}.wav", task.id);
            let size_bytes = wav.len() as u64;
            blobs
                .put(&key, wav, "audio/wav")
                .await
                .map_err(AttemptError::Store)?;
            TaskOutput::Audio {
                blob_key: key,
                size_bytes,
            }
        }
    };
    let winner = &candidates[best];
    let result = TaskResult {
        output,
        model_used: replies[best]
            .body
            .as_ref()
            .and_then(|b| b.pipeline_model.clone()),
        processing_time: replies[best].latency.as_secs_f64(),
        accuracy_score: winner.accuracy.unwrap_or(0.0),
        speed_score: winner.speed.unwrap_or(0.0),
        combined_score: winner.combined.unwrap_or(0.0),
        miner_uid: winner.uid,
        miner_hotkey: winner.hotkey.clone(),
    };
    Ok((result, candidates))
}

fn summarize_failures(candidates: &[Candidate]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for c in candidates {
        match counts.iter_mut().find(|(o, _)| *o == c.outcome.as_str()) {
            Some((_, n)) => *n += 1,
            None => counts.push((c.outcome.as_str(), 1)),
        }
    }
    counts
        .iter()
        .map(|(o, n)| format!("{n} {o}"))
        .collect::<Vec<_>>()
        .join(", ")
}
