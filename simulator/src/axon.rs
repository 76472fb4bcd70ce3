//! The axon side of the protocol, as the Python SDK's `Axon` middleware applies it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use taogate_shared::bittensor::{EMPTY_BODY_HASH, SynapseBody, signing_message, verify_signature};

use super::Behaviour;
use super::answers;

/// The nonce window of a new dendrite: 4 s plus the request's timeout (bittensor's
/// `ALLOWED_DELTA`).
const ALLOWED_DELTA_NS: u128 = 4_000_000_000;

/// The largest request body a simulated miner reads.
const MAX_BODY: usize = 128 * 1024 * 1024;

/// One simulated miner's state.
#[derive(Clone)]
pub struct AxonState {
    hotkey: String,
    behaviour: Behaviour,
    slow_delay: Duration,
    synapse: String,
    nonces: Arc<Mutex<HashMap<String, u64>>>,
    served: Arc<AtomicU64>,
}

impl AxonState {
    /// A miner with hotkey `hotkey` answering as `behaviour`.
    pub fn new(
        hotkey: String,
        behaviour: Behaviour,
        slow_delay: Duration,
        synapse: String,
        served: Arc<AtomicU64>,
    ) -> Self {
        Self {
            hotkey,
            behaviour,
            slow_delay,
            synapse,
            nonces: Arc::default(),
            served,
        }
    }
}

pub(super) fn router(state: AxonState) -> Router {
    Router::new()
        .route("/{synapse}", post(handle))
        // A Python axon (FastAPI) sets no body limit; 50 MB of audio is ~67 MB in base64.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "message": message.into() });
    (status, axum::Json(body)).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks nonce and signature: `Err` is the 401 message.
fn verify(state: &AxonState, headers: &HeaderMap) -> Result<(), String> {
    let nonce: u64 = header(headers, "bt_header_dendrite_nonce")
        .and_then(|n| n.parse().ok())
        .ok_or("Request without nonce")?;
    let hotkey = header(headers, "bt_header_dendrite_hotkey").ok_or("Request without hotkey")?;
    let uuid = header(headers, "bt_header_dendrite_uuid").ok_or("Request without uuid")?;
    let signature =
        header(headers, "bt_header_dendrite_signature").ok_or("Request without signature")?;
    let body_hash = header(headers, "computed_body_hash").unwrap_or_default();
    let timeout_s: f64 = header(headers, "timeout")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let window = ALLOWED_DELTA_NS + (timeout_s.max(0.0) * 1e9) as u128;
    let key = format!("{hotkey}:{uuid}");
    let mut nonces = state.nonces.lock().map_err(|_| "nonce table poisoned")?;
    match nonces.get(&key) {
        None if u128::from(nonce) < now.saturating_sub(window) => {
            return Err("Nonce is too old".into());
        }
        Some(last) if nonce <= *last => {
            return Err("Nonce is too old, a newer one was last processed".into());
        }
        _ => {}
    }
    let message = signing_message(nonce, hotkey, &state.hotkey, uuid, body_hash);
    if !verify_signature(hotkey, message.as_bytes(), signature) {
        return Err(format!("Signature mismatch with {message} and {signature}"));
    }
    nonces.insert(key, nonce);
    Ok(())
}

/// HTTP 200 whose body never ends: one byte every 100 ms.
fn drip() -> Response {
    let start = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"{")) });
    let rest = futures::stream::unfold((), |()| async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        Some((Ok(Bytes::from_static(b" ")), ()))
    });
    let mut response =
        axum::body::Body::from_stream(futures::StreamExt::chain(start, rest)).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// HTTP 200 with 256 MiB of base64 `output_data`, generated as it is sent.
fn flood() -> Response {
    const CHUNK: usize = 256 * 1024;
    let chunk = Bytes::from(vec![b'A'; CHUNK]);
    let start = futures::stream::once(async {
        Ok::<_, std::io::Error>(Bytes::from_static(b"{\"output_data\":\""))
    });
    let body = futures::stream::iter((0..1024).map(move |_| Ok(chunk.clone())));
    let end = futures::stream::once(async { Ok(Bytes::from_static(b"\"}")) });
    let stream = futures::StreamExt::chain(futures::StreamExt::chain(start, body), end);
    let mut response = axum::body::Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

async fn handle(
    State(state): State<AxonState>,
    Path(synapse): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if synapse != state.synapse {
        return refuse(
            StatusCode::NOT_FOUND,
            format!(
                "Synapse name '{synapse}' not found. Available synapses ['{}']",
                state.synapse
            ),
        );
    }
    if header(&headers, "bt_header_input_obj_input_data").is_none() {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error: missing input_data",
        );
    }
    if let Err(message) = verify(&state, &headers) {
        return refuse(StatusCode::UNAUTHORIZED, message);
    }
    if state.behaviour == Behaviour::Blacklisting {
        return refuse(
            StatusCode::FORBIDDEN,
            "Forbidden. Key is blacklisted: not registered.",
        );
    }
    // AudioTask hashes no fields, so the only valid hash is that of the empty string.
    if header(&headers, "computed_body_hash") != Some(EMPTY_BODY_HASH) {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Hash mismatch between header and body.",
        );
    }
    let Ok(mut synapse_body) = serde_json::from_slice::<SynapseBody>(&body) else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error: body fails validation",
        );
    };
    state.served.fetch_add(1, Ordering::SeqCst);
    if state.behaviour == Behaviour::Crashing {
        // A Python axon hides the exception and names the request.
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal Server Error #{}", uuid::Uuid::new_v4()),
        );
    }
    if state.behaviour == Behaviour::Slow {
        tokio::time::sleep(state.slow_delay).await;
    }
    if state.behaviour == Behaviour::Drip {
        return drip();
    }
    if state.behaviour == Behaviour::Flood {
        return flood();
    }
    let started = std::time::Instant::now();
    answers::fill(&mut synapse_body, state.behaviour);
    let elapsed = started.elapsed().as_secs_f64();
    synapse_body.processing_time.get_or_insert(elapsed);
    let mut response = axum::Json(&synapse_body).into_response();
    let h = response.headers_mut();
    for (name, value) in [
        ("bt_header_axon_status_code", "200".to_owned()),
        ("bt_header_axon_status_message", "Success".to_owned()),
        ("bt_header_axon_process_time", format!("{elapsed}")),
    ] {
        if let Ok(v) = value.parse() {
            h.insert(name, v);
        }
    }
    response
}
