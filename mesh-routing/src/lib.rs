//! Routing for the mesh SDK: Istio VirtualService and DestinationRule semantics as tower layers.
#![forbid(unsafe_code)]

pub mod balance;
pub mod error;
pub mod matcher;

pub use error::Error;
