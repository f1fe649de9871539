//! Route matching and table compilation (issue: routing).
//!
//! - `route_match/{10,1000,10000}`: host lookup + first-match over a header canary route and a
//!   catch-all, for a request that takes the header route (`x-canary: true`) and one that
//!   falls through to the weighted route; plus the weighted destination draw and the endpoint
//!   pick (`decide_and_select`).
//! - `compile/10000`: compiling 10,000 services' ServiceEntry + VirtualService +
//!   DestinationRule into a route table (the registry built outside the timing).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mesh_core::loader::Loader;
use mesh_core::random::Random;
use mesh_core::registry::{Registry, Scope};
use mesh_routing::RouteTable;
use mesh_routing::decide::{Next, decide, select};
use mesh_routing::matcher::RequestView;

fn table(services: usize) -> (mesh_core::Snapshot, Registry, RouteTable) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    mesh_benches::generate_config(dir.path(), services).expect("generated config");
    let snapshot = Loader::new([dir.path()]).load().expect("valid config");
    let scope = Scope::new("ns-0");
    let registry = Registry::build(&snapshot, &scope);
    let table = RouteTable::compile(&snapshot, &registry, &scope).expect("compiles");
    (snapshot, registry, table)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_match");
    for services in [10usize, 1_000, 10_000] {
        let (_snapshot, _registry, table) = table(services);
        // A service in the middle of the table, by its short name (the proxy is in ns-0).
        let i = (services / 2) / 20 * 20;
        let host = format!("svc-{i}:8080");
        let canary = http::Request::get("/api/orders")
            .header("host", host.as_str())
            .header("user-agent", "bench")
            .header("accept", "*/*")
            .header("x-canary", "true")
            .body(())
            .expect("request");
        let plain = http::Request::get("/api/orders")
            .header("host", host.as_str())
            .header("user-agent", "bench")
            .header("accept", "*/*")
            .body(())
            .expect("request");
        group.bench_with_input(
            BenchmarkId::new("header_route", services),
            &canary,
            |b, r| {
                b.iter(|| {
                    black_box(
                        table
                            .find(&RequestView::new(black_box(r), 8080))
                            .is_matched(),
                    )
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("fall_through", services),
            &plain,
            |b, r| {
                b.iter(|| {
                    black_box(
                        table
                            .find(&RequestView::new(black_box(r), 8080))
                            .is_matched(),
                    )
                })
            },
        );
        let mut rng = Random::seeded(1);
        group.bench_with_input(
            BenchmarkId::new("decide_and_select", services),
            &plain,
            |b, r| {
                b.iter(|| {
                    let d = decide(&table, black_box(r), 8080, &mut rng);
                    match d.next {
                        Next::Forward(dest) => {
                            black_box(select(dest, r, 8080, None, &[], &mut rng).map(|s| s.index))
                                .ok()
                        }
                        Next::Answer(_) => None,
                    }
                })
            },
        );
    }
    group.finish();

    let dir = tempfile::tempdir().expect("a temporary folder");
    mesh_benches::generate_config(dir.path(), 10_000).expect("generated config");
    let snapshot = Loader::new([dir.path()]).load().expect("valid config");
    let scope = Scope::new("ns-0");
    let registry = Registry::build(&snapshot, &scope);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("route_table_10000_services", |b| {
        b.iter(|| RouteTable::compile(&snapshot, &registry, &scope).expect("compiles"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
