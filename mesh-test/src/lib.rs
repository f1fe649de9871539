//! Test support for the mesh SDK: real loopback upstreams and clients for integration tests.
