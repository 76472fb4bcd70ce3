//! Large uploads: audio past the direct-upload limit goes straight to the blob store.
//!
//! `POST /api/v1/uploads` answers with where to `PUT` the file (a presigned S3 URL on AWS, the
//! runtime's own upload route locally) and an `upload_id`; the client then submits
//! `POST /api/v1/transcription` as JSON `{upload_id, source_language, priority?, callback_url?}`.
//! The uploaded file is probed like a direct upload before anything is queued.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::SubmitState;
use super::problem::Problem;
use super::submit::{MAX_AUDIO_BYTES, read_body};
use crate::ports::{BlobStore, TaskQueue, TaskWriter};

/// How long an upload URL stays valid.
const UPLOAD_TTL: Duration = Duration::from_secs(15 * 60);

/// Where to upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadView {
    /// Pass this as `upload_id` to `POST /api/v1/transcription`.
    pub upload_id: String,
    /// Send the file here.
    pub url: String,
    /// With this method.
    pub method: String,
    /// And these headers.
    pub headers: std::collections::BTreeMap<String, String>,
    /// Seconds the URL stays valid.
    pub expires_in: u64,
    /// The largest accepted file.
    pub max_bytes: usize,
}

/// The blob key of an upload id, if the id is well formed.
pub(super) fn upload_key(upload_id: &str) -> Option<String> {
    uuid::Uuid::parse_str(upload_id)
        .ok()
        .map(|u| format!("uploads/{}", u.simple()))
}

/// `POST /api/v1/uploads`.
pub async fn create<W: TaskWriter, Q: TaskQueue, B: BlobStore>(
    State(state): State<Arc<SubmitState<W, Q, B>>>,
) -> Result<Response, Problem> {
    let id = uuid::Uuid::new_v4();
    let key = format!("uploads/{}", id.simple());
    let target = state
        .blobs
        .upload_target(&key, "application/octet-stream", UPLOAD_TTL)
        .await?;
    let view = UploadView {
        upload_id: id.simple().to_string(),
        url: target.url,
        method: target.method.into(),
        headers: target.headers.into_iter().collect(),
        expires_in: target.expires_in_s,
        max_bytes: MAX_AUDIO_BYTES,
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `PUT /api/v1/uploads/{id}`: the local runtime's stand-in for a presigned S3 PUT.
pub async fn put<W: TaskWriter, Q: TaskQueue, B: BlobStore>(
    State(state): State<Arc<SubmitState<W, Q, B>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, Problem> {
    let key = upload_key(&id).ok_or_else(|| Problem::not_found("no such upload"))?;
    let bytes = read_body(&headers, body, MAX_AUDIO_BYTES).await?;
    state
        .blobs
        .put(&key, bytes, "application/octet-stream")
        .await?;
    Ok(StatusCode::OK)
}
