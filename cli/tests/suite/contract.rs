//! The old proxy's `/api/v1`, kept: every shape of `testdata/contract` (written from the old
//! proxy's response models) is found in taogate's answers, key for key and type for type, and
//! the status codes its clients test are the same.

use serde_json::{Value, json};

use super::support::{Api, in_process};

fn example(name: &str) -> Value {
    let path = format!(
        "{}/../testdata/contract/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every key of `example` is in `actual`, with the same JSON type (`null` in the example
/// matches anything; an integer must stay an integer). Returns what differs.
fn differences(example: &Value, actual: &Value, at: &str, out: &mut Vec<String>) {
    match (example, actual) {
        (Value::Null, _) => {}
        (Value::Object(want), Value::Object(got)) => {
            for (key, value) in want {
                match got.get(key) {
                    Some(v) => differences(value, v, &format!("{at}.{key}"), out),
                    None => out.push(format!("{at}.{key} is missing")),
                }
            }
        }
        (Value::Array(want), Value::Array(got)) => {
            if let Some(first) = want.first() {
                if got.is_empty() {
                    out.push(format!("{at} is empty"));
                }
                for (i, item) in got.iter().enumerate() {
                    differences(first, item, &format!("{at}[{i}]"), out);
                }
            }
        }
        (Value::Number(w), Value::Number(g)) => {
            if (w.is_i64() || w.is_u64()) && !(g.is_i64() || g.is_u64()) {
                out.push(format!("{at} is {g}, not an integer"));
            }
        }
        (Value::String(_), Value::String(_)) | (Value::Bool(_), Value::Bool(_)) => {}
        (w, g) => out.push(format!("{at}: {g} where the old proxy had {w}")),
    }
}

pub fn conforms(name: &str, actual: &Value) {
    let mut out = Vec::new();
    differences(&example(name), actual, name, &mut out);
    assert!(out.is_empty(), "{}\nin {actual:#}", out.join("\n"));
}

const ARTICLE: &str = "The harbour will close its north pier for repairs during the winter. \
    Fishing boats will use the south quay until new lights arrive on the north pier.";

#[tokio::test]
async fn the_old_proxys_api_is_answered_shape_for_shape() {
    let dir = tempfile::tempdir().unwrap();
    let running = in_process(dir.path(), "sim:good,good,good", 2, &[]).await;
    let api = Api::new(running.addr);

    // Submissions answer 200 with the old fields (and `Location`).
    let (status, submitted) = api
        .post_json(
            "/api/v1/summarization",
            &json!({"text": ARTICLE, "source_language": "en"}),
        )
        .await;
    assert_eq!(status, 200, "{submitted}");
    conforms("submit", &submitted);
    let id = submitted["task_id"].as_str().unwrap();
    let done = api
        .wait_terminal(id, std::time::Duration::from_secs(30))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    conforms("task_completed", &done);
    // `output_data` is the miner's answer as it sent it: base64 of the text.
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD
        .decode(done["result"]["output_data"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(text).unwrap(),
        done["result"]["output_text"].as_str().unwrap()
    );

    let (status, list) = api.get("/api/v1/tasks?status=completed&limit=10").await;
    assert_eq!(status, 200);
    conforms("task_list", &list);
    let (_, health) = api.get("/api/v1/health").await;
    conforms("health", &health);
    assert_eq!(health["completed_tasks"], 1);
    assert_eq!(health["bittensor_connected"], true);

    // The old status codes: validation 422, an unknown task 404.
    let (status, _) = api
        .post_json("/api/v1/tts", &json!({"text": "", "source_language": "en"}))
        .await;
    assert_eq!(status, 422);
    let (status, _) = api
        .get("/api/v1/tasks/0b9f8c2e-6a3e-4c9b-9d0e-2f1a7c3b5d11")
        .await;
    assert_eq!(status, 404);
    running.shutdown().await.unwrap();

    // With no worker running, a task stays pending for the validator integration.
    let dir = tempfile::tempdir().unwrap();
    let idle = in_process(dir.path(), "sim:good", 0, &[]).await;
    let api = Api::new(idle.addr);
    let (status, _) = api
        .post_json(
            "/api/v1/tts",
            &json!({"text": "Waiting for a validator.", "source_language": "en"}),
        )
        .await;
    assert_eq!(status, 200);
    // An operator route: an admin key in every mode.
    let (status, _) = api.get("/api/v1/validator/integration").await;
    assert_eq!(status, 403);
    let admin = super::validator::key(idle.db.as_ref().unwrap(), "ops", true, 0x21).await;
    let (status, integration) =
        super::validator::get_with_key(&api, "/api/v1/validator/integration", &admin).await;
    assert_eq!(status, 200);
    conforms("integration", &integration);
    assert_eq!(integration["queue_stats"]["pending_count"], 1);
    idle.shutdown().await.unwrap();
}

#[test]
fn the_comparison_finds_a_missing_key_a_changed_type_and_a_float_for_an_integer() {
    let want = json!({"a": 1, "b": {"c": "x"}, "d": [{"e": true}], "f": null});
    let mut out = Vec::new();
    differences(
        &want,
        &json!({"a": 1.5, "b": {"c": 3}, "d": [{}], "f": 7}),
        "t",
        &mut out,
    );
    assert_eq!(out.len(), 3, "{out:?}");
    let mut none = Vec::new();
    differences(
        &want,
        &json!({"a": 2, "b": {"c": "y", "z": 1}, "d": [{"e": false}], "f": null}),
        "t",
        &mut none,
    );
    assert!(none.is_empty(), "{none:?}");
}

/// A response the old proxy's real server gave (`testdata/contract/recorded`).
fn recorded(name: &str) -> (u16, Value) {
    let path = format!(
        "{}/../testdata/contract/recorded/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (
        file["status"].as_u64().unwrap() as u16,
        file["body"].clone(),
    )
}

/// Holds `actual` to the shape of the recorded `name`.
fn like_recorded(name: &str, status: u16, actual: &Value) {
    let (want_status, want) = recorded(name);
    assert_eq!(status, want_status, "{name}: {actual}");
    let mut out = Vec::new();
    differences(&want, actual, name, &mut out);
    assert!(out.is_empty(), "{name}: {}\n{actual}", out.join("\n"));
}

/// The fields a recorded FastAPI 422 names (`loc` after `body`).
fn recorded_fields(name: &str) -> Vec<String> {
    let (status, body) = recorded(name);
    assert_eq!(status, 422);
    body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["type"] != "missing")
        .map(|d| d["loc"][1].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_old_proxys_recorded_answers_are_given_shape_for_shape() {
    let dir = tempfile::tempdir().unwrap();
    let running = in_process(dir.path(), "sim:good,good,good", 1, &[]).await;
    let api = Api::new(running.addr);

    let (status, health) = api.get("/api/v1/health").await;
    like_recorded("health", status, &health);

    // Submissions as the old proxy's clients send them.
    let (status, tts) = api
        .post_json(
            "/api/v1/tts",
            &json!({"text": "Hello from the old client.", "source_language": "en", "priority": "normal"}),
        )
        .await;
    like_recorded("tts", status, &tts);
    let article = "The gateway accepts jobs from clients and hands them to miners. It scores \
                   every answer and keeps the best one for the client.";
    let (status, summary) = api
        .post_json(
            "/api/v1/summarization",
            &json!({"text": article, "source_language": "en", "priority": "normal"}),
        )
        .await;
    like_recorded("summarization", status, &summary);
    // The transcription's language and priority as query parameters, the body only the file.
    let clip = super::support::wav_with_transcript("the quick brown fox jumps over the lazy dog");
    let (status, heard) = api
        .post_multipart(
            "/api/v1/transcription?source_language=en&priority=normal",
            super::support::multipart(&[("audio_file", Some("a.wav"), &clip)]),
        )
        .await;
    like_recorded("transcription_query", status, &heard);
    assert_eq!(heard["priority"], "normal");
    // Both forms are fine when they agree; when they differ the field is named.
    let (status, agreed) = api
        .post_multipart(
            "/api/v1/transcription?source_language=en",
            super::support::multipart(&[
                ("audio_file", Some("a.wav"), &clip),
                ("source_language", None, b"en"),
            ]),
        )
        .await;
    assert_eq!(status, 200, "{agreed}");
    let (status, refused) = api
        .post_multipart(
            "/api/v1/transcription?source_language=en&priority=high",
            super::support::multipart(&[
                ("audio_file", Some("a.wav"), &clip),
                ("source_language", None, b"en"),
                ("priority", None, b"low"),
            ]),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    let named: Vec<&str> = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["priority"], "{refused}");

    // Finished tasks, including the speech's WAV as base64 in output_data.
    for (name, accepted) in [
        ("task_tts", &tts),
        ("task_summarization", &summary),
        ("task_transcription", &heard),
    ] {
        let id = accepted["task_id"].as_str().unwrap();
        let task = api
            .wait_terminal(id, std::time::Duration::from_secs(30))
            .await;
        assert_eq!(task["status"], "completed", "{task}");
        like_recorded(name, 200, &task);
        if name == "task_tts" {
            let wav = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                task["result"]["output_data"].as_str().unwrap(),
            )
            .unwrap();
            assert!(wav.starts_with(b"RIFF"), "the WAV itself");
            assert!(task["result"]["audio_url"].is_string(), "{task}");
            // Never in list pages.
            let (_, page) = api.get("/api/v1/tasks?task_type=tts").await;
            let listed = &page.as_array().unwrap()[0];
            assert_eq!(listed["task_id"], id);
            assert!(listed["result"].get("output_data").is_none(), "{listed}");
        }
    }

    // Validation errors: the same status, problem+json naming the same fields.
    let long = "a".repeat(10_001);
    for (name, path, body) in [
        (
            "summarization_too_short",
            "/api/v1/summarization",
            json!({"text": "short", "source_language": "en", "priority": "normal"}),
        ),
        (
            "tts_bad_language",
            "/api/v1/tts",
            json!({"text": "Hello", "source_language": "xx"}),
        ),
        (
            "tts_bad_priority",
            "/api/v1/tts",
            json!({"text": "Hello", "source_language": "en", "priority": "asap"}),
        ),
        (
            "tts_empty_text",
            "/api/v1/tts",
            json!({"text": "", "source_language": "en"}),
        ),
        (
            "tts_too_long",
            "/api/v1/tts",
            json!({"text": long, "source_language": "en", "priority": "normal"}),
        ),
    ] {
        let (status, problem) = api.post_json(path, &body).await;
        assert_eq!(status, 422, "{name}: {problem}");
        let named: Vec<String> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(named, recorded_fields(name), "{name}: {problem}");
    }
    // A body that is not JSON: 400 here, 422 there (a stated difference).
    let (status, _) = recorded("tts_not_json");
    assert_eq!(status, 422);
    let r = api
        .http
        .post(format!("{}/api/v1/tts", api.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    running.shutdown().await.unwrap();
}
