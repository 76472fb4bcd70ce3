//! Scoring, first version: consensus accuracy and measured speed.
//!
//! - **Accuracy** of an answer is the median of its similarity to every *other* valid answer
//!   (leave-one-out), so one outlier cannot drag the agreeing majority down. Texts are compared
//!   word by word (character by character for ja/zh) after lower-casing and dropping punctuation,
//!   as `1 − edit distance / longer length`. Audio answers are compared by duration, as
//!   `shorter / longer`.
//! - With a single valid answer there is nothing to agree with: accuracy is a neutral 0.5. With
//!   two, both get their mutual similarity (agreement cannot tell which one is right).
//! - **Speed** is `1 − latency / deadline`, latency measured by taogate, never the miner's claim.
//! - **Combined** is `ACCURACY_WEIGHT·accuracy + SPEED_WEIGHT·speed`. Ties go to lower latency,
//!   then lower uid.

use std::time::Duration;

use crate::domain::Language;

/// What can be compared between answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparable {
    /// Normalized tokens of a text answer.
    Tokens(Vec<String>),
    /// Duration in seconds of an audio answer.
    Duration(f64),
}

impl Comparable {
    /// Tokenizes `text` for comparison in `language`.
    pub fn text(text: &str, language: Language) -> Self {
        let cleaned: String = text
            .chars()
            .map(|c| {
                if c.is_alphanumeric() {
                    c.to_lowercase().next().unwrap_or(c)
                } else {
                    ' '
                }
            })
            .collect();
        let tokens = if language.is_unspaced() {
            cleaned
                .chars()
                .filter(|c| !c.is_whitespace())
                .map(String::from)
                .collect()
        } else {
            cleaned.split_whitespace().map(str::to_owned).collect()
        };
        Self::Tokens(tokens)
    }
}

/// Similarity of two comparables in `[0, 1]`.
pub fn similarity(a: &Comparable, b: &Comparable) -> f64 {
    match (a, b) {
        (Comparable::Tokens(x), Comparable::Tokens(y)) => {
            let longest = x.len().max(y.len());
            if longest == 0 {
                return 1.0;
            }
            1.0 - edit_distance(x, y) as f64 / longest as f64
        }
        (Comparable::Duration(x), Comparable::Duration(y)) => {
            let (lo, hi) = if x < y { (*x, *y) } else { (*y, *x) };
            if hi <= 0.0 {
                1.0
            } else {
                (lo / hi).clamp(0.0, 1.0)
            }
        }
        _ => 0.0,
    }
}

fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(x != y);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Leave-one-out consensus accuracy of each answer (see the module docs).
pub fn consensus(answers: &[Comparable]) -> Vec<f64> {
    if answers.len() == 1 {
        return vec![0.5];
    }
    (0..answers.len())
        .map(|i| {
            let mut sims: Vec<f64> = answers
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, other)| similarity(&answers[i], other))
                .collect();
            median(&mut sims)
        })
        .collect()
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Speed from measured latency against the attempt's deadline.
pub fn speed(latency: Duration, deadline: Duration) -> f64 {
    if deadline.is_zero() {
        return 0.0;
    }
    (1.0 - latency.as_secs_f64() / deadline.as_secs_f64()).clamp(0.0, 1.0)
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
    /// The combined score.
    pub fn combine(self, accuracy: f64, speed: f64) -> f64 {
        (self.accuracy * accuracy + self.speed * speed).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn en(text: &str) -> Comparable {
        Comparable::text(text, Language::parse("en").unwrap())
    }

    #[test]
    fn identical_texts_agree_fully_after_normalization() {
        assert_eq!(similarity(&en("Hello, World!"), &en("hello world")), 1.0);
    }

    #[test]
    fn more_word_errors_never_score_higher() {
        let reference = en("the quick brown fox jumps over the lazy dog");
        let one = en("the quick brown cat jumps over the lazy dog");
        let two = en("the quick brown cat jumps over the lazy log");
        assert!(similarity(&reference, &one) > similarity(&reference, &two));
    }

    #[test]
    fn an_outlier_does_not_win_the_consensus() {
        let scores = consensus(&[
            en("a b c d e f"),
            en("a b c d e f"),
            en("a b c d x f"),
            en("zzz qqq"),
        ]);
        assert!(scores[0] > scores[3] && scores[1] > scores[3] && scores[2] > scores[3]);
        assert!(scores[0] >= scores[2]);
    }

    #[test]
    fn a_lone_answer_gets_the_neutral_score() {
        assert_eq!(consensus(&[en("x")]), vec![0.5]);
    }

    #[test]
    fn unspaced_languages_compare_by_character() {
        let zh = Language::parse("zh").unwrap();
        let s = similarity(
            &Comparable::text("你好世界", zh),
            &Comparable::text("你好世间", zh),
        );
        assert!((s - 0.75).abs() < 1e-9);
    }

    #[test]
    fn speed_falls_with_latency_and_is_bounded() {
        let d = Duration::from_secs(10);
        assert_eq!(speed(Duration::ZERO, d), 1.0);
        assert!((speed(Duration::from_secs(5), d) - 0.5).abs() < 1e-9);
        assert_eq!(speed(Duration::from_secs(20), d), 0.0);
    }
}
