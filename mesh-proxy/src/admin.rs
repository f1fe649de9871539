//! The admin listener (DESIGN.md contract): `/ready`, `/live`, `/config_dump`,
//! `/stats/prometheus` (and `/metrics`), `/clusters`, `POST /logging?level=`,
//! `POST /quitquitquit`. It stays open during the drain, when `/ready` answers 503.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mesh_core::endpoint::EndpointSet;
use mesh_identity::credentials::CertSummary;
use mesh_resilience::outlier::OutlierDetector;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::metrics::ScrapeSources;
use crate::proxy::{ProxyState, Shared};
use crate::resilience::ClusterGuard;

/// Serves the admin API until the process exits.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let shared = Arc::clone(&shared);
        let service = service_fn(move |req| {
            let shared = Arc::clone(&shared);
            async move { Ok::<_, Infallible>(route(&shared, req)) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_response(value: &Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn route(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let query = req.uri().query().unwrap_or("");
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/live") => text(StatusCode::OK, "LIVE\n"),
        (&Method::GET, "/ready") => {
            if shared.is_draining() {
                text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n")
            } else if shared.ready.load(Ordering::Acquire) {
                text(StatusCode::OK, "LIVE\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n")
            }
        }
        (&Method::GET, "/stats/prometheus" | "/metrics") => {
            // Exemplars exist only in OpenMetrics: served to scrapers that ask for it.
            let openmetrics = req
                .headers()
                .get_all(http::header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("application/openmetrics-text"));
            let mut r = text(StatusCode::OK, prometheus(shared, openmetrics));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(if openmetrics {
                    "application/openmetrics-text; version=1.0.0; charset=utf-8"
                } else {
                    "text/plain; version=0.0.4; charset=utf-8"
                }),
            );
            r
        }
        (&Method::GET, "/config_dump") => json_response(&config_dump(shared)),
        (&Method::GET, "/clusters") => {
            if query.split('&').any(|kv| kv == "format=json") {
                json_response(&clusters_json(shared))
            } else {
                text(StatusCode::OK, clusters_text(shared))
            }
        }
        (&Method::POST, "/logging") => logging(shared, query),
        (&Method::POST, "/quitquitquit") => {
            tracing::info!("quitquitquit: draining");
            shared.start_drain();
            text(StatusCode::OK, "OK\n")
        }
        (
            _,
            "/live" | "/ready" | "/stats/prometheus" | "/metrics" | "/config_dump" | "/clusters",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"),
        (_, "/logging" | "/quitquitquit") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "admin endpoints: GET /ready /live /config_dump /stats/prometheus /metrics /clusters[?format=json]; POST /logging?level=LEVEL /quitquitquit\n",
        ),
    }
}

fn logging(shared: &Shared, query: &str) -> Response<Full<Bytes>> {
    let Some(handle) = &shared.log else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "logging is not managed by this process\n",
        );
    };
    let level = query.split('&').find_map(|kv| kv.strip_prefix("level="));
    match level {
        None => text(
            StatusCode::OK,
            format!("current level: {}\n", handle.current()),
        ),
        Some(level) => match handle.set(level) {
            Ok(now) => {
                tracing::info!(level = %now, "log level changed");
                text(StatusCode::OK, format!("level set to {now}\n"))
            }
            Err(e) => text(
                StatusCode::BAD_REQUEST,
                format!("invalid level {level:?}: {e}\n"),
            ),
        },
    }
}

fn prometheus(shared: &Shared, openmetrics: bool) -> String {
    let state = shared.state.load();
    let stats = shared.watch.stats();
    let now = Instant::now();
    let active: Vec<(&str, usize)> = state
        .registry
        .clusters()
        .filter_map(|c| {
            let guard = state.guards.by_name().get(c.name())?;
            let od = guard.outlier.as_ref()?;
            let set = c.endpoints();
            od.maybe_sweep(&set, now);
            Some((c.name(), OutlierDetector::active_ejections(&set)))
        })
        .collect();
    shared.metrics.resilience.set_active_ejections(active);
    shared.metrics.render(
        &ScrapeSources {
            version: state.snapshot.version(),
            reload_successes: stats.successes(),
            reload_failures: stats.failures(),
            last_reload_unix: stats.last_success_unix(),
            upstream_cx: shared.pool.connections_opened(),
            upstream_cx_fail: shared.pool.connect_failures(),
            upstream_cx_reused: shared.pool.connections_reused(),
        },
        openmetrics,
    )
}

fn config_dump(shared: &Shared) -> Value {
    let state = shared.state.load();
    let snapshot = &state.snapshot;
    let resources: Vec<Value> = snapshot
        .resources()
        .iter()
        .map(|r| {
            json!({
                "apiVersion": r.api_version(),
                "kind": r.kind().as_str(),
                "metadata": r.metadata(),
                "source": r.source().file_line(),
                "spec": r.spec_json(),
            })
        })
        .collect();
    json!({
        "version": snapshot.version(),
        "loaded_at": rfc3339(snapshot.loaded_at()),
        "resources": resources,
        "listeners": shared.listeners,
        "bootstrap": { "flags": shared.settings },
        "security": security_dump(shared, &state),
    })
}

/// What the proxy proves and demands: its certificate and trust bundle (subject, SPIFFE ID,
/// serial and validity only, never key material), the inbound PeerAuthentication modes with
/// the policies that set them, and each outbound cluster's TLS origination.
fn security_dump(shared: &Shared, state: &ProxyState) -> Value {
    let cert = |c: &CertSummary| {
        json!({
            "spiffe_id": c.spiffe_id,
            "subject": c.subject,
            "serial": c.serial,
            "not_before": rfc3339(c.not_before),
            "not_after": rfc3339(c.not_after),
        })
    };
    let identity = shared.identity.as_ref().map(|id| {
        let creds = id.store.credentials();
        let bundle = id.store.trust_bundle();
        let bundle: serde_json::Map<String, Value> = bundle
            .trust_domains()
            .map(|td| {
                let roots: Vec<Value> = bundle
                    .certificates(td)
                    .iter()
                    .filter_map(|der| CertSummary::of(der).ok())
                    .map(|c| cert(&c))
                    .collect();
                (td.to_string(), Value::Array(roots))
            })
            .collect();
        json!({
            "spiffe_id": id.own.to_string(),
            "certificate": cert(creds.summary()),
            "rotation_at": rfc3339(creds.rotation_at()),
            "trust_bundle": bundle,
        })
    });
    let pa = &state.peer_auth;
    let ports: serde_json::Map<String, Value> = pa
        .port_modes()
        .map(|(port, mode)| (port.to_string(), mode.as_str().into()))
        .collect();
    let applied: Vec<Value> = pa
        .applied()
        .iter()
        .map(|p| {
            json!({
                "level": p.level.as_str(),
                "namespace": p.namespace,
                "name": p.name,
                "mode": p.mode,
            })
        })
        .collect();
    let app_port = shared.settings.app.port();
    let mut clusters: Vec<(&String, &Arc<ClusterGuard>)> = state.guards.by_name().iter().collect();
    clusters.sort_unstable_by_key(|(name, _)| *name);
    let clusters: Vec<Value> = clusters
        .into_iter()
        .map(|(name, guard)| json!({ "name": name, "tls": guard.tls.dump() }))
        .collect();
    json!({
        "identity": identity,
        "peer_authentication": {
            "mode": pa.mode(app_port).as_str(),
            "default_mode": pa.default_mode().as_str(),
            "port_modes": ports,
            "applied": applied,
        },
        "authorization_policies": state.authz.len(),
        "clusters": clusters,
    })
}

/// Every cluster with its endpoint set: the outbound ones of the registry and the inbound app.
/// A cluster as `/clusters` shows it: its endpoints and, for outbound clusters, its guard
/// rails (breaker limits and counters; ejections swept first so the state is current, OD-7).
struct ClusterView {
    name: String,
    set: Arc<EndpointSet>,
    guard: Option<Arc<ClusterGuard>>,
}

fn all_clusters(shared: &Shared) -> Vec<ClusterView> {
    let state = shared.state.load();
    let now = Instant::now();
    let mut out: Vec<ClusterView> = state
        .registry
        .clusters()
        .map(|c| {
            let guard = state.guards.by_name().get(c.name()).cloned();
            let set = c.endpoints();
            if let Some(od) = guard.as_ref().and_then(|g| g.outlier.as_ref()) {
                od.maybe_sweep(&set, now);
            }
            ClusterView {
                name: c.name().to_owned(),
                set,
                guard,
            }
        })
        .collect();
    out.push(ClusterView {
        name: format!("inbound|{}||", shared.settings.app.port()),
        set: Arc::clone(&shared.inbound_cluster),
        guard: None,
    });
    out
}

/// Envoy's circuit-breaker lines: `default_priority::max_connections::N` and the like, then
/// our live counters.
fn breaker_lines(out: &mut String, name: &str, guard: &ClusterGuard) {
    let l = guard.breaker.limits();
    let _ = writeln!(
        out,
        "{name}::default_priority::max_connections::{}",
        l.max_connections
    );
    let _ = writeln!(
        out,
        "{name}::default_priority::max_pending_requests::{}",
        l.max_pending_requests
    );
    let _ = writeln!(
        out,
        "{name}::default_priority::max_requests::{}",
        l.max_requests
    );
    let _ = writeln!(
        out,
        "{name}::default_priority::max_retries::{}",
        l.max_retries
    );
    let b = &guard.breaker;
    let _ = writeln!(out, "{name}::rq_active::{}", b.active_requests());
    let _ = writeln!(out, "{name}::rq_pending_active::{}", b.pending_requests());
    let _ = writeln!(out, "{name}::rq_retry_active::{}", b.active_retries());
    let _ = writeln!(out, "{name}::cx_active::{}", b.active_connections());
    if let Some(od) = &guard.outlier {
        let c = od.config();
        let _ = writeln!(
            out,
            "{name}::outlier::consecutive_5xx::{}::consecutive_gateway_errors::{}::interval_ms::{}::base_ejection_time_ms::{}::max_ejection_percent::{}",
            c.consecutive_5xx,
            c.consecutive_gateway,
            c.interval.as_millis(),
            c.base_ejection_time.as_millis(),
            c.max_ejection_percent
        );
    }
}

fn clusters_text(shared: &Shared) -> String {
    let mut out = String::new();
    let now = Instant::now();
    for ClusterView { name, set, guard } in all_clusters(shared) {
        if let Some(g) = &guard {
            breaker_lines(&mut out, &name, g);
        }
        for (i, e) in set.endpoints().iter().enumerate() {
            let s = set.stats(i);
            let p = format!("{name}::{}", e.addr);
            let locality = e.locality.as_deref().unwrap_or("");
            let mut parts = locality.splitn(3, '/');
            let (region, zone, sub_zone) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let _ = writeln!(out, "{p}::rq_active::{}", s.rq_active());
            let _ = writeln!(out, "{p}::rq_error::{}", s.rq_error());
            let _ = writeln!(out, "{p}::rq_success::{}", s.rq_success());
            let _ = writeln!(out, "{p}::rq_total::{}", s.rq_total());
            let _ = writeln!(out, "{p}::outlier_ejections::{}", s.ejections());
            if let Some(left) = OutlierDetector::time_left(s, now) {
                let _ = writeln!(out, "{p}::ejection_time_left_ms::{}", left.as_millis());
            }
            let _ = writeln!(out, "{p}::hostname::");
            let _ = writeln!(out, "{p}::health_flags::{}", s.health().flags());
            let _ = writeln!(out, "{p}::weight::{}", e.weight);
            let _ = writeln!(out, "{p}::region::{region}");
            let _ = writeln!(out, "{p}::zone::{zone}");
            let _ = writeln!(out, "{p}::sub_zone::{sub_zone}");
        }
    }
    out
}

fn clusters_json(shared: &Shared) -> Value {
    let now = Instant::now();
    let statuses: Vec<Value> = all_clusters(shared)
        .into_iter()
        .map(|ClusterView { name, set, guard }| {
            let hosts: Vec<Value> = set
                .endpoints()
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let s = set.stats(i);
                    json!({
                        "address": {"socket_address": {"address": e.addr.ip().to_string(), "port_value": e.addr.port()}},
                        "health_flags": s.health().flags(),
                        "weight": e.weight,
                        "locality": e.locality,
                        "labels": *e.labels,
                        "service_account": e.service_account,
                        "stats": {
                            "rq_active": s.rq_active(),
                            "rq_error": s.rq_error(),
                            "rq_success": s.rq_success(),
                            "rq_total": s.rq_total(),
                            "outlier_ejections": s.ejections(),
                        },
                        "ejection_time_left_ms": OutlierDetector::time_left(s, now).map(|d| d.as_millis() as u64),
                    })
                })
                .collect();
            let mut cluster = json!({"name": name, "host_statuses": hosts});
            if let Some(g) = guard {
                let l = g.breaker.limits();
                cluster["circuit_breakers"] = json!({"thresholds": [{
                    "priority": "DEFAULT",
                    "max_connections": l.max_connections,
                    "max_pending_requests": l.max_pending_requests,
                    "max_requests": l.max_requests,
                    "max_retries": l.max_retries,
                    "retry_budget": g.breaker.retry_budget().map(|b| format!("{b:?}")),
                }]});
                cluster["stats"] = json!({
                    "rq_active": g.breaker.active_requests(),
                    "rq_pending_active": g.breaker.pending_requests(),
                    "rq_retry_active": g.breaker.active_retries(),
                    "cx_active": g.breaker.active_connections(),
                });
                if g.outlier.is_some() {
                    cluster["outlier_detection"] = json!({
                        "ejections_active": OutlierDetector::active_ejections(&set),
                    });
                }
            }
            cluster
        })
        .collect();
    json!({ "cluster_statuses": statuses })
}

/// `SystemTime` as RFC 3339 UTC with milliseconds (no date crate needed for one format).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_800);
        assert_eq!(rfc3339(t), "2100-01-01T00:00:00.000Z");
    }
}
