//! Work leased to an external validator: `distribute` hands out waiting tasks with their input
//! (the old proxy's shape), a result within the lease completes the task, a stale or invalid one
//! is refused, and a lease that runs out hands the task out again.

use base64::Engine as _;
use serde_json::{Value, json};
use taogate_shared::domain::{ApiKey, Limits, now_millis};
use taogate_shared::ports::KeyAdmin;

use super::contract::conforms;
use super::support::{Api, in_process, multipart, wav_with_transcript};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

async fn post(api: &Api, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = api.http.post(format!("{}{path}", api.base)).json(&body);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn leased_tasks_are_answered_by_a_validator_or_handed_out_again() {
    let dir = tempfile::tempdir().unwrap();
    // No worker: only the validator answers.
    let running = in_process(dir.path(), "sim:good", 0, &[]).await;
    let api = Api::new(running.addr);
    let article = "Validators may answer tasks themselves. The gateway leases each task for a \
                   while and takes the answer back within the lease.";
    let (_, summary) = api
        .post_json(
            "/api/v1/summarization",
            &json!({"text": article, "source_language": "en"}),
        )
        .await;
    let (_, speech) = api
        .post_json(
            "/api/v1/tts",
            &json!({"text": "Read by a validator.", "source_language": "en"}),
        )
        .await;
    let clip = wav_with_transcript("a clip for the validator");
    let (_, heard) = api
        .post_multipart(
            "/api/v1/transcription",
            multipart(&[
                ("audio_file", Some("a.wav"), &clip),
                ("source_language", None, b"en"),
            ]),
        )
        .await;
    let ids: Vec<&str> = [&summary, &speech, &heard]
        .iter()
        .map(|v| v["task_id"].as_str().unwrap())
        .collect();

    let (status, leased) = post(
        &api,
        "/api/v1/validator/distribute?lease=2",
        None,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{leased}");
    conforms("distribute", &leased);
    assert_eq!(leased["task_count"], 3);
    let by_id = |v: &Value, id: &str| {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task_id"] == id)
            .cloned()
            .unwrap()
    };
    let s = by_id(&leased, ids[0]);
    assert_eq!(
        B64.decode(s["input_data"].as_str().unwrap()).unwrap(),
        article.as_bytes()
    );
    assert_eq!(s["attempt"], 1);
    let h = by_id(&leased, ids[2]);
    assert_eq!(B64.decode(h["input_data"].as_str().unwrap()).unwrap(), clip);
    // Everything is leased: nothing more to hand out.
    let (_, none) = post(&api, "/api/v1/validator/distribute", None, json!({})).await;
    conforms("distribute_none", &none);
    assert!(none.get("tasks").is_none(), "{none}");

    // The summary comes back within its lease.
    let answer = B64.encode("A gateway leases tasks to validators.");
    let path = format!("/api/v1/validator/tasks/{}/result", ids[0]);
    let body = json!({"attempt": 1, "output_data": answer, "model_used": "validator-v1"});
    let (status, done) = post(&api, &path, None, body.clone()).await;
    assert_eq!(status, 200, "{done}");
    let (_, task) = api.get(&format!("/api/v1/tasks/{}", ids[0])).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(
        task["result"]["output_text"],
        "A gateway leases tasks to validators."
    );
    assert_eq!(task["result"]["model_used"], "validator-v1");
    assert_eq!(task["result"]["output_data"], answer);
    // Twice is once too many.
    let (status, _) = post(&api, &path, None, body).await;
    assert_eq!(status, 409);
    // An answer that is not speech is refused, and the task stays leased.
    let path = format!("/api/v1/validator/tasks/{}/result", ids[1]);
    let (status, refused) = post(
        &api,
        &path,
        None,
        json!({"attempt": 1, "output_data": B64.encode("not audio")}),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "output_data");

    // The lease runs out: the speech and the transcription are handed out again.
    tokio::time::sleep(std::time::Duration::from_millis(2_300)).await;
    let (_, again) = post(&api, "/api/v1/validator/distribute", None, json!({})).await;
    assert_eq!(again["task_count"], 2, "{again}");
    assert_eq!(by_id(&again, ids[1])["attempt"], 2);
    // The old lease's answer is refused; the new one's is taken.
    let heard_path = format!("/api/v1/validator/tasks/{}/result", ids[2]);
    let text = B64.encode("a clip for the validator");
    let (status, _) = post(
        &api,
        &heard_path,
        None,
        json!({"attempt": 1, "output_data": text}),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = post(
        &api,
        &heard_path,
        None,
        json!({"attempt": 2, "output_data": text}),
    )
    .await;
    assert_eq!(status, 200);
    let samples = taogate_shared::audio::tone(1.5, 220.0, 16_000);
    let wav = taogate_shared::audio::wav_pcm16(&samples, 16_000, None);
    let (status, done) = post(
        &api,
        &path,
        None,
        json!({"attempt": 2, "output_data": B64.encode(&wav)}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    let served = api
        .http
        .get(format!("{}/api/v1/tasks/{}/audio", api.base, ids[1]))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.to_vec(), wav);

    // A key that is not an admin's may not lease.
    let db = running.db.clone().unwrap();
    let issued = ApiKey::issue(
        "tenant",
        Limits::default(),
        now_millis(),
        |b: &mut [u8]| {
            b.iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = (i as u8).wrapping_mul(7) ^ 0x33)
        },
    );
    db.save_key(&issued.key).await.unwrap();
    let (status, _) = post(
        &api,
        "/api/v1/validator/distribute",
        Some(&issued.secret),
        json!({}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &api,
        "/api/v1/validator/distribute?lease=0",
        None,
        json!({}),
    )
    .await;
    assert_eq!(status, 422);
    running.shutdown().await.unwrap();
}
