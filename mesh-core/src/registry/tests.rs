#![allow(
    clippy::field_reassign_with_default,
    reason = "built the way users outside the crate must build #[non_exhaustive] types"
)]

use super::*;
use crate::model::{AnyResource, Kind, ObjectMeta, WorkloadEntry, WorkloadSelector};

fn port(number: u32, name: &str, target: Option<u32>) -> ServicePort {
    let mut p = ServicePort::default();
    p.number = number;
    p.name = name.into();
    p.target_port = target;
    p
}

fn we(addr: &str, labels: &[(&str, &str)], ports: &[(&str, u32)]) -> WorkloadEntry {
    let mut w = WorkloadEntry::default();
    w.address = addr.into();
    w.labels = labels
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    w.ports = ports.iter().map(|(k, v)| ((*k).into(), *v)).collect();
    w
}

fn se_res(name: &str, ns: &str, spec: ServiceEntry) -> AnyResource {
    AnyResource::ServiceEntry(Box::new(Resource::new(
        Kind::ServiceEntry,
        ObjectMeta::new(name, ns),
        spec,
    )))
}

fn we_res(name: &str, ns: &str, spec: WorkloadEntry) -> AnyResource {
    AnyResource::WorkloadEntry(Box::new(Resource::new(
        Kind::WorkloadEntry,
        ObjectMeta::new(name, ns),
        spec,
    )))
}

fn static_se(
    hosts: &[&str],
    ports: Vec<ServicePort>,
    endpoints: Vec<WorkloadEntry>,
) -> ServiceEntry {
    let mut se = ServiceEntry::default();
    se.hosts = hosts.iter().map(|h| (*h).into()).collect();
    se.resolution = Resolution::Static;
    se.ports = ports;
    se.endpoints = endpoints;
    se
}

#[test]
fn endpoint_port_map_beats_target_port() {
    // SEMANTICS SE-4 (pitfall)
    let se = static_se(
        &["api.example.com"],
        vec![port(80, "http", Some(8080))],
        vec![
            we("10.0.0.1", &[], &[]),
            we("10.0.0.2", &[], &[("http", 9090)]),
        ],
    );
    let reg = Registry::build(
        &Snapshot::new(vec![se_res("api", "default", se)]),
        &Scope::new("default"),
    );
    let set = reg
        .lookup("api.example.com", "default")
        .unwrap()
        .cluster(80)
        .unwrap()
        .endpoints();
    let addrs: Vec<String> = set.endpoints().iter().map(|e| e.addr.to_string()).collect();
    assert_eq!(addrs, ["10.0.0.1:8080", "10.0.0.2:9090"]);
}

#[test]
fn workload_selector_picks_entries_of_the_same_namespace() {
    // SEMANTICS SE-5
    let mut se = static_se(
        &["orders.prod.svc.cluster.local"],
        vec![port(8080, "http", None)],
        vec![],
    );
    se.workload_selector = Some({
        let mut s = WorkloadSelector::default();
        s.labels.insert("app".into(), "orders".into());
        s
    });
    se.location = ServiceLocation::MeshInternal;
    let mut v1 = we(
        "127.0.0.1",
        &[("app", "orders"), ("version", "v1")],
        &[("http", 18081)],
    );
    v1.service_account = "orders-sa".into();
    let snapshot = Snapshot::new(vec![
        se_res("orders", "prod", se),
        we_res("v1", "prod", v1),
        we_res(
            "v2",
            "prod",
            we("127.0.0.1", &[("app", "orders")], &[("http", 18082)]),
        ),
        we_res(
            "other-ns",
            "dev",
            we("127.0.0.1", &[("app", "orders")], &[("http", 18083)]),
        ),
        we_res(
            "other-app",
            "prod",
            we("127.0.0.1", &[("app", "x")], &[("http", 18084)]),
        ),
    ]);
    let reg = Registry::build(&snapshot, &Scope::new("prod"));
    let set = reg
        .lookup("orders", "prod")
        .unwrap()
        .cluster(8080)
        .unwrap()
        .endpoints();
    let ports: Vec<u16> = set.endpoints().iter().map(|e| e.addr.port()).collect();
    assert_eq!(ports, [18081, 18082]);
    assert_eq!(
        set.endpoint(0).spiffe_id("cluster.local").as_deref(),
        Some("spiffe://cluster.local/ns/prod/sa/orders-sa")
    );
    // SEMANTICS SE-6: no serviceAccount → no identity, not sa/default.
    assert_eq!(set.endpoint(1).spiffe_id("cluster.local"), None);
    // MET-4: a selected WorkloadEntry's name labels its endpoint's metrics.
    assert_eq!(set.endpoint(0).workload.as_deref(), Some("v1"));
}

#[test]
fn lookup_follows_istio_host_rules() {
    let snapshot = Snapshot::new(vec![
        se_res(
            "reviews",
            "prod",
            static_se(&["reviews"], vec![port(9080, "http", None)], vec![]),
        ),
        se_res("wild", "prod", {
            let mut se = static_se(&["*.example.com"], vec![port(80, "http", None)], vec![]);
            se.resolution = Resolution::None;
            se
        }),
        se_res("narrow", "prod", {
            let mut se = static_se(&["*.api.example.com"], vec![port(80, "http", None)], vec![]);
            se.resolution = Resolution::None;
            se
        }),
        se_res("exact", "prod", {
            let mut se = static_se(&["x.api.example.com"], vec![port(80, "http", None)], vec![]);
            se.addresses = vec!["240.0.0.1".into()];
            se
        }),
    ]);
    let reg = Registry::build(&snapshot, &Scope::new("prod"));
    // SEMANTICS HOST-1: the SE's short host is in its own namespace.
    assert_eq!(
        reg.lookup("reviews.prod.svc.cluster.local", "x")
            .unwrap()
            .host,
        "reviews.prod.svc.cluster.local"
    );
    // SEMANTICS HOST-3 (pitfall): bare name from another namespace does not reach it.
    assert!(reg.lookup("reviews", "other").is_none());
    assert!(reg.lookup("reviews", "prod").is_some());
    assert!(reg.lookup("reviews.prod:9080", "other").is_some());
    // SEMANTICS HOST-5: exact beats wildcard; the most specific wildcard wins.
    assert_eq!(
        reg.lookup("x.api.example.com", "prod").unwrap().name,
        "exact"
    );
    assert_eq!(
        reg.lookup("y.api.example.com", "prod").unwrap().name,
        "narrow"
    );
    assert_eq!(reg.lookup("y.example.com", "prod").unwrap().name, "wild");
    assert!(reg.lookup("example.com", "prod").is_none());
    // SEMANTICS HOST-7: an IP literal matching `addresses`.
    assert_eq!(reg.lookup("240.0.0.1:80", "prod").unwrap().name, "exact");
    assert!(
        reg.lookup("y.example.com", "prod")
            .unwrap()
            .cluster(80)
            .unwrap()
            .is_passthrough()
    );
}

#[test]
fn export_to_hides_services() {
    // SEMANTICS HOST-8
    assert!(is_exported(&[], "a", "b"));
    assert!(is_exported(&["*".into()], "a", "b"));
    assert!(is_exported(&[".".into()], "a", "a"));
    assert!(!is_exported(&[".".into()], "a", "b"));
    assert!(!is_exported(&["~".into()], "a", "a"));
    assert!(is_exported(&["b".into()], "a", "b"));
    let mut se = static_se(&["api.example.com"], vec![port(80, "http", None)], vec![]);
    se.export_to = vec![".".into()];
    let snapshot = Snapshot::new(vec![se_res("api", "a", se)]);
    assert!(
        Registry::build(&snapshot, &Scope::new("a"))
            .lookup("api.example.com", "a")
            .is_some()
    );
    assert!(
        Registry::build(&snapshot, &Scope::new("b"))
            .lookup("api.example.com", "b")
            .is_none()
    );
}

#[test]
fn oldest_service_entry_wins_a_host() {
    // SEMANTICS SE-8
    let mut newer = static_se(&["api.example.com"], vec![port(80, "http", None)], vec![]);
    newer.resolution = Resolution::None;
    let older = static_se(&["api.example.com"], vec![port(80, "http", None)], vec![]);
    let mut newer_res = se_res("newer", "default", newer);
    newer_res.metadata_mut().creation_timestamp = Some("2024-02-01T00:00:00Z".into());
    let mut older_res = se_res("older", "default", older);
    older_res.metadata_mut().creation_timestamp = Some("2024-01-01T00:00:00Z".into());
    let reg = Registry::build(
        &Snapshot::new(vec![newer_res, older_res]),
        &Scope::new("default"),
    );
    assert_eq!(
        reg.lookup("api.example.com", "default").unwrap().name,
        "older"
    );
}

#[test]
fn protocol_from_field_or_name() {
    // SEMANTICS SE-7
    assert_eq!(
        Protocol::of_port(&port(1, "http-web", None)),
        Protocol::Http
    );
    assert_eq!(Protocol::of_port(&port(1, "grpc-x", None)), Protocol::Grpc);
    assert_eq!(Protocol::of_port(&port(1, "foo", None)), Protocol::Unknown);
    let mut p = port(1, "foo", None);
    p.protocol = "http2".into();
    assert_eq!(Protocol::of_port(&p), Protocol::Http2);
}

#[test]
fn health_survives_rebuild() {
    // SEMANTICS RELOAD-3
    let se = static_se(
        &["api.example.com"],
        vec![port(80, "http", None)],
        vec![we("10.0.0.1", &[], &[])],
    );
    let snapshot = Snapshot::new(vec![se_res("api", "default", se)]);
    let scope = Scope::new("default");
    let first = Registry::build(&snapshot, &scope);
    let set = first
        .lookup("api.example.com", "default")
        .unwrap()
        .cluster(80)
        .unwrap()
        .endpoints();
    set.stats(0)
        .set_health(crate::endpoint::Health::FailedOutlierCheck);
    let second = Registry::build_from(&snapshot, &scope, Some(&first));
    let set = second
        .lookup("api.example.com", "default")
        .unwrap()
        .cluster(80)
        .unwrap()
        .endpoints();
    assert_eq!(set.healthy_count(), 0);
}

#[tokio::test]
async fn dns_resolution_resolves_localhost() {
    // SEMANTICS SE-3: DNS endpoints, resolved off the request path.
    let mut se = static_se(
        &["svc.example.com"],
        vec![port(80, "http", None)],
        vec![we("localhost", &[], &[("http", 8081)])],
    );
    se.resolution = Resolution::Dns;
    let reg = Registry::build(
        &Snapshot::new(vec![se_res("svc", "default", se)]),
        &Scope::new("default"),
    );
    let cluster = reg
        .lookup("svc.example.com", "default")
        .unwrap()
        .cluster(80)
        .unwrap();
    assert!(cluster.endpoints().is_empty());
    cluster.refresh_dns().await;
    let set = cluster.endpoints();
    assert!(!set.is_empty());
    assert!(
        set.endpoints()
            .iter()
            .all(|e| e.addr.ip().is_loopback() && e.addr.port() == 8081)
    );
}

#[test]
fn equal_timestamps_break_ties_by_namespace_then_name() {
    // SEMANTICS HOST-9 order, applied to ServiceEntries by SE-8.
    let mk = |name: &str, ns: &str| {
        let mut r = se_res(
            name,
            ns,
            static_se(&["api.example.com"], vec![port(80, "http", None)], vec![]),
        );
        r.metadata_mut().creation_timestamp = Some("2024-01-01T00:00:00Z".into());
        r
    };
    let reg = Registry::build(
        &Snapshot::new(vec![mk("b", "default"), mk("a", "default")]),
        &Scope::new("default"),
    );
    assert_eq!(reg.lookup("api.example.com", "default").unwrap().name, "a");
}

// ---------------------------------------------------------------- DestinationRule subsets

/// DestinationRules from YAML (namespace `prod` unless a document says otherwise).
fn drs(yaml: &str) -> Vec<AnyResource> {
    crate::loader::parse_str(yaml, std::path::Path::new("dr.yaml"), "prod").expect("YAML loads")
}

const REVIEWS_DR: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    portLevelSettings:
    - port: {number: 9081}
      connectionPool: {tcp: {maxConnections: 3}}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: RANDOM}}
  - name: all
"#;

fn reviews_snapshot(dr: &str) -> Snapshot {
    let se = static_se(
        &["reviews"],
        vec![port(9080, "http", None), port(9081, "grpc", None)],
        vec![
            we("10.0.0.1", &[("version", "v1")], &[]),
            we("10.0.0.2", &[("version", "v2")], &[]),
            we("10.0.0.3", &[("version", "v2"), ("track", "canary")], &[]),
        ],
    );
    let mut resources = vec![se_res("reviews", "prod", se)];
    resources.extend(drs(dr));
    Snapshot::new(resources)
}

fn addrs(cluster: &Cluster) -> Vec<String> {
    cluster
        .endpoints()
        .endpoints()
        .iter()
        .map(|e| e.addr.to_string())
        .collect()
}

#[test]
fn subset_clusters_hold_the_endpoints_with_the_subset_labels() {
    // SEMANTICS DR-1: superset match, overlapping subsets, no labels = every endpoint.
    let reg = Registry::build(&reviews_snapshot(REVIEWS_DR), &Scope::new("prod"));
    let service = reg.lookup("reviews", "prod").unwrap();
    assert_eq!(service.namespace(), "prod");
    let v2 = service.subset_cluster(9080, "v2").unwrap();
    assert_eq!(v2.name(), "outbound|9080|v2|reviews.prod.svc.cluster.local");
    assert_eq!(v2.subset(), Some("v2"));
    assert_eq!(v2.subset_labels()["version"], "v2");
    assert_eq!(v2.protocol(), Protocol::Http);
    assert_eq!(addrs(v2), ["10.0.0.2:9080", "10.0.0.3:9080"]);
    assert_eq!(
        addrs(service.subset_cluster(9081, "v1").unwrap()),
        ["10.0.0.1:9081"]
    );
    assert_eq!(addrs(service.subset_cluster(9080, "all").unwrap()).len(), 3);
    assert!(service.subset_cluster(9080, "v3").is_none());
    assert!(service.subset_cluster(1, "v1").is_none());
    // The base cluster stays the port's cluster.
    let base = service.cluster(9080).unwrap();
    assert_eq!(base.subset(), None);
    assert_eq!(addrs(base).len(), 3);
    // Registry::clusters lists every cluster: 2 ports × (base + 3 subsets).
    let names: Vec<&str> = reg.clusters().map(|c| c.name()).collect();
    assert_eq!(names.len(), 8);
    assert!(names.contains(&"outbound|9081|all|reviews.prod.svc.cluster.local"));
    assert_eq!(service.subset_clusters().len(), 6);
    assert!(
        reg.destination_rules()
            .lookup(base.host(), "prod")
            .is_some()
    );
}

#[test]
fn each_cluster_carries_its_effective_policy() {
    // SEMANTICS DR-2: the base cluster uses the top-level policy; DR-3: the subset's block
    // replaces it; DR-4: the port-level entry replaces the four blocks on its port.
    use crate::model::SimpleLb;
    let reg = Registry::build(&reviews_snapshot(REVIEWS_DR), &Scope::new("prod"));
    let service = reg.lookup("reviews", "prod").unwrap();
    let lb = |c: &Cluster| c.policy().load_balancer.as_ref().and_then(|lb| lb.simple);
    assert_eq!(
        lb(service.cluster(9080).unwrap()),
        Some(SimpleLb::RoundRobin)
    );
    assert_eq!(lb(service.cluster(9081).unwrap()), None);
    assert!(
        service
            .cluster(9081)
            .unwrap()
            .policy()
            .connection_pool
            .is_some()
    );
    assert_eq!(
        lb(service.subset_cluster(9080, "v1").unwrap()),
        Some(SimpleLb::RoundRobin)
    );
    assert_eq!(
        lb(service.subset_cluster(9080, "v2").unwrap()),
        Some(SimpleLb::Random)
    );
    assert_eq!(
        lb(service.subset_cluster(9081, "v2").unwrap()),
        Some(SimpleLb::Random)
    );
    let rule = reg
        .destination_rules()
        .lookup("reviews.prod.svc.cluster.local", "prod")
        .unwrap();
    for cluster in reg.clusters() {
        assert_eq!(
            **cluster.policy(),
            rule.effective(cluster.subset(), cluster.port()),
            "{}",
            cluster.name()
        );
    }
    // Without a rule every block is unset.
    let bare = Registry::build(&reviews_snapshot(""), &Scope::new("prod"));
    let base = bare
        .lookup("reviews", "prod")
        .unwrap()
        .cluster(9080)
        .unwrap();
    assert_eq!(
        **base.policy(),
        crate::traffic_policy::EffectivePolicy::default()
    );
    assert_eq!(bare.clusters().count(), 2);
}

#[test]
fn subset_clusters_keep_their_own_state_across_rebuilds() {
    // SEMANTICS RELOAD-3, DR-13: state is per cluster (name), carried over by name.
    use crate::endpoint::Health;
    let snapshot = reviews_snapshot(REVIEWS_DR);
    let scope = Scope::new("prod");
    let first = Registry::build(&snapshot, &scope);
    let v2 = first
        .lookup("reviews", "prod")
        .unwrap()
        .subset_cluster(9080, "v2")
        .unwrap()
        .endpoints();
    v2.stats(0).set_health(Health::FailedOutlierCheck);
    drop(v2.stats(0).start_request());
    // The base cluster's endpoint for the same address is untouched.
    let base = first
        .lookup("reviews", "prod")
        .unwrap()
        .cluster(9080)
        .unwrap()
        .endpoints();
    assert_eq!(base.healthy_count(), 3);

    let second = Registry::build_from(&snapshot, &scope, Some(&first));
    let service = second.lookup("reviews", "prod").unwrap();
    let v2 = service.subset_cluster(9080, "v2").unwrap().endpoints();
    assert_eq!(v2.stats(0).health(), Health::FailedOutlierCheck);
    assert_eq!(v2.stats(0).rq_total(), 1);
    assert_eq!(
        service
            .subset_cluster(9080, "all")
            .unwrap()
            .endpoints()
            .healthy_count(),
        3
    );
    assert_eq!(
        service.cluster(9080).unwrap().endpoints().healthy_count(),
        3
    );
}

#[test]
fn rules_for_unknown_hosts_are_unused_and_selectors_follow_the_scope() {
    // SEMANTICS DR-5: a rule whose host matches no service does nothing.
    let unused = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec: {host: ratings, subsets: [{name: v1, labels: {version: v1}}]}
"#;
    let reg = Registry::build(&reviews_snapshot(unused), &Scope::new("prod"));
    assert_eq!(reg.clusters().count(), 2);
    assert!(
        reg.destination_rules()
            .lookup("ratings.prod.svc.cluster.local", "prod")
            .is_some()
    );
    // SEMANTICS HOST-12: a workloadSelector applies only to proxies with the labels.
    let selected = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  workloadSelector: {matchLabels: {app: web}}
  subsets: [{name: v1, labels: {version: v1}}]
"#;
    let snapshot = reviews_snapshot(selected);
    let plain = Registry::build(&snapshot, &Scope::new("prod"));
    assert_eq!(plain.clusters().count(), 2);
    let web = Registry::build(&snapshot, &Scope::new("prod").labels([("app", "web")]));
    assert_eq!(web.clusters().count(), 4);
}

#[tokio::test]
async fn dns_refresh_updates_subset_clusters_from_one_answer() {
    // SEMANTICS SE-3, DR-1: subsets re-filtered from the refreshed endpoints, state kept.
    use crate::endpoint::Health;
    let mut se = static_se(
        &["svc.example.com"],
        vec![port(80, "http", None)],
        vec![
            we("localhost", &[("version", "v1")], &[("http", 8081)]),
            we("127.0.0.9", &[("version", "v2")], &[("http", 8082)]),
        ],
    );
    se.resolution = Resolution::Dns;
    let mut resources = vec![se_res("svc", "prod", se)];
    resources.extend(drs(r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc}
spec:
  host: svc.example.com
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"#));
    let reg = Registry::build(&Snapshot::new(resources), &Scope::new("prod"));
    let service = reg.lookup("svc.example.com", "prod").unwrap();
    let base = service.cluster(80).unwrap();
    let (v1, v2) = (
        service.subset_cluster(80, "v1").unwrap(),
        service.subset_cluster(80, "v2").unwrap(),
    );
    assert!(v1.is_dns() && v2.is_dns());
    // IP literals are usable before the first answer.
    assert_eq!(addrs(v2), ["127.0.0.9:8082"]);
    assert!(v1.endpoints().is_empty());
    v2.endpoints()
        .stats(0)
        .set_health(Health::FailedOutlierCheck);

    let subsets = [Arc::downgrade(v1), Arc::downgrade(v2)];
    refresh_port(base, &subsets).await;
    let v1_set = v1.endpoints();
    assert!(!v1_set.is_empty());
    assert!(v1_set.endpoints().iter().all(|e| e.addr.port() == 8081));
    // The IP literal survives the refresh, with its state.
    assert_eq!(addrs(v2), ["127.0.0.9:8082"]);
    assert_eq!(v2.endpoints().stats(0).health(), Health::FailedOutlierCheck);
    assert_eq!(base.endpoints().len(), v1_set.len() + 1);
    // A subset cluster refreshed on its own resolves and filters the same way.
    v1.refresh_dns().await;
    assert_eq!(v1.endpoints().len(), v1_set.len());
}
