//! Model round trips over the example files in tests/data/model.
//!
//! Each file holds full Kubernetes documents that together set every field of one kind. A
//! document's spec must parse from YAML, survive JSON and back unchanged, and keep the values
//! written.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::Path;

use mesh_core::model::{
    AuthorizationAction, AuthorizationPolicy, CaptureMode, ClientTlsMode, DestinationRule,
    Duration, H2UpgradePolicy, HttpBody, Kind, MutualTlsMode, NETWORKING_API_VERSIONS, ObjectMeta,
    OutboundTrafficPolicyMode, PeerAuthentication, Percent, RedirectPortSelection,
    SECURITY_API_VERSIONS, ServerTlsMode, Sidecar, SimpleLb, StringMatch, TlsProtocol,
    UnmatchedPreflights, VirtualService,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A Kubernetes document with a typed spec.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Doc<S> {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: S,
}

fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/model")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of `file`, checked to be of `kind` in an accepted API version.
fn docs<S: DeserializeOwned>(file: &str, kind: Kind) -> Vec<Doc<S>> {
    let docs: Vec<Doc<S>> =
        serde_saphyr::from_multiple(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(!docs.is_empty(), "{file} has no documents");
    for doc in &docs {
        assert_eq!(
            Kind::from_type_meta(&doc.api_version, &doc.kind),
            Some(kind),
            "{file}: {}",
            doc.metadata.name
        );
    }
    docs
}

/// Spec → JSON → spec gives the same value, and the JSON is stable.
fn assert_round_trips<S: Serialize + DeserializeOwned + PartialEq + Debug>(name: &str, spec: &S) {
    let json = serde_json::to_string(spec).expect("a spec serializes");
    let back: S = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}\n{json}"));
    assert_eq!(&back, spec, "{name} changed through JSON:\n{json}");
    assert_eq!(
        serde_json::to_string(&back).expect("a spec serializes"),
        json,
        "{name}: JSON not stable"
    );
}

fn round_trip_file<S: Serialize + DeserializeOwned + PartialEq + Debug>(
    file: &str,
    kind: Kind,
) -> Vec<Doc<S>> {
    let docs = docs::<S>(file, kind);
    for doc in &docs {
        assert_round_trips(&doc.metadata.name, &doc.spec);
    }
    docs
}

fn by_name<'a, S>(docs: &'a [Doc<S>], name: &str) -> &'a S {
    &docs
        .iter()
        .find(|d| d.metadata.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .spec
}

#[test]
fn virtual_service_all_fields() {
    let docs =
        round_trip_file::<VirtualService>("virtual-service-all-fields.yaml", Kind::VirtualService);
    assert_eq!(docs[0].metadata.namespace.as_deref(), Some("bookinfo"));
    assert_eq!(
        docs[1].metadata.creation_timestamp.as_deref(),
        Some("2025-01-02T03:04:05Z")
    );

    let reviews = by_name(&docs, "reviews");
    assert_eq!(
        reviews.hosts,
        ["reviews", "reviews.bookinfo.svc.cluster.local"]
    );
    assert_eq!(reviews.export_to, [".", "istio-system"]);
    let canary = &reviews.http[0];
    let m = &canary.r#match[0];
    assert_eq!(m.uri, Some(StringMatch::Prefix("/reviews/".into())));
    assert_eq!(m.method, Some(StringMatch::Regex("GET|HEAD".into())));
    assert_eq!(m.headers["x-debug"], StringMatch::Any);
    assert_eq!(m.query_params["id"], StringMatch::Regex(r"\d+".into()));
    assert_eq!(m.without_headers["x-legacy-client"], StringMatch::Any);
    assert!(m.ignore_uri_case);
    assert_eq!(m.port, 9080);
    assert_eq!(m.source_labels["version"], "v1");
    assert_eq!(canary.route[0].weight, 90);
    assert_eq!(
        canary.route[0].destination.port.map(|p| p.number),
        Some(9080)
    );
    assert_eq!(canary.timeout, Some(Duration::from_secs(10)));
    let retries = canary.retries.as_ref().unwrap();
    assert_eq!(retries.attempts, 3);
    assert_eq!(retries.backoff, Some(Duration::from_millis(50)));
    assert_eq!(retries.retry_ignore_previous_hosts, Some(false));
    let fault = canary.fault.as_ref().unwrap();
    assert_eq!(fault.abort.as_ref().unwrap().http_status, Some(503));
    assert_eq!(
        fault.delay.as_ref().unwrap().percentage,
        Some(Percent::new(0.5))
    );
    assert_eq!(canary.mirror_percentage, Some(Percent::new(25.5)));
    let cors = canary.cors_policy.as_ref().unwrap();
    assert_eq!(
        cors.allow_origins[1],
        StringMatch::Prefix("https://staging.".into())
    );
    assert_eq!(cors.max_age, Some(Duration::from_secs(86_400)));
    assert_eq!(cors.unmatched_preflights, UnmatchedPreflights::Ignore);
    let headers = canary.headers.as_ref().unwrap().request.as_ref().unwrap();
    assert_eq!(headers.add["x-b3-flags"], "1");
    assert_eq!(reviews.http[1].mirrors.len(), 2);
    assert_eq!(reviews.http[2].mirror_percent, Some(50));
    assert_eq!(
        reviews.http[3].mirror_percent,
        Some(5),
        "mirror_percent alias"
    );

    let edge = by_name(&docs, "edge");
    assert_eq!(edge.http[0].redirect.as_ref().unwrap().port, Some(8443));
    let moved = edge.http[1].redirect.as_ref().unwrap();
    assert_eq!(
        moved.derive_port,
        Some(RedirectPortSelection::FromRequestPort)
    );
    assert_eq!(moved.prefix_rewrite, "/new/");
    let health = edge.http[3].direct_response.as_ref().unwrap();
    assert_eq!(
        health.body.as_ref().map(HttpBody::as_bytes),
        Some(&br#"{"status":"ok"}"#[..])
    );
    assert_eq!(edge.http[4].direct_response.as_ref().unwrap().body, None);
    let rewrite = edge.http[5]
        .rewrite
        .as_ref()
        .unwrap()
        .uri_regex_rewrite
        .as_ref()
        .unwrap();
    assert_eq!(rewrite.rewrite, r"/customprefix\2/\1");
    assert_eq!(
        edge.http[6].delegate.as_ref().unwrap().name,
        "productpage-routes"
    );

    let passthrough = by_name(&docs, "passthrough");
    assert_eq!(passthrough.tls[0].r#match[0].sni_hosts.len(), 2);
    assert_eq!(passthrough.tcp[0].r#match[0].source_subnet, "10.2.0.0/16");
    assert_eq!(passthrough.tcp[0].route[1].weight, 20);
}

#[test]
fn destination_rule_all_fields() {
    let docs = round_trip_file::<DestinationRule>(
        "destination-rule-all-fields.yaml",
        Kind::DestinationRule,
    );
    let reviews = by_name(&docs, "reviews");
    assert_eq!(
        reviews.workload_selector.as_ref().unwrap().match_labels["app"],
        "productpage"
    );
    let policy = reviews.traffic_policy.as_ref().unwrap();
    let lb = policy.load_balancer.as_ref().unwrap();
    assert_eq!(lb.simple, Some(SimpleLb::LeastRequest));
    assert_eq!(
        lb.locality_lb_setting.as_ref().unwrap().distribute[0].to["us-west/zone2/*"],
        20
    );
    assert_eq!(
        lb.warmup.as_ref().unwrap().duration,
        Duration::from_secs(60)
    );
    let pool = policy.connection_pool.as_ref().unwrap();
    let tcp = pool.tcp.as_ref().unwrap();
    assert_eq!(tcp.connect_timeout, Some(Duration::from_millis(30)));
    assert_eq!(tcp.max_connection_duration, Some(Duration::from_secs(1800)));
    let http = pool.http.as_ref().unwrap();
    assert_eq!(http.http1_max_pending_requests, 64);
    assert_eq!(http.h2_upgrade_policy, H2UpgradePolicy::Upgrade);
    let od = policy.outlier_detection.as_ref().unwrap();
    assert_eq!(od.consecutive_5xx_errors, Some(10));
    assert_eq!(od.base_ejection_time, Some(Duration::from_secs(900)));
    assert_eq!(od.outlier_detection_http_error_codes, [500, 503]);
    let tls = policy.tls.as_ref().unwrap();
    assert_eq!(tls.mode, ClientTlsMode::Mutual);
    assert_eq!(tls.insecure_skip_verify, Some(false));
    let port = &policy.port_level_settings[0];
    assert_eq!(port.port.map(|p| p.number), Some(9080));
    let hash = port
        .load_balancer
        .as_ref()
        .unwrap()
        .consistent_hash
        .as_ref()
        .unwrap();
    assert_eq!(hash.http_header_name.as_deref(), Some("x-user"));
    assert_eq!(port.tls.as_ref().unwrap().mode, ClientTlsMode::IstioMutual);
    assert_eq!(policy.retry_budget.as_ref().unwrap().percent, Some(25.0));
    assert_eq!(policy.tunnel.as_ref().unwrap().target_port, 8443);
    let v2 = &reviews.subsets[1];
    assert_eq!(v2.labels["version"], "v2");
    let v2_pool = v2
        .traffic_policy
        .as_ref()
        .unwrap()
        .connection_pool
        .as_ref()
        .unwrap();
    assert_eq!(v2_pool.http.as_ref().unwrap().http2_max_requests, 50);
    assert_eq!(
        v2_pool.tcp, None,
        "a subset block replaces the top-level one whole"
    );

    let productpage = by_name(&docs, "productpage");
    let lb = productpage
        .traffic_policy
        .as_ref()
        .unwrap()
        .load_balancer
        .as_ref()
        .unwrap();
    let cookie = lb
        .consistent_hash
        .as_ref()
        .unwrap()
        .http_cookie
        .as_ref()
        .unwrap();
    assert_eq!(cookie.ttl, Some(Duration::from_secs(3600)));
    assert_eq!(cookie.attributes[1].value, "");
    assert_eq!(
        lb.zone_aware_lb_setting.as_ref().unwrap().min_cluster_size,
        Some(6)
    );
    assert_eq!(lb.warmup_duration_secs, Some(Duration::from_secs(120)));

    let legacy = by_name(&docs, "legacy");
    let lb = legacy
        .traffic_policy
        .as_ref()
        .unwrap()
        .load_balancer
        .as_ref()
        .unwrap();
    assert_eq!(lb.simple, Some(SimpleLb::LeastConn));
}

#[test]
fn sidecar_all_fields() {
    let docs = round_trip_file::<Sidecar>("sidecar-all-fields.yaml", Kind::Sidecar);
    let default = by_name(&docs, "default");
    assert_eq!(default.egress[0].hosts, ["./*", "istio-system/*"]);
    assert_eq!(
        default.outbound_traffic_policy.as_ref().unwrap().mode,
        OutboundTrafficPolicyMode::RegistryOnly
    );

    let ratings = by_name(&docs, "ratings");
    assert_eq!(
        ratings.workload_selector.as_ref().unwrap().labels["app"],
        "ratings"
    );
    let http = &ratings.ingress[0];
    assert_eq!(http.port.number, 9080);
    assert_eq!(http.port.target_port, 9080);
    assert_eq!(http.capture_mode, CaptureMode::Iptables);
    assert_eq!(http.default_endpoint, "127.0.0.1:8080");
    let tls = ratings.ingress[1].tls.as_ref().unwrap();
    assert_eq!(tls.mode, ServerTlsMode::Simple);
    assert_eq!(tls.min_protocol_version, TlsProtocol::TlsV1_2);
    assert_eq!(tls.cipher_suites.len(), 2);
    assert_eq!(
        ratings.ingress[2]
            .tls
            .as_ref()
            .unwrap()
            .credential_names
            .len(),
        2
    );
    assert_eq!(
        ratings.ingress[3]
            .tls
            .as_ref()
            .unwrap()
            .tls_certificates
            .len(),
        2
    );
    assert_eq!(ratings.egress[0].capture_mode, CaptureMode::None);
    assert_eq!(ratings.egress[0].port.as_ref().unwrap().protocol, "MYSQL");
    assert_eq!(ratings.egress[1].port, None);
    let outbound = ratings.outbound_traffic_policy.as_ref().unwrap();
    assert_eq!(outbound.mode, OutboundTrafficPolicyMode::AllowAny);
    assert_eq!(
        outbound
            .egress_proxy
            .as_ref()
            .unwrap()
            .port
            .map(|p| p.number),
        Some(3128)
    );
    let inbound = ratings.inbound_connection_pool.as_ref().unwrap();
    assert_eq!(inbound.tcp.as_ref().unwrap().max_connections, 200);
}

#[test]
fn peer_authentication_all_fields() {
    let docs = round_trip_file::<PeerAuthentication>(
        "peer-authentication-all-fields.yaml",
        Kind::PeerAuthentication,
    );
    assert_eq!(by_name(&docs, "default").mode(), MutualTlsMode::Strict);
    assert_eq!(
        by_name(&docs, "namespace-permissive").mode(),
        MutualTlsMode::Permissive
    );
    let reviews = by_name(&docs, "reviews");
    assert_eq!(reviews.mode(), MutualTlsMode::Unset);
    assert_eq!(reviews.selector.as_ref().unwrap().match_labels.len(), 2);
    let ports: Vec<(u32, MutualTlsMode)> = reviews
        .port_level_mtls
        .iter()
        .map(|(port, m)| (*port, m.mode))
        .collect();
    assert_eq!(
        ports,
        [
            (8080, MutualTlsMode::Disable),
            (9090, MutualTlsMode::Permissive),
            (15021, MutualTlsMode::Unset)
        ]
    );
}

#[test]
fn authorization_policy_all_fields() {
    let docs = round_trip_file::<AuthorizationPolicy>(
        "authorization-policy-all-fields.yaml",
        Kind::AuthorizationPolicy,
    );
    let viewer = by_name(&docs, "reviews-viewer");
    assert_eq!(viewer.action, AuthorizationAction::Allow);
    let rule = &viewer.rules[0];
    let source = rule.from[0].source.as_ref().unwrap();
    assert_eq!(source.principals[1], "*/ns/bookinfo/sa/*");
    assert_eq!(source.not_remote_ip_blocks, ["203.0.113.66"]);
    assert_eq!(source.not_trust_domains, ["partner.example.com"]);
    let accounts = rule.from[1].source.as_ref().unwrap();
    assert_eq!(accounts.service_accounts, ["bookinfo/reviews", "ratings"]);
    let op = rule.to[0].operation.as_ref().unwrap();
    assert_eq!(op.ports, ["9080"]);
    assert_eq!(op.paths[1], "/api/{*}/reviews/{**}");
    assert_eq!(rule.when[0].key, "request.headers[x-api-version]");
    assert_eq!(rule.when[0].not_values, ["v0"]);
    assert!(rule.when[1].values.is_empty());

    assert_eq!(
        by_name(&docs, "deny-plaintext").action,
        AuthorizationAction::Deny
    );
    assert_eq!(
        by_name(&docs, "audit-admin").action,
        AuthorizationAction::Audit
    );
    let custom = by_name(&docs, "ext-authz");
    assert_eq!(custom.action, AuthorizationAction::Custom);
    assert_eq!(
        custom.provider.as_ref().unwrap().name,
        "sample-ext-authz-grpc"
    );
    let gateway = by_name(&docs, "gateway-allow");
    assert_eq!(gateway.target_refs[0].kind, "Gateway");
    assert_eq!(gateway.rules.len(), 1, "`rules: [{{}}]` is one empty rule");
    assert_eq!(
        by_name(&docs, "waypoint-deny")
            .target_ref
            .as_ref()
            .unwrap()
            .name,
        "reviews"
    );
    let nothing = by_name(&docs, "allow-nothing");
    assert!(nothing.rules.is_empty());
    assert_eq!(nothing, &AuthorizationPolicy::default());
}

#[test]
fn example_files_use_every_api_version() {
    let mut seen = BTreeSet::new();
    for (file, kind) in [
        ("virtual-service-all-fields.yaml", Kind::VirtualService),
        ("destination-rule-all-fields.yaml", Kind::DestinationRule),
        ("sidecar-all-fields.yaml", Kind::Sidecar),
        (
            "peer-authentication-all-fields.yaml",
            Kind::PeerAuthentication,
        ),
        (
            "authorization-policy-all-fields.yaml",
            Kind::AuthorizationPolicy,
        ),
    ] {
        for doc in docs::<serde_json::Value>(file, kind) {
            seen.insert(doc.api_version);
        }
    }
    for version in NETWORKING_API_VERSIONS.iter().chain(&SECURITY_API_VERSIONS) {
        assert!(seen.contains(*version), "no example uses {version}");
    }
}

#[test]
fn networking_kinds_accept_all_three_versions() {
    for kind in [Kind::VirtualService, Kind::DestinationRule, Kind::Sidecar] {
        for version in [
            "networking.istio.io/v1",
            "networking.istio.io/v1beta1",
            "networking.istio.io/v1alpha3",
        ] {
            assert_eq!(
                Kind::from_type_meta(version, kind.as_str()),
                Some(kind),
                "{version}"
            );
        }
        assert_eq!(
            Kind::from_type_meta("networking.istio.io/v2", kind.as_str()),
            None
        );
        assert_eq!(
            Kind::from_type_meta("security.istio.io/v1", kind.as_str()),
            None
        );
    }
    for kind in [Kind::PeerAuthentication, Kind::AuthorizationPolicy] {
        for version in ["security.istio.io/v1", "security.istio.io/v1beta1"] {
            assert_eq!(
                Kind::from_type_meta(version, kind.as_str()),
                Some(kind),
                "{version}"
            );
        }
        assert_eq!(
            Kind::from_type_meta("networking.istio.io/v1", kind.as_str()),
            None
        );
    }
}

/// Parses one document and returns the error text.
fn parse_error<S: DeserializeOwned + Debug>(text: &str) -> String {
    match serde_saphyr::from_str::<Doc<S>>(text) {
        Ok(doc) => panic!("parsed although it should not: {:?}", doc.spec),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_fields_are_errors_with_a_location() {
    let err = parse_error::<VirtualService>(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  \
         hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]\n    \
         retires: {attempts: 3}\n",
    );
    assert!(err.contains("unknown field `retires`"), "{err}");
    assert!(
        err.contains("retries"),
        "the message lists the known names: {err}"
    );
    assert!(err.contains("line 8"), "{err}");

    let err = parse_error::<DestinationRule>(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  \
         host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxError: 3}\n",
    );
    assert!(err.contains("consecutive5xxError"), "{err}");

    let err = parse_error::<Sidecar>(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\nspec:\n  \
         egress: [{hosts: ['./*']}]\n  outboundTrafficPolicy: {mode: ALLOW_ANY, egress: {}}\n",
    );
    assert!(err.contains("unknown field `egress`"), "{err}");

    let err = parse_error::<PeerAuthentication>(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec:\n  \
         mtls: {mode: STRICT}\n  portLevelMTLS: {8080: {mode: DISABLE}}\n",
    );
    assert!(err.contains("portLevelMTLS"), "{err}");

    let err = parse_error::<AuthorizationPolicy>(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  \
         rules: [{to: [{operation: {method: [GET]}}]}]\n",
    );
    assert!(err.contains("unknown field `method`"), "{err}");
}

#[test]
fn wrong_shapes_are_errors() {
    // A bare string where Istio wants a StringMatch.
    let err = parse_error::<VirtualService>(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  \
         http: [{match: [{uri: /v2}], route: [{destination: {host: a}}]}]\n",
    );
    assert!(err.contains("string match"), "{err}");
    // Two members of one oneof.
    let err = parse_error::<VirtualService>(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  \
         http: [{match: [{uri: {prefix: /a, regex: /b}}]}]\n",
    );
    assert!(err.contains("cannot both be set"), "{err}");
    // An enum value in the wrong case.
    let err = parse_error::<DestinationRule>(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  \
         host: a\n  trafficPolicy: {tls: {mode: istio_mutual}}\n",
    );
    assert!(err.contains("ISTIO_MUTUAL"), "{err}");
    // A duration without a unit.
    let err = parse_error::<VirtualService>(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  \
         http: [{timeout: 10, route: [{destination: {host: a}}]}]\n",
    );
    assert!(err.contains("needs a unit"), "{err}");
}

#[test]
fn built_in_code_serializes_with_istio_names() {
    let mut vs = VirtualService::default();
    vs.hosts = vec!["reviews".into()];
    let json = serde_json::to_value(&vs).unwrap();
    assert_eq!(json, serde_json::json!({"hosts": ["reviews"]}));

    let dr: DestinationRule = serde_json::from_value(serde_json::json!({
        "host": "reviews",
        "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 1, "interval": "1s"}}
    }))
    .unwrap();
    let json = serde_json::to_value(&dr).unwrap();
    assert_eq!(
        json["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"],
        1
    );
    assert_eq!(json["trafficPolicy"]["outlierDetection"]["interval"], "1s");
}
