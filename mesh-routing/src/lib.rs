//! Routing for the mesh SDK: Istio VirtualService and DestinationRule semantics as tower layers.
//!
//! `mesh-routing` sits between `mesh-core` (the config model, the registry of services and
//! endpoints) and whatever sends requests: `mesh-proxy`'s outbound listener, or a Rust client
//! wrapped in [`RoutingLayer`]. It turns a snapshot into a [`RouteTable`] once
//! ([`RouteTable::compile`]) and answers, per request and without allocating to match:
//!
//! - which virtual host the request's `Host` names (HOST-1..HOST-12, [`table`]);
//! - which route matches first (VS-1..VS-13, [`matcher`]);
//! - what the route does: weighted destinations, rewrites, redirects, direct responses,
//!   header edits, faults, mirrors, CORS (VS-14..VS-37; [`route`], [`rewrite`], [`headers`],
//!   [`fault`], [`cors`]);
//! - which endpoint of the destination's cluster gets it, by the DestinationRule's balancer
//!   (DR-1..DR-10, OD-10; [`balance`]).
//!
//! The decision steps are in [`decide`]; [`explain`] replays them and says why.
//!
//! ```
//! use mesh_core::loader::parse_str;
//! use mesh_core::registry::{Registry, Scope};
//! use mesh_core::Snapshot;
//! use mesh_routing::RouteTable;
//!
//! let yaml = r#"
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: reviews}
//! spec:
//!   hosts: [reviews]
//!   ports: [{number: 9080, name: http}]
//!   resolution: STATIC
//!   endpoints:
//!   - {address: 127.0.0.1, ports: {http: 9081}, labels: {version: v1}}
//!   - {address: 127.0.0.1, ports: {http: 9082}, labels: {version: v2}}
//! ---
//! apiVersion: networking.istio.io/v1
//! kind: DestinationRule
//! metadata: {name: reviews}
//! spec:
//!   host: reviews
//!   subsets:
//!   - {name: v1, labels: {version: v1}}
//!   - {name: v2, labels: {version: v2}}
//! ---
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: reviews}
//! spec:
//!   hosts: [reviews]
//!   http:
//!   - match: [{headers: {x-canary: {exact: "true"}}}]
//!     route: [{destination: {host: reviews, subset: v2}}]
//!   - route: [{destination: {host: reviews, subset: v1}}]
//! "#;
//! let snapshot = Snapshot::new(parse_str(yaml, std::path::Path::new("mesh.yaml"), "default").unwrap());
//! let scope = Scope::new("default");
//! let registry = Registry::build(&snapshot, &scope);
//! let table = RouteTable::compile(&snapshot, &registry, &scope).unwrap();
//!
//! let req = http::Request::get("http://reviews:9080/").header("x-canary", "true").body(()).unwrap();
//! let mut rng = mesh_core::random::Random::seeded(1);
//! let decision = mesh_routing::decide::decide(&table, &req, 9080, &mut rng);
//! let mesh_routing::decide::Next::Forward(dest) = decision.next else { panic!() };
//! let chosen = mesh_routing::decide::select(dest, &req, 9080, None, &[], &mut rng).unwrap();
//! assert_eq!(chosen.addr.port(), 9082);
//! assert_eq!(chosen.upstream.cluster.name(), "outbound|9080|v2|reviews.default.svc.cluster.local");
//! ```
#![forbid(unsafe_code)]

pub mod balance;
pub mod cors;
pub mod decide;
pub mod error;
pub mod explain;
pub mod fault;
pub mod headers;
pub mod layer;
pub mod matcher;
pub mod rewrite;
pub mod route;
pub mod table;

pub use error::Error;
pub use layer::{Routing, RoutingLayer};
pub use table::RouteTable;
