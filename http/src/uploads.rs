//! Large uploads: audio past the direct-upload limit goes straight to the blob store.
//!
//! `POST /api/v1/uploads` with `{"size_bytes": N}` answers with where to `PUT` the file (a
//! presigned S3 URL on AWS, the runtime's own upload route locally) and an `upload_id`; the
//! client then submits `POST /api/v1/transcription` as JSON `{upload_id, source_language,
//! priority?, callback_url?}`.
//!
//! An upload takes one body of exactly the announced size: on S3 the URL signs
//! `Content-Length` and `If-None-Match: *`, so another size fails its signature and a second
//! body its condition; the local route checks the same. At submission the file is read once,
//! probed, and the bytes probed are stored under the task's own input key: what miners get is
//! what was checked, whatever is done to the upload afterwards. An upload can be submitted for
//! [`UPLOAD_LIFETIME`]; on AWS a bucket lifecycle rule deletes uploads after a day.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::body::{content_type, read_body};
use super::gate::Caller;
use super::idempotent::{self, Created};
use super::problem::Problem;
use super::submit::MAX_JSON_BYTES;
use super::{SubmitState, SubmitStore};
use crate::config::MAX_AUDIO_BYTES;
use crate::domain::{BlobKey, now_millis};
use crate::ports::{BlobGet, BlobPresign, BlobPut, QueueSend};

/// How long an upload URL stays valid.
pub const UPLOAD_TTL: Duration = Duration::from_secs(15 * 60);
/// How long after it was handed out an upload may be submitted; older ones are refused as
/// expired (and deleted by the bucket's lifecycle rule on AWS).
pub const UPLOAD_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Where to upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadView {
    /// Pass this as `upload_id` to `POST /api/v1/transcription`.
    pub upload_id: String,
    /// Send the file here.
    pub url: String,
    /// With this method.
    pub method: String,
    /// And these headers (on S3 they are part of the signature).
    pub headers: std::collections::BTreeMap<String, String>,
    /// Seconds the URL stays valid.
    pub expires_in: u64,
    /// The size the file must have: the announced `size_bytes`.
    pub max_bytes: u64,
}

/// The size a client announces for its upload: a JSON body `{"size_bytes": N}`.
fn announced_size(headers: &HeaderMap, bytes: &[u8]) -> Result<u64, Problem> {
    let required = || {
        Problem::invalid_field(
            "size_bytes",
            format!("is required: the file's size in bytes, 1 to {MAX_AUDIO_BYTES}"),
        )
    };
    if bytes.is_empty() {
        return Err(required());
    }
    match content_type(headers) {
        Some(m) if m.type_() == mime::APPLICATION && m.subtype() == mime::JSON => {}
        _ => {
            return Err(Problem::unsupported_media_type(
                "this route takes application/json: {\"size_bytes\": N}",
            ));
        }
    }
    let map = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(Problem::invalid_field("body", "must be a JSON object")),
        Err(e) => {
            return Err(Problem::malformed(format!(
                "the body is not valid JSON: {e}"
            )));
        }
    };
    match map.get("size_bytes") {
        None | Some(Value::Null) => Err(required()),
        // JSON has one number type: 1000.0 is the integer 1000.
        Some(v) => match v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 1.0)
                .map(|f| f as u64)
        }) {
            Some(n) if (1..=MAX_AUDIO_BYTES as u64).contains(&n) => Ok(n),
            _ => Err(Problem::invalid_field(
                "size_bytes",
                format!("must be an integer from 1 to {MAX_AUDIO_BYTES}"),
            )),
        },
    }
}

/// The size announced for `owner`'s upload `upload_id`, as its slot records it; `None` if no
/// such upload was handed out.
pub(super) async fn slot_size<B: BlobGet>(
    blobs: &B,
    owner: &str,
    upload_id: &str,
) -> Result<Option<u64>, Problem> {
    let Some(slot) = BlobKey::upload_slot(owner, upload_id) else {
        return Ok(None);
    };
    let Some(bytes) = blobs.get(slot.as_str()).await? else {
        return Ok(None);
    };
    // A slot handed out before sizes were announced is empty: any size up to the maximum.
    Ok(Some(
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(MAX_AUDIO_BYTES as u64),
    ))
}

/// Whether upload `upload_id` was handed out longer ago than `age` (upload ids carry the time
/// they were made).
pub(super) fn older_than(upload_id: &str, age: Duration) -> bool {
    BlobKey::upload_time(upload_id)
        .is_some_and(|at| now_millis().saturating_sub(at) > age.as_millis() as i64)
}

/// `POST /api/v1/uploads`: at most once per `Idempotency-Key`.
pub async fn create<W: SubmitStore, Q: QueueSend, B: BlobPut + BlobGet + BlobPresign>(
    State(state): State<Arc<SubmitState<W, Q, B>>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let bytes = read_body(&headers, body, MAX_JSON_BYTES).await?;
    let size = announced_size(&headers, &bytes)?;
    let owner = caller.owner();
    let store = &state.intake.tasks;
    let (fresh, _) = BlobKey::new_upload(&owner);
    let (state, owner) = (&state, &owner);
    idempotent::once(
        store,
        &headers,
        &caller,
        || format!("upload:{size}"),
        fresh,
        |upload_id| async move {
            let key = BlobKey::upload(owner, &upload_id).ok_or_else(|| {
                Problem::conflict("the idempotent request names no upload; retry")
            })?;
            if let Some(slot) = BlobKey::upload_slot(owner, &upload_id) {
                state
                    .intake
                    .blobs
                    .put(
                        slot.as_str(),
                        Bytes::from(size.to_string()),
                        "application/octet-stream",
                    )
                    .await?;
            }
            let target = state
                .intake
                .blobs
                .upload_target(key.as_str(), "application/octet-stream", size, UPLOAD_TTL)
                .await?;
            let view = UploadView {
                upload_id,
                url: target.url,
                method: target.method.into(),
                headers: target.headers.into_iter().collect(),
                expires_in: target.expires_in_s,
                max_bytes: size,
            };
            Ok(Created {
                status: StatusCode::CREATED,
                location: None,
                body: serde_json::to_value(view).unwrap_or_default(),
            })
        },
    )
    .await
}

/// `PUT /api/v1/uploads/{id}`: the local runtime's stand-in for a presigned S3 PUT. Only the
/// tenant that was handed the upload may fill it; to anyone else it does not exist. Like the
/// presigned URL, it takes one body of exactly the announced size, within [`UPLOAD_TTL`].
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
    let blobs = &state.intake.blobs;
    let size = slot_size(blobs, &owner, &id).await?.ok_or_else(missing)?;
    if older_than(&id, UPLOAD_TTL) {
        return Err(Problem::forbidden(
            "this upload URL has expired; ask POST /api/v1/uploads for another",
        ));
    }
    if blobs.size(key.as_str()).await?.is_some() {
        return Err(Problem::precondition_failed(
            "this upload has its file already: an upload takes one body",
        ));
    }
    let bytes = read_body(&headers, body, size as usize).await?;
    if bytes.len() as u64 != size {
        return Err(Problem::malformed(format!(
            "the upload was announced as {size} bytes; {} were sent",
            bytes.len()
        )));
    }
    blobs
        .put(key.as_str(), bytes, "application/octet-stream")
        .await?;
    Ok(StatusCode::OK)
}
