//! The table-driven routing harness: Istio YAML in, one routing outcome per request out.
//!
//! A [`Mesh`] is one snapshot compiled for one proxy (namespace and labels), exactly as the
//! proxy does it: `parse_str` → `Snapshot::new` → `Registry::build` → `RouteTable::compile`.
//! A [`Case`] is a request and the facts expected about what routing does with it; each case
//! names the SEMANTICS rule it checks. [`Mesh::check`] runs a table of cases and fails once,
//! listing every case that went wrong.
//!
//! Per request the harness runs [`decide`] and, for a forwarded request, [`select`] with a
//! seeded generator, then applies the route's rewrite and the destination's header edits the
//! way the proxy and the tower layer do (rewrite, then request edits, then the authority: a
//! `host` edit, else `rewrite.authority`, else the request's own). Local answers become the
//! response Envoy would write ([`LocalAnswer::into_response`]) with the route's response edits
//! and CORS headers; forwarded requests get an empty upstream response with the same.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use mesh_core::Snapshot;
use mesh_core::loader::parse_str;
use mesh_core::random::Random;
use mesh_core::registry::{Registry, Scope};
use mesh_core::traffic_policy::EffectivePolicy;
use mesh_routing::RouteTable;
use mesh_routing::balance::BalancerKind;
use mesh_routing::decide::{LocalAnswer, Next, decide, select};
use mesh_routing::fault::Abort;
use mesh_routing::layer::request_port;
use mesh_routing::route::{Action, NoCluster};

/// One snapshot compiled for one proxy.
pub(crate) struct Mesh {
    pub(crate) table: RouteTable,
}

/// Parses `yaml` as the file `mesh.yaml`, namespaces defaulting to the proxy's.
pub(crate) fn snapshot(yaml: &str, namespace: &str) -> Snapshot {
    let resources = parse_str(yaml, Path::new("mesh.yaml"), namespace)
        .unwrap_or_else(|e| panic!("test YAML does not parse: {e}"));
    Snapshot::new(resources)
}

impl Mesh {
    /// The snapshot of `yaml` for a proxy in `namespace` without labels.
    pub(crate) fn new(yaml: &str, namespace: &str) -> Self {
        Self::scoped(yaml, Scope::new(namespace))
    }

    /// The snapshot of `yaml` for a proxy in `namespace` with `labels`.
    pub(crate) fn labelled(yaml: &str, namespace: &str, labels: &[(&str, &str)]) -> Self {
        Self::scoped(
            yaml,
            Scope::new(namespace).labels(labels.iter().map(|(k, v)| (*k, *v))),
        )
    }

    pub(crate) fn scoped(yaml: &str, scope: Scope) -> Self {
        let snapshot = snapshot(yaml, &scope.namespace);
        let registry = Registry::build(&snapshot, &scope);
        let table = RouteTable::compile(&snapshot, &registry, &scope)
            .unwrap_or_else(|e| panic!("route table does not compile: {e}"));
        Self { table }
    }

    /// Routes one request.
    pub(crate) fn route(&self, r: &Req) -> Outcome {
        let req = r.build();
        let port = r.port.unwrap_or_else(|| request_port(&req));
        let mut rng = Random::seeded(r.seed);
        let decision = decide(&self.table, &req, port, &mut rng);
        let mut out = Outcome {
            delay: decision.delay,
            ..Outcome::default()
        };
        if let Some(m) = decision.matched {
            let route = m.route;
            out.route_name = Some(route.name_for(m.block).to_string());
            out.timeout = Some(route.timeout);
            out.mirrors = route
                .mirrors
                .iter()
                .map(|mi| {
                    let name = mi
                        .target
                        .upstream(port)
                        .map_or_else(|_| format!("?{}", mi.host), |u| u.cluster.name().to_owned());
                    (name, mi.percent)
                })
                .collect();
        }
        let edits = decision.response_edits().cloned();
        let finish = |mut resp: Response<Bytes>| {
            if let Some(e) = &edits {
                e.apply(resp.headers_mut());
            }
            if let Some(c) = &decision.cors {
                for (k, v) in c {
                    resp.headers_mut().insert(k.clone(), v.clone());
                }
            }
            resp
        };
        let dest = match &decision.next {
            Next::Answer(a) => {
                out.answer = Some(a.clone());
                out.response = finish(a.clone().into_response());
                return out;
            }
            Next::Forward(d) => *d,
        };
        let selected = match select(dest, &req, port, None, &[], &mut rng) {
            Ok(s) => s,
            Err(a) => {
                out.answer = Some(a.clone());
                out.response = finish(a.into_response());
                return out;
            }
        };
        out.cluster = Some(selected.upstream.cluster.name().to_owned());
        out.endpoint = Some(selected.addr.port());
        out.policy = Some(Arc::clone(selected.upstream.cluster.policy()));
        out.balancer = Some(selected.upstream.balancer.kind());
        // The upstream request: rewrite (VS-19, VS-20), header edits (VS-25), authority (VS-21).
        let route = decision.matched.map(|m| (m.route, m.uri));
        let (mut parts, ()) = req.into_parts();
        let original = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        let pq = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        let mut authority = original;
        out.path = pq.clone();
        if let Some((route, uri)) = route
            && let Action::Forward {
                rewrite,
                authority: rewritten,
                ..
            } = &route.action
        {
            if let Some(rw) = rewrite {
                out.path = rw.apply(&pq, uri);
            }
            if let Some(a) = rewritten {
                authority = Some(a.as_str().to_owned());
            }
        }
        dest.request_edits.apply(&mut parts.headers);
        if let Some(a) = dest.request_edits.authority() {
            authority = Some(a.as_str().to_owned());
        }
        out.authority = authority;
        out.request_headers = parts.headers;
        let mut resp = Response::new(Bytes::new());
        if let Some(c) = selected.set_cookie {
            resp.headers_mut().append(http::header::SET_COOKIE, c);
        }
        out.response = finish(resp);
        out
    }

    /// Runs every case and fails with the list of those whose outcome differs.
    pub(crate) fn check(&self, cases: &[Case<'_>]) {
        assert!(!cases.is_empty());
        let mut failures = String::new();
        for (i, case) in cases.iter().enumerate() {
            let out = self.route(&case.req);
            for e in case.expect {
                if let Err(problem) = e.check(&out) {
                    let _ = writeln!(
                        failures,
                        "case {i} [SEMANTICS {}] {}: {problem}\n    outcome: {}",
                        case.rule,
                        case.req,
                        out.summary()
                    );
                }
            }
        }
        assert!(failures.is_empty(), "routing cases failed:\n{failures}");
    }
}

/// A request to route.
#[derive(Clone, Debug)]
pub(crate) struct Req {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
    port: Option<u16>,
    seed: u64,
}

/// `GET path` with `Host: host` (origin form, as a client talking to the proxy sends it).
pub(crate) fn get(host: &str, path: &str) -> Req {
    req("GET", host, path)
}

/// `METHOD path` with `Host: host`.
pub(crate) fn req(method: &str, host: &str, path: &str) -> Req {
    Req {
        method: Method::from_bytes(method.as_bytes()).unwrap(),
        uri: path.to_owned(),
        headers: vec![("host".into(), host.into())],
        port: None,
        seed: 1,
    }
}

/// `METHOD absolute-url` (absolute form, as an `HTTP_PROXY` client sends it), `Host` unset.
pub(crate) fn url(method: &str, absolute: &str) -> Req {
    Req {
        method: Method::from_bytes(method.as_bytes()).unwrap(),
        uri: absolute.to_owned(),
        headers: Vec::new(),
        port: None,
        seed: 1,
    }
}

impl Req {
    /// Adds a header line (repeat the name for several lines).
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Overrides the destination port (HOST-6: otherwise from the authority, else 80/443).
    #[allow(dead_code, reason = "not every table needs it")]
    pub(crate) fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Seeds the request's random draws (weights, faults, balancer).
    pub(crate) fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub(crate) fn build(&self) -> Request<()> {
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.as_str());
        for (k, v) in &self.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        b.body(()).unwrap()
    }
}

impl std::fmt::Display for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.uri)?;
        for (k, v) in &self.headers {
            write!(f, " [{k}: {v}]")?;
        }
        Ok(())
    }
}

/// What routing did with one request.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The local answer, when there is one (from `decide` or from `select`).
    pub(crate) answer: Option<LocalAnswer>,
    /// The response the client gets (local answer), or an empty upstream response, with the
    /// route's response edits and CORS headers applied.
    pub(crate) response: Response<Bytes>,
    /// LOG-2 route name of the matched route and block.
    pub(crate) route_name: Option<String>,
    /// The cluster picked (forwarded requests).
    pub(crate) cluster: Option<String>,
    /// The endpoint's port (forwarded requests).
    pub(crate) endpoint: Option<u16>,
    /// The upstream request's path and query after rewrite.
    pub(crate) path: String,
    /// The upstream request's authority.
    pub(crate) authority: Option<String>,
    /// The upstream request's headers after edits.
    pub(crate) request_headers: HeaderMap,
    /// The fault delay drawn.
    pub(crate) delay: Option<Duration>,
    /// The matched route's timeout (`Some(None)` = matched, no timeout).
    pub(crate) timeout: Option<Option<Duration>>,
    /// The matched route's mirrors: cluster name (or `?host` when unknown) and percentage.
    pub(crate) mirrors: Vec<(String, f64)>,
    /// The picked cluster's effective DestinationRule policy.
    pub(crate) policy: Option<Arc<EffectivePolicy>>,
    /// The picked cluster's balancer.
    pub(crate) balancer: Option<BalancerKind>,
}

impl Outcome {
    fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    fn summary(&self) -> String {
        match &self.answer {
            Some(a) => format!(
                "answer {a:?} ({} {}), route {:?}",
                self.status(),
                a.flag(),
                self.route_name
            ),
            None => format!(
                "forward to {:?} :{:?} path {:?} authority {:?}, route {:?}",
                self.cluster, self.endpoint, self.path, self.authority, self.route_name
            ),
        }
    }

    fn body(&self) -> &[u8] {
        self.response.body()
    }
}

/// One expected fact about an outcome.
#[derive(Clone, Copy)]
pub(crate) enum Expect {
    /// 404, empty body, flag `NR` (VS-13).
    NoRoute,
    /// 503, empty body, flag `NC`, for this reason (VS-16, HOST-11, VS-17).
    NoCluster(NoCluster),
    /// 503 `no healthy upstream`, flag `UH` (DR-8, VS-16).
    NoHealthy,
    /// Forwarded to this cluster (`outbound|PORT|SUBSET|FQDN`).
    Cluster(&'static str),
    /// Forwarded to the endpoint with this port.
    Endpoint(u16),
    /// A redirect: status and `location`, empty body, flag `-` (VS-22).
    Redirect(u16, &'static str),
    /// A direct response: status and body, flag `-` (VS-23).
    Direct(u16, &'static str),
    /// A fault abort with this HTTP status, body `fault filter abort`, flag `FI` (VS-28).
    Abort(u16),
    /// A gRPC fault abort: HTTP 200 with this `grpc-status` (VS-28).
    GrpcAbort(u8),
    /// A CORS preflight answered locally: 200, empty (VS-37).
    Preflight,
    /// The LOG-2 route name.
    Route(&'static str),
    /// The upstream path and query.
    Path(&'static str),
    /// The upstream authority (`Host`).
    Authority(&'static str),
    /// Every value of a request header sent upstream (empty: absent).
    ReqHeader(&'static str, &'static [&'static str]),
    /// Every value of a response header the client gets (empty: absent).
    RespHeader(&'static str, &'static [&'static str]),
    /// The fault delay drawn, in milliseconds.
    Delay(Option<u64>),
    /// The matched route's timeout, in milliseconds (`None`: no timeout).
    Timeout(Option<u64>),
    /// The route's mirrors: cluster and percentage.
    Mirrors(&'static [(&'static str, f64)]),
    /// The balancer of the picked cluster.
    Balancer(BalancerKind),
    /// A property of the picked cluster's effective policy, described.
    Policy(&'static str, fn(&EffectivePolicy) -> bool),
}

fn values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

fn same(actual: Vec<String>, expected: &[&str], what: &str) -> Result<(), String> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected:?}, got {actual:?}"))
    }
}

fn eq<T: PartialEq + std::fmt::Debug>(actual: T, expected: T, what: &str) -> Result<(), String> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected:?}, got {actual:?}"))
    }
}

impl Expect {
    fn local(out: &Outcome, status: u16, flag: &str, body: &[u8]) -> Result<(), String> {
        let Some(a) = &out.answer else {
            return Err(format!("expected a local {status} {flag}, got a forward"));
        };
        eq(a.flag(), flag, "flag")?;
        eq(out.status(), status, "status")?;
        eq(
            String::from_utf8_lossy(out.body()).as_ref(),
            String::from_utf8_lossy(body).as_ref(),
            "body",
        )?;
        // ERR-1: content-length always, text/plain only with a body (unless edited).
        eq(
            out.response.headers().get("content-length"),
            Some(&HeaderValue::from(out.body().len())),
            "content-length",
        )
    }

    fn check(&self, out: &Outcome) -> Result<(), String> {
        match *self {
            Expect::NoRoute => {
                Self::local(out, 404, "NR", b"")?;
                eq(out.answer.clone(), Some(LocalAnswer::NoRoute), "answer")
            }
            Expect::NoCluster(why) => {
                Self::local(out, 503, "NC", b"")?;
                eq(
                    out.answer.clone(),
                    Some(LocalAnswer::ClusterNotFound(why)),
                    "answer",
                )
            }
            Expect::NoHealthy => {
                Self::local(out, 503, "UH", b"no healthy upstream")?;
                same(
                    values(out.response.headers(), "content-type"),
                    &["text/plain"],
                    "content-type",
                )
            }
            Expect::Cluster(c) => eq(out.cluster.as_deref(), Some(c), "cluster"),
            Expect::Endpoint(p) => eq(out.endpoint, Some(p), "endpoint port"),
            Expect::Redirect(status, location) => {
                Self::local(out, status, "-", b"")?;
                same(
                    values(out.response.headers(), "location"),
                    &[location],
                    "location",
                )
            }
            Expect::Direct(status, body) => Self::local(out, status, "-", body.as_bytes()),
            Expect::Abort(status) => {
                Self::local(out, status, "FI", b"fault filter abort")?;
                eq(
                    out.answer.clone(),
                    Some(LocalAnswer::FaultAbort(Abort::Http(status))),
                    "answer",
                )
            }
            Expect::GrpcAbort(code) => {
                Self::local(out, 200, "FI", b"")?;
                let h = out.response.headers();
                same(
                    values(h, "grpc-status"),
                    &[&code.to_string()],
                    "grpc-status",
                )?;
                same(
                    values(h, "content-type"),
                    &["application/grpc"],
                    "content-type",
                )
            }
            Expect::Preflight => {
                Self::local(out, 200, "-", b"")?;
                match &out.answer {
                    Some(LocalAnswer::Preflight(_)) => Ok(()),
                    other => Err(format!("expected a preflight answer, got {other:?}")),
                }
            }
            Expect::Route(name) => eq(out.route_name.as_deref(), Some(name), "route name"),
            Expect::Path(p) => {
                if out.answer.is_some() {
                    return Err("expected a forward".into());
                }
                eq(out.path.as_str(), p, "upstream path")
            }
            Expect::Authority(a) => eq(out.authority.as_deref(), Some(a), "upstream authority"),
            Expect::ReqHeader(name, want) => {
                if out.answer.is_some() {
                    return Err("expected a forward".into());
                }
                same(values(&out.request_headers, name), want, name)
            }
            Expect::RespHeader(name, want) => {
                same(values(out.response.headers(), name), want, name)
            }
            Expect::Delay(ms) => eq(out.delay, ms.map(Duration::from_millis), "fault delay"),
            Expect::Timeout(ms) => eq(
                out.timeout,
                Some(ms.map(Duration::from_millis)),
                "route timeout",
            ),
            Expect::Mirrors(want) => {
                let got: Vec<(&str, f64)> =
                    out.mirrors.iter().map(|(c, p)| (c.as_str(), *p)).collect();
                eq(got.as_slice(), want, "mirrors")
            }
            Expect::Balancer(kind) => eq(out.balancer, Some(kind), "balancer"),
            Expect::Policy(what, holds) => match &out.policy {
                Some(p) if holds(p) => Ok(()),
                Some(p) => Err(format!("policy: expected {what}, got {p:?}")),
                None => Err(format!(
                    "policy: expected {what}, but nothing was forwarded"
                )),
            },
        }
    }
}

/// One table row: the rule, the request, the expected facts.
pub(crate) struct Case<'a> {
    pub(crate) rule: &'static str,
    pub(crate) req: Req,
    pub(crate) expect: &'a [Expect],
}

/// A table row.
pub(crate) fn case<'a>(rule: &'static str, req: Req, expect: &'a [Expect]) -> Case<'a> {
    Case { rule, req, expect }
}
