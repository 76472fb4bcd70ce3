//! Querying: every chosen miner at once under one deadline, each answer validated as it
//! arrives, more miners asked when answers are late, and no more waiting once enough are in.

use std::time::Duration;

use super::AttemptPolicy;
use crate::answer::{ValidAnswer, validate};
use crate::domain::{AnswerBudget, Miner, MinerReply, Outcome, SynapseRequest};
use crate::ports::MinerClient;

/// In query order: the pool indices asked, their replies and their validation.
pub(super) type Gathered = (Vec<usize>, Vec<MinerReply>, Vec<Validated>);

/// An answer checked against the service's format.
pub(super) type Validated = Result<ValidAnswer, (Outcome, String)>;

/// Queries the first `first` miners of `pool` at once, validating each answer against `budget`
/// as it arrives, beside the other queries (one answer being checked never keeps the others
/// from being read). At `hedge_after` of the deadline, short of `required_answers` valid
/// answers, the next `hedge_miners` of the pool are asked too (with what is left of the
/// deadline). Once `required_answers` valid answers are in, the rest are not waited for
/// (`cancelled`); at the deadline, an answer still being read or checked is a `timeout`.
/// Returns, in query order: the pool indices asked, their replies and their validation.
pub(super) async fn gather<C: MinerClient>(
    pool: &[&Miner],
    first: usize,
    request: &SynapseRequest,
    client: &C,
    policy: &AttemptPolicy,
    budget: &AnswerBudget,
) -> Gathered {
    use futures::StreamExt as _;
    use futures::stream::FuturesUnordered;

    let started = tokio::time::Instant::now();
    let hedge_at = started + policy.deadline.mul_f64(policy.hedge_after.clamp(0.0, 1.0));
    let end = started + policy.deadline;
    let ask = |i: usize, deadline: Duration| {
        let miner = pool[i];
        async move {
            let reply = client.query(miner, request, deadline).await;
            let checked = validate_off_thread(&reply, budget).await;
            (i, reply, checked)
        }
    };
    let mut asked: Vec<usize> = (0..first).collect();
    let mut pending: FuturesUnordered<_> = asked.iter().map(|&i| ask(i, policy.deadline)).collect();
    let mut done: Vec<Option<(MinerReply, Validated)>> = vec![None; pool.len()];
    let mut valid = 0usize;
    let mut hedged = policy.hedge_miners == 0 || first >= pool.len();
    let mut late = false;
    while !pending.is_empty() && valid < policy.required_answers {
        let hedge = async {
            if hedged {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep_until(hedge_at).await;
        };
        tokio::select! {
            Some((i, reply, checked)) = pending.next() => {
                valid += usize::from(checked.is_ok());
                done[i] = Some((reply, checked));
            }
            () = tokio::time::sleep_until(end) => {
                late = true;
                break;
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
            let reply = if late {
                MinerReply::failed(
                    Outcome::Timeout,
                    started.elapsed(),
                    "no checked answer before the deadline",
                )
            } else {
                MinerReply::failed(
                    Outcome::Cancelled,
                    started.elapsed(),
                    "not waited for: enough valid answers were already in",
                )
            };
            let checked = validate(&reply, budget);
            (reply, checked)
        });
        replies.push(reply);
        validated.push(checked);
    }
    (asked, replies, validated)
}

/// [`validate`], on a blocking thread when the answer is audio: decoding a long WAV in full is
/// CPU work that must not stall the other miners' replies.
async fn validate_off_thread(
    reply: &MinerReply,
    budget: &AnswerBudget,
) -> Result<ValidAnswer, (Outcome, String)> {
    if !budget.kind.produces_audio() || reply.outcome != Outcome::Success {
        return validate(reply, budget);
    }
    let (owned, budget) = (reply.clone(), *budget);
    tokio::task::spawn_blocking(move || validate(&owned, &budget))
        .await
        .unwrap_or_else(|_| {
            Err((
                Outcome::InvalidAnswer,
                "output_data could not be decoded".to_owned(),
            ))
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::config::{ScoringMode, SelectionPolicy};
    use crate::domain::SynapseAnswer;
    use crate::worker::AttemptPolicy;

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
                memory: None,
            }
        }
    }

    fn pool(n: u16) -> Vec<Miner> {
        (0..n)
            .map(|i| Miner {
                uid: i,
                hotkey: format!("hk{i}"),
                ip: "1.2.3.1".parse().unwrap(),
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
            escalation_miners: 0,
            deadline: Duration::from_secs(2),
            scorer: crate::scoring::Scorer {
                weights: crate::scoring::Weights {
                    accuracy: 0.7,
                    speed: 0.3,
                },
                floor: 0.3,
                compression: (0.05, 0.6),
                deadline: Duration::from_secs(2),
                mode: ScoringMode::Consensus,
            },
            own_hotkey: String::new(),
            selector: Arc::new(crate::worker::Selector::new(SelectionPolicy::Stake, 0.0)),
            inputs: crate::memory::ByteBudget::unbounded(),
        }
    }

    fn summary_budget() -> AnswerBudget {
        let task = crate::domain::Task::new(
            crate::domain::ServiceKind::Summarization,
            crate::domain::Priority::Normal,
            crate::domain::Language::parse("en").unwrap(),
            crate::domain::TaskInput::Text {
                text: "a source long enough to summarize".into(),
            },
            None,
            0,
        );
        AnswerBudget::for_task(&task)
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
            &summary_budget(),
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
            &summary_budget(),
        )
        .await;
        // Both answered before the hedge point (1.8 s): nobody else is asked.
        assert_eq!(asked, vec![0, 1]);
        assert!(replies.iter().all(|r| r.outcome == Outcome::Success));
    }
}
