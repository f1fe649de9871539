//! `x-forwarded-client-cert` (XFCC) as an Istio sidecar builds it on the inbound side
//! (SEMANTICS HDR-5).
//!
//! Why: an app behind the mesh may want to know who called it without terminating TLS itself.
//! On an mTLS connection the server proxy appends one element for its hop
//! (`APPEND_FORWARD`): `By=<its own SPIFFE URI>;Hash=<SHA-256 of the peer's leaf, hex>;
//! Subject="<the peer's subject DN>";URI=<the peer's SPIFFE URI>` and `;DNS=<name>` for each DNS
//! SAN of the peer. On plaintext, any XFCC the client sent is removed (a proxy concern).
//!
//! ```
//! use mesh_identity::ca::{DevCa, DEFAULT_CA_TTL, DEFAULT_SVID_TTL};
//! use mesh_identity::{xfcc, SpiffeId, TrustDomain};
//!
//! let td = TrustDomain::new("cluster.local")?;
//! let ca = DevCa::new(&td, DEFAULT_CA_TTL)?;
//! let me = SpiffeId::istio(&td, "production", "payment-service-sa")?;
//! let caller = SpiffeId::istio(&td, "production", "order-service-sa")?;
//! let peer = ca.issue(&caller, DEFAULT_SVID_TTL)?;
//! let element = xfcc::element(&me, peer.cert_der())?;
//! assert!(element.starts_with("By=spiffe://cluster.local/ns/production/sa/payment-service-sa;Hash="));
//! assert!(element.ends_with("URI=spiffe://cluster.local/ns/production/sa/order-service-sa"));
//! let header = xfcc::append(None, &element)?;
//! assert_eq!(header.to_str()?, element);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::Write as _;

use http::HeaderValue;
use http::header::InvalidHeaderValue;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid_registry, oid2abbrev};

use crate::spiffe::SpiffeId;
use crate::svid::{SvidError, spiffe_id_of};

/// The header's name.
pub const HEADER: &str = "x-forwarded-client-cert";

/// This hop's element for a peer that presented `peer_leaf`, written by the proxy of `by`.
pub fn element(by: &SpiffeId, peer_leaf: &CertificateDer<'_>) -> Result<String, SvidError> {
    let peer = spiffe_id_of(peer_leaf)?;
    let cert = match x509_parser::parse_x509_certificate(peer_leaf.as_ref()) {
        Ok((_, c)) => c,
        Err(e) => return Err(SvidError::Malformed(e.to_string())),
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, peer_leaf.as_ref());
    let mut out = format!("By={by};Hash=");
    for b in digest.as_ref() {
        let _ = write!(out, "{b:02x}");
    }
    let _ = write!(out, ";Subject=\"{}\";URI={peer}", subject(&cert));
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                let _ = write!(out, ";DNS={dns}");
            }
        }
    }
    Ok(out)
}

/// The subject DN in RFC 2253 order (last RDN first), as Envoy prints it; empty for the empty
/// subject of Istio's workload certificates.
fn subject(cert: &x509_parser::certificate::X509Certificate<'_>) -> String {
    let registry = oid_registry();
    let mut parts = Vec::new();
    for rdn in cert
        .subject()
        .iter_rdn()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|a| {
                let key = oid2abbrev(a.attr_type(), registry)
                    .map(str::to_owned)
                    .unwrap_or_else(|_| a.attr_type().to_id_string());
                let value = a.as_str().unwrap_or_default();
                format!("{key}={}", escape_dn(value))
            })
            .collect();
        parts.push(attrs.join("+"));
    }
    parts.join(",")
}

/// RFC 2253 §2.4 escaping of an attribute value.
fn escape_dn(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == value.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The header value after appending `element` to `existing` (`APPEND_FORWARD`).
pub fn append(
    existing: Option<&HeaderValue>,
    element: &str,
) -> Result<HeaderValue, InvalidHeaderValue> {
    match existing.filter(|v| !v.is_empty()) {
        None => HeaderValue::from_str(element),
        Some(v) => {
            let mut bytes = Vec::with_capacity(v.len() + 1 + element.len());
            bytes.extend_from_slice(v.as_bytes());
            bytes.push(b',');
            bytes.extend_from_slice(element.as_bytes());
            HeaderValue::from_bytes(&bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{DEFAULT_CA_TTL, DEFAULT_SVID_TTL, DevCa};
    use crate::spiffe::TrustDomain;

    #[test]
    fn hdr5_element_carries_by_hash_subject_and_uri() {
        // SEMANTICS HDR-5 (pitfall): the element for an Istio-style SVID (empty subject).
        let td = TrustDomain::new("cluster.local").unwrap();
        let ca = DevCa::new(&td, DEFAULT_CA_TTL).unwrap();
        let by = SpiffeId::istio(&td, "prod", "pay").unwrap();
        let peer_id = SpiffeId::istio(&td, "prod", "order").unwrap();
        let peer = ca.issue(&peer_id, DEFAULT_SVID_TTL).unwrap();
        let e = element(&by, peer.cert_der()).unwrap();
        let hash: String = ring::digest::digest(&ring::digest::SHA256, peer.cert_der().as_ref())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hash.len(), 64);
        let subject = subject(
            &x509_parser::parse_x509_certificate(peer.cert_der())
                .unwrap()
                .1,
        );
        assert_eq!(
            e,
            format!(
                "By=spiffe://cluster.local/ns/prod/sa/pay;Hash={hash};Subject=\"{}\";URI=spiffe://cluster.local/ns/prod/sa/order",
                subject
            )
        );
    }

    #[test]
    fn append_forward_keeps_earlier_hops() {
        let first = HeaderValue::from_static("By=a;URI=b");
        assert_eq!(
            append(Some(&first), "By=c;URI=d").unwrap(),
            "By=a;URI=b,By=c;URI=d"
        );
        assert_eq!(append(None, "By=c").unwrap(), "By=c");
        assert!(append(None, "bad\nvalue").is_err());
    }

    #[test]
    fn dn_values_are_escaped() {
        // Once: a quote in a value is `\"`, never `\\"` (escape_dn is the only escaping).
        assert_eq!(escape_dn("say \"hi\""), "say \\\"hi\\\"");
        assert_eq!(escape_dn("a,b"), "a\\,b");
        assert_eq!(escape_dn(" x "), "\\ x\\ ");
        assert_eq!(escape_dn("plain"), "plain");
    }
}
