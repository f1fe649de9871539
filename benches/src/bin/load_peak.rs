//! Loads a generated config once, for peak-memory measurement with an outside tool:
//! `/usr/bin/time -v target/release/load_peak 3334` (3 resources per service).
#![allow(clippy::print_stdout, reason = "a measurement tool prints its result")]
#![allow(
    clippy::disallowed_types,
    reason = "wall time of one load, outside any runtime"
)]

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let services: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3334);
    let dir = tempfile::tempdir()?;
    mesh_benches::generate_config(dir.path(), services)?;
    let started = std::time::Instant::now();
    let snapshot = mesh_core::loader::Loader::new([dir.path()]).load()?;
    let loaded = started.elapsed();
    let registry =
        mesh_core::registry::Registry::build(&snapshot, &mesh_core::registry::Scope::new("ns-0"));
    println!(
        "{} resources loaded in {:?}; registry of {} services built in {:?} total",
        snapshot.resources().len(),
        loaded,
        registry.services().len(),
        started.elapsed()
    );
    Ok(())
}
