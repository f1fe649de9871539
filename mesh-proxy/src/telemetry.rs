//! The proxy's telemetry on both listeners: `x-request-id` (REQID-1), trace context (TRACE-5,
//! TRACE-6) and the access log (LOG-1), built on `mesh-telemetry`.
//!
//! [`Telemetry::begin`] runs first on every request: it keeps or generates the request id,
//! starts this hop's span from the incoming trace headers and writes the context the next hop
//! reads. When the access log is on it also starts a [`Record`], which collects what the
//! forwarding path learns ([`RouteInfo`], [`UpstreamInfo`], the bytes received) and is written
//! when the response body has been sent ([`LogOnEnd`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use http::header::{HOST, USER_AGENT};
use http::{Request, Response, Version};
use mesh_core::extensions::PeerIdentity;
use mesh_core::random::Random;
use mesh_core::registry::Cluster;
use mesh_telemetry::access_log::{AccessLog, Entry};
use mesh_telemetry::trace_context::{Propagation, Sampler, SpanContext};
use tokio::time::Instant;

use crate::headers::{Direction, X_REQUEST_ID, new_request_id};
use crate::local_reply::{ResponseFlag, UpstreamFlag};
use crate::proxy::StartError;
use crate::server::Connection;
use crate::settings::{AccessLogTarget, LogFormat, ProxySettings};

/// Telemetry settings of one proxy.
#[derive(Debug)]
pub(crate) struct Telemetry {
    access_log: AccessLog,
    json: bool,
    sampler: Sampler,
    propagation: Propagation,
}

impl Telemetry {
    pub(crate) fn new(settings: &ProxySettings) -> Result<Self, StartError> {
        let access_log = match &settings.access_log {
            AccessLogTarget::Off => AccessLog::off(),
            AccessLogTarget::Stdout => AccessLog::stdout(),
            AccessLogTarget::File(path) => {
                AccessLog::file(path).map_err(|source| StartError::AccessLog {
                    path: path.clone(),
                    source,
                })?
            }
        };
        Ok(Telemetry {
            access_log,
            json: settings.log_format == LogFormat::Json,
            sampler: Sampler::percent(settings.trace_sampling),
            propagation: Propagation {
                b3: settings.trace_b3,
            },
        })
    }

    /// The start of every request: request id, this hop's span, the headers for the next hop,
    /// and the access-log record when the log is on.
    pub(crate) fn begin<B>(
        &self,
        req: &mut Request<B>,
        direction: Direction,
        conn: &Connection,
    ) -> (SpanContext, Option<Record>) {
        let started = Instant::now();
        let start_time = SystemTime::now();
        // REQID-1: kept when present, generated once here so every attempt and mirror carries
        // the same id.
        if !req.headers().contains_key(&X_REQUEST_ID) {
            req.headers_mut()
                .insert(X_REQUEST_ID.clone(), new_request_id());
        }
        let span = SpanContext::start(req.headers(), &self.sampler, &mut Random::thread());
        span.inject(req.headers_mut(), self.propagation);
        if !self.access_log.is_enabled() {
            return (span, None);
        }
        let d = &conn.downstream;
        let mut entry = Entry::new(start_time, d.local, d.remote);
        let header = |name: &http::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        entry.method = req.method().as_str().to_owned();
        entry.path = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
        entry.protocol = match req.version() {
            Version::HTTP_2 => "HTTP/2",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        };
        entry.x_forwarded_for = header(&http::HeaderName::from_static("x-forwarded-for"));
        entry.user_agent = header(&USER_AGENT);
        entry.request_id = header(&X_REQUEST_ID);
        entry.authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| header(&HOST));
        entry.requested_server_name = d.sni.as_deref().map(str::to_owned);
        entry.downstream_peer_uri_san = d.peer.as_ref().map(|p: &PeerIdentity| p.uri().to_owned());
        entry.trace_id = Some(span.trace_id().to_string());
        let received = Arc::new(AtomicU64::new(0));
        req.extensions_mut()
            .insert(BytesReceived(Arc::clone(&received)));
        let record = Record {
            entry: Box::new(entry),
            started,
            received,
            direction,
            log: self.access_log.clone(),
            json: self.json,
        };
        (span, Some(record))
    }
}

/// The request body's byte counter, read from the request extensions by the body wrappers.
#[derive(Clone, Debug)]
pub(crate) struct BytesReceived(pub(crate) Arc<AtomicU64>);

/// What routing decided, for the log: the route's LOG-2 name and the cluster.
#[derive(Clone, Debug, Default)]
pub(crate) struct RouteInfo {
    pub(crate) route_name: Option<Arc<str>>,
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// For the inbound side: `inbound|PORT||`.
    pub(crate) inbound_cluster: Option<String>,
}

/// The endpoint that answered and its time to headers, set on upstream responses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UpstreamInfo {
    pub(crate) host: SocketAddr,
    pub(crate) service_time_ms: u64,
}

/// One request's access-log line in the making.
#[derive(Debug)]
pub(crate) struct Record {
    entry: Box<Entry>,
    started: Instant,
    received: Arc<AtomicU64>,
    direction: Direction,
    log: AccessLog,
    json: bool,
}

impl Record {
    /// Fills in the response's part; the line is written by the returned guard once the
    /// body has been sent (or dropped).
    pub(crate) fn respond<B>(mut self, resp: &Response<B>, route: RouteInfo) -> LogOnEnd {
        let e = &mut self.entry;
        e.response_code = resp.status().as_u16();
        let flag = resp
            .extensions()
            .get::<ResponseFlag>()
            .map(|f| f.0)
            .or_else(|| resp.extensions().get::<UpstreamFlag>().map(|f| f.0));
        e.response_flags = flag.unwrap_or("-").to_owned();
        let upstream = resp.extensions().get::<UpstreamInfo>();
        e.response_code_details = details(flag, upstream.is_some()).to_owned();
        if let Some(u) = upstream {
            e.upstream_host = Some(u.host);
            e.upstream_service_time = Some(u.service_time_ms);
        }
        e.route_name = route.route_name.map(|n| n.to_string());
        e.upstream_cluster = route
            .cluster
            .map(|c| c.name().to_owned())
            .or(route.inbound_cluster);
        if self.direction == Direction::Inbound && e.route_name.is_none() {
            e.route_name = Some("default".into());
        }
        LogOnEnd {
            record: Some(self),
            sent: 0,
            ended: false,
        }
    }
}

/// Envoy's `%RESPONSE_CODE_DETAILS%` for what the proxy knows of the outcome.
fn details(flag: Option<&'static str>, upstream: bool) -> &'static str {
    match flag {
        None | Some("URX" | "UO") if upstream => "via_upstream",
        Some("NR") => "route_not_found",
        Some("UH") => "no_healthy_upstream",
        Some("NC") => "cluster_not_found",
        Some("UO") => "overflow",
        Some("UT") => "response_timeout",
        Some("FI") => "fault_filter_abort",
        Some("DPE") => "downstream_protocol_error",
        Some("UPE") => "upstream_protocol_error",
        Some(f) if f.starts_with("UF") => {
            "upstream_reset_before_response_started{connection_failure}"
        }
        Some(f) if f.starts_with("UC") => {
            "upstream_reset_before_response_started{connection_termination}"
        }
        Some(f) if f.starts_with("UR") || f.starts_with("LR") => {
            "upstream_reset_before_response_started{remote_reset}"
        }
        Some("-") => "rbac_access_denied",
        _ => "direct_response",
    }
}

/// Writes the access-log line when dropped: after the last byte of the body was handed to
/// the connection, or when the client went away first (flag `DC`).
#[derive(Debug)]
pub(crate) struct LogOnEnd {
    record: Option<Record>,
    sent: u64,
    ended: bool,
}

impl LogOnEnd {
    /// Counts body bytes sent.
    pub(crate) fn sent(&mut self, n: usize) {
        self.sent += n as u64;
    }

    /// The body reached its end.
    pub(crate) fn end(&mut self) {
        self.ended = true;
    }
}

impl Drop for LogOnEnd {
    fn drop(&mut self) {
        let Some(r) = self.record.take() else {
            return;
        };
        let mut e = r.entry;
        e.bytes_received = r.received.load(Ordering::Relaxed);
        e.bytes_sent = self.sent;
        e.duration_ms = u64::try_from(r.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if !self.ended {
            e.response_flags = if e.response_flags == "-" {
                "DC".to_owned()
            } else {
                format!("{},DC", e.response_flags)
            };
        }
        r.log.write(if r.json { e.json() } else { e.text() });
    }
}
