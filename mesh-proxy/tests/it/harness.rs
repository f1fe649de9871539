//! Starts a proxy on a config folder written for the test.

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use mesh_proxy::{Proxy, ProxySettings, RunningProxy};
use mesh_test::{TestBody, http1_client};

pub(crate) struct Harness {
    pub(crate) proxy: RunningProxy,
    pub(crate) dir: tempfile::TempDir,
}

/// A STATIC ServiceEntry for `host` on `port` with one endpoint per address.
pub(crate) fn service(
    name: &str,
    host: &str,
    port: u16,
    protocol: &str,
    endpoints: &[SocketAddr],
) -> String {
    let mut eps = String::new();
    for e in endpoints {
        eps.push_str(&format!(
            "  - {{address: {}, ports: {{http: {}}}}}\n",
            e.ip(),
            e.port()
        ));
    }
    let eps = if endpoints.is_empty() {
        " []\n".to_owned()
    } else {
        format!("\n{eps}")
    };
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: test}}\nspec:\n  hosts: [{host}]\n  resolution: STATIC\n  ports: [{{number: {port}, name: http, protocol: {protocol}}}]\n  endpoints:{eps}---\n"
    )
}

impl Harness {
    pub(crate) async fn start(yaml: &str) -> Self {
        Self::start_with(yaml, |_| {}).await
    }

    pub(crate) async fn start_with(yaml: &str, tweak: impl FnOnce(&mut ProxySettings)) -> Self {
        mesh_test::trace_init();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let mut settings = ProxySettings::loopback([dir.path().to_path_buf()]);
        settings.namespace = "test".into();
        tweak(&mut settings);
        let check: mesh_core::watch::Check = Box::new(mesh_core::validate::check);
        let proxy = Proxy::start_with(settings, Some(check), None)
            .await
            .unwrap();
        Self { proxy, dir }
    }

    pub(crate) fn config_file(&self) -> std::path::PathBuf {
        self.dir.path().join("mesh.yaml")
    }

    pub(crate) fn out(&self) -> SocketAddr {
        self.proxy.outbound_addr()
    }

    /// GET through the outbound listener with `Host: host`.
    pub(crate) async fn get(&self, host: &str, path: &str) -> Response<Bytes> {
        send(
            self.out(),
            Request::get(format!("http://{}{path}", self.out())).header("host", host),
        )
        .await
    }

    /// GET on the admin listener.
    pub(crate) async fn admin(&self, path: &str) -> Response<Bytes> {
        let a = self.proxy.admin_addr();
        send(a, Request::get(format!("http://{a}{path}"))).await
    }

    pub(crate) async fn admin_post(&self, path: &str) -> Response<Bytes> {
        let a = self.proxy.admin_addr();
        send(a, Request::post(format!("http://{a}{path}"))).await
    }
}

pub(crate) async fn send(_addr: SocketAddr, req: http::request::Builder) -> Response<Bytes> {
    let resp = http1_client::<TestBody>()
        .request(req.body(TestBody::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

pub(crate) fn text(resp: &Response<Bytes>) -> &str {
    std::str::from_utf8(resp.body()).unwrap()
}

#[allow(dead_code)]
pub(crate) fn write_atomically(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
