//! The queue contract: priority, visibility timeout, receive counts, acknowledgement, dead
//! letters.

use std::time::Duration;

use taogate_shared::domain::{Priority, TaskId};
use taogate_shared::ports::{QueueConsume, QueueDepths, QueueSend};

use crate::aws_fixture::{Backend, MAX_RECEIVES};

async fn receive_one<Q: QueueSend + QueueConsume + QueueDepths>(
    q: &Q,
    visibility: Duration,
) -> Option<taogate_shared::ports::Delivery> {
    // Emulated SQS may need a moment before a just-changed message shows; poll briefly.
    for _ in 0..20 {
        if let Some(d) = q.receive(1, visibility).await.unwrap().into_iter().next() {
            return Some(d);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn priorities_and_visibility<T, Q: QueueSend + QueueConsume + QueueDepths, B>(
    b: Backend<T, Q, B>,
) {
    let q = b.queue;
    let (low, high) = (TaskId::new(), TaskId::new());
    q.send(low, Priority::Low).await.unwrap();
    q.send(high, Priority::High).await.unwrap();

    let first = receive_one(&q, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        (first.task_id, first.priority, first.receive_count),
        (high, Priority::High, 1)
    );
    let second = receive_one(&q, Duration::from_secs(2)).await.unwrap();
    assert_eq!(second.task_id, low, "high work is taken first");
    assert!(
        q.receive(10, Duration::from_secs(2))
            .await
            .unwrap()
            .is_empty(),
        "received messages are invisible"
    );

    // The low message comes back after its visibility timeout, with a higher receive count.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let again = receive_one(&q, Duration::from_secs(30)).await.unwrap();
    assert_eq!((again.task_id, again.receive_count), (low, 2));

    q.ack(&first.receipt).await.unwrap();
    q.ack(&again.receipt).await.unwrap();
    assert!(
        q.receive(10, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty(),
        "acknowledged messages are gone"
    );
    let depths = q.depths().await.unwrap();
    assert!(
        depths
            .iter()
            .all(|(_, d)| d.visible == 0 && d.in_flight == 0),
        "{depths:?}"
    );
}

async fn dead_letters<T, Q: QueueSend + QueueConsume + QueueDepths, B>(b: Backend<T, Q, B>) {
    let q = b.queue;
    let id = TaskId::new();
    q.send(id, Priority::Normal).await.unwrap();
    for attempt in 1..=MAX_RECEIVES {
        let d = receive_one(&q, Duration::from_secs(30)).await.unwrap();
        assert_eq!((d.task_id, d.receive_count), (id, attempt));
        q.release(&d.receipt, Duration::ZERO).await.unwrap();
    }
    // One receive past maxReceiveCount moves the message to the dead letters, from which it is
    // delivered marked, for the worker to reconcile its task.
    let dead = receive_one(&q, Duration::from_secs(30)).await.unwrap();
    assert_eq!((dead.task_id, dead.dead_letter), (id, true));
    assert_eq!(
        dead_depth(&q).await,
        1,
        "dead-lettered and not yet explained"
    );
    // Handed back (its task was still leased), it is delivered from the dead letters again.
    q.release(&dead.receipt, Duration::ZERO).await.unwrap();
    let dead = receive_one(&q, Duration::from_secs(30)).await.unwrap();
    assert_eq!((dead.task_id, dead.dead_letter), (id, true));
    q.ack(&dead.receipt).await.unwrap();
    let mut left = 1;
    for _ in 0..30 {
        left = dead_depth(&q).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "once explained, the dead letter is gone");
}

async fn dead_depth<Q: QueueDepths>(q: &Q) -> u64 {
    let depths = q.depths().await.unwrap();
    depths
        .iter()
        .find(|(p, _)| *p == Priority::Normal)
        .unwrap()
        .1
        .dead
}

/// A postponed message comes back, as often as needed, without nearing the dead letters.
async fn postponing_does_not_count<T, Q: QueueSend + QueueConsume + QueueDepths, B>(
    b: Backend<T, Q, B>,
) {
    let q = b.queue;
    let id = TaskId::new();
    q.send(id, Priority::High).await.unwrap();
    for _ in 0..=MAX_RECEIVES + 1 {
        let d = receive_one(&q, Duration::from_secs(30)).await.unwrap();
        assert_eq!(
            (d.task_id, d.priority, d.receive_count),
            (id, Priority::High, 1)
        );
        q.postpone(&d, Duration::ZERO).await.unwrap();
    }
    let d = receive_one(&q, Duration::from_secs(30)).await.unwrap();
    assert_eq!(d.receive_count, 1);
    q.ack(&d.receipt).await.unwrap();
    let depths = q.depths().await.unwrap();
    assert!(depths.iter().all(|(_, d)| d.dead == 0), "{depths:?}");
}

crate::both_backends!(priorities_and_visibility);
crate::both_backends!(dead_letters);
crate::both_backends!(postponing_does_not_count);
