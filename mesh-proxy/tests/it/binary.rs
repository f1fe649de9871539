//! The `mesh-proxy` binary: `analyze`, `demo --exit`, and SIGTERM with a request in flight.

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
