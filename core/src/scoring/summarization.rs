//! Summarization accuracy: ROUGE-L agreement with the reference or the consensus, source
//! coverage, and the reference-free checks of `summary` (compression, copying, repetition).

use super::text::Vocabulary;
use super::{
    COVERAGE_FULL, Entry, Job, ROUGE_FULL, Reference, SINGLE_ANSWER, agreement, consensus, metrics,
    summary, text_of, tokenize,
};
use crate::domain::ScoreDetail;

pub(super) fn summarization(
    compression: (f64, f64),
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
            tokens
                .iter()
                .map(|t| (rouge(t, &reference), None))
                .collect()
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
                    let support = (0..tokens.len())
                        .filter(|&j| j != i && f1[i][j] >= ROUGE_FULL)
                        .count() as u32;
                    (
                        [
                            consensus::mean_over(refs, |j| f1[i][j]),
                            mean(&|a, b| metrics::rouge_n(a, b, 1).f1),
                            mean(&|a, b| metrics::rouge_n(a, b, 2).f1),
                        ],
                        Some(support),
                    )
                })
                .collect()
        },
    );
    tokens
        .iter()
        .zip(&texts)
        .enumerate()
        .map(|(i, (t, text))| {
            let checks = summary::check(&source, t, text, language, compression);
            let ([rouge_l, rouge_1, rouge_2], support) = agreement
                .as_ref()
                .map_or(([SINGLE_ANSWER, f64::NAN, f64::NAN], None), |a| a[i]);
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
                support,
                notes,
                ..ScoreDetail::default()
            };
            (content * checks.factor, detail)
        })
        .collect()
}

fn rouge(candidate: &[u32], reference: &[u32]) -> [f64; 3] {
    [
        metrics::rouge_l(candidate, reference).f1,
        metrics::rouge_n(candidate, reference, 1).f1,
        metrics::rouge_n(candidate, reference, 2).f1,
    ]
}
