//! Trace-context rules as tables, written from the W3C Trace Context specification and its
//! test suite as digested in SEMANTICS §9.1–9.3.
//!
//! Every table row starts with the rule it checks (`TRACE-n`) and a short name; a failing row
//! reports both, so a failure points straight at the rule text.

use proptest::prelude::*;

use super::*;

fn headers<V: AsRef<str>>(lines: &[(&str, V)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in lines {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v.as_ref()).unwrap(),
        );
    }
    h
}

/// Header lines `(name, value)` in the order they arrive.
type Lines = Vec<(&'static str, String)>;

/// Every value of header `name`, in order.
fn values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

const ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";
const ZERO_ID: &str = "00000000000000000000000000000000";
const ZERO_SPAN: &str = "0000000000000000";

/// A B3 128-bit trace id, its 64-bit form (and that form padded), a span and a parent span.
const B3_T: &str = "463ac35c9f6413ad48485a3953bb6124";
const B3_T16: &str = "463ac35c9f6413ad";
const B3_T16_PADDED: &str = "0000000000000000463ac35c9f6413ad";
const B3_S: &str = "a2fb4a1d1a96d312";
const B3_P: &str = "0020000000000001";

/// A version-00 `traceparent` with [`ID`], [`PARENT`] and `flags`.
fn tp(flags: &str) -> String {
    format!("00-{ID}-{PARENT}-{flags}")
}

#[test]
fn continues_a_valid_traceparent_with_a_new_span() {
    // TRACE-5
    let h = headers(&[("traceparent", &format!("00-{ID}-{PARENT}-01"))]);
    let mut rng = Random::seeded(3);
    let s = SpanContext::start(&h, &Sampler::ratio(0.0), &mut rng);
    assert_eq!(s.trace_id().to_string(), ID);
    assert_eq!(s.parent_span_id().unwrap().to_string(), PARENT);
    assert_ne!(s.span_id().to_string(), PARENT);
    assert!(s.is_sampled());
}

// ---------------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------------

#[test]
fn trace_and_span_ids_from_hex() {
    // (rule, name, hex, valid as a trace id, valid as a span id)
    const ROWS: &[(&str, &str, &str, bool, bool)] = &[
        ("TRACE-1", "32 lower hex", ID, true, false),
        ("TRACE-1", "16 lower hex", PARENT, false, true),
        (
            "TRACE-1",
            "32 upper hex",
            "0AF7651916CD43DD8448EB211C80319C",
            false,
            false,
        ),
        ("TRACE-1", "16 upper hex", "B7AD6B7169203331", false, false),
        (
            "TRACE-1",
            "one upper digit",
            "b7ad6b716920333A",
            false,
            false,
        ),
        ("TRACE-2", "all-zero trace", ZERO_ID, false, false),
        ("TRACE-2", "all-zero span", ZERO_SPAN, false, false),
        (
            "TRACE-2",
            "31 digits",
            "0af7651916cd43dd8448eb211c80319",
            false,
            false,
        ),
        (
            "TRACE-2",
            "33 digits",
            "0af7651916cd43dd8448eb211c80319c0",
            false,
            false,
        ),
        ("TRACE-2", "15 digits", "b7ad6b716920333", false, false),
        ("TRACE-2", "17 digits", "b7ad6b71692033310", false, false),
        ("TRACE-2", "non-hex g", "b7ad6b716920333g", false, false),
        ("TRACE-2", "sign", "+7ad6b7169203331", false, false),
        ("TRACE-2", "empty", "", false, false),
        (
            "TRACE-1",
            "max trace",
            "ffffffffffffffffffffffffffffffff",
            true,
            false,
        ),
        ("TRACE-1", "max span", "ffffffffffffffff", false, true),
        (
            "TRACE-1",
            "trace of value 1",
            "00000000000000000000000000000001",
            true,
            false,
        ),
        (
            "TRACE-1",
            "span of value 1",
            "0000000000000001",
            false,
            true,
        ),
    ];
    for &(rule, name, hex, trace_ok, span_ok) in ROWS {
        let t = TraceId::from_hex(hex);
        assert_eq!(
            t.is_some(),
            trace_ok,
            "{rule} {name}: TraceId::from_hex({hex:?})"
        );
        if let Some(t) = t {
            assert_eq!(t.to_string(), hex, "{rule} {name}: Display round trip");
            assert_eq!(t.to_u128(), u128::from_str_radix(hex, 16).unwrap());
        }
        let s = SpanId::from_hex(hex);
        assert_eq!(
            s.is_some(),
            span_ok,
            "{rule} {name}: SpanId::from_hex({hex:?})"
        );
        if let Some(s) = s {
            assert_eq!(s.to_string(), hex, "{rule} {name}: Display round trip");
            assert_eq!(s.to_u64(), u64::from_str_radix(hex, 16).unwrap());
        }
    }
}

#[test]
fn ids_are_big_endian_and_zero_padded() {
    let t = TraceId::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
    assert_eq!(
        t.to_bytes(),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    );
    let s = SpanId::from_hex("0001020304050607").unwrap();
    assert_eq!(s.to_bytes(), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(
        TraceId::from_hex("00000000000000000000000000000001")
            .unwrap()
            .to_string(),
        "00000000000000000000000000000001"
    );
    assert_eq!(
        SpanId::from_hex("0000000000000001").unwrap().to_string(),
        "0000000000000001"
    );
}

#[test]
fn random_ids_are_never_zero_and_differ() {
    let mut rng = Random::seeded(42);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let t = TraceId::random(&mut rng);
        let s = SpanId::random(&mut rng);
        assert_ne!(t.to_u128(), 0);
        assert_ne!(s.to_u64(), 0);
        assert!(seen.insert(t), "random trace ids repeat");
    }
}

// ---------------------------------------------------------------------------------------------
// traceparent (TRACE-1..TRACE-4)
// ---------------------------------------------------------------------------------------------

/// `(rule, name, header value, Some((trace, parent, flags)) or None for invalid)`.
type ParseRow = (
    &'static str,
    &'static str,
    String,
    Option<(&'static str, &'static str, u8)>,
);

fn traceparent_rows() -> Vec<ParseRow> {
    let ok = |flags: u8| Some((ID, PARENT, flags));
    vec![
        // TRACE-1: the format.
        ("TRACE-1", "valid v00 sampled", tp("01"), ok(0x01)),
        ("TRACE-1", "valid v00 not sampled", tp("00"), ok(0x00)),
        (
            "TRACE-1",
            "leading spaces",
            format!("   {}", tp("01")),
            ok(1),
        ),
        (
            "TRACE-1",
            "trailing spaces",
            format!("{}  ", tp("01")),
            ok(1),
        ),
        ("TRACE-1", "tabs around", format!("\t{}\t", tp("01")), ok(1)),
        (
            "TRACE-1",
            "mixed OWS",
            format!(" \t {}\t \t", tp("01")),
            ok(1),
        ),
        (
            "TRACE-1",
            "space inside",
            format!("00 -{ID}-{PARENT}-01"),
            None,
        ),
        (
            "TRACE-1",
            "uppercase trace id",
            format!("00-{}-{PARENT}-01", ID.to_uppercase()),
            None,
        ),
        (
            "TRACE-1",
            "one uppercase trace digit",
            format!("00-0Af7651916cd43dd8448eb211c80319c-{PARENT}-01"),
            None,
        ),
        (
            "TRACE-1",
            "uppercase parent id",
            format!("00-{ID}-{}-01", PARENT.to_uppercase()),
            None,
        ),
        ("TRACE-1", "uppercase flags", tp("0A"), None),
        (
            "TRACE-1",
            "uppercase version",
            format!("0A-{ID}-{PARENT}-01"),
            None,
        ),
        // TRACE-2: invalid means absent.
        (
            "TRACE-2",
            "all-zero trace id",
            format!("00-{ZERO_ID}-{PARENT}-01"),
            None,
        ),
        (
            "TRACE-2",
            "all-zero parent id",
            format!("00-{ID}-{ZERO_SPAN}-01"),
            None,
        ),
        (
            "TRACE-2",
            "trace id 31",
            format!("00-{}-{PARENT}-01", &ID[1..]),
            None,
        ),
        (
            "TRACE-2",
            "trace id 33",
            format!("00-{ID}0-{PARENT}-01"),
            None,
        ),
        (
            "TRACE-2",
            "parent id 15",
            format!("00-{ID}-{}-01", &PARENT[1..]),
            None,
        ),
        (
            "TRACE-2",
            "parent id 17",
            format!("00-{ID}-{PARENT}0-01"),
            None,
        ),
        ("TRACE-2", "flags 1 digit", tp("1"), None),
        ("TRACE-2", "flags 3 digits", tp("001"), None),
        ("TRACE-2", "no flags", format!("00-{ID}-{PARENT}"), None),
        (
            "TRACE-2",
            "version 1 digit",
            format!("0-{ID}-{PARENT}-01"),
            None,
        ),
        (
            "TRACE-2",
            "version 3 digits",
            format!("000-{ID}-{PARENT}-01"),
            None,
        ),
        (
            "TRACE-2",
            "version ff",
            format!("ff-{ID}-{PARENT}-01"),
            None,
        ),
        (
            "TRACE-2",
            "version ff with extra",
            format!("ff-{ID}-{PARENT}-01-x"),
            None,
        ),
        (
            "TRACE-2",
            "v00 trailing dot",
            format!("{}.", tp("01")),
            None,
        ),
        (
            "TRACE-2",
            "v00 trailing -extra",
            format!("{}-extra", tp("01")),
            None,
        ),
        (
            "TRACE-2",
            "v00 trailing dash",
            format!("{}-", tp("01")),
            None,
        ),
        (
            "TRACE-2",
            "v00 trailing char",
            format!("{}0", tp("01")),
            None,
        ),
        (
            "TRACE-2",
            "non-hex version",
            format!("zz-{ID}-{PARENT}-01"),
            None,
        ),
        (
            "TRACE-2",
            "half-hex version",
            format!("0g-{ID}-{PARENT}-01"),
            None,
        ),
        (
            "TRACE-2",
            "non-hex trace id",
            format!("00-0af7651916cd43dd8448eb211c80319g-{PARENT}-01"),
            None,
        ),
        (
            "TRACE-2",
            "non-hex parent id",
            format!("00-{ID}-b7ad6b716920333z-01"),
            None,
        ),
        ("TRACE-2", "non-hex flags", tp("0z"), None),
        ("TRACE-2", "signed flags", tp("+1"), None),
        (
            "TRACE-2",
            "underscore separators",
            format!("00_{ID}_{PARENT}_01"),
            None,
        ),
        (
            "TRACE-2",
            "missing separator",
            format!("00{ID}-{PARENT}-01-"),
            None,
        ),
        ("TRACE-2", "empty", String::new(), None),
        ("TRACE-2", "only OWS", " \t ".to_owned(), None),
        ("TRACE-2", "garbage", "hello".to_owned(), None),
        (
            "TRACE-2",
            "two values on one line",
            format!("{},{}", tp("01"), tp("01")),
            None,
        ),
        // TRACE-3: future versions are parsed leniently.
        (
            "TRACE-3",
            "cc exactly 55",
            format!("cc-{ID}-{PARENT}-01"),
            ok(1),
        ),
        (
            "TRACE-3",
            "cc with -what-ever",
            format!("cc-{ID}-{PARENT}-01-what-ever"),
            ok(1),
        ),
        (
            "TRACE-3",
            "cc with trailing dash",
            format!("cc-{ID}-{PARENT}-00-"),
            ok(0),
        ),
        (
            "TRACE-3",
            "cc with .what",
            format!("cc-{ID}-{PARENT}-01.what"),
            None,
        ),
        (
            "TRACE-3",
            "cc with letter after flags",
            format!("cc-{ID}-{PARENT}-01x"),
            None,
        ),
        (
            "TRACE-3",
            "cc with 3-digit flags",
            format!("cc-{ID}-{PARENT}-011"),
            None,
        ),
        (
            "TRACE-3",
            "01 future version",
            format!("01-{ID}-{PARENT}-01-extra"),
            ok(1),
        ),
        (
            "TRACE-3",
            "fe future version",
            format!("fe-{ID}-{PARENT}-00"),
            ok(0),
        ),
        (
            "TRACE-3",
            "cc with zero trace id",
            format!("cc-{ZERO_ID}-{PARENT}-01-x"),
            None,
        ),
        (
            "TRACE-3",
            "cc with zero parent id",
            format!("cc-{ID}-{ZERO_SPAN}-01-x"),
            None,
        ),
        (
            "TRACE-3",
            "cc with uppercase trace id",
            format!("cc-{}-{PARENT}-01-x", ID.to_uppercase()),
            None,
        ),
        (
            "TRACE-3",
            "cc with non-hex flags",
            format!("cc-{ID}-{PARENT}-0x-what"),
            None,
        ),
        (
            "TRACE-3",
            "cc too short",
            format!("cc-{ID}-{PARENT}-1"),
            None,
        ),
        (
            "TRACE-3",
            "cc with OWS",
            format!(" cc-{ID}-{PARENT}-01-x\t"),
            ok(1),
        ),
        // TRACE-4: only the sampled and random bits survive.
        ("TRACE-4", "flags 02 random", tp("02"), ok(0x02)),
        ("TRACE-4", "flags 03", tp("03"), ok(0x03)),
        ("TRACE-4", "flags ff", tp("ff"), ok(0x03)),
        ("TRACE-4", "flags 09", tp("09"), ok(0x01)),
        ("TRACE-4", "flags 80", tp("80"), ok(0x00)),
        ("TRACE-4", "flags fc", tp("fc"), ok(0x00)),
        ("TRACE-4", "flags fe", tp("fe"), ok(0x02)),
        (
            "TRACE-4",
            "future version flags ff",
            format!("cc-{ID}-{PARENT}-ff-x"),
            ok(0x03),
        ),
    ]
}

#[test]
fn traceparent_parse_table() {
    for (rule, name, input, want) in traceparent_rows() {
        let got = TraceParent::parse(&input);
        let got_view = got.map(|p| (p.trace_id.to_string(), p.parent_id.to_string(), p.flags));
        let want_view = want.map(|(t, p, f)| (t.to_owned(), p.to_owned(), f));
        assert_eq!(got_view, want_view, "{rule} {name}: parse({input:?})");
        if let Some(p) = got {
            assert_eq!(p.sampled(), p.flags & FLAG_SAMPLED != 0, "{rule} {name}");
            // TRACE-3: whatever version came in, version 00 goes out.
            let out = p.to_string();
            assert_eq!(
                out,
                format!("00-{}-{}-{:02x}", p.trace_id, p.parent_id, p.flags),
                "{rule} {name}"
            );
            assert_eq!(TraceParent::parse(&out), Some(p), "{rule} {name}: re-parse");
        }
        // The same value through a header map behaves the same (TRACE-7), as long as the
        // value can be a header value at all.
        if let Ok(v) = HeaderValue::from_str(&input) {
            let mut h = HeaderMap::new();
            h.insert(TRACEPARENT.clone(), v);
            assert_eq!(TraceParent::from_headers(&h), got, "{rule} {name}: headers");
        }
    }
}

#[test]
fn traceparent_display_table() {
    // (rule, name, flags in the struct, emitted header)
    const ROWS: &[(&str, &str, u8, &str)] = &[
        ("TRACE-3", "sampled", 0x01, "-01"),
        ("TRACE-3", "not sampled", 0x00, "-00"),
        ("TRACE-4", "random", 0x02, "-02"),
        ("TRACE-4", "random sampled", 0x03, "-03"),
        // TRACE-4: bits other than 0x01/0x02 are sent as 0 even when set by hand.
        ("TRACE-4", "unknown bits dropped", 0xff, "-03"),
        ("TRACE-4", "only unknown bits", 0x84, "-00"),
    ];
    for &(rule, name, flags, suffix) in ROWS {
        let p = TraceParent {
            trace_id: TraceId::from_hex(ID).unwrap(),
            parent_id: SpanId::from_hex(PARENT).unwrap(),
            flags,
        };
        let out = p.to_string();
        assert_eq!(out, format!("00-{ID}-{PARENT}{suffix}"), "{rule} {name}");
        assert_eq!(out.len(), 55, "{rule} {name}");
        assert_eq!(
            TraceParent::parse(&out).unwrap().flags,
            flags & (FLAG_SAMPLED | FLAG_RANDOM),
            "{rule} {name}"
        );
    }
    assert_eq!(FLAG_SAMPLED, 0x01);
    assert_eq!(FLAG_RANDOM, 0x02);
}

#[test]
fn traceparent_from_headers_table() {
    let good = tp("01");
    let other = format!("00-{ID}-00f067aa0ba902b7-01");
    // (rule, name, header lines, whether a traceparent is found)
    let rows: Vec<(&str, &str, Lines, Option<&str>)> = vec![
        ("TRACE-6", "absent", vec![], None),
        (
            "TRACE-6",
            "only tracestate",
            vec![("tracestate", "a=1".into())],
            None,
        ),
        (
            "TRACE-1",
            "one line",
            vec![("traceparent", good.clone())],
            Some(PARENT),
        ),
        (
            "TRACE-7",
            "name TraceParent",
            vec![("TraceParent", good.clone())],
            Some(PARENT),
        ),
        (
            "TRACE-7",
            "name TRACEPARENT",
            vec![("TRACEPARENT", good.clone())],
            Some(PARENT),
        ),
        (
            "TRACE-2",
            "two identical lines",
            vec![("traceparent", good.clone()), ("traceparent", good.clone())],
            None,
        ),
        (
            "TRACE-2",
            "two different lines",
            vec![
                ("traceparent", good.clone()),
                ("traceparent", other.clone()),
            ],
            None,
        ),
        (
            "TRACE-2",
            "two lines, differently cased names",
            vec![("traceparent", good.clone()), ("TraceParent", other)],
            None,
        ),
        (
            "TRACE-2",
            "valid then invalid line",
            vec![("traceparent", good.clone()), ("traceparent", "x".into())],
            None,
        ),
        (
            "TRACE-2",
            "invalid one line",
            vec![("traceparent", format!("{good}."))],
            None,
        ),
        (
            "TRACE-10",
            "invalid tracestate does not matter",
            vec![("traceparent", good), ("tracestate", "@@@".into())],
            Some(PARENT),
        ),
    ];
    for (rule, name, lines, want) in rows {
        let h = headers(&lines);
        let got = TraceParent::from_headers(&h).map(|p| p.parent_id.to_string());
        assert_eq!(got.as_deref(), want, "{rule} {name}");
    }
    // The name as a raw mixed-case byte string is still the same header (TRACE-7).
    let mut h = HeaderMap::new();
    h.insert(
        HeaderName::from_bytes(b"TraceParent").unwrap(),
        HeaderValue::from_str(&tp("01")).unwrap(),
    );
    assert_eq!(
        TraceParent::from_headers(&h).unwrap().parent_id.to_string(),
        PARENT
    );
    // A value that is not visible ASCII cannot be a traceparent.
    let mut h = HeaderMap::new();
    h.insert(
        TRACEPARENT.clone(),
        HeaderValue::from_bytes(format!("{}\u{e9}", tp("01")).as_bytes()).unwrap(),
    );
    assert_eq!(TraceParent::from_headers(&h), None);
}

// ---------------------------------------------------------------------------------------------
// SpanContext::start (TRACE-4..TRACE-6, TRACE-14)
// ---------------------------------------------------------------------------------------------

/// What `SpanContext::start` should decide.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// Keep this trace with this parent and these flags, forwarding this `tracestate`.
    Continue {
        trace: &'static str,
        parent: &'static str,
        flags: u8,
        state: Option<&'static str>,
    },
    /// A new random trace without parent or `tracestate`, sampled as given.
    Restart { sampled: bool },
}

type StartRow = (&'static str, &'static str, Lines, f64, Want);

fn start_rows() -> Vec<StartRow> {
    let keep = |flags: u8, state: Option<&'static str>| Want::Continue {
        trace: ID,
        parent: PARENT,
        flags,
        state,
    };
    let b3 = |trace: &'static str, flags: u8| Want::Continue {
        trace,
        parent: B3_S,
        flags,
        state: None,
    };
    let restart = |sampled: bool| Want::Restart { sampled };
    vec![
        // TRACE-5: continue, the upstream decision is final.
        (
            "TRACE-5",
            "sampled, sampler 0",
            vec![("traceparent", tp("01"))],
            0.0,
            keep(0x01, None),
        ),
        (
            "TRACE-5",
            "not sampled, sampler 1",
            vec![("traceparent", tp("00"))],
            1.0,
            keep(0x00, None),
        ),
        (
            "TRACE-4",
            "random + sampled kept",
            vec![("traceparent", tp("03"))],
            0.0,
            keep(0x03, None),
        ),
        (
            "TRACE-4",
            "random + not sampled kept",
            vec![("traceparent", tp("02"))],
            1.0,
            keep(0x02, None),
        ),
        (
            "TRACE-4",
            "unknown bits dropped",
            vec![("traceparent", tp("ff"))],
            0.0,
            keep(0x03, None),
        ),
        (
            "TRACE-4",
            "random bit is not invented",
            vec![("traceparent", tp("01"))],
            1.0,
            keep(0x01, None),
        ),
        (
            "TRACE-3",
            "future version continued",
            vec![("traceparent", format!("cc-{ID}-{PARENT}-01-what-ever"))],
            0.0,
            keep(0x01, None),
        ),
        (
            "TRACE-7",
            "mixed-case name",
            vec![("TraceParent", tp("01"))],
            0.0,
            keep(0x01, None),
        ),
        (
            "TRACE-5",
            "tracestate forwarded",
            vec![("traceparent", tp("01")), ("tracestate", "foo=1".into())],
            0.0,
            keep(0x01, Some("foo=1")),
        ),
        (
            "TRACE-8",
            "tracestate lines combined",
            vec![
                ("traceparent", tp("00")),
                ("tracestate", "foo=1".into()),
                ("tracestate", "bar=2".into()),
            ],
            0.0,
            keep(0x00, Some("foo=1,bar=2")),
        ),
        (
            "TRACE-10",
            "invalid tracestate dropped, trace kept",
            vec![("traceparent", tp("01")), ("tracestate", "Foo=1".into())],
            0.0,
            keep(0x01, None),
        ),
        // TRACE-6: restart.
        ("TRACE-6", "nothing, sampler 1", vec![], 1.0, restart(true)),
        ("TRACE-6", "nothing, sampler 0", vec![], 0.0, restart(false)),
        (
            "TRACE-6",
            "uppercase, tracestate dropped",
            vec![
                ("traceparent", tp("01").to_uppercase()),
                ("tracestate", "foo=1".into()),
            ],
            1.0,
            restart(true),
        ),
        (
            "TRACE-6",
            "zero trace id, sampled flag ignored",
            vec![("traceparent", format!("00-{ZERO_ID}-{PARENT}-01"))],
            0.0,
            restart(false),
        ),
        (
            "TRACE-6",
            "zero parent id",
            vec![("traceparent", format!("00-{ID}-{ZERO_SPAN}-00"))],
            1.0,
            restart(true),
        ),
        (
            "TRACE-2",
            "two lines restart",
            vec![
                ("traceparent", tp("01")),
                ("traceparent", tp("01")),
                ("tracestate", "foo=1".into()),
            ],
            0.0,
            restart(false),
        ),
        (
            "TRACE-3",
            "future version .what restarts",
            vec![("traceparent", format!("cc-{ID}-{PARENT}-01.what"))],
            1.0,
            restart(true),
        ),
        (
            "TRACE-2",
            "version ff restarts",
            vec![("traceparent", format!("ff-{ID}-{PARENT}-01"))],
            0.0,
            restart(false),
        ),
        (
            "TRACE-6",
            "tracestate alone dropped",
            vec![("tracestate", "foo=1".into())],
            1.0,
            restart(true),
        ),
        // TRACE-14: B3 translated when there is no valid traceparent.
        (
            "TRACE-14",
            "multi 128-bit sampled, sampler 0",
            vec![
                ("X-B3-TraceId", B3_T.into()),
                ("X-B3-SpanId", B3_S.into()),
                ("X-B3-Sampled", "1".into()),
            ],
            0.0,
            b3(B3_T, 0x01),
        ),
        (
            "TRACE-14",
            "multi 64-bit padded, denied, sampler 1",
            vec![
                ("X-B3-TraceId", B3_T16.into()),
                ("X-B3-SpanId", B3_S.into()),
                ("X-B3-Sampled", "0".into()),
            ],
            1.0,
            b3(B3_T16_PADDED, 0x00),
        ),
        (
            "TRACE-14",
            "multi deferred, sampler 1",
            vec![("X-B3-TraceId", B3_T.into()), ("X-B3-SpanId", B3_S.into())],
            1.0,
            b3(B3_T, 0x01),
        ),
        (
            "TRACE-14",
            "multi deferred, sampler 0",
            vec![("X-B3-TraceId", B3_T.into()), ("X-B3-SpanId", B3_S.into())],
            0.0,
            b3(B3_T, 0x00),
        ),
        (
            "TRACE-14",
            "multi debug flag, sampler 0",
            vec![
                ("X-B3-TraceId", B3_T.into()),
                ("X-B3-SpanId", B3_S.into()),
                ("X-B3-Flags", "1".into()),
            ],
            0.0,
            b3(B3_T, 0x01),
        ),
        (
            "TRACE-14",
            "single debug, sampler 0",
            vec![("b3", format!("{B3_T}-{B3_S}-d"))],
            0.0,
            b3(B3_T, 0x01),
        ),
        (
            "TRACE-14",
            "single 64-bit with parent",
            vec![("b3", format!("{B3_T16}-{B3_S}-1-{B3_P}"))],
            0.0,
            b3(B3_T16_PADDED, 0x01),
        ),
        (
            "TRACE-14",
            "single deferred, sampler 0",
            vec![("b3", format!("{B3_T}-{B3_S}"))],
            0.0,
            b3(B3_T, 0x00),
        ),
        (
            "TRACE-14",
            "single wins over multi",
            vec![
                ("b3", format!("{B3_T16}-{B3_S}-0")),
                ("X-B3-TraceId", B3_T.into()),
                ("X-B3-SpanId", B3_P.into()),
                ("X-B3-Sampled", "1".into()),
            ],
            1.0,
            b3(B3_T16_PADDED, 0x00),
        ),
        (
            "TRACE-14",
            "b3: 0 alone, sampler 1",
            vec![("b3", "0".into())],
            1.0,
            restart(false),
        ),
        (
            "TRACE-14",
            "b3: 1 alone, sampler 0",
            vec![("b3", "1".into())],
            0.0,
            restart(true),
        ),
        (
            "TRACE-14",
            "b3: d alone, sampler 0",
            vec![("b3", "d".into())],
            0.0,
            restart(true),
        ),
        (
            "TRACE-14",
            "X-B3-Sampled 0 alone, sampler 1",
            vec![("X-B3-Sampled", "0".into())],
            1.0,
            restart(false),
        ),
        (
            "TRACE-14",
            "X-B3-Sampled true alone, sampler 0",
            vec![("X-B3-Sampled", "true".into())],
            0.0,
            restart(true),
        ),
        (
            "TRACE-14",
            "X-B3-Flags 1 alone, sampler 0",
            vec![("X-B3-Flags", "1".into())],
            0.0,
            restart(true),
        ),
        (
            "TRACE-12",
            "malformed B3 ignored, sampler 0",
            vec![
                ("X-B3-TraceId", "nothex".into()),
                ("X-B3-SpanId", B3_S.into()),
                ("X-B3-Sampled", "1".into()),
            ],
            0.0,
            restart(false),
        ),
        (
            "TRACE-12",
            "span id only ignored, sampler 1",
            vec![("X-B3-SpanId", B3_S.into()), ("X-B3-Sampled", "0".into())],
            1.0,
            restart(true),
        ),
        (
            "TRACE-14",
            "valid traceparent wins over B3",
            vec![
                ("traceparent", tp("00")),
                ("X-B3-TraceId", B3_T.into()),
                ("X-B3-SpanId", B3_S.into()),
                ("X-B3-Sampled", "1".into()),
            ],
            1.0,
            keep(0x00, None),
        ),
        (
            "TRACE-14",
            "valid traceparent wins over single B3",
            vec![
                ("b3", format!("{B3_T}-{B3_S}-0")),
                ("traceparent", tp("01")),
                ("tracestate", "k=v".into()),
            ],
            0.0,
            keep(0x01, Some("k=v")),
        ),
        (
            "TRACE-14",
            "invalid traceparent falls back to B3, tracestate dropped",
            vec![
                ("traceparent", format!("{}-extra", tp("00"))),
                ("tracestate", "foo=1".into()),
                ("b3", format!("{B3_T}-{B3_S}-1")),
            ],
            0.0,
            b3(B3_T, 0x01),
        ),
    ]
}

#[test]
fn span_context_start_table() {
    let incoming: [&str; 3] = [ID, B3_T, B3_T16_PADDED];
    for (rule, name, lines, ratio, want) in start_rows() {
        let h = headers(&lines);
        // A few seeds: the outcome must not depend on luck.
        for seed in 0..8 {
            let mut rng = Random::seeded(seed);
            let s = SpanContext::start(&h, &Sampler::ratio(ratio), &mut rng);
            let at = format!("{rule} {name} (seed {seed})");
            assert_ne!(s.trace_id().to_u128(), 0, "{at}");
            assert_ne!(s.span_id().to_u64(), 0, "{at}");
            assert_eq!(s.is_sampled(), s.flags() & FLAG_SAMPLED != 0, "{at}");
            assert_eq!(s.flags() & !(FLAG_SAMPLED | FLAG_RANDOM), 0, "{at}");
            let tp = s.traceparent();
            assert_eq!(tp.trace_id, s.trace_id(), "{at}");
            assert_eq!(
                tp.parent_id,
                s.span_id(),
                "{at}: this hop is the next parent"
            );
            assert_eq!(tp.flags, s.flags(), "{at}");
            match want {
                Want::Continue {
                    trace,
                    parent,
                    flags,
                    state,
                } => {
                    assert_eq!(s.trace_id().to_string(), trace, "{at}");
                    assert_eq!(
                        s.parent_span_id().map(|p| p.to_string()).as_deref(),
                        Some(parent),
                        "{at}"
                    );
                    assert_ne!(s.span_id().to_string(), parent, "{at}: new span");
                    assert_eq!(s.flags(), flags, "{at}");
                    assert_eq!(s.trace_state().map(TraceState::as_str), state, "{at}");
                }
                Want::Restart { sampled } => {
                    let trace = s.trace_id().to_string();
                    assert!(!incoming.contains(&trace.as_str()), "{at}: {trace}");
                    assert_eq!(s.parent_span_id(), None, "{at}");
                    assert_eq!(s.flags() & FLAG_RANDOM, FLAG_RANDOM, "{at}");
                    assert_eq!(s.is_sampled(), sampled, "{at}");
                    assert_eq!(s.trace_state(), None, "{at}: tracestate dropped");
                }
            }
        }
    }
}

#[test]
fn restarted_traces_differ_and_spans_are_fresh() {
    let h = HeaderMap::new();
    let mut rng = Random::seeded(9);
    let a = SpanContext::start(&h, &Sampler::default(), &mut rng);
    let b = SpanContext::start(&h, &Sampler::default(), &mut rng);
    assert_ne!(a.trace_id(), b.trace_id());
    assert_ne!(a.span_id(), b.span_id());
    // Two hops continuing the same traceparent get different spans (TRACE-5).
    let h = headers(&[("traceparent", tp("01"))]);
    let a = SpanContext::start(&h, &Sampler::default(), &mut rng);
    let b = SpanContext::start(&h, &Sampler::default(), &mut rng);
    assert_eq!(a.trace_id(), b.trace_id());
    assert_ne!(a.span_id(), b.span_id());
}

#[test]
fn sampler_table() {
    // (rule, name, sampler, expected ratio)
    let rows: Vec<(&str, &str, Sampler, f64)> = vec![
        ("TRACE-6", "default is 1 %", Sampler::default(), 0.01),
        ("TRACE-6", "ratio", Sampler::ratio(0.25), 0.25),
        ("TRACE-6", "percent", Sampler::percent(25.0), 0.25),
        ("TRACE-6", "percent 100", Sampler::percent(100.0), 1.0),
        ("TRACE-6", "below 0 clamped", Sampler::ratio(-1.0), 0.0),
        ("TRACE-6", "above 1 clamped", Sampler::ratio(7.0), 1.0),
        ("TRACE-6", "percent above 100", Sampler::percent(250.0), 1.0),
        (
            "TRACE-6",
            "NaN never samples",
            Sampler::ratio(f64::NAN),
            0.0,
        ),
    ];
    for (rule, name, sampler, ratio) in rows {
        assert!(
            (sampler.as_ratio() - ratio).abs() < 1e-12,
            "{rule} {name}: {} != {ratio}",
            sampler.as_ratio()
        );
    }
    // Roughly the asked share of new traces is sampled (seeded, so deterministic).
    let h = HeaderMap::new();
    let mut rng = Random::seeded(5);
    for (ratio, lo, hi) in [
        (0.0, 0, 0),
        (0.5, 400, 600),
        (0.1, 50, 150),
        (1.0, 1000, 1000),
    ] {
        let sampler = Sampler::ratio(ratio);
        let n = (0..1000)
            .filter(|_| SpanContext::start(&h, &sampler, &mut rng).is_sampled())
            .count();
        assert!((lo..=hi).contains(&n), "ratio {ratio}: {n} of 1000 sampled");
    }
}

// ---------------------------------------------------------------------------------------------
// tracestate (TRACE-8..TRACE-11)
// ---------------------------------------------------------------------------------------------

/// A member `key=xxx…` exactly `len` characters long.
fn member(key: &str, len: usize) -> String {
    format!("{key}={}", "x".repeat(len - key.len() - 1))
}

/// `n` distinct short members `k0=0,k1=1,…`.
fn members(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i}={i}")).collect()
}

type StateRow = (&'static str, &'static str, Vec<String>, Option<String>);

fn tracestate_rows() -> Vec<StateRow> {
    let s = |v: &str| v.to_owned();
    let some = |v: &str| Some(v.to_owned());
    let key256 = format!("k{}", "a".repeat(255));
    let key257 = format!("k{}", "a".repeat(256));
    let value256 = "v".repeat(256);
    let value257 = "v".repeat(257);
    let printable: String = (0x20u8..=0x7e)
        .map(char::from)
        .filter(|c| !matches!(c, ',' | '=' | ' '))
        .collect();
    let m32 = members(32).join(",");
    let m33 = members(33).join(",");
    let m31 = members(31).join(",");
    let m20 = members(20).join(",");
    let m20_32: Vec<String> = (20..32).map(|i| format!("k{i}={i}")).collect();
    let m20_33: Vec<String> = (20..33).map(|i| format!("k{i}={i}")).collect();

    // TRACE-11 lengths: 128-char members are not "long"; 129+ are.
    let (a, b, c) = (member("a", 128), member("b", 128), member("c", 128));
    let d125 = member("d", 125);
    let d126 = member("d", 126);
    let sixty_four: Vec<String> = (0..8).map(|i| member(&format!("m{i}"), 64)).collect();
    let short100: Vec<String> = ["p", "q", "r", "s"]
        .iter()
        .map(|k| member(k, 100))
        .collect();
    let long200 = member("long", 200);
    let (l1, l2) = (member("la", 250), member("lb", 250));
    let e100 = member("e", 100);
    let l259 = member("lc", 259);

    vec![
        // TRACE-8: syntax, combination, member count.
        ("TRACE-8", "absent", vec![], None),
        ("TRACE-8", "one member", vec![s("foo=1")], some("foo=1")),
        (
            "TRACE-8",
            "three lines combined in order",
            vec![s("foo=1,bar=2"), s("rojo=1,congo=2"), s("baz=3")],
            some("foo=1,bar=2,rojo=1,congo=2,baz=3"),
        ),
        (
            "TRACE-8",
            "order kept, not sorted",
            vec![s("z=1,a=2"), s("m=3")],
            some("z=1,a=2,m=3"),
        ),
        (
            "TRACE-8",
            "empty member",
            vec![s("a=1,,b=2")],
            some("a=1,b=2"),
        ),
        (
            "TRACE-8",
            "many empty members",
            vec![s(",,a=1,, ,\t,b=2,,")],
            some("a=1,b=2"),
        ),
        (
            "TRACE-8",
            "OWS around members",
            vec![s(" a=1 ,\tb=2\t, \t c=3")],
            some("a=1,b=2,c=3"),
        ),
        (
            "TRACE-8",
            "empty line contributes nothing",
            vec![s(""), s("a=1"), s("")],
            some("a=1"),
        ),
        ("TRACE-8", "only empty lines", vec![s(""), s(" , ")], None),
        (
            "TRACE-8",
            "32 members",
            vec![m32.clone()],
            Some(m32.clone()),
        ),
        ("TRACE-8", "33 members", vec![m33], None),
        (
            "TRACE-8",
            "32 members over two lines",
            vec![m20.clone(), m20_32.join(",")],
            Some(m32),
        ),
        (
            "TRACE-8",
            "33 members over two lines",
            vec![m20, m20_33.join(",")],
            None,
        ),
        (
            "TRACE-8",
            "empty members do not count",
            vec![format!("{m31},,,,k31=31,,")],
            Some(format!("{m31},k31=31")),
        ),
        (
            "TRACE-8",
            "33 members when one repeats a key",
            vec![format!("{},k0=again", members(32).join(","))],
            None,
        ),
        (
            "TRACE-8",
            "33 members when two repeat a key",
            vec![format!("{m31},k0=again,k1=again")],
            None,
        ),
        // TRACE-9: keys.
        (
            "TRACE-9",
            "tenant@system key",
            vec![s("foo@bar=1")],
            some("foo@bar=1"),
        ),
        (
            "TRACE-9",
            "key starting with digit",
            vec![s("0abc=1")],
            some("0abc=1"),
        ),
        (
            "TRACE-9",
            "all special key chars",
            vec![s("a*/_-@x=1")],
            some("a*/_-@x=1"),
        ),
        ("TRACE-9", "several @", vec![s("a@b@c=1")], some("a@b@c=1")),
        ("TRACE-9", "one-char key", vec![s("a=1")], some("a=1")),
        ("TRACE-9", "one-digit key", vec![s("7=1")], some("7=1")),
        (
            "TRACE-9",
            "trailing @ in key",
            vec![s("foo@=1")],
            some("foo@=1"),
        ),
        (
            "TRACE-9",
            "256-char key",
            vec![format!("{key256}=1")],
            Some(format!("{key256}=1")),
        ),
        ("TRACE-9", "257-char key", vec![format!("{key257}=1")], None),
        ("TRACE-9", "key starting with @", vec![s("@foo=1")], None),
        ("TRACE-9", "uppercase key", vec![s("Foo=1")], None),
        ("TRACE-9", "uppercase inside key", vec![s("fOo=1")], None),
        ("TRACE-9", "key starting with _", vec![s("_foo=1")], None),
        ("TRACE-9", "key starting with -", vec![s("-foo=1")], None),
        ("TRACE-9", "key starting with *", vec![s("*foo=1")], None),
        ("TRACE-9", "key starting with /", vec![s("/foo=1")], None),
        ("TRACE-9", "dot in key", vec![s("foo.bar=1")], None),
        ("TRACE-9", "space in key", vec![s("foo bar=1")], None),
        ("TRACE-9", "space before =", vec![s("foo =1")], None),
        ("TRACE-9", "empty key", vec![s("=1")], None),
        ("TRACE-9", "no =", vec![s("foo")], None),
        // TRACE-9: values.
        (
            "TRACE-9",
            "leading space in value",
            vec![s("foo= 1")],
            some("foo= 1"),
        ),
        (
            "TRACE-9",
            "inner spaces in value",
            vec![s("foo=a b  c")],
            some("foo=a b  c"),
        ),
        (
            "TRACE-9",
            "trailing OWS is not part of the value",
            vec![s("foo=1 \t")],
            some("foo=1"),
        ),
        (
            "TRACE-9",
            "every printable char",
            vec![format!("foo={printable}")],
            Some(format!("foo={printable}")),
        ),
        (
            "TRACE-9",
            "256-char value",
            vec![format!("foo={value256}")],
            Some(format!("foo={value256}")),
        ),
        (
            "TRACE-9",
            "257-char value",
            vec![format!("foo={value257}")],
            None,
        ),
        ("TRACE-9", "empty value", vec![s("foo=")], None),
        ("TRACE-9", "value of spaces only", vec![s("foo=   ")], None),
        ("TRACE-9", "= in value", vec![s("foo=a=b")], None),
        ("TRACE-9", "tab in value", vec![s("foo=a\tb")], None),
        // TRACE-10: invalid drops everything; duplicates keep the first.
        (
            "TRACE-10",
            "invalid member in the middle",
            vec![s("foo=1,Bad=2,bar=3")],
            None,
        ),
        (
            "TRACE-10",
            "invalid member on a later line",
            vec![s("foo=1"), s("bar=2,baz")],
            None,
        ),
        (
            "TRACE-10",
            "invalid member on an earlier line",
            vec![s("@x=1"), s("bar=2")],
            None,
        ),
        (
            "TRACE-10",
            "duplicate key",
            vec![s("foo=1,foo=2")],
            some("foo=1"),
        ),
        (
            "TRACE-10",
            "duplicate key apart",
            vec![s("foo=1,bar=2,foo=3")],
            some("foo=1,bar=2"),
        ),
        (
            "TRACE-10",
            "duplicate key across lines",
            vec![s("foo=1"), s("bar=2,foo=3")],
            some("foo=1,bar=2"),
        ),
        (
            "TRACE-10",
            "same key, same value",
            vec![s("foo=1,foo=1")],
            some("foo=1"),
        ),
        (
            "TRACE-10",
            "keys that share a prefix are distinct",
            vec![s("foo=1,foobar=2,fo=3")],
            some("foo=1,foobar=2,fo=3"),
        ),
        (
            "TRACE-10",
            "invalid duplicate still invalid",
            vec![s("foo=1,foo=")],
            None,
        ),
        // TRACE-11: trimming to 512 characters by whole members.
        (
            "TRACE-11",
            "exactly 512 kept",
            vec![[a.clone(), b.clone(), c.clone(), d125.clone()].join(",")],
            Some([a.clone(), b.clone(), c.clone(), d125.clone()].join(",")),
        ),
        (
            "TRACE-11",
            "513: 128-char members are not long, drop from the right",
            vec![[a.clone(), b.clone(), c.clone(), d126].join(",")],
            Some([a.clone(), b.clone(), c.clone()].join(",")),
        ),
        (
            "TRACE-11",
            "short members dropped from the right",
            vec![sixty_four.join(",")],
            Some(sixty_four[..7].join(",")),
        ),
        (
            "TRACE-11",
            "combined lines trimmed as a whole",
            vec![sixty_four[..4].join(","), sixty_four[4..].join(",")],
            Some(sixty_four[..7].join(",")),
        ),
        (
            "TRACE-11",
            "one long member removed first",
            vec![format!(
                "{},{long200},{}",
                short100[0],
                short100[1..].join(",")
            )],
            Some(short100.join(",")),
        ),
        (
            "TRACE-11",
            "every long member removed when needed",
            vec![[l1.clone(), a.clone(), l2, b.clone(), c.clone()].join(",")],
            Some([a.clone(), b.clone(), c.clone()].join(",")),
        ),
        (
            "TRACE-11",
            "long member removed, then from the right",
            vec![
                [
                    a.clone(),
                    l259.clone(),
                    b.clone(),
                    c.clone(),
                    member("d", 128),
                    e100,
                ]
                .join(","),
            ],
            Some([a.clone(), b.clone(), c.clone()].join(",")),
        ),
        (
            "TRACE-11",
            "129 chars is long",
            vec![[a.clone(), member("m", 129), b.clone(), c.clone()].join(",")],
            Some([a.clone(), b.clone(), c.clone()].join(",")),
        ),
        (
            "TRACE-11",
            "a long key makes a long member",
            vec![
                [
                    member(&"k".repeat(140), 142),
                    a.clone(),
                    b.clone(),
                    c.clone(),
                ]
                .join(","),
            ],
            Some([a.clone(), b.clone(), c.clone()].join(",")),
        ),
        (
            "TRACE-11",
            "long member kept when the list fits",
            vec![[a.clone(), l259.clone()].join(",")],
            Some([a.clone(), l259].join(",")),
        ),
        (
            "TRACE-11",
            "length counted after dropping duplicates",
            vec![format!("{a},{b},{c},{d125},a=dup")],
            Some([a, b, c, d125].join(",")),
        ),
    ]
}

#[test]
fn tracestate_table() {
    for (rule, name, lines, want) in tracestate_rows() {
        let h = headers(
            &lines
                .iter()
                .map(|l| ("tracestate", l.as_str()))
                .collect::<Vec<_>>(),
        );
        let got = TraceState::from_headers(&h);
        assert_eq!(
            got.as_ref().map(TraceState::as_str),
            want.as_deref(),
            "{rule} {name}: {lines:?}"
        );
        if let Some(ts) = got {
            assert!(ts.as_str().len() <= TRACESTATE_MAX_LEN, "{rule} {name}");
            assert!(
                ts.as_str().split(',').count() <= TRACESTATE_MAX_MEMBERS,
                "{rule} {name}"
            );
            // What is forwarded is itself a valid list that is forwarded unchanged.
            let again = headers(&[("tracestate", ts.as_str())]);
            assert_eq!(TraceState::from_headers(&again), Some(ts), "{rule} {name}");
        }
    }
}

#[test]
fn tracestate_header_name_is_case_insensitive_and_needs_ascii() {
    // TRACE-7/TRACE-8: `TraceState` lines are the same header.
    let h = headers(&[("TraceState", "a=1"), ("tracestate", "b=2")]);
    assert_eq!(TraceState::from_headers(&h).unwrap().as_str(), "a=1,b=2");
    // TRACE-10: a line that is not ASCII drops the whole header.
    let mut h = headers(&[("tracestate", "a=1")]);
    h.append(
        TRACESTATE.clone(),
        HeaderValue::from_bytes("b=\u{e9}".as_bytes()).unwrap(),
    );
    assert_eq!(TraceState::from_headers(&h), None);
}

// ---------------------------------------------------------------------------------------------
// B3 (TRACE-12, TRACE-13)
// ---------------------------------------------------------------------------------------------

/// `(rule, name, header lines, Some((Some((trace, span)), sampled, form)) or None)`.
type B3Row = (
    &'static str,
    &'static str,
    Lines,
    Option<(Option<(&'static str, &'static str)>, Option<bool>, B3Form)>,
);

fn b3_rows() -> Vec<B3Row> {
    use B3Form::{Multi, Single};
    let ids = Some((B3_T, B3_S));
    let ids16 = Some((B3_T16_PADDED, B3_S));
    let multi = |t: &str, s: &str| {
        vec![
            ("X-B3-TraceId", t.to_owned()),
            ("X-B3-SpanId", s.to_owned()),
        ]
    };
    let with = |mut v: Lines, k: &'static str, val: &str| {
        v.push((k, val.to_owned()));
        v
    };
    let single = |v: String| vec![("b3", v)];
    vec![
        ("TRACE-12", "no B3", vec![], None),
        (
            "TRACE-12",
            "128-bit ids",
            multi(B3_T, B3_S),
            Some((ids, None, Multi)),
        ),
        (
            "TRACE-12",
            "64-bit trace id padded",
            multi(B3_T16, B3_S),
            Some((ids16, None, Multi)),
        ),
        (
            "TRACE-12",
            "sampled 1",
            with(multi(B3_T, B3_S), "X-B3-Sampled", "1"),
            Some((ids, Some(true), Multi)),
        ),
        (
            "TRACE-12",
            "sampled 0",
            with(multi(B3_T, B3_S), "X-B3-Sampled", "0"),
            Some((ids, Some(false), Multi)),
        ),
        (
            "TRACE-12",
            "sampled true",
            with(multi(B3_T, B3_S), "X-B3-Sampled", "true"),
            Some((ids, Some(true), Multi)),
        ),
        (
            "TRACE-12",
            "sampled false",
            with(multi(B3_T, B3_S), "X-B3-Sampled", "false"),
            Some((ids, Some(false), Multi)),
        ),
        (
            "TRACE-12",
            "debug flag samples",
            with(multi(B3_T, B3_S), "X-B3-Flags", "1"),
            Some((ids, Some(true), Multi)),
        ),
        (
            "TRACE-12",
            "debug flag beats sampled 0",
            with(
                with(multi(B3_T, B3_S), "X-B3-Sampled", "0"),
                "X-B3-Flags",
                "1",
            ),
            Some((ids, Some(true), Multi)),
        ),
        (
            "TRACE-12",
            "with valid parent span",
            with(multi(B3_T, B3_S), "X-B3-ParentSpanId", B3_P),
            Some((ids, None, Multi)),
        ),
        (
            "TRACE-12",
            "sampled-only 1",
            vec![("X-B3-Sampled", "1".into())],
            Some((None, Some(true), Multi)),
        ),
        (
            "TRACE-12",
            "sampled-only 0",
            vec![("X-B3-Sampled", "0".into())],
            Some((None, Some(false), Multi)),
        ),
        (
            "TRACE-12",
            "debug-only",
            vec![("X-B3-Flags", "1".into())],
            Some((None, Some(true), Multi)),
        ),
        (
            "TRACE-12",
            "mixed-case names",
            vec![
                ("x-b3-TRACEID", B3_T.into()),
                ("X-B3-SPANID", B3_S.into()),
                ("x-B3-sampled", "1".into()),
            ],
            Some((ids, Some(true), Multi)),
        ),
        (
            "TRACE-12",
            "first sampled line wins",
            vec![("X-B3-Sampled", "1".into()), ("X-B3-Sampled", "0".into())],
            Some((None, Some(true), Multi)),
        ),
        (
            "TRACE-12",
            "first trace id line wins",
            vec![
                ("X-B3-TraceId", B3_T.into()),
                ("X-B3-TraceId", "garbage".into()),
                ("X-B3-SpanId", B3_S.into()),
            ],
            Some((ids, None, Multi)),
        ),
        (
            "TRACE-12",
            "only trace id",
            vec![("X-B3-TraceId", B3_T.into())],
            None,
        ),
        (
            "TRACE-12",
            "only span id",
            vec![("X-B3-SpanId", B3_S.into())],
            None,
        ),
        (
            "TRACE-12",
            "only trace id with sampled",
            vec![("X-B3-TraceId", B3_T.into()), ("X-B3-Sampled", "1".into())],
            None,
        ),
        (
            "TRACE-12",
            "only parent span id",
            vec![("X-B3-ParentSpanId", B3_P.into())],
            None,
        ),
        (
            "TRACE-12",
            "non-hex trace id",
            multi("463ac35c9f6413ag", B3_S),
            None,
        ),
        (
            "TRACE-12",
            "non-hex span id",
            multi(B3_T, "a2fb4a1d1a96d31x"),
            None,
        ),
        (
            "TRACE-12",
            "uppercase trace id",
            multi(&B3_T.to_uppercase(), B3_S),
            None,
        ),
        ("TRACE-12", "empty trace id", multi("", B3_S), None),
        ("TRACE-12", "empty span id", multi(B3_T, ""), None),
        (
            "TRACE-12",
            "15-hex trace id",
            multi(&B3_T16[1..], B3_S),
            None,
        ),
        ("TRACE-12", "31-hex trace id", multi(&B3_T[1..], B3_S), None),
        (
            "TRACE-12",
            "24-hex trace id",
            multi(&B3_T[..24], B3_S),
            None,
        ),
        ("TRACE-12", "15-hex span id", multi(B3_T, &B3_S[1..]), None),
        ("TRACE-12", "32-hex span id", multi(B3_T, B3_T), None),
        (
            "TRACE-12",
            "zero 64-bit trace id",
            multi(ZERO_SPAN, B3_S),
            None,
        ),
        (
            "TRACE-12",
            "zero 128-bit trace id",
            multi(ZERO_ID, B3_S),
            None,
        ),
        ("TRACE-12", "zero span id", multi(B3_T, ZERO_SPAN), None),
        (
            "TRACE-12",
            "bad parent span id",
            with(multi(B3_T, B3_S), "X-B3-ParentSpanId", "xyz"),
            None,
        ),
        (
            "TRACE-12",
            "bad sampled value",
            with(multi(B3_T, B3_S), "X-B3-Sampled", "yes"),
            None,
        ),
        (
            "TRACE-12",
            "d is not a multi-header sampled value",
            with(multi(B3_T, B3_S), "X-B3-Sampled", "d"),
            None,
        ),
        (
            "TRACE-12",
            "empty sampled",
            vec![("X-B3-Sampled", String::new())],
            None,
        ),
        // TRACE-13: the single header.
        (
            "TRACE-13",
            "t-s",
            single(format!("{B3_T}-{B3_S}")),
            Some((ids, None, Single)),
        ),
        (
            "TRACE-13",
            "t-s-1",
            single(format!("{B3_T}-{B3_S}-1")),
            Some((ids, Some(true), Single)),
        ),
        (
            "TRACE-13",
            "t-s-0",
            single(format!("{B3_T}-{B3_S}-0")),
            Some((ids, Some(false), Single)),
        ),
        (
            "TRACE-13",
            "t-s-d",
            single(format!("{B3_T}-{B3_S}-d")),
            Some((ids, Some(true), Single)),
        ),
        (
            "TRACE-13",
            "t-s-1-p",
            single(format!("{B3_T}-{B3_S}-1-{B3_P}")),
            Some((ids, Some(true), Single)),
        ),
        (
            "TRACE-13",
            "t-s-0-p",
            single(format!("{B3_T}-{B3_S}-0-{B3_P}")),
            Some((ids, Some(false), Single)),
        ),
        (
            "TRACE-13",
            "64-bit t-s-1",
            single(format!("{B3_T16}-{B3_S}-1")),
            Some((ids16, Some(true), Single)),
        ),
        (
            "TRACE-13",
            "0 alone",
            single("0".into()),
            Some((None, Some(false), Single)),
        ),
        (
            "TRACE-13",
            "1 alone",
            single("1".into()),
            Some((None, Some(true), Single)),
        ),
        (
            "TRACE-13",
            "d alone",
            single("d".into()),
            Some((None, Some(true), Single)),
        ),
        (
            "TRACE-13",
            "mixed-case name B3",
            vec![("B3", format!("{B3_T}-{B3_S}-1"))],
            Some((ids, Some(true), Single)),
        ),
        ("TRACE-13", "empty", single(String::new()), None),
        ("TRACE-13", "2 alone", single("2".into()), None),
        ("TRACE-13", "true alone", single("true".into()), None),
        ("TRACE-13", "trace id alone", single(B3_T.into()), None),
        ("TRACE-13", "t-", single(format!("{B3_T}-")), None),
        ("TRACE-13", "t-s-", single(format!("{B3_T}-{B3_S}-")), None),
        (
            "TRACE-13",
            "t-s-x",
            single(format!("{B3_T}-{B3_S}-x")),
            None,
        ),
        (
            "TRACE-13",
            "t-s-true",
            single(format!("{B3_T}-{B3_S}-true")),
            None,
        ),
        (
            "TRACE-13",
            "t-s-1-bad parent",
            single(format!("{B3_T}-{B3_S}-1-zz")),
            None,
        ),
        (
            "TRACE-13",
            "t-s-1-p-extra",
            single(format!("{B3_T}-{B3_S}-1-{B3_P}-x")),
            None,
        ),
        (
            "TRACE-13",
            "uppercase trace id",
            single(format!("{}-{B3_S}-1", B3_T.to_uppercase())),
            None,
        ),
        (
            "TRACE-13",
            "zero trace id",
            single(format!("{ZERO_ID}-{B3_S}-1")),
            None,
        ),
        (
            "TRACE-13",
            "zero span id",
            single(format!("{B3_T}-{ZERO_SPAN}-1")),
            None,
        ),
        (
            "TRACE-13",
            "single wins over multi",
            vec![
                ("X-B3-TraceId", B3_T.into()),
                ("X-B3-SpanId", B3_P.into()),
                ("X-B3-Sampled", "1".into()),
                ("b3", format!("{B3_T16}-{B3_S}-0")),
            ],
            Some((ids16, Some(false), Single)),
        ),
        (
            "TRACE-13",
            "single decision wins over multi ids",
            vec![
                ("X-B3-TraceId", B3_T.into()),
                ("X-B3-SpanId", B3_S.into()),
                ("b3", "0".into()),
            ],
            Some((None, Some(false), Single)),
        ),
        (
            "TRACE-12",
            "malformed single ignores all B3",
            vec![
                ("X-B3-TraceId", B3_T.into()),
                ("X-B3-SpanId", B3_S.into()),
                ("b3", "bogus".into()),
            ],
            None,
        ),
        (
            "TRACE-13",
            "first single line wins",
            vec![("b3", "1".into()), ("b3", "0".into())],
            Some((None, Some(true), Single)),
        ),
    ]
}

#[test]
fn b3_table() {
    for (rule, name, lines, want) in b3_rows() {
        let h = headers(&lines);
        let got = B3::from_headers(&h).map(|b| {
            (
                b.ids.map(|(t, s)| (t.to_string(), s.to_string())),
                b.sampled,
                b.form,
            )
        });
        let want = want.map(|(ids, sampled, form)| {
            (
                ids.map(|(t, s)| (t.to_owned(), s.to_owned())),
                sampled,
                form,
            )
        });
        assert_eq!(got, want, "{rule} {name}: {lines:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// inject (TRACE-5, TRACE-11, TRACE-15)
// ---------------------------------------------------------------------------------------------

/// What `inject` should write besides `traceparent`.
#[derive(Clone, Copy, Debug)]
struct Written {
    tracestate: Option<&'static str>,
    b3: Option<B3Form>,
}

type InjectRow = (&'static str, &'static str, Lines, Propagation, Written);

fn inject_rows() -> Vec<InjectRow> {
    let w3c = Propagation::default();
    let with_b3 = Propagation { b3: true };
    let out = |tracestate, b3| Written { tracestate, b3 };
    let multi = vec![
        ("X-B3-TraceId", B3_T.to_owned()),
        ("X-B3-SpanId", B3_S.to_owned()),
        ("X-B3-ParentSpanId", B3_P.to_owned()),
        ("X-B3-Sampled", "1".to_owned()),
        ("X-B3-Flags", "1".to_owned()),
    ];
    let mut both = multi.clone();
    both.push(("b3", format!("{B3_T}-{B3_S}-0")));
    let mut tp_and_multi = multi.clone();
    tp_and_multi.push(("traceparent", tp("00")));
    vec![
        (
            "TRACE-15",
            "w3c in, w3c out",
            vec![("traceparent", tp("01"))],
            w3c,
            out(None, None),
        ),
        (
            "TRACE-15",
            "nothing in, traceparent out",
            vec![],
            w3c,
            out(None, None),
        ),
        (
            "TRACE-15",
            "w3c in, b3 propagation adds multi",
            vec![("traceparent", tp("01"))],
            with_b3,
            out(None, Some(B3Form::Multi)),
        ),
        (
            "TRACE-15",
            "nothing in, b3 propagation adds multi",
            vec![],
            with_b3,
            out(None, Some(B3Form::Multi)),
        ),
        (
            "TRACE-15",
            "multi in, multi out",
            multi.clone(),
            w3c,
            out(None, Some(B3Form::Multi)),
        ),
        (
            "TRACE-15",
            "multi in, b3 propagation, multi out",
            multi,
            with_b3,
            out(None, Some(B3Form::Multi)),
        ),
        (
            "TRACE-15",
            "single in, single out",
            vec![("b3", format!("{B3_T16}-{B3_S}-1-{B3_P}"))],
            w3c,
            out(None, Some(B3Form::Single)),
        ),
        (
            "TRACE-15",
            "single in, b3 propagation, still single",
            vec![("b3", format!("{B3_T}-{B3_S}"))],
            with_b3,
            out(None, Some(B3Form::Single)),
        ),
        (
            "TRACE-15",
            "decision-only single in, single out",
            vec![("b3", "0".to_owned())],
            w3c,
            out(None, Some(B3Form::Single)),
        ),
        (
            "TRACE-15",
            "decision-only multi in, multi out",
            vec![("X-B3-Sampled", "1".to_owned())],
            w3c,
            out(None, Some(B3Form::Multi)),
        ),
        (
            "TRACE-15",
            "both forms in, only single out",
            both,
            w3c,
            out(None, Some(B3Form::Single)),
        ),
        (
            "TRACE-14",
            "traceparent + multi in, multi remembered",
            tp_and_multi,
            w3c,
            out(None, Some(B3Form::Multi)),
        ),
        (
            "TRACE-14",
            "traceparent + single in, single remembered",
            vec![
                ("traceparent", tp("01")),
                ("b3", format!("{B3_T}-{B3_S}-0")),
            ],
            w3c,
            out(None, Some(B3Form::Single)),
        ),
        (
            "TRACE-12",
            "malformed B3 in, none out",
            vec![("traceparent", tp("01")), ("X-B3-TraceId", B3_T.to_owned())],
            w3c,
            out(None, None),
        ),
        (
            "TRACE-11",
            "tracestate forwarded as one line",
            vec![
                ("traceparent", tp("01")),
                ("tracestate", "foo=1,bar=2".to_owned()),
                ("tracestate", "rojo=1,congo=2".to_owned()),
                ("tracestate", "baz=3".to_owned()),
            ],
            w3c,
            out(Some("foo=1,bar=2,rojo=1,congo=2,baz=3"), None),
        ),
        (
            "TRACE-11",
            "tracestate cleaned up",
            vec![
                ("traceparent", tp("01")),
                ("tracestate", " a=1 ,, a=2 ,b=3".to_owned()),
            ],
            w3c,
            out(Some("a=1,b=3"), None),
        ),
        (
            "TRACE-10",
            "invalid tracestate removed",
            vec![
                ("traceparent", tp("01")),
                ("tracestate", "foo=1,BAR=2".to_owned()),
            ],
            w3c,
            out(None, None),
        ),
        (
            "TRACE-6",
            "tracestate removed on restart",
            vec![
                ("traceparent", "garbage".to_owned()),
                ("tracestate", "foo=1".to_owned()),
            ],
            w3c,
            out(None, None),
        ),
        (
            "TRACE-2",
            "two traceparent lines in, one out",
            vec![("traceparent", tp("01")), ("traceparent", tp("00"))],
            w3c,
            out(None, None),
        ),
    ]
}

/// Checks what `inject` wrote for `span`.
fn check_injected(at: &str, h: &HeaderMap, span: &SpanContext, want: Written) {
    let sampled = if span.is_sampled() { "1" } else { "0" };
    assert_eq!(
        values(h, "traceparent"),
        [format!(
            "00-{}-{}-{:02x}",
            span.trace_id(),
            span.span_id(),
            span.flags()
        )],
        "{at}: traceparent"
    );
    assert_eq!(
        values(h, "tracestate"),
        want.tracestate.into_iter().collect::<Vec<_>>(),
        "{at}: tracestate"
    );
    let parent = span.parent_span_id().map(|p| p.to_string());
    let single = values(h, "b3");
    let multi = |name| values(h, name);
    match want.b3 {
        None => {
            assert!(single.is_empty(), "{at}: no b3");
            for name in [
                "x-b3-traceid",
                "x-b3-spanid",
                "x-b3-parentspanid",
                "x-b3-sampled",
                "x-b3-flags",
            ] {
                assert!(multi(name).is_empty(), "{at}: no {name}");
            }
        }
        Some(B3Form::Single) => {
            let mut v = format!("{}-{}-{sampled}", span.trace_id(), span.span_id());
            if let Some(p) = &parent {
                v = format!("{v}-{p}");
            }
            assert_eq!(single, [v], "{at}: b3");
            for name in [
                "x-b3-traceid",
                "x-b3-spanid",
                "x-b3-parentspanid",
                "x-b3-sampled",
                "x-b3-flags",
            ] {
                assert!(multi(name).is_empty(), "{at}: never both forms ({name})");
            }
        }
        Some(B3Form::Multi) => {
            assert!(single.is_empty(), "{at}: never both forms (b3)");
            assert_eq!(multi("x-b3-traceid"), [span.trace_id().to_string()], "{at}");
            assert_eq!(multi("x-b3-spanid"), [span.span_id().to_string()], "{at}");
            assert_eq!(
                multi("x-b3-parentspanid"),
                parent.into_iter().collect::<Vec<_>>(),
                "{at}"
            );
            assert_eq!(multi("x-b3-sampled"), [sampled], "{at}");
            assert!(
                multi("x-b3-flags").is_empty(),
                "{at}: stale X-B3-Flags removed"
            );
        }
    }
}

#[test]
fn inject_table() {
    for (rule, name, lines, propagation, want) in inject_rows() {
        for sampler in [Sampler::ratio(0.0), Sampler::ratio(1.0)] {
            let at = format!("{rule} {name} (sampler {})", sampler.as_ratio());
            // A proxy rewrites the request's own headers: start from them.
            let mut h = headers(&lines);
            h.insert("x-request-id", HeaderValue::from_static("keep-me"));
            let mut rng = Random::seeded(11);
            let span = SpanContext::start(&h, &sampler, &mut rng);
            span.inject(&mut h, propagation);
            check_injected(&at, &h, &span, want);
            assert_eq!(values(&h, "x-request-id"), ["keep-me"], "{at}");
            // The next hop reads back exactly this hop's context (TRACE-5).
            let next = TraceParent::from_headers(&h).unwrap();
            assert_eq!(next, span.traceparent(), "{at}");
            // Injecting twice changes nothing: headers are replaced, never duplicated.
            let before = h.clone();
            span.inject(&mut h, propagation);
            assert_eq!(h, before, "{at}: inject is idempotent");
        }
    }
}

#[test]
fn b3_written_back_carries_the_hops_span_and_incoming_parent() {
    // TRACE-15 spelled out for the multi form.
    let h = headers(&[
        ("X-B3-TraceId", B3_T16),
        ("X-B3-SpanId", B3_S),
        ("X-B3-Sampled", "1"),
    ]);
    let mut rng = Random::seeded(1);
    let span = SpanContext::start(&h, &Sampler::ratio(0.0), &mut rng);
    let mut out = h.clone();
    span.inject(&mut out, Propagation::default());
    assert_eq!(values(&out, "x-b3-traceid"), [B3_T16_PADDED]);
    assert_eq!(values(&out, "x-b3-parentspanid"), [B3_S]);
    assert_eq!(values(&out, "x-b3-sampled"), ["1"]);
    let new_span = values(&out, "x-b3-spanid").remove(0);
    assert_ne!(new_span, B3_S);
    assert_eq!(
        values(&out, "traceparent"),
        [format!("00-{B3_T16_PADDED}-{new_span}-01")]
    );
    // And for the single form, with a deny decision.
    let h = headers(&[("b3", format!("{B3_T}-{B3_S}-0-{B3_P}"))]);
    let span = SpanContext::start(&h, &Sampler::ratio(1.0), &mut rng);
    let mut out = HeaderMap::new();
    span.inject(&mut out, Propagation { b3: true });
    let new_span = span.span_id().to_string();
    assert_eq!(values(&out, "b3"), [format!("{B3_T}-{new_span}-0-{B3_S}")]);
    assert_eq!(
        values(&out, "traceparent"),
        [format!("00-{B3_T}-{new_span}-00")]
    );
    assert!(values(&out, "x-b3-traceid").is_empty());
}

#[test]
fn propagation_from_str_table() {
    // (rule, name, input, Some(b3) or None for an error)
    const ROWS: &[(&str, &str, &str, Option<bool>)] = &[
        ("TRACE-15", "w3c", "w3c", Some(false)),
        (
            "TRACE-15",
            "tracecontext alias",
            "tracecontext",
            Some(false),
        ),
        ("TRACE-15", "b3", "b3", Some(true)),
        ("TRACE-15", "w3c,b3", "w3c,b3", Some(true)),
        ("TRACE-15", "b3,w3c", "b3,w3c", Some(true)),
        ("TRACE-15", "spaces and case", " W3C , B3 ", Some(true)),
        ("TRACE-15", "empty parts", "w3c,,", Some(false)),
        ("TRACE-15", "empty", "", Some(false)),
        ("TRACE-15", "zipkin", "zipkin", None),
        ("TRACE-15", "w3c,zipkin", "w3c,zipkin", None),
        ("TRACE-15", "b3multi", "b3multi", None),
    ];
    for &(rule, name, input, want) in ROWS {
        let got = input.parse::<Propagation>();
        assert_eq!(
            got.as_ref().ok().map(|p| p.b3),
            want,
            "{rule} {name}: {input:?}"
        );
        if let Err(e) = got {
            assert!(!e.is_empty(), "{rule} {name}: the error says something");
        }
    }
    assert_eq!(Propagation::default(), Propagation { b3: false });
    assert_eq!(
        "w3c,b3".parse::<Propagation>(),
        Ok(Propagation { b3: true })
    );
    assert!(
        "zipkin"
            .parse::<Propagation>()
            .unwrap_err()
            .contains("zipkin")
    );
}

// ---------------------------------------------------------------------------------------------
// child
// ---------------------------------------------------------------------------------------------

#[test]
fn child_keeps_the_trace_and_makes_the_parent_current() {
    // (name, incoming header lines)
    let rows: Vec<(&str, Lines)> = vec![
        (
            "continued with tracestate",
            vec![("traceparent", tp("03")), ("tracestate", "a=1,b=2".into())],
        ),
        ("restarted", vec![]),
        ("from single B3", vec![("b3", format!("{B3_T}-{B3_S}-1"))]),
        (
            "from multi B3",
            vec![("X-B3-TraceId", B3_T.into()), ("X-B3-SpanId", B3_S.into())],
        ),
    ];
    for (name, lines) in rows {
        let h = headers(&lines);
        let mut rng = Random::seeded(21);
        let parent = SpanContext::start(&h, &Sampler::ratio(0.5), &mut rng);
        let child = parent.child(&mut rng);
        assert_eq!(child.trace_id(), parent.trace_id(), "{name}");
        assert_eq!(child.flags(), parent.flags(), "{name}");
        assert_eq!(child.is_sampled(), parent.is_sampled(), "{name}");
        assert_eq!(child.trace_state(), parent.trace_state(), "{name}");
        assert_eq!(child.parent_span_id(), Some(parent.span_id()), "{name}");
        assert_ne!(child.span_id(), parent.span_id(), "{name}");
        assert_ne!(child.span_id().to_u64(), 0, "{name}");
        // The child writes the same forms as its parent, with itself as the next parent.
        let (mut a, mut b) = (HeaderMap::new(), HeaderMap::new());
        parent.inject(&mut a, Propagation::default());
        child.inject(&mut b, Propagation::default());
        let names = |m: &HeaderMap| {
            let mut v: Vec<String> = m.keys().map(|k| k.as_str().to_owned()).collect();
            v.sort();
            v
        };
        assert_eq!(names(&a), names(&b), "{name}");
        assert_eq!(
            TraceParent::from_headers(&b).unwrap().parent_id,
            child.span_id(),
            "{name}"
        );
        let grandchild = child.child(&mut rng);
        assert_eq!(grandchild.parent_span_id(), Some(child.span_id()), "{name}");
        assert_eq!(grandchild.trace_id(), parent.trace_id(), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// Header lines that may or may not be trace context: well-formed, nearly well-formed and junk.
fn trace_lines() -> impl Strategy<Value = Lines> {
    let name = prop::sample::select(vec![
        "traceparent",
        "tracestate",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "x-b3-flags",
    ]);
    let value = prop_oneof![
        "[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[a-z]{0,4})?",
        "(00|0{16}|0{32}|-|1|0|d|true|false)",
        "[0-9a-f]{16}(-[0-9a-f]{16}(-[01d](-[0-9a-f]{16})?)?)?",
        "[0-9a-f]{32}-[0-9a-f]{16}-[01d]",
        "[ -~]{0,60}",
    ];
    prop::collection::vec((name, value), 0..6)
}

proptest! {
    /// TRACE-1/TRACE-3: whatever a valid `TraceParent` prints, reads back as itself.
    #[test]
    fn traceparent_display_round_trips(
        trace in 1u128..,
        span in 1u64..,
        flags in 0u8..=3,
        ows in "[ \t]{0,3}",
    ) {
        let p = TraceParent {
            trace_id: TraceId::from_hex(&format!("{trace:032x}")).unwrap(),
            parent_id: SpanId::from_hex(&format!("{span:016x}")).unwrap(),
            flags,
        };
        let out = p.to_string();
        prop_assert_eq!(out.len(), 55);
        prop_assert!(out.starts_with("00-"));
        prop_assert_eq!(TraceParent::parse(&out), Some(p));
        prop_assert_eq!(TraceParent::parse(&format!("{ows}{out}{ows}")), Some(p));
    }

    /// TRACE-4: any flags byte goes out with only the two known bits.
    #[test]
    fn traceparent_flags_are_masked(flags in any::<u8>()) {
        let p = TraceParent {
            trace_id: TraceId::from_hex(ID).unwrap(),
            parent_id: SpanId::from_hex(PARENT).unwrap(),
            flags,
        };
        let back = TraceParent::parse(&p.to_string()).unwrap();
        prop_assert_eq!(back.flags, flags & (FLAG_SAMPLED | FLAG_RANDOM));
        let parsed = TraceParent::parse(&tp(&format!("{flags:02x}"))).unwrap();
        prop_assert_eq!(parsed.flags, flags & 0x03);
    }

    /// TRACE-5/TRACE-6: whatever arrives, the hop's ids are never zero, its span is new, and
    /// what it writes is a valid context that the next hop continues.
    #[test]
    fn start_never_yields_zero_ids(
        lines in trace_lines(),
        seed in any::<u64>(),
        ratio in 0.0f64..=1.0,
        b3 in any::<bool>(),
    ) {
        let h = headers(&lines);
        let mut rng = Random::seeded(seed);
        let span = SpanContext::start(&h, &Sampler::ratio(ratio), &mut rng);
        prop_assert_ne!(span.trace_id().to_u128(), 0);
        prop_assert_ne!(span.span_id().to_u64(), 0);
        prop_assert_ne!(Some(span.span_id()), span.parent_span_id());
        prop_assert_eq!(span.flags() & !(FLAG_SAMPLED | FLAG_RANDOM), 0);
        let mut out = h.clone();
        span.inject(&mut out, Propagation { b3 });
        prop_assert_eq!(out.get_all(&TRACEPARENT).iter().count(), 1);
        prop_assert!(out.get_all(&TRACESTATE).iter().count() <= 1);
        prop_assert!(!(out.contains_key(&B3_SINGLE) && out.contains_key(&B3_TRACE_ID)));
        let next = SpanContext::start(&out, &Sampler::ratio(0.0), &mut rng);
        prop_assert_eq!(next.trace_id(), span.trace_id());
        prop_assert_eq!(next.parent_span_id(), Some(span.span_id()));
        prop_assert_eq!(next.flags(), span.flags());
        prop_assert_eq!(next.trace_state(), span.trace_state());
    }

    /// TRACE-8..TRACE-11: whatever is accepted is within the limits and forwarded unchanged
    /// by the next hop.
    #[test]
    fn tracestate_output_is_bounded_and_stable(
        lines in prop::collection::vec(
            prop::collection::vec("[a-d][a-z0-9@*/_-]{0,3}=[ -+\\--<>-~]{1,150}", 0..12)
                .prop_map(|ms| ms.join(",")),
            0..4,
        ),
    ) {
        let h = headers(&lines.iter().map(|l| ("tracestate", l.as_str())).collect::<Vec<_>>());
        if let Some(ts) = TraceState::from_headers(&h) {
            let s = ts.as_str();
            prop_assert!(s.len() <= TRACESTATE_MAX_LEN);
            let keys: Vec<&str> = s.split(',').map(|m| m.split_once('=').unwrap().0).collect();
            prop_assert!(keys.len() <= TRACESTATE_MAX_MEMBERS);
            let unique: std::collections::HashSet<&&str> = keys.iter().collect();
            prop_assert_eq!(unique.len(), keys.len(), "no duplicate keys: {}", s);
            let again = headers(&[("tracestate", s)]);
            prop_assert_eq!(TraceState::from_headers(&again), Some(ts.clone()));
        }
    }
}
