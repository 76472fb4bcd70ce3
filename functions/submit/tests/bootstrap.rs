//! The real `submit` bootstrap binary, driven through a Lambda Runtime API emulator with API
//! Gateway v2 events, against LocalStack and moto.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

use std::time::Duration;

use taogate_testkit::{InvocationResult, RuntimeApi, fresh_resources, http_event};

/// Posts `body` to `POST /api/v1/tts` through the emulator; returns the function's response.
async fn post_tts(api: &RuntimeApi, body: &str) -> serde_json::Value {
    let InvocationResult::Response(r) = api
        .invoke(
            http_event("POST", "/api/v1/tts", "", Some(body)),
            Duration::from_secs(30),
        )
        .await
        .unwrap()
    else {
        panic!("the handler failed: {:?}", api.init_error());
    };
    r
}

#[tokio::test]
async fn the_binary_accepts_a_submission_and_refuses_bad_input() {
    let (clients, resources, env) = fresh_resources(3).await.unwrap();
    let api = RuntimeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _function = api
        .spawn(
            env!("CARGO_BIN_EXE_submit"),
            &env,
            &dir.path().join("submit.log"),
        )
        .unwrap();

    let body = r#"{"text":"hello from a lambda","source_language":"EN","priority":"high"}"#;
    let r = post_tts(&api, body).await;
    assert_eq!(r["statusCode"], 200, "{r}");
    let view: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(view["status"], "pending");
    assert_eq!(view["source_language"], "en");
    let id = view["task_id"].as_str().unwrap();
    assert_eq!(r["headers"]["location"], format!("/api/v1/tasks/{id}"));

    // The message is on the high queue, carrying only ids.
    let received = clients
        .sqs
        .receive_message()
        .queue_url(&resources.queues[0])
        .send()
        .await
        .unwrap();
    let message = received
        .messages()
        .first()
        .expect("a message on the high queue");
    assert!(message.body().unwrap().contains(id));

    let InvocationResult::Response(r) = api
        .invoke(
            http_event(
                "POST",
                "/api/v1/tts",
                "",
                Some(r#"{"text":"","source_language":"xx"}"#),
            ),
            Duration::from_secs(30),
        )
        .await
        .unwrap()
    else {
        panic!("the handler failed");
    };
    assert_eq!(r["statusCode"], 422, "{r}");
    assert_eq!(r["headers"]["content-type"], "application/problem+json");
}

/// A queue that refuses the message (here: one that does not exist) must not leave an
/// accepted-looking task behind: the client gets a 503 and the stored task is failed at once.
#[tokio::test]
async fn when_the_queue_refuses_the_client_gets_a_503_and_the_task_is_failed() {
    let (clients, resources, mut env) = fresh_resources(3).await.unwrap();
    for (name, value) in &mut env {
        if name == "QUEUE_URL_NORMAL" {
            *value = format!("{value}-missing");
        }
    }
    let api = RuntimeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _function = api
        .spawn(
            env!("CARGO_BIN_EXE_submit"),
            &env,
            &dir.path().join("submit.log"),
        )
        .unwrap();
    let body = r#"{"text":"nowhere to go","source_language":"en"}"#;
    let r = post_tts(&api, body).await;
    assert_eq!(r["statusCode"], 503, "{r}");
    assert!(
        !r["body"].as_str().unwrap().contains("missing"),
        "5xx are opaque: {r}"
    );
    // The one task stored is failed, with the reason, not left pending.
    let scan = clients
        .dynamodb
        .scan()
        .table_name(&resources.table)
        .send()
        .await
        .unwrap();
    let bodies: Vec<String> = scan
        .items()
        .iter()
        .filter_map(|item| item.get("body").and_then(|b| b.as_s().ok()).cloned())
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let task: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(task["status"], "failed", "{task}");
    assert!(
        task["error_message"]
            .as_str()
            .unwrap()
            .contains("could not be queued"),
        "{task}"
    );
}

/// With `API_AUTH=required` (the template's default) the binary answers 401 with a challenge
/// to a request without a key, and accepts one with a key stored in the table, recording the
/// key on the task.
#[tokio::test]
async fn with_keys_required_a_request_needs_a_stored_key() {
    use taogate_shared::domain::{ApiKey, Limits, now_millis};
    use taogate_shared::ports::{KeyAdmin, TaskReader};
    let (clients, resources, mut env) = fresh_resources(3).await.unwrap();
    env.push(("API_AUTH".into(), "required".into()));
    let table = taogate_shared::aws::DynamoTasks::new(
        clients.dynamodb.clone(),
        taogate_shared::aws::S3Blobs::new(clients.s3.clone(), &resources),
        &resources,
    );
    let issued = ApiKey::issue(
        "lambda",
        Limits::default(),
        now_millis(),
        |b: &mut [u8]| {
            b.iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = i as u8 ^ 0x5a)
        },
    );
    table.save_key(&issued.key).await.unwrap();
    let api = RuntimeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _function = api
        .spawn(
            env!("CARGO_BIN_EXE_submit"),
            &env,
            &dir.path().join("submit.log"),
        )
        .unwrap();
    let body = r#"{"text":"who is asking","source_language":"en"}"#;
    let r = post_tts(&api, body).await;
    assert_eq!(r["statusCode"], 401, "{r}");
    assert_eq!(r["headers"]["www-authenticate"], "Bearer realm=\"taogate\"");

    let mut event = http_event("POST", "/api/v1/tts", "", Some(body));
    event["headers"]["authorization"] = format!("Bearer {}", issued.secret).into();
    let InvocationResult::Response(r) = api.invoke(event, Duration::from_secs(30)).await.unwrap()
    else {
        panic!("the handler failed");
    };
    assert_eq!(r["statusCode"], 200, "{r}");
    let view: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    let id = view["task_id"].as_str().unwrap().parse().unwrap();
    let task = table.get(id).await.unwrap().unwrap();
    assert_eq!(task.owner, issued.key.id.to_string());
}
