//! SPIFFE IDs: the workload identity carried in every mesh certificate.
//!
//! Why: every peer in the mesh is named by a SPIFFE ID (SEMANTICS.md SPIFFE-1), the URI
//! `spiffe://<trust-domain><path>`. Parsing is strict and byte-exact, as the SPIFFE ID standard
//! asks: a lower-case trust domain of `[a-z0-9._-]`, no port, userinfo, query, fragment or
//! percent-encoding, path segments of `[A-Za-z0-9._-]` with no empty, `.` or `..` segment and no
//! trailing `/`, at most 2048 bytes in all and 255 for the trust domain (SPIFFE-1, SPIFFE-2).
//! Istio names workloads `spiffe://TD/ns/NS/sa/SA`, and policies and metrics use the *principal*
//! `TD/ns/NS/sa/SA` (SPIFFE-3); [`SpiffeId::istio`], [`SpiffeId::namespace`],
//! [`SpiffeId::service_account`], [`SpiffeId::principal`] and [`SpiffeId::from_principal`]
//! cover that form.
//!
//! ```
//! use mesh_identity::spiffe::{SpiffeId, SpiffeIdError, TrustDomain};
//!
//! let id = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/web")?;
//! assert_eq!(id.trust_domain().as_str(), "cluster.local");
//! assert_eq!(id.path(), "/ns/default/sa/web");
//! assert_eq!(id.namespace(), Some("default"));
//! assert_eq!(id.service_account(), Some("web"));
//! assert_eq!(id.principal(), "cluster.local/ns/default/sa/web");
//!
//! let td = TrustDomain::new("cluster.local")?;
//! assert_eq!(SpiffeId::istio(&td, "default", "web")?, id);
//! assert_eq!(
//!     SpiffeId::parse("spiffe://Example.org/x"),
//!     Err(SpiffeIdError::UppercaseTrustDomain)
//! );
//! # Ok::<(), SpiffeIdError>(())
//! ```

use std::fmt;
use std::str::FromStr;

/// The scheme prefix every SPIFFE ID starts with, byte for byte (SPIFFE-1).
pub const SCHEME_PREFIX: &str = "spiffe://";
/// Maximum length of a whole SPIFFE ID in bytes (SPIFFE-1).
pub const MAX_ID_LEN: usize = 2048;
/// Maximum length of a trust domain name in bytes (SPIFFE-1).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Why a string is not a SPIFFE ID (SPIFFE-1, SPIFFE-2); one variant per failure kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The input is empty.
    #[error("SPIFFE ID is empty")]
    Empty,
    /// The whole ID is longer than 2048 bytes.
    #[error("SPIFFE ID is {len} bytes long; at most 2048 are allowed")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
    },
    /// The input does not start with `spiffe://` (scheme missing, different or not lower-case).
    #[error("SPIFFE ID must start with `spiffe://` (lower-case scheme)")]
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("SPIFFE ID trust domain is empty")]
    EmptyTrustDomain,
    /// The trust domain is longer than 255 bytes.
    #[error("trust domain is {len} bytes long; at most 255 are allowed")]
    TrustDomainTooLong {
        /// Length of the trust domain in bytes.
        len: usize,
    },
    /// The trust domain holds an upper-case letter (no case folding is done).
    #[error("trust domain must be lower-case")]
    UppercaseTrustDomain,
    /// The trust domain holds a character outside `[a-z0-9._-]`.
    #[error("trust domain holds the invalid character {0:?}")]
    BadTrustDomainChar(char),
    /// The authority holds userinfo (`user@`).
    #[error("SPIFFE ID must not hold userinfo (`user@`)")]
    UserInfo,
    /// The authority holds a port (`:443`).
    #[error("SPIFFE ID must not hold a port")]
    Port,
    /// The ID holds a query (`?`).
    #[error("SPIFFE ID must not hold a query")]
    Query,
    /// The ID holds a fragment (`#`).
    #[error("SPIFFE ID must not hold a fragment")]
    Fragment,
    /// The ID holds percent-encoding (`%`).
    #[error("SPIFFE ID must not hold percent-encoding")]
    PercentEncoding,
    /// A path segment is empty (`//`).
    #[error("SPIFFE ID path holds an empty segment")]
    EmptySegment,
    /// A path segment is `.` or `..`.
    #[error("SPIFFE ID path holds a `.` or `..` segment")]
    DotSegment,
    /// The path ends with `/`.
    #[error("SPIFFE ID path must not end with `/`")]
    TrailingSlash,
    /// A path segment holds a character outside `[A-Za-z0-9._-]`.
    #[error("SPIFFE ID path holds the invalid character {0:?}")]
    BadPathChar(char),
}

/// A validated SPIFFE trust domain name (`cluster.local`), the authority of a SPIFFE ID.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Validates a trust domain name: non-empty, at most 255 bytes, `[a-z0-9._-]` only.
    pub fn new(name: &str) -> Result<Self, SpiffeIdError> {
        validate_trust_domain(name)?;
        Ok(Self(name.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SPIFFE ID of the trust domain itself (`spiffe://TD`, no path), as CA certificates
    /// may carry it (SPIFFE-6).
    pub fn spiffe_id(&self) -> SpiffeId {
        SpiffeId {
            trust_domain: self.clone(),
            path: String::new(),
        }
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for TrustDomain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A parsed, validated SPIFFE ID (SPIFFE-1). `Display` gives the URI back unchanged.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    trust_domain: TrustDomain,
    /// Empty, or `/seg(/seg)*`.
    path: String,
}

impl SpiffeId {
    /// Parses and validates `spiffe://<trust-domain><path>` byte-exactly (SPIFFE-1).
    pub fn parse(input: &str) -> Result<Self, SpiffeIdError> {
        if input.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if input.len() > MAX_ID_LEN {
            return Err(SpiffeIdError::TooLong { len: input.len() });
        }
        let rest = input
            .strip_prefix(SCHEME_PREFIX)
            .ok_or(SpiffeIdError::WrongScheme)?;
        // Query, fragment and percent-encoding are invalid anywhere; report the first one seen.
        if let Some(bad) = rest.bytes().find(|b| matches!(b, b'?' | b'#' | b'%')) {
            return Err(match bad {
                b'?' => SpiffeIdError::Query,
                b'#' => SpiffeIdError::Fragment,
                _ => SpiffeIdError::PercentEncoding,
            });
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        validate_authority(authority)?;
        validate_path(path)?;
        Ok(Self {
            trust_domain: TrustDomain(authority.to_owned()),
            path: path.to_owned(),
        })
    }

    /// Builds a SPIFFE ID from a trust domain and a path (`""` or `/seg/...`), validating the
    /// path and the total length.
    pub fn from_parts(trust_domain: &TrustDomain, path: &str) -> Result<Self, SpiffeIdError> {
        validate_path(path)?;
        let len = SCHEME_PREFIX.len() + trust_domain.0.len() + path.len();
        if len > MAX_ID_LEN {
            return Err(SpiffeIdError::TooLong { len });
        }
        Ok(Self {
            trust_domain: trust_domain.clone(),
            path: path.to_owned(),
        })
    }

    /// The Istio workload identity `spiffe://TD/ns/NS/sa/SA` (SPIFFE-3). `namespace` and
    /// `service_account` must each be one path segment (a `/` is rejected as a bad character).
    pub fn istio(
        trust_domain: &TrustDomain,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, SpiffeIdError> {
        if namespace.contains('/') || service_account.contains('/') {
            return Err(SpiffeIdError::BadPathChar('/'));
        }
        Self::from_parts(
            trust_domain,
            &format!("/ns/{namespace}/sa/{service_account}"),
        )
    }

    /// Parses an Istio principal `TD/ns/NS/sa/SA` (or any `TD[/path]`): the SPIFFE ID without
    /// its `spiffe://` prefix (SPIFFE-3).
    pub fn from_principal(principal: &str) -> Result<Self, SpiffeIdError> {
        if principal.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        Self::parse(&format!("{SCHEME_PREFIX}{principal}"))
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path: empty for a trust-domain ID, otherwise starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the path is empty (a trust-domain ID, not acceptable as a leaf, SPIFFE-7).
    pub fn is_trust_domain_id(&self) -> bool {
        self.path.is_empty()
    }

    /// The principal used by policies and metrics: the ID without `spiffe://` (SPIFFE-3).
    pub fn principal(&self) -> String {
        format!("{}{}", self.trust_domain, self.path)
    }

    /// The namespace when the path is exactly `/ns/NS/sa/SA` (SPIFFE-3), else `None`.
    pub fn namespace(&self) -> Option<&str> {
        self.istio_parts().map(|(ns, _)| ns)
    }

    /// The service account when the path is exactly `/ns/NS/sa/SA` (SPIFFE-3), else `None`.
    pub fn service_account(&self) -> Option<&str> {
        self.istio_parts().map(|(_, sa)| sa)
    }

    fn istio_parts(&self) -> Option<(&str, &str)> {
        let mut segs = self.path.strip_prefix('/')?.split('/');
        match (
            segs.next(),
            segs.next(),
            segs.next(),
            segs.next(),
            segs.next(),
        ) {
            (Some("ns"), Some(ns), Some("sa"), Some(sa), None) => Some((ns, sa)),
            _ => None,
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME_PREFIX}{}{}", self.trust_domain, self.path)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn validate_authority(authority: &str) -> Result<(), SpiffeIdError> {
    if authority.contains('@') {
        return Err(SpiffeIdError::UserInfo);
    }
    if authority.contains(':') {
        return Err(SpiffeIdError::Port);
    }
    validate_trust_domain(authority)
}

fn validate_trust_domain(name: &str) -> Result<(), SpiffeIdError> {
    if name.is_empty() {
        return Err(SpiffeIdError::EmptyTrustDomain);
    }
    if name.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong { len: name.len() });
    }
    for c in name.chars() {
        match c {
            'a'..='z' | '0'..='9' | '.' | '-' | '_' => {}
            'A'..='Z' => return Err(SpiffeIdError::UppercaseTrustDomain),
            other => return Err(SpiffeIdError::BadTrustDomainChar(other)),
        }
    }
    Ok(())
}

fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    let Some(segments) = path.strip_prefix('/') else {
        // Only reachable through `from_parts`: a non-empty path must start with `/`.
        return Err(SpiffeIdError::EmptySegment);
    };
    if path.ends_with('/') {
        return Err(SpiffeIdError::TrailingSlash);
    }
    for seg in segments.split('/') {
        if seg.is_empty() {
            return Err(SpiffeIdError::EmptySegment);
        }
        if seg == "." || seg == ".." {
            return Err(SpiffeIdError::DotSegment);
        }
        if let Some(c) = seg
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(match c {
                '%' => SpiffeIdError::PercentEncoding,
                '?' => SpiffeIdError::Query,
                '#' => SpiffeIdError::Fragment,
                other => SpiffeIdError::BadPathChar(other),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use SpiffeIdError as E;
    use proptest::prelude::*;

    /// Every example of SEMANTICS.md SPIFFE-2, named, plus the length limits of SPIFFE-1.
    #[test]
    fn spiffe_2_vectors() {
        let long_td = "a".repeat(256);
        let max_td = "a".repeat(255);
        let long_path = format!("spiffe://td/{}", "a".repeat(MAX_ID_LEN - 12 + 1));
        let max_path = format!("spiffe://td/{}", "a".repeat(MAX_ID_LEN - 12));
        let cases: Vec<(&str, String, Result<(), SpiffeIdError>)> = vec![
            (
                "istio workload",
                "spiffe://cluster.local/ns/default/sa/web".into(),
                Ok(()),
            ),
            ("trust-domain id", "spiffe://example.org".into(), Ok(())),
            (
                "upper-case trust domain",
                "spiffe://Example.org/x".into(),
                Err(E::UppercaseTrustDomain),
            ),
            (
                "upper-case scheme",
                "SPIFFE://example.org/x".into(),
                Err(E::WrongScheme),
            ),
            (
                "trailing slash",
                "spiffe://example.org/".into(),
                Err(E::TrailingSlash),
            ),
            (
                "empty segment",
                "spiffe://example.org//a".into(),
                Err(E::EmptySegment),
            ),
            (
                "dot-dot segment",
                "spiffe://example.org/a/../b".into(),
                Err(E::DotSegment),
            ),
            (
                "dot segment",
                "spiffe://example.org/a/./b".into(),
                Err(E::DotSegment),
            ),
            (
                "percent-encoding",
                "spiffe://example.org/a%20b".into(),
                Err(E::PercentEncoding),
            ),
            ("port", "spiffe://example.org:8443/a".into(), Err(E::Port)),
            (
                "userinfo",
                "spiffe://user@example.org/a".into(),
                Err(E::UserInfo),
            ),
            ("query", "spiffe://example.org/a?x=1".into(), Err(E::Query)),
            (
                "fragment",
                "spiffe://example.org/a#f".into(),
                Err(E::Fragment),
            ),
            (
                "empty trust domain",
                "spiffe:///a".into(),
                Err(E::EmptyTrustDomain),
            ),
            (
                "https scheme",
                "https://example.org/a".into(),
                Err(E::WrongScheme),
            ),
            ("empty input", String::new(), Err(E::Empty)),
            (
                "upper-case path allowed",
                "spiffe://example.org/A-b_c.D".into(),
                Ok(()),
            ),
            (
                "ipv4-looking trust domain",
                "spiffe://10.0.0.1/a".into(),
                Ok(()),
            ),
            (
                "bad path char",
                "spiffe://example.org/a b".into(),
                Err(E::BadPathChar(' ')),
            ),
            (
                "bad trust domain char",
                "spiffe://exa+mple.org/a".into(),
                Err(E::BadTrustDomainChar('+')),
            ),
            (
                "trust domain 255 bytes",
                format!("spiffe://{max_td}"),
                Ok(()),
            ),
            (
                "trust domain 256 bytes",
                format!("spiffe://{long_td}"),
                Err(E::TrustDomainTooLong { len: 256 }),
            ),
            ("id 2048 bytes", max_path, Ok(())),
            (
                "id 2049 bytes",
                long_path,
                Err(E::TooLong {
                    len: MAX_ID_LEN + 1,
                }),
            ),
        ];
        for (name, input, want) in cases {
            let got = SpiffeId::parse(&input);
            match want {
                Ok(()) => {
                    let id = got.unwrap_or_else(|e| panic!("{name}: {input:?} rejected: {e}"));
                    assert_eq!(id.to_string(), input, "{name}: display round trip");
                }
                Err(e) => assert_eq!(got, Err(e), "{name}: {input:?}"),
            }
        }
    }

    #[test]
    fn istio_form() {
        let td = TrustDomain::new("cluster.local").unwrap();
        let id = SpiffeId::istio(&td, "default", "web").unwrap();
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/default/sa/web");
        assert_eq!(id.namespace(), Some("default"));
        assert_eq!(id.service_account(), Some("web"));
        assert_eq!(SpiffeId::from_principal(&id.principal()).unwrap(), id);
        assert_eq!(SpiffeId::istio(&td, "", "web"), Err(E::EmptySegment));
        assert_eq!(SpiffeId::istio(&td, "a/b", "web"), Err(E::BadPathChar('/')));
        assert_eq!(SpiffeId::istio(&td, "a", ".."), Err(E::DotSegment));
        for other in [
            "spiffe://td/ns/a/sa",
            "spiffe://td/ns/a/sa/b/c",
            "spiffe://td/x/a/sa/b",
        ] {
            let id = SpiffeId::parse(other).unwrap();
            assert_eq!(
                (id.namespace(), id.service_account()),
                (None, None),
                "{other}"
            );
        }
        assert!(td.spiffe_id().is_trust_domain_id());
        assert_eq!(td.spiffe_id().to_string(), "spiffe://cluster.local");
        assert_eq!(SpiffeId::from_principal(""), Err(E::Empty));
        assert_eq!("Bad".parse::<TrustDomain>(), Err(E::UppercaseTrustDomain));
    }

    fn valid_id() -> impl Strategy<Value = String> {
        let seg = "[A-Za-z0-9._-]{1,12}".prop_filter("dot segment", |s| s != "." && s != "..");
        ("[a-z0-9._-]{1,40}", prop::collection::vec(seg, 0..6)).prop_map(|(td, segs)| {
            let mut s = format!("spiffe://{td}");
            for seg in segs {
                s.push('/');
                s.push_str(&seg);
            }
            s
        })
    }

    proptest! {
        #[test]
        fn valid_ids_round_trip(input in valid_id()) {
            let id = SpiffeId::parse(&input).unwrap();
            prop_assert_eq!(id.to_string(), input.clone());
            prop_assert_eq!(SpiffeId::from_principal(&id.principal()).unwrap(), id.clone());
            prop_assert_eq!(input.parse::<SpiffeId>().unwrap(), id);
        }

        #[test]
        fn arbitrary_strings_never_panic(input in any::<String>()) {
            let _ = SpiffeId::parse(&input);
            let _ = SpiffeId::from_principal(&input);
            let _ = TrustDomain::new(&input);
        }

        #[test]
        fn near_valid_strings_never_panic(rest in "[ -~]{0,64}") {
            let input = format!("spiffe://{rest}");
            if let Ok(id) = SpiffeId::parse(&input) {
                prop_assert_eq!(id.to_string(), input);
            }
        }
    }
}
