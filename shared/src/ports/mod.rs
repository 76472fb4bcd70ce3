//! Ports: the small capability traits handlers are written against.
//!
//! Each trait is the size of one permission, so a handler's bounds read like its IAM policy in
//! `template.yaml`:
//! - submit: [`TaskCreate`] + [`QueueSend`] + [`BlobPut`] + [`BlobGet`] + [`BlobPresign`];
//! - status: [`TaskReader`] + [`QueueDepths`] + [`BlobGet`] + [`BlobPresign`] + [`MinerDirectory`];
//! - worker: [`TaskLease`] + [`HealthStore`] + [`BlobGet`] + [`BlobPut`] + [`BlobPresign`] +
//!   [`MinerDirectory`] + [`MinerClient`] + [`ReferenceEndpoints`] + [`CallbackNotifier`], fed by
//!   [`QueueConsume`];
//! - sweeper: [`TaskSweep`] + [`QueueSend`].
//!
//! Adapters (embedded, AWS, HTTP) implement them and own every wire conversion; each store
//! adapter implements all of its store's capabilities.

mod blobs;
mod miners;
mod outbound;
mod queue;
mod tasks;

pub use blobs::{BlobGet, BlobPresign, BlobPut, UploadTarget};
pub use miners::{MinerClient, MinerDirectory};
pub use outbound::{CallbackNotifier, ReferenceEndpoints, ReferenceInput};
pub use queue::{Delivery, QueueConsume, QueueDepth, QueueDepths, QueueSend};
pub use tasks::{
    AttemptEnd, HealthStore, TaskCreate, TaskLease, TaskPage, TaskQuery, TaskReader, TaskSweep,
};

/// An infrastructure failure, translated once by the adapter.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item in another state.
    #[error("conditional write conflict: {0}")]
    Conflict(String),
    /// The backend failed.
    #[error("storage backend failed")]
    Backend(#[source] anyhow::Error),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(e: impl Into<anyhow::Error>) -> Self {
        Self::Backend(e.into())
    }
}
