//! `mesh-proxy demo`: a working mesh in one process.
//!
//! It starts sample services (two versions of order-service, three payment-service instances
//! of which one is flaky, a stable and a canary checkout, and an inventory-service whose only
//! instance is down), writes the embedded config (`demo/mesh.yaml`: the registry of the
//! users' `examples/services.yaml` with the ports the samples got) to a temporary folder, runs
//! the proxy on it exactly as `mesh-proxy run` would, drives traffic through the outbound and
//! inbound listeners, and prints a report. Then it keeps serving and prints commands to try,
//! until Ctrl-C (`--exit` ends after the report). Each capability, once built, shows up here.
#![allow(clippy::print_stdout, reason = "the demo's report is its output")]

mod report;
mod samples;

use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::cli::DemoArgs;
use crate::logging::LogHandle;
use crate::settings::ProxySettings;
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

/// A running demo: sample services, the config folder and the proxy.
#[derive(Debug)]
pub struct Demo {
    /// The sample services.
    pub samples: Vec<Sample>,
    /// The proxy.
    pub proxy: RunningProxy,
    /// The folder holding the generated config (removed when the demo ends).
    pub config_dir: tempfile::TempDir,
}

impl Demo {
    /// Starts samples and the proxy. With `well_known_ports`, the proxy listens on the default
    /// ports (outbound 15001, admin 15000) when they are free, so the printed commands are short.
    pub async fn start(well_known_ports: bool, log: Option<LogHandle>) -> Result<Self, String> {
        let samples = samples::start_all()
            .await
            .map_err(|e| format!("cannot start sample services: {e}"))?;
        let closed = closed_port()
            .await
            .map_err(|e| format!("cannot find a closed port: {e}"))?;
        let mut yaml = MESH_TEMPLATE.replace("${closed-port}", &closed.to_string());
        for s in &samples {
            yaml = yaml.replace(&format!("${{{}}}", s.name), &s.addr.port().to_string());
        }
        let config_dir = tempfile::Builder::new()
            .prefix("mesh-demo-")
            .tempdir()
            .map_err(|e| format!("cannot create the config folder: {e}"))?;
        std::fs::write(config_dir.path().join("mesh.yaml"), yaml)
            .map_err(|e| format!("cannot write the config: {e}"))?;

        let app = samples
            .iter()
            .find(|s| s.name == "local-app")
            .map(|s| s.addr);
        let mut settings = ProxySettings::loopback([config_dir.path().to_path_buf()]);
        settings.namespace = NAMESPACE.into();
        settings.service_account = "checkout-bff".into();
        settings.app = app.unwrap_or(settings.app);
        if well_known_ports {
            settings.outbound = free_or_ephemeral(15001).await;
            settings.admin = free_or_ephemeral(15000).await;
        }
        let check: mesh_core::watch::Check = Box::new(mesh_core::validate::check);
        let proxy = Proxy::start_with(settings, Some(check), log)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            samples,
            proxy,
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
        let admin = self.proxy.admin_addr();
        let config = self.config_dir.path().join("mesh.yaml");
        format!(
            "Try it (Ctrl-C drains and exits):\n\
             \x20 curl -x http://{out} http://order-service.production.svc.cluster.local:8080/orders\n\
             \x20 curl -x http://{out} -H 'x-canary-test: true' http://order-service.production:8080/orders  # v2\n\
             \x20 curl -H 'Host: payment-service:8080' http://{out}/v1/payments\n\
             \x20 curl -x http://{out} http://nowhere.example.com/          # 404, no route\n\
             \x20 curl http://{admin}/clusters\n\
             \x20 curl http://{admin}/config_dump\n\
             \x20 curl http://{admin}/stats/prometheus\n\
             \x20 curl -X POST 'http://{admin}/logging?level=debug'\n\
             \x20 $EDITOR {}                  # saved changes reload live\n\
             \x20 cargo run --release -p mesh-proxy -- analyze {}\n\
             \x20 cargo run --release -p mesh-proxy -- explain --namespace production --config {} \\\n\
             \x20     --request 'GET http://order-service:8080/orders' --header x-canary-test:true",
            config.display(),
            config.display(),
            config.display(),
        )
    }

    /// Drains the proxy and stops the samples.
    pub async fn stop(self) {
        self.proxy.shutdown();
        self.proxy.wait().await;
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

/// A loopback port nobody listens on (bound, then released).
async fn closed_port() -> std::io::Result<u16> {
    let l = TcpListener::bind(("127.0.0.1", 0)).await?;
    Ok(l.local_addr()?.port())
}
