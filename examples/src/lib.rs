//! Runnable examples of the mesh SDK: `cargo run -p mesh-examples --example NAME`.
