//! VirtualService and DestinationRule routing end to end: the real proxy, real upstreams on
//! loopback, real HTTP. `x-served-by` says which upstream served (SEMANTICS §2, §4).

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use mesh_test::{TestBody, TestServer};

use crate::harness::{Harness, send, text};

/// A STATIC ServiceEntry `host` (namespace `test`) on `port` with one endpoint per
/// `(version, address)`, and a DestinationRule with one subset per version plus `policy`
/// (YAML for `trafficPolicy`, or empty).
fn versioned(host: &str, port: u16, endpoints: &[(&str, SocketAddr)], policy: &str) -> String {
    let mut eps = String::new();
    let mut subsets = String::new();
    for (version, addr) in endpoints {
        eps.push_str(&format!(
            "  - {{address: {}, ports: {{http: {}}}, labels: {{version: {version}}}}}\n",
            addr.ip(),
            addr.port()
        ));
        if !subsets.contains(&format!("name: {version},")) {
            subsets.push_str(&format!(
                "  - {{name: {version}, labels: {{version: {version}}}}}\n"
            ));
        }
    }
    let policy = if policy.is_empty() {
        String::new()
    } else {
        format!("  trafficPolicy: {policy}\n")
    };
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {host}, namespace: test}}\nspec:\n  hosts: [{host}]\n  ports: [{{number: {port}, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints:\n{eps}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {host}, namespace: test}}\nspec:\n  host: {host}\n{policy}  subsets:\n{subsets}---\n"
    )
}

/// A VirtualService `name` for `host` with the given `http:` list (YAML, indented 2).
fn virtual_service(host: &str, http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {host}, namespace: test}}\nspec:\n  hosts: [{host}]\n  http:\n{http}---\n"
    )
}

/// GET `path` through the outbound listener with `Host: host` and extra headers.
async fn get(h: &Harness, host: &str, path: &str, headers: &[(&str, &str)]) -> Response<Bytes> {
    let mut req = Request::get(format!("http://{}{path}", h.out())).header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(h.out(), req).await
}

fn served_by(resp: &Response<Bytes>) -> &str {
    resp.headers()
        .get("x-served-by")
        .map_or("-", |v| v.to_str().unwrap())
}

async fn two_versions() -> (TestServer, TestServer) {
    (
        TestServer::builder().name("v1").start().await,
        TestServer::builder().name("v2").start().await,
    )
}

#[tokio::test]
async fn header_canary_goes_to_v2_everything_else_to_v1() {
    // SEMANTICS VS-1, VS-7, DR-1
    let (v1, v2) = two_versions().await;
    let yaml = versioned("reviews", 9080, &[("v1", v1.addr()), ("v2", v2.addr())], "")
        + &virtual_service(
            "reviews",
            "  - match: [{headers: {x-canary: {exact: \"true\"}}}]\n    route: [{destination: {host: reviews, subset: v2}}]\n  - route: [{destination: {host: reviews, subset: v1}}]\n",
        );
    let h = Harness::start(&yaml).await;
    for _ in 0..5 {
        let r = get(&h, "reviews:9080", "/", &[("x-canary", "true")]).await;
        assert_eq!((r.status().as_u16(), served_by(&r)), (200, "v2"));
        let r = get(&h, "reviews:9080", "/", &[]).await;
        assert_eq!((r.status().as_u16(), served_by(&r)), (200, "v1"));
        let r = get(&h, "reviews:9080", "/", &[("x-canary", "false")]).await;
        assert_eq!(served_by(&r), "v1");
    }
    assert_eq!((v1.request_count(), v2.request_count()), (10, 5));
}

#[tokio::test]
async fn weighted_split_sends_both_shares() {
    // SEMANTICS VS-14: 80/20 over 200 requests; v2 expects 40 (σ ≈ 5.7), bound ±4σ.
    let (v1, v2) = two_versions().await;
    let yaml = versioned("reviews", 9080, &[("v1", v1.addr()), ("v2", v2.addr())], "")
        + &virtual_service(
            "reviews",
            "  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 80}\n    - {destination: {host: reviews, subset: v2}, weight: 20}\n",
        );
    let h = Harness::start(&yaml).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..200 {
        let r = get(&h, "reviews:9080", "/", &[]).await;
        assert_eq!(r.status(), 200);
        *counts.entry(served_by(&r).to_owned()).or_default() += 1;
    }
    let (n1, n2) = (
        counts.get("v1").copied().unwrap_or(0),
        counts.get("v2").copied().unwrap_or(0),
    );
    assert_eq!(n1 + n2, 200, "{counts:?}");
    assert!((17..=63).contains(&n2), "v2 got {n2} of 200: {counts:?}");
}

const LOCAL: &str = "  - match: [{uri: {prefix: /old/}}]\n    redirect: {prefixRewrite: /new/, authority: b.example.com, redirectCode: 308}\n  - match: [{uri: {exact: /teapot}}]\n    directResponse: {status: 418, body: {string: short and stout}}\n  - match: [{uri: {exact: /json}}]\n    directResponse: {status: 200, body: {string: '{\"ok\":true}'}}\n    headers: {response: {set: {content-type: application/json}}}\n  - match: [{uri: {prefix: /abort}}]\n    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}\n    route: [{destination: {host: reviews}}]\n  - match: [{uri: {prefix: /pkg.Svc/}}]\n    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}\n    route: [{destination: {host: reviews}}]\n  - match: [{uri: {prefix: /no-percentage}}]\n    fault: {abort: {httpStatus: 503}}\n    route: [{destination: {host: reviews}}]\n  - match: [{uri: {prefix: /ghost}}]\n    route: [{destination: {host: reviews, subset: ghost}}]\n  - match: [{uri: {prefix: /known}}]\n    route: [{destination: {host: reviews}}]\n";

/// A DestinationRule that defines subset `ghost` for reviews but only for namespace `other`:
/// `analyze` warns (MESH0903), the proxy in `test` loads the config and never sees the subset.
const HIDDEN_GHOST: &str = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews-other, namespace: other}\nspec:\n  host: reviews.test.svc.cluster.local\n  exportTo: [\".\"]\n  subsets: [{name: ghost, labels: {version: v1}}]\n---\n";

#[tokio::test]
async fn local_answers_never_reach_the_upstream() {
    let (v1, _) = two_versions().await;
    let yaml = versioned("reviews", 9080, &[("v1", v1.addr())], "")
        + HIDDEN_GHOST
        + &virtual_service("reviews", LOCAL);
    let h = Harness::start(&yaml).await;

    // SEMANTICS VS-22: redirect status and location (query kept), empty body.
    let r = get(&h, "reviews:9080", "/old/x?q=1", &[]).await;
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "http://b.example.com/new/x?q=1");
    assert!(r.body().is_empty());

    // SEMANTICS VS-23: direct response with text/plain; edits may set the content type.
    let r = get(&h, "reviews:9080", "/teapot", &[]).await;
    assert_eq!(r.status(), 418);
    assert_eq!(text(&r), "short and stout");
    assert_eq!(r.headers()["content-type"], "text/plain");
    let r = get(&h, "reviews:9080", "/json", &[]).await;
    assert_eq!(text(&r), r#"{"ok":true}"#);
    assert_eq!(r.headers()["content-type"], "application/json");

    // SEMANTICS VS-28, ERR-2: fault abort with Envoy's body.
    let r = get(&h, "reviews:9080", "/abort", &[]).await;
    assert_eq!(r.status(), 503);
    assert_eq!(text(&r), "fault filter abort");
    assert_eq!(r.headers()["content-type"], "text/plain");
    // SEMANTICS VS-28 (pitfall): no percentage → no abort.
    let r = get(&h, "reviews:9080", "/no-percentage", &[]).await;
    assert_eq!((r.status().as_u16(), served_by(&r)), (200, "v1"));

    // SEMANTICS VS-16 (pitfall): unknown subset → 503 with an empty body, flag NC.
    let r = get(&h, "reviews:9080", "/ghost", &[]).await;
    assert_eq!(r.status(), 503);
    assert!(r.body().is_empty());
    // SEMANTICS VS-13: a known host whose routes all miss, and an unknown host → 404 NR.
    let r = get(&h, "reviews:9080", "/unrouted", &[]).await;
    assert_eq!(r.status(), 404);
    assert!(r.body().is_empty());
    let r = get(&h, "nowhere.example.com", "/", &[]).await;
    assert_eq!(r.status(), 404);

    let metrics = h.admin("/stats/prometheus").await;
    let metrics = text(&metrics);
    for (flag, n) in [("NC", 1), ("NR", 2), ("FI", 1)] {
        let line = format!(
            "mesh_local_replies_total{{listener=\"outbound\",response_flags=\"{flag}\"}} {n}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    // Only the no-percentage request reached the upstream.
    assert_eq!(v1.request_count(), 1);
}

#[tokio::test]
async fn grpc_status_abort_is_a_trailers_only_grpc_reply() {
    // SEMANTICS VS-28 (pitfall): grpcStatus UNAVAILABLE → HTTP 200, grpc-status 14.
    let (v1, _) = two_versions().await;
    let yaml = versioned("reviews", 9080, &[("v1", v1.addr())], "")
        + HIDDEN_GHOST
        + &virtual_service("reviews", LOCAL);
    let h = Harness::start(&yaml).await;
    // An h2c (prior knowledge) client of the proxy; `:authority` names the service.
    let stream = tokio::net::TcpStream::connect(h.out()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = Request::post("http://reviews:9080/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .body(TestBody::empty())
        .unwrap();
    let r = sender.send_request(req).await.unwrap();
    assert_eq!(r.version(), http::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["grpc-status"], "14");
    assert_eq!(r.headers()["content-type"], "application/grpc");
    // SEMANTICS ERR-1: the router's own error replies are converted for gRPC clients too:
    // unknown subset, 503 NC → grpc-status 14; no route, 404 NR → 12.
    for (path, status) in [("/ghost", "14"), ("/unrouted", "12")] {
        let req = Request::post(format!("http://reviews:9080{path}"))
            .header("content-type", "application/grpc")
            .body(TestBody::empty())
            .unwrap();
        let r = sender.send_request(req).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["grpc-status"], status, "{path}");
    }
    drop(sender);
    conn.abort();
    assert_eq!(v1.request_count(), 0);
}

#[tokio::test]
async fn rewrites_and_header_edits_reach_the_upstream() {
    let (v1, _) = two_versions().await;
    let http = "  - match: [{uri: {prefix: /ratings}}]\n    rewrite: {uri: /v1/bookRatings}\n    route: [{destination: {host: reviews}}]\n  - match: [{uri: {prefix: /authority}}]\n    rewrite: {authority: ratings.internal}\n    route: [{destination: {host: reviews}}]\n  - match: [{uri: {prefix: /headers}}]\n    headers:\n      request: {set: {x-env: route}, remove: [x-secret]}\n      response: {set: {x-route: edited}, remove: [x-served-by]}\n    route:\n    - destination: {host: reviews}\n      headers:\n        request: {set: {x-env: dest}, add: {x-tag: d}}\n        response: {add: {x-dest: d}}\n";
    let yaml =
        versioned("reviews", 9080, &[("v1", v1.addr())], "") + &virtual_service("reviews", http);
    let h = Harness::start(&yaml).await;

    // SEMANTICS VS-19: the matched prefix is replaced, the query kept.
    let r = get(&h, "reviews:9080", "/ratings/5?x=1", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-seen-uri"], "/v1/bookRatings/5?x=1");
    // SEMANTICS VS-21: rewrite.authority is the Host the upstream sees; otherwise the
    // original authority.
    let r = get(&h, "reviews:9080", "/authority", &[]).await;
    assert_eq!(r.headers()["x-seen-host"], "ratings.internal");
    let r = get(&h, "reviews.test:9080", "/ratings", &[]).await;
    assert_eq!(r.headers()["x-seen-host"], "reviews.test:9080");

    // SEMANTICS VS-25 (pitfall): one destination → the destination's set wins; response edits.
    let r = get(
        &h,
        "reviews:9080",
        "/headers",
        &[("x-secret", "s"), ("x-env", "client")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-route"], "edited");
    assert_eq!(r.headers()["x-dest"], "d");
    assert!(
        r.headers().get("x-served-by").is_none(),
        "removed by the route's response edit"
    );
    let seen = v1.requests();
    let seen = seen.last().unwrap();
    assert_eq!(seen.header("x-env"), Some("dest"));
    assert_eq!(seen.header("x-tag"), Some("d"));
    assert_eq!(seen.header("x-secret"), None);
}

#[tokio::test]
async fn cors_preflight_is_answered_by_the_proxy() {
    // SEMANTICS VS-37
    let (v1, _) = two_versions().await;
    let http = "  - corsPolicy:\n      allowOrigins: [{exact: \"https://app.example.com\"}]\n      allowMethods: [GET, POST]\n      allowHeaders: [x-token]\n      maxAge: 60s\n    route: [{destination: {host: reviews}}]\n";
    let yaml =
        versioned("reviews", 9080, &[("v1", v1.addr())], "") + &virtual_service("reviews", http);
    let h = Harness::start(&yaml).await;
    let preflight = |origin: &'static str| {
        Request::options(format!("http://{}/api", h.out()))
            .header("host", "reviews:9080")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
    };
    let r = send(h.out(), preflight("https://app.example.com")).await;
    assert_eq!(r.status(), 200);
    assert!(r.body().is_empty());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(r.headers()["access-control-allow-methods"], "GET,POST");
    assert_eq!(r.headers()["access-control-allow-headers"], "x-token");
    assert_eq!(r.headers()["access-control-max-age"], "60");
    assert_eq!(
        v1.request_count(),
        0,
        "a matching preflight is answered locally"
    );
    // A simple request with a matching origin is forwarded and gets the origin back.
    let r = get(
        &h,
        "reviews:9080",
        "/api",
        &[("origin", "https://app.example.com")],
    )
    .await;
    assert_eq!(served_by(&r), "v1");
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // A non-matching preflight is forwarded, without CORS headers.
    let r = send(h.out(), preflight("https://evil.example")).await;
    assert_eq!(served_by(&r), "v1");
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn consistent_hash_on_a_header_keeps_a_user_on_one_server() {
    // SEMANTICS DR-9
    let a = TestServer::builder().name("a").start().await;
    let b = TestServer::builder().name("b").start().await;
    let c = TestServer::builder().name("c").start().await;
    let yaml = versioned(
        "cart",
        80,
        &[("v1", a.addr()), ("v1", b.addr()), ("v1", c.addr())],
        "{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}",
    );
    let h = Harness::start(&yaml).await;
    let mut servers = std::collections::HashSet::new();
    for user in 0..12 {
        let user = format!("user-{user}");
        let first = get(&h, "cart", "/", &[("x-user", &user)]).await;
        let first = served_by(&first).to_owned();
        for _ in 0..5 {
            let r = get(&h, "cart", "/", &[("x-user", &user)]).await;
            assert_eq!(served_by(&r), first, "{user}");
        }
        servers.insert(first);
    }
    assert!(servers.len() >= 2, "12 users all on {servers:?}");
}

#[tokio::test]
async fn host_forms_reach_the_same_service() {
    // SEMANTICS HOST-2, HOST-3, HOST-6: short name, name.ns, name.ns.svc, FQDN, any case.
    let (v1, v2) = two_versions().await;
    let yaml = versioned("reviews", 9080, &[("v1", v1.addr()), ("v2", v2.addr())], "")
        + &virtual_service(
            "reviews",
            "  - route: [{destination: {host: reviews.test.svc.cluster.local, subset: v2}}]\n",
        );
    let h = Harness::start(&yaml).await;
    for host in [
        "reviews:9080",
        "reviews.test:9080",
        "reviews.test.svc:9080",
        "Reviews.Test.svc.cluster.local:9080",
    ] {
        let r = get(&h, host, "/", &[]).await;
        assert_eq!((r.status().as_u16(), served_by(&r)), (200, "v2"), "{host}");
    }
    // SEMANTICS HOST-3: a name qualified with another namespace is another service.
    assert_eq!(get(&h, "reviews.other:9080", "/", &[]).await.status(), 404);
    assert_eq!(v2.request_count(), 4);
}
