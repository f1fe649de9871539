#![allow(
    clippy::field_reassign_with_default,
    reason = "built the way users outside the crate must build #[non_exhaustive] types"
)]

use super::*;
use crate::model::{AnyResource, Kind, ObjectMeta, WorkloadSelector};

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
