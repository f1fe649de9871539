//! `RequestView::new`, `explain_mismatch` messages and `StringMatcher` accessors.

use mesh_core::model::StringMatch;

use super::{Headers, RESOURCE, block, location, request};
use crate::matcher::{CompileContext, RequestView, StringMatcher};

#[test]
fn request_view() {
    // SEMANTICS VS-4, VS-10, HOST-6: what the view borrows from a request.
    let req = request(
        "POST https://api.example.com:8443/a/b?x=1&y",
        &[("host", b"other")],
    );
    let v = RequestView::new(&req, 8443);
    assert_eq!(v.method, http::Method::POST);
    assert_eq!(v.scheme, "https");
    assert_eq!(v.authority, "api.example.com:8443");
    assert_eq!(v.path, "/a/b");
    assert_eq!(v.query, Some("x=1&y"));
    assert_eq!(v.port, 8443);
    assert_eq!(v.query_param("x"), Some("1"));
    assert_eq!(v.query_param("y"), Some(""));
    assert_eq!(v.query_param("z"), None);

    let req = request("GET /p", &[("host", b"reviews:9080"), ("host", b"second")]);
    let v = RequestView::new(&req, 9080);
    assert_eq!(
        (v.scheme, v.authority, v.path, v.query),
        ("http", "reviews:9080", "/p", None)
    );

    let req = request("GET /p?", &[]);
    let v = RequestView::new(&req, 80);
    assert_eq!((v.authority, v.query), ("", Some("")));

    let req = request("GET http://h", &[]);
    assert_eq!(RequestView::new(&req, 80).path, "/");
    let req = request("CONNECT h:443", &[]);
    let v = RequestView::new(&req, 443);
    assert_eq!((v.authority, v.path), ("h:443", "/"));

    let req = request("GET /", &[("host", b"h\xff")]);
    assert_eq!(RequestView::new(&req, 80).authority, "");
}

#[test]
fn explain_names_the_first_failing_condition() {
    let cases: &[(&str, &str, Headers, u16, &str)] = &[
        (
            r#"{"uri":{"prefix":"/api"}}"#,
            "GET /x?q=1",
            &[],
            80,
            r#"uri prefix "/api" does not match "/x""#,
        ),
        (
            r#"{"uri":{"exact":"/A"},"ignoreUriCase":true}"#,
            "GET /x",
            &[],
            80,
            r#"uri exact "/A" (ignoreUriCase) does not match "/x""#,
        ),
        (
            r#"{"uri":{"regex":"/v\\d"}}"#,
            "GET /v1/x",
            &[],
            80,
            r#"uri regex "/v\\d" does not match "/v1/x""#,
        ),
        (
            r#"{"headers":{"x-canary":{}}}"#,
            "GET /",
            &[],
            80,
            "header x-canary absent",
        ),
        (
            r#"{"headers":{"x":{"exact":"1"}}}"#,
            "GET /",
            &[("x", b"2")],
            80,
            r#"header x exact "1" does not match "2""#,
        ),
        (
            r#"{"headers":{"x":{"exact":"a,b"}}}"#,
            "GET /",
            &[("x", b"a"), ("x", b"b")],
            80,
            r#"header x exact "a,b" matches none of "a", "b""#,
        ),
        (
            r#"{"withoutHeaders":{"x-canary":{}}}"#,
            "GET /",
            &[("x-canary", b"")],
            80,
            "withoutHeaders x-canary present",
        ),
        (
            r#"{"withoutHeaders":{"x":{"prefix":"a"}}}"#,
            "GET /",
            &[("x", b"b"), ("x", b"ab")],
            80,
            r#"withoutHeaders x prefix "a" matches "ab""#,
        ),
        (
            r#"{"queryParams":{"a":{"exact":"2"}}}"#,
            "GET /?a=1&a=2",
            &[],
            80,
            r#"query parameter a exact "2" does not match "1""#,
        ),
        (
            r#"{"queryParams":{"a":{}}}"#,
            "GET /?b",
            &[],
            80,
            "query parameter a absent",
        ),
        (
            r#"{"method":{"exact":"GET"}}"#,
            "PUT /",
            &[],
            80,
            r#"method exact "GET" does not match "PUT""#,
        ),
        (
            r#"{"authority":{"exact":"a"}}"#,
            "GET http://a:80/",
            &[],
            80,
            r#"authority exact "a" does not match "a:80""#,
        ),
        (
            r#"{"scheme":{"exact":"https"}}"#,
            "GET /",
            &[],
            80,
            r#"scheme exact "https" does not match "http""#,
        ),
        (
            r#"{"port":9080}"#,
            "GET /",
            &[],
            80,
            "port 9080 does not match destination port 80",
        ),
        // Port is checked before uri.
        (
            r#"{"port":9080,"uri":{"exact":"/"}}"#,
            "GET /x",
            &[],
            80,
            "port 9080 does not match destination port 80",
        ),
        (
            r#"{"headers":{"@request.auth.claims.g":{}}}"#,
            "GET /",
            &[],
            80,
            "header @request.auth.claims.g absent (JWT claims are not available to sidecars)",
        ),
    ];
    for (json, line, headers, port, want) in cases {
        let req = request(line, headers);
        let got = block(json).explain_mismatch(&RequestView::new(&req, *port));
        assert_eq!(got.as_deref(), Some(*want), "{json}");
    }
    let req = request("GET /api", &[]);
    assert_eq!(
        block(r#"{"uri":{"prefix":"/api"}}"#).explain_mismatch(&RequestView::new(&req, 80)),
        None
    );
}

#[test]
fn string_matcher_accessors() {
    let location = location();
    let ctx = CompileContext {
        location: &location,
        resource: RESOURCE,
    };
    let m = StringMatcher::from_config(&StringMatch::Prefix("/A".into()), true, &ctx).unwrap();
    // SEMANTICS VS-6, VS-19: the matched prefix length is the configured prefix's.
    assert_eq!(m.matched_prefix_len(b"/a/b"), Some(2));
    assert_eq!(m.matched_prefix_len(b"/b"), None);
    assert_eq!(
        (m.match_type(), m.value(), m.ignores_case()),
        (Some("prefix"), Some("/A"), true)
    );
    assert_eq!(m.to_string(), r#"prefix "/A" (ignoreUriCase)"#);
    // SEMANTICS VS-6: ignore_case does not reach a regex.
    let r = StringMatcher::from_config(&StringMatch::Regex("a".into()), true, &ctx).unwrap();
    assert!(!r.ignores_case());
    assert!(!r.matches("A"));
    assert!(r.matches("a"));
    assert_eq!(r.matched_prefix_len(b"a"), None);
    // SEMANTICS VS-6: ASCII only: no Unicode case folding.
    let e = StringMatcher::from_config(&StringMatch::Exact("/É".into()), true, &ctx).unwrap();
    assert!(!e.matches("/é"));
    assert!(e.matches("/É"));
    // SEMANTICS VS-3: `{}` matches any value.
    let any = StringMatcher::from_config(&StringMatch::Any, false, &ctx).unwrap();
    assert!(any.is_any() && any.matches("") && any.matches_bytes(b"\xff"));
    assert_eq!(any.to_string(), "any");
    // The uri accessor on a block.
    assert!(block(r#"{"uri":{}}"#).uri().is_none());
    assert_eq!(
        block(r#"{"uri":{"exact":"/"}}"#)
            .uri()
            .and_then(|m| m.value()),
        Some("/")
    );
}
