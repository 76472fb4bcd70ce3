//! End to end against `taogate serve` with simulated miners: every service completes with scores
//! and candidates, and TTS audio is served as a playable WAV.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::support::{Api, ServeProcess, fixture, multipart, wav_with_transcript};

const ENV: &[(&str, &str)] = &[("MAX_MINERS_PER_REQUEST", "6"), ("TASK_TIMEOUT", "5")];

fn assert_scored(task: &serde_json::Value) {
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["attempts"], 1);
    let result = &task["result"];
    for key in [
        "accuracy_score",
        "speed_score",
        "combined_score",
        "processing_time",
    ] {
        let v = result[key].as_f64().unwrap_or(-1.0);
        assert!(
            (0.0..=1.0).contains(&v) || key == "processing_time",
            "{key}={v}"
        );
    }
    assert_eq!(task["accuracy_score"], result["accuracy_score"]);
    assert_eq!(task["processing_time"], result["processing_time"]);
    let candidates = task["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 6, "all six simulated miners are queried");
    let outcome = |uid: u64| {
        candidates.iter().find(|c| c["uid"] == uid).unwrap()["outcome"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // The default mix: good, slow, noisy, erroring, garbage, unreachable.
    assert_eq!(outcome(0), "success");
    assert_eq!(outcome(1), "success");
    assert_eq!(outcome(2), "success");
    assert_eq!(outcome(3), "miner_error");
    assert_eq!(outcome(4), "invalid_answer");
    assert_eq!(outcome(5), "unavailable");
    assert_eq!(
        result["miner_uid"], 0,
        "the fast, agreeing miner wins: {task}"
    );
}

#[tokio::test]
async fn every_service_completes_with_scores_and_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(&dir.path().join("data"), "sim:6", ENV);
    let api = Api::new(server.addr);

    let transcript = "please transcribe this short sentence";
    let (accepted, task) = api
        .submit_multipart_and_wait(
            "/api/v1/transcription",
            multipart(&[
                (
                    "audio_file",
                    Some("clip.wav"),
                    &wav_with_transcript(transcript),
                ),
                ("source_language", None, b"EN"),
                ("priority", None, b"high"),
            ]),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(accepted["status"], "pending");
    assert_eq!(accepted["source_language"], "en");
    assert_eq!(accepted["priority"], "high");
    assert_scored(&task);
    assert_eq!(task["result"]["output_text"], transcript);

    let article = "Rust is a systems programming language. It guarantees memory safety without a garbage collector. \
        Its ownership model checks borrowing at compile time. Many teams adopt Rust for network services. \
        The compiler's messages are known to be helpful. Rust also has a strong package ecosystem.";
    let (_, task) = api
        .submit_and_wait(
            "/api/v1/summarization",
            &json!({"text": article, "source_language": "en"}),
            Duration::from_secs(30),
        )
        .await;
    assert_scored(&task);
    let summary = task["result"]["output_text"].as_str().unwrap();
    assert!(
        !summary.is_empty() && summary.len() < article.len(),
        "{summary}"
    );

    let (_, task) = api
        .submit_and_wait("/api/v1/tts", &json!({"text": "  Hello from the gateway.  ", "source_language": "en", "priority": "low"}), Duration::from_secs(30))
        .await;
    assert_scored(&task);
    let url = task["result"]["audio_url"]
        .as_str()
        .expect("audio is served by URL");
    assert!(task["result"].get("output_text").is_none());
    let audio = api.http.get(url).send().await.unwrap();
    assert_eq!(audio.headers()["content-type"], "audio/wav");
    let wav = audio.bytes().await.unwrap();
    let probe =
        taogate_shared::audio::probe(Bytes::from(wav.to_vec()), None).expect("a playable WAV");
    assert_eq!(probe.info.format, "wav");
    assert!(probe.info.duration_s > 0.5);
}

#[tokio::test]
async fn real_speech_in_every_container_is_accepted_and_transcribed() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(
        &dir.path().join("data"),
        "sim:good,good",
        &[("TASK_TIMEOUT", "5")],
    );
    let api = Api::new(server.addr);
    for name in ["speech.flac", "speech.ogg", "speech.mp3"] {
        let audio = fixture(name);
        let (_, task) = api
            .submit_multipart_and_wait(
                "/api/v1/transcription",
                multipart(&[
                    ("audio_file", Some(name), &audio),
                    ("source_language", None, b"en"),
                ]),
                Duration::from_secs(30),
            )
            .await;
        assert_eq!(task["status"], "completed", "{name}: {task}");
        assert_eq!(
            task["result"]["output_text"], "the quick brown fox jumps over the lazy dog",
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_callback_receives_the_terminal_state() {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let (sink, id_sink) = (received.clone(), ids.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(v): axum::Json<serde_json::Value>| {
                let (sink, id_sink) = (sink.clone(), id_sink.clone());
                async move {
                    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok());
                    id_sink
                        .lock()
                        .unwrap()
                        .push(id.unwrap_or_default().to_owned());
                    sink.lock().unwrap().push(v);
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(
        &dir.path().join("data"),
        "sim:good,good",
        &[("CALLBACK_ALLOWLIST", "127.0.0.0/8")],
    );
    let api = Api::new(server.addr);
    let (accepted, _) = api
        .submit_and_wait(
            "/api/v1/tts",
            &json!({"text": "call me back", "source_language": "en", "callback_url": hook}),
            Duration::from_secs(30),
        )
        .await;
    let id = accepted["task_id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    while received.lock().unwrap().is_empty() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "exactly one delivery: {got:?}");
    assert_eq!(got[0]["task_id"], id);
    assert_eq!(got[0]["status"], "completed");
    // The delivery id receivers de-duplicate by, the same on every try of this callback.
    let delivery_ids = ids.lock().unwrap().clone();
    assert!(delivery_ids[0].starts_with("msg_"), "{delivery_ids:?}");
    assert!(got[0]["result"]["audio_url"].as_str().is_some());

    // A callback that cannot be delivered (nothing listens there) never fails its task.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_, task) = api
        .submit_and_wait("/api/v1/tts", &json!({"text": "nobody listens", "source_language": "en", "callback_url": format!("http://{closed}/hook")}), Duration::from_secs(30))
        .await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(received.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn miners_can_come_from_a_static_file() {
    use taogate_simulator::{Behaviour, SimOptions, SimulatedSubnet};
    let subnet = SimulatedSubnet::start(SimOptions {
        behaviours: vec![Behaviour::Good, Behaviour::Good, Behaviour::Blacklisting],
        ..SimOptions::mixed(0)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("miners.json");
    let snapshot = subnet.snapshot();
    std::fs::write(
        &file,
        serde_json::to_vec(&json!({"netuid": 42, "miners": snapshot.miners})).unwrap(),
    )
    .unwrap();
    let running = super::support::in_process(
        &dir.path().join("data"),
        file.to_str().unwrap(),
        1,
        &[("MINER_ALLOWLIST", "127.0.0.0/8")],
    )
    .await;
    let api = Api::new(running.addr);
    let (_, health) = api.get("/api/v1/health").await;
    assert_eq!(health["miners"]["netuid"], 42, "{health}");
    assert_eq!(health["miners"]["serving_miners"], 3, "{health}");
    let (_, task) = api
        .submit_and_wait(
            "/api/v1/tts",
            &json!({"text": "from a file", "source_language": "en"}),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(task["status"], "completed", "{task}");
    let blacklisted = task["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["uid"] == 2)
        .unwrap();
    assert_eq!(blacklisted["outcome"], "blacklisted");
    assert!(
        blacklisted["error"]
            .as_str()
            .unwrap()
            .contains("validator permit"),
        "{blacklisted}"
    );
    assert_eq!(subnet.served(0), 1);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn large_audio_goes_through_an_upload_and_is_probed_before_queueing() {
    let dir = tempfile::tempdir().unwrap();
    let running = super::support::in_process(dir.path(), "sim:good,good", 1, &[]).await;
    let api = Api::new(running.addr);

    let (upload, put_status) = api.upload(fixture("speech.ogg")).await;
    assert_eq!(upload["method"], "PUT");
    assert_eq!(put_status, 200);
    let (_, task) = api
        .submit_and_wait(
            "/api/v1/transcription",
            &json!({"upload_id": upload["upload_id"], "source_language": "en"}),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        task["result"]["output_text"], "the quick brown fox jumps over the lazy dog",
        "{task}"
    );

    // A non-audio upload is refused before anything is queued; so are unknown and forged ids.
    let (other, _) = api.upload(b"plain text".to_vec()).await;
    for (body, field) in [
        (
            json!({"upload_id": other["upload_id"], "source_language": "en"}),
            "upload_id",
        ),
        (
            json!({"upload_id": "0b7f6a3c9d2e4f1a8b5c6d7e8f9a0b1c", "source_language": "en"}),
            "upload_id",
        ),
        (
            json!({"upload_id": "../../etc/passwd", "source_language": "en"}),
            "upload_id",
        ),
        (json!({"source_language": "en"}), "upload_id"),
        (
            json!({"upload_id": upload["upload_id"], "source_language": "xx"}),
            "source_language",
        ),
    ] {
        let (status, problem) = api.post_json("/api/v1/transcription", &body).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (_, health) = api.get("/api/v1/health").await;
    assert_eq!(
        health["tasks"]["total"], 1,
        "refused uploads queue nothing: {health}"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn behind_a_lambda_a_direct_upload_past_its_payload_limit_points_to_the_upload_route() {
    use taogate_shared::api::{self, LAMBDA_DIRECT_UPLOAD_BYTES, SubmitState};
    use taogate_shared::config::SubmissionSettings;
    use taogate_shared::submission::Intake;
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let db = taogate_shared::embedded::Database::open(
        dir.path(),
        taogate_shared::embedded::QueuePolicy::default(),
    )
    .unwrap();
    let blobs =
        taogate_shared::embedded::BlobDir::new(&dir.path().join("blobs"), "http://x", &db).unwrap();
    let router = api::with_fallbacks(api::submit_routes(
        SubmitState {
            intake: Intake {
                tasks: db.clone(),
                queue: db,
                blobs,
            },
            settings: SubmissionSettings::default().behind_lambda(),
        },
        taogate_shared::config::Settings::from_lookup(|_| None)
            .unwrap()
            .tenancy,
        false,
    ));
    let audio = vec![0u8; LAMBDA_DIRECT_UPLOAD_BYTES + 1];
    let (content_type, body) = multipart(&[
        ("audio_file", Some("big.wav"), &audio),
        ("source_language", None, b"en"),
    ]);
    let request = http::Request::post("/api/v1/transcription")
        .header("content-type", content_type)
        .body(axum::body::Body::from(body))
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 413);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("POST /api/v1/uploads"),
        "{problem}"
    );
}

/// What was probed at submission is what miners get: a second body for the same upload URL is
/// refused, and even bytes written straight into the store under the upload's key (as a
/// presigned URL could before) change nothing the task reads.
#[tokio::test]
async fn an_accepted_upload_is_frozen_whatever_is_written_to_it_afterwards() {
    use taogate_shared::ports::BlobPut as _;
    let dir = tempfile::tempdir().unwrap();
    let running = super::support::in_process(dir.path(), "sim:good,good", 1, &[]).await;
    let api = Api::new(running.addr);
    let (upload, id) = api
        .upload_then_try_to_replace_it("the original recording")
        .await;
    let db = running.db.clone().unwrap();
    let blobs =
        taogate_shared::embedded::BlobDir::new(&dir.path().join("blobs"), "http://x", &db).unwrap();
    let key =
        taogate_shared::domain::BlobKey::upload("", upload["upload_id"].as_str().unwrap()).unwrap();
    let other = wav_with_transcript("a replaced recording");
    blobs
        .put(key.as_str(), other.into(), "application/octet-stream")
        .await
        .unwrap();
    // Another tenant's task beside it is untouched too.
    let (_, beside) = api
        .submit_and_wait(
            "/api/v1/tts",
            &json!({"text": "Still spoken.", "source_language": "en"}),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(beside["status"], "completed", "{beside}");
    let task = api.wait_terminal(&id, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["result"]["output_text"], "the original recording");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_50_mib_recording_completes_although_miners_echo_it_back() {
    // An axon answers with the whole synapse, input included: 67 MB of base64 per miner here,
    // more than MAX_RESPONSE_BYTES allows for what is kept. The echo is skipped, not stored.
    let dir = tempfile::tempdir().unwrap();
    let running =
        super::support::in_process(dir.path(), "sim:good,good", 1, &[("TASK_TIMEOUT", "60")]).await;
    let api = Api::new(running.addr);
    let seconds = (taogate_shared::api::MAX_AUDIO_BYTES - 4096) as f64 / 32_000.0;
    let wav = taogate_shared::audio::wav_pcm16(
        &taogate_shared::audio::tone(seconds, 150.0, 16_000),
        16_000,
        Some("fifty megabytes"),
    );
    assert!(wav.len() > 50_000_000 && wav.len() <= taogate_shared::api::MAX_AUDIO_BYTES);
    let (upload, put_status) = api.upload(wav).await;
    assert_eq!(put_status, 200);
    let (_, task) = api
        .submit_and_wait(
            "/api/v1/transcription",
            &json!({"upload_id": upload["upload_id"], "source_language": "en"}),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["result"]["output_text"], "fifty megabytes");
    running.shutdown().await.unwrap();
}

/// A transcript longer than 32 KiB (here from 1,200 s of audio, sampled at 1 kHz to keep the
/// file small) is not carried in task views, list pages or callbacks: they give its size and
/// where to fetch it.
#[tokio::test]
async fn a_long_transcript_is_served_at_its_own_url_not_inline() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(
        &dir.path().join("data"),
        "sim:good,good,good",
        &[("TASK_TIMEOUT", "20")],
    );
    let api = Api::new(server.addr);
    // Varied words (a repeated sentence would be rejected as a loop): a fixed pseudo-random
    // walk over a small vocabulary.
    let vocabulary: Vec<String> = "harbour bill clause vote committee river bridge lantern \
        council market winter garden station letter village orchard signal meadow engine \
        window candle pepper silver timber anchor basket castle dragon feather glacier \
        hammer island jacket kettle ladder marble needle oyster pillow quarry ribbon saddle"
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut state = 7u64;
    let words: Vec<&str> = (0..6_000)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            vocabulary[(state >> 33) as usize % vocabulary.len()].as_str()
        })
        .collect();
    let transcript = words.join(" ");
    assert!(transcript.len() > 40_000);
    let audio =
        taogate_shared::audio::wav_pcm16(&vec![0i16; 1_000 * 1_200], 1_000, Some(&transcript));
    let (_, task) = api
        .submit_multipart_and_wait(
            "/api/v1/transcription",
            multipart(&[
                ("audio_file", Some("long.wav"), &audio),
                ("source_language", None, b"en"),
            ]),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(task["status"], "completed", "{task}\n{}", server.log());
    let result = &task["result"];
    assert!(result["output_text"].is_null(), "not inline: {result}");
    assert_eq!(result["output_bytes"], transcript.len());
    let url = result["output_url"].as_str().unwrap();
    assert_eq!(
        url,
        format!("/api/v1/tasks/{}/output", task["task_id"].as_str().unwrap())
    );
    let served = api
        .http
        .get(format!("{}{url}", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(served.text().await.unwrap(), transcript);
    let (_, list) = api.get("/api/v1/tasks?limit=5").await;
    assert!(list[0]["result"]["output_text"].is_null(), "{list}");
    // Other tasks have no text output to serve.
    let (status, _) = api
        .get("/api/v1/tasks/01890000-0000-7000-8000-000000000000/output")
        .await;
    assert_eq!(status, 404);
}
