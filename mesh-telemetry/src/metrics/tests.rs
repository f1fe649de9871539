use super::*;

fn workload(name: &str, app: &str, version: &str) -> Labels<Workload> {
    let labels: BTreeMap<String, String> = [
        ("app".to_owned(), app.to_owned()),
        ("version".to_owned(), version.to_owned()),
    ]
    .into();
    Labels::new(Workload::new(
        Some(name),
        Some("default"),
        &labels,
        Some("spiffe://cluster.local/ns/default/sa/x"),
        Some("Kubernetes"),
    ))
}

fn request(code: u16) -> RequestLabels {
    RequestLabels {
        reporter: Reporter::Source,
        source: workload("productpage-v1", "productpage", "v1"),
        destination: workload("reviews-v2", "reviews", "v2"),
        service: Labels::new(DestinationService::new(
            "reviews.default.svc.cluster.local",
            Some("default"),
        )),
        protocol: RequestProtocol::Http,
        response_code: code,
        grpc_status: None,
        response_flags: "-".into(),
        security: SecurityPolicy::Unknown,
    }
}

fn sample(ms: u64) -> RequestSample {
    RequestSample {
        duration: Duration::from_millis(ms),
        request_bytes: 100,
        response_bytes: 2000,
        trace_id: None,
    }
}

fn render(m: &IstioMetrics) -> String {
    let mut registry = Registry::default();
    m.register(&mut registry);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    out
}

#[test]
fn workload_labels_follow_met_4() {
    // MET-4: app/version from labels, canonical names default to them, revision to `latest`.
    let none = BTreeMap::new();
    let w = Workload::new(None, Some("prod"), &none, None, None);
    assert_eq!(w.workload, "unknown");
    assert_eq!(w.namespace, "prod");
    assert_eq!(w.principal, "unknown");
    assert_eq!(w.canonical_service, "unknown");
    assert_eq!(w.canonical_revision, "latest");
    assert_eq!(w.cluster, "unknown");

    let k8s: BTreeMap<String, String> = [
        ("app.kubernetes.io/name".to_owned(), "ratings".to_owned()),
        ("app.kubernetes.io/version".to_owned(), "v3".to_owned()),
    ]
    .into();
    let w = Workload::new(None, Some("prod"), &k8s, None, Some("east"));
    assert_eq!(
        w.workload, "ratings",
        "the app label names a nameless workload"
    );
    assert_eq!((w.app.as_str(), w.version.as_str()), ("ratings", "v3"));
    assert_eq!(w.canonical_service, "ratings");
    assert_eq!(w.canonical_revision, "v3");
    assert_eq!(w.cluster, "east");

    let canonical: BTreeMap<String, String> = [
        ("app".to_owned(), "ratings".to_owned()),
        (
            "service.istio.io/canonical-name".to_owned(),
            "ratings-svc".to_owned(),
        ),
        (
            "service.istio.io/canonical-revision".to_owned(),
            "r7".to_owned(),
        ),
    ]
    .into();
    let w = Workload::new(Some("ratings-v1"), Some("prod"), &canonical, None, None);
    assert_eq!(w.workload, "ratings-v1");
    assert_eq!(w.canonical_service, "ratings-svc");
    assert_eq!(w.canonical_revision, "r7");
    let m = w.with_principal(Some("spiffe://td/ns/prod/sa/ratings"));
    assert_eq!(m.principal, "spiffe://td/ns/prod/sa/ratings");
    assert_eq!(m.with_principal(None).principal, "unknown");
}

#[test]
fn service_name_is_the_first_label_of_kubernetes_hosts() {
    // MET-4.
    let rows = [
        ("reviews.prod.svc.cluster.local", "reviews"),
        ("reviews.prod.svc.corp.example", "reviews"),
        ("api.example.com", "api.example.com"),
        ("payments.internal", "payments.internal"),
        ("a.b.svc", "a.b.svc"),
    ];
    for (host, name) in rows {
        assert_eq!(DestinationService::new(host, None).name, name, "{host}");
    }
    assert_eq!(DestinationService::new("x", None).namespace, "unknown");
}

#[test]
fn encodes_every_label_in_istios_order() {
    // MET-3: 25 labels, always present.
    let m = IstioMetrics::new();
    let mut r = request(503);
    r.grpc_status = None;
    r.response_flags = "UF,URX".into();
    m.record(&r, &sample(3));
    let text = render(&m);
    let line = text
        .lines()
        .find(|l| l.starts_with("istio_requests_total{"))
        .unwrap();
    let names: Vec<&str> = line
        .trim_start_matches("istio_requests_total{")
        .split("\",")
        .map(|kv| kv.split('=').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "reporter",
            "source_workload",
            "source_workload_namespace",
            "source_principal",
            "source_app",
            "source_version",
            "source_canonical_service",
            "source_canonical_revision",
            "source_cluster",
            "destination_workload",
            "destination_workload_namespace",
            "destination_principal",
            "destination_app",
            "destination_version",
            "destination_service",
            "destination_service_name",
            "destination_service_namespace",
            "destination_canonical_service",
            "destination_canonical_revision",
            "destination_cluster",
            "request_protocol",
            "response_code",
            "grpc_response_status",
            "response_flags",
            "connection_security_policy",
        ]
    );
    assert!(line.contains(r#"response_code="503""#), "{line}");
    assert!(line.contains(r#"grpc_response_status="""#), "{line}");
    assert!(line.contains(r#"response_flags="UF,URX""#), "{line}");
    assert!(
        line.contains(r#"connection_security_policy="unknown""#),
        "{line}"
    );
    assert!(line.ends_with("} 1"), "{line}");
}

#[test]
fn equal_labels_share_a_series_and_codes_split_them() {
    let m = IstioMetrics::new();
    for _ in 0..3 {
        // Built anew each time (other Arcs): equal values still find the same series.
        m.record(&request(200), &sample(2));
    }
    m.record(&request(500), &sample(2));
    assert_eq!(m.series_count(), 2);
    let text = render(&m);
    let count = |code: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("istio_requests_total{")
                    && l.contains(&format!("response_code=\"{code}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .to_owned()
    };
    assert_eq!(count("200"), "3");
    assert_eq!(count("500"), "1");
}

#[test]
fn histograms_use_istios_buckets() {
    // MET-5.
    let m = IstioMetrics::new();
    m.record(&request(200), &sample(7));
    let text = render(&m);
    let les: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("istio_request_duration_milliseconds_bucket{"))
        .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
        .collect();
    assert_eq!(
        les,
        [
            "0.5",
            "1.0",
            "5.0",
            "10.0",
            "25.0",
            "50.0",
            "100.0",
            "250.0",
            "500.0",
            "1000.0",
            "2500.0",
            "5000.0",
            "10000.0",
            "30000.0",
            "60000.0",
            "300000.0",
            "600000.0",
            "1800000.0",
            "3600000.0",
            "+Inf"
        ]
    );
    let bucket = |name: &str, le: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(&format!("{name}_bucket{{")) && l.contains(&format!("le=\"{le}\""))
            })
            .and_then(|l| l.split(' ').nth(1))
            .unwrap()
            .to_owned()
    };
    assert_eq!(bucket("istio_request_duration_milliseconds", "5.0"), "0");
    assert_eq!(bucket("istio_request_duration_milliseconds", "10.0"), "1");
    assert_eq!(bucket("istio_request_bytes", "100.0"), "1");
    assert_eq!(bucket("istio_response_bytes", "1000.0"), "0");
    assert_eq!(bucket("istio_response_bytes", "2500.0"), "1");
}

#[test]
fn sampled_requests_leave_a_trace_exemplar() {
    let m = IstioMetrics::new();
    let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    m.record(
        &request(200),
        &RequestSample {
            trace_id: Some(trace),
            ..sample(30)
        },
    );
    let text = render(&m);
    let line = text
        .lines()
        .find(|l| l.contains("le=\"50.0\"") && l.starts_with("istio_request_duration"))
        .unwrap();
    assert!(
        line.contains(r#"# {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 30.0"#),
        "{line}"
    );
    // The Prometheus text format has no exemplars.
    let plain = to_prometheus_text(&text);
    assert!(!plain.contains("trace_id"), "{plain}");
    assert!(!plain.contains("# EOF"));
}

#[test]
fn tcp_connections_count_bytes_and_closes() {
    let m = IstioMetrics::new();
    let labels = TcpLabels {
        reporter: Reporter::Destination,
        source: Labels::new(Workload::unknown()),
        destination: workload("db", "db", "v1"),
        service: Labels::new(DestinationService::new(
            "db.default.svc.cluster.local",
            None,
        )),
        response_flags: "-".into(),
        security: SecurityPolicy::MutualTls,
    };
    let c = m.tcp_open(&labels);
    c.received(10);
    c.sent(25);
    let open = render(&m);
    let value = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(
        value(&open, "istio_tcp_connections_opened_total").unwrap(),
        "1"
    );
    assert_eq!(
        value(&open, "istio_tcp_connections_closed_total").unwrap(),
        "0"
    );
    drop(c);
    let closed = render(&m);
    assert_eq!(
        value(&closed, "istio_tcp_connections_closed_total").unwrap(),
        "1"
    );
    assert_eq!(
        value(&closed, "istio_tcp_received_bytes_total").unwrap(),
        "10"
    );
    assert_eq!(value(&closed, "istio_tcp_sent_bytes_total").unwrap(), "25");
    let line = closed
        .lines()
        .find(|l| l.starts_with("istio_tcp_sent_bytes_total{"))
        .unwrap();
    assert!(!line.contains("request_protocol"), "{line}");
    assert!(!line.contains("response_code"), "{line}");
    assert!(line.contains(r#"connection_security_policy="mutual_tls""#));
    // No HTTP series yet: those families are not written at all.
    assert!(!closed.contains("istio_requests_total"));
}

#[test]
fn prometheus_text_names_counters_with_total() {
    let m = IstioMetrics::new();
    m.record(&request(200), &sample(1));
    let plain = to_prometheus_text(&render(&m));
    assert!(
        plain.contains("# TYPE istio_requests_total counter\n"),
        "{plain}"
    );
    assert!(
        plain.contains("# HELP istio_requests_total HTTP"),
        "{plain}"
    );
    assert!(plain.contains("# TYPE istio_request_bytes histogram\n"));
    assert!(plain.ends_with('\n'));
}

#[test]
fn exemplars_are_cut_outside_label_values_only() {
    let rows = [
        ("a 1", "a 1"),
        ("a{b=\"x\"} 2 # {trace_id=\"t\"} 1.0", "a{b=\"x\"} 2"),
        ("a{b=\"x # {y}\"} 2", "a{b=\"x # {y}\"} 2"),
        ("a{b=\"q\\\"#\"} 3 # {t=\"1\"} 1", "a{b=\"q\\\"#\"} 3"),
    ];
    for (line, want) in rows {
        assert_eq!(strip_exemplar(line), want, "{line}");
    }
}

#[test]
fn small_numbers_render_without_allocating() {
    for v in [0u16, 7, 10, 200, 503, 65535] {
        assert_eq!(itoa_u16(v).as_str(), v.to_string());
    }
}
