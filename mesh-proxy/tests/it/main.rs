//! mesh-proxy's integration tests: the real proxy on loopback, real upstreams, real HTTP/1.1
//! and HTTP/2. One binary, one module per area.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on a broken setup"
)]

mod admin;
mod binary;
mod cli_security;
mod forwarding;
mod harness;
mod local_replies;
mod metrics;
mod reload;
mod resilience;
mod routing;
mod security;
mod telemetry;
mod tls_origination;
