//! Single-resource checks of a Sidecar: listeners, ports and the `namespace/host` egress form
//! (Istio's `ValidateSidecar`).

use std::collections::{BTreeMap, BTreeSet};

use super::codes;
use super::common::check_workload_selector;
use super::destination_rule::check_pool;
use super::names::{
    check_fqdn, check_port, check_wildcard_domain, is_dns1123_label, is_ip, protocol,
};
use super::report::On;
use super::virtual_service::check_destination;
use crate::model::{OutboundTrafficPolicyMode, Sidecar, SidecarPort};

pub(crate) fn check(on: &mut On<'_, '_>, sc: &Sidecar) {
    if let Some(selector) = &sc.workload_selector {
        check_workload_selector(on, &selector.labels, "spec.workloadSelector.labels");
    }
    if sc.egress.is_empty()
        && sc.ingress.is_empty()
        && sc.outbound_traffic_policy.is_none()
        && sc.inbound_connection_pool.is_none()
    {
        on.add(
            &codes::SC_INVALID_LISTENER,
            "spec",
            "sidecar: empty configuration provided",
        );
        return;
    }
    let mut ports = BTreeSet::new();
    for (i, ingress) in sc.ingress.iter().enumerate() {
        let path = format!("spec.ingress[{i}]");
        check_listener_port(
            on,
            &ingress.port,
            &ingress.bind,
            &format!("{path}.port"),
            &format!("{path}.bind"),
        );
        if !ports.insert(ingress.port.number) {
            on.add(
                &codes::SC_INVALID_LISTENER,
                format!("{path}.port.number"),
                "sidecar: ports on IP bound listeners must be unique",
            );
        }
        if !ingress.default_endpoint.is_empty() {
            check_default_endpoint(
                on,
                &ingress.default_endpoint,
                &format!("{path}.defaultEndpoint"),
            );
        }
        if let Some(pool) = &ingress.connection_pool {
            check_pool(on, pool, &format!("{path}.connectionPool"));
        }
    }
    if let Some(pool) = &sc.inbound_connection_pool {
        check_pool(on, pool, "spec.inboundConnectionPool");
    }
    let mut ports = BTreeSet::new();
    let mut catch_all = false;
    for (i, egress) in sc.egress.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        match &egress.port {
            None if catch_all => on.add(
                &codes::SC_INVALID_LISTENER,
                &path,
                "sidecar: egress can have only one listener with empty port",
            ),
            None if i + 1 != sc.egress.len() => on.add(
                &codes::SC_INVALID_LISTENER,
                &path,
                "sidecar: the egress listener with empty port should be the last listener in the \
                 list",
            ),
            None => catch_all = true,
            Some(port) => {
                let ppath = format!("{path}.port");
                if port.number == 0 {
                    if !egress.bind.starts_with("unix://") {
                        on.add(
                            &codes::SC_INVALID_PORT,
                            format!("{ppath}.number"),
                            "sidecar: ports with 0 value must have a unix domain socket bind address",
                        );
                    }
                    check_port_name_protocol(on, port, &ppath);
                } else {
                    check_listener_port(on, port, &egress.bind, &ppath, &format!("{path}.bind"));
                    if !ports.insert(port.number) {
                        on.add(
                            &codes::SC_INVALID_LISTENER,
                            format!("{ppath}.number"),
                            "sidecar: ports on IP bound listeners must be unique",
                        );
                    }
                }
            }
        }
        if egress.hosts.is_empty() {
            on.add(
                &codes::SC_INVALID_LISTENER,
                &path,
                "sidecar: egress listener must contain at least one host",
            );
        }
        check_egress_hosts(on, &egress.hosts, &path);
    }
    if let Some(policy) = &sc.outbound_traffic_policy
        && let Some(proxy) = &policy.egress_proxy
    {
        let path = "spec.outboundTrafficPolicy.egressProxy";
        if policy.mode != OutboundTrafficPolicyMode::AllowAny {
            on.add(
                &codes::SC_INVALID_OUTBOUND,
                path,
                "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
            );
        } else {
            if let Err(e) = check_fqdn(&proxy.host) {
                on.add(&codes::SC_INVALID_OUTBOUND, format!("{path}.host"), e);
            }
            if proxy.port.is_none() {
                on.add(
                    &codes::SC_INVALID_OUTBOUND,
                    path,
                    "sidecar: egress_proxy port must be non-nil",
                );
            }
            check_destination(on, &codes::SC_INVALID_OUTBOUND, proxy, path);
        }
    }
}

fn check_port_name_protocol(on: &mut On<'_, '_>, port: &SidecarPort, path: &str) {
    if !port.name.is_empty() && !is_dns1123_label(&port.name) {
        on.add(
            &codes::SC_INVALID_PORT,
            format!("{path}.name"),
            format!("invalid port name: {}", port.name),
        );
    }
    if !port.protocol.is_empty() && protocol(&port.protocol).is_none() {
        on.add(
            &codes::SC_INVALID_PORT,
            format!("{path}.protocol"),
            format!("unsupported protocol: {}", port.protocol),
        );
    }
    if port.target_port > 0 {
        on.add(
            &codes::SC_INVALID_PORT,
            format!("{path}.targetPort"),
            "targetPort has no impact on Sidecars",
        );
    }
}

fn check_listener_port(
    on: &mut On<'_, '_>,
    port: &SidecarPort,
    bind: &str,
    path: &str,
    bind_path: &str,
) {
    check_port_name_protocol(on, port, path);
    if let Err(e) = check_port(u64::from(port.number)) {
        on.add(&codes::SC_INVALID_PORT, format!("{path}.number"), e);
    }
    if !bind.is_empty() && !is_ip(bind) {
        on.add(
            &codes::SC_INVALID_PORT,
            bind_path,
            format!("{bind} is not a valid IP"),
        );
    }
}

fn check_default_endpoint(on: &mut On<'_, '_>, endpoint: &str, path: &str) {
    let invalid = &codes::SC_INVALID_PORT;
    if let Some(socket) = endpoint.strip_prefix("unix://") {
        if !(socket.starts_with('@') || (socket.starts_with('/') && !socket.ends_with('/'))) {
            on.add(
                invalid,
                path,
                format!("{socket} is not an absolute path to a file"),
            );
        }
        return;
    }
    let split = match endpoint.strip_prefix('[') {
        Some(rest) => rest.split_once("]:"),
        None => endpoint.rsplit_once(':').filter(|(h, _)| !h.contains(':')),
    };
    let Some((host, port)) = split else {
        on.add(
            invalid,
            path,
            format!("sidecar: defaultEndpoint {endpoint:?} is not host:port"),
        );
        return;
    };
    if !["", "127.0.0.1", "0.0.0.0", "::1", "::"].contains(&host) {
        on.add(
            invalid,
            path,
            "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,\
             [::]:port,unix://filepath or unset",
        );
    }
    match port.parse::<u64>() {
        Ok(p) => {
            if let Err(e) = check_port(p) {
                on.add(invalid, path, e);
            }
        }
        Err(_) => on.add(
            invalid,
            path,
            format!("sidecar: defaultEndpoint port ({port}) is not a number"),
        ),
    }
}

/// Istio's `ValidateNamespaceSlashWildcardHostname` for sidecars.
fn check_egress_host(host: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let Some((ns, name)) = host.split_once('/') else {
        return vec![format!("host {host:?} must be of form namespace/dnsName")];
    };
    if ns.is_empty() || name.is_empty() {
        errs.push("config namespace and dnsName in host entry cannot be empty".to_owned());
    }
    let bare = ns.strip_prefix('~').unwrap_or(ns);
    if !bare.is_empty() && bare != "*" && bare != "." && !is_dns1123_label(bare) {
        errs.push(format!("invalid namespace value {ns:?} in sidecar"));
    }
    if name.is_empty() {
        return errs;
    }
    if name != "*" && !name.contains('.') {
        errs.push(format!("{name:?}: short names (non FQDN) are not allowed"));
    }
    if let Err(e) = check_wildcard_domain(name) {
        errs.push(e);
    }
    if name.contains('*') && name.len() != 1 && !name.starts_with("*.") {
        errs.push(format!("partial wildcard {name:?} not allowed"));
    }
    errs
}

fn check_egress_hosts(on: &mut On<'_, '_>, hosts: &[String], path: &str) {
    let own = on.namespace().to_owned();
    let mut by_ns: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for (k, host) in hosts.iter().enumerate() {
        let hpath = format!("{path}.hosts[{k}]");
        for e in check_egress_host(host) {
            on.add(&codes::SC_INVALID_HOST, &hpath, e);
        }
        let Some((ns, name)) = host.split_once('/') else {
            continue;
        };
        if ns.starts_with('~') {
            continue;
        }
        let ns = if ns == "." {
            own.clone()
        } else {
            ns.to_owned()
        };
        let names = by_ns.entry(ns).or_default();
        let duplicate = if name == "*" {
            !names.is_empty()
        } else {
            names.contains(name) || names.contains("*")
        };
        if duplicate {
            on.add(
                &codes::SC_DUPLICATE_HOST,
                &hpath,
                format!("duplicated egress host: {host}"),
            );
        }
        names.insert(name);
    }
    if by_ns.get("*").is_some_and(|n| n.contains("*")) && by_ns.len() != 1 {
        on.add(
            &codes::SC_DUPLICATE_HOST,
            format!("{path}.hosts"),
            "`*/*` host selects all resources, no other hosts can be added",
        );
    }
}
