//! The HTTP API as library functions: the submit and status Lambdas and the local runtime serve
//! these same routers, so each route is written once.

use taogate_app::{ports, submission, views};
use taogate_core::{answer, audio, config, domain};

mod assembly;
mod body;
pub use assembly::{gateway, status_function, submit_function};
pub use body::BodyTimedOut;
pub mod gate;
mod idempotent;
pub mod openai;
mod openapi;
mod problem;
mod status;
mod submit;
mod uploads;
pub mod validator;

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, Uri, header};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};

pub use gate::{Caller, Gate};
pub use idempotent::IDEMPOTENCY_KEY;
pub use openapi::{ApiDoc, docs_page, document};
pub use problem::{FieldError, Problem};
pub use submit::{MAX_AUDIO_BYTES, MAX_JSON_BYTES};
pub use uploads::UploadView;

pub use crate::config::LAMBDA_DIRECT_UPLOAD_BYTES;
use crate::config::{SubmissionSettings, TenancySettings};
use crate::ports::{
    BlobGet, BlobPresign, BlobPut, Idempotency, KeyLookup, Metering, MinerDirectory, QueueDepths,
    QueueSend, TaskCreate, TaskLease, TaskReader,
};

/// What the submission routes store: tasks, and per key its quota and its idempotent
/// requests (one store adapter implements all three).
pub trait SubmitStore: TaskCreate + Metering + Idempotency {}
impl<T: TaskCreate + Metering + Idempotency> SubmitStore for T {}
use crate::submission::Intake;

/// What the submit routes need: the submit Lambda's policy (put item, send message, put and
/// get objects, presign upload PUTs).
pub struct SubmitState<W, Q, B> {
    /// The submission use case's ports.
    pub intake: Intake<W, Q, B>,
    /// The routes' settings.
    pub settings: SubmissionSettings,
}

/// What the status routes need: the status Lambda's policy (get/query items, queue attributes,
/// presign objects, read the snapshot).
pub struct StatusState<R, Q, B, D> {
    /// Task table.
    pub tasks: R,
    /// Queue (depths only).
    pub queue: Q,
    /// Blob store (URLs, and local audio serving).
    pub blobs: B,
    /// Miner directory.
    pub directory: D,
    /// The gateway's hotkey address (public).
    pub gateway_hotkey: String,
}

/// The submission routes and the upload route. With `local_uploads`, the runtime also accepts
/// the uploaded files itself (on AWS they go to S3 by presigned URL).
pub fn submit_routes<W, Q, B>(
    state: SubmitState<W, Q, B>,
    tenancy: TenancySettings,
    local_uploads: bool,
) -> Router
where
    W: SubmitStore + KeyLookup + Clone,
    Q: QueueSend,
    B: BlobPut + BlobGet + BlobPresign,
{
    let gate = Arc::new(Gate::new(state.intake.tasks.clone(), tenancy));
    let mut router = Router::new().route("/api/v1/uploads", post(uploads::create::<W, Q, B>));
    if local_uploads {
        router = router.route(
            "/api/v1/uploads/{id}",
            axum::routing::put(uploads::put::<W, Q, B>),
        );
    }
    let router = router
        .route(
            "/api/v1/transcription",
            post(submit::transcription::<W, Q, B>),
        )
        .route("/api/v1/tts", post(submit::tts::<W, Q, B>))
        .route(
            "/api/v1/summarization",
            post(submit::summarization::<W, Q, B>),
        )
        // Bodies are limited and read by the handlers themselves, so that every limit answers
        // with problem+json.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(Arc::new(state));
    guarded(router, gate, false)
}

/// The read routes, the OpenAPI document and the docs page. With `serve_audio`, audio results are
/// served from the blob store (the local runtime); on AWS they are presigned S3 URLs instead.
pub fn status_routes<R, Q, B, D>(
    state: StatusState<R, Q, B, D>,
    tenancy: TenancySettings,
    serve_audio: bool,
) -> Router
where
    R: TaskReader + KeyLookup + Metering + Clone,
    Q: QueueDepths,
    B: BlobGet + BlobPresign,
    D: MinerDirectory,
{
    let gate = Arc::new(Gate::new(state.tasks.clone(), tenancy));
    let doc = Arc::new(document());
    let page = Arc::new(docs_page(&doc));
    let mut router = Router::new()
        .route("/api/v1/tasks", get(status::list_tasks::<R, Q, B, D>))
        .route("/api/v1/tasks/{id}", get(status::get_task::<R, Q, B, D>))
        .route(
            "/api/v1/tasks/{id}/output",
            get(status::get_output::<R, Q, B, D>),
        )
        .route("/api/v1/health", get(status::health::<R, Q, B, D>))
        .route(
            "/api/v1/validator/integration",
            get(status::integration::<R, Q, B, D>),
        );
    if serve_audio {
        router = router.route(
            "/api/v1/tasks/{id}/audio",
            get(status::get_audio::<R, Q, B, D>),
        );
    }
    let router = router
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .route(
            "/docs",
            get(move || {
                let page = page.clone();
                async move { Html((*page).clone()) }
            }),
        )
        .with_state(Arc::new(state));
    guarded(router, gate, true)
}

/// The OpenAI-compatible audio routes (see [`openai`]), behind the gate, their errors in
/// OpenAI's shape. On AWS the submit function serves them.
pub fn openai_routes<W, Q, B>(
    state: openai::OpenAiState<W, Q, B>,
    tenancy: TenancySettings,
) -> Router
where
    W: SubmitStore + TaskReader + KeyLookup + Clone,
    Q: QueueSend,
    B: BlobPut + BlobGet + BlobPresign,
{
    let gate = Arc::new(Gate::new(state.submit.intake.tasks.clone(), tenancy));
    let router = Router::new()
        .route(
            "/v1/audio/transcriptions",
            post(openai::transcriptions::<W, Q, B>),
        )
        .route("/v1/audio/speech", post(openai::speech::<W, Q, B>))
        .route("/v1/models", get(openai::models))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(Arc::new(state));
    guarded(router, gate, false).layer(axum::middleware::map_response(openai::openai_errors))
}

/// The validator lease routes (see [`validator`]), behind the gate. On AWS the submit function
/// serves them.
pub fn validator_routes<T, B>(
    state: validator::ValidatorState<T, B>,
    tenancy: TenancySettings,
) -> Router
where
    T: TaskReader + TaskLease + KeyLookup + Metering + Clone,
    B: BlobGet + BlobPut,
{
    let gate = Arc::new(Gate::new(state.tasks.clone(), tenancy));
    let router = Router::new()
        .route(
            "/api/v1/validator/distribute",
            post(validator::distribute::<T, B>),
        )
        .route(
            "/api/v1/validator/tasks/{id}/result",
            post(validator::result::<T, B>),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(Arc::new(state));
    guarded(router, gate, false)
}

/// Puts `router` behind the tenancy gate (see [`gate`]); with `usage`, adds
/// `GET /api/v1/usage`, served by the gate's store. Both route sets go through here, so every
/// handler finds its [`Caller`].
fn guarded<K: KeyLookup + Metering>(router: Router, gate: Arc<Gate<K>>, usage: bool) -> Router {
    let mut router = router;
    if usage {
        router = router.merge(
            Router::new()
                .route("/api/v1/usage", get(gate::usage::<K>))
                .with_state(gate.clone()),
        );
    }
    router.layer(axum::middleware::from_fn_with_state(gate, gate::guard::<K>))
}

/// Adds the problem+json answers for unknown routes (404) and wrong methods (405).
pub fn with_fallbacks(router: Router) -> Router {
    router
        .fallback(|uri: Uri| async move {
            Problem::not_found(format!("no route for {}", uri.path().escape_default()))
        })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            let mut r = Problem::method_not_allowed(format!(
                "{} is not allowed on {}",
                method,
                uri.path().escape_default()
            ))
            .into_response();
            r.headers_mut().remove(header::ALLOW);
            r
        })
}
