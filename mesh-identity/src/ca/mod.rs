//! A development certificate authority that issues X.509-SVIDs. **Never for production.**
//!
//! Why: `mesh-proxy ca init` / `ca issue` (DESIGN.md) and the handshake tests need SVIDs shaped
//! exactly as SEMANTICS.md SPIFFE-4..SPIFFE-7 asks: one URI SAN holding the SPIFFE ID, `cA=false`,
//! `digitalSignature` + `keyEncipherment`, `serverAuth` + `clientAuth`, a 24 h lifetime by default
//! (SPIFFE-10, [`DEFAULT_SVID_TTL`]) and `notBefore` one minute in the past for clock skew. The
//! CA is a self-signed root (`cA=true`, `keyCertSign` + `cRLSign`) carrying its trust domain's ID
//! `spiffe://TD` as URI SAN (SPIFFE-6).
//!
//! This CA keeps its key in memory and in plain PEM, has no revocation, no rotation and no
//! hardware protection: it exists for demos and tests. Production meshes use their own PKI.
//!
//! ```
//! use mesh_identity::ca::{DevCa, DEFAULT_CA_TTL, DEFAULT_SVID_TTL};
//! use mesh_identity::spiffe::{SpiffeId, TrustDomain};
//! use mesh_identity::svid::verify_svid;
//! use rustls_pki_types::UnixTime;
//!
//! let ca = DevCa::new(&TrustDomain::new("cluster.local")?, DEFAULT_CA_TTL)?;
//! let id = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/web")?;
//! let svid = ca.issue(&id, DEFAULT_SVID_TTL)?;
//! assert!(svid.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! assert!(!format!("{svid:?}").contains(svid.key_pem()));
//!
//! // The CA survives a round trip through its PEM files (`ca init` then `ca issue`).
//! let again = DevCa::from_pem(ca.cert_pem(), ca.key_pem())?;
//! let svid = again.issue(&id, DEFAULT_SVID_TTL)?;
//! assert_eq!(verify_svid(svid.chain(), &ca.bundle(), UnixTime::now())?.spiffe_id, id);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::extensions::{GeneralName, ParsedExtension};

use crate::spiffe::{SpiffeId, TrustDomain};
use crate::svid::TrustBundle;

pub mod testing;

use testing::{BasicConstraintsSpec, EkuSpec, KeyUsageSpec, LeafSpec};

/// Default SVID lifetime: 24 h, as Istio's workload certificates (SPIFFE-10).
pub const DEFAULT_SVID_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default lifetime of a development CA: 8760 h (one year), `ca init --ttl`'s default.
pub const DEFAULT_CA_TTL: Duration = Duration::from_secs(8760 * 60 * 60);
/// How far in the past `notBefore` is set, so peers with slightly late clocks accept the cert.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Why the development CA could not be created, loaded or issue a certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// Key generation or certificate signing failed.
    #[error("certificate generation failed: {0}")]
    Generate(String),
    /// A PEM input could not be parsed.
    #[error("invalid PEM: {0}")]
    InvalidPem(String),
    /// The certificate given as CA is not one (`cA` is not true).
    #[error("certificate is not a CA")]
    NotACa,
    /// The CA certificate carries no SPIFFE ID naming its trust domain.
    #[error("CA certificate carries no SPIFFE trust-domain ID URI SAN")]
    MissingTrustDomain,
    /// The private key does not belong to the CA certificate.
    #[error("private key does not match the CA certificate")]
    KeyMismatch,
    /// The SPIFFE ID to issue is in another trust domain than the CA's (DESIGN.md `ca issue`).
    #[error("SPIFFE ID {id} is not in the CA's trust domain {ca}")]
    TrustDomainMismatch {
        /// The requested identity.
        id: SpiffeId,
        /// The CA's trust domain.
        ca: TrustDomain,
    },
    /// The validity window is empty or out of range.
    #[error("invalid validity window")]
    InvalidValidity,
    /// A subject alternative name could not be encoded.
    #[error("invalid subject alternative name {0:?}")]
    InvalidSan(String),
}

fn generate_err(e: rcgen::Error) -> CaError {
    CaError::Generate(e.to_string())
}

/// A development CA for one trust domain (never for production; see the module docs).
pub struct DevCa {
    trust_domain: TrustDomain,
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    not_after: SystemTime,
}

impl fmt::Debug for DevCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevCa")
            .field("trust_domain", &self.trust_domain)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl DevCa {
    /// Creates a self-signed CA for `trust_domain`, valid from a minute ago for `ttl`.
    pub fn new(trust_domain: &TrustDomain, ttl: Duration) -> Result<Self, CaError> {
        let now = SystemTime::now();
        let not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
        let not_after = now.checked_add(ttl).ok_or(CaError::InvalidValidity)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, trust_domain.as_str());
        dn.push(DnType::CommonName, "mesh-identity development CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.subject_alt_names = vec![uri_san(&trust_domain.spiffe_id().to_string())?];
        params.not_before = encodable(not_before)?.into();
        params.not_after = encodable(not_after)?.into();
        let key = KeyPair::generate().map_err(generate_err)?;
        let cert = params.self_signed(&key).map_err(generate_err)?;
        Ok(Self {
            trust_domain: trust_domain.clone(),
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
            not_after: truncate_secs(not_after),
        })
    }

    /// Loads a CA from its certificate and PKCS#8 key PEM (as `ca init` wrote them). The trust
    /// domain comes from the certificate's `spiffe://TD` URI SAN.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| CaError::InvalidPem(format!("CA certificate: {e}")))?;
        let key =
            KeyPair::from_pem(key_pem).map_err(|_| CaError::InvalidPem("CA private key".into()))?;
        let (_, x509) = x509_parser::parse_x509_certificate(cert_der.as_ref())
            .map_err(|e| CaError::InvalidPem(format!("CA certificate: {e}")))?;
        let is_ca = x509
            .basic_constraints()
            .map_err(|e| CaError::InvalidPem(e.to_string()))?
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(CaError::NotACa);
        }
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CaError::KeyMismatch);
        }
        let mut trust_domain = None;
        let mut params = CertificateParams::default();
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        for ext in x509.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    trust_domain = san.general_names.iter().find_map(|n| match n {
                        GeneralName::URI(u) => SpiffeId::parse(u).ok(),
                        _ => None,
                    });
                }
                ParsedExtension::SubjectKeyIdentifier(ski) => {
                    params.key_identifier_method = KeyIdMethod::PreSpecified(ski.0.to_vec());
                }
                _ => {}
            }
        }
        let trust_domain = trust_domain
            .ok_or(CaError::MissingTrustDomain)?
            .trust_domain()
            .clone();
        params.distinguished_name = rebuild_dn(x509.subject())?;
        let not_after = from_unix(x509.validity().not_after.timestamp());
        Ok(Self {
            trust_domain,
            issuer: Issuer::new(params, key),
            cert_der,
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            not_after,
        })
    }

    /// The CA's trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA's private key, PKCS#8 PEM. Secret: write it with restrictive permissions.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// A trust bundle holding this CA for its trust domain.
    pub fn bundle(&self) -> TrustBundle {
        let mut bundle = TrustBundle::new();
        // The certificate was produced or parsed by us; if webpki still refuses it as an anchor
        // the bundle stays empty and every verification fails closed.
        if let Err(e) = bundle.add_der(self.trust_domain.clone(), self.cert_der.clone()) {
            tracing::warn!(error = %e, "development CA certificate is not a usable trust anchor");
        }
        bundle
    }

    /// Issues an SVID for `id` valid from a minute ago for `ttl` ([`DEFAULT_SVID_TTL`] is the
    /// usual choice). `id` must be in the CA's trust domain and have a path (SPIFFE-7).
    pub fn issue(&self, id: &SpiffeId, ttl: Duration) -> Result<IssuedSvid, CaError> {
        let now = SystemTime::now();
        let not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(now);
        let not_after = now.checked_add(ttl).ok_or(CaError::InvalidValidity)?;
        self.issue_with_validity(id, not_before, not_after)
    }

    /// Issues an SVID for `id` with an explicit validity window (tests: expired, not yet valid).
    pub fn issue_with_validity(
        &self,
        id: &SpiffeId,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<IssuedSvid, CaError> {
        if id.trust_domain() != &self.trust_domain {
            return Err(CaError::TrustDomainMismatch {
                id: id.clone(),
                ca: self.trust_domain.clone(),
            });
        }
        if id.is_trust_domain_id() {
            return Err(CaError::InvalidSan(id.to_string()));
        }
        let mut spec = LeafSpec::svid(id);
        spec.not_before = not_before;
        spec.not_after = not_after;
        self.issue_custom(&spec)
    }

    /// Issues any leaf shape, including invalid SVIDs, for tests (see [`testing`]). No identity
    /// checks are made here.
    pub fn issue_custom(&self, spec: &LeafSpec) -> Result<IssuedSvid, CaError> {
        if spec.not_after <= spec.not_before {
            return Err(CaError::InvalidValidity);
        }
        let mut params = CertificateParams::default();
        // Like istiod's workload certificates: no subject, the identity is the URI SAN only
        // (so XFCC carries `Subject=""`, HDR-5).
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = spec
            .uri_sans
            .iter()
            .map(|u| uri_san(u))
            .chain(spec.dns_sans.iter().map(|d| {
                d.as_str()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|_| CaError::InvalidSan(d.clone()))
            }))
            .collect::<Result<_, _>>()?;
        params.is_ca = match spec.basic_constraints {
            BasicConstraintsSpec::Absent => IsCa::NoCa,
            BasicConstraintsSpec::NotCa => IsCa::ExplicitNoCa,
            BasicConstraintsSpec::Ca => IsCa::Ca(BasicConstraints::Unconstrained),
        };
        params.key_usages = match spec.key_usage {
            KeyUsageSpec::Svid => vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
            KeyUsageSpec::Absent => Vec::new(),
            KeyUsageSpec::NoDigitalSignature => vec![KeyUsagePurpose::KeyEncipherment],
            KeyUsageSpec::WithCertSign => vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
            ],
        };
        params.extended_key_usages = match spec.extended_key_usage {
            EkuSpec::Both => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            EkuSpec::ServerOnly => vec![ExtendedKeyUsagePurpose::ServerAuth],
            EkuSpec::ClientOnly => vec![ExtendedKeyUsagePurpose::ClientAuth],
            EkuSpec::Absent => Vec::new(),
        };
        params.use_authority_key_identifier_extension = true;
        params.not_before = encodable(spec.not_before)?.into();
        params.not_after = encodable(spec.not_after)?.into();
        let key = KeyPair::generate().map_err(generate_err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(generate_err)?;
        let der = cert.der().clone();
        Ok(IssuedSvid {
            chain: vec![der.clone()],
            cert_der: der,
            cert_pem: cert.pem(),
            key_der: PrivatePkcs8KeyDer::from(key.serialize_der()),
            key_pem: key.serialize_pem(),
            not_after: truncate_secs(spec.not_after),
        })
    }
}

/// A freshly issued certificate and its private key. `Debug` never prints the key.
pub struct IssuedSvid {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_der: PrivatePkcs8KeyDer<'static>,
    key_pem: String,
    chain: Vec<CertificateDer<'static>>,
    not_after: SystemTime,
}

impl fmt::Debug for IssuedSvid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedSvid")
            .field("cert_pem", &self.cert_pem)
            .field("key", &"<redacted>")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl IssuedSvid {
    /// The leaf certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The leaf certificate, PEM (`cert.pem`; the dev CA is a root, so this is the whole chain).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The chain to present in a handshake, leaf first (the dev CA issues directly: one cert).
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key, PKCS#8 PEM. Secret.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The private key, PKCS#8 DER, as rustls takes it. Secret.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }

    /// When the certificate expires (whole seconds, as encoded).
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }
}

fn uri_san(uri: &str) -> Result<SanType, CaError> {
    uri.try_into()
        .map(SanType::URI)
        .map_err(|_| CaError::InvalidSan(uri.to_owned()))
}

/// Rebuilds a subject name attribute by attribute so issued certificates name their issuer with
/// the same bytes (PrintableString/UTF8String kept); webpki chains by exact name match.
fn rebuild_dn(name: &x509_parser::x509::X509Name<'_>) -> Result<DistinguishedName, CaError> {
    let mut dn = DistinguishedName::new();
    for attr in name.iter_attributes() {
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| CaError::InvalidPem("unsupported subject attribute".into()))?
            .collect();
        let text = attr
            .as_str()
            .map_err(|_| CaError::InvalidPem("unsupported subject attribute value".into()))?;
        let value = if attr.attr_value().tag() == x509_parser::asn1_rs::Tag::PrintableString {
            DnValue::PrintableString(
                text.try_into()
                    .map_err(|_| CaError::InvalidPem("bad PrintableString".into()))?,
            )
        } else {
            DnValue::Utf8String(text.to_owned())
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

/// Latest time a certificate can encode: 9999-12-31T23:59:59Z.
const MAX_CERT_TIME_SECS: u64 = 253_402_300_799;

/// Certificate times must lie between the Unix epoch and the year 9999 (converting a time
/// outside that range for rcgen would panic).
fn encodable(t: SystemTime) -> Result<SystemTime, CaError> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) if d.as_secs() <= MAX_CERT_TIME_SECS => Ok(t),
        _ => Err(CaError::InvalidValidity),
    }
}

/// Certificates hold whole seconds; report what is encoded.
fn truncate_secs(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

fn from_unix(secs: i64) -> SystemTime {
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests;
