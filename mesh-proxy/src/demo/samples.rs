//! The demo's sample services: tiny HTTP/1.1 + h2c servers on loopback that say who they are.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How a sample answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleBehaviour {
    /// Always 200.
    Healthy,
    /// 503 on every `n`-th request.
    FailEvery(u64),
    /// Always this status (a broken instance).
    AlwaysFail(u16),
}

/// A running sample service.
#[derive(Debug)]
pub struct Sample {
    /// Name (also the `${name}` placeholder of its port in the config template).
    pub name: &'static str,
    /// Version label it reports.
    pub version: &'static str,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where the mesh reaches it: its sidecar's inbound listener (its own address until the
    /// demo gives it a sidecar).
    pub endpoint: SocketAddr,
    /// The caller's SPIFFE ID in the last request, from the `x-forwarded-client-cert` its
    /// sidecar added (HDR-5).
    pub last_caller: Arc<std::sync::Mutex<Option<String>>>,
    /// Requests served.
    pub served: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Sample {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The samples the template names, plus the local app behind the inbound listener.
pub(crate) async fn start_all() -> std::io::Result<Vec<Sample>> {
    use SampleBehaviour::*;
    let specs = [
        ("order-service-v1", "v1", Healthy),
        ("order-service-v2", "v2", Healthy),
        ("payment-service-1", "v1", Healthy),
        ("payment-service-2", "v1", Healthy),
        ("payment-service-3", "v1", AlwaysFail(500)),
        ("checkout-stable", "stable", Healthy),
        ("checkout-canary", "canary", Healthy),
        ("local-app", "v1", Healthy),
    ];
    let mut out = Vec::with_capacity(specs.len());
    for (name, version, behaviour) in specs {
        out.push(start(name, version, behaviour).await?);
    }
    Ok(out)
}

/// Starts one sample on an ephemeral loopback port.
pub(crate) async fn start(
    name: &'static str,
    version: &'static str,
    behaviour: SampleBehaviour,
) -> std::io::Result<Sample> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let served = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&served);
    let last_caller: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let caller = Arc::clone(&last_caller);
    let task = tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counter = Arc::clone(&counter);
            let caller = Arc::clone(&caller);
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                let uri = req
                    .headers()
                    .get("x-forwarded-client-cert")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit(';').find_map(|kv| kv.strip_prefix("URI=")))
                    .map(str::to_owned);
                if uri.is_some() {
                    *caller.lock().unwrap_or_else(|e| e.into_inner()) = uri;
                }
                let status = match behaviour {
                    SampleBehaviour::FailEvery(k) if n.is_multiple_of(k) => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                    SampleBehaviour::AlwaysFail(code) => {
                        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                    }
                    _ => StatusCode::OK,
                };
                let body = format!("{name} ({version}) {} {}\n", req.method(), req.uri().path());
                let resp = Response::builder()
                    .status(status)
                    .header("x-served-by", name)
                    .header("x-version", version)
                    .header("content-type", "text/plain")
                    .body(Full::new(Bytes::from(body)));
                async move { resp }
            });
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Ok(Sample {
        name,
        version,
        addr,
        endpoint: addr,
        last_caller,
        served,
        task,
    })
}
