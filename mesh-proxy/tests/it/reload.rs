//! Hot reload while requests flow (SEMANTICS RELOAD-1, RELOAD-2).

use std::time::Duration;

use mesh_test::{TestServer, eventually};

use crate::harness::{Harness, service, write_atomically};

/// Waits (bounded) until the proxy serves a config version other than `old`.
async fn version_changes(h: &Harness, old: &str) -> bool {
    eventually(100, Duration::from_millis(50), || async {
        h.proxy.config_version() != old
    })
    .await
}

#[tokio::test]
async fn valid_change_applies_and_invalid_change_keeps_the_last_good_config() {
    let a = TestServer::builder().name("a").start().await;
    let b = TestServer::builder().name("b").start().await;
    let h = Harness::start(&service("svc", "svc.example.com", 80, "HTTP", &[a.addr()])).await;
    let v1 = h.proxy.config_version();

    // Requests keep flowing during every change below and none fails.
    let out = h.out();
    let flow = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for _ in 0..200 {
            let r = crate::harness::send(
                out,
                http::Request::get(format!("http://{out}/")).header("host", "svc.example.com"),
            )
            .await;
            statuses.push(r.status().as_u16());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        statuses
    });

    // A valid change (editor style: write a temporary file, rename it over) moves traffic to b.
    write_atomically(
        &h.config_file(),
        &service("svc", "svc.example.com", 80, "HTTP", &[b.addr()]),
    );
    assert!(
        version_changes(&h, &v1).await,
        "the valid change was not applied"
    );
    let v2 = h.proxy.config_version();
    assert_eq!(
        h.get("svc.example.com", "/").await.headers()["x-served-by"],
        "b"
    );

    // An invalid change is rejected whole: same version, still b, failure counted.
    std::fs::write(h.config_file(), "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec:\n  hostz: [oops]\n").unwrap();
    let rejected = eventually(100, Duration::from_millis(50), || async {
        crate::harness::text(&h.admin("/stats/prometheus").await)
            .contains("mesh_config_reload_failures_total 1")
    })
    .await;
    assert!(rejected, "the invalid change was not counted as a failure");
    assert_eq!(h.proxy.config_version(), v2);
    assert_eq!(
        h.get("svc.example.com", "/").await.headers()["x-served-by"],
        "b"
    );

    // The folder disappears: a failed reload, still serving.
    let statuses = flow.await.unwrap();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "a request failed during reloads: {statuses:?}"
    );
}

#[tokio::test]
async fn config_folder_that_disappears_keeps_serving_and_recovers() {
    let a = TestServer::builder().name("a").start().await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("mesh");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("mesh.yaml"),
        service("svc", "svc.example.com", 80, "HTTP", &[a.addr()]),
    )
    .unwrap();
    let mut settings = mesh_proxy::ProxySettings::loopback([dir.clone()]);
    settings.namespace = "test".into();
    let proxy = mesh_proxy::Proxy::start(settings).await.unwrap();
    let v1 = proxy.config_version();
    std::fs::remove_dir_all(&dir).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await; // let the watcher see the deletion
    assert_eq!(proxy.config_version(), v1);
    // Re-created with new content: picked up again.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("mesh.yaml"),
        service("svc2", "svc2.example.com", 80, "HTTP", &[a.addr()]),
    )
    .unwrap();
    let changed = eventually(100, Duration::from_millis(50), || async {
        proxy.config_version() != v1
    })
    .await;
    assert!(changed, "the re-created folder was not loaded");
}

#[cfg(unix)]
#[tokio::test]
async fn configmap_symlink_swap_is_seen() {
    // Kubernetes mounts a ConfigMap as `..data -> ..2024_01_01_v1/` with `mesh.yaml ->
    // ..data/mesh.yaml`, and updates it by swapping `..data` atomically.
    let a = TestServer::builder().name("a").start().await;
    let b = TestServer::builder().name("b").start().await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let v1 = dir.join("..2024_01_01_v1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(
        v1.join("mesh.yaml"),
        service("svc", "svc.example.com", 80, "HTTP", &[a.addr()]),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2024_01_01_v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/mesh.yaml", dir.join("mesh.yaml")).unwrap();
    let mut settings = mesh_proxy::ProxySettings::loopback([dir.to_path_buf()]);
    settings.namespace = "test".into();
    let proxy = mesh_proxy::Proxy::start(settings).await.unwrap();
    let before = proxy.config_version();

    let v2 = dir.join("..2024_01_02_v2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(
        v2.join("mesh.yaml"),
        service("svc", "svc.example.com", 80, "HTTP", &[b.addr()]),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2024_01_02_v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();
    let changed = eventually(100, Duration::from_millis(50), || async {
        proxy.config_version() != before
    })
    .await;
    assert!(changed, "the ..data swap was not seen");
}
