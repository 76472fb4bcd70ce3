//! Latency samples kept in the process for the benchmarks (`taogate bench e2e`).
//!
//! Off until a benchmark turns them on, so a server keeps nothing. On, each set keeps at most
//! [`MAX_SAMPLES`] samples (4 bytes each: 4 MB at most), then stops recording.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Samples kept at most per set.
pub const MAX_SAMPLES: usize = 1_000_000;

/// A set of durations, in microseconds.
pub struct Samples {
    on: AtomicBool,
    micros: Mutex<Vec<u32>>,
}

/// From the last answer an attempt needed (its gather's end) to the task's stored result.
pub static SETTLE: Samples = Samples::new();

/// From an attempt's first query to the last answer it needed (its gather: the miners' own
/// time, plus reading and checking their answers).
pub static GATHER: Samples = Samples::new();

impl Samples {
    const fn new() -> Self {
        Self {
            on: AtomicBool::new(false),
            micros: Mutex::new(Vec::new()),
        }
    }

    /// Starts recording, forgetting earlier samples.
    pub fn start(&self) {
        if let Ok(mut m) = self.micros.lock() {
            m.clear();
        }
        self.on.store(true, Ordering::Relaxed);
    }

    /// Records `d` if recording and not full.
    pub fn record(&self, d: Duration) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(mut m) = self.micros.lock()
            && m.len() < MAX_SAMPLES
        {
            m.push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        }
    }

    /// Stops recording and hands over the samples, sorted.
    pub fn take(&self) -> Vec<Duration> {
        self.on.store(false, Ordering::Relaxed);
        let mut out: Vec<Duration> = self
            .micros
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
            .into_iter()
            .map(|us| Duration::from_micros(u64::from(us)))
            .collect();
        out.sort_unstable();
        out
    }
}

/// The `q` quantile (0 to 1) of sorted `samples`, or zero if there are none.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let rank = (samples.len() as f64 * q).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_kept_only_while_on_and_quantiles_pick_by_rank() {
        let set = Samples::new();
        set.record(Duration::from_millis(9));
        set.start();
        for ms in [5, 1, 3, 2, 4] {
            set.record(Duration::from_millis(ms));
        }
        let got = set.take();
        set.record(Duration::from_millis(7));
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(quantile(&got, 0.5), Duration::from_millis(3));
        assert_eq!(quantile(&got, 0.99), Duration::from_millis(5));
        assert_eq!(quantile(&got, 0.0), Duration::from_millis(1));
        assert!(set.take().is_empty());
    }
}
