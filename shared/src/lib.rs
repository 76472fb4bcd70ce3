//! taogate's library: everything the Lambdas, the local runtime and the CLI share.
//!
//! Layout, inside out:
//! - [`domain`]: tasks and the values they are made of; pure.
//! - [`scoring`] and [`audio`]: how answers are weighed and audio is checked; pure.
//! - [`ports`]: the capability traits handlers depend on.
//! - [`embedded`]: the SQLite + directory adapters (the default backend).
//! - [`bittensor`]: hotkeys, the synapse, the miner directory and the axon client.
//! - [`api`], [`views`] and [`worker`]: the routes and the queue handler, written once.
//! - [`runtime`]: the local worker pool that feeds the worker from the embedded queue.
//! - [`config`] and [`callback`]: typed settings and callback delivery.

pub mod api;
pub mod audio;
pub mod aws;
pub mod bittensor;
pub mod callback;
pub mod config;
pub mod domain;
pub mod embedded;
pub mod ports;
pub mod runtime;
pub mod scoring;
pub mod views;
pub mod worker;
