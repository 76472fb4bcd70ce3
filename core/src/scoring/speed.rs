//! Speed: latency measured by taogate, normalized by the size of the work.
//!
//! Each service gets a time budget that grows with its input, capped by the attempt deadline:
//!
//! | service        | budget                                  | work rate reported      |
//! |----------------|-----------------------------------------|-------------------------|
//! | transcription  | 2 s + 0.5 × audio seconds               | real-time factor        |
//! | TTS            | 2 s + 20 ms × input characters          | ms per input character  |
//! | summarization  | 2 s + 2 ms × input characters           | ms per input character  |
//!
//! `speed = clamp(1 − latency / budget, 0, 1)`: an instant answer scores 1, an answer that
//! uses the whole budget (or more) scores 0. The fixed 2 s covers network and queueing, so
//! tiny inputs are not judged by their round trip alone.

use std::time::Duration;

use crate::domain::ServiceKind;

/// How big the task is.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Work {
    /// Input audio duration (transcription).
    pub audio_seconds: f64,
    /// Input characters (TTS, summarization).
    pub chars: usize,
}

const BASE: f64 = 2.0;

/// The time budget of `kind` for `work`, capped by `deadline`.
pub fn budget(kind: ServiceKind, work: Work, deadline: Duration) -> Duration {
    let seconds = BASE
        + match kind {
            ServiceKind::Transcription => 0.5 * work.audio_seconds.max(0.0),
            ServiceKind::Tts => 0.020 * work.chars as f64,
            ServiceKind::Summarization => 0.002 * work.chars as f64,
        };
    Duration::from_secs_f64(seconds).min(deadline)
}

/// Speed in [0, 1] and the work rate (real-time factor, or ms per character).
pub fn speed(kind: ServiceKind, work: Work, latency: Duration, deadline: Duration) -> (f64, f64) {
    let budget = budget(kind, work, deadline);
    let speed = if budget.is_zero() {
        0.0
    } else {
        (1.0 - latency.as_secs_f64() / budget.as_secs_f64()).clamp(0.0, 1.0)
    };
    let rate = match kind {
        ServiceKind::Transcription => latency.as_secs_f64() / work.audio_seconds.max(1e-3),
        _ => latency.as_secs_f64() * 1000.0 / work.chars.max(1) as f64,
    };
    (speed, rate)
}

/// The weights of the combined score, checked to sum to one at configuration time.
#[derive(Debug, Clone, Copy)]
pub struct Weights {
    /// `ACCURACY_WEIGHT`.
    pub accuracy: f64,
    /// `SPEED_WEIGHT`.
    pub speed: f64,
}

impl Weights {
    /// `ACCURACY_WEIGHT·accuracy + SPEED_WEIGHT·speed`.
    pub fn combine(self, accuracy: f64, speed: f64) -> f64 {
        (self.accuracy * accuracy + self.speed * speed).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_grows_with_the_work_and_stops_at_the_deadline() {
        let deadline = Duration::from_secs(30);
        let minute = Work {
            audio_seconds: 60.0,
            chars: 0,
        };
        assert_eq!(
            budget(ServiceKind::Transcription, minute, deadline),
            Duration::from_secs(30)
        );
        let ten = Work {
            audio_seconds: 10.0,
            chars: 0,
        };
        assert_eq!(
            budget(ServiceKind::Transcription, ten, deadline),
            Duration::from_secs(7)
        );
        let (s, rtf) = speed(
            ServiceKind::Transcription,
            ten,
            Duration::from_secs(2),
            deadline,
        );
        assert!((s - (1.0 - 2.0 / 7.0)).abs() < 1e-9);
        assert!((rtf - 0.2).abs() < 1e-9);
    }

    #[test]
    fn the_same_latency_is_faster_on_bigger_work() {
        let d = Duration::from_secs(60);
        let latency = Duration::from_secs(3);
        let small = Work {
            audio_seconds: 0.0,
            chars: 100,
        };
        let big = Work {
            audio_seconds: 0.0,
            chars: 2000,
        };
        assert!(
            speed(ServiceKind::Tts, big, latency, d).0
                > speed(ServiceKind::Tts, small, latency, d).0
        );
        assert_eq!(
            speed(ServiceKind::Tts, small, Duration::from_secs(90), d).0,
            0.0
        );
        assert_eq!(
            speed(ServiceKind::Summarization, small, Duration::ZERO, d).0,
            1.0
        );
    }
}
