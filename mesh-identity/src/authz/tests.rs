//! Table-driven cases from SEMANTICS §7: each row names its rule id, the policies (YAML), the
//! request, whether it is allowed and which policy (and rule) decided.

use http::{HeaderMap, HeaderName, HeaderValue};
use mesh_core::registry::Scope;

use super::*;

mod rows;
mod rows_more;

const ORDER: &str = "cluster.local/ns/production/sa/order-service";
const FRONTEND: &str = "cluster.local/ns/production/sa/frontend";
const STAGING_ORDER: &str = "cluster.local/ns/staging/sa/order-service";

/// One AuthorizationPolicy document in `namespace`, with extra metadata (`annotations: ...`).
fn doc(name: &str, namespace: &str, meta: &str, spec: &str) -> String {
    let meta = if meta.is_empty() {
        String::new()
    } else {
        format!(", {meta}")
    };
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
         metadata: {{name: {name}, namespace: {namespace}{meta}}}\nspec: {spec}\n"
    )
}

/// A policy in `production`.
fn ap(name: &str, spec: &str) -> String {
    doc(name, "production", "", spec)
}

/// A policy in another namespace.
fn apn(name: &str, namespace: &str, spec: &str) -> String {
    doc(name, namespace, "", spec)
}

/// A request as test data; turned into an [`AuthzRequest`] by [`Row::run`].
#[derive(Clone, Debug)]
struct R {
    protocol: Protocol,
    principal: Option<&'static str>,
    src: &'static str,
    remote: Option<&'static str>,
    dst: Option<&'static str>,
    port: u16,
    host: Option<&'static str>,
    method: Option<&'static str>,
    path: Option<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
    sni: Option<&'static str>,
    namespace: &'static str,
    labels: Vec<(&'static str, &'static str)>,
}

/// `GET /` to payment-service:8080 in `production` from a plaintext peer 10.0.0.7.
fn http() -> R {
    R {
        protocol: Protocol::Http,
        principal: None,
        src: "10.0.0.7",
        remote: None,
        dst: None,
        port: 8080,
        host: Some("payment-service"),
        method: Some("GET"),
        path: Some("/"),
        headers: Vec::new(),
        sni: None,
        namespace: "production",
        labels: vec![("app", "payment-service")],
    }
}

/// A TCP connection to port `port` of the same workload.
fn tcp(port: u16) -> R {
    R {
        protocol: Protocol::Tcp,
        host: None,
        method: None,
        path: None,
        port,
        ..http()
    }
}

impl R {
    fn p(mut self, principal: &'static str) -> Self {
        self.principal = Some(principal);
        self
    }
    fn m(mut self, method: &'static str) -> Self {
        self.method = Some(method);
        self
    }
    fn path(mut self, path: &'static str) -> Self {
        self.path = Some(path);
        self
    }
    fn host(mut self, host: &'static str) -> Self {
        self.host = Some(host);
        self
    }
    fn hdr(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
    fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    fn src(mut self, ip: &'static str) -> Self {
        self.src = ip;
        self
    }
    fn remote(mut self, ip: &'static str) -> Self {
        self.remote = Some(ip);
        self
    }
    fn dst(mut self, ip: &'static str) -> Self {
        self.dst = Some(ip);
        self
    }
    fn sni(mut self, sni: &'static str) -> Self {
        self.sni = Some(sni);
        self
    }
    fn workload(
        mut self,
        namespace: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Self {
        self.namespace = namespace;
        self.labels = labels.to_vec();
        self
    }
}

/// Expected outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Allow,
    Deny,
}
use Want::{Allow, Deny};

/// One table row.
struct Row {
    rule: &'static str,
    policies: Vec<String>,
    req: R,
    want: Want,
    /// `name` or `name#rule` of the deciding policy; `None` for AUTHZ-2 steps 3 and 5.
    by: Option<&'static str>,
}

fn row(
    rule: &'static str,
    policies: &[String],
    req: R,
    want: Want,
    by: Option<&'static str>,
) -> Row {
    Row {
        rule,
        policies: policies.to_vec(),
        req,
        want,
        by,
    }
}

fn table(policies: &[String], namespace: &str, labels: &[(&str, &str)]) -> AuthzTable {
    table_with(policies, namespace, labels, &AuthzOptions::new())
}

fn table_with(
    policies: &[String],
    namespace: &str,
    labels: &[(&str, &str)],
    options: &AuthzOptions,
) -> AuthzTable {
    let text = policies.join("---\n");
    let resources =
        mesh_core::loader::parse_str(&text, std::path::Path::new("authz.yaml"), "default")
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let snapshot = mesh_core::Snapshot::new(resources);
    let scope = Scope::new(namespace).labels(labels.iter().copied());
    AuthzTable::compile_with(&snapshot, &scope, options)
}

fn header_map(headers: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

impl Row {
    /// Runs the row; `Err` describes a mismatch.
    fn run(&self) -> Result<(), String> {
        let table = table(&self.policies, self.req.namespace, &self.req.labels);
        let headers = header_map(&self.req.headers);
        let r = &self.req;
        let mut req = AuthzRequest::new(r.protocol, r.src.parse().unwrap(), r.port)
            .principal(r.principal)
            .sni(r.sni)
            .headers(&headers);
        if let Some(ip) = r.remote {
            req = req.remote_ip(ip.parse().unwrap());
        }
        if let Some(ip) = r.dst {
            req = req.destination_ip(ip.parse().unwrap());
        }
        if let Some(h) = r.host {
            req = req.host(h);
        }
        if let Some(m) = r.method {
            req = req.method(m);
        }
        if let Some(p) = r.path {
            req = req.path(p);
        }
        let d = table.decide(&req);
        if d != table.unindexed().decide(&req) {
            return Err("the candidate index changed the decision".to_owned());
        }
        let by = d.matched.map(|m| {
            if self.by.is_some_and(|b| b.contains('#')) {
                format!("{}#{}", m.name, m.rule)
            } else {
                m.name.to_owned()
            }
        });
        let want_allowed = self.want == Allow;
        if d.allowed != want_allowed || by.as_deref() != self.by {
            return Err(format!(
                "{}: want {:?} by {:?}, got allowed={} by {:?} ({}) for {:?}\n{}",
                self.rule,
                self.want,
                self.by,
                d.allowed,
                by,
                d.reason,
                self.req,
                self.policies.join("---\n")
            ));
        }
        if d.allowed != d.reason.allows() {
            return Err(format!(
                "{}: reason {:?} disagrees with allowed",
                self.rule, d.reason
            ));
        }
        Ok(())
    }
}

#[test]
fn table_rows() {
    let rows = rows::rows();
    assert!(rows.len() >= 70, "only {} rows", rows.len());
    let failures: Vec<String> = rows.iter().filter_map(|r| r.run().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_pitfall_has_a_row() {
    let rows = rows::rows();
    for id in [
        "AUTHZ-1", "AUTHZ-2", "AUTHZ-5", "AUTHZ-16", "AUTHZ-17", "AUTHZ-21", "AUTHZ-22",
    ] {
        assert!(rows.iter().any(|r| r.rule == id), "no row for pitfall {id}");
    }
}

fn ip() -> std::net::IpAddr {
    "10.0.0.7".parse().unwrap()
}

#[test]
fn audit_marks_but_never_decides() {
    let t = table(
        &[
            ap("audit-all", "{action: AUDIT, rules: [{}]}"),
            ap(
                "allow-get",
                "{rules: [{to: [{operation: {methods: [GET]}}]}]}",
            ),
        ],
        "production",
        &[],
    );
    let d = t.decide(&AuthzRequest::http(ip(), 8080).method("GET"));
    assert!(d.allowed);
    assert_eq!(
        d.audit.map(|m| (m.name, m.action)),
        Some(("audit-all", Action::Audit))
    );
    let d = t.decide(&AuthzRequest::http(ip(), 8080).method("POST"));
    assert!(!d.allowed);
    assert!(d.audit.is_some());
}

#[test]
fn dry_run_reports_without_enforcing() {
    let meta = "annotations: {istio.io/dry-run: \"true\"}";
    let t = table(
        &[doc(
            "deny-all",
            "production",
            meta,
            "{action: DENY, rules: [{}]}",
        )],
        "production",
        &[],
    );
    let d = t.decide(&AuthzRequest::http(ip(), 8080));
    assert!(d.allowed);
    let shadow = d.dry_run.unwrap();
    assert!(!shadow.allowed);
    assert_eq!(shadow.matched.map(|m| m.name), Some("deny-all"));
    let plain = table(&[ap("x", "{rules: [{}]}")], "production", &[]);
    assert_eq!(plain.decide(&AuthzRequest::http(ip(), 8080)).dry_run, None);
}

#[test]
fn deny_body_and_details() {
    assert_eq!(DENY_BODY, "RBAC: access denied");
    let t = table(
        &[ap(
            "deny-admin",
            "{action: DENY, rules: [{}, {to: [{operation: {paths: [/admin]}}]}]}",
        )],
        "production",
        &[],
    );
    let d = t.decide(&AuthzRequest::http(ip(), 8080).path("/admin"));
    assert_eq!(
        d.response_code_details().as_deref(),
        Some("rbac_access_denied_matched_policy[ns[production]-policy[deny-admin]-rule[0]]")
    );
    let t = table(&[ap("nothing", "{}")], "production", &[]);
    let d = t.decide(&AuthzRequest::http(ip(), 8080));
    assert_eq!(
        d.response_code_details().as_deref(),
        Some("rbac_access_denied_matched_policy[none]")
    );
}

#[test]
fn trust_domain_aliases() {
    let policies = [ap(
        "p",
        "{rules: [{from: [{source: {principals: [cluster.local/ns/production/sa/order-service]}}]}]}",
    )];
    let options = AuthzOptions::new()
        .trust_domain("prod.example")
        .trust_domain_aliases(["old.example"]);
    let t = table_with(&policies, "production", &[], &options);
    for (principal, allowed) in [
        ("cluster.local/ns/production/sa/order-service", true),
        ("prod.example/ns/production/sa/order-service", true),
        ("old.example/ns/production/sa/order-service", true),
        ("other.example/ns/production/sa/order-service", false),
    ] {
        let d = t.decide(&AuthzRequest::http(ip(), 8080).principal(Some(principal)));
        assert_eq!(d.allowed, allowed, "{principal}");
    }
    let exact = table(&policies, "production", &[]);
    let d = exact.decide(
        &AuthzRequest::http(ip(), 8080)
            .principal(Some("old.example/ns/production/sa/order-service")),
    );
    assert!(!d.allowed);
}

#[test]
fn issues_are_reported_not_panicked() {
    let t = table(
        &[
            ap(
                "bad",
                "{rules: [{from: [{source: {ipBlocks: [10.0.0.0/33]}}], to: [{operation: {ports: [\"*\"], paths: [\"/a/{*}.txt\"]}}], when: [{key: foo.bar, values: [x], notValues: [y]}, {key: source.ip}]}]}",
            ),
            ap(
                "ext",
                "{action: CUSTOM, provider: {name: ext}, rules: [{}]}",
            ),
        ],
        "production",
        &[],
    );
    let problems: Vec<_> = t.issues().iter().map(|i| i.problem.clone()).collect();
    assert_eq!(
        problems,
        [
            Problem::InvalidIpBlock("10.0.0.0/33".into()),
            Problem::InvalidPort("*".into()),
            Problem::InvalidPathTemplate("/a/{*}.txt".into()),
            Problem::UnknownConditionKey("foo.bar".into()),
            Problem::EmptyCondition("source.ip".into()),
            Problem::CustomUnsupported,
        ]
    );
    assert_eq!(
        t.issues()[0].to_string(),
        "AuthorizationPolicy production/bad: invalid IP block \"10.0.0.0/33\""
    );
}

#[test]
fn explain_lists_every_policy_in_order() {
    let t = table(
        &[
            ap(
                "allow-get",
                "{rules: [{to: [{operation: {methods: [GET]}}]}]}",
            ),
            ap(
                "deny-post",
                "{action: DENY, rules: [{to: [{operation: {methods: [POST]}}]}]}",
            ),
        ],
        "production",
        &[],
    );
    let trace = t.explain(&AuthzRequest::http(ip(), 8080).method("GET"));
    let got: Vec<_> = trace
        .iter()
        .map(|t| (t.name, t.action, t.matched_rule))
        .collect();
    assert_eq!(
        got,
        [
            ("deny-post", Action::Deny, None),
            ("allow-get", Action::Allow, Some(0))
        ]
    );
}

mod index_agrees {
    //! The candidate index must never change a decision: random policies over a small
    //! vocabulary of principals, namespaces and patterns, decided with and without it.
    use proptest::prelude::*;

    use super::*;

    const PRINCIPALS: &[&str] = &[
        "cluster.local/ns/a/sa/x",
        "cluster.local/ns/a/sa/y",
        "cluster.local/ns/b/sa/x",
        "other.td/ns/a/sa/x",
        "cluster.local/workload/z",
    ];

    fn pattern() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(PRINCIPALS).prop_map(str::to_owned),
            Just("*".to_owned()),
            Just("cluster.local/ns/a/*".to_owned()),
            Just("cluster.local/*".to_owned()),
            Just("*/sa/x".to_owned()),
            Just("*x".to_owned()),
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("a*".to_owned()),
            Just("*b".to_owned()),
        ]
    }

    fn list(key: &'static str) -> impl Strategy<Value = String> {
        prop::collection::vec(pattern(), 1..3).prop_map(move |v| {
            format!(
                "{key}: [{}]",
                v.iter()
                    .map(|p| format!("\"{p}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    fn source() -> impl Strategy<Value = String> {
        (
            prop::option::of(list("principals")),
            prop::option::of(list("notPrincipals")),
            prop::option::of(list("namespaces")),
            prop::option::of(list("notNamespaces")),
            prop::option::of(Just("ipBlocks: [10.0.0.0/8]".to_owned())),
        )
            .prop_map(|(a, b, c, d, e)| {
                let fields: Vec<String> = [a, b, c, d, e].into_iter().flatten().collect();
                format!("{{source: {{{}}}}}", fields.join(", "))
            })
    }

    fn rule() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(source(), 0..3),
            prop::option::of(prop::sample::select(&["GET", "POST"][..])),
            prop::option::of(prop_oneof![
                prop::collection::vec(pattern(), 1..3).prop_map(|v| ("source.principal", v)),
                prop::collection::vec(pattern(), 1..3).prop_map(|v| ("source.namespace", v)),
            ]),
        )
            .prop_map(|(from, method, when)| {
                let mut r = format!("{{from: [{}]", from.join(", "));
                if let Some(m) = method {
                    r.push_str(&format!(", to: [{{operation: {{methods: [{m}]}}}}]"));
                }
                if let Some((key, values)) = when {
                    let v: Vec<_> = values.iter().map(|p| format!("\"{p}\"")).collect();
                    r.push_str(&format!(
                        ", when: [{{key: {key}, values: [{}]}}]",
                        v.join(", ")
                    ));
                }
                r.push('}');
                r
            })
    }

    fn policy() -> impl Strategy<Value = (String, String, Vec<String>)> {
        (
            prop::sample::select(&["ALLOW", "DENY", "AUDIT", "CUSTOM"][..]),
            prop::bool::weighted(0.2),
            prop::collection::vec(rule(), 0..3),
        )
            .prop_map(|(action, dry, rules)| {
                let meta = if dry {
                    "annotations: {istio.io/dry-run: \"true\"}".to_owned()
                } else {
                    String::new()
                };
                (action.to_owned(), meta, rules)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn decisions_are_the_same_with_and_without_the_index(
            policies in prop::collection::vec(policy(), 1..6),
            peer in prop::option::of(prop::sample::select(PRINCIPALS)),
            method in prop::sample::select(&["GET", "POST"][..]),
            tcp in prop::bool::weighted(0.2),
        ) {
            let docs: Vec<String> = policies
                .iter()
                .enumerate()
                .map(|(i, (action, meta, rules))| {
                    let provider = if action == "CUSTOM" { ", provider: {name: ext}" } else { "" };
                    doc(
                        &format!("p{i}"),
                        "production",
                        meta,
                        &format!("{{action: {action}{provider}, rules: [{}]}}", rules.join(", ")),
                    )
                })
                .collect();
            let table = table(&docs, "production", &[]);
            let protocol = if tcp { Protocol::Tcp } else { Protocol::Http };
            let req = AuthzRequest::new(protocol, "10.1.1.1".parse().unwrap(), 8080)
                .principal(peer)
                .method(method)
                .path("/");
            let reference = table.unindexed();
            prop_assert_eq!(table.decide(&req), reference.decide(&req), "{}", docs.join("---\n"));
        }
    }
}
