//! The `taogate` command's library: the local runtime's wiring and the benchmark client, kept
//! here so integration tests can start the same runtime in-process.

pub mod bench;
pub mod bench_e2e;
pub mod client;
pub mod http;
pub mod keys;
pub mod metagraph;
pub mod serve;
