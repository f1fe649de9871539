//! The security commands of the CLI: `ca init` / `ca issue` (through the library and the
//! binary) and `explain --from` deciding the destination's AuthorizationPolicies (SEMANTICS
//! §7, §8; DESIGN.md "The contract of `mesh-proxy`").

use std::path::Path;
use std::time::Duration;

use mesh_identity::credentials::Credentials;
use mesh_identity::svid::verify_svid;
use mesh_identity::{TrustBundle, TrustDomain};
use mesh_proxy::ca::{CaCliError, Subject, init, issue};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mesh-proxy");
const YEAR: Duration = Duration::from_secs(8760 * 3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn ca_init_then_issue_writes_an_svid_that_verifies_against_the_written_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("new/ca");
    init(&ca, "cluster.local", YEAR, false).unwrap();
    let out = dir.path().join("pki/web");
    let subject = Subject::Workload {
        namespace: "production".into(),
        service_account: "web".into(),
    };
    let issued = issue(&ca, &subject, DAY, &out).unwrap();
    assert_eq!(
        issued.spiffe_id.to_string(),
        "spiffe://cluster.local/ns/production/sa/web"
    );
    let creds =
        Credentials::from_pem(&read(&out.join("cert.pem")), &read(&out.join("key.pem"))).unwrap();
    let td = TrustDomain::new("cluster.local").unwrap();
    let bundle = TrustBundle::from_pem(td, &read(&out.join("ca.pem"))).unwrap();
    let verified = verify_svid(creds.chain(), &bundle, rustls::pki_types::UnixTime::now()).unwrap();
    assert_eq!(verified.spiffe_id, issued.spiffe_id);
    // The bundle written beside the SVID is the CA's certificate.
    assert_eq!(read(&out.join("ca.pem")), read(&ca.join("ca.pem")));
    #[cfg(unix)]
    {
        assert_eq!(mode(&ca.join("ca-key.pem")), 0o600);
        assert_eq!(mode(&out.join("key.pem")), 0o600);
        assert_eq!(mode(&out.join("cert.pem")), 0o644);
    }
}

#[test]
fn ca_issue_accepts_a_spiffe_id_of_the_cas_trust_domain_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    init(&ca, "example.org", YEAR, false).unwrap();
    let out = dir.path().join("svid");
    let ok = Subject::Id("spiffe://example.org/billing/worker".into());
    let issued = issue(&ca, &ok, DAY, &out).unwrap();
    assert_eq!(
        issued.spiffe_id.to_string(),
        "spiffe://example.org/billing/worker"
    );
    // DESIGN.md: the SVID's trust domain is the CA's.
    let foreign = Subject::Id("spiffe://cluster.local/ns/production/sa/web".into());
    let e = issue(&ca, &foreign, DAY, &out).unwrap_err();
    assert!(matches!(e, CaCliError::Identity(_)), "{e:?}");
    assert!(e.to_string().contains("example.org"), "{e}");
    // --namespace/--service-account build the ID in the CA's trust domain.
    let workload = Subject::Workload {
        namespace: "ns1".into(),
        service_account: "sa1".into(),
    };
    let issued = issue(&ca, &workload, DAY, &out).unwrap();
    assert_eq!(
        issued.spiffe_id.to_string(),
        "spiffe://example.org/ns/ns1/sa/sa1"
    );
    // SPIFFE-1..3: a malformed ID is refused with the parser's reason.
    let bad = Subject::Id("spiffe://example.org/a//b".into());
    let e = issue(&ca, &bad, DAY, &out).unwrap_err();
    assert!(e.to_string().contains("empty segment"), "{e}");
    // An SVID that would outlive its CA is refused.
    let e = issue(&ca, &workload, 2 * YEAR, &out).unwrap_err();
    assert!(e.to_string().contains("outlive the CA"), "{e}");
}

#[test]
fn ca_init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), "cluster.local", YEAR, false).unwrap();
    let before = read(&dir.path().join("ca.pem"));
    let e = init(dir.path(), "cluster.local", YEAR, false).unwrap_err();
    assert!(matches!(e, CaCliError::Exists(_)), "{e:?}");
    assert!(e.to_string().contains("ca.pem"), "{e}");
    assert!(e.to_string().contains("--force"), "{e}");
    assert_eq!(read(&dir.path().join("ca.pem")), before, "left untouched");
    init(dir.path(), "cluster.local", YEAR, true).unwrap();
    assert_ne!(read(&dir.path().join("ca.pem")), before, "--force replaces");
    let e = init(&dir.path().join("x"), "Not_A_TD", YEAR, false).unwrap_err();
    assert!(matches!(e, CaCliError::Identity(_)), "{e:?}");
}

async fn mesh_proxy(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().await.unwrap()
}

fn report(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn ca_commands_through_the_binary_exit_0_or_1_and_never_print_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let out = dir.path().join("out");
    let (ca, out) = (ca.to_str().unwrap(), out.to_str().unwrap());
    let init = mesh_proxy(&["ca", "init", "--dir", ca, "--trust-domain", "example.org"]).await;
    assert!(init.status.success(), "{}", report(&init));
    let stdout = String::from_utf8_lossy(&init.stdout);
    assert!(stdout.contains("example.org"), "{}", report(&init));
    assert!(stdout.contains("ca-key.pem"), "{}", report(&init));
    assert!(!stdout.contains("PRIVATE KEY"), "{}", report(&init));
    let again = mesh_proxy(&["ca", "init", "--dir", ca]).await;
    assert_eq!(again.status.code(), Some(1), "{}", report(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("ca.pem exists"),
        "{}",
        report(&again)
    );
    let issue = mesh_proxy(&[
        "ca",
        "issue",
        "--dir",
        ca,
        "--namespace",
        "production",
        "--service-account",
        "web",
        "--ttl",
        "1h",
        "--out",
        out,
    ])
    .await;
    assert!(issue.status.success(), "{}", report(&issue));
    let stdout = String::from_utf8_lossy(&issue.stdout);
    assert!(
        stdout.contains("spiffe://example.org/ns/production/sa/web"),
        "{}",
        report(&issue)
    );
    assert!(!stdout.contains("PRIVATE KEY"), "{}", report(&issue));
    let foreign = mesh_proxy(&[
        "ca",
        "issue",
        "--dir",
        ca,
        "--spiffe-id",
        "spiffe://cluster.local/ns/production/sa/web",
        "--out",
        out,
    ])
    .await;
    assert_eq!(foreign.status.code(), Some(1), "{}", report(&foreign));
    assert!(
        String::from_utf8_lossy(&foreign.stderr).contains("not in the CA's trust domain"),
        "{}",
        report(&foreign)
    );
    let missing = mesh_proxy(&[
        "ca",
        "issue",
        "--dir",
        out, // no CA there
        "--spiffe-id",
        "spiffe://example.org/x",
        "--out",
        out,
    ])
    .await;
    assert_eq!(missing.status.code(), Some(1), "{}", report(&missing));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("ca-key.pem is missing"),
        "{}",
        report(&missing)
    );
}

/// The seeds' payment-service (services.yaml) and its policy (security.yaml), namespace
/// production.
const PAYMENTS: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payment-service, namespace: production}
spec:
  hosts: [payment-service.production.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: payment-service}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: payment-service-1, namespace: production}
spec:
  address: 127.0.0.1
  ports: {http: 18091}
  labels: {app: payment-service, version: v1}
  serviceAccount: payment-service-sa
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: payment-service-2, namespace: production}
spec:
  address: 127.0.0.1
  ports: {http: 18092}
  labels: {app: payment-service, version: v1}
  serviceAccount: payment-service-sa
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: production
spec:
  mtls:
    mode: STRICT
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: payment-service-authz
  namespace: production
spec:
  selector:
    matchLabels:
      app: payment-service
  rules:
  - from:
    - source:
        principals:
        - "cluster.local/ns/production/sa/order-service-sa"
    to:
    - operation:
        methods: ["POST"]
        paths: ["/v1/payments", "/v1/payments/*"]
"#;

const PAY: &str = "POST http://payment-service.production:8080/v1/payments";
const ORDER_SERVICE: &str = "spiffe://cluster.local/ns/production/sa/order-service-sa";

async fn explain(yaml: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mesh.yaml");
    std::fs::write(&file, yaml).unwrap();
    Command::new(BIN)
        .arg("explain")
        .arg("--config")
        .arg(&file)
        .args(["--namespace", "production"])
        .args(args)
        .output()
        .await
        .unwrap()
}

async fn explain_json(yaml: &str, args: &[&str]) -> serde_json::Value {
    let out = explain(yaml, &[args, &["-o", "json"]].concat()).await;
    assert!(out.status.success(), "{}", report(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", report(&out)))
}

#[tokio::test]
async fn explain_from_order_service_is_allowed_by_payment_service_authz_rule_0() {
    let out = explain(PAYMENTS, &["--from", ORDER_SERVICE, "--request", PAY]).await;
    assert!(out.status.success(), "{}", report(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "authz     ALLOW — allow policy matched: policy production/payment-service-authz rule 0"
        ),
        "{}",
        report(&out)
    );
    assert!(
        stdout.contains("at workload production app=payment-service,version=v1"),
        "{}",
        report(&out)
    );
    assert!(
        stdout.contains("from cluster.local/ns/production/sa/order-service-sa"),
        "{}",
        report(&out)
    );
    assert!(
        stdout.contains("ALLOW production/payment-service-authz: rule 0 matched"),
        "{}",
        report(&out)
    );

    let e = explain_json(PAYMENTS, &["--from", ORDER_SERVICE, "--request", PAY]).await;
    let authz = &e["authz"];
    assert_eq!(authz["decision"], "ALLOW", "{e:#}");
    assert_eq!(authz["policy"], "production/payment-service-authz", "{e:#}");
    assert_eq!(authz["rule"], 0, "{e:#}");
    assert_eq!(authz["why"], "allow policy matched", "{e:#}");
    assert_eq!(
        authz["from"], "cluster.local/ns/production/sa/order-service-sa",
        "{e:#}"
    );
    assert_eq!(authz["workload"]["namespace"], "production", "{e:#}");
    assert_eq!(
        authz["workload"]["labels"]["app"], "payment-service",
        "{e:#}"
    );
    assert_eq!(
        authz["workload"]["service_account"], "payment-service-sa",
        "{e:#}"
    );
    // The destination port is the workload's (the endpoint's), not the service port.
    assert_eq!(authz["port"], 18091, "{e:#}");
    assert_eq!(authz["policies"][0]["matched_rule"], 0, "{e:#}");
    assert_eq!(e["from"], ORDER_SERVICE, "{e:#}");
}

#[tokio::test]
async fn explain_from_checkout_bff_is_denied_because_no_allow_policy_matched() {
    let e = explain_json(
        PAYMENTS,
        &[
            "--from",
            "spiffe://cluster.local/ns/production/sa/checkout-bff",
            "--request",
            PAY,
        ],
    )
    .await;
    let authz = &e["authz"];
    assert_eq!(authz["decision"], "DENY", "{e:#}");
    assert_eq!(authz["why"], "no allow policy matched", "{e:#}");
    assert!(authz["policy"].is_null(), "{e:#}");
    assert!(authz["rule"].is_null(), "{e:#}");
    assert!(authz["policies"][0]["matched_rule"].is_null(), "{e:#}");
    // The right caller with the wrong method is denied too (AUTHZ: methods).
    let e = explain_json(
        PAYMENTS,
        &[
            "--from",
            ORDER_SERVICE,
            "--request",
            "GET http://payment-service.production:8080/v1/payments/7",
        ],
    )
    .await;
    assert_eq!(e["authz"]["decision"], "DENY", "{e:#}");
    // Without --from the caller is this workload: --service-account order-service-sa.
    let e = explain_json(
        PAYMENTS,
        &[
            "--service-account",
            "order-service-sa",
            "--request",
            "POST http://payment-service.production:8080/v1/payments/7",
        ],
    )
    .await;
    assert_eq!(e["authz"]["decision"], "ALLOW", "{e:#}");
    assert_eq!(
        e["authz"]["from"],
        ORDER_SERVICE.trim_start_matches("spiffe://")
    );
}

#[tokio::test]
async fn explain_honours_trust_domain_aliases_and_refuses_a_malformed_from() {
    // AUTHZ-27: `cluster.local` in a policy is the local trust domain (here new.td); a caller
    // of the former trust domain old.td matches only once old.td is an alias.
    let e = explain_json(
        PAYMENTS,
        &[
            "--trust-domain",
            "new.td",
            "--from",
            "spiffe://new.td/ns/production/sa/order-service-sa",
            "--request",
            PAY,
        ],
    )
    .await;
    assert_eq!(e["authz"]["decision"], "ALLOW", "{e:#}");
    let old = "spiffe://old.td/ns/production/sa/order-service-sa";
    let e = explain_json(
        PAYMENTS,
        &["--trust-domain", "new.td", "--from", old, "--request", PAY],
    )
    .await;
    assert_eq!(e["authz"]["decision"], "DENY", "{e:#}");
    let e = explain_json(
        PAYMENTS,
        &[
            "--trust-domain",
            "new.td",
            "--trust-domain-alias",
            "old.td",
            "--from",
            old,
            "--request",
            PAY,
        ],
    )
    .await;
    assert_eq!(e["authz"]["decision"], "ALLOW", "{e:#}");

    let out = explain(PAYMENTS, &["--from", "spiffe://x/a/../b", "--request", PAY]).await;
    assert_eq!(out.status.code(), Some(2), "{}", report(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--from"),
        "{}",
        report(&out)
    );
}

#[tokio::test]
async fn explain_authz_is_null_when_the_request_reaches_no_workload() {
    let e = explain_json(
        PAYMENTS,
        &["--from", ORDER_SERVICE, "--request", "GET http://nowhere/"],
    )
    .await;
    assert!(e["authz"].is_null(), "{e:#}");
    let out = explain(
        PAYMENTS,
        &["--from", ORDER_SERVICE, "--request", "GET http://nowhere/"],
    )
    .await;
    assert!(out.status.success(), "{}", report(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("authz     not evaluated: the request reaches no workload: 404 NR"),
        "{}",
        report(&out)
    );
}

#[tokio::test]
async fn run_takes_cert_key_and_ca_together_and_validates_trust_domains() {
    // Refused while parsing the flags: the proxy never starts, so nothing binds.
    let out = mesh_proxy(&["run", "--config", "/nonexistent", "--cert", "cert.pem"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", report(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--key") && stderr.contains("--ca"),
        "{}",
        report(&out)
    );
    let out = mesh_proxy(&[
        "run",
        "--config",
        "/nonexistent",
        "--trust-domain-alias",
        "old.td,Not_A_TD",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", report(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Not_A_TD"),
        "{}",
        report(&out)
    );
}
