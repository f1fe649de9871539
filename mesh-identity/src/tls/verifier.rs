//! The two rustls verifiers: the client checks the server's SVID, the server checks the client's.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
};

use super::{BundleSource, Expected};
use crate::spiffe::SpiffeId;
use crate::svid::{SvidError, TrustBundle, Usage, VerifiedSvid, verify_svid_for};

/// Why a peer's certificate was rejected; carried inside
/// [`CertificateError::Other`] when no specific rustls variant fits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerVerifyError {
    /// The chain is not a valid X.509-SVID for the bundle (SPIFFE-4..SPIFFE-8).
    #[error(transparent)]
    Svid(#[from] SvidError),
    /// The chain is valid but names an identity the client did not expect (SPIFFE-12).
    #[error("peer SPIFFE ID {peer} is not among the expected identities [{expected}]")]
    UnexpectedIdentity {
        /// The verified SPIFFE ID the peer presented.
        peer: SpiffeId,
        /// The expected identities, comma-separated.
        expected: String,
    },
}

impl From<PeerVerifyError> for Error {
    fn from(e: PeerVerifyError) -> Self {
        let cert_err = match &e {
            PeerVerifyError::Svid(SvidError::Expired) => CertificateError::Expired,
            PeerVerifyError::Svid(SvidError::NotYetValid) => CertificateError::NotValidYet,
            PeerVerifyError::Svid(SvidError::UnknownTrustDomain(_))
            | PeerVerifyError::Svid(SvidError::UntrustedChain(_)) => {
                CertificateError::UnknownIssuer
            }
            PeerVerifyError::Svid(SvidError::Malformed(_)) => CertificateError::BadEncoding,
            _ => CertificateError::Other(OtherError(Arc::new(e.clone()))),
        };
        Error::InvalidCertificate(cert_err)
    }
}

/// Verifies `end_entity` + `intermediates` as an SVID for `usage` against the current bundle.
fn verify_chain(
    source: &dyn BundleSource,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    usage: Usage,
) -> Result<VerifiedSvid, PeerVerifyError> {
    let chain: Vec<CertificateDer<'_>> = std::iter::once(end_entity.as_ref())
        .chain(intermediates.iter().map(|c| c.as_ref()))
        .map(CertificateDer::from)
        .collect();
    let bundle: Arc<TrustBundle> = source.bundle();
    Ok(verify_svid_for(&chain, &bundle, now, usage)?)
}

fn ring_algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// Client side of SPIFFE-9: verifies the server's X.509-SVID against a trust bundle
/// (`serverAuth` usage) and its SPIFFE ID against the [`Expected`] set (SPIFFE-12). The DNS
/// server name is ignored: the SPIFFE identity replaces hostname checks.
pub struct SpiffeServerVerifier {
    bundle: Arc<dyn BundleSource>,
    expected: Expected,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for SpiffeServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiffeServerVerifier")
            .field("bundle", &self.bundle)
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl SpiffeServerVerifier {
    /// A verifier trusting the bundle `bundle` yields at each handshake and accepting the
    /// server identities `expected`.
    pub fn new(bundle: impl BundleSource + 'static, expected: Expected) -> Self {
        Self {
            bundle: Arc::new(bundle),
            expected,
            algorithms: ring_algorithms(),
        }
    }

    /// The identities this verifier accepts.
    pub fn expected(&self) -> &Expected {
        &self.expected
    }

    /// Verifies a server chain outside a handshake, returning the verified SVID.
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedSvid, PeerVerifyError> {
        let svid = verify_chain(
            self.bundle.as_ref(),
            end_entity,
            intermediates,
            now,
            Usage::Server,
        )?;
        if self.expected.accepts(&svid.spiffe_id) {
            Ok(svid)
        } else {
            Err(PeerVerifyError::UnexpectedIdentity {
                peer: svid.spiffe_id,
                expected: self.expected.to_string(),
            })
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.verify(end_entity, intermediates, now) {
            Ok(_) => Ok(ServerCertVerified::assertion()),
            Err(e) => {
                tracing::debug!(error = %e, "server SVID rejected");
                Err(e.into())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Server side of SPIFFE-9: verifies the client's X.509-SVID chain against a trust bundle
/// (`clientAuth` usage). It does not restrict which identity may connect: that is
/// AuthorizationPolicy's job. A client certificate is mandatory unless built with
/// [`SpiffeClientVerifier::optional`].
pub struct SpiffeClientVerifier {
    bundle: Arc<dyn BundleSource>,
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for SpiffeClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiffeClientVerifier")
            .field("bundle", &self.bundle)
            .field("mandatory", &self.mandatory)
            .finish_non_exhaustive()
    }
}

impl SpiffeClientVerifier {
    /// A verifier that requires a client SVID (STRICT mTLS).
    pub fn new(bundle: impl BundleSource + 'static) -> Self {
        Self {
            bundle: Arc::new(bundle),
            mandatory: true,
            algorithms: ring_algorithms(),
        }
    }

    /// A verifier that asks for a client SVID but lets clients without one complete the
    /// handshake; a certificate that is presented must still verify.
    pub fn optional(bundle: impl BundleSource + 'static) -> Self {
        Self {
            mandatory: false,
            ..Self::new(bundle)
        }
    }

    /// Verifies a client chain outside a handshake, returning the verified SVID.
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<VerifiedSvid, PeerVerifyError> {
        verify_chain(
            self.bundle.as_ref(),
            end_entity,
            intermediates,
            now,
            Usage::Client,
        )
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match self.verify(end_entity, intermediates, now) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(e) => {
                tracing::debug!(error = %e, "client SVID rejected");
                Err(e.into())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
