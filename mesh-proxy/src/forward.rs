//! The request path: where a request goes and how it is forwarded (outbound and inbound).
//!
//! Outbound (SEMANTICS HOST-6, HOST-7): the destination is the absolute-form URI's authority
//! (apps using `HTTP_PROXY`) or else `Host`/`:authority`; `mesh-routing` decides the route,
//! the destination and the endpoint (VirtualService and DestinationRule); the attempts —
//! route timeout, retries, circuit breaking, outlier detection — run in
//! [`crate::resilience`]; [`forward_once`] sends one attempt through the pool. Mirrors get a
//! tee'd copy of the body. Inbound: everything goes to the local app, with Istio's inbound
//! retry of connect failures (RETRY-14).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use mesh_core::endpoint::EndpointSet;
use mesh_core::hosts;
use mesh_core::random::Random;
use mesh_core::registry::Protocol;
use mesh_resilience::breaker::{ConnectionPermit, RequestPermit};
use mesh_resilience::retry::ReplayBody;
use mesh_routing::balance::BalancerKind;
use mesh_routing::decide::{LocalAnswer, Next, decide, select};
use mesh_routing::matcher::UriMatched;
use mesh_routing::route::{Action, Route, WeightedDestination};
use tokio::time::Instant;

use crate::body::{ProxyBody, RequestBody, SendBody, UpstreamBody};
use crate::headers::{
    Direction, X_FORWARDED_PROTO, forward_client_cert, prepare_request, prepare_response,
};
use crate::local_reply::{LocalReply, ResponseFlag, is_grpc};
use crate::pool::{ConnectOptions, TlsOrigin, UpstreamVersion};
use crate::proxy::Shared;
use crate::resilience::{Attempt, FirstPick};
use crate::server::Connection;
use crate::telemetry::{RouteInfo, UpstreamInfo};
use mesh_core::extensions::PeerIdentity;
use mesh_identity::authz::AuthzRequest;
use mesh_identity::path::normalize;
use std::borrow::Cow;

/// Handles one request on a listener; never fails (errors become local replies).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    direction: Direction,
    mut req: Request<Incoming>,
    conn: Arc<Connection>,
) -> Result<Response<ProxyBody>, Infallible> {
    let metrics = shared.metrics.listener(direction);
    metrics.requests.inc();
    // Counted down on drop too: a client that goes away mid-request must not leave it "active".
    let _active = ActiveGuard::new(&metrics.active_requests);
    let grpc = is_grpc(req.headers());
    // Request id and trace context first: every attempt, mirror and local reply sees them.
    let mut record = crate::telemetry::begin(&shared, &mut req, direction, &conn);
    let result = match direction {
        Direction::Outbound => {
            outbound(
                &shared,
                req,
                Some(conn.downstream.remote.ip()),
                &mut record.route,
            )
            .await
        }
        Direction::Inbound => inbound(&shared, req, &conn).await,
    };
    let resp = match result {
        Ok(mut resp) => {
            // A router answer (404 NR, 503 NC/UH, fault abort, redirect, direct response):
            // counted like other local replies and stamped with the server header (HDR-9).
            if let Some(&ResponseFlag(flag)) = resp.extensions().get::<ResponseFlag>() {
                if flag != "-" {
                    shared.metrics.local_reply(direction, flag);
                }
                resp.headers_mut()
                    .insert(http::header::SERVER, direction.server_header());
            }
            resp
        }
        Err(reply) => {
            if reply.flag() != "-" {
                shared.metrics.local_reply(direction, reply.flag());
            }
            tracing::debug!(
                listener = direction.as_str(),
                flag = reply.flag(),
                "local reply"
            );
            let mut resp = reply.into_response(grpc);
            // Upstream responses get it in `prepare_response`; local replies here (ERR-1, HDR-9).
            resp.headers_mut()
                .insert(http::header::SERVER, direction.server_header());
            resp
        }
    };
    record.respond(&resp);
    Ok(resp.map(|b| b.with_record(record)))
}

/// AUTHZ-26: what dry-run policies would have decided is counted and logged, never enforced.
pub(crate) fn report_dry_run(
    security: &crate::metrics::SecurityMetrics,
    decision: &mesh_identity::authz::Decision<'_>,
    protocol: &'static str,
) {
    if let Some(dry) = decision.dry_run {
        security.authz_dry_run(dry.allowed);
        tracing::info!(
            protocol,
            allowed = dry.allowed,
            reason = dry.reason.as_str(),
            policy = dry.matched.map(|m| m.name).unwrap_or("-"),
            "authorization dry run"
        );
    }
}

/// The counter of request body bytes (metrics and the access log).
fn received_counter<B>(req: &Request<B>) -> Option<Arc<std::sync::atomic::AtomicU64>> {
    req.extensions()
        .get::<crate::telemetry::BytesReceived>()
        .map(|b| Arc::clone(&b.0))
}

/// Holds a gauge up for as long as it lives.
struct ActiveGuard<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> ActiveGuard<'a> {
    fn new(gauge: &'a prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Where an outbound request is headed: its authority and the destination port.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Destination {
    pub(crate) authority: Authority,
    pub(crate) port: u16,
}

/// The destination of an outbound request (SEMANTICS HOST-6, HOST-7).
pub(crate) fn destination<B>(req: &Request<B>) -> Result<Destination, LocalReply> {
    let authority = match req.uri().authority() {
        Some(a) => a.clone(),
        None => {
            let host = req.headers().get(HOST).ok_or(LocalReply::BadRequest)?;
            Authority::try_from(host.as_bytes()).map_err(|_| LocalReply::BadRequest)?
        }
    };
    if authority.host().is_empty() {
        return Err(LocalReply::BadRequest);
    }
    let default_port = if req.uri().scheme() == Some(&Scheme::HTTPS) {
        443
    } else {
        80
    };
    let port = authority.port_u16().unwrap_or(default_port);
    Ok(Destination { authority, port })
}

async fn outbound(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    peer: Option<IpAddr>,
    log: &mut RouteInfo,
) -> Result<Response<ProxyBody>, LocalReply> {
    let dest = destination(&req)?;
    // One load of the state per request: the request keeps this config version to its end
    // (SEMANTICS RELOAD-1).
    let state = shared.state.load_full();
    let mut rng = Random::thread();
    let mut decision = decide(&state.routes, &req, dest.port, &mut rng);
    if let Some(delay) = decision.delay {
        // Fault delay (VS-27): before forwarding, outside any route timeout (VS-30).
        tokio::time::sleep(delay).await;
    }
    // Borrowed from the route table: no per-request copy of the edit plan.
    let route_edits = decision.response_edits();
    let cors = decision.cors.take();
    let finish = |mut resp: Response<ProxyBody>, set_cookie: Option<HeaderValue>| {
        if let Some(e) = route_edits {
            e.apply(resp.headers_mut());
        }
        if let Some(c) = &cors {
            for (k, v) in c {
                resp.headers_mut().insert(k.clone(), v.clone());
            }
        }
        if let Some(c) = set_cookie {
            resp.headers_mut().append(http::header::SET_COOKIE, c);
        }
        if decision.delay.is_some() {
            resp.extensions_mut().insert(FaultDelayed);
        }
        resp
    };
    let grpc = is_grpc(req.headers());
    let dest_choice = match decision.next {
        Next::Answer(answer) => return Ok(finish(routed_reply(answer, grpc), None)),
        Next::Forward(d) => d,
    };
    let Some(matched) = decision.matched else {
        return Err(LocalReply::NoRoute);
    };
    let route = matched.route;
    log.route_name = Some(Arc::clone(route.name_for(matched.block)));
    if let Ok(up) = dest_choice.target.upstream(dest.port) {
        log.cluster = Some(Arc::clone(&up.cluster));
        log.guard = Some(Arc::clone(state.guards.cluster(&up.cluster)));
        // OD-7: ejected endpoints whose time is up return before the pick.
        state.guards.sweep(&up.cluster);
    }
    let selected = match select(dest_choice, &req, dest.port, peer, &[], &mut rng) {
        Ok(s) => s,
        Err(LocalAnswer::NoHealthyUpstream) if passthrough(dest_choice, dest.port) => {
            // PASSTHROUGH / resolution NONE: connect to the address the app asked for (DR-6).
            let addr = resolve_passthrough(&dest).await?;
            let upstream = dest_choice
                .target
                .upstream(dest.port)
                .map_err(|_| LocalReply::NoRoute)?;
            let version = upstream_version(upstream.cluster.protocol(), req.version());
            let (req, authority) = with_mirrors(
                shared,
                route,
                rewrite_request(req, route, dest_choice, matched.uri, &dest.authority),
                dest.port,
                &mut rng,
            );
            let resp = forward_once(
                shared,
                Direction::Outbound,
                (req.map(|b| ReplayBody::new(b, 0)), authority),
                addr,
                version,
                None,
                Sent::default(),
            )
            .await?;
            return Ok(finish(resp, None));
        }
        Err(answer) => return Ok(finish(routed_reply(answer, grpc), None)),
    };
    let version = upstream_version(selected.upstream.cluster.protocol(), req.version());
    let (req, authority) = with_mirrors(
        shared,
        route,
        rewrite_request(req, route, dest_choice, matched.uri, &dest.authority),
        dest.port,
        &mut rng,
    );
    let attempt = Attempt {
        shared,
        guards: &state.guards,
        route,
        dest: dest_choice,
        port: dest.port,
        peer,
        version,
        grpc,
    };
    let first = FirstPick {
        consistent_hash: selected.upstream.balancer.hash_policy().is_some(),
        cluster: Arc::clone(&selected.upstream.cluster),
        endpoints: selected.endpoints,
        index: selected.index,
        addr: selected.addr,
    };
    let resp = attempt.run(req, authority, first, &mut rng).await?;
    Ok(finish(resp, selected.set_cookie))
}

/// Sends a copy of the request to each mirror drawn for it (VS-31, VS-32), fire and forget:
/// the copies stream alongside the primary body, their responses and failures are dropped,
/// and a mirror that falls behind loses its copy rather than slowing the primary. The mirror
/// keeps the request's `Host` unchanged (VS-33, Istio ≥ 1.28).
fn with_mirrors(
    shared: &Arc<Shared>,
    route: &Route,
    (req, authority): (Request<Incoming>, Authority),
    port: u16,
    rng: &mut Random,
) -> (Request<RequestBody>, Authority) {
    let mut chosen = Vec::new();
    for m in &route.mirrors {
        if !rng.chance(m.percent) {
            continue;
        }
        let Ok(upstream) = m.target.upstream(port) else {
            continue;
        };
        let set = upstream.cluster.endpoints();
        if let Some(index) = upstream.balancer.pick(&set, None, &[], rng) {
            let version = upstream_version(upstream.cluster.protocol(), req.version());
            // The mirror's own cluster decides its TLS (DR-18, DR-19).
            let state = shared.state.load();
            let tls = state
                .guards
                .cluster(&upstream.cluster)
                .tls
                .origin(set.endpoint(index), version);
            if let Ok(tls) = tls {
                chosen.push((set.endpoint(index).addr, version, set, index, tls));
            }
        }
    }
    let meter = received_counter(&req);
    if chosen.is_empty() {
        return (req.map(|b| RequestBody::plain(b).metered(meter)), authority);
    }
    let (parts, body) = req.into_parts();
    let (primary, copies) = RequestBody::tee(body, chosen.len());
    let primary = primary.metered(meter);
    for ((addr, version, set, index, tls), copy) in chosen.into_iter().zip(copies) {
        let mut copy_req = Request::new(copy);
        *copy_req.method_mut() = parts.method.clone();
        *copy_req.uri_mut() = parts.uri.clone();
        *copy_req.version_mut() = parts.version;
        *copy_req.headers_mut() = parts.headers.clone();
        let shared = Arc::clone(shared);
        let authority = authority.clone();
        tokio::spawn(async move {
            // RETRY-11: mirrors carry the primary's first attempt number.
            copy_req
                .headers_mut()
                .insert("x-envoy-attempt-count", HeaderValue::from_static("1"));
            let sent = forward_once(
                &shared,
                Direction::Outbound,
                (copy_req.map(|b| ReplayBody::new(b, 0)), authority),
                addr,
                version,
                Some((&set, index)),
                Sent {
                    tls,
                    ..Sent::default()
                },
            )
            .await;
            if let Ok(resp) = sent {
                // Read the mirror's response to its end so its connection can be reused.
                let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
            }
        });
    }
    (Request::from_parts(parts, primary), authority)
}

/// Marks a response to a request that a fault delayed (flag `DI`, VS-27).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FaultDelayed;

/// Whether a destination's cluster connects to the requested address itself (DR-6
/// `PASSTHROUGH`, or a ServiceEntry with `resolution: NONE`).
fn passthrough(dest: &WeightedDestination, port: u16) -> bool {
    dest.target
        .upstream(port)
        .is_ok_and(|u| u.cluster.is_passthrough() || u.balancer.kind() == BalancerKind::Passthrough)
}

/// A router answer as the response the client gets (SEMANTICS ERR-1, ERR-2, VS-22, VS-23).
fn routed_reply(answer: LocalAnswer, grpc: bool) -> Response<ProxyBody> {
    let flag = answer.flag();
    if grpc && answer.is_error_reply() {
        let mut resp = LocalReply::Routed(answer).into_response(true);
        resp.extensions_mut().insert(ResponseFlag(flag));
        return resp;
    }
    let (mut parts, body) = answer.into_response().into_parts();
    parts.extensions.insert(ResponseFlag(flag));
    Response::from_parts(parts, ProxyBody::local(body))
}

/// The request as the upstream gets it: the route's rewrites (VS-19..VS-21) and the
/// destination's header edits (VS-25); `Host` is set by [`forward`] from the authority.
fn rewrite_request(
    req: Request<Incoming>,
    route: &Route,
    dest: &WeightedDestination,
    uri_matched: UriMatched,
    original: &Authority,
) -> (Request<Incoming>, Authority) {
    let (mut parts, body) = req.into_parts();
    let Action::Forward {
        rewrite, authority, ..
    } = &route.action
    else {
        return (Request::from_parts(parts, body), original.clone());
    };
    if let Some(r) = rewrite {
        let pq = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
        let new = r.apply(pq, uri_matched);
        if let Ok(pq) = PathAndQuery::try_from(new) {
            let mut uri = parts.uri.clone().into_parts();
            uri.path_and_query = Some(pq);
            if let Ok(u) = Uri::from_parts(uri) {
                parts.uri = u;
            }
        }
    }
    dest.request_edits.apply(&mut parts.headers);
    let authority = dest
        .request_edits
        .authority()
        .or(authority.as_ref())
        .cloned()
        .unwrap_or_else(|| original.clone());
    (Request::from_parts(parts, body), authority)
}

async fn inbound(
    shared: &Shared,
    mut req: Request<Incoming>,
    conn: &Connection,
) -> Result<Response<ProxyBody>, LocalReply> {
    // AUTHZ-25: one normalized path for the policies and the app; `%00` is refused.
    let pq = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
    match normalize(pq, shared.settings.path_normalization) {
        Err(_) => return Err(LocalReply::BadRequest),
        Ok(Cow::Borrowed(_)) => {}
        Ok(Cow::Owned(p)) => {
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query =
                Some(PathAndQuery::try_from(p).map_err(|_| LocalReply::BadRequest)?);
            *req.uri_mut() = Uri::from_parts(parts).map_err(|_| LocalReply::BadRequest)?;
        }
    }
    authorize(shared, &req, conn)?;
    // HDR-5: this hop's client certificate appended on mTLS, any forged one dropped otherwise.
    forward_client_cert(req.headers_mut(), conn.xfcc.as_deref());
    // HDR-4: the downstream scheme, if the client did not say.
    if conn.downstream.peer.is_some() && !req.headers().contains_key(&X_FORWARDED_PROTO) {
        req.headers_mut()
            .insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
    }
    req.extensions_mut().insert(conn.downstream.clone());
    let authority = match req.uri().authority() {
        Some(a) => a.clone(),
        None => match req
            .headers()
            .get(HOST)
            .map(|h| Authority::try_from(h.as_bytes()))
        {
            Some(Ok(a)) => a,
            Some(Err(_)) => return Err(LocalReply::BadRequest),
            None => Authority::try_from(shared.settings.app.to_string().as_str())
                .map_err(|_| LocalReply::BadRequest)?,
        },
    };
    let version = upstream_version(Protocol::Unknown, req.version());
    let meter = received_counter(&req);
    crate::resilience::inbound_attempts(
        shared,
        &shared.inbound_retry,
        req.map(|b| RequestBody::plain(b).metered(meter)),
        authority,
        version,
    )
    .await
}

/// The workload's AuthorizationPolicies on one inbound request (AUTHZ-2, AUTHZ-23): a deny is
/// 403 `RBAC: access denied` (gRPC: status 7), and the app never sees the request.
fn authorize<B>(shared: &Shared, req: &Request<B>, conn: &Connection) -> Result<(), LocalReply> {
    let state = shared.state.load();
    if state.authz.is_empty() {
        return Ok(());
    }
    let d = &conn.downstream;
    let host = req
        .uri()
        .authority()
        .map(Authority::as_str)
        .or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    let mut areq = AuthzRequest::http(d.remote.ip(), shared.settings.app.port())
        .destination_ip(d.local.ip())
        .principal(d.peer.as_ref().map(PeerIdentity::principal))
        .method(req.method().as_str())
        .path(req.uri().path())
        .host(host)
        .headers(req.headers());
    if let Some(sni) = d.sni.as_deref() {
        areq = areq.sni(Some(sni));
    }
    let decision = state.authz.decide(&areq);
    let security = &shared.metrics.security;
    report_dry_run(security, &decision, "http");
    if decision.allowed {
        if let Some(audit) = decision.audit {
            security.authz("http", "audit");
            tracing::info!(policy = %format_args!("{}/{}", audit.namespace, audit.name), path = req.uri().path(), "audited request");
        } else {
            security.authz("http", "allow");
        }
        return Ok(());
    }
    security.authz("http", "deny");
    tracing::debug!(
        details = decision.response_code_details().unwrap_or_default(),
        principal = d.peer.as_ref().map_or("-", PeerIdentity::principal),
        path = req.uri().path(),
        "request denied by authorization policy"
    );
    Err(LocalReply::RbacDenied)
}

/// HTTP/2 to the upstream for HTTP2/GRPC ports, HTTP/1.1 for HTTP ports, and the client's own
/// protocol when the port's protocol is not declared (SEMANTICS SE-7).
pub(crate) fn upstream_version(protocol: Protocol, downstream: Version) -> UpstreamVersion {
    match protocol {
        Protocol::Http2 | Protocol::Grpc => UpstreamVersion::Http2,
        Protocol::Http => UpstreamVersion::Http1,
        _ if downstream == Version::HTTP_2 => UpstreamVersion::Http2,
        _ => UpstreamVersion::Http1,
    }
}

async fn resolve_passthrough(dest: &Destination) -> Result<SocketAddr, LocalReply> {
    let host = hosts::strip_port(dest.authority.as_str());
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, dest.port));
    }
    let unreachable = LocalReply::UpstreamReset(crate::local_reply::ResetReason::ConnectionFailure);
    tokio::net::lookup_host((host, dest.port))
        .await
        .map_err(|_| unreachable.clone())?
        .next()
        .ok_or(unreachable)
}

/// What one attempt takes along besides the request: the cluster's connection options, its
/// connection slot (HTTP/1.1 `maxConnections`), and the active-request permit
/// (`http2MaxRequests`) that the response body holds until it ends.
#[derive(Debug, Default)]
pub(crate) struct Sent<'a> {
    pub(crate) connect: Option<&'a ConnectOptions>,
    /// TLS origination for this endpoint (DR-18, DR-19); `None` = plaintext.
    pub(crate) tls: Option<Arc<TlsOrigin>>,
    pub(crate) slot: Option<ConnectionPermit>,
    pub(crate) hold: Option<RequestPermit>,
}

/// Sends one request to one endpoint (no retries) and returns its response headers.
pub(crate) async fn forward_once(
    shared: &Shared,
    direction: Direction,
    (req, authority): (Request<SendBody>, Authority),
    addr: SocketAddr,
    version: UpstreamVersion,
    endpoint: Option<(&Arc<EndpointSet>, usize)>,
    sent: Sent<'_>,
) -> Result<Response<ProxyBody>, LocalReply> {
    let authority = &authority;
    let (mut parts, body) = req.into_parts();
    let h2 = version == UpstreamVersion::Http2;
    prepare_request(&mut parts.headers, direction, h2);
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    if h2 {
        parts.version = Version::HTTP_2;
        parts.headers.remove(HOST);
        parts.uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|_| LocalReply::BadRequest)?;
    } else {
        parts.version = Version::HTTP_11;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| LocalReply::BadRequest)?;
        parts.headers.insert(HOST, host);
        parts.uri = Uri::from(path);
    }
    let mut guard = endpoint.map(|(set, i)| set.stats(i).start_request());
    let started = Instant::now();
    let defaults = ConnectOptions::default();
    let (resp, pooled) = shared
        .pool
        .send(
            addr,
            version,
            Request::from_parts(parts, body),
            sent.connect.unwrap_or(&defaults),
            sent.tls.as_deref(),
            sent.slot,
        )
        .await?;
    let service_time = started.elapsed().as_millis();
    if let Some(g) = guard.as_mut() {
        g.record(!resp.status().is_server_error());
    }
    drop(guard);
    let (mut parts, body) = resp.into_parts();
    prepare_response(&mut parts.headers, direction, Some(service_time));
    parts.extensions.insert(UpstreamInfo {
        host: addr,
        service_time_ms: u64::try_from(service_time).unwrap_or(u64::MAX),
    });
    Ok(Response::from_parts(
        parts,
        UpstreamBody::new(body, pooled, sent.hold).into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, host: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn absolute_uri_wins_over_host() {
        // SEMANTICS HOST-7
        let d = destination(&req("http://reviews:9080/x", Some("other:1"))).unwrap();
        assert_eq!((d.authority.as_str(), d.port), ("reviews:9080", 9080));
    }

    #[test]
    fn host_header_and_default_ports() {
        // SEMANTICS HOST-6: no port → 80 (443 for https).
        let d = destination(&req("/x", Some("reviews"))).unwrap();
        assert_eq!(d.port, 80);
        let d = destination(&req("https://api.example.com/x", None)).unwrap();
        assert_eq!(d.port, 443);
        let d = destination(&req("/x", Some("reviews:9080"))).unwrap();
        assert_eq!(d.port, 9080);
        assert_eq!(destination(&req("/x", None)), Err(LocalReply::BadRequest));
        assert_eq!(
            destination(&req("/x", Some("bad host"))),
            Err(LocalReply::BadRequest)
        );
    }

    #[test]
    fn upstream_protocol_follows_the_port() {
        assert_eq!(
            upstream_version(Protocol::Grpc, Version::HTTP_11),
            UpstreamVersion::Http2
        );
        assert_eq!(
            upstream_version(Protocol::Http, Version::HTTP_2),
            UpstreamVersion::Http1
        );
        assert_eq!(
            upstream_version(Protocol::Unknown, Version::HTTP_2),
            UpstreamVersion::Http2
        );
        assert_eq!(
            upstream_version(Protocol::Unknown, Version::HTTP_11),
            UpstreamVersion::Http1
        );
    }
}
