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
use x509_parser::asn1_rs::{Any, Oid, Tag, ToDer};
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

use crate::spiffe::SpiffeId;
use crate::svid::{SvidError, spiffe_id_of};

/// The header's name.
pub const HEADER: &str = "x-forwarded-client-cert";

/// This hop's element for a peer that presented `peer_leaf`, written by the proxy of `by`:
/// `By=<by>;Hash=<lower-case hex SHA-256 of the leaf DER>;Subject="<subject DN>";URI=<peer
/// SPIFFE ID>` and `;DNS=<name>` per DNS SAN, in the order Envoy writes them (HDR-5).
///
/// The subject is printed like Envoy's `subjectPeerCertificate()` (BoringSSL
/// `X509_NAME_print_ex` with `XN_FLAG_RFC2253`): last RDN first, `,` between RDNs, `+` inside
/// one, short attribute names (`CN`, `O`, `OU`, `emailAddress`, …), RFC 2253 escapes
/// (`\"`, `\,`, …), control and non-ASCII bytes as `\XX`, and attributes of unknown type as
/// `<dotted OID>=#<hex DER>`. Istio's workload certificates have an empty subject, printed
/// `Subject=""`. The quotes around the subject are the only ones in the element; a `"` inside
/// the subject is always written `\"`.
///
/// Fails when `peer_leaf` is not a certificate with exactly one URI SAN holding a SPIFFE ID
/// (SPIFFE-4); a verified mTLS peer always has one.
pub fn element(by: &SpiffeId, peer_leaf: &CertificateDer<'_>) -> Result<String, SvidError> {
    let peer = spiffe_id_of(peer_leaf)?;
    let cert = match x509_parser::parse_x509_certificate(peer_leaf.as_ref()) {
        Ok((_, c)) => c,
        Err(e) => return Err(SvidError::Malformed(e.to_string())),
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, peer_leaf.as_ref());
    let mut out = format!("By={by};Hash=");
    hex_into(&mut out, digest.as_ref());
    let _ = write!(out, ";Subject=\"{}\";URI={peer}", subject(cert.subject()));
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                let _ = write!(out, ";DNS={dns}");
            }
        }
    }
    Ok(out)
}

fn hex_into(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// The DN in RFC 2253 order (last RDN first), as Envoy prints it; empty for an empty subject.
fn subject(name: &X509Name<'_>) -> String {
    let rdns: Vec<_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match short_name(attr.attr_type()) {
                Some(key) => {
                    out.push_str(key);
                    out.push('=');
                    match text(attr.attr_value()) {
                        Some(value) => escape_dn(&mut out, &value),
                        None => dump(&mut out, attr.attr_value()),
                    }
                }
                None => {
                    // Unknown attribute: numeric OID and the value's DER (XN_FLAG_DUMP_UNKNOWN_FIELDS).
                    let _ = write!(out, "{}=", attr.attr_type().to_id_string());
                    dump(&mut out, attr.attr_value());
                }
            }
        }
    }
    out
}

/// `#` and the hex DER of `value` (how RFC 2253 writes a value that is not a string).
fn dump(out: &mut String, value: &Any<'_>) {
    out.push('#');
    if let Ok(der) = value.to_der_vec() {
        hex_into(out, &der);
    }
}

/// OpenSSL/BoringSSL short names of the attributes found in certificate subjects.
fn short_name(oid: &Oid<'_>) -> Option<&'static str> {
    let name = match oid.to_id_string().as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    };
    Some(name)
}

/// A string value as UTF-8 bytes; `None` for values that are not strings (dumped instead).
fn text(value: &Any<'_>) -> Option<Vec<u8>> {
    let data = value.data;
    match value.tag() {
        Tag::Utf8String => std::str::from_utf8(data)
            .ok()
            .map(|s| s.as_bytes().to_vec()),
        // One byte per character, read as Latin-1 like BoringSSL does.
        Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString
        | Tag::TeletexString => Some(
            data.iter()
                .map(|&b| char::from(b))
                .collect::<String>()
                .into_bytes(),
        ),
        Tag::BmpString => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok().map(String::into_bytes)
        }
        Tag::UniversalString => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect::<Option<String>>()
                .map(String::into_bytes)
        }
        _ => None,
    }
}

/// RFC 2253 §2.4 escaping of an attribute value's UTF-8 bytes, as BoringSSL does it with
/// `ASN1_STRFLGS_RFC2253`: `\` before `,+"\<>;`, a leading `#` or space and a trailing space;
/// control characters and bytes above 0x7f as `\XX`.
fn escape_dn(out: &mut String, value: &[u8]) {
    let last = value.len().saturating_sub(1);
    for (i, &b) in value.iter().enumerate() {
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            0..=0x1f | 0x7f..=0xff => {
                let _ = write!(out, "\\{b:02X}");
            }
            _ => out.push(char::from(b)),
        }
    }
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
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    use super::*;
    use crate::ca::testing::LeafSpec;
    use crate::ca::{DEFAULT_CA_TTL, DEFAULT_SVID_TTL, DevCa};
    use crate::spiffe::TrustDomain;

    /// SHA-256 (FIPS 180-4) written out here, so the `Hash=` value is checked against an
    /// implementation other than the one `element` uses.
    fn sha256_hex(message: &[u8]) -> String {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
            0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
            0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
            0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
            0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
            0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
            0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
            0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2,
        ];
        let mut h: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut data = message.to_vec();
        data.push(0x80);
        while data.len() % 64 != 56 {
            data.push(0);
        }
        data.extend_from_slice(&(message.len() as u64 * 8).to_be_bytes());
        for block in data.chunks_exact(64) {
            let mut w = [0u32; 64];
            for (i, word) in block.chunks_exact(4).enumerate() {
                w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
            for i in 0..64 {
                let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                let ch = (e & f) ^ (!e & g);
                let t1 = hh
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[i])
                    .wrapping_add(w[i]);
                let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                let t2 = s0.wrapping_add(maj);
                hh = g;
                g = f;
                f = e;
                e = d.wrapping_add(t1);
                d = c;
                c = b;
                b = a;
                a = t1.wrapping_add(t2);
            }
            for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
                *x = x.wrapping_add(y);
            }
        }
        h.iter().map(|x| format!("{x:08x}")).collect()
    }

    fn ca() -> (TrustDomain, DevCa) {
        let td = TrustDomain::new("cluster.local").unwrap();
        let ca = DevCa::new(&td, DEFAULT_CA_TTL).unwrap();
        (td, ca)
    }

    /// A self-signed leaf with `dn` as subject and `uri` as its only URI SAN.
    fn leaf_with_subject(dn: DistinguishedName, uri: &str) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn the_test_sha256_matches_the_fips_vectors() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn hdr5_element_carries_by_hash_subject_and_uri() {
        // SEMANTICS HDR-5: the element for a DevCa SVID (subject O=<trust domain>).
        let (td, ca) = ca();
        let by = SpiffeId::istio(&td, "prod", "pay").unwrap();
        let peer_id = SpiffeId::istio(&td, "prod", "order").unwrap();
        let peer = ca.issue(&peer_id, DEFAULT_SVID_TTL).unwrap();
        let e = element(&by, peer.cert_der()).unwrap();
        let hash = sha256_hex(peer.cert_der().as_ref());
        assert_eq!(
            e,
            format!(
                "By=spiffe://cluster.local/ns/prod/sa/pay;Hash={hash};Subject=\"\";URI=spiffe://cluster.local/ns/prod/sa/order"
            )
        );
    }

    #[test]
    fn hdr5_dns_sans_follow_the_uri_in_order() {
        let (td, ca) = ca();
        let by = SpiffeId::istio(&td, "prod", "pay").unwrap();
        let peer_id = SpiffeId::istio(&td, "prod", "order").unwrap();
        let mut spec = LeafSpec::svid(&peer_id);
        spec.dns_sans = vec!["order.prod.svc".into(), "order".into()];
        let peer = ca.issue_custom(&spec).unwrap();
        let e = element(&by, peer.cert_der()).unwrap();
        assert!(
            e.ends_with(
                ";URI=spiffe://cluster.local/ns/prod/sa/order;DNS=order.prod.svc;DNS=order"
            ),
            "{e}"
        );
        assert!(e.contains(&format!(";Hash={};", sha256_hex(peer.cert_der()))));
    }

    #[test]
    fn hdr5_empty_subject_is_an_empty_quoted_string() {
        // Istio's workload certificates carry no subject.
        let by = SpiffeId::parse("spiffe://cluster.local/ns/prod/sa/pay").unwrap();
        let leaf = leaf_with_subject(
            DistinguishedName::new(),
            "spiffe://cluster.local/ns/prod/sa/order",
        );
        let e = element(&by, &leaf).unwrap();
        assert!(
            e.contains(";Subject=\"\";URI=spiffe://cluster.local/ns/prod/sa/order"),
            "{e}"
        );
    }

    #[test]
    fn hdr5_subject_is_rfc2253_last_rdn_first_and_escaped_once() {
        let by = SpiffeId::parse("spiffe://cluster.local/ns/prod/sa/pay").unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "US");
        dn.push(DnType::OrganizationName, "Acme, \"Inc\"");
        dn.push(DnType::CommonName, "order");
        let leaf = leaf_with_subject(dn, "spiffe://cluster.local/ns/prod/sa/order");
        let e = element(&by, &leaf).unwrap();
        assert!(
            e.contains(r#";Subject="CN=order,O=Acme\, \"Inc\",C=US";URI="#),
            "{e}"
        );
    }

    #[test]
    fn hdr5_unknown_attributes_are_dumped_and_bmp_strings_decoded() {
        use rcgen::string::BmpString;
        let by = SpiffeId::parse("spiffe://cluster.local/ns/prod/sa/pay").unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CustomDnType(vec![1, 2, 3, 4]), "x");
        dn.push(
            DnType::OrganizationalUnitName,
            rcgen::DnValue::BmpString(BmpString::try_from("Zürich").unwrap()),
        );
        let leaf = leaf_with_subject(dn, "spiffe://cluster.local/ns/prod/sa/order");
        let e = element(&by, &leaf).unwrap();
        assert!(
            e.contains(r#";Subject="OU=Z\C3\BCrich,1.2.3.4=#0c0178";"#),
            "{e}"
        );
    }

    #[test]
    fn hdr5_peer_without_spiffe_id_is_an_error() {
        let (td, ca) = ca();
        let by = SpiffeId::istio(&td, "prod", "pay").unwrap();
        let peer = crate::ca::testing::no_uri_san(&ca).unwrap();
        assert!(element(&by, peer.cert_der()).is_err());
        assert!(element(&by, &CertificateDer::from(vec![1, 2, 3])).is_err());
    }

    #[test]
    fn hdr5_append_forward_keeps_earlier_hops() {
        let first = HeaderValue::from_static("By=a;URI=b");
        assert_eq!(
            append(Some(&first), "By=c;URI=d").unwrap(),
            "By=a;URI=b,By=c;URI=d"
        );
        assert_eq!(append(None, "By=c").unwrap(), "By=c");
        assert_eq!(
            append(Some(&HeaderValue::from_static("")), "By=c").unwrap(),
            "By=c"
        );
        assert!(append(None, "bad\nvalue").is_err());
    }

    #[test]
    fn dn_values_are_escaped_like_boringssl() {
        let esc = |v: &str| {
            let mut out = String::new();
            escape_dn(&mut out, v.as_bytes());
            out
        };
        assert_eq!(esc("a,b+c;d<e>f\\g\"h"), r#"a\,b\+c\;d\<e\>f\\g\"h"#);
        assert_eq!(esc(" x "), "\\ x\\ ");
        assert_eq!(esc("#x#"), "\\#x#");
        assert_eq!(esc("a\tb"), "a\\09b");
        assert_eq!(esc("é"), "\\C3\\A9");
        assert_eq!(esc("plain"), "plain");
        assert_eq!(esc(""), "");
    }
}
