use std::path::Path;

use super::*;
use crate::loader::parse_str;
use crate::model::SimpleLb;

/// The rules of `yaml` (namespace `default` unless a document says otherwise) for `scope`.
fn rules(yaml: &str, scope: &Scope) -> DestinationRules {
    let resources = parse_str(yaml, Path::new("dr.yaml"), "default").expect("test YAML loads");
    DestinationRules::build(&Snapshot::new(resources), scope)
}

fn simple(policy: &EffectivePolicy) -> Option<SimpleLb> {
    policy.load_balancer.as_ref().and_then(|lb| lb.simple)
}

fn http2_max(policy: &EffectivePolicy) -> Option<i32> {
    Some(
        policy
            .connection_pool
            .as_ref()?
            .http
            .as_ref()?
            .http2_max_requests,
    )
}

fn max_connections(policy: &EffectivePolicy) -> Option<i32> {
    Some(
        policy
            .connection_pool
            .as_ref()?
            .tcp
            .as_ref()?
            .max_connections,
    )
}

const REVIEWS: &str = "reviews.default.svc.cluster.local";

#[test]
fn subset_block_replaces_the_top_level_block_whole() {
    // SEMANTICS DR-3 (pitfall): the example of the rule, verbatim.
    let r = rules(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 10}, http: {http2MaxRequests: 5}}
  subsets:
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool: {http: {http2MaxRequests: 50}}
"#,
        &Scope::new("default"),
    );
    let rule = r.lookup(REVIEWS, "default").expect("rule");
    let v2 = rule.effective(Some("v2"), 9080);
    assert_eq!(http2_max(&v2), Some(50));
    assert_eq!(max_connections(&v2), None, "unlimited, not 10");
    let base = rule.effective(None, 9080);
    assert_eq!(
        (max_connections(&base), http2_max(&base)),
        (Some(10), Some(5))
    );
}

#[test]
fn blocks_the_subset_omits_are_inherited() {
    // SEMANTICS DR-3: per block — an omitted block comes from the top level.
    let r = rules(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3}
    retryBudget: {percent: 10}
  subsets:
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
"#,
        &Scope::new("default"),
    );
    let v2 = r
        .lookup(REVIEWS, "default")
        .unwrap()
        .effective(Some("v2"), 80);
    assert_eq!(simple(&v2), Some(SimpleLb::Random));
    assert_eq!(
        v2.outlier_detection
            .and_then(|od| od.consecutive_5xx_errors),
        Some(3)
    );
    assert_eq!(v2.retry_budget.and_then(|b| b.percent), Some(10.0));
}

#[test]
fn subset_policy_applies_only_when_the_subset_is_named() {
    // SEMANTICS DR-2 (pitfall): no subset → top-level policy, even if every endpoint is in v1.
    let r = rules(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - name: v1
    labels: {}
    trafficPolicy: {loadBalancer: {simple: RANDOM}}
"#,
        &Scope::new("default"),
    );
    let rule = r.lookup(REVIEWS, "default").unwrap();
    assert_eq!(
        simple(&rule.effective(None, 80)),
        Some(SimpleLb::RoundRobin)
    );
    assert_eq!(
        simple(&rule.effective(Some("v1"), 80)),
        Some(SimpleLb::Random)
    );
    // An unknown subset counts as none.
    assert!(rule.subset("v9").is_none());
    assert_eq!(rule.effective(Some("v9"), 80), rule.effective(None, 80));
}

#[test]
fn port_level_settings_replace_all_four_blocks() {
    // SEMANTICS DR-4 (pitfall): a matching port entry replaces loadBalancer, connectionPool,
    // outlierDetection and tls; absent there means default, not the top-level value. Order:
    // top level → top-level port → subset → subset port.
    let r = rules(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 10}}
    outlierDetection: {consecutive5xxErrors: 3}
    tls: {mode: ISTIO_MUTUAL}
    retryBudget: {percent: 10}
    portLevelSettings:
    - port: {number: 9080}
      connectionPool: {http: {http2MaxRequests: 7}}
  subsets:
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
      portLevelSettings:
      - port: {number: 9080}
        tls: {mode: SIMPLE}
      - port: {number: 9080}
        tls: {mode: MUTUAL, clientCertificate: c, privateKey: k}
"#,
        &Scope::new("default"),
    );
    let rule = r.lookup(REVIEWS, "default").unwrap();

    let port = rule.effective(None, 9080);
    assert_eq!(http2_max(&port), Some(7));
    assert_eq!(max_connections(&port), None);
    assert_eq!(simple(&port), None, "not inherited from the top level");
    assert!(port.outlier_detection.is_none() && port.tls.is_none());
    // Blocks a port entry cannot carry stay.
    assert_eq!(port.retry_budget.and_then(|b| b.percent), Some(10.0));

    let other = rule.effective(None, 9081);
    assert_eq!(simple(&other), Some(SimpleLb::RoundRobin));
    assert_eq!(max_connections(&other), Some(10));

    // Subset on 9080: the subset's loadBalancer is then replaced by its own port entry (the
    // first matching one), which sets only tls.
    let v2 = rule.effective(Some("v2"), 9080);
    assert_eq!(
        v2.tls.as_ref().map(|t| t.mode),
        Some(crate::model::ClientTlsMode::Simple)
    );
    assert_eq!(simple(&v2), None);
    assert!(v2.connection_pool.is_none() && v2.outlier_detection.is_none());
    // Subset on another port: subset loadBalancer, the rest from the top level.
    let v2 = rule.effective(Some("v2"), 9081);
    assert_eq!(simple(&v2), Some(SimpleLb::Random));
    assert_eq!(max_connections(&v2), Some(10));
    assert_eq!(
        v2.tls.map(|t| t.mode),
        Some(crate::model::ClientTlsMode::IstioMutual)
    );
}

#[test]
fn rules_for_one_host_in_one_namespace_merge_oldest_first() {
    // SEMANTICS HOST-12, DR-5: subsets concatenated (first definition of a name wins), the
    // oldest top-level policy wins; the newer rule is listed first in the file.
    let r = rules(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: newer, creationTimestamp: "2024-02-01T00:00:00Z"}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - {name: v1, labels: {version: v1-newer}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: older, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"#,
        &Scope::new("default"),
    );
    let rule = r.lookup(REVIEWS, "default").unwrap();
    let names: Vec<&str> = rule.sources().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["older", "newer"]);
    let subsets: Vec<&str> = rule.subsets().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(subsets, ["v1", "v2", "v3"]);
    assert_eq!(rule.subset("v1").unwrap().labels["version"], "v1");
    assert_eq!(rule.subset_source("v3").unwrap().name, "newer");
    assert_eq!(
        rule.subset_source("v3").unwrap().location.file_line(),
        "dr.yaml:2"
    );
    assert_eq!(rule.policy_source().unwrap().name, "older");
    assert_eq!(
        simple(&rule.effective(None, 80)),
        Some(SimpleLb::RoundRobin)
    );
    assert_eq!(r.iter().count(), 1);
}

#[test]
fn a_later_rule_supplies_the_policy_when_older_ones_have_none() {
    // SEMANTICS HOST-12: "first top-level trafficPolicy" — the first rule that has one.
    let r = rules(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: subsets-only}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: policy}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
"#,
        &Scope::new("default"),
    );
    let rule = r.lookup(REVIEWS, "default").unwrap();
    assert_eq!(rule.policy_source().unwrap().name, "policy");
    assert_eq!(
        simple(&rule.effective(Some("v1"), 80)),
        Some(SimpleLb::Random)
    );
}

const NAMESPACED: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: in-client, namespace: web}
spec: {host: reviews.prod, trafficPolicy: {loadBalancer: {simple: RANDOM}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: in-service, namespace: prod}
spec: {host: reviews, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: in-root, namespace: istio-system}
spec: {host: reviews.prod.svc.cluster.local, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: elsewhere, namespace: other}
spec: {host: reviews.prod.svc.cluster.local, trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}}
"#;

#[test]
fn lookup_tries_client_then_service_then_root_namespace() {
    // SEMANTICS HOST-12
    let host = "reviews.prod.svc.cluster.local";
    let name = |scope: &Scope, yaml: &str| {
        rules(yaml, scope)
            .lookup(host, "prod")
            .map(|r| r.sources()[0].name.clone())
    };
    let web = Scope::new("web");
    assert_eq!(name(&web, NAMESPACED).as_deref(), Some("in-client"));
    let without_client = NAMESPACED.replacen("namespace: web", "namespace: unrelated", 1);
    assert_eq!(name(&web, &without_client).as_deref(), Some("in-service"));
    let root_only = without_client.replacen("namespace: prod", "namespace: unrelated2", 1);
    assert_eq!(name(&web, &root_only).as_deref(), Some("in-root"));
    // A rule in a namespace that is none of the three is not used.
    let none = root_only.replacen("namespace: istio-system", "namespace: unrelated3", 1);
    assert_eq!(name(&web, &none), None);
    // The root namespace is configurable.
    let custom = web.clone().root_namespace("unrelated3");
    assert_eq!(name(&custom, &none).as_deref(), Some("in-root"));
}

#[test]
fn exact_host_beats_wildcard_and_longest_wildcard_wins() {
    // SEMANTICS HOST-12, HOST-5
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wide}
spec: {host: "*.example.com", subsets: [{name: wide}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: narrow}
spec: {host: "*.API.example.com", subsets: [{name: narrow}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: exact}
spec: {host: x.api.example.com, subsets: [{name: exact}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: all}
spec: {host: "*", subsets: [{name: all}]}
"#;
    let r = rules(yaml, &Scope::new("default"));
    let name = |host: &str| {
        r.lookup(host, "default")
            .map(|r| r.sources()[0].name.as_str())
    };
    assert_eq!(name("x.api.example.com"), Some("exact"));
    assert_eq!(
        name("X.API.example.com"),
        Some("exact"),
        "hosts are case-insensitive"
    );
    assert_eq!(name("y.api.example.com"), Some("narrow"));
    assert_eq!(name("y.example.com"), Some("wide"));
    assert_eq!(
        name("example.com"),
        Some("all"),
        "*.example.com does not match example.com"
    );
    // A wildcard service host finds the rule written for it.
    assert_eq!(name("*.api.example.com"), Some("narrow"));
    assert_eq!(
        r.lookup("*.api.example.com", "default").unwrap().host(),
        "*.api.example.com"
    );

    // Namespace order comes first: a wildcard in the client's namespace beats an exact host in
    // the service's namespace.
    let r = rules(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: client-wildcard, namespace: web}
spec: {host: "*.example.com", subsets: [{name: a}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: service-exact, namespace: prod}
spec: {host: api.example.com, subsets: [{name: b}]}
"#,
        &Scope::new("web"),
    );
    assert_eq!(
        r.lookup("api.example.com", "prod").unwrap().sources()[0].name,
        "client-wildcard"
    );
}

#[test]
fn workload_selector_applies_to_matching_proxies_in_its_namespace() {
    // SEMANTICS HOST-12
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catch-all, namespace: web, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  host: api.example.com
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: for-frontend, namespace: web, creationTimestamp: "2024-06-01T00:00:00Z"}
spec:
  host: api.example.com
  workloadSelector: {matchLabels: {app: frontend}}
  trafficPolicy: {tls: {mode: SIMPLE}}
"#;
    let lookup = |scope: &Scope| {
        let r = rules(yaml, scope);
        let rule = r.lookup("api.example.com", "other").expect("rule");
        let names: Vec<String> = rule.sources().iter().map(|s| s.name.clone()).collect();
        (names, rule.effective(Some("v1"), 443))
    };
    // Selected: merged first, so its (younger) top-level policy wins; subsets still merge.
    let frontend = Scope::new("web").labels([("app", "frontend"), ("version", "v1")]);
    let (names, policy) = lookup(&frontend);
    assert_eq!(names, ["for-frontend", "catch-all"]);
    assert!(policy.tls.is_some());
    assert_eq!(simple(&policy), None);
    // Not selected: labels missing or different.
    let (names, policy) = lookup(&Scope::new("web"));
    assert_eq!(names, ["catch-all"]);
    assert_eq!(simple(&policy), Some(SimpleLb::RoundRobin));
    let (names, _) = lookup(&Scope::new("web").labels([("app", "backend")]));
    assert_eq!(names, ["catch-all"]);
    // A selector never reaches across namespaces, whatever the labels. The catch-all rule is
    // in web, which is not the proxy's, service's or root namespace here.
    let r = rules(yaml, &Scope::new("other").labels([("app", "frontend")]));
    assert!(r.lookup("api.example.com", "other").is_none());
    assert!(
        r.lookup("api.example.com", "web")
            .is_some_and(|rule| rule.sources().len() == 1)
    );
}

#[test]
fn export_to_hides_rules() {
    // SEMANTICS HOST-8
    let yaml = |export: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
             metadata: {{name: reviews, namespace: prod}}\n\
             spec: {{host: reviews, exportTo: {export}, subsets: [{{name: v1}}]}}\n"
        )
    };
    let visible = |export: &str, client: &str| {
        rules(&yaml(export), &Scope::new(client))
            .lookup("reviews.prod.svc.cluster.local", "prod")
            .is_some()
    };
    assert!(visible("[\"*\"]", "web"));
    assert!(visible("[.]", "prod"));
    assert!(!visible("[.]", "web"));
    assert!(visible("[web]", "web"));
    assert!(!visible("[web]", "other"));
    assert!(!visible("[\"~\"]", "prod"));
}

#[test]
fn rules_without_host_and_unnamed_subsets_are_skipped() {
    let r = rules(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: no-host}
spec: {subsets: [{name: v1}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews, subsets: [{labels: {a: b}}, {name: v1}]}
"#,
        &Scope::new("default"),
    );
    assert_eq!(r.iter().count(), 1);
    let rule = r.lookup(REVIEWS, "default").unwrap();
    assert_eq!(rule.subsets().len(), 1);
    assert_eq!(rule.namespace(), "default");
    assert!(DestinationRules::default().is_empty());
}
