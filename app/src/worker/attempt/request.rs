//! The request every miner is sent, and the reference endpoints asked beside the miners.

use base64::Engine as _;
use bytes::Bytes;

use super::{AttemptError, AttemptPolicy};
use crate::answer::ValidAnswer;
use crate::domain::{AnswerBudget, ServiceKind, SynapseRequest, Task, TaskInput};
use crate::ports::{BlobGet, ReferenceEndpoints, ReferenceInput, StoreError};
use crate::scoring::Reference;

/// Builds the shared request (all inputs are base64, as the subnet expects) and returns the
/// raw input for the reference endpoints.
pub(super) async fn build<B: BlobGet>(
    task: &Task,
    budget: &AnswerBudget,
    blobs: &B,
) -> Result<(SynapseRequest, ReferenceInput), AttemptError> {
    let engine = base64::engine::general_purpose::STANDARD;
    let (input_data, input) = match &task.input {
        TaskInput::Text { text } => (
            Bytes::from(engine.encode(text)),
            ReferenceInput::Text(text.clone()),
        ),
        TaskInput::Audio {
            blob_key, filename, ..
        } => {
            let audio = blobs
                .get(blob_key)
                .await
                .map_err(AttemptError::Store)?
                .ok_or_else(|| {
                    AttemptError::Store(StoreError::backend(anyhow::anyhow!(
                        "input audio {blob_key} is missing"
                    )))
                })?;
            let encoded = Bytes::from(engine.encode(&audio));
            let filename = filename.clone().unwrap_or_else(|| "audio.wav".into());
            (
                encoded,
                ReferenceInput::Audio {
                    bytes: audio,
                    filename,
                },
            )
        }
    };
    Ok((
        SynapseRequest::new(task.kind.as_str(), input_data, task.language.code()).within(budget),
        input,
    ))
}

/// The task-level reference, when the mode asks for one and an endpoint serves the service.
pub(super) async fn task_reference<R: ReferenceEndpoints>(
    reference: Option<&R>,
    policy: &AttemptPolicy,
    task: &Task,
    input: &ReferenceInput,
) -> Reference {
    match reference {
        Some(client) if client.covers(task.kind) => Reference::from(
            client
                .reference(task.kind, task.language, input, policy.deadline)
                .await,
        ),
        // Asked for a reference that is not configured for this service: say so.
        Some(_) if policy.requires_reference() && task.kind != ServiceKind::Tts => {
            Reference::Failed(format!("no reference endpoint serves {}", task.kind))
        }
        _ => Reference::None,
    }
}

/// TTS intelligibility: the recognizer hears every valid answer, within what is left of the
/// deadline (at least a quarter of it, which the lease leaves room for). One entry per answer;
/// `None` where nothing was heard.
pub(super) async fn transcripts<R: ReferenceEndpoints>(
    reference: Option<&R>,
    policy: &AttemptPolicy,
    task: &Task,
    valid: &[(usize, ValidAnswer)],
    started: tokio::time::Instant,
) -> Vec<Option<Result<String, String>>> {
    match reference {
        Some(client) if task.kind == ServiceKind::Tts && client.hears_speech() => {
            let left = policy
                .deadline
                .saturating_sub(started.elapsed())
                .max(policy.deadline / 4);
            futures::future::join_all(valid.iter().map(|(_, a)| async move {
                match a {
                    ValidAnswer::Audio { wav, .. } => Some(
                        client
                            .transcribe(wav.clone(), "answer.wav", task.language, left)
                            .await,
                    ),
                    ValidAnswer::Text(_) => None,
                }
            }))
            .await
        }
        _ => vec![None; valid.len()],
    }
}
