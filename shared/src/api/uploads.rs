//! Large uploads: audio past the direct-upload limit goes straight to the blob store.
//!
//! `POST /api/v1/uploads` answers with where to `PUT` the file (a presigned S3 URL on AWS, the
//! runtime's own upload route locally) and an `upload_id`; the client then submits
//! `POST /api/v1/transcription` as JSON `{upload_id, source_language, priority?, callback_url?}`.
//! The uploaded file is probed like a direct upload before anything is queued.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::body::read_body;
use super::gate::Caller;
use super::idempotent::{self, Answer};
use super::problem::Problem;
use super::{SubmitState, SubmitStore};
use crate::config::MAX_AUDIO_BYTES;
use crate::domain::BlobKey;
use crate::ports::{BlobGet, BlobPresign, BlobPut, QueueSend};

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

/// `POST /api/v1/uploads`: at most once per `Idempotency-Key`.
pub async fn create<W: SubmitStore, Q: QueueSend, B: BlobPut + BlobGet + BlobPresign>(
    State(state): State<Arc<SubmitState<W, Q, B>>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let owner = caller.owner();
    let store = &state.intake.tasks;
    let (fresh, _) = BlobKey::new_upload(&owner);
    let (state, owner) = (&state, &owner);
    idempotent::once(
        store,
        &headers,
        &caller,
        || "upload".to_owned(),
        fresh,
        |upload_id| async move {
            let key = BlobKey::upload(owner, &upload_id).ok_or_else(|| {
                Problem::conflict("the idempotent request names no upload; retry")
            })?;
            if let Some(slot) = BlobKey::upload_slot(owner, &upload_id) {
                let blobs = &state.intake.blobs;
                blobs
                    .put(slot.as_str(), Bytes::new(), "application/octet-stream")
                    .await?;
            }
            let target = state
                .intake
                .blobs
                .upload_target(key.as_str(), "application/octet-stream", UPLOAD_TTL)
                .await?;
            let view = UploadView {
                upload_id,
                url: target.url,
                method: target.method.into(),
                headers: target.headers.into_iter().collect(),
                expires_in: target.expires_in_s,
                max_bytes: MAX_AUDIO_BYTES,
            };
            Ok(Answer {
                status: StatusCode::CREATED,
                location: None,
                body: serde_json::to_value(view).unwrap_or_default(),
            })
        },
    )
    .await
}

/// `PUT /api/v1/uploads/{id}`: the local runtime's stand-in for a presigned S3 PUT. Only the
/// tenant that was handed the upload may fill it; to anyone else it does not exist.
pub async fn put<W: SubmitStore, Q: QueueSend, B: BlobPut + BlobGet + BlobPresign>(
    State(state): State<Arc<SubmitState<W, Q, B>>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, Problem> {
    let owner = caller.owner();
    let missing = || Problem::not_found("no such upload");
    let key = BlobKey::upload(&owner, &id).ok_or_else(missing)?;
    let slot = BlobKey::upload_slot(&owner, &id).ok_or_else(missing)?;
    state
        .intake
        .blobs
        .get(slot.as_str())
        .await?
        .ok_or_else(missing)?;
    let bytes = read_body(&headers, body, MAX_AUDIO_BYTES).await?;
    state
        .intake
        .blobs
        .put(key.as_str(), bytes, "application/octet-stream")
        .await?;
    Ok(StatusCode::OK)
}
