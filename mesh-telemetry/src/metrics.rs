//! Istio's standard metrics: `istio_requests_total`, the request duration and size
//! histograms, and the `istio_tcp_*` family, with Istio's labels and buckets (SEMANTICS
//! MET-1..MET-6), so existing Grafana and Kiali dashboards work unchanged.
//!
//! Why this shape: a proxy reports every request, so recording must cost little. The label
//! values that describe a workload or a service are built once — per connection, per endpoint or
//! per config version — into [`Labels`], which carry a precomputed hash. A request then hashes
//! a handful of words to find its series, takes one read lock and does the atomic adds. Label
//! values come from config and identities only (never from paths or `Host` headers), so the
//! number of series stays bounded.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::time::Duration;
//! use mesh_telemetry::metrics::*;
//!
//! let metrics = IstioMetrics::new();
//! let mut registry = prometheus_client::registry::Registry::default();
//! metrics.register(&mut registry);
//!
//! let labels: BTreeMap<String, String> = [("app".into(), "reviews".into()), ("version".into(), "v2".into())].into();
//! let me = Labels::new(Workload::new(Some("reviews-v2"), Some("default"), &labels, None, Some("Kubernetes")));
//! let request = RequestLabels {
//!     reporter: Reporter::Destination,
//!     source: Labels::new(Workload::unknown()),
//!     destination: me,
//!     service: Labels::new(DestinationService::new("reviews.default.svc.cluster.local", Some("default"))),
//!     protocol: RequestProtocol::Http,
//!     response_code: 200,
//!     grpc_status: None,
//!     response_flags: "-".into(),
//!     security: SecurityPolicy::None,
//! };
//! metrics.record(&request, &RequestSample {
//!     duration: Duration::from_millis(3),
//!     request_bytes: 120,
//!     response_bytes: 840,
//!     trace_id: None,
//! });
//!
//! let mut text = String::new();
//! prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
//! assert!(text.contains(r#"istio_requests_total{reporter="destination""#));
//! assert!(text.contains(r#"destination_service_name="reviews""#));
//! let plain = to_prometheus_text(&text);
//! assert!(plain.contains("# TYPE istio_requests_total counter"));
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{
    EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::trace_context::TraceId;

/// Istio's (Envoy's default) histogram buckets, for the duration in milliseconds and both
/// byte histograms (MET-5); `+Inf` is added by the encoder.
pub const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The value of a label nothing is known about (MET-3).
pub const UNKNOWN: &str = "unknown";

/// A label value shared by many series, with its hash computed once.
///
/// Two `Labels` are equal when their values are; comparing two clones of one `Labels` is a
/// pointer comparison. Build them where the values change (a connection, an endpoint, a config
/// version), not per request.
pub struct Labels<T> {
    hash: u64,
    value: Arc<T>,
}

impl<T: Hash> Labels<T> {
    /// Wraps `value` and hashes it once.
    pub fn new(value: T) -> Self {
        let mut h = DefaultHasher::new();
        value.hash(&mut h);
        Self {
            hash: h.finish(),
            value: Arc::new(value),
        }
    }
}

impl<T> Clone for Labels<T> {
    fn clone(&self) -> Self {
        Self {
            hash: self.hash,
            value: Arc::clone(&self.value),
        }
    }
}

impl<T> Deref for Labels<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: PartialEq> PartialEq for Labels<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.value, &other.value)
            || (self.hash == other.hash && *self.value == *other.value)
    }
}

impl<T: Eq> Eq for Labels<T> {}

impl<T> Hash for Labels<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl<T: fmt::Debug> fmt::Debug for Labels<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

/// The labels that describe one side of a request: `source_*` or `destination_*` (MET-4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Workload {
    /// `*_workload`: the workload's name.
    pub workload: String,
    /// `*_workload_namespace`.
    pub namespace: String,
    /// `*_principal`: the SPIFFE ID with its scheme, or `unknown` without mTLS.
    pub principal: String,
    /// `*_app`.
    pub app: String,
    /// `*_version`.
    pub version: String,
    /// `*_canonical_service`.
    pub canonical_service: String,
    /// `*_canonical_revision`.
    pub canonical_revision: String,
    /// `*_cluster`.
    pub cluster: String,
}

impl Workload {
    /// Every value `unknown`, the revision `latest` (what Istio reports for a peer it knows
    /// nothing about).
    pub fn unknown() -> Self {
        Self {
            workload: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
            principal: UNKNOWN.into(),
            app: UNKNOWN.into(),
            version: UNKNOWN.into(),
            canonical_service: UNKNOWN.into(),
            canonical_revision: "latest".into(),
            cluster: UNKNOWN.into(),
        }
    }

    /// The labels of a workload from what config says about it (MET-4): its name, namespace and
    /// pod labels, its SPIFFE ID (`spiffe://…`) when the connection is mTLS, and the cluster.
    ///
    /// `app` is the `app` label, else `app.kubernetes.io/name`; `version` the `version` label,
    /// else `app.kubernetes.io/version`; the canonical service is
    /// `service.istio.io/canonical-name`, else the app, else the workload name; the canonical
    /// revision `service.istio.io/canonical-revision`, else the version, else `latest`. The
    /// workload name defaults to the app label.
    pub fn new(
        name: Option<&str>,
        namespace: Option<&str>,
        labels: &BTreeMap<String, String>,
        principal: Option<&str>,
        cluster: Option<&str>,
    ) -> Self {
        let label = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| labels.get(*k))
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let app = label(&["app", "app.kubernetes.io/name"]);
        let version = label(&["version", "app.kubernetes.io/version"]);
        let workload = name.filter(|n| !n.is_empty()).or(app);
        let canonical_service = label(&["service.istio.io/canonical-name"])
            .or(app)
            .or(workload);
        let canonical_revision = label(&["service.istio.io/canonical-revision"])
            .or(version)
            .unwrap_or("latest");
        let or_unknown = |v: Option<&str>| v.filter(|v| !v.is_empty()).unwrap_or(UNKNOWN).into();
        Self {
            workload: or_unknown(workload),
            namespace: or_unknown(namespace),
            principal: or_unknown(principal),
            app: or_unknown(app),
            version: or_unknown(version),
            canonical_service: or_unknown(canonical_service),
            canonical_revision: canonical_revision.into(),
            cluster: or_unknown(cluster),
        }
    }

    /// The same workload seen over a connection with (`Some`) or without (`None`) mTLS.
    pub fn with_principal(&self, principal: Option<&str>) -> Self {
        Self {
            principal: principal
                .filter(|p| !p.is_empty())
                .unwrap_or(UNKNOWN)
                .into(),
            ..self.clone()
        }
    }
}

/// `destination_service`, `destination_service_name`, `destination_service_namespace`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DestinationService {
    /// The service's host (FQDN).
    pub host: String,
    /// The first label of a Kubernetes-form host (`reviews` of
    /// `reviews.prod.svc.cluster.local`), else the whole host.
    pub name: String,
    /// The namespace of the service (its ServiceEntry's).
    pub namespace: String,
}

impl DestinationService {
    /// A service known by its host and namespace (MET-4).
    pub fn new(host: &str, namespace: Option<&str>) -> Self {
        let parts: Vec<&str> = host.split('.').collect();
        let name = if parts.len() >= 4 && parts[2] == "svc" {
            parts[0]
        } else {
            host
        };
        Self {
            host: host.into(),
            name: name.into(),
            namespace: namespace
                .filter(|n| !n.is_empty())
                .unwrap_or(UNKNOWN)
                .into(),
        }
    }

    /// No service known (no route matched, for example): every value `unknown`.
    pub fn unknown() -> Self {
        Self {
            host: UNKNOWN.into(),
            name: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
        }
    }
}

/// Which proxy reports (MET-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reporter {
    /// The client's proxy (outbound).
    Source,
    /// The server's proxy (inbound).
    Destination,
}

impl Reporter {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }
}

/// `connection_security_policy` (MET-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecurityPolicy {
    /// The server's proxy terminated mTLS.
    MutualTls,
    /// The server's proxy received plaintext.
    None,
    /// Reported by the client's proxy.
    Unknown,
}

impl SecurityPolicy {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityPolicy::MutualTls => "mutual_tls",
            SecurityPolicy::None => "none",
            SecurityPolicy::Unknown => UNKNOWN,
        }
    }
}

/// `request_protocol` (MET-4): `grpc` for a gRPC `content-type`, else `http` (HTTP/1.x and
/// HTTP/2 alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestProtocol {
    /// Plain HTTP.
    Http,
    /// gRPC.
    Grpc,
}

impl RequestProtocol {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestProtocol::Http => "http",
            RequestProtocol::Grpc => "grpc",
        }
    }
}

/// The 25 labels of one HTTP request series (MET-3), in Istio's order when encoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    /// `reporter`.
    pub reporter: Reporter,
    /// `source_*`.
    pub source: Labels<Workload>,
    /// `destination_*` (but the service).
    pub destination: Labels<Workload>,
    /// `destination_service*`.
    pub service: Labels<DestinationService>,
    /// `request_protocol`.
    pub protocol: RequestProtocol,
    /// `response_code`: the status sent downstream, 0 when none was (MET-4).
    pub response_code: u16,
    /// `grpc_response_status`: the gRPC status of a gRPC request, empty otherwise.
    pub grpc_status: Option<u16>,
    /// `response_flags`: MET-6 codes joined with `,`, or `-`.
    pub response_flags: Cow<'static, str>,
    /// `connection_security_policy`.
    pub security: SecurityPolicy,
}

/// The labels of a TCP series: [`RequestLabels`] without the protocol, response code and gRPC
/// status (MET-3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TcpLabels {
    /// `reporter`.
    pub reporter: Reporter,
    /// `source_*`.
    pub source: Labels<Workload>,
    /// `destination_*` (but the service).
    pub destination: Labels<Workload>,
    /// `destination_service*`.
    pub service: Labels<DestinationService>,
    /// `response_flags`.
    pub response_flags: Cow<'static, str>,
    /// `connection_security_policy`.
    pub security: SecurityPolicy,
}

fn label(encoder: &mut LabelSetEncoder<'_>, key: &str, value: &str) -> fmt::Result {
    (key, value).encode(encoder.encode_label())
}

fn encode_peers(
    e: &mut LabelSetEncoder<'_>,
    reporter: Reporter,
    source: &Workload,
    destination: &Workload,
    service: &DestinationService,
) -> fmt::Result {
    label(e, "reporter", reporter.as_str())?;
    label(e, "source_workload", &source.workload)?;
    label(e, "source_workload_namespace", &source.namespace)?;
    label(e, "source_principal", &source.principal)?;
    label(e, "source_app", &source.app)?;
    label(e, "source_version", &source.version)?;
    label(e, "source_canonical_service", &source.canonical_service)?;
    label(e, "source_canonical_revision", &source.canonical_revision)?;
    label(e, "source_cluster", &source.cluster)?;
    label(e, "destination_workload", &destination.workload)?;
    label(e, "destination_workload_namespace", &destination.namespace)?;
    label(e, "destination_principal", &destination.principal)?;
    label(e, "destination_app", &destination.app)?;
    label(e, "destination_version", &destination.version)?;
    label(e, "destination_service", &service.host)?;
    label(e, "destination_service_name", &service.name)?;
    label(e, "destination_service_namespace", &service.namespace)?;
    label(
        e,
        "destination_canonical_service",
        &destination.canonical_service,
    )?;
    label(
        e,
        "destination_canonical_revision",
        &destination.canonical_revision,
    )?;
    label(e, "destination_cluster", &destination.cluster)
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, e: &mut LabelSetEncoder<'_>) -> fmt::Result {
        encode_peers(
            e,
            self.reporter,
            &self.source,
            &self.destination,
            &self.service,
        )?;
        label(e, "request_protocol", self.protocol.as_str())?;
        label(e, "response_code", itoa_u16(self.response_code).as_str())?;
        match self.grpc_status {
            Some(s) => label(e, "grpc_response_status", itoa_u16(s).as_str())?,
            None => label(e, "grpc_response_status", "")?,
        }
        label(e, "response_flags", &self.response_flags)?;
        label(e, "connection_security_policy", self.security.as_str())
    }
}

impl EncodeLabelSet for TcpLabels {
    fn encode(&self, e: &mut LabelSetEncoder<'_>) -> fmt::Result {
        encode_peers(
            e,
            self.reporter,
            &self.source,
            &self.destination,
            &self.service,
        )?;
        label(e, "response_flags", &self.response_flags)?;
        label(e, "connection_security_policy", self.security.as_str())
    }
}

/// A small decimal rendering of a `u16` without allocating.
struct Digits {
    buf: [u8; 5],
    start: usize,
}

impl Digits {
    fn as_str(&self) -> &str {
        // Only ASCII digits are written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("0")
    }
}

fn itoa_u16(mut v: u16) -> Digits {
    let mut buf = [b'0'; 5];
    let mut start = 5;
    loop {
        start -= 1;
        buf[start] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    Digits { buf, start }
}

/// The exemplar of a duration bucket: the trace of one sampled request that fell in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub struct TraceExemplar {
    /// The 32-hex trace id.
    pub trace_id: String,
}

/// What one finished request measured.
#[derive(Clone, Copy, Debug)]
pub struct RequestSample {
    /// From the first byte of the request received to the last byte of the response sent.
    pub duration: Duration,
    /// Request headers and body as received from the downstream.
    pub request_bytes: u64,
    /// Response headers and body as sent downstream.
    pub response_bytes: u64,
    /// The trace of a sampled request: kept as an exemplar of its duration bucket.
    pub trace_id: Option<TraceId>,
}

/// The four metrics of one HTTP label set.
#[derive(Debug)]
struct RequestSeries {
    requests: Counter,
    duration: HistogramWithExemplars<TraceExemplar>,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

impl RequestSeries {
    fn new() -> Self {
        Self {
            requests: Counter::default(),
            duration: HistogramWithExemplars::new(BUCKETS.into_iter()),
            request_bytes: Histogram::new(BUCKETS),
            response_bytes: Histogram::new(BUCKETS),
        }
    }
}

/// The four counters of one TCP label set.
#[derive(Debug, Default)]
struct TcpSeries {
    sent: Counter,
    received: Counter,
    opened: Counter,
    closed: Counter,
}

/// Series by label set. One map serves the several metric families that share a label set,
/// so a request finds its series with one lookup.
#[derive(Debug)]
struct Series<L, S> {
    map: RwLock<HashMap<L, Arc<S>>>,
}

impl<L: Hash + Eq + Clone, S> Series<L, S> {
    fn new() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
        }
    }

    /// Runs `f` on the series of `labels`, creating it first if needed.
    fn with<R>(&self, labels: &L, new: impl FnOnce() -> S, f: impl FnOnce(&S) -> R) -> R {
        {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = map.get(labels) {
                return f(s);
            }
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let s = map.entry(labels.clone()).or_insert_with(|| Arc::new(new()));
        f(s)
    }

    /// The series of `labels`, created first if needed.
    fn get(&self, labels: &L, new: impl FnOnce() -> S) -> Arc<S> {
        {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = map.get(labels) {
                return Arc::clone(s);
            }
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(labels.clone()).or_insert_with(|| Arc::new(new())))
    }

    fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One metric family over a shared [`Series`] map: which part of each series it encodes.
struct View<L, S> {
    series: Arc<Series<L, S>>,
    part: fn(&S, MetricEncoder<'_>) -> fmt::Result,
    kind: MetricType,
}

impl<L, S> fmt::Debug for View<L, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View").field("kind", &self.kind).finish()
    }
}

impl<L, S> EncodeMetric for View<L, S>
where
    L: EncodeLabelSet + Hash + Eq + Clone,
{
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        let map = self
            .series
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for (labels, series) in map.iter() {
            let e = encoder.encode_family(labels)?;
            (self.part)(series, e)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }

    fn is_empty(&self) -> bool {
        self.series.len() == 0
    }
}

/// Istio's standard metrics of one proxy or service (MET-1). Cheap to clone: clones share the
/// series.
#[derive(Clone, Debug)]
pub struct IstioMetrics {
    requests: Arc<Series<RequestLabels, RequestSeries>>,
    tcp: Arc<Series<TcpLabels, TcpSeries>>,
}

impl Default for IstioMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl IstioMetrics {
    /// No series yet.
    pub fn new() -> Self {
        Self {
            requests: Arc::new(Series::new()),
            tcp: Arc::new(Series::new()),
        }
    }

    /// Registers the eight families in `registry` (names without the `_total` suffix that the
    /// encoder adds to counters).
    pub fn register(&self, registry: &mut Registry) {
        let http = |part: fn(&RequestSeries, MetricEncoder<'_>) -> fmt::Result, kind| View {
            series: Arc::clone(&self.requests),
            part,
            kind,
        };
        registry.register(
            "istio_requests",
            "HTTP and gRPC requests, counted when the response ends",
            http(|s, e| s.requests.encode(e), MetricType::Counter),
        );
        registry.register(
            "istio_request_duration_milliseconds",
            "From the first byte of the request received to the last byte of the response sent",
            http(|s, e| s.duration.encode(e), MetricType::Histogram),
        );
        registry.register(
            "istio_request_bytes",
            "Request headers and body as received from the downstream",
            http(|s, e| s.request_bytes.encode(e), MetricType::Histogram),
        );
        registry.register(
            "istio_response_bytes",
            "Response headers and body as sent downstream",
            http(|s, e| s.response_bytes.encode(e), MetricType::Histogram),
        );
        let tcp = |part: fn(&TcpSeries, MetricEncoder<'_>) -> fmt::Result| View {
            series: Arc::clone(&self.tcp),
            part,
            kind: MetricType::Counter,
        };
        registry.register(
            "istio_tcp_sent_bytes",
            "Bytes sent to the downstream on TCP connections",
            tcp(|s, e| s.sent.encode(e)),
        );
        registry.register(
            "istio_tcp_received_bytes",
            "Bytes received from the downstream on TCP connections",
            tcp(|s, e| s.received.encode(e)),
        );
        registry.register(
            "istio_tcp_connections_opened",
            "TCP connections opened",
            tcp(|s, e| s.opened.encode(e)),
        );
        registry.register(
            "istio_tcp_connections_closed",
            "TCP connections closed",
            tcp(|s, e| s.closed.encode(e)),
        );
    }

    /// Counts one finished request and observes its duration and sizes. A sampled request's
    /// trace id becomes the exemplar of its duration bucket.
    pub fn record(&self, labels: &RequestLabels, sample: &RequestSample) {
        let ms = sample.duration.as_secs_f64() * 1000.0;
        self.requests.with(labels, RequestSeries::new, |s| {
            s.requests.inc();
            let exemplar = sample.trace_id.map(|t| TraceExemplar {
                trace_id: t.to_string(),
            });
            s.duration.observe(ms, exemplar, None);
            s.request_bytes.observe(sample.request_bytes as f64);
            s.response_bytes.observe(sample.response_bytes as f64);
        });
    }

    /// Counts a TCP connection opened; the returned handle counts its bytes as they pass and
    /// the close when dropped.
    pub fn tcp_open(&self, labels: &TcpLabels) -> TcpConnection {
        let series = self.tcp.get(labels, TcpSeries::default);
        series.opened.inc();
        TcpConnection { series }
    }

    /// How many HTTP and TCP label sets exist (each is a series in four families).
    pub fn series_count(&self) -> usize {
        self.requests.len() + self.tcp.len()
    }
}

/// One TCP connection's counters (MET-1): bytes each way, and its close when dropped.
#[derive(Debug)]
pub struct TcpConnection {
    series: Arc<TcpSeries>,
}

impl TcpConnection {
    /// Counts bytes received from the downstream.
    pub fn received(&self, n: u64) {
        self.series.received.inc_by(n);
    }

    /// Counts bytes sent to the downstream.
    pub fn sent(&self, n: u64) {
        self.series.sent.inc_by(n);
    }
}

impl Drop for TcpConnection {
    fn drop(&mut self) {
        self.series.closed.inc();
    }
}

/// Turns the OpenMetrics text `prometheus_client` encodes into the Prometheus text format
/// (`text/plain; version=0.0.4`), for scrapers that do not ask for OpenMetrics: counter
/// metadata names get their `_total` suffix, exemplars and `# EOF` are dropped.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|rest| ("# HELP ", rest))
            .or_else(|| line.strip_prefix("# TYPE ").map(|rest| ("# TYPE ", rest)));
        match meta {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(kind);
                out.push_str(name);
                if counters.contains(&name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None if line.starts_with('#') => out.push_str(line),
            None => out.push_str(strip_exemplar(line)),
        }
        out.push('\n');
    }
    out
}

/// A sample line without its exemplar (` # {…} value [timestamp]`). The label set is skipped
/// with its quoting in mind, so a `#` inside a label value is left alone.
fn strip_exemplar(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut in_labels = false;
    let mut in_value = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_value => i += 1,
            b'"' if in_labels => in_value = !in_value,
            b'{' if !in_value => in_labels = true,
            b'}' if !in_value => in_labels = false,
            b'#' if !in_labels => return line[..i].trim_end(),
            _ => {}
        }
        i += 1;
    }
    line
}

#[cfg(test)]
mod tests;
