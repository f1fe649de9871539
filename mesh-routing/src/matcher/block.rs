//! [`MatchBlock`]: one compiled `HTTPMatchRequest` (SEMANTICS VS-2..VS-12, HOST-10).

use std::fmt::Write as _;

use http::HeaderName;
use mesh_core::model::{HttpMatchRequest, StringMatch};

use super::{CompileContext, ProxyIdentity, RequestView, StringMatcher, UriMatched};
use crate::Error;

/// Keys of `headers`/`withoutHeaders` that name pseudo-headers with fields of their own; Istio
/// ignores them inside `headers` (VS-7).
const IGNORED_HEADER_KEYS: [&str; 4] = ["uri", "scheme", "method", "authority"];

/// Prefix of Istio's JWT-claim conditions written as header keys (gateway feature).
const JWT_CLAIM_PREFIX: &str = "@request.auth.claims.";

/// The gateway name that stands for every sidecar (HOST-10).
const MESH_GATEWAY: &str = "mesh";

/// One `HTTPMatchRequest`, compiled: every condition it sets, ANDed (VS-2).
///
/// Conditions are checked cheapest first (port, method, uri, scheme, authority, headers,
/// withoutHeaders, queryParams); the result does not depend on the order, only
/// [`MatchBlock::explain_mismatch`]'s choice of which failing condition to name does.
/// `sourceLabels`, `sourceNamespace` and match-level `gateways` are not request conditions:
/// [`MatchBlock::compile`] uses them to decide whether the block exists for this proxy at all
/// (VS-12, HOST-10).
#[derive(Clone, Debug)]
pub struct MatchBlock {
    name: Box<str>,
    port: Option<u32>,
    method: Option<StringMatcher>,
    uri: Option<StringMatcher>,
    scheme: Option<StringMatcher>,
    authority: Option<StringMatcher>,
    headers: Box<[HeaderCondition]>,
    without_headers: Box<[HeaderCondition]>,
    query_params: Box<[QueryCondition]>,
}

/// A `headers`/`withoutHeaders` entry.
#[derive(Clone, Debug)]
struct HeaderCondition {
    /// The key as written, for messages.
    written: Box<str>,
    /// `None` for a key no request carries (`@request.auth.claims.*`): always absent.
    name: Option<HeaderName>,
    matcher: StringMatcher,
}

impl HeaderCondition {
    /// True when any one line of the header matches on its own (VS-7); `{}` matches any line,
    /// so it is true exactly when the header is present. Absent → false.
    fn holds(&self, headers: &http::HeaderMap) -> bool {
        self.name.as_ref().is_some_and(|name| {
            headers
                .get_all(name)
                .iter()
                .any(|v| self.matcher.matches_bytes(v.as_bytes()))
        })
    }

    /// `header x-canary absent`, `header x exact "1" does not match "2"`, ...
    fn describe(&self, headers: &http::HeaderMap, field: &str, negated: bool) -> String {
        let key = &self.written;
        let values: Vec<&[u8]> = match &self.name {
            Some(name) => headers.get_all(name).iter().map(|v| v.as_bytes()).collect(),
            None => Vec::new(),
        };
        if negated {
            // The header is there and (one line of it) matches.
            let matching = values
                .iter()
                .find(|v| self.matcher.matches_bytes(v))
                .map_or_else(String::new, |v| shown(v));
            return if self.matcher.is_any() {
                format!("{field} {key} present")
            } else {
                format!("{field} {key} {} matches {matching}", self.matcher)
            };
        }
        if self.name.is_none() {
            return format!("{field} {key} absent (JWT claims are not available to sidecars)");
        }
        match values.as_slice() {
            [] => format!("{field} {key} absent"),
            [one] => format!(
                "{field} {key} {} does not match {}",
                self.matcher,
                shown(one)
            ),
            many => {
                let mut s = format!("{field} {key} {} matches none of ", self.matcher);
                for (i, v) in many.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    let _ = write!(s, "{sep}{}", shown(v));
                }
                s
            }
        }
    }
}

/// A `queryParams` entry.
#[derive(Clone, Debug)]
struct QueryCondition {
    name: Box<str>,
    matcher: StringMatcher,
}

/// Which condition failed; turned into text only by `explain_mismatch`.
#[derive(Clone, Copy, Debug)]
enum Failure {
    Port(u32),
    Method,
    Uri,
    Scheme,
    Authority,
    Header(usize),
    WithoutHeader(usize),
    QueryParam(usize),
}

impl MatchBlock {
    /// Compiles one match block for the client proxy `proxy`.
    ///
    /// Returns `Ok(None)` when the block does not apply to this proxy (VS-12, HOST-10):
    /// `sourceLabels` is not a subset of the proxy's labels, `sourceNamespace` is set and is
    /// not the proxy's namespace, or the block's own `gateways` list is non-empty and lacks
    /// `mesh`. (An empty match-level `gateways` defers to the VirtualService's top-level list,
    /// which the caller checks.) Conditions are compiled — and regexes validated — even for a
    /// block that does not apply, so a config is accepted or rejected the same way by every
    /// proxy.
    ///
    /// An empty block `{}` matches every request (VS-2, ours). Header keys are compared
    /// case-insensitively; the keys `uri`, `scheme`, `method` and `authority` are ignored
    /// (VS-7). Keys starting with `@request.auth.claims.` (Istio's JWT-claim routing) name no
    /// header a sidecar sees: as a `headers` condition they never hold, as a `withoutHeaders`
    /// condition they always hold (ours). `port: 0` means no port condition (VS-11).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRegex`] for a pattern that does not compile (VS-3),
    /// [`Error::InvalidHeader`] for a header key that is not a valid HTTP header name, and
    /// [`Error::UnsupportedMatch`] for a match type this version does not know.
    pub fn compile(
        m: &HttpMatchRequest,
        proxy: &ProxyIdentity<'_>,
        ctx: &CompileContext<'_>,
    ) -> Result<Option<Self>, Error> {
        let field = |sm: &Option<StringMatch>, ignore_case: bool| -> Result<_, Error> {
            match sm {
                // `{}` on these fields matches any value: no condition (VS-2).
                None | Some(StringMatch::Any) => Ok(None),
                Some(sm) => StringMatcher::from_config(sm, ignore_case, ctx).map(Some),
            }
        };
        let block = Self {
            name: m.name.as_str().into(),
            port: (m.port != 0).then_some(m.port),
            method: field(&m.method, false)?,
            uri: field(&m.uri, m.ignore_uri_case)?,
            scheme: field(&m.scheme, false)?,
            authority: field(&m.authority, false)?,
            headers: header_conditions(&m.headers, ctx)?,
            without_headers: header_conditions(&m.without_headers, ctx)?,
            query_params: m
                .query_params
                .iter()
                .map(|(name, sm)| {
                    Ok(QueryCondition {
                        name: name.as_str().into(),
                        matcher: StringMatcher::from_config(sm, false, ctx)?,
                    })
                })
                .collect::<Result<_, Error>>()?,
        };
        let applies = (m.gateways.is_empty() || m.gateways.iter().any(|g| g == MESH_GATEWAY))
            && (m.source_namespace.is_empty() || m.source_namespace == proxy.namespace)
            && m.source_labels
                .iter()
                .all(|(k, v)| proxy.labels.get(k) == Some(v));
        Ok(applies.then_some(block))
    }

    /// A block with no conditions, matching every request: what a route without `match`
    /// stands for (VS-1).
    pub fn catch_all() -> Self {
        Self {
            name: "".into(),
            port: None,
            method: None,
            uri: None,
            scheme: None,
            authority: None,
            headers: Box::new([]),
            without_headers: Box::new([]),
            query_params: Box::new([]),
        }
    }

    /// Whether every condition holds (VS-2). On success, which kind of `uri` condition matched
    /// and, for `prefix`, how many bytes of the path it covered (VS-19 and redirect
    /// `prefixRewrite` replace exactly those). Does not allocate.
    pub fn matches(&self, req: &RequestView<'_>) -> Option<UriMatched> {
        self.evaluate(req).ok()
    }

    /// Why the block does not match `req`, naming the first failing condition in the order
    /// [`MatchBlock::matches`] checks them (e.g. `uri prefix "/api" does not match "/x"`,
    /// `header x-canary absent`); `None` when it matches. Allocates; meant for `explain`.
    pub fn explain_mismatch(&self, req: &RequestView<'_>) -> Option<String> {
        let failure = self.evaluate(req).err()?;
        let field = |name: &str, m: &Option<StringMatcher>, value: &str| match m {
            Some(m) => format!("{name} {m} does not match {value:?}"),
            None => format!("{name} does not match {value:?}"),
        };
        Some(match failure {
            Failure::Port(port) => {
                format!("port {port} does not match destination port {}", req.port)
            }
            Failure::Method => field("method", &self.method, req.method.as_str()),
            Failure::Uri => field("uri", &self.uri, req.path),
            Failure::Scheme => field("scheme", &self.scheme, req.scheme),
            Failure::Authority => field("authority", &self.authority, req.authority),
            Failure::Header(i) => self
                .headers
                .get(i)
                .map_or_else(String::new, |c| c.describe(req.headers, "header", false)),
            Failure::WithoutHeader(i) => {
                self.without_headers.get(i).map_or_else(String::new, |c| {
                    c.describe(req.headers, "withoutHeaders", true)
                })
            }
            Failure::QueryParam(i) => self.query_params.get(i).map_or_else(String::new, |c| {
                match req.query_param(&c.name) {
                    None => format!("query parameter {} absent", c.name),
                    Some(v) => format!(
                        "query parameter {} {} does not match {v:?}",
                        c.name, c.matcher
                    ),
                }
            }),
        })
    }

    /// `HTTPMatchRequest.name`, `""` when unnamed (route naming, LOG-2).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The compiled `uri` condition; `None` when the block has none (or `uri: {}`).
    pub fn uri(&self) -> Option<&StringMatcher> {
        self.uri.as_ref()
    }

    /// The destination port the block requires (VS-11); `None` when it requires none.
    pub fn port(&self) -> Option<u32> {
        self.port
    }

    fn evaluate(&self, req: &RequestView<'_>) -> Result<UriMatched, Failure> {
        if let Some(port) = self.port
            && u32::from(req.port) != port
        {
            return Err(Failure::Port(port));
        }
        let holds =
            |m: &Option<StringMatcher>, value: &str| m.as_ref().is_none_or(|m| m.matches(value));
        if !holds(&self.method, req.method.as_str()) {
            return Err(Failure::Method);
        }
        let uri = match &self.uri {
            None => UriMatched::None,
            Some(m) => m.uri_match(req.path).ok_or(Failure::Uri)?,
        };
        if !holds(&self.scheme, req.scheme) {
            return Err(Failure::Scheme);
        }
        if !holds(&self.authority, req.authority) {
            return Err(Failure::Authority);
        }
        if let Some(i) = self.headers.iter().position(|c| !c.holds(req.headers)) {
            return Err(Failure::Header(i));
        }
        if let Some(i) = self
            .without_headers
            .iter()
            .position(|c| c.holds(req.headers))
        {
            return Err(Failure::WithoutHeader(i));
        }
        if let Some(i) = self.query_params.iter().position(|c| {
            req.query_param(&c.name)
                .is_none_or(|v| !c.matcher.matches(v))
        }) {
            return Err(Failure::QueryParam(i));
        }
        Ok(uri)
    }
}

fn header_conditions(
    map: &std::collections::BTreeMap<String, StringMatch>,
    ctx: &CompileContext<'_>,
) -> Result<Box<[HeaderCondition]>, Error> {
    map.iter()
        .filter(|(key, _)| {
            !IGNORED_HEADER_KEYS
                .iter()
                .any(|k| k.eq_ignore_ascii_case(key))
        })
        .map(|(key, sm)| {
            let name = if key.starts_with(JWT_CLAIM_PREFIX) {
                None
            } else {
                // `from_bytes` lower-cases, so `X-Canary` and `x-canary` are the same header.
                let name =
                    HeaderName::from_bytes(key.as_bytes()).map_err(|e| Error::InvalidHeader {
                        location: ctx.location.clone(),
                        resource: ctx.resource.to_owned(),
                        name: key.clone(),
                        reason: e.to_string(),
                    })?;
                Some(name)
            };
            Ok(HeaderCondition {
                written: key.as_str().into(),
                name,
                matcher: StringMatcher::from_config(sm, false, ctx)?,
            })
        })
        .collect()
}

/// A header value for messages: quoted, non-UTF-8 bytes replaced.
fn shown(v: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(v))
}
