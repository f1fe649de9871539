//! mesh-routing's conformance tests: table-driven routing cases written from SEMANTICS.md
//! (each case names the rule it checks), and the tower layer around a `service_fn`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub,
    reason = "test helpers fail the test on a broken setup"
)]

mod actions;
mod fixtures;
mod harness;
mod hosts;
mod layer;
mod policy;
mod table;
