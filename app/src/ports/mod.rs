//! Ports: the small capability traits handlers are written against.
//!
//! Each trait is the size of one permission, so a handler's bounds read like its IAM policy in
//! `template.yaml`:
//! - submit: [`TaskCreate`] + [`KeyLookup`] + [`Metering`] + [`Idempotency`] + [`QueueSend`] +
//!   [`BlobPut`] + [`BlobGet`] + [`BlobPresign`];
//! - status: [`TaskReader`] + [`KeyLookup`] + [`Metering`] + [`QueueDepths`] + [`BlobGet`] +
//!   [`BlobPresign`] + [`MinerDirectory`];
//! - worker: [`TaskLease`] + [`NoticeLedger`] + [`HealthStore`] + [`KeyLookup`] + [`BlobGet`] +
//!   [`BlobPut`] + [`BlobPresign`] + [`MinerDirectory`] + [`MinerClient`] +
//!   [`ReferenceEndpoints`] + [`CallbackNotifier`], fed by [`QueueConsume`];
//! - sweeper: [`TaskSweep`] + [`NoticeLedger`] + [`KeyLookup`] + [`QueueSend`] +
//!   [`BlobPresign`] + [`CallbackNotifier`];
//! - `taogate keys`: [`KeyAdmin`] + [`Metering`].
//!
//! Adapters (embedded, AWS, HTTP) implement them and own every wire conversion; each store
//! adapter implements all of its store's capabilities.

mod blobs;
mod miners;
mod outbound;
mod queue;
mod secret_store;
mod tasks;
mod tenants;

pub use blobs::{BlobGet, BlobPresign, BlobPut, UploadTarget};
pub use miners::{MinerClient, MinerDirectory};
pub use outbound::{CallbackNotifier, ReferenceEndpoints, ReferenceInput};
pub use queue::{Delivery, QueueConsume, QueueDepth, QueueDepths, QueueSend};
pub use secret_store::{NoSecretStore, SecretSource};
pub use tasks::{
    AttemptEnd, HealthStore, NoticeLedger, TaskCreate, TaskLease, TaskPage, TaskQuery, TaskReader,
    TaskSweep,
};
pub use tenants::{Begun, Idempotency, KeyAdmin, KeyLookup, Metering, Usage, claim, judge};

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

/// The AWS calls each port's AWS adapter makes: the IAM actions a function using the port needs.
/// `template.yaml` is held to this table (`cli/tests/suite/template.rs`). S3 actions are listed
/// here too, but their prefixes are checked against `domain::BlobKey` separately. Messages a
/// Lambda's SQS event source receives and deletes are the event source's own permission.
pub const AWS_ACTIONS: &[(&str, &[&str])] = &[
    (
        "TaskReader",
        &[
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
        ],
    ),
    // Insert, count it; on a failed send, fail it (read, conditional put, count).
    (
        "TaskCreate",
        &[
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:GetItem",
        ],
    ),
    // Read, conditional put, count.
    (
        "TaskLease",
        &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        ],
    ),
    // The status-and-service and owed-callback indexes, the items, a conditional put that
    // changes no count.
    (
        "TaskSweep",
        &[
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
        ],
    ),
    ("NoticeLedger", &["dynamodb:GetItem", "dynamodb:PutItem"]),
    // Load many; observe: read one, conditional put.
    (
        "HealthStore",
        &[
            "dynamodb:BatchGetItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
        ],
    ),
    // The key record (the gate; the signing secrets of callbacks).
    ("KeyLookup", &["dynamodb:GetItem"]),
    // Conditional counter updates; a consistent read when a rested key races.
    ("Metering", &["dynamodb:UpdateItem", "dynamodb:GetItem"]),
    // Claim (read, conditional put), answer (update), forget (delete).
    (
        "Idempotency",
        &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        ],
    ),
    ("QueueSend", &["sqs:SendMessage"]),
    // Receive and delete come with the event source; a retry's shorter visibility and a
    // waiting task's delayed copy are the function's own calls.
    (
        "QueueConsume",
        &["sqs:ChangeMessageVisibility", "sqs:SendMessage"],
    ),
    ("QueueDepths", &["sqs:GetQueueAttributes"]),
    ("BlobPut", &["s3:PutObject"]),
    ("BlobGet", &["s3:GetObject"]),
    // A presigned URL is authorized as its signer: the action it presigns.
    ("BlobPresign", &["s3:GetObject", "s3:PutObject"]),
    ("MinerDirectory", &["s3:GetObject"]),
    ("SecretSource", &["secretsmanager:GetSecretValue"]),
];
