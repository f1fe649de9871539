//! `VirtualService`: how requests to a set of hosts are routed (SEMANTICS §2, §3).
//!
//! This file holds the resource, the messages shared with other kinds ([`Destination`],
//! [`PortSelector`], [`StringMatch`], [`Headers`]) and the TLS and TCP routes; the HTTP route
//! and everything only it uses live in `virtual_service/http.rs`.

mod http;
pub(crate) mod wire;

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use self::http::*;
use self::wire::is_default;

/// `networking.istio.io` VirtualService spec.
///
/// ```
/// use mesh_core::model::{StringMatch, VirtualService};
/// let vs: VirtualService = serde_json::from_str(r#"{
///     "hosts": ["reviews"],
///     "http": [{
///         "match": [{"uri": {"prefix": "/v2"}}],
///         "route": [{"destination": {"host": "reviews", "subset": "v2"}}]
///     }]
/// }"#).unwrap();
/// assert_eq!(vs.http[0].r#match[0].uri, Some(StringMatch::Prefix("/v2".into())));
/// assert_eq!(vs.http[0].route[0].destination.subset, "v2");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct VirtualService {
    /// Hosts the routes apply to: short names, FQDNs, `*.suffix` wildcards or IPs (HOST-1/2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Gateways and sidecars the routes apply to (`mesh` = all sidecars, the default when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// HTTP routes, tried in order; the first match wins (VS-1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
    /// Routes for TLS and HTTPS traffic that is passed through, chosen by SNI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsRoute>,
    /// Routes for opaque TCP traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp: Vec<TcpRoute>,
    /// Namespaces the VirtualService is visible to (`.` = own, `*` = all; empty = all) (HOST-8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
}

/// `Destination`: a service (and optionally a subset and port) traffic is sent to; also the
/// type of `mirror` and of a Sidecar's `egressProxy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Destination {
    /// Host name of a service in the registry (required); short names resolve against the
    /// VirtualService's namespace.
    #[serde(default)]
    pub host: String,
    /// Name of a DestinationRule subset of the host (VS-16).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subset: String,
    /// Service port to use; needed only when the host has several ports (VS-17).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

impl Destination {
    /// A destination for `host`, without subset or port.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            ..Self::default()
        }
    }
}

/// `PortSelector`: a port of a service, by number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct PortSelector {
    /// The port number.
    #[serde(default)]
    pub number: u32,
}

impl PortSelector {
    /// The port `number`.
    pub fn new(number: u32) -> Self {
        Self { number }
    }
}

/// `Delegate`: the VirtualService whose routes a route hands matching requests to (VS-24).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Delegate {
    /// Name of the delegate VirtualService.
    #[serde(default)]
    pub name: String,
    /// Namespace of the delegate VirtualService (defaults to the delegating one's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// `Headers`: header edits on the request sent upstream and the response sent back (VS-25).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Headers {
    /// Edits to the request before it is forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    /// Edits to the response before it is returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// `Headers.HeaderOperations`: one set of header edits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HeaderOperations {
    /// Headers to overwrite (created when absent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Header values to append.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Names of headers to delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// `StringMatch`: a condition on a string value, written `{exact: v}`, `{prefix: v}`,
/// `{regex: v}` or `{}` (VS-3).
///
/// The protobuf message is a oneof; YAML writes it as a map with at most one of the three keys.
/// A map with another key, or with two of them, does not parse.
///
/// ```
/// use mesh_core::model::StringMatch;
/// let m: StringMatch = serde_json::from_str(r#"{"prefix": "/v2"}"#).unwrap();
/// assert_eq!(m, StringMatch::Prefix("/v2".into()));
/// assert_eq!(m.value(), Some("/v2"));
/// assert_eq!(serde_json::from_str::<StringMatch>("{}").unwrap(), StringMatch::Any);
/// assert!(serde_json::from_str::<StringMatch>(r#"{"exact": "a", "prefix": "b"}"#).is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StringMatch {
    /// `{}`: no match type set. As a header or query-parameter condition it means "present,
    /// with any value" (VS-7); elsewhere it matches any value.
    #[default]
    Any,
    /// `exact`: the whole value, byte for byte.
    Exact(String),
    /// `prefix`: the value starts with this string.
    Prefix(String),
    /// `regex`: an RE2 pattern the whole value must match (anchored).
    Regex(String),
}

impl StringMatch {
    /// The YAML keys of the match types, in the order of the protobuf oneof.
    pub const KEYS: [&'static str; 3] = ["exact", "prefix", "regex"];

    /// The string to compare with or the pattern; `None` for [`StringMatch::Any`].
    pub fn value(&self) -> Option<&str> {
        match self {
            StringMatch::Any => None,
            StringMatch::Exact(v) | StringMatch::Prefix(v) | StringMatch::Regex(v) => Some(v),
        }
    }

    /// The YAML key of the match type (`exact`, `prefix`, `regex`), `None` for `{}`.
    pub fn key(&self) -> Option<&'static str> {
        match self {
            StringMatch::Any => None,
            StringMatch::Exact(_) => Some("exact"),
            StringMatch::Prefix(_) => Some("prefix"),
            StringMatch::Regex(_) => Some("regex"),
        }
    }
}

impl Serialize for StringMatch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.key(), self.value()) {
            (Some(key), Some(value)) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(key, value)?;
                map.end()
            }
            _ => serializer.serialize_map(Some(0))?.end(),
        }
    }
}

impl<'de> Deserialize<'de> for StringMatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringMatch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string match: a map with one of `exact`, `prefix` or `regex`, or {}")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StringMatch, A::Error> {
                Ok(match wire::one_string_of(map, &StringMatch::KEYS)? {
                    None => StringMatch::Any,
                    Some((0, v)) => StringMatch::Exact(v),
                    Some((1, v)) => StringMatch::Prefix(v),
                    Some((_, v)) => StringMatch::Regex(v),
                })
            }
        }
        // `any`, not `map`, so that a scalar gets the error naming the expected shape.
        deserializer.deserialize_any(V)
    }
}

/// `TLSRoute`: where passed-through TLS traffic goes, chosen by SNI.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsRoute {
    /// Conditions, ORed (required).
    #[serde(default)]
    pub r#match: Vec<TlsMatchAttributes>,
    /// Where matching connections go (weighted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// `TLSMatchAttributes`: conditions on a TLS connection, ANDed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsMatchAttributes {
    /// SNI values to match, wildcards allowed (required).
    #[serde(default)]
    pub sni_hosts: Vec<String>,
    /// Destination IPs or CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    /// Labels the client workload must carry for this rule to apply to it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways the condition applies to (overrides the VirtualService's `gateways`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Namespace the client workload must be in for this rule to apply to it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_namespace: String,
}

/// `TCPRoute`: where opaque TCP traffic goes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct TcpRoute {
    /// Conditions, ORed; empty matches every connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r#match: Vec<L4MatchAttributes>,
    /// Where matching connections go (weighted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// `L4MatchAttributes`: conditions on a TCP connection, ANDed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct L4MatchAttributes {
    /// Destination IPs or CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: u32,
    /// Source IP or CIDR.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_subnet: String,
    /// Labels the client workload must carry for this rule to apply to it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways the condition applies to (overrides the VirtualService's `gateways`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Namespace the client workload must be in for this rule to apply to it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_namespace: String,
}

/// `RouteDestination`: a weighted destination of a TLS or TCP route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteDestination {
    /// Where the traffic goes (required).
    #[serde(default)]
    pub destination: Destination,
    /// Relative share of the traffic (VS-14 rules apply).
    #[serde(default, skip_serializing_if = "is_default")]
    pub weight: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
        serde_saphyr::from_str(text)
    }

    #[test]
    fn string_match_forms() {
        assert_eq!(
            yaml::<StringMatch>("{prefix: /v2}").unwrap(),
            StringMatch::Prefix("/v2".into())
        );
        assert_eq!(
            yaml::<StringMatch>("exact: GET").unwrap(),
            StringMatch::Exact("GET".into())
        );
        assert_eq!(
            yaml::<StringMatch>(r#"regex: "/v\\d(/.*)?""#).unwrap(),
            StringMatch::Regex(r"/v\d(/.*)?".into())
        );
        assert_eq!(yaml::<StringMatch>("{}").unwrap(), StringMatch::Any);
        // A plain scalar that YAML would read as a number is still the string to compare with.
        assert_eq!(
            yaml::<StringMatch>("exact: 1").unwrap(),
            StringMatch::Exact("1".into())
        );
        assert_eq!(
            yaml::<StringMatch>("exact: ''").unwrap(),
            StringMatch::Exact(String::new())
        );
    }

    #[test]
    fn string_match_rejects_what_istio_rejects() {
        let two = yaml::<StringMatch>("{exact: a, prefix: b}")
            .unwrap_err()
            .to_string();
        assert!(two.contains("cannot both be set"), "{two}");
        let typo = yaml::<StringMatch>("{prefx: /a}").unwrap_err().to_string();
        assert!(
            typo.contains("unknown field") && typo.contains("prefx"),
            "{typo}"
        );
        assert!(yaml::<StringMatch>("/v2").is_err());
        assert!(yaml::<StringMatch>("{exact: [a]}").is_err());
        assert!(yaml::<StringMatch>("{exact: a, exact: b}").is_err());
    }

    #[test]
    fn string_match_serializes_as_written() {
        let json = |m: &StringMatch| serde_json::to_string(m).unwrap();
        assert_eq!(
            json(&StringMatch::Prefix("/v2".into())),
            r#"{"prefix":"/v2"}"#
        );
        assert_eq!(
            json(&StringMatch::Regex("a.*".into())),
            r#"{"regex":"a.*"}"#
        );
        assert_eq!(json(&StringMatch::Any), "{}");
        for m in [
            StringMatch::Any,
            StringMatch::Exact("x".into()),
            StringMatch::Regex("y".into()),
        ] {
            assert_eq!(serde_json::from_str::<StringMatch>(&json(&m)).unwrap(), m);
        }
    }

    #[test]
    fn header_maps_take_presence_matches() {
        let m: HttpMatchRequest =
            yaml("headers: {x-user: {exact: jason}}\nwithoutHeaders: {x-canary: {}}").unwrap();
        assert_eq!(m.headers["x-user"], StringMatch::Exact("jason".into()));
        assert_eq!(m.without_headers["x-canary"], StringMatch::Any);
    }

    #[test]
    fn destination_and_routes() {
        let r: TcpRoute = yaml(
            "match: [{port: 27017, sourceLabels: {app: web}}]\n\
             route: [{destination: {host: mongo, port: {number: 5555}}, weight: 100}]",
        )
        .unwrap();
        assert_eq!(r.r#match[0].port, 27017);
        assert_eq!(r.route[0].destination.port, Some(PortSelector::new(5555)));
        assert!(yaml::<Destination>("{host: a, port: {number: 1, name: http}}").is_err());
    }
}
