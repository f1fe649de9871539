//! rustls verifiers and configurations for mesh mTLS with X.509-SVIDs.
//!
//! Why: a mesh handshake authenticates both sides by SPIFFE identity, not by host name
//! (SEMANTICS.md SPIFFE-9). Each side presents its SVID; each chain is checked with
//! [`verify_svid_for`](crate::svid::verify_svid_for) against the trust bundle of the peer's own
//! trust domain (SPIFFE-4..SPIFFE-8) — `serverAuth` for the server, `clientAuth` for the
//! client. The client also checks the server's SPIFFE ID against the identities expected for the
//! destination ([`Expected`], SPIFFE-12); the server checks the client's chain only (who may call
//! is AuthorizationPolicy's job). [`client_config`] and [`server_config`] build rustls
//! configurations with TLS 1.2 and 1.3 and ALPN `h2`, `http/1.1` (SPIFFE-9), always on the
//! `ring` provider, never on a process-wide default. Failures surface as
//! [`rustls::Error::InvalidCertificate`]: `Expired`, `NotValidYet`, `UnknownIssuer`,
//! `BadEncoding`, or `Other` carrying a [`PeerVerifyError`].
//!
//! ```
//! use std::sync::Arc;
//! use mesh_identity::ca::{DevCa, DEFAULT_CA_TTL, DEFAULT_SVID_TTL};
//! use mesh_identity::spiffe::{SpiffeId, TrustDomain};
//! use mesh_identity::tls::{
//!     client_config, server_config, Expected, SpiffeClientVerifier, SpiffeServerVerifier,
//! };
//!
//! let td = TrustDomain::new("cluster.local")?;
//! let ca = DevCa::new(&td, DEFAULT_CA_TTL)?;
//! let bundle = Arc::new(ca.bundle());
//! let order = SpiffeId::istio(&td, "production", "order-service")?;
//! let payment = SpiffeId::istio(&td, "production", "payment-service")?;
//! let client_svid = ca.issue(&order, DEFAULT_SVID_TTL)?;
//! let server_svid = ca.issue(&payment, DEFAULT_SVID_TTL)?;
//!
//! // order-service calls payment-service and accepts only that identity (SPIFFE-12).
//! let verifier = SpiffeServerVerifier::new(bundle.clone(), Expected::Ids(vec![payment]));
//! let client = client_config(client_svid.chain().to_vec(), client_svid.key_der(), Arc::new(verifier))?;
//! assert_eq!(client.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
//!
//! // payment-service requires a client SVID from the bundle (STRICT).
//! let server = server_config(
//!     server_svid.chain().to_vec(),
//!     server_svid.key_der(),
//!     Arc::new(SpiffeClientVerifier::new(bundle)),
//! )?;
//! assert_eq!(server.alpn_protocols.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, CommonState, ServerConfig, SupportedProtocolVersion};

use crate::spiffe::SpiffeId;
use crate::svid::{TrustBundle, spiffe_id_of};

mod verifier;

#[cfg(test)]
mod tests;

pub use verifier::{PeerVerifyError, SpiffeClientVerifier, SpiffeServerVerifier};

/// TLS versions of a mesh handshake: 1.3 preferred, 1.2 accepted (SPIFFE-9).
pub static PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// ALPN protocols offered by both sides, in preference order (SPIFFE-9).
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Where a verifier gets the trust bundle for each handshake, so a reloaded bundle applies to the
/// next handshake without rebuilding the verifier.
pub trait BundleSource: fmt::Debug + Send + Sync {
    /// The bundle to verify the current handshake against.
    fn bundle(&self) -> Arc<TrustBundle>;
}

impl BundleSource for Arc<TrustBundle> {
    fn bundle(&self) -> Arc<TrustBundle> {
        Arc::clone(self)
    }
}

/// The server identities a client accepts (SPIFFE-12).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expected {
    /// Any SPIFFE ID whose SVID verifies against the bundle.
    Any,
    /// Only these SPIFFE IDs (the endpoint's service account and the ServiceEntry
    /// `subjectAltNames`, or the DestinationRule `subjectAltNames`, which replace them). An empty
    /// list means "no identity is known", which SPIFFE-12 treats as [`Expected::Any`].
    Ids(Vec<SpiffeId>),
}

impl Expected {
    /// Whether a verified server ID is acceptable.
    pub fn accepts(&self, id: &SpiffeId) -> bool {
        match self {
            Self::Any => true,
            Self::Ids(ids) => ids.is_empty() || ids.contains(id),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ids(ids) if !ids.is_empty() => {
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{id}")?;
                }
                Ok(())
            }
            _ => f.write_str("any"),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn alpn() -> Vec<Vec<u8>> {
    ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect()
}

/// A client configuration presenting `chain` (leaf first) with `key` and verifying the server
/// with `verifier`; TLS 1.2 and 1.3, ALPN `h2` and `http/1.1` (SPIFFE-9).
pub fn client_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    verifier: Arc<SpiffeServerVerifier>,
) -> Result<ClientConfig, rustls::Error> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = alpn();
    Ok(config)
}

/// A server configuration presenting `chain` (leaf first) with `key` and verifying clients with
/// `verifier`; TLS 1.2 and 1.3, ALPN `h2` and `http/1.1` (SPIFFE-9).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    verifier: Arc<SpiffeClientVerifier>,
) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn();
    Ok(config)
}

/// The SPIFFE ID of the peer's leaf certificate, once the handshake has verified it; `None`
/// before that, when the peer sent no certificate, or when the leaf holds no single SPIFFE ID.
pub fn peer_spiffe_id(conn: &CommonState) -> Option<SpiffeId> {
    if conn.is_handshaking() {
        return None;
    }
    conn.peer_certificates()?
        .first()
        .and_then(|leaf| spiffe_id_of(leaf).ok())
}
