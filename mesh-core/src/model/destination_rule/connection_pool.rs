//! `ConnectionPoolSettings`: connection and request limits (SEMANTICS DR-13 to DR-17); also used
//! by Sidecar for inbound pools.

use serde::{Deserialize, Serialize};

use crate::model::Duration;
use crate::model::virtual_service::wire::is_default;

/// `ConnectionPoolSettings`: limits for the connections and requests to one cluster.
///
/// Every limit counts per client proxy and per cluster; 0 means "not set", which Istio turns
/// into "unlimited" (DR-14).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ConnectionPoolSettings {
    /// Limits common to HTTP and TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
    /// HTTP limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

/// `ConnectionPoolSettings.TCPSettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct TcpSettings {
    /// Most connections open to the cluster (0 = unlimited).
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_connections: i32,
    /// TCP connect timeout (absent = 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// TCP keep-alive probes on upstream connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Most time a connection may live, whatever its activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<Duration>,
    /// Close a connection with no bytes sent or received this long (absent = 1h, `0s` = never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
}

/// `TCPSettings.TcpKeepalive`: `SO_KEEPALIVE` settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct TcpKeepalive {
    /// Unanswered probes before the connection is dropped (0 = OS default).
    #[serde(default, skip_serializing_if = "is_default")]
    pub probes: u32,
    /// Idle time before the first probe (absent = OS default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Duration>,
    /// Time between probes (absent = OS default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
}

/// `ConnectionPoolSettings.HTTPSettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpSettings {
    /// Most requests waiting for a connection or stream (HTTP/1.1 and HTTP/2; 0 = unlimited).
    #[serde(default, skip_serializing_if = "is_default")]
    pub http1_max_pending_requests: i32,
    /// Most requests in flight to the cluster (HTTP/1.1 and HTTP/2; 0 = unlimited).
    #[serde(default, skip_serializing_if = "is_default")]
    pub http2_max_requests: i32,
    /// Requests per connection before it is closed (0 = unlimited, 1 = no keep-alive).
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_requests_per_connection: i32,
    /// Most retries outstanding to the cluster at once (0 = unlimited).
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_retries: i32,
    /// Close a pooled connection with no active request this long (absent = 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// Whether HTTP/1.1 upstream connections are upgraded to HTTP/2.
    #[serde(default)]
    pub h2_upgrade_policy: H2UpgradePolicy,
    /// Speak to the upstream in the HTTP version the client used.
    #[serde(default, skip_serializing_if = "is_default")]
    pub use_client_protocol: bool,
    /// Most concurrent streams per HTTP/2 connection (0 = 2^31-1).
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_concurrent_streams: i32,
    /// HTTP/2 PING keep-alive on upstream connections (newer than Istio 1.28).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_keep_alive: Option<ConnectionKeepalive>,
}

/// `HTTPSettings.H2UpgradePolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum H2UpgradePolicy {
    /// Follow the mesh-wide setting.
    #[default]
    Default,
    /// Keep HTTP/1.1.
    DoNotUpgrade,
    /// Upgrade to HTTP/2.
    Upgrade,
}

/// `HTTPSettings.ConnectionKeepalive`: HTTP/2 PING frames that detect dead connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ConnectionKeepalive {
    /// Time between PINGs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// How long to wait for a PING's answer before closing the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_fields_and_upgrade_policy() {
        let pool: ConnectionPoolSettings = serde_saphyr::from_str(
            "tcp: {maxConnections: 1, connectTimeout: 30ms, tcpKeepalive: {probes: 3, time: 2h}}\n\
             http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1, h2UpgradePolicy: DO_NOT_UPGRADE,\n  \
             http2KeepAlive: {interval: 30s, timeout: 5s}}",
        )
        .unwrap();
        let tcp = pool.tcp.as_ref().unwrap();
        assert_eq!(tcp.max_connections, 1);
        assert_eq!(tcp.connect_timeout, Some(Duration::from_millis(30)));
        assert_eq!(
            tcp.tcp_keepalive.as_ref().unwrap().time,
            Some(Duration::from_secs(7200))
        );
        let http = pool.http.as_ref().unwrap();
        assert_eq!(http.h2_upgrade_policy, H2UpgradePolicy::DoNotUpgrade);
        assert_eq!(
            http.http2_keep_alive.as_ref().unwrap().timeout,
            Some(Duration::from_secs(5))
        );
        let json = serde_json::to_value(&pool).unwrap();
        assert_eq!(json["http"]["http1MaxPendingRequests"], 1);
        assert_eq!(json["http"]["h2UpgradePolicy"], "DO_NOT_UPGRADE");
    }
}
