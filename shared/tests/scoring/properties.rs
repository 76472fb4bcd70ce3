//! Properties of the scorer over generated answers.
//!
//! Robustness bound (stated in SCORING.md): adding one adversarial answer to three good ones
//! moves a good answer's accuracy by at most half the largest error rate between two good
//! answers. Without the adversary a good answer is measured against both other good answers
//! (both are medoids); with it, against the more central one only.

use proptest::prelude::*;
use taogate_shared::domain::ServiceKind;
use taogate_shared::scoring::Reference;

use super::{lang, score_texts, scorer};

const WORDS: &[&str] = &[
    "river",
    "board",
    "levee",
    "water",
    "farm",
    "siren",
    "gauge",
    "report",
    "flood",
    "bridge",
    "school",
    "reservoir",
    "meeting",
    "volunteer",
    "engineer",
    "budget",
    "season",
    "rain",
    "mill",
    "north",
    "south",
    "valley",
    "hall",
    "month",
    "hour",
    "level",
    "cost",
    "million",
    "work",
    "public",
];

const NOISE: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
];

fn sentence(indices: &[usize]) -> String {
    indices
        .iter()
        .map(|&i| WORDS[i % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// `base` with `errors` words replaced by noise, at positions spread by `seed`.
fn corrupted(base: &[usize], errors: usize, seed: usize) -> String {
    let mut words: Vec<&str> = base.iter().map(|&i| WORDS[i % WORDS.len()]).collect();
    let n = words.len();
    for k in 0..errors.min(n) {
        let at = (seed + k * 7919) % n;
        words[at] = NOISE[(seed + k) % NOISE.len()];
    }
    words.join(" ")
}

fn text_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..WORDS.len(), 12..60)
}

/// Adversarial answers: random noise, a loop, the words reversed, a single word, a copy of a
/// long source (for summaries).
fn adversary(kind: u8, base: &[usize]) -> String {
    match kind % 4 {
        0 => (0..base.len())
            .map(|i| NOISE[(i * 3) % NOISE.len()])
            .collect::<Vec<_>>()
            .join(" "),
        1 => "thank you ".repeat(base.len() / 2).trim().to_owned(),
        2 => {
            let mut reversed = base.to_vec();
            reversed.reverse();
            sentence(&reversed)
        }
        _ => "river".to_owned(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_score_is_within_bounds(
        base in text_strategy(),
        errors in prop::collection::vec(0usize..20, 1..6),
        kind in 0u8..2,
        with_reference in any::<bool>(),
    ) {
        let texts: Vec<String> = errors.iter().enumerate().map(|(k, e)| corrupted(&base, *e, k)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let reference = if with_reference { Reference::Text(sentence(&base)) } else { Reference::None };
        let source = format!("{} {}", sentence(&base), sentence(&base).repeat(3));
        let service = if kind == 0 { ServiceKind::Transcription } else { ServiceKind::Summarization };
        for s in score_texts(service, lang("en"), Some(&source), &refs, &reference) {
            for v in [s.accuracy, s.speed, s.combined] {
                prop_assert!((0.0..=1.0).contains(&v), "{s:?}");
            }
        }
    }

    #[test]
    fn more_errors_never_score_higher(
        base in text_strategy(),
        fewer in 0usize..10,
        extra in 1usize..10,
        seed in 0usize..1000,
    ) {
        let more = fewer + extra;
        let truth = sentence(&base);
        let answers = [corrupted(&base, fewer, seed), corrupted(&base, more, seed)];
        let refs: Vec<&str> = answers.iter().map(String::as_str).collect();
        // Against a reference...
        let s = score_texts(ServiceKind::Transcription, lang("en"), None, &refs, &Reference::Text(truth.clone()));
        prop_assert!(s[0].accuracy >= s[1].accuracy, "{s:?}");
        // ...and by consensus with two correct answers beside them.
        let pool = [truth.as_str(), truth.as_str(), refs[0], refs[1]];
        let s = score_texts(ServiceKind::Transcription, lang("en"), None, &pool, &Reference::None);
        prop_assert!(s[2].accuracy >= s[3].accuracy, "{s:?}");
    }

    #[test]
    fn the_order_of_candidates_does_not_change_their_scores(
        base in text_strategy(),
        errors in prop::collection::vec(0usize..15, 2..6),
        rotate in 1usize..5,
        kind in 0u8..2,
    ) {
        let texts: Vec<String> = errors.iter().enumerate().map(|(k, e)| corrupted(&base, *e, k * 13)).collect();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.rotate_left(rotate % texts.len());
        order.swap(0, texts.len() - 1);
        let service = if kind == 0 { ServiceKind::Transcription } else { ServiceKind::Summarization };
        let source = sentence(&base).repeat(4);
        let straight: Vec<&str> = texts.iter().map(String::as_str).collect();
        let shuffled: Vec<&str> = order.iter().map(|&i| texts[i].as_str()).collect();
        let a = score_texts(service, lang("en"), Some(&source), &straight, &Reference::None);
        let b = score_texts(service, lang("en"), Some(&source), &shuffled, &Reference::None);
        for (position, &i) in order.iter().enumerate() {
            prop_assert!((a[i].accuracy - b[position].accuracy).abs() < 1e-12);
            prop_assert!((a[i].combined - b[position].combined).abs() < 1e-12);
        }
    }

    #[test]
    fn one_adversary_among_three_good_answers_never_wins_and_moves_them_little(
        base in prop::collection::vec(0usize..WORDS.len(), 30..80),
        errors in prop::collection::vec(0usize..3, 3),
        adversary_kind in 0u8..4,
        position in 0usize..4,
        summarize in any::<bool>(),
    ) {
        let good: Vec<String> = errors.iter().enumerate().map(|(k, e)| corrupted(&base, *e, k * 31 + 1)).collect();
        let bad = adversary(adversary_kind, &base);
        let mut all: Vec<&str> = good.iter().map(String::as_str).collect();
        all.insert(position, &bad);
        let service = if summarize { ServiceKind::Summarization } else { ServiceKind::Transcription };
        // A summary's source: the good text amid unrelated material, long enough to compress.
        let source = format!("{} {}", NOISE.join(" ").repeat(8), sentence(&base));
        let with = score_texts(service, lang("en"), Some(&source), &all, &Reference::None);
        let alone_refs: Vec<&str> = good.iter().map(String::as_str).collect();
        let alone = score_texts(service, lang("en"), Some(&source), &alone_refs, &Reference::None);

        let latencies = vec![500u64; all.len()];
        let uids: Vec<u16> = (0..all.len() as u16).collect();
        let best = scorer().best(&with, &latencies, &uids);
        prop_assert!(best.is_some_and(|b| b != position), "the adversary won: {with:?}");

        if !summarize {
            let pair_error = |a: &str, b: &str| {
                let s = score_texts(ServiceKind::Transcription, lang("en"), None, &[a], &Reference::Text(b.to_owned()));
                s[0].detail.wer.unwrap()
            };
            let mut largest: f64 = 0.0;
            for a in &good {
                for b in &good {
                    largest = largest.max(pair_error(a, b));
                }
            }
            let good_with: Vec<_> = with.iter().enumerate().filter(|(i, _)| *i != position).map(|(_, s)| s).collect();
            for (w, a) in good_with.iter().zip(&alone) {
                let moved = (w.accuracy - a.accuracy).abs();
                prop_assert!(moved <= largest / 2.0 + 1e-9, "moved {moved} > {largest}/2");
            }
        }
    }
}
