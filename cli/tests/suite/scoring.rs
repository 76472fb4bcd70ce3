//! Scoring end to end: the simulated subnet through the real worker, in consensus mode and
//! against a reference endpoint started here.
//!
//! The reference endpoint is a test double: a real `AudioTask` pipeline or whisper server
//! cannot run on these machines (no model weights, no GPU). It speaks both contracts for real
//! (JSON `AudioTask`, multipart `/v1/audio/transcriptions`) and answers what a perfect
//! pipeline would: the transcript carried in the audio's comment tag, the simulator's good
//! summary, and for TTS answers the share of the text their duration covers.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};

use super::support::{Api, every_service, in_process};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

const SPOKEN: &str =
    "please transcribe this sentence about the river board and its new warning sirens";

const ARTICLE: &str = "The river valley water board met on Tuesday to review the spring flood report. \
    The old levee north of the mill bridge failed in two places during the March floods. \
    Engineers recommended raising the levee by half a metre before the autumn rains. \
    The board also approved warning sirens for every farm along the lower river. \
    The chair thanked the volunteers who filled sandbags during the floods. \
    A public meeting on the new reservoir takes place next month in the school hall.";

const SPEAK: &str = "Warning sirens will sound on every farm along the lower river.";

/// Submits one task per service and waits for each: transcription, summarization, TTS.
async fn run_every_service(api: &Api) -> Vec<Value> {
    every_service(api, SPOKEN, ARTICLE, SPEAK).await
}

fn candidate(task: &Value, uid: u64) -> &Value {
    task["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["uid"] == uid)
        .unwrap_or_else(|| panic!("uid {uid} was queried: {task}"))
}

#[tokio::test]
async fn the_best_miner_wins_every_service_by_consensus() {
    let dir = tempfile::tempdir().unwrap();
    // uid 0 noisy, 1 slow (correct, 300 ms late), 2 good, 3 degenerate.
    let running = in_process(
        dir.path(),
        "sim:noisy,slow,good,degenerate",
        1,
        &[
            ("MAX_MINERS_PER_REQUEST", "4"),
            ("REQUIRED_ANSWERS", "4"),
            ("TASK_TIMEOUT", "10"),
        ],
    )
    .await;
    let api = Api::new(running.addr);
    for task in run_every_service(&api).await {
        assert_eq!(task["status"], "completed", "{task}");
        assert_eq!(
            task["result"]["miner_uid"], 2,
            "the good miner wins: {task}"
        );
        let (noisy, slow, good, degenerate) = (
            candidate(&task, 0),
            candidate(&task, 1),
            candidate(&task, 2),
            candidate(&task, 3),
        );
        for c in [noisy, slow, good, degenerate] {
            assert_eq!(c["outcome"], "success", "{c}");
            let basis = c["scores"]["basis"].as_str().unwrap();
            assert!(basis == "consensus" || basis == "signal", "{c}");
            assert!(c["scores"]["work_rate"].as_f64().unwrap() > 0.0, "{c}");
        }
        let accuracy = |c: &Value| c["accuracy"].as_f64().unwrap();
        assert!(accuracy(good) > accuracy(noisy), "{task}");
        assert!(accuracy(degenerate) < 0.3, "{degenerate}");
        assert!(
            !degenerate["scores"]["notes"].as_array().unwrap().is_empty(),
            "the degenerate answer says why: {degenerate}"
        );
        assert!(
            good["speed"].as_f64().unwrap() > slow["speed"].as_f64().unwrap(),
            "{task}"
        );
    }
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn when_every_miner_is_degenerate_each_service_fails_after_its_retries_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let running = in_process(
        dir.path(),
        "sim:degenerate,degenerate,degenerate",
        1,
        &[("MAX_ATTEMPTS", "2")],
    )
    .await;
    let api = Api::new(running.addr);
    let tasks = run_every_service(&api).await;
    for (task, why) in tasks.iter().zip(["repeated", "copies", "silence"]) {
        assert_eq!(task["status"], "failed", "{task}");
        assert_eq!(task["attempts"], 2, "{task}");
        let reason = task["error_message"].as_str().unwrap();
        assert!(
            reason.contains("failed after 2 attempts") && reason.contains("accuracy floor"),
            "{reason}"
        );
        assert!(reason.contains(why), "{reason}");
        assert!(task["result"].is_null(), "{task}");
    }
    // Worthless answers count against the miners' health: each has failed every time.
    let hotkeys: Vec<String> = tasks[0]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["hotkey"].as_str().unwrap().to_owned())
        .collect();
    let records =
        taogate_shared::ports::HealthStore::load_health(running.db.as_ref().unwrap(), hotkeys)
            .await
            .unwrap();
    assert_eq!(records.len(), 3);
    for r in &records {
        assert_eq!(r.success_rate, 0.0, "{r:?}");
        assert!(r.failures_in_a_row >= 3, "{r:?}");
    }
    running.shutdown().await.unwrap();
}

/// What the reference double saw.
#[derive(Default)]
struct Seen {
    pipeline_calls: usize,
    recognizer_calls: usize,
    tokens: Vec<String>,
}

#[derive(Clone)]
struct Reference {
    seen: Arc<Mutex<Seen>>,
    /// How long the simulator's correct reading of [`SPEAK`] lasts.
    full_speech: f64,
}

async fn pipeline(
    State(r): State<Reference>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<Value> {
    note_token(&r, &headers, true);
    let request: Value = serde_json::from_slice(&body).unwrap();
    let input = B64.decode(request["input_data"].as_str().unwrap()).unwrap();
    let output = match request["task_type"].as_str().unwrap() {
        "transcription" => taogate_shared::audio::probe(Bytes::from(input), None)
            .unwrap()
            .comment
            .unwrap(),
        "summarization" => {
            taogate_simulator::answers::summarize(&String::from_utf8(input).unwrap(), false)
        }
        other => panic!("no reference for {other}"),
    };
    axum::Json(json!({"output_data": B64.encode(output), "error_message": null}))
}

async fn recognizer(
    State(r): State<Reference>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<Value> {
    note_token(&r, &headers, false);
    let boundary = multer::parse_boundary(headers["content-type"].to_str().unwrap()).unwrap();
    let mut form = multer::Multipart::new(
        futures::stream::once(async move { Ok::<_, std::io::Error>(body) }),
        boundary,
    );
    let mut audio = None;
    let mut fields = Vec::new();
    while let Some(field) = form.next_field().await.unwrap() {
        let name = field.name().unwrap_or_default().to_owned();
        let data = field.bytes().await.unwrap();
        if name == "file" {
            audio = Some(data);
        } else {
            fields.push((name, String::from_utf8_lossy(&data).into_owned()));
        }
    }
    assert!(
        fields.contains(&("model".into(), "whisper-test".into())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&("language".into(), "en".into())),
        "{fields:?}"
    );
    let probe = taogate_shared::audio::probe(audio.unwrap(), None).unwrap();
    let text = probe.comment.unwrap_or_else(|| {
        let words: Vec<&str> = SPEAK.split_whitespace().collect();
        let heard = (words.len() as f64 * (probe.info.duration_s / r.full_speech).min(1.0)).round();
        words[..heard as usize].join(" ")
    });
    axum::Json(json!({"text": text}))
}

fn note_token(r: &Reference, headers: &HeaderMap, pipeline: bool) {
    let mut seen = r.seen.lock().unwrap();
    if pipeline {
        seen.pipeline_calls += 1;
    } else {
        seen.recognizer_calls += 1;
    }
    if let Some(v) = headers.get("authorization") {
        seen.tokens.push(v.to_str().unwrap().to_owned());
    }
}

/// Starts the reference double on loopback; returns its base URL and what it saw.
async fn start_reference() -> (String, Arc<Mutex<Seen>>) {
    let full_speech = taogate_shared::audio::probe(
        Bytes::from(taogate_simulator::answers::speak(SPEAK, false)),
        None,
    )
    .unwrap()
    .info
    .duration_s;
    let state = Reference {
        seen: Arc::default(),
        full_speech,
    };
    let seen = state.seen.clone();
    let app = axum::Router::new()
        .route("/pipeline", axum::routing::post(pipeline))
        .route("/v1/audio/transcriptions", axum::routing::post(recognizer))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

const NOISY_MAJORITY: &str = "sim:noisy,noisy,good";

fn winners(tasks: &[Value]) -> Vec<u64> {
    tasks
        .iter()
        .map(|t| {
            assert_eq!(t["status"], "completed", "{t}");
            t["result"]["miner_uid"].as_u64().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_reference_endpoint_outvotes_an_agreeing_wrong_majority() {
    let (base, seen) = start_reference().await;
    let pipeline_url = format!("{base}/pipeline");
    let asr_url = format!("{base}/v1/audio/transcriptions");

    // By consensus, the two noisy miners agree with each other and win.
    let dir = tempfile::tempdir().unwrap();
    let consensus = in_process(dir.path(), NOISY_MAJORITY, 1, &[("REQUIRED_ANSWERS", "3")]).await;
    let tasks = run_every_service(&Api::new(consensus.addr)).await;
    assert!(
        winners(&tasks).iter().all(|uid| *uid != 2),
        "consensus follows the majority: {tasks:?}"
    );
    consensus.shutdown().await.unwrap();

    // With the reference, the good miner wins every service.
    let dir = tempfile::tempdir().unwrap();
    let reference = in_process(
        dir.path(),
        NOISY_MAJORITY,
        1,
        &[
            ("REQUIRED_ANSWERS", "3"),
            ("SCORING_MODE", "reference"),
            ("REFERENCE_URL", &pipeline_url),
            ("REFERENCE_ASR_URL", &asr_url),
            ("REFERENCE_ASR_MODEL", "whisper-test"),
            ("REFERENCE_API_KEY", "sk-reference-test"),
        ],
    )
    .await;
    let tasks = run_every_service(&Api::new(reference.addr)).await;
    assert_eq!(winners(&tasks), vec![2, 2, 2], "{tasks:?}");
    let bases: Vec<&str> = tasks
        .iter()
        .map(|t| candidate(t, 2)["scores"]["basis"].as_str().unwrap())
        .collect();
    assert_eq!(bases, vec!["reference", "reference", "intelligibility"]);
    let tts = &tasks[2];
    assert_eq!(candidate(tts, 2)["scores"]["intelligibility"], 1.0, "{tts}");
    assert!(
        candidate(tts, 0)["scores"]["intelligibility"]
            .as_f64()
            .unwrap()
            < 0.9,
        "{tts}"
    );
    assert_eq!(candidate(&tasks[0], 2)["scores"]["wer"], 0.0);
    {
        let seen = seen.lock().unwrap();
        // The pipeline served the transcription and summarization references; the
        // recognizer heard each of the three TTS answers.
        assert_eq!(seen.pipeline_calls, 2);
        assert_eq!(seen.recognizer_calls, 3);
        assert!(seen.tokens.iter().all(|t| t == "Bearer sk-reference-test"));
        assert_eq!(seen.tokens.len(), 5);
    }
    for t in &tasks {
        assert!(
            !t.to_string().contains("sk-reference-test"),
            "the key is not stored"
        );
    }
    reference.shutdown().await.unwrap();

    // The recognizer alone serves transcription references (auto mode).
    let dir = tempfile::tempdir().unwrap();
    let asr_only = in_process(
        dir.path(),
        NOISY_MAJORITY,
        1,
        &[
            ("REQUIRED_ANSWERS", "3"),
            ("SCORING_MODE", "auto"),
            ("REFERENCE_ASR_URL", &asr_url),
            ("REFERENCE_ASR_MODEL", "whisper-test"),
        ],
    )
    .await;
    let tasks = run_every_service(&Api::new(asr_only.addr)).await;
    assert_eq!(winners(&tasks)[0], 2, "{tasks:?}");
    assert_eq!(candidate(&tasks[0], 2)["scores"]["basis"], "reference");
    assert_eq!(
        candidate(&tasks[1], 2)["scores"]["basis"],
        "consensus",
        "no pipeline: summaries fall back to consensus"
    );
    assert!(candidate(&tasks[1], 2)["scores"].get("notes").is_none());
    asr_only.shutdown().await.unwrap();

    // In reference mode, the missing pipeline is named in the summaries' notes.
    let dir = tempfile::tempdir().unwrap();
    let strict = in_process(
        dir.path(),
        NOISY_MAJORITY,
        1,
        &[
            ("REQUIRED_ANSWERS", "3"),
            ("SCORING_MODE", "reference"),
            ("REFERENCE_ASR_URL", &asr_url),
            ("REFERENCE_ASR_MODEL", "whisper-test"),
        ],
    )
    .await;
    let tasks = run_every_service(&Api::new(strict.addr)).await;
    let notes = candidate(&tasks[1], 2)["scores"]["notes"].to_string();
    assert!(
        notes.contains("no reference endpoint serves summarization"),
        "{notes}"
    );
    strict.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_reference_falls_back_to_consensus_and_says_so() {
    // Port 9 (discard) is closed on loopback; a port freed a moment ago could be taken by
    // another test's server meanwhile.
    let closed = "http://127.0.0.1:9/pipeline".to_owned();
    let dir = tempfile::tempdir().unwrap();
    let running = in_process(
        dir.path(),
        "sim:good,good,noisy",
        1,
        &[
            ("REQUIRED_ANSWERS", "3"),
            ("SCORING_MODE", "reference"),
            ("REFERENCE_URL", &closed),
        ],
    )
    .await;
    let tasks = run_every_service(&Api::new(running.addr)).await;
    for t in &tasks[..2] {
        assert_eq!(t["status"], "completed", "{t}");
        assert!(t["result"]["miner_uid"] != 2, "{t}");
        let scores = &candidate(t, 0)["scores"];
        assert_eq!(scores["basis"], "consensus", "{t}");
        let notes = scores["notes"].to_string();
        assert!(notes.contains("reference failed"), "{notes}");
        assert!(notes.contains("pipeline unreachable"), "{notes}");
    }
    running.shutdown().await.unwrap();
}
