//! The proxy's telemetry on both listeners: `x-request-id` (REQID-1), trace context (TRACE-5,
//! TRACE-6), Istio's metrics (MET-1..MET-6) and the access log (LOG-1), built on
//! `mesh-telemetry`.
//!
//! [`begin`] runs first on every request: it keeps or generates the request id, starts this
//! hop's span from the incoming trace headers and writes the context the next hop reads. It
//! returns the request's [`Record`], which collects what the forwarding path learns
//! ([`RouteInfo`], [`UpstreamInfo`], the bytes each way) and reports when it is dropped: after
//! the response body has been sent, or when the client went away first (flag `DC`).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use http::{HeaderMap, Request, Response};
use mesh_core::random::Random;
use mesh_core::registry::Cluster;
use mesh_identity::spiffe::SpiffeId;
use mesh_telemetry::access_log::{AccessLog, Entry};
use mesh_telemetry::layer::{request_head_bytes, response_head_bytes};
use mesh_telemetry::metrics::{
    IstioMetrics, Labels, Reporter, RequestLabels, RequestProtocol, RequestSample, SecurityPolicy,
    Workload,
};
use mesh_telemetry::trace_context::{Propagation, Sampler, SpanContext};
use tokio::time::Instant;

use crate::forward::FaultDelayed;
use crate::headers::{Direction, X_REQUEST_ID, new_request_id};
use crate::local_reply::{ResponseFlag, UpstreamFlag, is_grpc};
use crate::peers::LocalLabels;
use crate::proxy::{Shared, StartError};
use crate::resilience::ClusterGuard;
use crate::server::Connection;
use crate::settings::{AccessLogTarget, LogFormat, ProxySettings};

/// Telemetry settings of one proxy.
#[derive(Debug)]
pub(crate) struct Telemetry {
    access_log: AccessLog,
    json: bool,
    sampler: Sampler,
    propagation: Propagation,
    /// This workload's metric labels.
    pub(crate) labels: LocalLabels,
    istio: IstioMetrics,
}

impl Telemetry {
    pub(crate) fn new(
        settings: &ProxySettings,
        own: Option<&SpiffeId>,
        istio: IstioMetrics,
    ) -> Result<Self, StartError> {
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
            labels: LocalLabels::new(settings, own),
            istio,
        })
    }
}

/// The start of every request: request id, this hop's span, the headers for the next hop, and
/// the request's record.
pub(crate) fn begin<B>(
    shared: &Arc<Shared>,
    req: &mut Request<B>,
    direction: Direction,
    conn: &Connection,
) -> Box<Record> {
    let t = &shared.telemetry;
    let started = Instant::now();
    let start_time = SystemTime::now();
    // Measured before this hop adds its own headers: the bytes as received (MET-1).
    let request_head = request_head_bytes(req);
    // REQID-1: kept when present, generated once here so every attempt and mirror carries
    // the same id.
    if !req.headers().contains_key(&X_REQUEST_ID) {
        req.headers_mut()
            .insert(X_REQUEST_ID.clone(), new_request_id());
    }
    let span = SpanContext::start(req.headers(), &t.sampler, &mut Random::thread());
    span.inject(req.headers_mut(), t.propagation);
    let received = Arc::new(AtomicU64::new(0));
    req.extensions_mut()
        .insert(BytesReceived(Arc::clone(&received)));
    let entry = t
        .access_log
        .is_enabled()
        .then(|| Box::new(log_entry(req, conn, &span)));
    Box::new(Record {
        shared: Arc::clone(shared),
        direction,
        started,
        start_time,
        grpc: is_grpc(req.headers()),
        request_head,
        received,
        caller: conn.caller.clone(),
        mtls: conn.downstream.is_mtls(),
        entry,
        span,
        route: RouteInfo::default(),
        response: None,
        sent: 0,
        ended: false,
    })
}

/// The access-log fields known when the request arrives.
fn log_entry<B>(req: &Request<B>, conn: &Connection, span: &SpanContext) -> Entry {
    let mut entry = Entry::from_request(req, Some(&conn.downstream));
    entry.trace_id = Some(span.trace_id().to_string());
    entry
}

/// The request body's byte counter, read from the request extensions by the body wrappers.
#[derive(Clone, Debug)]
pub(crate) struct BytesReceived(pub(crate) Arc<AtomicU64>);

/// What routing decided: the route's LOG-2 name and the cluster with its guard.
#[derive(Clone, Debug, Default)]
pub(crate) struct RouteInfo {
    pub(crate) route_name: Option<Arc<str>>,
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// The cluster's guard rails and metric labels, of the config version that routed.
    pub(crate) guard: Option<Arc<ClusterGuard>>,
}

/// The endpoint that answered and its time to headers, set on upstream responses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UpstreamInfo {
    pub(crate) host: SocketAddr,
    pub(crate) service_time_ms: u64,
}

/// What the response said, once it is known.
#[derive(Debug)]
struct ResponsePart {
    code: u16,
    flags: Cow<'static, str>,
    grpc_status: Option<u16>,
    head: u64,
    upstream: Option<UpstreamInfo>,
}

/// One request's telemetry in the making: reported (metrics, access-log line) when dropped.
#[derive(Debug)]
pub(crate) struct Record {
    shared: Arc<Shared>,
    direction: Direction,
    started: Instant,
    start_time: SystemTime,
    grpc: bool,
    request_head: u64,
    received: Arc<AtomicU64>,
    /// The inbound caller's labels, from its connection.
    caller: Labels<Workload>,
    mtls: bool,
    entry: Option<Box<Entry>>,
    span: SpanContext,
    /// Filled in by the forwarding path.
    pub(crate) route: RouteInfo,
    response: Option<ResponsePart>,
    sent: u64,
    ended: bool,
}

impl Record {
    /// Takes in the response's status, flags and head; the record is reported once the body
    /// has been sent (or dropped).
    pub(crate) fn respond<B>(&mut self, resp: &Response<B>) {
        let ext = resp.extensions();
        let raw = ext
            .get::<ResponseFlag>()
            .map(|f| f.0)
            .or_else(|| ext.get::<UpstreamFlag>().map(|f| f.0));
        let flag = raw.filter(|f| *f != "-");
        let delayed = ext.get::<FaultDelayed>().is_some();
        let flags = match (flag, delayed) {
            (None, false) => Cow::Borrowed("-"),
            (Some(f), false) => Cow::Borrowed(f),
            (None, true) => Cow::Borrowed("DI"),
            (Some(f), true) => Cow::Owned(join_flags(f, "DI")),
        };
        let grpc_status = if self.grpc {
            grpc_status(resp.headers())
        } else {
            None
        };
        let upstream = ext.get::<UpstreamInfo>().copied();
        if let Some(e) = self.entry.as_mut() {
            e.response_code_details = details(raw, upstream.is_some(), resp.status()).to_owned();
        }
        self.response = Some(ResponsePart {
            code: resp.status().as_u16(),
            flags,
            grpc_status,
            head: response_head_bytes(resp),
            upstream,
        });
    }

    /// Counts body bytes sent.
    pub(crate) fn sent(&mut self, n: usize) {
        self.sent += n as u64;
    }

    /// The body reached its end.
    pub(crate) fn end(&mut self) {
        self.ended = true;
    }

    /// The response's trailers: a gRPC status there wins over none in the headers.
    pub(crate) fn trailers(&mut self, trailers: &HeaderMap) {
        if self.grpc
            && let Some(r) = self.response.as_mut()
            && let Some(s) = grpc_status(trailers)
        {
            r.grpc_status = Some(s);
        }
    }

    /// The metric labels of the finished request (MET-2..MET-4).
    fn metric_labels(
        &self,
        code: u16,
        flags: Cow<'static, str>,
        grpc: Option<u16>,
    ) -> RequestLabels {
        let local = &self.shared.telemetry.labels;
        let protocol = if self.grpc {
            RequestProtocol::Grpc
        } else {
            RequestProtocol::Http
        };
        let upstream = self
            .response
            .as_ref()
            .and_then(|r| r.upstream)
            .map(|u| u.host);
        let (reporter, source, destination, service, security) = match self.direction {
            Direction::Outbound => {
                let (destination, mtls, service) = match (&self.route.guard, &self.route.cluster) {
                    (Some(g), Some(c)) => {
                        let (d, mtls) = g.labels.destination(c, &g.tls, local, upstream);
                        (d, mtls, g.labels.service.clone())
                    }
                    _ => (
                        local.unknown().clone(),
                        false,
                        local.unknown_service().clone(),
                    ),
                };
                (
                    Reporter::Source,
                    local.me(mtls).clone(),
                    destination,
                    service,
                    SecurityPolicy::Unknown,
                )
            }
            Direction::Inbound => (
                Reporter::Destination,
                self.caller.clone(),
                local.me(self.mtls).clone(),
                self.shared.state.load().peers.inbound_service().clone(),
                if self.mtls {
                    SecurityPolicy::MutualTls
                } else {
                    SecurityPolicy::None
                },
            ),
        };
        RequestLabels {
            reporter,
            source,
            destination,
            service,
            protocol,
            response_code: code,
            grpc_status: grpc,
            response_flags: flags,
            security,
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let duration = self.started.elapsed();
        let (code, mut flags, grpc, head) = match &self.response {
            Some(r) => (r.code, r.flags.clone(), r.grpc_status, r.head),
            None => (0, Cow::Borrowed("-"), None, 0),
        };
        if !self.ended || self.response.is_none() {
            // The client went away before the whole response was sent.
            flags = if flags == "-" {
                Cow::Borrowed("DC")
            } else {
                Cow::Owned(join_flags(&flags, "DC"))
            };
        }
        let received = self.received.load(Ordering::Relaxed);
        let labels = self.metric_labels(code, flags.clone(), grpc);
        self.shared.telemetry.istio.record(
            &labels,
            &RequestSample {
                duration,
                request_bytes: self.request_head + received,
                response_bytes: head + self.sent,
                trace_id: self.span.is_sampled().then(|| self.span.trace_id()),
            },
        );
        let Some(mut e) = self.entry.take() else {
            return;
        };
        e.start_time = self.start_time;
        e.response_code = code;
        e.response_flags = flags.into_owned();
        if self.response.is_none() {
            e.response_code_details = "downstream_remote_disconnect".to_owned();
        }
        if let Some(u) = self.response.as_ref().and_then(|r| r.upstream) {
            e.upstream_host = Some(u.host);
            e.upstream_service_time = Some(u.service_time_ms);
        }
        e.route_name = self.route.route_name.as_ref().map(|n| n.to_string());
        e.upstream_cluster = match self.direction {
            Direction::Outbound => self.route.cluster.as_ref().map(|c| c.name().to_owned()),
            Direction::Inbound => Some(format!("inbound|{}||", self.shared.settings.app.port())),
        };
        if self.direction == Direction::Inbound && e.route_name.is_none() {
            e.route_name = Some("default".into());
        }
        e.bytes_received = received;
        e.bytes_sent = self.sent;
        e.duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let t = &self.shared.telemetry;
        t.access_log.write(if t.json { e.json() } else { e.text() });
    }
}

/// The `grpc-status` of a header or trailer block.
fn grpc_status(headers: &HeaderMap) -> Option<u16> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Envoy's order of response flags (`%RESPONSE_FLAGS%` lists them in this order).
const FLAG_ORDER: [&str; 26] = [
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM",
];

/// `flags` (comma-joined) with `extra` added, in Envoy's order.
fn join_flags(flags: &str, extra: &str) -> String {
    let rank = |f: &str| {
        FLAG_ORDER
            .iter()
            .position(|o| *o == f)
            .unwrap_or(usize::MAX)
    };
    let mut all: Vec<&str> = flags
        .split(',')
        .filter(|f| !f.is_empty() && *f != "-")
        .collect();
    if !all.contains(&extra) {
        all.push(extra);
    }
    all.sort_by_key(|f| rank(f));
    all.join(",")
}

/// Envoy's `%RESPONSE_CODE_DETAILS%` for what the proxy knows of the outcome.
fn details(flag: Option<&'static str>, upstream: bool, status: http::StatusCode) -> &'static str {
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
        Some("-") if status == http::StatusCode::FORBIDDEN => "rbac_access_denied",
        _ => "direct_response",
    }
}
