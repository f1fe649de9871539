//! Telemetry through real proxies: trace context across client proxy → server proxy → app →
//! (the app's own call) → client proxy again (SEMANTICS TRACE-5, TRACE-6, TRACE-15), the
//! request id (REQID-1), and the access log as JSON lines in a file (LOG-1).

use std::net::SocketAddr;
use std::path::Path;

use http::Request;
use mesh_proxy::settings::AccessLogTarget;
use mesh_proxy::{LogFormat, Proxy, ProxySettings, RunningProxy};
use mesh_test::TestServer;

use crate::harness::send;

const HOST: &str = "payments.production.svc.cluster.local";

/// payments as a client proxy sees it: one endpoint at `addr`.
fn registry(addr: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: payments, namespace: production}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints: [{{address: {ip}, ports: {{http: {port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: payments, namespace: production}}
spec:
  hosts: [payments]
  http:
  - name: pay
    match: [{{name: v1, uri: {{prefix: /v1}}}}]
    route: [{{destination: {{host: payments}}}}]
",
        ip = addr.ip(),
        port = addr.port()
    )
}

struct Side {
    proxy: RunningProxy,
    _dir: tempfile::TempDir,
}

async fn side(yaml: &str, app: Option<SocketAddr>, edit: impl FnOnce(&mut ProxySettings)) -> Side {
    mesh_test::trace_init();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
    let mut settings = ProxySettings::loopback([dir.path().to_path_buf()]);
    settings.namespace = "production".into();
    if let Some(app) = app {
        settings.app = app;
    }
    edit(&mut settings);
    let proxy = Proxy::start(settings).await.unwrap();
    Side { proxy, _dir: dir }
}

async fn get(
    out: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> http::Response<bytes::Bytes> {
    let mut b = Request::get(format!("http://{out}{path}")).header("host", format!("{HOST}:8080"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(out, b).await
}

fn traceparent_parts(v: &str) -> (String, String, String) {
    let p: Vec<&str> = v.split('-').collect();
    assert_eq!(p.len(), 4, "{v}");
    assert_eq!(p[0], "00");
    (p[1].to_owned(), p[2].to_owned(), p[3].to_owned())
}

#[tokio::test]
async fn the_trace_survives_both_proxies_and_the_apps_own_call() {
    // TRACE-5: each proxy keeps the trace id, makes its own span, and the next hop's parent is
    // that span; the sampled flag passes unchanged.
    let app = TestServer::builder().name("payments").start().await;
    let server = side("", Some(app.addr()), |_| {}).await;
    let client = side(&registry(server.proxy.inbound_addr()), None, |_| {}).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let incoming = format!("00-{trace}-00f067aa0ba902b7-01");
    let res = get(
        client.proxy.outbound_addr(),
        "/v1/pay",
        &[
            ("traceparent", &incoming),
            ("tracestate", "vendor=a, other=b"),
            ("x-request-id", "rid-1"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let seen = app.requests().pop().unwrap();
    let (t, parent, flags) = traceparent_parts(seen.header("traceparent").unwrap());
    assert_eq!(t, trace, "trace id kept through two proxies");
    assert_ne!(
        parent, "00f067aa0ba902b7",
        "the server proxy's span is the app's parent"
    );
    assert_eq!(flags, "01");
    assert_eq!(seen.header("tracestate"), Some("vendor=a,other=b"));
    assert_eq!(seen.header("x-request-id"), Some("rid-1"), "REQID-1: kept");

    // The app calls back into the mesh with the context it received: same trace again.
    let again = get(
        client.proxy.outbound_addr(),
        "/v1/refund",
        &[("traceparent", seen.header("traceparent").unwrap())],
    )
    .await;
    assert_eq!(again.status(), 200);
    let second = app.requests().pop().unwrap();
    let (t2, parent2, _) = traceparent_parts(second.header("traceparent").unwrap());
    assert_eq!(t2, trace);
    assert_ne!(parent2, parent);
    assert_eq!(
        second.header("x-request-id").map(str::len),
        Some(36),
        "generated"
    );
}

#[tokio::test]
async fn a_missing_or_broken_traceparent_starts_a_new_trace() {
    // TRACE-2, TRACE-6: restart with a random id; tracestate dropped; sampling per the proxy.
    let app = TestServer::builder().name("payments").start().await;
    let client = side(&registry(app.addr()), None, |s| s.trace_sampling = 100.0).await;
    let out = client.proxy.outbound_addr();
    let bad = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
    assert_eq!(
        get(out, "/v1/a", &[("traceparent", bad), ("tracestate", "a=1")])
            .await
            .status(),
        200
    );
    assert_eq!(get(out, "/v1/b", &[]).await.status(), 200);
    let seen = app.requests();
    let (t1, _, f1) = traceparent_parts(seen[0].header("traceparent").unwrap());
    let (t2, _, _) = traceparent_parts(seen[1].header("traceparent").unwrap());
    assert_ne!(t1, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(t1, t2, "each restart is a new trace");
    assert_eq!(f1, "03", "sampled at 100 %, random trace id");
    assert_eq!(seen[0].header("tracestate"), None);
}

#[tokio::test]
async fn b3_callers_get_b3_back() {
    // TRACE-14, TRACE-15: a B3 context is continued and written back in its own form.
    let app = TestServer::builder().name("payments").start().await;
    let client = side(&registry(app.addr()), None, |_| {}).await;
    let res = get(
        client.proxy.outbound_addr(),
        "/v1/a",
        &[("b3", "463ac35c9f6413ad-0020000000000001-1")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let seen = app.requests().pop().unwrap();
    let (t, _, flags) = traceparent_parts(seen.header("traceparent").unwrap());
    assert_eq!(t, "0000000000000000463ac35c9f6413ad");
    assert_eq!(flags, "01");
    let b3 = seen.header("b3").unwrap();
    assert!(b3.starts_with("0000000000000000463ac35c9f6413ad-"), "{b3}");
    assert!(b3.ends_with("-1-0020000000000001"), "{b3}");
    assert_eq!(seen.header("x-b3-traceid"), None, "never both forms");
}

async fn read_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..200 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<_> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n {
            return lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} access-log lines in {}", path.display());
}

#[tokio::test]
async fn access_log_lines_are_json_with_the_log1_fields() {
    let app = TestServer::builder()
        .name("payments")
        .body("paid")
        .start()
        .await;
    let logs = tempfile::tempdir().unwrap();
    let path = logs.path().join("access.log");
    let p = path.clone();
    let client = side(&registry(app.addr()), None, move |s| {
        s.access_log = AccessLogTarget::File(p);
        s.log_format = LogFormat::Json;
    })
    .await;
    let out = client.proxy.outbound_addr();
    let ok = send(
        out,
        Request::post(format!("http://{out}/v1/pay?x=1"))
            .header("host", format!("{HOST}:8080"))
            .header("x-request-id", "rid-42")
            .header("user-agent", "curl/8"),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let missing = get(out, "/v1/x", &[]).await;
    assert_eq!(missing.status(), 200);
    let nr = send(
        out,
        Request::get(format!("http://{out}/")).header("host", "nowhere.example:80"),
    )
    .await;
    assert_eq!(nr.status(), 404);

    // Lines are written when each response body is done, so their order may differ.
    let lines = read_lines(&path, 3).await;
    let find = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        lines
            .iter()
            .find(|l| pred(l))
            .unwrap_or_else(|| panic!("{lines:?}"))
            .clone()
    };
    let first = find(&|l| l["method"] == "POST");
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/v1/pay?x=1");
    assert_eq!(first["protocol"], "HTTP/1.1");
    assert_eq!(first["response_code"], 200);
    assert_eq!(first["response_flags"], serde_json::Value::Null);
    assert_eq!(first["response_code_details"], "via_upstream");
    assert_eq!(first["request_id"], "rid-42");
    assert_eq!(first["user_agent"], "curl/8");
    assert_eq!(first["authority"], format!("{HOST}:8080"));
    assert_eq!(first["upstream_host"], app.addr().to_string());
    assert_eq!(first["upstream_cluster"], format!("outbound|8080||{HOST}"));
    assert_eq!(first["route_name"], "pay.v1");
    assert_eq!(first["bytes_sent"], 4);
    assert_eq!(first["downstream_local_address"], out.to_string());
    assert!(first["trace_id"].as_str().is_some_and(|t| t.len() == 32));
    assert!(first["upstream_service_time"].is_u64());
    assert!(first["start_time"].as_str().unwrap().ends_with('Z'));
    let generated = find(&|l| l["path"] == "/v1/x");
    assert_eq!(generated["request_id"].as_str().map(str::len), Some(36));
    let nr = find(&|l| l["response_code"] == 404);
    assert_eq!(nr["response_code"], 404);
    assert_eq!(nr["response_flags"], "NR");
    assert_eq!(nr["response_code_details"], "route_not_found");
    assert_eq!(nr["upstream_cluster"], serde_json::Value::Null);
}
