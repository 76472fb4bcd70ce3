//! Integration tests of the local runtime: one test binary, one shared harness.

mod bad_input;
mod docs;
mod lifecycle;
mod services;
mod support;
