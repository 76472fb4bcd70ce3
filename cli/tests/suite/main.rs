//! Integration tests of the local runtime: one test binary, one shared harness.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

mod aws;
mod bad_input;
mod chain;
mod client;
mod contract;
mod docs;
mod hardening;
mod hostile;
mod interop;
mod lifecycle;
mod openai;
mod schema;
mod scoring;
mod services;
mod support;
mod template;
mod tenants;
mod validator;
