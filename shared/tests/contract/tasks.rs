//! The task table contract.

use std::time::Duration;

use taogate_shared::domain::{
    ClaimOutcome, Language, Priority, ServiceKind, Task, TaskInput, TaskOutput, TaskResult,
    TaskStatus,
};
use taogate_shared::ports::{
    AttemptEnd, NoticeLedger, StoreError, TaskCreate, TaskLease, TaskQuery, TaskReader, TaskSweep,
};

use crate::aws_fixture::Backend;

fn task(kind: ServiceKind, created_at: i64) -> Task {
    let mut t = Task::new(
        kind,
        Priority::Normal,
        Language::parse("en").unwrap(),
        TaskInput::Text {
            text: "a text".into(),
        },
        None,
        created_at,
    );
    // Ids are time-ordered; space them so the order is certain.
    std::thread::sleep(Duration::from_millis(2));
    t.id = taogate_shared::domain::TaskId::new();
    t
}

fn result() -> TaskResult {
    TaskResult {
        output: TaskOutput::Text {
            text: "done".into(),
        },
        model_used: Some("m".into()),
        processing_time: 0.5,
        accuracy_score: 0.9,
        speed_score: 0.8,
        combined_score: 0.87,
        miner_uid: 3,
        miner_hotkey: "5X".into(),
        quorum: Some(taogate_shared::domain::Quorum {
            valid_answers: 3,
            supporting: 2,
            confidence: taogate_shared::domain::Confidence::High,
            escalated: 0,
            note: None,
        }),
    }
}

async fn lifecycle<T: TaskReader + TaskCreate + TaskLease, Q, B>(b: Backend<T, Q, B>) {
    let store = b.tasks;
    let t = task(ServiceKind::Tts, 1_000);
    store.insert(&t).await.unwrap();
    assert!(
        matches!(store.insert(&t).await, Err(StoreError::Conflict(_))),
        "a second insert conflicts"
    );
    assert_eq!(store.get(t.id).await.unwrap().unwrap(), t);

    let lease = Duration::from_secs(10);
    let ClaimOutcome::Claimed(claimed) = store.claim(t.id, 2_000, lease).await.unwrap() else {
        panic!("claim")
    };
    assert_eq!(
        (claimed.status, claimed.attempts, claimed.started_at),
        (TaskStatus::Processing, 1, Some(2_000))
    );
    assert_eq!(
        store.claim(t.id, 3_000, lease).await.unwrap(),
        ClaimOutcome::Leased(12_000)
    );

    let retry = AttemptEnd::Retry {
        reason: "try again".into(),
        candidates: vec![],
    };
    let after_retry = store.end_attempt(t.id, 1, retry, 4_000).await.unwrap();
    assert_eq!(
        after_retry.status,
        TaskStatus::Processing,
        "a retry never moves back to pending"
    );
    assert_eq!(after_retry.lease_until, None);

    let ClaimOutcome::Claimed(second) = store.claim(t.id, 5_000, lease).await.unwrap() else {
        panic!("reclaim")
    };
    assert_eq!(second.attempts, 2);
    let stale = AttemptEnd::Completed {
        result: result(),
        candidates: vec![],
    };
    assert!(
        matches!(
            store.end_attempt(t.id, 1, stale, 6_000).await,
            Err(StoreError::Conflict(_))
        ),
        "a stale attempt cannot finish"
    );
    let done = store
        .end_attempt(
            t.id,
            2,
            AttemptEnd::Completed {
                result: result(),
                candidates: vec![],
            },
            7_000,
        )
        .await
        .unwrap();
    assert_eq!(
        (done.status, done.completed_at),
        (TaskStatus::Completed, Some(7_000))
    );
    match store.claim(t.id, 8_000, lease).await.unwrap() {
        ClaimOutcome::Finished(found) => assert_eq!(*found, done, "the finished task as stored"),
        other => panic!("a finished task is not claimed again: {other:?}"),
    }
    let late = AttemptEnd::Failed {
        reason: "late".into(),
        candidates: vec![],
    };
    assert!(
        matches!(
            store.end_attempt(t.id, 2, late, 9_000).await,
            Err(StoreError::Conflict(_))
        ),
        "finished stays finished"
    );
    assert_eq!(
        store
            .claim(taogate_shared::domain::TaskId::new(), 0, lease)
            .await
            .unwrap(),
        ClaimOutcome::Missing
    );

    let counts = store.counts().await.unwrap();
    assert_eq!(
        (
            counts.completed,
            counts.pending,
            counts.processing,
            counts.total
        ),
        (1, 0, 0, 1)
    );
}

async fn listing<T: TaskReader + TaskCreate + TaskLease, Q, B>(b: Backend<T, Q, B>) {
    let store = b.tasks;
    let mut ids = Vec::new();
    for i in 0..7 {
        let kind = if i % 2 == 0 {
            ServiceKind::Tts
        } else {
            ServiceKind::Summarization
        };
        let t = task(kind, 1_000 + i);
        store.insert(&t).await.unwrap();
        ids.push(t.id);
    }
    let ClaimOutcome::Claimed(_) = store
        .claim(ids[0], 5_000, Duration::from_secs(5))
        .await
        .unwrap()
    else {
        panic!()
    };
    let failed = AttemptEnd::Failed {
        reason: "no".into(),
        candidates: vec![],
    };
    store.end_attempt(ids[0], 1, failed, 6_000).await.unwrap();

    // Newest first, in pages of three.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(TaskQuery {
                limit: 3,
                after,
                ..TaskQuery::default()
            })
            .await
            .unwrap();
        assert!(page.tasks.len() <= 3);
        seen.extend(page.tasks.iter().map(|t| t.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let tts = store
        .list(TaskQuery {
            kind: Some(ServiceKind::Tts),
            limit: 100,
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(tts.tasks.len(), 4);
    assert!(tts.next.is_none());
    let pending_tts = store
        .list(TaskQuery {
            kind: Some(ServiceKind::Tts),
            status: Some(TaskStatus::Pending),
            limit: 100,
            after: None,
            owner: None,
        })
        .await
        .unwrap();
    assert_eq!(pending_tts.tasks.len(), 3);
    let failed = store
        .list(TaskQuery {
            status: Some(TaskStatus::Failed),
            limit: 10,
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        failed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );

    let counts = store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed, counts.total), (6, 1, 7));
}

/// Enough tasks to land on every listing shard: pages must still come newest first, each task
/// exactly once, whatever shard it is on.
async fn paging_across_many_tasks<T: TaskReader + TaskCreate, Q, B>(b: Backend<T, Q, B>) {
    let store = b.tasks;
    let mut ids = Vec::new();
    for i in 0..40 {
        let kind = match i % 3 {
            0 => ServiceKind::Transcription,
            1 => ServiceKind::Summarization,
            _ => ServiceKind::Tts,
        };
        let t = task(kind, 1_000 + i);
        store.insert(&t).await.unwrap();
        ids.push((t.id, kind));
    }
    ids.reverse();
    // Every task is pending: a list by status alone merges the services' index entries.
    for (kind, status, page_size) in [
        (None, None, 7),
        (Some(ServiceKind::Transcription), None, 4),
        (None, Some(TaskStatus::Pending), 6),
        (Some(ServiceKind::Tts), Some(TaskStatus::Pending), 5),
    ] {
        let expected: Vec<_> = ids
            .iter()
            .filter(|(_, k)| kind.is_none_or(|want| *k == want))
            .map(|(id, _)| *id)
            .collect();
        let (mut seen, mut after) = (Vec::new(), None);
        loop {
            let page = store
                .list(TaskQuery {
                    kind,
                    status,
                    limit: page_size,
                    after,
                    ..TaskQuery::default()
                })
                .await
                .unwrap();
            assert!(page.tasks.len() <= page_size);
            seen.extend(page.tasks.iter().map(|t| t.id));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{kind:?} {status:?}");
    }
}

/// The sweeper's view: unfinished tasks quiet past the bound, each once per bound.
async fn sweeping<T: TaskCreate + TaskLease + TaskSweep, Q, B>(b: Backend<T, Q, B>) {
    let store = b.tasks;
    let now = taogate_shared::domain::now_millis();
    let bound = Duration::from_secs(60);
    let made_at = |at: i64| {
        // The services take turns: the sweeper reads each one's index entries.
        let kind = ServiceKind::ALL[(at % 3) as usize];
        let mut t = task(kind, at);
        t.id = taogate_shared::domain::TaskId::first_at(at);
        t
    };
    let quiet_pending = made_at(now - 120_000);
    let fresh_pending = made_at(now - 1_000);
    let lapsed = made_at(now - 300_000);
    let held = made_at(now - 290_000);
    for t in [&quiet_pending, &fresh_pending, &lapsed, &held] {
        store.insert(t).await.unwrap();
    }
    // One worker's lease ran out long ago; another's holds for a minute more.
    store
        .claim(lapsed.id, now - 200_000, Duration::from_secs(1))
        .await
        .unwrap();
    store
        .claim(held.id, now, Duration::from_secs(60))
        .await
        .unwrap();

    let mut found: Vec<_> = store
        .stranded(now, bound, 100)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    found.sort();
    let mut expected = vec![quiet_pending.id, lapsed.id];
    expected.sort();
    assert_eq!(found, expected);

    store.mark_requeued(quiet_pending.id, now).await.unwrap();
    let found: Vec<_> = store
        .stranded(now, bound, 100)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(found, vec![lapsed.id], "sent once per bound");
}

/// A finished task with a callback owes it until a try is acknowledged; the sweeper finds it.
async fn owed_callbacks<T: TaskCreate + TaskLease + TaskSweep + NoticeLedger, Q, B>(
    b: Backend<T, Q, B>,
) {
    let store = b.tasks;
    let now = taogate_shared::domain::now_millis();
    let bound = Duration::from_secs(60);
    let mut with_hook = task(ServiceKind::Tts, now);
    with_hook.callback_url = Some("https://example.com/hook".into());
    let without = task(ServiceKind::Tts, now);
    for t in [&with_hook, &without] {
        store.insert(t).await.unwrap();
        store
            .claim(t.id, now, Duration::from_secs(5))
            .await
            .unwrap();
        let end = AttemptEnd::Failed {
            reason: "no".into(),
            candidates: vec![],
        };
        store.end_attempt(t.id, 1, end, now).await.unwrap();
    }
    let found = store.due_notices(now + 61_000, bound, 100).await.unwrap();
    assert_eq!(
        found.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![with_hook.id]
    );
    assert!(
        store
            .due_notices(now + 1_000, bound, 100)
            .await
            .unwrap()
            .is_empty()
    );

    store
        .note_notice(with_hook.id, false, now + 61_000)
        .await
        .unwrap();
    assert!(
        store
            .due_notices(now + 100_000, bound, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .due_notices(now + 122_000, bound, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    store
        .note_notice(with_hook.id, true, now + 122_000)
        .await
        .unwrap();
    assert!(
        store
            .due_notices(now + 999_000, bound, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

crate::both_backends!(lifecycle);
crate::both_backends!(owed_callbacks);
crate::both_backends!(sweeping);
crate::both_backends!(listing);
crate::both_backends!(paging_across_many_tasks);

/// On DynamoDB an item holds at most 400 KB: a larger task body goes to S3 and reads back whole.
#[tokio::test]
async fn a_task_larger_than_a_dynamodb_item_round_trips_on_aws() {
    let store = crate::aws_fixture::aws().await.tasks;
    let mut t = task(ServiceKind::Summarization, 1_000);
    t.input = TaskInput::Text {
        text: "语".repeat(50_000),
    }; // 150 KB of UTF-8, 50,000 characters
    store.insert(&t).await.unwrap();
    let ClaimOutcome::Claimed(_) = store
        .claim(t.id, 2_000, Duration::from_secs(5))
        .await
        .unwrap()
    else {
        panic!()
    };
    let mut big = result();
    big.output = TaskOutput::Text {
        text: "摘".repeat(40_000),
    };
    let candidates = (0..5)
        .map(|uid| taogate_shared::domain::Candidate {
            uid,
            hotkey: "5X".into(),
            outcome: taogate_shared::domain::Outcome::Success,
            latency_ms: 10,
            accuracy: Some(0.5),
            speed: Some(0.5),
            combined: Some(0.5),
            error: Some("语".repeat(20_000)),
            scores: None,
        })
        .collect();
    let done = store
        .end_attempt(
            t.id,
            1,
            AttemptEnd::Completed {
                result: big.clone(),
                candidates,
            },
            3_000,
        )
        .await
        .unwrap();
    assert!(
        serde_json::to_vec(&done).unwrap().len() > 400 * 1024,
        "the body is past the item limit"
    );
    let read = store.get(t.id).await.unwrap().unwrap();
    assert_eq!(read, done);
    let page = store
        .list(TaskQuery {
            limit: 10,
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.tasks, vec![done]);
}

/// A page with an item whose spilled body is gone still answers, without that item; the item
/// itself reads as gone.
#[tokio::test]
async fn a_task_whose_spilled_body_is_gone_is_left_out_of_pages_on_aws() {
    let (b, client, bucket) = crate::aws_fixture::aws_with_bucket().await;
    let store = &b.tasks;
    let mut lost = task(ServiceKind::Summarization, 1_000);
    lost.input = TaskInput::Text {
        text: "语".repeat(150_000),
    }; // 450 KB of UTF-8: past an item's 400 KB
    let older = task(ServiceKind::Summarization, 500);
    store.insert(&older).await.unwrap();
    store.insert(&lost).await.unwrap();
    let kept = task(ServiceKind::Summarization, 2_000);
    store.insert(&kept).await.unwrap();
    // The body object goes (by hand, or a lifecycle rule shorter than the table's TTL).
    let listed = client
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(format!("tasks/{}/", lost.id))
        .send()
        .await
        .unwrap();
    let objects = listed.contents();
    assert_eq!(objects.len(), 1, "the body was spilled to S3");
    for object in objects {
        client
            .delete_object()
            .bucket(&bucket)
            .key(object.key().unwrap())
            .send()
            .await
            .unwrap();
    }
    let page = store
        .list(TaskQuery {
            limit: 10,
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.tasks, vec![kept.clone(), older.clone()]);
    // Page by page, the gap does not end the walk.
    let (mut seen, mut after) = (Vec::new(), None);
    for _ in 0..5 {
        let page = store
            .list(TaskQuery {
                limit: 1,
                after,
                ..TaskQuery::default()
            })
            .await
            .unwrap();
        seen.extend(page.tasks);
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(seen, vec![kept, older]);
    assert_eq!(store.get(lost.id).await.unwrap(), None);
}

/// A finished task past its TTL reads as gone at once, although DynamoDB deletes it days
/// later: the bucket keeps its objects two days past the same TTL, so nothing the table still
/// shows can name an object already deleted.
#[tokio::test]
async fn a_finished_task_past_its_ttl_reads_as_gone_on_aws() {
    let store = crate::aws_fixture::aws_with_ttl(0).await.tasks;
    let waiting = task(ServiceKind::Summarization, 1_000);
    store.insert(&waiting).await.unwrap();
    let done = task(ServiceKind::Summarization, 2_000);
    store.insert(&done).await.unwrap();
    let ClaimOutcome::Claimed(_) = store
        .claim(done.id, 2_000, Duration::from_secs(5))
        .await
        .unwrap()
    else {
        panic!()
    };
    let end = AttemptEnd::Completed {
        result: result(),
        candidates: Vec::new(),
    };
    store.end_attempt(done.id, 1, end, 3_000).await.unwrap();
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(store.get(done.id).await.unwrap(), None);
    let page = store
        .list(TaskQuery {
            limit: 10,
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.tasks, vec![waiting.clone()]);
    assert_eq!(store.get(waiting.id).await.unwrap(), Some(waiting));
}
