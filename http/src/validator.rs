//! Work handed to an external validator, as the old proxy's `distribute` did, but as a lease:
//! `POST /api/v1/validator/distribute` claims pending tasks for a while (each claim is an
//! attempt), `POST /api/v1/validator/tasks/{id}/result` hands the answer back within the lease,
//! and a lease that runs out leaves the task claimable again: the worker takes it when its queue
//! message comes back, or the next `distribute` does. Admin keys only, in every `API_AUTH` mode.
//!
//! Each leased task comes with a secret `lease_token`; the task records only its digest. A
//! result must carry the token of a live lease, so no one can end another validator's lease,
//! and a worker's attempt (which has no token) can never be ended through this route.
//!
//! Inputs travel inline: text as base64 of its UTF-8, audio as base64 of the file, at most
//! [`DISTRIBUTE_INLINE_BYTES`] per answer (a Lambda answer holds 6 MB): larger audio is left to
//! the miners. A result is checked like a miner's answer (the task's budget, a WAV that decodes,
//! non-empty UTF-8 text) and stored unscored: the external validator vouches for it. Its
//! callback, if one is owed, is sent by the sweeper.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use serde_json::{Value, json};

use super::body::read_body;
use super::gate::Caller;
use super::problem::{FieldError, Problem};
use super::submit::MAX_JSON_BYTES;
use crate::answer::{ValidAnswer, validate};
use crate::domain::{
    AnswerBudget, AttemptEnd, BlobKey, ClaimOutcome, Confidence, MinerReply, Outcome, Quorum,
    SynapseAnswer, Task, TaskId, TaskInput, TaskOutput, TaskResult, TaskStatus, lease_token_digest,
    new_lease_token, now_millis,
};
use crate::ports::{BlobGet, BlobPut, TaskLease, TaskQuery, TaskReader};
use crate::views::iso;

/// The header that may carry a result's lease token.
pub const LEASE_TOKEN_HEADER: &str = "x-lease-token";
/// The most bytes a result body may have, whatever the task's answer budget (the speech of the
/// longest text is about 40 MB in base64).
pub const MAX_RESULT_BYTES: usize = 64 * 1024 * 1024;
/// Inline input bytes one `distribute` answer carries at most.
pub const DISTRIBUTE_INLINE_BYTES: usize = 4 * 1024 * 1024;
/// Lease given when none is asked for, and the bounds of one asked for.
const DEFAULT_LEASE_S: u64 = 300;
const LEASE_BOUNDS_S: (u64, u64) = (1, 3600);

/// What the validator routes need: the task table (read, lease) and the blobs (inputs, speech).
pub struct ValidatorState<T, B> {
    /// Task table.
    pub tasks: T,
    /// Blob store.
    pub blobs: B,
}

fn operator(caller: &Caller) -> Result<(), Problem> {
    if caller.operator() {
        Ok(())
    } else {
        Err(Problem::forbidden("the validator routes need an admin key"))
    }
}

fn params(raw: Option<&str>) -> Result<(usize, u64), Problem> {
    let (mut limit, mut lease) = (10usize, DEFAULT_LEASE_S);
    let mut errors = Vec::new();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "limit" => match value.parse() {
                Ok(n) if (1..=10).contains(&n) => limit = n,
                _ => errors.push(("limit", "must be an integer from 1 to 10")),
            },
            "lease" => match value.parse() {
                Ok(s) if (LEASE_BOUNDS_S.0..=LEASE_BOUNDS_S.1).contains(&s) => lease = s,
                _ => errors.push(("lease", "must be 1 to 3600 seconds")),
            },
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok((limit, lease))
    } else {
        Err(Problem::invalid_fields(
            errors
                .into_iter()
                .map(|(f, m)| FieldError {
                    field: f.into(),
                    message: m.into(),
                })
                .collect(),
        ))
    }
}

/// The task's input as base64, if it fits in `room`.
async fn input_data<B: BlobGet>(
    blobs: &B,
    task: &Task,
    room: usize,
) -> Result<Option<String>, Problem> {
    let engine = base64::engine::general_purpose::STANDARD;
    match &task.input {
        TaskInput::Text { text } if text.len() * 4 / 3 + 4 <= room => Ok(Some(engine.encode(text))),
        TaskInput::Audio {
            blob_key,
            size_bytes,
            ..
        } if (*size_bytes as usize) * 4 / 3 + 4 <= room => {
            // The stored size decides what is read; a blob that differs is not handed out.
            Ok(blobs
                .get(blob_key)
                .await?
                .filter(|b| b.len() as u64 == *size_bytes)
                .map(|b| engine.encode(b)))
        }
        _ => Ok(None),
    }
}

/// `POST /api/v1/validator/distribute?limit=&lease=`: leases up to `limit` (10) waiting tasks
/// for `lease` seconds (300).
pub async fn distribute<T: TaskReader + TaskLease, B: BlobGet>(
    State(state): State<Arc<ValidatorState<T, B>>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, Problem> {
    operator(&caller)?;
    let (limit, lease) = params(raw.as_deref())?;
    let now = now_millis();
    // Waiting tasks: pending ones, and processing ones whose lease ran out.
    let mut candidates = Vec::new();
    for status in [TaskStatus::Pending, TaskStatus::Processing] {
        let page = state
            .tasks
            .list(TaskQuery {
                status: Some(status),
                limit: 100,
                owner: caller.list_scope(),
                ..TaskQuery::default()
            })
            .await?;
        candidates.extend(page.tasks.into_iter().filter(|t| t.claimable(now)));
    }
    candidates.sort_by_key(|t| t.id);
    let mut room = DISTRIBUTE_INLINE_BYTES;
    let mut handed = Vec::new();
    for candidate in candidates {
        if handed.len() == limit {
            break;
        }
        let Some(data) = input_data(&state.blobs, &candidate, room).await? else {
            continue;
        };
        let token = new_lease_token();
        let claimed = state
            .tasks
            .claim_as(
                candidate.id,
                now,
                Duration::from_secs(lease),
                Some(lease_token_digest(&token)),
            )
            .await?;
        let ClaimOutcome::Claimed(task) = claimed else {
            continue;
        };
        room = room.saturating_sub(data.len());
        handed.push(json!({
            "task_id": task.id.to_string(),
            "task_type": task.kind.as_str(),
            "input_data": data,
            "language": task.language.code(),
            "priority": task.priority.as_str(),
            "submitted_at": iso(task.created_at),
            "attempt": task.attempts,
            "lease_token": token,
            "lease_until": task.lease_until.map(iso),
        }));
    }
    if handed.is_empty() {
        return Ok(Json(
            json!({"message": "No pending tasks", "task_count": 0}),
        ));
    }
    Ok(Json(json!({
        "message": format!("{} tasks leased for {lease} s", handed.len()),
        "task_count": handed.len(),
        "tasks": handed,
    })))
}

/// `POST /api/v1/validator/tasks/{id}/result`: `{attempt, lease_token, output_data,
/// model_used?, processing_time?}` completes a leased task. The lease token may come in the
/// `X-Lease-Token` header instead, which lets a stale lease be refused before the body is read.
/// The body is read up to the task's answer budget and never past [`MAX_RESULT_BYTES`]; it is
/// parsed and checked on a blocking thread.
pub async fn result<T: TaskReader + TaskLease, B: BlobPut>(
    State(state): State<Arc<ValidatorState<T, B>>>,
    Extension(caller): Extension<Caller>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, Problem> {
    operator(&caller)?;
    let missing = || Problem::not_found(format!("no task with id '{}'", raw_id.escape_default()));
    let id: TaskId = raw_id.parse().map_err(|_| missing())?;
    let task = state
        .tasks
        .get(id)
        .await?
        .filter(|t| caller.may_see(&t.owner))
        .ok_or_else(missing)?;
    let now = now_millis();
    let header_token = headers
        .get(LEASE_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Refused before the body is read: no validator lease is live, or the header's token is
    // not the one handed out.
    if !task.validator_lease_live(now)
        || header_token
            .as_deref()
            .is_some_and(|t| !task.leased_to(t, now))
    {
        return Err(lease_over());
    }
    let budget = AnswerBudget::for_task(&task);
    let limit = budget
        .output_bytes
        .saturating_add(MAX_JSON_BYTES)
        .min(MAX_RESULT_BYTES);
    let bytes = read_body(&headers, body, limit).await?;
    let checked = tokio::task::spawn_blocking(move || check_result(&bytes, &budget))
        .await
        .map_err(|e| Problem::unavailable(&crate::ports::StoreError::backend(e)))??;
    let token = header_token.or(checked.token).ok_or_else(|| {
        Problem::invalid_field(
            "lease_token",
            "is required: the lease_token distribute handed out",
        )
    })?;
    if u64::from(task.attempts) != checked.attempt || !task.leased_to(&token, now_millis()) {
        return Err(lease_over());
    }
    let output = match checked.answer {
        ValidAnswer::Text(text) => TaskOutput::Text { text },
        ValidAnswer::Audio { wav, .. } => {
            // A fresh key: if this lease is lost before the end below, the audio a finished
            // task serves is untouched.
            let key = BlobKey::output(task.id);
            let size_bytes = wav.len() as u64;
            state.blobs.put(key.as_str(), wav, "audio/wav").await?;
            TaskOutput::Audio {
                blob_key: key.into_string(),
                size_bytes,
            }
        }
    };
    let map = checked.extra;
    let result = TaskResult {
        output,
        model_used: map
            .get("model_used")
            .and_then(Value::as_str)
            .map(str::to_owned),
        processing_time: map
            .get("processing_time")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
        accuracy_score: 0.0,
        speed_score: 0.0,
        combined_score: 0.0,
        miner_uid: 0,
        miner_hotkey: String::new(),
        quorum: Some(Quorum {
            valid_answers: 1,
            supporting: 1,
            confidence: Confidence::Low,
            escalated: 0,
            note: Some("answered by an external validator; not scored by the gateway".into()),
        }),
    };
    let end = AttemptEnd::Completed {
        result,
        candidates: Vec::new(),
    };
    // The lease is checked again in the conditional write, at the time of the write: a lease
    // that ran out while the body was read or the speech stored ends nothing.
    let holder = Some(lease_token_digest(&token));
    match state
        .tasks
        .end_attempt_as(task.id, task.attempts, holder, end, now_millis())
        .await
    {
        Ok(_) => Ok((
            StatusCode::OK,
            Json(json!({"task_id": task.id.to_string(), "status": "completed"})),
        )
            .into_response()),
        Err(crate::ports::StoreError::Conflict(_)) => Err(lease_over()),
        Err(e) => Err(e.into()),
    }
}

fn lease_over() -> Problem {
    Problem::conflict(
        "no lease of this token is live: the task finished, its lease ran out, it was leased again, or it is a worker's",
    )
}

/// A result body, parsed and checked like a miner's answer.
struct CheckedResult {
    attempt: u64,
    token: Option<String>,
    answer: ValidAnswer,
    extra: serde_json::Map<String, Value>,
}

fn check_result(bytes: &[u8], budget: &AnswerBudget) -> Result<CheckedResult, Problem> {
    let mut map = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => map,
        _ => return Err(Problem::malformed("the body must be a JSON object")),
    };
    let attempt = map.get("attempt").and_then(Value::as_u64).ok_or_else(|| {
        Problem::invalid_field("attempt", "is required: the attempt distribute handed out")
    })?;
    let token = map
        .get("lease_token")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(Value::String(output)) = map.remove("output_data") else {
        return Err(Problem::invalid_field(
            "output_data",
            "is required (base64)",
        ));
    };
    let reply = MinerReply {
        outcome: Outcome::Success,
        latency: Duration::ZERO,
        body: Some(Arc::new(SynapseAnswer {
            output_data: Some(output),
            processing_time: None,
            pipeline_model: None,
            error_message: None,
        })),
        error: None,
        memory: None,
    };
    let answer =
        validate(&reply, budget).map_err(|(_, why)| Problem::invalid_field("output_data", why))?;
    Ok(CheckedResult {
        attempt,
        token,
        answer,
        extra: map,
    })
}
