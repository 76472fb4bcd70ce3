//! The serverless flow on LocalStack (SQS, S3) and moto (DynamoDB): `taogate serve --backend aws`
//! runs the same routes and worker as the Lambdas, with a poller standing in for the event source
//! mappings. Each test provisions its own table, queues and bucket.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;
use taogate_shared::aws::{AwsClients, provision};

use super::support::{Api, ServeProcess, multipart, wav_with_transcript};

/// Fresh resources; returns the environment naming them.
pub async fn resources(max_attempts: u32, visibility_s: u32) -> Vec<(String, String)> {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "the LocalStack tests need the local emulators: run `make test`, or `eval \"$(localstack/local-aws.sh start)\"` first"
    );
    let prefix = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let clients = AwsClients::load(true).await;
    let r = provision(&clients, &prefix, max_attempts, visibility_s)
        .await
        .unwrap();
    let [high, normal, low] = r.queues.clone();
    let [dh, dn, dl] = r.dead_letter_queues.clone().map(Option::unwrap_or_default);
    [
        ("TAOGATE_BACKEND", "aws".to_owned()),
        ("TABLE_NAME", r.table),
        ("BUCKET_NAME", r.bucket),
        ("QUEUE_URL_HIGH", high),
        ("QUEUE_URL_NORMAL", normal),
        ("QUEUE_URL_LOW", low),
        ("DLQ_URL_HIGH", dh),
        ("DLQ_URL_NORMAL", dn),
        ("DLQ_URL_LOW", dl),
        ("AWS_S3_FORCE_PATH_STYLE", "true".to_owned()),
        ("MAX_ATTEMPTS", max_attempts.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub fn with<'a>(
    base: &'a [(String, String)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env: Vec<(&str, &str)> = base.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend_from_slice(extra);
    env
}

#[tokio::test]
async fn every_service_completes_on_localstack() {
    let env = resources(3, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(
        &dir.path().join("data"),
        "sim:6",
        &with(
            &env,
            &[("MAX_MINERS_PER_REQUEST", "6"), ("TASK_TIMEOUT", "5")],
        ),
    );
    let api = Api::new(server.addr);

    let transcript = "serverless transcription works";
    let (_, t) = api
        .submit_multipart_and_wait(
            "/api/v1/transcription",
            multipart(&[
                (
                    "audio_file",
                    Some("a.wav"),
                    &wav_with_transcript(transcript),
                ),
                ("source_language", None, b"en"),
            ]),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(t["status"], "completed", "{t}\n{}", server.log());
    assert_eq!(t["result"]["output_text"], transcript);
    assert_eq!(t["candidates"].as_array().unwrap().len(), 6);

    let article = "Queues decouple submission from work. Workers scale with the queue depth. \
        Dead letters keep failed messages for inspection. Priorities get their own queues.";
    let (_, t) = api
        .submit_and_wait(
            "/api/v1/summarization",
            &json!({"text": article, "source_language": "en", "priority": "low"}),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(t["status"], "completed", "{t}");
    assert!(t["result"]["combined_score"].as_f64().unwrap() > 0.0);

    let (_, t) = api
        .submit_and_wait(
            "/api/v1/tts",
            &json!({"text": "spoken through S3", "source_language": "en", "priority": "urgent"}),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(t["status"], "completed", "{t}");
    assert_eq!(t["result"]["miner_uid"], 0);
    let url = t["result"]["audio_url"].as_str().unwrap();
    assert!(
        url.contains("X-Amz-Signature="),
        "audio is a presigned S3 URL: {url}"
    );
    let wav = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    let probe = taogate_shared::audio::probe(Bytes::from(wav.to_vec()), None).unwrap();
    assert_eq!(probe.info.format, "wav");

    let (_, health) = api.get("/api/v1/health").await;
    assert_eq!(health["tasks"]["completed"], 3, "{health}");
    // The list is a JSON array, as the old proxy's; the next page is in `Link`.
    let first = api
        .http
        .get(format!("{}/api/v1/tasks?limit=2", api.base))
        .send()
        .await
        .unwrap();
    let link = first.headers()["link"].to_str().unwrap().to_owned();
    let list: serde_json::Value = first.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["task_type"], "tts", "newest first: {list}");
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.split_once(">; rel=\"next\""))
        .map(|(url, _)| url.to_owned())
        .unwrap_or_else(|| panic!("no next link: {link}"));
    let (_, rest) = api.get(&next).await;
    assert_eq!(rest.as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest[0]["task_type"], "transcription");
}

#[tokio::test]
async fn a_task_that_always_fails_ends_failed_with_no_message_left_in_any_queue() {
    let env = resources(3, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(
        &dir.path().join("data"),
        "sim:erroring,garbage",
        &with(&env, &[("TASK_TIMEOUT", "5")]),
    );
    let api = Api::new(server.addr);
    let (_, t) = api
        .submit_and_wait(
            "/api/v1/tts",
            &json!({"text": "never works", "source_language": "en"}),
            Duration::from_secs(90),
        )
        .await;
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["attempts"], 3);
    assert!(
        t["error_message"]
            .as_str()
            .unwrap()
            .contains("failed after 3 attempts"),
        "{t}"
    );
    // Its own record explains the failure: the message is deleted, not dead-lettered.
    let started = std::time::Instant::now();
    loop {
        let (_, health) = api.get("/api/v1/health").await;
        let normal = &health["queues"]["normal"];
        if normal["visible"] == 0 && normal["in_flight"] == 0 {
            assert_eq!(normal["dead"], 0, "{health}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the message is still queued: {health}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_worker_killed_mid_task_leaves_it_to_finish_on_redelivery() {
    let env = resources(3, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let slow = with(
        &env,
        &[("TASK_TIMEOUT", "3"), ("TAOGATE_SIM_SLOW_MS", "10000")],
    );
    let server = ServeProcess::spawn(&dir.path().join("a"), "sim:slow,slow", &slow);
    let api = Api::new(server.addr);
    let (status, a) = api
        .post_json(
            "/api/v1/tts",
            &json!({"text": "outlive the worker", "source_language": "en"}),
        )
        .await;
    assert_eq!(status, 200);
    let id = a["task_id"].as_str().unwrap().to_owned();
    api.wait_status(&id, "processing", Duration::from_secs(20))
        .await;
    server.kill();

    // A new worker takes the message once its visibility (the lease) runs out.
    let server = ServeProcess::spawn(
        &dir.path().join("b"),
        "sim:good,good",
        &with(&env, &[("TASK_TIMEOUT", "3")]),
    );
    let api = Api::new(server.addr);
    let t = api.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(t["status"], "completed", "{t}\n{}", server.log());
    assert_eq!(t["attempts"], 2);
}

#[tokio::test]
async fn five_hundred_concurrent_submissions_all_finish() {
    let env = resources(3, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(
        &dir.path().join("data"),
        "sim:good,good",
        &with(
            &env,
            &[
                ("TASK_TIMEOUT", "10"),
                ("MAX_CONCURRENT_TASKS", "16"),
                ("RUST_LOG", "warn"),
            ],
        ),
    );
    let api = Api::new(server.addr);
    let ids: Vec<String> = futures::stream::iter(0..500)
        .map(|i| {
            let api = &api;
            async move {
                let priority = ["low", "normal", "high", "urgent"][i % 4];
                let (status, a) = api.post_json("/api/v1/tts", &json!({"text": format!("message {i}"), "source_language": "en", "priority": priority})).await;
                assert_eq!(status, 200, "{a}");
                a["task_id"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(ids.len(), 500);
    let started = std::time::Instant::now();
    loop {
        let (_, health) = api.get("/api/v1/health").await;
        let done = health["tasks"]["completed"].as_u64().unwrap()
            + health["tasks"]["failed"].as_u64().unwrap();
        if done == 500 {
            assert_eq!(health["tasks"]["total"], 500);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {done} of 500 finished: {health}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for id in ids.iter().step_by(50) {
        let (_, t) = api.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(t["status"], "completed", "{t}");
    }
}

#[tokio::test]
async fn a_20_mb_recording_goes_through_a_presigned_upload() {
    let env = resources(3, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(
        &dir.path().join("data"),
        "sim:good,good",
        &with(&env, &[("TASK_TIMEOUT", "20")]),
    );
    let api = Api::new(server.addr);
    // 20 MB of 16 kHz mono PCM (about 11 minutes) carrying its transcript.
    let seconds = 20.0 * 1024.0 * 1024.0 / 32_000.0;
    let samples = taogate_shared::audio::tone(seconds, 220.0, 16_000);
    let wav = taogate_shared::audio::wav_pcm16(&samples, 16_000, Some("a long meeting recording"));
    assert!(wav.len() >= 20 * 1024 * 1024);

    let (upload, put_status) = api.upload(wav).await;
    let url = upload["url"].as_str().unwrap();
    assert!(
        url.contains("X-Amz-Signature="),
        "a presigned S3 PUT: {url}"
    );
    assert!((200..300).contains(&put_status), "{put_status}");
    let (_, task) = api
        .submit_and_wait(
            "/api/v1/transcription",
            &json!({"upload_id": upload["upload_id"], "source_language": "en", "priority": "high"}),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(task["status"], "completed", "{task}\n{}", server.log());
    assert_eq!(task["result"]["output_text"], "a long meeting recording");
}

/// On S3 the presigned URL takes one body of the announced size: a second PUT of 30 MB of
/// random bytes is refused, and the task is processed from the bytes probed at submission.
#[tokio::test]
async fn an_accepted_upload_is_frozen_on_s3() {
    let env = resources(3, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::spawn(
        &dir.path().join("data"),
        "sim:good,good",
        &with(&env, &[("TASK_TIMEOUT", "20")]),
    );
    let api = Api::new(server.addr);
    let (_, id) = api
        .upload_then_try_to_replace_it("the original recording")
        .await;
    let task = api.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(task["status"], "completed", "{task}\n{}", server.log());
    assert_eq!(task["result"]["output_text"], "the original recording");
}
