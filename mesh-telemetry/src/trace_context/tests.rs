//! Trace-context rules as tables, written from the W3C Trace Context specification and its
//! test suite as digested in SEMANTICS §9.1–9.3.

use super::*;

fn headers(lines: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in lines {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

const ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

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
