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

/// A key stored beside the running server: an admin's when `admin`.
pub(super) async fn key(
    db: &taogate_shared::embedded::Database,
    name: &str,
    admin: bool,
    seed: u8,
) -> String {
    let limits = Limits {
        admin,
        ..Limits::default()
    };
    let issued = ApiKey::issue(name, limits, now_millis(), |b: &mut [u8]| {
        b.iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = (i as u8).wrapping_mul(7) ^ seed)
    });
    db.save_key(&issued.key).await.unwrap();
    issued.secret
}

/// GETs `path` as JSON with the key `secret`.
pub(super) async fn get_with_key(api: &Api, path: &str, secret: &str) -> (u16, Value) {
    let r = api
        .http
        .get(format!("{}{path}", api.base))
        .header("x-api-key", secret)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn leased_tasks_are_answered_by_a_validator_or_handed_out_again() {
    let dir = tempfile::tempdir().unwrap();
    // No worker: only the validator answers. Keys are optional, yet the validator routes
    // need an admin key.
    let running = in_process(dir.path(), "sim:good", 0, &[("API_AUTH", "optional")]).await;
    let api = Api::new(running.addr);
    let db = running.db.clone().unwrap();
    let admin_secret = key(&db, "validator", true, 0x5a).await;
    let admin = Some(admin_secret.as_str());
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

    // Anonymous callers are no validators, in any mode.
    for path in [
        "/api/v1/validator/distribute".to_owned(),
        format!("/api/v1/validator/tasks/{}/result", ids[0]),
    ] {
        let (status, refused) = post(&api, &path, None, json!({})).await;
        assert_eq!(status, 403, "{path}: {refused}");
    }
    let (status, _) = api.get("/api/v1/validator/integration").await;
    assert_eq!(status, 403);
    let (status, leased) = post(
        &api,
        "/api/v1/validator/distribute?lease=2",
        admin,
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
    let (_, none) = post(&api, "/api/v1/validator/distribute", admin, json!({})).await;
    conforms("distribute_none", &none);
    assert!(none.get("tasks").is_none(), "{none}");

    // Each lease has its own secret token; the task view never shows it.
    let token = |v: &Value, id: &str| by_id(v, id)["lease_token"].as_str().unwrap().to_owned();
    let tokens: Vec<String> = ids.iter().map(|id| token(&leased, id)).collect();
    assert!(tokens.iter().all(|t| t.len() > 60), "{tokens:?}");
    let (_, view) = api.get(&format!("/api/v1/tasks/{}", ids[0])).await;
    assert!(!view.to_string().contains(&tokens[0]), "{view}");

    // The summary comes back within its lease; without its token, or with another lease's,
    // it is refused.
    let answer = B64.encode("A gateway leases tasks to validators.");
    let path = format!("/api/v1/validator/tasks/{}/result", ids[0]);
    let untokened = json!({"attempt": 1, "output_data": answer});
    let (status, refused) = post(&api, &path, admin, untokened).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "lease_token");
    let borrowed = json!({"attempt": 1, "lease_token": tokens[1], "output_data": answer});
    let (status, _) = post(&api, &path, admin, borrowed).await;
    assert_eq!(status, 409);
    let body = json!({"attempt": 1, "lease_token": tokens[0], "output_data": answer, "model_used": "validator-v1"});
    let (status, done) = post(&api, &path, admin, body.clone()).await;
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
    let (status, _) = post(&api, &path, admin, body).await;
    assert_eq!(status, 409);
    // An answer that is not speech is refused, and the task stays leased.
    let path = format!("/api/v1/validator/tasks/{}/result", ids[1]);
    let (status, refused) = post(
        &api,
        &path,
        admin,
        json!({"attempt": 1, "lease_token": tokens[1], "output_data": B64.encode("not audio")}),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "output_data");

    // The lease runs out: the speech and the transcription are handed out again.
    tokio::time::sleep(std::time::Duration::from_millis(2_300)).await;
    let (_, again) = post(&api, "/api/v1/validator/distribute", admin, json!({})).await;
    assert_eq!(again["task_count"], 2, "{again}");
    assert_eq!(by_id(&again, ids[1])["attempt"], 2);
    // The old lease's answer is refused, whatever attempt it names; the new one's is taken,
    // its token in the header.
    let heard_path = format!("/api/v1/validator/tasks/{}/result", ids[2]);
    let text = B64.encode("a clip for the validator");
    for attempt in [1, 2] {
        let stale = json!({"attempt": attempt, "lease_token": tokens[2], "output_data": text});
        let (status, _) = post(&api, &heard_path, admin, stale).await;
        assert_eq!(status, 409);
    }
    let fresh = token(&again, ids[2]);
    let r = api
        .http
        .post(format!("{}{heard_path}", api.base))
        .header("x-api-key", &admin_secret)
        .header("x-lease-token", &fresh)
        .json(&json!({"attempt": 2, "output_data": text}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let samples = taogate_shared::audio::tone(1.5, 220.0, 16_000);
    let wav = taogate_shared::audio::wav_pcm16(&samples, 16_000, None);
    let spoken = token(&again, ids[1]);
    // A body past the task's answer budget (never more than the hard cap) is refused unread.
    let r = api
        .http
        .post(format!("{}{path}", api.base))
        .header("x-api-key", &admin_secret)
        .header("x-lease-token", &spoken)
        .header("content-type", "application/json")
        .body(vec![b' '; 48 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let (status, done) = post(
        &api,
        &path,
        admin,
        json!({"attempt": 2, "lease_token": spoken, "output_data": B64.encode(&wav)}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    // A late result for the finished speech (another lease's token) changes nothing served.
    let other = tone_wav(880.0);
    let late = json!({"attempt": 2, "lease_token": fresh, "output_data": B64.encode(&other)});
    let (status, _) = post(&api, &path, admin, late).await;
    assert_eq!(status, 409);
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
    let tenant = key(&db, "tenant", false, 0x33).await;
    let (status, _) = post(
        &api,
        "/api/v1/validator/distribute",
        Some(&tenant),
        json!({}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &api,
        "/api/v1/validator/distribute?lease=0",
        admin,
        json!({}),
    )
    .await;
    assert_eq!(status, 422);
    running.shutdown().await.unwrap();
}

fn tone_wav(hz: f64) -> Vec<u8> {
    let samples = taogate_shared::audio::tone(1.5, hz, 16_000);
    taogate_shared::audio::wav_pcm16(&samples, 16_000, None)
}

#[tokio::test]
async fn a_workers_attempt_can_never_be_ended_through_the_validator_route() {
    let dir = tempfile::tempdir().unwrap();
    let running = in_process(dir.path(), "sim:good", 0, &[]).await;
    let api = Api::new(running.addr);
    let db = running.db.clone().unwrap();
    let admin = key(&db, "validator", true, 0x5a).await;
    let (_, task) = api
        .post_json(
            "/api/v1/tts",
            &json!({"text": "Claimed by a worker.", "source_language": "en"}),
        )
        .await;
    let id: taogate_shared::domain::TaskId = task["task_id"].as_str().unwrap().parse().unwrap();
    // A worker claims it, as the queue's consumer would.
    use taogate_shared::ports::TaskLease as _;
    let claimed = db
        .claim(id, now_millis(), std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(
        claimed,
        taogate_shared::domain::ClaimOutcome::Claimed(_)
    ));
    let path = format!("/api/v1/validator/tasks/{id}/result");
    let wav = B64.encode(tone_wav(440.0));
    for token in [None, Some("tgl_guess"), Some("")] {
        let mut body = json!({"attempt": 1, "output_data": wav});
        if let Some(t) = token {
            body["lease_token"] = json!(t);
        }
        let (status, refused) = post(&api, &path, Some(&admin), body).await;
        assert_eq!(status, 409, "{token:?}: {refused}");
    }
    let (_, view) = api.get(&format!("/api/v1/tasks/{id}")).await;
    assert_eq!(view["status"], "processing");
    running.shutdown().await.unwrap();
}
