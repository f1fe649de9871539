//! Matching (SEMANTICS VS-1..VS-13), route names (LOG-2) and compile errors (VS-3).

use mesh_core::registry::{Registry, Scope};
use mesh_routing::{Error, RouteTable};

use crate::fixtures::{BASE, REVIEWS, V1, V2, V3};
use crate::harness::{Expect::*, Mesh, case, get, req, snapshot, url};

const MATCHES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  http:
  - name: exact
    match: [{uri: {exact: /exact}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: prefix
    match: [{name: v2, uri: {prefix: /v2}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: regex
    match: [{uri: {regex: '/r\d'}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: nocase
    match:
    - {name: p, uri: {prefix: /Case/}, ignoreUriCase: true}
    - {name: re, uri: {regex: '/Re[0-9]'}, ignoreUriCase: true}
    route: [{destination: {host: reviews, subset: v2}}]
  - name: method
    match: [{uri: {prefix: /m/}, method: {exact: POST}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: scheme
    match: [{uri: {prefix: /s/}, scheme: {exact: https}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: authority
    match: [{uri: {prefix: /a/}, authority: {exact: "reviews:9080"}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: and-or
    match:
    - {name: api, uri: {prefix: /api}, headers: {x-api: {exact: "1"}}}
    - {name: health, uri: {exact: /health}}
    route: [{destination: {host: reviews, subset: v2}}]
  - name: canary
    match: [{headers: {x-canary: {exact: "true"}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: hprefix
    match: [{headers: {x-user: {prefix: adm}}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: hregex
    match: [{headers: {x-id: {regex: '[0-9]+'}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: presence
    match: [{headers: {x-debug: {}}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: lines
    match: [{headers: {x-multi: {exact: b}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: pseudo
    match: [{uri: {prefix: /pseudo}, headers: {uri: {exact: /never}, method: {exact: NEVER}}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: without
    match: [{uri: {prefix: /w/}, withoutHeaders: {x-beta: {}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: query
    match:
    - {name: u, queryParams: {u: {exact: "1"}}}
    - {name: num, queryParams: {n: {regex: '\d+'}}}
    - {name: flag, queryParams: {flag: {exact: ""}}}
    - {name: pct, queryParams: {q: {exact: "x%20y"}}}
    route: [{destination: {host: reviews, subset: v3}}]
  - name: fallback
    route: [{destination: {host: reviews}}]
"#;

const H: &str = "reviews:9080";

#[test]
fn uri_matches() {
    let mesh = Mesh::new(&format!("{REVIEWS}{MATCHES}"), "prod");
    mesh.check(&[
        // SEMANTICS VS-3: exact is a byte comparison of the whole path.
        case(
            "VS-3",
            get(H, "/exact"),
            &[Cluster(V1), Endpoint(9081), Route("exact")],
        ),
        case(
            "VS-3",
            get(H, "/exact/"),
            &[Cluster(BASE), Route("fallback")],
        ),
        case("VS-3", get(H, "/EXACT"), &[Route("fallback")]),
        // SEMANTICS VS-4: the query string is not part of the path.
        case("VS-4", get(H, "/exact?x=1"), &[Cluster(V1), Route("exact")]),
        // SEMANTICS VS-5 (pitfall): a plain string prefix, not a path segment.
        case(
            "VS-5",
            get(H, "/v2"),
            &[Cluster(V2), Endpoint(9082), Route("prefix.v2")],
        ),
        case(
            "VS-5",
            get(H, "/v2/users"),
            &[Cluster(V2), Route("prefix.v2")],
        ),
        case(
            "VS-5",
            get(H, "/v2example"),
            &[Cluster(V2), Route("prefix.v2")],
        ),
        case("VS-5", get(H, "/v"), &[Route("fallback")]),
        // SEMANTICS VS-3: regex is anchored, the whole path must match.
        case(
            "VS-3",
            get(H, "/r1"),
            &[Cluster(V3), Endpoint(9083), Route("regex")],
        ),
        case(
            "VS-3",
            get(H, "/r1/users"),
            &[Cluster(BASE), Route("fallback")],
        ),
        case("VS-3", get(H, "/xr1"), &[Route("fallback")]),
        // SEMANTICS VS-6: ignoreUriCase folds exact/prefix, never regex.
        case("VS-6", get(H, "/CASE/x"), &[Cluster(V2), Route("nocase.p")]),
        case("VS-6", get(H, "/case/x"), &[Cluster(V2), Route("nocase.p")]),
        case("VS-6", get(H, "/Re1"), &[Cluster(V2), Route("nocase.re")]),
        case("VS-6", get(H, "/re1"), &[Route("fallback")]),
    ]);
}

#[test]
fn method_scheme_authority_matches() {
    let mesh = Mesh::new(&format!("{REVIEWS}{MATCHES}"), "prod");
    mesh.check(&[
        // SEMANTICS VS-10: method is a case-sensitive StringMatch on the token.
        case(
            "VS-10",
            req("POST", H, "/m/x"),
            &[Cluster(V2), Route("method")],
        ),
        case("VS-10", get(H, "/m/x"), &[Route("fallback")]),
        case("VS-10", req("post", H, "/m/x"), &[Route("fallback")]),
        // SEMANTICS VS-10: scheme of the request.
        case(
            "VS-10",
            url("GET", "https://reviews:9080/s/x"),
            &[Cluster(V3), Route("scheme")],
        ),
        case(
            "VS-10",
            url("GET", "http://reviews:9080/s/x"),
            &[Route("fallback")],
        ),
        // SEMANTICS VS-10: authority as sent, port included.
        case(
            "VS-10",
            get("reviews:9080", "/a/x"),
            &[Cluster(V3), Route("authority")],
        ),
        case(
            "VS-10",
            get("reviews.prod:9080", "/a/x"),
            &[Cluster(BASE), Route("fallback")],
        ),
        // SEMANTICS VS-2: conditions of a block are ANDed, blocks ORed.
        case(
            "VS-2",
            get(H, "/api/v1").header("x-api", "1"),
            &[Cluster(V2), Route("and-or.api")],
        ),
        case("VS-2", get(H, "/api/v1"), &[Route("fallback")]),
        case(
            "VS-2",
            get(H, "/health"),
            &[Cluster(V2), Route("and-or.health")],
        ),
        // SEMANTICS VS-1: first match wins, even when a later route is "more specific".
        case(
            "VS-1",
            get(H, "/v2/x").header("x-canary", "true"),
            &[Route("prefix.v2")],
        ),
        case(
            "VS-1",
            get(H, "/exact").header("x-canary", "true"),
            &[Cluster(V1), Route("exact")],
        ),
    ]);
}

#[test]
fn header_and_query_matches() {
    let mesh = Mesh::new(&format!("{REVIEWS}{MATCHES}"), "prod");
    mesh.check(&[
        // SEMANTICS VS-7: exact / prefix / regex on the value; regex anchored.
        case(
            "VS-7",
            get(H, "/x").header("x-canary", "true"),
            &[Cluster(V2), Route("canary")],
        ),
        case(
            "VS-7",
            get(H, "/x").header("X-Canary", "true"),
            &[Cluster(V2), Route("canary")],
        ),
        case(
            "VS-7",
            get(H, "/x").header("x-canary", "TRUE"),
            &[Route("fallback")],
        ),
        case(
            "VS-7",
            get(H, "/x").header("x-user", "admin"),
            &[Cluster(V3), Route("hprefix")],
        ),
        case(
            "VS-7",
            get(H, "/x").header("x-user", "root"),
            &[Route("fallback")],
        ),
        case(
            "VS-7",
            get(H, "/x").header("x-id", "123"),
            &[Cluster(V1), Route("hregex")],
        ),
        case(
            "VS-7",
            get(H, "/x").header("x-id", "12a"),
            &[Route("fallback")],
        ),
        // SEMANTICS VS-7: `{}` is presence, an empty value included; absent never matches.
        case(
            "VS-7",
            get(H, "/x").header("x-debug", ""),
            &[Cluster(V3), Route("presence")],
        ),
        case("VS-7", get(H, "/x"), &[Cluster(BASE), Route("fallback")]),
        // SEMANTICS VS-7: any one line matches on its own; a comma list is not split.
        case(
            "VS-7",
            get(H, "/x").header("x-multi", "a").header("x-multi", "b"),
            &[Cluster(V2), Route("lines")],
        ),
        case(
            "VS-7",
            get(H, "/x").header("x-multi", "a,b"),
            &[Route("fallback")],
        ),
        // SEMANTICS VS-7: keys uri/scheme/method/authority inside headers are ignored.
        case("VS-7", get(H, "/pseudo"), &[Cluster(V3), Route("pseudo")]),
        // SEMANTICS VS-8: withoutHeaders inverts; an absent header satisfies it.
        case("VS-8", get(H, "/w/x"), &[Cluster(V1), Route("without")]),
        case(
            "VS-8",
            get(H, "/w/x").header("x-beta", "1"),
            &[Route("fallback")],
        ),
        case(
            "VS-8",
            get(H, "/w/x").header("x-beta", ""),
            &[Route("fallback")],
        ),
        // SEMANTICS VS-9: first value only, as sent, names case-sensitive, regex anchored.
        case("VS-9", get(H, "/x?u=1"), &[Cluster(V3), Route("query.u")]),
        case("VS-9", get(H, "/x?u=1&u=2"), &[Route("query.u")]),
        case("VS-9", get(H, "/x?u=2&u=1"), &[Route("fallback")]),
        case("VS-9", get(H, "/x?U=1"), &[Route("fallback")]),
        case("VS-9", get(H, "/x?n=123"), &[Route("query.num")]),
        case("VS-9", get(H, "/x?n=a123"), &[Route("fallback")]),
        case("VS-9", get(H, "/x?flag"), &[Route("query.flag")]),
        case("VS-9", get(H, "/x?flag="), &[Route("query.flag")]),
        case("VS-9", get(H, "/x?q=x%20y"), &[Route("query.pct")]),
        case("VS-9", get(H, "/x?q=x+y"), &[Route("fallback")]),
    ]);
}

const PORTS: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: multi, namespace: prod}
spec:
  hosts: [multi]
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  - {number: 9090, name: http-admin, protocol: HTTP}
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 18080, http-admin: 19090}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: multi, namespace: prod}
spec:
  hosts: [multi]
  http:
  - name: admin-port
    match: [{port: 9090}]
    route: [{destination: {host: multi, port: {number: 9090}}}]
  - name: to-admin
    match: [{uri: {prefix: /admin}}]
    route: [{destination: {host: multi, port: {number: 9090}}}]
  - name: nowhere
    match: [{uri: {prefix: /nowhere}}]
    route: [{destination: {host: multi, port: {number: 7777}}}]
  - name: same-port
    route: [{destination: {host: multi}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front, namespace: prod}
spec:
  hosts: [front.example.com]
  http:
  - name: one-port
    match: [{uri: {prefix: /reviews}}]
    route: [{destination: {host: reviews}}]
  - name: ambiguous
    route: [{destination: {host: multi}}]
"#;

#[test]
fn port_matches_and_port_selection() {
    let mesh = Mesh::new(&format!("{REVIEWS}{PORTS}"), "prod");
    let p8080 = "outbound|8080||multi.prod.svc.cluster.local";
    let p9090 = "outbound|9090||multi.prod.svc.cluster.local";
    mesh.check(&[
        // SEMANTICS VS-11: `port` matches the request's destination port.
        case(
            "VS-11",
            get("multi:9090", "/x"),
            &[Route("admin-port"), Cluster(p9090), Endpoint(19090)],
        ),
        case(
            "VS-11",
            get("multi:8080", "/x"),
            &[Route("same-port"), Cluster(p8080), Endpoint(18080)],
        ),
        // SEMANTICS VS-17: destination.port picks the service port, whatever the request's.
        case(
            "VS-17",
            get("multi:8080", "/admin"),
            &[Route("to-admin"), Cluster(p9090), Endpoint(19090)],
        ),
        // SEMANTICS VS-17: a port the service does not have has no cluster → NC.
        case(
            "VS-17",
            get("multi:8080", "/nowhere"),
            &[NoCluster(mesh_routing::route::NoCluster::UnknownPort)],
        ),
        // SEMANTICS VS-17: one port → that port, even from another port.
        case(
            "VS-17",
            get("front.example.com", "/reviews"),
            &[Cluster(BASE)],
        ),
        // SEMANTICS VS-17: several ports, none named → the request's port (80 here: none).
        case(
            "VS-17",
            get("front.example.com", "/x"),
            &[NoCluster(mesh_routing::route::NoCluster::UnknownPort)],
        ),
        case(
            "VS-17",
            get("front.example.com:9090", "/x"),
            &[Cluster(p9090)],
        ),
        // SEMANTICS HOST-6: the Host port picks the service port of a VS-less route too.
        case(
            "HOST-6",
            get("reviews:9080", "/"),
            &[Cluster(BASE), Route("default")],
        ),
    ]);
}

const SOURCES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  http:
  - name: other-app
    match: [{sourceLabels: {app: ratings}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: other-ns
    match: [{sourceNamespace: web}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: mixed
    match:
    - {name: drop, sourceLabels: {app: ratings}, uri: {prefix: /mixed}}
    - {name: keep, sourceNamespace: prod, uri: {prefix: /mixed}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: mine
    match: [{sourceLabels: {app: productpage, version: v1}, uri: {prefix: /mine}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: fallback
    route: [{destination: {host: reviews}}]
"#;

#[test]
fn source_labels_and_namespace_select_proxies_not_requests() {
    let yaml = format!("{REVIEWS}{SOURCES}");
    let productpage = Mesh::labelled(&yaml, "prod", &[("app", "productpage"), ("version", "v1")]);
    productpage.check(&[
        // SEMANTICS VS-12 (pitfall): sourceLabels never look at request headers.
        case(
            "VS-12",
            get(H, "/x").header("app", "ratings"),
            &[Cluster(BASE), Route("fallback")],
        ),
        case(
            "VS-12",
            get(H, "/x").header("x-source-namespace", "web"),
            &[Route("fallback")],
        ),
        case(
            "VS-12",
            get(H, "/mixed"),
            &[Cluster(V1), Route("mixed.keep")],
        ),
        case("VS-12", get(H, "/mine"), &[Cluster(V2), Route("mine")]),
    ]);
    // The proxy's labels must be a superset of sourceLabels.
    let unversioned = Mesh::labelled(&yaml, "prod", &[("app", "productpage")]);
    unversioned.check(&[case("VS-12", get(H, "/mine"), &[Route("fallback")])]);
    let ratings = Mesh::labelled(&yaml, "prod", &[("app", "ratings"), ("extra", "x")]);
    ratings.check(&[case(
        "VS-12",
        get(H, "/x"),
        &[Cluster(V3), Route("other-app")],
    )]);
    // sourceNamespace compares the proxy's namespace.
    let web = Mesh::new(&yaml, "web");
    web.check(&[case(
        "VS-12",
        get("reviews.prod:9080", "/x"),
        &[Cluster(V3), Route("other-ns")],
    )]);
}

const PARTIAL: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: prod}
spec:
  hosts: [ratings]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 9181}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  http:
  - name: api
    match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews}}]
"#;

#[test]
fn no_route_and_default_routes() {
    let mesh = Mesh::new(&format!("{REVIEWS}{PARTIAL}"), "prod");
    mesh.check(&[
        case("VS-13", get(H, "/api/x"), &[Cluster(BASE), Route("api")]),
        // SEMANTICS VS-13: a known host whose routes all fail → 404 NR, empty.
        case("VS-13", get(H, "/other"), &[NoRoute]),
        // SEMANTICS VS-13, HOST-7: an unknown host → 404 NR.
        case("HOST-7", get("nowhere.example.com", "/"), &[NoRoute]),
        case("HOST-7", get("reviews.elsewhere:9080", "/api"), &[NoRoute]),
        // SEMANTICS VS-13, LOG-2: a VS-less service gets a catch-all route named `default`
        // to the whole service (no subset).
        case(
            "VS-13",
            get("ratings:9080", "/anything?x=1"),
            &[
                Cluster("outbound|9080||ratings.prod.svc.cluster.local"),
                Endpoint(9181),
                Route("default"),
            ],
        ),
        // SEMANTICS HOST-7: the absolute-form URI wins over Host.
        case(
            "HOST-7",
            url("GET", "http://ratings:9080/x").header("host", "reviews:9080"),
            &[Route("default")],
        ),
    ]);
}

const NAMES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  http:
  - name: both
    match: [{name: first, uri: {prefix: /both/1}}, {name: second, uri: {prefix: /both/2}}]
    route: [{destination: {host: reviews}}]
  - match: [{name: only-match, uri: {prefix: /m}}]
    route: [{destination: {host: reviews}}]
  - name: only-route
    match: [{uri: {prefix: /r}}]
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /none}}]
    route: [{destination: {host: reviews}}]
  - name: catch-all
    match: [{uri: {prefix: /all}}, {}]
    route: [{destination: {host: reviews}}]
"#;

#[test]
fn route_names_and_empty_blocks() {
    let mesh = Mesh::new(&format!("{REVIEWS}{NAMES}"), "prod");
    mesh.check(&[
        // SEMANTICS LOG-2: http name + "." + match name, of the block that matched.
        case("LOG-2", get(H, "/both/1"), &[Route("both.first")]),
        case("LOG-2", get(H, "/both/2"), &[Route("both.second")]),
        // SEMANTICS LOG-2: only the match name → leading dot.
        case("LOG-2", get(H, "/m"), &[Route(".only-match")]),
        case("LOG-2", get(H, "/r"), &[Route("only-route")]),
        // SEMANTICS LOG-2: neither → empty (printed `-`).
        case("LOG-2", get(H, "/none"), &[Route("")]),
        // SEMANTICS VS-2 (ours): an empty block `{}` matches everything at runtime.
        case("VS-2", get(H, "/zzz"), &[Cluster(BASE), Route("catch-all")]),
    ]);
}

#[test]
fn invalid_regex_rejects_the_snapshot_naming_the_file() {
    // SEMANTICS VS-3: an invalid regex is an error for the whole resource — even in a block
    // that sourceLabels drop for this proxy, so every proxy accepts or rejects alike.
    for (field, yaml) in [
        ("match", "match: [{uri: {regex: '/v(\\d'}}]"),
        (
            "dropped block",
            "match: [{sourceLabels: {app: nobody}, headers: {x: {regex: '[z-a]'}}}]",
        ),
        (
            "uriRegexRewrite",
            "rewrite: {uriRegexRewrite: {match: '(', rewrite: /x}}",
        ),
    ] {
        let vs = format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: broken, namespace: prod}}\nspec:\n  hosts: [reviews]\n  http:\n  - {yaml}\n    route: [{{destination: {{host: reviews}}}}]\n"
        );
        let snapshot = snapshot(&format!("{REVIEWS}{vs}"), "prod");
        let scope = Scope::new("prod");
        let registry = Registry::build(&snapshot, &scope);
        let err = RouteTable::compile(&snapshot, &registry, &scope).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidRegex { resource, .. } if resource == "VirtualService prod/broken"),
            "{field}: {err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("mesh.yaml"), "{field}: {text}");
        assert!(text.contains("invalid regex"), "{field}: {text}");
    }
}
