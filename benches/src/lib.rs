//! Criterion benchmarks of the mesh SDK: `cargo bench -p mesh-benches`.
