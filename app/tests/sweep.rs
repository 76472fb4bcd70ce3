//! The sweeper over the embedded stores and a real callback receiver.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

use std::time::Duration;
use taogate_core::domain::Millis;
use tokio::time::Instant;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use taogate_app::ports::{AttemptEnd, QueueConsume, TaskCreate, TaskLease, TaskReader};
use taogate_app::sweep::*;
use taogate_core::config::Settings;
use taogate_core::domain::{Language, Priority, ServiceKind, Task, TaskId, TaskInput, now_millis};
use taogate_embedded::Database;
use taogate_outbound::{DELIVERY_ID_HEADER, HttpCallbacks};

/// Time enough for a sweep that meets no stalled receiver.
fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// A receiver that accepts every connection and never answers, holding it open.
async fn stalled_receiver() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

/// A receiver that answers every callback 200 at once; it keeps the delivery ids.
async fn good_receiver() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let kept = heard.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| async move {
            let id = headers
                .get(DELIVERY_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            kept.lock().unwrap().push(id.to_owned());
            axum::http::StatusCode::OK
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, heard)
}

/// A task, made at `made` (its id sorts by it), that failed at `made` and owes its
/// callback to `receiver`.
async fn owing(db: &Database, receiver: SocketAddr, made: Millis) -> Task {
    let task = Task::with_id(
        TaskId::first_at(made),
        ServiceKind::Summarization,
        Priority::Normal,
        Language::parse("en").unwrap(),
        TaskInput::Text {
            text: "finished".into(),
        },
        Some(format!("http://{receiver}/hook")),
        made,
    );
    db.insert(&task).await.unwrap();
    db.claim(task.id, made, Duration::from_secs(5))
        .await
        .unwrap();
    let end = AttemptEnd::Failed {
        reason: "no".into(),
        candidates: vec![],
    };
    db.end_attempt(task.id, 1, end, made).await.unwrap()
}

/// The callback notifier of the tests: loopback receivers allowed, three tries of 300 ms.
fn loopback_callbacks() -> HttpCallbacks {
    let settings =
        Settings::from_lookup(|k| (k == "CALLBACK_ALLOWLIST").then(|| "127.0.0.0/8".into()))
            .unwrap();
    HttpCallbacks::new(&settings.callbacks).with_try_timeout(Duration::from_millis(300))
}

async fn tries(db: &Database, id: TaskId) -> (u32, bool) {
    let notice = db.get(id).await.unwrap().unwrap().notice.unwrap();
    (notice.tries, notice.delivered_at.is_some())
}

#[tokio::test]
async fn receivers_that_never_answer_delay_no_one_else_and_the_sweep_keeps_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let now = now_millis();
    let made = now - 120_000;
    // Ten stalled receivers owed first (ids sort by time), the good one last: were the
    // callbacks delivered one at a time, it would wait behind all ten.
    let mut stalled = Vec::new();
    for i in 0..10 {
        stalled.push(owing(&db, stalled_receiver().await, made + i).await);
    }
    let (good_addr, heard) = good_receiver().await;
    let good = owing(&db, good_addr, made + 10).await;
    let bound = Duration::from_secs(60);
    let sweeper = Sweeper {
        tasks: db.clone(),
        queue: db.clone(),
        blobs,
        callbacks: loopback_callbacks(),
        bound,
    };

    let deadline = Instant::now() + Duration::from_millis(2_500);
    let report = sweeper.run(now, deadline).await.unwrap();
    assert!(
        Instant::now() <= deadline + Duration::from_secs(5),
        "the sweep kept (about) to its deadline"
    );
    assert_eq!(
        (
            report.callbacks_tried,
            report.callbacks_delivered,
            report.callbacks_left
        ),
        (11, 1, 0),
        "{report:?}"
    );
    let good_id = good.notice.as_ref().unwrap().id.clone();
    assert_eq!(
        *heard.lock().unwrap(),
        vec![good_id],
        "delivered in the one sweep"
    );
    assert_eq!(tries(&db, good.id).await, (1, true));
    for task in &stalled {
        assert_eq!(
            tries(&db, task.id).await,
            (1, false),
            "tried once, still owed"
        );
    }

    // Within the bound none is tried again; after it the stalled ones are, not the good one.
    let again = sweeper.run(now + 1_000, soon()).await.unwrap();
    assert_eq!(again.callbacks_tried, 0, "{again:?}");
    let deadline = Instant::now() + Duration::from_millis(2_500);
    let later = sweeper.run(now + 61_000, deadline).await.unwrap();
    assert_eq!(
        (
            later.callbacks_tried,
            later.callbacks_delivered,
            later.callbacks_left
        ),
        (10, 0, 0),
        "{later:?}"
    );
    for task in &stalled {
        assert_eq!(tries(&db, task.id).await, (2, false));
    }
    assert_eq!(heard.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn callbacks_a_sweep_has_no_time_for_stay_owed_and_untried() {
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let now = now_millis();
    let (addr, heard) = good_receiver().await;
    let task = owing(&db, addr, now - 120_000).await;
    let sweeper = Sweeper {
        tasks: db.clone(),
        queue: db.clone(),
        blobs,
        callbacks: loopback_callbacks(),
        bound: Duration::from_secs(60),
    };

    // Less than a delivery's least time is left: not begun, not counted.
    let short = Instant::now() + taogate_app::notify::LEAST_DELIVERY_TIME / 2;
    let report = sweeper.run(now, short).await.unwrap();
    assert_eq!(
        (report.callbacks_tried, report.callbacks_left),
        (0, 1),
        "{report:?}"
    );
    assert_eq!(tries(&db, task.id).await, (0, false));
    assert!(heard.lock().unwrap().is_empty());

    // The next sweep, at once (nothing was tried, so nothing waits for the bound).
    let report = sweeper.run(now, soon()).await.unwrap();
    assert_eq!(
        (report.callbacks_tried, report.callbacks_delivered),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(tries(&db, task.id).await, (1, true));
}

#[tokio::test]
async fn a_task_stored_without_a_message_is_sent_one_after_the_bound_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = taogate_embedded::test_stores(dir.path());
    let now = now_millis();
    let mut old = Task::new(
        ServiceKind::Summarization,
        Priority::Low,
        Language::parse("en").unwrap(),
        TaskInput::Text {
            text: "lost on the way".into(),
        },
        None,
        now - 120_000,
    );
    old.created_at = now - 120_000;
    let fresh = Task::new(
        ServiceKind::Tts,
        Priority::High,
        Language::parse("en").unwrap(),
        TaskInput::Text { text: "new".into() },
        None,
        now,
    );
    // Both stored, neither sent: as if the submission stopped between the two writes.
    db.insert(&old).await.unwrap();
    db.insert(&fresh).await.unwrap();
    let bound = Duration::from_secs(60);

    let settings = Settings::from_lookup(|_| None).unwrap();
    let sweeper = Sweeper {
        tasks: db.clone(),
        queue: db.clone(),
        blobs,
        callbacks: taogate_outbound::HttpCallbacks::new(&settings.callbacks),
        bound,
    };
    let report = sweeper.run(now, soon()).await.unwrap();
    assert_eq!((report.stranded, report.requeued), (1, 1));
    let sent = db.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].task_id, sent[0].priority), (old.id, Priority::Low));
    assert!(db.get(old.id).await.unwrap().unwrap().requeued_at.is_some());

    let again = sweeper.run(now + 30_000, soon()).await.unwrap();
    assert_eq!(again, SweepReport::default(), "sent once per bound");
    let later = sweeper.run(now + 61_000, soon()).await.unwrap();
    assert_eq!(later.requeued, 2, "both are quiet past the bound by then");
}
