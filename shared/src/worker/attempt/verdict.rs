//! The verdict: which miners answered validly, how each valid answer scores, which one wins
//! (never one below the accuracy floor), and the stored result.

use std::time::Duration;

use super::gather::Gathered;
use super::{AttemptError, AttemptPolicy};
use crate::domain::BlobKey;
use crate::domain::{
    Candidate, Miner, MinerReply, Outcome, Task, TaskInput, TaskOutput, TaskResult,
};
use crate::ports::BlobPut;
use crate::scoring::{Entry, Job, Reference, Scored, Scorer};
use crate::worker::answers::Answer;

/// What the miners answered: a candidate per miner asked, and the valid answers with the index
/// of their candidate.
pub(super) struct Answers {
    replies: Vec<MinerReply>,
    candidates: Vec<Candidate>,
    /// The valid answers, each with its candidate's index.
    pub(super) valid: Vec<(usize, Answer)>,
}

/// Records every miner asked as a candidate; fails the attempt when no answer is valid.
pub(super) fn sort(pool: &[&Miner], gathered: Gathered) -> Result<Answers, AttemptError> {
    let (queried, replies, validated) = gathered;
    let mut candidates = Vec::with_capacity(queried.len());
    let mut valid: Vec<(usize, Answer)> = Vec::new();
    for (i, ((&q, reply), outcome)) in queried.iter().zip(&replies).zip(validated).enumerate() {
        let miner = pool[q];
        candidates.push(Candidate {
            uid: miner.uid,
            hotkey: miner.hotkey.clone(),
            outcome: outcome
                .as_ref()
                .map_or_else(|(o, _)| *o, |_| Outcome::Success),
            latency_ms: reply.latency.as_millis() as u64,
            accuracy: None,
            speed: None,
            combined: None,
            error: outcome.as_ref().err().map(|(_, e)| e.clone()),
            scores: None,
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
    Ok(Answers {
        replies,
        candidates,
        valid,
    })
}

/// Scores the valid answers, picks the winner and stores its output.
pub(super) async fn decide<B: BlobPut>(
    task: &Task,
    policy: &AttemptPolicy,
    mut answers: Answers,
    transcripts: Vec<Option<Result<String, String>>>,
    reference: Reference,
    blobs: &B,
) -> Result<(TaskResult, Vec<Candidate>), AttemptError> {
    let scored = score_blocking(
        task,
        policy.scorer,
        &answers.valid,
        &answers.replies,
        transcripts,
        reference,
    )
    .await;
    for ((i, _), s) in answers.valid.iter().zip(&scored) {
        let c = &mut answers.candidates[*i];
        c.accuracy = Some(s.accuracy);
        c.speed = Some(s.speed);
        c.combined = Some(s.combined);
        c.scores = Some(s.detail.clone());
    }
    let best = winner(policy, &answers, &scored)?;
    keep(task, answers, best, blobs).await
}

/// The candidate index of the winning answer, or why none may win.
fn winner(
    policy: &AttemptPolicy,
    answers: &Answers,
    scored: &[Scored],
) -> Result<usize, AttemptError> {
    let (valid, candidates) = (&answers.valid, &answers.candidates);
    let latencies: Vec<u64> = valid
        .iter()
        .map(|(i, _)| candidates[*i].latency_ms)
        .collect();
    let uids: Vec<u16> = valid.iter().map(|(i, _)| candidates[*i].uid).collect();
    if let Some(winner) = policy.scorer.best(scored, &latencies, &uids) {
        return Ok(valid[winner].0);
    }
    let (top, s) = scored
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.accuracy.total_cmp(&b.1.accuracy))
        .map(|(k, s)| (valid[k].0, s))
        .unwrap_or((valid[0].0, &scored[0]));
    let why = if s.detail.notes.is_empty() {
        String::new()
    } else {
        format!(": {}", s.detail.notes.join("; "))
    };
    Err(AttemptError::NoAnswer {
        reason: format!(
            "no answer reached the accuracy floor {:.2} (best: uid {} with {:.2}{why})",
            policy.scorer.floor, candidates[top].uid, s.accuracy
        ),
        candidates: candidates.clone(),
    })
}

/// Stores the winner's output (speech goes to the blob store) and builds the result.
async fn keep<B: BlobPut>(
    task: &Task,
    answers: Answers,
    best: usize,
    blobs: &B,
) -> Result<(TaskResult, Vec<Candidate>), AttemptError> {
    let Answers {
        replies,
        candidates,
        valid,
    } = answers;
    let Some((_, answer)) = valid.into_iter().find(|(i, _)| *i == best) else {
        return Err(AttemptError::NoAnswer {
            reason: "internal: best answer vanished".into(),
            candidates,
        });
    };
    let output = match answer {
        Answer::Text(text) => TaskOutput::Text { text },
        Answer::Audio { wav, .. } => {
            let key = BlobKey::output(task.id);
            let size_bytes = wav.len() as u64;
            blobs
                .put(key.as_str(), wav, "audio/wav")
                .await
                .map_err(AttemptError::Store)?;
            TaskOutput::Audio {
                blob_key: key.into_string(),
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

/// Scores the valid answers off the async threads: consensus over long texts is CPU work.
async fn score_blocking(
    task: &Task,
    scorer: Scorer,
    valid: &[(usize, Answer)],
    replies: &[MinerReply],
    transcripts: Vec<Option<Result<String, String>>>,
    reference: Reference,
) -> Vec<Scored> {
    let answers: Vec<crate::scoring::Answer> = valid.iter().map(|(_, a)| a.scoring()).collect();
    let latencies: Vec<Duration> = valid.iter().map(|(i, _)| replies[*i].latency).collect();
    let (kind, language) = (task.kind, task.language);
    let (text, audio_seconds) = match &task.input {
        TaskInput::Text { text } => (Some(text.clone()), None),
        TaskInput::Audio { info, .. } => (None, Some(info.duration_s)),
    };
    let work = move || {
        let job = Job {
            kind,
            language,
            text: text.as_deref(),
            audio_seconds,
        };
        let entries: Vec<Entry<'_>> = answers
            .iter()
            .zip(latencies)
            .zip(transcripts)
            .map(|((answer, latency), transcript)| Entry {
                answer,
                latency,
                transcript,
            })
            .collect();
        scorer.score(&job, &entries, &reference)
    };
    tokio::task::spawn_blocking(work)
        .await
        .expect("scoring does not panic")
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
