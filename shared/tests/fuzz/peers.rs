//! What peers send besides answers: `btauth/1` headers and signatures, axon signatures, and the
//! full synapse body.

use proptest::prelude::*;
use taogate_shared::bittensor::btauth::{self, Verifier};
use taogate_shared::bittensor::{Hotkey, SynapseBody, signing_message, verify_signature};
use taogate_shared::config::Secret;

use crate::{Input, MIB, bytes_or_mutated, fuzz, mutated};

/// The receiver the headers are addressed to (//Bob).
const RECEIVER: &str = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty";
/// The time the signed headers were made, in nanoseconds.
const NOW: u64 = 1_795_000_000_000_000_000;
/// The header names, in the order `btauth::sign` gives them.
const NAMES: [&str; 5] = [
    "X-Bittensor-Version",
    "X-Bittensor-Hotkey",
    "X-Bittensor-Receiver",
    "X-Bittensor-Nonce",
    "X-Bittensor-Signature",
];

fn alice() -> Hotkey {
    Hotkey::from_secret(&Secret::new("//Alice")).unwrap()
}

/// Text from (possibly invalid) UTF-8, as a header lookup would hand it on.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A header value: the valid one mutated, or arbitrary.
fn value(valid: String) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => Just(Some(valid.clone())),
        2 => mutated(valid.into_bytes(), 3).prop_map(|v| Some(text(&v.0))),
        1 => Just(None),
        1 => ".{0,80}".prop_map(Some),
    ]
}

/// `btauth::Verifier::verify` on the five headers of a validly signed request, each kept,
/// mutated, dropped or replaced, over a body and target that may differ from the signed ones:
/// a refusal or the sender, never a panic; only the signed request within the nonce window is
/// accepted (untouched headers over it always are), and only once. 128 cases (about 8 s in the debug profile: each signature check is real).
///
/// Memory: at most 16 × the headers, body and target + 1 MiB.
#[test]
fn btauth_headers_verify_or_are_refused() {
    let body = b"{\"task_type\":\"tts\"}".to_vec();
    let signed = btauth::sign(&alice(), "POST", "/AudioTask", &body, RECEIVER, NOW);
    let headers: Vec<_> = signed
        .iter()
        .map(|(_, v)| value(v.clone()).boxed())
        .collect();
    let request = (
        headers,
        prop_oneof![3 => Just(Input(body.clone())), 1 => mutated(body.clone(), 2)],
        prop_oneof![3 => Just("/AudioTask".to_owned()), 1 => "/[a-zA-Z?=&]{0,16}"],
        -20_000_000_000i64..20_000_000_000,
    );
    fuzz(
        concat!(module_path!(), "::btauth_headers_verify_or_are_refused"),
        128,
        request,
        || (),
        |(headers, body, target, _)| {
            let size: usize = headers.iter().flatten().map(String::len).sum();
            16 * (size + body.0.len() + target.len()) + MIB
        },
        |(), (headers, Input(body), target, skew)| {
            let alice = alice();
            let lookup = |name: &str| {
                NAMES
                    .iter()
                    .position(|n| n.eq_ignore_ascii_case(name))
                    .and_then(|i| headers[i].as_deref())
            };
            let now = u128::from(NOW.saturating_add_signed(skew));
            let mut verifier = Verifier::default();
            let first = verifier.verify(lookup, "POST", &target, &body, RECEIVER, now);
            let untouched = headers
                .iter()
                .zip(&signed)
                .all(|(h, (_, v))| h.as_deref() == Some(v.as_str()));
            let as_signed = target == "/AudioTask" && body == b"{\"task_type\":\"tts\"}";
            // The nonce was made at NOW: it may be 10 s old or 2 s ahead of the receiver's clock.
            let fresh = (-2_000_000_000..=10_000_000_000).contains(&skew);
            match &first {
                Ok(sender) => {
                    prop_assert_eq!(sender.as_str(), alice.ss58());
                    prop_assert!(as_signed && fresh, "accepted what was not signed");
                }
                Err(refusal) => prop_assert!(
                    !(untouched && as_signed && fresh),
                    "the signed request was refused: {refusal}"
                ),
            }
            if first.is_ok() {
                let again = verifier.verify(lookup, "POST", &target, &body, RECEIVER, now);
                prop_assert_eq!(again, Err(btauth::Refusal::Replay));
            }
            Ok(())
        },
    );
}

/// `verify_signature` (the axon and `btauth/1` check) on mutated or arbitrary signers,
/// messages and signatures: `false` unless all three are the signed ones, never a panic.
/// 96 cases (under 1 s in the debug profile).
///
/// Memory: at most 16 × the three inputs + 1 MiB.
#[test]
fn signatures_verify_or_are_refused() {
    let key = alice();
    let message = signing_message(
        NOW,
        key.ss58(),
        RECEIVER,
        "834635d0-e831-11f1-a5fe-02fc00000001",
        taogate_shared::bittensor::EMPTY_BODY_HASH,
    );
    let signature = key.sign_hex(message.as_bytes());
    let inputs = (
        prop_oneof![
            2 => mutated(key.ss58().as_bytes().to_vec(), 2),
            1 => bytes_or_mutated(vec![RECEIVER.as_bytes().to_vec()], 64),
        ],
        prop_oneof![2 => Just(Input(message.clone().into_bytes())), 1 => mutated(message.clone().into_bytes(), 2)],
        prop_oneof![
            2 => mutated(signature.clone().into_bytes(), 3),
            1 => "(0x)?[0-9a-f]{0,140}".prop_map(|s| Input(s.into_bytes())),
        ],
    );
    fuzz(
        concat!(module_path!(), "::signatures_verify_or_are_refused"),
        96,
        inputs,
        || (),
        |(signer, message, signature)| {
            16 * (signer.0.len() + message.0.len() + signature.0.len()) + MIB
        },
        |(), (signer, Input(signed), sig)| {
            let (signer, sig) = (text(&signer.0), text(&sig.0));
            let valid = verify_signature(&signer, &signed, &sig);
            let untouched = signer == key.ss58()
                && signed == message.as_bytes()
                && sig.trim_start_matches("0x") == signature.trim_start_matches("0x");
            if untouched {
                prop_assert!(valid);
            }
            Ok(())
        },
    );
}

/// The full synapse body a peer sends (what an axon parses): JSON bytes, parsed or refused,
/// never a panic; a parsed body serializes again. 128 cases (under 1 s in the debug profile).
///
/// Memory: at most 8 × the body + 1 MiB.
#[test]
fn synapse_bodies_parse_or_are_refused() {
    let seeds = vec![
        br#"{"name":"AudioTask","timeout":12.0,"total_size":0,"header_size":0,"dendrite":{"status_code":null,"status_message":null,"process_time":null,"ip":"0.0.0.0","port":null,"version":10005000,"nonce":1795000000000000000,"uuid":"u-1","hotkey":"5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY","signature":"0x00"},"axon":{"ip":"127.0.0.1","port":9000,"hotkey":"5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"},"computed_body_hash":"","task_type":"tts","input_data":"aGVsbG8=","language":"en","output_data":null,"processing_time":null,"pipeline_model":null,"error_message":null}"#.to_vec(),
        br#"{"dendrite":{"port":70000,"nonce":-1},"timeout":1e400}"#.to_vec(),
    ];
    fuzz(
        concat!(module_path!(), "::synapse_bodies_parse_or_are_refused"),
        128,
        bytes_or_mutated(seeds, 1024),
        || (),
        |body| 8 * body.0.len() + MIB,
        |(), Input(body)| {
            if let Ok(parsed) = serde_json::from_slice::<SynapseBody>(&body) {
                prop_assert!(serde_json::to_vec(&parsed).is_ok());
            }
            Ok(())
        },
    );
}
