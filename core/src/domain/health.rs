//! A miner's track record, kept in the store so every worker (and every Lambda container) sees
//! the same one.
//!
//! Each finished query is one observation. Latency, success and score are exponentially
//! weighted moving averages (weight [`ALPHA`] for the newest), so a miner that changes shows it
//! within a few tasks. After [`BACKOFF_AFTER`] failures in a row the miner is backed off: left
//! out of selection for 30 s, doubling with each further failure up to 30 min. Once the back-off
//! ends it may be tried again; one success clears it.

use serde::{Deserialize, Serialize};

use super::{Millis, Outcome};

/// Weight of the newest observation in the moving averages.
pub const ALPHA: f64 = 0.3;
/// Failures in a row before a miner is backed off.
pub const BACKOFF_AFTER: u32 = 3;
/// The first back-off.
const BACKOFF_BASE_MS: i64 = 30_000;
/// The longest back-off.
const BACKOFF_MAX_MS: i64 = 30 * 60_000;
/// How many recent outcomes are kept.
const RECENT: usize = 10;

/// One miner's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinerHealth {
    /// The miner's hotkey (SS58).
    pub hotkey: String,
    /// Observations so far.
    pub samples: u64,
    /// Moving average of success (1) and failure (0).
    pub success_rate: f64,
    /// Moving average of the latency, in milliseconds.
    pub latency_ms: f64,
    /// Moving average of the combined score of its valid answers.
    pub score: Option<f64>,
    /// The latest outcomes, newest last.
    pub recent: Vec<Outcome>,
    /// Failures since the last success.
    pub failures_in_a_row: u32,
    /// Left out of selection until then (epoch ms; 0 when not backed off).
    pub backoff_until: Millis,
    /// When it was last observed.
    pub updated_at: Millis,
}

/// One finished query of a miner, to be added to its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The miner's hotkey (SS58).
    pub hotkey: String,
    /// How its answer fared.
    pub outcome: Outcome,
    /// Milliseconds, measured here.
    pub latency_ms: f64,
    /// The combined score of a valid answer.
    pub score: Option<f64>,
    /// When.
    pub at: Millis,
}

impl MinerHealth {
    /// Adds `observation` to the record.
    pub fn apply(&mut self, observation: &Observation) {
        self.observe(
            observation.outcome,
            observation.latency_ms,
            observation.score,
            observation.at,
        );
    }

    /// A miner never observed.
    pub fn new(hotkey: impl Into<String>) -> Self {
        Self {
            hotkey: hotkey.into(),
            samples: 0,
            success_rate: 1.0,
            latency_ms: 0.0,
            score: None,
            recent: Vec::new(),
            failures_in_a_row: 0,
            backoff_until: 0,
            updated_at: 0,
        }
    }

    /// Records one query: its outcome, the latency measured here and, for a valid answer, its
    /// combined score. `Cancelled` says nothing about the miner and is ignored.
    pub fn observe(&mut self, outcome: Outcome, latency_ms: f64, score: Option<f64>, now: Millis) {
        if outcome == Outcome::Cancelled {
            return;
        }
        let ok = outcome == Outcome::Success;
        let ewma = |old: f64, new: f64, first: bool| {
            if first {
                new
            } else {
                old + ALPHA * (new - old)
            }
        };
        let first = self.samples == 0;
        self.success_rate = ewma(self.success_rate, f64::from(u8::from(ok)), first);
        self.latency_ms = ewma(self.latency_ms, latency_ms, first);
        if let Some(s) = score {
            self.score = Some(self.score.map_or(s, |old| ewma(old, s, false)));
        }
        self.samples += 1;
        self.recent.push(outcome);
        if self.recent.len() > RECENT {
            self.recent.remove(0);
        }
        if ok {
            self.failures_in_a_row = 0;
            self.backoff_until = 0;
        } else {
            self.failures_in_a_row += 1;
            if self.failures_in_a_row >= BACKOFF_AFTER {
                let doublings = (self.failures_in_a_row - BACKOFF_AFTER).min(16);
                let backoff = (BACKOFF_BASE_MS << doublings).min(BACKOFF_MAX_MS);
                self.backoff_until = now + backoff;
            }
        }
        self.updated_at = now;
    }

    /// Whether the miner is left out of selection at `now`.
    pub fn backed_off(&self, now: Millis) -> bool {
        self.backoff_until > now
    }

    /// How much the ranking trusts the miner, in [0.2, 1]: 1 for a miner never observed, so new
    /// miners are not penalised, falling with its success rate.
    pub fn weight(&self) -> f64 {
        0.2 + 0.8 * self.success_rate.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_move_toward_new_observations() {
        let mut h = MinerHealth::new("hk");
        h.observe(Outcome::Success, 100.0, Some(0.8), 1);
        assert_eq!(
            (h.success_rate, h.latency_ms, h.score),
            (1.0, 100.0, Some(0.8))
        );
        h.observe(Outcome::Timeout, 1_000.0, None, 2);
        assert!((h.success_rate - 0.7).abs() < 1e-9);
        assert!((h.latency_ms - 370.0).abs() < 1e-9);
        assert_eq!(h.score, Some(0.8));
        assert_eq!(h.recent, vec![Outcome::Success, Outcome::Timeout]);
        assert!(h.weight() < 1.0 && h.weight() > 0.2);
    }

    #[test]
    fn repeated_failures_back_off_longer_and_a_success_clears_it() {
        let mut h = MinerHealth::new("hk");
        h.observe(Outcome::InvalidAnswer, 5.0, None, 0);
        h.observe(Outcome::Timeout, 5.0, None, 0);
        assert!(!h.backed_off(1));
        h.observe(Outcome::Unavailable, 5.0, None, 1_000);
        assert_eq!(h.backoff_until, 31_000);
        assert!(h.backed_off(30_999) && !h.backed_off(31_000));
        h.observe(Outcome::Timeout, 5.0, None, 40_000);
        assert_eq!(h.backoff_until, 100_000, "doubled");
        for _ in 0..30 {
            h.observe(Outcome::Timeout, 5.0, None, 0);
        }
        assert_eq!(h.backoff_until, 30 * 60_000, "capped");
        h.observe(Outcome::Success, 5.0, Some(0.9), 1);
        assert!(!h.backed_off(1));
        assert_eq!(h.failures_in_a_row, 0);
        assert_eq!(h.recent.len(), 10);
    }

    #[test]
    fn cancelled_queries_say_nothing() {
        let mut h = MinerHealth::new("hk");
        h.observe(Outcome::Cancelled, 5.0, None, 1);
        assert_eq!(h, MinerHealth::new("hk"));
    }
}
