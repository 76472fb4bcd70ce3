//! The real `metagraph-sync` bootstrap binary, driven through a Lambda Runtime API emulator with
//! scheduled events, against a fake Subtensor node and LocalStack.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

use std::time::Duration;

use taogate_shared::aws::S3Blobs;
use taogate_shared::domain::MinerSnapshot;
use taogate_shared::ports::BlobGet;
use taogate_testkit::fake_node::{FakeNeuron, FakeNode};
use taogate_testkit::{InvocationResult, RuntimeApi, fresh_resources};

fn scheduled_event() -> serde_json::Value {
    serde_json::json!({
        "version": "0", "id": "5b1c6f2e-0000-4000-8000-000000000001",
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "000000000000", "time": "2026-11-25T06:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:000000000000:rule/metagraph-sync"], "detail": {}
    })
}

#[tokio::test]
async fn each_scheduled_run_stores_a_fresh_snapshot_and_a_failed_one_keeps_the_last() {
    let (clients, resources, mut env) = fresh_resources(3).await.unwrap();
    let node = FakeNode::start().await.unwrap();
    node.set_neurons(
        11,
        &[
            FakeNeuron::dev(0, "//Bob", "203.0.113.9:8091".parse().unwrap(), 120),
            FakeNeuron::dev(1, "//Charlie", "0.0.0.0:0".parse().unwrap(), 80),
        ],
    );
    env.push(("BT_NETWORK".into(), node.url()));
    env.push(("BT_NETUID".into(), "11".into()));
    let api = RuntimeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _function = api
        .spawn(
            env!("CARGO_BIN_EXE_metagraph-sync"),
            &env,
            &dir.path().join("sync.log"),
        )
        .unwrap();
    let blobs = S3Blobs::new(clients.s3.clone(), &resources);
    let stored = || async {
        let bytes = blobs.get(&resources.snapshot_key).await.unwrap().unwrap();
        serde_json::from_slice::<MinerSnapshot>(&bytes).unwrap()
    };

    let InvocationResult::Response(r) = api
        .invoke(scheduled_event(), Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("the sync failed");
    };
    assert_eq!(
        r,
        serde_json::json!({"netuid": 11, "block": 4_000_000, "neurons": 2, "serving": 1})
    );
    let first = stored().await;
    assert_eq!(first.netuid, 11);
    assert_eq!(first.miners[0].port, 8091);
    assert_eq!(first.miners[1].stake, 80.0);

    // The node fails: the invocation fails with the node's message, the snapshot stays.
    node.set_failing(true);
    node.advance(10);
    let InvocationResult::Error(e) = api
        .invoke(scheduled_event(), Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("a failed read must fail the invocation");
    };
    assert!(e.to_string().contains("Execution failed"), "{e}");
    assert_eq!(stored().await, first);

    // The node restarts (dropping the connection) and recovers: the next run stores block +10.
    node.set_failing(false);
    node.restart().await.unwrap();
    let InvocationResult::Response(r) = api
        .invoke(scheduled_event(), Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("the sync failed after the node came back");
    };
    assert_eq!(r["block"], 4_000_010);
    assert_eq!(stored().await.block, Some(4_000_010));
}
