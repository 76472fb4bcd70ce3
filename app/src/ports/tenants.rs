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
    /// Accepted tasks by service, in [`ServiceKind::ALL`] order.
    tasks: [u64; ServiceKind::COUNT],
}

impl Usage {
    /// `requests` requests, and `tasks(kind)` accepted tasks of each service.
    pub fn new(requests: u64, tasks: impl Fn(ServiceKind) -> u64) -> Self {
        Self {
            requests,
            tasks: ServiceKind::ALL.map(tasks),
        }
    }

    /// Accepted tasks of every service (what a quota counts).
    pub fn tasks(&self) -> u64 {
        self.tasks.iter().sum()
    }

    /// Accepted tasks of `kind`.
    pub fn of(&self, kind: ServiceKind) -> u64 {
        self.tasks[kind.index()]
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

/// What [`Idempotency::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// This call owns the request now: create `resource`, then finish (or forget) with
    /// `token`. `resource` is the caller's own id, or, taking over an abandoned request, the
    /// id that request chose (what it created may already exist).
    Owned {
        /// The claim's token.
        token: Millis,
        /// The id to create under.
        resource: String,
    },
    /// The same request, answered: answer it again.
    Replay(StoredAnswer),
    /// Another request under the same key: 422.
    Mismatch,
    /// The first is still being handled: 409.
    InFlight,
}

/// Remembers requests made under an `Idempotency-Key`, keyed by `scope` (a digest of the
/// caller and the key). Every change is one atomic step of the store, so concurrent requests
/// see one owner.
pub trait Idempotency: Send + Sync + 'static {
    /// Claims `scope` for a request with `fingerprint` that would create `resource`, unless
    /// another request holds it (see [`Begun`]).
    fn begin(
        &self,
        scope: &str,
        fingerprint: &str,
        resource: &str,
        now: Millis,
    ) -> impl Future<Output = Result<Begun, StoreError>> + Send;

    /// Stores the answer of the request that owns `scope` with `token`; nothing if the claim
    /// was taken over since.
    fn finish(
        &self,
        scope: &str,
        token: Millis,
        answer: StoredAnswer,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the claim `token` of a request that created nothing, so a retry starts afresh;
    /// nothing if the claim was taken over since.
    fn forget(
        &self,
        scope: &str,
        token: Millis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The claim [`Idempotency::begin`] writes: the request's, owned from `now`, creating
/// `resource` (or what an abandoned `previous` claim chose).
pub fn claim(
    fingerprint: &str,
    resource: &str,
    previous: Option<&IdempotentRequest>,
    now: Millis,
) -> IdempotentRequest {
    // Only an abandoned request's choice carries over; a forgotten one's is history.
    let abandoned = previous.filter(|p| p.repeat(fingerprint, now) == Repeat::Abandoned);
    IdempotentRequest {
        fingerprint: fingerprint.to_owned(),
        started_at: now,
        resource: abandoned
            .and_then(|p| p.resource.clone())
            .or_else(|| Some(resource.to_owned())),
        answer: None,
    }
}

/// What a remembered `previous` request means for a new one with `fingerprint` at `now`:
/// `None` when the new one may claim it (nothing remembered, forgotten, or abandoned).
pub fn judge(
    previous: Option<&IdempotentRequest>,
    fingerprint: &str,
    now: Millis,
) -> Option<Begun> {
    match previous.map(|p| p.repeat(fingerprint, now)) {
        None | Some(Repeat::Fresh) | Some(Repeat::Abandoned) => None,
        Some(Repeat::Replay(a)) => Some(Begun::Replay(a)),
        Some(Repeat::Mismatch) => Some(Begun::Mismatch),
        Some(Repeat::InFlight) => Some(Begun::InFlight),
    }
}
