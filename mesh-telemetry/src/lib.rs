//! Observability for the mesh SDK.
//!
//! This crate will hold W3C `traceparent`/`tracestate` and B3 propagation, spans exported over
//! OTLP, the Istio-standard Prometheus metrics (`istio_requests_total`, …) and access logs.
#![forbid(unsafe_code)]
