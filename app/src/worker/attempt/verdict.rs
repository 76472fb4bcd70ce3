//! The attempt's verdict: which miners answered validly, how each valid answer scores (off the
//! async threads), the winner the pure [`verdict`](crate::scoring::verdict) picks, and the
//! stored result.

use std::collections::HashMap;
use std::time::Duration;

use super::gather::Gathered;
use super::{AttemptError, AttemptPolicy};
use crate::answer::ValidAnswer;
use crate::domain::BlobKey;
use crate::domain::{
    Candidate, Miner, MinerHealth, MinerReply, Quorum, Task, TaskInput, TaskOutput, TaskResult,
};
use crate::ports::BlobPut;
use crate::scoring::verdict::{self, Ballot};
use crate::scoring::{Entry, Job, Reference, Scored, Scorer};

/// What the miners answered: a candidate per miner asked, and the valid answers with the index
/// of their candidate.
pub(super) struct Answers {
    replies: Vec<MinerReply>,
    candidates: Vec<Candidate>,
    /// The valid answers, each with its candidate's index.
    pub(super) valid: Vec<(usize, ValidAnswer)>,
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
        let summary = verdict::summarize_failures(&answers.candidates);
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
            self.candidates.push(verdict::candidate(
                pool[q],
                reply.latency,
                outcome.as_ref().err(),
            ));
            if let Ok(answer) = outcome {
                self.valid.push((offset + i, answer));
            }
        }
        self.replies.extend(replies);
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

    /// Whether more miners should be asked (see [`Ballot::lacks_majority`]).
    pub(super) fn lacks_majority(&self, policy: &AttemptPolicy) -> bool {
        self.ballot(&self.valid_indices())
            .lacks_majority(&policy.scorer)
    }

    fn valid_indices(&self) -> Vec<usize> {
        self.answers.valid.iter().map(|(i, _)| *i).collect()
    }

    fn ballot<'a>(&'a self, valid: &'a [usize]) -> Ballot<'a> {
        Ballot {
            candidates: &self.answers.candidates,
            valid,
            scored: &self.scored,
        }
    }
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
    let valid = weighed.valid_indices();
    let chosen = weighed
        .ballot(&valid)
        .winner(&policy.scorer, health, escalated);
    match chosen {
        Ok((best, quorum)) => keep(task, weighed.answers, best, quorum, blobs).await,
        Err(reason) => Err(AttemptError::NoAnswer {
            reason,
            candidates: weighed.answers.candidates,
        }),
    }
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
        ValidAnswer::Text(text) => TaskOutput::Text { text },
        ValidAnswer::Audio { wav, .. } => {
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
    valid: &[(usize, ValidAnswer)],
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
