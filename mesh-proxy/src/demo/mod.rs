//! `mesh-proxy demo`: a working mesh in one process.
//!
//! It starts sample services (two versions of order-service, three payment-service instances
//! of which one is broken, a stable and a canary checkout, and an inventory-service whose only
//! instance is down), a development CA, a sidecar proxy in front of every sample and two client
//! proxies (checkout-bff and order-service), all with SVIDs from the CA; writes the embedded
//! config (`demo/mesh.yaml`: the registry of the users' `examples/services.yaml` pointing at the
//! sidecars, plus `examples/security.yaml`: STRICT mTLS and the authorization policies) to a
//! temporary folder, runs every proxy on it exactly as `mesh-proxy run` would, drives traffic
//! through them over mTLS, and prints a report. Then it keeps serving and prints commands to try,
//! until Ctrl-C (`--exit` ends after the report). Each capability, once built, shows up here.
#![allow(clippy::print_stdout, reason = "the demo's report is its output")]

mod report;
mod samples;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use mesh_identity::TrustDomain;
use mesh_identity::ca::{DEFAULT_CA_TTL, DevCa};

use tokio::net::TcpListener;

use crate::cli::DemoArgs;
use crate::logging::LogHandle;
use crate::settings::{IdentitySource, ProxySettings};
use crate::{Proxy, RunningProxy};

pub use report::{Report, Scenario};
pub use samples::{Sample, SampleBehaviour};

/// The embedded config template; `${name}` stands for the port of sample `name`.
pub const MESH_TEMPLATE: &str = include_str!("mesh.yaml");

/// The namespace of the demo's workloads.
pub const NAMESPACE: &str = "production";

/// Runs the demo.
pub async fn run(args: &DemoArgs, log: Option<LogHandle>) -> ExitCode {
    match run_inner(args, log).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mesh-proxy demo: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_inner(args: &DemoArgs, log: Option<LogHandle>) -> Result<(), String> {
    let demo = Demo::start(!args.exit, log).await?;
    let report = demo.drive(args.requests.max(1)).await;
    println!("{}", report.render());
    if args.exit {
        demo.stop().await;
        return Ok(());
    }
    println!("{}", demo.try_it());
    crate::cli::shutdown_signal().await;
    println!("\nDraining…");
    demo.stop().await;
    Ok(())
}

/// A running demo: sample services, their sidecars, the client proxies and the config folder.
#[derive(Debug)]
pub struct Demo {
    /// The sample services.
    pub samples: Vec<Sample>,
    /// The proxy of the `checkout-bff` workload (the demo's main client, and the sidecar of
    /// the local app on its inbound side).
    pub proxy: RunningProxy,
    /// The proxy of an `order-service` workload: the one caller payment-service accepts.
    pub order_proxy: RunningProxy,
    /// One sidecar per sample service (inbound: the mesh's mTLS traffic to the sample).
    pub sidecars: Vec<(&'static str, RunningProxy)>,
    /// The development CA every proxy's SVID comes from.
    pub ca: Arc<DevCa>,
    /// The folder holding the generated config (removed when the demo ends).
    pub config_dir: tempfile::TempDir,
}

/// The workload a sample stands for: service account and labels, as its WorkloadEntry says.
fn workload_of(name: &str) -> (&'static str, &'static str, &'static str) {
    match name {
        "order-service-v1" => ("order-service-sa", "order-service", "v1"),
        "order-service-v2" => ("order-service-sa", "order-service", "v2"),
        "checkout-stable" => ("checkout-bff", "checkout", "stable"),
        "checkout-canary" => ("checkout-bff", "checkout", "canary"),
        _ => ("payment-service-sa", "payment-service", "v1"),
    }
}

impl Demo {
    /// Starts samples, a sidecar in front of each, and the client proxies, all with SVIDs from
    /// one development CA. With `well_known_ports`, the main proxy listens on the default ports
    /// (outbound 15001, admin 15000) when they are free, so the printed commands are short.
    pub async fn start(well_known_ports: bool, log: Option<LogHandle>) -> Result<Self, String> {
        let mut samples = samples::start_all()
            .await
            .map_err(|e| format!("cannot start sample services: {e}"))?;
        let closed = free_port()
            .await
            .map_err(|e| format!("cannot find a closed port: {e}"))?;
        let td = TrustDomain::new("cluster.local").map_err(|e| e.to_string())?;
        let ca = Arc::new(DevCa::new(&td, DEFAULT_CA_TTL).map_err(|e| e.to_string())?);
        // Each sample is reached through its sidecar's inbound listener (a port picked now, as
        // the config names it).
        let mut yaml = MESH_TEMPLATE.replace("${closed-port}", &closed.to_string());
        for s in samples.iter_mut().filter(|s| s.name != "local-app") {
            let port = free_port()
                .await
                .map_err(|e| format!("cannot find a port: {e}"))?;
            s.endpoint = SocketAddr::from(([127, 0, 0, 1], port));
            yaml = yaml.replace(&format!("${{{}}}", s.name), &port.to_string());
        }
        let config_dir = tempfile::Builder::new()
            .prefix("mesh-demo-")
            .tempdir()
            .map_err(|e| format!("cannot create the config folder: {e}"))?;
        std::fs::write(config_dir.path().join("mesh.yaml"), yaml)
            .map_err(|e| format!("cannot write the config: {e}"))?;
        let base = || {
            let mut settings = ProxySettings::loopback([config_dir.path().to_path_buf()]);
            settings.namespace = NAMESPACE.into();
            settings.identity = IdentitySource::DevCa(Arc::clone(&ca));
            settings
        };
        let start = |settings: ProxySettings, log: Option<LogHandle>| async move {
            let check: mesh_core::watch::Check = Box::new(mesh_core::validate::check);
            Proxy::start_with(settings, Some(check), log)
                .await
                .map_err(|e| e.to_string())
        };

        let mut sidecars = Vec::new();
        for s in samples.iter().filter(|s| s.name != "local-app") {
            let (sa, app, version) = workload_of(s.name);
            let mut settings = base();
            settings.service_account = sa.into();
            settings.labels = [("app", app), ("version", version)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            settings.app = s.addr;
            settings.inbound = s.endpoint;
            settings.workload_name = Some(s.name.to_owned());
            sidecars.push((s.name, start(settings, None).await?));
        }

        let mut order = base();
        order.service_account = "order-service-sa".into();
        order.labels = [("app".to_owned(), "order-service".to_owned())].into();
        order.workload_name = Some("order-service-client".into());
        let order_proxy = start(order, None).await?;

        let app = samples
            .iter()
            .find(|s| s.name == "local-app")
            .map(|s| s.addr);
        let mut settings = base();
        settings.service_account = "checkout-bff".into();
        settings.workload_name = Some("checkout-bff".into());
        settings.app = app.unwrap_or(settings.app);
        if well_known_ports {
            settings.outbound = free_or_ephemeral(15001).await;
            settings.admin = free_or_ephemeral(15000).await;
        }
        let proxy = start(settings, log).await?;
        Ok(Self {
            samples,
            proxy,
            order_proxy,
            sidecars,
            ca,
            config_dir,
        })
    }

    /// Sends `n` requests per scenario and gathers the report.
    pub async fn drive(&self, n: usize) -> Report {
        report::drive(self, n).await
    }

    /// Commands a person can paste while the demo keeps serving.
    pub fn try_it(&self) -> String {
        let out = self.proxy.outbound_addr();
        let order = self.order_proxy.outbound_addr();
        let admin = self.proxy.admin_addr();
        let config = self.config_dir.path().join("mesh.yaml");
        format!(
            "Try it (Ctrl-C drains and exits):\n\
             \x20 curl -x http://{out} http://order-service.production.svc.cluster.local:8080/api/v1/orders\n\
             \x20 curl -x http://{out} -H 'x-canary-test: true' http://order-service.production:8080/api/v1/orders  # v2\n\
             \x20 curl -X POST -H 'Host: payment-service:8080' http://{order}/v1/payments   # as order-service: allowed\n\
             \x20 curl -X POST -H 'Host: payment-service:8080' http://{out}/v1/payments     # as checkout-bff: 403\n\
             \x20 curl -x http://{out} http://nowhere.example.com/          # 404, no route\n\
             \x20 curl http://{admin}/clusters\n\
             \x20 curl http://{admin}/config_dump\n\
             \x20 curl http://{admin}/stats/prometheus\n\
             \x20 curl -X POST 'http://{admin}/logging?level=debug'\n\
             \x20 $EDITOR {}                  # saved changes reload live\n\
             \x20 cargo run --release -p mesh-proxy -- analyze {}\n\
             \x20 cargo run --release -p mesh-proxy -- explain --namespace production --service-account checkout-bff --config {} \\\n\
             \x20     --request 'POST http://payment-service:8080/v1/payments'   # which policy decides, and why",
            config.display(),
            config.display(),
            config.display(),
        )
    }

    /// Drains the proxies and stops the samples.
    pub async fn stop(self) {
        let mut all = vec![self.proxy, self.order_proxy];
        all.extend(self.sidecars.into_iter().map(|(_, p)| p));
        for p in &all {
            p.shutdown();
        }
        for p in all {
            p.wait().await;
        }
    }
}

/// `127.0.0.1:port` if it can be bound now, else an ephemeral port.
async fn free_or_ephemeral(port: u16) -> SocketAddr {
    let wanted = SocketAddr::from(([127, 0, 0, 1], port));
    match TcpListener::bind(wanted).await {
        Ok(l) => {
            drop(l);
            wanted
        }
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
    }
}

/// A loopback port nobody listens on now (bound, then released).
async fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind(("127.0.0.1", 0)).await?;
    Ok(l.local_addr()?.port())
}
