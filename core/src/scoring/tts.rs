//! Speech accuracy: the signal checks of `speech`, times intelligibility when a recognizer
//! heard the answer, or agreement of the duration with the other answers when none did.

use super::text::Vocabulary;
use super::{Answer, Entry, Job, SIGNAL_ONLY, consensus, metrics, speech};
use crate::domain::ScoreDetail;

/// TTS: the signal checks times, with a recognizer, intelligibility (`1 − WER` of its
/// transcript against the input text), or without one, agreement of the duration with the
/// other answers (`0.5 + 0.5 × shorter/longer` against the medoid).
pub(super) fn tts(job: &Job<'_>, entries: &[Entry<'_>]) -> Vec<(f64, ScoreDetail)> {
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
