//! `HTTPRoute` and the messages only HTTP routes use: matches, weighted destinations, redirect,
//! direct response, rewrite, retries, fault injection, mirroring and CORS.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::wire::{self, is_default};
use super::{Delegate, Destination, Headers, StringMatch};
use crate::model::{Duration, Percent};

/// `HTTPRoute`: conditions and the action for HTTP/1.1, HTTP/2 and gRPC traffic (SEMANTICS §2).
///
/// Exactly one of `route`, `redirect`, `directResponse` and `delegate` is the action (VS-18);
/// parsing accepts any combination and validation reports conflicts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpRoute {
    /// Name of the route, shown in access logs and `/config_dump`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Match blocks, ORed; empty matches every request (VS-1, VS-2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r#match: Vec<HttpMatchRequest>,
    /// Weighted destinations to forward to (VS-14).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<HttpRouteDestination>,
    /// Answer with a redirect instead of forwarding (VS-22).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<HttpRedirect>,
    /// Answer with a fixed status and body instead of forwarding (VS-23).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<HttpDirectResponse>,
    /// Hand matching requests to another VirtualService's routes (VS-24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate: Option<Delegate>,
    /// Path and authority rewrites before forwarding (VS-19 to VS-21).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Deadline for the whole request including retries; absent or `0s` = none (VS-34).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Retry policy; absent = Istio's default policy (RETRY-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Delays and aborts to inject (VS-27 to VS-30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFaultInjection>,
    /// A destination that gets a fire-and-forget copy of each request (VS-31).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Several mirror destinations, each with its own percentage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Deprecated integer form of `mirrorPercentage` (also accepted as `mirror_percent`).
    #[serde(
        default,
        alias = "mirror_percent",
        skip_serializing_if = "Option::is_none"
    )]
    pub mirror_percent: Option<u32>,
    /// Share of requests copied to `mirror`; absent = 100% (VS-32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// CORS policy (VS-37).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Header edits at route level (VS-25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// `HTTPMatchRequest`: one match block; all its conditions are ANDed (VS-2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpMatchRequest {
    /// Name of the block, appended to the route's name in logs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Condition on the path, without the query string (VS-4, VS-5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Condition on the scheme (`http`, `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// Condition on the method token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Condition on `:authority`/`Host`, port included as sent (VS-10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Conditions on headers by lower-case name; `{}` = present (VS-7).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Destination port the request must have arrived on (VS-11).
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    /// Labels the client proxy must carry for this block to apply to it (VS-12).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways the block applies to (overrides the VirtualService's `gateways`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Conditions on query parameters, compared as sent (VS-9).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Makes `uri` `exact` and `prefix` comparisons ASCII case-insensitive (VS-6).
    #[serde(default, skip_serializing_if = "is_default")]
    pub ignore_uri_case: bool,
    /// Header conditions that must not hold (VS-8).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Namespace the client proxy must be in for this block to apply to it (VS-12).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_namespace: String,
    /// Prefix for the statistics of requests matched by this block.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stat_prefix: String,
}

/// `HTTPRouteDestination`: a weighted destination of an HTTP route, with its own header edits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpRouteDestination {
    /// Where the request goes (required).
    #[serde(default)]
    pub destination: Destination,
    /// Relative share of requests; ignored when the route has one destination (VS-14).
    #[serde(default, skip_serializing_if = "is_default")]
    pub weight: i32,
    /// Header edits for requests sent to this destination (VS-25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// `HTTPRedirect`: a redirect answered by the proxy (VS-22).
///
/// `port` and `derivePort` are one protobuf oneof: at most one may be set (validation checks).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpRedirect {
    /// Replaces the whole path in `Location`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    /// Replaces the host in `Location`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authority: String,
    /// Port to put in `Location` (exclusive with `derivePort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// How to choose the port in `Location` (exclusive with `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive_port: Option<RedirectPortSelection>,
    /// Replaces the scheme in `Location`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    /// Status of the redirect; 0 means 301.
    #[serde(default, skip_serializing_if = "is_default")]
    pub redirect_code: u32,
    /// Replaces only the matched `uri.prefix` in `Location` (exclusive with `uri`; newer than
    /// Istio 1.28).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix_rewrite: String,
}

/// `HTTPRedirect.RedirectPortSelection`: where a redirect's port comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum RedirectPortSelection {
    /// 80 for `http`, 443 for `https` (left out of `Location`).
    #[default]
    FromProtocolDefault,
    /// The port the request came in on.
    FromRequestPort,
}

/// `HTTPDirectResponse`: a fixed response answered by the proxy (VS-23).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpDirectResponse {
    /// HTTP status (required).
    #[serde(default)]
    pub status: u32,
    /// Body; absent = empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpBody>,
}

/// `HTTPBody`: a direct-response body, written `{string: text}` or `{bytes: base64}`.
///
/// ```
/// use mesh_core::model::HttpBody;
/// let b: HttpBody = serde_json::from_str(r#"{"bytes": "aGk="}"#).unwrap();
/// assert_eq!(b.as_bytes(), b"hi");
/// assert_eq!(serde_json::to_string(&b).unwrap(), r#"{"bytes":"aGk="}"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpBody {
    /// `string`: the body as text.
    String(String),
    /// `bytes`: the body as bytes (base64 in YAML and JSON).
    Bytes(Vec<u8>),
}

impl HttpBody {
    /// The YAML keys of the body forms.
    pub const KEYS: [&'static str; 2] = ["string", "bytes"];

    /// The body's bytes, whichever form it was written in.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            HttpBody::String(s) => s.as_bytes(),
            HttpBody::Bytes(b) => b,
        }
    }
}

impl Serialize for HttpBody {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            HttpBody::String(s) => map.serialize_entry("string", s)?,
            HttpBody::Bytes(b) => map.serialize_entry("bytes", &wire::base64_encode(b))?,
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for HttpBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HttpBody;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a body: a map with one of `string` or `bytes`")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HttpBody, A::Error> {
                match wire::one_string_of(map, &HttpBody::KEYS)? {
                    Some((0, s)) => Ok(HttpBody::String(s)),
                    Some((_, b64)) => wire::base64_decode(&b64)
                        .map(HttpBody::Bytes)
                        .ok_or_else(|| de::Error::custom("`bytes` is not valid base64")),
                    None => Err(de::Error::custom("a body needs one of `string` or `bytes`")),
                }
            }
        }
        // `any`, not `map`, so that a scalar gets the error naming the expected shape.
        deserializer.deserialize_any(V)
    }
}

/// `HTTPRewrite`: changes made to the request before it is forwarded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpRewrite {
    /// Replaces the matched prefix, or the whole path (VS-19); exclusive with `uriRegexRewrite`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    /// Replaces `Host`/`:authority` (VS-21).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authority: String,
    /// Regex search-and-replace on the path (VS-20); exclusive with `uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// `RegexRewrite`: an RE2 pattern and its replacement (`\1`…`\9` refer to groups).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RegexRewrite {
    /// The pattern searched for in the path.
    #[serde(default)]
    pub r#match: String,
    /// The replacement for each occurrence.
    #[serde(default)]
    pub rewrite: String,
}

/// `HTTPRetry`: the retry policy of a route (SEMANTICS §3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpRetry {
    /// Number of retries (not tries); 0 disables retries (RETRY-3).
    #[serde(default)]
    pub attempts: i32,
    /// Time limit of each try, retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated retry conditions (`5xx`, `gateway-error`, `connect-failure`, status codes,
    /// gRPC status names, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub retry_on: String,
    /// Whether retries may go to endpoints in other localities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_remote_localities: Option<bool>,
    /// Whether a retry avoids the endpoints already tried (absent = true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base interval of the exponential back-off between retries (absent = 25ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
}

/// `CorsPolicy`: the CORS answers of a route (VS-37).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct CorsPolicy {
    /// Deprecated: exact origins allowed (use `allowOrigins`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    /// Origins allowed, as string matches (`exact: "*"` = any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<StringMatch>,
    /// Methods for `access-control-allow-methods`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Headers for `access-control-allow-headers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Headers for `access-control-expose-headers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long browsers may cache a preflight answer (`access-control-max-age`, in seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// Value of `access-control-allow-credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// What to do with preflights whose origin matches none of the allowed ones.
    #[serde(default)]
    pub unmatched_preflights: UnmatchedPreflights,
}

/// `CorsPolicy.UnmatchedPreflights`: the fate of a preflight whose origin is not allowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum UnmatchedPreflights {
    /// Not set: behaves as `FORWARD`.
    #[default]
    Unspecified,
    /// Forward the preflight to the upstream.
    Forward,
    /// Do not forward it to the upstream.
    Ignore,
}

/// `HTTPFaultInjection`: delays and aborts injected before forwarding (VS-27 to VS-30).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpFaultInjection {
    /// Delay some requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    /// Answer some requests with an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

/// `HTTPFaultInjection.Delay`: an injected delay.
///
/// `fixedDelay` and `exponentialDelay` are one protobuf oneof: at most one may be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct FaultDelay {
    /// Deprecated integer percentage of requests to delay (use `percentage`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub percent: i32,
    /// Fixed delay before forwarding (exclusive with `exponentialDelay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<Duration>,
    /// Mean of an exponentially distributed delay (undocumented in Istio; exclusive with
    /// `fixedDelay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_delay: Option<Duration>,
    /// Share of requests delayed; absent = none (VS-27).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// `HTTPFaultInjection.Abort`: an injected error answer.
///
/// `httpStatus`, `grpcStatus` and `http2Error` are one protobuf oneof: at most one may be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct FaultAbort {
    /// HTTP status to answer with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// gRPC status name to answer with (`UNAVAILABLE`, …) (VS-28).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<String>,
    /// HTTP/2 error name to reset the stream with (undocumented in Istio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_error: Option<String>,
    /// Share of requests aborted; absent = none (VS-28).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// `HTTPMirrorPolicy`: one entry of `mirrors`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpMirrorPolicy {
    /// Where the copies go (required).
    #[serde(default)]
    pub destination: Destination,
    /// Share of requests copied; absent = 100%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
        serde_saphyr::from_str(text)
    }

    #[test]
    fn unknown_route_field_is_rejected() {
        let err = yaml::<HttpRoute>("retires: {attempts: 3}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("retires"), "{err}");
    }

    #[test]
    fn durations_in_go_and_protobuf_forms() {
        let r: HttpRoute =
            yaml("timeout: 5m\nretries: {attempts: 3, perTryTimeout: 1.5s}").unwrap();
        assert_eq!(r.timeout, Some(Duration::from_secs(300)));
        let retries = r.retries.unwrap();
        assert_eq!(retries.per_try_timeout, Some(Duration::from_millis(1500)));
        assert!(yaml::<HttpRoute>("timeout: 5").is_err());
    }

    #[test]
    fn mirror_percent_accepts_both_names() {
        let a: HttpRoute = yaml("mirrorPercent: 20").unwrap();
        let b: HttpRoute = yaml("mirror_percent: 20").unwrap();
        assert_eq!(a.mirror_percent, Some(20));
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"mirrorPercent": 20})
        );
    }

    #[test]
    fn body_forms() {
        let s: HttpDirectResponse = yaml("status: 503\nbody: {string: unavailable}").unwrap();
        assert_eq!(s.body, Some(HttpBody::String("unavailable".into())));
        let b: HttpDirectResponse = yaml("status: 200\nbody: {bytes: eyJvayI6dHJ1ZX0=}").unwrap();
        assert_eq!(b.body.unwrap().as_bytes(), br#"{"ok":true}"#);
        assert!(yaml::<HttpBody>("{bytes: '***'}").is_err());
        assert!(yaml::<HttpBody>("{string: a, bytes: YQ==}").is_err());
        assert!(yaml::<HttpBody>("{}").is_err());
        assert!(yaml::<HttpBody>("{text: a}").is_err());
    }

    #[test]
    fn fault_oneofs_and_percentages() {
        let f: HttpFaultInjection = yaml(
            "delay: {fixedDelay: 7s, percentage: {value: 0.1}}\n\
             abort: {grpcStatus: UNAVAILABLE, percentage: {value: 50}}",
        )
        .unwrap();
        let delay = f.delay.unwrap();
        assert_eq!(delay.fixed_delay, Some(Duration::from_secs(7)));
        assert_eq!(delay.percentage, Some(Percent::new(0.1)));
        let abort = f.abort.unwrap();
        assert_eq!(abort.grpc_status.as_deref(), Some("UNAVAILABLE"));
        assert_eq!(abort.percentage, Some(Percent::new(50.0)));
        assert_eq!(abort.http_status, None);
    }

    #[test]
    fn enums_use_proto_names() {
        let r: HttpRedirect = yaml("derivePort: FROM_REQUEST_PORT\nredirectCode: 308").unwrap();
        assert_eq!(r.derive_port, Some(RedirectPortSelection::FromRequestPort));
        let c: CorsPolicy = yaml("unmatchedPreflights: IGNORE").unwrap();
        assert_eq!(c.unmatched_preflights, UnmatchedPreflights::Ignore);
        assert!(yaml::<CorsPolicy>("unmatchedPreflights: ignore").is_err());
    }
}
