//! The OpenAPI 3.1 document, generated from the wire types and the route declarations below, and
//! a documentation page rendered from it on the server (no scripts, nothing downloaded).
//!
//! The handlers are generic over their ports, so each operation is declared on a small marker
//! function here; a test checks that every route the router serves is documented.

#![allow(dead_code)]

use utoipa::OpenApi;

use super::gate::UsageView;
use super::problem::{FieldError, Problem};
use super::uploads::UploadView;
use crate::ports::QueueDepth;
use crate::views::{
    CandidateView, HealthView, IntegrationView, MinerDirectoryView, NetworkInfoView,
    PendingTaskView, QueueStatsView, ResultView, ServingMinerView, SubmitView, TaskCountsView,
    TaskView,
};

/// JSON body of the TTS route.
#[derive(utoipa::ToSchema)]
pub struct TtsSubmission {
    /// At most 10,000 characters once the whitespace around it is trimmed, and at least one.
    #[schema(
        min_length = 1,
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000](?:[\s\S]{0,9998}[^\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub text: String,
    /// en es fr de it pt ru ja ko zh ar hi (case-insensitive).
    #[schema(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[Ee][Nn]|[Ee][Ss]|[Ff][Rr]|[Dd][Ee]|[Ii][Tt]|[Pp][Tt]|[Rr][Uu]|[Jj][Aa]|[Kk][Oo]|[Zz][Hh]|[Aa][Rr]|[Hh][Ii])[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub source_language: String,
    /// low | normal | high | urgent (default normal).
    #[schema(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[Ll][Oo][Ww]|[Nn][Oo][Rr][Mm][Aa][Ll]|[Hh][Ii][Gg][Hh]|[Uu][Rr][Gg][Ee][Nn][Tt])[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub priority: Option<String>,
    /// http(s) URL that receives the terminal task state as JSON; empty for none.
    #[schema(
        pattern = r"^(?:https?://[a-z][a-z0-9-]{0,20}(?:\.[a-z][a-z0-9-]{0,20}){0,3}\.(?:com|org|net|io|dev)(?:/[A-Za-z0-9._~-]{0,20}){0,3})?$"
    )]
    pub callback_url: Option<String>,
}

/// JSON body of the summarization route.
#[derive(utoipa::ToSchema)]
pub struct SummarizationSubmission {
    /// 50 to 50,000 characters once the whitespace around it is trimmed.
    #[schema(
        min_length = 50,
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\s\S]{48,49998}[^\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub text: String,
    /// en es fr de it pt ru ja ko zh ar hi (case-insensitive).
    #[schema(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[Ee][Nn]|[Ee][Ss]|[Ff][Rr]|[Dd][Ee]|[Ii][Tt]|[Pp][Tt]|[Rr][Uu]|[Jj][Aa]|[Kk][Oo]|[Zz][Hh]|[Aa][Rr]|[Hh][Ii])[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub source_language: String,
    /// low | normal | high | urgent (default normal).
    #[schema(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[Ll][Oo][Ww]|[Nn][Oo][Rr][Mm][Aa][Ll]|[Hh][Ii][Gg][Hh]|[Uu][Rr][Gg][Ee][Nn][Tt])[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub priority: Option<String>,
    /// http(s) URL that receives the terminal task state as JSON; empty for none.
    #[schema(
        pattern = r"^(?:https?://[a-z][a-z0-9-]{0,20}(?:\.[a-z][a-z0-9-]{0,20}){0,3}\.(?:com|org|net|io|dev)(?:/[A-Za-z0-9._~-]{0,20}){0,3})?$"
    )]
    pub callback_url: Option<String>,
}

/// Multipart body of the transcription route.
#[derive(utoipa::ToSchema)]
pub struct AudioSubmission {
    /// WAV, FLAC, MP3 or OGG/Vorbis; at most 50 MiB.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub audio_file: Vec<u8>,
    /// en es fr de it pt ru ja ko zh ar hi (case-insensitive). Required here or as the
    /// `source_language` query parameter (the old proxy's form).
    #[schema(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[Ee][Nn]|[Ee][Ss]|[Ff][Rr]|[Dd][Ee]|[Ii][Tt]|[Pp][Tt]|[Rr][Uu]|[Jj][Aa]|[Kk][Oo]|[Zz][Hh]|[Aa][Rr]|[Hh][Ii])[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub source_language: Option<String>,
    /// low | normal | high | urgent (default normal).
    #[schema(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[Ll][Oo][Ww]|[Nn][Oo][Rr][Mm][Aa][Ll]|[Hh][Ii][Gg][Hh]|[Uu][Rr][Gg][Ee][Nn][Tt])[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub priority: Option<String>,
    /// http(s) URL that receives the terminal task state as JSON; empty for none.
    #[schema(
        pattern = r"^(?:https?://[a-z][a-z0-9-]{0,20}(?:\.[a-z][a-z0-9-]{0,20}){0,3}\.(?:com|org|net|io|dev)(?:/[A-Za-z0-9._~-]{0,20}){0,3})?$"
    )]
    pub callback_url: Option<String>,
}

/// Submit audio for transcription: multipart with the file (up to 50 MiB locally, about 4 MiB
/// behind a Lambda), or JSON naming an upload.
#[utoipa::path(post, path = "/api/v1/transcription", tag = "submit",
    params(("source_language" = Option<String>, Query, description = "The old proxy's form of the multipart field: either, or both with the same value"),
           ("priority" = Option<String>, Query, description = "The old proxy's form of the multipart field: either, or both with the same value")),
    request_body(content(
        (AudioSubmission = "multipart/form-data"),
        (UploadedAudioSubmission = "application/json"),
    )),
    responses((status = 200, body = SubmitView, description = "Queued; `Location` names the task"),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "Malformed multipart"),
              (status = 413, body = Problem, content_type = "application/problem+json", description = "Audio over 50 MiB"),
              (status = 415, body = Problem, content_type = "application/problem+json", description = "Not multipart/form-data"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "Invalid fields, or not audio")))]
fn transcription() {}

/// JSON body of the transcription route for audio uploaded through `POST /api/v1/uploads`.
#[derive(utoipa::ToSchema)]
pub struct UploadedAudioSubmission {
    /// The `upload_id` of a completed upload.
    #[schema(
        pattern = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
    )]
    pub upload_id: String,
    /// en es fr de it pt ru ja ko zh ar hi (case-insensitive).
    #[schema(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[Ee][Nn]|[Ee][Ss]|[Ff][Rr]|[Dd][Ee]|[Ii][Tt]|[Pp][Tt]|[Rr][Uu]|[Jj][Aa]|[Kk][Oo]|[Zz][Hh]|[Aa][Rr]|[Hh][Ii])[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub source_language: String,
    /// low | normal | high | urgent (default normal).
    #[schema(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[Ll][Oo][Ww]|[Nn][Oo][Rr][Mm][Aa][Ll]|[Hh][Ii][Gg][Hh]|[Uu][Rr][Gg][Ee][Nn][Tt])[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub priority: Option<String>,
    /// http(s) URL that receives the terminal task state as JSON; empty for none.
    #[schema(
        pattern = r"^(?:https?://[a-z][a-z0-9-]{0,20}(?:\.[a-z][a-z0-9-]{0,20}){0,3}\.(?:com|org|net|io|dev)(?:/[A-Za-z0-9._~-]{0,20}){0,3})?$"
    )]
    pub callback_url: Option<String>,
}

/// The size of the file to upload.
#[derive(utoipa::ToSchema)]
pub struct UploadRequest {
    /// The file's size in bytes: the upload takes one body of exactly this size.
    #[schema(minimum = 1, maximum = 52428800)]
    pub size_bytes: u64,
}

/// Get a URL to upload large audio to (up to 50 MiB), then submit its `upload_id` (within a day).
#[utoipa::path(post, path = "/api/v1/uploads", tag = "submit", request_body = UploadRequest,
    responses((status = 201, body = UploadView, description = "PUT the file (one body of exactly `size_bytes`) to `url` with `headers` before `expires_in` seconds pass"),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "Not JSON"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 415, body = Problem, content_type = "application/problem+json", description = "Not application/json"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "No valid `size_bytes`")))]
fn create_upload() {}

/// The local runtime's upload target (on AWS, `url` is a presigned S3 PUT instead): one body of
/// exactly the announced size.
#[utoipa::path(put, path = "/api/v1/uploads/{id}", tag = "submit",
    params(("id" = String, Path, description = "upload_id")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "Stored"),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "Not the announced size"),
              (status = 403, body = Problem, content_type = "application/problem+json", description = "The upload URL expired"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json", description = "The upload has its file already"),
              (status = 413, body = Problem, content_type = "application/problem+json")))]
fn put_upload() {}

/// Submit text for speech synthesis.
#[utoipa::path(post, path = "/api/v1/tts", tag = "submit", request_body = TtsSubmission,
    responses((status = 200, body = SubmitView), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
fn tts() {}

/// Submit text for summarization.
#[utoipa::path(post, path = "/api/v1/summarization", tag = "submit", request_body = SummarizationSubmission,
    responses((status = 200, body = SubmitView), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 415, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
fn summarization() {}

/// A task's state, result and every queried miner's outcome.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "status",
    params(("id" = String, Path, description = "Task id")),
    responses((status = 200, body = TaskView), (status = 404, body = Problem, content_type = "application/problem+json")))]
fn get_task() {}

/// The audio result of a TTS task (local runtime; on AWS `audio_url` is a presigned S3 URL).
#[utoipa::path(get, path = "/api/v1/tasks/{id}/audio", tag = "status",
    params(("id" = String, Path, description = "Task id")),
    responses((status = 200, content_type = "audio/wav", description = "WAV file"), (status = 404, body = Problem, content_type = "application/problem+json")))]
fn get_audio() {}

/// A text result in full (the task view carries it inline up to 32 KiB, else `output_url`).
#[utoipa::path(get, path = "/api/v1/tasks/{id}/output", tag = "status",
    params(("id" = String, Path, description = "Task id")),
    responses((status = 200, content_type = "text/plain", description = "The transcript or summary"), (status = 404, body = Problem, content_type = "application/problem+json")))]
fn get_output() {}

/// A status filter of the task list (empty: any).
#[derive(utoipa::ToSchema)]
#[schema(as = ListStatus)]
#[allow(non_camel_case_types)]
pub enum ListStatus {
    /// Any.
    #[schema(rename = "")]
    any,
    /// Pending.
    pending,
    /// Processing.
    processing,
    /// Completed.
    completed,
    /// Failed.
    failed,
}

/// A service filter of the task list (empty: any).
#[derive(utoipa::ToSchema)]
#[allow(non_camel_case_types)]
pub enum ListKind {
    /// Any.
    #[schema(rename = "")]
    any,
    /// Transcription.
    transcription,
    /// TTS.
    tts,
    /// Summarization.
    summarization,
}

/// Tasks, newest first, as a JSON array; the next page is in the `Link` header.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "status",
    params(("status" = Option<ListStatus>, Query, description = "pending | processing | completed | failed; empty for any"),
           ("task_type" = Option<ListKind>, Query, description = "transcription | tts | summarization; empty for any"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 100"),
           ("cursor" = Option<String>, Query, description = "from the `Link: <…>; rel=\"next\"` header of the previous page")),
    responses((status = 200, body = Vec<TaskView>, description = "`Link: <…>; rel=\"next\"` when there is a next page"), (status = 422, body = Problem, content_type = "application/problem+json")))]
fn list_tasks() {}

/// Service health: queues, task counts, miner directory.
#[utoipa::path(get, path = "/api/v1/health", tag = "status", responses((status = 200, body = HealthView)))]
fn health() {}

/// Network, serving miners, pending tasks and queue stats for validator operators (an admin
/// key, or no key while keys are optional).
#[utoipa::path(get, path = "/api/v1/validator/integration", tag = "status",
    responses((status = 200, body = IntegrationView),
              (status = 403, body = Problem, content_type = "application/problem+json", description = "Not an admin key")))]
fn integration() {}

/// The calling key's use this calendar month (UTC): requests, tasks by service, quota left.
#[utoipa::path(get, path = "/api/v1/usage", tag = "status",
    responses((status = 200, body = UsageView)))]
fn usage() {}

/// Multipart body of `POST /v1/audio/transcriptions` (OpenAI's).
#[derive(utoipa::ToSchema)]
pub struct OpenAiTranscriptionForm {
    /// The audio: WAV, FLAC, MP3 or OGG/Vorbis.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub file: Vec<u8>,
    /// Any name; the subnet's miners choose their models.
    #[schema(
        pattern = r"[^\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub model: String,
    /// en es fr de it pt ru ja ko zh ar hi; default en.
    #[schema(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[Ee][Nn]|[Ee][Ss]|[Ff][Rr]|[Dd][Ee]|[Ii][Tt]|[Pp][Tt]|[Rr][Uu]|[Jj][Aa]|[Kk][Oo]|[Zz][Hh]|[Aa][Rr]|[Hh][Ii])[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub language: Option<String>,
    /// json (default), text, srt, vtt or verbose_json.
    #[schema(pattern = "^(?:json|text|srt|vtt|verbose_json)$")]
    pub response_format: Option<String>,
    /// Accepted and ignored.
    pub prompt: Option<String>,
    /// Accepted and ignored.
    pub temperature: Option<f64>,
}

/// JSON body of `POST /v1/audio/speech` (OpenAI's).
#[derive(utoipa::ToSchema)]
pub struct OpenAiSpeechRequest {
    /// Any name; the subnet's miners choose their models.
    #[schema(
        pattern = r"[^\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub model: String,
    /// The text: 1 to 10,000 characters once the whitespace around it is trimmed.
    #[schema(
        min_length = 1,
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000](?:[\s\S]{0,9998}[^\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub input: String,
    /// Accepted and ignored.
    pub voice: Option<String>,
    /// wav (default) or pcm (16-bit little-endian mono at 24 kHz).
    #[schema(pattern = "^(?:wav|pcm)$")]
    pub response_format: Option<String>,
    /// 0.25–4.0; accepted and ignored.
    #[schema(minimum = 0.25, maximum = 4.0)]
    pub speed: Option<f64>,
    /// taogate's extra: the text's language, default en.
    #[schema(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[Ee][Nn]|[Ee][Ss]|[Ff][Rr]|[Dd][Ee]|[Ii][Tt]|[Pp][Tt]|[Rr][Uu]|[Jj][Aa]|[Kk][Oo]|[Zz][Hh]|[Aa][Rr]|[Hh][Ii])[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub language: Option<String>,
}

/// OpenAI's error shape, used by the `/v1` routes.
#[derive(utoipa::ToSchema)]
pub struct OpenAiError {
    /// `{message, type, param, code}`; a 504 adds `task_id`.
    pub error: serde_json::Value,
}

/// Transcribe audio, waiting for the task (OpenAI-compatible).
#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "openai",
    request_body(content = OpenAiTranscriptionForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "`{\"text\": …}`, or the text, SRT, VTT or verbose JSON asked for"),
              (status = 400, body = OpenAiError, description = "A missing or invalid field"),
              (status = 502, body = OpenAiError, description = "The task failed"),
              (status = 504, body = OpenAiError, description = "Still running after OPENAI_WAIT: `task_id` and `Location` name it")))]
fn openai_transcriptions() {}

/// Synthesize speech, waiting for the task (OpenAI-compatible); answers the audio.
#[utoipa::path(post, path = "/v1/audio/speech", tag = "openai", request_body = OpenAiSpeechRequest,
    responses((status = 200, content((Vec<u8> = "audio/wav"), (Vec<u8> = "audio/pcm")), description = "WAV, or raw 16-bit 24 kHz mono for pcm"),
              (status = 400, body = OpenAiError),
              (status = 502, body = OpenAiError, description = "The task failed"),
              (status = 504, body = OpenAiError, description = "Still running after OPENAI_WAIT")))]
fn openai_speech() {}

/// The services as OpenAI models.
#[utoipa::path(get, path = "/v1/models", tag = "openai", responses((status = 200, description = "`{object: list, data: [{id, object, created, owned_by}]}`")))]
fn openai_models() {}

/// Lease waiting tasks to an external validator (the old proxy's distribute, as a lease).
#[utoipa::path(post, path = "/api/v1/validator/distribute", tag = "validator",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 10, description = "1–10, default 10"),
           ("lease" = Option<u32>, Query, minimum = 1, maximum = 3600, description = "seconds, 1–3600, default 300")),
    responses((status = 200, description = "`{message, task_count, tasks: [{task_id, task_type, input_data (base64), language, priority, submitted_at, attempt, lease_token, lease_until}]}`, or `{message, task_count: 0}`"),
              (status = 403, body = Problem, content_type = "application/problem+json", description = "Not an admin key"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
fn distribute() {}

/// Hand back a leased task's answer within its lease.
#[utoipa::path(post, path = "/api/v1/validator/tasks/{id}/result", tag = "validator",
    params(("id" = String, Path, description = "Task id"),
           ("X-Lease-Token" = Option<String>, Header, description = "The lease's token, instead of `lease_token` in the body")),
    request_body(content = serde_json::Value, description = "`{attempt, lease_token, output_data (base64), model_used?, processing_time?}`"),
    responses((status = 200, description = "`{task_id, status: completed}`"),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "Not a JSON object"),
              (status = 403, body = Problem, content_type = "application/problem+json", description = "Not an admin key"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "No live lease of this token"),
              (status = 413, body = Problem, content_type = "application/problem+json", description = "Past the task's answer budget (64 MiB at most)"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "No lease token, or not a valid answer for the task")))]
fn validator_result() {}

/// Routes anyone may read, without a key.
const PUBLIC_PATHS: [&str; 1] = ["/api/v1/health"];
/// Routes that create something and honour `Idempotency-Key`.
const IDEMPOTENT_PATHS: [&str; 4] = [
    "/api/v1/transcription",
    "/api/v1/tts",
    "/api/v1/summarization",
    "/api/v1/uploads",
];

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "taogate", description = "HTTPS gateway to a Bittensor audio subnet: transcription, text-to-speech and summarization."),
    paths(transcription, create_upload, put_upload, tts, summarization, get_task, get_audio, get_output, list_tasks, health, integration, usage,
        openai_transcriptions, openai_speech, openai_models, distribute, validator_result),
    components(schemas(TtsSubmission, SummarizationSubmission, AudioSubmission, UploadedAudioSubmission, UploadRequest, UploadView, SubmitView, TaskView, ResultView, CandidateView, crate::domain::ScoreDetail,
        HealthView, TaskCountsView, MinerDirectoryView, IntegrationView, ServingMinerView,
        PendingTaskView, NetworkInfoView, QueueStatsView, QueueDepth, UsageView, Problem, FieldError,
        OpenAiTranscriptionForm, OpenAiSpeechRequest, OpenAiError, ListStatus, ListKind)),
    tags((name = "submit", description = "Submit work"), (name = "status", description = "Follow work and the service"),
         (name = "validator", description = "Lease work to an external validator (admin keys)"),
         (name = "openai", description = "OpenAI-compatible audio: existing OpenAI clients, with base URL `<taogate>/v1` and a taogate key"))
)]
pub struct ApiDoc;

/// How to authenticate, for the document and the docs page.
const AUTHENTICATION: &str = "Send an API key (made with `taogate keys create`) as \
`Authorization: Bearer <key>` or `X-API-Key: <key>`. Keys are required on AWS by default and \
optional for `taogate serve` (API_AUTH). A missing, malformed, unknown or revoked key is 401; \
over the key's rate or monthly quota is 429 with `Retry-After` and the `RateLimit-Policy` and \
`RateLimit` fields; a priority above the key's maximum is 403. Each key sees only its own \
tasks (another's answer 404); admin keys see all. Callbacks are signed per key (Standard \
Webhooks).";

fn problem_response(description: &str) -> serde_json::Value {
    serde_json::json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// The document as JSON, with the security schemes, the answers every guarded operation can
/// give, and the `Idempotency-Key` header of the creating routes.
pub fn document() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    doc["info"]["description"] = serde_json::Value::String(format!(
        "HTTPS gateway to a Bittensor audio subnet: transcription, text-to-speech and \
         summarization.\n\n{AUTHENTICATION}"
    ));
    doc["components"]["securitySchemes"] = serde_json::json!({
        "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer tg_..."},
        "api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    });
    doc["security"] = serde_json::json!([{"bearer": []}, {"api_key": []}]);
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for (path, item) in paths.iter_mut() {
            let Some(ops) = item.as_object_mut() else {
                continue;
            };
            for op in ops.values_mut() {
                if PUBLIC_PATHS.contains(&path.as_str()) {
                    op["security"] = serde_json::json!([]);
                    continue;
                }
                let error = |description: &str| {
                    if path.starts_with("/v1/") {
                        serde_json::json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAiError"}}}})
                    } else {
                        problem_response(description)
                    }
                };
                let responses = &mut op["responses"];
                responses["401"] = error(
                    "No key where one is required, or a malformed, unknown or revoked key; with `WWW-Authenticate`",
                );
                responses["429"] = error(
                    "Over the key's rate or monthly quota; with `Retry-After`, `RateLimit-Policy` and `RateLimit`",
                );
                if IDEMPOTENT_PATHS.contains(&path.as_str()) {
                    if responses.get("400").is_none() {
                        responses["400"] = problem_response("A malformed Idempotency-Key");
                    }
                    if responses.get("422").is_none() {
                        responses["422"] = problem_response(
                            "An Idempotency-Key already used with a different request",
                        );
                    }
                    responses["403"] = problem_response("A priority above the key's maximum");
                    responses["409"] = problem_response(
                        "A request with this Idempotency-Key is still being handled",
                    );
                    let params = op["parameters"].as_array().cloned().unwrap_or_default();
                    let mut params = params;
                    params.push(serde_json::json!({
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": false,
                        "description": "Repeats within 24 h answer the first request (same id, same status); another request under the same key is 422.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7E]*[\\x21-\\x7E][\\x20-\\x7E]*$"}
                    }));
                    op["parameters"] = serde_json::Value::Array(params);
                }
            }
        }
    }
    doc
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A self-contained HTML page listing every operation, its parameters and responses.
pub fn docs_page(doc: &serde_json::Value) -> String {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>taogate API</title>\
         <style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
         code{background:#f3f3f3;padding:0 .2em}.op{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}\
         .m{font-weight:bold;text-transform:uppercase;margin-right:.5em}</style></head><body>\
         <h1>taogate API</h1><p>The machine-readable description is at <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3.1). \
         Errors are <code>application/problem+json</code> (RFC 9457).</p>",
    );
    html.push_str(&format!(
        "<h2>Authentication</h2><p>{}</p>",
        escape(AUTHENTICATION)
    ));
    let empty = serde_json::Map::new();
    let paths = doc
        .get("paths")
        .and_then(|p| p.as_object())
        .unwrap_or(&empty);
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap_or(&empty) {
            let summary = op
                .get("summary")
                .and_then(|s| s.as_str())
                .unwrap_or_default();
            html.push_str(&format!(
                "<div class=\"op\"><p><span class=\"m\">{}</span><code>{}</code></p><p>{}</p>",
                escape(method),
                escape(path),
                escape(summary)
            ));
            if let Some(params) = op.get("parameters").and_then(|p| p.as_array()) {
                html.push_str("<p>Parameters:</p><ul>");
                for p in params {
                    let name = p.get("name").and_then(|s| s.as_str()).unwrap_or_default();
                    let desc = p
                        .get("description")
                        .and_then(|s| s.as_str())
                        .unwrap_or_default();
                    html.push_str(&format!(
                        "<li><code>{}</code> {}</li>",
                        escape(name),
                        escape(desc)
                    ));
                }
                html.push_str("</ul>");
            }
            if let Some(body) = op
                .pointer("/requestBody/content")
                .and_then(|c| c.as_object())
            {
                let types: Vec<&str> = body.keys().map(String::as_str).collect();
                html.push_str(&format!(
                    "<p>Body: <code>{}</code></p>",
                    escape(&types.join(", "))
                ));
            }
            if let Some(responses) = op.get("responses").and_then(|r| r.as_object()) {
                html.push_str("<p>Responses: ");
                let codes: Vec<String> = responses
                    .keys()
                    .map(|c| format!("<code>{}</code>", escape(c)))
                    .collect();
                html.push_str(&codes.join(" "));
                html.push_str("</p>");
            }
            html.push_str("</div>");
        }
    }
    html.push_str("</body></html>");
    html
}
