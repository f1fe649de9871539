//! The demo's traffic and the report it prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use super::Demo;

/// What one scenario sent and saw.
#[derive(Debug, Default)]
pub struct Scenario {
    /// What the scenario shows.
    pub title: String,
    /// The request, as a person would write it.
    pub request: String,
    /// Responses by `x-served-by` (or `proxy` for local replies).
    pub served_by: BTreeMap<String, usize>,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, usize>,
    /// Latencies, sorted.
    pub latencies: Vec<Duration>,
    /// The body of the first local reply, if any.
    pub local_reply: Option<String>,
}

impl Scenario {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * (self.latencies.len() as f64)).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }
}

/// Everything the demo measured.
#[derive(Debug, Default)]
pub struct Report {
    /// One entry per scenario.
    pub scenarios: Vec<Scenario>,
    /// What the guard rails did: upstream tries per payment-service instance and their
    /// health in `/clusters`.
    pub resilience: Vec<String>,
    /// What mTLS and authorization did: identities, callers seen, decisions.
    pub security: Vec<String>,
    /// A trace followed across two proxies, and Istio's request counters.
    pub telemetry: Vec<String>,
    /// The config version the proxy served.
    pub config_version: String,
    /// The proxy's listeners.
    pub listeners: String,
}

pub(super) async fn drive(demo: &Demo, n: usize) -> Report {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let out = demo.proxy.outbound_addr();
    let order_out = demo.order_proxy.outbound_addr();
    let inbound = demo.proxy.inbound_addr();
    let canary: &[(&str, &str)] = &[("x-canary-test", "true")];
    // (title, method, listener, Host, path, extra headers, requests)
    type Step<'a> = (
        &'a str,
        Method,
        std::net::SocketAddr,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        usize,
    );
    let plan: [Step<'_>; 8] = [
        (
            "VirtualService order-service: 95/5 split between subsets v1 and v2 (checkout-bff calls over mTLS; order-service-policy allows it)",
            Method::GET,
            out,
            "order-service:8080",
            "/api/v1/orders",
            &[],
            n.max(100),
        ),
        (
            "Header canary: x-canary-test: true goes to v2 (first route wins)",
            Method::GET,
            out,
            "order-service:8080",
            "/api/v1/orders",
            canary,
            n,
        ),
        (
            "checkout: no canary header, so subset stable (VirtualService checkout-routing)",
            Method::GET,
            out,
            "checkout.production:8080",
            "/cart",
            &[],
            n,
        ),
        (
            "payment-service, called by order-service (the one caller its AuthorizationPolicy allows): three instances, payment-service-3 answers 500 to everything; retries (attempts 3, retryOn 5xx) hide its errors and outlier detection ejects it",
            Method::POST,
            order_out,
            "payment-service.production.svc.cluster.local:8080",
            "/v1/payments",
            &[],
            n,
        ),
        (
            "payment-service, called by checkout-bff: mTLS succeeds, but payment-service-authz allows only order-service → 403 RBAC",
            Method::POST,
            out,
            "payment-service.production.svc.cluster.local:8080",
            "/v1/payments",
            &[],
            5,
        ),
        (
            "Unknown host: Envoy's 404 with flag NR",
            Method::GET,
            out,
            "nowhere.example.com",
            "/",
            &[],
            5,
        ),
        (
            "inventory-service's only instance is down: Istio's default policy retries the connect failure twice, then 503 (flags UF,URX)",
            Method::GET,
            out,
            "inventory-service.production:8080",
            "/items",
            &[],
            5,
        ),
        (
            "Plaintext straight to a workload's inbound port: PeerAuthentication STRICT closes the connection, no HTTP answer",
            Method::GET,
            inbound,
            "checkout.production.svc.cluster.local:8080",
            "/cart",
            &[],
            3,
        ),
    ];
    let mut scenarios = Vec::new();
    for (title, method, addr, host, path, headers, count) in plan {
        let extra: String = headers.iter().map(|(k, v)| format!("  {k}: {v}")).collect();
        let mut s = Scenario {
            title: title.into(),
            request: format!("{method} {path}  Host: {host}{extra}  via {addr}"),
            ..Scenario::default()
        };
        for _ in 0..count {
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(format!("http://{addr}{path}"))
                .header(HOST, host);
            for (k, v) in headers {
                builder = builder.header(*k, *v);
            }
            let req = builder
                .body(Empty::<Bytes>::new())
                .expect("a valid request");
            let started = Instant::now();
            match client.request(req).await {
                Ok(resp) => {
                    let status = resp.status();
                    let who = resp
                        .headers()
                        .get("x-served-by")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("proxy (local reply)")
                        .to_owned();
                    let body = resp
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    s.latencies.push(started.elapsed());
                    if who.starts_with("proxy") && s.local_reply.is_none() {
                        s.local_reply =
                            Some(format!("{status} {:?}", String::from_utf8_lossy(&body)));
                    }
                    *s.served_by.entry(who).or_default() += 1;
                    *s.statuses.entry(status.as_u16()).or_default() += 1;
                }
                Err(_) => {
                    *s.served_by
                        .entry("connection closed (no response)".to_owned())
                        .or_default() += 1;
                }
            }
        }
        s.latencies.sort();
        scenarios.push(s);
    }
    let resilience = resilience_lines(demo, &client).await;
    let security = security_lines(demo, &client).await;
    let telemetry = telemetry_lines(demo, &client).await;
    Report {
        scenarios,
        resilience,
        security,
        telemetry,
        config_version: demo.proxy.config_version(),
        listeners: format!(
            "outbound {}  inbound {}  admin {}",
            demo.proxy.outbound_addr(),
            demo.proxy.inbound_addr(),
            demo.proxy.admin_addr()
        ),
    }
}

impl Report {
    /// The report as text for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "mesh-proxy demo — config {}  ({})",
            self.config_version, self.listeners
        );
        for (i, s) in self.scenarios.iter().enumerate() {
            let total: usize = s.served_by.values().sum();
            let _ = writeln!(out, "\n{}. {}", i + 1, s.title);
            let _ = writeln!(out, "   {}", s.request);
            for (who, count) in &s.served_by {
                let pct = if total == 0 {
                    0.0
                } else {
                    100.0 * *count as f64 / total as f64
                };
                let _ = writeln!(out, "   {who:<28} {count:>5}  {pct:5.1}%");
            }
            let codes: Vec<String> = s
                .statuses
                .iter()
                .map(|(c, n)| {
                    format!(
                        "{} {}×{n}",
                        c,
                        StatusCode::from_u16(*c)
                            .ok()
                            .and_then(|s| s.canonical_reason())
                            .unwrap_or("")
                    )
                })
                .collect();
            if codes.is_empty() {
                continue;
            }
            let _ = writeln!(out, "   status: {}", codes.join(", "));
            let _ = writeln!(
                out,
                "   latency: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms",
                ms(s.percentile(50.0)),
                ms(s.percentile(90.0)),
                ms(s.percentile(99.0))
            );
            if let Some(reply) = &s.local_reply {
                let _ = writeln!(out, "   local reply: {reply}");
            }
        }
        if !self.resilience.is_empty() {
            let _ = writeln!(
                out,
                "\nResilience: what reached each payment-service instance (retries included)"
            );
            for line in &self.resilience {
                let _ = writeln!(out, "   {line}");
            }
        }
        if !self.security.is_empty() {
            let _ = writeln!(
                out,
                "\nZero trust: every hop above between proxies is mutual TLS with SVIDs from the demo's CA"
            );
            for line in &self.security {
                let _ = writeln!(out, "   {line}");
            }
        }
        if !self.telemetry.is_empty() {
            let _ = writeln!(
                out,
                "\nObservability: W3C trace context through every hop, Istio's metrics on every proxy"
            );
            for line in &self.telemetry {
                let _ = writeln!(out, "   {line}");
            }
        }
        out
    }
}

/// One sampled request followed from the checkout-bff proxy to the order-service sidecar that
/// served it (its trace id is the exemplar of that sidecar's duration bucket), then the
/// request counters both reporters keep for order-service.
async fn telemetry_lines(demo: &Demo, client: &Client<HttpConnector, Empty<Bytes>>) -> Vec<String> {
    let mut lines = Vec::new();
    let trace = format!(
        "{:032x}",
        mesh_core::random::Random::thread().next_u64() | 1 << 63
    );
    let out = demo.proxy.outbound_addr();
    let req = Request::get(format!("http://{out}/api/v1/orders"))
        .header(HOST, "order-service:8080")
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .body(Empty::<Bytes>::new());
    if let Ok(req) = req
        && let Ok(resp) = client.request(req).await
    {
        let _ = resp.into_body().collect().await;
    }
    lines.push(format!(
        "trace {trace}: sent through the checkout-bff proxy with traceparent …-01 (sampled)"
    ));
    // The duration is recorded when the response ends: give the sidecar a moment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for (name, sidecar) in &demo.sidecars {
        if !name.starts_with("order-service") {
            continue;
        }
        let Ok(req) = Request::get(format!("http://{}/stats/prometheus", sidecar.admin_addr()))
            .header("accept", "application/openmetrics-text")
            .body(Empty::<Bytes>::new())
        else {
            continue;
        };
        let Ok(resp) = client.request(req).await else {
            continue;
        };
        let text = resp
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        if text.contains(&format!("trace_id=\"{trace}\"")) {
            lines.push(format!(
                "   … reached {name}'s sidecar (reporter=destination) with the same trace id: it is the exemplar of its istio_request_duration_milliseconds bucket"
            ));
        }
    }
    let text = fetch(client, demo.proxy.admin_addr(), "/stats/prometheus").await;
    lines.push(
        "istio_requests_total on the checkout-bff proxy (reporter=source), by destination:".into(),
    );
    let mut rows: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for l in text
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{"))
    {
        let key = format!(
            "destination_workload=\"{}\" response_code=\"{}\" response_flags=\"{}\" destination_principal=\"{}\"",
            label(l, "destination_workload"),
            label(l, "response_code"),
            label(l, "response_flags"),
            label(l, "destination_principal"),
        );
        let v = l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        *rows.entry(key).or_default() += v as u64;
    }
    for (k, v) in rows {
        lines.push(format!("   {k}  {v}"));
    }
    lines
}

/// A label's value in one Prometheus sample line (`-` when absent).
fn label<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_once(&format!("{key}=\""))
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("-", |(v, _)| v)
}

/// One line per payment-service instance: the tries it got and its health in `/clusters`.
async fn resilience_lines(
    demo: &Demo,
    client: &Client<HttpConnector, Empty<Bytes>>,
) -> Vec<String> {
    let clusters = fetch(client, demo.order_proxy.admin_addr(), "/clusters").await;
    let cluster = "outbound|8080||payment-service.production.svc.cluster.local";
    demo.samples
        .iter()
        .filter(|s| s.name.starts_with("payment-service"))
        .map(|s| {
            let field = |name: &str| {
                let prefix = format!("{cluster}::{}::{name}::", s.endpoint);
                clusters
                    .lines()
                    .find_map(|l| l.strip_prefix(&prefix))
                    .unwrap_or("?")
                    .to_owned()
            };
            format!(
                "{:<20} tries {:>4}  health {:<22} ejections {}",
                s.name,
                s.served.load(std::sync::atomic::Ordering::Relaxed),
                field("health_flags"),
                field("outlier_ejections"),
            )
        })
        .collect()
}

/// GET `path` on an admin listener; empty on any failure (the report just shows less).
async fn fetch(
    client: &Client<HttpConnector, Empty<Bytes>>,
    admin: std::net::SocketAddr,
    path: &str,
) -> String {
    let Ok(req) = Request::get(format!("http://{admin}{path}")).body(Empty::new()) else {
        return String::new();
    };
    match client.request(req).await {
        Ok(resp) => resp
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The sum of the samples of `metric` whose labels contain `labels` in Prometheus text.
fn metric_sum(text: &str, metric: &str, labels: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Identities, the caller payment-service's app saw, and the decisions of the sidecars.
async fn security_lines(demo: &Demo, client: &Client<HttpConnector, Empty<Bytes>>) -> Vec<String> {
    let mut lines = vec![
        "checkout-bff proxy:  spiffe://cluster.local/ns/production/sa/checkout-bff".to_owned(),
        "order-service proxy: spiffe://cluster.local/ns/production/sa/order-service-sa".to_owned(),
    ];
    if let Some(s) = demo.samples.iter().find(|s| s.name == "payment-service-1") {
        let caller = s
            .last_caller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| "-".into());
        lines.push(format!(
            "payment-service-1's app saw the caller as {caller} (x-forwarded-client-cert from its sidecar)"
        ));
    }
    let (mut allowed, mut denied, mut mtls) = (0, 0, 0);
    for (name, sidecar) in &demo.sidecars {
        if !name.starts_with("payment-service") {
            continue;
        }
        let m = fetch(client, sidecar.admin_addr(), "/stats/prometheus").await;
        allowed += metric_sum(&m, "mesh_authz_decisions_total", "decision=\"allow\"");
        denied += metric_sum(&m, "mesh_authz_decisions_total", "decision=\"deny\"");
        mtls += metric_sum(&m, "mesh_inbound_connections_security_total", "mutual_tls");
    }
    lines.push(format!(
        "payment-service sidecars: {mtls} mTLS connections accepted; authorization allowed {allowed}, denied {denied} (policy payment-service-authz)"
    ));
    let m = fetch(client, demo.proxy.admin_addr(), "/stats/prometheus").await;
    lines.push(format!(
        "checkout-bff sidecar: {} plaintext connections refused (PeerAuthentication STRICT)",
        metric_sum(&m, "mesh_inbound_rejected_total", "plaintext")
    ));
    lines
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
