//! Reference-free checks of a summary against its source.

use std::collections::{HashMap, HashSet};

use super::text::{TextChecks, Unit, Vocabulary, normalize};
use crate::domain::Language;

/// Source content units a summary is expected to keep.
const TOP_CONTENT: usize = 20;

/// A summary reproducing this much of its source in order is a copy.
pub const COPY_LIMIT: f64 = 0.8;

/// Sources shorter than this (words; characters are counted ×2) are too short to demand the
/// accepted compression range; they are held to [`SHORT_SOURCE_HIGH`] instead, and never
/// excused from being shorter than the source or from the copy check.
pub const MIN_SOURCE_WORDS: usize = 30;

/// The highest compression accepted in full for a short source: above it the factor falls
/// linearly to 0 at the source's own length, so an echo of any source scores 0.
pub const SHORT_SOURCE_HIGH: f64 = 0.8;

/// English function words of four letters or more: never content.
const STOPWORDS: &[&str] = &[
    "about", "after", "also", "been", "before", "being", "both", "could", "does", "each", "from",
    "have", "into", "just", "like", "many", "more", "most", "much", "must", "only", "other",
    "over", "said", "same", "should", "some", "such", "than", "that", "their", "them", "then",
    "there", "these", "they", "this", "those", "very", "were", "what", "when", "where", "which",
    "while", "will", "with", "would", "your",
];

/// The source, tokenized once for all summaries.
pub struct Source {
    /// Tokens of the normalized source.
    pub tokens: Vec<u32>,
    /// Its most frequent content units: words of four or more letters that are not function
    /// words, or character bigrams in character-scored languages.
    content: Vec<u64>,
}

fn units(tokens: &[u32], unit: Unit) -> Vec<u64> {
    match unit {
        Unit::Word => tokens.iter().map(|&t| u64::from(t)).collect(),
        Unit::Character => tokens
            .windows(2)
            .map(|w| (u64::from(w[0]) << 32) | u64::from(w[1]))
            .collect(),
    }
}

impl Source {
    /// Tokenizes `text` and picks its content units.
    pub fn new(text: &str, language: Language, vocab: &mut Vocabulary) -> Self {
        let unit = Unit::of(language);
        let normalized = normalize(text, language);
        let tokens = vocab.tokens(&normalized, unit);
        let eligible: Vec<bool> = match unit {
            Unit::Word => normalized
                .split_whitespace()
                .map(|w| w.chars().count() >= 4 && !STOPWORDS.contains(&w))
                .collect(),
            Unit::Character => vec![true; tokens.len().saturating_sub(1)],
        };
        let mut counts: HashMap<u64, (usize, usize)> = HashMap::new();
        for (position, (u, ok)) in units(&tokens, unit).into_iter().zip(eligible).enumerate() {
            if ok {
                counts.entry(u).or_insert((0, position)).0 += 1;
            }
        }
        let mut ranked: Vec<(u64, (usize, usize))> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.1.1.cmp(&b.1.1)));
        Self {
            tokens,
            content: ranked
                .into_iter()
                .take(TOP_CONTENT)
                .map(|(u, _)| u)
                .collect(),
        }
    }
}

/// What the checks found, and the factor they multiply accuracy by.
#[derive(Debug, Clone, PartialEq)]
pub struct Checks {
    /// Summary tokens over source tokens.
    pub compression: f64,
    /// Share of the source's content units present in the summary.
    pub coverage: f64,
    /// LCS with the source over source length.
    pub copied: f64,
    /// Repeated n-gram share.
    pub repetition: f64,
    /// Share of letters in the language's script.
    pub script: Option<f64>,
    /// Product of the check factors, in [0, 1].
    pub factor: f64,
    /// Why the factor is below 1.
    pub notes: Vec<String>,
}

/// Runs every check on one summary. `range` is the accepted compression (`SUMMARY_COMPRESSION`).
pub fn check(
    source: &Source,
    summary: &[u32],
    summary_text: &str,
    language: Language,
    range: (f64, f64),
) -> Checks {
    let unit = Unit::of(language);
    let mut notes = Vec::new();
    let compression = summary.len() as f64 / source.tokens.len().max(1) as f64;
    let (low, high) = range;
    let minimum = match unit {
        Unit::Word => MIN_SOURCE_WORDS,
        Unit::Character => 2 * MIN_SOURCE_WORDS,
    };
    let short = source.tokens.len() < minimum;
    // A short source cannot be held to the usual range, but a summary is shorter than its
    // source whatever its length.
    let (low, high) = if short {
        (0.0, high.max(SHORT_SOURCE_HIGH))
    } else {
        (low, high)
    };
    let compression_factor = if compression >= 1.0 {
        notes.push(format!(
            "compression {compression:.2}: not shorter than the source"
        ));
        0.0
    } else if compression > high {
        notes.push(format!(
            "compression {compression:.2} is above the accepted {high:.2}"
        ));
        ((1.0 - compression) / (1.0 - high)).clamp(0.0, 1.0)
    } else if compression < low {
        notes.push(format!(
            "compression {compression:.3} is below the accepted {low:.3}"
        ));
        (compression / low).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let present: HashSet<u64> = units(summary, unit).into_iter().collect();
    let coverage = if source.content.is_empty() {
        1.0
    } else {
        source
            .content
            .iter()
            .filter(|u| present.contains(u))
            .count() as f64
            / source.content.len() as f64
    };
    let copied = super::align::lcs_length(summary, &source.tokens) as f64
        / source.tokens.len().max(1) as f64;
    let copy_factor = if copied >= COPY_LIMIT {
        notes.push(format!("copies {:.0} % of the source", copied * 100.0));
        0.0
    } else {
        1.0
    };
    let text = TextChecks::run(summary, summary_text, language, &mut notes);
    Checks {
        compression,
        coverage,
        copied,
        repetition: text.repetition,
        script: text.script,
        factor: compression_factor * copy_factor * text.factor,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "The city council approved a new budget for public libraries on Monday. \
        The budget adds evening hours at every library and funds new books for children. \
        Council members argued for weeks about the cost. Libraries have lost visitors since \
        the pandemic, and the council hopes longer hours bring readers back.";

    fn run(summary: &str) -> Checks {
        let en = Language::parse("en").unwrap();
        let mut vocab = Vocabulary::default();
        let source = Source::new(SOURCE, en, &mut vocab);
        let tokens = vocab.text(summary, en);
        check(&source, &tokens, summary, en, (0.05, 0.6))
    }

    #[test]
    fn a_good_summary_passes_every_check() {
        let c = run(
            "The council approved a library budget adding evening hours and children's books to bring readers back.",
        );
        assert_eq!(c.factor, 1.0, "{c:?}");
        assert!(c.coverage > 0.3, "{c:?}");
    }

    #[test]
    fn copying_the_source_is_rejected() {
        let c = run(SOURCE);
        assert_eq!(c.factor, 0.0);
        assert!(c.notes.iter().any(|n| n.contains("copies")), "{c:?}");
    }

    /// 27 words: under [`MIN_SOURCE_WORDS`].
    const SHORT: &str = "The city council approved a new library budget on Monday. It adds \
        evening hours at every branch and buys new books for the children of the town.";

    fn run_short(summary: &str) -> Checks {
        let en = Language::parse("en").unwrap();
        let mut vocab = Vocabulary::default();
        let source = Source::new(SHORT, en, &mut vocab);
        assert!(
            source.tokens.len() < MIN_SOURCE_WORDS,
            "the test's source is short"
        );
        let tokens = vocab.text(summary, en);
        check(&source, &tokens, summary, en, (0.05, 0.6))
    }

    #[test]
    fn a_short_source_is_held_to_being_shorter_not_to_the_usual_range() {
        let faithful = run_short(
            "The council approved a library budget. It adds evening hours and new books.",
        );
        assert_eq!(faithful.factor, 1.0, "{faithful:?}");
        let echo = run_short(SHORT);
        assert_eq!(echo.factor, 0.0, "{echo:?}");
        let padded = run_short(&format!("{SHORT} Indeed."));
        assert_eq!(padded.factor, 0.0, "{padded:?}");
        let nearly = run_short(
            "The city council approved a new library budget on Monday. It adds evening hours at every branch and buys new books for the children.",
        );
        assert!(nearly.factor < faithful.factor, "{nearly:?}");
    }

    #[test]
    fn an_echo_scores_nothing_for_any_source_length() {
        let en = Language::parse("en").unwrap();
        let words: Vec<&str> = SOURCE.split_whitespace().collect();
        let mut text = String::new();
        for n in 1..=words.len() {
            text = words[..n].join(" ");
            let mut vocab = Vocabulary::default();
            let source = Source::new(&text, en, &mut vocab);
            let tokens = vocab.text(&text, en);
            let c = check(&source, &tokens, &text, en, (0.05, 0.6));
            assert_eq!(c.factor, 0.0, "{n} words: {c:?}");
        }
        assert!(!text.is_empty());
    }

    #[test]
    fn loops_too_short_and_wrong_script_are_penalized() {
        assert!(run(&"the budget the budget the budget ".repeat(3)).factor < 0.3);
        assert!(run("Budget.").factor < 1.0);
        assert_eq!(
            run("Совет утвердил новый бюджет для библиотек.").factor,
            0.0
        );
    }
}
