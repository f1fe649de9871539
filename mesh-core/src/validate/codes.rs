//! The finding codes of `analyze`: one stable code per rule, with its severity, a title, an
//! example message and what the rule rests on.
//!
//! Codes are part of the CLI contract (tools filter on them, docs/analyze-codes.md explains
//! each), so a code is never renumbered or reused: a retired rule keeps its number unused.
//! Ranges by area: `MESH00xx` loading, `MESH01xx` VirtualService, `MESH02xx` DestinationRule,
//! `MESH03xx` ServiceEntry and WorkloadEntry, `MESH04xx` PeerAuthentication and
//! AuthorizationPolicy, `MESH05xx` Sidecar, `MESH09xx` several resources at once.

use super::Severity;

/// One finding code: what it is called, how bad it is, and an example of its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CodeInfo {
    /// The code, `MESH` and four digits.
    pub code: &'static str,
    /// The severity of every finding with this code.
    pub severity: Severity,
    /// What the code is about, in a few words.
    pub title: &'static str,
    /// A message of a finding with this code, as `analyze` prints it.
    pub example: &'static str,
    /// What the rule rests on: `Istio validation` (Istio's admission webhook rejects it),
    /// `Istio analyzer` (`istioctl analyze` reports it), a SEMANTICS rule id, or `ours` (a
    /// decision of this project).
    pub basis: &'static str,
}

macro_rules! codes {
    ($($name:ident = $code:literal $sev:ident $title:literal, $basis:literal, $example:literal;)*) => {
        $(
            #[doc = concat!("`", $code, "`: ", $title, ".")]
            pub(crate) const $name: CodeInfo = CodeInfo {
                code: $code,
                severity: Severity::$sev,
                title: $title,
                example: $example,
                basis: $basis,
            };
        )*

        /// Every code `analyze` can report, in code order.
        pub const CODES: &[CodeInfo] = &[$($name),*];
    };
}

codes! {
    // Loading (MESH00xx): the loader's errors, one code per error kind.
    LOAD_IO = "MESH0001" Error "a config path cannot be read", "loader",
        "cannot read config path: no such file or directory";
    LOAD_SYNTAX = "MESH0002" Error "the text is not valid YAML or JSON", "loader",
        "the file is not valid UTF-8 text";
    LOAD_DUPLICATE_KEY = "MESH0003" Error "a mapping repeats a key", "loader",
        "duplicate key `hosts`";
    LOAD_TYPE_META = "MESH0004" Error "a document without apiVersion or kind", "loader",
        "missing `kind`";
    LOAD_UNKNOWN_KIND = "MESH0005" Error "an unknown kind in an Istio API group", "loader",
        "unknown networking.istio.io kind `VirtualSevice`, did you mean `VirtualService`?";
    LOAD_API_VERSION = "MESH0006" Error "an apiVersion not accepted for the kind", "loader",
        "unsupported apiVersion `networking.istio.io/v2` for VirtualService, expected one of \
         `networking.istio.io/v1`, `networking.istio.io/v1beta1`, `networking.istio.io/v1alpha3`";
    LOAD_UNKNOWN_FIELD = "MESH0007" Error "a field the resource does not have", "loader",
        "unknown field `retires`, did you mean `retries`?";
    LOAD_UNKNOWN_VALUE = "MESH0008" Error "an enum value that is not one of the allowed names",
        "loader",
        "unknown value `LEAST_REQUESTS`, did you mean `LEAST_REQUEST`?";
    LOAD_INVALID_VALUE = "MESH0009" Error "a value of the wrong type or out of range", "loader",
        "invalid value: expected a whole number from 0 to 4294967295";
    LOAD_MISSING_FIELD = "MESH0010" Error "a required field is absent", "loader",
        "missing `metadata.name`";

    // VirtualService (MESH01xx).
    VS_SUBSET_NOT_FOUND = "MESH0101" Error "a destination subset that no DestinationRule defines",
        "Istio analyzer IST0101, SEMANTICS VS-16",
        "subset \"v3\" is not defined in any DestinationRule for reviews.default.svc.cluster.local";
    VS_NO_HOSTS = "MESH0102" Warning "a VirtualService without hosts", "ours (VS-24)",
        "the VirtualService has no hosts: Istio treats it as a delegate, which mesh-proxy does \
         not support, so it routes nothing";
    VS_INVALID_HOST = "MESH0103" Error "an invalid host name", "Istio validation",
        "invalid host \"reviews_v2\": label \"reviews_v2\" is not a DNS-1123 label";
    VS_DUPLICATE_HOST = "MESH0104" Error "a host listed twice in one VirtualService",
        "Istio validation",
        "duplicate hosts in virtual service: reviews & reviews";
    VS_MESH_WILDCARD = "MESH0105" Warning "host `*` on a VirtualService for sidecars",
        "Istio validation, SEMANTICS HOST-5",
        "host \"*\" matches every host here (HOST-5), but Istio rejects `*` for virtual \
         services bound to the mesh gateway";
    VS_NO_ROUTES = "MESH0106" Error "a VirtualService without http, tcp or tls routes",
        "Istio validation",
        "http, tcp or tls must be provided in virtual service";
    VS_CONFLICTING_ACTIONS = "MESH0107" Error "a route with conflicting actions",
        "Istio validation, SEMANTICS VS-18",
        "HTTP route cannot contain both route and redirect";
    VS_NO_ACTION = "MESH0108" Error "a route without an action", "Istio validation",
        "HTTP route needs one of route, redirect, directResponse or delegate";
    VS_INVALID_DESTINATION = "MESH0109" Error "an invalid destination", "Istio validation",
        "destination host is required";
    VS_INVALID_WEIGHTS = "MESH0110" Error "negative weights, or all weights 0",
        "Istio validation, SEMANTICS VS-14",
        "weight -10 is negative";
    VS_WEIGHT_SUM = "MESH0111" Warning "weights that do not sum to 100", "SEMANTICS VS-14",
        "weights sum to 110, not 100: each destination gets weight/110 of the requests";
    VS_INVALID_REGEX = "MESH0112" Error "a regex that does not compile (RE2 syntax)",
        "Istio validation, SEMANTICS VS-3",
        "invalid regex \"/v[0-9\": unclosed character class";
    VS_INVALID_MATCH = "MESH0113" Error "an invalid match condition", "Istio validation",
        "\"headers\": prefix string match should not be empty";
    VS_EMPTY_MATCH = "MESH0114" Error "an empty match block `{}`", "SEMANTICS VS-2",
        "empty match block: a match block needs at least one condition (remove `match` to match \
         every request)";
    VS_INVALID_DURATION = "MESH0115" Error "a duration below 1ms or finer than 1ms",
        "Istio validation",
        "timeout 500us: duration must be at least 1ms";
    VS_ZERO_TIMEOUT = "MESH0116" Warning "`timeout: 0s`", "Istio validation, SEMANTICS VS-34",
        "timeout 0s means no timeout here (VS-34), but Istio rejects it: leave `timeout` out";
    VS_INVALID_FAULT = "MESH0117" Error "an invalid fault injection", "Istio validation",
        "HTTP status 700 is not in range 200-599";
    VS_FAULT_NOOP = "MESH0118" Warning "a fault that injects nothing",
        "SEMANTICS VS-27, VS-28",
        "fault delay has no `percentage`: no request is delayed";
    VS_INVALID_RETRIES = "MESH0119" Error "an invalid retry policy", "Istio validation",
        "attempts cannot be negative";
    VS_UNKNOWN_RETRY_ON = "MESH0120" Warning "an unknown retryOn condition",
        "SEMANTICS RETRY-5 (Istio validation rejects it)",
        "retryOn condition \"5xx-errors\" is unknown and ignored";
    VS_PER_TRY_TIMEOUT = "MESH0121" Warning "perTryTimeout not shorter than the route timeout",
        "SEMANTICS RETRY-8",
        "perTryTimeout 5s is not shorter than the route timeout 3s: a retry never has time to run";
    VS_INVALID_REDIRECT = "MESH0122" Error "an invalid redirect", "Istio validation, SEMANTICS VS-22",
        "redirectCode 304 is not one of 301, 302, 303, 307, 308";
    VS_INVALID_DIRECT_RESPONSE = "MESH0123" Error "an invalid direct response",
        "Istio validation, SEMANTICS VS-23",
        "HTTP status 99 is not in range 200-599";
    VS_INVALID_REWRITE = "MESH0124" Error "an invalid rewrite", "Istio validation",
        "rewrite may only contain one of uri or uriRegexRewrite";
    VS_INVALID_HEADER = "MESH0125" Error "an invalid header name or value", "Istio validation",
        "header name x canary is not a valid header name";
    VS_DELEGATE = "MESH0126" Warning "a delegate route", "ours (SEMANTICS VS-24)",
        "delegate is not supported by mesh-proxy: requests matching this route get 404";
    VS_UNREACHABLE_ROUTE = "MESH0127" Warning "a route after a catch-all route",
        "SEMANTICS VS-1, Istio validation warning",
        "route 2 is never used: route 1 before it matches every request";
    VS_DUPLICATE_MATCH = "MESH0128" Warning "a match block that repeats an earlier one",
        "Istio validation warning",
        "match 0 of route 1 is never used: route 0 has the same match";
    VS_INVALID_MIRROR = "MESH0129" Error "an invalid mirror", "Istio validation",
        "HTTP route cannot contain both mirror and mirrors";
    VS_HOST_NOT_FOUND = "MESH0130" Warning "a destination host that no ServiceEntry defines",
        "SEMANTICS HOST-11",
        "destination host ratings.default.svc.cluster.local is not defined by any ServiceEntry: \
         requests routed there get 503";
    VS_INVALID_CORS = "MESH0131" Error "an invalid corsPolicy", "Istio validation",
        "\"PATCHX\" is not a supported HTTP method";
    VS_GATEWAYS_ONLY = "MESH0132" Info "a VirtualService that does not apply to sidecars",
        "SEMANTICS HOST-10",
        "gateways does not list `mesh`: this VirtualService applies to gateways only and \
         mesh-proxy ignores it";

    // DestinationRule (MESH02xx).
    DR_INVALID_HOST = "MESH0201" Error "an invalid host", "Istio validation",
        "empty domain name not allowed";
    DR_DUPLICATE_SUBSET = "MESH0202" Error "two subsets with one name", "Istio validation",
        "duplicate subset names: v1";
    DR_INVALID_SUBSET = "MESH0203" Error "an invalid subset", "Istio validation",
        "subset name cannot be empty";
    DR_INVALID_OUTLIER = "MESH0204" Error "invalid outlier detection", "Istio validation",
        "maxEjectionPercent 120 is not in range 0..100";
    DR_INVALID_LB = "MESH0205" Error "an invalid load balancer", "Istio validation",
        "only one of `simple` or `consistentHash` may be set";
    DR_INVALID_DURATION = "MESH0206" Error "a duration below 1ms or finer than 1ms",
        "Istio validation",
        "connectTimeout 0s: duration must be at least 1ms";
    DR_INVALID_POOL = "MESH0207" Error "an invalid connection pool", "Istio validation",
        "max connections must be non-negative";
    DR_INVALID_POLICY = "MESH0208" Error "an invalid traffic policy", "Istio validation",
        "traffic policy must have at least one field";
    DR_INVALID_TLS = "MESH0209" Error "invalid client TLS settings", "Istio validation",
        "client certificate required for mutual tls";
    DR_ISTIO_MUTUAL_FIELDS = "MESH0210" Warning "ISTIO_MUTUAL with certificate fields",
        "SEMANTICS DR-18",
        "caCertificates is ignored with ISTIO_MUTUAL: the proxy's own certificate and trust \
         bundle are used";
    DR_HASH_WITHOUT_KEY = "MESH0211" Warning "consistentHash without a hash key",
        "ours (SEMANTICS DR-9)",
        "consistentHash sets no hash key (httpHeaderName, httpCookie, useSourceIp or \
         httpQueryParameterName): every request picks a random endpoint";
    DR_LOCALITY = "MESH0212" Info "locality or zone-aware load balancing",
        "ours (SEMANTICS DR-11)",
        "localityLbSetting is read but not applied yet: endpoints are not ranked by locality";
    DR_HOST_NOT_FOUND = "MESH0213" Warning "a host that no ServiceEntry defines",
        "SEMANTICS DR-5",
        "host reviews.default.svc.cluster.local is not defined by any ServiceEntry: the \
         DestinationRule applies to nothing";
    DR_SUBSET_NO_ENDPOINTS = "MESH0214" Warning "a subset that selects no endpoint",
        "SEMANTICS VS-16",
        "subset \"v3\" selects no endpoint of reviews.default.svc.cluster.local (labels \
         version=v3): requests to it get 503 no healthy upstream";
    DR_WARMUP = "MESH0215" Info "slow start of new endpoints (warmup)",
        "ours (SEMANTICS DR-12)",
        "warmup is read but not applied yet: a new endpoint gets its full share of traffic at \
         once";

    // ServiceEntry and WorkloadEntry (MESH03xx).
    SE_INVALID_HOST = "MESH0301" Error "a missing or invalid host", "Istio validation",
        "invalid host *: a ServiceEntry cannot use the bare wildcard";
    SE_ENDPOINTS_AND_SELECTOR = "MESH0302" Error "both endpoints and workloadSelector",
        "Istio validation, SEMANTICS SE-1",
        "only one of workloadSelector or endpoints is allowed in a ServiceEntry";
    SE_INVALID_ENDPOINT = "MESH0303" Error "endpoints that the resolution cannot use",
        "Istio validation",
        "endpoint address \"db.internal\" is not a valid IP address (resolution STATIC)";
    SE_RESOLUTION_HOSTS = "MESH0304" Error "hosts that the resolution cannot use",
        "Istio validation",
        "hosts must be FQDN if no endpoints are provided for resolution DNS: \"*.example.com\"";
    SE_WILDCARD_RESOLUTION = "MESH0305" Warning "a wildcard host with endpoints of its own",
        "SEMANTICS SE-3",
        "wildcard host \"*.example.com\" with resolution STATIC: every matching host goes to \
         the same endpoints; wildcard hosts are meant for NONE or DYNAMIC_DNS";
    SE_DUPLICATE_PORT = "MESH0306" Error "two ports with one number or name", "Istio validation",
        "service entry port 80 already defined";
    SE_INVALID_PORT = "MESH0307" Error "an invalid port number or name", "Istio validation",
        "port number 0 must be in the range 1..65535";
    SE_INVALID_PROTOCOL = "MESH0308" Error "an unknown protocol", "Istio validation",
        "unsupported protocol: HTTP3";
    SE_SELECTOR_IGNORED = "MESH0309" Warning "a workloadSelector that has no effect",
        "SEMANTICS SE-5, Istio validation warning",
        "workloadSelector is for MESH_INTERNAL services; on a MESH_EXTERNAL service it has no \
         effect";
    SE_ENDPOINT_PORT = "MESH0310" Error "an endpoint port the service does not define",
        "Istio validation",
        "endpoint port \"grpc\" is not defined by the service entry";
    SE_INVALID_ADDRESS = "MESH0311" Error "an invalid address", "Istio validation",
        "10.0.0.300 is not a valid IP";
    SE_MULTI_HOST_TCP = "MESH0312" Error "several hosts with a TCP port", "Istio validation",
        "multiple hosts provided with non-HTTP, non-TLS ports";
    WE_INVALID = "MESH0313" Error "an invalid WorkloadEntry", "Istio validation",
        "address is required";
    WE_UNSELECTED = "MESH0314" Info "a WorkloadEntry that no ServiceEntry selects",
        "SEMANTICS WE-1",
        "no ServiceEntry in namespace default selects this WorkloadEntry: it has no effect";
    SE_SELECTOR_EMPTY = "MESH0315" Warning "a workloadSelector that selects no WorkloadEntry",
        "SEMANTICS SE-5",
        "workloadSelector app=reviews selects no WorkloadEntry in namespace default: the \
         service has no endpoints";

    // PeerAuthentication and AuthorizationPolicy (MESH04xx).
    PA_PORT_WITHOUT_SELECTOR = "MESH0401" Error "portLevelMtls without a selector",
        "Istio validation, SEMANTICS PA-3",
        "mesh/namespace peer authentication cannot have port level mTLS";
    PA_INVALID_PORT = "MESH0402" Error "a portLevelMtls port out of range", "Istio validation",
        "port must be in range 1..65535";
    PA_ROOT_SELECTOR = "MESH0403" Warning "a selector in the root namespace", "SEMANTICS PA-1",
        "a PeerAuthentication with a selector in the root namespace istio-system is ignored";
    PA_SHADOWED = "MESH0404" Warning "several PeerAuthentications at one level",
        "SEMANTICS PA-2",
        "namespace-wide PeerAuthentication prod/default already applies to namespace prod; the \
         oldest wins and this one is ignored";
    AP_CUSTOM_INVALID = "MESH0405" Error "CUSTOM action or provider misuse", "Istio validation",
        "`provider.name` must not be empty";
    AP_CUSTOM_UNSUPPORTED = "MESH0406" Warning "a CUSTOM policy", "SEMANTICS AUTHZ-4",
        "CUSTOM provider not supported: matching requests are denied";
    AP_NO_RULES = "MESH0407" Error "a DENY or CUSTOM policy without rules", "Istio validation",
        "DENY action without `rules` is meaningless as it will never be triggered, add an empty \
         rule `{}` if you want it be triggered for every request";
    AP_EMPTY = "MESH0408" Error "an empty source, operation or value", "Istio validation",
        "`from.source` must not be empty, found at rule 0";
    AP_INVALID_IP = "MESH0409" Error "an invalid IP or CIDR", "Istio validation",
        "bad CIDR range (10.0.0.0/33)";
    AP_INVALID_PORT = "MESH0410" Error "an invalid port", "Istio validation",
        "bad port (http)";
    AP_INVALID_CONDITION = "MESH0411" Error "an invalid `when` condition",
        "Istio validation, SEMANTICS AUTHZ-19",
        "unknown attribute: request.header[x-token]";
    AP_INVALID_ACCOUNT = "MESH0412" Error "invalid serviceAccounts or trustDomains",
        "Istio validation, SEMANTICS AUTHZ-13",
        "cannot set serviceAccounts with namespaces or principals, found at rule 0";
    AP_INNER_WILDCARD = "MESH0413" Warning "a `*` that is not at the start or end",
        "ours (SEMANTICS AUTHZ-9)",
        "\"cluster.local/ns/*/sa/web\" has `*` in the middle: it is taken literally";
    AP_PRINCIPAL_NEVER_MATCHES = "MESH0414" Warning "a principal that can never match",
        "ours (SEMANTICS AUTHZ-11)",
        "principal \"spiffe://cluster.local/ns/default/sa/web\" never matches: write it without \
         `spiffe://` (AUTHZ-11)";
    AP_INVALID_PATH = "MESH0415" Error "an invalid path template",
        "Istio validation, SEMANTICS AUTHZ-10",
        "invalid or unsupported path /a/{**}/b/{*}, {**} is not the last operator";
    AP_NEVER_MATCHES = "MESH0416" Warning "a value that never matches a request",
        "ours (SEMANTICS AUTHZ-18, AUTHZ-25)",
        "method \"get\" never matches: methods are upper-case";
    AP_DENY_TCP = "MESH0417" Warning "a DENY rule with only HTTP attributes",
        "SEMANTICS AUTHZ-21, Istio validation warning",
        "this DENY rule uses only HTTP attributes: it denies all TCP traffic to the workload; \
         name the ports it is for";
    AP_TARGET_REFS = "MESH0418" Warning "a policy attached with targetRef(s)",
        "SEMANTICS AUTHZ-1",
        "a policy with targetRefs applies to gateways and waypoints, never to sidecars: \
         mesh-proxy ignores it";

    // Sidecar (MESH05xx).
    SC_INVALID_HOST = "MESH0501" Error "an egress host not of the form namespace/host",
        "Istio validation",
        "host \"payment-service\" must be of form namespace/dnsName";
    SC_MULTIPLE_DEFAULT = "MESH0502" Error "several Sidecars without workloadSelector in a namespace",
        "Istio analyzer IST0110",
        "namespace prod already has a Sidecar without workloadSelector (prod/default): only one \
         is allowed";
    SC_INVALID_LISTENER = "MESH0503" Error "an invalid listener list", "Istio validation",
        "sidecar: egress listener must contain at least one host";
    SC_INVALID_PORT = "MESH0504" Error "an invalid port, bind or defaultEndpoint",
        "Istio validation",
        "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,\
         [::]:port,unix://filepath or unset";
    SC_DUPLICATE_HOST = "MESH0505" Warning "an egress host listed twice",
        "Istio validation warning",
        "duplicated egress host: prod/*";
    SC_INVALID_OUTBOUND = "MESH0506" Error "an invalid outboundTrafficPolicy", "Istio validation",
        "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode";

    // Several resources (MESH09xx).
    X_DUPLICATE_VS_HOST = "MESH0901" Warning "two VirtualServices for one host",
        "SEMANTICS HOST-9",
        "host reviews.default.svc.cluster.local is also routed by VirtualService default/reviews \
         (mesh/a.yaml:1), which is older: this VirtualService's routes for it are ignored";
    X_DUPLICATE_SE_HOST = "MESH0902" Warning "two ServiceEntries for one host", "SEMANTICS SE-8",
        "host api.example.com is also defined by ServiceEntry default/api (mesh/a.yaml:1), which \
         is older: this ServiceEntry is ignored for it";
    X_EXPORT_HIDES = "MESH0903" Warning "exportTo hides a resource from where it is used",
        "SEMANTICS HOST-8",
        "DestinationRule prod/reviews defines subset \"v2\" but its exportTo [.] hides it from \
         namespace web, where this VirtualService uses it";
    X_INVALID_EXPORT_TO = "MESH0904" Error "an invalid exportTo", "Istio validation",
        "cannot have both public (*) and non-public exportTo values for a resource";
    X_DEPRECATED = "MESH0905" Warning "a deprecated field", "Istio validation warning",
        "outlierDetection.consecutiveErrors is deprecated: use consecutiveGatewayErrors or \
         consecutive5xxErrors";
    X_INVALID_SELECTOR = "MESH0906" Error "an invalid workload selector", "Istio validation",
        "wildcard is not supported in selector: \"app=*\"";
    X_NOT_EXPORTED = "MESH0907" Info "a resource the proxy's namespace cannot see",
        "SEMANTICS HOST-8",
        "exportTo [.] does not include namespace default: a proxy in namespace default ignores \
         this resource";
    X_DUPLICATE_RESOURCE = "MESH0908" Warning "a resource defined twice", "ours",
        "VirtualService default/reviews is also defined at mesh/a.yaml:1: both are loaded; \
         Kubernetes would keep only the last one applied";
}

/// The entry of [`CODES`] for `code` (`"MESH0101"`), if there is one.
pub fn code_info(code: &str) -> Option<&'static CodeInfo> {
    CODES.iter().find(|c| c.code == code)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn codes_are_unique_sorted_and_well_formed() {
        let mut previous = "";
        for c in CODES {
            assert!(c.code > previous, "{} out of order or repeated", c.code);
            previous = c.code;
            assert_eq!(c.code.len(), 8, "{}", c.code);
            assert!(c.code.starts_with("MESH"), "{}", c.code);
            assert!(
                c.code[4..].bytes().all(|b| b.is_ascii_digit()),
                "{}",
                c.code
            );
            assert!(!c.title.is_empty() && !c.example.is_empty() && !c.basis.is_empty());
            assert!(!c.example.contains('\n'), "{}: one-line example", c.code);
        }
        assert_eq!(
            code_info("MESH0101").map(|c| c.severity),
            Some(Severity::Error)
        );
        assert_eq!(code_info("MESH9999"), None);
    }

    #[test]
    fn load_codes_are_errors_and_ranges_match_areas() {
        for c in CODES.iter().filter(|c| c.code.starts_with("MESH00")) {
            assert_eq!(c.severity, Severity::Error, "{}", c.code);
        }
    }

    /// docs/analyze-codes.md documents every code and no other.
    #[test]
    fn docs_list_every_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/analyze-codes.md");
        let docs = std::fs::read_to_string(path).expect("docs/analyze-codes.md is readable");
        let mut documented = BTreeSet::new();
        for line in docs.lines() {
            if let Some(rest) = line.strip_prefix("### MESH") {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                documented.insert(format!("MESH{digits}"));
            }
        }
        let known: BTreeSet<String> = CODES.iter().map(|c| c.code.to_owned()).collect();
        let missing: Vec<_> = known.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&known).collect();
        assert!(
            missing.is_empty(),
            "codes missing from docs/analyze-codes.md: {missing:?}"
        );
        assert!(
            unknown.is_empty(),
            "docs/analyze-codes.md documents unknown codes: {unknown:?}"
        );
        for c in CODES {
            let heading = format!("### {} ", c.code);
            let line = docs
                .lines()
                .find(|l| l.starts_with(&heading))
                .expect("heading");
            let severity = c.severity.to_string();
            assert!(
                line.contains(&severity),
                "{}: heading should name {severity}: {line}",
                c.code
            );
        }
    }
}
