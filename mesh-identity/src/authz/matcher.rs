//! Value matching shared by every AuthorizationPolicy field (SEMANTICS AUTHZ-9, AUTHZ-10).
//!
//! Patterns are classified once, when a table is compiled: `abc` exact, `abc*` prefix,
//! `*abc` suffix, `*` presence (any non-empty value). Any other `*` (`a*c`, `**`) is literal.
//! Paths containing `{*}` or `{**}` are URI templates. Matching works on bytes and never
//! allocates.

/// How a [`StrMatcher`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrKind {
    /// The whole value equals the pattern.
    Exact,
    /// The value starts with the pattern (`abc*`).
    Prefix,
    /// The value ends with the pattern (`*abc`).
    Suffix,
    /// The value is present and non-empty (`*`).
    Presence,
}

/// One compiled string pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrMatcher {
    kind: StrKind,
    value: String,
    ignore_case: bool,
}

impl StrMatcher {
    /// Classifies `pattern` per AUTHZ-9 (case-sensitive).
    pub fn new(pattern: &str) -> StrMatcher {
        let (kind, value) = if pattern == "*" {
            (StrKind::Presence, "")
        } else if let Some(rest) = pattern.strip_suffix('*').filter(|r| !r.contains('*')) {
            (StrKind::Prefix, rest)
        } else if let Some(rest) = pattern.strip_prefix('*').filter(|r| !r.contains('*')) {
            (StrKind::Suffix, rest)
        } else {
            (StrKind::Exact, pattern)
        };
        StrMatcher {
            kind,
            value: value.to_owned(),
            ignore_case: false,
        }
    }

    /// Classifies `pattern`, comparing ASCII case-insensitively (`hosts`, AUTHZ-16).
    pub fn new_ignore_case(pattern: &str) -> StrMatcher {
        StrMatcher {
            ignore_case: true,
            ..StrMatcher::new(pattern)
        }
    }

    /// The classification.
    pub fn kind(&self) -> StrKind {
        self.kind
    }

    /// The pattern without its `*`.
    pub(crate) fn value(&self) -> &str {
        &self.value
    }

    /// Whether comparison ignores ASCII case.
    pub(crate) fn ignores_case(&self) -> bool {
        self.ignore_case
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &[u8]) -> bool {
        let pat = self.value.as_bytes();
        let eq = |a: &[u8], b: &[u8]| {
            if self.ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match self.kind {
            StrKind::Presence => !value.is_empty(),
            StrKind::Exact => eq(value, pat),
            StrKind::Prefix => value.len() >= pat.len() && eq(&value[..pat.len()], pat),
            StrKind::Suffix => {
                value.len() >= pat.len() && eq(&value[value.len() - pat.len()..], pat)
            }
        }
    }
}

/// One piece of a URI template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// `{*}`: one non-empty segment.
    One,
}

/// A compiled `paths` URI template (AUTHZ-10).
///
/// `{*}` matches one non-empty segment; `{**}` (last operator only) matches the rest of the path,
/// zero or more segments, followed by the literal tail. A tail of exactly `/` after `{**}` is
/// absorbed so that `/foo/{**}/` matches `/foo/bar/baz.txt` as the istio/api docs state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate {
    head: Vec<Piece>,
    /// `Some(tail)` when the template has `{**}`.
    rest: Option<String>,
}

impl PathTemplate {
    /// Whether `pattern` is a template (contains `{*}` or `{**}`).
    pub fn is_template(pattern: &str) -> bool {
        pattern.contains("{*}") || pattern.contains("{**}")
    }

    /// Compiles a template; `None` if invalid (`*`, `{`, `}` outside an operator, an operator
    /// sharing its segment with other characters, or `{**}` not last).
    pub fn parse(pattern: &str) -> Option<PathTemplate> {
        let mut head = Vec::new();
        let mut rest = None;
        for (i, seg) in pattern.split('/').enumerate() {
            let op = match seg {
                "{*}" => Some(false),
                "{**}" => Some(true),
                s if s.contains(['*', '{', '}']) => return None,
                _ => None,
            };
            if let Some(tail) = rest.as_mut() {
                // After `{**}` only literal segments may follow.
                if op.is_some() {
                    return None;
                }
                push_str(tail, "/", seg);
                continue;
            }
            if i > 0 {
                push_literal(&mut head, "/");
            }
            match op {
                Some(false) => head.push(Piece::One),
                Some(true) => rest = Some(String::new()),
                None => push_literal(&mut head, seg),
            }
        }
        Some(PathTemplate { head, rest })
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        let mut p = path.as_bytes();
        for piece in &self.head {
            match piece {
                Piece::Literal(l) => match p.strip_prefix(l.as_bytes()) {
                    Some(r) => p = r,
                    None => return false,
                },
                Piece::One => {
                    let n = p.iter().position(|b| *b == b'/').unwrap_or(p.len());
                    if n == 0 {
                        return false;
                    }
                    p = &p[n..];
                }
            }
        }
        match &self.rest {
            None => p.is_empty(),
            Some(tail) if tail.is_empty() || tail == "/" => true,
            Some(tail) => p.ends_with(tail.as_bytes()),
        }
    }
}

fn push_str(s: &mut String, sep: &str, seg: &str) {
    s.push_str(sep);
    s.push_str(seg);
}

fn push_literal(head: &mut Vec<Piece>, s: &str) {
    if let Some(Piece::Literal(l)) = head.last_mut() {
        l.push_str(s);
    } else if !s.is_empty() {
        head.push(Piece::Literal(s.to_owned()));
    }
}

/// A compiled `paths` value: a plain pattern or a URI template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatcher {
    /// AUTHZ-9 forms.
    Str(StrMatcher),
    /// AUTHZ-10 template.
    Template(PathTemplate),
}

impl PathMatcher {
    /// Compiles a `paths` value; `None` for an invalid template.
    pub fn parse(pattern: &str) -> Option<PathMatcher> {
        if PathTemplate::is_template(pattern) {
            PathTemplate::parse(pattern).map(PathMatcher::Template)
        } else {
            Some(PathMatcher::Str(StrMatcher::new(pattern)))
        }
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatcher::Str(m) => m.matches(path.as_bytes()),
            PathMatcher::Template(t) => t.matches(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn classification() {
        assert_eq!(StrMatcher::new("*").kind(), StrKind::Presence);
        assert_eq!(StrMatcher::new("abc*").kind(), StrKind::Prefix);
        assert_eq!(StrMatcher::new("*abc").kind(), StrKind::Suffix);
        assert_eq!(StrMatcher::new("a*c").kind(), StrKind::Exact);
        assert_eq!(StrMatcher::new("**").kind(), StrKind::Exact);
        assert!(StrMatcher::new("**").matches(b"**"));
        assert!(!StrMatcher::new("*").matches(b""));
        assert!(StrMatcher::new_ignore_case("Example.COM").matches(b"example.com"));
        assert!(StrMatcher::new_ignore_case("*.Example.com").matches(b"a.EXAMPLE.com"));
    }

    #[test]
    fn templates() {
        let t = |p: &str| PathTemplate::parse(p).unwrap();
        assert!(t("/foo/{*}").matches("/foo/bar"));
        assert!(!t("/foo/{*}").matches("/foo/bar/baz"));
        assert!(!t("/foo/{*}").matches("/foo/"));
        for ok in ["/foo/bar/", "/foo/bar/baz.txt", "/foo//"] {
            assert!(t("/foo/{**}/").matches(ok), "{ok}");
        }
        assert!(!t("/foo/{**}/").matches("/bar/foo/bar"));
        assert!(t("/foo/{*}/bar/{**}").matches("/foo/buzz/bar/"));
        assert!(t("/foo/{*}/bar/{**}").matches("/foo/buzz/bar/baz"));
        assert!(t("/{**}/x.txt").matches("/a/b/x.txt"));
        assert!(!t("/{**}/x.txt").matches("/a/b/y.txt"));
        for bad in [
            "/*/baz/{*}",
            "/**/baz/{*}",
            "/{**}/foo/{*}",
            "/foo/{*}.txt",
            "/{a}/{*}",
        ] {
            assert_eq!(PathTemplate::parse(bad), None, "{bad}");
        }
    }

    fn naive(pattern: &str, value: &str) -> bool {
        if pattern == "*" {
            return !value.is_empty();
        }
        let stars = pattern.matches('*').count();
        if stars == 1 && pattern.ends_with('*') {
            return value.starts_with(&pattern[..pattern.len() - 1]);
        }
        if stars == 1 && pattern.starts_with('*') {
            return value.ends_with(&pattern[1..]);
        }
        pattern == value
    }

    proptest! {
        #[test]
        fn agrees_with_naive(pattern in "\\*?[ab*]{0,4}\\*?", value in "[ab*]{0,6}") {
            prop_assert_eq!(StrMatcher::new(&pattern).matches(value.as_bytes()), naive(&pattern, &value));
        }

        #[test]
        fn prefix_of_value_always_matches(value in "[a-z/]{0,8}", cut in 0usize..8) {
            let cut = cut.min(value.len());
            let pattern = format!("{}*", &value[..cut]);
            prop_assert_eq!(StrMatcher::new(&pattern).matches(value.as_bytes()), pattern != "*" || !value.is_empty());
            let suffix = format!("*{}", &value[cut..]);
            prop_assert_eq!(StrMatcher::new(&suffix).matches(value.as_bytes()), suffix != "*" || !value.is_empty());
        }
    }
}
