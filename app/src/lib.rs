//! taogate's application layer: the ports and the use cases written against them.
//!
//! - [`ports`]: the capability traits the use cases depend on, each the size of one permission.
//! - [`submission`], [`worker`], [`drain`] and [`sweep`]: the use cases. [`notify`] tells a
//!   submitter a task ended; [`views`] are the JSON shapes clients and callbacks see.
//! - [`memory`]: a process-wide byte budget; [`timings`]: latency samples the benchmarks turn
//!   on; [`faults`]: fault points, compiled in only for the fault tests.
//!
//! This crate depends on the pure core (`taogate-core`) and on no adapter crate: a use case
//! cannot name DynamoDB, SQLite, an axon or an HTTP client, only the ports they implement.

use taogate_core::{answer, config, domain, scoring};

pub mod drain;
pub mod faults;
pub mod memory;
pub mod notify;
pub mod ports;
pub mod submission;
pub mod sweep;
pub mod timings;
pub mod views;
pub mod worker;
