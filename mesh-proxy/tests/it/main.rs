//! mesh-proxy's integration tests: the real proxy on loopback, real upstreams, real HTTP/1.1
//! and HTTP/2. One binary, one module per area.

mod admin;
mod binary;
mod forwarding;
mod harness;
mod local_replies;
mod reload;
