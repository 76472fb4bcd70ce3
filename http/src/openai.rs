//! An OpenAI-compatible audio API, so that existing OpenAI clients work unchanged:
//! `POST /v1/audio/transcriptions`, `POST /v1/audio/speech` and `GET /v1/models`.
//!
//! Each call submits an ordinary task (the caller's, under its key, priority `normal`) and
//! waits for it, at most `OPENAI_WAIT` seconds (25 by default, inside API Gateway's 29 s). A
//! task still running then is answered 504 with its id (`Location`, and `task_id` in the
//! error), and `x-should-retry: false`, so that an OpenAI client polls
//! `/api/v1/tasks/{id}` instead of submitting again. Errors use OpenAI's shape:
//! `{"error": {"message", "type", "param", "code"}}`; the gate's answers are converted too.
//!
//! What is accepted and ignored: `prompt` and `temperature` (transcriptions), `voice` and `speed`
//! (speech), and `model` (any name; the subnet's miners choose their models). The language of a
//! transcription defaults to `en`; speech takes an optional `language` beside OpenAI's fields.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::body::{content_type, read_body};
use super::gate::Caller;
use super::problem::Problem;
use super::submit::{Common, MAX_JSON_BYTES, create_task};
use super::{SubmitState, SubmitStore};
use crate::audio;
use crate::domain::{
    Language, Priority, ServiceKind, SubmittedText, Task, TaskId, TaskInput, TaskOutput,
    TaskStatus, TextLimits,
};
use crate::ports::{BlobGet, BlobPresign, BlobPut, QueueSend, TaskReader};
use crate::submission::Payload;

/// How often a waiting call looks at its task.
const POLL: Duration = Duration::from_millis(200);
/// The sample rate of OpenAI's `pcm` speech format (16-bit little-endian mono).
const PCM_RATE: u32 = 24_000;
/// Room for the multipart framing and the small fields around the file.
const FORM_OVERHEAD: usize = 1024 * 1024;

/// What the OpenAI routes need: the submission ports, reading tasks back, and how long to wait.
pub struct OpenAiState<W, Q, B> {
    /// The submission routes' state.
    pub submit: SubmitState<W, Q, B>,
    /// The longest a call waits for its task.
    pub wait: Duration,
}

/// An OpenAI error answer.
fn error(status: StatusCode, message: impl Into<String>, param: Option<&str>) -> Response {
    let kind = match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    };
    let body =
        json!({"error": {"message": message.into(), "type": kind, "param": param, "code": null}});
    (status, Json(body)).into_response()
}

fn bad(message: impl Into<String>, param: &str) -> Response {
    error(StatusCode::BAD_REQUEST, message, Some(param))
}

/// Rewrites problem+json answers (the gate's, the shared handlers') in OpenAI's error shape,
/// keeping the status and headers (`WWW-Authenticate`, `Retry-After`, rate limit fields).
pub async fn openai_errors(response: Response) -> Response {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let param = problem["errors"][0]["field"].as_str().map(str::to_owned);
    let message = match problem["detail"].as_str() {
        Some(d) if !d.is_empty() => d.to_owned(),
        _ => problem["title"].as_str().unwrap_or("error").to_owned(),
    };
    let rewritten = error(parts.status, message, param.as_deref());
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, rewritten.into_body())
}

/// An error answered once task `id` exists: OpenAI's clients must not submit it again, and
/// the caller learns which task to follow.
fn after_creation(id: TaskId, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-should-retry", HeaderValue::from_static("false"));
    if let Ok(l) = HeaderValue::from_str(&format!("/api/v1/tasks/{id}")) {
        headers.insert(header::LOCATION, l);
    }
    response
}

/// Waits for task `id` to end, at most `wait`.
async fn wait_for<R: TaskReader>(tasks: &R, id: TaskId, wait: Duration) -> Result<Task, Response> {
    let started = Instant::now();
    loop {
        match tasks.get(id).await {
            Ok(Some(task)) if task.status == TaskStatus::Completed => return Ok(task),
            Ok(Some(task)) if task.status == TaskStatus::Failed => {
                let mut r = error(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "task {id} failed: {}",
                        task.error_message.as_deref().unwrap_or("no reason given")
                    ),
                    None,
                );
                r.headers_mut()
                    .insert("x-should-retry", HeaderValue::from_static("false"));
                return Err(r);
            }
            Ok(_) => {}
            Err(e) => return Err(after_creation(id, Problem::from(e).into_response())),
        }
        if started.elapsed() >= wait {
            let location = format!("/api/v1/tasks/{id}");
            let body = json!({"error": {
                "message": format!("task {id} did not finish within {} s; it goes on: poll {location}", wait.as_secs()),
                "type": "timeout",
                "param": null,
                "code": "task_pending",
                "task_id": id.to_string(),
            }});
            let mut r = (StatusCode::GATEWAY_TIMEOUT, Json(body)).into_response();
            let headers = r.headers_mut();
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
            if let Ok(l) = HeaderValue::from_str(&location) {
                headers.insert(header::LOCATION, l);
            }
            return Err(r);
        }
        tokio::time::sleep(POLL).await;
    }
}

fn text_output(task: &Task) -> String {
    match task.result.as_ref().map(|r| &r.output) {
        Some(TaskOutput::Text { text }) => text.clone(),
        _ => String::new(),
    }
}

/// `HH:MM:SS{sep}mmm`.
fn timestamp(seconds: f64, sep: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

fn language_name(code: &str) -> &'static str {
    match code {
        "en" => "english",
        "es" => "spanish",
        "fr" => "french",
        "de" => "german",
        "it" => "italian",
        "pt" => "portuguese",
        "ru" => "russian",
        "ja" => "japanese",
        "ko" => "korean",
        "zh" => "chinese",
        "ar" => "arabic",
        "hi" => "hindi",
        _ => "unknown",
    }
}

/// A finished transcription in the format asked for.
fn transcript_response(task: &Task, format: &str) -> Response {
    let text = text_output(task);
    let duration = match &task.input {
        TaskInput::Audio { info, .. } => info.duration_s,
        TaskInput::Text { .. } => 0.0,
    };
    let plain =
        |body: String, ct: &'static str| ([(header::CONTENT_TYPE, ct)], body).into_response();
    match format {
        "text" => plain(format!("{text}\n"), "text/plain; charset=utf-8"),
        "srt" => plain(
            format!("1\n{} --> {}\n{text}\n", timestamp(0.0, ','), timestamp(duration, ',')),
            "text/plain; charset=utf-8",
        ),
        "vtt" => plain(
            format!("WEBVTT\n\n{} --> {}\n{text}\n", timestamp(0.0, '.'), timestamp(duration, '.')),
            "text/vtt; charset=utf-8",
        ),
        "verbose_json" => Json(json!({
            "task": "transcribe",
            "language": language_name(task.language.code()),
            "duration": duration,
            "text": text,
            "segments": [{
                "id": 0, "seek": 0, "start": 0.0, "end": duration, "text": text, "tokens": [],
                "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 0.0, "no_speech_prob": 0.0
            }],
        }))
        .into_response(),
        _ => Json(json!({"text": text})).into_response(),
    }
}

/// Submits the caller's task (priority `normal`, within the key's maximum) and waits for it;
/// an error is already the answer to give.
async fn submit_and_wait<W, Q, B>(
    state: &OpenAiState<W, Q, B>,
    caller: &Caller,
    kind: ServiceKind,
    language: Language,
    payload: Payload,
) -> Result<Task, Response>
where
    W: SubmitStore + TaskReader,
    Q: QueueSend,
    B: BlobPut,
{
    let common = Common {
        language,
        priority: Priority::Normal.min(caller.max_priority()),
        callback_url: None,
    };
    let created = create_task(&state.submit, caller, TaskId::new(), kind, &common, payload).await;
    let task = match created {
        Ok(t) => t,
        Err(p) => return Err(openai_errors(p.into_response()).await),
    };
    wait_for(&state.submit.intake.tasks, task.id, state.wait).await
}

const TRANSCRIPT_FORMATS: [&str; 5] = ["json", "text", "srt", "vtt", "verbose_json"];

/// `POST /v1/audio/transcriptions`.
pub async fn transcriptions<W, Q, B>(
    State(state): State<Arc<OpenAiState<W, Q, B>>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response
where
    W: SubmitStore + TaskReader,
    Q: QueueSend,
    B: BlobPut + BlobGet + BlobPresign,
{
    let boundary = match content_type(&headers) {
        Some(m) if m.type_() == mime::MULTIPART && m.subtype() == mime::FORM_DATA => {
            m.get_param(mime::BOUNDARY).map(|b| b.as_str().to_owned())
        }
        _ => None,
    };
    let Some(boundary) = boundary else {
        return bad("send multipart/form-data with a `file` field", "file");
    };
    let limit = state.submit.settings.direct_upload_limit();
    let bytes = match read_body(&headers, body, limit + FORM_OVERHEAD).await {
        Ok(b) => b,
        Err(p) => return openai_errors(p.into_response()).await,
    };
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .per_field(8 * 1024)
            .for_field("file", limit as u64),
    );
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
    let mut form = multer::Multipart::with_constraints(stream, boundary, constraints);
    let (mut file, mut fields) = (None, std::collections::HashMap::new());
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let filename = field.file_name().map(str::to_owned);
                match field.bytes().await {
                    Ok(data) if name == "file" => file = Some((filename, data)),
                    Ok(data) => {
                        fields.insert(name, String::from_utf8_lossy(&data).into_owned());
                    }
                    Err(e) => {
                        return error(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!(
                                "the form is too large or malformed: {e}; files up to {limit} bytes"
                            ),
                            Some("file"),
                        );
                    }
                }
            }
            Ok(None) => break,
            Err(e) => return bad(format!("the multipart body is malformed: {e}"), "file"),
        }
    }
    if fields.get("model").is_none_or(|m| m.trim().is_empty()) {
        return bad(
            "`model` is required (any name: the subnet's miners choose)",
            "model",
        );
    }
    let format = fields
        .get("response_format")
        .cloned()
        .unwrap_or_else(|| "json".into());
    if !TRANSCRIPT_FORMATS.contains(&format.as_str()) {
        return bad(
            format!(
                "response_format '{}' is not one of json, text, srt, vtt, verbose_json",
                format.escape_default()
            ),
            "response_format",
        );
    }
    let language = match Language::parse(fields.get("language").map_or("en", |l| l.as_str())) {
        Ok(l) => l,
        Err(e) => return bad(e.0, "language"),
    };
    let Some((filename, data)) = file else {
        return bad("`file` is required", "file");
    };
    let probe = match audio::probe(data.clone(), filename.as_deref()) {
        Ok(p) => p,
        Err(e) => return bad(e.0, "file"),
    };
    let payload = Payload::Audio {
        data,
        filename,
        info: probe.info,
    };
    match submit_and_wait(
        &state,
        &caller,
        ServiceKind::Transcription,
        language,
        payload,
    )
    .await
    {
        Ok(done) => transcript_response(&done, &format),
        Err(r) => r,
    }
}

/// `POST /v1/audio/speech`.
pub async fn speech<W, Q, B>(
    State(state): State<Arc<OpenAiState<W, Q, B>>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response
where
    W: SubmitStore + TaskReader,
    Q: QueueSend,
    B: BlobPut + BlobGet + BlobPresign,
{
    let bytes: Bytes = match read_body(&headers, body, MAX_JSON_BYTES).await {
        Ok(b) => b,
        Err(p) => return openai_errors(p.into_response()).await,
    };
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) else {
        return bad("the body must be a JSON object", "input");
    };
    let field = |name: &str| map.get(name).and_then(Value::as_str).map(str::trim);
    if field("model").is_none_or(str::is_empty) {
        return bad(
            "`model` is required (any name: the subnet's miners choose)",
            "model",
        );
    }
    let format = map
        .get("response_format")
        .and_then(Value::as_str)
        .unwrap_or("wav")
        .to_owned();
    if !["wav", "pcm"].contains(&format.as_str()) {
        return bad(
            format!(
                "response_format '{}' is not available; use wav or pcm",
                format.escape_default()
            ),
            "response_format",
        );
    }
    if let Some(speed) = map.get("speed").filter(|v| !v.is_null())
        && !speed.as_f64().is_some_and(|s| (0.25..=4.0).contains(&s))
    {
        return bad("speed must be a number from 0.25 to 4.0", "speed");
    }
    let text = match field("input").map(|i| SubmittedText::parse(i, TextLimits::TTS)) {
        None => return bad("`input` is required", "input"),
        Some(Err(e)) => return bad(e.0, "input"),
        Some(Ok(t)) => t,
    };
    let language = match Language::parse(field("language").unwrap_or("en")) {
        Ok(l) => l,
        Err(e) => return bad(e.0, "language"),
    };
    let payload = Payload::Text(text.into_string());
    let done = match submit_and_wait(&state, &caller, ServiceKind::Tts, language, payload).await {
        Ok(done) => done,
        Err(r) => return r,
    };
    let Some(TaskOutput::Audio { blob_key, .. }) = done.result.as_ref().map(|r| &r.output) else {
        return error(
            StatusCode::BAD_GATEWAY,
            "the task completed without audio",
            None,
        );
    };
    let wav = match state.submit.intake.blobs.get(blob_key).await {
        Ok(Some(w)) => w,
        Ok(None) => {
            return error(
                StatusCode::BAD_GATEWAY,
                "the audio result has expired",
                None,
            );
        }
        Err(e) => return Problem::from(e).into_response(),
    };
    if format == "pcm" {
        // The stored answer is within its budget already; the bound only guards the decoder.
        let max = crate::domain::AnswerBudget::for_task(&done).audio_seconds + 1.0;
        return match audio::pcm16_mono(wav, PCM_RATE, max) {
            Ok(pcm) => ([(header::CONTENT_TYPE, "audio/pcm")], pcm).into_response(),
            Err(e) => error(
                StatusCode::BAD_GATEWAY,
                format!("the audio could not be converted: {}", e.0),
                None,
            ),
        };
    }
    ([(header::CONTENT_TYPE, "audio/wav")], wav).into_response()
}

/// `GET /v1/models`: one model per service.
pub async fn models() -> Json<Value> {
    let model = |id: &str| json!({"id": id, "object": "model", "created": 1_764_000_000, "owned_by": "taogate"});
    Json(json!({
        "object": "list",
        "data": [model("taogate-transcription"), model("taogate-tts"), model("taogate-summarization")],
    }))
}
