//! Outbound calls besides miners: the reference endpoints and the callback notifier.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::domain::{Language, ServiceKind};

/// The task's input, as a reference endpoint needs it.
#[derive(Debug, Clone)]
pub enum ReferenceInput {
    /// Text to summarize or speak.
    Text(String),
    /// Audio to transcribe, with a file name for its container.
    Audio {
        /// The file.
        bytes: Bytes,
        /// Its name (the extension tells the recognizer the container).
        filename: String,
    },
}

/// Trusted endpoints whose answers score the miners' (`SCORING_MODE=reference|auto`). Failures
/// are values (`Err(why)`): scoring then falls back to consensus and notes why.
pub trait ReferenceEndpoints: Send + Sync + 'static {
    /// Whether a task-level reference exists for `kind` (TTS has only per-answer
    /// intelligibility, see [`Self::hears_speech`]).
    fn covers(&self, kind: ServiceKind) -> bool;

    /// Whether TTS answers can be transcribed.
    fn hears_speech(&self) -> bool;

    /// The reference answer for a task, within `deadline`.
    fn reference(
        &self,
        kind: ServiceKind,
        language: Language,
        input: &ReferenceInput,
        deadline: Duration,
    ) -> impl Future<Output = Result<String, String>> + Send;

    /// The recognizer's transcript of `audio`, within `deadline`.
    fn transcribe(
        &self,
        audio: Bytes,
        filename: &str,
        language: Language,
        deadline: Duration,
    ) -> impl Future<Output = Result<String, String>> + Send;
}

/// Tells a submitter that its task finished, at the callback URL it gave.
pub trait CallbackNotifier: Send + Sync + 'static {
    /// Why a delivery failed (logged; it never fails the task).
    type Error: std::fmt::Display + Send;

    /// Delivers `body` to `url` under `delivery_id`, the same on every try of one callback so
    /// that the receiver can drop duplicates, signed with each of `secrets` (Standard
    /// Webhooks; none for the anonymous tenant); returns the number of requests it took.
    ///
    /// Ends by `deadline` whatever the receiver does, every try and back-off included: no try
    /// starts after it and one under way then is abandoned (an error like any other).
    fn deliver(
        &self,
        url: &str,
        body: &serde_json::Value,
        delivery_id: &str,
        secrets: &[String],
        deadline: Instant,
    ) -> impl Future<Output = Result<u32, Self::Error>> + Send;
}
