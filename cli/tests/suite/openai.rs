//! The OpenAI-compatible routes, called by the official `openai` Python package (pinned in
//! `interop/requirements-openai.txt`) against `taogate serve`: transcriptions in every format
//! and speech in both, each the best miner's answer as taogate's own API shows it; OpenAI's
//! error shape; and a call that outlasts `OPENAI_WAIT` answered once, with its task id.

use super::support::{Api, ServeProcess, run_python_with, wav_with_transcript};
use super::tenants::create_key;

fn python(script: &str, args: &[&str]) -> Vec<String> {
    run_python_with("openai", script, args, "")
}

/// `GET path` with `key`, as JSON.
async fn get(api: &Api, path: &str, key: &str) -> serde_json::Value {
    api.http
        .get(format!("{}{path}", api.base))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn line<'a>(lines: &'a [String], name: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
}

#[tokio::test]
async fn the_openai_package_gets_the_best_miners_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServeProcess::spawn(
        &data,
        "sim:good,noisy,good,slow",
        &[("API_AUTH", "required"), ("TASK_TIMEOUT", "5")],
    );
    let key = create_key(&data, &[], "openai", &[]);
    let spoken = "the openai client transcribes through taogate";
    let audio = dir.path().join("clip.wav");
    std::fs::write(&audio, wav_with_transcript(spoken)).unwrap();
    let base = format!("http://{}/v1", server.addr);
    let lines = python(
        "openai_client.py",
        &[
            &base,
            &key.secret,
            audio.to_str().unwrap(),
            dir.path().to_str().unwrap(),
        ],
    );

    // The transcript in every format is the winner's, as the task list shows it.
    let api = Api::new(server.addr);
    let tasks = get(&api, "/api/v1/tasks?limit=100", &key.secret).await;
    let tasks = tasks.as_array().unwrap();
    let transcriptions: Vec<_> = tasks
        .iter()
        .filter(|t| t["task_type"] == "transcription")
        .collect();
    assert_eq!(transcriptions.len(), 5, "one task per call");
    let winner = transcriptions[0]["result"]["output_text"].as_str().unwrap();
    assert_eq!(winner, spoken);
    assert_eq!(
        line(&lines, "transcription"),
        serde_json::to_string(spoken).unwrap()
    );
    assert_eq!(
        line(&lines, "text"),
        serde_json::to_string(&format!("{spoken}\n")).unwrap()
    );
    assert!(
        line(&lines, "srt").contains("00:00:00,000 --> 00:00:01,000"),
        "{lines:?}"
    );
    assert!(line(&lines, "vtt").starts_with("\"WEBVTT"), "{lines:?}");
    let verbose: serde_json::Value = serde_json::from_str(line(&lines, "verbose")).unwrap();
    assert_eq!(verbose["language"], "english");
    assert_eq!(verbose["text"], spoken);
    assert!((verbose["duration"].as_f64().unwrap() - 1.0).abs() < 0.01);

    // The speech is the winner's audio, byte for byte; pcm is 16-bit 24 kHz mono of it.
    let speeches: Vec<_> = tasks.iter().filter(|t| t["task_type"] == "tts").collect();
    assert_eq!(speeches.len(), 2);
    let saved = std::fs::read(dir.path().join("speech.wav")).unwrap();
    let stored = api
        .http
        .get(format!(
            "{}/api/v1/tasks/{}/audio",
            api.base,
            speeches[1]["task_id"].as_str().unwrap()
        ))
        .header("x-api-key", &key.secret)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(saved, stored.to_vec(), "the client got the stored winner");
    assert_eq!(line(&lines, "speech"), saved.len().to_string());
    let probe = taogate_shared::audio::probe(bytes::Bytes::from(saved), None).unwrap();
    let pcm: f64 = line(&lines, "pcm").parse().unwrap();
    let expected = probe.info.duration_s * 24_000.0 * 2.0;
    assert!(
        (pcm - expected).abs() <= 4.0,
        "{pcm} bytes for {} s",
        probe.info.duration_s
    );

    assert_eq!(
        line(&lines, "models"),
        r#"["taogate-summarization", "taogate-transcription", "taogate-tts"]"#
    );
    assert_eq!(line(&lines, "bad_request"), "400 response_format");
    assert_eq!(line(&lines, "unauthenticated"), "401 authentication_error");
}

#[tokio::test]
async fn a_call_that_outlasts_the_wait_is_answered_once_with_its_task_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServeProcess::spawn_with(
        &data,
        &["--miners", "sim:slow", "--sim-slow-ms", "4000"],
        &[
            ("API_AUTH", "required"),
            ("OPENAI_WAIT", "1"),
            ("TASK_TIMEOUT", "10"),
        ],
    );
    let key = create_key(&data, &[], "patient", &[]);
    let base = format!("http://{}/v1", server.addr);
    let lines = python("openai_timeout.py", &[&base, &key.secret]);
    let parts: Vec<&str> = line(&lines, "status").split(' ').collect();
    assert_eq!(parts[..2], ["504", "task_pending"], "{lines:?}");
    // Not retried: one task, which goes on and completes.
    let api = Api::new(server.addr);
    let tasks = get(&api, "/api/v1/tasks", &key.secret).await;
    assert_eq!(tasks.as_array().unwrap().len(), 1, "{tasks}");
    assert_eq!(tasks[0]["task_id"], parts[2]);
    let started = std::time::Instant::now();
    loop {
        let task = get(&api, &format!("/api/v1/tasks/{}", parts[2]), &key.secret).await;
        if task["status"] == "completed" {
            break;
        }
        assert!(started.elapsed().as_secs() < 30, "{task}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
