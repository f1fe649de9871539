//! The workload's own SVID and trust bundle, swappable while serving (SEMANTICS SPIFFE-3,
//! SPIFFE-10).
//!
//! Why: workload certificates live 24 hours and are replaced at half life; a proxy or a Rust
//! server must pick up the new one for **new** handshakes without a restart, while connections
//! already open keep the certificate they were made with. [`CertStore`] holds the current
//! [`Credentials`] and [`TrustBundle`] behind an atomic pointer; the rustls configurations it
//! builds ([`CertStore::server_config`], [`CertStore::client_config`]) read it at every
//! handshake, so one `replace` is all a rotation takes. [`PemFiles`] loads `--cert --key --ca`
//! and tells by a fingerprint when they changed. Key material never appears in `Debug` output
//! or errors.
//!
//! ```
//! use mesh_identity::ca::{DevCa, DEFAULT_CA_TTL, DEFAULT_SVID_TTL};
//! use mesh_identity::credentials::{CertStore, ClientAuth, Credentials};
//! use mesh_identity::{SpiffeId, TrustDomain};
//!
//! let td = TrustDomain::new("cluster.local")?;
//! let ca = DevCa::new(&td, DEFAULT_CA_TTL)?;
//! let id = SpiffeId::istio(&td, "production", "payment-service-sa")?;
//! let store = CertStore::new(Credentials::from_issued(&ca.issue(&id, DEFAULT_SVID_TTL)?)?, ca.bundle());
//! let server = store.server_config(ClientAuth::Required)?;
//! // Rotation: the next handshake presents the new certificate.
//! store.replace_credentials(Credentials::from_issued(&ca.issue(&id, DEFAULT_SVID_TTL)?)?);
//! assert_eq!(store.credentials().spiffe_id(), &id);
//! # drop(server);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ca::IssuedSvid;
use crate::spiffe::{SpiffeId, TrustDomain};
use crate::svid::{SvidError, TrustBundle, spiffe_id_of};
use crate::tls::{
    ALPN_PROTOCOLS, BundleSource, Expected, PROTOCOL_VERSIONS, SpiffeClientVerifier,
    SpiffeServerVerifier,
};

/// Why credentials could not be loaded. Messages name files and causes, never key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No certificate in the PEM text.
    #[error("no certificate in {0}")]
    NoCertificate(String),
    /// No private key in the PEM text.
    #[error("no private key in {0}")]
    NoKey(String),
    /// The key is not one rustls can sign with.
    #[error("unusable private key: {0}")]
    InvalidKey(String),
    /// The leaf is not a valid SVID (no single SPIFFE ID), or the bundle is unusable.
    #[error(transparent)]
    Certificate(#[from] SvidError),
    /// The key does not belong to the leaf certificate.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
}

/// What `/config_dump` may show of a certificate: never key material.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertSummary {
    /// The SPIFFE ID (URI form).
    pub spiffe_id: String,
    /// The subject DN as the certificate has it (often empty for SVIDs).
    pub subject: String,
    /// The serial number, hex bytes separated by `:`.
    pub serial: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

/// One SVID with its key: what a workload presents.
#[derive(Clone)]
pub struct Credentials {
    key: Arc<CertifiedKey>,
    spiffe_id: SpiffeId,
    summary: CertSummary,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("spiffe_id", &self.summary.spiffe_id)
            .field("serial", &self.summary.serial)
            .field("not_after", &self.summary.not_after)
            .finish_non_exhaustive()
    }
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

impl Credentials {
    /// From PEM: the chain (leaf first) and the key (PKCS#8, SEC1 or PKCS#1).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CredentialError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| CredentialError::NoCertificate("the certificate PEM".into()))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|_| CredentialError::NoKey("the key PEM".into()))?;
        Self::from_der(chain, key)
    }

    /// From DER: the chain (leaf first) and the key.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, CredentialError> {
        let leaf = chain
            .first()
            .ok_or_else(|| CredentialError::NoCertificate("the chain".into()))?;
        let spiffe_id = spiffe_id_of(leaf)?;
        let summary = summarize(leaf, &spiffe_id)?;
        let signer = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| CredentialError::InvalidKey(e.to_string()))?;
        let key = CertifiedKey::new(chain, signer);
        match key.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(_) => return Err(CredentialError::KeyMismatch),
        }
        Ok(Self {
            key: Arc::new(key),
            spiffe_id,
            summary,
        })
    }

    /// From an SVID the development CA issued.
    pub fn from_issued(svid: &IssuedSvid) -> Result<Self, CredentialError> {
        Self::from_der(svid.chain().to_vec(), svid.key_der())
    }

    /// The SPIFFE ID of the leaf.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.key.cert
    }

    /// The chain and signing key as rustls uses them.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.key
    }

    /// What may be shown of the certificate.
    pub fn summary(&self) -> &CertSummary {
        &self.summary
    }

    /// When the certificate is due for replacement: half its lifetime (SPIFFE-10).
    pub fn rotation_at(&self) -> SystemTime {
        let s = &self.summary;
        let life = s
            .not_after
            .duration_since(s.not_before)
            .unwrap_or(Duration::ZERO);
        s.not_before + life / 2
    }

    /// Whether half the lifetime has passed at `now`.
    pub fn rotation_due(&self, now: SystemTime) -> bool {
        now >= self.rotation_at()
    }

    /// Whether the certificate has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now > self.summary.not_after
    }
}

impl CertSummary {
    /// The summary of any certificate (a trust-bundle CA, say): `spiffe_id` is its SPIFFE URI
    /// SAN, or empty when it has none.
    ///
    /// ```
    /// use mesh_identity::{DevCa, TrustDomain};
    /// use mesh_identity::credentials::CertSummary;
    /// let td = TrustDomain::new("cluster.local").unwrap();
    /// let ca = DevCa::new(&td, std::time::Duration::from_secs(3600)).unwrap();
    /// let roots = ca.bundle().certificates(&td);
    /// let summary = CertSummary::of(&roots[0]).unwrap();
    /// assert!(summary.not_after > summary.not_before);
    /// ```
    pub fn of(cert: &CertificateDer<'_>) -> Result<CertSummary, SvidError> {
        let id = crate::svid::spiffe_id_of(cert).ok();
        summarize_any(cert, id.as_ref())
    }
}

fn summarize(leaf: &CertificateDer<'_>, id: &SpiffeId) -> Result<CertSummary, SvidError> {
    summarize_any(leaf, Some(id))
}

fn summarize_any(
    leaf: &CertificateDer<'_>,
    id: Option<&SpiffeId>,
) -> Result<CertSummary, SvidError> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| SvidError::Malformed(e.to_string()))?;
    let validity = cert.validity();
    let at = |t: &x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
        } else {
            SystemTime::UNIX_EPOCH
        }
    };
    let serial = cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok(CertSummary {
        spiffe_id: id.map(ToString::to_string).unwrap_or_default(),
        subject: cert.subject().to_string(),
        serial,
        not_before: at(&validity.not_before),
        not_after: at(&validity.not_after),
    })
}

/// Whether a server asks the client for a certificate it must present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// mTLS: a client SVID from the bundle is required.
    Required,
    /// A client SVID is verified when presented; clients without one are accepted.
    Optional,
}

#[derive(Debug)]
struct Current {
    credentials: Arc<Credentials>,
    bundle: Arc<TrustBundle>,
}

/// The current credentials and trust bundle, replaced atomically (see the module docs).
#[derive(Clone)]
pub struct CertStore {
    inner: Arc<ArcSwap<Current>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("credentials", &self.inner.load().credentials)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// A store holding `credentials` and `bundle`.
    pub fn new(credentials: Credentials, bundle: TrustBundle) -> Self {
        Self {
            inner: Arc::new(ArcSwap::from_pointee(Current {
                credentials: Arc::new(credentials),
                bundle: Arc::new(bundle),
            })),
        }
    }

    /// The credentials new handshakes present.
    pub fn credentials(&self) -> Arc<Credentials> {
        Arc::clone(&self.inner.load().credentials)
    }

    /// The bundle new handshakes verify peers against.
    pub fn trust_bundle(&self) -> Arc<TrustBundle> {
        Arc::clone(&self.inner.load().bundle)
    }

    /// Replaces both; established connections are untouched.
    pub fn replace(&self, credentials: Credentials, bundle: TrustBundle) {
        self.inner.store(Arc::new(Current {
            credentials: Arc::new(credentials),
            bundle: Arc::new(bundle),
        }));
    }

    /// Replaces the credentials and keeps the bundle (atomically: a concurrent
    /// [`replace`](Self::replace) of the bundle is not lost).
    pub fn replace_credentials(&self, credentials: Credentials) {
        let credentials = Arc::new(credentials);
        self.inner.rcu(|current| Current {
            credentials: Arc::clone(&credentials),
            bundle: Arc::clone(&current.bundle),
        });
    }

    /// A server configuration presenting the current SVID at each handshake and verifying
    /// clients against the current bundle; TLS 1.2/1.3, ALPN `h2` and `http/1.1`.
    pub fn server_config(
        &self,
        client_auth: ClientAuth,
    ) -> Result<Arc<ServerConfig>, rustls::Error> {
        let verifier = match client_auth {
            ClientAuth::Required => SpiffeClientVerifier::new(self.clone()),
            ClientAuth::Optional => SpiffeClientVerifier::optional(self.clone()),
        };
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(PROTOCOL_VERSIONS)?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// A client configuration presenting the current SVID at each handshake and accepting
    /// servers whose SVID verifies against the current bundle and whose ID is `expected`;
    /// ALPN `alpn`.
    pub fn client_config(
        &self,
        expected: Expected,
        alpn: &[&[u8]],
    ) -> Result<Arc<ClientConfig>, rustls::Error> {
        let verifier = SpiffeServerVerifier::new(self.clone(), expected);
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(PROTOCOL_VERSIONS)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

impl BundleSource for CertStore {
    fn bundle(&self) -> Arc<TrustBundle> {
        self.trust_bundle()
    }
}

/// Hands rustls the store's current certificate at each handshake.
#[derive(Debug)]
struct Resolver(CertStore);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self.0.credentials().certified_key()))
    }
}

impl ResolvesClientCert for Resolver {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self.0.credentials().certified_key()))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `--cert --key --ca`: the SVID chain, its key and the trust bundle as PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PemFiles {
    /// The chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
    /// The CA certificates of the trust domain.
    pub ca: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, CredentialError> {
    std::fs::read(path).map_err(|source| CredentialError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl PemFiles {
    /// The three files.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>, ca: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            ca: ca.into(),
        }
    }

    /// Loads the credentials and the bundle of `trust_domain` (SPIFFE-8).
    pub fn load(
        &self,
        trust_domain: &TrustDomain,
    ) -> Result<(Credentials, TrustBundle), CredentialError> {
        let cert = read(&self.cert)?;
        let key = read(&self.key)?;
        let ca = read(&self.ca)?;
        let chain = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| CredentialError::NoCertificate(self.cert.display().to_string()))?;
        if chain.is_empty() {
            return Err(CredentialError::NoCertificate(
                self.cert.display().to_string(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&key)
            .map_err(|_| CredentialError::NoKey(self.key.display().to_string()))?;
        let credentials = Credentials::from_der(chain, key)?;
        let ca = String::from_utf8(ca)
            .map_err(|_| CredentialError::NoCertificate(self.ca.display().to_string()))?;
        let bundle = TrustBundle::from_pem(trust_domain.clone(), &ca)?;
        Ok((credentials, bundle))
    }

    /// A hash of the three files' current contents, to tell by polling when they changed
    /// (editors' rename-replace and Kubernetes secret symlink swaps included).
    pub fn fingerprint(&self) -> Result<u64, CredentialError> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for p in [&self.cert, &self.key, &self.ca] {
            read(p)?.hash(&mut h);
        }
        Ok(h.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{DEFAULT_CA_TTL, DEFAULT_SVID_TTL, DevCa};

    fn setup() -> (DevCa, SpiffeId) {
        let td = TrustDomain::new("cluster.local").unwrap();
        let ca = DevCa::new(&td, DEFAULT_CA_TTL).unwrap();
        let id = SpiffeId::istio(&td, "prod", "pay").unwrap();
        (ca, id)
    }

    #[test]
    fn rotation_is_due_at_half_life() {
        // SEMANTICS SPIFFE-10
        let (ca, id) = setup();
        let c = Credentials::from_issued(&ca.issue(&id, DEFAULT_SVID_TTL).unwrap()).unwrap();
        let s = c.summary();
        let half = s.not_before + s.not_after.duration_since(s.not_before).unwrap() / 2;
        assert_eq!(c.rotation_at(), half);
        assert!(!c.rotation_due(SystemTime::now()));
        assert!(c.rotation_due(half));
        assert!(!c.is_expired(SystemTime::now()));
        assert_eq!(c.spiffe_id(), &id);
        assert!(s.serial.contains(':') || s.serial.len() == 2);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let (ca, id) = setup();
        let svid = ca.issue(&id, DEFAULT_SVID_TTL).unwrap();
        let c = Credentials::from_issued(&svid).unwrap();
        let store = CertStore::new(c.clone(), ca.bundle());
        for text in [format!("{c:?}"), format!("{store:?}")] {
            assert!(!text.contains("PRIVATE KEY"), "{text}");
            assert!(!text.contains(&svid.key_pem()[30..60]), "{text}");
        }
    }

    #[test]
    fn pem_files_load_fingerprint_and_fail_clearly() {
        let (ca, id) = setup();
        let dir = tempfile::tempdir().unwrap();
        let svid = ca.issue(&id, DEFAULT_SVID_TTL).unwrap();
        std::fs::write(dir.path().join("cert.pem"), svid.cert_pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), svid.key_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        let files = PemFiles::new(
            dir.path().join("cert.pem"),
            dir.path().join("key.pem"),
            dir.path().join("ca.pem"),
        );
        let td = ca.trust_domain().clone();
        let (c, bundle) = files.load(&td).unwrap();
        assert_eq!(c.spiffe_id(), &id);
        assert!(!bundle.is_empty());
        let before = files.fingerprint().unwrap();
        let other = ca.issue(&id, DEFAULT_SVID_TTL).unwrap();
        std::fs::write(dir.path().join("cert.pem"), other.cert_pem()).unwrap();
        assert_ne!(files.fingerprint().unwrap(), before);
        // The key of another certificate.
        assert!(matches!(files.load(&td), Err(CredentialError::KeyMismatch)));
        // Garbage key: the error does not echo it.
        std::fs::write(
            dir.path().join("key.pem"),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = files.load(&td).unwrap_err();
        assert!(matches!(e, CredentialError::InvalidKey(_)), "{e:?}");
        let e = e.to_string();
        assert!(!e.contains("AAAA"), "{e}");
        // A missing file is named.
        let missing = PemFiles::new(dir.path().join("nope.pem"), "k", "c");
        let e = missing.load(&td).unwrap_err().to_string();
        assert!(e.contains("nope.pem"), "{e}");
    }

    #[test]
    fn from_pem_round_trip_and_errors_name_no_key_bytes() {
        let (ca, id) = setup();
        let svid = ca.issue(&id, DEFAULT_SVID_TTL).unwrap();
        let c = Credentials::from_pem(svid.cert_pem(), svid.key_pem()).unwrap();
        assert_eq!(c.spiffe_id(), &id);
        assert_eq!(c.chain(), svid.chain());
        assert_eq!(&c.certified_key().cert[0], svid.cert_der());
        // Garbage key: InvalidKey, and the message does not echo it.
        let garbage = "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END PRIVATE KEY-----\n";
        let e = Credentials::from_pem(svid.cert_pem(), garbage).unwrap_err();
        assert!(matches!(e, CredentialError::InvalidKey(_)), "{e:?}");
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains("AAECAwQFBgcICQ"), "{text}");
            assert!(!text.contains("[0, 1, 2, 3"), "{text}");
        }
        // No key at all / no certificate at all.
        assert!(matches!(
            Credentials::from_pem(svid.cert_pem(), "not pem"),
            Err(CredentialError::NoKey(_))
        ));
        assert!(matches!(
            Credentials::from_pem("", svid.key_pem()),
            Err(CredentialError::NoCertificate(_))
        ));
        // The key of another certificate (SPIFFE-3: we must hold the leaf's key).
        let other = ca.issue(&id, DEFAULT_SVID_TTL).unwrap();
        assert!(matches!(
            Credentials::from_der(svid.chain().to_vec(), other.key_der()),
            Err(CredentialError::KeyMismatch)
        ));
        // A leaf that is not an SVID.
        let bad = crate::ca::testing::two_uri_sans(&ca).unwrap();
        assert!(matches!(
            Credentials::from_issued(&bad),
            Err(CredentialError::Certificate(_))
        ));
    }

    #[test]
    fn summary_shows_what_config_dump_may_show() {
        let (ca, id) = setup();
        let svid = ca.issue(&id, DEFAULT_SVID_TTL).unwrap();
        let c = Credentials::from_issued(&svid).unwrap();
        let s = c.summary();
        assert_eq!(s.spiffe_id, "spiffe://cluster.local/ns/prod/sa/pay");
        assert_eq!(
            s.subject, "",
            "SVIDs have no subject, as istiod issues them"
        );
        assert!(
            s.serial
                .split(':')
                .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit())),
            "{}",
            s.serial
        );
        assert_eq!(s.not_after, svid.not_after());
        assert!(c.is_expired(s.not_after + Duration::from_secs(1)));
        assert!(!c.rotation_due(s.not_before));
    }

    #[test]
    fn replace_credentials_keeps_the_current_bundle() {
        let (ca, id) = setup();
        let c = Credentials::from_issued(&ca.issue(&id, DEFAULT_SVID_TTL).unwrap()).unwrap();
        let store = CertStore::new(c.clone(), TrustBundle::new());
        let clone = store.clone();
        clone.replace(c.clone(), ca.bundle());
        assert!(!store.trust_bundle().is_empty());
        let second = Credentials::from_issued(&ca.issue(&id, DEFAULT_SVID_TTL).unwrap()).unwrap();
        store.replace_credentials(second.clone());
        assert!(!store.trust_bundle().is_empty());
        assert_eq!(store.credentials().summary(), second.summary());
        assert!(!BundleSource::bundle(&store).is_empty());
    }

    #[test]
    fn pem_files_reject_an_empty_ca_file() {
        let (ca, id) = setup();
        let dir = tempfile::tempdir().unwrap();
        let svid = ca.issue(&id, DEFAULT_SVID_TTL).unwrap();
        std::fs::write(dir.path().join("cert.pem"), svid.cert_pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), svid.key_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), "").unwrap();
        let files = PemFiles::new(
            dir.path().join("cert.pem"),
            dir.path().join("key.pem"),
            dir.path().join("ca.pem"),
        );
        assert!(files.load(ca.trust_domain()).is_err());
        // An empty certificate file is named.
        std::fs::write(dir.path().join("cert.pem"), "").unwrap();
        let e = files.load(ca.trust_domain()).unwrap_err();
        assert!(
            matches!(e, CredentialError::NoCertificate(ref p) if p.contains("cert.pem")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn optional_client_auth_accepts_clients_without_a_certificate() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (ca, id) = setup();
        let store = CertStore::new(
            Credentials::from_issued(&ca.issue(&id, DEFAULT_SVID_TTL).unwrap()).unwrap(),
            ca.bundle(),
        );
        let serve = |auth: ClientAuth| {
            let acceptor = tokio_rustls::TlsAcceptor::from(store.server_config(auth).unwrap());
            async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                tokio::spawn(async move {
                    if let Ok((s, _)) = listener.accept().await
                        && let Ok(mut tls) = acceptor.accept(s).await
                    {
                        let mut buf = [0u8; 4];
                        if tls.read_exact(&mut buf).await.is_ok() {
                            let _ = tls.write_all(&buf).await;
                        }
                    }
                });
                addr
            }
        };
        let anonymous = || {
            let verifier =
                SpiffeServerVerifier::new(store.clone(), Expected::Ids(vec![id.clone()]));
            let config = ClientConfig::builder_with_provider(Arc::new(provider()))
                .with_protocol_versions(PROTOCOL_VERSIONS)
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        };
        let name = rustls_pki_types::ServerName::try_from("pay").unwrap();
        let echo = |addr| {
            let connector = anonymous();
            let name = name.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
                let mut tls = connector.connect(name, tcp).await.ok()?;
                tls.write_all(b"ping").await.ok()?;
                let mut buf = [0u8; 4];
                tls.read_exact(&mut buf).await.ok()?;
                Some(buf)
            }
        };
        let optional = serve(ClientAuth::Optional).await;
        assert_eq!(echo(optional).await, Some(*b"ping"));
        let required = serve(ClientAuth::Required).await;
        assert_eq!(echo(required).await, None);
        // The server offers ALPN h2 and http/1.1.
        let config = store.server_config(ClientAuth::Required).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let client = store
            .client_config(Expected::Ids(vec![id.clone()]), &[b"http/1.1"])
            .unwrap();
        assert_eq!(client.alpn_protocols, [b"http/1.1".to_vec()]);
    }

    #[tokio::test]
    async fn new_handshakes_use_the_replaced_certificate_and_old_connections_live_on() {
        // SEMANTICS SPIFFE-10 over real TLS on loopback.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (ca, id) = setup();
        let first = ca.issue(&id, DEFAULT_SVID_TTL).unwrap();
        let store = CertStore::new(Credentials::from_issued(&first).unwrap(), ca.bundle());
        let acceptor =
            tokio_rustls::TlsAcceptor::from(store.server_config(ClientAuth::Required).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(s).await {
                        let mut buf = [0u8; 4];
                        while tls.read_exact(&mut buf).await.is_ok() {
                            let _ = tls.write_all(&buf).await;
                        }
                    }
                });
            }
        });
        let td = ca.trust_domain().clone();
        let client_id = SpiffeId::istio(&td, "prod", "order").unwrap();
        let client_store = CertStore::new(
            Credentials::from_issued(&ca.issue(&client_id, DEFAULT_SVID_TTL).unwrap()).unwrap(),
            ca.bundle(),
        );
        let connect = || async {
            let config = client_store
                .client_config(Expected::Ids(vec![id.clone()]), &[b"h2"])
                .unwrap();
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio_rustls::TlsConnector::from(config)
                .connect(rustls_pki_types::ServerName::try_from("pay").unwrap(), tcp)
                .await
        };
        let mut old = connect().await.unwrap();
        assert_eq!(
            old.get_ref().1.peer_certificates().unwrap()[0],
            *first.cert_der()
        );
        let second = ca.issue(&id, DEFAULT_SVID_TTL).unwrap();
        store.replace_credentials(Credentials::from_issued(&second).unwrap());
        let new = connect().await.unwrap();
        assert_eq!(
            new.get_ref().1.peer_certificates().unwrap()[0],
            *second.cert_der()
        );
        old.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        old.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        // A bundle without the client's CA: new handshakes fail.
        let other = DevCa::new(&td, DEFAULT_CA_TTL).unwrap();
        store.replace(Credentials::from_issued(&second).unwrap(), other.bundle());
        let mut refused = connect().await;
        if let Ok(s) = refused.as_mut() {
            // TLS 1.3: the server's refusal arrives after the client finished.
            let _ = s.write_all(b"ping").await;
            let mut b = [0u8; 4];
            assert!(s.read_exact(&mut b).await.is_err());
        }
    }
}
