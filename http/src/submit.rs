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
    BlobKey, Language, Priority, ServiceKind, SubmittedText, TaskId, TextLimits, now_millis,
    parse_callback_url,
};
use crate::ports::{BlobGet, BlobPresign, BlobPut, QueueSend};
use crate::submission::{Payload, Submission, submit};
use crate::views::SubmitView;
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

/// Collects every field error of one request.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn common(
        &mut self,
        language: Option<&str>,
        priority: Option<&str>,
        callback_url: Option<&str>,
        allowlist: &[ipnet::IpNet],
    ) -> Option<Common> {
        let language = match language {
            None => {
                self.add("source_language", "is required");
                None
            }
            Some(raw) => Language::parse(raw)
                .map_err(|e| self.add("source_language", e.0))
                .ok(),
        };
        let priority = match priority {
            None => Some(Priority::Normal),
            Some(raw) => Priority::parse(raw)
                .map_err(|e| self.add("priority", e.0))
                .ok(),
        };
        let callback_url = match callback_url.filter(|u| !u.trim().is_empty()) {
            None => Some(None),
            Some(raw) => parse_callback_url(raw, allowlist)
                .map(|u| Some(u.to_string()))
                .map_err(|e| self.add("callback_url", e.0))
                .ok(),
        };
        Some(Common {
            language: language?,
            priority: priority?,
            callback_url: callback_url?,
        })
    }

    /// The common fields of a JSON body.
    fn json_common(
        &mut self,
        map: &Map<String, Value>,
        allowlist: &[ipnet::IpNet],
    ) -> Option<Common> {
        let language = string_field(map, "source_language", self);
        let priority = string_field(map, "priority", self);
        let callback = string_field(map, "callback_url", self);
        self.common(language, priority, callback, allowlist)
    }

    fn finish(self) -> Result<(), Problem> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problem::invalid_fields(self.0))
        }
    }
}

/// Parses a JSON object body; syntax errors are 400, a non-object is 422.
fn json_object(headers: &HeaderMap, bytes: &[u8]) -> Result<Map<String, Value>, Problem> {
    match content_type(headers) {
        Some(m) if m.type_() == mime::APPLICATION && m.subtype() == mime::JSON => {}
        _ => {
            return Err(Problem::unsupported_media_type(
                "this route takes application/json",
            ));
        }
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::invalid_field("body", "must be a JSON object")),
        Err(e) => Err(Problem::malformed(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// Reads an optional string field: `null` or absent is `None`, any other type is an error.
fn string_field<'a>(
    map: &'a Map<String, Value>,
    name: &str,
    errors: &mut Errors,
) -> Option<&'a str> {
    match map.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            errors.add(name, format!("must be a string, got {}", json_type(other)));
            None
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
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

/// Creates the task for `caller`: within its priority and monthly quota (given back if the
/// task is not accepted after all), stored and queued.
///
/// The task is created as `id`. If a task with that id exists already, an earlier request under
/// the same `Idempotency-Key` created it before it died: it is answered as this one's.
pub(super) async fn create_task<W: SubmitStore, Q: QueueSend, B: BlobPut>(
    state: &SubmitState<W, Q, B>,
    caller: &Caller,
    id: TaskId,
    kind: ServiceKind,
    common: &Common,
    payload: Payload,
) -> Result<Accepted, Problem> {
    if common.priority > caller.max_priority() {
        return Err(Problem::forbidden(format!(
            "this key may submit at priority {} at most",
            caller.max_priority().as_str()
        )));
    }
    let store = &state.intake.tasks;
    let key = caller.key();
    if let Some(key) = key {
        let now = now_millis();
        if !store
            .reserve_task(&key.id, kind, key.limits.quota, now)
            .await?
        {
            let quota = key.limits.quota.unwrap_or_default();
            let period = Period::of(now);
            return Err(Problem::too_many_requests(format!(
                "this key's quota of {quota} tasks a month is used up; it starts over at the next month (UTC)"
            ))
            .with_retry_after(period.seconds_left(now), &gate::quota_fields(quota, quota, now)));
        }
    }
    let submission = Submission {
        id,
        kind,
        priority: common.priority,
        language: common.language,
        callback_url: common.callback_url.clone(),
        owner: caller.owner(),
    };
    let accepted = Accepted {
        id,
        kind,
        language: common.language,
        priority: common.priority,
    };
    let outcome = submit(&state.intake, submission, payload).await;
    if outcome.is_err()
        && let Some(key) = key
        && let Err(lost) = store.release_task(&key.id, kind, now_millis()).await
    {
        tracing::warn!(error = ?anyhow::Error::from(lost), "a task refused after its quota was counted stays counted");
    }
    match outcome {
        Ok(_) => Ok(accepted),
        // Created by the abandoned request this one took over (and counted then).
        Err(crate::ports::StoreError::Conflict(_)) => Ok(accepted),
        Err(e) => Err(e.into()),
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

fn multipart_problem(e: multer::Error) -> Problem {
    match e {
        multer::Error::FieldSizeExceeded { field_name, .. }
            if field_name.as_deref() == Some("audio_file") =>
        {
            Problem::too_large(format!(
                "audio_file exceeds {MAX_AUDIO_BYTES} bytes (50 MB)"
            ))
        }
        multer::Error::FieldSizeExceeded { field_name, .. } => Problem::invalid_field(
            field_name.as_deref().unwrap_or("form"),
            format!("exceeds {MAX_FORM_FIELD} bytes"),
        ),
        multer::Error::StreamSizeExceeded { .. } => Problem::too_large("the form is too large"),
        multer::Error::StreamReadFailed(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
            while let Some(s) = source {
                if let Some(late) = s.downcast_ref::<super::BodyTimedOut>() {
                    return Problem::timed_out(late.to_string());
                }
                source = s.source();
            }
            Problem::malformed("the request body could not be read completely")
        }
        other => Problem::malformed(format!("the multipart body is malformed: {other}")),
    }
}

/// `POST /api/v1/transcription`: multipart with `audio_file`, `source_language`, `priority`,
/// `callback_url`; or JSON naming an `upload_id` from `POST /api/v1/uploads`.
pub async fn transcription<W: SubmitStore, Q: QueueSend, B: BlobPut + BlobGet + BlobPresign>(
    State(state): State<Arc<SubmitState<W, Q, B>>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    match content_type(&headers) {
        Some(m) if m.type_() == mime::MULTIPART && m.subtype() == mime::FORM_DATA => {
            let boundary = m
                .get_param(mime::BOUNDARY)
                .map(|b| b.as_str().to_owned())
                .ok_or_else(|| Problem::malformed("multipart/form-data without a boundary"))?;
            let query = QueryFields::parse(query.as_deref())?;
            multipart_transcription(&state, &caller, &headers, (boundary, query), body).await
        }
        Some(m) if m.type_() == mime::APPLICATION && m.subtype() == mime::JSON => {
            let query = QueryFields::parse(query.as_deref())?;
            uploaded_transcription(&state, &caller, &headers, query, body).await
        }
        _ => Err(Problem::unsupported_media_type(
            "this route takes multipart/form-data, or application/json with an upload_id",
        )),
    }
}

/// The query parameters of `POST /api/v1/transcription`: `source_language` and `priority`,
/// as the old proxy took them.
#[derive(Debug, Default)]
struct QueryFields {
    language: Option<String>,
    priority: Option<String>,
}

impl QueryFields {
    fn parse(raw: Option<&str>) -> Result<Self, Problem> {
        let mut fields = Self::default();
        let mut errors = Errors::default();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let slot = match key.as_ref() {
                "source_language" => &mut fields.language,
                "priority" => &mut fields.priority,
                _ => continue, // unknown parameters are ignored, as the old proxy ignored them
            };
            if slot.is_some() {
                errors.add(&key, "must be given once");
            }
            *slot = Some(value.into_owned());
        }
        errors.finish()?;
        Ok(fields)
    }

    /// The common fields from the body's `(language, priority, callback)` and the query: the
    /// old proxy took the language and priority as query parameters, so either form is
    /// accepted, both only when they agree.
    fn common(
        &self,
        errors: &mut Errors,
        (language, priority, callback): (Option<String>, Option<String>, Option<String>),
        allowlist: &[ipnet::IpNet],
    ) -> Option<Common> {
        let language = self.merge("source_language", language, errors);
        let priority = self.merge("priority", priority, errors);
        errors.common(
            language.as_deref(),
            priority.as_deref(),
            callback.as_deref(),
            allowlist,
        )
    }

    /// The value of `name` from the form or the query; both given must agree.
    fn merge(&self, name: &str, form: Option<String>, errors: &mut Errors) -> Option<String> {
        let query = match name {
            "source_language" => self.language.clone(),
            _ => self.priority.clone(),
        };
        match (form, query) {
            // Languages and priorities are ASCII, in any case.
            (Some(f), Some(q)) if !f.trim().eq_ignore_ascii_case(q.trim()) => {
                errors.add(
                    name,
                    format!(
                        "is given as a form field ({f:?}) and as a query parameter ({q:?}) with different values; send one"
                    ),
                );
                Some(f)
            }
            (f, q) => f.or(q),
        }
    }
}

fn direct_too_large(limit: usize) -> Problem {
    Problem::too_large(format!(
        "audio sent directly may be at most {limit} bytes; upload larger files (up to {MAX_AUDIO_BYTES} bytes) through POST /api/v1/uploads and submit the upload_id"
    ))
}

async fn multipart_transcription<
    W: SubmitStore,
    Q: QueueSend,
    B: BlobPut + BlobGet + BlobPresign,
>(
    state: &SubmitState<W, Q, B>,
    caller: &Caller,
    headers: &HeaderMap,
    (boundary, query): (String, QueryFields),
    body: Body,
) -> Result<Response, Problem> {
    let limit = state.settings.direct_upload_limit();
    let bytes = read_body(headers, body, limit + MULTIPART_OVERHEAD)
        .await
        .map_err(|p| {
            if p.status == 413 {
                direct_too_large(limit)
            } else {
                p
            }
        })?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .per_field(MAX_FORM_FIELD)
            .for_field("audio_file", limit as u64),
    );
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
    let mut form = multer::Multipart::with_constraints(stream, boundary, constraints);
    let too_large = |e: multer::Error| match e {
        multer::Error::FieldSizeExceeded { ref field_name, .. }
            if field_name.as_deref() == Some("audio_file") =>
        {
            direct_too_large(limit)
        }
        other => multipart_problem(other),
    };

    let mut audio: Option<(Option<String>, Bytes)> = None;
    let mut fields: Vec<(String, Result<String, ()>)> = Vec::new();
    let mut errors = Errors::default();
    while let Some(field) = form.next_field().await.map_err(too_large)? {
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field.file_name().map(str::to_owned);
        let data = field.bytes().await.map_err(too_large)?;
        match name.as_str() {
            "audio_file" if audio.is_some() => errors.add("audio_file", "must be sent once"),
            "audio_file" => audio = Some((filename, data)),
            "source_language" | "priority" | "callback_url" => {
                fields.push((name, String::from_utf8(data.to_vec()).map_err(|_| ())));
            }
            _ => {} // unknown fields are ignored, as the old proxy ignored them
        }
    }
    let mut text = |name: &str| -> Option<String> {
        match fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
        {
            Some(Ok(v)) => Some(v),
            Some(Err(())) => {
                errors.add(name, "is not valid UTF-8");
                None
            }
            None => None,
        }
    };
    let (language, priority, callback) = (
        text("source_language"),
        text("priority"),
        text("callback_url"),
    );
    let common = query.common(
        &mut errors,
        (language, priority, callback),
        &state.settings.callback_allowlist,
    );
    let probed = match audio {
        None => {
            errors.add("audio_file", "is required");
            None
        }
        Some((name, data)) => match audio::probe(data.clone(), name.as_deref()) {
            Ok(p) => Some((name, data, p)),
            Err(e) => {
                errors.add("audio_file", e.0);
                None
            }
        },
    };
    errors.finish()?;
    let (Some(c), Some((filename, data, probe))) = (common, probed) else {
        return Err(Problem::invalid_field("body", "is invalid"));
    };
    let payload = Payload::Audio {
        data,
        filename,
        info: probe.info,
    };
    accept(
        state,
        (caller, headers),
        ServiceKind::Transcription,
        c,
        payload,
    )
    .await
}

async fn uploaded_transcription<
    W: SubmitStore,
    Q: QueueSend,
    B: BlobPut + BlobGet + BlobPresign,
>(
    state: &SubmitState<W, Q, B>,
    caller: &Caller,
    headers: &HeaderMap,
    query: QueryFields,
    body: Body,
) -> Result<Response, Problem> {
    let bytes = read_body(headers, body, MAX_JSON_BYTES).await?;
    let map = json_object(headers, &bytes)?;
    let mut errors = Errors::default();
    let upload_id = string_field(&map, "upload_id", &mut errors);
    let key = match upload_id {
        None if map.contains_key("upload_id") => None,
        None => {
            errors.add(
                "upload_id",
                "is required (or send the audio as multipart/form-data)",
            );
            None
        }
        Some(id) => BlobKey::upload(&caller.owner(), id).or_else(|| {
            errors.add("upload_id", "is not an upload id from POST /api/v1/uploads");
            None
        }),
    };
    let language = string_field(&map, "source_language", &mut errors).map(str::to_owned);
    let priority = string_field(&map, "priority", &mut errors).map(str::to_owned);
    let callback = string_field(&map, "callback_url", &mut errors).map(str::to_owned);
    let common = query.common(
        &mut errors,
        (language, priority, callback),
        &state.settings.callback_allowlist,
    );
    errors.finish()?;
    let (Some(key), Some(c)) = (key, common) else {
        return Err(Problem::invalid_field("body", "is invalid"));
    };
    let nothing = || {
        Problem::invalid_field(
            "upload_id",
            "nothing was uploaded under this id (or the upload expired)",
        )
    };
    let upload_id = BlobKey::upload_id(key.as_str()).unwrap_or_default();
    let blobs = &state.intake.blobs;
    let announced = uploads::slot_size(blobs, &caller.owner(), upload_id)
        .await?
        .ok_or_else(nothing)?;
    if uploads::older_than(upload_id, uploads::UPLOAD_LIFETIME) {
        return Err(nothing());
    }
    // Measured before it is read: whatever a client managed to store, at most the announced
    // size is read.
    let size = blobs.size(key.as_str()).await?.ok_or_else(nothing)?;
    if size > announced.min(MAX_AUDIO_BYTES as u64) {
        return Err(Problem::too_large(format!(
            "the upload is {size} bytes; {announced} were announced"
        )));
    }
    let data = blobs.get(key.as_str()).await?.ok_or_else(nothing)?;
    if data.len() as u64 > announced.min(MAX_AUDIO_BYTES as u64) {
        return Err(Problem::too_large(format!(
            "the upload exceeds the {announced} bytes announced"
        )));
    }
    let probe =
        audio::probe(data.clone(), None).map_err(|e| Problem::invalid_field("upload_id", e.0))?;
    // The bytes probed become the task's own input: a later write to the upload changes
    // nothing the miners get.
    let payload = Payload::Uploaded {
        upload: key,
        data,
        info: probe.info,
    };
    accept(
        state,
        (caller, headers),
        ServiceKind::Transcription,
        c,
        payload,
    )
    .await
}
