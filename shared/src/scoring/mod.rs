//! Scoring: how every valid miner answer gets an accuracy, a speed and a combined score, and
//! which one wins. SCORING.md explains the formulas, the modes and their limits.
//!
//! - [`text`]: normalization, tokens, and the repetition and script checks.
//! - [`align`]: bit-parallel edit distance and LCS.
//! - [`metrics`]: WER/CER and ROUGE-1/2/L.
//! - `consensus`: leave-one-out medoid references.
//! - `summary`, `speech`: reference-free checks of summaries and synthesized speech.
//! - [`speed`]: work-normalized speed and the combined score.
//! - [`reference`]: the reference endpoints (an `AudioTask` pipeline, an OpenAI-compatible
//!   speech recognizer).

pub mod align;
mod consensus;
pub mod metrics;
pub mod reference;
mod speech;
pub mod speed;
mod summary;
pub mod text;

use std::time::Duration;

pub use speed::{Weights, Work};

use crate::audio::Signal;
use crate::domain::{Language, ScoreDetail, ServiceKind};
use text::{TextChecks, Unit, Vocabulary};

/// `SCORING_MODE`: where the reference comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The configured reference endpoint; consensus when it fails.
    Reference,
    /// The other answers (the default).
    #[default]
    Consensus,
    /// Reference when an endpoint is configured, consensus otherwise.
    Auto,
}

impl Mode {
    /// Parses `reference`, `consensus` or `auto`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "reference" => Ok(Self::Reference),
            "consensus" => Ok(Self::Consensus),
            "auto" => Ok(Self::Auto),
            other => Err(format!(
                "unknown scoring mode {other:?}; use reference, consensus or auto"
            )),
        }
    }
}

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
}

/// ROUGE-L F1 that counts as full agreement between summaries: independently written good
/// summaries of one text rarely overlap more than this.
pub const ROUGE_FULL: f64 = 0.5;

/// Coverage that counts as full: a summary keeping half of the source's top content words.
pub const COVERAGE_FULL: f64 = 0.5;

/// Accuracy given to a lone answer, which has nothing to agree with.
pub const SINGLE_ANSWER: f64 = 0.5;

/// The basis note every TTS answer scored without a recognizer carries.
pub const SIGNAL_ONLY: &str =
    "TTS accuracy is a signal-quality score, not intelligibility: no recognizer is configured";

impl Scorer {
    /// The scorer `settings` configure.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            weights: Weights {
                accuracy: settings.accuracy_weight,
                speed: settings.speed_weight,
            },
            floor: settings.accuracy_floor,
            compression: settings.summary_compression,
            deadline: settings.task_timeout,
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
            ServiceKind::Transcription => transcription(job, entries, reference),
            ServiceKind::Summarization => self.summarization(job, entries, reference),
            ServiceKind::Tts => tts(job, entries),
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

    fn summarization(
        &self,
        job: &Job<'_>,
        entries: &[Entry<'_>],
        reference: &Reference,
    ) -> Vec<(f64, ScoreDetail)> {
        let language = job.language;
        let mut vocab = Vocabulary::default();
        let source = summary::Source::new(job.text.unwrap_or_default(), language, &mut vocab);
        let texts: Vec<&str> = entries.iter().map(|e| text_of(e.answer)).collect();
        let (tokens, heavy) = tokenize(&texts, language, &mut vocab);
        let (agreement, basis, note) = agreement(
            reference,
            entries.len(),
            |r| {
                let reference = vocab.text(r, language);
                tokens.iter().map(|t| rouge(t, &reference)).collect()
            },
            || {
                let f1 = consensus::pairwise(tokens.len(), heavy, |i, j| {
                    metrics::rouge_l(&tokens[i], &tokens[j]).f1
                });
                let distance: Vec<Vec<f64>> = f1
                    .iter()
                    .enumerate()
                    .map(|(i, row)| {
                        row.iter()
                            .enumerate()
                            .map(|(j, f)| if i == j { 0.0 } else { 1.0 - f })
                            .collect()
                    })
                    .collect();
                consensus::references(&distance)
                    .iter()
                    .enumerate()
                    .map(|(i, refs)| {
                        let mean = |f: &dyn Fn(&[u32], &[u32]) -> f64| {
                            consensus::mean_over(refs, |j| f(&tokens[i], &tokens[j]))
                        };
                        [
                            consensus::mean_over(refs, |j| f1[i][j]),
                            mean(&|a, b| metrics::rouge_n(a, b, 1).f1),
                            mean(&|a, b| metrics::rouge_n(a, b, 2).f1),
                        ]
                    })
                    .collect()
            },
        );
        tokens
            .iter()
            .zip(&texts)
            .enumerate()
            .map(|(i, (t, text))| {
                let checks = summary::check(&source, t, text, language, self.compression);
                let [rouge_l, rouge_1, rouge_2] = agreement
                    .as_ref()
                    .map_or([SINGLE_ANSWER, f64::NAN, f64::NAN], |a| a[i]);
                let content = 0.7 * (rouge_l / ROUGE_FULL).min(1.0)
                    + 0.3 * (checks.coverage / COVERAGE_FULL).min(1.0);
                let mut notes = checks.notes;
                notes.extend(note.clone());
                let detail = ScoreDetail {
                    basis: basis.into(),
                    rouge_l: agreement.is_some().then_some(rouge_l),
                    rouge_1: Some(rouge_1).filter(|v| v.is_finite()),
                    rouge_2: Some(rouge_2).filter(|v| v.is_finite()),
                    compression: Some(checks.compression),
                    coverage: Some(checks.coverage),
                    copied: Some(checks.copied),
                    repetition: Some(checks.repetition),
                    script: checks.script,
                    notes,
                    ..ScoreDetail::default()
                };
                (content * checks.factor, detail)
            })
            .collect()
    }
}

/// Normalizes (in parallel for long texts) and tokenizes the answers; says whether the job is
/// big enough to spread over the cores.
fn tokenize(texts: &[&str], language: Language, vocab: &mut Vocabulary) -> (Vec<Vec<u32>>, bool) {
    let heavy = texts.iter().map(|t| t.len()).sum::<usize>() > HEAVY_BYTES;
    let normalized = consensus::parallel_map(texts, heavy, |t| text::normalize(t, language));
    let unit = Unit::of(language);
    let tokens = normalized.iter().map(|n| vocab.tokens(n, unit)).collect();
    (tokens, heavy)
}

/// Text volume above which scoring work is spread over the cores.
const HEAVY_BYTES: usize = 100_000;

fn text_of(answer: &Answer) -> &str {
    match answer {
        Answer::Text(t) => t,
        Answer::Audio(_) => "",
    }
}

fn rouge(candidate: &[u32], reference: &[u32]) -> [f64; 3] {
    [
        metrics::rouge_l(candidate, reference).f1,
        metrics::rouge_n(candidate, reference, 1).f1,
        metrics::rouge_n(candidate, reference, 2).f1,
    ]
}

/// Per-answer agreement from the reference when there is one, else from the consensus (none
/// for a single answer). Returns the values, the basis and a note on a failed reference.
fn agreement<T>(
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

/// Transcription: `1 − WER` (CER for ja/zh/ko) against the reference or the consensus, times
/// the repetition and script factors.
fn transcription(
    job: &Job<'_>,
    entries: &[Entry<'_>],
    reference: &Reference,
) -> Vec<(f64, ScoreDetail)> {
    let language = job.language;
    let unit = Unit::of(language);
    let mut vocab = Vocabulary::default();
    let texts: Vec<&str> = entries.iter().map(|e| text_of(e.answer)).collect();
    let (tokens, heavy) = tokenize(&texts, language, &mut vocab);
    let (errors, basis, note) = agreement(
        reference,
        entries.len(),
        |r| {
            let reference = vocab.text(r, language);
            tokens
                .iter()
                .map(|t| metrics::error_rate(&reference, t))
                .collect()
        },
        || {
            let distance = consensus::pairwise(tokens.len(), heavy, |i, j| {
                align::edit_distance(&tokens[i], &tokens[j])
            });
            let normalized: Vec<Vec<f64>> = (0..tokens.len())
                .map(|i| {
                    (0..tokens.len())
                        .map(|j| {
                            distance[i][j] as f64
                                / tokens[i].len().max(tokens[j].len()).max(1) as f64
                        })
                        .collect()
                })
                .collect();
            consensus::references(&normalized)
                .iter()
                .enumerate()
                .map(|(i, refs)| {
                    consensus::mean_over(refs, |j| {
                        if tokens[j].is_empty() {
                            f64::from(u8::from(!tokens[i].is_empty()))
                        } else {
                            distance[i][j] as f64 / tokens[j].len() as f64
                        }
                    })
                })
                .collect()
        },
    );
    tokens
        .iter()
        .zip(&texts)
        .enumerate()
        .map(|(i, (t, text))| {
            let error = errors.as_ref().map(|e| e[i]);
            let agreement = error.map_or(SINGLE_ANSWER, |e| (1.0 - e).max(0.0));
            let mut notes: Vec<String> = note.clone().into_iter().collect();
            let checks = TextChecks::run(t, text, language, &mut notes);
            let detail = ScoreDetail {
                basis: basis.into(),
                wer: error.filter(|_| unit == Unit::Word),
                cer: error.filter(|_| unit == Unit::Character),
                repetition: Some(checks.repetition),
                script: checks.script,
                notes,
                ..ScoreDetail::default()
            };
            (agreement * checks.factor, detail)
        })
        .collect()
}

/// TTS: the signal checks times, with a recognizer, intelligibility (`1 − WER` of its
/// transcript against the input text), or without one, agreement of the duration with the
/// other answers (`0.5 + 0.5 × shorter/longer` against the medoid).
fn tts(job: &Job<'_>, entries: &[Entry<'_>]) -> Vec<(f64, ScoreDetail)> {
    let language = job.language;
    let input = job.text.unwrap_or_default();
    let mut vocab = Vocabulary::default();
    let expected = vocab.text(input, language);
    let durations: Vec<f64> = entries
        .iter()
        .map(|e| match e.answer {
            Answer::Audio(s) => s.info.duration_s,
            Answer::Text(_) => 0.0,
        })
        .collect();
    let ratio = |a: f64, b: f64| {
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        if hi <= 0.0 { 1.0 } else { lo / hi }
    };
    let distance: Vec<Vec<f64>> = durations
        .iter()
        .map(|a| durations.iter().map(|b| 1.0 - ratio(*a, *b)).collect())
        .collect();
    let refs = consensus::references(&distance);
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let Answer::Audio(signal) = entry.answer else {
                return (0.0, ScoreDetail::default());
            };
            let checks = speech::check(signal, input, language);
            let mut notes = checks.notes;
            let mut detail = ScoreDetail {
                duration_ratio: Some(checks.duration_ratio),
                rms_dbfs: Some(signal.rms_dbfs),
                clipped: Some(signal.clipped),
                dc_offset: Some(signal.dc_offset),
                sample_rate: Some(signal.info.sample_rate),
                channels: Some(signal.info.channels),
                ..ScoreDetail::default()
            };
            let heard = match &entry.transcript {
                Some(Ok(transcript)) => {
                    let tokens = vocab.text(transcript, language);
                    Some((1.0 - metrics::error_rate(&expected, &tokens)).max(0.0))
                }
                Some(Err(why)) => {
                    notes.push(format!("recognizer failed ({why})"));
                    None
                }
                None => None,
            };
            let agreement = match heard {
                Some(intelligibility) => {
                    detail.basis = "intelligibility".into();
                    detail.intelligibility = Some(intelligibility);
                    intelligibility
                }
                None => {
                    detail.basis = "signal".into();
                    notes.push(SIGNAL_ONLY.into());
                    if refs[i].is_empty() {
                        1.0
                    } else {
                        0.5 + 0.5
                            * consensus::mean_over(&refs[i], |j| ratio(durations[i], durations[j]))
                    }
                }
            };
            detail.notes = notes;
            (checks.factor * agreement, detail)
        })
        .collect()
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
        Scorer::from_settings(
            &crate::config::Settings::from_lookup(|_| None).expect("defaults are valid"),
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

    #[test]
    fn modes_parse_and_refuse_unknown_names() {
        assert_eq!(Mode::parse(" Reference "), Ok(Mode::Reference));
        assert_eq!(Mode::parse("auto"), Ok(Mode::Auto));
        assert!(Mode::parse("majority").unwrap_err().contains("consensus"));
    }
}
