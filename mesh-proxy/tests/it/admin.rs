//! The admin API (DESIGN.md contract).

use mesh_test::TestServer;
use serde_json::Value;

use crate::harness::{Harness, service, text};

#[tokio::test]
async fn ready_live_and_config_dump() {
    let up = TestServer::builder().start().await;
    let h = Harness::start(&service("reviews", "reviews", 9080, "HTTP", &[up.addr()])).await;
    assert_eq!(h.admin("/ready").await.status(), 200);
    assert_eq!(h.admin("/live").await.status(), 200);
    let dump: Value = serde_json::from_slice(h.admin("/config_dump").await.body()).unwrap();
    assert_eq!(dump["version"], h.proxy.config_version());
    assert!(dump["loaded_at"].as_str().unwrap().ends_with('Z'));
    let r = &dump["resources"][0];
    assert_eq!(r["kind"], "ServiceEntry");
    assert_eq!(r["metadata"]["namespace"], "test");
    assert!(
        r["source"].as_str().unwrap().ends_with("mesh.yaml:1"),
        "{}",
        r["source"]
    );
    assert_eq!(r["spec"]["hosts"][0], "reviews");
    let names: Vec<&str> = dump["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["outbound", "inbound", "admin"]);
    assert_eq!(dump["bootstrap"]["flags"]["namespace"], "test");
    assert_eq!(h.admin("/nope").await.status(), 404);
}

#[tokio::test]
async fn clusters_show_endpoints_and_counters() {
    let up = TestServer::builder().start().await;
    let h = Harness::start(&service("reviews", "reviews", 9080, "HTTP", &[up.addr()])).await;
    h.get("reviews:9080", "/").await;
    let body = h.admin("/clusters").await;
    let prefix = format!(
        "outbound|9080||reviews.test.svc.cluster.local::{}",
        up.addr()
    );
    let t = text(&body);
    assert!(
        t.contains(&format!("{prefix}::health_flags::healthy")),
        "{t}"
    );
    assert!(t.contains(&format!("{prefix}::rq_total::1")), "{t}");
    assert!(t.contains(&format!("{prefix}::rq_success::1")), "{t}");
    assert!(t.contains("inbound|"), "{t}");
    let json: Value =
        serde_json::from_slice(h.admin("/clusters?format=json").await.body()).unwrap();
    let c = &json["cluster_statuses"][0];
    assert_eq!(c["name"], "outbound|9080||reviews.test.svc.cluster.local");
    assert_eq!(c["host_statuses"][0]["stats"]["rq_total"], 1);
}

#[tokio::test]
async fn prometheus_text_is_valid() {
    let h = Harness::start("").await;
    h.get("nowhere.example.com", "/").await;
    let body = h.admin("/stats/prometheus").await;
    assert!(
        body.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let t = text(&body);
    for line in t.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line:?}"
        );
    }
    assert!(
        t.contains("mesh_config_reloads_total{result=\"success\"} 1"),
        "{t}"
    );
    assert!(
        t.contains("mesh_local_replies_total{listener=\"outbound\",response_flags=\"NR\"} 1"),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "mesh_config_version_info{{version=\"{}\"}} 1",
            h.proxy.config_version()
        )),
        "{t}"
    );
    assert_eq!(h.admin("/metrics").await.status(), 200);
}

#[tokio::test]
async fn quitquitquit_drains_and_ready_turns_503() {
    let h = Harness::start("").await;
    assert_eq!(h.admin_post("/quitquitquit").await.status(), 200);
    // DESIGN.md: the admin listener stays open during the drain; /ready answers 503.
    assert_eq!(h.admin("/ready").await.status(), 503);
    h.proxy.wait().await;
}
