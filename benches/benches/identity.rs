//! Cost of the identity checks on the inbound path (SEMANTICS §7, §8).
//!
//! `authz/decide_*`: one AuthorizationPolicy decision (AUTHZ-2) against a table compiled once,
//! with the request view built outside the loop. `decide_50_policies` is a busy workload: 50
//! policies apply to it — ALLOW rules with principals, methods and exact/prefix/suffix paths,
//! some gated by a `request.headers` condition, DENY rules on `notPaths` and `ipBlocks`, one
//! AUDIT — and only the last ALLOW policy matches, so every policy is evaluated.
//! `decide_1_policy` is the seeds' single policy.
//!
//! `mtls/full_handshake`: one full TLS 1.3 mTLS handshake between [`tls::client_config`] and
//! [`tls::server_config`] with SVIDs from a `DevCa`, both chains verified by the SPIFFE
//! verifiers, run in memory (bytes pumped between a rustls `ClientConnection` and
//! `ServerConnection` through a `Vec`, no sockets) and without session resumption. The time per
//! iteration is the CPU cost of both ends of one handshake on one core.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_core::Snapshot;
use mesh_core::registry::Scope;
use mesh_identity::authz::{AuthzRequest, AuthzTable, Reason};
use mesh_identity::ca::{DEFAULT_CA_TTL, DEFAULT_SVID_TTL};
use mesh_identity::tls::{self, Expected, SpiffeClientVerifier, SpiffeServerVerifier};
use mesh_identity::{DevCa, SpiffeId, TrustDomain};
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

const SEED_POLICY: &str = r#"
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: payment-service-authz, namespace: production}
spec:
  selector: {matchLabels: {app: payment-service}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/production/sa/order-service-sa"]}}]
    to: [{operation: {methods: ["POST"], paths: ["/v1/payments", "/v1/payments/*"]}}]
"#;

/// 50 policies for `app: payment-service` in `production`; only `p49-allow-orders` matches the
/// benchmark request.
fn fifty_policies() -> String {
    let mut yaml = String::new();
    let header = |yaml: &mut String, name: &str, action: &str| {
        let _ = write!(
            yaml,
            "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
             metadata: {{name: {name}, namespace: production}}\n\
             spec:\n  selector: {{matchLabels: {{app: payment-service}}}}\n  action: {action}\n"
        );
    };
    for i in 0..49 {
        match i % 12 {
            // DENY plaintext-looking paths outside the API, and two bad networks.
            3 => {
                header(&mut yaml, &format!("p{i:02}-deny-outside-api"), "DENY");
                yaml.push_str(
                    "  rules:\n  - to: [{operation: {notPaths: [\"/v1/*\", \"/healthz\"]}}]\n",
                );
            }
            7 => {
                header(&mut yaml, &format!("p{i:02}-deny-networks"), "DENY");
                let _ = writeln!(
                    yaml,
                    "  rules:\n  - from: [{{source: {{ipBlocks: [\"192.168.{i}.0/24\", \"172.16.0.0/12\"]}}}}]"
                );
            }
            11 if i == 11 => {
                header(&mut yaml, &format!("p{i:02}-audit-refunds"), "AUDIT");
                yaml.push_str("  rules:\n  - to: [{operation: {paths: [\"/v1/refunds*\"]}}]\n");
            }
            // ALLOW for other callers: principal + method + path (exact, prefix, suffix).
            _ => {
                header(&mut yaml, &format!("p{i:02}-allow-caller"), "ALLOW");
                let _ = writeln!(
                    yaml,
                    "  rules:\n  - from: [{{source: {{principals: [\"cluster.local/ns/team-{i}/sa/caller-{i}\", \"cluster.local/ns/production/sa/svc-{i}-*\"]}}}}]\n    to: [{{operation: {{methods: [GET, POST], paths: [\"/v1/payments/{i}\", \"/v1/items-{i}/*\", \"*.json\"]}}}}]"
                );
                if i % 2 == 0 {
                    let _ = writeln!(
                        yaml,
                        "    when: [{{key: \"request.headers[x-tenant]\", values: [\"tenant-{i}\"]}}]"
                    );
                }
            }
        }
    }
    header(&mut yaml, "p49-allow-orders", "ALLOW");
    yaml.push_str(
        "  rules:\n  - from: [{source: {principals: [\"cluster.local/ns/production/sa/order-service-sa\"]}}]\n    \
         to: [{operation: {methods: [POST], paths: [\"/v1/payments\", \"/v1/payments/*\"]}}]\n    \
         when: [{key: \"request.headers[x-tenant]\", values: [acme]}]\n",
    );
    yaml
}

fn compile(yaml: &str) -> AuthzTable {
    let resources =
        mesh_core::loader::parse_str(yaml, Path::new("policy.yaml"), "production").expect("valid");
    let scope = Scope::new("production").labels([("app", "payment-service")]);
    AuthzTable::compile(&Snapshot::new(resources), &scope)
}

fn authz(c: &mut Criterion) {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-tenant", http::HeaderValue::from_static("acme"));
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert("x-request-id", http::HeaderValue::from_static("7f2c"));
    let req = AuthzRequest::http("10.1.2.3".parse().expect("an IP"), 8080)
        .principal(Some("cluster.local/ns/production/sa/order-service-sa"))
        .destination_ip("10.1.9.9".parse().expect("an IP"))
        .method("POST")
        .path("/v1/payments/42")
        .host("payment-service:8080")
        .headers(&headers);

    let mut group = c.benchmark_group("authz");
    for (name, yaml, policies) in [
        ("decide_50_policies", fifty_policies(), 50),
        ("decide_1_policy", SEED_POLICY.to_owned(), 1),
    ] {
        let table = compile(&yaml);
        assert_eq!(table.len(), policies, "{name}");
        assert!(table.issues().is_empty(), "{:?}", table.issues());
        let decision = table.decide(&req);
        assert!(decision.allowed && decision.reason == Reason::AllowMatched);
        group.bench_function(name, |b| {
            b.iter(|| black_box(table.decide(black_box(&req))))
        });
    }
    group.finish();
}

fn configs() -> (Arc<ClientConfig>, Arc<ServerConfig>, SpiffeId) {
    let td = TrustDomain::new("cluster.local").expect("a trust domain");
    let ca = DevCa::new(&td, DEFAULT_CA_TTL).expect("a CA");
    let bundle = Arc::new(ca.bundle());
    let order = SpiffeId::istio(&td, "production", "order-service-sa").expect("an ID");
    let payment = SpiffeId::istio(&td, "production", "payment-service-sa").expect("an ID");
    let client_svid = ca.issue(&order, DEFAULT_SVID_TTL).expect("an SVID");
    let server_svid = ca.issue(&payment, DEFAULT_SVID_TTL).expect("an SVID");
    let verifier = SpiffeServerVerifier::new(bundle.clone(), Expected::Ids(vec![payment]));
    let mut client = tls::client_config(
        client_svid.chain().to_vec(),
        client_svid.key_der(),
        Arc::new(verifier),
    )
    .expect("a client config");
    // Every iteration must be a full handshake, never a resumption.
    client.resumption = Resumption::disabled();
    let server = tls::server_config(
        server_svid.chain().to_vec(),
        server_svid.key_der(),
        Arc::new(SpiffeClientVerifier::new(bundle)),
    )
    .expect("a server config");
    (Arc::new(client), Arc::new(server), order)
}

/// One handshake in memory; returns the connections once both are done.
fn handshake(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    name: &ServerName<'static>,
    buf: &mut Vec<u8>,
) -> (ClientConnection, ServerConnection) {
    let mut c = ClientConnection::new(Arc::clone(client), name.clone()).expect("client");
    let mut s = ServerConnection::new(Arc::clone(server)).expect("server");
    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        while c.wants_write() {
            c.write_tls(buf).expect("client writes");
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).expect("server reads");
            s.process_new_packets().expect("server handshake");
        }
        let sent = buf.len();
        buf.clear();
        while s.wants_write() {
            s.write_tls(buf).expect("server writes");
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).expect("client reads");
            c.process_new_packets().expect("client handshake");
        }
        assert!(sent + buf.len() > 0, "handshake stalled");
    }
    (c, s)
}

fn mtls(c: &mut Criterion) {
    let (client, server, order) = configs();
    let name = ServerName::try_from("payment-service.production.svc.cluster.local").expect("name");
    let mut buf = Vec::with_capacity(16 * 1024);
    let (cc, sc) = handshake(&client, &server, &name, &mut buf);
    assert_eq!(
        cc.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(tls::peer_spiffe_id(&sc), Some(order));

    let mut group = c.benchmark_group("mtls");
    group.bench_function("full_handshake", |b| {
        b.iter(|| black_box(handshake(&client, &server, &name, &mut buf)))
    });
    group.finish();
}

criterion_group!(benches, authz, mtls);
criterion_main!(benches);
