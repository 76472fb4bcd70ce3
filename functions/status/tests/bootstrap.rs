//! The real `status` bootstrap binary, driven through a Lambda Runtime API emulator with API
//! Gateway v2 events, against LocalStack and moto.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

use std::time::Duration;

use taogate_shared::aws::{DynamoTasks, S3Blobs};
use taogate_shared::domain::{Language, Priority, ServiceKind, Task, TaskInput, now_millis};
use taogate_shared::ports::TaskCreate;
use taogate_testkit::{InvocationResult, RuntimeApi, fresh_resources, http_event};

#[tokio::test]
async fn the_binary_serves_tasks_lists_and_documents() {
    let (clients, resources, env) = fresh_resources(3).await.unwrap();
    let task = Task::new(
        ServiceKind::Summarization,
        Priority::Low,
        Language::parse("fr").unwrap(),
        TaskInput::Text {
            text: "un texte".into(),
        },
        None,
        now_millis(),
    );
    DynamoTasks::new(
        clients.dynamodb.clone(),
        S3Blobs::new(clients.s3.clone(), &resources),
        &resources,
    )
    .insert(&task)
    .await
    .unwrap();

    let api = RuntimeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _function = api
        .spawn(
            env!("CARGO_BIN_EXE_status"),
            &env,
            &dir.path().join("status.log"),
        )
        .unwrap();
    let call = |method: &str, path: &str, query: &str| {
        let (api, event) = (api.clone(), http_event(method, path, query, None));
        async move {
            match api.invoke(event, Duration::from_secs(30)).await.unwrap() {
                InvocationResult::Response(r) => r,
                InvocationResult::Error(e) => panic!("the handler failed: {e}"),
            }
        }
    };

    let r = call("GET", &format!("/api/v1/tasks/{}", task.id), "").await;
    assert_eq!(r["statusCode"], 200, "{r}");
    let view: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (view["status"].as_str(), view["source_language"].as_str()),
        (Some("pending"), Some("fr"))
    );

    let r = call(
        "GET",
        "/api/v1/tasks",
        "status=pending&task_type=summarization",
    )
    .await;
    let list: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    let r = call("GET", "/api/v1/health", "").await;
    let health: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(health["tasks"]["pending"], 1, "{health}");
    assert_eq!(health["queue_depth"]["high"], 0);

    let r = call(
        "GET",
        "/api/v1/tasks/00000000-0000-7000-8000-000000000000",
        "",
    )
    .await;
    assert_eq!(r["statusCode"], 404);
    let r = call("GET", "/openapi.json", "").await;
    assert_eq!(r["statusCode"], 200);
}
