//! X.509-SVID verification: does this certificate chain prove this SPIFFE ID?
//!
//! Why: a peer authenticates with an X.509-SVID (SEMANTICS.md SPIFFE-4..SPIFFE-8). The leaf
//! carries **exactly one** URI SAN, the SPIFFE ID, with a non-empty path (SPIFFE-4, SPIFFE-7); it
//! is not a CA and its key usage has `digitalSignature` and neither `keyCertSign` nor `cRLSign`
//! (SPIFFE-5, SPIFFE-6); its chain must build (RFC 5280, via rustls-webpki) to a CA in the trust
//! bundle **of the leaf's own trust domain** (SPIFFE-8), within every validity window. Each
//! failure maps to its own [`SvidError`] variant so handshake tests and logs can tell them apart.
//!
//! ```
//! use mesh_identity::ca::{DevCa, DEFAULT_SVID_TTL};
//! use mesh_identity::spiffe::{SpiffeId, TrustDomain};
//! use mesh_identity::svid::{verify_svid, SvidError};
//! use rustls_pki_types::UnixTime;
//!
//! let ca = DevCa::new(&TrustDomain::new("cluster.local")?, DEFAULT_SVID_TTL * 365)?;
//! let id = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/web")?;
//! let svid = ca.issue(&id, DEFAULT_SVID_TTL)?;
//!
//! let verified = verify_svid(svid.chain(), &ca.bundle(), UnixTime::now())?;
//! assert_eq!(verified.spiffe_id, id);
//!
//! // The CA certificate itself is never a peer's leaf (SPIFFE-6).
//! let err = verify_svid(&[ca.cert_der().clone()], &ca.bundle(), UnixTime::now());
//! assert_eq!(err.unwrap_err(), SvidError::LeafIsCa);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::spiffe::{SpiffeId, SpiffeIdError, TrustDomain};

/// Why a certificate chain is not a valid X.509-SVID; one variant per failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SvidError {
    /// A certificate of the chain is past its `notAfter`.
    #[error("certificate has expired")]
    Expired,
    /// A certificate of the chain is before its `notBefore`.
    #[error("certificate is not yet valid")]
    NotYetValid,
    /// The bundle holds no CA for the leaf's trust domain (SPIFFE-8).
    #[error("no trust bundle for trust domain {0}")]
    UnknownTrustDomain(TrustDomain),
    /// The leaf has no URI SAN (SPIFFE-4).
    #[error("certificate has no URI SAN")]
    NoUriSan,
    /// The leaf has two or more URI SANs (SPIFFE-4).
    #[error("certificate has more than one URI SAN")]
    MultipleUriSans,
    /// The URI SAN is not a SPIFFE ID (SPIFFE-1).
    #[error("URI SAN is not a valid SPIFFE ID: {0}")]
    InvalidSpiffeId(SpiffeIdError),
    /// The leaf's SPIFFE ID has no path: a trust-domain ID does not name a workload (SPIFFE-7).
    #[error("SPIFFE ID {0} has no path and cannot identify a workload")]
    EmptyPath(SpiffeId),
    /// The leaf is a CA certificate (SPIFFE-5, SPIFFE-6).
    #[error("leaf certificate is a CA")]
    LeafIsCa,
    /// The leaf's key usage is absent, lacks `digitalSignature`, or has `keyCertSign`/`cRLSign`.
    #[error("leaf key usage must have digitalSignature and neither keyCertSign nor cRLSign")]
    BadKeyUsage,
    /// Path validation to the trust domain's CAs failed (the webpki reason).
    #[error("certificate chain is not trusted: {0}")]
    UntrustedChain(String),
    /// A certificate or PEM input could not be parsed.
    #[error("malformed certificate: {0}")]
    Malformed(String),
}

/// Which side of a handshake the verified certificate belongs to; selects the extended key usage
/// required when the certificate has an EKU extension (SPIFFE-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Usage {
    /// A client certificate: `clientAuth` when EKU is present.
    Client,
    /// A server certificate: `serverAuth` when EKU is present.
    Server,
    /// Either `clientAuth` or `serverAuth` when EKU is present.
    #[default]
    Either,
}

/// CA certificates per trust domain: the roots an SVID chain must end in (SPIFFE-8).
#[derive(Clone, Default)]
pub struct TrustBundle {
    domains: BTreeMap<TrustDomain, Vec<Anchor>>,
}

#[derive(Clone)]
struct Anchor {
    der: CertificateDer<'static>,
    anchor: TrustAnchor<'static>,
}

impl fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (td, anchors) in &self.domains {
            m.entry(
                &td.as_str(),
                &format_args!("{} CA certificate(s)", anchors.len()),
            );
        }
        m.finish()
    }
}

impl TrustBundle {
    /// An empty bundle: trusts nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A bundle for one trust domain from PEM text holding one or more CA certificates.
    pub fn from_pem(trust_domain: TrustDomain, pem: &str) -> Result<Self, SvidError> {
        let mut bundle = Self::new();
        bundle.add_pem(trust_domain, pem)?;
        Ok(bundle)
    }

    /// Adds a DER CA certificate to a trust domain's roots.
    pub fn add_der(
        &mut self,
        trust_domain: TrustDomain,
        der: CertificateDer<'_>,
    ) -> Result<(), SvidError> {
        let anchor = to_anchor(der)?;
        self.domains.entry(trust_domain).or_default().push(anchor);
        Ok(())
    }

    /// Adds every `CERTIFICATE` block of `pem` to a trust domain's roots; returns how many.
    /// Nothing is added when any block is malformed or there is none.
    pub fn add_pem(&mut self, trust_domain: TrustDomain, pem: &str) -> Result<usize, SvidError> {
        let anchors = parse_pem_anchors(pem)?;
        let n = anchors.len();
        self.domains
            .entry(trust_domain)
            .or_default()
            .extend(anchors);
        Ok(n)
    }

    /// Replaces a trust domain's roots with `certs` (DER); an empty list removes the domain.
    pub fn replace(
        &mut self,
        trust_domain: TrustDomain,
        certs: &[CertificateDer<'_>],
    ) -> Result<(), SvidError> {
        let anchors = certs
            .iter()
            .map(|c| to_anchor(c.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        if anchors.is_empty() {
            self.domains.remove(&trust_domain);
        } else {
            self.domains.insert(trust_domain, anchors);
        }
        Ok(())
    }

    /// Replaces a trust domain's roots with the certificates of `pem`.
    pub fn replace_pem(&mut self, trust_domain: TrustDomain, pem: &str) -> Result<(), SvidError> {
        let anchors = parse_pem_anchors(pem)?;
        self.domains.insert(trust_domain, anchors);
        Ok(())
    }

    /// The CA certificates of a trust domain (empty if unknown).
    pub fn certificates(&self, trust_domain: &TrustDomain) -> Vec<CertificateDer<'static>> {
        self.domains
            .get(trust_domain)
            .map(|a| a.iter().map(|a| a.der.clone()).collect())
            .unwrap_or_default()
    }

    /// The webpki trust anchors of a trust domain, if known.
    pub fn anchors(&self, trust_domain: &TrustDomain) -> Option<Vec<TrustAnchor<'static>>> {
        self.domains
            .get(trust_domain)
            .map(|a| a.iter().map(|a| a.anchor.clone()).collect())
    }

    /// The trust domains with at least one CA.
    pub fn trust_domains(&self) -> impl Iterator<Item = &TrustDomain> {
        self.domains.keys()
    }

    /// Whether the bundle trusts nothing.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

fn to_anchor(der: CertificateDer<'_>) -> Result<Anchor, SvidError> {
    let der = der.into_owned();
    let anchor = webpki::anchor_from_trusted_cert(&der)
        .map_err(|e| SvidError::Malformed(format!("CA certificate: {e}")))?
        .to_owned();
    Ok(Anchor { der, anchor })
}

fn parse_pem_anchors(pem: &str) -> Result<Vec<Anchor>, SvidError> {
    let anchors = CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| {
            c.map_err(|e| SvidError::Malformed(format!("PEM: {e}")))
                .and_then(to_anchor)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if anchors.is_empty() {
        return Err(SvidError::Malformed("PEM holds no certificate".into()));
    }
    Ok(anchors)
}

/// A verified X.509-SVID: the peer's identity and when it stops being valid.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedSvid {
    /// The SPIFFE ID of the leaf's URI SAN.
    pub spiffe_id: SpiffeId,
    /// The leaf's `notBefore`.
    pub not_before: UnixTime,
    /// The leaf's `notAfter`.
    pub not_after: UnixTime,
}

/// Verifies `chain` (leaf first, then intermediates) as an X.509-SVID against `bundle` at `now`,
/// accepting either `clientAuth` or `serverAuth` EKU (SPIFFE-4..SPIFFE-8).
pub fn verify_svid(
    chain: &[CertificateDer<'_>],
    bundle: &TrustBundle,
    now: UnixTime,
) -> Result<VerifiedSvid, SvidError> {
    verify_svid_for(chain, bundle, now, Usage::Either)
}

/// [`verify_svid`] for one side of a handshake: `usage` picks the EKU required when present.
pub fn verify_svid_for(
    chain: &[CertificateDer<'_>],
    bundle: &TrustBundle,
    now: UnixTime,
    usage: Usage,
) -> Result<VerifiedSvid, SvidError> {
    let (leaf_der, intermediates) = chain
        .split_first()
        .ok_or_else(|| SvidError::Malformed("empty certificate chain".into()))?;
    let leaf = parse(leaf_der)?;
    check_leaf_shape(&leaf)?;
    let spiffe_id = leaf_spiffe_id(&leaf)?;
    let anchors = bundle
        .anchors(spiffe_id.trust_domain())
        .ok_or_else(|| SvidError::UnknownTrustDomain(spiffe_id.trust_domain().clone()))?;

    let validity = leaf.validity();
    let not_before = validity.not_before.timestamp();
    let not_after = validity.not_after.timestamp();
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now_secs < not_before {
        return Err(SvidError::NotYetValid);
    }
    if now_secs > not_after {
        return Err(SvidError::Expired);
    }

    let ee = webpki::EndEntityCert::try_from(leaf_der).map_err(map_webpki)?;
    let verify = |u: webpki::KeyUsage| {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            now,
            u,
            None,
            None,
        )
        .map(|_| ())
    };
    match usage {
        Usage::Client => verify(webpki::KeyUsage::client_auth()),
        Usage::Server => verify(webpki::KeyUsage::server_auth()),
        Usage::Either => verify(webpki::KeyUsage::server_auth()).or_else(|e| match e {
            webpki::Error::RequiredEkuNotFoundContext(_) => verify(webpki::KeyUsage::client_auth()),
            other => Err(other),
        }),
    }
    .map_err(map_webpki)?;

    Ok(VerifiedSvid {
        spiffe_id,
        not_before: unix_time(not_before),
        not_after: unix_time(not_after),
    })
}

/// Reads the SPIFFE ID of a (peer's) leaf certificate: exactly one URI SAN, a valid SPIFFE ID
/// with a non-empty path (SPIFFE-4, SPIFFE-7). Does not verify the chain.
pub fn spiffe_id_of(cert: &CertificateDer<'_>) -> Result<SpiffeId, SvidError> {
    leaf_spiffe_id(&parse(cert)?)
}

fn parse<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, SvidError> {
    match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(SvidError::Malformed(
            "trailing data after certificate".into(),
        )),
        Err(e) => Err(SvidError::Malformed(e.to_string())),
    }
}

fn malformed(e: impl fmt::Display) -> SvidError {
    SvidError::Malformed(e.to_string())
}

/// SPIFFE-5/6: not a CA; key usage present with digitalSignature, without keyCertSign/cRLSign.
fn check_leaf_shape(leaf: &X509Certificate<'_>) -> Result<(), SvidError> {
    if let Some(bc) = leaf.basic_constraints().map_err(malformed)?
        && bc.value.ca
    {
        return Err(SvidError::LeafIsCa);
    }
    let ku = leaf
        .key_usage()
        .map_err(malformed)?
        .ok_or(SvidError::BadKeyUsage)?;
    if !ku.value.digital_signature() || ku.value.key_cert_sign() || ku.value.crl_sign() {
        return Err(SvidError::BadKeyUsage);
    }
    Ok(())
}

/// SPIFFE-4/7: exactly one URI SAN, a SPIFFE ID with a path.
fn leaf_spiffe_id(leaf: &X509Certificate<'_>) -> Result<SpiffeId, SvidError> {
    let san = leaf
        .subject_alternative_name()
        .map_err(malformed)?
        .ok_or(SvidError::NoUriSan)?;
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(u) => Some(*u),
        _ => None,
    });
    let uri = uris.next().ok_or(SvidError::NoUriSan)?;
    if uris.next().is_some() {
        return Err(SvidError::MultipleUriSans);
    }
    let id = SpiffeId::parse(uri).map_err(SvidError::InvalidSpiffeId)?;
    if id.is_trust_domain_id() {
        return Err(SvidError::EmptyPath(id));
    }
    Ok(id)
}

fn map_webpki(e: webpki::Error) -> SvidError {
    match e {
        webpki::Error::CertExpired { .. } => SvidError::Expired,
        webpki::Error::CertNotValidYet { .. } => SvidError::NotYetValid,
        webpki::Error::CaUsedAsEndEntity => SvidError::LeafIsCa,
        webpki::Error::BadDer | webpki::Error::BadDerTime | webpki::Error::TrailingData(_) => {
            SvidError::Malformed(e.to_string())
        }
        other => SvidError::UntrustedChain(other.to_string()),
    }
}

fn unix_time(secs: i64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary bytes as a certificate are an error, never a panic (fuzz-style, STYLE 2.11).
        #[test]
        fn arbitrary_der_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let der = CertificateDer::from(bytes);
            prop_assert!(spiffe_id_of(&der).is_err());
            let bundle = TrustBundle::new();
            prop_assert!(verify_svid(std::slice::from_ref(&der), &bundle, UnixTime::now()).is_err());
            let mut b = TrustBundle::new();
            let _ = b.add_der(TrustDomain::new("td").unwrap(), der);
        }

        #[test]
        fn arbitrary_pem_never_panics(text in "[ -~\n]{0,200}") {
            let mut b = TrustBundle::new();
            let _ = b.add_pem(TrustDomain::new("td").unwrap(), &text);
            let _ = TrustBundle::from_pem(TrustDomain::new("td").unwrap(), &format!(
                "-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----\n"
            ));
        }
    }
}
