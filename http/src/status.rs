//! The read routes: one task, the task list, health, validator integration, audio results.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;

use super::StatusState;
use super::gate::Caller;
use super::problem::{FieldError, Problem};
use crate::domain::{ServiceKind, Task, TaskId, TaskOutput, TaskStatus, now_millis};
use crate::ports::{
    BlobGet, BlobPresign, MinerDirectory, QueueDepth, QueueDepths, TaskQuery, TaskReader,
};
use crate::views::{
    HealthView, INLINE_AUDIO_BYTES, IntegrationView, MinerDirectoryView, NetworkInfoView,
    PendingTaskView, QueueStatsView, ServingMinerView, TaskCountsView, TaskView,
};

/// Default page size of the task list (the old proxy's).
const DEFAULT_PAGE: usize = 100;

async fn view<B: BlobPresign>(blobs: &B, task: &Task) -> Result<TaskView, Problem> {
    let url = match TaskView::audio_key(task) {
        Some(key) => Some(blobs.public_url(task.id, key).await?),
        None => None,
    };
    Ok(TaskView::new(task, url))
}

/// Task `raw_id`, if the caller may see it: another tenant's task is answered as if it did
/// not exist.
async fn load<R: TaskReader>(tasks: &R, raw_id: &str, caller: &Caller) -> Result<Task, Problem> {
    let missing = || Problem::not_found(format!("no task with id '{}'", raw_id.escape_default()));
    let id: TaskId = raw_id.parse().map_err(|_| missing())?;
    tasks
        .get(id)
        .await?
        .filter(|t| caller.may_see(&t.owner))
        .ok_or_else(missing)
}

/// `GET /api/v1/tasks/{id}`.
pub async fn get_task<
    R: TaskReader,
    Q: QueueDepths,
    B: BlobGet + BlobPresign,
    D: MinerDirectory,
>(
    State(state): State<Arc<StatusState<R, Q, B, D>>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, Problem> {
    let task = load(&state.tasks, &id, &caller).await?;
    let mut shown = view(&state.blobs, &task).await?;
    // The old proxy's `output_data` of a speech result: the WAV itself, in this view only.
    if let Some(TaskOutput::Audio {
        blob_key,
        size_bytes,
    }) = task.result.as_ref().map(|r| &r.output)
        && *size_bytes <= INLINE_AUDIO_BYTES
        && let Some(result) = shown.result.as_mut()
    {
        // Without the blob the view still answers, with `audio_url` alone.
        match state.blobs.get(blob_key).await {
            Ok(Some(wav)) => {
                result.output_data = Some(base64::engine::general_purpose::STANDARD.encode(&wav));
            }
            Ok(None) => tracing::warn!(task_id = %task.id, "a speech result's audio is missing"),
            Err(e) => {
                tracing::warn!(task_id = %task.id, error = ?anyhow::Error::from(e), "a speech result's audio could not be read; answered without output_data");
            }
        }
    }
    Ok(Json(shown))
}

/// `GET /api/v1/tasks/{id}/audio`: the audio result, served by the local runtime.
pub async fn get_audio<
    R: TaskReader,
    Q: QueueDepths,
    B: BlobGet + BlobPresign,
    D: MinerDirectory,
>(
    State(state): State<Arc<StatusState<R, Q, B, D>>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let task = load(&state.tasks, &id, &caller).await?;
    let key = TaskView::audio_key(&task)
        .ok_or_else(|| Problem::not_found("this task has no audio result (yet)"))?;
    let bytes = state
        .blobs
        .get(key)
        .await?
        .ok_or_else(|| Problem::not_found("the audio result has expired"))?;
    Ok(([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response())
}

/// `GET /api/v1/tasks/{id}/output`: a text result in full, as `text/plain`.
pub async fn get_output<
    R: TaskReader,
    Q: QueueDepths,
    B: BlobGet + BlobPresign,
    D: MinerDirectory,
>(
    State(state): State<Arc<StatusState<R, Q, B, D>>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let task = load(&state.tasks, &id, &caller).await?;
    match task.result.map(|r| r.output) {
        Some(crate::domain::TaskOutput::Text { text }) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
        }
        _ => Err(Problem::not_found("this task has no text result (yet)")),
    }
}

fn cursor_encode(id: TaskId) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_string())
}

fn cursor_decode(raw: &str) -> Option<TaskId> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()?;
    String::from_utf8(bytes).ok()?.parse().ok()
}

/// Parses the list query, reporting every bad parameter.
fn list_query(raw: Option<&str>) -> Result<TaskQuery, Problem> {
    let mut query = TaskQuery {
        limit: DEFAULT_PAGE,
        ..TaskQuery::default()
    };
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.into(),
            message,
        })
    };
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "status" if !value.is_empty() => match TaskStatus::parse(&value) {
                Some(s) => query.status = Some(s),
                None => bad(
                    "status",
                    "use pending, processing, completed or failed".into(),
                ),
            },
            "task_type" if !value.is_empty() => match ServiceKind::parse(&value) {
                Ok(k) => query.kind = Some(k),
                Err(e) => bad("task_type", e.0),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => query.limit = n,
                _ => bad("limit", "must be an integer from 1 to 100".into()),
            },
            "cursor" if !value.is_empty() => match cursor_decode(&value) {
                Some(id) => query.after = Some(id),
                None => bad("cursor", "is not a cursor returned by this API".into()),
            },
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(query)
    } else {
        Err(Problem::invalid_fields(errors))
    }
}

/// The `Link` to the page after `page`, keeping the request's filters.
fn next_link(query: &TaskQuery, next: TaskId) -> String {
    let mut params = url::form_urlencoded::Serializer::new(String::new());
    if let Some(status) = query.status {
        params.append_pair("status", status.as_str());
    }
    if let Some(kind) = query.kind {
        params.append_pair("task_type", kind.as_str());
    }
    params.append_pair("limit", &query.limit.to_string());
    params.append_pair("cursor", &cursor_encode(next));
    format!("</api/v1/tasks?{}>; rel=\"next\"", params.finish())
}

/// `GET /api/v1/tasks?status=&task_type=&limit=&cursor=`: a JSON array of tasks, newest first,
/// as the old proxy answered; the next page is in the `Link` header (`rel="next"`).
pub async fn list_tasks<
    R: TaskReader,
    Q: QueueDepths,
    B: BlobGet + BlobPresign,
    D: MinerDirectory,
>(
    State(state): State<Arc<StatusState<R, Q, B, D>>>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    let mut query = list_query(raw.as_deref())?;
    query.owner = caller.list_scope();
    let page = state.tasks.list(query.clone()).await?;
    let mut tasks = Vec::with_capacity(page.tasks.len());
    for t in &page.tasks {
        tasks.push(view(&state.blobs, t).await?);
    }
    let mut response = Json(tasks).into_response();
    if let Some(next) = page.next
        && let Ok(link) = header::HeaderValue::from_str(&next_link(&query, next))
    {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

async fn directory_view<D: MinerDirectory>(
    directory: &D,
) -> Result<(MinerDirectoryView, Arc<crate::domain::MinerSnapshot>), Problem> {
    let snapshot = directory.snapshot().await?;
    let view = MinerDirectoryView {
        netuid: snapshot.netuid,
        network: snapshot.network.clone(),
        total_miners: snapshot.miners.len(),
        serving_miners: snapshot.serving().count(),
        total_stake: snapshot.total_stake(),
        snapshot_age_s: ((now_millis() - snapshot.taken_at).max(0) as f64) / 1000.0,
        block: snapshot.block,
    };
    Ok((view, snapshot))
}

fn queue_map(depths: &[(crate::domain::Priority, QueueDepth)]) -> BTreeMap<String, QueueDepth> {
    depths
        .iter()
        .map(|(p, d)| (p.as_str().to_owned(), *d))
        .collect()
}

/// `GET /api/v1/health`.
pub async fn health<R: TaskReader, Q: QueueDepths, B: BlobGet + BlobPresign, D: MinerDirectory>(
    State(state): State<Arc<StatusState<R, Q, B, D>>>,
) -> Result<Json<HealthView>, Problem> {
    let depths = state.queue.depths().await?;
    let counts = state.tasks.counts().await?;
    // No snapshot yet (or an unreadable one) makes the service degraded, not the health check
    // unavailable.
    let (miners, unreadable) = match directory_view(&state.directory).await {
        Ok((view, _)) => (view, false),
        Err(_) => (
            MinerDirectoryView {
                netuid: 0,
                network: "unknown: no miner snapshot could be read".into(),
                total_miners: 0,
                serving_miners: 0,
                total_stake: 0.0,
                snapshot_age_s: 0.0,
                block: None,
            },
            true,
        ),
    };
    let cause = if unreadable {
        Some("no miner snapshot could be read; tasks wait for one".to_owned())
    } else if miners.serving_miners == 0 {
        Some("no miner in the snapshot serves an axon; tasks wait for one".to_owned())
    } else {
        None
    };
    let queue_size = depths.iter().map(|(_, d)| d.visible + d.in_flight).sum();
    Ok(Json(HealthView {
        status: if cause.is_none() {
            "healthy"
        } else {
            "degraded"
        }
        .into(),
        timestamp: crate::views::iso(now_millis()),
        bittensor_connected: cause.is_none(),
        queue_size,
        pending_tasks: counts.pending,
        processing_tasks: counts.processing,
        completed_tasks: counts.completed,
        failed_tasks: counts.failed,
        total_tasks: counts.total,
        cause,
        version: env!("CARGO_PKG_VERSION").into(),
        queue_depth: depths
            .iter()
            .map(|(p, d)| (p.as_str().to_owned(), d.visible + d.in_flight))
            .collect(),
        queues: queue_map(&depths),
        tasks: TaskCountsView {
            pending: counts.pending,
            processing: counts.processing,
            completed: counts.completed,
            failed: counts.failed,
            total: counts.total,
        },
        miners,
    }))
}

/// `GET /api/v1/validator/integration`.
pub async fn integration<
    R: TaskReader,
    Q: QueueDepths,
    B: BlobGet + BlobPresign,
    D: MinerDirectory,
>(
    State(state): State<Arc<StatusState<R, Q, B, D>>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<IntegrationView>, Problem> {
    if !caller.operator() {
        return Err(Problem::forbidden("the validator routes need an admin key"));
    }
    let (network, snapshot) = directory_view(&state.directory).await?;
    let pending = state
        .tasks
        .list(TaskQuery {
            status: Some(TaskStatus::Pending),
            limit: 10,
            // Anonymous callers (keys optional) see the anonymous tenant's tasks only.
            owner: caller.list_scope(),
            ..TaskQuery::default()
        })
        .await?;
    let depths = state.queue.depths().await?;
    let counts = state.tasks.counts().await?;
    let miners = snapshot
        .serving()
        .map(|m| ServingMinerView {
            uid: m.uid,
            hotkey: m.hotkey.clone(),
            ip: m.ip.to_string(),
            port: m.port,
            external_ip: m.ip.to_string(),
            external_port: m.port,
            stake: m.stake,
        })
        .collect();
    Ok(Json(IntegrationView {
        network_info: NetworkInfoView {
            netuid: network.netuid,
            network: network.network.clone(),
            total_miners: network.total_miners,
            available_miners: network.serving_miners,
        },
        miners,
        pending_tasks: pending.tasks.iter().map(PendingTaskView::new).collect(),
        queue_stats: QueueStatsView {
            pending_count: counts.pending,
            processing_count: counts.processing,
            completed_count: counts.completed,
            failed_count: counts.failed,
            total_tasks: counts.total,
            timestamp: crate::views::iso(now_millis()),
        },
        network,
        gateway_hotkey: state.gateway_hotkey.clone(),
        queues: queue_map(&depths),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parameters_are_checked_together() {
        let err = list_query(Some("status=done&limit=0&cursor=zz")).unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(err.errors.len(), 3);
        let ok = list_query(Some("status=failed&task_type=tts&limit=100")).unwrap();
        assert_eq!(ok.limit, 100);
        assert_eq!(ok.status, Some(TaskStatus::Failed));
    }

    #[test]
    fn cursors_round_trip() {
        let id = TaskId::new();
        assert_eq!(cursor_decode(&cursor_encode(id)), Some(id));
    }
}
