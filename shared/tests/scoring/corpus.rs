//! The corpus in testdata/scoring, scored as the worker scores answers.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use taogate_shared::audio;
use taogate_shared::domain::ServiceKind;
use taogate_shared::scoring::{Answer, Entry, Job, Reference, SIGNAL_ONLY};

use super::{lang, score_texts, scorer, testdata};

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(testdata(name)).unwrap()).unwrap()
}

#[test]
fn transcripts_score_exactly_their_controlled_error_rate_and_rank_in_order() {
    let corpus = json("transcripts.json");
    for (code, rate_key) in [("en", "wer"), ("zh", "cer")] {
        let set = &corpus[code];
        let tokens = set["tokens"].as_u64().unwrap() as f64;
        let variants = set["variants"].as_array().unwrap();
        let texts: Vec<&str> = variants
            .iter()
            .map(|v| v["text"].as_str().unwrap())
            .collect();
        let reference = Reference::Text(set["reference"].as_str().unwrap().to_owned());
        let scored = score_texts(
            ServiceKind::Transcription,
            lang(code),
            None,
            &texts,
            &reference,
        );
        for (v, s) in variants.iter().zip(&scored) {
            let expected = v["edits"].as_f64().unwrap() / tokens;
            let measured = s.detail.wer.or(s.detail.cer).unwrap();
            assert!(
                (measured - expected).abs() < 1e-9,
                "{code}: {measured} != {expected}"
            );
            assert!(
                s.detail.wer.is_some() == (rate_key == "wer"),
                "{code} is scored by {rate_key}"
            );
            assert!((s.accuracy - (1.0 - expected)).abs() < 1e-9);
            assert_eq!(s.detail.basis, "reference");
        }
        assert!(scored.windows(2).all(|w| w[0].accuracy > w[1].accuracy));

        // Without a reference, the consensus of the same answers ranks them the same way:
        // the less corrupted an answer, the closer it is to the others' medoid.
        let consensus = score_texts(
            ServiceKind::Transcription,
            lang(code),
            None,
            &texts,
            &Reference::None,
        );
        assert!(
            consensus.windows(2).all(|w| w[0].accuracy >= w[1].accuracy),
            "{code}: {:?}",
            consensus.iter().map(|s| s.accuracy).collect::<Vec<_>>()
        );
        assert!(consensus.iter().all(|s| s.detail.basis == "consensus"));
    }
}

/// name, rank, below the floor, flagged by a check, text
type Summary = (String, u64, bool, bool, String);

fn summaries() -> (Value, Vec<Summary>) {
    let corpus = json("summaries.json");
    let candidates = corpus["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["rank"].as_u64().unwrap(),
                c["below_floor"].as_bool().unwrap_or(false),
                c["degenerate"].as_bool().unwrap_or(false),
                c["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (corpus, candidates)
}

#[test]
fn summaries_rank_from_good_to_degenerate_against_a_reference() {
    let (corpus, candidates) = summaries();
    let texts: Vec<&str> = candidates.iter().map(|c| c.4.as_str()).collect();
    let reference = Reference::Text(corpus["reference"].as_str().unwrap().to_owned());
    let scored = score_texts(
        ServiceKind::Summarization,
        lang("en"),
        corpus["source"].as_str(),
        &texts,
        &reference,
    );
    let floor = scorer().floor;
    for (a, sa) in candidates.iter().zip(&scored) {
        assert!(
            sa.detail.rouge_l.is_some()
                && sa.detail.rouge_1.is_some()
                && sa.detail.rouge_2.is_some()
        );
        if a.3 {
            assert!(!sa.detail.notes.is_empty(), "{} says why: {sa:?}", a.0);
        }
        if a.2 {
            assert!(sa.accuracy < floor, "{} is below the floor: {sa:?}", a.0);
        } else {
            assert!(sa.accuracy >= floor, "{} passes: {sa:?}", a.0);
        }
        for (b, sb) in candidates.iter().zip(&scored) {
            if a.1 < b.1 {
                assert!(
                    sa.accuracy > sb.accuracy,
                    "{} > {}: {} vs {}",
                    a.0,
                    b.0,
                    sa.accuracy,
                    sb.accuracy
                );
            }
        }
    }
}

#[test]
fn by_consensus_the_good_summary_wins_and_the_degenerate_ones_stay_below_the_floor() {
    let (corpus, candidates) = summaries();
    // Miners: the reference and the good summary agree; fair, poor and every degenerate
    // answer are there too.
    let mut texts: Vec<&str> = vec![corpus["reference"].as_str().unwrap()];
    texts.extend(candidates.iter().map(|c| c.4.as_str()));
    let scored = score_texts(
        ServiceKind::Summarization,
        lang("en"),
        corpus["source"].as_str(),
        &texts,
        &Reference::None,
    );
    let latencies = vec![500; texts.len()];
    let uids: Vec<u16> = (0..texts.len() as u16).collect();
    let best = scorer().best(&scored, &latencies, &uids).unwrap();
    assert!(
        best <= 1,
        "the reference-like or the good summary wins, not {}",
        texts[best]
    );
    for (c, s) in candidates.iter().zip(&scored[1..]) {
        if c.3 {
            assert!(s.accuracy < scorer().floor, "{}: {s:?}", c.0);
        }
    }
}

/// The espeak-ng recording and its text.
fn speech() -> (Vec<i16>, String) {
    let bytes = std::fs::read(testdata("tts_good.wav")).unwrap();
    let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
    let samples = reader.samples::<i16>().map(Result::unwrap).collect();
    (
        samples,
        std::fs::read_to_string(testdata("tts.txt")).unwrap(),
    )
}

/// Scores speech answers for `text`, each heard by the recognizer as `transcripts` says.
fn score_speech(
    text: &str,
    answers: &[Answer],
    transcripts: Vec<Option<Result<String, String>>>,
) -> Vec<taogate_shared::scoring::Scored> {
    let entries: Vec<Entry<'_>> = answers
        .iter()
        .zip(transcripts)
        .map(|(answer, transcript)| Entry {
            answer,
            latency: Duration::from_millis(800),
            transcript,
        })
        .collect();
    let job = Job {
        kind: ServiceKind::Tts,
        language: lang("en"),
        text: Some(text),
        audio_seconds: None,
    };
    scorer().score(&job, &entries, &Reference::None)
}

fn wav(samples: &[i16]) -> Bytes {
    Bytes::from(audio::wav_pcm16(samples, 16_000, None))
}

#[test]
fn speech_ranks_good_above_every_fault_and_faults_fall_below_the_floor() {
    let (good, text) = speech();
    let loud: Vec<i16> = good.iter().map(|s| s.saturating_mul(24)).collect();
    let offset: Vec<i16> = good.iter().map(|s| (s / 2).saturating_add(9_000)).collect();
    let cases: Vec<(&str, Vec<i16>)> = vec![
        ("good", good.clone()),
        ("wrong_length", good.repeat(3)),
        ("truncated", good[..good.len() / 6].to_vec()),
        ("silent", vec![0; good.len()]),
        ("clipped", loud),
        ("dc_offset", offset),
    ];
    let answers: Vec<Answer> = cases
        .iter()
        .map(|(_, s)| Answer::Audio(audio::analyze(wav(s), None).unwrap()))
        .collect();
    let scored = score_speech(&text, &answers, vec![None; answers.len()]);
    let accuracy = |name: &str| scored[cases.iter().position(|c| c.0 == name).unwrap()].accuracy;
    assert!(accuracy("good") > 0.9, "{scored:?}");
    assert!(accuracy("good") > accuracy("wrong_length"));
    assert!(accuracy("wrong_length") >= scorer().floor, "{scored:?}");
    for (name, fault) in [
        ("truncated", "expected"),
        ("silent", "silence"),
        ("clipped", "clipped"),
        ("dc_offset", "DC offset"),
    ] {
        let s = &scored[cases.iter().position(|c| c.0 == name).unwrap()];
        assert!(s.accuracy < accuracy("wrong_length"), "{name}: {s:?}");
        assert!(s.accuracy < scorer().floor, "{name}: {s:?}");
        assert!(
            s.detail.notes.iter().any(|n| n.contains(fault)),
            "{name}: {s:?}"
        );
    }
    assert!(
        scored
            .iter()
            .all(|s| s.detail.basis == "signal" && s.detail.notes.iter().any(|n| n == SIGNAL_ONLY))
    );

    // Not audio at all never reaches scoring: decoding refuses it.
    assert!(audio::analyze(Bytes::from_static(b"RIFF but not really a wave"), None).is_err());
}

#[test]
fn with_a_recognizer_tts_accuracy_is_intelligibility() {
    let (good, text) = speech();
    let signal = audio::analyze(wav(&good), None).unwrap();
    let answers = [Answer::Audio(signal.clone()), Answer::Audio(signal)];
    let heard = [
        Ok(text.to_lowercase()),
        Ok("warning sirens will sound on every farm".to_owned()),
    ];
    let scored = score_speech(&text, &answers, heard.into_iter().map(Some).collect());
    assert_eq!(scored[0].detail.basis, "intelligibility");
    assert_eq!(scored[0].detail.intelligibility, Some(1.0));
    let partial = scored[1].detail.intelligibility.unwrap();
    assert!(
        (partial - 7.0 / 16.0).abs() < 1e-9,
        "7 of 16 words heard: {partial}"
    );
    assert!(scored[0].accuracy > scored[1].accuracy);
}
