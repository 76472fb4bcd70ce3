//! Work handed to an external validator, as the old proxy's `distribute` did, but as a lease:
//! `POST /api/v1/validator/distribute` claims pending tasks for a while (each claim is an
//! attempt), `POST /api/v1/validator/tasks/{id}/result` hands the answer back within the lease,
//! and a lease that runs out leaves the task claimable again: the worker takes it when its queue
//! message comes back, or the next `distribute` does. Admin keys only (or anyone while keys are
//! optional and none is sent).
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
use crate::domain::{
    AnswerBudget, AttemptEnd, BlobKey, ClaimOutcome, Confidence, MinerReply, Outcome, Quorum,
    SynapseAnswer, Task, TaskId, TaskInput, TaskOutput, TaskResult, TaskStatus, now_millis,
};
use crate::ports::{BlobGet, BlobPut, TaskLease, TaskQuery, TaskReader};
use crate::views::iso;
use crate::worker::answers::{Answer, validate};

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
            Ok(blobs.get(blob_key).await?.map(|b| engine.encode(b)))
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
        let claimed = state
            .tasks
            .claim(candidate.id, now, Duration::from_secs(lease))
            .await?;
        let ClaimOutcome::Claimed(task) = claimed else {
            continue;
        };
        room -= data.len();
        handed.push(json!({
            "task_id": task.id.to_string(),
            "task_type": task.kind.as_str(),
            "input_data": data,
            "language": task.language.code(),
            "priority": task.priority.as_str(),
            "submitted_at": iso(task.created_at),
            "attempt": task.attempts,
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

/// `POST /api/v1/validator/tasks/{id}/result`: `{attempt, output_data, model_used?,
/// processing_time?}` completes a leased task.
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
    // An audio answer in base64 may be as large as the task's budget allows.
    let budget = AnswerBudget::for_task(&task);
    let bytes = read_body(&headers, body, budget.output_bytes + MAX_JSON_BYTES).await?;
    let map = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => map,
        _ => return Err(Problem::malformed("the body must be a JSON object")),
    };
    let attempt = map.get("attempt").and_then(Value::as_u64).ok_or_else(|| {
        Problem::invalid_field("attempt", "is required: the attempt distribute handed out")
    })?;
    let output = map
        .get("output_data")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::invalid_field("output_data", "is required (base64)"))?;
    let now = now_millis();
    if task.status != TaskStatus::Processing
        || u64::from(task.attempts) != attempt
        || task.lease_until.is_none_or(|until| until <= now)
    {
        return Err(Problem::conflict(
            "this lease is over: the task finished, its lease ran out, or it was leased again",
        ));
    }
    let reply = MinerReply {
        outcome: Outcome::Success,
        latency: Duration::ZERO,
        body: Some(Arc::new(SynapseAnswer {
            output_data: Some(output.to_owned()),
            processing_time: None,
            pipeline_model: None,
            error_message: None,
        })),
        error: None,
        memory: None,
    };
    let answer =
        validate(&reply, &budget).map_err(|(_, why)| Problem::invalid_field("output_data", why))?;
    let output = match answer {
        Answer::Text(text) => TaskOutput::Text { text },
        Answer::Audio { wav, .. } => {
            let key = BlobKey::output(task.id);
            let size_bytes = wav.len() as u64;
            state.blobs.put(key.as_str(), wav, "audio/wav").await?;
            TaskOutput::Audio {
                blob_key: key.into_string(),
                size_bytes,
            }
        }
    };
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
    match state
        .tasks
        .end_attempt(task.id, task.attempts, end, now)
        .await
    {
        Ok(_) => Ok((
            StatusCode::OK,
            Json(json!({"task_id": task.id.to_string(), "status": "completed"})),
        )
            .into_response()),
        Err(crate::ports::StoreError::Conflict(_)) => Err(Problem::conflict(
            "this lease is over: the task finished, its lease ran out, or it was leased again",
        )),
        Err(e) => Err(e.into()),
    }
}
