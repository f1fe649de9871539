//! Request path normalization before authorization (SEMANTICS AUTHZ-25).
//!
//! Why: a policy on `/admin` means nothing if `/public/../admin` or `/%61dmin` reach the app
//! unmatched. The proxy normalizes the path once, matches policies against the result **and**
//! forwards the normalized path, so the policy and the app see the same resource.
//!
//! [`PathNormalization::Base`] (Istio's mesh default): decode percent-encoded unreserved
//! characters once, turn `\` into `/`, resolve `.` and `..` segments (RFC 3986 §5.2.4); `%00`
//! rejects the request. `MergeSlashes` also merges `//`; `DecodeAndMergeSlashes` also decodes
//! `%2F` and `%5C` first. The query string is kept apart and never touched.
//!
//! ```
//! use mesh_identity::path::{normalize, PathNormalization};
//!
//! let n = normalize("/public/./data/abc/../xyz?x=1", PathNormalization::Base).unwrap();
//! assert_eq!(n, "/public/data/xyz?x=1");
//! assert_eq!(normalize("/%61dmin", PathNormalization::Base).unwrap(), "/admin");
//! assert_eq!(normalize("/a%2Fb", PathNormalization::Base).unwrap(), "/a%2Fb");
//! assert!(normalize("/a%00b", PathNormalization::Base).is_err());
//! ```

use std::borrow::Cow;

/// How request paths are normalized (`--path-normalization`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathNormalization {
    /// Forward and match the path as received.
    None,
    /// Decode unreserved characters, `\` → `/`, resolve dot segments (Istio's default).
    #[default]
    Base,
    /// `Base` plus `//` → `/`.
    MergeSlashes,
    /// `MergeSlashes` after also decoding `%2F` and `%5C`.
    DecodeAndMergeSlashes,
}

impl PathNormalization {
    /// The flag value: `none`, `base`, `merge-slashes`, `decode-and-merge-slashes`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Base => "base",
            Self::MergeSlashes => "merge-slashes",
            Self::DecodeAndMergeSlashes => "decode-and-merge-slashes",
        }
    }
}

impl std::str::FromStr for PathNormalization {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "none" => Ok(Self::None),
            "base" => Ok(Self::Base),
            "merge-slashes" => Ok(Self::MergeSlashes),
            "decode-and-merge-slashes" => Ok(Self::DecodeAndMergeSlashes),
            other => Err(format!(
                "unknown path normalization {other:?} (none, base, merge-slashes, decode-and-merge-slashes)"
            )),
        }
    }
}

/// The path cannot be normalized safely: the request gets 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// `%00` in the path (AUTHZ-25).
    #[error("the path contains an encoded NUL (%00)")]
    EncodedNul,
}

/// Normalizes `path_and_query` (the query is kept as is); borrowed when nothing changes.
pub fn normalize(path_and_query: &str, mode: PathNormalization) -> Result<Cow<'_, str>, PathError> {
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    if contains_encoded_nul(path) {
        return Err(PathError::EncodedNul);
    }
    if mode == PathNormalization::None || is_normal(path, mode) {
        return Ok(Cow::Borrowed(path_and_query));
    }
    let decoded = decode(path, mode == PathNormalization::DecodeAndMergeSlashes);
    let slashed = decoded.replace('\\', "/");
    let merge = matches!(
        mode,
        PathNormalization::MergeSlashes | PathNormalization::DecodeAndMergeSlashes
    );
    let mut out = resolve_dots(&slashed, merge);
    out.push_str(query);
    Ok(Cow::Owned(out))
}

fn contains_encoded_nul(path: &str) -> bool {
    path.as_bytes().windows(3).any(|w| w == b"%00")
}

/// The common case, checked without allocating: nothing to decode, no `\`, no dot segment,
/// no `//` when merging.
fn is_normal(path: &str, mode: PathNormalization) -> bool {
    let merge = matches!(
        mode,
        PathNormalization::MergeSlashes | PathNormalization::DecodeAndMergeSlashes
    );
    if path.contains('%') || path.contains('\\') || (merge && path.contains("//")) {
        return false;
    }
    !path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` of unreserved characters (and of `/`, `\` when `slashes`) once.
fn decode(path: &str, slashes: bool) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = if bytes[i] == b'%' && i + 2 < bytes.len() {
            hex(bytes[i + 1])
                .zip(hex(bytes[i + 2]))
                .map(|(h, l)| h * 16 + l)
        } else {
            None
        };
        if let Some(c) = escape {
            let unreserved = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
            if unreserved || (slashes && matches!(c, b'/' | b'\\')) {
                out.push(c);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    // Only ASCII bytes were produced from escapes; the rest is the input's own UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// RFC 3986 §5.2.4 on an absolute path; `..` never climbs above `/`.
fn resolve_dots(path: &str, merge_slashes: bool) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let body = path.strip_prefix('/').unwrap_or(path);
    let parts: Vec<&str> = body.split('/').collect();
    let last = parts.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, segment) in parts.iter().enumerate() {
        match *segment {
            "." => trailing_slash = i == last,
            ".." => {
                segments.pop();
                trailing_slash = i == last;
            }
            "" if merge_slashes && i != last => {}
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authz25_base_normalization_table() {
        // SEMANTICS AUTHZ-25 (pitfall): rows of (input, expected) under BASE.
        let rows = [
            ("/", "/"),
            ("/v1/payments", "/v1/payments"),
            ("/public/./data/abc/../xyz", "/public/data/xyz"),
            ("/v1/payments/../../admin", "/admin"),
            ("/../../etc", "/etc"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/%61dmin", "/admin"),
            ("/%2e%2e/admin", "/admin"),
            ("/%2E%2E/admin", "/admin"),
            ("/a%2Fb", "/a%2Fb"),
            ("/a%5cb", "/a%5cb"),
            ("/a\\b", "/a/b"),
            ("/a//b", "/a//b"),
            ("/x?q=/../y", "/x?q=/../y"),
            ("/a/../b?q=1", "/b?q=1"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/%7euser", "/~user"),
        ];
        for (input, want) in rows {
            assert_eq!(
                normalize(input, PathNormalization::Base).unwrap(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn authz25_nul_is_rejected_in_every_mode() {
        for mode in [
            PathNormalization::None,
            PathNormalization::Base,
            PathNormalization::MergeSlashes,
            PathNormalization::DecodeAndMergeSlashes,
        ] {
            assert_eq!(normalize("/a%00b", mode), Err(PathError::EncodedNul));
        }
        // In the query it is the app's business.
        assert!(normalize("/a?x=%00", PathNormalization::Base).is_ok());
    }

    #[test]
    fn optional_modes() {
        use PathNormalization::*;
        assert_eq!(normalize("/a//b", MergeSlashes).unwrap(), "/a/b");
        assert_eq!(normalize("/a%2Fb", MergeSlashes).unwrap(), "/a%2Fb");
        assert_eq!(
            normalize("/a%2F%2Fb", DecodeAndMergeSlashes).unwrap(),
            "/a/b"
        );
        assert_eq!(normalize("/a/../b", None).unwrap(), "/a/../b");
        assert!(matches!(normalize("/a/b", Base).unwrap(), Cow::Borrowed(_)));
        assert_eq!(
            "merge_slashes".parse::<PathNormalization>(),
            Ok(MergeSlashes)
        );
        assert!("weird".parse::<PathNormalization>().is_err());
    }
}
