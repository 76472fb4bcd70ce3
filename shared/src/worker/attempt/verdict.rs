//! The verdict: which miners answered validly, how each valid answer scores, which one wins
//! (never one below the accuracy floor), and the stored result.

use std::collections::HashMap;
use std::time::Duration;

use super::gather::Gathered;
use super::{AttemptError, AttemptPolicy};
use crate::domain::BlobKey;
use crate::domain::{
    Candidate, Confidence, Miner, MinerHealth, MinerReply, Outcome, Quorum, Task, TaskInput,
    TaskOutput, TaskResult,
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
    let mut answers = Answers {
        replies: Vec::new(),
        candidates: Vec::new(),
        valid: Vec::new(),
    };
    answers.add(pool, gathered);
    if answers.valid.is_empty() {
        let summary = summarize_failures(&answers.candidates);
        return Err(AttemptError::NoAnswer {
            reason: format!("no miner returned a valid answer ({summary})"),
            candidates: answers.candidates,
        });
    }
    Ok(answers)
}

impl Answers {
    /// Adds the miners of `gathered` (indices into `pool`) as candidates, and their valid
    /// answers.
    pub(super) fn add(&mut self, pool: &[&Miner], gathered: Gathered) {
        let (queried, replies, validated) = gathered;
        let offset = self.candidates.len();
        for (i, ((&q, reply), outcome)) in queried.iter().zip(&replies).zip(validated).enumerate() {
            self.candidates.push(candidate(pool[q], reply, &outcome));
            if let Ok(answer) = outcome {
                self.valid.push((offset + i, answer));
            }
        }
        self.replies.extend(replies);
    }
}

/// The candidate record of `miner`'s reply and its validation.
fn candidate(
    miner: &Miner,
    reply: &MinerReply,
    outcome: &Result<Answer, (Outcome, String)>,
) -> Candidate {
    Candidate {
        uid: miner.uid,
        hotkey: miner.hotkey.clone(),
        outcome: outcome
            .as_ref()
            .map_or_else(|(o, _)| *o, |_| Outcome::Success),
        latency_ms: reply.latency.as_millis() as u64,
        accuracy: None,
        speed: None,
        combined: None,
        error: outcome.as_ref().err().map(|(_, e)| brief(e)),
        scores: None,
    }
}

/// The valid answers, scored.
pub(super) struct Weighed {
    answers: Answers,
    scored: Vec<Scored>,
}

/// Scores the valid answers and records the scores on their candidates.
pub(super) async fn weigh(
    task: &Task,
    policy: &AttemptPolicy,
    mut answers: Answers,
    transcripts: Vec<Option<Result<String, String>>>,
    reference: Reference,
) -> Weighed {
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
    Weighed { answers, scored }
}

impl Weighed {
    /// The answers, to add more to and weigh again.
    pub(super) fn into_answers(self) -> Answers {
        self.answers
    }

    /// Whether more miners should be asked: the answers were weighed against each other (or
    /// one stood alone) and the would-be winner has no majority behind it.
    pub(super) fn lacks_majority(&self, policy: &AttemptPolicy) -> bool {
        match self.ranked(policy) {
            Some(best) => {
                let detail = &self.scored[best].detail;
                matches!(detail.basis.as_str(), "consensus" | "single")
                    && !majority(self.supporting(best), self.scored.len())
            }
            // Nobody reached the floor: more answers may change that.
            None => true,
        }
    }

    /// The index (among the valid answers) of the best answer at or above the floor.
    fn ranked(&self, policy: &AttemptPolicy) -> Option<usize> {
        let (valid, candidates) = (&self.answers.valid, &self.answers.candidates);
        let latencies: Vec<u64> = valid
            .iter()
            .map(|(i, _)| candidates[*i].latency_ms)
            .collect();
        let uids: Vec<u16> = valid.iter().map(|(i, _)| candidates[*i].uid).collect();
        policy.scorer.best(&self.scored, &latencies, &uids)
    }

    /// How many valid answers agree with answer `k`, itself included.
    fn supporting(&self, k: usize) -> u32 {
        1 + self.scored[k].detail.support.unwrap_or(0)
    }

    /// Without a majority, the answer whose miner has the best track record: among the
    /// answers at or above the floor, the best stored record (mean score times success rate;
    /// unknown miners rank last), then the highest accuracy (measured only against answers
    /// that disagree, so it comes second), then the lowest latency.
    fn by_track_record(
        &self,
        policy: &AttemptPolicy,
        health: &HashMap<String, MinerHealth>,
    ) -> Option<usize> {
        let (valid, candidates) = (&self.answers.valid, &self.answers.candidates);
        let record = |k: usize| {
            health
                .get(&candidates[valid[k].0].hotkey)
                .filter(|h| h.samples > 0)
                .map_or(-1.0, |h| h.score.unwrap_or(0.0) * h.success_rate)
        };
        (0..self.scored.len())
            .filter(|&k| self.scored[k].accuracy >= policy.scorer.floor)
            .max_by(|&a, &b| {
                let (x, y) = (self.scored[a].accuracy, self.scored[b].accuracy);
                let by_accuracy = if (x - y).abs() <= 1e-9 {
                    std::cmp::Ordering::Equal
                } else {
                    x.total_cmp(&y)
                };
                record(a)
                    .total_cmp(&record(b))
                    .then(by_accuracy)
                    .then(
                        candidates[valid[b].0]
                            .latency_ms
                            .cmp(&candidates[valid[a].0].latency_ms),
                    )
                    .then(candidates[valid[b].0].uid.cmp(&candidates[valid[a].0].uid))
            })
    }
}

/// Whether `supporting` of `valid` answers are a majority: at least two, and more than half.
fn majority(supporting: u32, valid: usize) -> bool {
    supporting >= 2 && 2 * supporting as usize > valid
}

/// Picks the winner of the weighed answers, says how sure it is, and stores its output.
/// `escalated` miners were asked beyond the first selection.
pub(super) async fn decide<B: BlobPut>(
    task: &Task,
    policy: &AttemptPolicy,
    weighed: Weighed,
    health: &HashMap<String, MinerHealth>,
    escalated: u32,
    blobs: &B,
) -> Result<(TaskResult, Vec<Candidate>), AttemptError> {
    let (best, quorum) = winner(policy, &weighed, health, escalated)?;
    keep(task, weighed.answers, best, quorum, blobs).await
}

/// The candidate index of the winning answer and its quorum, or why none may win.
fn winner(
    policy: &AttemptPolicy,
    weighed: &Weighed,
    health: &HashMap<String, MinerHealth>,
    escalated: u32,
) -> Result<(usize, Quorum), AttemptError> {
    let (valid, candidates, scored) = (
        &weighed.answers.valid,
        &weighed.answers.candidates,
        &weighed.scored,
    );
    if let Some(ranked) = weighed.ranked(policy) {
        let count = scored.len();
        let basis = scored[ranked].detail.basis.as_str();
        let quorum = |k: usize, confidence, note: Option<String>| Quorum {
            valid_answers: count as u32,
            supporting: weighed.supporting(k),
            confidence,
            escalated,
            note,
        };
        let chosen = match basis {
            "consensus" | "single" if !majority(weighed.supporting(ranked), count) => {
                let k = weighed.by_track_record(policy, health).unwrap_or(ranked);
                let note = if count == 1 {
                    "one valid answer: nothing to compare it with".to_owned()
                } else {
                    format!(
                        "no majority among {count} valid answers; chosen by the miners' track record"
                    )
                };
                (k, quorum(k, Confidence::Low, Some(note)))
            }
            "signal" => (
                ranked,
                quorum(
                    ranked,
                    Confidence::Low,
                    Some("speech judged by its signal only: no recognizer is configured".into()),
                ),
            ),
            _ => (ranked, quorum(ranked, Confidence::High, None)),
        };
        return Ok((valid[chosen.0].0, chosen.1));
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
    quorum: Quorum,
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
        quorum: Some(quorum),
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

/// The most of a miner's error message kept on its candidate: what a miner writes in its
/// refusal is not allowed to fill task views.
const ERROR_CHARS: usize = 500;

fn brief(error: &str) -> String {
    match error.char_indices().nth(ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &error[..cut]),
        None => error.to_owned(),
    }
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
