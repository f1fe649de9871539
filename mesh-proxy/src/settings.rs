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
    /// The workload's name in metric labels (default: the `app` label, else `unknown`; MET-4).
    pub workload_name: Option<String>,
    /// The cluster's name in metric labels (default `Kubernetes`, Istio's).
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
    /// Where the proxy's SVID and trust bundle come from (`--cert --key --ca`, or an in-process
    /// development CA). Without one the proxy neither terminates nor originates mTLS.
    pub identity: IdentitySource,
    /// Former names of the trust domain, accepted as equivalent by authorization
    /// (`--trust-domain-alias`, SEMANTICS SPIFFE-11, AUTHZ-27).
    pub trust_domain_aliases: Vec<String>,
    /// How inbound request paths are normalized before authorization and forwarding
    /// (`--path-normalization`, SEMANTICS AUTHZ-25).
    #[serde(serialize_with = "path_normalization_text")]
    pub path_normalization: mesh_identity::path::PathNormalization,
    /// Where access-log lines go (`--access-log stdout|off|PATH`, SEMANTICS LOG-1).
    pub access_log: AccessLogTarget,
    /// Percentage of new traces sampled (`--trace-sampling`, TRACE-6); a caller's decision is
    /// always kept.
    pub trace_sampling: f64,
    /// Also write B3 headers (`--trace-propagation w3c,b3`, TRACE-15).
    pub trace_b3: bool,
}

/// The access log's destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// No access log (the library default; `mesh-proxy run` defaults to stdout).
    #[default]
    Off,
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

impl std::str::FromStr for AccessLogTarget {
    type Err = std::convert::Infallible;

    /// `stdout`, `off`, or a path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "stdout" | "/dev/stdout" | "-" => Self::Stdout,
            "off" | "" => Self::Off,
            path => Self::File(PathBuf::from(path)),
        })
    }
}

impl Serialize for AccessLogTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Off => s.serialize_str("off"),
            Self::Stdout => s.serialize_str("stdout"),
            Self::File(p) => s.serialize_str(&p.to_string_lossy()),
        }
    }
}

fn path_normalization_text<S: serde::Serializer>(
    p: &mesh_identity::path::PathNormalization,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

/// Where a proxy's own certificate, key and trust bundle come from (SEMANTICS SPIFFE-10).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum IdentitySource {
    /// No identity: plaintext only (auto mTLS off; `ISTIO_MUTUAL` destinations fail to connect,
    /// STRICT inbound ports refuse every connection).
    #[default]
    None,
    /// PEM files (`--cert --key --ca`), reloaded when they change: new handshakes use the new
    /// certificate, open connections keep theirs.
    Files {
        /// The SVID chain, leaf first.
        cert: PathBuf,
        /// The SVID's private key.
        key: PathBuf,
        /// The trust bundle (CA certificates of the trust domain).
        ca: PathBuf,
    },
    /// An in-process development CA that issues this proxy's SVID (24 h) and re-issues it at
    /// half life (demo and tests; never for production).
    DevCa(std::sync::Arc<mesh_identity::ca::DevCa>),
}

impl Serialize for IdentitySource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            Self::None => m.serialize_entry("source", "none")?,
            Self::Files { cert, key, ca } => {
                m.serialize_entry("source", "files")?;
                m.serialize_entry("cert", cert)?;
                m.serialize_entry("key", key)?;
                m.serialize_entry("ca", ca)?;
            }
            Self::DevCa(ca) => {
                m.serialize_entry("source", "dev-ca")?;
                m.serialize_entry("trust_domain", ca.trust_domain().as_str())?;
            }
        }
        m.end()
    }
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
            identity: IdentitySource::None,
            trust_domain_aliases: Vec::new(),
            path_normalization: mesh_identity::path::PathNormalization::Base,
            access_log: AccessLogTarget::Off,
            trace_sampling: 1.0,
            trace_b3: false,
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

    /// Authorization options: the trust domain and its aliases (AUTHZ-27).
    pub fn authz_options(&self) -> mesh_identity::authz::AuthzOptions {
        mesh_identity::authz::AuthzOptions::new()
            .trust_domain(self.trust_domain.clone())
            .trust_domain_aliases(self.trust_domain_aliases.iter().cloned())
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
