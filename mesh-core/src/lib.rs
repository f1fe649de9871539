//! The vocabulary of the mesh SDK.
//!
//! `mesh-core` sits under every other crate of the SDK (see DESIGN.md's crate diagram): the
//! leaf crates (`mesh-routing`, `mesh-resilience`, `mesh-identity`, `mesh-telemetry`) never
//! import each other, so what they must agree on lives here:
//!
//! - [`model`]: typed Istio resources (VirtualService, DestinationRule, ServiceEntry,
//!   WorkloadEntry, Sidecar, PeerAuthentication, AuthorizationPolicy) that reject unknown fields;
//! - [`loader`]: files and folders of multi-document YAML (or JSON) into a [`Snapshot`], with
//!   file, line and column in every error;
//! - [`snapshot`]: all resources of one configuration version;
//! - [`watch`]: hot reload that publishes new snapshots and keeps the last good one;
//! - [`hosts`]: Istio host name resolution (short names, `name.ns`, FQDN, wildcards);
//! - [`registry`]: services, clusters and endpoints from ServiceEntries and WorkloadEntries;
//! - [`traffic_policy`]: which DestinationRule applies to a destination, and each cluster's
//!   effective policy;
//! - [`classify`]: what became of an upstream attempt (success, 5xx, connect failure, reset,
//!   timeout, overflow), read by retries, outlier detection, metrics and logs;
//! - [`endpoint`]: endpoints with per-endpoint health that routing reads and resilience writes;
//! - [`extensions`]: typed request extensions that layers hand on (the route decision);
//! - [`random`]: fast, seedable randomness for balancers, weights, faults and jitter.
//!
//! ```
//! use mesh_core::loader::Loader;
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("se.yaml"), r#"
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: api}
//! spec:
//!   hosts: [api.example.com]
//!   resolution: STATIC
//!   ports: [{number: 80, name: http}]
//!   endpoints: [{address: 127.0.0.1}]
//! "#).unwrap();
//! let snapshot = Loader::new([dir.path()]).namespace("prod").load().unwrap();
//! let se = snapshot.service_entries().next().unwrap();
//! assert_eq!(se.namespace(), "prod");
//! ```

pub mod classify;
pub mod endpoint;
pub mod extensions;
pub mod hosts;
pub mod loader;
pub mod model;
pub mod random;
pub mod registry;
pub mod snapshot;
pub mod suggest;
pub mod traffic_policy;
pub mod validate;
pub mod watch;

pub use snapshot::Snapshot;

/// The boxed error type of tower services in the SDK.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
