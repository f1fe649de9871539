//! The proxy's settings: what `mesh-proxy run` flags become (DESIGN.md contract).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything a running proxy needs to know about itself.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct ProxySettings {
    /// Config files and folders (watched).
    pub config: Vec<PathBuf>,
    /// The workload's namespace; also the default namespace of resources without one.
    pub namespace: String,
    /// The workload's service account.
    pub service_account: String,
    /// The workload's labels.
    pub labels: BTreeMap<String, String>,
    /// SPIFFE trust domain.
    pub trust_domain: String,
    /// Istio's root namespace (mesh-wide policies).
    pub root_namespace: String,
    /// The workload's name (metrics labels; defaults to the service account).
    pub workload_name: Option<String>,
    /// The cluster's name (metrics labels).
    pub cluster_name: Option<String>,
    /// Outbound listener (the local app's traffic to the mesh).
    pub outbound: SocketAddr,
    /// Inbound listener (the mesh's traffic to the local app).
    pub inbound: SocketAddr,
    /// The local app.
    pub app: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// Bound on finishing in-flight requests after SIGTERM / `quitquitquit`.
    #[serde(with = "duration_text")]
    pub drain_timeout: Duration,
    /// Log format.
    pub log_format: LogFormat,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            config: Vec::new(),
            namespace: "default".into(),
            service_account: "default".into(),
            labels: BTreeMap::new(),
            trust_domain: "cluster.local".into(),
            root_namespace: "istio-system".into(),
            workload_name: None,
            cluster_name: None,
            outbound: SocketAddr::from(([127, 0, 0, 1], 15001)),
            inbound: SocketAddr::from(([0, 0, 0, 0], 15006)),
            app: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: SocketAddr::from(([127, 0, 0, 1], 15000)),
            drain_timeout: Duration::from_secs(5),
            log_format: LogFormat::Text,
        }
    }
}

impl ProxySettings {
    /// Settings for `config` with every listener on an ephemeral loopback port (tests, demo).
    pub fn loopback(config: impl IntoIterator<Item = PathBuf>) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            config: config.into_iter().collect(),
            outbound: any,
            inbound: any,
            admin: any,
            ..Self::default()
        }
    }

    /// The proxy as config selection sees it: namespace (exportTo, short names), labels
    /// (`sourceLabels`, DestinationRule `workloadSelector`) and the root namespace.
    pub fn scope(&self) -> mesh_core::registry::Scope {
        mesh_core::registry::Scope::new(self.namespace.clone())
            .labels(self.labels.clone())
            .root_namespace(self.root_namespace.clone())
    }
}

mod duration_text {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_str(&mesh_core::model::Duration::from_std(*d))
    }
}
