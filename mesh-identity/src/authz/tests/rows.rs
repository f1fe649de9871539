//! The rows: SEMANTICS §7 rule by rule. Values starting with `*` or `{` are quoted for YAML.

use super::rows_more::{conditions, edges, operations, sources};
use super::{Allow, Deny, FRONTEND, ORDER, R, Row, STAGING_ORDER, ap, apn, http, row};

const PAY: &str = r#"
  selector: {matchLabels: {app: payment-service}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/production/sa/order-service"]}}]
    to: [{operation: {methods: ["POST"], paths: ["/v1/payments*"]}}]"#;

pub(super) fn one(
    rule: &'static str,
    spec: &str,
    req: R,
    want: super::Want,
    by: Option<&'static str>,
) -> Row {
    row(rule, &[ap("p", spec)], req, want, by)
}

fn seeds(v: &mut Vec<Row>) {
    let pay = [ap("payment-allow", PAY)];
    let post = || http().p(ORDER).m("POST").path("/v1/payments");
    v.push(row(
        "AUTHZ-11",
        &pay,
        post(),
        Allow,
        Some("payment-allow#0"),
    ));
    v.push(row(
        "AUTHZ-9",
        &pay,
        post().path("/v1/payments/123"),
        Allow,
        Some("payment-allow"),
    ));
    v.push(row("AUTHZ-18", &pay, post().m("GET"), Deny, None));
    v.push(row("AUTHZ-18", &pay, post().m("PUT"), Deny, None));
    v.push(row(
        "AUTHZ-18",
        &pay,
        post().path("/v1/refunds"),
        Deny,
        None,
    ));
    v.push(row("AUTHZ-9", &pay, post().path("/v1/payment"), Deny, None));
    v.push(row("AUTHZ-11", &pay, post().p(FRONTEND), Deny, None));
    v.push(row("AUTHZ-11", &pay, post().p(STAGING_ORDER), Deny, None));
    v.push(row(
        "AUTHZ-22",
        &pay,
        http().m("POST").path("/v1/payments"),
        Deny,
        None,
    ));
    v.push(row(
        "AUTHZ-1",
        &pay,
        post()
            .m("GET")
            .workload("production", &[("app", "inventory")]),
        Allow,
        None,
    ));
}

fn scope(v: &mut Vec<Row>) {
    v.push(row(
        "AUTHZ-1",
        &[apn("nothing", "staging", "{}")],
        http(),
        Allow,
        None,
    ));
    v.push(row(
        "AUTHZ-1",
        &[apn("mesh-nothing", "istio-system", "{}")],
        http(),
        Deny,
        None,
    ));
    let root_sel = "{selector: {matchLabels: {app: payment-service}}, action: DENY, rules: [{}]}";
    v.push(row(
        "AUTHZ-1",
        &[apn("root-sel", "istio-system", root_sel)],
        http(),
        Deny,
        Some("root-sel"),
    ));
    let other = "{selector: {matchLabels: {app: other}}, action: DENY, rules: [{}]}";
    v.push(row(
        "AUTHZ-1",
        &[apn("root-other", "istio-system", other)],
        http(),
        Allow,
        None,
    ));
    let gw = "{targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]}";
    v.push(row("AUTHZ-1", &[ap("gw-only", gw)], http(), Allow, None));
    let two = "{selector: {matchLabels: {app: payment-service, version: v2}}}";
    v.push(row("AUTHZ-1", &[ap("v2-only", two)], http(), Allow, None));
    v.push(row(
        "AUTHZ-1",
        &[ap("v2-only", two)],
        http().workload(
            "production",
            &[("app", "payment-service"), ("version", "v2")],
        ),
        Deny,
        None,
    ));
    v.push(row(
        "AUTHZ-1",
        &[ap("ns-deny", "{action: DENY, rules: [{}]}")],
        http().workload("production", &[]),
        Deny,
        Some("ns-deny"),
    ));
}

fn order(v: &mut Vec<Row>) {
    let allow_all = ap("allow-all", "{rules: [{}]}");
    let deny_admin = ap(
        "deny-admin",
        "{action: DENY, rules: [{to: [{operation: {paths: [\"/admin*\"]}}]}]}",
    );
    v.push(row(
        "AUTHZ-2",
        &[allow_all.clone(), deny_admin.clone()],
        http().path("/admin/x"),
        Deny,
        Some("deny-admin"),
    ));
    v.push(row(
        "AUTHZ-2",
        &[allow_all.clone(), deny_admin.clone()],
        http().path("/api"),
        Allow,
        Some("allow-all"),
    ));
    let allow_api = ap(
        "allow-api",
        "{rules: [{to: [{operation: {paths: [\"/api/*\"]}}]}]}",
    );
    v.push(row(
        "AUTHZ-2",
        std::slice::from_ref(&allow_api),
        http().path("/"),
        Deny,
        None,
    ));
    v.push(row(
        "AUTHZ-2",
        &[allow_api],
        http().path("/api/v1"),
        Allow,
        Some("allow-api"),
    ));
    let audit = ap("audit-all", "{action: AUDIT, rules: [{}]}");
    v.push(row(
        "AUTHZ-2",
        std::slice::from_ref(&audit),
        http(),
        Allow,
        None,
    ));
    v.push(row(
        "AUTHZ-2",
        &[audit, ap("nothing", "{}")],
        http(),
        Deny,
        None,
    ));
    let custom = ap(
        "ext",
        "{action: CUSTOM, provider: {name: opa}, rules: [{to: [{operation: {paths: [\"/admin*\"]}}]}]}",
    );
    v.push(row(
        "AUTHZ-4",
        &[allow_all.clone(), custom.clone()],
        http().path("/admin"),
        Deny,
        Some("ext"),
    ));
    v.push(row(
        "AUTHZ-4",
        &[allow_all.clone(), custom],
        http().path("/public"),
        Allow,
        Some("allow-all"),
    ));
    v.push(row(
        "AUTHZ-4",
        &[ap("ext", "{action: CUSTOM, provider: {name: opa}}")],
        http(),
        Allow,
        None,
    ));
    v.push(row(
        "AUTHZ-3",
        &[ap(
            "get",
            "{rules: [{to: [{operation: {methods: [GET]}}]}]}",
        )],
        http(),
        Allow,
        Some("get"),
    ));
    v.push(row(
        "AUTHZ-3",
        &[ap(
            "get",
            "{rules: [{to: [{operation: {methods: [GET]}}]}]}",
        )],
        http().m("POST"),
        Deny,
        None,
    ));
}

fn rules(v: &mut Vec<Row>) {
    v.push(one("AUTHZ-5", "{}", http().p(ORDER), Deny, None));
    v.push(one("AUTHZ-5", "{rules: []}", http(), Deny, None));
    v.push(one("AUTHZ-5", "{rules: [{}]}", http(), Allow, Some("p#0")));
    v.push(one(
        "AUTHZ-5",
        "{action: DENY, rules: [{}]}",
        http().p(ORDER),
        Deny,
        Some("p#0"),
    ));
    v.push(one("AUTHZ-5", "{action: DENY}", http(), Allow, None));
    let ored =
        "{rules: [{to: [{operation: {methods: [GET]}}]}, {to: [{operation: {methods: [POST]}}]}]}";
    v.push(one("AUTHZ-5", ored, http().m("POST"), Allow, Some("p#1")));
    v.push(one("AUTHZ-5", ored, http().m("DELETE"), Deny, None));
    let from_or = format!(
        "{{rules: [{{from: [{{source: {{principals: [{ORDER}]}}}}, {{source: {{principals: [{FRONTEND}]}}}}]}}]}}"
    );
    v.push(one(
        "AUTHZ-6",
        &from_or,
        http().p(FRONTEND),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-6",
        &from_or,
        http().p(STAGING_ORDER),
        Deny,
        None,
    ));
    let to_or = "{rules: [{to: [{operation: {paths: [/a]}}, {operation: {paths: [/b]}}]}]}";
    v.push(one("AUTHZ-6", to_or, http().path("/b"), Allow, Some("p")));
    let from_and_to = format!(
        "{{rules: [{{from: [{{source: {{principals: [{ORDER}]}}}}], to: [{{operation: {{paths: [/a]}}}}]}}]}}"
    );
    v.push(one(
        "AUTHZ-6",
        &from_and_to,
        http().p(ORDER).path("/b"),
        Deny,
        None,
    ));
    let when_and = "{rules: [{when: [{key: \"request.headers[x-a]\", values: [\"1\"]}, {key: \"request.headers[x-b]\", values: [\"2\"]}]}]}";
    v.push(one("AUTHZ-6", when_and, http().hdr("x-a", "1"), Deny, None));
    v.push(one(
        "AUTHZ-6",
        when_and,
        http().hdr("x-a", "1").hdr("x-b", "2"),
        Allow,
        Some("p"),
    ));
}

fn fields(v: &mut Vec<Row>) {
    let and = format!(
        "{{rules: [{{from: [{{source: {{principals: [{ORDER}], ipBlocks: [10.1.0.0/16]}}}}]}}]}}"
    );
    v.push(one("AUTHZ-7", &and, http().p(ORDER), Deny, None));
    v.push(one(
        "AUTHZ-7",
        &and,
        http().p(ORDER).src("10.1.2.3"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-7",
        "{rules: [{to: [{operation: {methods: [GET, POST]}}]}]}",
        http().m("POST"),
        Allow,
        Some("p"),
    ));
    let not_m = "{action: DENY, rules: [{to: [{operation: {notMethods: [GET, HEAD]}}]}]}";
    v.push(one("AUTHZ-7", not_m, http().m("DELETE"), Deny, Some("p")));
    v.push(one("AUTHZ-7", not_m, http().m("HEAD"), Allow, None));
    let both = "{rules: [{to: [{operation: {paths: [\"/api/*\"], notPaths: [\"/api/admin*\"]}}]}]}";
    v.push(one(
        "AUTHZ-7",
        both,
        http().path("/api/admin/users"),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-7",
        both,
        http().path("/api/users"),
        Allow,
        Some("p"),
    ));
    let cond = "{rules: [{when: [{key: \"request.headers[x-env]\", values: [\"prod*\"], notValues: [prod-eu]}]}]}";
    v.push(one(
        "AUTHZ-8",
        cond,
        http().hdr("x-env", "prod-us"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-8",
        cond,
        http().hdr("x-env", "prod-eu"),
        Deny,
        None,
    ));
    v.push(one("AUTHZ-8", cond, http().hdr("x-env", "dev"), Deny, None));
}

fn values(v: &mut Vec<Row>) {
    v.push(one(
        "AUTHZ-9",
        "{rules: [{to: [{operation: {paths: [\"/v1*\"]}}]}]}",
        http().path("/v1"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-9",
        "{rules: [{to: [{operation: {hosts: [\"*.example.com\"]}}]}]}",
        http().host("api.example.com"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-9",
        "{rules: [{to: [{operation: {hosts: [\"*.example.com\"]}}]}]}",
        http().host("example.org"),
        Deny,
        None,
    ));
    let presence = "{rules: [{when: [{key: \"request.headers[x-token]\", values: [\"*\"]}]}]}";
    v.push(one(
        "AUTHZ-9",
        presence,
        http().hdr("x-token", ""),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-9",
        presence,
        http().hdr("x-token", "t"),
        Allow,
        Some("p"),
    ));
    let mid = "{rules: [{to: [{operation: {paths: [\"/a*c\"]}}]}]}";
    v.push(one("AUTHZ-9", mid, http().path("/abc"), Deny, None));
    v.push(one("AUTHZ-9", mid, http().path("/a*c"), Allow, Some("p")));
    v.push(one(
        "AUTHZ-9",
        "{rules: [{to: [{operation: {methods: [get]}}]}]}",
        http(),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-9",
        "{rules: [{to: [{operation: {hosts: [Payment.Example.COM]}}]}]}",
        http().host("payment.example.com"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-9",
        "{rules: [{to: [{operation: {ports: [\"*\"]}}]}]}",
        http(),
        Deny,
        None,
    ));
    let tmpl = |p: &str| format!("{{rules: [{{to: [{{operation: {{paths: [\"{p}\"]}}}}]}}]}}");
    v.push(one(
        "AUTHZ-10",
        &tmpl("/foo/{*}"),
        http().path("/foo/bar"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-10",
        &tmpl("/foo/{*}"),
        http().path("/foo/bar/baz"),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-10",
        &tmpl("/foo/{**}/"),
        http().path("/foo/bar/baz.txt"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-10",
        &tmpl("/foo/{*}/bar/{**}"),
        http().path("/foo/buzz/bar/baz"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-10",
        &tmpl("/foo/{*}.txt"),
        http().path("/foo/a.txt"),
        Deny,
        None,
    ));
    let deny_bad = "{action: DENY, rules: [{to: [{operation: {paths: [\"/foo/{*}.txt\"], ports: [\"8080\"]}}]}]}";
    v.push(one(
        "AUTHZ-10",
        deny_bad,
        http().path("/anything"),
        Deny,
        Some("p"),
    ));
}

/// Every row.
pub(super) fn rows() -> Vec<Row> {
    let mut v = Vec::new();
    for add in [
        seeds, scope, order, rules, fields, values, sources, operations, conditions, edges,
    ] {
        add(&mut v);
    }
    v
}
