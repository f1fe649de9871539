//! Route actions (SEMANTICS VS-14..VS-37): weights, subsets, ports, rewrites, redirects,
//! direct responses, header edits, faults, mirrors, timeouts, CORS.

use mesh_core::random::Random;
use mesh_routing::decide::{Next, decide};
use mesh_routing::route::NoCluster::{UnknownPort, UnknownSubset};

use crate::fixtures::{REVIEWS, V1, V2, V3, service};
use crate::harness::{Expect::*, Mesh, case, get, req, url};

const RATINGS: &str = "outbound|9080||ratings.prod.svc.cluster.local";

const ACTIONS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  http:
  - name: split
    match: [{uri: {prefix: /split}}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
  - name: single-zero
    match: [{uri: {prefix: /single-zero}}]
    route: [{destination: {host: reviews, subset: v2}, weight: 0}]
  - name: zero-of-two
    match: [{uri: {prefix: /zero-of-two}}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 0}
    - {destination: {host: reviews, subset: v3}, weight: 5}
  - name: ghost
    match: [{uri: {prefix: /ghost}}]
    route: [{destination: {host: reviews, subset: nope}}]
  - name: ghost-port
    match: [{uri: {prefix: /gport}}]
    route: [{destination: {host: reviews, subset: nope, port: {number: 9080}}}]
  - name: empty-subset
    match: [{uri: {prefix: /empty}}]
    headers: {response: {set: {x-route: empty}}}
    route: [{destination: {host: reviews, subset: v9}}]
  - name: no-dr
    match: [{uri: {prefix: /no-dr}}]
    route: [{destination: {host: ratings, subset: v1}}]
  - name: no-dr-base
    match: [{uri: {prefix: /ratings-base}}]
    route: [{destination: {host: ratings}}]
  - name: rw-prefix
    match: [{uri: {prefix: /ratings}}]
    rewrite: {uri: /v1/bookRatings}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: rw-exact
    match: [{uri: {exact: /exact-rw}}]
    rewrite: {uri: /replaced}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: rw-regex-match
    match: [{uri: {regex: '/re/[a-z]+'}}]
    rewrite: {uri: /replaced}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: rw-no-uri
    match: [{headers: {x-rewrite: {exact: whole}}}]
    rewrite: {uri: /whole}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: rw-slash
    match: [{uri: {prefix: /foo}}]
    rewrite: {uri: /}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: rw-blocks
    match: [{name: one, uri: {prefix: /one/}}, {name: two, uri: {prefix: /second/}}]
    rewrite: {uri: /n/}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: rw-regex
    match: [{uri: {prefix: /service/}}]
    rewrite: {uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: '/customprefix\2/\1'}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: rw-regex-all
    match: [{uri: {prefix: /aaa}}]
    rewrite: {uriRegexRewrite: {match: 'a', rewrite: 'b'}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: rw-authority
    match: [{uri: {prefix: /auth}}]
    rewrite: {authority: reviews-v2.internal:8080}
    route: [{destination: {host: reviews, subset: v2}}]
  - name: plain
    match: [{uri: {prefix: /plain}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: hdr-one
    match: [{uri: {prefix: /hdr-one}}]
    headers:
      request: {set: {x-env: route}, add: {x-route: r}, remove: [x-tag, x-drop]}
      response: {set: {x-resp: route}, add: {x-route-resp: r}}
    route:
    - destination: {host: reviews, subset: v1}
      headers:
        request: {set: {x-env: dest}, add: {x-tag: d}}
        response: {set: {x-resp: dest}, add: {x-dest-resp: d}}
  - name: hdr-two
    match: [{uri: {prefix: /hdr-two}}]
    headers:
      request: {set: {x-env: route}, add: {x-route: r}, remove: [x-tag, x-drop]}
      response: {set: {x-resp: route}, add: {x-route-resp: r}}
    route:
    - destination: {host: reviews, subset: v1}
      weight: 100
      headers:
        request: {set: {x-env: dest}, add: {x-tag: d}}
        response: {set: {x-resp: dest}, add: {x-dest-resp: d}}
    - destination: {host: reviews, subset: v2}
      weight: 0
  - name: hdr-host
    match: [{uri: {prefix: /hdr-host}}]
    headers: {request: {set: {host: set.example.com}, add: {host: added.example.com}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: hdr-host-add
    match: [{uri: {prefix: /add-host}}]
    route:
    - destination: {host: reviews, subset: v1}
      headers: {request: {add: {host: added.example.com}}}
  - name: delay
    match: [{uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 3s, percentage: {value: 100}}}
    timeout: 1s
    route: [{destination: {host: reviews, subset: v1}}]
  - name: delay-no-percentage
    match: [{uri: {prefix: /nodelay}}]
    fault: {delay: {fixedDelay: 3s}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: delay-percent
    match: [{uri: {prefix: /intdelay}}]
    fault: {delay: {fixedDelay: 2s, percent: 100}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: abort
    match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    headers: {response: {set: {x-fault: "yes"}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: abort-no-percentage
    match: [{uri: {prefix: /noabort}}]
    fault: {abort: {httpStatus: 503}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: abort-grpc
    match: [{uri: {prefix: /grpc}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: delay-and-abort
    match: [{uri: {prefix: /both}}]
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 100}}
      abort: {httpStatus: 500, percentage: {value: 100}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: mirror-default
    match: [{uri: {prefix: /mirror-all}}]
    mirror: {host: reviews, subset: v3}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: mirror-zero
    match: [{uri: {prefix: /mirror-zero}}]
    mirror: {host: reviews, subset: v3}
    mirrorPercentage: {value: 0}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: mirror-half
    match: [{uri: {prefix: /mirror-half}}]
    mirror: {host: ratings}
    mirrorPercentage: {value: 50.5}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: mirror-int
    match: [{uri: {prefix: /mirror-int}}]
    mirror: {host: ratings}
    mirrorPercent: 0
    route: [{destination: {host: reviews, subset: v1}}]
  - name: mirrors
    match: [{uri: {prefix: /mirrors}}]
    mirrors:
    - {destination: {host: reviews, subset: v3}}
    - {destination: {host: ratings}, percentage: {value: 25}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: timeout-zero
    match: [{uri: {prefix: /t0}}]
    timeout: 0s
    route: [{destination: {host: reviews, subset: v1}}]
  - name: cors
    match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}, {prefix: "https://dev."}]
      allowMethods: [GET, POST]
      allowHeaders: [x-token]
      exposeHeaders: [x-trace]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: reviews, subset: v1}}]
  - name: cors-ignore
    match: [{uri: {prefix: /strict}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}]
      unmatchedPreflights: IGNORE
    route: [{destination: {host: reviews, subset: v1}}]
  - name: cors-any
    match: [{uri: {prefix: /any}}]
    corsPolicy: {allowOrigins: [{exact: "*"}]}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: fallback
    route: [{destination: {host: reviews, subset: v1}}]
"#;

const LOCAL: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: old, namespace: prod}
spec:
  hosts: [old.example.com]
  http:
  - name: default-code
    match: [{uri: {prefix: /a}}]
    redirect: {uri: /b}
  - name: example
    match: [{uri: {prefix: /old/}}]
    redirect: {prefixRewrite: /new/, authority: b.example.com, redirectCode: 308}
    headers: {response: {set: {x-redirected: "yes"}}}
  - name: own-query
    match: [{uri: {prefix: /q}}]
    redirect: {uri: "/moved?z=2", redirectCode: 302}
  - name: https
    match: [{uri: {prefix: /secure}}]
    redirect: {scheme: https, redirectCode: 307}
  - name: port
    match: [{uri: {prefix: /port}}]
    redirect: {port: 8443, redirectCode: 303}
  - name: default-port
    match: [{uri: {prefix: /dp}}]
    redirect: {scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}
  - name: request-port
    match: [{uri: {prefix: /rp}}]
    redirect: {authority: new.example.com, derivePort: FROM_REQUEST_PORT}
  - name: teapot
    match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: short and stout}}
  - name: bytes
    match: [{uri: {exact: /bytes}}]
    directResponse: {status: 200, body: {bytes: aGVsbG8=}}
  - name: empty
    match: [{uri: {exact: /empty}}]
    directResponse: {status: 204}
  - name: json
    match: [{uri: {exact: /json}}]
    directResponse: {status: 200, body: {string: '{"ok":true}'}}
    headers: {response: {set: {content-type: application/json}, add: {x-direct: "1"}}}
"#;

fn actions() -> Mesh {
    let yaml = format!(
        "{REVIEWS}{}{ACTIONS}",
        service("ratings", "prod", "ratings", 9080, 9181)
    );
    Mesh::new(&yaml, "prod")
}

const H: &str = "reviews:9080";

#[test]
fn destinations_subsets_and_weights() {
    actions().check(&[
        // SEMANTICS VS-14: one destination gets 100%, whatever its weight (0 included).
        case(
            "VS-14",
            get(H, "/single-zero"),
            &[Cluster(V2), Endpoint(9082)],
        ),
        case("VS-14", get(H, "/single-zero").seed(99), &[Cluster(V2)]),
        case("VS-14", get(H, "/zero-of-two"), &[Cluster(V3)]),
        // SEMANTICS VS-16 (pitfall): an unknown subset → 503 NC with an empty body, not 404.
        case(
            "VS-16",
            get(H, "/ghost"),
            &[Route("ghost"), NoCluster(UnknownSubset)],
        ),
        case("VS-16", get(H, "/gport"), &[NoCluster(UnknownSubset)]),
        // SEMANTICS VS-16: no DestinationRule at all for the host → every subset is unknown.
        case("VS-16", get(H, "/no-dr"), &[NoCluster(UnknownSubset)]),
        case(
            "VS-16",
            get(H, "/ratings-base"),
            &[Cluster(RATINGS), Endpoint(9181)],
        ),
        // SEMANTICS VS-16, DR-8: a subset selecting no endpoint → 503 UH; the route's
        // response edits apply to that reply too (VS-26).
        case(
            "VS-16",
            get(H, "/empty"),
            &[NoHealthy, RespHeader("x-route", &["empty"])],
        ),
        // SEMANTICS VS-13: catch-all last.
        case(
            "VS-1",
            get(H, "/whatever"),
            &[Cluster(V1), Route("fallback")],
        ),
    ]);
}

#[test]
fn weighted_split_is_statistically_90_10() {
    // SEMANTICS VS-14: 90/10 over 10,000 seeded decisions; v2 gets 1,000 ± 4σ (σ = 30).
    let mesh = actions();
    let req = get(H, "/split").build();
    let mut rng = Random::seeded(0x5eed);
    let mut v2 = 0;
    for _ in 0..10_000 {
        let d = decide(&mesh.table, &req, 9080, &mut rng);
        let Next::Forward(dest) = d.next else {
            panic!("forwarded")
        };
        match dest.subset.as_deref() {
            Some("v2") => v2 += 1,
            Some("v1") => {}
            other => panic!("unexpected subset {other:?}"),
        }
    }
    assert!((880..=1_120).contains(&v2), "v2 got {v2} of 10,000");
}

#[test]
fn weight_zero_gets_nothing_and_a_lone_zero_gets_everything() {
    // SEMANTICS VS-14: `weight: 0` next to another destination receives nothing; a single
    // destination with weight 0 receives everything.
    let mesh = actions();
    let mut rng = Random::seeded(7);
    for (path, want) in [("/zero-of-two", "v3"), ("/single-zero", "v2")] {
        let req = get(H, path).build();
        for _ in 0..2_000 {
            let d = decide(&mesh.table, &req, 9080, &mut rng);
            let Next::Forward(dest) = d.next else {
                panic!("forwarded")
            };
            assert_eq!(dest.subset.as_deref(), Some(want), "{path}");
        }
    }
}

#[test]
fn rewrites() {
    actions().check(&[
        // SEMANTICS VS-19: a matched prefix is replaced, the rest and the query kept.
        case(
            "VS-19",
            get(H, "/ratings/5?x=1"),
            &[Route("rw-prefix"), Path("/v1/bookRatings/5?x=1")],
        ),
        // SEMANTICS VS-19: with exact, regex or no uri match the whole path is replaced,
        // the query kept.
        case("VS-19", get(H, "/exact-rw?x=1"), &[Path("/replaced?x=1")]),
        case(
            "VS-19",
            get(H, "/re/abc?y=2"),
            &[Route("rw-regex-match"), Path("/replaced?y=2")],
        ),
        case(
            "VS-19",
            get(H, "/any/thing?z").header("x-rewrite", "whole"),
            &[Route("rw-no-uri"), Path("/whole?z")],
        ),
        // SEMANTICS VS-19 (pitfall): prefix /foo + rewrite / → //bar.
        case(
            "VS-19",
            get(H, "/foo/bar"),
            &[Route("rw-slash"), Path("//bar")],
        ),
        // SEMANTICS VS-19: the prefix of the block that matched is the one replaced.
        case(
            "VS-19",
            get(H, "/one/x"),
            &[Route("rw-blocks.one"), Path("/n/x")],
        ),
        case(
            "VS-19",
            get(H, "/second/x"),
            &[Route("rw-blocks.two"), Path("/n/x")],
        ),
        // SEMANTICS VS-20: regex search-and-replace on the path, groups, query kept.
        case(
            "VS-20",
            get(H, "/service/update/v1/api?x=1"),
            &[Path("/customprefix/v1/api/update?x=1")],
        ),
        case("VS-20", get(H, "/aaa/banana"), &[Path("/bbb/bbnbnb")]),
        // SEMANTICS VS-21: rewrite.authority replaces Host; otherwise the original authority
        // goes upstream unchanged (never the destination's name).
        case(
            "VS-21",
            get(H, "/auth"),
            &[Cluster(V2), Authority("reviews-v2.internal:8080")],
        ),
        case(
            "VS-21",
            get("reviews.prod:9080", "/plain"),
            &[Cluster(V1), Authority("reviews.prod:9080"), Path("/plain")],
        ),
        case(
            "VS-21",
            url("GET", "http://reviews:9080/plain"),
            &[Authority("reviews:9080")],
        ),
    ]);
}

#[test]
fn header_edits_depend_on_the_number_of_destinations() {
    let sent = |path: &str| {
        get(H, path)
            .header("x-tag", "orig")
            .header("x-drop", "1")
            .header("x-keep", "k")
    };
    actions().check(&[
        // SEMANTICS VS-25 (pitfall): one destination → one level: removes first, then route
        // set/add, then destination set/add — the destination's set wins, and the route's
        // remove does not delete what the destination adds.
        case(
            "VS-25",
            sent("/hdr-one"),
            &[
                Cluster(V1),
                ReqHeader("x-env", &["dest"]),
                ReqHeader("x-tag", &["d"]),
                ReqHeader("x-drop", &[]),
                ReqHeader("x-route", &["r"]),
                ReqHeader("x-keep", &["k"]),
                RespHeader("x-resp", &["dest"]),
                RespHeader("x-dest-resp", &["d"]),
                RespHeader("x-route-resp", &["r"]),
            ],
        ),
        // SEMANTICS VS-25 (pitfall): several destinations → the destination's edits first,
        // then the route's: the route's set wins and its remove deletes the destination's add.
        case(
            "VS-25",
            sent("/hdr-two"),
            &[
                Cluster(V1),
                ReqHeader("x-env", &["route"]),
                ReqHeader("x-tag", &[]),
                ReqHeader("x-drop", &[]),
                ReqHeader("x-route", &["r"]),
                ReqHeader("x-keep", &["k"]),
                RespHeader("x-resp", &["route"]),
                RespHeader("x-dest-resp", &["d"]),
                RespHeader("x-route-resp", &["r"]),
            ],
        ),
        // SEMANTICS VS-25, VS-26: set/add of `host` is an authority rewrite, set winning.
        case(
            "VS-25",
            get(H, "/hdr-host"),
            &[
                Authority("set.example.com"),
                ReqHeader("host", &["reviews:9080"]),
            ],
        ),
        case(
            "VS-25",
            get(H, "/add-host"),
            &[Authority("added.example.com")],
        ),
    ]);
}

#[test]
fn redirects_and_direct_responses() {
    let mesh = Mesh::new(LOCAL, "prod");
    mesh.check(&[
        // SEMANTICS VS-22: default 301; `uri` replaces the path, the query is kept.
        case(
            "VS-22",
            get("old.example.com", "/a?q=1"),
            &[
                Redirect(301, "http://old.example.com/b?q=1"),
                Route("default-code"),
            ],
        ),
        // SEMANTICS VS-22: the rule's example; the route's response edits apply (VS-26).
        case(
            "VS-22",
            url("GET", "http://old.example.com/old/x?q=1"),
            &[
                Redirect(308, "http://b.example.com/new/x?q=1"),
                RespHeader("x-redirected", &["yes"]),
            ],
        ),
        // SEMANTICS VS-22: `authority` drops the request's port.
        case(
            "VS-22",
            get("old.example.com:8080", "/old/x"),
            &[Redirect(308, "http://b.example.com/new/x")],
        ),
        // SEMANTICS VS-22: a `uri` with its own query replaces the query; the port is kept.
        case(
            "VS-22",
            get("old.example.com:8080", "/q?x=1"),
            &[Redirect(302, "http://old.example.com:8080/moved?z=2")],
        ),
        case(
            "VS-22",
            get("old.example.com", "/secure/x?y"),
            &[Redirect(307, "https://old.example.com/secure/x?y")],
        ),
        case(
            "VS-22",
            get("old.example.com", "/port"),
            &[Redirect(303, "http://old.example.com:8443/port")],
        ),
        case(
            "VS-22",
            get("old.example.com:8080", "/dp"),
            &[Redirect(301, "https://old.example.com/dp")],
        ),
        case(
            "VS-22",
            get("old.example.com:8080", "/rp"),
            &[Redirect(301, "http://new.example.com:8080/rp")],
        ),
        // SEMANTICS VS-23: status and body; text/plain when there is a body, nothing when not.
        case(
            "VS-23",
            get("old.example.com", "/teapot"),
            &[
                Direct(418, "short and stout"),
                RespHeader("content-type", &["text/plain"]),
            ],
        ),
        case(
            "VS-23",
            get("old.example.com", "/bytes"),
            &[Direct(200, "hello")],
        ),
        case(
            "VS-23",
            get("old.example.com", "/empty"),
            &[Direct(204, ""), RespHeader("content-type", &[])],
        ),
        // SEMANTICS VS-23: route-level response edits set the content type.
        case(
            "VS-23",
            get("old.example.com", "/json"),
            &[
                Direct(200, r#"{"ok":true}"#),
                RespHeader("content-type", &["application/json"]),
                RespHeader("x-direct", &["1"]),
            ],
        ),
        case("VS-13", get("old.example.com", "/nothing"), &[NoRoute]),
    ]);
}

#[test]
fn faults() {
    actions().check(&[
        // SEMANTICS VS-27: a delay with percentage 100 delays; not part of the timeout (VS-30).
        case(
            "VS-27",
            get(H, "/delay"),
            &[Cluster(V1), Delay(Some(3_000)), Timeout(Some(1_000))],
        ),
        // SEMANTICS VS-30 (pitfall): the delay and the route timeout are separate: 3 s of
        // delay under a 1 s timeout; the timer starts after the delay (see the layer test).
        case(
            "VS-30",
            get(H, "/delay"),
            &[Delay(Some(3_000)), Timeout(Some(1_000))],
        ),
        // SEMANTICS VS-27 (pitfall): no percentage → no delay.
        case("VS-27", get(H, "/nodelay"), &[Cluster(V1), Delay(None)]),
        // SEMANTICS VS-27: the deprecated integer `percent` still counts.
        case("VS-27", get(H, "/intdelay"), &[Delay(Some(2_000))]),
        // SEMANTICS VS-28: abort with the status, body `fault filter abort`, flag FI; the
        // route's response edits apply (VS-26).
        case(
            "VS-28",
            get(H, "/abort"),
            &[
                Abort(503),
                RespHeader("content-type", &["text/plain"]),
                RespHeader("x-fault", &["yes"]),
            ],
        ),
        // SEMANTICS VS-28 (pitfall): no percentage → no abort.
        case("VS-28", get(H, "/noabort"), &[Cluster(V1)]),
        // SEMANTICS VS-28 (pitfall): grpcStatus by name → HTTP 200 with grpc-status 14.
        case(
            "VS-28",
            req("POST", H, "/grpc").header("content-type", "application/grpc"),
            &[GrpcAbort(14)],
        ),
        // SEMANTICS VS-29: both draws may hit one request: delay, then abort.
        case("VS-29", get(H, "/both"), &[Abort(500), Delay(Some(1_000))]),
    ]);
}

#[test]
fn mirrors_and_timeouts() {
    actions().check(&[
        // SEMANTICS VS-32 (pitfall): mirror without mirrorPercentage mirrors everything.
        case(
            "VS-32",
            get(H, "/mirror-all"),
            &[Cluster(V1), Mirrors(&[(V3, 100.0)])],
        ),
        case("VS-32", get(H, "/mirror-zero"), &[Mirrors(&[])]),
        case(
            "VS-32",
            get(H, "/mirror-half"),
            &[Mirrors(&[(RATINGS, 50.5)])],
        ),
        // SEMANTICS VS-32: the deprecated integer mirrorPercent 0 means none.
        case("VS-32", get(H, "/mirror-int"), &[Mirrors(&[])]),
        // SEMANTICS VS-31, VS-32: the list form, each with its own percentage (absent → 100).
        case(
            "VS-31",
            get(H, "/mirrors"),
            &[Cluster(V1), Mirrors(&[(V3, 100.0), (RATINGS, 25.0)])],
        ),
        // SEMANTICS VS-34 (pitfall): no timeout unless configured; `0s` disables.
        case("VS-34", get(H, "/plain"), &[Timeout(None)]),
        case("VS-34", get(H, "/t0"), &[Timeout(None)]),
        case("VS-34", get(H, "/delay"), &[Timeout(Some(1_000))]),
    ]);
    // Mirrors draw independently of the weighted choice (VS-15), and 50.5% is drawn as such.
    let mesh = actions();
    let req = get(H, "/mirror-half").build();
    let mut rng = Random::seeded(3);
    let mut hits = 0;
    for _ in 0..10_000 {
        let d = decide(&mesh.table, &req, 9080, &mut rng);
        let m = &d.matched.unwrap().route.mirrors[0];
        if rng.chance(m.percent) {
            hits += 1;
        }
    }
    assert!((4_850..=5_250).contains(&hits), "{hits}");
}

#[test]
fn cors() {
    let preflight = |path: &str, origin: &str| {
        req("OPTIONS", H, path)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
    };
    actions().check(&[
        // SEMANTICS VS-37: a matching preflight is answered locally, 200, with the allow
        // headers; max-age in seconds.
        case(
            "VS-37",
            preflight("/cors", "https://app.example.com"),
            &[
                Preflight,
                RespHeader("access-control-allow-origin", &["https://app.example.com"]),
                RespHeader("access-control-allow-methods", &["GET,POST"]),
                RespHeader("access-control-allow-headers", &["x-token"]),
                RespHeader("access-control-max-age", &["86400"]),
                RespHeader("access-control-allow-credentials", &["true"]),
            ],
        ),
        // SEMANTICS VS-37: a matching simple request is forwarded; the response gets the
        // request's origin, credentials and expose-headers.
        case(
            "VS-37",
            get(H, "/cors").header("origin", "https://dev.example.org"),
            &[
                Cluster(V1),
                RespHeader("access-control-allow-origin", &["https://dev.example.org"]),
                RespHeader("access-control-expose-headers", &["x-trace"]),
                RespHeader("access-control-allow-credentials", &["true"]),
            ],
        ),
        // SEMANTICS VS-37: non-matching origins are forwarded without CORS headers, preflights
        // too — unless unmatchedPreflights: IGNORE, which answers them without CORS headers.
        case(
            "VS-37",
            get(H, "/cors").header("origin", "https://evil.example"),
            &[Cluster(V1), RespHeader("access-control-allow-origin", &[])],
        ),
        case(
            "VS-37",
            preflight("/cors", "https://evil.example"),
            &[Cluster(V1), RespHeader("access-control-allow-origin", &[])],
        ),
        case(
            "VS-37",
            preflight("/strict", "https://evil.example"),
            &[Preflight, RespHeader("access-control-allow-origin", &[])],
        ),
        case(
            "VS-37",
            get(H, "/cors"),
            &[Cluster(V1), RespHeader("access-control-allow-origin", &[])],
        ),
        // SEMANTICS VS-37: `exact: "*"` allows any origin, echoed back.
        case(
            "VS-37",
            get(H, "/any").header("origin", "https://x.test"),
            &[RespHeader(
                "access-control-allow-origin",
                &["https://x.test"],
            )],
        ),
    ]);
}

#[test]
fn unknown_port_destination() {
    // SEMANTICS VS-17: a destination port the service lacks → NC (no cluster carries it).
    let yaml = format!(
        "{REVIEWS}apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: prod}}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{{destination: {{host: reviews, subset: v1, port: {{number: 1234}}}}}}]\n"
    );
    Mesh::new(&yaml, "prod").check(&[case("VS-17", get(H, "/"), &[NoCluster(UnknownPort)])]);
}
