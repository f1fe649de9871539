//! Loading a generated config of ~10,000 resources (3,334 services × ServiceEntry,
//! VirtualService, DestinationRule), and building the registry from it.

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_core::loader::Loader;
use mesh_core::registry::{Registry, Scope};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    mesh_benches::generate_config(dir.path(), 3334).expect("generated config");
    let loader = Loader::new([dir.path()]);
    let mut group = c.benchmark_group("config");
    group.sample_size(10);
    group.bench_function("load_10k_resources", |b| {
        b.iter(|| loader.load().expect("valid config"))
    });
    let snapshot = loader.load().expect("valid config");
    group.bench_function("registry_10k_resources", |b| {
        b.iter(|| Registry::build(&snapshot, &Scope::new("ns-0")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
