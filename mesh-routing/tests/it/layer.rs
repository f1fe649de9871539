//! [`RoutingLayer`] around a `tower::service_fn`: what the inner service sees, and the
//! responses the layer answers itself (SEMANTICS VS-*, ERR-2, LOG-2).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use mesh_core::extensions::RouteInfo;
use mesh_routing::decide::LocalAnswer;
use mesh_routing::{RouteTable, RoutingLayer};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

use crate::fixtures::{REVIEWS, V1, V2};
use crate::harness::Mesh;

const LAYERED: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  http:
  - name: canary
    match:
    - {name: header, headers: {x-canary: {exact: "true"}}}
    - {name: cookie, headers: {cookie: {regex: '.*canary=1.*'}}}
    timeout: 2s
    retries: {attempts: 3, retryOn: 5xx}
    headers:
      request: {set: {x-routed: canary}}
      response: {set: {x-served-route: canary}, remove: [x-internal]}
    route: [{destination: {host: reviews, subset: v2}}]
  - name: ratings
    match: [{uri: {prefix: /ratings}}]
    rewrite: {uri: /v1/bookRatings, authority: ratings.internal}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: slow
    match: [{uri: {prefix: /slow}}]
    fault: {delay: {fixedDelay: 3s, percentage: {value: 100}}}
    timeout: 1s
    route: [{destination: {host: reviews, subset: v1}}]
  - name: moved
    match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, redirectCode: 302}
  - name: static
    match: [{uri: {exact: /static}}]
    directResponse: {status: 200, body: {string: static body}}
    headers: {response: {add: {x-static: "1"}}}
  - name: abort
    match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: ghost
    match: [{uri: {prefix: /ghost}}]
    route: [{destination: {host: reviews, subset: nope}}]
  - name: default
    route: [{destination: {host: reviews, subset: v1}}]
"#;

/// What the inner service saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    uri: String,
    host: Option<String>,
    routed: Option<String>,
    info: Option<RouteInfo>,
    at: Instant,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn table() -> Arc<RouteTable> {
    Arc::new(Mesh::new(&format!("{REVIEWS}{LAYERED}"), "prod").table)
}

/// Sends `req` through a [`RoutingLayer`] around a recording `service_fn` whose responses
/// carry `x-internal` and `x-upstream`.
async fn send(req: Request<String>) -> (Response<Bytes>, Vec<Seen>) {
    let log: Log = Arc::default();
    let inner_log = Arc::clone(&log);
    let inner = tower::service_fn(move |req: Request<String>| {
        let log = Arc::clone(&inner_log);
        async move {
            let h = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
            log.lock().unwrap().push(Seen {
                uri: req.uri().to_string(),
                host: h("host"),
                routed: h("x-routed"),
                info: req.extensions().get::<RouteInfo>().cloned(),
                at: Instant::now(),
            });
            let resp = Response::builder()
                .header("x-internal", "secret")
                .header("x-upstream", "yes")
                .body(String::from("from upstream"))
                .unwrap();
            Ok::<_, Infallible>(resp)
        }
    });
    let svc = RoutingLayer::new(table()).layer(inner);
    let resp = svc.oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let seen = log.lock().unwrap().clone();
    (Response::from_parts(parts, body), seen)
}

fn get(uri: &str, host: &str) -> http::request::Builder {
    Request::get(uri).header("host", host)
}

#[tokio::test]
async fn forwarded_request_reaches_the_endpoint_with_route_info() {
    let req = get("/reviews/1", "reviews:9080")
        .header("x-canary", "true")
        .body(String::new())
        .unwrap();
    let (resp, seen) = send(req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.body()[..], b"from upstream");
    assert!(resp.extensions().get::<LocalAnswer>().is_none());
    let seen = &seen[0];
    // The URI points at the endpoint; Host stays as the application wrote it (VS-21).
    assert_eq!(seen.uri, "http://127.0.0.1:9082/reviews/1");
    assert_eq!(seen.host.as_deref(), Some("reviews:9080"));
    // SEMANTICS VS-25: request edits applied.
    assert_eq!(seen.routed.as_deref(), Some("canary"));
    let info = seen.info.as_ref().expect("RouteInfo extension");
    assert_eq!(&*info.cluster, V2);
    assert_eq!(&*info.route_name, "canary.header");
    assert_eq!(info.endpoint.map(|e| e.port()), Some(9082));
    // SEMANTICS VS-34: the route's timeout and retries travel on for the resilience layers.
    assert_eq!(info.timeout, Some(Duration::from_secs(2)));
    assert_eq!(info.retries.as_ref().map(|r| r.attempts), Some(3));
    // SEMANTICS VS-25: response edits applied to the upstream response.
    assert_eq!(resp.headers()["x-served-route"], "canary");
    assert!(resp.headers().get("x-internal").is_none());
    assert_eq!(resp.headers()["x-upstream"], "yes");
}

#[tokio::test]
async fn route_info_names_the_block_that_matched() {
    // SEMANTICS LOG-2: the route name is http name + "." + the name of the matching block.
    let req = get("/x", "reviews:9080")
        .header("cookie", "a=b; canary=1")
        .body(String::new())
        .unwrap();
    let (_, seen) = send(req).await;
    let info = seen[0].info.as_ref().unwrap();
    assert_eq!(&*info.route_name, "canary.cookie");
    // SEMANTICS VS-34 (pitfall): no timeout unless configured.
    let (_, seen) = send(get("/x", "reviews:9080").body(String::new()).unwrap()).await;
    let info = seen[0].info.as_ref().unwrap();
    assert_eq!(&*info.route_name, "default");
    assert_eq!(&*info.cluster, V1);
    assert_eq!(info.timeout, None);
    assert_eq!(info.retries, None);
}

#[tokio::test]
async fn rewrites_reach_the_inner_service() {
    // SEMANTICS VS-19, VS-21: prefix rewrite (query kept) and rewrite.authority as Host.
    let req = Request::get("http://reviews:9080/ratings/5?x=1")
        .body(String::new())
        .unwrap();
    let (resp, seen) = send(req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(seen[0].uri, "http://127.0.0.1:9081/v1/bookRatings/5?x=1");
    assert_eq!(seen[0].host.as_deref(), Some("ratings.internal"));
}

#[tokio::test]
async fn local_answers_come_back_as_responses() {
    // SEMANTICS VS-13, ERR-2: unknown host → 404, empty, NR; the inner service never runs.
    let (resp, seen) = send(get("/", "nowhere.example.com").body(String::new()).unwrap()).await;
    assert!(seen.is_empty());
    assert_eq!(resp.status(), 404);
    assert!(resp.body().is_empty());
    assert_eq!(
        resp.extensions().get::<LocalAnswer>(),
        Some(&LocalAnswer::NoRoute)
    );
    assert_eq!(resp.extensions().get::<LocalAnswer>().unwrap().flag(), "NR");

    // SEMANTICS VS-22: a redirect, status and location, empty body.
    let (resp, seen) = send(get("/old?q=1", "reviews:9080").body(String::new()).unwrap()).await;
    assert!(seen.is_empty());
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "http://reviews:9080/new?q=1");
    assert!(resp.body().is_empty());
    assert!(matches!(
        resp.extensions().get::<LocalAnswer>(),
        Some(LocalAnswer::Redirect { .. })
    ));

    // SEMANTICS VS-23, VS-26: a direct response with its body, text/plain, route edits.
    let (resp, seen) = send(get("/static", "reviews:9080").body(String::new()).unwrap()).await;
    assert!(seen.is_empty());
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.body()[..], b"static body");
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.headers()["content-length"], "11");
    assert_eq!(resp.headers()["x-static"], "1");
    assert!(matches!(
        resp.extensions().get::<LocalAnswer>(),
        Some(LocalAnswer::Direct { .. })
    ));

    // SEMANTICS VS-28: a fault abort.
    let (resp, seen) = send(get("/abort", "reviews:9080").body(String::new()).unwrap()).await;
    assert!(seen.is_empty());
    assert_eq!(resp.status(), 418);
    assert_eq!(&resp.body()[..], b"fault filter abort");
    assert_eq!(resp.extensions().get::<LocalAnswer>().unwrap().flag(), "FI");

    // SEMANTICS VS-16: an unknown subset → 503, empty, NC.
    let (resp, seen) = send(get("/ghost", "reviews:9080").body(String::new()).unwrap()).await;
    assert!(seen.is_empty());
    assert_eq!(resp.status(), 503);
    assert!(resp.body().is_empty());
    assert_eq!(resp.extensions().get::<LocalAnswer>().unwrap().flag(), "NC");
}

#[tokio::test(start_paused = true)]
async fn fault_delay_waits_before_the_inner_service_and_outside_the_timeout() {
    // SEMANTICS VS-27: 3 s before forwarding (paused clock: no real waiting).
    // SEMANTICS VS-30 (pitfall): the delay is not part of the route timeout — the inner
    // service gets the full 1 s timeout after the delay.
    let start = Instant::now();
    let (resp, seen) = send(get("/slow", "reviews:9080").body(String::new()).unwrap()).await;
    assert_eq!(resp.status(), 200);
    let waited = seen[0].at - start;
    assert!(waited >= Duration::from_secs(3), "{waited:?}");
    assert!(waited < Duration::from_millis(3_100), "{waited:?}");
    let info = seen[0].info.as_ref().unwrap();
    assert_eq!(info.timeout, Some(Duration::from_secs(1)));

    // No fault on other routes: no time passes.
    let start = Instant::now();
    let (_, seen) = send(get("/x", "reviews:9080").body(String::new()).unwrap()).await;
    assert_eq!(seen[0].at - start, Duration::ZERO);
}
