//! Interoperability with real Python peers (the pinned `bittensor` packages in `interop/`):
//! taogate's dendrite against an unmodified `bt.Axon` 10.5.0, its `btauth/1` requests against the
//! SDK 11.3.0 verifier, and a real Python `Dendrite` against the miner simulator.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;
use taogate_shared::bittensor::{
    AxonClient, AxonClientConfig, BtauthClient, Hotkey, Stamp, btauth,
};
use taogate_shared::config::Secret;
use taogate_shared::domain::Outcome;
use taogate_shared::domain::{Miner, MinerReply, SynapseRequest};
use taogate_shared::ports::MinerClient;
use taogate_simulator::{Behaviour, SimOptions, SimulatedSubnet};

use crate::support::{PythonPeer, fixture, free_port, run_python};

const BOB: &str = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";
const CHARLIE: &str = "5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y";
const DEADLINE: Duration = Duration::from_secs(20);

fn key(uri: &str) -> Arc<Hotkey> {
    Arc::new(Hotkey::from_secret(&Secret::new(uri)).unwrap())
}

fn dendrite(uri: &str, synapse: &str) -> AxonClient {
    AxonClient::new(
        key(uri),
        AxonClientConfig {
            synapse_name: synapse.into(),
            dendrite_version: 10_005_000,
            dendrite_ip: "127.0.0.1".into(),
            max_response_bytes: 16 * 1024 * 1024,
        },
    )
    .unwrap()
}

fn miner(port: u16, hotkey: &str) -> Miner {
    Miner {
        uid: 1,
        hotkey: hotkey.into(),
        ip: "127.0.0.1".parse().unwrap(),
        port,
        stake: 1.0,
        incentive: 0.0,
        chain: None,
    }
}

fn request(task_type: &'static str, input: &[u8]) -> SynapseRequest {
    SynapseRequest::new(
        task_type,
        Bytes::from(base64::engine::general_purpose::STANDARD.encode(input)),
        "en",
    )
}

fn output(reply: &MinerReply) -> Vec<u8> {
    let body = reply.body.as_ref().expect("a body");
    base64::engine::general_purpose::STANDARD
        .decode(body.output_data.as_deref().expect("output_data"))
        .unwrap()
}

/// A real `bt.Axon` with hotkey //Bob that serves //Alice only.
fn python_axon() -> (PythonPeer, Miner) {
    let (peer, addr) = crate::support::python_axon("//Bob");
    assert_eq!(peer.ready[1], BOB, "the axon's hotkey");
    (peer, miner(addr.port(), BOB))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_axon_answers_every_service_with_200() {
    let (_axon, bob) = python_axon();
    let client = dendrite("//Alice", "AudioTask");

    let speech = fixture("speech.wav");
    let reply = client
        .query(&bob, &request("transcription", &speech), DEADLINE)
        .await;
    assert_eq!(reply.outcome, Outcome::Success, "{:?}", reply.error);
    assert_eq!(output(&reply), b"hello from a python axon");

    let reply = client
        .query(&bob, &request("tts", b"hello there"), DEADLINE)
        .await;
    assert_eq!(reply.outcome, Outcome::Success, "{:?}", reply.error);
    let wav = output(&reply);
    let probe = taogate_shared::audio::probe(Bytes::from(wav), Some("a.wav"))
        .expect("the axon's TTS answer is a WAV");
    assert!(probe.info.duration_s > 0.4, "{probe:?}");

    let text = b"The gateway signs each request. Miners answer with the whole synapse.";
    let reply = client
        .query(&bob, &request("summarization", text), DEADLINE)
        .await;
    assert_eq!(reply.outcome, Outcome::Success, "{:?}", reply.error);
    assert_eq!(output(&reply), b"The gateway signs each request.");
    assert_eq!(
        reply.body.as_ref().unwrap().pipeline_model.as_deref(),
        Some("python-axon-peer")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_refusal_of_a_real_axon_is_classified() {
    let (_axon, bob) = python_axon();
    let alice = dendrite("//Alice", "AudioTask");
    let hello = request("tts", b"hello");

    // Blacklist: //Eve is not registered with this miner.
    let reply = dendrite("//Eve", "AudioTask")
        .query(&bob, &hello, DEADLINE)
        .await;
    assert_eq!(reply.outcome, Outcome::Blacklisted, "{:?}", reply.error);
    let error = reply.error.unwrap();
    assert!(error.contains("403"), "{error}");
    assert!(error.contains("not registered on this subnet"), "{error}");

    // The forward sets error_message: HTTP 200, no output, and the message is kept.
    let reply = alice
        .query(&bob, &request("tts", b"please set error_message"), DEADLINE)
        .await;
    assert_eq!(reply.outcome, Outcome::Success, "{:?}", reply.error);
    let body = reply.body.unwrap();
    assert_eq!(body.error_message.as_deref(), Some("model not loaded"));
    assert_eq!(body.output_data, None);

    // The forward raises: 500.
    let reply = alice
        .query(&bob, &request("summarization", b"please raise"), DEADLINE)
        .await;
    assert_eq!(reply.outcome, Outcome::HttpError, "{:?}", reply.error);
    assert!(reply.error.unwrap().contains("HTTP 500"));

    // A nonce replayed under the same uuid: the first is served, the replay is refused (401).
    let stamp = Stamp::fresh();
    let first = alice
        .query_stamped(&bob, &hello, DEADLINE, stamp.clone())
        .await;
    assert_eq!(first.outcome, Outcome::Success, "{:?}", first.error);
    let replay = alice.query_stamped(&bob, &hello, DEADLINE, stamp).await;
    assert_eq!(replay.outcome, Outcome::Unauthorized, "{:?}", replay.error);
    assert!(replay.error.unwrap().contains("Nonce"));

    // The metagraph names another hotkey for this axon (stale entry): signature mismatch, 401.
    let reply = alice
        .query(&miner(bob.port, CHARLIE), &hello, DEADLINE)
        .await;
    assert_eq!(reply.outcome, Outcome::Unauthorized, "{:?}", reply.error);
    assert!(reply.error.unwrap().contains("Signature mismatch"));

    // Another synapse name: 404.
    let reply = dendrite("//Alice", "AudioTaskV2")
        .query(&bob, &hello, DEADLINE)
        .await;
    assert_eq!(reply.outcome, Outcome::UnknownSynapse, "{:?}", reply.error);
    assert!(reply.error.unwrap().contains("AudioTaskV2"));
}

/// What a Python dendrite saw of one call.
#[derive(Debug, PartialEq)]
struct Seen {
    status: i64,
    error_message: bool,
    output: bool,
}

fn dendrite_calls(plan: &Value) -> Vec<(String, Seen, String)> {
    run_python("bt10", "dendrite_peer.py", &plan.to_string())
        .iter()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (
                v["label"].as_str().unwrap().to_owned(),
                Seen {
                    status: v["status_code"].as_i64().unwrap(),
                    error_message: !v["error_message"].is_null(),
                    output: v["output_bytes"].as_u64().unwrap() > 0,
                },
                v["status_message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_dendrite_sees_the_simulator_answer_as_a_real_axon_does() {
    let (_axon, bob) = python_axon();
    let sim = SimulatedSubnet::start(SimOptions {
        behaviours: vec![
            Behaviour::Good,
            Behaviour::Blacklisting,
            Behaviour::Erroring,
            Behaviour::Crashing,
        ],
        ..SimOptions::mixed(0)
    })
    .await
    .unwrap();
    let sims = sim.snapshot().miners;
    let call = |label: &str, caller: &str, m: &Miner, hotkey: &str, text: &str, synapse: &str| {
        serde_json::json!({
            "label": label, "caller_uri": caller, "ip": "127.0.0.1", "port": m.port,
            "hotkey": hotkey, "task_type": "tts", "text": text, "synapse": synapse,
        })
    };
    // The same fault, once against the real axon and once against the simulator.
    let plan = serde_json::json!([
        call("good/real", "//Alice", &bob, BOB, "hello", "AudioTask"),
        call(
            "good/sim",
            "//Alice",
            &sims[0],
            &sims[0].hotkey,
            "hello",
            "AudioTask"
        ),
        call("blacklisted/real", "//Eve", &bob, BOB, "hello", "AudioTask"),
        call(
            "blacklisted/sim",
            "//Alice",
            &sims[1],
            &sims[1].hotkey,
            "hello",
            "AudioTask"
        ),
        call(
            "error_message/real",
            "//Alice",
            &bob,
            BOB,
            "please set error_message",
            "AudioTask"
        ),
        call(
            "error_message/sim",
            "//Alice",
            &sims[2],
            &sims[2].hotkey,
            "hello",
            "AudioTask"
        ),
        call(
            "raises/real",
            "//Alice",
            &bob,
            BOB,
            "please raise",
            "AudioTask"
        ),
        call(
            "raises/sim",
            "//Alice",
            &sims[3],
            &sims[3].hotkey,
            "hello",
            "AudioTask"
        ),
        call(
            "wrong hotkey/real",
            "//Alice",
            &bob,
            CHARLIE,
            "hello",
            "AudioTask"
        ),
        call(
            "wrong hotkey/sim",
            "//Alice",
            &sims[0],
            CHARLIE,
            "hello",
            "AudioTask"
        ),
        call(
            "wrong synapse/real",
            "//Alice",
            &bob,
            BOB,
            "hello",
            "AudioTaskV2"
        ),
        call(
            "wrong synapse/sim",
            "//Alice",
            &sims[0],
            &sims[0].hotkey,
            "hello",
            "AudioTaskV2"
        ),
    ]);
    let seen = tokio::task::spawn_blocking(move || dendrite_calls(&plan))
        .await
        .unwrap();
    assert_eq!(seen.len(), 12, "{seen:?}");
    let expected = [
        (200, false, true),
        (403, false, false),
        (200, true, false),
        (500, false, false),
        (401, false, false),
        (404, false, false),
    ];
    for (pair, (status, error_message, output)) in seen.chunks(2).zip(expected) {
        let (real, sim) = (&pair[0], &pair[1]);
        let want = Seen {
            status,
            error_message,
            output,
        };
        assert_eq!(real.1, want, "{} ({})", real.0, real.2);
        assert_eq!(sim.1, want, "{} ({})", sim.0, sim.2);
    }
    // The messages an operator reads match in kind too.
    assert!(seen[8].2.contains("Signature mismatch") && seen[9].2.contains("Signature mismatch"));
    assert!(seen[10].2.contains("not found") && seen[11].2.contains("not found"));
}

/// The SDK's `btauth/1` verifier guarding a miner with hotkey //Bob.
fn btauth_miner() -> (PythonPeer, Miner) {
    let port = free_port();
    let peer = PythonPeer::start(
        "bt11",
        "btauth_peer.py",
        &["--port", &port.to_string(), "--hotkey-ss58", BOB],
    );
    (peer, miner(port, BOB))
}

#[tokio::test(flavor = "multi_thread")]
async fn btauth_requests_pass_the_sdk_verifier() {
    let (_peer, bob) = btauth_miner();
    let client = BtauthClient::new(key("//Alice"), "/AudioTask", 1 << 20).unwrap();
    let reply = client
        .query(&bob, &request("summarization", b"hello there"), DEADLINE)
        .await;
    assert_eq!(reply.outcome, Outcome::Success, "{:?}", reply.error);
    assert_eq!(output(&reply), b"hello there");
    // A large body hashes the same way on both sides.
    let speech = fixture("speech.wav");
    let reply = client
        .query(&bob, &request("transcription", &speech), DEADLINE)
        .await;
    assert_eq!(reply.outcome, Outcome::Success, "{:?}", reply.error);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_verifier_refuses_tampered_btauth_requests() {
    let (_peer, bob) = btauth_miner();
    let alice = key("//Alice");
    let http = super::support::http_client();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", bob.port);
    let body = br#"{"task_type":"summarization","input_data":"aGk=","language":"en"}"#;
    let send = |path: &'static str, body: &'static [u8], headers: Vec<(&'static str, String)>| {
        let mut req = http.post(url(path)).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, v["error"].as_str().unwrap_or_default().to_owned())
        }
    };
    let nonce = || Stamp::fresh().nonce;

    let signed = btauth::sign(&alice, "POST", "/AudioTask", body, BOB, nonce());
    assert_eq!(
        send("/AudioTask", body, signed.clone()).await,
        (200, String::new())
    );
    // The same headers again: a replay.
    assert_eq!(
        send("/AudioTask", body, signed).await,
        (401, "ReplayedRequest".into())
    );

    let signed = btauth::sign(&alice, "POST", "/AudioTask", body, BOB, nonce());
    let tampered: &[u8] = br#"{"task_type":"summarization","input_data":"aGl=","language":"en"}"#;
    assert_eq!(
        send("/AudioTask", tampered, signed).await,
        (401, "BadSignature".into()),
        "body"
    );

    let signed = btauth::sign(&alice, "POST", "/AudioTask", body, BOB, nonce());
    assert_eq!(
        send("/AudioTask?x=1", body, signed).await,
        (401, "BadSignature".into()),
        "path"
    );

    let mut signed = btauth::sign(&alice, "POST", "/AudioTask", body, BOB, nonce());
    let at = signed
        .iter()
        .position(|(k, _)| *k == "X-Bittensor-Nonce")
        .unwrap();
    signed[at].1 = (signed[at].1.parse::<u64>().unwrap() + 1).to_string();
    assert_eq!(
        send("/AudioTask", body, signed).await,
        (401, "BadSignature".into()),
        "nonce"
    );

    let signed = btauth::sign(&alice, "POST", "/AudioTask", body, CHARLIE, nonce());
    assert_eq!(
        send("/AudioTask", body, signed).await,
        (401, "WrongReceiver".into()),
        "receiver"
    );

    let old = nonce() - 11_000_000_000;
    let signed = btauth::sign(&alice, "POST", "/AudioTask", body, BOB, old);
    assert_eq!(
        send("/AudioTask", body, signed).await,
        (401, "StaleRequest".into()),
        "stale"
    );
}
