//! Zero-trust identity for the mesh SDK.
//!
//! This crate will hold SPIFFE IDs, X.509-SVID parsing and verification, rustls verifiers that
//! check a peer's SPIFFE ID against a trust bundle, rotating certificate sources,
//! PeerAuthentication modes, and the AuthorizationPolicy engine and its layer.
#![forbid(unsafe_code)]
