//! Handshake matrix over real TLS connections on 127.0.0.1 (SPIFFE-4..SPIFFE-12).

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::ca::{DEFAULT_CA_TTL, DEFAULT_SVID_TTL, DevCa, IssuedSvid, testing};
use crate::spiffe::TrustDomain;

const BOUND: Duration = Duration::from_secs(10);

/// What one side of a handshake ended with: the peer's SPIFFE ID, or the error.
type Side = Result<Option<SpiffeId>, io::Error>;

fn td() -> TrustDomain {
    TrustDomain::new("cluster.local").unwrap()
}

fn id(sa: &str) -> SpiffeId {
    SpiffeId::istio(&td(), "production", sa).unwrap()
}

fn server_name() -> ServerName<'static> {
    // Deliberately unrelated to any SAN: SPIFFE identity replaces the host-name check.
    ServerName::try_from("unrelated.example").unwrap()
}

fn client_cfg(svid: Option<&IssuedSvid>, bundle: &Arc<TrustBundle>, exp: Expected) -> ClientConfig {
    let verifier = Arc::new(SpiffeServerVerifier::new(bundle.clone(), exp));
    match svid {
        Some(s) => client_config(s.chain().to_vec(), s.key_der(), verifier).unwrap(),
        None => {
            let mut c = ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
            c.alpn_protocols = vec![b"h2".to_vec()];
            c
        }
    }
}

fn server_cfg(svid: &IssuedSvid, bundle: &Arc<TrustBundle>, mandatory: bool) -> ServerConfig {
    let verifier = if mandatory {
        SpiffeClientVerifier::new(bundle.clone())
    } else {
        SpiffeClientVerifier::optional(bundle.clone())
    };
    server_config(svid.chain().to_vec(), svid.key_der(), Arc::new(verifier)).unwrap()
}

/// Server side: accept `n` connections, each with the configuration current at accept time,
/// exchange one byte after the handshake, and report what it saw.
fn serve(
    listener: TcpListener,
    config: Arc<Mutex<Arc<ServerConfig>>>,
    n: usize,
) -> tokio::task::JoinHandle<Vec<Side>> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        for _ in 0..n {
            let (tcp, _) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            let cfg = config.lock().unwrap().clone();
            let side = async {
                let mut tls = TlsAcceptor::from(cfg).accept(tcp).await?;
                let peer = peer_spiffe_id(tls.get_ref().1);
                let mut b = [0u8; 1];
                tls.read_exact(&mut b).await?;
                tls.write_all(&b).await?;
                tls.shutdown().await?;
                Ok(peer)
            }
            .await;
            out.push(side);
        }
        out
    })
}

/// Client side: connect, exchange one byte, report the server's ID and ALPN.
async fn connect(port: u16, config: Arc<ClientConfig>) -> (Side, Option<Vec<u8>>, Option<Vec<u8>>) {
    let tcp = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(t) => t,
        Err(e) => return (Err(e), None, None),
    };
    let mut tls = match TlsConnector::from(config).connect(server_name(), tcp).await {
        Ok(t) => t,
        Err(e) => return (Err(e), None, None),
    };
    let peer = peer_spiffe_id(tls.get_ref().1);
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    let echoed = async {
        tls.write_all(b"x").await?;
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).await?;
        Ok::<_, io::Error>(())
    }
    .await;
    (echoed.map(|()| peer), alpn, leaf)
}

/// One handshake with fresh configurations; returns (client side, server side).
async fn handshake(server: ServerConfig, client: ClientConfig) -> (Side, Side) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let srv = serve(listener, Arc::new(Mutex::new(Arc::new(server))), 1);
    let (c, _, _) = connect(port, Arc::new(client)).await;
    let s = srv.await.unwrap().pop().unwrap();
    (c, s)
}

fn rustls_err(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

fn cert_err(side: &Side) -> Option<&CertificateError> {
    match rustls_err(side.as_ref().err()?)? {
        rustls::Error::InvalidCertificate(c) => Some(c),
        _ => None,
    }
}

enum Want {
    /// Handshake completes; each side sees the other's ID (client sees server's first).
    Ok(Option<SpiffeId>, Option<SpiffeId>),
    /// The client rejects the server's certificate with this kind of error.
    ClientRejects(fn(&CertificateError) -> bool),
    /// The server rejects the client.
    ServerRejects(fn(&rustls::Error) -> bool),
}

struct Row {
    name: &'static str,
    server: IssuedSvid,
    client: Option<IssuedSvid>,
    expected: Expected,
    mandatory: bool,
    want: Want,
}

#[tokio::test]
async fn handshake_matrix() {
    let ca = DevCa::new(&td(), DEFAULT_CA_TTL).unwrap();
    let other_root = DevCa::new(&td(), DEFAULT_CA_TTL).unwrap();
    let other_td = DevCa::new(&TrustDomain::new("other.domain").unwrap(), DEFAULT_CA_TTL).unwrap();
    let bundle = Arc::new(ca.bundle());
    let (order, payment) = (id("order-service"), id("payment-service"));
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let good = |who: &SpiffeId| ca.issue(who, DEFAULT_SVID_TTL).unwrap();
    let rejects_other: fn(&CertificateError) -> bool = |e| matches!(e, CertificateError::Other(_));

    let rows = vec![
        Row {
            name: "valid: both sides see each other",
            server: good(&payment),
            client: Some(good(&order)),
            expected: Expected::Ids(vec![payment.clone()]),
            mandatory: true,
            want: Want::Ok(Some(payment.clone()), Some(order.clone())),
        },
        Row {
            name: "valid: expected any",
            server: good(&payment),
            client: Some(good(&order)),
            expected: Expected::Any,
            mandatory: true,
            want: Want::Ok(Some(payment.clone()), Some(order.clone())),
        },
        Row {
            name: "valid: empty expected set means any (SPIFFE-12)",
            server: good(&payment),
            client: Some(good(&order)),
            expected: Expected::Ids(Vec::new()),
            mandatory: true,
            want: Want::Ok(Some(payment.clone()), Some(order.clone())),
        },
        Row {
            name: "expired server cert",
            server: ca
                .issue_with_validity(&payment, now - 3 * hour, now - hour)
                .unwrap(),
            client: Some(good(&order)),
            expected: Expected::Any,
            mandatory: true,
            want: Want::ClientRejects(|e| matches!(e, CertificateError::Expired)),
        },
        Row {
            name: "not-yet-valid server cert",
            server: ca
                .issue_with_validity(&payment, now + hour, now + 3 * hour)
                .unwrap(),
            client: Some(good(&order)),
            expected: Expected::Any,
            mandatory: true,
            want: Want::ClientRejects(|e| matches!(e, CertificateError::NotValidYet)),
        },
        Row {
            name: "wrong trust domain",
            server: other_td
                .issue(
                    &SpiffeId::parse("spiffe://other.domain/ns/production/sa/payment-service")
                        .unwrap(),
                    DEFAULT_SVID_TTL,
                )
                .unwrap(),
            client: Some(good(&order)),
            expected: Expected::Any,
            mandatory: true,
            want: Want::ClientRejects(|e| matches!(e, CertificateError::UnknownIssuer)),
        },
        Row {
            name: "no URI SAN",
            server: testing::no_uri_san(&ca).unwrap(),
            client: Some(good(&order)),
            expected: Expected::Any,
            mandatory: true,
            want: Want::ClientRejects(rejects_other),
        },
        Row {
            name: "two URI SANs",
            server: testing::two_uri_sans(&ca).unwrap(),
            client: Some(good(&order)),
            expected: Expected::Any,
            mandatory: true,
            want: Want::ClientRejects(rejects_other),
        },
        Row {
            name: "CA certificate used as leaf",
            server: testing::ca_as_leaf(&ca).unwrap(),
            client: Some(good(&order)),
            expected: Expected::Any,
            mandatory: true,
            want: Want::ClientRejects(rejects_other),
        },
        Row {
            name: "unknown root of the same trust domain",
            server: other_root.issue(&payment, DEFAULT_SVID_TTL).unwrap(),
            client: Some(good(&order)),
            expected: Expected::Any,
            mandatory: true,
            want: Want::ClientRejects(|e| matches!(e, CertificateError::UnknownIssuer)),
        },
        Row {
            name: "wrong expected identity",
            server: good(&payment),
            client: Some(good(&order)),
            expected: Expected::Ids(vec![order.clone()]),
            mandatory: true,
            want: Want::ClientRejects(rejects_other),
        },
        Row {
            name: "client without certificate, mandatory",
            server: good(&payment),
            client: None,
            expected: Expected::Any,
            mandatory: true,
            want: Want::ServerRejects(|e| matches!(e, rustls::Error::NoCertificatesPresented)),
        },
        Row {
            name: "client without certificate, optional",
            server: good(&payment),
            client: None,
            expected: Expected::Any,
            mandatory: false,
            want: Want::Ok(Some(payment.clone()), None),
        },
        Row {
            name: "client cert from unknown root",
            server: good(&payment),
            client: Some(other_root.issue(&order, DEFAULT_SVID_TTL).unwrap()),
            expected: Expected::Any,
            mandatory: true,
            want: Want::ServerRejects(|e| {
                matches!(
                    e,
                    rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
                )
            }),
        },
        Row {
            name: "expired client cert",
            server: good(&payment),
            client: Some(
                ca.issue_with_validity(&order, now - 3 * hour, now - hour)
                    .unwrap(),
            ),
            expected: Expected::Any,
            mandatory: true,
            want: Want::ServerRejects(|e| {
                matches!(
                    e,
                    rustls::Error::InvalidCertificate(CertificateError::Expired)
                )
            }),
        },
    ];

    for row in rows {
        let server = server_cfg(&row.server, &bundle, row.mandatory);
        let client = client_cfg(row.client.as_ref(), &bundle, row.expected.clone());
        let (c, s) = tokio::time::timeout(BOUND, handshake(server, client))
            .await
            .unwrap_or_else(|_| panic!("{}: timed out", row.name));
        match row.want {
            Want::Ok(server_id, client_id) => {
                assert_eq!(
                    c.as_ref().ok(),
                    Some(&server_id),
                    "{}: client {c:?}",
                    row.name
                );
                assert_eq!(
                    s.as_ref().ok(),
                    Some(&client_id),
                    "{}: server {s:?}",
                    row.name
                );
            }
            Want::ClientRejects(kind) => {
                let e = cert_err(&c);
                assert!(e.is_some_and(kind), "{}: client saw {c:?}", row.name);
                assert!(s.is_err(), "{}: server must not complete: {s:?}", row.name);
            }
            Want::ServerRejects(kind) => {
                let e = s.as_ref().err().and_then(rustls_err);
                assert!(e.is_some_and(kind), "{}: server saw {s:?}", row.name);
                assert!(
                    c.is_err(),
                    "{}: client must not exchange data: {c:?}",
                    row.name
                );
            }
        }
    }
}

#[tokio::test]
async fn identity_mismatch_message_names_both() {
    let ca = DevCa::new(&td(), DEFAULT_CA_TTL).unwrap();
    let bundle = Arc::new(ca.bundle());
    let server = server_cfg(
        &ca.issue(&id("payment-service"), DEFAULT_SVID_TTL).unwrap(),
        &bundle,
        true,
    );
    let order_svid = ca.issue(&id("order-service"), DEFAULT_SVID_TTL).unwrap();
    let client = client_cfg(
        Some(&order_svid),
        &bundle,
        Expected::Ids(vec![id("order-service")]),
    );
    let (c, _) = tokio::time::timeout(BOUND, handshake(server, client))
        .await
        .unwrap();
    let msg = c.unwrap_err().to_string();
    assert!(
        msg.contains("payment-service") && msg.contains("order-service"),
        "{msg}"
    );
}

#[tokio::test]
async fn tls12_only_client_handshakes() {
    let ca = DevCa::new(&td(), DEFAULT_CA_TTL).unwrap();
    let bundle = Arc::new(ca.bundle());
    let (order, payment) = (id("order-service"), id("payment-service"));
    let server = server_cfg(
        &ca.issue(&payment, DEFAULT_SVID_TTL).unwrap(),
        &bundle,
        true,
    );
    let svid = ca.issue(&order, DEFAULT_SVID_TTL).unwrap();
    let client =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier::new(
                bundle.clone(),
                Expected::Any,
            )))
            .with_client_auth_cert(svid.chain().to_vec(), svid.key_der())
            .unwrap();
    let (c, s) = tokio::time::timeout(BOUND, handshake(server, client))
        .await
        .unwrap();
    assert_eq!(c.unwrap(), Some(payment));
    assert_eq!(s.unwrap(), Some(order));
}

#[tokio::test]
async fn alpn_negotiates_h2() {
    let ca = DevCa::new(&td(), DEFAULT_CA_TTL).unwrap();
    let bundle = Arc::new(ca.bundle());
    let server = server_cfg(
        &ca.issue(&id("payment-service"), DEFAULT_SVID_TTL).unwrap(),
        &bundle,
        true,
    );
    let svid = ca.issue(&id("order-service"), DEFAULT_SVID_TTL).unwrap();
    let client = client_cfg(Some(&svid), &bundle, Expected::Any);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let srv = serve(listener, Arc::new(Mutex::new(Arc::new(server))), 1);
    let (c, alpn, _) = tokio::time::timeout(BOUND, connect(port, Arc::new(client)))
        .await
        .unwrap();
    assert!(c.is_ok(), "{c:?}");
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    tokio::time::timeout(BOUND, srv).await.unwrap().unwrap();
}

fn serial_of(der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial().to_vec()
}

#[tokio::test]
async fn rotated_server_certificate_is_used_for_the_next_handshake() {
    let ca = DevCa::new(&td(), DEFAULT_CA_TTL).unwrap();
    let bundle = Arc::new(ca.bundle());
    let payment = id("payment-service");
    let first = ca.issue(&payment, DEFAULT_SVID_TTL).unwrap();
    let second = ca
        .issue(&payment, DEFAULT_SVID_TTL + Duration::from_secs(3600))
        .unwrap();
    let client_svid = ca.issue(&id("order-service"), DEFAULT_SVID_TTL).unwrap();
    let client = Arc::new(client_cfg(
        Some(&client_svid),
        &bundle,
        Expected::Ids(vec![payment.clone()]),
    ));
    let verifier = SpiffeServerVerifier::new(bundle.clone(), Expected::Any);

    let current = Arc::new(Mutex::new(Arc::new(server_cfg(&first, &bundle, true))));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let srv = serve(listener, current.clone(), 2);

    let (c1, _, leaf1) = tokio::time::timeout(BOUND, connect(port, client.clone()))
        .await
        .unwrap();
    assert_eq!(c1.unwrap(), Some(payment.clone()));
    *current.lock().unwrap() = Arc::new(server_cfg(&second, &bundle, true));
    let (c2, _, leaf2) = tokio::time::timeout(BOUND, connect(port, client))
        .await
        .unwrap();
    assert_eq!(c2.unwrap(), Some(payment.clone()));

    let (leaf1, leaf2) = (leaf1.unwrap(), leaf2.unwrap());
    assert_eq!(leaf1, first.cert_der().as_ref());
    assert_eq!(leaf2, second.cert_der().as_ref());
    assert_ne!(serial_of(&leaf1), serial_of(&leaf2));
    let now = rustls::pki_types::UnixTime::now();
    let v1 = verifier.verify(&leaf1.into(), &[], now).unwrap();
    let v2 = verifier.verify(&leaf2.into(), &[], now).unwrap();
    assert!(v2.not_after.as_secs() > v1.not_after.as_secs());
    assert_eq!(
        v2.not_after.as_secs(),
        second
            .not_after()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );

    let sides = tokio::time::timeout(BOUND, srv).await.unwrap().unwrap();
    assert_eq!(sides.len(), 2);
    assert!(sides.iter().all(|s| {
        s.as_ref()
            .is_ok_and(|p| p.as_ref() == Some(&id("order-service")))
    }));
}

#[test]
fn expected_display_and_accepts() {
    let (a, b) = (id("a"), id("b"));
    let e = Expected::Ids(vec![a.clone()]);
    assert!(e.accepts(&a) && !e.accepts(&b));
    assert!(Expected::Any.accepts(&b));
    assert_eq!(Expected::Any.to_string(), "any");
    assert_eq!(e.to_string(), a.to_string());
}
