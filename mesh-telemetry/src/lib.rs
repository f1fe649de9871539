//! Observability for the mesh SDK: trace context, spans, Istio-standard metrics and access
//! logs, as plain functions and tower layers usable with or without the proxy.
//!
//! - [`access_log`]: one line per request, Istio's text format or JSON, written off the request
//!   path (SEMANTICS LOG-1).
//! - [`layer`]: tower layers for services without a sidecar: trace context, Istio metrics,
//!   access log.
//! - [`metrics`]: Istio's standard request and TCP metrics with their labels, buckets and
//!   exemplars (SEMANTICS MET-1..MET-6).
//! - [`trace_context`]: W3C `traceparent`/`tracestate` and B3, read, continued or restarted,
//!   and written for the next hop (SEMANTICS §9.1–9.3).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access_log;
pub mod layer;
pub mod metrics;
pub mod trace_context;
