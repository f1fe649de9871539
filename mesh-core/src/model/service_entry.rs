//! `ServiceEntry`: a service in the registry (SEMANTICS SE-1 to SE-9). In `mesh-proxy` every
//! service is one, as there is no Kubernetes registry.

use serde::{Deserialize, Serialize};

use super::{WorkloadEntry, WorkloadSelector};

/// `networking.istio.io` ServiceEntry spec.
///
/// ```
/// use mesh_core::model::{Resolution, ServiceEntry};
/// let se: ServiceEntry = serde_json::from_str(r#"{
///     "hosts": ["api.example.com"], "resolution": "DNS",
///     "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}]
/// }"#).unwrap();
/// assert_eq!(se.resolution, Resolution::Dns);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ServiceEntry {
    /// Host names of the service (FQDNs or `*.suffix` wildcards).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDR blocks of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Ports of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Inside or outside the mesh.
    #[serde(default)]
    pub location: ServiceLocation,
    /// How endpoints are found.
    #[serde(default)]
    pub resolution: Resolution,
    /// Endpoints of the service (mutually exclusive with `workloadSelector`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntry>,
    /// Selects WorkloadEntries in the same namespace as endpoints (SE-5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Namespaces the service is visible to (HOST-8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Extra identities accepted from the service's endpoints (SE-6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// `ServicePort`: a port of a ServiceEntry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ServicePort {
    /// The port number.
    #[serde(default)]
    pub number: u32,
    /// The protocol (`HTTP`, `HTTP2`, `GRPC`, `HTTPS`, `TLS`, `TCP`, …); inferred from the name
    /// when empty (SE-7).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// The port's name; endpoints' `ports` maps are keyed by it.
    #[serde(default)]
    pub name: String,
    /// The port on endpoints when their `ports` map does not name this port (SE-4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// `ServiceEntry.Location`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ServiceLocation {
    /// Outside the mesh: no auto mTLS (the default).
    #[default]
    MeshExternal,
    /// Part of the mesh: auto mTLS, endpoints have identities.
    MeshInternal,
}

/// `ServiceEntry.Resolution` (SE-3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Resolution {
    /// No endpoints of its own: traffic goes to the requested address (the default).
    #[default]
    None,
    /// Endpoints are the listed addresses.
    Static,
    /// Endpoints are resolved through DNS; all addresses are used.
    Dns,
    /// Resolved through DNS; the first address is used for each new connection.
    DnsRoundRobin,
    /// The request's own host name is resolved per request.
    DynamicDns,
}
