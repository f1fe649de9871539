//! The certificate-level half of the mTLS handshake matrix: each SVID shape maps to one
//! `SvidError` (SPIFFE-4..SPIFFE-8).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, UnixTime};

use super::testing::{self, EkuSpec, KeyUsageSpec, LeafSpec};
use super::*;
use crate::svid::{SvidError, Usage, spiffe_id_of, verify_svid, verify_svid_for};

const HOUR: Duration = Duration::from_secs(3600);

fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).unwrap()
}

fn ca(name: &str) -> DevCa {
    DevCa::new(&td(name), DEFAULT_CA_TTL).unwrap()
}

fn web(ca: &DevCa) -> SpiffeId {
    SpiffeId::istio(ca.trust_domain(), "default", "web").unwrap()
}

fn now() -> UnixTime {
    UnixTime::now()
}

fn verify(svid: &IssuedSvid, ca: &DevCa) -> Result<SpiffeId, SvidError> {
    verify_svid(svid.chain(), &ca.bundle(), now()).map(|v| v.spiffe_id)
}

#[test]
fn valid_svid_verifies_for_both_roles() {
    let ca = ca("cluster.local");
    let id = web(&ca);
    let svid = ca.issue(&id, DEFAULT_SVID_TTL).unwrap();
    let v = verify_svid(svid.chain(), &ca.bundle(), now()).unwrap();
    assert_eq!(v.spiffe_id, id);
    let na = v.not_after.as_secs();
    let expected = svid
        .not_after()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(na, expected);
    let lifetime = na - v.not_before.as_secs();
    assert_eq!(lifetime, DEFAULT_SVID_TTL.as_secs() + CLOCK_SKEW.as_secs());
    for usage in [Usage::Client, Usage::Server, Usage::Either] {
        assert_eq!(
            verify_svid_for(svid.chain(), &ca.bundle(), now(), usage)
                .unwrap()
                .spiffe_id,
            id
        );
    }
    assert_eq!(spiffe_id_of(svid.cert_der()).unwrap(), id);
}

#[test]
fn expired() {
    let ca = ca("cluster.local");
    let past = SystemTime::now() - 48 * HOUR;
    let svid = ca
        .issue_with_validity(&web(&ca), past, past + HOUR)
        .unwrap();
    assert_eq!(verify(&svid, &ca), Err(SvidError::Expired));
}

#[test]
fn not_yet_valid() {
    let ca = ca("cluster.local");
    let future = SystemTime::now() + 2 * HOUR;
    let svid = ca
        .issue_with_validity(&web(&ca), future, future + HOUR)
        .unwrap();
    assert_eq!(verify(&svid, &ca), Err(SvidError::NotYetValid));
}

#[test]
fn wrong_trust_domain() {
    let ours = ca("cluster.local");
    let theirs = ca("other.example");
    let svid = theirs.issue(&web(&theirs), DEFAULT_SVID_TTL).unwrap();
    assert_eq!(
        verify(&svid, &ours),
        Err(SvidError::UnknownTrustDomain(td("other.example")))
    );
}

#[test]
fn chain_valid_under_another_domains_bundle_is_rejected() {
    // SPIFFE-8: the other domain's CA signs an ID claiming *our* trust domain; our bundle maps
    // our domain to our CA only, so the chain does not authenticate it.
    let ours = ca("cluster.local");
    let theirs = ca("other.example");
    let mut spec = LeafSpec::svid(&web(&ours));
    spec.uri_sans = vec![web(&ours).to_string()];
    let svid = theirs.issue_custom(&spec).unwrap();
    let mut bundle = ours.bundle();
    bundle
        .add_der(td("other.example"), theirs.cert_der().clone())
        .unwrap();
    let err = verify_svid(svid.chain(), &bundle, now()).unwrap_err();
    assert!(matches!(err, SvidError::UntrustedChain(_)), "{err:?}");
}

#[test]
fn unknown_root_of_same_trust_domain() {
    let ours = ca("cluster.local");
    let impostor = ca("cluster.local");
    let svid = impostor.issue(&web(&impostor), DEFAULT_SVID_TTL).unwrap();
    let err = verify(&svid, &ours).unwrap_err();
    assert!(matches!(err, SvidError::UntrustedChain(_)), "{err:?}");
}

#[test]
fn no_uri_san() {
    let ca = ca("cluster.local");
    let svid = testing::no_uri_san(&ca).unwrap();
    assert_eq!(verify(&svid, &ca), Err(SvidError::NoUriSan));
    assert_eq!(spiffe_id_of(svid.cert_der()), Err(SvidError::NoUriSan));
}

#[test]
fn two_uri_sans() {
    let ca = ca("cluster.local");
    let svid = testing::two_uri_sans(&ca).unwrap();
    assert_eq!(verify(&svid, &ca), Err(SvidError::MultipleUriSans));
    // Even if only one of them is a SPIFFE ID (SPIFFE-4).
    let mut spec = LeafSpec::svid(&web(&ca));
    spec.uri_sans.push("https://example.org/x".into());
    let svid = ca.issue_custom(&spec).unwrap();
    assert_eq!(verify(&svid, &ca), Err(SvidError::MultipleUriSans));
}

#[test]
fn invalid_and_pathless_spiffe_ids() {
    let ca = ca("cluster.local");
    let svid = testing::with_uri_san(&ca, "https://cluster.local/x").unwrap();
    assert_eq!(
        verify(&svid, &ca),
        Err(SvidError::InvalidSpiffeId(
            crate::spiffe::SpiffeIdError::WrongScheme
        ))
    );
    let svid = testing::with_uri_san(&ca, "spiffe://cluster.local").unwrap();
    assert_eq!(
        verify(&svid, &ca),
        Err(SvidError::EmptyPath(td("cluster.local").spiffe_id()))
    );
}

#[test]
fn ca_certificate_used_as_leaf() {
    let ca = ca("cluster.local");
    // The root itself, and a CA issued by it carrying a workload ID.
    let own = verify_svid(&[ca.cert_der().clone()], &ca.bundle(), now());
    assert_eq!(own.unwrap_err(), SvidError::LeafIsCa);
    let svid = testing::ca_as_leaf(&ca).unwrap();
    assert_eq!(verify(&svid, &ca), Err(SvidError::LeafIsCa));
}

#[test]
fn bad_key_usages() {
    let ca = ca("cluster.local");
    for ku in [
        KeyUsageSpec::Absent,
        KeyUsageSpec::NoDigitalSignature,
        KeyUsageSpec::WithCertSign,
    ] {
        let svid = testing::with_key_usage(&ca, ku).unwrap();
        assert_eq!(verify(&svid, &ca), Err(SvidError::BadKeyUsage), "{ku:?}");
    }
}

#[test]
fn basic_constraints_absent_is_accepted() {
    let ca = ca("cluster.local");
    let mut spec = LeafSpec::svid(&web(&ca));
    spec.basic_constraints = testing::BasicConstraintsSpec::Absent;
    let svid = ca.issue_custom(&spec).unwrap();
    assert_eq!(verify(&svid, &ca), Ok(web(&ca)));
}

#[test]
fn eku_selects_role() {
    let ca = ca("cluster.local");
    let bundle = ca.bundle();
    let server = testing::with_eku(&ca, EkuSpec::ServerOnly).unwrap();
    assert!(verify_svid_for(server.chain(), &bundle, now(), Usage::Server).is_ok());
    assert!(verify_svid_for(server.chain(), &bundle, now(), Usage::Either).is_ok());
    let err = verify_svid_for(server.chain(), &bundle, now(), Usage::Client).unwrap_err();
    assert!(matches!(err, SvidError::UntrustedChain(_)), "{err:?}");
    let client = testing::with_eku(&ca, EkuSpec::ClientOnly).unwrap();
    assert!(verify_svid_for(client.chain(), &bundle, now(), Usage::Either).is_ok());
    assert!(verify_svid_for(client.chain(), &bundle, now(), Usage::Server).is_err());
    let none = testing::with_eku(&ca, EkuSpec::Absent).unwrap();
    assert!(verify_svid_for(none.chain(), &bundle, now(), Usage::Client).is_ok());
}

#[test]
fn malformed_inputs() {
    let ca = ca("cluster.local");
    let bundle = ca.bundle();
    assert!(matches!(
        verify_svid(&[], &bundle, now()),
        Err(SvidError::Malformed(_))
    ));
    let junk = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff]);
    assert!(matches!(
        verify_svid(std::slice::from_ref(&junk), &bundle, now()),
        Err(SvidError::Malformed(_))
    ));
    assert!(matches!(spiffe_id_of(&junk), Err(SvidError::Malformed(_))));
    let mut b = TrustBundle::new();
    assert!(matches!(
        b.add_pem(td("x"), "not pem"),
        Err(SvidError::Malformed(_))
    ));
    assert!(b.is_empty());
}

#[test]
fn issue_rules() {
    let ca = ca("cluster.local");
    let foreign = SpiffeId::parse("spiffe://other.example/ns/a/sa/b").unwrap();
    assert!(matches!(
        ca.issue(&foreign, DEFAULT_SVID_TTL),
        Err(CaError::TrustDomainMismatch { .. })
    ));
    assert!(matches!(
        ca.issue(&td("cluster.local").spiffe_id(), DEFAULT_SVID_TTL),
        Err(CaError::InvalidSan(_))
    ));
    assert_eq!(
        ca.issue(&web(&ca), Duration::from_secs(u64::MAX / 4))
            .unwrap_err(),
        CaError::InvalidValidity
    );
    assert_eq!(
        DevCa::new(&td("x"), Duration::from_secs(400_000 * 365 * 86_400)).unwrap_err(),
        CaError::InvalidValidity
    );
    let t = SystemTime::now();
    assert_eq!(
        ca.issue_with_validity(&web(&ca), t, t).unwrap_err(),
        CaError::InvalidValidity
    );
}

#[test]
fn secrets_stay_out_of_debug() {
    let ca = ca("cluster.local");
    let svid = ca.issue(&web(&ca), DEFAULT_SVID_TTL).unwrap();
    let key_body = |pem: &str| pem.lines().nth(1).unwrap_or_default().to_owned();
    let svid_dbg = format!("{svid:?}");
    assert!(!svid_dbg.contains(&key_body(svid.key_pem())));
    assert!(svid_dbg.contains("redacted"));
    assert!(!format!("{ca:?}").contains(&key_body(ca.key_pem())));
    assert!(matches!(
        svid.key_der(),
        rustls_pki_types::PrivateKeyDer::Pkcs8(_)
    ));
}

#[test]
fn from_pem_round_trip_and_errors() {
    let ca = ca("cluster.local");
    let loaded = DevCa::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
    assert_eq!(loaded.trust_domain(), ca.trust_domain());
    assert_eq!(loaded.not_after(), ca.not_after());
    let svid = loaded.issue(&web(&ca), DEFAULT_SVID_TTL).unwrap();
    assert_eq!(verify(&svid, &ca), Ok(web(&ca)));
    // Bundle from PEM works the same as from DER.
    let bundle = TrustBundle::from_pem(td("cluster.local"), ca.cert_pem()).unwrap();
    assert_eq!(
        verify_svid(svid.chain(), &bundle, now()).unwrap().spiffe_id,
        web(&ca)
    );

    let other = self::ca("cluster.local");
    assert_eq!(
        DevCa::from_pem(ca.cert_pem(), other.key_pem()).unwrap_err(),
        CaError::KeyMismatch
    );
    assert_eq!(
        DevCa::from_pem(svid.cert_pem(), svid.key_pem()).unwrap_err(),
        CaError::NotACa
    );
    assert!(matches!(
        DevCa::from_pem("nope", ca.key_pem()),
        Err(CaError::InvalidPem(_))
    ));
    assert!(matches!(
        DevCa::from_pem(ca.cert_pem(), "nope"),
        Err(CaError::InvalidPem(_))
    ));
}

#[test]
fn bundle_replace_and_lookup() {
    let a = ca("cluster.local");
    let b = ca("cluster.local");
    let mut bundle = a.bundle();
    let svid = b.issue(&web(&b), DEFAULT_SVID_TTL).unwrap();
    assert!(verify_svid(svid.chain(), &bundle, now()).is_err());
    bundle
        .replace(td("cluster.local"), &[b.cert_der().clone()])
        .unwrap();
    assert!(verify_svid(svid.chain(), &bundle, now()).is_ok());
    assert_eq!(
        bundle.certificates(&td("cluster.local")),
        vec![b.cert_der().clone()]
    );
    assert_eq!(bundle.trust_domains().count(), 1);
    bundle.add_pem(td("cluster.local"), a.cert_pem()).unwrap();
    assert_eq!(bundle.certificates(&td("cluster.local")).len(), 2);
    bundle.replace(td("cluster.local"), &[]).unwrap();
    assert!(bundle.is_empty());
    assert!(format!("{bundle:?}").len() < 100);
}
