//! The three submission routes. Each parses its input completely (reporting every bad field at
//! once), stores it, queues it, and only then answers 200 (the old proxy's status; `Location`
//! names the task): an accepted task always has a message.

use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use super::body::{content_type, read_body};
use super::gate::{self, Caller};
use super::idempotent::{self, Created};
use super::problem::{FieldError, Problem};
use super::uploads;
use super::{SubmitState, SubmitStore};
use crate::audio;
pub use crate::config::MAX_AUDIO_BYTES;
use crate::domain::tenant::{Period, digest_hex};
use crate::domain::{
    BlobKey, Language, Priority, ServiceKind, SubmittedText, TaskId, TextLimits, parse_callback_url,
};
use crate::ports::{BlobGet, BlobPresign, BlobPut, QueueSend};
use crate::submission::{Payload, Refusal, Submission, accept as accept_submission};
use crate::views::SubmitView;

mod fields;
mod transcription;

use fields::{Errors, json_object, string_field};
pub use transcription::transcription;

/// Room for the multipart framing and the small fields around the audio.
const MULTIPART_OVERHEAD: usize = 1024 * 1024;
/// Largest JSON body: 50,000 characters of text, escaped, fit well inside.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;
/// Largest small form field (language, priority, callback URL).
const MAX_FORM_FIELD: u64 = 8 * 1024;

/// The common, validated fields of every submission.
pub(super) struct Common {
    pub(super) language: Language,
    pub(super) priority: Priority,
    pub(super) callback_url: Option<String>,
}

/// A digest of what a submission asks for: its `Idempotency-Key` fingerprint.
fn fingerprint(kind: ServiceKind, common: &Common, payload: &Payload) -> String {
    let (what, data): (&[u8], &[u8]) = match payload {
        Payload::Text(text) => (b"text", text.as_bytes()),
        Payload::Audio { data, .. } => (b"audio", data),
        // An upload takes one body: its key names its bytes.
        Payload::Uploaded { upload, .. } => (b"upload", upload.as_str().as_bytes()),
    };
    digest_hex(&[
        kind.as_str().as_bytes(),
        common.priority.as_str().as_bytes(),
        common.language.code().as_bytes(),
        common
            .callback_url
            .as_deref()
            .unwrap_or_default()
            .as_bytes(),
        what,
        data,
    ])
}

/// Submits the parsed request and answers 200 with where to follow the task: at most once
/// per `Idempotency-Key`, within the caller's priority and monthly quota.
async fn accept<W: SubmitStore, Q: QueueSend, B: BlobPut>(
    state: &SubmitState<W, Q, B>,
    request: (&Caller, &HeaderMap),
    kind: ServiceKind,
    common: Common,
    payload: Payload,
) -> Result<Response, Problem> {
    let (caller, headers) = request;
    let digest = || fingerprint(kind, &common, &payload);
    let store = &state.intake.tasks;
    let id = TaskId::new().to_string();
    let (common, payload) = (&common, &payload);
    idempotent::once(store, headers, caller, digest, id, |id| async move {
        let id = id
            .parse()
            .map_err(|_| Problem::conflict("the idempotent request names no task; retry"))?;
        let task = create_task(state, caller, id, kind, common, payload.clone()).await?;
        let view = SubmitView {
            task_id: task.id.to_string(),
            status: "pending".into(),
            message: format!("{} task queued", task.kind.as_str()),
            estimated_completion_time: state.settings.estimated_seconds,
            task_type: task.kind.as_str().into(),
            source_language: task.language.code().into(),
            priority: task.priority.as_str().into(),
        };
        Ok(Created {
            status: StatusCode::OK,
            location: Some(format!("/api/v1/tasks/{}", task.id)),
            body: serde_json::to_value(view).unwrap_or_default(),
        })
    })
    .await
}

/// A task accepted: what its answer names.
pub(super) struct Accepted {
    pub(super) id: TaskId,
    pub(super) kind: ServiceKind,
    pub(super) language: Language,
    pub(super) priority: Priority,
}

/// Creates the task for `caller` as `id` ([`crate::submission::accept`]: within its key's
/// priority and monthly quota, stored and queued).
pub(super) async fn create_task<W: SubmitStore, Q: QueueSend, B: BlobPut>(
    state: &SubmitState<W, Q, B>,
    caller: &Caller,
    id: TaskId,
    kind: ServiceKind,
    common: &Common,
    payload: Payload,
) -> Result<Accepted, Problem> {
    let submission = Submission {
        id,
        kind,
        priority: common.priority,
        language: common.language,
        callback_url: common.callback_url.clone(),
        owner: caller.owner(),
    };
    accept_submission(&state.intake, caller.key(), submission, payload)
        .await
        .map_err(refused)?;
    Ok(Accepted {
        id,
        kind,
        language: common.language,
        priority: common.priority,
    })
}

/// The problem a refused submission answers with.
fn refused(refusal: Refusal) -> Problem {
    match refusal {
        Refusal::PriorityAboveKey { .. } => Problem::forbidden(refusal.to_string()),
        Refusal::QuotaUsedUp { quota, at } => {
            Problem::too_many_requests(format!("{refusal}; it starts over at the next month (UTC)"))
                .with_retry_after(
                    Period::of(at).seconds_left(at),
                    &gate::quota_fields(quota, quota, at),
                )
        }
        Refusal::Store(e) => e.into(),
    }
}

async fn text_task<W: SubmitStore, Q: QueueSend, B: BlobPut + BlobGet + BlobPresign>(
    state: &SubmitState<W, Q, B>,
    caller: &Caller,
    kind: ServiceKind,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let bytes = read_body(headers, body, MAX_JSON_BYTES).await?;
    let map = json_object(headers, &bytes)?;
    let mut errors = Errors::default();
    let limits = TextLimits::for_service(kind).unwrap_or(TextLimits::TTS);
    let text = match string_field(&map, "text", &mut errors) {
        None if !map.contains_key("text") || map.get("text") == Some(&Value::Null) => {
            errors.add("text", "is required");
            None
        }
        None => None,
        Some(raw) => SubmittedText::parse(raw, limits)
            .map_err(|e| errors.add("text", e.0))
            .ok(),
    };
    let common = errors.json_common(&map, &state.settings.callback_allowlist);
    errors.finish()?;
    let (Some(text), Some(c)) = (text, common) else {
        return Err(Problem::invalid_field("body", "is invalid"));
    };
    accept(
        state,
        (caller, headers),
        kind,
        c,
        Payload::Text(text.into_string()),
    )
    .await
}

/// `POST /api/v1/tts`.
pub async fn tts<W: SubmitStore, Q: QueueSend, B: BlobPut + BlobGet + BlobPresign>(
    State(state): State<Arc<SubmitState<W, Q, B>>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    text_task(&state, &caller, ServiceKind::Tts, &headers, body).await
}

/// `POST /api/v1/summarization`.
pub async fn summarization<W: SubmitStore, Q: QueueSend, B: BlobPut + BlobGet + BlobPresign>(
    State(state): State<Arc<SubmitState<W, Q, B>>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    text_task(&state, &caller, ServiceKind::Summarization, &headers, body).await
}
