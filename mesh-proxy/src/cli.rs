//! The `mesh-proxy` command line (DESIGN.md contract): `run`, `analyze`, `explain`, `demo`,
//! `ca`.
//!
//! Every flag also reads an environment variable `MESH_<FLAG>` (`--drain-timeout` →
//! `MESH_DRAIN_TIMEOUT`).
#![allow(clippy::print_stdout, reason = "this module is the CLI's output")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::settings::{LogFormat, ProxySettings};

/// The mesh SDK's reference sidecar: reads Istio YAML, forwards HTTP/1.1 and HTTP/2.
#[derive(Debug, Parser)]
#[command(name = "mesh-proxy", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy with Istio YAML from files or folders (watched and hot-reloaded).
    Run(Box<RunArgs>),
    /// Check Istio YAML like Istio's webhook and analyzers; exit 1 on any error.
    Analyze(AnalyzeArgs),
    /// Explain which route, destination and policies a request gets, and why (sends nothing).
    #[command(after_help = EXPLAIN_EXAMPLE)]
    Explain(ExplainArgs),
    /// Start sample services and proxies in one process, drive traffic, print a report.
    Demo(DemoArgs),
    /// A development CA: create one, issue SVIDs from it (never for production).
    Ca(crate::ca::CaArgs),
}

/// `mesh-proxy run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Files or folders of Istio YAML (multi-document; `.yaml`, `.yml`, `.json`).
    #[arg(long, env = "MESH_CONFIG", required = true, num_args = 1.., value_delimiter = ',')]
    pub config: Vec<PathBuf>,
    /// The workload this proxy stands for.
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// The workload's name in metric labels (`source_workload`/`destination_workload`;
    /// default: the `app` label).
    #[arg(long, env = "MESH_WORKLOAD_NAME")]
    pub workload_name: Option<String>,
    /// The cluster's name in metric labels (default `Kubernetes`, as Istio's).
    #[arg(long, env = "MESH_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Outbound listener (point the app's HTTP_PROXY here).
    #[arg(long, env = "MESH_OUTBOUND", default_value = "127.0.0.1:15001")]
    pub outbound: SocketAddr,
    /// Inbound listener (the mesh calls the workload here).
    #[arg(long, env = "MESH_INBOUND", default_value = "0.0.0.0:15006")]
    pub inbound: SocketAddr,
    /// The local app the inbound listener forwards to.
    #[arg(long, env = "MESH_APP", default_value = "127.0.0.1:8080")]
    pub app: SocketAddr,
    /// Admin listener.
    #[arg(long, env = "MESH_ADMIN", default_value = "127.0.0.1:15000")]
    pub admin: SocketAddr,
    /// Log format of the proxy's own logs.
    #[arg(long, env = "MESH_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Bound on finishing in-flight requests at shutdown (`5s`, `500ms`, `1m`).
    #[arg(long, env = "MESH_DRAIN_TIMEOUT", default_value = "5s")]
    pub drain_timeout: mesh_core::model::Duration,
    /// The proxy's SVID chain, leaf first (PEM; with --key and --ca; reloaded on change).
    #[arg(long, env = "MESH_CERT", requires_all = ["key", "ca"])]
    pub cert: Option<PathBuf>,
    /// The SVID's private key (PEM).
    #[arg(long, env = "MESH_KEY", requires_all = ["cert", "ca"])]
    pub key: Option<PathBuf>,
    /// The trust bundle: CA certificates of the trust domain (PEM).
    #[arg(long, env = "MESH_CA", requires_all = ["cert", "key"])]
    pub ca: Option<PathBuf>,
    /// Inbound path normalization before authorization: none, base, merge-slashes,
    /// decode-and-merge-slashes.
    #[arg(long, env = "MESH_PATH_NORMALIZATION", default_value = "base")]
    pub path_normalization: mesh_identity::path::PathNormalization,
    /// Access log: stdout, off, or a file path (Istio's text format; JSON with
    /// --log-format json).
    #[arg(long, env = "MESH_ACCESS_LOG", default_value = "stdout")]
    pub access_log: crate::settings::AccessLogTarget,
    /// Percentage of new traces to sample, 0–100 (a caller's decision is always kept).
    #[arg(long, env = "MESH_TRACE_SAMPLING", default_value = "1", value_parser = sampling_percent)]
    pub trace_sampling: f64,
    /// Trace headers to write: w3c (always), b3.
    #[arg(long, env = "MESH_TRACE_PROPAGATION", default_value = "w3c")]
    pub trace_propagation: mesh_telemetry::trace_context::Propagation,
}

fn sampling_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage"))?;
    if (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s:?} is not between 0 and 100"))
    }
}

/// The workload a proxy stands for: what config selection looks at (`sourceLabels` routes,
/// DestinationRule and Sidecar `workloadSelector`s, exportTo, short names). Shared by `run`
/// and `explain`, so both decide for the same workload.
#[derive(Debug, Args)]
pub struct WorkloadArgs {
    /// The workload's namespace (and the default namespace of resources without one).
    #[arg(long, env = "MESH_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// The workload's service account.
    #[arg(long, env = "MESH_SERVICE_ACCOUNT", default_value = "default")]
    pub service_account: String,
    /// The workload's labels, `k=v,k=v`.
    #[arg(long, env = "MESH_LABELS", value_parser = parse_labels, default_value = "")]
    pub labels: Labels,
    /// SPIFFE trust domain.
    #[arg(
        long,
        env = "MESH_TRUST_DOMAIN",
        default_value = "cluster.local",
        value_name = "TD",
        value_parser = parse_trust_domain
    )]
    pub trust_domain: String,
    /// Istio's root namespace (mesh-wide policies).
    #[arg(long, env = "MESH_ROOT_NAMESPACE", default_value = "istio-system")]
    pub root_namespace: String,
    /// A former name of the trust domain that AuthorizationPolicy principals may use (treated
    /// as equivalent to --trust-domain); repeat or separate with commas.
    #[arg(
        long,
        env = "MESH_TRUST_DOMAIN_ALIAS",
        value_delimiter = ',',
        value_name = "TD",
        value_parser = parse_trust_domain
    )]
    pub trust_domain_alias: Vec<String>,
}

impl WorkloadArgs {
    /// Default settings for this workload reading `config`.
    pub fn settings(&self, config: Vec<PathBuf>) -> ProxySettings {
        ProxySettings {
            config,
            namespace: self.namespace.clone(),
            service_account: self.service_account.clone(),
            labels: self.labels.0.clone(),
            trust_domain: self.trust_domain.clone(),
            root_namespace: self.root_namespace.clone(),
            trust_domain_aliases: self.trust_domain_alias.clone(),
            ..ProxySettings::default()
        }
    }
}

/// Labels given as `k=v,k=v`.
#[derive(Clone, Debug, Default)]
pub struct Labels(pub BTreeMap<String, String>);

/// A trust domain name as SPIFFE allows it (`[a-z0-9._-]`, SPIFFE-1).
fn parse_trust_domain(s: &str) -> Result<String, String> {
    mesh_identity::TrustDomain::new(s)
        .map(|td| td.as_str().to_owned())
        .map_err(|e| e.to_string())
}

fn parse_labels(s: &str) -> Result<Labels, String> {
    let mut labels = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("label {pair:?} is not k=v"))?;
        labels.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(Labels(labels))
}

impl RunArgs {
    /// The settings these flags stand for.
    pub fn settings(&self) -> ProxySettings {
        ProxySettings {
            workload_name: self.workload_name.clone(),
            cluster_name: self.cluster_name.clone(),
            outbound: self.outbound,
            inbound: self.inbound,
            app: self.app,
            admin: self.admin,
            drain_timeout: self.drain_timeout.as_std(),
            log_format: self.log_format,
            identity: match (&self.cert, &self.key, &self.ca) {
                (Some(cert), Some(key), Some(ca)) => crate::settings::IdentitySource::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                    ca: ca.clone(),
                },
                _ => crate::settings::IdentitySource::None,
            },
            path_normalization: self.path_normalization,
            access_log: self.access_log.clone(),
            trace_sampling: self.trace_sampling,
            trace_b3: self.trace_propagation.b3,
            ..self.workload.settings(self.config.clone())
        }
    }
}

/// `mesh-proxy analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Files or folders of Istio YAML.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Namespace of resources that do not name one.
    #[arg(long, env = "MESH_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: crate::analyze::OutputFormat,
}

/// `mesh-proxy explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Files or folders of Istio YAML (multi-document; `.yaml`, `.yml`, `.json`).
    #[arg(long, env = "MESH_CONFIG", required = true, num_args = 1.., value_delimiter = ',')]
    pub config: Vec<PathBuf>,
    /// The request: `'METHOD URL'`, or `URL` alone for GET. The URL is absolute,
    /// `http://host[:port]/path?query` (the port picks the service port: 80, 443 for https);
    /// a bare `/path` needs `--header host:HOST`.
    #[arg(long, value_name = "'METHOD URL'")]
    pub request: String,
    /// A request header, `name:value` (split at the first `:`); repeat for more.
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// The caller's SPIFFE ID for the destination's AuthorizationPolicies (default: this
    /// workload's own identity).
    #[arg(long, value_name = "SPIFFE_ID")]
    pub from: Option<String>,
    /// The workload whose outbound proxy decides (as `run` takes it).
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Output format: a report for people, or JSON for tools.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: crate::explain::OutputFormat,
}

const EXPLAIN_EXAMPLE: &str = "\
Example:
  mesh-proxy explain --config mesh/ --namespace prod \\
      --request 'GET http://reviews:9080/reviews/1' --header x-canary:true

Exit code: 0 when the request is explained (whatever its outcome, 404 included), 1 when the
config does not load or compile, 2 on a malformed request, header or --from.";

/// `mesh-proxy demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Exit after printing the report instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// Requests to send per scenario.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
}

/// Runs the binary: parses arguments, dispatches, returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Analyze(args) => crate::analyze::run(&args),
        Command::Explain(args) => crate::explain::run(&args),
        Command::Run(args) => {
            let log = crate::logging::init(args.log_format);
            runtime().block_on(run(args.settings(), log))
        }
        Command::Ca(args) => crate::ca::run(&args),
        Command::Demo(args) => {
            let log = crate::logging::init(LogFormat::Text);
            runtime().block_on(crate::demo::run(&args, log))
        }
    }
}

/// A tokio runtime honouring `TOKIO_WORKER_THREADS` (DESIGN.md performance budget).
fn runtime() -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .expect("a tokio runtime can be built at start-up")
}

async fn run(settings: ProxySettings, log: Option<crate::logging::LogHandle>) -> ExitCode {
    let check: mesh_core::watch::Check = Box::new(mesh_core::validate::check);
    let proxy = match crate::Proxy::start_with(settings, Some(check), log).await {
        Ok(p) => p,
        Err(error) => {
            eprintln!("mesh-proxy: {error}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutdown signal: draining");
            proxy.shutdown();
        }
        () = proxy.draining() => {}
    }
    proxy.wait().await;
    ExitCode::SUCCESS
}

/// SIGTERM or SIGINT (Ctrl-C); on non-Unix, Ctrl-C only.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
