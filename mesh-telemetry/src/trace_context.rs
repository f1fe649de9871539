//! Trace context: reading it from a request, starting this hop's span, and writing it on.
//!
//! Why: a request crosses several proxies and apps; each hop must keep the trace id, make its
//! own span id, honour the caller's sampling decision and pass all of it on in the headers the
//! next hop reads (SEMANTICS §9.1–9.3). The W3C rules are strict on purpose — a malformed
//! `traceparent` restarts the trace rather than continuing a corrupted one — and B3, which
//! many Zipkin-era apps still send, is translated into the same context.
//!
//! - [`TraceParent`] parses `traceparent` (TRACE-1..TRACE-4); [`TraceState`] combines, checks,
//!   de-duplicates and trims `tracestate` (TRACE-8..TRACE-11); [`B3`] reads both B3 forms
//!   (TRACE-12, TRACE-13).
//! - [`SpanContext::start`] decides this hop's context from a request's headers (TRACE-5,
//!   TRACE-6, TRACE-14); [`SpanContext::inject`] writes it for the next hop (TRACE-15).
//!
//! ```
//! use mesh_core::random::Random;
//! use mesh_telemetry::trace_context::{Propagation, Sampler, SpanContext};
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert(
//!     "traceparent",
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap(),
//! );
//! let mut rng = Random::seeded(1);
//! let span = SpanContext::start(&headers, &Sampler::ratio(0.01), &mut rng);
//! assert_eq!(span.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert!(span.is_sampled(), "the caller's decision is kept");
//! span.inject(&mut headers, Propagation::default());
//! let sent = headers["traceparent"].to_str().unwrap();
//! assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
//! assert!(!sent.contains("00f067aa0ba902b7"), "the parent is now this hop's span");
//! ```

use std::fmt;
use std::str::FromStr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use mesh_core::random::Random;

/// `traceparent`.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// The single-header B3 form.
pub static B3_SINGLE: HeaderName = HeaderName::from_static("b3");
/// `X-B3-TraceId`.
pub static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
/// `X-B3-SpanId`.
pub static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
/// `X-B3-ParentSpanId`.
pub static B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
/// `X-B3-Sampled`.
pub static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
/// `X-B3-Flags`.
pub static B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");
/// `x-request-id` (REQID-1).
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A random UUID v4 in its canonical lower-case text form, as Envoy generates `x-request-id`
/// (REQID-1).
///
/// ```
/// let id = mesh_telemetry::trace_context::new_request_id();
/// let s = id.to_str().unwrap();
/// assert_eq!((s.len(), &s[14..15]), (36, "4"));
/// ```
pub fn new_request_id() -> HeaderValue {
    let mut rng = Random::thread();
    let hi = (rng.next_u64() & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000; // version 4
    let lo = (rng.next_u64() & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000; // RFC 4122 variant
    let bits = (u128::from(hi) << 64) | u128::from(lo);
    let hex = b"0123456789abcdef";
    let mut buf = [0u8; 36];
    let mut j = 0;
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            buf[j] = b'-';
            j += 1;
        }
        buf[j] = hex[((bits >> (124 - 4 * i)) & 0xf) as usize];
        j += 1;
    }
    HeaderValue::from_bytes(&buf)
        .unwrap_or_else(|_| HeaderValue::from_static("00000000-0000-4000-8000-000000000000"))
}

const B3_MULTI: [&HeaderName; 5] = [
    &B3_TRACE_ID,
    &B3_SPAN_ID,
    &B3_PARENT_SPAN_ID,
    &B3_SAMPLED,
    &B3_FLAGS,
];

/// A 16-byte trace id, never all zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId(u128);

impl TraceId {
    /// A random, non-zero trace id.
    pub fn random(rng: &mut Random) -> TraceId {
        loop {
            let id = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            if id != 0 {
                return TraceId(id);
            }
        }
    }

    /// From 32 lower-case hex digits; `None` if malformed or all zeros.
    pub fn from_hex(hex: &str) -> Option<TraceId> {
        (hex.len() == 32)
            .then(|| parse_hex(hex))
            .flatten()
            .filter(|v| *v != 0)
            .map(TraceId)
    }

    /// The id as a number.
    pub fn to_u128(self) -> u128 {
        self.0
    }

    /// The id's 16 bytes, big-endian (OTLP's form).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// An 8-byte span id, never all zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanId(u64);

impl SpanId {
    /// A random, non-zero span id.
    pub fn random(rng: &mut Random) -> SpanId {
        loop {
            let id = rng.next_u64();
            if id != 0 {
                return SpanId(id);
            }
        }
    }

    /// From 16 lower-case hex digits; `None` if malformed or all zeros.
    pub fn from_hex(hex: &str) -> Option<SpanId> {
        (hex.len() == 16)
            .then(|| parse_hex(hex))
            .flatten()
            .and_then(|v| u64::try_from(v).ok())
            .filter(|v| *v != 0)
            .map(SpanId)
    }

    /// The id as a number.
    pub fn to_u64(self) -> u64 {
        self.0
    }

    /// The id's 8 bytes, big-endian (OTLP's form).
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Lower-case hex only (TRACE-1); at most 32 digits.
fn parse_hex(s: &str) -> Option<u128> {
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    let mut v: u128 = 0;
    for b in s.bytes() {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some(v)
}

/// The trace-flags bit for "sampled".
pub const FLAG_SAMPLED: u8 = 0x01;
/// The Level 2 trace-flags bit for "the trace id is random".
pub const FLAG_RANDOM: u8 = 0x02;

/// A valid `traceparent` (TRACE-1..TRACE-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span.
    pub parent_id: SpanId,
    /// Flags as received, only the sampled and random bits kept (TRACE-4).
    pub flags: u8,
}

impl TraceParent {
    /// Parses one header value; `None` when it is invalid (TRACE-2), which means "restart".
    ///
    /// ```
    /// use mesh_telemetry::trace_context::TraceParent;
    /// let p = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
    /// assert!(p.sampled());
    /// assert!(TraceParent::parse("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01").is_none());
    /// ```
    pub fn parse(value: &str) -> Option<TraceParent> {
        let v = value.trim_matches([' ', '\t']);
        let b = v.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = u8::try_from(parse_hex(&v[..2])?).ok()?;
        if version == 0xff {
            return None;
        }
        if version == 0 && b.len() != 55 {
            return None;
        }
        // Future versions: anything after the flags must start with `-` (TRACE-3).
        if b.len() > 55 && b[55] != b'-' {
            return None;
        }
        let trace_id = TraceId::from_hex(&v[3..35])?;
        let parent_id = SpanId::from_hex(&v[36..52])?;
        if v[53..55]
            .bytes()
            .any(|c| !matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let flags = u8::try_from(parse_hex(&v[53..55])?).ok()?;
        Some(TraceParent {
            trace_id,
            parent_id,
            flags: flags & (FLAG_SAMPLED | FLAG_RANDOM),
        })
    }

    /// The `traceparent` of `headers`: `None` when absent, invalid, or sent on more than one
    /// line (TRACE-2).
    pub fn from_headers(headers: &HeaderMap) -> Option<TraceParent> {
        let mut lines = headers.get_all(&TRACEPARENT).iter();
        let first = lines.next()?;
        if lines.next().is_some() {
            return None;
        }
        TraceParent::parse(first.to_str().ok()?)
    }

    /// Whether the caller sampled the trace.
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }
}

impl fmt::Display for TraceParent {
    /// Always version `00` (TRACE-3); flag bits other than sampled and random are sent as 0
    /// (TRACE-4), even when set by hand.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.parent_id,
            self.flags & (FLAG_SAMPLED | FLAG_RANDOM)
        )
    }
}

/// The most members a `tracestate` may have (TRACE-8).
pub const TRACESTATE_MAX_MEMBERS: usize = 32;
/// The longest `tracestate` forwarded (TRACE-11).
pub const TRACESTATE_MAX_LEN: usize = 512;

/// A valid, combined `tracestate` list (TRACE-8..TRACE-11), ready to forward as one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceState(String);

impl TraceState {
    /// Combines every `tracestate` line of `headers` in order and validates the list: `None`
    /// when absent, empty or invalid (the whole header is dropped, TRACE-10). Later duplicates
    /// of a key are dropped; a list over 512 characters is trimmed by whole members, long
    /// members (over 128) first, then from the right (TRACE-11).
    pub fn from_headers(headers: &HeaderMap) -> Option<TraceState> {
        let mut members: Vec<&str> = Vec::new();
        // Every received member counts toward the limit, duplicates included (TRACE-8).
        let mut received = 0;
        for line in headers.get_all(&TRACESTATE) {
            let line = line.to_str().ok()?;
            for m in line.split(',') {
                let m = m.trim_matches([' ', '\t']);
                if m.is_empty() {
                    continue;
                }
                received += 1;
                if received > TRACESTATE_MAX_MEMBERS {
                    return None;
                }
                let (key, value) = m.split_once('=')?;
                if !valid_key(key) || !valid_value(value) {
                    return None;
                }
                if !members
                    .iter()
                    .any(|k| k.split_once('=').map(|x| x.0) == Some(key))
                {
                    members.push(m);
                }
            }
        }
        let len =
            |ms: &[&str]| ms.iter().map(|m| m.len()).sum::<usize>() + ms.len().saturating_sub(1);
        if len(&members) > TRACESTATE_MAX_LEN {
            while len(&members) > TRACESTATE_MAX_LEN {
                match members.iter().position(|m| m.len() > 128) {
                    Some(i) => {
                        members.remove(i);
                    }
                    None => break,
                }
            }
            while len(&members) > TRACESTATE_MAX_LEN {
                members.pop();
            }
        }
        if members.is_empty() {
            return None;
        }
        Some(TraceState(members.join(",")))
    }

    /// The list as one header line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Level 2 key grammar (TRACE-9): `[a-z0-9][a-z0-9_\-*/@]{0,255}`.
fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && matches!(b[0], b'a'..=b'z' | b'0'..=b'9')
        && b[1..]
            .iter()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@'))
}

/// 1–256 printable ASCII except `,` and `=`, not ending in a space (TRACE-9).
fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.last() != Some(&b' ')
        && b.iter()
            .all(|c| (0x20..=0x7e).contains(c) && *c != b',' && *c != b'=')
}

/// Which B3 form a request used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum B3Form {
    /// `X-B3-TraceId`, `X-B3-SpanId`, … (TRACE-12).
    Multi,
    /// `b3: trace-span-sampled-parent` (TRACE-13).
    Single,
}

/// A B3 context or sampling decision (TRACE-12, TRACE-13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct B3 {
    /// The trace and the caller's span, when the request carries them.
    pub ids: Option<(TraceId, SpanId)>,
    /// `Some(true)` for `1`/`d`/`true` or debug flags, `Some(false)` for `0`, `None` to defer.
    pub sampled: Option<bool>,
    /// The form it came in.
    pub form: B3Form,
}

impl B3 {
    /// The B3 context of `headers`: the single header wins over the multi-header form
    /// (TRACE-13); malformed B3 is ignored (`None`).
    pub fn from_headers(headers: &HeaderMap) -> Option<B3> {
        if let Some(v) = headers.get(&B3_SINGLE) {
            return B3::parse_single(v.to_str().ok()?);
        }
        B3::parse_multi(headers)
    }

    fn parse_single(v: &str) -> Option<B3> {
        let v = v.trim();
        let decision = |s: &str| match s {
            "1" | "d" => Some(Some(true)),
            "0" => Some(Some(false)),
            _ => None,
        };
        let parts: Vec<&str> = v.split('-').collect();
        let (ids, sampled) = match parts.as_slice() {
            [one] => (None, decision(one)?),
            [t, s] => (Some(b3_ids(t, s)?), None),
            [t, s, d] => (Some(b3_ids(t, s)?), decision(d)?),
            [t, s, d, p] => {
                SpanId::from_hex(p)?;
                (Some(b3_ids(t, s)?), decision(d)?)
            }
            _ => return None,
        };
        Some(B3 {
            ids,
            sampled,
            form: B3Form::Single,
        })
    }

    fn parse_multi(headers: &HeaderMap) -> Option<B3> {
        let get = |name: &HeaderName| headers.get(name).map(|v| v.to_str().map(str::trim));
        let trace = get(&B3_TRACE_ID);
        let span = get(&B3_SPAN_ID);
        let sampled = get(&B3_SAMPLED);
        let flags = get(&B3_FLAGS);
        if trace.is_none() && span.is_none() && sampled.is_none() && flags.is_none() {
            return None;
        }
        let ids = match (trace, span) {
            (Some(t), Some(s)) => Some(b3_ids(t.ok()?, s.ok()?)?),
            (None, None) => None,
            _ => return None,
        };
        if let Some(p) = get(&B3_PARENT_SPAN_ID) {
            SpanId::from_hex(p.ok()?)?;
        }
        let mut decision = match sampled {
            None => None,
            Some(s) => match s.ok()? {
                "1" | "true" => Some(true),
                "0" | "false" => Some(false),
                _ => return None,
            },
        };
        if let Some(f) = flags
            && f.ok()? == "1"
        {
            decision = Some(true);
        }
        Some(B3 {
            ids,
            sampled: decision,
            form: B3Form::Multi,
        })
    }
}

/// A B3 trace id (16 or 32 hex, a 64-bit one left-padded, TRACE-14) and span id.
fn b3_ids(trace: &str, span: &str) -> Option<(TraceId, SpanId)> {
    let trace = match trace.len() {
        16 => TraceId(parse_hex(trace).filter(|v| *v != 0)?),
        32 => TraceId::from_hex(trace)?,
        _ => return None,
    };
    Some((trace, SpanId::from_hex(span)?))
}

/// Which headers are written besides `traceparent`/`tracestate` (`--trace-propagation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Propagation {
    /// Also write B3 multi-header on requests that came without B3 (`b3`). Requests that came
    /// with B3 always get their own form back (TRACE-15).
    pub b3: bool,
}

impl FromStr for Propagation {
    type Err = String;

    /// `w3c`, `b3` or `w3c,b3`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = Propagation::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "w3c" | "tracecontext" => {}
                "b3" => p.b3 = true,
                other => return Err(format!("unknown trace propagation {other:?} (w3c, b3)")),
            }
        }
        Ok(p)
    }
}

/// The sampling rate for traces this hop starts (TRACE-6): a decision already made upstream
/// is always kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    ratio: f64,
}

impl Sampler {
    /// Samples `ratio` (0.0–1.0, clamped) of new traces.
    pub fn ratio(ratio: f64) -> Sampler {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        Sampler { ratio }
    }

    /// Samples `percent` (0–100) of new traces, as `--trace-sampling` takes it.
    pub fn percent(percent: f64) -> Sampler {
        Sampler::ratio(percent / 100.0)
    }

    /// The ratio.
    pub fn as_ratio(&self) -> f64 {
        self.ratio
    }

    fn sample(&self, rng: &mut Random) -> bool {
        self.ratio >= 1.0 || (self.ratio > 0.0 && rng.unit() < self.ratio)
    }
}

impl Default for Sampler {
    /// Istio's default: 1 %.
    fn default() -> Self {
        Sampler::ratio(0.01)
    }
}

/// This hop's span: the trace it belongs to, its own id, its parent, and the sampling
/// decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanContext {
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<SpanId>,
    flags: u8,
    tracestate: Option<TraceState>,
    b3: Option<B3Form>,
}

impl SpanContext {
    /// Decides this hop's context from a request's headers (TRACE-5, TRACE-6, TRACE-14): a
    /// valid `traceparent` is continued, else a valid B3 context is translated, else a new
    /// trace starts (sampled by `sampler`, `tracestate` dropped). The span id is always new.
    pub fn start(headers: &HeaderMap, sampler: &Sampler, rng: &mut Random) -> SpanContext {
        let b3 = B3::from_headers(headers);
        let b3_form = b3.map(|b| b.form);
        if let Some(p) = TraceParent::from_headers(headers) {
            return SpanContext {
                trace_id: p.trace_id,
                span_id: SpanId::random(rng),
                parent: Some(p.parent_id),
                flags: p.flags,
                tracestate: TraceState::from_headers(headers),
                b3: b3_form,
            };
        }
        let (trace_id, parent, flags) = match b3 {
            Some(B3 {
                ids: Some((t, s)),
                sampled,
                ..
            }) => {
                let sampled = sampled.unwrap_or_else(|| sampler.sample(rng));
                (t, Some(s), u8::from(sampled))
            }
            Some(B3 {
                ids: None, sampled, ..
            }) => {
                let sampled = sampled.unwrap_or_else(|| sampler.sample(rng));
                (TraceId::random(rng), None, u8::from(sampled) | FLAG_RANDOM)
            }
            None => (
                TraceId::random(rng),
                None,
                u8::from(sampler.sample(rng)) | FLAG_RANDOM,
            ),
        };
        SpanContext {
            trace_id,
            span_id: SpanId::random(rng),
            parent,
            flags,
            tracestate: None,
            b3: b3_form,
        }
    }

    /// A child span of this one in the same process (the app's outbound call made while
    /// serving a request, say): same trace, flags and `tracestate`, new span id.
    pub fn child(&self, rng: &mut Random) -> SpanContext {
        SpanContext {
            span_id: SpanId::random(rng),
            parent: Some(self.span_id),
            ..self.clone()
        }
    }

    /// The trace.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// This hop's span.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The caller's span, when the trace was continued.
    pub fn parent_span_id(&self) -> Option<SpanId> {
        self.parent
    }

    /// Whether the trace is sampled (spans are recorded and exported).
    pub fn is_sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// The trace-flags sent on (sampled and random bits only).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The `tracestate` forwarded, if any.
    pub fn trace_state(&self) -> Option<&TraceState> {
        self.tracestate.as_ref()
    }

    /// The `traceparent` the next hop receives: this span as its parent.
    pub fn traceparent(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id,
            parent_id: self.span_id,
            flags: self.flags,
        }
    }

    /// Writes the context for the next hop (TRACE-5, TRACE-11, TRACE-15): `traceparent` and
    /// the validated `tracestate` as single lines, and B3 in the form the request came in (or
    /// multi-header when `propagation.b3` is set and none came in). Incoming trace headers are
    /// replaced, never duplicated.
    pub fn inject(&self, headers: &mut HeaderMap, propagation: Propagation) {
        headers.insert(
            TRACEPARENT.clone(),
            header_value(&self.traceparent().to_string()),
        );
        match &self.tracestate {
            Some(ts) => {
                headers.insert(TRACESTATE.clone(), header_value(ts.as_str()));
            }
            None => {
                headers.remove(&TRACESTATE);
            }
        }
        let form = self.b3.or(propagation.b3.then_some(B3Form::Multi));
        headers.remove(&B3_SINGLE);
        for name in B3_MULTI {
            headers.remove(name);
        }
        let sampled = if self.is_sampled() { "1" } else { "0" };
        match form {
            None => {}
            Some(B3Form::Single) => {
                let mut v = format!("{}-{}-{sampled}", self.trace_id, self.span_id);
                if let Some(p) = self.parent {
                    v.push('-');
                    v.push_str(&p.to_string());
                }
                headers.insert(B3_SINGLE.clone(), header_value(&v));
            }
            Some(B3Form::Multi) => {
                headers.insert(
                    B3_TRACE_ID.clone(),
                    header_value(&self.trace_id.to_string()),
                );
                headers.insert(B3_SPAN_ID.clone(), header_value(&self.span_id.to_string()));
                if let Some(p) = self.parent {
                    headers.insert(B3_PARENT_SPAN_ID.clone(), header_value(&p.to_string()));
                }
                headers.insert(B3_SAMPLED.clone(), HeaderValue::from_static(sampled));
            }
        }
    }
}

/// Every value written here is ASCII validated on the way in.
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests;
