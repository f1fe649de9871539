//! Single-resource checks of a DestinationRule: host, subsets and traffic policies (SEMANTICS
//! §4; Istio's `ValidateDestinationRule`).

use std::collections::BTreeSet;

use super::codes;
use super::common::{check_export_to, check_workload_selector};
use super::http_route::duration;
use super::names::{
    check_fqdn, check_labels, check_port, check_wildcard_domain, is_dns1123_label, is_ip,
};
use super::report::On;
use super::source_map::key;
use crate::model::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, DestinationRule, H2UpgradePolicy,
    LoadBalancerSettings, OutlierDetection, TrafficPolicy,
};

pub(crate) fn check(on: &mut On<'_, '_>, dr: &DestinationRule) {
    if let Err(e) = check_wildcard_domain(&dr.host) {
        let message = if dr.host.is_empty() {
            "host is required".to_owned()
        } else {
            format!("invalid host: {e}")
        };
        on.add(&codes::DR_INVALID_HOST, "spec.host", message);
    }
    if let Some(tp) = &dr.traffic_policy {
        check_policy(on, tp, "spec.trafficPolicy");
    }
    let mut names = BTreeSet::new();
    for (i, subset) in dr.subsets.iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        if subset.name.is_empty() {
            on.add(
                &codes::DR_INVALID_SUBSET,
                format!("{path}.name"),
                "subset name cannot be empty",
            );
        } else if !names.insert(subset.name.as_str()) {
            on.add(
                &codes::DR_DUPLICATE_SUBSET,
                format!("{path}.name"),
                format!("duplicate subset names: {}", subset.name),
            );
        } else if !is_dns1123_label(&subset.name) {
            on.add(
                &codes::DR_INVALID_SUBSET,
                format!("{path}.name"),
                format!("subset name is invalid: {}", subset.name),
            );
        }
        for (k, e) in check_labels(&subset.labels) {
            on.add(
                &codes::DR_INVALID_SUBSET,
                format!("{path}.labels{}", key(&k)),
                e,
            );
        }
        if let Some(tp) = &subset.traffic_policy {
            check_policy(on, tp, &format!("{path}.trafficPolicy"));
        }
    }
    check_export_to(on, &dr.export_to, false);
    if let Some(selector) = &dr.workload_selector {
        check_workload_selector(
            on,
            &selector.match_labels,
            "spec.workloadSelector.matchLabels",
        );
        let ns = on.namespace().to_owned();
        let local = |e: &String| e == "." || *e == ns;
        if !dr.export_to.is_empty() && !dr.export_to.iter().all(local) {
            on.add(
                &codes::X_INVALID_EXPORT_TO,
                "spec.exportTo",
                "destination rule with workload selector cannot have exportTo beyond current \
                 namespace",
            );
        }
    }
}

fn check_policy(on: &mut On<'_, '_>, tp: &TrafficPolicy, path: &str) {
    let invalid = &codes::DR_INVALID_POLICY;
    if *tp == TrafficPolicy::default() {
        on.add(invalid, path, "traffic policy must have at least one field");
        return;
    }
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        on.add(
            invalid,
            format!("{path}.tunnel"),
            "tunnel and proxyProtocol must not be set together",
        );
    }
    check_blocks(
        on,
        path,
        tp.load_balancer.as_ref(),
        tp.connection_pool.as_ref(),
        tp.outlier_detection.as_ref(),
        tp.tls.as_ref(),
    );
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let ppath = format!("{path}.portLevelSettings[{i}]");
        match pl.port {
            None => on.add(invalid, &ppath, "portTrafficPolicy must have valid port"),
            Some(p) => {
                if let Err(e) = check_port(u64::from(p.number)) {
                    on.add(invalid, format!("{ppath}.port.number"), e);
                }
            }
        }
        if pl.load_balancer.is_none()
            && pl.connection_pool.is_none()
            && pl.outlier_detection.is_none()
            && pl.tls.is_none()
        {
            on.add(
                invalid,
                &ppath,
                "port traffic policy must have at least one field",
            );
        } else {
            check_blocks(
                on,
                &ppath,
                pl.load_balancer.as_ref(),
                pl.connection_pool.as_ref(),
                pl.outlier_detection.as_ref(),
                pl.tls.as_ref(),
            );
        }
    }
    if let Some(tunnel) = &tp.tunnel {
        let tpath = format!("{path}.tunnel");
        if !["", "CONNECT", "POST"].contains(&tunnel.protocol.as_str()) {
            on.add(
                invalid,
                format!("{tpath}.protocol"),
                "tunnel protocol must be \"CONNECT\" or \"POST\"",
            );
        }
        if check_fqdn(&tunnel.target_host).is_err() && !is_ip(&tunnel.target_host) {
            on.add(
                invalid,
                format!("{tpath}.targetHost"),
                format!(
                    "tunnel target host must be valid FQDN or IP address: {:?}",
                    tunnel.target_host
                ),
            );
        }
        if let Err(e) = check_port(u64::from(tunnel.target_port)) {
            on.add(
                invalid,
                format!("{tpath}.targetPort"),
                format!("tunnel target port is invalid: {e}"),
            );
        }
    }
}

fn check_blocks(
    on: &mut On<'_, '_>,
    path: &str,
    lb: Option<&LoadBalancerSettings>,
    pool: Option<&ConnectionPoolSettings>,
    outlier: Option<&OutlierDetection>,
    tls: Option<&ClientTlsSettings>,
) {
    if let Some(outlier) = outlier {
        check_outlier(on, outlier, &format!("{path}.outlierDetection"));
    }
    if let Some(pool) = pool {
        check_pool(on, pool, &format!("{path}.connectionPool"));
    }
    if let Some(lb) = lb {
        check_lb(on, lb, &format!("{path}.loadBalancer"));
    }
    if let Some(tls) = tls {
        check_tls(on, tls, &format!("{path}.tls"));
    }
}

fn check_outlier(on: &mut On<'_, '_>, od: &OutlierDetection, path: &str) {
    let invalid = &codes::DR_INVALID_OUTLIER;
    let dur = &codes::DR_INVALID_DURATION;
    if let Some(d) = od.base_ejection_time {
        duration(
            on,
            dur,
            d,
            &format!("{path}.baseEjectionTime"),
            "baseEjectionTime",
        );
    }
    if let Some(d) = od.interval {
        duration(on, dur, d, &format!("{path}.interval"), "interval");
    }
    if od.consecutive_errors != 0 {
        on.add(
            &codes::X_DEPRECATED,
            format!("{path}.consecutiveErrors"),
            "outlierDetection.consecutiveErrors is deprecated: use consecutiveGatewayErrors or \
             consecutive5xxErrors",
        );
    }
    if !od.split_external_local_origin_errors
        && od.consecutive_local_origin_failures.is_some_and(|n| n > 0)
    {
        on.add(
            invalid,
            format!("{path}.consecutiveLocalOriginFailures"),
            "consecutiveLocalOriginFailures is set, but splitExternalLocalOriginErrors is false",
        );
    }
    for (field, value) in [
        ("maxEjectionPercent", od.max_ejection_percent),
        ("minHealthPercent", od.min_health_percent),
    ] {
        if !(0..=100).contains(&value) {
            on.add(
                invalid,
                format!("{path}.{field}"),
                format!("{field} {value} is not in range 0..100"),
            );
        }
    }
}

pub(crate) fn check_pool(on: &mut On<'_, '_>, pool: &ConnectionPoolSettings, path: &str) {
    let invalid = &codes::DR_INVALID_POOL;
    let dur = &codes::DR_INVALID_DURATION;
    if pool.http.is_none() && pool.tcp.is_none() {
        on.add(
            invalid,
            path,
            "connection pool must have at least one field",
        );
    }
    if let Some(http) = &pool.http {
        let hpath = format!("{path}.http");
        for (field, value, what) in [
            (
                "http1MaxPendingRequests",
                http.http1_max_pending_requests,
                "http1 max pending requests",
            ),
            (
                "http2MaxRequests",
                http.http2_max_requests,
                "http2 max requests",
            ),
            (
                "maxRequestsPerConnection",
                http.max_requests_per_connection,
                "max requests per connection",
            ),
            ("maxRetries", http.max_retries, "max retries"),
            (
                "maxConcurrentStreams",
                http.max_concurrent_streams,
                "max concurrent streams",
            ),
        ] {
            if value < 0 {
                on.add(
                    invalid,
                    format!("{hpath}.{field}"),
                    format!("{what} must be non-negative"),
                );
            }
        }
        if let Some(d) = http.idle_timeout {
            duration(on, dur, d, &format!("{hpath}.idleTimeout"), "idleTimeout");
        }
        if http.h2_upgrade_policy == H2UpgradePolicy::Upgrade && http.use_client_protocol {
            on.add(
                invalid,
                format!("{hpath}.useClientProtocol"),
                "use client protocol must not be true when h2UpgradePolicy is UPGRADE",
            );
        }
        if let Some(ka) = &http.http2_keep_alive {
            let kpath = format!("{hpath}.http2KeepAlive");
            match ka.interval {
                None => on.add(invalid, &kpath, "http2 keepalive interval is required"),
                Some(d) => duration(on, dur, d, &format!("{kpath}.interval"), "interval"),
            }
            match ka.timeout {
                None => on.add(invalid, &kpath, "http2 keepalive timeout is required"),
                Some(d) => duration(on, dur, d, &format!("{kpath}.timeout"), "timeout"),
            }
        }
    }
    if let Some(tcp) = &pool.tcp {
        let tpath = format!("{path}.tcp");
        if tcp.max_connections < 0 {
            on.add(
                invalid,
                format!("{tpath}.maxConnections"),
                "max connections must be non-negative",
            );
        }
        if let Some(d) = tcp.connect_timeout {
            duration(
                on,
                dur,
                d,
                &format!("{tpath}.connectTimeout"),
                "connectTimeout",
            );
        }
        if let Some(d) = tcp.max_connection_duration {
            duration(
                on,
                dur,
                d,
                &format!("{tpath}.maxConnectionDuration"),
                "maxConnectionDuration",
            );
        }
        // `idleTimeout: 0s` disables the timeout (DR-14).
        if let Some(d) = tcp.idle_timeout.filter(|d| !d.is_zero()) {
            duration(on, dur, d, &format!("{tpath}.idleTimeout"), "idleTimeout");
        }
        if let Some(ka) = &tcp.tcp_keepalive {
            if let Some(d) = ka.time {
                duration(on, dur, d, &format!("{tpath}.tcpKeepalive.time"), "time");
            }
            if let Some(d) = ka.interval {
                duration(
                    on,
                    dur,
                    d,
                    &format!("{tpath}.tcpKeepalive.interval"),
                    "interval",
                );
            }
        }
    }
}

/// Envoy's primality test for Maglev table sizes.
fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x.is_multiple_of(2) {
        return false;
    }
    let mut factor = 3;
    while factor * factor <= x {
        if x.is_multiple_of(factor) {
            return false;
        }
        factor += 2;
    }
    true
}

fn check_lb(on: &mut On<'_, '_>, lb: &LoadBalancerSettings, path: &str) {
    let invalid = &codes::DR_INVALID_LB;
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        on.add(
            invalid,
            format!("{path}.consistentHash"),
            "only one of `simple` or `consistentHash` may be set",
        );
    }
    if let Some(hash) = &lb.consistent_hash {
        let hpath = format!("{path}.consistentHash");
        let keys = [
            hash.http_header_name.is_some(),
            hash.http_cookie.is_some(),
            hash.use_source_ip.is_some(),
            hash.http_query_parameter_name.is_some(),
        ];
        if keys.iter().filter(|k| **k).count() > 1 {
            on.add(
                invalid,
                &hpath,
                "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName \
                 may be set",
            );
        }
        let keyed = hash
            .http_header_name
            .as_deref()
            .is_some_and(|h| !h.is_empty())
            || hash.http_cookie.is_some()
            || hash.use_source_ip == Some(true)
            || hash
                .http_query_parameter_name
                .as_deref()
                .is_some_and(|q| !q.is_empty());
        if !keyed {
            on.add(
                &codes::DR_HASH_WITHOUT_KEY,
                &hpath,
                "consistentHash sets no hash key (httpHeaderName, httpCookie, useSourceIp or \
                 httpQueryParameterName): every request picks a random endpoint",
            );
        }
        if let Some(cookie) = &hash.http_cookie {
            if cookie.name.is_empty() {
                on.add(
                    invalid,
                    format!("{hpath}.httpCookie"),
                    "name required for HttpCookie",
                );
            }
            let mut seen = BTreeSet::new();
            for (i, attr) in cookie.attributes.iter().enumerate() {
                let apath = format!("{hpath}.httpCookie.attributes[{i}]");
                if attr.name.is_empty() {
                    on.add(invalid, apath, "cookie attribute name cannot be empty");
                } else if !seen.insert(attr.name.as_str()) {
                    on.add(
                        invalid,
                        apath,
                        format!("duplicate cookie attribute name: {}", attr.name),
                    );
                }
            }
            if let Some(ttl) = cookie.ttl.filter(|t| !t.is_zero()) {
                duration(
                    on,
                    &codes::DR_INVALID_DURATION,
                    ttl,
                    &format!("{hpath}.httpCookie.ttl"),
                    "ttl",
                );
            }
        }
        if hash.ring_hash.is_some() && hash.maglev.is_some() {
            on.add(
                invalid,
                format!("{hpath}.maglev"),
                "only one of ringHash or maglev may be set",
            );
        }
        if hash.minimum_ring_size != 0 {
            on.add(
                &codes::X_DEPRECATED,
                format!("{hpath}.minimumRingSize"),
                "consistent hash minimumRingSize is deprecated, use ringHash.minimumRingSize instead",
            );
            if hash.ring_hash.is_some() || hash.maglev.is_some() {
                on.add(
                    invalid,
                    format!("{hpath}.minimumRingSize"),
                    "only one of minimumRingSize or maglev/ringHash can be specified",
                );
            }
        }
        if let Some(maglev) = hash.maglev {
            let mpath = format!("{hpath}.maglev.tableSize");
            let size = maglev.table_size;
            if size == 0 {
                on.add(invalid, mpath, "tableSize must be set for maglev");
            } else if size >= 5_000_011 {
                on.add(
                    invalid,
                    mpath,
                    "tableSize must be less than 5000011 for maglev",
                );
            } else if !is_prime(size) {
                on.add(
                    invalid,
                    mpath,
                    "tableSize must be a prime number for maglev",
                );
            }
        }
    }
    if lb.locality_lb_setting.is_some() && lb.zone_aware_lb_setting.is_some() {
        on.add(
            invalid,
            format!("{path}.zoneAwareLbSetting"),
            "only one of localityLbSetting and zoneAwareLbSetting can be set",
        );
    }
    if let Some(locality) = &lb.locality_lb_setting {
        let lpath = format!("{path}.localityLbSetting");
        if !locality.distribute.is_empty() && !locality.failover.is_empty() {
            on.add(
                invalid,
                &lpath,
                "can not simultaneously specify 'distribute' and 'failover'",
            );
        }
        for (i, d) in locality.distribute.iter().enumerate() {
            let dpath = format!("{lpath}.distribute[{i}]");
            if d.to.values().any(|w| !(1..=100).contains(w)) {
                on.add(
                    invalid,
                    format!("{dpath}.to"),
                    "locality weight must be in range [1, 100]",
                );
            } else {
                let total: u32 = d.to.values().sum();
                if total != 100 {
                    on.add(
                        invalid,
                        format!("{dpath}.to"),
                        format!("total locality weight {total} != 100"),
                    );
                }
            }
        }
        for (i, f) in locality.failover.iter().enumerate() {
            let fpath = format!("{lpath}.failover[{i}]");
            if f.from == f.to {
                on.add(
                    invalid,
                    &fpath,
                    "locality lb failover settings must specify different regions",
                );
            }
            if f.from.contains('/') || f.to.contains('/') {
                on.add(invalid, &fpath, "locality lb failover only specify region");
            }
            if f.from.contains('*') || f.to.contains('*') {
                on.add(
                    invalid,
                    &fpath,
                    "locality lb failover region should not contain '*' wildcard",
                );
            }
        }
        if locality.enabled != Some(false) {
            on.add(
                &codes::DR_LOCALITY,
                &lpath,
                "localityLbSetting is read but not applied yet: endpoints are not ranked by \
                 locality",
            );
        }
    }
    if let Some(zone) = &lb.zone_aware_lb_setting
        && zone.enabled != Some(false)
    {
        on.add(
            &codes::DR_LOCALITY,
            format!("{path}.zoneAwareLbSetting"),
            "zoneAwareLbSetting is read but not applied yet: endpoints are not ranked by zone",
        );
    }
    // DR-12: parsed and checked, not applied (yet) by the balancers.
    for (field, set) in [
        ("warmup", lb.warmup.is_some()),
        ("warmupDurationSecs", lb.warmup_duration_secs.is_some()),
    ] {
        if set {
            on.add(
                &codes::DR_WARMUP,
                format!("{path}.{field}"),
                format!(
                    "{field} is read but not applied yet: a new endpoint gets its full share of \
                     traffic at once"
                ),
            );
        }
    }
    if lb.warmup_duration_secs.is_some() {
        on.add(
            &codes::X_DEPRECATED,
            format!("{path}.warmupDurationSecs"),
            "warmupDurationSecs is deprecated: use warmup.duration",
        );
    }
    if let Some(warmup) = &lb.warmup {
        let wpath = format!("{path}.warmup");
        duration(
            on,
            &codes::DR_INVALID_DURATION,
            warmup.duration,
            &format!("{wpath}.duration"),
            "duration",
        );
        if warmup.minimum_percent.is_some_and(|p| p > 100.0) {
            on.add(
                invalid,
                format!("{wpath}.minimumPercent"),
                "minimumPercent value should be less than or equal to 100",
            );
        }
        if warmup.aggression.is_some_and(|a| a <= 0.0) {
            on.add(
                invalid,
                format!("{wpath}.aggression"),
                "aggression should be greater than 0",
            );
        }
    }
}

fn check_tls(on: &mut On<'_, '_>, tls: &ClientTlsSettings, path: &str) {
    let invalid = &codes::DR_INVALID_TLS;
    let skip_verify = tls.insecure_skip_verify == Some(true);
    let has_ca = !tls.ca_certificates.is_empty() || !tls.subject_alt_names.is_empty();
    let simple_skip =
        tls.mode == ClientTlsMode::Simple && (has_ca || !tls.credential_name.is_empty());
    if skip_verify && simple_skip {
        on.add(
            invalid,
            format!("{path}.insecureSkipVerify"),
            "cannot specify caCertificates or credentialName or subjectAltNames when \
             insecureSkipVerify is set true",
        );
    }
    if skip_verify && tls.mode == ClientTlsMode::Mutual && has_ca {
        on.add(
            invalid,
            format!("{path}.insecureSkipVerify"),
            "cannot specify caCertificates or subjectAltNames when insecureSkipVerify is set true",
        );
    }
    let files = !tls.client_certificate.is_empty()
        || !tls.ca_certificates.is_empty()
        || !tls.private_key.is_empty()
        || !tls.ca_crl.is_empty();
    let credential = !tls.credential_name.is_empty();
    match tls.mode {
        ClientTlsMode::Simple | ClientTlsMode::Mutual if credential && files => {
            on.add(
                invalid,
                format!("{path}.credentialName"),
                "cannot specify client certificates or CA certificate or CA CRL if \
                 credentialName is set",
            );
        }
        ClientTlsMode::Simple | ClientTlsMode::Mutual if credential => {}
        ClientTlsMode::Mutual => {
            if tls.client_certificate.is_empty() {
                on.add(invalid, path, "client certificate required for mutual tls");
            }
            if tls.private_key.is_empty() {
                on.add(invalid, path, "private key required for mutual tls");
            }
        }
        ClientTlsMode::IstioMutual => {
            for (field, set) in [
                ("clientCertificate", !tls.client_certificate.is_empty()),
                ("privateKey", !tls.private_key.is_empty()),
                ("caCertificates", !tls.ca_certificates.is_empty()),
                ("credentialName", !tls.credential_name.is_empty()),
                ("caCrl", !tls.ca_crl.is_empty()),
                ("insecureSkipVerify", tls.insecure_skip_verify.is_some()),
            ] {
                if set {
                    on.add(
                        &codes::DR_ISTIO_MUTUAL_FIELDS,
                        format!("{path}.{field}"),
                        format!(
                            "{field} is ignored with ISTIO_MUTUAL: the proxy's own certificate \
                             and trust bundle are used"
                        ),
                    );
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::is_prime;

    #[test]
    fn maglev_sizes() {
        assert!(is_prime(65537));
        assert!(is_prime(2));
        assert!(!is_prime(65536));
        assert!(!is_prime(9));
    }
}
