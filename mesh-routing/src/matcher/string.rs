//! [`StringMatcher`]: one compiled Istio `StringMatch` (SEMANTICS VS-3, VS-6).

use std::fmt;

use mesh_core::model::StringMatch;

use super::{CompileContext, UriMatched};
use crate::Error;

/// A compiled `StringMatch`: `{}` (any value), `exact`, `prefix` or `regex` (SEMANTICS VS-3).
///
/// - `exact` and `prefix` compare bytes; with `ignore_case` they compare ASCII
///   case-insensitively, without allocating (VS-6).
/// - `regex` is RE2 syntax as the `regex` crate reads it, and must match the **whole** value
///   (`/v\d` does not match `/v1/x`). It is compiled once, in [`StringMatcher::from_config`];
///   `ignore_case` does not apply to it (write `(?i)` in the pattern).
///   The `regex` crate's syntax is RE2's, with one difference in meaning: the Perl classes
///   `\d`, `\w`, `\s` and `\b` are Unicode-aware here and ASCII-only in RE2 (`(?-u:\d)`
///   gives RE2's); paths and query strings are ASCII, so only header values can tell.
/// - `{}` matches every value. Whether the value is there at all (header presence, VS-7) is the
///   caller's question, not this type's.
///
/// **Non-UTF-8 values** ([`StringMatcher::matches_bytes`], used for header values): the regex
/// is compiled as a byte regex (`regex::bytes`) with Unicode mode on, so it runs on the raw
/// bytes. On valid UTF-8 it behaves exactly as a `&str` regex; bytes that are not UTF-8 are
/// matched by no Unicode class (not even `.`), only by `(?-u:...)` byte classes — so
/// `regex: ".*"` does not match a value holding such a byte, and `(?s-u:.*)` does.
///
/// ```
/// use mesh_core::model::{Location, StringMatch};
/// use mesh_routing::matcher::{CompileContext, StringMatcher};
///
/// let location = Location::default();
/// let ctx = CompileContext { location: &location, resource: "VirtualService default/r" };
/// let m = StringMatcher::from_config(&StringMatch::Regex(r"/v\d".into()), false, &ctx)?;
/// assert!(m.matches("/v1"));
/// assert!(!m.matches("/v1/x")); // anchored: the whole value must match
/// # Ok::<(), mesh_routing::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct StringMatcher {
    kind: Kind,
    ignore_case: bool,
}

#[derive(Clone, Debug)]
enum Kind {
    Any,
    Exact(Box<str>),
    Prefix(Box<str>),
    Regex {
        /// The pattern as written, for messages.
        pattern: Box<str>,
        /// `\A(?:pattern)\z`.
        anchored: regex::bytes::Regex,
    },
}

impl StringMatcher {
    /// Compiles `m`. `ignore_case` makes `exact` and `prefix` ASCII case-insensitive and leaves
    /// `regex` and `{}` alone (VS-6; only `uri` sets it).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRegex`] when the pattern is not valid RE2/`regex` syntax (VS-3), and
    /// [`Error::UnsupportedMatch`] for a match type this version does not know.
    #[allow(
        clippy::disallowed_methods,
        reason = "the one place a StringMatch regex is compiled: once per snapshot (VS-3)"
    )]
    pub fn from_config(
        m: &StringMatch,
        ignore_case: bool,
        ctx: &CompileContext<'_>,
    ) -> Result<Self, Error> {
        let kind = match m {
            StringMatch::Any => Kind::Any,
            StringMatch::Exact(v) => Kind::Exact(v.as_str().into()),
            StringMatch::Prefix(v) => Kind::Prefix(v.as_str().into()),
            StringMatch::Regex(pattern) => {
                let invalid = |e: regex::Error| Error::InvalidRegex {
                    location: ctx.location.clone(),
                    resource: ctx.resource.to_owned(),
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                };
                // The pattern on its own first: wrapped, a pattern such as `a)|(b` would
                // compile into something the author did not write.
                regex::bytes::Regex::new(pattern).map_err(invalid)?;
                // A pattern that ends in a verbose-mode comment (`(?x)a # note`) would comment
                // out the wrapper's `)\z`; the newline ends the comment and, in verbose mode, is
                // itself ignored. Only then does the first form fail, so the retry is exact.
                let anchored = regex::bytes::Regex::new(&format!(r"\A(?:{pattern})\z"))
                    .or_else(|_| regex::bytes::Regex::new(&format!("\\A(?:{pattern}\n)\\z")))
                    .map_err(invalid)?;
                Kind::Regex {
                    pattern: pattern.as_str().into(),
                    anchored,
                }
            }
            other => {
                return Err(Error::UnsupportedMatch {
                    location: ctx.location.clone(),
                    resource: ctx.resource.to_owned(),
                    match_type: other.key().unwrap_or("?").to_owned(),
                });
            }
        };
        Ok(Self { kind, ignore_case })
    }

    /// Whether `value` satisfies the condition. Does not allocate.
    pub fn matches(&self, value: &str) -> bool {
        self.matches_bytes(value.as_bytes())
    }

    /// Whether the bytes `value` satisfy the condition (for header values, which may be
    /// non-UTF-8): `exact`/`prefix` compare bytes, `regex` runs as a byte regex (see the type
    /// docs). Does not allocate.
    pub fn matches_bytes(&self, value: &[u8]) -> bool {
        match &self.kind {
            Kind::Any => true,
            Kind::Exact(want) => {
                let want = want.as_bytes();
                if self.ignore_case {
                    value.eq_ignore_ascii_case(want)
                } else {
                    value == want
                }
            }
            Kind::Prefix(want) => self.prefix_len(value, want.as_bytes()).is_some(),
            Kind::Regex { anchored, .. } => anchored.is_match(value),
        }
    }

    /// For a `prefix` matcher that matches `value`, the length in bytes of the matched prefix
    /// (the configured prefix's length; VS-19 rewrites exactly that many bytes).
    pub fn matched_prefix_len(&self, value: &[u8]) -> Option<usize> {
        match &self.kind {
            Kind::Prefix(want) => self.prefix_len(value, want.as_bytes()),
            _ => None,
        }
    }

    /// As a `uri` condition on `path`: which kind matched, with the prefix length (VS-19).
    pub(super) fn uri_match(&self, path: &str) -> Option<UriMatched> {
        let path = path.as_bytes();
        match &self.kind {
            Kind::Any => Some(UriMatched::None),
            Kind::Exact(_) => self.matches_bytes(path).then_some(UriMatched::Exact),
            Kind::Prefix(want) => self
                .prefix_len(path, want.as_bytes())
                .map(|len| UriMatched::Prefix { len }),
            Kind::Regex { anchored, .. } => anchored.is_match(path).then_some(UriMatched::Regex),
        }
    }

    fn prefix_len(&self, value: &[u8], want: &[u8]) -> Option<usize> {
        let head = value.get(..want.len())?;
        let ok = if self.ignore_case {
            head.eq_ignore_ascii_case(want)
        } else {
            head == want
        };
        ok.then_some(want.len())
    }

    /// `true` for `{}`, which matches any value.
    pub fn is_any(&self) -> bool {
        matches!(self.kind, Kind::Any)
    }

    /// The YAML key of the match type (`exact`, `prefix`, `regex`); `None` for `{}`.
    pub fn match_type(&self) -> Option<&'static str> {
        match self.kind {
            Kind::Any => None,
            Kind::Exact(_) => Some("exact"),
            Kind::Prefix(_) => Some("prefix"),
            Kind::Regex { .. } => Some("regex"),
        }
    }

    /// The configured string or pattern, as written; `None` for `{}`.
    pub fn value(&self) -> Option<&str> {
        match &self.kind {
            Kind::Any => None,
            Kind::Exact(v) | Kind::Prefix(v) | Kind::Regex { pattern: v, .. } => Some(v),
        }
    }

    /// Whether `exact`/`prefix` compare ASCII case-insensitively (`ignoreUriCase`, VS-6).
    /// Always `false` for `regex` and `{}`, which it does not affect.
    pub fn ignores_case(&self) -> bool {
        self.ignore_case && matches!(self.kind, Kind::Exact(_) | Kind::Prefix(_))
    }
}

/// The condition as `explain` prints it: `exact "GET"`, `prefix "/api" (ignoreUriCase)`,
/// `regex "/v\\d+"`, or `any` for `{}`.
impl fmt::Display for StringMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.match_type(), self.value()) {
            (Some(key), Some(value)) => write!(f, "{key} {value:?}")?,
            _ => f.write_str("any")?,
        }
        if self.ignores_case() {
            f.write_str(" (ignoreUriCase)")?;
        }
        Ok(())
    }
}
