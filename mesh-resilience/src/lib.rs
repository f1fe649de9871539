//! Resilience for the mesh SDK: the request-path guard rails of Istio and Envoy as tower layers.
//!
//! This crate will hold route timeouts, retries (attempts, per-try timeout, `retryOn`, jittered
//! back-off, retry budgets), circuit breaking from DestinationRule `connectionPool` limits, and
//! outlier detection that writes endpoint health into `mesh_core::endpoint::EndpointSet`.
#![forbid(unsafe_code)]
