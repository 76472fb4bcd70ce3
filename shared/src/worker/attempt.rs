//! One attempt: pick miners, query them all at once under one deadline, validate, score, and
//! keep the best answer.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;

use super::answers::{Answer, validate, validate_off_thread};
use crate::bittensor::{MinerReply, MinerSnapshot, SynapseRequest};
use crate::domain::{Candidate, ServiceKind, Task, TaskInput, TaskOutput, TaskResult};
use crate::ports::{BlobStore, MinerClient, StoreError};
use crate::scoring::reference::{Input, ReferenceClient};
use crate::scoring::{Entry, Job, Mode, Reference, Scorer};

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
    /// The attempt's deadline for all miner answers.
    pub deadline: Duration,
    /// Weights, accuracy floor, summary compression range.
    pub scorer: Scorer,
    /// `SCORING_MODE`.
    pub scoring_mode: Mode,
    /// The reference endpoints, when configured.
    pub reference: Option<Arc<ReferenceClient>>,
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

/// Builds the shared request (all inputs are base64, as the subnet expects) and returns the
/// raw input for the reference endpoints.
pub(super) async fn build_request<B: BlobStore>(
    task: &Task,
    blobs: &B,
) -> Result<(SynapseRequest, Input), AttemptError> {
    let engine = base64::engine::general_purpose::STANDARD;
    let (input_data, input) = match &task.input {
        TaskInput::Text { text } => (Bytes::from(engine.encode(text)), Input::Text(text.clone())),
        TaskInput::Audio {
            blob_key, filename, ..
        } => {
            let audio = blobs
                .get(blob_key)
                .await
                .map_err(AttemptError::Store)?
                .ok_or_else(|| {
                    AttemptError::Store(StoreError::backend(anyhow::anyhow!(
                        "input audio {blob_key} is missing"
                    )))
                })?;
            let encoded = Bytes::from(engine.encode(&audio));
            let filename = filename.clone().unwrap_or_else(|| "audio.wav".into());
            (
                encoded,
                Input::Audio {
                    bytes: audio,
                    filename,
                },
            )
        }
    };
    Ok((
        SynapseRequest::new(task.kind.as_str(), input_data, task.language.code()),
        input,
    ))
}

/// Queries, validates and scores. Returns the best answer's result and every candidate.
pub(super) async fn run<C: MinerClient, B: BlobStore>(
    task: &Task,
    snapshot: Arc<MinerSnapshot>,
    client: &C,
    blobs: &B,
    policy: &AttemptPolicy,
    health: &std::collections::HashMap<String, crate::domain::MinerHealth>,
) -> Result<(TaskResult, Vec<Candidate>), AttemptError> {
    let pool = policy.selector.select(
        &snapshot,
        &policy.own_hotkey,
        policy.miners_per_request + policy.hedge_miners,
        health,
        crate::domain::now_millis(),
    );
    if pool.is_empty() {
        return Err(AttemptError::NoAnswer {
            reason: "no serving miners are available on the subnet".into(),
            candidates: Vec::new(),
        });
    }
    let (request, input) = build_request(task, blobs).await?;
    let reference = match (&policy.reference, policy.scoring_mode) {
        (Some(client), Mode::Reference | Mode::Auto) => Some(client.clone()),
        _ => None,
    };
    let first = pool.len().min(policy.miners_per_request);
    let started = tokio::time::Instant::now();
    // The reference is asked at the same time as the miners, under the same deadline.
    let task_reference = async {
        match &reference {
            Some(client) if client.covers(task.kind) => Reference::from(
                client
                    .reference(task.kind, task.language, &input, policy.deadline)
                    .await,
            ),
            // Asked for a reference that is not configured for this service: say so.
            Some(_) if policy.scoring_mode == Mode::Reference && task.kind != ServiceKind::Tts => {
                Reference::Failed(format!("no reference endpoint serves {}", task.kind))
            }
            _ => Reference::None,
        }
    };
    let ((queried, replies, validated), task_reference) = tokio::join!(
        gather(&pool, first, &request, client, policy, task.kind),
        task_reference
    );
    let miners: Vec<&crate::bittensor::Miner> = queried.iter().map(|&i| pool[i]).collect();

    let mut candidates = Vec::with_capacity(miners.len());
    let mut valid: Vec<(usize, Answer)> = Vec::new();
    for (i, ((miner, reply), outcome)) in miners.iter().zip(&replies).zip(validated).enumerate() {
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

    // TTS intelligibility: the recognizer hears every answer, within what is left of the
    // deadline (at least a quarter of it, which the lease leaves room for).
    let transcripts: Vec<Option<Result<String, String>>> = match &reference {
        Some(client) if task.kind == ServiceKind::Tts && client.hears_speech() => {
            let left = policy
                .deadline
                .saturating_sub(started.elapsed())
                .max(policy.deadline / 4);
            futures::future::join_all(valid.iter().map(|(_, a)| async move {
                match a {
                    Answer::Audio { wav, .. } => Some(
                        client
                            .transcribe(wav.clone(), "answer.wav", task.language, left)
                            .await,
                    ),
                    Answer::Text(_) => None,
                }
            }))
            .await
        }
        _ => vec![None; valid.len()],
    };

    let scored = score_blocking(
        task,
        policy.scorer,
        &valid,
        &replies,
        transcripts,
        task_reference,
    )
    .await;
    for ((i, _), s) in valid.iter().zip(&scored) {
        let c = &mut candidates[*i];
        c.accuracy = Some(s.accuracy);
        c.speed = Some(s.speed);
        c.combined = Some(s.combined);
        c.scores = Some(s.detail.clone());
    }
    let latencies: Vec<u64> = valid
        .iter()
        .map(|(i, _)| candidates[*i].latency_ms)
        .collect();
    let uids: Vec<u16> = valid.iter().map(|(i, _)| candidates[*i].uid).collect();
    let Some(winner) = policy.scorer.best(&scored, &latencies, &uids) else {
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
        return Err(AttemptError::NoAnswer {
            reason: format!(
                "no answer reached the accuracy floor {:.2} (best: uid {} with {:.2}{why})",
                policy.scorer.floor, candidates[top].uid, s.accuracy
            ),
            candidates,
        });
    };
    let best = valid[winner].0;
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

/// Scores the valid answers off the async threads: consensus over long texts is CPU work.
async fn score_blocking(
    task: &Task,
    scorer: Scorer,
    valid: &[(usize, Answer)],
    replies: &[MinerReply],
    transcripts: Vec<Option<Result<String, String>>>,
    reference: Reference,
) -> Vec<crate::scoring::Scored> {
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

/// An answer checked against the service's format.
type Validated = Result<Answer, (crate::domain::Outcome, String)>;

/// Queries the first `first` miners of `pool` at once, validating each answer as it arrives.
/// At `hedge_after` of the deadline, short of `required_answers` valid answers, the next
/// `hedge_miners` of the pool are asked too (with what is left of the deadline). Once
/// `required_answers` valid answers are in, the rest are not waited for (`cancelled`).
/// Returns, in query order: the pool indices asked, their replies and their validation.
async fn gather<C: MinerClient>(
    pool: &[&crate::bittensor::Miner],
    first: usize,
    request: &SynapseRequest,
    client: &C,
    policy: &AttemptPolicy,
    kind: crate::domain::ServiceKind,
) -> (Vec<usize>, Vec<MinerReply>, Vec<Validated>) {
    use futures::StreamExt as _;
    use futures::stream::FuturesUnordered;

    let started = tokio::time::Instant::now();
    let hedge_at = started + policy.deadline.mul_f64(policy.hedge_after.clamp(0.0, 1.0));
    let ask = |i: usize, deadline: Duration| {
        let miner = pool[i];
        async move { (i, client.query(miner, request, deadline).await) }
    };
    let mut asked: Vec<usize> = (0..first).collect();
    let mut pending: FuturesUnordered<_> = asked.iter().map(|&i| ask(i, policy.deadline)).collect();
    let mut done: Vec<Option<(MinerReply, Validated)>> = vec![None; pool.len()];
    let mut valid = 0usize;
    let mut hedged = policy.hedge_miners == 0 || first >= pool.len();
    while !pending.is_empty() && valid < policy.required_answers {
        let hedge = async {
            if hedged {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep_until(hedge_at).await;
        };
        tokio::select! {
            Some((i, reply)) = pending.next() => {
                let checked = validate_off_thread(&reply, kind).await;
                valid += usize::from(checked.is_ok());
                done[i] = Some((reply, checked));
            }
            () = hedge => {
                hedged = true;
                let left = policy.deadline.saturating_sub(started.elapsed());
                let extra: Vec<usize> = (first..pool.len()).take(policy.hedge_miners).collect();
                tracing::info!(valid, extra = extra.len(), "few valid answers so far; hedging with more miners");
                for i in extra {
                    asked.push(i);
                    pending.push(ask(i, left));
                }
            }
        }
    }
    drop(pending);
    let mut replies = Vec::with_capacity(asked.len());
    let mut validated = Vec::with_capacity(asked.len());
    for &i in &asked {
        let (reply, checked) = done[i].take().unwrap_or_else(|| {
            let reply = MinerReply::failed(
                crate::domain::Outcome::Cancelled,
                started.elapsed(),
                "not waited for: enough valid answers were already in",
            );
            let checked = validate(&reply, kind);
            (reply, checked)
        });
        replies.push(reply);
        validated.push(checked);
    }
    (asked, replies, validated)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::bittensor::{Miner, SynapseAnswer};
    use crate::domain::{Outcome, ServiceKind};

    /// A scripted miner client (a unit-test double): the miner on port `p` answers after
    /// `delays[p]` ms with a valid summary.
    struct Scripted {
        delays: Vec<u64>,
    }

    impl MinerClient for Scripted {
        async fn query(
            &self,
            miner: &Miner,
            _request: &SynapseRequest,
            deadline: Duration,
        ) -> MinerReply {
            let delay = Duration::from_millis(self.delays[usize::from(miner.port)]);
            if delay > deadline {
                tokio::time::sleep(deadline).await;
                return MinerReply::failed(Outcome::Timeout, deadline, "no answer");
            }
            tokio::time::sleep(delay).await;
            MinerReply {
                outcome: Outcome::Success,
                latency: delay,
                body: Some(Arc::new(SynapseAnswer {
                    output_data: Some("YSBzaG9ydCBzdW1tYXJ5".into()),
                    ..Default::default()
                })),
                error: None,
            }
        }
    }

    fn pool(n: u16) -> Vec<Miner> {
        (0..n)
            .map(|i| Miner {
                uid: i,
                hotkey: format!("hk{i}"),
                ip: "203.0.113.1".parse().unwrap(),
                port: i,
                stake: 1.0,
                incentive: 0.0,
                chain: None,
            })
            .collect()
    }

    fn policy(first: usize, required: usize, hedge: usize, hedge_after: f64) -> AttemptPolicy {
        AttemptPolicy {
            miners_per_request: first,
            required_answers: required,
            hedge_after,
            hedge_miners: hedge,
            deadline: Duration::from_secs(2),
            scorer: crate::scoring::Scorer {
                weights: crate::scoring::Weights {
                    accuracy: 0.7,
                    speed: 0.3,
                },
                floor: 0.3,
                compression: (0.05, 0.6),
                deadline: Duration::from_secs(2),
            },
            scoring_mode: Mode::Consensus,
            reference: None,
            own_hotkey: String::new(),
            selector: Arc::new(super::super::Selector::new(
                super::super::SelectionPolicy::Stake,
                0.0,
            )),
        }
    }

    fn request() -> SynapseRequest {
        SynapseRequest::new("summarization", Bytes::from_static(b"aGk="), "en")
    }

    #[tokio::test(start_paused = true)]
    async fn a_hedge_asks_more_miners_when_answers_are_late_and_stops_when_enough_are_in() {
        let miners = pool(4);
        let refs: Vec<&Miner> = miners.iter().collect();
        // 0 answers fast, 1 hangs; the hedge (after 0.4 s) asks 2 (fast) and 3 (hangs).
        let client = Scripted {
            delays: vec![10, 60_000, 10, 60_000],
        };
        let started = tokio::time::Instant::now();
        let (asked, replies, validated) = gather(
            &refs,
            2,
            &request(),
            &client,
            &policy(2, 2, 2, 0.2),
            ServiceKind::Summarization,
        )
        .await;
        assert_eq!(asked, vec![0, 1, 2, 3]);
        let outcomes: Vec<Outcome> = replies.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            vec![
                Outcome::Success,
                Outcome::Cancelled,
                Outcome::Success,
                Outcome::Cancelled
            ]
        );
        assert_eq!(validated.iter().filter(|v| v.is_ok()).count(), 2);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_millis(500),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_need_no_hedge_is_sent_and_every_answer_is_awaited() {
        let miners = pool(4);
        let refs: Vec<&Miner> = miners.iter().collect();
        let client = Scripted {
            delays: vec![10, 900, 10, 10],
        };
        let (asked, replies, _) = gather(
            &refs,
            2,
            &request(),
            &client,
            &policy(2, 2, 2, 0.9),
            ServiceKind::Summarization,
        )
        .await;
        // Both answered before the hedge point (1.8 s): nobody else is asked.
        assert_eq!(asked, vec![0, 1]);
        assert!(replies.iter().all(|r| r.outcome == Outcome::Success));
    }
}
