//! More rows: sources, operations, conditions and edge semantics (AUTHZ-11..AUTHZ-26).

use super::rows::one;
use super::{Allow, Deny, FRONTEND, ORDER, Row, STAGING_ORDER, doc, http, row, tcp};

pub(super) fn sources(v: &mut Vec<Row>) {
    let src = |s: &str| format!("{{rules: [{{from: [{{source: {{{s}}}}}]}}]}}");
    v.push(one(
        "AUTHZ-11",
        &src("principals: [\"*\"]"),
        http().p(FRONTEND),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-11",
        &src(&format!("principals: [{ORDER}]")),
        http().p("spiffe://cluster.local/ns/production/sa/order-service"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-12",
        &src("namespaces: [production]"),
        http().p(FRONTEND),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-12",
        &src("namespaces: [\"prod*\"]"),
        http().p(STAGING_ORDER),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-12",
        &src("namespaces: [\"*\"]"),
        http().p("example.org/workload/x"),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-12",
        &src("notNamespaces: [staging]"),
        http().p("example.org/workload/x"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-13",
        &src("serviceAccounts: [order-service]"),
        http().p(ORDER),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-13",
        &src("serviceAccounts: [staging/order-service]"),
        http().p(ORDER),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-13",
        &src("serviceAccounts: [staging/order-service]"),
        http().p(STAGING_ORDER),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-13",
        &src("trustDomains: [cluster.local]"),
        http().p(ORDER),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-13",
        &src("trustDomains: [other.td]"),
        http().p(ORDER),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-14",
        &src("ipBlocks: [10.0.0.0/24]"),
        http(),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-14",
        &src("ipBlocks: [192.168.0.0/16, 10.0.0.7]"),
        http(),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-14",
        &src("ipBlocks: [192.168.0.0/16]"),
        http(),
        Deny,
        None,
    ));
    let not_ip = "{action: DENY, rules: [{from: [{source: {notIpBlocks: [10.0.0.0/8]}}]}]}";
    v.push(one(
        "AUTHZ-14",
        not_ip,
        http().src("172.16.0.1"),
        Deny,
        Some("p"),
    ));
    v.push(one("AUTHZ-14", not_ip, http(), Allow, None));
    v.push(one(
        "AUTHZ-14",
        &src("remoteIpBlocks: [203.0.113.0/24]"),
        http().remote("203.0.113.5"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-14",
        &src("remoteIpBlocks: [10.0.0.0/8]"),
        http(),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-14",
        &src("ipBlocks: [10.0.0.0/33]"),
        http(),
        Deny,
        None,
    ));
    let deny_bad = "{action: DENY, rules: [{from: [{source: {ipBlocks: [bogus]}}], to: [{operation: {paths: [/admin]}}]}]}";
    v.push(one(
        "AUTHZ-14",
        deny_bad,
        http().path("/admin"),
        Deny,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-14",
        deny_bad,
        http().path("/public"),
        Allow,
        None,
    ));
    v.push(one(
        "AUTHZ-15",
        &src("requestPrincipals: [\"*\"]"),
        http().p(ORDER),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-15",
        "{action: DENY, rules: [{from: [{source: {notRequestPrincipals: [\"*\"]}}]}]}",
        http().p(ORDER),
        Deny,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-15",
        "{rules: [{when: [{key: \"request.auth.claims[groups]\", values: [admin]}]}]}",
        http(),
        Deny,
        None,
    ));
}

pub(super) fn operations(v: &mut Vec<Row>) {
    let op = |s: &str| format!("{{rules: [{{to: [{{operation: {{{s}}}}}]}}]}}");
    v.push(one(
        "AUTHZ-16",
        &op("hosts: [payment.example.com]"),
        http().host("payment.example.com:8080"),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-16",
        &op("hosts: [payment.example.com, \"payment.example.com:*\"]"),
        http().host("payment.example.com:8080"),
        Allow,
        Some("p"),
    ));
    let not_hosts =
        "{action: DENY, rules: [{to: [{operation: {notHosts: [payment.example.com]}}]}]}";
    v.push(one(
        "AUTHZ-16",
        not_hosts,
        http().host("payment.example.com:8080"),
        Deny,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-16",
        not_hosts,
        http().host("payment.example.com"),
        Allow,
        None,
    ));
    v.push(one(
        "AUTHZ-17",
        &op("ports: [\"8080\"]"),
        http(),
        Allow,
        Some("p"),
    ));
    v.push(one("AUTHZ-17", &op("ports: [\"80\"]"), http(), Deny, None));
    v.push(one(
        "AUTHZ-17",
        "{action: DENY, rules: [{to: [{operation: {notPorts: [\"8080\"]}}]}]}",
        http().port(9090),
        Deny,
        Some("p"),
    ));
    let grpc = op("methods: [POST], paths: [/payments.Payments/Charge]");
    v.push(one(
        "AUTHZ-18",
        &grpc,
        http().m("POST").path("/payments.Payments/Charge"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-18",
        &op("paths: [/v1/payments]"),
        http().path("/v1/payments?x=1"),
        Allow,
        Some("p"),
    ));
}

pub(super) fn conditions(v: &mut Vec<Row>) {
    let when =
        |key: &str, vals: &str| format!("{{rules: [{{when: [{{key: \"{key}\", {vals}}}]}}]}}");
    v.push(one(
        "AUTHZ-19",
        &when("request.headers[X-Tenant]", "values: [acme]"),
        http().hdr("x-tenant", "acme"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-19",
        &when("request.headers[x-role]", "values: [admin]"),
        http().hdr("x-role", "user").hdr("x-role", "admin"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-19",
        &when("request.headers[x-role]", "values: [\"user,admin\"]"),
        http().hdr("x-role", "user").hdr("x-role", "admin"),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-19",
        &when("request.headers[x-role]", "values: [admin]"),
        http(),
        Deny,
        None,
    ));
    let deny_absent = "{action: DENY, rules: [{when: [{key: \"request.headers[x-api-key]\", notValues: [\"*\"]}]}]}";
    v.push(one("AUTHZ-19", deny_absent, http(), Deny, Some("p")));
    v.push(one(
        "AUTHZ-19",
        deny_absent,
        http().hdr("x-api-key", "k"),
        Allow,
        None,
    ));
    v.push(one(
        "AUTHZ-19",
        &when("source.ip", "values: [10.0.0.0/8]"),
        http(),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-19",
        &when("remote.ip", "values: [198.51.100.1]"),
        http().remote("198.51.100.1"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-19",
        &when("source.namespace", "values: [production]"),
        http().p(ORDER),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-19",
        &when("source.principal", &format!("values: [{ORDER}]")),
        http().p(ORDER),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-19",
        &when("destination.ip", "values: [10.1.0.0/16]"),
        http().dst("10.1.2.3"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-19",
        &when("destination.ip", "values: [10.1.0.0/16]"),
        http(),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-19",
        &when("destination.port", "values: [\"8080\"]"),
        http(),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-19",
        &when("connection.sni", "values: [\"*.example.com\"]"),
        http().sni("payment.example.com"),
        Allow,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-19",
        &when("connection.sni", "values: [\"*.example.com\"]"),
        http(),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-19",
        &when("source.user", "values: [x]"),
        http(),
        Deny,
        None,
    ));
    let deny_unknown = "{action: DENY, rules: [{to: [{operation: {paths: [/admin]}}], when: [{key: source.user, values: [x]}]}]}";
    v.push(one(
        "AUTHZ-19",
        deny_unknown,
        http().path("/admin"),
        Deny,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-19",
        deny_unknown,
        http().path("/public"),
        Allow,
        None,
    ));
    v.push(one(
        "AUTHZ-8",
        "{rules: [{when: [{key: source.ip}]}]}",
        http(),
        Deny,
        None,
    ));
}

pub(super) fn edges(v: &mut Vec<Row>) {
    let principals_any = "{rules: [{from: [{source: {principals: [\"*\"]}}]}]}";
    v.push(one("AUTHZ-20", principals_any, http(), Deny, None));
    let not_values = "{rules: [{when: [{key: \"request.headers[x-debug]\", notValues: [\"*\"]}]}]}";
    v.push(one("AUTHZ-20", not_values, http(), Allow, Some("p")));
    v.push(one(
        "AUTHZ-20",
        not_values,
        http().hdr("x-debug", "1"),
        Deny,
        None,
    ));
    let allow_mixed = "{rules: [{to: [{operation: {methods: [GET], ports: [\"8080\"]}}]}]}";
    v.push(one("AUTHZ-21", allow_mixed, tcp(8080), Deny, None));
    v.push(one(
        "AUTHZ-21",
        "{rules: [{to: [{operation: {ports: [\"8080\"]}}]}]}",
        tcp(8080),
        Allow,
        Some("p"),
    ));
    let deny_mixed =
        "{action: DENY, rules: [{to: [{operation: {methods: [POST], ports: [\"8080\"]}}]}]}";
    v.push(one("AUTHZ-21", deny_mixed, tcp(8080), Deny, Some("p")));
    v.push(one("AUTHZ-21", deny_mixed, tcp(9090), Allow, None));
    v.push(one("AUTHZ-21", deny_mixed, http(), Allow, None));
    let two_rules =
        "{rules: [{to: [{operation: {paths: [/a]}}]}, {to: [{operation: {ports: [\"9000\"]}}]}]}";
    v.push(one("AUTHZ-21", two_rules, tcp(9000), Allow, Some("p#1")));
    v.push(one(
        "AUTHZ-21",
        "{rules: [{when: [{key: \"request.headers[x-a]\", notValues: [b]}]}]}",
        tcp(8080),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-21",
        "{action: DENY, rules: [{from: [{source: {requestPrincipals: [\"*\"]}}]}]}",
        tcp(8080),
        Deny,
        Some("p"),
    ));
    let no_plain = "{action: DENY, rules: [{from: [{source: {notPrincipals: [\"*\"]}}]}]}";
    v.push(one("AUTHZ-22", no_plain, http(), Deny, Some("p")));
    v.push(one("AUTHZ-22", no_plain, http().p(ORDER), Allow, None));
    v.push(one("AUTHZ-22", no_plain, tcp(5432), Deny, Some("p")));
    v.push(one(
        "AUTHZ-22",
        "{rules: [{from: [{source: {namespaces: [\"*\"]}}]}]}",
        http(),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-22",
        "{rules: [{when: [{key: source.namespace, values: [\"*\"]}]}]}",
        http(),
        Deny,
        None,
    ));
    v.push(one(
        "AUTHZ-22",
        "{action: DENY, rules: [{from: [{source: {notNamespaces: [\"*\"]}}]}]}",
        http(),
        Deny,
        Some("p"),
    ));
    v.push(one(
        "AUTHZ-22",
        "{rules: [{from: [{source: {serviceAccounts: [order-service]}}]}]}",
        http(),
        Deny,
        None,
    ));
    let dry = "annotations: {istio.io/dry-run: \"true\"}";
    v.push(row(
        "AUTHZ-26",
        &[doc(
            "dry-deny",
            "production",
            dry,
            "{action: DENY, rules: [{}]}",
        )],
        http(),
        Allow,
        None,
    ));
    v.push(row(
        "AUTHZ-26",
        &[doc("dry-allow", "production", dry, "{}")],
        http(),
        Allow,
        None,
    ));
}
