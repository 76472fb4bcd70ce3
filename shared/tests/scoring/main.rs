//! The scoring corpus (testdata/scoring) with its known rankings, and property tests of the
//! scorer: bounds, monotonicity, order invariance and robustness to an adversarial answer.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

mod corpus;
mod properties;

use std::time::Duration;

use taogate_shared::config::Settings;
use taogate_shared::domain::{Language, ServiceKind};
use taogate_shared::scoring::{Answer, Entry, Job, Reference, Scored, Scorer};

/// The default scorer: weights 0.7/0.3, floor 0.3, compression 0.05–0.6, 30 s deadline.
pub fn scorer() -> Scorer {
    Scorer::new(&Settings::from_lookup(|_| None).unwrap().scoring)
}

/// A language by code.
pub fn lang(code: &str) -> Language {
    Language::parse(code).unwrap()
}

/// Scores text answers, all with the same latency.
pub fn score_texts(
    kind: ServiceKind,
    language: Language,
    source: Option<&str>,
    texts: &[&str],
    reference: &Reference,
) -> Vec<Scored> {
    let answers: Vec<Answer> = texts
        .iter()
        .map(|t| Answer::Text((*t).to_owned()))
        .collect();
    let entries: Vec<Entry<'_>> = answers
        .iter()
        .map(|answer| Entry {
            answer,
            latency: Duration::from_millis(500),
            transcript: None,
        })
        .collect();
    let job = Job {
        kind,
        language,
        text: source,
        audio_seconds: Some(10.0),
    };
    scorer().score(&job, &entries, reference)
}

/// A file of the scoring corpus.
pub fn testdata(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/scoring")
        .join(name)
}

/// A summary is shorter than its source: for a 25-word source, an echo that answers first
/// never beats a faithful two-sentence summary.
#[test]
fn an_echo_of_a_short_source_never_beats_a_faithful_summary() {
    let source = "The river board met on Monday and approved a new levee for the north farms. \
                  Engineers warned that spring rain could flood the valley again.";
    assert_eq!(source.split_whitespace().count(), 25);
    let faithful = "The board approved a north levee. Engineers fear spring floods.";
    let scored = score_texts(
        ServiceKind::Summarization,
        lang("en"),
        Some(source),
        &[source, faithful],
        &Reference::None,
    );
    assert_eq!(scored[0].accuracy, 0.0, "{:?}", scored[0]);
    // Below the floor, the echo is out whatever its speed.
    let best = scorer().best(&scored, &[50, 5_000], &[0, 1]);
    assert_eq!(best, Some(1), "{scored:?}");
}
