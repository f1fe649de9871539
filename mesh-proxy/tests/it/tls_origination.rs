//! DestinationRule `tls` `SIMPLE` and `MUTUAL` towards servers outside the mesh (SEMANTICS
//! DR-18, DR-20): ordinary Web PKI certificates (a DNS name, no SPIFFE ID) from a test CA,
//! verified against `caCertificates` by SNI or `subjectAltNames`, with the client certificate
//! for `MUTUAL`; and `/config_dump`'s security section, which shows each cluster's TLS plan and
//! the proxy's certificate without key material.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_identity::ca::DEFAULT_CA_TTL;
use mesh_identity::{DevCa, TrustDomain};
use mesh_proxy::{IdentitySource, Proxy, ProxySettings, RunningProxy};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use crate::harness::{send, text};

/// A test CA of the Web PKI kind and the files it wrote.
struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        Pki {
            dir,
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `dns`, written as `NAME.pem` / `NAME-key.pem`.
    fn leaf(
        &self,
        name: &str,
        dns: &str,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![dns.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, dns);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}-key.pem")), key.serialize_pem()).unwrap();
        (
            vec![cert.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_string_lossy().into_owned()
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
            .unwrap();
        roots
    }
}

/// An HTTPS server (HTTP/1.1 over TLS) answering with the SNI it saw and the subject of the
/// client certificate, if any; `client_roots` makes a client certificate mandatory.
async fn https_server(
    pki: &Pki,
    dns: &str,
    client_roots: Option<rustls::RootCertStore>,
) -> SocketAddr {
    let (chain, key) = pki.leaf("server", dns);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_roots {
        Some(roots) => builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap(),
        ),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (_, conn) = tls.get_ref();
                let sni = conn.server_name().unwrap_or("").to_owned();
                let client = conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| {
                        let (_, cert) = x509_parser::parse_x509_certificate(c.as_ref()).unwrap();
                        cert.subject().to_string()
                    })
                    .unwrap_or_default();
                let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    let body = format!("sni={sni} client={client}");
                    async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            body,
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// A MESH_EXTERNAL ServiceEntry for `host` at `addr`, with a DestinationRule `tls` block.
fn external(host: &str, addr: SocketAddr, tls: &str) -> String {
    let name = host.split('.').next().unwrap();
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: production}}
spec:
  hosts: [{host}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 443, name: http, protocol: HTTP}}]
  endpoints: [{{address: {ip}, ports: {{http: {port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: production}}
spec:
  host: {host}
  trafficPolicy:
    tls: {tls}
---
",
        ip = addr.ip(),
        port = addr.port()
    )
}

struct Client {
    proxy: RunningProxy,
    _dir: tempfile::TempDir,
}

async fn client(yaml: &str, identity: IdentitySource) -> Client {
    mesh_test::trace_init();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
    let mut settings = ProxySettings::loopback([dir.path().to_path_buf()]);
    settings.namespace = "production".into();
    settings.service_account = "order-service-sa".into();
    settings.identity = identity;
    let check: mesh_core::watch::Check = Box::new(mesh_core::validate::check);
    let proxy = Proxy::start_with(settings, Some(check), None)
        .await
        .unwrap();
    Client { proxy, _dir: dir }
}

async fn get(client: &Client, host: &str) -> Response<Bytes> {
    let out = client.proxy.outbound_addr();
    send(
        out,
        Request::get(format!("http://{out}/charge")).header("host", format!("{host}:443")),
    )
    .await
}

async fn admin_get(client: &Client, path: &str) -> String {
    let a = client.proxy.admin_addr();
    text(&send(a, Request::get(format!("http://{a}{path}"))).await).to_owned()
}

fn quoted(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

#[tokio::test]
async fn simple_and_mutual_verify_the_server_by_ca_and_names() {
    // SEMANTICS DR-18 (SIMPLE/MUTUAL, caCertificates, sni, subjectAltNames), DR-20 (a failed
    // handshake is 503 UF "remote connection failure").
    let pki = Pki::new("Test Web CA");
    let other = Pki::new("Unrelated CA");
    let plain_server = https_server(&pki, "payments.example.com", None).await;
    let mtls_server = https_server(&pki, "payments.example.com", Some(pki.roots())).await;
    pki.leaf("client", "order-service.example.com");
    let ca = quoted(&pki.dir.path().join("ca.pem"));
    let wrong_ca = quoted(&other.dir.path().join("ca.pem"));
    let cert = quoted(&pki.dir.path().join("client.pem"));
    let key = quoted(&pki.dir.path().join("client-key.pem"));
    let mut yaml = String::new();
    for (host, addr, tls) in [
        // The SNI names the server and verifies it.
        (
            "simple.example.com",
            plain_server,
            format!("{{mode: SIMPLE, caCertificates: {ca}, sni: payments.example.com}}"),
        ),
        // subjectAltNames replace the SNI as the names to verify.
        (
            "by-san.example.com",
            plain_server,
            format!(
                "{{mode: SIMPLE, caCertificates: {ca}, subjectAltNames: [payments.example.com]}}"
            ),
        ),
        (
            "wrong-san.example.com",
            plain_server,
            format!(
                "{{mode: SIMPLE, caCertificates: {ca}, sni: payments.example.com, subjectAltNames: [billing.example.com]}}"
            ),
        ),
        // Without sni or subjectAltNames the host is the name: not in the certificate.
        (
            "no-name.example.com",
            plain_server,
            format!("{{mode: SIMPLE, caCertificates: {ca}}}"),
        ),
        (
            "wrong-ca.example.com",
            plain_server,
            format!("{{mode: SIMPLE, caCertificates: {wrong_ca}, sni: payments.example.com}}"),
        ),
        (
            "insecure.example.com",
            plain_server,
            "{mode: SIMPLE, sni: payments.example.com, insecureSkipVerify: true}".to_owned(),
        ),
        (
            "mutual.example.com",
            mtls_server,
            format!(
                "{{mode: MUTUAL, caCertificates: {ca}, sni: payments.example.com, clientCertificate: {cert}, privateKey: {key}}}"
            ),
        ),
        // The server wants a client certificate SIMPLE does not send.
        (
            "no-client-cert.example.com",
            mtls_server,
            format!("{{mode: SIMPLE, caCertificates: {ca}, sni: payments.example.com}}"),
        ),
    ] {
        yaml.push_str(&external(host, addr, &tls));
    }
    let c = client(&yaml, IdentitySource::None).await;

    for (host, want) in [
        ("simple.example.com", "sni=payments.example.com client="),
        ("by-san.example.com", "sni=by-san.example.com client="),
        ("insecure.example.com", "sni=payments.example.com client="),
        (
            "mutual.example.com",
            "sni=payments.example.com client=CN=order-service.example.com",
        ),
    ] {
        let res = get(&c, host).await;
        assert_eq!(res.status(), 200, "{host}: {}", text(&res));
        assert_eq!(text(&res), want, "{host}");
    }
    for host in [
        "wrong-san.example.com",
        "no-name.example.com",
        "wrong-ca.example.com",
    ] {
        let res = get(&c, host).await;
        assert_eq!(res.status(), 503, "{host}: {}", text(&res));
        assert!(
            text(&res).ends_with("remote connection failure"),
            "{host}: {}",
            text(&res)
        );
    }
    // In TLS 1.3 the client finishes its handshake before the server checks the client
    // certificate; the refusal arrives as an alert on the first read, so the request fails as
    // a reset before headers rather than as a connect failure.
    let res = get(&c, "no-client-cert.example.com").await;
    assert_eq!(res.status(), 503, "{}", text(&res));
    assert!(
        text(&res).starts_with("upstream connect error or disconnect/reset before headers."),
        "{}",
        text(&res)
    );
    let m = admin_get(&c, "/stats/prometheus").await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("mesh_upstream_cx_tls_fail")),
        "{m}"
    );

    // /config_dump shows the plan per cluster, with no key material.
    let dump: serde_json::Value =
        serde_json::from_str(&admin_get(&c, "/config_dump").await).unwrap();
    let clusters = dump["security"]["clusters"].as_array().unwrap();
    let plan = |name: &str| {
        clusters
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {clusters:?}"))["tls"]
            .clone()
    };
    let simple = plan("outbound|443||simple.example.com");
    assert_eq!(simple["mode"], "SIMPLE");
    assert_eq!(simple["sni"], "payments.example.com");
    assert_eq!(plan("outbound|443||mutual.example.com")["mode"], "MUTUAL");
    assert!(dump["security"]["identity"].is_null(), "no identity");
    let raw = dump.to_string();
    assert!(!raw.contains("PRIVATE KEY"), "{raw}");
}

#[tokio::test]
async fn config_dump_shows_the_certificate_and_peer_authentication_without_keys() {
    // DESIGN /config_dump: certificates only as subject, SPIFFE ID, serial and validity.
    let td = TrustDomain::new("cluster.local").unwrap();
    let ca = Arc::new(DevCa::new(&td, DEFAULT_CA_TTL).unwrap());
    let yaml = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: production}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ledger, namespace: production}
spec:
  hosts: [ledger.production.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: 9}, serviceAccount: ledger-sa}]
";
    let c = client(yaml, IdentitySource::DevCa(ca)).await;
    let body = admin_get(&c, "/config_dump").await;
    assert!(!body.contains("PRIVATE KEY"), "{body}");
    let dump: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sec = &dump["security"];
    let id = &sec["identity"];
    assert_eq!(
        id["spiffe_id"],
        "spiffe://cluster.local/ns/production/sa/order-service-sa"
    );
    assert_eq!(id["certificate"]["spiffe_id"], id["spiffe_id"]);
    for field in ["serial", "not_before", "not_after"] {
        assert!(
            id["certificate"][field]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{field}: {id}"
        );
    }
    assert!(id["rotation_at"].is_string());
    assert_eq!(
        id["trust_bundle"]["cluster.local"].as_array().map(Vec::len),
        Some(1),
        "{id}"
    );
    let pa = &sec["peer_authentication"];
    assert_eq!(pa["mode"], "STRICT");
    assert_eq!(pa["applied"][0]["name"], "default");
    assert_eq!(pa["applied"][0]["level"], "namespace");
    assert_eq!(pa["applied"][0]["mode"], "STRICT");
    let ledger = sec["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "outbound|8080||ledger.production.svc.cluster.local")
        .unwrap()
        .clone();
    assert_eq!(ledger["tls"]["mode"], "ISTIO_MUTUAL (auto)");
    assert_eq!(
        ledger["tls"]["sni"],
        "outbound_.8080_._.ledger.production.svc.cluster.local"
    );
}
