//! The verdict over one attempt's weighed answers: which one wins (never one below the accuracy
//! floor), how sure the gateway is, and when more miners should be asked. Pure: the attempt
//! gathers and weighs the answers, then asks this.

use std::collections::HashMap;
use std::time::Duration;

use super::{Scored, Scorer};
use crate::domain::{Candidate, Confidence, Miner, MinerHealth, Outcome, Quorum};

/// The weighed answers of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Ballot<'a> {
    /// Every miner asked.
    pub candidates: &'a [Candidate],
    /// The candidate index of each valid answer, in the order of `scored`.
    pub valid: &'a [usize],
    /// The valid answers' scores.
    pub scored: &'a [Scored],
}

impl Ballot<'_> {
    /// Whether more miners should be asked: the answers were weighed against each other (or
    /// one stood alone) and the would-be winner has no majority behind it.
    pub fn lacks_majority(&self, scorer: &Scorer) -> bool {
        match self.ranked(scorer) {
            Some(best) => {
                let detail = &self.scored[best].detail;
                matches!(detail.basis.as_str(), "consensus" | "single")
                    && !majority(self.supporting(best), self.scored.len())
            }
            // Nobody reached the floor: more answers may change that.
            None => true,
        }
    }

    /// The candidate index of the winning answer and its quorum, or why none may win.
    /// `escalated` miners were asked beyond the first selection.
    pub fn winner(
        &self,
        scorer: &Scorer,
        health: &HashMap<String, MinerHealth>,
        escalated: u32,
    ) -> Result<(usize, Quorum), String> {
        let (valid, candidates, scored) = (self.valid, self.candidates, self.scored);
        if let Some(ranked) = self.ranked(scorer) {
            let count = scored.len();
            let quorum = |k: usize, confidence, note: Option<String>| Quorum {
                valid_answers: count as u32,
                supporting: self.supporting(k),
                confidence,
                escalated,
                note,
            };
            let chosen = match scored[ranked].detail.basis.as_str() {
                "consensus" | "single" if !majority(self.supporting(ranked), count) => {
                    let k = self.by_track_record(scorer, health).unwrap_or(ranked);
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
                        Some(
                            "speech judged by its signal only: no recognizer is configured".into(),
                        ),
                    ),
                ),
                _ => (ranked, quorum(ranked, Confidence::High, None)),
            };
            return Ok((valid[chosen.0], chosen.1));
        }
        let (top, s) = scored
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.accuracy.total_cmp(&b.1.accuracy))
            .map(|(k, s)| (valid[k], s))
            .unwrap_or((valid[0], &scored[0]));
        let why = if s.detail.notes.is_empty() {
            String::new()
        } else {
            format!(": {}", s.detail.notes.join("; "))
        };
        Err(format!(
            "no answer reached the accuracy floor {:.2} (best: uid {} with {:.2}{why})",
            scorer.floor, candidates[top].uid, s.accuracy
        ))
    }

    /// The index (among the valid answers) of the best answer at or above the floor.
    fn ranked(&self, scorer: &Scorer) -> Option<usize> {
        let latencies: Vec<u64> = self
            .valid
            .iter()
            .map(|&i| self.candidates[i].latency_ms)
            .collect();
        let uids: Vec<u16> = self.valid.iter().map(|&i| self.candidates[i].uid).collect();
        scorer.best(self.scored, &latencies, &uids)
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
        scorer: &Scorer,
        health: &HashMap<String, MinerHealth>,
    ) -> Option<usize> {
        let (valid, candidates, scored) = (self.valid, self.candidates, self.scored);
        let record = |k: usize| {
            health
                .get(&candidates[valid[k]].hotkey)
                .filter(|h| h.samples > 0)
                .map_or(-1.0, |h| h.score.unwrap_or(0.0) * h.success_rate)
        };
        (0..scored.len())
            .filter(|&k| scored[k].accuracy >= scorer.floor)
            .max_by(|&a, &b| {
                let (x, y) = (scored[a].accuracy, scored[b].accuracy);
                let by_accuracy = if (x - y).abs() <= 1e-9 {
                    std::cmp::Ordering::Equal
                } else {
                    x.total_cmp(&y)
                };
                record(a)
                    .total_cmp(&record(b))
                    .then(by_accuracy)
                    .then(
                        candidates[valid[b]]
                            .latency_ms
                            .cmp(&candidates[valid[a]].latency_ms),
                    )
                    .then(candidates[valid[b]].uid.cmp(&candidates[valid[a]].uid))
            })
    }
}

/// Whether `supporting` of `valid` answers are a majority: at least two, and more than half.
fn majority(supporting: u32, valid: usize) -> bool {
    supporting >= 2 && 2 * supporting as usize > valid
}

/// The candidate record of `miner`'s reply, which took `latency`: its outcome, or why its
/// answer was refused. Scores are added when the valid answers are weighed.
pub fn candidate(
    miner: &Miner,
    latency: Duration,
    refused: Option<&(Outcome, String)>,
) -> Candidate {
    Candidate {
        uid: miner.uid,
        hotkey: miner.hotkey.clone(),
        outcome: refused.map_or(Outcome::Success, |(o, _)| *o),
        latency_ms: latency.as_millis() as u64,
        accuracy: None,
        speed: None,
        combined: None,
        error: refused.map(|(_, e)| brief(e)),
        scores: None,
    }
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

/// How the candidates failed, counted by outcome ("3 timeout, 2 invalid_answer").
pub fn summarize_failures(candidates: &[Candidate]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::domain::ScoreDetail;

    fn scorer() -> Scorer {
        Scorer::new(&Settings::from_lookup(|_| None).unwrap().scoring)
    }

    fn miner(uid: u16) -> Miner {
        Miner {
            uid,
            hotkey: format!("hotkey-{uid}"),
            ip: "127.0.0.1".parse().unwrap(),
            port: uid,
            stake: 1.0,
            incentive: 0.0,
            chain: None,
        }
    }

    /// Answer `k` scored `accuracy` against the others, with `support` of them agreeing.
    fn scored(accuracy: f64, support: u32) -> Scored {
        Scored {
            accuracy,
            speed: 0.5,
            combined: 0.7 * accuracy + 0.15,
            detail: ScoreDetail {
                basis: "consensus".into(),
                support: Some(support),
                ..ScoreDetail::default()
            },
        }
    }

    fn candidates(n: u16) -> Vec<Candidate> {
        (0..n)
            .map(|uid| {
                candidate(
                    &miner(uid),
                    Duration::from_millis(100 + u64::from(uid)),
                    None,
                )
            })
            .collect()
    }

    #[test]
    fn a_majority_wins_at_high_confidence() {
        let (candidates, valid) = (candidates(3), [0, 1, 2]);
        let scored = [scored(0.9, 1), scored(0.95, 1), scored(0.3, 0)];
        let ballot = Ballot {
            candidates: &candidates,
            valid: &valid,
            scored: &scored,
        };
        assert!(!ballot.lacks_majority(&scorer()));
        let (best, quorum) = ballot.winner(&scorer(), &HashMap::new(), 0).unwrap();
        assert_eq!((best, quorum.supporting, quorum.valid_answers), (1, 2, 3));
        assert_eq!(quorum.confidence, Confidence::High);
    }

    #[test]
    fn without_a_majority_the_track_record_chooses_at_low_confidence() {
        let (candidates, valid) = (candidates(2), [0, 1]);
        let scored = [scored(0.8, 0), scored(0.8, 0)];
        let ballot = Ballot {
            candidates: &candidates,
            valid: &valid,
            scored: &scored,
        };
        assert!(ballot.lacks_majority(&scorer()));
        let record = MinerHealth {
            hotkey: "hotkey-1".into(),
            samples: 10,
            success_rate: 1.0,
            latency_ms: 100.0,
            score: Some(0.9),
            recent: Vec::new(),
            failures_in_a_row: 0,
            backoff_until: 0,
            updated_at: 0,
        };
        let health = HashMap::from([("hotkey-1".to_owned(), record)]);
        let (best, quorum) = ballot.winner(&scorer(), &health, 2).unwrap();
        assert_eq!((best, quorum.escalated), (1, 2));
        assert_eq!(quorum.confidence, Confidence::Low);
        assert!(quorum.note.unwrap().contains("track record"));
    }

    #[test]
    fn no_answer_below_the_floor_wins() {
        let (candidates, valid) = (candidates(2), [0, 1]);
        let scored = [scored(0.1, 1), scored(0.05, 1)];
        let ballot = Ballot {
            candidates: &candidates,
            valid: &valid,
            scored: &scored,
        };
        let why = ballot.winner(&scorer(), &HashMap::new(), 0).unwrap_err();
        assert!(why.contains("best: uid 0 with 0.10"), "{why}");
    }

    #[test]
    fn refusals_are_counted_and_long_messages_cut() {
        let refused = (Outcome::Timeout, "x".repeat(2 * ERROR_CHARS));
        let timed_out = candidate(&miner(1), Duration::from_secs(3), Some(&refused));
        assert_eq!(
            timed_out.error.as_deref().unwrap().chars().count(),
            ERROR_CHARS + 1
        );
        let mut all = candidates(1);
        all.extend([timed_out.clone(), timed_out]);
        assert_eq!(summarize_failures(&all), "1 success, 2 timeout");
    }
}
