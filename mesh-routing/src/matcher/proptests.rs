//! Property tests: each matcher against a naive reference implementation.

use std::collections::BTreeMap;

use mesh_core::model::{HttpMatchRequest, Location, StringMatch};
use proptest::prelude::*;

use super::{CompileContext, MatchBlock, ProxyIdentity, RequestView, StringMatcher, UriMatched};

fn with_ctx<T>(f: impl FnOnce(&CompileContext<'_>) -> T) -> T {
    let location = Location::default();
    f(&CompileContext {
        location: &location,
        resource: "VirtualService default/p",
    })
}

fn matcher(m: StringMatch, ignore_case: bool) -> StringMatcher {
    with_ctx(|ctx| StringMatcher::from_config(&m, ignore_case, ctx)).unwrap()
}

fn compile(m: &HttpMatchRequest) -> MatchBlock {
    let labels = BTreeMap::new();
    let proxy = ProxyIdentity {
        namespace: "default",
        labels: &labels,
    };
    with_ctx(|ctx| MatchBlock::compile(m, &proxy, ctx))
        .unwrap()
        .unwrap()
}

/// Short strings over an alphabet that makes collisions, case pairs and non-ASCII likely.
fn text() -> impl Strategy<Value = String> {
    "[aAbB/é%+ ]{0,6}"
}

/// Query-parameter names and values: no `&`, `=`, `#` or space (the URI parser's business).
fn token() -> impl Strategy<Value = String> {
    "[abA%2+.]{0,3}"
}

/// Header values: visible ASCII and inner spaces, never leading/trailing whitespace issues.
fn header_value() -> impl Strategy<Value = String> {
    "[ab,]{0,3}"
}

proptest! {
    /// SEMANTICS VS-3: exact is byte equality.
    #[test]
    fn exact_is_equality(want in text(), value in text()) {
        let m = matcher(StringMatch::Exact(want.clone()), false);
        prop_assert_eq!(m.matches(&value), value == want);
        prop_assert_eq!(m.matches_bytes(value.as_bytes()), value == want);
    }

    /// SEMANTICS VS-3, VS-5: prefix is a plain string prefix; the matched length is the prefix's.
    #[test]
    fn prefix_is_starts_with(want in text(), value in text(), tail in text()) {
        let m = matcher(StringMatch::Prefix(want.clone()), false);
        prop_assert_eq!(m.matches(&value), value.as_bytes().starts_with(want.as_bytes()));
        let joined = format!("{want}{tail}");
        prop_assert!(m.matches(&joined));
        prop_assert_eq!(m.matched_prefix_len(joined.as_bytes()), Some(want.len()));
    }

    /// SEMANTICS VS-6: ignore-case exact/prefix = ASCII-lower-cased comparison.
    #[test]
    fn ignore_case_is_ascii_lowercase(want in text(), value in text()) {
        let (w, v) = (want.to_ascii_lowercase(), value.to_ascii_lowercase());
        let exact = matcher(StringMatch::Exact(want.clone()), true);
        prop_assert_eq!(exact.matches(&value), v == w);
        let prefix = matcher(StringMatch::Prefix(want.clone()), true);
        prop_assert_eq!(prefix.matches(&value), v.as_bytes().starts_with(w.as_bytes()));
    }

    /// SEMANTICS VS-3, VS-6: an escaped literal as regex is a full (anchored) match, and
    /// ignoreUriCase does not reach it.
    #[test]
    fn literal_regex_is_exact(want in text(), value in text(), ignore_case in any::<bool>()) {
        let m = matcher(StringMatch::Regex(regex::escape(&want)), ignore_case);
        prop_assert_eq!(m.matches(&value), value == want);
        prop_assert_eq!(m.matches_bytes(value.as_bytes()), value == want);
    }

    /// SEMANTICS VS-4, VS-5, VS-6: a uri prefix block against the path, query ignored.
    #[test]
    fn uri_prefix_block(want in "/[aAbB/]{0,4}", path in "/[aAbB/]{0,6}", query in token(), ic in any::<bool>()) {
        let mut m = HttpMatchRequest::default();
        m.uri = Some(StringMatch::Prefix(want.clone()));
        m.ignore_uri_case = ic;
        let b = compile(&m);
        let req = http::Request::get(format!("{path}?{query}")).body(()).unwrap();
        let (p, w) = if ic {
            (path.to_ascii_lowercase(), want.to_ascii_lowercase())
        } else {
            (path.clone(), want.clone())
        };
        let expected = p.starts_with(&w).then_some(UriMatched::Prefix { len: want.len() });
        prop_assert_eq!(b.matches(&RequestView::new(&req, 80)), expected);
    }

    /// SEMANTICS VS-9: the first occurrence's value, `?key` = "", empty pieces skipped.
    #[test]
    fn query_first_value(
        pieces in proptest::collection::vec((token(), proptest::option::of(token())), 0..6),
        name in token(),
        want in token(),
    ) {
        let query = pieces
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect::<Vec<_>>()
            .join("&");
        // Naive reference: the first non-empty piece whose name is `name`.
        let reference = pieces
            .iter()
            .filter(|(k, v)| !(k.is_empty() && v.is_none()))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone().unwrap_or_default());
        let req = http::Request::get(format!("/p?{query}")).body(()).unwrap();
        let view = RequestView::new(&req, 80);
        prop_assert_eq!(view.query_param(&name), reference.as_deref());

        let mut m = HttpMatchRequest::default();
        m.query_params.insert(name.clone(), StringMatch::Exact(want.clone()));
        let exact = compile(&m).matches(&view).is_some();
        prop_assert_eq!(exact, reference.as_deref() == Some(want.as_str()));
        m.query_params.insert(name, StringMatch::Any);
        prop_assert_eq!(compile(&m).matches(&view).is_some(), reference.is_some());
    }

    /// SEMANTICS VS-7, VS-8: a header condition holds when any one line matches on its own;
    /// withoutHeaders is its negation; `{}` is presence.
    #[test]
    fn header_any_line(lines in proptest::collection::vec(header_value(), 0..4), want in header_value()) {
        let mut b = http::Request::get("/");
        for line in &lines {
            b = b.header("x-h", line.as_str());
        }
        let req = b.body(()).unwrap();
        let view = RequestView::new(&req, 80);

        let exact_ref = lines.contains(&want);
        let prefix_ref = lines.iter().any(|l| l.starts_with(want.as_str()));
        for (sm, reference) in [
            (StringMatch::Exact(want.clone()), exact_ref),
            (StringMatch::Prefix(want.clone()), prefix_ref),
            (StringMatch::Regex(regex::escape(&want)), exact_ref),
            (StringMatch::Any, !lines.is_empty()),
        ] {
            let mut m = HttpMatchRequest::default();
            m.headers.insert("X-H".into(), sm.clone());
            prop_assert_eq!(compile(&m).matches(&view).is_some(), reference, "headers {:?}", sm);
            let mut m = HttpMatchRequest::default();
            m.without_headers.insert("x-h".into(), sm.clone());
            prop_assert_eq!(compile(&m).matches(&view).is_some(), !reference, "without {:?}", sm);
        }
    }
}
