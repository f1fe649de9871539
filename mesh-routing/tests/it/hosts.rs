//! Host resolution (SEMANTICS HOST-1..HOST-12) and DestinationRule lookup (HOST-12, DR-5).

use mesh_routing::route::NoCluster::{UnknownHost, UnknownSubset};

use crate::fixtures::{BASE, REVIEWS, service};
use crate::harness::{Expect::*, Mesh, case, get, url};

const OTHER_NAMESPACE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: bar}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 9181}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: bar}
spec:
  hosts: [ratings]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 9182}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: foo}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: foo}
spec:
  hosts: [ratings.bar]
  http:
  - name: qualified
    match: [{uri: {prefix: /ok}}]
    route: [{destination: {host: ratings.bar.svc.cluster.local}}]
  - name: short
    route: [{destination: {host: ratings}}]
"#;

#[test]
fn short_names_resolve_in_the_resource_namespace() {
    let mesh = Mesh::new(OTHER_NAMESPACE, "foo");
    mesh.check(&[
        // SEMANTICS HOST-1 (pitfall): `hosts: [reviews]` in namespace foo is reviews.foo — a
        // host with routes but no service (HOST-11), its destination `reviews` too → NC.
        case(
            "HOST-1",
            get("reviews:9080", "/"),
            &[NoCluster(UnknownHost)],
        ),
        // … and the VirtualService does not apply to reviews.bar, which keeps its default.
        case(
            "HOST-1",
            get("reviews.bar:9080", "/"),
            &[
                Cluster("outbound|9080||reviews.bar.svc.cluster.local"),
                Endpoint(9181),
                Route("default"),
            ],
        ),
        // SEMANTICS HOST-1 (pitfall): a destination `ratings` written in namespace foo is
        // ratings.foo, not the ratings.bar the VirtualService is for.
        case(
            "HOST-1",
            get("ratings.bar:9080", "/x"),
            &[Route("short"), NoCluster(UnknownHost)],
        ),
        case(
            "HOST-1",
            get("ratings.bar:9080", "/ok"),
            &[
                Route("qualified"),
                Cluster("outbound|9080||ratings.bar.svc.cluster.local"),
                Endpoint(9182),
            ],
        ),
    ]);
}

const FORMS: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: prod}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 7004}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: forms, namespace: cfg}
spec:
  hosts: [a.prod, b.prod.svc, C.PROD.SVC.CLUSTER.LOCAL]
  http:
  - route: [{destination: {host: d.prod}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: literal, namespace: cfg}
spec:
  hosts: [API.example.com]
  http:
  - directResponse: {status: 200, body: {string: literal}}
"#;

#[test]
fn name_forms_in_config() {
    let yaml = service("a", "prod", "a", 80, 7001)
        + &service("b", "prod", "b", 80, 7002)
        + &service("c", "prod", "c", 80, 7003)
        + &service("d", "prod", "d", 80, 7005)
        + FORMS;
    let mesh = Mesh::new(&yaml, "prod");
    let d = "outbound|80||d.prod.svc.cluster.local";
    mesh.check(&[
        // SEMANTICS HOST-2: name.ns, name.ns.svc and the FQDN (any case) all name the service,
        // from a resource in another namespace; the destination `d.prod` too.
        case("HOST-2", get("a", "/"), &[Cluster(d), Endpoint(7005)]),
        case("HOST-2", get("b", "/"), &[Cluster(d)]),
        case("HOST-2", get("c", "/"), &[Cluster(d)]),
        // SEMANTICS HOST-2: request hosts are compared lower-cased.
        case("HOST-2", get("A.Prod", "/"), &[Cluster(d)]),
        // SEMANTICS HOST-2, HOST-4: any other dotted name is itself (no namespace suffix).
        case(
            "HOST-4",
            get("api.example.com", "/"),
            &[Direct(200, "literal")],
        ),
        // The VS-less service d keeps its default route.
        case("VS-13", get("d", "/"), &[Cluster(d), Route("default")]),
    ]);
    // The ServiceEntry host is literal: its cluster carries no namespace.
    let plain = Mesh::new(&service("api", "prod", "api.example.com", 80, 7004), "prod");
    plain.check(&[case(
        "HOST-4",
        get("api.example.com", "/"),
        &[Cluster("outbound|80||api.example.com"), Endpoint(7004)],
    )]);
}

#[test]
fn request_aliases_depend_on_the_client_namespace() {
    let prod = Mesh::new(REVIEWS, "prod");
    let other = Mesh::new(REVIEWS, "other");
    let ok: &[_] = &[Cluster(BASE), Route("default")];
    // SEMANTICS HOST-3: every form the client's namespace can see.
    prod.check(&[
        case("HOST-3", get("reviews:9080", "/"), ok),
        case("HOST-3", get("reviews.prod:9080", "/"), ok),
        case("HOST-3", get("reviews.prod.svc:9080", "/"), ok),
        case(
            "HOST-3",
            get("reviews.prod.svc.cluster.local:9080", "/"),
            ok,
        ),
        case("HOST-3", url("GET", "http://reviews:9080/"), ok),
    ]);
    other.check(&[
        // SEMANTICS HOST-3 (pitfall 2): bare `reviews` from namespace other is reviews.other.
        case("HOST-3", get("reviews:9080", "/"), &[NoRoute]),
        case("HOST-3", get("reviews.prod:9080", "/"), ok),
        case("HOST-3", get("reviews.prod.svc:9080", "/"), ok),
        case(
            "HOST-3",
            get("reviews.prod.svc.cluster.local:9080", "/"),
            ok,
        ),
    ]);
}

const WILDCARDS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wide, namespace: prod}
spec:
  hosts: ["*.example.com"]
  http: [{directResponse: {status: 200, body: {string: wide}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: narrow, namespace: prod}
spec:
  hosts: ["*.api.example.com"]
  http: [{directResponse: {status: 200, body: {string: narrow}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: exact, namespace: prod}
spec:
  hosts: [exact.api.example.com]
  http: [{directResponse: {status: 200, body: {string: exact}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: star, namespace: prod}
spec:
  hosts: ["*"]
  http: [{directResponse: {status: 200, body: {string: star}}}]
"#;

#[test]
fn wildcards_most_specific_wins() {
    let yaml = service("shop", "prod", "shop.example.com", 80, 7010) + WILDCARDS;
    let mesh = Mesh::new(&yaml, "prod");
    mesh.check(&[
        // SEMANTICS HOST-5: *.example.com matches one or more labels, not the bare domain.
        case("HOST-5", get("a.example.com", "/"), &[Direct(200, "wide")]),
        case(
            "HOST-5",
            get("a.b.example.com", "/"),
            &[Direct(200, "wide")],
        ),
        // SEMANTICS HOST-5: the longest suffix wins; an exact host beats every wildcard.
        case(
            "HOST-5",
            get("x.api.example.com", "/"),
            &[Direct(200, "narrow")],
        ),
        case(
            "HOST-5",
            get("y.x.api.example.com", "/"),
            &[Direct(200, "narrow")],
        ),
        case(
            "HOST-5",
            get("exact.api.example.com", "/"),
            &[Direct(200, "exact")],
        ),
        case(
            "HOST-5",
            get("EXACT.api.example.com", "/"),
            &[Direct(200, "exact")],
        ),
        // SEMANTICS HOST-5: `*` matches every host, the least specific.
        case("HOST-5", get("example.com", "/"), &[Direct(200, "star")]),
        case("HOST-5", get("other.org", "/"), &[Direct(200, "star")]),
        // A wildcard VirtualService host applies to the services it matches.
        case(
            "HOST-5",
            get("shop.example.com", "/"),
            &[Direct(200, "wide")],
        ),
        // SEMANTICS HOST-6 (pitfall): the port in Host does not choose the virtual host.
        case(
            "HOST-6",
            get("a.example.com:8443", "/"),
            &[Direct(200, "wide")],
        ),
        case(
            "HOST-6",
            get("exact.api.example.com:1234", "/"),
            &[Direct(200, "exact")],
        ),
    ]);
}

#[test]
fn wildcard_service_entries() {
    let yaml = service("wild", "prod", "*.wild.test", 80, 7020)
        + &service("tame", "prod", "tame.wild.test", 80, 7021);
    let mesh = Mesh::new(&yaml, "prod");
    mesh.check(&[
        // SEMANTICS HOST-4, HOST-5: a wildcard ServiceEntry host; the exact one beats it.
        case(
            "HOST-5",
            get("a.wild.test", "/"),
            &[Cluster("outbound|80||*.wild.test"), Endpoint(7020)],
        ),
        case(
            "HOST-5",
            get("tame.wild.test", "/"),
            &[Cluster("outbound|80||tame.wild.test"), Endpoint(7021)],
        ),
        case("HOST-5", get("wild.test", "/"), &[NoRoute]),
    ]);
}

#[test]
fn port_in_host_is_ignored_for_the_virtual_host() {
    let yaml = service("web", "prod", "web", 80, 7030);
    let mesh = Mesh::new(&yaml, "prod");
    let web = "outbound|80||web.prod.svc.cluster.local";
    mesh.check(&[
        // SEMANTICS HOST-6 (pitfall): `web` and `web:80` are the same virtual host; no port
        // means 80 for http.
        case("HOST-6", get("web", "/"), &[Cluster(web), Endpoint(7030)]),
        case(
            "HOST-6",
            get("web:80", "/"),
            &[Cluster(web), Endpoint(7030)],
        ),
        case("HOST-6", get("WEB.prod:80", "/"), &[Cluster(web)]),
        case(
            "HOST-6",
            url("GET", "http://web.prod.svc/"),
            &[Cluster(web)],
        ),
    ]);
}

const ADDRESSES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: prod}
spec:
  hosts: [legacy.internal]
  addresses: [10.9.8.7]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 7040}}]
"#;

#[test]
fn ip_literal_selects_the_service_entry_with_that_address() {
    let mesh = Mesh::new(ADDRESSES, "prod");
    mesh.check(&[
        // SEMANTICS HOST-7: an IP literal host that matches `addresses` selects that entry.
        case(
            "HOST-7",
            url("GET", "http://10.9.8.7/x"),
            &[Cluster("outbound|80||legacy.internal"), Endpoint(7040)],
        ),
        case(
            "HOST-7",
            get("10.9.8.7:80", "/x"),
            &[Cluster("outbound|80||legacy.internal")],
        ),
        case("HOST-7", url("GET", "http://10.9.8.6/x"), &[NoRoute]),
    ]);
}

const EXPORTS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shared-team-only, namespace: team}
spec:
  hosts: [shared]
  exportTo: ["."]
  http: [{directResponse: {status: 200, body: {string: team-only}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: listed, namespace: team}
spec:
  hosts: [listed]
  exportTo: [prod]
  http: [{directResponse: {status: 200, body: {string: for-prod}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hidden-vs, namespace: team}
spec:
  hosts: [listed2]
  exportTo: ["~"]
  http: [{directResponse: {status: 200, body: {string: nobody}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shared, namespace: team}
spec:
  host: shared
  exportTo: ["."]
  subsets: [{name: s1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: listed, namespace: team}
spec:
  host: listed
  exportTo: [prod]
  subsets: [{name: s1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: subsets, namespace: prod}
spec:
  hosts: [listed2.team]
  http:
  - match: [{uri: {prefix: /shared}}]
    route: [{destination: {host: shared.team, subset: s1}}]
  - route: [{destination: {host: listed.team, subset: s1}}]
"#;

#[test]
fn export_to_hides_resources_from_other_namespaces() {
    let se = |name: &str, export: &str, port: u16| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: team}}\nspec:\n  hosts: [{name}]\n  exportTo: {export}\n  ports: [{{number: 80, name: http}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]\n---\n"
        )
    };
    let yaml = se("own", "[\".\"]", 7050)
        + &se("nobody", "[\"~\"]", 7051)
        + &se("shared", "[\"*\"]", 7052)
        + &se("listed", "[prod, web]", 7053)
        + &se("listed2", "[]", 7054)
        + EXPORTS;
    let prod = Mesh::new(&yaml, "prod");
    prod.check(&[
        // SEMANTICS HOST-8: `.` → own namespace only; `~` → nobody; a list → those.
        case("HOST-8", get("own.team", "/"), &[NoRoute]),
        case("HOST-8", get("nobody.team", "/"), &[NoRoute]),
        case(
            "HOST-8",
            get("listed.team", "/"),
            &[Direct(200, "for-prod")],
        ),
        // The VirtualService exported to `.` is absent for prod: the default route applies.
        case(
            "HOST-8",
            get("shared.team", "/"),
            &[
                Cluster("outbound|80||shared.team.svc.cluster.local"),
                Endpoint(7052),
                Route("default"),
            ],
        ),
        // `exportTo: []` means everyone; the `~` VirtualService is ignored.
        case(
            "HOST-8",
            get("listed2.team", "/shared"),
            &[NoCluster(UnknownSubset)],
        ),
        // A DestinationRule exported to `.` is not seen from prod; one exported to prod is.
        case(
            "HOST-8",
            get("listed2.team", "/other"),
            &[
                Cluster("outbound|80|s1|listed.team.svc.cluster.local"),
                Endpoint(7053),
            ],
        ),
    ]);
    let team = Mesh::new(&yaml, "team");
    team.check(&[
        case(
            "HOST-8",
            get("own", "/"),
            &[Cluster("outbound|80||own.team.svc.cluster.local")],
        ),
        case("HOST-8", get("shared", "/"), &[Direct(200, "team-only")]),
        case("HOST-8", get("nobody", "/"), &[NoRoute]),
    ]);
}

#[test]
fn oldest_virtual_service_owns_a_host() {
    let vs = |name: &str, ns: &str, ts: Option<&str>, hosts: &str| {
        let ts = ts.map_or(String::new(), |t| format!(", creationTimestamp: \"{t}\""));
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}{ts}}}\nspec:\n  hosts: [{hosts}]\n  http: [{{directResponse: {{status: 200, body: {{string: {ns}/{name}}}}}}}]\n---\n"
        )
    };
    let yaml = service("ratings", "prod", "ratings", 80, 7060)
        + &service("details", "prod", "details", 80, 7061)
        + REVIEWS
        // Listed first but younger.
        + &vs("young", "prod", Some("2024-06-01T00:00:00Z"), "reviews, ratings")
        + &vs("old", "prod", Some("2024-01-01T00:00:00Z"), "reviews")
        // Same timestamp: namespace, then name.
        + &vs("b", "prod", Some("2024-01-01T00:00:00Z"), "details.prod")
        + &vs("a", "zeta", Some("2024-01-01T00:00:00Z"), "details.prod")
        + &vs("a", "alpha", Some("2024-01-01T00:00:00Z"), "details.prod");
    let mesh = Mesh::new(&yaml, "prod");
    mesh.check(&[
        // SEMANTICS HOST-9 (pitfall): the oldest by creationTimestamp, not file order.
        case(
            "HOST-9",
            get("reviews:9080", "/"),
            &[Direct(200, "prod/old")],
        ),
        // The younger one still owns the hosts nobody older claims.
        case("HOST-9", get("ratings", "/"), &[Direct(200, "prod/young")]),
        // SEMANTICS HOST-9: equal timestamps → namespace/name alphabetical.
        case("HOST-9", get("details", "/"), &[Direct(200, "alpha/a")]),
    ]);
    // SEMANTICS HOST-9 (ours): without timestamps, load order (document order) decides.
    let yaml = service("ratings", "prod", "ratings", 80, 7060)
        + &vs("zz-first", "prod", None, "ratings")
        + &vs("aa-second", "prod", None, "ratings");
    Mesh::new(&yaml, "prod").check(&[case(
        "HOST-9",
        get("ratings", "/"),
        &[Direct(200, "prod/zz-first")],
    )]);
}

const GATEWAYS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gateway-only, namespace: prod}
spec:
  hosts: [reviews]
  gateways: [istio-system/ingress]
  http: [{directResponse: {status: 200, body: {string: gateway}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: both, namespace: prod}
spec:
  hosts: [ratings]
  gateways: [mesh, istio-system/ingress]
  http:
  - name: gw-block
    match: [{gateways: [istio-system/ingress], uri: {prefix: /gw}}]
    directResponse: {status: 200, body: {string: gateway-block}}
  - name: mesh-block
    match: [{gateways: [mesh], uri: {prefix: /gw}}]
    directResponse: {status: 200, body: {string: mesh-block}}
  - name: rest
    directResponse: {status: 200, body: {string: mesh}}
"#;

#[test]
fn gateway_bound_virtual_services_do_not_apply_to_sidecars() {
    let yaml = service("ratings", "prod", "ratings", 80, 7070) + REVIEWS + GATEWAYS;
    let mesh = Mesh::new(&yaml, "prod");
    mesh.check(&[
        // SEMANTICS HOST-10: gateways without `mesh` → ignored by the sidecar.
        case(
            "HOST-10",
            get("reviews:9080", "/"),
            &[Cluster(BASE), Route("default")],
        ),
        // SEMANTICS HOST-10: `mesh` in the list → applies; match-level gateways per block.
        case(
            "HOST-10",
            get("ratings", "/gw"),
            &[Direct(200, "mesh-block"), Route("mesh-block")],
        ),
        case("HOST-10", get("ratings", "/x"), &[Direct(200, "mesh")]),
    ]);
}

const VS_ONLY: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: facade, namespace: prod}
spec:
  hosts: [facade.internal]
  http:
  - name: moved
    match: [{uri: {prefix: /old}}]
    redirect: {uri: /new}
  - name: to-reviews
    match: [{uri: {prefix: /reviews}}]
    route: [{destination: {host: reviews}}]
  - name: self
    match: [{uri: {prefix: /self}}]
    route: [{destination: {host: facade.internal}}]
  - name: static
    directResponse: {status: 200, body: {string: facade}}
"#;

#[test]
fn virtual_service_only_hosts_still_route() {
    let mesh = Mesh::new(&format!("{REVIEWS}{VS_ONLY}"), "prod");
    mesh.check(&[
        // SEMANTICS HOST-11: routes of a host that is no service still work …
        case(
            "HOST-11",
            get("facade.internal", "/x"),
            &[Direct(200, "facade"), Route("static")],
        ),
        case(
            "HOST-11",
            get("facade.internal:8080", "/old/a"),
            &[Redirect(301, "http://facade.internal:8080/new")],
        ),
        case(
            "HOST-11",
            get("facade.internal", "/reviews"),
            &[Cluster(BASE)],
        ),
        // … but forwarding to it has no cluster → NC.
        case(
            "HOST-11",
            get("facade.internal", "/self"),
            &[NoCluster(UnknownHost)],
        ),
    ]);
}

const DR_LOOKUP: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /pick}}]
    route: [{destination: {host: reviews, subset: pick}}]
  - match: [{uri: {prefix: /only-prod}}]
    route: [{destination: {host: reviews, subset: only-prod}}]
  - match: [{uri: {prefix: /only-root}}]
    route: [{destination: {host: reviews, subset: only-root}}]
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-client, namespace: web}
spec:
  host: reviews.prod.svc.cluster.local
  subsets: [{name: pick, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-selected, namespace: web}
spec:
  host: reviews.prod.svc.cluster.local
  workloadSelector: {matchLabels: {app: canary-client}}
  subsets: [{name: pick, labels: {version: v3}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: prod}
spec:
  host: reviews
  subsets:
  - {name: pick, labels: {version: v2}}
  - {name: only-prod, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-root, namespace: istio-system}
spec:
  host: reviews.prod.svc.cluster.local
  subsets:
  - {name: pick, labels: {version: v3}}
  - {name: only-root, labels: {version: v3}}
"#;

/// REVIEWS without its DestinationRule.
fn reviews_service() -> &'static str {
    REVIEWS
        .split("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule")
        .next()
        .unwrap()
}

#[test]
fn destination_rule_lookup_order() {
    let yaml = format!("{}---\n{DR_LOOKUP}", reviews_service());
    let pick = |subset: &'static str| match subset {
        "pick" => "outbound|9080|pick|reviews.prod.svc.cluster.local",
        _ => "outbound|9080|only-prod|reviews.prod.svc.cluster.local",
    };
    // SEMANTICS HOST-12: the client's namespace first (pitfall 4: the whole rule; no merge
    // with the service namespace's rule).
    Mesh::new(&yaml, "web").check(&[
        case(
            "HOST-12",
            get("reviews.prod:9080", "/pick"),
            &[Cluster(pick("pick")), Endpoint(9081)],
        ),
        case(
            "HOST-12",
            get("reviews.prod:9080", "/only-prod"),
            &[NoCluster(UnknownSubset)],
        ),
        case(
            "HOST-12",
            get("reviews.prod:9080", "/only-root"),
            &[NoCluster(UnknownSubset)],
        ),
    ]);
    // SEMANTICS HOST-12: workloadSelector restricts a rule to the proxies it selects.
    Mesh::labelled(&yaml, "web", &[("app", "canary-client")]).check(&[case(
        "HOST-12",
        get("reviews.prod:9080", "/pick"),
        &[Endpoint(9083)],
    )]);
    // SEMANTICS HOST-12: then the service's namespace.
    Mesh::new(&yaml, "prod").check(&[
        case("HOST-12", get("reviews:9080", "/pick"), &[Endpoint(9082)]),
        case(
            "HOST-12",
            get("reviews:9080", "/only-prod"),
            &[Cluster(pick("only-prod")), Endpoint(9082)],
        ),
        case(
            "HOST-12",
            get("reviews:9080", "/only-root"),
            &[NoCluster(UnknownSubset)],
        ),
    ]);
    Mesh::new(&yaml, "other").check(&[case(
        "HOST-12",
        get("reviews.prod:9080", "/pick"),
        &[Endpoint(9082)],
    )]);
    // SEMANTICS HOST-12: then the root namespace.
    let root_only: String = DR_LOOKUP
        .split("---\n")
        .filter(|doc| doc.contains("VirtualService") || doc.contains("istio-system"))
        .collect::<Vec<_>>()
        .join("---\n");
    let yaml = format!("{}---\n{root_only}", reviews_service());
    Mesh::new(&yaml, "other").check(&[
        case(
            "HOST-12",
            get("reviews.prod:9080", "/pick"),
            &[Endpoint(9083)],
        ),
        case(
            "HOST-12",
            get("reviews.prod:9080", "/only-root"),
            &[Endpoint(9083)],
        ),
    ]);
}

const DR_MERGE: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /pick}}]
    route: [{destination: {host: reviews, subset: pick}}]
  - match: [{uri: {prefix: /extra}}]
    route: [{destination: {host: reviews, subset: extra}}]
  - route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: younger, namespace: prod, creationTimestamp: "2024-06-01T00:00:00Z"}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - {name: pick, labels: {version: v2}}
  - {name: extra, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: older, namespace: prod, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets: [{name: pick, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wildcard, namespace: prod}
spec:
  host: "*.prod.svc.cluster.local"
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets: [{name: pick, labels: {version: v3}}, {name: wild, labels: {version: v3}}]
"#;

#[test]
fn destination_rules_merge_within_a_namespace() {
    use mesh_core::model::SimpleLb;
    use mesh_routing::balance::BalancerKind;
    let yaml = format!("{}---\n{DR_MERGE}", reviews_service());
    Mesh::new(&yaml, "prod").check(&[
        // SEMANTICS HOST-12: an exact host beats a wildcard host in the same namespace; rules
        // of one host merge: first (oldest) definition of a subset wins, subsets concatenate.
        case("HOST-12", get("reviews:9080", "/pick"), &[Endpoint(9081)]),
        case(
            "HOST-12",
            get("reviews:9080", "/extra"),
            &[
                Endpoint(9083),
                Cluster("outbound|9080|extra|reviews.prod.svc.cluster.local"),
            ],
        ),
        // SEMANTICS HOST-12: the oldest top-level trafficPolicy wins.
        case(
            "HOST-12",
            get("reviews:9080", "/"),
            &[
                Balancer(BalancerKind::Random),
                Policy("loadBalancer RANDOM", |p| {
                    p.load_balancer.as_ref().and_then(|l| l.simple) == Some(SimpleLb::Random)
                }),
            ],
        ),
    ]);
    // Without the exact rules, the wildcard one applies.
    let wildcard_only: String = DR_MERGE
        .split("---\n")
        .filter(|doc| doc.contains("VirtualService") || doc.contains("name: wildcard"))
        .collect::<Vec<_>>()
        .join("---\n");
    let yaml = format!("{}---\n{wildcard_only}", reviews_service());
    Mesh::new(&yaml, "prod").check(&[
        case("HOST-12", get("reviews:9080", "/pick"), &[Endpoint(9083)]),
        case(
            "HOST-12",
            get("reviews:9080", "/"),
            &[Balancer(BalancerKind::LeastRequest)],
        ),
    ]);
}
