//! Zero-trust identity for the mesh SDK: SPIFFE IDs, X.509-SVID verification, a development
//! CA, and Istio's AuthorizationPolicy engine.
//!
//! `mesh-identity` is a leaf crate (DESIGN.md): it reads the config model of `mesh-core` and
//! imports no other leaf. What is here today (SEMANTICS §7, §8):
//!
//! | module | what | rules |
//! |---|---|---|
//! | [`spiffe`] | [`SpiffeId`] and [`TrustDomain`]: the SPIFFE ID grammar, Istio's `spiffe://TD/ns/NS/sa/SA` form and the principal form `TD/ns/NS/sa/SA` | SPIFFE-1..3 |
//! | [`svid`] | [`TrustBundle`] and [`verify_svid`](svid::verify_svid): an X.509-SVID chain checked against the bundle of its own trust domain, exactly one URI SAN, leaf and CA constraints, key usage, validity | SPIFFE-4..8 |
//! | [`ca`] | [`DevCa`]: a development CA that issues 24 h SVIDs (never for production) | SPIFFE-10 |
//! | [`tls`] | rustls verifiers that check the peer's SVID and SPIFFE ID (`SpiffeServerVerifier` with the expected server identity, `SpiffeClientVerifier`), client/server configs with TLS 1.2/1.3 and ALPN `h2`/`http/1.1` | SPIFFE-9, SPIFFE-12 |
//! | [`authz`] | [`AuthzTable`]: the AuthorizationPolicies that apply to a workload, compiled once, and a decision per request (CUSTOM → DENY → ALLOW, AUDIT, dry run) | AUTHZ-1..27 |
//! | [`credentials`] | [`Credentials`](credentials::Credentials) (own SVID + key, rotation at half life), [`CertStore`](credentials::CertStore) (credentials and bundle swapped atomically; rustls configs that read them at every handshake), [`PemFiles`](credentials::PemFiles) (`--cert --key --ca`, change fingerprint) | SPIFFE-3, SPIFFE-10 |
//! | [`peer_auth`] | [`PeerAuthTable`](peer_auth::PeerAuthTable): the inbound mTLS mode (STRICT/PERMISSIVE/DISABLE) of each workload port from mesh, namespace and workload PeerAuthentications | PA-1..4 |
//! | [`xfcc`] | the `x-forwarded-client-cert` element Istio's sidecar appends on mTLS (`By`, `Hash`, `Subject`, `URI`, `DNS`) | HDR-5 |
//!
//! ```
//! use mesh_identity::{DevCa, SpiffeId, TrustDomain};
//! use mesh_identity::svid::verify_svid;
//! use rustls_pki_types::UnixTime;
//!
//! let td: TrustDomain = "cluster.local".parse().unwrap();
//! let ca = DevCa::new(&td, mesh_identity::ca::DEFAULT_CA_TTL).unwrap();
//! let id = SpiffeId::istio(&td, "production", "order-service").unwrap();
//! let svid = ca.issue(&id, mesh_identity::ca::DEFAULT_SVID_TTL).unwrap();
//! let verified = verify_svid(svid.chain(), &ca.bundle(), UnixTime::now()).unwrap();
//! assert_eq!(verified.spiffe_id.principal(), "cluster.local/ns/production/sa/order-service");
//! ```
#![forbid(unsafe_code)]

pub mod authz;
pub mod ca;
pub mod credentials;
pub mod layer;
pub mod path;
pub mod peer_auth;
pub mod spiffe;
pub mod svid;
pub mod tls;
pub mod xfcc;

pub use authz::{AuthzRequest, AuthzTable, Decision};
pub use ca::DevCa;
pub use layer::{Authz, AuthzBody, AuthzLayer};
pub use spiffe::{SpiffeId, TrustDomain};
pub use svid::TrustBundle;
