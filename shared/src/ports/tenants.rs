//! The tenant store's capabilities: keys (looked up by the API, the worker and the sweeper;
//! written by `taogate keys`), metering (rates, quotas, usage) and remembered idempotent
//! requests.

use std::future::Future;

use super::StoreError;
use crate::domain::tenant::{IdempotentRequest, Rate, RateDecision, Repeat, StoredAnswer};
use crate::domain::{ApiKey, KeyId, Millis, ServiceKind};

/// One key's use in one calendar month.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Authenticated requests.
    pub requests: u64,
    /// Accepted transcription tasks.
    pub transcription: u64,
    /// Accepted TTS tasks.
    pub tts: u64,
    /// Accepted summarization tasks.
    pub summarization: u64,
}

impl Usage {
    /// Accepted tasks of every service (what a quota counts).
    pub fn tasks(&self) -> u64 {
        self.transcription + self.tts + self.summarization
    }

    /// Accepted tasks of `kind`.
    pub fn of(&self, kind: ServiceKind) -> u64 {
        match kind {
            ServiceKind::Transcription => self.transcription,
            ServiceKind::Tts => self.tts,
            ServiceKind::Summarization => self.summarization,
        }
    }

    /// The stored counter name of `kind`'s tasks.
    pub fn column(kind: ServiceKind) -> &'static str {
        kind.as_str()
    }
}

/// Reads key records (every function that authenticates requests or signs callbacks).
pub trait KeyLookup: Send + Sync + 'static {
    /// The key with this id, revoked or not.
    fn key(&self, id: &KeyId) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send;
}

/// Writes key records (`taogate keys`).
pub trait KeyAdmin: KeyLookup {
    /// Stores a key, replacing the record with the same id.
    fn save_key(&self, key: &ApiKey) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every key, oldest first.
    fn keys(&self) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send;
}

/// Counts what keys do, atomically across every process sharing the store.
pub trait Metering: Send + Sync + 'static {
    /// Counts one request of `key` and applies its `rate` (if any) at `now`: a refused request
    /// changes nothing.
    fn admit(
        &self,
        key: &KeyId,
        rate: Option<Rate>,
        now: Millis,
    ) -> impl Future<Output = Result<RateDecision, StoreError>> + Send;

    /// Counts one accepted task of `kind` this month, unless that would pass `quota`: then
    /// `false` and nothing changes.
    fn reserve_task(
        &self,
        key: &KeyId,
        kind: ServiceKind,
        quota: Option<u64>,
        now: Millis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives back a reserved task that was not accepted after all.
    fn release_task(
        &self,
        key: &KeyId,
        kind: ServiceKind,
        now: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// This month's use of `key`.
    fn usage(
        &self,
        key: &KeyId,
        now: Millis,
    ) -> impl Future<Output = Result<Usage, StoreError>> + Send;
}

/// Remembers requests made under an `Idempotency-Key`, keyed by `scope` (a digest of the
/// caller and the key).
pub trait Idempotency: Send + Sync + 'static {
    /// Records a first request atomically: [`Repeat::Fresh`] if this call now owns `scope`
    /// (nothing was remembered, or what was is forgotten or abandoned), else what the
    /// remembered request means for this one.
    fn begin(
        &self,
        scope: &str,
        fingerprint: &str,
        now: Millis,
    ) -> impl Future<Output = Result<Repeat, StoreError>> + Send;

    /// Stores the answer of the request that owns `scope`.
    fn finish(
        &self,
        scope: &str,
        answer: StoredAnswer,
        now: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets a request that failed before anything was accepted, so a retry starts afresh.
    fn forget(&self, scope: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What [`Idempotency::begin`] writes for a first request.
pub fn first_request(fingerprint: &str, now: Millis) -> IdempotentRequest {
    IdempotentRequest {
        fingerprint: fingerprint.to_owned(),
        started_at: now,
        answer: None,
    }
}
