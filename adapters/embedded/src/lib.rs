//! The embedded backend: one process, no servers.
//!
//! A SQLite file holds the task table, a priority queue with SQS semantics (visibility timeout,
//! receive count, dead letters) and the small blobs; a directory holds the larger blobs. It is
//! the default of `taogate serve` and, through the contract tests, the reference the AWS
//! adapters are held to.
//!
//! Durability: WAL journal with `synchronous=NORMAL`, so a committed submission survives the
//! process being killed at any point; only an operating-system crash can lose the last commits.
//! The data directory is locked, so one process owns it, which lets start-up release every lease
//! and in-flight message left by a previous run.

use taogate_app::ports;
use taogate_core::domain;

mod db;
mod sqlite_blobs;
mod sqlite_queue;
mod sqlite_tasks;
mod sqlite_tenants;

pub use db::{Database, QueuePolicy};
pub use sqlite_blobs::{BlobDir, SMALL_BLOB_BYTES};
pub use sqlite_queue::Recovery;

/// Embedded stores in a directory, for the tests of the use cases and adapters.
pub fn test_stores(dir: &std::path::Path) -> (Database, BlobDir) {
    let db = Database::open(dir, QueuePolicy::default()).expect("a fresh directory opens");
    let blobs = BlobDir::new(&dir.join("blobs"), "http://x", &db).expect("a blob directory");
    (db, blobs)
}
