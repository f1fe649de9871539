//! One compiled match block (`uri: {prefix: /api}` AND `headers: {x-canary: {exact: "true"}}`)
//! against a request with a dozen headers: building the `RequestView` and matching, for a
//! request that matches and for one that fails on the header.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_core::model::{HttpMatchRequest, Location, StringMatch};
use mesh_routing::matcher::{CompileContext, MatchBlock, ProxyIdentity, RequestView};

fn request(canary: &str) -> http::Request<()> {
    let mut b = http::Request::get("http://reviews.default:9080/api/v1/reviews/42?page=2");
    for (name, value) in [
        ("user-agent", "bench/1.0"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip"),
        ("x-request-id", "5f1c3b8e-1f1e-4a8c-9d0e-3a7a0f4c2b11"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("x-forwarded-proto", "http"),
        ("cookie", "session=abc123"),
        ("x-b3-sampled", "1"),
        ("content-type", "application/json"),
        ("authorization", "Bearer token"),
        ("x-canary", canary),
    ] {
        b = b.header(name, value);
    }
    b.body(()).expect("a valid request")
}

fn bench(c: &mut Criterion) {
    let mut m = HttpMatchRequest::default();
    m.uri = Some(StringMatch::Prefix("/api".into()));
    m.headers
        .insert("x-canary".into(), StringMatch::Exact("true".into()));
    let location = Location::default();
    let ctx = CompileContext {
        location: &location,
        resource: "VirtualService default/reviews",
    };
    let labels = BTreeMap::new();
    let proxy = ProxyIdentity {
        namespace: "default",
        labels: &labels,
    };
    let block = MatchBlock::compile(&m, &proxy, &ctx)
        .expect("valid block")
        .expect("applies to the proxy");

    let hit = request("true");
    let miss = request("false");
    let mut group = c.benchmark_group("matcher");
    group.bench_function("header_prefix_match", |b| {
        b.iter(|| block.matches(&RequestView::new(black_box(&hit), 9080)))
    });
    group.bench_function("header_prefix_mismatch", |b| {
        b.iter(|| block.matches(&RequestView::new(black_box(&miss), 9080)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
