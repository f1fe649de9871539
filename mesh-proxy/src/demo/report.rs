//! The demo's traffic and the report it prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{Request, StatusCode};
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
    /// The config version the proxy served.
    pub config_version: String,
    /// The proxy's listeners.
    pub listeners: String,
}

pub(super) async fn drive(demo: &Demo, n: usize) -> Report {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let out = demo.proxy.outbound_addr();
    let inbound = demo.proxy.inbound_addr();
    let canary: &[(&str, &str)] = &[("x-canary-test", "true")];
    // (title, listener, Host, path, extra headers, requests)
    type Step<'a> = (
        &'a str,
        std::net::SocketAddr,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        usize,
    );
    let plan: [Step<'_>; 7] = [
        (
            "VirtualService order-service: 95/5 split between subsets v1 and v2",
            out,
            "order-service:8080",
            "/orders",
            &[],
            n.max(100),
        ),
        (
            "Header canary: x-canary-test: true goes to v2 (first route wins)",
            out,
            "order-service:8080",
            "/orders",
            canary,
            n,
        ),
        (
            "checkout: no canary header, so subset stable (VirtualService checkout-routing)",
            out,
            "checkout.production:8080",
            "/cart",
            &[],
            n,
        ),
        (
            "payment-service: three instances, payment-service-3 answers 500 to everything; retries (attempts 3, retryOn 5xx) hide its errors and outlier detection ejects it",
            out,
            "payment-service.production.svc.cluster.local:8080",
            "/v1/payments",
            &[],
            n,
        ),
        (
            "Unknown host: Envoy's 404 with flag NR",
            out,
            "nowhere.example.com",
            "/",
            &[],
            5,
        ),
        (
            "inventory-service's only instance is down: Istio's default policy retries the connect failure twice, then 503 (flags UF,URX)",
            out,
            "inventory-service.production:8080",
            "/items",
            &[],
            5,
        ),
        (
            "Inbound: the mesh calls this workload, the proxy forwards to the local app",
            inbound,
            "checkout.production.svc.cluster.local:8080",
            "/cart",
            &[],
            n,
        ),
    ];
    let mut scenarios = Vec::new();
    for (title, addr, host, path, headers, count) in plan {
        let extra: String = headers.iter().map(|(k, v)| format!("  {k}: {v}")).collect();
        let mut s = Scenario {
            title: title.into(),
            request: format!("GET {path}  Host: {host}{extra}  via {addr}"),
            ..Scenario::default()
        };
        for _ in 0..count {
            let mut builder = Request::get(format!("http://{addr}{path}")).header(HOST, host);
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
                Err(error) => {
                    *s.served_by
                        .entry(format!("client error: {error}"))
                        .or_default() += 1;
                }
            }
        }
        s.latencies.sort();
        scenarios.push(s);
    }
    let resilience = resilience_lines(demo, &client).await;
    Report {
        scenarios,
        resilience,
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
            let total: usize = s.statuses.values().sum();
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
        out
    }
}

/// One line per payment-service instance: the tries it got and its health in `/clusters`.
async fn resilience_lines(
    demo: &Demo,
    client: &Client<HttpConnector, Empty<Bytes>>,
) -> Vec<String> {
    let admin = demo.proxy.admin_addr();
    let clusters = match Request::get(format!("http://{admin}/clusters")).body(Empty::new()) {
        Ok(req) => match client.request(req).await {
            Ok(resp) => resp
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default(),
            Err(_) => String::new(),
        },
        Err(_) => String::new(),
    };
    let cluster = "outbound|8080||payment-service.production.svc.cluster.local";
    demo.samples
        .iter()
        .filter(|s| s.name.starts_with("payment-service"))
        .map(|s| {
            let field = |name: &str| {
                let prefix = format!("{cluster}::{}::{name}::", s.addr);
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
