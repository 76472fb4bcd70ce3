//! The routers each process serves, assembled once: the submit function's, the status
//! function's, and the whole gateway `taogate serve` runs (both, over one set of adapters).

use axum::Router;

use crate::config::{SubmissionSettings, TenancySettings};
use crate::ports::{
    BlobGet, BlobPresign, BlobPut, KeyLookup, Metering, MinerDirectory, QueueDepths, QueueSend,
    TaskLease, TaskReader,
};
use crate::submission::Intake;
use crate::{
    StatusState, SubmitState, SubmitStore, openai, openai_routes, status_routes, submit_routes,
    validator, validator_routes, with_fallbacks,
};

/// The submit function's routes: submissions and uploads, the OpenAI-compatible audio routes
/// and the validator lease routes, over one intake. With `local`, uploads are accepted by the
/// process itself (on AWS they go to S3 by presigned URL).
fn submit_side<T, Q, B>(
    intake: Intake<T, Q, B>,
    settings: SubmissionSettings,
    tenancy: TenancySettings,
    local: bool,
) -> Router
where
    T: SubmitStore + TaskReader + TaskLease + KeyLookup + Clone,
    Q: QueueSend + Clone,
    B: BlobPut + BlobGet + BlobPresign + Clone,
{
    let validator = validator_routes(
        validator::ValidatorState {
            tasks: intake.tasks.clone(),
            blobs: intake.blobs.clone(),
        },
        tenancy,
    );
    let openai = openai_routes(
        openai::OpenAiState {
            submit: SubmitState {
                intake: intake.clone(),
                settings: settings.clone(),
            },
            wait: settings.openai_wait,
        },
        tenancy,
    );
    let submit = submit_routes(SubmitState { intake, settings }, tenancy, local);
    submit.merge(openai).merge(validator)
}

/// The submit function's whole router: [`submit_side`] with the problem+json fallbacks.
pub fn submit_function<T, Q, B>(
    intake: Intake<T, Q, B>,
    settings: SubmissionSettings,
    tenancy: TenancySettings,
) -> Router
where
    T: SubmitStore + TaskReader + TaskLease + KeyLookup + Clone,
    Q: QueueSend + Clone,
    B: BlobPut + BlobGet + BlobPresign + Clone,
{
    with_fallbacks(submit_side(intake, settings, tenancy, false))
}

/// The status function's whole router: the read routes with the problem+json fallbacks.
pub fn status_function<T, Q, B, D>(
    state: StatusState<T, Q, B, D>,
    tenancy: TenancySettings,
) -> Router
where
    T: TaskReader + KeyLookup + Metering + Clone,
    Q: QueueDepths,
    B: BlobGet + BlobPresign,
    D: MinerDirectory,
{
    with_fallbacks(status_routes(state, tenancy, false))
}

/// The whole gateway over one set of adapters, as one process serves it: the submit and the
/// status functions' routes together. With `local`, the process also serves what S3 serves on
/// AWS (uploads and audio results).
pub fn gateway<T, Q, B, D>(
    intake: Intake<T, Q, B>,
    directory: D,
    gateway_hotkey: String,
    settings: SubmissionSettings,
    tenancy: TenancySettings,
    local: bool,
) -> Router
where
    T: SubmitStore + TaskReader + TaskLease + KeyLookup + Clone,
    Q: QueueSend + QueueDepths + Clone,
    B: BlobPut + BlobGet + BlobPresign + Clone,
    D: MinerDirectory,
{
    let status = status_routes(
        StatusState {
            tasks: intake.tasks.clone(),
            queue: intake.queue.clone(),
            blobs: intake.blobs.clone(),
            directory,
            gateway_hotkey,
        },
        tenancy,
        local,
    );
    with_fallbacks(submit_side(intake, settings, tenancy, local).merge(status))
}
