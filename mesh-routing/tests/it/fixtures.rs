//! YAML shared by several tables. Every endpoint is on 127.0.0.1 with a port of its own, so
//! the endpoint port says which workload a request reached.

/// `reviews` in namespace `prod` on port 9080, three versions (endpoint ports 9081–9083), and
/// a DestinationRule with subsets v1–v3 and v9 (which selects no endpoint).
pub(crate) const REVIEWS: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9081}, labels: {app: reviews, version: v1}}
  - {address: 127.0.0.1, ports: {http: 9082}, labels: {app: reviews, version: v2}}
  - {address: 127.0.0.1, ports: {http: 9083}, labels: {app: reviews, version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: prod}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
  - {name: v9, labels: {version: v9}}
---
"#;

/// The clusters of [`REVIEWS`].
pub(crate) const BASE: &str = "outbound|9080||reviews.prod.svc.cluster.local";
pub(crate) const V1: &str = "outbound|9080|v1|reviews.prod.svc.cluster.local";
pub(crate) const V2: &str = "outbound|9080|v2|reviews.prod.svc.cluster.local";
pub(crate) const V3: &str = "outbound|9080|v3|reviews.prod.svc.cluster.local";

/// A STATIC ServiceEntry `name` in `namespace` for `host` on `port`, one endpoint on
/// 127.0.0.1:`endpoint`.
pub(crate) fn service(name: &str, namespace: &str, host: &str, port: u16, endpoint: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  hosts: [\"{host}\"]\n  ports: [{{number: {port}, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {endpoint}}}}}]\n---\n"
    )
}
