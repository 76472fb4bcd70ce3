//! The tenant store contract: idempotency claims (one owner at a time, an abandoned request's
//! id carried over, stale owners unable to finish or forget), quotas, usage and keys.

use taogate_shared::domain::tenant::{IDEMPOTENCY_STALE, StoredAnswer};
use taogate_shared::domain::{ApiKey, KeyId, Limits, Millis, ServiceKind};
use taogate_shared::ports::{Begun, Idempotency, KeyAdmin, Metering};

use crate::aws_fixture::Backend;

const NOW: Millis = 1_798_000_000_000;

fn answer(body: &str) -> StoredAnswer {
    StoredAnswer {
        status: 200,
        location: None,
        body: body.into(),
    }
}

async fn idempotency_claims<T: Idempotency, Q, B>(b: Backend<T, Q, B>) {
    let store = b.tasks;
    let scope = format!("scope-{}", uuid::Uuid::new_v4().simple());
    let owned = store.begin(&scope, "fp", "task-1", NOW).await.unwrap();
    assert_eq!(
        owned,
        Begun::Owned {
            token: NOW,
            resource: "task-1".into()
        }
    );
    // While it is being handled: 409; another request: 422.
    assert_eq!(
        store.begin(&scope, "fp", "task-2", NOW + 5).await.unwrap(),
        Begun::InFlight
    );
    assert_eq!(
        store
            .begin(&scope, "other", "task-3", NOW + 5)
            .await
            .unwrap(),
        Begun::Mismatch
    );
    // Abandoned: a later request takes it over, creating under the id the first one chose.
    let later = NOW + IDEMPOTENCY_STALE.as_millis() as Millis + 1;
    let taken = store.begin(&scope, "fp", "task-4", later).await.unwrap();
    assert_eq!(
        taken,
        Begun::Owned {
            token: later,
            resource: "task-1".into()
        }
    );
    // The first owner, come back, can neither answer nor forget it.
    store.finish(&scope, NOW, answer("stale")).await.unwrap();
    store.forget(&scope, NOW).await.unwrap();
    assert_eq!(
        store
            .begin(&scope, "fp", "task-5", later + 1)
            .await
            .unwrap(),
        Begun::InFlight
    );
    // The owner answers; repeats get that answer.
    store.finish(&scope, later, answer("first")).await.unwrap();
    assert_eq!(
        store
            .begin(&scope, "fp", "task-6", later + 2)
            .await
            .unwrap(),
        Begun::Replay(answer("first"))
    );
    // A failed request is forgotten by its owner: the next one starts afresh.
    let failed = format!("{scope}-failed");
    store.begin(&failed, "fp", "task-7", NOW).await.unwrap();
    store.forget(&failed, NOW).await.unwrap();
    assert_eq!(
        store.begin(&failed, "fp", "task-8", NOW + 1).await.unwrap(),
        Begun::Owned {
            token: NOW + 1,
            resource: "task-8".into()
        }
    );
}

crate::both_backends!(idempotency_claims);

async fn quotas_usage_and_keys<T: Metering + KeyAdmin, Q, B>(b: Backend<T, Q, B>) {
    let store = b.tasks;
    let issued = ApiKey::issue("contract", Limits::default(), NOW, |bytes: &mut [u8]| {
        let seed = uuid::Uuid::new_v4();
        for (i, x) in bytes.iter_mut().enumerate() {
            *x = seed.as_bytes()[i % 16] ^ i as u8;
        }
    });
    store.save_key(&issued.key).await.unwrap();
    assert_eq!(
        store.key(&issued.key.id).await.unwrap(),
        Some(issued.key.clone())
    );
    assert!(
        store
            .keys()
            .await
            .unwrap()
            .iter()
            .any(|k| k.id == issued.key.id)
    );
    let id: KeyId = issued.key.id.clone();
    for expected in [true, true, false] {
        let kind = ServiceKind::Tts;
        assert_eq!(
            store.reserve_task(&id, kind, Some(2), NOW).await.unwrap(),
            expected
        );
    }
    store
        .release_task(&id, ServiceKind::Tts, NOW)
        .await
        .unwrap();
    assert!(
        store
            .reserve_task(&id, ServiceKind::Summarization, Some(2), NOW)
            .await
            .unwrap()
    );
    store.admit(&id, None, NOW).await.unwrap();
    let used = store.usage(&id, NOW).await.unwrap();
    assert_eq!(
        (
            used.requests,
            used.of(ServiceKind::Tts),
            used.of(ServiceKind::Summarization)
        ),
        (1, 1, 1)
    );
}

crate::both_backends!(quotas_usage_and_keys);
