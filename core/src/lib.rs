//! taogate's pure core: what the gateway knows and decides, with no way to reach the outside
//! world. This crate depends on no HTTP client, database, queue or AWS crate (see its
//! `Cargo.toml`), so "scoring knows no HTTP" and "the domain knows no storage" hold by
//! construction, not by review.
//!
//! - [`config`]: typed settings, one section per component; a leaf.
//! - [`domain`]: tasks, miners, blob keys and the values they are made of.
//! - [`audio`]: probing and measuring audio.
//! - [`answer`]: what a miner's reply must be to count, within the task's budget.
//! - [`scoring`]: how miner answers are weighed.

pub mod answer;
pub mod audio;
pub mod config;
pub mod domain;
pub mod scoring;
