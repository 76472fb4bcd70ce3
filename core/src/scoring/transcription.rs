//! Transcription accuracy: word (or, for ja/zh/ko, character) error rate against the reference
//! or the leave-one-out consensus, times the repetition and script factors.

use super::text::{TextChecks, Unit, Vocabulary};
use super::{
    AGREE_WER, Entry, Job, Reference, SINGLE_ANSWER, agreement, align, consensus, metrics, text_of,
    tokenize,
};
use crate::domain::ScoreDetail;

/// Transcription: `1 − WER` (CER for ja/zh/ko) against the reference or the consensus, times
/// the repetition and script factors.
pub(super) fn transcription(
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
                .map(|t| (metrics::error_rate(&reference, t), None))
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
                    let error = consensus::mean_over(refs, |j| {
                        if tokens[j].is_empty() {
                            f64::from(u8::from(!tokens[i].is_empty()))
                        } else {
                            distance[i][j] as f64 / tokens[j].len() as f64
                        }
                    });
                    let support = (0..tokens.len())
                        .filter(|&j| j != i && normalized[i][j] <= AGREE_WER)
                        .count() as u32;
                    (error, Some(support))
                })
                .collect()
        },
    );
    tokens
        .iter()
        .zip(&texts)
        .enumerate()
        .map(|(i, (t, text))| {
            let (error, support) = errors
                .as_ref()
                .map_or((None, None), |e| (Some(e[i].0), e[i].1));
            let agreement = error.map_or(SINGLE_ANSWER, |e| (1.0 - e).max(0.0));
            let mut notes: Vec<String> = note.clone().into_iter().collect();
            let checks = TextChecks::run(t, text, language, &mut notes);
            let detail = ScoreDetail {
                basis: basis.into(),
                wer: error.filter(|_| unit == Unit::Word),
                cer: error.filter(|_| unit == Unit::Character),
                repetition: Some(checks.repetition),
                script: checks.script,
                support,
                notes,
                ..ScoreDetail::default()
            };
            (agreement * checks.factor, detail)
        })
        .collect()
}
