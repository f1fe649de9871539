//! `Sidecar`: which inbound ports a workload's proxy serves and which services it can reach.

use serde::{Deserialize, Serialize};

use super::virtual_service::wire::is_default;
use super::{ConnectionPoolSettings, Destination, WorkloadSelector};

/// `networking.istio.io` Sidecar spec.
///
/// ```
/// use mesh_core::model::{OutboundTrafficPolicyMode, Sidecar};
/// let sc: Sidecar = serde_json::from_str(r#"{
///     "egress": [{"hosts": ["./*", "istio-system/*"]}],
///     "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}
/// }"#).unwrap();
/// assert_eq!(sc.egress[0].hosts.len(), 2);
/// assert_eq!(sc.outbound_traffic_policy.unwrap().mode, OutboundTrafficPolicyMode::RegistryOnly);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Sidecar {
    /// Workloads the Sidecar applies to; absent = every workload in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Inbound listeners; absent = one per port of the workload's services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IstioIngressListener>,
    /// Outbound listeners and the hosts reachable through them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<IstioEgressListener>,
    /// Default connection pool for inbound connections to the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    /// What to do with traffic to hosts the proxy does not know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// `IstioIngressListener`: one inbound port of the workload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct IstioIngressListener {
    /// The port traffic arrives on (required).
    #[serde(default)]
    pub port: SidecarPort,
    /// Address to listen on instead of the workload's IP.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bind: String,
    /// How traffic reaches the listener.
    #[serde(default)]
    pub capture_mode: CaptureMode,
    /// Where the application listens (`127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT` or
    /// `unix://path`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_endpoint: String,
    /// TLS the listener terminates instead of Istio mTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Connection pool for this port (overrides `inboundConnectionPool`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// `IstioEgressListener`: outbound traffic and the hosts the workload may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct IstioEgressListener {
    /// The port the listener serves; absent = the catch-all listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// Address or `unix://` socket to listen on (needs `port`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bind: String,
    /// How traffic reaches the listener.
    #[serde(default)]
    pub capture_mode: CaptureMode,
    /// Hosts reachable, as `namespace/dnsName` (`*/`, `./`, `~/` and wildcards allowed) (required).
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `OutboundTrafficPolicy`: what happens to traffic for hosts outside the registry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct OutboundTrafficPolicy {
    /// Block or pass such traffic.
    #[serde(default)]
    pub mode: OutboundTrafficPolicyMode,
    /// Send such traffic to this proxy instead (only with `ALLOW_ANY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<Destination>,
}

/// `OutboundTrafficPolicy.Mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum OutboundTrafficPolicyMode {
    /// Only hosts in the registry are reachable.
    #[default]
    RegistryOnly,
    /// Unknown hosts are passed through.
    AllowAny,
}

/// `CaptureMode`: how traffic gets to a listener.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum CaptureMode {
    /// The environment's default.
    #[default]
    Default,
    /// Redirected by iptables.
    Iptables,
    /// Not captured: the application connects to the listener itself.
    None,
}

/// `SidecarPort`: a port of a Sidecar listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SidecarPort {
    /// The port number.
    #[serde(default)]
    pub number: u32,
    /// The protocol (`HTTP`, `HTTP2`, `GRPC`, `HTTPS`, `TLS`, `TCP`, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Name of the port.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Deprecated: has no effect.
    #[serde(default, skip_serializing_if = "is_default")]
    pub target_port: u32,
}

/// `ServerTLSSettings` (from Istio's Gateway API): TLS a listener terminates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerTlsSettings {
    /// Redirect plain HTTP to HTTPS (gateways only).
    #[serde(default, skip_serializing_if = "is_default")]
    pub https_redirect: bool,
    /// How TLS is terminated.
    #[serde(default)]
    pub mode: ServerTlsMode,
    /// Server certificate file (PEM).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_certificate: String,
    /// Private key file (PEM).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// CA bundle file (PEM) to verify client certificates with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
    /// Certificate revocation list file (PEM).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_crl: String,
    /// Secret holding certificate, key and CA (gateways only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_name: String,
    /// Up to two secrets (RSA and ECDSA) holding certificates (gateways only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_names: Vec<String>,
    /// Secret holding only the CA for client verification (gateways only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_cert_credential_name: String,
    /// Up to two certificate/key pairs given as files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<TlsCertificate>,
    /// Names accepted in client certificates' SAN.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// Accepted base64 SHA-256 hashes of client certificates' public keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_spki: Vec<String>,
    /// Accepted hex SHA-256 hashes of client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_hash: Vec<String>,
    /// Lowest TLS version accepted.
    #[serde(default)]
    pub min_protocol_version: TlsProtocol,
    /// Highest TLS version accepted.
    #[serde(default)]
    pub max_protocol_version: TlsProtocol,
    /// Cipher suites offered, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// Skip verifying client certificates (newer than Istio 1.28).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// `ServerTLSSettings.TLSmode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ServerTlsMode {
    /// Route by SNI without terminating TLS.
    #[default]
    Passthrough,
    /// Terminate TLS; no client certificate asked.
    Simple,
    /// Terminate TLS and require a client certificate.
    Mutual,
    /// Pass through with SNI-encoded routing (gateways only).
    AutoPassthrough,
    /// Terminate Istio mTLS with the workload's certificate.
    IstioMutual,
    /// Terminate TLS; verify a client certificate when one is sent.
    OptionalMutual,
}

/// `ServerTLSSettings.TLSCertificate`: a certificate and key given as files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsCertificate {
    /// Server certificate file (PEM).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_certificate: String,
    /// Private key file (PEM).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// CA bundle file (PEM).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
}

/// `ServerTLSSettings.TLSProtocol`: a TLS version bound.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[non_exhaustive]
pub enum TlsProtocol {
    /// The proxy's default.
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    TlsV1_0,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    TlsV1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    TlsV1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    TlsV1_3,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
        serde_saphyr::from_str(text)
    }

    #[test]
    fn enums_use_proto_names() {
        let l: IstioIngressListener = yaml(
            "port: {number: 9080, protocol: HTTP, name: http}\ncaptureMode: NONE\n\
             defaultEndpoint: 127.0.0.1:8080\n\
             tls: {mode: SIMPLE, minProtocolVersion: TLSV1_2, maxProtocolVersion: TLSV1_3}",
        )
        .unwrap();
        assert_eq!(l.capture_mode, CaptureMode::None);
        let tls = l.tls.unwrap();
        assert_eq!(tls.mode, ServerTlsMode::Simple);
        assert_eq!(tls.min_protocol_version, TlsProtocol::TlsV1_2);
        assert_eq!(
            serde_json::to_value(tls.max_protocol_version).unwrap(),
            "TLSV1_3"
        );
        let p: OutboundTrafficPolicy =
            yaml("mode: ALLOW_ANY\negressProxy: {host: egress}").unwrap();
        assert_eq!(p.mode, OutboundTrafficPolicyMode::AllowAny);
        assert_eq!(p.egress_proxy, Some(Destination::new("egress")));
    }

    #[test]
    fn selector_uses_labels_not_match_labels() {
        let s: Sidecar = yaml("workloadSelector: {labels: {app: ratings}}").unwrap();
        assert_eq!(s.workload_selector.unwrap().labels["app"], "ratings");
        assert!(yaml::<Sidecar>("workloadSelector: {matchLabels: {app: ratings}}").is_err());
        assert!(yaml::<Sidecar>("egress: [{hosts: ['./*'], localhostServerTls: {}}]").is_err());
    }
}
