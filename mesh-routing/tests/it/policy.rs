//! Effective DestinationRule policy per cluster (SEMANTICS DR-1..DR-4) and balancing
//! (DR-6..DR-9), seen through the cluster routing picks.

use std::collections::HashSet;

use mesh_core::model::SimpleLb;
use mesh_core::random::Random;
use mesh_core::traffic_policy::EffectivePolicy;
use mesh_routing::balance::BalancerKind;
use mesh_routing::decide::{Next, decide, select};

use crate::harness::{Expect::*, Mesh, case, get};

const POLICY: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  - {number: 9443, name: http-alt, protocol: HTTP}
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9081, http-alt: 9441}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: 9082, http-alt: 9442}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: prod}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 10}, http: {http2MaxRequests: 5}}
    portLevelSettings:
    - port: {number: 9443}
      loadBalancer: {simple: RANDOM}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool: {http: {http2MaxRequests: 50}}
  - name: all
    labels: {}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
  - name: v2-ports
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: LEAST_REQUEST}
      portLevelSettings:
      - port: {number: 9443}
        connectionPool: {http: {http2MaxRequests: 7}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /v1}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /v2}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /all}}]
    route: [{destination: {host: reviews, subset: all}}]
  - match: [{uri: {prefix: /ports}}]
    route: [{destination: {host: reviews, subset: v2-ports}}]
  - route: [{destination: {host: reviews}}]
"#;

fn lb(p: &EffectivePolicy) -> Option<SimpleLb> {
    p.load_balancer.as_ref().and_then(|l| l.simple)
}

fn max_connections(p: &EffectivePolicy) -> Option<i32> {
    p.connection_pool
        .as_ref()
        .and_then(|c| c.tcp.as_ref())
        .map(|t| t.max_connections)
}

fn http2_max_requests(p: &EffectivePolicy) -> Option<i32> {
    p.connection_pool
        .as_ref()
        .and_then(|c| c.http.as_ref())
        .map(|h| h.http2_max_requests)
}

#[test]
fn subset_and_port_policies() {
    let mesh = Mesh::new(POLICY, "prod");
    mesh.check(&[
        // SEMANTICS DR-1: a subset is the endpoints carrying its labels.
        case(
            "DR-1",
            get("reviews:9080", "/v1"),
            &[
                Cluster("outbound|9080|v1|reviews.prod.svc.cluster.local"),
                Endpoint(9081),
            ],
        ),
        // SEMANTICS DR-3: a subset without a policy inherits every top-level block.
        case(
            "DR-3",
            get("reviews:9080", "/v1"),
            &[
                Balancer(BalancerKind::RoundRobin),
                Policy("top-level pool", |p| {
                    max_connections(p) == Some(10) && http2_max_requests(p) == Some(5)
                }),
            ],
        ),
        // SEMANTICS DR-3 (pitfall): the subset's connectionPool replaces the top-level one
        // whole: http2MaxRequests 50, maxConnections unset (not 10); loadBalancer inherited.
        case(
            "DR-3",
            get("reviews:9080", "/v2"),
            &[
                Endpoint(9082),
                Balancer(BalancerKind::RoundRobin),
                Policy("subset pool only", |p| {
                    http2_max_requests(p) == Some(50) && max_connections(p).is_none()
                }),
            ],
        ),
        // SEMANTICS DR-2 (pitfall): the subset policy applies only when a route names it;
        // without a subset the top-level policy, even though every endpoint is in `all`.
        case(
            "DR-2",
            get("reviews:9080", "/all"),
            &[Balancer(BalancerKind::Random)],
        ),
        case(
            "DR-2",
            get("reviews:9080", "/"),
            &[
                Cluster("outbound|9080||reviews.prod.svc.cluster.local"),
                Balancer(BalancerKind::RoundRobin),
                Policy("top level", |p| {
                    lb(p) == Some(SimpleLb::RoundRobin) && max_connections(p) == Some(10)
                }),
            ],
        ),
        // SEMANTICS DR-4 (pitfall): a top-level port entry replaces all four blocks: the
        // connectionPool is unset on 9443, not inherited.
        case(
            "DR-4",
            get("reviews:9443", "/"),
            &[
                Cluster("outbound|9443||reviews.prod.svc.cluster.local"),
                Balancer(BalancerKind::Random),
                Policy("port-level, pool unset", |p| {
                    lb(p) == Some(SimpleLb::Random) && p.connection_pool.is_none()
                }),
            ],
        ),
        // SEMANTICS DR-4: top → top port → subset (pool) → on 9443 the subset v2 sets its
        // own pool over the port step's empty one.
        case(
            "DR-4",
            get("reviews:9443", "/v2"),
            &[
                Endpoint(9442),
                Balancer(BalancerKind::Random),
                Policy("port lb, subset pool", |p| {
                    lb(p) == Some(SimpleLb::Random) && http2_max_requests(p) == Some(50)
                }),
            ],
        ),
        // SEMANTICS DR-4: the subset's own port entry replaces the four blocks last: its
        // loadBalancer is gone (default LEAST_REQUEST), the pool is the entry's.
        case(
            "DR-4",
            get("reviews:9443", "/ports"),
            &[
                Balancer(BalancerKind::LeastRequest),
                Policy("subset port entry", |p| {
                    p.load_balancer.is_none() && http2_max_requests(p) == Some(7)
                }),
            ],
        ),
        case(
            "DR-4",
            get("reviews:9080", "/ports"),
            &[
                Balancer(BalancerKind::LeastRequest),
                Policy("subset lb, top pool", |p| {
                    lb(p) == Some(SimpleLb::LeastRequest) && max_connections(p) == Some(10)
                }),
            ],
        ),
    ]);
}

#[test]
fn default_balancer_is_least_request() {
    // SEMANTICS DR-6: no DestinationRule → LEAST_REQUEST, and no policy at all.
    let yaml = crate::fixtures::service("plain", "prod", "plain", 80, 7100);
    Mesh::new(&yaml, "prod").check(&[case(
        "DR-6",
        get("plain", "/"),
        &[
            Balancer(BalancerKind::LeastRequest),
            Policy("empty", |p| *p == EffectivePolicy::default()),
        ],
    )]);
}

const HASHED: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cart, namespace: prod}
spec:
  hosts: [cart]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 7201}}
  - {address: 127.0.0.1, ports: {http: 7202}}
  - {address: 127.0.0.1, ports: {http: 7203}}
  - {address: 127.0.0.1, ports: {http: 7204}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: prod}
spec:
  host: cart
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
"#;

#[test]
fn consistent_hash_on_a_header_keeps_a_user_on_one_endpoint() {
    // SEMANTICS DR-9: the same header value → the same endpoint, whatever the random state;
    // different users spread; no header → a random endpoint.
    let mesh = Mesh::new(HASHED, "prod");
    let pick = |user: Option<&str>, seed: u64| {
        let mut b = http::Request::get("/cart").header("host", "cart");
        if let Some(u) = user {
            b = b.header("x-user", u);
        }
        let req = b.body(()).unwrap();
        let mut rng = Random::seeded(seed);
        let d = decide(&mesh.table, &req, 80, &mut rng);
        let Next::Forward(dest) = d.next else {
            panic!("forwarded")
        };
        select(dest, &req, 80, None, &[], &mut rng)
            .unwrap()
            .addr
            .port()
    };
    let mut used = HashSet::new();
    for user in 0..64 {
        let user = format!("user-{user}");
        let first = pick(Some(&user), 1);
        for seed in 2..20 {
            assert_eq!(pick(Some(&user), seed), first, "{user}");
        }
        used.insert(first);
    }
    assert!(used.len() >= 3, "64 users on {used:?}");
    let anonymous: HashSet<u16> = (0..200).map(|seed| pick(None, seed)).collect();
    assert!(anonymous.len() >= 3, "no header → random: {anonymous:?}");
}
