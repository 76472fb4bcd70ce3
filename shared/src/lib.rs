//! taogate's composition root: the layers, and the wiring the Lambdas, the local runtime and
//! the CLI build their processes from.
//!
//! Layers, inside out (each a crate; a crate depends only on those inside it, so the compiler
//! keeps the arrows pointing inward; ARCHITECTURE.md states the rules):
//! - `taogate-core`, the pure core: [`config`], [`domain`], [`audio`] and [`scoring`].
//! - `taogate-app`, the application layer: [`ports`] and the use cases ([`submission`],
//!   [`worker`], [`drain`], [`sweep`], [`notify`]) with the [`views`] they answer with.
//! - The adapters, one crate each: [`embedded`] (SQLite + files), [`aws`] (DynamoDB, SQS, S3,
//!   Secrets Manager, the Lambda entry points), [`bittensor`] (hotkeys, the chain, the miner
//!   protocols), [`outbound`] (reference endpoints, callbacks); and [`api`] (`taogate-http`),
//!   the inbound HTTP adapter.
//! - This crate: [`wiring`] (which adapters each process is built from), [`secrets`] (resolved
//!   once, before the settings are shared) and [`metagraph_sync`] (the chain read into the
//!   snapshot object).

pub use taogate_app::{
    drain, faults, memory, notify, ports, submission, sweep, timings, views, worker,
};
pub use taogate_aws as aws;
pub use taogate_bittensor as bittensor;
pub use taogate_core::{answer, audio, config, domain, scoring};
pub use taogate_embedded as embedded;
pub use taogate_http as api;
pub use taogate_outbound as outbound;

pub mod metagraph_sync;
pub mod secrets;
pub mod wiring;
