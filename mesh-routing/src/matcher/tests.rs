//! Table-driven tests of the matchers; each row names the SEMANTICS rule it checks.

use std::collections::BTreeMap;

use mesh_core::model::{HttpMatchRequest, Location};

use super::{CompileContext, MatchBlock, ProxyIdentity, RequestView, UriMatched};
use crate::Error;

mod compile;
mod explain;

const RESOURCE: &str = "VirtualService default/reviews";

fn location() -> Location {
    Location::new("vs.yaml", 3, 1)
}

/// The proxy the tests compile for: namespace `default`, labels `app=reviews, version=v1`.
fn proxy_labels() -> BTreeMap<String, String> {
    [("app", "reviews"), ("version", "v1")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn parse(json: &str) -> HttpMatchRequest {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("bad test block {json}: {e}"))
}

/// Compiles a block written as JSON (the YAML shape) for the test proxy.
fn try_compile(json: &str) -> Result<Option<MatchBlock>, Error> {
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
    MatchBlock::compile(&parse(json), &proxy, &ctx)
}

fn block(json: &str) -> MatchBlock {
    try_compile(json)
        .unwrap()
        .expect("block applies to the test proxy")
}

/// `"GET http://a/x"` or `"GET /x"` plus header lines (a name may repeat: one line each).
fn request(line: &str, headers: &[(&str, &[u8])]) -> http::Request<()> {
    let (method, target) = line.split_once(' ').expect("METHOD TARGET");
    let mut b = http::Request::builder().method(method).uri(target);
    for (name, value) in headers {
        b = b.header(*name, http::HeaderValue::from_bytes(value).unwrap());
    }
    b.body(()).unwrap()
}

/// Header lines of a test request.
type Headers = &'static [(&'static str, &'static [u8])];

struct Case {
    block: &'static str,
    request: &'static str,
    headers: Headers,
    port: u16,
    want: Option<UriMatched>,
}

const fn case(
    block: &'static str,
    request: &'static str,
    headers: Headers,
    want: Option<UriMatched>,
) -> Case {
    Case {
        block,
        request,
        headers,
        port: 80,
        want,
    }
}

const NONE: Option<UriMatched> = Some(UriMatched::None);
const EXACT: Option<UriMatched> = Some(UriMatched::Exact);
const REGEX: Option<UriMatched> = Some(UriMatched::Regex);
const fn prefix(len: usize) -> Option<UriMatched> {
    Some(UriMatched::Prefix { len })
}
const NO: Option<UriMatched> = None;

#[rustfmt::skip]
const CASES: &[Case] = &[
    // SEMANTICS VS-2: `{}` matches everything (ours).
    case(r#"{}"#, "GET /anything?x=1", &[], NONE),
    case(r#"{}"#, "DELETE http://h:1/", &[("x", b"y")], NONE),
    // SEMANTICS VS-2: conditions of one block are ANDed.
    case(r#"{"uri":{"prefix":"/api"},"headers":{"x":{"exact":"1"}}}"#, "GET /api/v1", &[("x", b"1")], prefix(4)),
    case(r#"{"uri":{"prefix":"/api"},"headers":{"x":{"exact":"1"}}}"#, "GET /api/v1", &[], NO),
    case(r#"{"uri":{"prefix":"/api"},"headers":{"x":{"exact":"1"}}}"#, "GET /api/v1", &[("x", b"2")], NO),
    case(r#"{"uri":{"prefix":"/api"},"headers":{"x":{"exact":"1"}}}"#, "GET /health", &[("x", b"1")], NO),
    case(r#"{"uri":{"exact":"/health"},"method":{"exact":"GET"}}"#, "POST /health", &[], NO),
    // SEMANTICS VS-3: exact and prefix are case-sensitive byte comparisons.
    case(r#"{"uri":{"exact":"/v1"}}"#, "GET /v1", &[], EXACT),
    case(r#"{"uri":{"exact":"/v1"}}"#, "GET /v1/", &[], NO),
    case(r#"{"uri":{"exact":"/v1"}}"#, "GET /V1", &[], NO),
    case(r#"{"uri":{"prefix":"/v1"}}"#, "GET /V1/x", &[], NO),
    case(r#"{"uri":{"prefix":""}}"#, "GET /x", &[], prefix(0)),
    // SEMANTICS VS-3: regex is an anchored full match.
    case(r#"{"uri":{"regex":"/v\\d"}}"#, "GET /v1/x", &[], NO),
    case(r#"{"uri":{"regex":"/v\\d"}}"#, "GET /v1", &[], REGEX),
    case(r#"{"uri":{"regex":"/v\\d"}}"#, "GET /x/v1", &[], NO),
    case(r#"{"uri":{"regex":"/v\\d(/.*)?"}}"#, "GET /v1/x", &[], REGEX),
    case(r#"{"uri":{"regex":"/a|/ab"}}"#, "GET /ab", &[], REGEX),
    case(r#"{"uri":{"regex":"/a|/ab"}}"#, "GET /abc", &[], NO),
    case(r#"{"uri":{"regex":"(?i)/api"}}"#, "GET /API", &[], REGEX),
    case(r#"{"uri":{"regex":"(?m)/a$"}}"#, "GET /a", &[], REGEX),
    case(r#"{"uri":{"regex":""}}"#, "GET /", &[], NO),
    case(r#"{"uri":{"regex":"(?x) /a  # a comment"}}"#, "GET /a", &[], REGEX),
    case(r#"{"uri":{"regex":"(?x) /a  # a comment"}}"#, "GET /ab", &[], NO),
    case(r#"{"uri":{"regex":"(?x: / a )b"}}"#, "GET /ab", &[], REGEX),
    // SEMANTICS VS-4: uri conditions see the path without the query string.
    case(r#"{"uri":{"exact":"/x"}}"#, "GET /x?y=1", &[], EXACT),
    case(r#"{"uri":{"regex":"/x"}}"#, "GET /x?y=1", &[], REGEX),
    case(r#"{"uri":{"regex":"/x\\?y=1"}}"#, "GET /x?y=1", &[], NO),
    case(r#"{"uri":{"prefix":"/x?"}}"#, "GET /x?y=1", &[], NO),
    case(r#"{"uri":{"exact":"/"}}"#, "GET http://h", &[], EXACT),
    // SEMANTICS VS-5: prefix is a plain string prefix, not a path segment.
    case(r#"{"uri":{"prefix":"/v2"}}"#, "GET /v2", &[], prefix(3)),
    case(r#"{"uri":{"prefix":"/v2"}}"#, "GET /v2/", &[], prefix(3)),
    case(r#"{"uri":{"prefix":"/v2"}}"#, "GET /v2/users", &[], prefix(3)),
    case(r#"{"uri":{"prefix":"/v2"}}"#, "GET /v2example", &[], prefix(3)),
    case(r#"{"uri":{"prefix":"/v2"}}"#, "GET /v3", &[], NO),
    case(r#"{"uri":{"prefix":"/v2/"}}"#, "GET /v2", &[], NO),
    // SEMANTICS VS-6: ignoreUriCase: uri exact/prefix ASCII case-insensitive...
    case(r#"{"uri":{"exact":"/Foo"},"ignoreUriCase":true}"#, "GET /fOO", &[], EXACT),
    case(r#"{"uri":{"prefix":"/API"},"ignoreUriCase":true}"#, "GET /api/x", &[], prefix(4)),
    // SEMANTICS VS-6: ...but not regex, headers or other fields.
    case(r#"{"uri":{"regex":"/api"},"ignoreUriCase":true}"#, "GET /API", &[], NO),
    case(r#"{"uri":{"regex":"/api"},"ignoreUriCase":true}"#, "GET /api", &[], REGEX),
    case(r#"{"headers":{"x":{"exact":"A"}},"ignoreUriCase":true}"#, "GET /", &[("x", b"a")], NO),
    case(r#"{"method":{"exact":"GET"},"ignoreUriCase":true}"#, "get /", &[], NO),
    // SEMANTICS VS-7: `{}` is presence, with any value, including empty.
    case(r#"{"headers":{"x-canary":{}}}"#, "GET /", &[("x-canary", b"")], NONE),
    case(r#"{"headers":{"x-canary":{}}}"#, "GET /", &[("x-canary", b"yes")], NONE),
    case(r#"{"headers":{"x-canary":{}}}"#, "GET /", &[("x-other", b"yes")], NO),
    case(r#"{"headers":{"x":{"exact":""}}}"#, "GET /", &[("x", b"")], NONE),
    // SEMANTICS VS-7: an absent header never matches, whatever the condition.
    case(r#"{"headers":{"x":{"exact":""}}}"#, "GET /", &[], NO),
    case(r#"{"headers":{"x":{"prefix":""}}}"#, "GET /", &[], NO),
    case(r#"{"headers":{"x":{"regex":".*"}}}"#, "GET /", &[], NO),
    // SEMANTICS VS-7: keys compare case-insensitively.
    case(r#"{"headers":{"X-Canary":{"exact":"1"}}}"#, "GET /", &[("x-canary", b"1")], NONE),
    case(r#"{"headers":{"x-canary":{"exact":"1"}}}"#, "GET /", &[("X-CANARY", b"1")], NONE),
    // SEMANTICS VS-7: values stay case-sensitive; prefix and regex on the value.
    case(r#"{"headers":{"x":{"exact":"abc"}}}"#, "GET /", &[("x", b"ABC")], NO),
    case(r#"{"headers":{"x":{"prefix":"ab"}}}"#, "GET /", &[("x", b"abc")], NONE),
    case(r#"{"headers":{"x":{"regex":"a.c"}}}"#, "GET /", &[("x", b"abc")], NONE),
    case(r#"{"headers":{"x":{"regex":"a"}}}"#, "GET /", &[("x", b"abc")], NO),
    // SEMANTICS VS-7: `uri`, `scheme`, `method`, `authority` keys inside headers are ignored.
    case(r#"{"headers":{"uri":{"exact":"/nope"}}}"#, "GET /x", &[], NONE),
    case(r#"{"headers":{"method":{"exact":"PUT"},"scheme":{"exact":"ftp"}}}"#, "GET /x", &[], NONE),
    case(r#"{"headers":{"authority":{"exact":"nope"}}}"#, "GET http://h/x", &[], NONE),
    case(r#"{"headers":{"Authority":{"exact":"nope"}}}"#, "GET http://h/x", &[], NONE),
    // SEMANTICS VS-7: several lines: any one line, on its own; lines not joined, commas not split.
    case(r#"{"headers":{"x":{"exact":"b"}}}"#, "GET /", &[("x", b"a"), ("x", b"b")], NONE),
    case(r#"{"headers":{"x":{"exact":"a"}}}"#, "GET /", &[("x", b"a"), ("x", b"b")], NONE),
    case(r#"{"headers":{"x":{"exact":"a,b"}}}"#, "GET /", &[("x", b"a"), ("x", b"b")], NO),
    case(r#"{"headers":{"x":{"exact":"a, b"}}}"#, "GET /", &[("x", b"a"), ("x", b"b")], NO),
    case(r#"{"headers":{"x":{"exact":"a,b"}}}"#, "GET /", &[("x", b"a,b")], NONE),
    case(r#"{"headers":{"x":{"exact":"a"}}}"#, "GET /", &[("x", b"a,b")], NO),
    case(r#"{"headers":{"x":{"regex":"b+"}}}"#, "GET /", &[("x", b"a"), ("x", b"bb")], NONE),
    case(r#"{"headers":{"x":{"prefix":"c"}}}"#, "GET /", &[("x", b"a"), ("x", b"b")], NO),
    // SEMANTICS VS-7: header values that are not UTF-8 (regex on bytes, see StringMatcher).
    case(r#"{"headers":{"x":{"exact":"a"}}}"#, "GET /", &[("x", b"\xff")], NO),
    case(r#"{"headers":{"x":{}}}"#, "GET /", &[("x", b"\xff")], NONE),
    case(r#"{"headers":{"x":{"prefix":"a"}}}"#, "GET /", &[("x", b"a\xff")], NONE),
    case(r#"{"headers":{"x":{"regex":".*"}}}"#, "GET /", &[("x", b"a\xff")], NO),
    case(r#"{"headers":{"x":{"regex":"(?s-u:.*)"}}}"#, "GET /", &[("x", b"a\xff")], NONE),
    case(r#"{"headers":{"x":{"regex":"é"}}}"#, "GET /", &[("x", "é".as_bytes())], NONE),
    // SEMANTICS VS-8: withoutHeaders inverts each condition; absent header ⇒ satisfied.
    case(r#"{"withoutHeaders":{"x-canary":{}}}"#, "GET /", &[], NONE),
    case(r#"{"withoutHeaders":{"x-canary":{}}}"#, "GET /", &[("x-canary", b"")], NO),
    case(r#"{"withoutHeaders":{"x":{"exact":"1"}}}"#, "GET /", &[], NONE),
    case(r#"{"withoutHeaders":{"x":{"exact":"1"}}}"#, "GET /", &[("x", b"2")], NONE),
    case(r#"{"withoutHeaders":{"x":{"exact":"1"}}}"#, "GET /", &[("x", b"1")], NO),
    case(r#"{"withoutHeaders":{"x":{"exact":"1"}}}"#, "GET /", &[("x", b"2"), ("x", b"1")], NO),
    case(r#"{"withoutHeaders":{"x":{"regex":"\\d"}}}"#, "GET /", &[("x", b"12")], NONE),
    case(r#"{"withoutHeaders":{"uri":{}}}"#, "GET /", &[], NONE),
    case(r#"{"headers":{"x":{}},"withoutHeaders":{"x":{"exact":"no"}}}"#, "GET /", &[("x", b"yes")], NONE),
    case(r#"{"headers":{"x":{}},"withoutHeaders":{"x":{"exact":"no"}}}"#, "GET /", &[("x", b"no")], NO),
    // SEMANTICS VS-9: values as sent, without percent-decoding; `+` stays `+`.
    case(r#"{"queryParams":{"b":{"exact":"x%20y"}}}"#, "GET /p?b=x%20y", &[], NONE),
    case(r#"{"queryParams":{"b":{"exact":"x y"}}}"#, "GET /p?b=x%20y", &[], NO),
    case(r#"{"queryParams":{"q":{"exact":"a+b"}}}"#, "GET /p?q=a+b", &[], NONE),
    case(r#"{"queryParams":{"q":{"exact":"a b"}}}"#, "GET /p?q=a+b", &[], NO),
    case(r#"{"queryParams":{"a%20b":{"exact":"1"}}}"#, "GET /p?a%20b=1", &[], NONE),
    // SEMANTICS VS-9: a repeated parameter: only the first value counts.
    case(r#"{"queryParams":{"a":{"exact":"1"}}}"#, "GET /p?a=1&a=2", &[], NONE),
    case(r#"{"queryParams":{"a":{"exact":"2"}}}"#, "GET /p?a=1&a=2", &[], NO),
    case(r#"{"queryParams":{"a":{"exact":"2"}}}"#, "GET /p?b=0&a=2&a=1", &[], NONE),
    // SEMANTICS VS-9: `?key` has value "", as has `?key=`.
    case(r#"{"queryParams":{"key":{"exact":""}}}"#, "GET /p?key", &[], NONE),
    case(r#"{"queryParams":{"key":{"exact":""}}}"#, "GET /p?key=", &[], NONE),
    case(r#"{"queryParams":{"key":{"exact":""}}}"#, "GET /p?key=v", &[], NO),
    case(r#"{"queryParams":{"key":{}}}"#, "GET /p?key", &[], NONE),
    case(r#"{"queryParams":{"key":{}}}"#, "GET /p?other", &[], NO),
    case(r#"{"queryParams":{"key":{}}}"#, "GET /p", &[], NO),
    case(r#"{"queryParams":{"key":{"exact":""}}}"#, "GET /p?", &[], NO),
    // SEMANTICS VS-9: names are case-sensitive; `&` separates, empty pieces are skipped.
    case(r#"{"queryParams":{"a":{"exact":"1"}}}"#, "GET /p?A=1", &[], NO),
    case(r#"{"queryParams":{"a":{"exact":"1"}}}"#, "GET /p?&&a=1&", &[], NONE),
    case(r#"{"queryParams":{"a":{"exact":"1=2"}}}"#, "GET /p?a=1=2", &[], NONE),
    case(r#"{"queryParams":{"a":{"exact":"1"}}}"#, "GET /p?xa=1", &[], NO),
    // SEMANTICS VS-9: regex is a full match; prefix on the value.
    case(r#"{"queryParams":{"n":{"regex":"\\d+$"}}}"#, "GET /p?n=123", &[], NONE),
    case(r#"{"queryParams":{"n":{"regex":"\\d+$"}}}"#, "GET /p?n=a123", &[], NO),
    case(r#"{"queryParams":{"n":{"prefix":"ab"}}}"#, "GET /p?n=abc", &[], NONE),
    case(r#"{"queryParams":{"a":{"exact":"1"},"b":{"exact":"2"}}}"#, "GET /p?b=2&a=1", &[], NONE),
    case(r#"{"queryParams":{"a":{"exact":"1"},"b":{"exact":"2"}}}"#, "GET /p?a=1", &[], NO),
    // SEMANTICS VS-10: method is case-sensitive.
    case(r#"{"method":{"exact":"GET"}}"#, "GET /", &[], NONE),
    case(r#"{"method":{"exact":"GET"}}"#, "POST /", &[], NO),
    case(r#"{"method":{"exact":"get"}}"#, "GET /", &[], NO),
    case(r#"{"method":{"regex":"GET|HEAD"}}"#, "HEAD /", &[], NONE),
    // SEMANTICS VS-10: authority includes the port as sent (URI authority, else Host).
    case(r#"{"authority":{"exact":"reviews:9080"}}"#, "GET /", &[("host", b"reviews:9080")], NONE),
    case(r#"{"authority":{"exact":"reviews"}}"#, "GET /", &[("host", b"reviews:9080")], NO),
    case(r#"{"authority":{"exact":"reviews"}}"#, "GET /", &[("host", b"reviews")], NONE),
    case(r#"{"authority":{"prefix":"api."}}"#, "GET http://api.example.com/x", &[], NONE),
    case(r#"{"authority":{"exact":"a:1"}}"#, "GET http://a:1/x", &[("host", b"b")], NONE),
    case(r#"{"authority":{"exact":""}}"#, "GET /", &[], NONE),
    case(r#"{"authority":{"prefix":"a"}}"#, "GET /", &[], NO),
    // SEMANTICS VS-10: scheme (`http` when the target has none).
    case(r#"{"scheme":{"exact":"https"}}"#, "GET https://a/x", &[], NONE),
    case(r#"{"scheme":{"exact":"https"}}"#, "GET /x", &[], NO),
    case(r#"{"scheme":{"exact":"http"}}"#, "GET /x", &[], NONE),
    // SEMANTICS VS-12: sourceLabels never look at request headers.
    case(r#"{"sourceLabels":{"app":"reviews"}}"#, "GET /", &[("app", b"other")], NONE),
];

#[test]
fn table() {
    for (i, c) in CASES.iter().enumerate() {
        let b = block(c.block);
        let req = request(c.request, c.headers);
        let view = RequestView::new(&req, c.port);
        let got = b.matches(&view);
        assert_eq!(
            got, c.want,
            "case {i}: {} against {} {:?}",
            c.block, c.request, c.headers
        );
        // explain agrees with matches.
        assert_eq!(
            b.explain_mismatch(&view).is_none(),
            c.want.is_some(),
            "case {i}"
        );
    }
}

#[test]
fn port_condition() {
    // SEMANTICS VS-11: the block matches only on its destination port; 0 = no condition.
    let b = block(r#"{"port": 9080}"#);
    let req = request("GET http://reviews:9080/", &[]);
    assert_eq!(b.port(), Some(9080));
    assert_eq!(
        b.matches(&RequestView::new(&req, 9080)),
        Some(UriMatched::None)
    );
    assert_eq!(b.matches(&RequestView::new(&req, 80)), None);
    let any = block(r#"{"port": 0}"#);
    assert_eq!(any.port(), None);
    assert!(any.matches(&RequestView::new(&req, 1)).is_some());
    // SEMANTICS VS-11: a port no request can have never matches.
    let b = block(r#"{"port": 70000}"#);
    assert_eq!(b.matches(&RequestView::new(&req, 4464)), None); // 70000 mod 2^16
}
