//! mesh-core's integration tests: one binary, one module per area.

mod loader;
mod model;
mod validate;
