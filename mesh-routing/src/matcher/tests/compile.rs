//! Compile-time behaviour: which blocks apply to a proxy (VS-12, HOST-10), config errors, OR
//! over blocks.

use std::collections::BTreeMap;

use mesh_core::model::{HttpMatchRequest, StringMatch};

use super::{RESOURCE, block, location, parse, proxy_labels, request, try_compile};
use crate::Error;
use crate::matcher::{
    CompileContext, MatchBlock, ProxyIdentity, RequestView, UriMatched, compile_route_matches,
    matches_any,
};

#[test]
fn applies_to_proxy() {
    // SEMANTICS VS-12 (proxy: namespace default, labels app=reviews version=v1) and HOST-10.
    let cases: &[(&str, bool)] = &[
        (r#"{}"#, true),
        (r#"{"sourceLabels":{"app":"reviews"}}"#, true), // VS-12 subset
        (r#"{"sourceLabels":{"app":"reviews","version":"v1"}}"#, true), // VS-12 equal
        (
            r#"{"sourceLabels":{"app":"reviews","version":"v1","x":"y"}}"#,
            false,
        ), // VS-12 superset
        (r#"{"sourceLabels":{"app":"ratings"}}"#, false), // VS-12 other value
        (r#"{"sourceLabels":{"App":"reviews"}}"#, false), // VS-12 keys exact
        (r#"{"sourceNamespace":"default"}"#, true),      // VS-12
        (r#"{"sourceNamespace":"prod"}"#, false),        // VS-12
        (
            r#"{"sourceNamespace":"default","sourceLabels":{"app":"x"}}"#,
            false,
        ), // VS-12 both
        (r#"{"gateways":["mesh"]}"#, true),              // HOST-10
        (r#"{"gateways":["istio-system/gw"]}"#, false),  // HOST-10
        (r#"{"gateways":["istio-system/gw","mesh"]}"#, true), // HOST-10
        (r#"{"gateways":[]}"#, true),                    // HOST-10: defers to the top level
        (r#"{"gateways":["Mesh"]}"#, false),             // HOST-10
    ];
    for (json, applies) in cases {
        assert_eq!(try_compile(json).unwrap().is_some(), *applies, "{json}");
    }
}

#[test]
fn invalid_regex_is_an_error_with_location() {
    // SEMANTICS VS-3: an invalid regex rejects the resource, wherever it is.
    for (json, pattern) in [
        (r#"{"uri":{"regex":"("}}"#, "("),
        (r#"{"method":{"regex":"[z-a]"}}"#, "[z-a]"),
        (r#"{"headers":{"x":{"regex":"a{2,1}"}}}"#, "a{2,1}"),
        (r#"{"withoutHeaders":{"x":{"regex":"(?<"}}}"#, "(?<"),
        (r#"{"queryParams":{"q":{"regex":"\\"}}}"#, "\\"),
        // Would compile once wrapped as `\A(?:a)|(b)\z`; must not.
        (r#"{"uri":{"regex":"a)|(b"}}"#, "a)|(b"),
        // Lookaround is not RE2.
        (r#"{"uri":{"regex":"(?=a)"}}"#, "(?=a)"),
        // Validated even when the block is dropped for this proxy.
        (r#"{"uri":{"regex":"("},"sourceNamespace":"other"}"#, "("),
    ] {
        match try_compile(json) {
            Err(Error::InvalidRegex {
                location,
                resource,
                pattern: p,
                reason,
            }) => {
                assert_eq!(location, super::location(), "{json}");
                assert_eq!(resource, RESOURCE);
                assert_eq!(p, pattern);
                assert!(!reason.is_empty());
            }
            other => panic!("{json}: expected InvalidRegex, got {other:?}"),
        }
    }
}

#[test]
fn invalid_header_name_is_an_error() {
    // SEMANTICS VS-7: keys are header names.
    for key in ["bad header", "", "x:y", "é"] {
        let mut m = HttpMatchRequest::default();
        m.headers.insert(key.into(), StringMatch::Any);
        let location = location();
        let ctx = CompileContext {
            location: &location,
            resource: RESOURCE,
        };
        let labels = BTreeMap::new();
        let proxy = ProxyIdentity {
            namespace: "default",
            labels: &labels,
        };
        match MatchBlock::compile(&m, &proxy, &ctx) {
            Err(Error::InvalidHeader { name, resource, .. }) => {
                assert_eq!(name, key);
                assert_eq!(resource, RESOURCE);
            }
            other => panic!("{key:?}: expected InvalidHeader, got {other:?}"),
        }
    }
}

#[test]
fn jwt_claim_keys_are_never_present() {
    // SEMANTICS VS-7 (ours): `@request.auth.claims.*` names no header a sidecar sees.
    let req = request("GET /", &[("x", b"1")]);
    let view = RequestView::new(&req, 80);
    let b = block(r#"{"headers":{"@request.auth.claims.group":{"exact":"admin"}}}"#);
    assert_eq!(b.matches(&view), None);
    let b = block(r#"{"withoutHeaders":{"@request.auth.claims.group":{}}}"#);
    assert_eq!(b.matches(&view), Some(UriMatched::None));
}

#[test]
fn or_over_blocks_and_catch_all() {
    // SEMANTICS VS-2: blocks are ORed, the first matching one is reported.
    let blocks = [
        block(r#"{"name":"api","uri":{"prefix":"/api"},"headers":{"x":{"exact":"1"}}}"#),
        block(r#"{"name":"health","uri":{"exact":"/health"}}"#),
        block(r#"{"name":"any-api","uri":{"prefix":"/api/"}}"#),
    ];
    let check = |line: &str, headers: &[(&str, &[u8])], want: Option<(usize, UriMatched)>| {
        let req = request(line, headers);
        assert_eq!(
            matches_any(&blocks, &RequestView::new(&req, 80)),
            want,
            "{line}"
        );
    };
    check(
        "GET /api/v1",
        &[("x", b"1")],
        Some((0, UriMatched::Prefix { len: 4 })),
    );
    check("GET /api/v1", &[], Some((2, UriMatched::Prefix { len: 5 })));
    check("GET /health", &[], Some((1, UriMatched::Exact)));
    check("GET /apix", &[], None);
    assert_eq!(blocks[1].name(), "health");
    // An empty slice matches nothing (blocks dropped for this proxy, VS-12).
    let req = request("GET /", &[]);
    assert_eq!(matches_any(&[], &RequestView::new(&req, 80)), None);
    // SEMANTICS VS-1: the catch-all block matches everything.
    let all = MatchBlock::catch_all();
    assert_eq!(
        all.matches(&RequestView::new(&req, 1)),
        Some(UriMatched::None)
    );
    assert_eq!(all.name(), "");
}

#[test]
fn compile_route_matches_cases() {
    let location = location();
    let ctx = CompileContext {
        location: &location,
        resource: RESOURCE,
    };
    let labels = proxy_labels();
    let proxy = ProxyIdentity {
        namespace: "default",
        labels: &labels,
    };
    let req = request("GET /x", &[]);
    let view = RequestView::new(&req, 80);
    // SEMANTICS VS-1: no `match` → matches everything.
    let blocks = compile_route_matches(&[], &proxy, &ctx).unwrap().unwrap();
    assert_eq!(matches_any(&blocks, &view), Some((0, UriMatched::None)));
    // SEMANTICS VS-12: every block dropped → the route does not exist for this proxy.
    let dropped = [
        parse(r#"{"sourceNamespace":"prod"}"#),
        parse(r#"{"gateways":["gw"]}"#),
    ];
    assert!(
        compile_route_matches(&dropped, &proxy, &ctx)
            .unwrap()
            .is_none()
    );
    // SEMANTICS VS-12: dropped blocks leave the others, in order.
    let mixed = [
        parse(r#"{"name":"a","sourceNamespace":"prod"}"#),
        parse(r#"{"name":"b","uri":{"prefix":"/"}}"#),
    ];
    let blocks = compile_route_matches(&mixed, &proxy, &ctx)
        .unwrap()
        .unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].name(), "b");
    // SEMANTICS VS-3: an error in any block is the route's error.
    let bad = [
        parse(r#"{"uri":{"prefix":"/"}}"#),
        parse(r#"{"uri":{"regex":"("}}"#),
    ];
    assert!(matches!(
        compile_route_matches(&bad, &proxy, &ctx),
        Err(Error::InvalidRegex { .. })
    ));
}
