//! Scoring: how every valid miner answer gets an accuracy, a speed and a combined score, and
//! which one wins. SCORING.md explains the formulas, the modes and their limits.
//!
//! - [`text`]: normalization, tokens, and the repetition and script checks.
//! - [`align`]: bit-parallel edit distance and LCS.
//! - [`metrics`]: WER/CER and ROUGE-1/2/L.
//! - `consensus`: leave-one-out medoid references.
//! - `summary`, `speech`: reference-free checks of summaries and synthesized speech.
//! - [`speed`]: work-normalized speed and the combined score.
//! - `transcription`, `summarization`, `tts`: the accuracy of each service.
//! - [`verdict`]: which weighed answer wins, and how sure that is.
//!
//! Scoring is pure: the reference endpoints' answers reach it as values ([`Reference`], the
//! transcripts in [`Entry`]); the HTTP adapter that asks them lives outside, behind a port.

pub mod align;
mod consensus;
pub mod metrics;
mod speech;
pub mod speed;
mod summarization;
mod summary;
pub mod text;
mod transcription;
mod tts;
pub mod verdict;

use std::time::Duration;

pub use speed::{Weights, Work};

use crate::audio::Signal;
pub use crate::config::ScoringMode as Mode;
use crate::config::ScoringSettings;
use crate::domain::{Language, ScoreDetail, ServiceKind};
use text::{Unit, Vocabulary};

/// What the task asked for.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// The service.
    pub kind: ServiceKind,
    /// The requested language.
    pub language: Language,
    /// The input text (summarization source, TTS text).
    pub text: Option<&'a str>,
    /// The input audio's duration (transcription).
    pub audio_seconds: Option<f64>,
}

impl Job<'_> {
    fn work(&self) -> Work {
        Work {
            audio_seconds: self.audio_seconds.unwrap_or(0.0),
            chars: self.text.map_or(0, |t| t.chars().count()),
        }
    }
}

/// A validated answer, as scoring sees it.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Transcript or summary.
    Text(String),
    /// Synthesized speech, decoded and measured.
    Audio(Signal),
}

/// One answer to score.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// The answer.
    pub answer: &'a Answer,
    /// Latency measured by taogate.
    pub latency: Duration,
    /// TTS: the reference recognizer's transcript of this answer, or why there is none.
    pub transcript: Option<Result<String, String>>,
}

/// The reference for this task, if the mode asks for one.
#[derive(Debug, Clone, PartialEq)]
pub enum Reference {
    /// None configured or none applicable: consensus.
    None,
    /// The reference endpoint's answer.
    Text(String),
    /// The endpoint failed: consensus, with the reason noted.
    Failed(String),
}

impl From<Result<String, String>> for Reference {
    /// The endpoint's answer, or why there is none.
    fn from(answer: Result<String, String>) -> Self {
        match answer {
            Ok(text) => Self::Text(text),
            Err(why) => Self::Failed(why),
        }
    }
}

/// One answer's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Accuracy in [0, 1].
    pub accuracy: f64,
    /// Speed in [0, 1].
    pub speed: f64,
    /// `ACCURACY_WEIGHT·accuracy + SPEED_WEIGHT·speed`.
    pub combined: f64,
    /// The sub-scores.
    pub detail: ScoreDetail,
}

/// The scoring settings.
#[derive(Debug, Clone, Copy)]
pub struct Scorer {
    /// Score weights.
    pub weights: Weights,
    /// `ACCURACY_FLOOR`: no answer below it is ever returned.
    pub floor: f64,
    /// `SUMMARY_COMPRESSION`: accepted summary length over source length.
    pub compression: (f64, f64),
    /// The attempt deadline, which caps the speed budget.
    pub deadline: Duration,
    /// `SCORING_MODE`: where the reference comes from.
    pub mode: Mode,
}

/// ROUGE-L F1 that counts as full agreement between summaries: independently written good
/// summaries of one text rarely overlap more than this.
pub const ROUGE_FULL: f64 = 0.5;

/// Coverage that counts as full: a summary keeping half of the source's top content words.
pub const COVERAGE_FULL: f64 = 0.5;

/// Word (or character) error rate within which two transcripts count as agreeing.
pub const AGREE_WER: f64 = 0.2;

/// Accuracy given to a lone answer, which has nothing to agree with.
pub const SINGLE_ANSWER: f64 = 0.5;

/// The basis note every TTS answer scored without a recognizer carries.
pub const SIGNAL_ONLY: &str =
    "TTS accuracy is a signal-quality score, not intelligibility: no recognizer is configured";

impl Scorer {
    /// The scorer `settings` configure.
    pub fn new(settings: &ScoringSettings) -> Self {
        Self {
            weights: Weights {
                accuracy: settings.accuracy_weight,
                speed: settings.speed_weight,
            },
            floor: settings.accuracy_floor,
            compression: settings.summary_compression,
            deadline: settings.deadline,
            mode: settings.mode,
        }
    }

    /// Scores every entry. Entries of the wrong kind for the service score 0.
    pub fn score(
        &self,
        job: &Job<'_>,
        entries: &[Entry<'_>],
        reference: &Reference,
    ) -> Vec<Scored> {
        let accuracy = match job.kind {
            ServiceKind::Transcription => transcription::transcription(job, entries, reference),
            ServiceKind::Summarization => {
                summarization::summarization(self.compression, job, entries, reference)
            }
            ServiceKind::Tts => tts::tts(job, entries),
        };
        accuracy
            .into_iter()
            .zip(entries)
            .map(|((accuracy, mut detail), entry)| {
                let (speed, rate) =
                    speed::speed(job.kind, job.work(), entry.latency, self.deadline);
                detail.work_rate = Some(rate);
                let accuracy = accuracy.clamp(0.0, 1.0);
                Scored {
                    accuracy,
                    speed,
                    combined: self.weights.combine(accuracy, speed),
                    detail,
                }
            })
            .collect()
    }

    /// The winner: the highest combined score among answers at or above the accuracy floor;
    /// ties go to the lower latency, then the lower uid. `None` when nobody reaches the floor.
    pub fn best(&self, scored: &[Scored], latency_ms: &[u64], uids: &[u16]) -> Option<usize> {
        (0..scored.len())
            .filter(|&i| scored[i].accuracy >= self.floor)
            .max_by(|&a, &b| {
                let (x, y) = (scored[a].combined, scored[b].combined);
                let by_score = if (x - y).abs() <= 1e-9 {
                    std::cmp::Ordering::Equal
                } else {
                    x.total_cmp(&y)
                };
                by_score
                    .then(latency_ms[b].cmp(&latency_ms[a]))
                    .then(uids[b].cmp(&uids[a]))
            })
    }
}

/// Normalizes (in parallel for long texts) and tokenizes the answers; says whether the job is
/// big enough to spread over the cores.
pub(super) fn tokenize(
    texts: &[&str],
    language: Language,
    vocab: &mut Vocabulary,
) -> (Vec<Vec<u32>>, bool) {
    let heavy = texts.iter().map(|t| t.len()).sum::<usize>() > HEAVY_BYTES;
    let normalized = consensus::parallel_map(texts, heavy, |t| text::normalize(t, language));
    let unit = Unit::of(language);
    let tokens = normalized.iter().map(|n| vocab.tokens(n, unit)).collect();
    (tokens, heavy)
}

/// Text volume above which scoring work is spread over the cores.
const HEAVY_BYTES: usize = 100_000;

pub(super) fn text_of(answer: &Answer) -> &str {
    match answer {
        Answer::Text(t) => t,
        Answer::Audio(_) => "",
    }
}

/// Per-answer agreement from the reference when there is one, else from the consensus (none
/// for a single answer). Returns the values, the basis and a note on a failed reference.
pub(super) fn agreement<T>(
    reference: &Reference,
    answers: usize,
    against_reference: impl FnOnce(&str) -> Vec<T>,
    by_consensus: impl FnOnce() -> Vec<T>,
) -> (Option<Vec<T>>, &'static str, Option<String>) {
    let note = match reference {
        Reference::Text(r) => return (Some(against_reference(r)), "reference", None),
        Reference::Failed(why) => Some(format!("reference failed ({why}); scored by consensus")),
        Reference::None => None,
    };
    if answers < 2 {
        (None, "single", note)
    } else {
        (Some(by_consensus()), "consensus", note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(accuracy: f64, combined: f64) -> Scored {
        Scored {
            accuracy,
            speed: 0.0,
            combined,
            detail: ScoreDetail::default(),
        }
    }

    fn scorer() -> Scorer {
        Scorer::new(
            &crate::config::Settings::from_lookup(|_| None)
                .expect("defaults are valid")
                .scoring,
        )
    }

    #[test]
    fn ties_go_to_lower_latency_then_lower_uid_and_the_floor_excludes() {
        let s = scorer();
        let equal = [scored(0.8, 0.7), scored(0.8, 0.7), scored(0.8, 0.7)];
        assert_eq!(s.best(&equal, &[300, 100, 100], &[1, 9, 4]), Some(2));
        assert_eq!(s.best(&equal, &[300, 100, 200], &[1, 9, 4]), Some(1));
        // A higher combined score below the floor never wins.
        let floor = [scored(0.29, 0.95), scored(0.5, 0.6)];
        assert_eq!(s.best(&floor, &[1, 1], &[0, 1]), Some(1));
        assert_eq!(s.best(&floor[..1], &[1], &[0]), None);
    }
}
