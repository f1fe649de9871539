//! Load balancer picks (SEMANTICS DR-6..DR-10) over 10 and 100 healthy endpoints: round
//! robin, least request, random, ring hash and maglev. Target: under 100 ns per pick.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mesh_core::endpoint::{Endpoint, EndpointSet};
use mesh_core::model::{ConsistentHashLb, LoadBalancerSettings, Maglev, RingHash, SimpleLb};
use mesh_core::random::Random;
use mesh_routing::balance::LoadBalancer;

fn endpoints(n: u16) -> Arc<EndpointSet> {
    Arc::new(EndpointSet::new(
        (0..n)
            .map(|i| Endpoint::new(SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 8080))))
            .collect(),
    ))
}

fn policies() -> Vec<(&'static str, LoadBalancerSettings)> {
    let simple = |kind| {
        let mut lb = LoadBalancerSettings::default();
        lb.simple = Some(kind);
        lb
    };
    let hashed = |maglev: bool| {
        let mut ch = ConsistentHashLb::default();
        ch.http_header_name = Some("x-user".into());
        if maglev {
            ch.maglev = Some(Maglev::default());
        } else {
            ch.ring_hash = Some(RingHash::default());
        }
        let mut lb = LoadBalancerSettings::default();
        lb.consistent_hash = Some(ch);
        lb
    };
    vec![
        ("round_robin", simple(SimpleLb::RoundRobin)),
        ("least_request", simple(SimpleLb::LeastRequest)),
        ("random", simple(SimpleLb::Random)),
        ("ring_hash", hashed(false)),
        ("maglev", hashed(true)),
    ]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("balancer_pick");
    for n in [10u16, 100] {
        let set = endpoints(n);
        for (name, policy) in policies() {
            let lb = LoadBalancer::from_policy(Some(&policy), None);
            lb.prepare(&set);
            let hashed = lb.hash_policy().is_some();
            let mut rng = Random::seeded(1);
            // Hashing balancers get a new key each pick (one extra draw, ~1 ns).
            group.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    let hash = hashed.then(|| rng.next_u64());
                    black_box(lb.pick(black_box(&set), hash, &[], &mut rng))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
