//! The metagraph from a node: the reader against a fake Subtensor node (reconnects, node
//! errors), `taogate metagraph`, and `taogate serve --network ws://… --netuid N` completing tasks
//! on real Python axons registered in that node's metagraph.

use std::net::SocketAddr;
use std::time::Duration;

use taogate_shared::bittensor::{ChainReader, LiveDirectory, spawn_refresh};
use taogate_shared::ports::MinerDirectory;
use taogate_testkit::fake_node::{FakeNeuron, FakeNode};

use crate::support::{Api, ServeProcess, fixture, multipart, python_axon};

/// The recorded finney response for netuid 1 (see testdata/metagraph/README.md).
fn recorded_netuid1() -> Vec<u8> {
    let path = format!(
        "{}/../testdata/metagraph/netuid1-plain-vec.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    hex::decode(text.trim().trim_start_matches("0x")).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reader_decodes_a_recorded_response_and_survives_a_node_restart() {
    let node = FakeNode::start().await.unwrap();
    node.set_raw(1, recorded_netuid1());
    let reader = ChainReader::connect(&node.url()).await.unwrap();

    let first = reader.snapshot(1).await.unwrap();
    assert_eq!(first.miners.len(), 1024);
    assert_eq!(first.serving().count(), 827);
    assert_eq!(first.block, Some(4_000_000));
    assert_eq!(
        first.miners[0].hotkey,
        "5DkMmXtWf16RNdusZGCrJ7ca7ADPgRnZLVWCWbgA7s7sy1AQ"
    );

    // The node goes away and comes back: the same reader reconnects and reads again.
    node.restart().await.unwrap();
    node.advance(5);
    let second = reader.snapshot(1).await.unwrap();
    assert_eq!(second.miners, first.miners);
    assert_eq!(second.block, Some(4_000_005));

    // An unknown subnet has no neurons.
    assert!(reader.snapshot(99).await.unwrap().miners.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_error_is_reported_and_the_last_snapshot_is_kept() {
    let node = FakeNode::start().await.unwrap();
    let bob: SocketAddr = "127.0.0.1:9001".parse().unwrap();
    node.set_neurons(3, &[FakeNeuron::dev(0, "//Bob", bob, 10)]);
    let reader = ChainReader::connect(&node.url()).await.unwrap();

    node.set_failing(true);
    let error = reader.snapshot(3).await.unwrap_err().to_string();
    assert!(error.contains("state_call"), "{error}");
    assert!(error.contains("Execution failed"), "{error}");
    assert!(error.contains(&node.url()), "{error}");

    // A refresher keeps serving the last good snapshot while the node fails.
    node.set_failing(false);
    let directory = LiveDirectory::new(reader.snapshot(3).await.unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let refresher = spawn_refresh(
        reader.clone(),
        3,
        directory.clone(),
        Duration::from_secs(3600),
        stopped,
    );
    node.set_failing(true);
    let calls = node.state_calls();
    directory.mark_stale("5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty");
    // A stale miner is left out at once, and the refresher re-reads (and fails).
    assert!(directory.snapshot().await.unwrap().miners.is_empty());
    wait_until(|| node.state_calls() > calls).await;
    assert_eq!(directory.current().miners.len(), 1, "last snapshot kept");

    // The node recovers; the next stale mark brings a fresh snapshot with the miner back.
    node.set_failing(false);
    node.advance(1);
    directory.mark_stale("5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty");
    let fresh = async {
        loop {
            let s = directory.snapshot().await.unwrap();
            if s.block == Some(4_000_001) && s.miners.len() == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fresh)
        .await
        .expect("a fresh snapshot after the node recovers");
    let _ = stop.send(true);
    refresher.await.unwrap();
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    for _ in 0..400 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 20 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn taogate_metagraph_prints_the_serving_miners() {
    let node = FakeNode::start().await.unwrap();
    node.set_neurons(
        5,
        &[
            FakeNeuron::dev(0, "//Bob", "203.0.113.7:8091".parse().unwrap(), 250),
            FakeNeuron::dev(1, "//Charlie", "0.0.0.0:0".parse().unwrap(), 900),
        ],
    );
    let url = node.url();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_taogate"))
            .args(["metagraph", "--network", &url, "--netuid", "5"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("netuid 5"), "{text}");
    assert!(lines[0].contains("2 neurons, 1 serving"), "{text}");
    assert!(lines[0].contains("1150.000 TAO"), "{text}");
    assert_eq!(
        lines.len(),
        3,
        "header, columns, one serving miner:\n{text}"
    );
    assert!(lines[2].contains("5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"));
    assert!(lines[2].contains("203.0.113.7:8091"));
    assert!(lines[2].contains("250.000"));
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_on_a_fake_node_completes_tasks_on_python_axons() {
    let (_bob, bob_addr) = python_axon("//Bob");
    let (_charlie, charlie_addr) = python_axon("//Charlie");
    let node = FakeNode::start().await.unwrap();
    let neurons = [
        FakeNeuron::dev(0, "//Bob", bob_addr, 500),
        FakeNeuron::dev(1, "//Charlie", charlie_addr, 400),
        // Registered without an axon: never queried.
        FakeNeuron::dev(2, "//Ferdie", "0.0.0.0:0".parse().unwrap(), 900),
        // A stale entry: the metagraph says //Dave serves at Bob's address.
        FakeNeuron::dev(3, "//Dave", bob_addr, 300),
    ];
    node.set_neurons(7, &neurons);
    let dir = tempfile::tempdir().unwrap();
    let url = node.url();
    let serve = ServeProcess::spawn_with(
        &dir.path().join("data"),
        &["--network", &url, "--netuid", "7"],
        &[
            ("BT_HOTKEY_URI", "//Alice"),
            ("MINER_ALLOWLIST", "127.0.0.0/8"),
            ("METAGRAPH_REFRESH", "3600"),
            ("TASK_TIMEOUT", "20"),
        ],
    );
    let api = Api::new(serve.addr);
    let calls_at_start = node.state_calls();

    let (_, done) = api
        .submit_and_wait("/api/v1/summarization",
            &serde_json::json!({"text": "Python axons answer real requests. Nothing is simulated here.", "source_language": "en"}), Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "completed", "{done}\n{}", serve.log());
    assert_eq!(
        done["result"]["output_text"],
        "Python axons answer real requests."
    );
    let candidates = done["candidates"].as_array().unwrap();
    let outcome = |uid: u64| {
        candidates
            .iter()
            .find(|c| c["uid"] == uid)
            .map(|c| c["outcome"].as_str().unwrap().to_owned())
    };
    assert_eq!(outcome(0).as_deref(), Some("success"), "{done}");
    assert_eq!(outcome(1).as_deref(), Some("success"), "{done}");
    assert_eq!(
        outcome(2),
        None,
        "a neuron without an axon is never queried"
    );
    assert_eq!(outcome(3).as_deref(), Some("unauthorized"), "{done}");

    // The 401 marked //Dave's entry stale: the metagraph is re-read at once (the periodic
    // refresh is an hour away).
    wait_until(|| node.state_calls() > calls_at_start).await;

    for (path, body) in [(
        "/api/v1/tts",
        serde_json::json!({"text": "hello from taogate", "source_language": "en"}),
    )] {
        let (_, done) = api
            .submit_and_wait(path, &body, Duration::from_secs(60))
            .await;
        assert_eq!(done["status"], "completed", "{done}\n{}", serve.log());
    }
    let (_, done) = api
        .submit_multipart_and_wait(
            "/api/v1/transcription",
            multipart(&[
                ("audio_file", Some("speech.wav"), &fixture("speech.wav")),
                ("source_language", None, b"en"),
            ]),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(done["status"], "completed", "{done}\n{}", serve.log());
    assert_eq!(done["result"]["output_text"], "hello from a python axon");

    let (_, health) = api.get("/api/v1/health").await;
    assert_eq!(health["miners"]["netuid"], 7, "{health}");
    assert_eq!(health["miners"]["block"], 4_000_000, "{health}");
    assert_eq!(health["miners"]["network"], url.as_str(), "{health}");
}
