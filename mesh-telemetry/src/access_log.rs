//! Access logs: one line per request, in Istio's default text format or as JSON (SEMANTICS
//! LOG-1), written off the request path.
//!
//! [`Entry`] holds the fields; [`Entry::text`] and [`Entry::json`] format them;
//! [`AccessLog`] writes lines from a background thread through a bounded queue, so a slow
//! terminal or disk never holds a request up: when the queue is full the line is dropped and
//! counted ([`AccessLog::dropped`]).
//!
//! ```
//! use mesh_telemetry::access_log::Entry;
//! let mut e = Entry::new(
//!     std::time::UNIX_EPOCH,
//!     "127.0.0.1:15001".parse().unwrap(),
//!     "127.0.0.1:50000".parse().unwrap(),
//! );
//! e.method = "GET".into();
//! e.path = "/productpage".into();
//! e.protocol = "HTTP/1.1";
//! e.response_code = 200;
//! let line = e.text();
//! assert!(line.starts_with("[1970-01-01T00:00:00.000Z] \"GET /productpage HTTP/1.1\" 200 - "));
//! let json: serde_json::Value = serde_json::from_str(&e.json()).unwrap();
//! assert_eq!(json["response_code"], 200);
//! ```

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mesh_core::extensions::Downstream;

/// One request as the access log shows it. Absent values print as `-`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// When the first byte of the request was received.
    pub start_time: SystemTime,
    /// The method.
    pub method: String,
    /// The path (and query) before any rewrite.
    pub path: String,
    /// `HTTP/1.1`, `HTTP/2`, …
    pub protocol: &'static str,
    /// The status sent downstream; 0 when none was sent.
    pub response_code: u16,
    /// Envoy's response flags (`UF,URX`), `-` when none.
    pub response_flags: String,
    /// Why the response is what it is (`via_upstream`, `route_not_found`, …).
    pub response_code_details: String,
    /// Why the connection was closed, when the proxy closed it.
    pub connection_termination_details: Option<String>,
    /// The upstream TLS or connect failure, when there was one.
    pub upstream_transport_failure_reason: Option<String>,
    /// Request body bytes received.
    pub bytes_received: u64,
    /// Response body bytes sent.
    pub bytes_sent: u64,
    /// From the first byte received to the last byte sent, in milliseconds.
    pub duration_ms: u64,
    /// The upstream's time to response headers, in milliseconds.
    pub upstream_service_time: Option<u64>,
    /// `x-forwarded-for` as received.
    pub x_forwarded_for: Option<String>,
    /// `user-agent`.
    pub user_agent: Option<String>,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// `:authority` / `Host`.
    pub authority: Option<String>,
    /// The endpoint that answered.
    pub upstream_host: Option<SocketAddr>,
    /// Istio's cluster name (`outbound|9080|v1|reviews.prod.svc.cluster.local`).
    pub upstream_cluster: Option<String>,
    /// The proxy's address on the upstream connection.
    pub upstream_local_address: Option<SocketAddr>,
    /// The listener address the request arrived on.
    pub downstream_local_address: SocketAddr,
    /// The downstream peer.
    pub downstream_remote_address: SocketAddr,
    /// The SNI of the downstream TLS connection.
    pub requested_server_name: Option<String>,
    /// The route name (LOG-2).
    pub route_name: Option<String>,
    /// The downstream peer's SPIFFE ID (mTLS).
    pub downstream_peer_uri_san: Option<String>,
    /// The trace id.
    pub trace_id: Option<String>,
}

impl Entry {
    /// An entry for a request that arrived at `start_time` on `local` from `remote`; every
    /// other field empty.
    pub fn new(start_time: SystemTime, local: SocketAddr, remote: SocketAddr) -> Entry {
        Entry {
            start_time,
            method: String::new(),
            path: String::new(),
            protocol: "HTTP/1.1",
            response_code: 0,
            response_flags: "-".into(),
            response_code_details: String::new(),
            connection_termination_details: None,
            upstream_transport_failure_reason: None,
            bytes_received: 0,
            bytes_sent: 0,
            duration_ms: 0,
            upstream_service_time: None,
            x_forwarded_for: None,
            user_agent: None,
            request_id: None,
            authority: None,
            upstream_host: None,
            upstream_cluster: None,
            upstream_local_address: None,
            downstream_local_address: local,
            downstream_remote_address: remote,
            requested_server_name: None,
            route_name: None,
            downstream_peer_uri_san: None,
            trace_id: None,
        }
    }

    /// An entry with what a request carries when it arrives: method, path (before any
    /// rewrite), protocol, `x-forwarded-for`, `user-agent`, `x-request-id`, authority, and from
    /// its connection (when known) the addresses, SNI and mTLS peer. Started now.
    pub fn from_request<B>(req: &http::Request<B>, conn: Option<&Downstream>) -> Entry {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut e = Entry::new(
            SystemTime::now(),
            conn.map_or(unspecified, |c| c.local),
            conn.map_or(unspecified, |c| c.remote),
        );
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        e.method = req.method().as_str().to_owned();
        e.path = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
        e.protocol = match req.version() {
            http::Version::HTTP_2 => "HTTP/2",
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        };
        e.x_forwarded_for = header("x-forwarded-for");
        e.user_agent = header("user-agent");
        e.request_id = header("x-request-id");
        e.authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| header("host"));
        if let Some(c) = conn {
            e.requested_server_name = c.sni.as_deref().map(str::to_owned);
            e.downstream_peer_uri_san = c.peer.as_ref().map(|p| p.uri().to_owned());
        }
        e
    }

    /// Istio's default text format (LOG-1), without a newline.
    pub fn text(&self) -> String {
        fn or_dash(v: Option<&str>) -> &str {
            v.filter(|s| !s.is_empty()).unwrap_or("-")
        }
        let addr = |a: Option<SocketAddr>| a.map_or_else(|| "-".to_owned(), |a| a.to_string());
        let mut out = String::with_capacity(320);
        let _ = write!(
            out,
            "[{}] \"{} {} {}\" {} {} {} {} \"{}\" {} {} {} {} \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" {} {} {} {} {} {}",
            rfc3339_millis(self.start_time),
            or_dash(Some(&self.method)),
            or_dash(Some(&self.path)),
            self.protocol,
            self.response_code,
            or_dash(Some(&self.response_flags)),
            or_dash(Some(&self.response_code_details)),
            or_dash(self.connection_termination_details.as_deref()),
            or_dash(self.upstream_transport_failure_reason.as_deref()),
            self.bytes_received,
            self.bytes_sent,
            self.duration_ms,
            self.upstream_service_time
                .map_or_else(|| "-".to_owned(), |t| t.to_string()),
            or_dash(self.x_forwarded_for.as_deref()),
            or_dash(self.user_agent.as_deref()),
            or_dash(self.request_id.as_deref()),
            or_dash(self.authority.as_deref()),
            addr(self.upstream_host),
            or_dash(self.upstream_cluster.as_deref()),
            addr(self.upstream_local_address),
            self.downstream_local_address,
            self.downstream_remote_address,
            or_dash(self.requested_server_name.as_deref()),
            or_dash(self.route_name.as_deref()),
        );
        out
    }

    /// The same fields as one JSON object (DESIGN's keys, LOG-1 in snake_case, plus
    /// `downstream_peer_uri_san` and `trace_id`); absent values are `null`.
    pub fn json(&self) -> String {
        let mut j = Json(String::with_capacity(640));
        j.0.push('{');
        j.str("start_time", Some(&rfc3339_millis(self.start_time)));
        j.str("method", Some(&self.method));
        j.str("path", Some(&self.path));
        j.str("protocol", Some(self.protocol));
        j.num("response_code", Some(u64::from(self.response_code)));
        j.str("response_flags", Some(&self.response_flags));
        j.str("response_code_details", Some(&self.response_code_details));
        let o = Option::as_deref;
        j.str(
            "connection_termination_details",
            o(&self.connection_termination_details),
        );
        j.str(
            "upstream_transport_failure_reason",
            o(&self.upstream_transport_failure_reason),
        );
        j.num("bytes_received", Some(self.bytes_received));
        j.num("bytes_sent", Some(self.bytes_sent));
        j.num("duration", Some(self.duration_ms));
        j.num("upstream_service_time", self.upstream_service_time);
        j.str("x_forwarded_for", o(&self.x_forwarded_for));
        j.str("user_agent", o(&self.user_agent));
        j.str("request_id", o(&self.request_id));
        j.str("authority", o(&self.authority));
        j.addr("upstream_host", self.upstream_host);
        j.str("upstream_cluster", o(&self.upstream_cluster));
        j.addr("upstream_local_address", self.upstream_local_address);
        j.addr(
            "downstream_local_address",
            Some(self.downstream_local_address),
        );
        j.addr(
            "downstream_remote_address",
            Some(self.downstream_remote_address),
        );
        j.str("requested_server_name", o(&self.requested_server_name));
        j.str("route_name", o(&self.route_name));
        j.str("downstream_peer_uri_san", o(&self.downstream_peer_uri_san));
        j.str("trace_id", o(&self.trace_id));
        j.0.push('}');
        j.0
    }
}

/// A JSON object written straight into a string, keys in LOG-1 order; empty and `-` values
/// are `null`.
struct Json(String);

impl Json {
    fn key(&mut self, key: &str) {
        if !self.0.ends_with('{') {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(key);
        self.0.push_str("\":");
    }

    fn str(&mut self, key: &str, v: Option<&str>) {
        self.key(key);
        match v.filter(|v| !v.is_empty() && *v != "-") {
            None => self.0.push_str("null"),
            Some(v) => {
                self.0.push('"');
                for c in v.chars() {
                    match c {
                        '"' => self.0.push_str("\\\""),
                        '\\' => self.0.push_str("\\\\"),
                        '\n' => self.0.push_str("\\n"),
                        '\r' => self.0.push_str("\\r"),
                        '\t' => self.0.push_str("\\t"),
                        c if u32::from(c) < 0x20 => {
                            let _ = write!(self.0, "\\u{:04x}", u32::from(c));
                        }
                        c => self.0.push(c),
                    }
                }
                self.0.push('"');
            }
        }
    }

    fn num(&mut self, key: &str, v: Option<u64>) {
        self.key(key);
        match v {
            None => self.0.push_str("null"),
            Some(n) => {
                let _ = write!(self.0, "{n}");
            }
        }
    }

    fn addr(&mut self, key: &str, v: Option<SocketAddr>) {
        self.key(key);
        match v {
            None => self.0.push_str("null"),
            Some(a) => {
                let _ = write!(self.0, "\"{a}\"");
            }
        }
    }
}

/// `2026-11-23T10:00:00.123Z` (RFC 3339, UTC, milliseconds).
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Bytes buffered for the writer before new lines are dropped (the writer is behind).
const MAX_BUFFERED: usize = 4 << 20;
/// The writer is woken early once this much is buffered.
const WAKE_AT: usize = 64 << 10;
/// The writer writes what is buffered at least this often (Envoy flushes access logs every
/// second by default; ours is quicker so a person watching sees lines at once).
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Lines waiting for the writer thread.
#[derive(Debug, Default)]
struct Buffer {
    state: Mutex<Pending>,
    wake: Condvar,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Every [`AccessLog`] handle is gone: write what is left and stop.
    closed: bool,
}

/// Closes the buffer when the last handle goes.
#[derive(Debug)]
struct Producer(Arc<Buffer>);

impl Drop for Producer {
    fn drop(&mut self) {
        self.0
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.0.wake.notify_one();
    }
}

/// Where access-log lines go (`--access-log stdout|off|PATH`).
///
/// A line costs the request path one short lock and a copy into a shared buffer; a writer
/// thread takes the buffer at least every 100 ms (sooner when 64 KiB are waiting) and writes
/// it with one call. Lines are dropped, and counted, only when 4 MiB are waiting.
#[derive(Clone, Debug)]
pub struct AccessLog {
    producer: Option<Arc<Producer>>,
}

impl AccessLog {
    /// No access log.
    pub fn off() -> AccessLog {
        AccessLog { producer: None }
    }

    /// Lines to standard output.
    pub fn stdout() -> AccessLog {
        Self::spawn(Box::new(std::io::stdout()))
    }

    /// Lines appended to the file at `path` (created if missing).
    pub fn file(path: &Path) -> std::io::Result<AccessLog> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self::spawn(Box::new(f)))
    }

    fn spawn(mut out: Box<dyn std::io::Write + Send>) -> AccessLog {
        let buffer = Arc::new(Buffer::default());
        let shared = Arc::clone(&buffer);
        let spawned = std::thread::Builder::new()
            .name("mesh-access-log".into())
            .spawn(move || {
                let mut spare = Vec::new();
                loop {
                    let closed = {
                        let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
                        if state.bytes.is_empty() && !state.closed {
                            state = shared
                                .wake
                                .wait_timeout(state, FLUSH_EVERY)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0;
                        }
                        std::mem::swap(&mut state.bytes, &mut spare);
                        state.closed
                    };
                    if !spare.is_empty() {
                        let _ = out.write_all(&spare);
                        let _ = out.flush();
                        spare.clear();
                    }
                    if closed {
                        break;
                    }
                }
            });
        AccessLog {
            producer: spawned.ok().map(|_| Arc::new(Producer(buffer))),
        }
    }

    /// Whether lines are written at all (skip building entries when not).
    pub fn is_enabled(&self) -> bool {
        self.producer.is_some()
    }

    /// Queues one line (a newline is added); drops it, and counts it, when the writer is far
    /// behind.
    pub fn write(&self, line: String) {
        let Some(p) = &self.producer else {
            return;
        };
        let buffer = &p.0;
        let mut state = buffer.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.bytes.len() + line.len() >= MAX_BUFFERED {
            drop(state);
            buffer.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.bytes.extend_from_slice(line.as_bytes());
        state.bytes.push(b'\n');
        let wake = state.bytes.len() >= WAKE_AT;
        drop(state);
        if wake {
            buffer.wake.notify_one();
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.producer
            .as_ref()
            .map_or(0, |p| p.0.dropped.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn log1_text_field_order_and_dashes() {
        let mut e = Entry::new(
            UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
            "127.0.0.1:15006".parse().unwrap(),
            "10.0.0.1:40000".parse().unwrap(),
        );
        e.method = "POST".into();
        e.path = "/v1/payments".into();
        e.response_code = 503;
        e.response_flags = "UF,URX".into();
        e.response_code_details =
            "upstream_reset_before_response_started{connection_failure}".into();
        e.bytes_received = 12;
        e.duration_ms = 7;
        e.request_id = Some("abc".into());
        e.authority = Some("payments:8080".into());
        e.upstream_cluster = Some("outbound|8080||payments.prod.svc.cluster.local".into());
        e.route_name = Some("default".into());
        assert_eq!(
            e.text(),
            "[2023-11-14T22:13:20.123Z] \"POST /v1/payments HTTP/1.1\" 503 UF,URX \
             upstream_reset_before_response_started{connection_failure} - \"-\" 12 0 7 - \"-\" \"-\" \
             \"abc\" \"payments:8080\" \"-\" outbound|8080||payments.prod.svc.cluster.local - \
             127.0.0.1:15006 10.0.0.1:40000 - default"
        );
        let j: Value = serde_json::from_str(&e.json()).unwrap();
        assert_eq!(j["response_flags"], "UF,URX");
        assert_eq!(j["upstream_host"], Value::Null);
        assert_eq!(j["duration"], 7);
        assert_eq!(j.as_object().unwrap().len(), 26);
    }

    #[test]
    fn json_escapes_what_clients_send() {
        let mut e = Entry::new(
            UNIX_EPOCH,
            "127.0.0.1:1".parse().unwrap(),
            "[::1]:2".parse().unwrap(),
        );
        e.user_agent = Some("a \"quoted\" \\ agent\u{1}\té".into());
        e.path = "-".into();
        let j: Value = serde_json::from_str(&e.json()).unwrap();
        assert_eq!(j["user_agent"], "a \"quoted\" \\ agent\u{1}\té");
        assert_eq!(j["path"], Value::Null, "a dash is null");
        assert_eq!(j["downstream_remote_address"], "[::1]:2");
        assert_eq!(j["upstream_service_time"], Value::Null);
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }

    /// Collects what the writer thread writes.
    struct Chan(std::sync::mpsc::Sender<Vec<u8>>);

    impl std::io::Write for Chan {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_reach_the_writer_in_order() {
        let (tx, rx) = std::sync::mpsc::channel();
        let log = AccessLog::spawn(Box::new(Chan(tx)));
        assert!(log.is_enabled());
        log.write("one".into());
        log.write("two".into());
        let mut text = Vec::new();
        while text.len() < 8 {
            let chunk = rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .expect("the writer thread writes");
            text.extend(chunk);
        }
        assert_eq!(String::from_utf8(text).unwrap(), "one\ntwo\n");
        assert_eq!(log.dropped(), 0);
        assert!(!AccessLog::off().is_enabled());
    }

    #[test]
    fn the_last_handle_dropped_writes_what_is_left() {
        let (tx, rx) = std::sync::mpsc::channel();
        let log = AccessLog::spawn(Box::new(Chan(tx)));
        let other = log.clone();
        log.write("a".into());
        drop(log);
        other.write("b".into());
        drop(other);
        let mut text = Vec::new();
        while let Ok(chunk) = rx.recv_timeout(std::time::Duration::from_secs(5)) {
            text.extend(chunk);
            if text.len() >= 4 {
                break;
            }
        }
        assert_eq!(String::from_utf8(text).unwrap(), "a\nb\n");
    }
}
