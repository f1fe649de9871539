//! The reference sidecar.
