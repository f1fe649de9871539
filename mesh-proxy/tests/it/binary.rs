//! The `mesh-proxy` binary: `analyze`, `explain`, `demo --exit`, and SIGTERM with a request in
//! flight.

use std::process::Stdio;
use std::time::Duration;

use mesh_test::TestServer;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::harness::service;

const BIN: &str = env!("CARGO_BIN_EXE_mesh-proxy");
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/examples");

#[tokio::test]
async fn analyze_passes_the_users_examples() {
    let out = Command::new(BIN)
        .args(["analyze", EXAMPLES])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "analyze failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("ERROR"), "{stdout}");
}

#[tokio::test]
async fn analyze_reports_errors_with_file_and_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n  http:\n  - retires: {attempts: 3}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("analyze")
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().next().unwrap_or_default();
    assert!(line.starts_with("ERROR MESH"), "{stdout}");
    assert!(line.contains(&format!("{}:7", file.display())), "{stdout}");
    assert!(line.contains("retries"), "{stdout}");
    let out = Command::new(BIN)
        .args(["analyze", "-o", "json"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["line"], 7);
    assert_eq!(json[0]["severity"], "ERROR");
}

/// A service with two labelled endpoints, subsets v1/v2, a header canary to v2 and a 90/10
/// split (namespace `default`).
const REVIEWS: &str = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: 19081}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: 19082}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: canary
    match:
    - headers:
        x-canary: {exact: "true"}
    route:
    - destination: {host: reviews, subset: v2}
  - name: split
    route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v2}
      weight: 10
"#;

/// The 1-based line of the first line of `yaml` that equals `text` (trimmed).
fn line_of(yaml: &str, text: &str) -> u64 {
    let index = yaml.lines().position(|l| l.trim() == text).unwrap();
    u64::try_from(index).unwrap() + 1
}

/// Writes `yaml` to a temp folder; the folder lives as long as the returned guard.
fn config(yaml: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reviews.yaml");
    std::fs::write(&file, yaml).unwrap();
    (dir, file)
}

async fn explain(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("explain")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .await
        .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

#[tokio::test]
async fn explain_header_match_picks_the_canary_route_and_subset() {
    let (_dir, file) = config(REVIEWS);
    let out = explain(
        &file,
        &[
            "--request",
            "GET http://reviews:9080/api",
            "--header",
            "x-canary: true",
            "-o",
            "json",
        ],
    )
    .await;
    let e = json(&out);
    assert_eq!(e["request"], "GET http://reviews:9080/api");
    assert_eq!(
        e["host"]["virtual_host"],
        "reviews.default.svc.cluster.local"
    );
    assert_eq!(e["virtual_service"]["name"], "reviews");
    assert_eq!(
        e["virtual_service"]["line"],
        line_of(REVIEWS, "kind: VirtualService") - 1
    );
    assert_eq!(e["considered"][0]["matched"], true, "{e:#}");
    assert_eq!(
        e["considered"][0]["source"]["line"],
        line_of(REVIEWS, "- name: canary")
    );
    assert_eq!(
        e["considered"].as_array().unwrap().len(),
        1,
        "first match wins"
    );
    assert_eq!(e["route"]["index"], 0);
    assert_eq!(e["route"]["name"], "canary");
    assert_eq!(e["destination"]["subset"], "v2");
    assert_eq!(
        e["destination"]["cluster"],
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    assert_eq!(e["destination"]["subset_labels"]["version"], "v2");
    let endpoints = e["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1, "{e:#}");
    assert_eq!(endpoints[0]["address"], "127.0.0.1:19082");
    // No AuthorizationPolicy: the destination allows (AUTHZ-2 step 3), decided for this
    // workload's own identity since no --from was given.
    assert_eq!(e["authz"]["decision"], "ALLOW", "{e:#}");
    assert_eq!(e["authz"]["why"], "no allow policy applies");
    assert_eq!(e["authz"]["from"], "cluster.local/ns/default/sa/default");
    assert!(e["from"].is_null());
}

#[tokio::test]
async fn explain_without_the_header_says_why_and_lists_the_weights() {
    let (_dir, file) = config(REVIEWS);
    let request = ["--request", "GET http://reviews:9080/api"];
    let e = json(&explain(&file, &[&request[..], &["-o", "json"]].concat()).await);
    assert_eq!(e["considered"][0]["matched"], false);
    let why = e["considered"][0]["why"].as_str().unwrap();
    assert!(why.contains("x-canary"), "{why}");
    assert_eq!(e["considered"][1]["matched"], true);
    assert_eq!(e["route"]["index"], 1);
    assert_eq!(e["route"]["name"], "split");
    let weights: Vec<(String, f64)> = e["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["subset"].as_str().unwrap().to_owned(),
                d["percent"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(weights, [("v1".to_owned(), 90.0), ("v2".to_owned(), 10.0)]);

    let out = explain(&file, &request).await;
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("✗ [0] canary"), "{report}");
    assert!(report.contains("✓ [1] split"), "{report}");
    assert!(report.contains("header x-canary"), "{report}");
    assert!(
        report.contains("90%  reviews.default.svc.cluster.local subset v1"),
        "{report}"
    );
    assert!(
        report.contains("10%  reviews.default.svc.cluster.local subset v2"),
        "{report}"
    );
}

#[tokio::test]
async fn explain_text_names_the_virtual_service_file_and_line_and_the_outcome() {
    let (_dir, file) = config(REVIEWS);
    let out = explain(
        &file,
        &[
            "--request",
            "GET http://reviews:9080/api",
            "-H",
            "x-canary:true",
            "--from",
            "spiffe://cluster.local/ns/default/sa/productpage",
        ],
    )
    .await;
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let vs_line = line_of(REVIEWS, "kind: VirtualService") - 1;
    let vs = format!("vs        default/reviews  {}:{vs_line}", file.display());
    assert!(stdout.contains(&vs), "{report}");
    let route = format!("{}:{}", file.display(), line_of(REVIEWS, "- name: canary"));
    assert!(stdout.contains(&route), "{report}");
    assert!(stdout.contains("from      spiffe://cluster.local/ns/default/sa/productpage"));
    assert!(
        stdout.contains("subset    v2 labels version=v2"),
        "{report}"
    );
    assert!(
        stdout.contains("endpoints 127.0.0.1:19082  healthy"),
        "{report}"
    );
    assert!(
        stdout.contains("outcome   forward to outbound|9080|v2|reviews.default.svc.cluster.local"),
        "{report}"
    );
    assert!(
        stdout.contains("authz     ALLOW — no allow policy applies"),
        "{report}"
    );
}

#[tokio::test]
async fn explain_unknown_host_is_404_nr_and_exit_0() {
    let (_dir, file) = config(REVIEWS);
    let out = explain(&file, &["--request", "http://ratings:9080/"]).await;
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(
        report.contains("request   GET http://ratings:9080/"),
        "{report}"
    );
    assert!(report.contains("outcome   404 NR"), "{report}");
    let e = json(&explain(&file, &["--request", "http://ratings:9080/", "-o", "json"]).await);
    assert!(e["host"]["virtual_host"].is_null());
    assert!(e["route"].is_null());
    assert!(
        e["outcome"].as_str().unwrap().starts_with("404 NR"),
        "{e:#}"
    );
}

#[tokio::test]
async fn explain_bad_request_or_header_exits_2_with_a_message() {
    let (_dir, file) = config(REVIEWS);
    for (args, message) in [
        (&["--request", "GET reviews/api"][..], "must be absolute"),
        (
            &["--request", "GET http://reviews/ extra"][..],
            "expected 'METHOD URL'",
        ),
        (&["--request", "ftp://reviews/x"][..], "not http or https"),
        (
            &["--request", "GET http://reviews/", "-H", "no-colon"][..],
            "expected 'name:value'",
        ),
    ] {
        let out = explain(&file, args).await;
        let report = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {report}");
        assert!(out.stdout.is_empty(), "{args:?}: {report}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {report}");
    }
}

#[tokio::test]
async fn explain_config_that_does_not_load_exits_1_with_file_and_line() {
    let (_dir, file) = config(&REVIEWS.replace("weight: 10", "wieght: 10"));
    let out = explain(&file, &["--request", "http://reviews:9080/"]).await;
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = format!("{}:{}", file.display(), line_of(REVIEWS, "weight: 10"));
    assert!(stderr.contains("ERROR MESH"), "{report}");
    assert!(stderr.contains(&at), "{report}");
}

#[tokio::test]
async fn explain_decides_source_labels_routes_for_the_workload_flags() {
    let yaml = REVIEWS.replace(
        "    - headers:\n        x-canary: {exact: \"true\"}\n",
        "    - sourceLabels: {app: productpage}\n",
    );
    let (_dir, file) = config(&yaml);
    let request = ["--request", "http://reviews:9080/", "-o", "json"];
    let e = json(
        &explain(
            &file,
            &[&request[..], &["--labels", "app=productpage"]].concat(),
        )
        .await,
    );
    assert_eq!(e["route"]["name"], "canary", "{e:#}");
    assert_eq!(e["destination"]["subset"], "v2");
    // The same flag from the environment, as `run` reads it.
    let out = Command::new(BIN)
        .arg("explain")
        .arg("--config")
        .arg(&file)
        .args(request)
        .env("MESH_LABELS", "app=productpage")
        .output()
        .await
        .unwrap();
    assert_eq!(json(&out)["route"]["name"], "canary");
    let e = json(
        &explain(
            &file,
            &[&request[..], &["--labels", "app=ratings"]].concat(),
        )
        .await,
    );
    assert_eq!(e["considered"][0]["matched"], false);
    assert!(
        e["considered"][0]["why"]
            .as_str()
            .unwrap()
            .contains("sourceLabels"),
        "{e:#}"
    );
    assert_eq!(e["route"]["name"], "split");
}

#[tokio::test]
async fn explain_works_on_the_users_examples() {
    let examples = std::path::Path::new(EXAMPLES);
    let canary = [
        "--namespace",
        "production",
        "--request",
        "GET http://checkout:8080/cart",
        "--header",
        "x-canary:true",
    ];
    let out = explain(examples, &canary).await;
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("checkout-canary.yaml:"), "{report}");
    assert!(
        report.contains(
            "outcome   forward to outbound|8080|canary|checkout.production.svc.cluster.local"
        ),
        "{report}"
    );
    assert!(
        report.contains("3 attempts, retryOn 5xx,reset,connect-failure"),
        "{report}"
    );
    let e = json(&explain(examples, &[&canary[..], &["-o", "json"]].concat()).await);
    assert_eq!(e["virtual_service"]["name"], "checkout-routing");
    assert_eq!(e["route"]["index"], 0);
    assert_eq!(e["policies"]["timeout"], "3000ms");
    assert_eq!(e["endpoints"][0]["address"], "127.0.0.1:18102");

    // Path routing: /v2/ goes to api-v2, the rest falls through to api-v1.
    let api = |path: &str| {
        [
            "--namespace".to_owned(),
            "production".to_owned(),
            "--request".to_owned(),
            format!("GET http://api.production:8080{path}"),
            "-o".to_owned(),
            "json".to_owned(),
        ]
    };
    let v2 = api("/v2/users");
    let e = json(&explain(examples, &v2.iter().map(String::as_str).collect::<Vec<_>>()).await);
    assert_eq!(e["route"]["index"], 0);
    assert_eq!(
        e["destination"]["cluster"],
        "outbound|8080|stable|api-v2.production.svc.cluster.local"
    );
    let v1 = api("/v1/users");
    let e = json(&explain(examples, &v1.iter().map(String::as_str).collect::<Vec<_>>()).await);
    assert_eq!(e["considered"][0]["matched"], false);
    assert!(
        e["considered"][0]["why"].as_str().unwrap().contains("/v2/"),
        "{e:#}"
    );
    assert_eq!(
        e["destination"]["cluster"],
        "outbound|8080|stable|api-v1.production.svc.cluster.local"
    );
}

#[tokio::test]
async fn demo_exit_prints_the_report() {
    let out = Command::new(BIN)
        .args(["demo", "--exit", "--requests", "12"])
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("order-service-v1"), "{stdout}");
    assert!(stdout.contains("order-service-v2"), "{stdout}");
    assert!(
        stdout.contains("no healthy upstream") || stdout.contains("remote connection failure"),
        "{stdout}"
    );
    assert!(stdout.contains("404"), "{stdout}");
    assert!(stdout.contains("p99"), "{stdout}");
    // The trace followed across two proxies, and Istio's counters (MET-1, TRACE-5).
    assert!(
        stdout.contains("with the same trace id"),
        "the sampled trace reached the order-service sidecar: {stdout}"
    );
    assert!(
        stdout.contains(r#"destination_workload="order-service-v1" response_code="200""#),
        "{stdout}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_lets_the_in_flight_request_finish_then_exits_0() {
    let slow = TestServer::builder()
        .name("slow")
        .delay(Duration::from_millis(1500))
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mesh.yaml"),
        service("slow", "slow.example.com", 80, "HTTP", &[slow.addr()]),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(dir.path())
        .args([
            "--namespace",
            "test",
            "--outbound",
            "127.0.0.1:0",
            "--inbound",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The ready line names the bound addresses.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut outbound = None;
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
    {
        if line.contains("mesh-proxy ready") {
            outbound = field(&line, "outbound=");
            break;
        }
    }
    let outbound: std::net::SocketAddr = outbound.expect("ready line").parse().unwrap();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let in_flight = tokio::spawn(async move {
        crate::harness::send(
            outbound,
            http::Request::get(format!("http://{outbound}/slow"))
                .header("host", "slow.example.com"),
        )
        .await
    });
    // Wait until the request reached the upstream, then SIGTERM.
    assert!(
        mesh_test::eventually(100, Duration::from_millis(20), || async {
            slow.request_count() == 1
        })
        .await
    );
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let resp = in_flight.await.unwrap();
    assert_eq!(resp.status(), 200, "the in-flight request finished");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(key)? + key.len();
    Some(
        line[start..]
            .split_whitespace()
            .next()?
            .trim_matches('"')
            .to_owned(),
    )
}
