//! Routing for the mesh SDK: Istio VirtualService and DestinationRule semantics as tower layers.
//!
//! This crate will compile a `mesh-core` snapshot's VirtualServices, DestinationRules,
//! ServiceEntries and WorkloadEntries into a route table once per snapshot, and provide:
//!
//! - host lookup and first-match route matching (uri, headers, query parameters, port,
//!   source labels), weighted subset choice, rewrites, redirects, direct responses, header
//!   edits, fault injection and mirroring;
//! - the load balancers of DestinationRule `trafficPolicy.loadBalancer` (round robin,
//!   least-request P2C, random, consistent hash ring and maglev) that skip ejected endpoints;
//! - a routing layer that hands the chosen route and endpoint on as typed request extensions.
//!
//! Until then `mesh-proxy` picks endpoints round robin from `mesh_core::endpoint`.
#![forbid(unsafe_code)]
