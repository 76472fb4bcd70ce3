//! taogate's library: everything the Lambdas, the local runtime and the CLI share.
//!
//! Layout, inside out (arrows point inward; ARCHITECTURE.md states the rules):
//! - The pure core, from the `taogate-core` crate (which depends on no HTTP, storage or AWS
//!   crate) and re-exported here: [`config`] (typed settings, one section per component; a
//!   leaf), [`domain`] (tasks, miners, blob keys and their values), [`audio`] and [`scoring`].
//! - [`ports`]: the capability traits handlers depend on, each the size of one permission.
//! - [`submission`], [`worker`], [`drain`] and [`sweep`]: the use cases, written against the
//!   ports.
//! - [`api`] and [`views`]: the HTTP routes and the JSON shapes clients see.
//! - Adapters: [`embedded`] (SQLite + files), [`aws`] (DynamoDB, SQS, S3, Secrets Manager),
//!   [`bittensor`] (hotkeys, the chain, the miner protocols), [`outbound`] (reference
//!   endpoints, callbacks).
//! - [`secrets`]: secrets resolved once, before the settings are shared.
//! - [`faults`]: fault points, compiled in only for the fault tests.
//! - [`timings`]: latency samples the benchmarks turn on.

pub use taogate_core::{audio, config, domain, scoring};

pub mod api;
pub mod aws;
pub mod bittensor;
pub mod budget;
pub mod drain;
pub mod embedded;
pub mod faults;
pub mod notice;
pub mod outbound;
pub mod ports;
pub mod secrets;
pub mod submission;
pub mod sweep;
pub mod timings;
pub mod views;
pub mod worker;
