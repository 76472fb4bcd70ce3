//! The miner health contract: records round-trip, later saves replace earlier ones, unknown
//! hotkeys are simply absent, and loading goes past one DynamoDB batch (100 keys).

use taogate_shared::domain::{MinerHealth, Observation, Outcome};
use taogate_shared::ports::HealthStore;

use crate::aws_fixture::Backend;

async fn health_records<T: HealthStore, Q, B>(b: Backend<T, Q, B>) {
    let store = b.tasks;
    let records: Vec<MinerHealth> = (0..130)
        .map(|i| {
            let mut h = MinerHealth::new(format!("5Miner{i}"));
            h.observe(Outcome::Success, f64::from(i), Some(0.5), 1_000);
            h
        })
        .collect();
    store.save_health(records.clone()).await.unwrap();

    let mut wanted: Vec<String> = records.iter().map(|h| h.hotkey.clone()).collect();
    wanted.push("5NeverSeen".into());
    let mut loaded = store.load_health(wanted).await.unwrap();
    loaded.sort_by(|a, b| a.latency_ms.total_cmp(&b.latency_ms));
    assert_eq!(loaded, records);

    let mut failing = records[7].clone();
    for _ in 0..3 {
        failing.observe(Outcome::Timeout, 9_000.0, None, 2_000);
    }
    assert!(failing.backed_off(2_001));
    store.save_health(vec![failing.clone()]).await.unwrap();
    let loaded = store.load_health(vec!["5Miner7".into()]).await.unwrap();
    assert_eq!(loaded, vec![failing]);
    assert!(store.load_health(Vec::new()).await.unwrap().is_empty());
}

crate::both_backends!(health_records);

/// Twenty attempts observing the same miners at once: every observation counts.
async fn concurrent_observations_add_up<T: HealthStore, Q, B>(b: Backend<T, Q, B>) {
    let store = std::sync::Arc::new(b.tasks);
    let hotkeys = ["5Busy", "5AlsoBusy"];
    let attempts = (0..20).map(|i| {
        let store = store.clone();
        async move {
            let observations = hotkeys
                .iter()
                .map(|h| Observation {
                    hotkey: (*h).to_owned(),
                    outcome: if i % 2 == 0 {
                        Outcome::Success
                    } else {
                        Outcome::Oversized
                    },
                    latency_ms: 100.0,
                    score: None,
                    at: 1_000 + i,
                })
                .collect();
            store.observe_health(observations).await.unwrap()
        }
    });
    futures::future::join_all(attempts).await;
    let records = store
        .load_health(hotkeys.iter().map(|h| (*h).to_owned()).collect())
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    for r in records {
        assert_eq!(r.samples, 20, "{r:?}");
        assert_eq!(r.recent.len(), 10);
    }
}

crate::both_backends!(concurrent_observations_add_up);
