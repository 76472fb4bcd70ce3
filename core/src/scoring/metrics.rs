//! Reference-based metrics on token sequences: error rate and ROUGE.

use foldhash::{HashMap, HashMapExt as _};

use super::align::{edit_distance, lcs_length};

/// Word (or character) error rate of `hypothesis` against `reference`: edits over reference
/// length. An empty reference gives 0 for an empty hypothesis and 1 otherwise. Not capped:
/// a hypothesis with many insertions can exceed 1.
pub fn error_rate(reference: &[u32], hypothesis: &[u32]) -> f64 {
    if reference.is_empty() {
        return if hypothesis.is_empty() { 0.0 } else { 1.0 };
    }
    edit_distance(reference, hypothesis) as f64 / reference.len() as f64
}

/// Precision, recall and their harmonic mean.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Prf {
    /// Matched over candidate length.
    pub precision: f64,
    /// Matched over reference length.
    pub recall: f64,
    /// Harmonic mean (F1).
    pub f1: f64,
}

impl Prf {
    fn new(matched: usize, candidate: usize, reference: usize) -> Self {
        if candidate == 0 || reference == 0 {
            return Self::default();
        }
        let precision = matched as f64 / candidate as f64;
        let recall = matched as f64 / reference as f64;
        let f1 = if matched == 0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Self {
            precision,
            recall,
            f1,
        }
    }
}

/// ROUGE-L: longest common subsequence.
pub fn rouge_l(candidate: &[u32], reference: &[u32]) -> Prf {
    Prf::new(
        lcs_length(candidate, reference),
        candidate.len(),
        reference.len(),
    )
}

/// ROUGE-N for n = 1 or 2: clipped n-gram overlap.
pub fn rouge_n(candidate: &[u32], reference: &[u32], n: usize) -> Prf {
    let grams = |t: &[u32]| -> HashMap<u64, usize> {
        let mut counts = HashMap::new();
        for w in t.windows(n) {
            let key = w.iter().fold(0u64, |k, &x| (k << 32) | u64::from(x));
            *counts.entry(key).or_default() += 1;
        }
        counts
    };
    let (c, r) = (grams(candidate), grams(reference));
    let matched: usize = c
        .iter()
        .map(|(k, n)| (*n).min(r.get(k).copied().unwrap_or(0)))
        .sum();
    let total = |t: &[u32]| t.len().saturating_sub(n - 1);
    Prf::new(matched, total(candidate), total(reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rate_counts_edits_over_the_reference() {
        assert_eq!(error_rate(&[1, 2, 3, 4], &[1, 9, 3, 4]), 0.25);
        assert_eq!(error_rate(&[1, 2], &[1, 2, 5, 6, 7]), 1.5);
        assert_eq!(error_rate(&[], &[]), 0.0);
        assert_eq!(error_rate(&[], &[1]), 1.0);
    }

    #[test]
    fn rouge_scores_known_pairs() {
        // candidate "1 2 3 4", reference "1 3 4 5": LCS 3, unigrams 3, bigrams {3 4} 1.
        let (c, r) = ([1, 2, 3, 4], [1, 3, 4, 5]);
        assert_eq!(rouge_l(&c, &r).f1, 0.75);
        assert_eq!(rouge_n(&c, &r, 1).f1, 0.75);
        assert!((rouge_n(&c, &r, 2).f1 - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(rouge_l(&[], &r), Prf::default());
    }

    #[test]
    fn repeated_words_are_clipped_to_the_reference_count() {
        assert_eq!(rouge_n(&[7, 7, 7, 7], &[7, 1, 2, 3], 1).precision, 0.25);
    }
}
