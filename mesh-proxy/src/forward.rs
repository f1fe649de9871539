//! The request path: where a request goes and how it is forwarded (outbound and inbound).
//!
//! Outbound (SEMANTICS HOST-6, HOST-7): the destination is the absolute-form URI's authority
//! (apps using `HTTP_PROXY`) or else `Host`/`:authority`; the host finds a service the way
//! Istio resolves names for this proxy's namespace; the port (from the authority, else 80, or
//! 443 for `https`) picks the service port's cluster; an endpoint is picked round robin (the
//! routing issue replaces this with VirtualService routing and the DestinationRule's balancer).
//! Inbound: everything goes to the local app.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use mesh_core::endpoint::EndpointSet;
use mesh_core::hosts;
use mesh_core::registry::Protocol;
use tokio::time::Instant;

use crate::body::{ProxyBody, UpstreamBody};
use crate::headers::{Direction, prepare_request, prepare_response};
use crate::local_reply::{LocalReply, is_grpc};
use crate::pool::UpstreamVersion;
use crate::proxy::Shared;

/// Handles one request on a listener; never fails (errors become local replies).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    direction: Direction,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let metrics = shared.metrics.listener(direction);
    metrics.requests.inc();
    // Counted down on drop too: a client that goes away mid-request must not leave it "active".
    let _active = ActiveGuard::new(&metrics.active_requests);
    let grpc = is_grpc(req.headers());
    let result = match direction {
        Direction::Outbound => outbound(&shared, req).await,
        Direction::Inbound => inbound(&shared, req).await,
    };
    let resp = match result {
        Ok(resp) => resp,
        Err(reply) => {
            shared.metrics.local_reply(direction, reply.flag());
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
    Ok(resp)
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
    shared: &Shared,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, LocalReply> {
    let dest = destination(&req)?;
    // One load of the state per request: the request keeps this config version to its end
    // (SEMANTICS RELOAD-1).
    let state = shared.state.load_full();
    let service = state
        .registry
        .lookup(dest.authority.as_str(), &shared.settings.namespace)
        .ok_or(LocalReply::NoRoute)?;
    let cluster = service
        .cluster(u32::from(dest.port))
        .ok_or(LocalReply::NoRoute)?;
    let version = upstream_version(cluster.protocol(), req.version());
    if cluster.is_passthrough() {
        let addr = resolve_passthrough(&dest).await?;
        return forward(
            shared,
            Direction::Outbound,
            req,
            addr,
            version,
            &dest.authority,
            None,
        )
        .await;
    }
    let endpoints = cluster.endpoints();
    let index = endpoints
        .pick_round_robin()
        .ok_or(LocalReply::NoHealthyUpstream)?;
    let addr = endpoints.endpoint(index).addr;
    forward(
        shared,
        Direction::Outbound,
        req,
        addr,
        version,
        &dest.authority,
        Some((&endpoints, index)),
    )
    .await
}

async fn inbound(
    shared: &Shared,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, LocalReply> {
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
    let app = Arc::clone(&shared.inbound_cluster);
    forward(
        shared,
        Direction::Inbound,
        req,
        shared.settings.app,
        version,
        &authority,
        Some((&app, 0)),
    )
    .await
}

/// HTTP/2 to the upstream for HTTP2/GRPC ports, HTTP/1.1 for HTTP ports, and the client's own
/// protocol when the port's protocol is not declared (SEMANTICS SE-7).
fn upstream_version(protocol: Protocol, downstream: Version) -> UpstreamVersion {
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

async fn forward(
    shared: &Shared,
    direction: Direction,
    req: Request<Incoming>,
    addr: SocketAddr,
    version: UpstreamVersion,
    authority: &Authority,
    endpoint: Option<(&Arc<EndpointSet>, usize)>,
) -> Result<Response<ProxyBody>, LocalReply> {
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
    let (resp, pooled) = shared
        .pool
        .send(addr, version, Request::from_parts(parts, body))
        .await?;
    let service_time = started.elapsed().as_millis();
    if let Some(g) = guard.as_mut() {
        g.record(!resp.status().is_server_error());
    }
    drop(guard);
    let (mut parts, body) = resp.into_parts();
    prepare_response(&mut parts.headers, direction, Some(service_time));
    Ok(Response::from_parts(
        parts,
        UpstreamBody::new(body, pooled).into(),
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
