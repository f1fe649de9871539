//! Zero trust end to end: two real proxies on loopback with SVIDs from a development CA, mTLS
//! between them, PeerAuthentication STRICT / PERMISSIVE / DISABLE on the server side, the
//! seeds' AuthorizationPolicy, XFCC towards the app, certificate files rotated under a running
//! proxy, and TCP authorization (SEMANTICS §4.5, §6, §7, §8, HDR-5).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use mesh_identity::ca::{DEFAULT_CA_TTL, DEFAULT_SVID_TTL, DevCa};
use mesh_identity::tls::{Expected, SpiffeServerVerifier, client_config};
use mesh_identity::{SpiffeId, TrustDomain};
use mesh_proxy::{IdentitySource, Proxy, ProxySettings, RunningProxy};
use mesh_test::{TestServer, eventually, raw_http1_with_timeout};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{send, text};

const NS: &str = "production";

fn td() -> TrustDomain {
    TrustDomain::new("cluster.local").unwrap()
}

fn ca() -> Arc<DevCa> {
    Arc::new(DevCa::new(&td(), DEFAULT_CA_TTL).unwrap())
}

/// The seeds' payment-service policy (examples/security.yaml).
const PAYMENT_POLICY: &str = "apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: payment-service-authz, namespace: production}
spec:
  selector: {matchLabels: {app: payment-service}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/production/sa/order-service-sa]}}]
    to: [{operation: {methods: [POST], paths: [/v1/payments, /v1/payments/*]}}]
---
";

fn peer_auth(mode: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: production}}\nspec:\n  mtls: {{mode: {mode}}}\n---\n"
    )
}

/// payment-service as the client side sees it: one WorkloadEntry at the server proxy's inbound
/// listener, running as `sa`; `extra` is appended (a DestinationRule, say).
fn payment_registry(inbound: SocketAddr, sa: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: payment-service, namespace: production}}
spec:
  hosts: [payment-service.production.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: payment-service}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: payment-service-1, namespace: production}}
spec:
  address: {ip}
  ports: {{http: {port}}}
  labels: {{app: payment-service}}
  serviceAccount: {sa}
---
{extra}",
        ip = inbound.ip(),
        port = inbound.port()
    )
}

struct Side {
    proxy: RunningProxy,
    _dir: tempfile::TempDir,
}

async fn start_proxy(
    yaml: &str,
    sa: &str,
    labels: &[(&str, &str)],
    app: Option<SocketAddr>,
    identity: IdentitySource,
) -> Side {
    mesh_test::trace_init();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
    let mut settings = ProxySettings::loopback([dir.path().to_path_buf()]);
    settings.namespace = NS.into();
    settings.service_account = sa.into();
    settings.labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    settings.inbound = SocketAddr::from(([127, 0, 0, 1], 0));
    if let Some(app) = app {
        settings.app = app;
    }
    settings.identity = identity;
    let check: mesh_core::watch::Check = Box::new(mesh_core::validate::check);
    let proxy = Proxy::start_with(settings, Some(check), None)
        .await
        .unwrap();
    Side { proxy, _dir: dir }
}

/// The payment-service workload: its app and its sidecar under `server_yaml`.
async fn payment_side(ca: &Arc<DevCa>, server_yaml: &str) -> (TestServer, Side) {
    let app = TestServer::builder().name("payment").start().await;
    let side = start_proxy(
        server_yaml,
        "payment-service-sa",
        &[("app", "payment-service")],
        Some(app.addr()),
        IdentitySource::DevCa(Arc::clone(ca)),
    )
    .await;
    (app, side)
}

/// A client workload running as `sa` whose registry points at `server`.
async fn client_side(ca: &Arc<DevCa>, sa: &str, server: &Side, extra: &str) -> Side {
    let yaml = payment_registry(server.proxy.inbound_addr(), "payment-service-sa", extra);
    start_proxy(
        &yaml,
        sa,
        &[("app", sa)],
        None,
        IdentitySource::DevCa(Arc::clone(ca)),
    )
    .await
}

async fn call(client: &Side, method: &str, path: &str) -> Response<Bytes> {
    let out = client.proxy.outbound_addr();
    send(
        out,
        Request::builder()
            .method(method)
            .uri(format!("http://{out}{path}"))
            .header("host", "payment-service.production.svc.cluster.local:8080"),
    )
    .await
}

async fn metrics(side: &Side) -> String {
    let a = side.proxy.admin_addr();
    text(&send(a, Request::get(format!("http://{a}/stats/prometheus"))).await).to_owned()
}

/// A direct mTLS connection to `addr` presenting an SVID for `sa`.
async fn mtls_connect(
    ca: &DevCa,
    sa: &str,
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let id = SpiffeId::istio(&td(), NS, sa).unwrap();
    let svid = ca.issue(&id, DEFAULT_SVID_TTL).unwrap();
    let verifier = SpiffeServerVerifier::new(Arc::new(ca.bundle()), Expected::Any);
    let config = client_config(svid.chain().to_vec(), svid.key_der(), Arc::new(verifier)).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("payment").unwrap(), tcp)
        .await
}

#[tokio::test]
async fn strict_mtls_and_the_seeds_payment_policy_through_two_proxies() {
    // SEMANTICS PA-4, PA-5, AUTHZ-23, HDR-4, HDR-5, DR-19 (auto mTLS), SE-6.
    let ca = ca();
    let server_yaml = format!("{}{PAYMENT_POLICY}", peer_auth("STRICT"));
    let (app, server) = payment_side(&ca, &server_yaml).await;
    let order = client_side(&ca, "order-service-sa", &server, "").await;
    let checkout = client_side(&ca, "checkout-bff", &server, "").await;

    let ok = call(&order, "POST", "/v1/payments").await;
    assert_eq!(ok.status(), 200, "{}", text(&ok));
    let seen = app.requests().pop().unwrap();
    let xfcc = seen.header("x-forwarded-client-cert").unwrap();
    assert!(
        xfcc.starts_with("By=spiffe://cluster.local/ns/production/sa/payment-service-sa;Hash="),
        "{xfcc}"
    );
    assert!(
        xfcc.ends_with(";URI=spiffe://cluster.local/ns/production/sa/order-service-sa"),
        "{xfcc}"
    );
    assert_eq!(
        seen.header("x-forwarded-proto"),
        Some("http"),
        "set by the client proxy"
    );

    let sub = call(&order, "POST", "/v1/payments/42").await;
    assert_eq!(sub.status(), 200);
    // Dot segments are resolved before matching (AUTHZ-25): no way around the policy.
    let sneaky = call(&order, "POST", "/v1/payments/../../admin").await;
    assert_eq!(sneaky.status(), 403);

    let wrong_method = call(&order, "GET", "/v1/payments").await;
    assert_eq!(wrong_method.status(), 403);
    assert_eq!(text(&wrong_method), "RBAC: access denied");
    assert_eq!(wrong_method.headers()["content-type"], "text/plain");

    let denied = call(&checkout, "POST", "/v1/payments").await;
    assert_eq!(denied.status(), 403);
    assert_eq!(text(&denied), "RBAC: access denied");
    assert_eq!(
        app.request_count(),
        2,
        "denied requests never reach the app"
    );

    // PA-4 (pitfall): plaintext to a STRICT port is closed without any HTTP response.
    let answer = raw_http1_with_timeout(
        server.proxy.inbound_addr(),
        "POST /v1/payments HTTP/1.1\r\nhost: payment\r\nconnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await
    .unwrap_or_default();
    assert!(!answer.contains("HTTP/1.1"), "{answer:?}");
    let m = metrics(&server).await;
    assert!(
        m.contains("mesh_inbound_rejected_total{reason=\"plaintext\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("mesh_authz_decisions_total{protocol=\"http\",decision=\"deny\"} 3"),
        "{m}"
    );
    assert!(
        m.contains(
            "mesh_inbound_connections_security_total{connection_security_policy=\"mutual_tls\"}"
        ),
        "{m}"
    );
}

#[tokio::test]
async fn permissive_serves_mtls_and_plaintext_on_one_port() {
    // SEMANTICS PA-4 PERMISSIVE, PA-5 (no principal on plaintext), HDR-5 (XFCC sanitized).
    let ca = ca();
    let (app, server) = payment_side(&ca, &peer_auth("PERMISSIVE")).await;
    let order = client_side(&ca, "order-service-sa", &server, "").await;

    let via_mtls = call(&order, "GET", "/x").await;
    assert_eq!(via_mtls.status(), 200);
    assert!(
        app.requests()[0]
            .header("x-forwarded-client-cert")
            .is_some()
    );

    let inbound = server.proxy.inbound_addr();
    let plain = raw_http1_with_timeout(
        inbound,
        "GET /y HTTP/1.1\r\nhost: payment\r\nx-forwarded-client-cert: By=forged\r\nconnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    let seen = app.requests().pop().unwrap();
    assert_eq!(seen.uri.path(), "/y");
    assert!(
        seen.header("x-forwarded-client-cert").is_none(),
        "a plaintext client's XFCC is removed (HDR-5)"
    );
}

#[tokio::test]
async fn disable_passes_tls_to_the_app_and_a_dr_disable_talks_plaintext() {
    // SEMANTICS PA-4 DISABLE, PA-6 (the client decides by DR-18/19), DR-19 (DR wins), DR-20.
    let ca = ca();
    let (app, server) = payment_side(&ca, &peer_auth("DISABLE")).await;
    // Auto mTLS towards a DISABLE port: the ClientHello reaches the app (an HTTP server), the
    // handshake fails, and the client proxy answers like Envoy (DR-20, PA-6).
    let auto = client_side(&ca, "order-service-sa", &server, "").await;
    let failed = call(&auto, "GET", "/x").await;
    assert_eq!(failed.status(), 503);
    assert!(
        text(&failed).starts_with("upstream connect error or disconnect/reset before headers."),
        "{}",
        text(&failed)
    );
    assert!(
        text(&failed).ends_with("remote connection failure"),
        "{}",
        text(&failed)
    );
    assert!(
        !text(&failed).contains("TLS"),
        "the TLS reason stays out of the body"
    );
    assert_eq!(app.request_count(), 0);

    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payment-service, namespace: production}
spec:
  host: payment-service.production.svc.cluster.local
  trafficPolicy: {tls: {mode: DISABLE}}
---
";
    let plain = client_side(&ca, "order-service-sa", &server, dr).await;
    let ok = call(&plain, "GET", "/x").await;
    assert_eq!(ok.status(), 200, "{}", text(&ok));
    assert!(
        app.requests()[0]
            .header("x-forwarded-client-cert")
            .is_none()
    );
}

#[tokio::test]
async fn the_server_identity_must_be_the_expected_one() {
    // SEMANTICS SPIFFE-12 and SE-6: the WorkloadEntry says `someone-else`, the server presents
    // payment-service-sa: the handshake fails, a connect failure (DR-20). A DR's
    // subjectAltNames replace the expected set.
    let ca = ca();
    let (app, server) = payment_side(&ca, &peer_auth("STRICT")).await;
    let yaml = payment_registry(server.proxy.inbound_addr(), "someone-else", "");
    let client = start_proxy(
        &yaml,
        "order-service-sa",
        &[],
        None,
        IdentitySource::DevCa(Arc::clone(&ca)),
    )
    .await;
    let resp = call(&client, "GET", "/x").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(app.request_count(), 0);

    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payment-service, namespace: production}
spec:
  host: payment-service.production.svc.cluster.local
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL, subjectAltNames: [spiffe://cluster.local/ns/production/sa/payment-service-sa]}
---
";
    let yaml = payment_registry(server.proxy.inbound_addr(), "someone-else", dr);
    let client = start_proxy(
        &yaml,
        "order-service-sa",
        &[],
        None,
        IdentitySource::DevCa(Arc::clone(&ca)),
    )
    .await;
    let resp = call(&client, "GET", "/x").await;
    assert_eq!(resp.status(), 200, "{}", text(&resp));
}

#[tokio::test]
async fn istio_mutual_without_a_certificate_fails_to_connect() {
    // SEMANTICS DR-18, DR-20: an explicit ISTIO_MUTUAL needs the proxy's SVID; without one the
    // request fails as a connect failure instead of silently going out in plaintext.
    let app = TestServer::builder().start().await;
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payment-service, namespace: production}
spec:
  host: payment-service.production.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
";
    let yaml = payment_registry(app.addr(), "payment-service-sa", dr);
    let client = start_proxy(&yaml, "order-service-sa", &[], None, IdentitySource::None).await;
    let resp = call(&client, "GET", "/x").await;
    assert_eq!(resp.status(), 503);
    assert!(
        text(&resp).starts_with("upstream connect error"),
        "{}",
        text(&resp)
    );
    assert_eq!(app.request_count(), 0);
}

fn write_svid(dir: &std::path::Path, ca: &DevCa, sa: &str) -> Vec<u8> {
    let id = SpiffeId::istio(&td(), NS, sa).unwrap();
    let svid = ca.issue(&id, DEFAULT_SVID_TTL).unwrap();
    // Written beside, then renamed: what a careful rotation (or a Kubernetes secret) does.
    for (name, contents) in [
        ("cert.pem", svid.cert_pem().to_owned()),
        ("key.pem", svid.key_pem().to_owned()),
        ("ca.pem", ca.cert_pem().to_owned()),
    ] {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
    svid.cert_der().to_vec()
}

#[tokio::test]
async fn rotated_certificate_files_serve_new_handshakes_and_keep_open_connections() {
    // SEMANTICS SPIFFE-10: new handshakes use the new certificate, open connections keep
    // theirs and go on working.
    let ca = ca();
    let certs = tempfile::tempdir().unwrap();
    let first = write_svid(certs.path(), &ca, "payment-service-sa");
    let app = TestServer::builder().start().await;
    let files = IdentitySource::Files {
        cert: certs.path().join("cert.pem"),
        key: certs.path().join("key.pem"),
        ca: certs.path().join("ca.pem"),
    };
    let server = start_proxy(
        &peer_auth("STRICT"),
        "payment-service-sa",
        &[("app", "payment-service")],
        Some(app.addr()),
        files,
    )
    .await;
    let inbound = server.proxy.inbound_addr();
    let peer_leaf = |s: &tokio_rustls::client::TlsStream<TcpStream>| {
        s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    let mut open = mtls_connect(&ca, "order-service-sa", inbound)
        .await
        .unwrap();
    assert_eq!(peer_leaf(&open), first);

    let second = write_svid(certs.path(), &ca, "payment-service-sa");
    assert_ne!(first, second);
    let rotated = eventually(50, Duration::from_millis(100), || async {
        let s = mtls_connect(&ca, "order-service-sa", inbound)
            .await
            .unwrap();
        peer_leaf(&s) == second
    })
    .await;
    assert!(rotated, "new handshakes present the new certificate");

    // The connection opened before the rotation still carries requests.
    open.write_all(b"GET /still HTTP/1.1\r\nhost: p\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    open.read_to_string(&mut answer).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A certificate for another workload is refused and the current one keeps serving.
    write_svid(certs.path(), &ca, "intruder");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = mtls_connect(&ca, "order-service-sa", inbound)
        .await
        .unwrap();
    assert_eq!(peer_leaf(&s), second);
    let m = metrics(&server).await;
    assert!(m.contains("mesh_certificate_rotations_total 1"), "{m}");
}

#[tokio::test]
async fn tcp_connections_are_authorized_and_denials_close_them() {
    // SEMANTICS AUTHZ-23 (TCP): non-HTTP bytes after the handshake are opaque TCP to the app;
    // a deny closes the connection without a byte.
    let ca = ca();
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let policy = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-order, namespace: production}
spec:
  selector: {matchLabels: {app: payment-service}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/production/sa/order-service-sa]}}]
---
";
    let server = start_proxy(
        &format!("{}{policy}", peer_auth("STRICT")),
        "payment-service-sa",
        &[("app", "payment-service")],
        Some(echo_addr),
        IdentitySource::DevCa(Arc::clone(&ca)),
    )
    .await;
    let inbound = server.proxy.inbound_addr();

    let mut allowed = mtls_connect(&ca, "order-service-sa", inbound)
        .await
        .unwrap();
    allowed.write_all(b"\x00\x01ping").await.unwrap();
    let mut buf = [0u8; 6];
    allowed.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"\x00\x01ping");

    let mut denied = mtls_connect(&ca, "checkout-bff", inbound).await.unwrap();
    denied.write_all(b"\x00\x01ping").await.unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), denied.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte");
    let m = metrics(&server).await;
    assert!(
        m.contains("mesh_authz_decisions_total{protocol=\"tcp\",decision=\"deny\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn dry_run_policies_are_counted_not_enforced() {
    // SEMANTICS AUTHZ-26: `istio.io/dry-run: "true"` is evaluated and reported, never enforced.
    let ca = ca();
    let dry_deny = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-checkout
  namespace: production
  annotations: {istio.io/dry-run: \"true\"}
spec:
  selector: {matchLabels: {app: payment-service}}
  action: DENY
  rules:
  - from: [{source: {principals: [cluster.local/ns/production/sa/checkout-bff]}}]
---
";
    let (app, server) = payment_side(&ca, &format!("{}{dry_deny}", peer_auth("STRICT"))).await;
    let checkout = client_side(&ca, "checkout-bff", &server, "").await;
    let order = client_side(&ca, "order-service-sa", &server, "").await;
    assert_eq!(call(&checkout, "GET", "/x").await.status(), 200);
    assert_eq!(call(&order, "GET", "/x").await.status(), 200);
    assert_eq!(app.request_count(), 2);
    let m = metrics(&server).await;
    assert!(
        m.contains("mesh_authz_dry_run_total{decision=\"deny\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("mesh_authz_dry_run_total{decision=\"allow\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("mesh_authz_decisions_total{protocol=\"http\",decision=\"allow\"} 2"),
        "{m}"
    );
}
