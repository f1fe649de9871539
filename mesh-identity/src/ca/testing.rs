//! Certificate shapes for tests, valid and deliberately broken.
//!
//! Why: the mTLS handshake matrix (SEMANTICS.md SPIFFE-4..SPIFFE-9) needs certificates that break
//! one rule each: no URI SAN, two URI SANs, a CA as leaf, bad key usage, expired. [`LeafSpec`]
//! describes the leaf; [`DevCa::issue_custom`](super::DevCa::issue_custom) signs it; the
//! functions below are the shapes the tests use. Not for production, like the dev CA itself.
//!
//! ```
//! use mesh_identity::ca::{testing, DevCa, DEFAULT_CA_TTL};
//! use mesh_identity::spiffe::TrustDomain;
//! use mesh_identity::svid::{verify_svid, SvidError};
//! use rustls_pki_types::UnixTime;
//!
//! let ca = DevCa::new(&TrustDomain::new("cluster.local")?, DEFAULT_CA_TTL)?;
//! let svid = testing::no_uri_san(&ca)?;
//! let err = verify_svid(svid.chain(), &ca.bundle(), UnixTime::now()).unwrap_err();
//! assert_eq!(err, SvidError::NoUriSan);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::SystemTime;

use super::{CLOCK_SKEW, CaError, DEFAULT_SVID_TTL, DevCa, IssuedSvid};
use crate::spiffe::{SpiffeId, TrustDomain};

/// The basic constraints extension of a test leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BasicConstraintsSpec {
    /// No extension (RFC 5280: not a CA; accepted, SPIFFE-5).
    Absent,
    /// `cA=false`, as SVIDs should carry.
    NotCa,
    /// `cA=true`: a CA certificate, never a valid leaf (SPIFFE-6).
    Ca,
}

/// The key usage extension of a test leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyUsageSpec {
    /// `digitalSignature` + `keyEncipherment`: a proper SVID.
    Svid,
    /// No key usage extension.
    Absent,
    /// `keyEncipherment` only.
    NoDigitalSignature,
    /// `digitalSignature` + `keyCertSign` + `cRLSign`.
    WithCertSign,
}

/// The extended key usage extension of a test leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EkuSpec {
    /// `serverAuth` + `clientAuth`: a proper SVID.
    Both,
    /// `serverAuth` only.
    ServerOnly,
    /// `clientAuth` only.
    ClientOnly,
    /// No EKU extension.
    Absent,
}

/// The shape of a leaf certificate for [`DevCa::issue_custom`]; [`LeafSpec::svid`] is a proper
/// SVID, and each field can be changed to break one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeafSpec {
    /// URI SANs, in order (a proper SVID has exactly one, its SPIFFE ID).
    pub uri_sans: Vec<String>,
    /// DNS SANs (ignored for identity, SPIFFE-4).
    pub dns_sans: Vec<String>,
    /// Basic constraints.
    pub basic_constraints: BasicConstraintsSpec,
    /// Key usage.
    pub key_usage: KeyUsageSpec,
    /// Extended key usage.
    pub extended_key_usage: EkuSpec,
    /// `notBefore`.
    pub not_before: SystemTime,
    /// `notAfter`.
    pub not_after: SystemTime,
}

impl LeafSpec {
    /// A proper SVID for `id`, valid from a minute ago for [`DEFAULT_SVID_TTL`].
    pub fn svid(id: &SpiffeId) -> Self {
        let now = SystemTime::now();
        Self {
            uri_sans: vec![id.to_string()],
            dns_sans: Vec::new(),
            basic_constraints: BasicConstraintsSpec::NotCa,
            key_usage: KeyUsageSpec::Svid,
            extended_key_usage: EkuSpec::Both,
            not_before: now.checked_sub(CLOCK_SKEW).unwrap_or(now),
            not_after: now.checked_add(DEFAULT_SVID_TTL).unwrap_or(now),
        }
    }
}

/// The identity the helpers below use: `spiffe://TD/ns/default/sa/test` in the CA's domain.
pub fn test_id(trust_domain: &TrustDomain) -> Result<SpiffeId, CaError> {
    SpiffeId::istio(trust_domain, "default", "test").map_err(|e| CaError::InvalidSan(e.to_string()))
}

fn issue_with(ca: &DevCa, edit: impl FnOnce(&mut LeafSpec)) -> Result<IssuedSvid, CaError> {
    let mut spec = LeafSpec::svid(&test_id(ca.trust_domain())?);
    edit(&mut spec);
    ca.issue_custom(&spec)
}

/// A leaf without any URI SAN (a DNS SAN only).
pub fn no_uri_san(ca: &DevCa) -> Result<IssuedSvid, CaError> {
    issue_with(ca, |s| {
        s.uri_sans.clear();
        s.dns_sans.push("web.default.svc".into());
    })
}

/// A leaf with two URI SANs, both SPIFFE IDs of the CA's trust domain.
pub fn two_uri_sans(ca: &DevCa) -> Result<IssuedSvid, CaError> {
    let other = format!("spiffe://{}/ns/default/sa/other", ca.trust_domain());
    issue_with(ca, |s| s.uri_sans.push(other))
}

/// A leaf whose single URI SAN is `uri`, verbatim (e.g. not a SPIFFE ID).
pub fn with_uri_san(ca: &DevCa, uri: &str) -> Result<IssuedSvid, CaError> {
    issue_with(ca, |s| s.uri_sans = vec![uri.to_owned()])
}

/// A CA certificate (`cA=true`, `keyCertSign`) issued by `ca`, with a workload SPIFFE ID.
pub fn ca_as_leaf(ca: &DevCa) -> Result<IssuedSvid, CaError> {
    issue_with(ca, |s| {
        s.basic_constraints = BasicConstraintsSpec::Ca;
        s.key_usage = KeyUsageSpec::WithCertSign;
    })
}

/// A proper SVID for the test identity, except for the key usage.
pub fn with_key_usage(ca: &DevCa, key_usage: KeyUsageSpec) -> Result<IssuedSvid, CaError> {
    issue_with(ca, |s| s.key_usage = key_usage)
}

/// A proper SVID for the test identity, except for the extended key usage.
pub fn with_eku(ca: &DevCa, eku: EkuSpec) -> Result<IssuedSvid, CaError> {
    issue_with(ca, |s| s.extended_key_usage = eku)
}
