//! The proxy's identity and its TLS on both paths (SEMANTICS §4.5, §6, §8).
//!
//! - [`Identity`]: the proxy's SVID and trust bundle in a [`CertStore`], loaded from
//!   `--cert --key --ca` (polled every second and swapped in when the files change: new
//!   handshakes use the new certificate, open connections keep theirs) or issued by an
//!   in-process development CA and re-issued at half life (SPIFFE-10). Its SPIFFE ID must be
//!   the workload's own (`--trust-domain`, `--namespace`, `--service-account`, SPIFFE-3).
//! - [`UpstreamTls`]: per cluster and config version, how the outbound path secures a
//!   connection: DestinationRule `tls` (`ISTIO_MUTUAL`, `MUTUAL`, `SIMPLE`, `DISABLE`), else
//!   auto mTLS for `MESH_INTERNAL` endpoints (DR-18, DR-19), with the server identities expected
//!   for the chosen endpoint (SE-6, SPIFFE-12).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use mesh_core::endpoint::Endpoint;
use mesh_core::model::{ClientTlsMode, ClientTlsSettings, ServiceLocation};
use mesh_core::registry::{Cluster, Service};
use mesh_identity::credentials::{CertStore, ClientAuth, CredentialError, Credentials, PemFiles};
use mesh_identity::tls::{ALPN_PROTOCOLS, Expected};
use mesh_identity::{SpiffeId, TrustDomain};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::pool::{TlsOrigin, UpstreamVersion};
use crate::settings::{IdentitySource, ProxySettings};

/// The endpoint label that opts an endpoint in or out of auto mTLS (DR-19).
pub(crate) const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// How often `--cert/--key/--ca` are checked for changes.
const FILE_POLL: Duration = Duration::from_secs(1);

/// Why the proxy's identity could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// `--trust-domain` is not a valid trust domain.
    #[error("invalid --trust-domain: {0}")]
    TrustDomain(String),
    /// The workload's own SPIFFE ID cannot be formed.
    #[error("invalid workload identity: {0}")]
    Workload(String),
    /// The certificate files did not load.
    #[error("cannot load --cert/--key/--ca: {0}")]
    Files(#[from] CredentialError),
    /// The development CA could not issue.
    #[error("development CA: {0}")]
    Issue(String),
    /// The certificate names another workload (SPIFFE-3).
    #[error(
        "--cert is for {found}, but this workload is {expected} (--trust-domain, --namespace, --service-account)"
    )]
    Mismatch {
        /// The workload's SPIFFE ID.
        expected: String,
        /// The certificate's.
        found: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// The proxy's identity: its credentials, trust bundle and inbound server configuration.
pub(crate) struct Identity {
    pub(crate) store: CertStore,
    pub(crate) own: SpiffeId,
    pub(crate) trust_domain: TrustDomain,
    /// mTLS termination: a client SVID from the bundle is required (STRICT and the TLS side of
    /// PERMISSIVE, PA-4).
    pub(crate) server: Arc<ServerConfig>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("own", &self.own.to_string())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Sets up the identity `settings` ask for; `None` when there is none.
    pub(crate) fn load(settings: &ProxySettings) -> Result<Option<Arc<Self>>, IdentityError> {
        if matches!(settings.identity, IdentitySource::None) {
            return Ok(None);
        }
        let trust_domain = TrustDomain::new(&settings.trust_domain)
            .map_err(|e| IdentityError::TrustDomain(e.to_string()))?;
        let own = SpiffeId::istio(
            &trust_domain,
            &settings.namespace,
            &settings.service_account,
        )
        .map_err(|e| IdentityError::Workload(e.to_string()))?;
        let (credentials, bundle) = match &settings.identity {
            IdentitySource::None => return Ok(None),
            IdentitySource::Files { cert, key, ca } => {
                let files = pem_files(cert, key, ca);
                files.load(&trust_domain)?
            }
            IdentitySource::DevCa(ca) => (issue(ca, &own)?, ca.bundle()),
        };
        check_owner(&credentials, &own)?;
        let store = CertStore::new(credentials, bundle);
        let server = store.server_config(ClientAuth::Required)?;
        Ok(Some(Arc::new(Self {
            store,
            own,
            trust_domain,
            server,
        })))
    }

    /// The client configuration for `ISTIO_MUTUAL` towards servers with the `expected`
    /// identities, speaking `version`.
    fn istio_client(
        &self,
        expected: Expected,
        version: UpstreamVersion,
    ) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
        self.store.client_config(expected, alpn(version))
    }

    /// Keeps the credentials fresh until `stop` fires: file changes are swapped in; a
    /// development CA re-issues at half life. A bad change is logged and the current
    /// credentials keep serving.
    pub(crate) fn spawn_refresh(shared: Arc<crate::proxy::Shared>) {
        let Some(me) = shared.identity.clone() else {
            return;
        };
        let source = shared.settings.identity.clone();
        let mut stop = shared.draining.subscribe();
        record_expiry(&shared.metrics, &me.store.credentials());
        tokio::spawn(async move {
            let metrics = &shared.metrics;
            let mut last = match &source {
                IdentitySource::Files { cert, key, ca } => {
                    pem_files(cert, key, ca).fingerprint().ok()
                }
                _ => None,
            };
            let mut warned_expired = false;
            loop {
                let wait = match &source {
                    IdentitySource::DevCa(_) => {
                        let at = me.store.credentials().rotation_at();
                        at.duration_since(SystemTime::now())
                            .unwrap_or(Duration::ZERO)
                            .max(Duration::from_millis(100))
                    }
                    _ => FILE_POLL,
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|d| *d) => return,
                }
                let replaced = match &source {
                    IdentitySource::None => return,
                    IdentitySource::Files { cert, key, ca } => {
                        let files = pem_files(cert, key, ca);
                        let now = files.fingerprint().ok();
                        if now.is_none() || now == last {
                            false
                        } else {
                            match files
                                .load(&me.trust_domain)
                                .map_err(IdentityError::from)
                                .and_then(|(c, b)| check_owner(&c, &me.own).map(|()| (c, b)))
                            {
                                Ok((creds, bundle)) => {
                                    last = now;
                                    me.store.replace(creds, bundle);
                                    true
                                }
                                Err(error) => {
                                    // Half-written files are common during a rotation: keep
                                    // serving the current credentials, retry next poll.
                                    tracing::warn!(%error, "certificate files changed but do not load; keeping the current certificate");
                                    false
                                }
                            }
                        }
                    }
                    IdentitySource::DevCa(ca) => match issue(ca, &me.own) {
                        Ok(creds) => {
                            me.store.replace_credentials(creds);
                            true
                        }
                        Err(error) => {
                            tracing::warn!(%error, "certificate rotation failed");
                            tokio::time::sleep(FILE_POLL).await;
                            false
                        }
                    },
                };
                let current = me.store.credentials();
                if replaced {
                    metrics.security.certificate_rotations.inc();
                    record_expiry(metrics, &current);
                    warned_expired = false;
                    tracing::info!(
                        spiffe_id = %current.spiffe_id(),
                        serial = %current.summary().serial,
                        "certificate replaced; new handshakes use it"
                    );
                }
                if current.is_expired(SystemTime::now()) && !warned_expired {
                    warned_expired = true;
                    tracing::error!(spiffe_id = %current.spiffe_id(), "the proxy's certificate has EXPIRED: peers will refuse it");
                }
            }
        });
    }
}

fn pem_files(cert: &Path, key: &Path, ca: &Path) -> PemFiles {
    PemFiles::new(cert, key, ca)
}

fn record_expiry(metrics: &crate::metrics::Metrics, creds: &Credentials) {
    let secs = creds
        .summary()
        .not_after
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    metrics
        .security
        .certificate_expiry
        .set(i64::try_from(secs).unwrap_or(i64::MAX));
}

fn issue(ca: &mesh_identity::DevCa, own: &SpiffeId) -> Result<Credentials, IdentityError> {
    let svid = ca
        .issue(own, mesh_identity::ca::DEFAULT_SVID_TTL)
        .map_err(|e| IdentityError::Issue(e.to_string()))?;
    Credentials::from_issued(&svid).map_err(IdentityError::from)
}

/// SPIFFE-3: the certificate must name this workload.
fn check_owner(creds: &Credentials, own: &SpiffeId) -> Result<(), IdentityError> {
    if creds.spiffe_id() == own {
        Ok(())
    } else {
        Err(IdentityError::Mismatch {
            expected: own.to_string(),
            found: creds.spiffe_id().to_string(),
        })
    }
}

fn alpn(version: UpstreamVersion) -> &'static [&'static [u8]] {
    match version {
        UpstreamVersion::Http1 => &ALPN_PROTOCOLS[1..],
        UpstreamVersion::Http2 => &ALPN_PROTOCOLS[..1],
    }
}

/// How one cluster's connections are secured (DR-18, DR-19), compiled per config version.
pub(crate) enum UpstreamTls {
    /// Plaintext (`DISABLE`, `MESH_EXTERNAL` without a DR, or no identity for auto mTLS).
    Plain,
    /// Istio mTLS with the proxy's SVID.
    IstioMutual(IstioMutual),
    /// `SIMPLE` or `MUTUAL`: one configuration per upstream protocol.
    Fixed {
        /// `SIMPLE` or `MUTUAL`.
        mode: &'static str,
        h1: Arc<TlsOrigin>,
        h2: Arc<TlsOrigin>,
    },
    /// The DestinationRule asks for TLS this proxy cannot set up (no identity for
    /// `ISTIO_MUTUAL`, unreadable certificate files): every connection fails as a connect
    /// failure (DR-20).
    Broken(String),
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// A TLS configuration made for an endpoint's namespace and service account, and the protocol
/// spoken.
struct CachedOrigin {
    namespace: String,
    service_account: Option<String>,
    version: UpstreamVersion,
    origin: Arc<TlsOrigin>,
}

/// `ISTIO_MUTUAL` towards one cluster.
pub(crate) struct IstioMutual {
    identity: Arc<Identity>,
    /// Auto mTLS (no DR `tls`): endpoints labelled `tlsMode: disabled` stay plaintext.
    auto: bool,
    /// DR `subjectAltNames`: they replace the service's identities (SPIFFE-12).
    dr_sans: Vec<SpiffeId>,
    /// The ServiceEntry's `subjectAltNames`, added to the endpoint's own (SE-6).
    se_sans: Vec<SpiffeId>,
    server_name: ServerName<'static>,
    /// One configuration per (endpoint namespace, service account, protocol), made on first
    /// use. A cluster's endpoints share a handful of identities, so a hit is a short scan of
    /// this list with no lock and no allocation; a miss copies it.
    origins: ArcSwap<Vec<Arc<CachedOrigin>>>,
}

impl UpstreamTls {
    /// The plan for `cluster` of `service` (DR-18, DR-19).
    pub(crate) fn build(
        cluster: &Cluster,
        service: Option<&Service>,
        identity: Option<&Arc<Identity>>,
    ) -> Self {
        let tls = cluster.policy().tls.as_ref();
        let internal = service.is_some_and(|s| s.location == ServiceLocation::MeshInternal);
        let mode = match tls {
            Some(t) => t.mode,
            None if internal => ClientTlsMode::IstioMutual,
            None => return UpstreamTls::Plain,
        };
        let auto = tls.is_none();
        match mode {
            ClientTlsMode::Disable => UpstreamTls::Plain,
            ClientTlsMode::IstioMutual => {
                let Some(identity) = identity else {
                    if auto {
                        // No certificate: the mesh runs in plaintext (README "Security").
                        return UpstreamTls::Plain;
                    }
                    return UpstreamTls::Broken(
                        "ISTIO_MUTUAL needs the proxy's certificate (--cert --key --ca)".into(),
                    );
                };
                let ids = |names: &[String]| -> Vec<SpiffeId> {
                    names.iter().filter_map(|n| parse_san(n)).collect()
                };
                let sni = tls.map(|t| t.sni.as_str()).filter(|s| !s.is_empty());
                let default_sni = format!(
                    "outbound_.{}_.{}_.{}",
                    cluster.port(),
                    cluster.subset().unwrap_or(""),
                    cluster.host().trim_start_matches("*.")
                );
                UpstreamTls::IstioMutual(IstioMutual {
                    identity: Arc::clone(identity),
                    auto,
                    dr_sans: tls.map(|t| ids(&t.subject_alt_names)).unwrap_or_default(),
                    se_sans: service
                        .map(|s| ids(&s.subject_alt_names))
                        .unwrap_or_default(),
                    server_name: server_name(sni.unwrap_or(&default_sni), cluster.host()),
                    origins: ArcSwap::default(),
                })
            }
            ClientTlsMode::Simple | ClientTlsMode::Mutual => {
                let Some(settings) = tls else {
                    return UpstreamTls::Plain;
                };
                match fixed_origins(settings, cluster.host()) {
                    Ok((h1, h2)) => UpstreamTls::Fixed {
                        mode: if mode == ClientTlsMode::Mutual {
                            "MUTUAL"
                        } else {
                            "SIMPLE"
                        },
                        h1,
                        h2,
                    },
                    Err(e) => {
                        tracing::warn!(cluster = cluster.name(), error = %e, "DestinationRule tls cannot be set up; connections will fail");
                        UpstreamTls::Broken(e)
                    }
                }
            }
            _ => UpstreamTls::Broken("unsupported tls mode".into()),
        }
    }

    /// How to reach `endpoint` speaking `version`: `Ok(None)` is plaintext; `Err` a connect
    /// failure without connecting.
    pub(crate) fn origin(
        &self,
        endpoint: &Endpoint,
        version: UpstreamVersion,
    ) -> Result<Option<Arc<TlsOrigin>>, String> {
        match self {
            UpstreamTls::Plain => Ok(None),
            UpstreamTls::Broken(why) => Err(why.clone()),
            UpstreamTls::Fixed { h1, h2, .. } => Ok(Some(Arc::clone(match version {
                UpstreamVersion::Http1 => h1,
                UpstreamVersion::Http2 => h2,
            }))),
            UpstreamTls::IstioMutual(m) => {
                if !self.istio_mutual_to(endpoint) {
                    return Ok(None);
                }
                m.origin(endpoint, version).map(Some)
            }
        }
    }

    /// Whether connections to `endpoint` are Istio mTLS (what the metrics' principals and
    /// `connection_security_policy` reflect).
    pub(crate) fn istio_mutual_to(&self, endpoint: &Endpoint) -> bool {
        match self {
            UpstreamTls::IstioMutual(m) => {
                !(m.auto
                    && endpoint
                        .labels
                        .get(TLS_MODE_LABEL)
                        .is_some_and(|v| v == "disabled"))
            }
            _ => false,
        }
    }

    /// One word for `/config_dump` and `explain`.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            UpstreamTls::Plain => "DISABLE",
            UpstreamTls::IstioMutual(m) if m.auto => "ISTIO_MUTUAL (auto)",
            UpstreamTls::IstioMutual(_) => "ISTIO_MUTUAL",
            UpstreamTls::Fixed { mode, .. } => mode,
            UpstreamTls::Broken(_) => "BROKEN",
        }
    }

    /// The plan as `/config_dump` shows it: the mode, and for Istio mTLS the SNI and the
    /// identities the server must prove; for a broken plan, why. No key material.
    pub(crate) fn dump(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "mode": self.describe() });
        match self {
            UpstreamTls::IstioMutual(m) => {
                let names =
                    |ids: &[SpiffeId]| ids.iter().map(ToString::to_string).collect::<Vec<_>>();
                v["sni"] = m.server_name.to_str().as_ref().into();
                v["subject_alt_names"] = names(&m.dr_sans).into();
                v["service_entry_subject_alt_names"] = names(&m.se_sans).into();
            }
            UpstreamTls::Fixed { h1, .. } => {
                v["sni"] = h1.server_name().to_str().as_ref().into();
            }
            UpstreamTls::Broken(why) => v["error"] = why.as_str().into(),
            UpstreamTls::Plain => {}
        }
        v
    }
}

impl IstioMutual {
    fn origin(
        &self,
        endpoint: &Endpoint,
        version: UpstreamVersion,
    ) -> Result<Arc<TlsOrigin>, String> {
        let same = |c: &CachedOrigin| {
            c.version == version
                && c.namespace == endpoint.namespace
                && c.service_account == endpoint.service_account
        };
        if let Some(c) = self.origins.load().iter().find(|c| same(c)) {
            return Ok(Arc::clone(&c.origin));
        }
        let expected = self.expected(endpoint);
        let config = self
            .identity
            .istio_client(expected, version)
            .map_err(|e| e.to_string())?;
        let made = Arc::new(CachedOrigin {
            namespace: endpoint.namespace.clone(),
            service_account: endpoint.service_account.clone(),
            version,
            origin: Arc::new(TlsOrigin::new(config, self.server_name.clone())),
        });
        // Two first uses may race; the first one stored wins, so one pool entry is used.
        self.origins.rcu(|list| {
            let mut list = Vec::clone(list);
            if !list.iter().any(|c| same(c)) {
                list.push(Arc::clone(&made));
            }
            list
        });
        let list = self.origins.load();
        let winner = list.iter().find(|c| same(c)).unwrap_or(&made);
        Ok(Arc::clone(&winner.origin))
    }

    /// SPIFFE-12: the DR's names replace the service's; else the endpoint's service account
    /// (SE-6) and the ServiceEntry's names; none known → any SVID of the trust domain.
    fn expected(&self, endpoint: &Endpoint) -> Expected {
        if !self.dr_sans.is_empty() {
            return Expected::Ids(self.dr_sans.clone());
        }
        let mut ids = self.se_sans.clone();
        if let Some(sa) = &endpoint.service_account
            && let Ok(id) = SpiffeId::istio(&self.identity.trust_domain, &endpoint.namespace, sa)
        {
            ids.push(id);
        }
        Expected::Ids(ids)
    }
}

/// A `subjectAltNames` entry as a SPIFFE ID: `spiffe://…` as is, or a principal-like
/// `td/ns/x/sa/y`; anything else (DNS names) cannot match an SVID and is skipped.
fn parse_san(name: &str) -> Option<SpiffeId> {
    SpiffeId::parse(name)
        .ok()
        .or_else(|| SpiffeId::parse(&format!("spiffe://{name}")).ok())
}

fn server_name(sni: &str, host: &str) -> ServerName<'static> {
    ServerName::try_from(sni.to_owned())
        .or_else(|_| ServerName::try_from(host.trim_start_matches("*.").to_owned()))
        .unwrap_or_else(|_| ServerName::try_from("mesh.invalid").expect("a valid DNS name"))
}

/// `SIMPLE`/`MUTUAL` (DR-18): the server verified against `caCertificates` (or the system's
/// CA bundle), by SNI or `subjectAltNames`; `MUTUAL` adds the client certificate.
fn fixed_origins(
    settings: &ClientTlsSettings,
    host: &str,
) -> Result<(Arc<TlsOrigin>, Arc<TlsOrigin>), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(mesh_identity::tls::PROTOCOL_VERSIONS)
        .map_err(|e| e.to_string())?;
    let builder = if settings.insecure_skip_verify == Some(true) {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verify::Insecure(provider)))
    } else {
        let roots = roots(&settings.ca_certificates)?;
        let inner =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
        let names: Vec<ServerName<'static>> = settings
            .subject_alt_names
            .iter()
            .filter_map(|n| ServerName::try_from(n.clone()).ok())
            .collect();
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verify::ByNames { inner, names }))
    };
    let config = if settings.mode == ClientTlsMode::Mutual {
        let chain = read_certs(&settings.client_certificate)?;
        let key = read_key(&settings.private_key)?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| e.to_string())?
    } else {
        builder.with_no_client_auth()
    };
    let sni = if settings.sni.is_empty() {
        host
    } else {
        &settings.sni
    };
    let name = server_name(sni, host);
    let mut h1 = config.clone();
    h1.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut h2 = config;
    h2.alpn_protocols = vec![b"h2".to_vec()];
    Ok((
        Arc::new(TlsOrigin::new(Arc::new(h1), name.clone())),
        Arc::new(TlsOrigin::new(Arc::new(h2), name)),
    ))
}

/// Where Debian, Fedora and Alpine keep the system's CA bundle ("system roots", DR-18 ours).
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

fn roots(ca_file: &str) -> Result<rustls::RootCertStore, String> {
    let certs = if ca_file.is_empty() {
        SYSTEM_BUNDLES
            .iter()
            .find_map(|p| read_certs(p).ok())
            .ok_or("no caCertificates and no system CA bundle found")?
    } else {
        read_certs(ca_file)?
    };
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{ca_file}: no usable CA certificate"));
    }
    Ok(roots)
}

fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{path}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path}: no certificate"));
    }
    Ok(certs)
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    use rustls::pki_types::pem::PemObject;
    // The error names the file only: key material never reaches a message.
    PrivateKeyDer::from_pem_file(path).map_err(|_| format!("{path}: no usable private key"))
}

mod verify {
    //! Server verifiers for `SIMPLE`/`MUTUAL` origination.
    use std::sync::Arc;

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    /// The chain against the CA bundle, and the name against `subjectAltNames` when given
    /// (any one of them), else against the SNI.
    #[derive(Debug)]
    pub(super) struct ByNames {
        pub(super) inner: Arc<WebPkiServerVerifier>,
        pub(super) names: Vec<ServerName<'static>>,
    }

    impl ServerCertVerifier for ByNames {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            if self.names.is_empty() {
                return self.inner.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp,
                    now,
                );
            }
            let mut last = None;
            for name in &self.names {
                match self
                    .inner
                    .verify_server_cert(end_entity, intermediates, name, ocsp, now)
                {
                    Ok(v) => return Ok(v),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or(rustls::Error::General("no subjectAltNames".into())))
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    }

    /// `insecureSkipVerify: true`: any certificate; signatures are still checked so the
    /// handshake is with the holder of the presented key.
    #[derive(Debug)]
    pub(super) struct Insecure(pub(super) Arc<CryptoProvider>);

    impl ServerCertVerifier for Insecure {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
