//! Miner answers: the JSON body a miner sends, the `output_data` inside it, and the whole
//! answer as it arrives over HTTP at the axon client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use proptest::prelude::*;
use taogate_shared::answer::{ValidAnswer, validate};
use taogate_shared::bittensor::{AxonClient, AxonClientConfig, Hotkey};
use taogate_shared::config::Secret;
use taogate_shared::domain::{
    AnswerBudget, Miner, MinerReply, Outcome, ServiceKind, SynapseAnswer, SynapseRequest,
};
use taogate_shared::ports::MinerClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Input, MIB, bytes_or_mutated, fuzz, mutated};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// Budgets as the worker derives them: speech of up to 4 s at the answer limits, or text of up
/// to 600 characters.
fn budget() -> impl Strategy<Value = AnswerBudget> {
    prop_oneof![
        (0.0f64..4.0).prop_map(|seconds| AnswerBudget {
            kind: ServiceKind::Tts,
            output_bytes: base64_len((seconds * 384_000.0) as usize + 64 * 1024),
            text_chars: 0,
            audio_seconds: seconds,
        }),
        (
            prop::sample::select(vec![ServiceKind::Transcription, ServiceKind::Summarization]),
            0usize..600
        )
            .prop_map(|(kind, chars)| AnswerBudget {
                kind,
                output_bytes: base64_len(4 * chars),
                text_chars: chars,
                audio_seconds: 0.0,
            }),
    ]
}

/// What a validated answer promises: text within the budget's characters, or a WAV no longer
/// than the decode limit allows (its last packet may pass it).
fn check_answer(answer: &ValidAnswer, budget: &AnswerBudget) -> Result<(), TestCaseError> {
    match answer {
        ValidAnswer::Text(text) => {
            prop_assert!(!text.trim().is_empty());
            prop_assert!(text.chars().count() <= budget.text_chars);
        }
        ValidAnswer::Audio { signal, .. } => {
            prop_assert_eq!(budget.kind, ServiceKind::Tts);
            prop_assert_eq!(signal.info.format.as_str(), "wav");
            let limit = budget.audio_seconds * 1.05 + 0.5;
            prop_assert!(
                signal.info.duration_s > 0.0 && signal.info.duration_s <= limit + 0.1,
                "{} s decoded, the limit is {limit} s",
                signal.info.duration_s
            );
        }
    }
    Ok(())
}

/// Answers as miners send them: speech, text, an error, an echo of the whole synapse.
fn body_seeds() -> Vec<Vec<u8>> {
    let wav = crate::audio::wav_seeds().remove(0);
    vec![
        format!(
            r#"{{"output_data":"{}","processing_time":0.4,"pipeline_model":"m","error_message":null}}"#,
            b64(&wav)
        )
        .into_bytes(),
        br#"{"name":"AudioTask","timeout":12.0,"total_size":0,"header_size":0,"dendrite":{"status_code":null,"ip":"0.0.0.0","nonce":42,"uuid":"u-1","hotkey":"5Grw","signature":"0x00"},"axon":{"status_code":200,"port":9000},"computed_body_hash":"","task_type":"summarization","input_data":"aGVsbG8gdGhlcmU=","language":"en","output_data":"aGVsbG8=","processing_time":null,"pipeline_model":null,"error_message":null}"#.to_vec(),
        br#"{"error_message":"the model crashed","output_data":null}"#.to_vec(),
        br#"{"output_data":"  aGVsbG8gd29ybGQ= \n"}"#.to_vec(),
        br#"{"output_data":"w6lsw6h2ZSDigJQg5LiW55WM"}"#.to_vec(),
    ]
}

/// A miner's JSON body, parsed as the axon client parses it, then validated against a budget:
/// a parse error, a refusal or a valid answer within the budget, never a panic. 160 cases
/// (under 1 s in the debug profile).
///
/// Memory: at most 4 × the body + 24 MiB (the decoded output is 3/4 of its base64; a WAV's
/// decoder state does not grow with the input).
#[test]
fn miner_bodies_parse_and_validate() {
    fuzz(
        concat!(module_path!(), "::miner_bodies_parse_and_validate"),
        160,
        (bytes_or_mutated(body_seeds(), 2048), budget()),
        || (),
        |(body, _)| 4 * body.0.len() + 24 * MIB,
        |(), (Input(body), budget)| {
            let Ok(parsed) = serde_json::from_slice::<SynapseAnswer>(&body) else {
                return Ok(());
            };
            let reply = MinerReply::answered(Duration::from_millis(5), parsed, None);
            if let Ok(answer) = validate(&reply, &budget) {
                check_answer(&answer, &budget)?;
            }
            Ok(())
        },
    );
}

/// `output_data` as a miner may send it: base64 of (mutated) speech or text, mutated base64, or
/// any text at all.
fn output_data() -> impl Strategy<Value = String> {
    let mut payloads = crate::audio::wav_seeds();
    payloads.extend([
        b"hello world".to_vec(),
        "h\u{e9}llo \u{2014} \u{4e16}\u{754c}".as_bytes().to_vec(),
        b" \n\t".to_vec(),
        vec![0xff, 0xfe, 0x00],
    ]);
    let encoded: Vec<Vec<u8>> = payloads.iter().map(|p| b64(p).into_bytes()).collect();
    prop_oneof![
        2 => bytes_or_mutated(payloads, 1024).prop_map(|p| b64(&p.0)),
        1 => prop::sample::select(encoded)
            .prop_flat_map(|e| mutated(e, 3))
            .prop_map(|e| String::from_utf8_lossy(&e.0).into_owned()),
        1 => "[A-Za-z0-9+/= \n\t\u{e9}]{0,64}",
    ]
}

/// `validate` on any `output_data` a miner may send within a budget (no longer than the
/// transport lets an answer be): a refusal or a valid answer within the budget, never a panic.
/// 192 cases (under 1 s in the debug profile).
///
/// Memory: at most 4 × the output + 24 MiB.
#[test]
fn output_data_within_a_budget_validates() {
    let answer = (budget(), output_data()).prop_map(|(budget, mut output)| {
        let limit = SynapseRequest::new("tts", Bytes::new(), "en")
            .within(&budget)
            .answer_limit(usize::MAX);
        let mut end = output.len().min(limit);
        while !output.is_char_boundary(end) {
            end -= 1;
        }
        output.truncate(end);
        (budget, output)
    });
    fuzz(
        concat!(module_path!(), "::output_data_within_a_budget_validates"),
        192,
        answer,
        || (),
        |(_, output)| 4 * output.len() + 24 * MIB,
        |(), (budget, output)| {
            let reply = MinerReply::answered(
                Duration::from_millis(5),
                SynapseAnswer {
                    output_data: Some(output),
                    ..SynapseAnswer::default()
                },
                None,
            );
            if let Ok(answer) = validate(&reply, &budget) {
                check_answer(&answer, &budget)?;
            }
            Ok(())
        },
    );
}

/// How an HTTP answer's body is framed.
#[derive(Debug, Clone)]
enum Framing {
    /// `Content-Length` of the body.
    Exact,
    /// `Content-Length` of another value (huge, short, long).
    Declared(u64),
    /// Chunked, in chunks of this many bytes.
    Chunked(usize),
    /// Chunked, with this (wrong) size on the first chunk.
    BadChunk(u64),
    /// No length: the body ends when the connection closes.
    UntilClose,
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        3 => Just(Framing::Exact),
        1 => prop::sample::select(vec![u64::MAX, u64::from(u32::MAX), 1 << 40, 0, 1, 100_000])
            .prop_map(Framing::Declared),
        2 => (1usize..4096).prop_map(Framing::Chunked),
        1 => prop::sample::select(vec![u64::MAX, 0xffff_ffff, 0, 3]).prop_map(Framing::BadChunk),
        1 => Just(Framing::UntilClose),
    ]
}

/// A whole HTTP answer from its status, framing and body.
fn http_answer(status: u16, framing: &Framing, body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n").into_bytes();
    match framing {
        Framing::Exact => out.extend(format!("content-length: {}\r\n\r\n", body.len()).bytes()),
        Framing::Declared(n) => out.extend(format!("content-length: {n}\r\n\r\n").bytes()),
        Framing::UntilClose => out.extend(b"connection: close\r\n\r\n"),
        Framing::Chunked(_) | Framing::BadChunk(_) => {
            out.extend(b"transfer-encoding: chunked\r\n\r\n");
        }
    }
    match framing {
        Framing::Chunked(size) => {
            for chunk in body.chunks(*size) {
                out.extend(format!("{:x}\r\n", chunk.len()).bytes());
                out.extend_from_slice(chunk);
                out.extend(b"\r\n");
            }
            out.extend(b"0\r\n\r\n");
        }
        Framing::BadChunk(size) => {
            out.extend(format!("{size:x}\r\n").bytes());
            out.extend_from_slice(body);
            out.extend(b"\r\n0\r\n\r\n");
        }
        _ => out.extend_from_slice(body),
    }
    out
}

/// Whole answers: a status, a framing and a (mutated) body, or the raw bytes of a valid answer
/// mutated. One body seed echoes 300 KB of input, past the free allowance, so that the streamed
/// parse is taken too.
fn http_answers() -> impl Strategy<Value = Input> {
    let mut bodies = body_seeds();
    bodies.push(
        format!(
            r#"{{"input_data":"{}","output_data":"aGVsbG8="}}"#,
            "QUJD".repeat(75_000)
        )
        .into_bytes(),
    );
    let raw = vec![
        http_answer(200, &Framing::Exact, &body_seeds()[0]),
        http_answer(200, &Framing::Chunked(7), &body_seeds()[1]),
        http_answer(401, &Framing::Exact, br#"{"message":"Signature mismatch"}"#),
        http_answer(503, &Framing::UntilClose, b"busy"),
    ];
    let statuses = vec![200, 200, 200, 200, 401, 403, 404, 500, 503, 302, 418];
    prop_oneof![
        3 => (prop::sample::select(statuses), framing(), bytes_or_mutated(bodies, 1024))
            .prop_map(|(status, framing, body)| Input(http_answer(status, &framing, &body.0))),
        1 => bytes_or_mutated(raw, 512),
    ]
}

/// A loopback miner that answers every request with the bytes in `answer`, then closes.
struct Loopback {
    runtime: tokio::runtime::Runtime,
    client: AxonClient,
    miner: Miner,
    answer: Arc<Mutex<Bytes>>,
}

fn loopback() -> Loopback {
    let runtime = crate::runtime();
    let answer = Arc::new(Mutex::new(Bytes::new()));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let answering = answer.clone();
    runtime.spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answering.lock().unwrap().clone();
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), read_request(&mut socket)).await;
                let _ = socket.write_all(&answer).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    let hotkey = Arc::new(Hotkey::from_secret(&Secret::new("//Alice")).unwrap());
    let client = AxonClient::new(
        hotkey,
        AxonClientConfig {
            synapse_name: "AudioTask".into(),
            dendrite_version: 10_005_000,
            dendrite_ip: "0.0.0.0".into(),
            max_response_bytes: MIB,
        },
    )
    .unwrap();
    let miner = Miner {
        uid: 1,
        hotkey: "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty".into(),
        ip: "127.0.0.1".parse().unwrap(),
        port,
        stake: 1.0,
        incentive: 0.0,
        chain: None,
    };
    Loopback {
        runtime,
        client,
        miner,
        answer,
    }
}

/// Reads a request's head and as much body as its `content-length` declares.
async fn read_request(socket: &mut tokio::net::TcpStream) {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = socket.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(head) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
        let length: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() >= head + 4 + length {
            return;
        }
    }
}

/// The axon client querying a miner that answers with any bytes (status line, headers, framing
/// and body): a reply with an outcome before the deadline, and a reply that validates or is
/// refused, never a panic. 64 cases (under 1 s in the debug profile).
///
/// Memory: at most 8 × the answer + 32 MiB (the client's and the loopback miner's connection
/// buffers, a WAV decoder's state).
#[test]
fn axon_answers_over_http_are_classified() {
    let deadline = Duration::from_secs(2);
    fuzz(
        concat!(module_path!(), "::axon_answers_over_http_are_classified"),
        64,
        (http_answers(), budget()),
        loopback,
        |(answer, _)| 8 * answer.0.len() + 32 * MIB,
        |miner, (Input(answer), budget)| {
            *miner.answer.lock().unwrap() = Bytes::from(answer);
            let request =
                SynapseRequest::new("tts", Bytes::from_static(b"aGk="), "en").within(&budget);
            let reply =
                miner
                    .runtime
                    .block_on(miner.client.query(&miner.miner, &request, deadline));
            prop_assert!(
                reply.latency < deadline + Duration::from_secs(1),
                "{reply:?}"
            );
            prop_assert_eq!(
                reply.outcome == Outcome::Success,
                reply.body.is_some(),
                "{:?}",
                reply
            );
            if let Ok(answer) = validate(&reply, &budget) {
                check_answer(&answer, &budget)?;
            }
            Ok(())
        },
    );
}
