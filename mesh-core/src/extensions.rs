//! Typed request extensions that one layer hands on to the next.
//!
//! Leaf crates never import each other (DESIGN.md), so what routing decides and resilience or
//! telemetry read travels as a value of a type defined here, in the request's extensions:
//! `mesh-routing` inserts a [`RouteInfo`]; the retry and timeout layers read its
//! [`HttpRetry`] and timeout; access logs read the route and cluster names.
//!
//! ```
//! use std::sync::Arc;
//! use mesh_core::extensions::RouteInfo;
//!
//! let mut req = http::Request::new(());
//! req.extensions_mut().insert(RouteInfo::new("reviews-route.v2", "outbound|9080|v2|reviews.default.svc.cluster.local"));
//! let info = req.extensions().get::<RouteInfo>().unwrap();
//! assert_eq!(&*info.route_name, "reviews-route.v2");
//! assert!(info.timeout.is_none());
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::model::HttpRetry;

/// What routing decided for a request: the route, the cluster and endpoint, and the policies
/// the route carries for resilience (SEMANTICS VS-34, RETRY-1..RETRY-4).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RouteInfo {
    /// The route name of SEMANTICS LOG-2 (`http[].name` + `.` + `match[].name`; `default` for a
    /// service without a VirtualService).
    pub route_name: Arc<str>,
    /// The cluster the request goes to (`outbound|PORT|SUBSET|FQDN`).
    pub cluster: Arc<str>,
    /// The endpoint picked for the first attempt.
    pub endpoint: Option<SocketAddr>,
    /// The route timeout; `None` = no timeout (Istio's default).
    pub timeout: Option<Duration>,
    /// The route's `retries` as configured (`None` = Istio's default policy, RETRY-2).
    pub retries: Option<Arc<HttpRetry>>,
}

impl RouteInfo {
    /// A route decision with no endpoint and no policies yet.
    pub fn new(route_name: impl Into<Arc<str>>, cluster: impl Into<Arc<str>>) -> Self {
        Self {
            route_name: route_name.into(),
            cluster: cluster.into(),
            endpoint: None,
            timeout: None,
            retries: None,
        }
    }
}
