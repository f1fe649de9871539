//! Test support for the mesh SDK: real loopback upstreams and clients for integration tests.
//!
//! Nothing here is mocked: [`TestServer`] is a real hyper server on `127.0.0.1:0` that speaks
//! HTTP/1.1 and HTTP/2 prior knowledge (h2c) on one port, and the clients are real hyper
//! clients. Everything binds the loopback interface only, so tests never leave the machine.
//! This crate is a dev-dependency only (`publish = false`, STYLE.md §2.11) and depends on no
//! crate of the workspace, so nothing compiles twice.
//!
//! - [`TestServer`]: an echo upstream by default (status 200, `x-served-by` and `x-seen-*`
//!   headers, the request body streamed back), with knobs for fixed replies, delays, slow
//!   bodies, periodic 503s and connections closed without a response. It logs every request
//!   ([`SeenRequest`]) and counts accepted connections.
//! - [`client`]: [`http1_client`], [`h2c_client`], [`send_via_proxy`] (absolute-form requests,
//!   as applications using `HTTP_PROXY` send them) and [`raw_http1`] for malformed input.
//! - [`body`]: [`TestBody`], [`counting_body`] (a large body of zeros that never exists in
//!   memory at once) and [`drain_and_count`].
//! - [`prom`]: a strict reader of the Prometheus text format for `/metrics` pages.
//! - [`trace_init`] and [`eventually`] (bounded polling; use sparingly).
//!
//! ```no_run
//! use mesh_test::{TestServer, h2c_client, drain_and_count, TestBody};
//!
//! # async fn example() -> Result<(), mesh_test::BoxError> {
//! let server = TestServer::builder().name("v1").start().await;
//! let client = h2c_client::<TestBody>();
//! let rsp = client.get(server.uri("/hello")).await?;
//! assert_eq!(rsp.headers()["x-served-by"], "v1");
//! assert_eq!(rsp.headers()["x-seen-version"], "HTTP/2.0");
//! assert_eq!(drain_and_count(rsp.into_body()).await?, 0);
//! assert_eq!(server.request_count(), 1);
//! # Ok(())
//! # }
//! ```

pub mod body;
pub mod client;
mod eventually;
pub mod prom;
pub mod server;
mod trace;

#[cfg(test)]
mod tests;

pub use body::{CountingBody, TestBody, counting_body, drain_and_count};
pub use client::{h2c_client, http1_client, raw_http1, raw_http1_with_timeout, send_via_proxy};
pub use eventually::eventually;
pub use server::{Reply, RequestView, SeenRequest, TestServer, TestServerBuilder};
pub use trace::trace_init;

/// The boxed error used by this crate's fallible helpers (the tower norm).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
