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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

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
        let s = |v: &str| {
            if v.is_empty() || v == "-" {
                Value::Null
            } else {
                Value::from(v)
            }
        };
        let o = |v: Option<&str>| v.map_or(Value::Null, s);
        let a = |v: Option<SocketAddr>| v.map_or(Value::Null, |a| Value::from(a.to_string()));
        let mut m = Map::with_capacity(26);
        m.insert("start_time".into(), rfc3339_millis(self.start_time).into());
        m.insert("method".into(), s(&self.method));
        m.insert("path".into(), s(&self.path));
        m.insert("protocol".into(), self.protocol.into());
        m.insert("response_code".into(), self.response_code.into());
        m.insert("response_flags".into(), s(&self.response_flags));
        m.insert(
            "response_code_details".into(),
            s(&self.response_code_details),
        );
        m.insert(
            "connection_termination_details".into(),
            o(self.connection_termination_details.as_deref()),
        );
        m.insert(
            "upstream_transport_failure_reason".into(),
            o(self.upstream_transport_failure_reason.as_deref()),
        );
        m.insert("bytes_received".into(), self.bytes_received.into());
        m.insert("bytes_sent".into(), self.bytes_sent.into());
        m.insert("duration".into(), self.duration_ms.into());
        m.insert(
            "upstream_service_time".into(),
            self.upstream_service_time.map_or(Value::Null, Value::from),
        );
        m.insert("x_forwarded_for".into(), o(self.x_forwarded_for.as_deref()));
        m.insert("user_agent".into(), o(self.user_agent.as_deref()));
        m.insert("request_id".into(), o(self.request_id.as_deref()));
        m.insert("authority".into(), o(self.authority.as_deref()));
        m.insert("upstream_host".into(), a(self.upstream_host));
        m.insert(
            "upstream_cluster".into(),
            o(self.upstream_cluster.as_deref()),
        );
        m.insert(
            "upstream_local_address".into(),
            a(self.upstream_local_address),
        );
        m.insert(
            "downstream_local_address".into(),
            self.downstream_local_address.to_string().into(),
        );
        m.insert(
            "downstream_remote_address".into(),
            self.downstream_remote_address.to_string().into(),
        );
        m.insert(
            "requested_server_name".into(),
            o(self.requested_server_name.as_deref()),
        );
        m.insert("route_name".into(), o(self.route_name.as_deref()));
        m.insert(
            "downstream_peer_uri_san".into(),
            o(self.downstream_peer_uri_san.as_deref()),
        );
        m.insert("trace_id".into(), o(self.trace_id.as_deref()));
        Value::Object(m).to_string()
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

/// Lines queued for the writer before new ones are dropped.
const QUEUE: usize = 8192;

/// Where access-log lines go (`--access-log stdout|off|PATH`).
#[derive(Clone, Debug)]
pub struct AccessLog {
    tx: Option<SyncSender<String>>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// No access log.
    pub fn off() -> AccessLog {
        AccessLog {
            tx: None,
            dropped: Arc::default(),
        }
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
        let (tx, rx) = sync_channel::<String>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("mesh-access-log".into())
            .spawn(move || {
                while let Ok(line) = rx.recv() {
                    let _ = writeln!(out, "{line}");
                    // Write what is queued, then flush once.
                    while let Ok(line) = rx.try_recv() {
                        let _ = writeln!(out, "{line}");
                    }
                    let _ = out.flush();
                }
            });
        AccessLog {
            tx: spawned.ok().map(|_| tx),
            dropped: Arc::default(),
        }
    }

    /// Whether lines are written at all (skip building entries when not).
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues one line; drops it (and counts it) when the writer is behind.
    pub fn write(&self, line: String) {
        let Some(tx) = &self.tx else {
            return;
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
