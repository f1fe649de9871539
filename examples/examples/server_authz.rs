//! Istio's AuthorizationPolicy inside a Rust server, no sidecar: a hyper server terminates mTLS
//! with SPIFFE certificates and `AuthzLayer` decides every request from the same YAML a sidecar
//! would read.
//!
//! `cargo run -p mesh-examples --example server_authz`
//!
//! A development CA (`DevCa`, never for production) issues X.509-SVIDs to `payment-service-sa`
//! (the server), `order-service-sa` and `checkout-bff` (two clients). The server requires a
//! client certificate from the trust bundle (STRICT mTLS), takes the verified peer SPIFFE ID
//! after each handshake and hands it to `AuthzLayer` in a `Downstream` request extension. The
//! policy lets only `order-service-sa` `POST` to `/v1/payments[/*]`; everything else gets
//! `403 RBAC: access denied` (SEMANTICS AUTHZ-23) without reaching the handler.
//!
//! ```text
//! TLS accept (SpiffeClientVerifier) → insert Downstream{peer} → AuthzLayer → handler
//! ```
#![allow(clippy::print_stdout, reason = "an example prints what it shows")]

use std::convert::Infallible;
use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use mesh_core::Snapshot;
use mesh_core::extensions::{Downstream, PeerIdentity};
use mesh_core::loader::parse_str;
use mesh_core::registry::Scope;
use mesh_identity::ca::{DEFAULT_CA_TTL, DEFAULT_SVID_TTL};
use mesh_identity::tls::{
    self, Expected, SpiffeClientVerifier, SpiffeServerVerifier, client_config, server_config,
};
use mesh_identity::{AuthzLayer, AuthzTable, DevCa, SpiffeId, TrustBundle, TrustDomain};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tower::ServiceBuilder;

type BoxError = Box<dyn Error + Send + Sync>;

const POLICY: &str = r#"
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: payment-service-authz, namespace: production}
spec:
  selector: {matchLabels: {app: payment-service}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/production/sa/order-service-sa"]}}]
    to: [{operation: {methods: ["POST"], paths: ["/v1/payments", "/v1/payments/*"]}}]
"#;

/// The application: it only runs for requests the policy allows.
async fn handler(req: http::Request<Incoming>) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let text = format!("payment accepted ({} {})", req.method(), req.uri().path());
    Ok(http::Response::new(Full::new(Bytes::from(text))))
}

/// Accepts mTLS connections and serves each with the authorization layer in front of `handler`.
async fn serve(listener: TcpListener, acceptor: TlsAcceptor, authz: AuthzLayer) {
    while let Ok((tcp, remote)) = listener.accept().await {
        let (acceptor, authz) = (acceptor.clone(), authz.clone());
        tokio::spawn(async move {
            let Ok(local) = tcp.local_addr() else { return };
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(error) => return eprintln!("handshake with {remote} failed: {error}"),
            };
            // The verified client identity: what `principals` in the policy are matched with.
            let (_, conn) = tls.get_ref();
            let mut downstream = Downstream::new(remote, local);
            if let Some(id) = tls::peer_spiffe_id(conn) {
                downstream = downstream.with_peer(PeerIdentity::new(id.to_string()));
            }
            if let Some(sni) = conn.server_name() {
                downstream = downstream.with_sni(sni);
            }
            let svc = ServiceBuilder::new()
                .map_request(move |mut req: http::Request<Incoming>| {
                    req.extensions_mut().insert(downstream.clone());
                    req
                })
                .layer(authz)
                .service_fn(handler);
            let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc))
                .await;
            if let Err(error) = served {
                eprintln!("connection from {remote}: {error}");
            }
        });
    }
}

/// An HTTP/2 client over mTLS presenting an SVID for `sa`, accepting only `server` as the peer.
async fn connect(
    ca: &DevCa,
    bundle: &Arc<TrustBundle>,
    server: &SpiffeId,
    sa: &str,
    addr: SocketAddr,
) -> Result<(SpiffeId, SendRequest<Empty<Bytes>>), BoxError> {
    let id = SpiffeId::istio(ca.trust_domain(), "production", sa)?;
    let svid = ca.issue(&id, DEFAULT_SVID_TTL)?;
    let verifier = SpiffeServerVerifier::new(bundle.clone(), Expected::Ids(vec![server.clone()]));
    let config = client_config(svid.chain().to_vec(), svid.key_der(), Arc::new(verifier))?;
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("payment-service.production.svc.cluster.local")?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    // Both sides offer ALPN h2 first (SPIFFE-9).
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    Ok((id, sender))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let td = TrustDomain::new("cluster.local")?;
    let ca = DevCa::new(&td, DEFAULT_CA_TTL)?;
    let bundle = Arc::new(ca.bundle());

    // payment-service: its SVID, STRICT mTLS, and the policy compiled for its labels.
    let payment = SpiffeId::istio(&td, "production", "payment-service-sa")?;
    let svid = ca.issue(&payment, DEFAULT_SVID_TTL)?;
    let verifier = Arc::new(SpiffeClientVerifier::new(bundle.clone()));
    let config = server_config(svid.chain().to_vec(), svid.key_der(), verifier)?;
    let snapshot = Snapshot::new(parse_str(POLICY, Path::new("policy.yaml"), "production")?);
    let scope = Scope::new("production").labels([("app", "payment-service")]);
    let table = AuthzTable::compile(&snapshot, &scope);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(serve(listener, acceptor, AuthzLayer::new(Arc::new(table))));
    println!("payment-service ({payment}) on https://{addr}");

    let cases = [
        ("order-service-sa", "POST", "/v1/payments", 200),
        ("order-service-sa", "GET", "/v1/payments", 403),
        ("checkout-bff", "POST", "/v1/payments", 403),
    ];
    for (sa, method, path, expected) in cases {
        let (id, mut sender) = connect(&ca, &bundle, &payment, sa, addr).await?;
        let req = http::Request::builder()
            .method(method)
            .uri(format!("https://payment-service.production:8080{path}"))
            .body(Empty::<Bytes>::new())?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        let body = String::from_utf8_lossy(&body);
        println!("{method:<4} {path:<13} as {id:<52} → {status} {body:?}");
        assert_eq!(status, expected, "{method} {path} as {id}");
        if expected == 403 {
            assert_eq!(body, "RBAC: access denied");
        }
    }
    Ok(())
}
