//! Single-resource checks of ServiceEntries and WorkloadEntries: hosts, addresses, ports,
//! resolution and endpoints (SEMANTICS §5; Istio's `ValidateServiceEntry`,
//! `ValidateWorkloadEntry`).

use std::collections::BTreeSet;

use super::codes::{self, CodeInfo};
use super::common::{check_export_to, check_workload_selector};
use super::names::{
    check_fqdn, check_ip_subnet, check_labels, check_port, check_wildcard_domain, is_dns1123_label,
    is_ip, protocol,
};
use super::report::On;
use super::source_map::key;
use crate::model::{Resolution, ServiceEntry, ServiceLocation, WorkloadEntry};

fn is_http_or_tls(protocol_name: &str) -> bool {
    matches!(
        protocol(protocol_name),
        Some("http" | "http2" | "http_proxy" | "grpc" | "grpc-web" | "https" | "tls")
    )
}

fn resolution_name(r: Resolution) -> &'static str {
    match r {
        Resolution::None => "NONE",
        Resolution::Static => "STATIC",
        Resolution::Dns => "DNS",
        Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
        Resolution::DynamicDns => "DYNAMIC_DNS",
    }
}

/// What part of a workload a problem is about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Address,
    Port,
}

/// Istio's `validateWorkloadEntry`: problems with field paths relative to the workload.
fn workload_problems(
    we: &WorkloadEntry,
    service_ports: Option<&BTreeSet<&str>>,
    allow_fqdn: bool,
) -> Vec<(Part, String, String)> {
    let mut out = Vec::new();
    let addr = we.address.as_str();
    if addr.is_empty() && we.network.is_empty() {
        out.push((
            Part::Address,
            ".address".to_owned(),
            "address is required".to_owned(),
        ));
        return out;
    }
    let unix = addr.strip_prefix("unix://");
    if let Some(socket) = unix {
        let ok = socket.starts_with('@') || (socket.starts_with('/') && !socket.ends_with('/'));
        if !ok {
            out.push((
                Part::Address,
                ".address".to_owned(),
                format!("{socket} is not an absolute path to a file"),
            ));
        }
        if !we.ports.is_empty() {
            out.push((
                Part::Port,
                ".ports".to_owned(),
                format!("unix endpoint {addr} must not include ports"),
            ));
        }
        if service_ports.is_some_and(|p| p.len() != 1) {
            out.push((
                Part::Port,
                ".address".to_owned(),
                "exactly 1 service port required for unix endpoints".to_owned(),
            ));
        }
    } else if !addr.is_empty() && !is_ip(addr) {
        if !allow_fqdn {
            out.push((
                Part::Address,
                ".address".to_owned(),
                format!("endpoint address {addr:?} is not a valid IP address"),
            ));
        } else if check_fqdn(addr).is_err() {
            out.push((
                Part::Address,
                ".address".to_owned(),
                format!("endpoint address {addr:?} is not a valid FQDN or an IP address"),
            ));
        }
    }
    for (name, port) in &we.ports {
        let path = format!(".ports{}", key(name));
        if service_ports.is_some_and(|p| !p.contains(name.as_str())) {
            out.push((
                Part::Port,
                path.clone(),
                format!("endpoint port {name:?} is not defined by the service entry"),
            ));
        }
        if !is_dns1123_label(name) {
            out.push((
                Part::Port,
                path.clone(),
                format!("invalid port name: {name}"),
            ));
        }
        if let Err(e) = check_port(u64::from(*port)) {
            out.push((Part::Port, path, e));
        }
    }
    for (k, e) in check_labels(&we.labels) {
        out.push((Part::Address, format!(".labels{}", key(&k)), e));
    }
    out
}

pub(crate) fn check_workload_entry(on: &mut On<'_, '_>, we: &WorkloadEntry) {
    for (_, path, message) in workload_problems(we, None, true) {
        on.add(&codes::WE_INVALID, format!("spec{path}"), message);
    }
}

fn report_endpoint(on: &mut On<'_, '_>, problems: Vec<(Part, String, String)>, base: &str) {
    for (part, path, message) in problems {
        let code: &'static CodeInfo = match part {
            Part::Address => &codes::SE_INVALID_ENDPOINT,
            Part::Port => &codes::SE_ENDPOINT_PORT,
        };
        on.add(code, format!("{base}{path}"), message);
    }
}

pub(crate) fn check(on: &mut On<'_, '_>, se: &ServiceEntry) {
    if let Some(selector) = &se.workload_selector {
        check_workload_selector(on, &selector.labels, "spec.workloadSelector.labels");
        if !se.endpoints.is_empty() {
            on.add(
                &codes::SE_ENDPOINTS_AND_SELECTOR,
                "spec.workloadSelector",
                "only one of workloadSelector or endpoints is allowed in a ServiceEntry",
            );
        }
        if se.location == ServiceLocation::MeshExternal && se.resolution != Resolution::None {
            on.add(
                &codes::SE_SELECTOR_IGNORED,
                "spec.workloadSelector",
                "workloadSelector is for MESH_INTERNAL services; on a MESH_EXTERNAL service it \
                 has no effect (SE-5)",
            );
        }
    }
    check_hosts(on, se);
    check_addresses(on, se);
    let ports = check_ports(on, se);
    check_resolution(on, se, &ports);
    if se.resolution != Resolution::None
        && se.hosts.len() > 1
        && let Some(i) = se.ports.iter().position(|p| !is_http_or_tls(&p.protocol))
    {
        on.add(
            &codes::SE_MULTI_HOST_TCP,
            format!("spec.ports[{i}]"),
            "multiple hosts provided with non-HTTP, non-TLS ports",
        );
    }
    check_export_to(on, &se.export_to, true);
}

fn check_hosts(on: &mut On<'_, '_>, se: &ServiceEntry) {
    if se.hosts.is_empty() {
        on.add(
            &codes::SE_INVALID_HOST,
            "spec.hosts",
            "service entry must have at least one host",
        );
    }
    for (i, host) in se.hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        if host == "*" {
            on.add(
                &codes::SE_INVALID_HOST,
                path,
                "invalid host *: a ServiceEntry cannot use the bare wildcard",
            );
            continue;
        }
        if let Err(e) = check_wildcard_domain(host) {
            on.add(&codes::SE_INVALID_HOST, path, format!("invalid host: {e}"));
            continue;
        }
        let partial = host.contains('*') && !host.starts_with("*.");
        if partial && se.resolution != Resolution::DynamicDns {
            on.add(
                &codes::SE_WILDCARD_RESOLUTION,
                &path,
                format!("partial wildcard {host:?} not allowed"),
            );
        }
        let wildcard = host.starts_with('*');
        let own_endpoints = se.resolution == Resolution::Static
            || (matches!(se.resolution, Resolution::Dns | Resolution::DnsRoundRobin)
                && !se.endpoints.is_empty());
        if wildcard && own_endpoints {
            on.add(
                &codes::SE_WILDCARD_RESOLUTION,
                path,
                format!(
                    "wildcard host {host:?} with resolution {}: every matching host goes to the \
                     same endpoints; wildcard hosts are meant for NONE or DYNAMIC_DNS (SE-3)",
                    resolution_name(se.resolution)
                ),
            );
        }
    }
}

fn check_addresses(on: &mut On<'_, '_>, se: &ServiceEntry) {
    let mut cidr = false;
    for (i, addr) in se.addresses.iter().enumerate() {
        cidr |= addr.contains('/');
        if let Err(e) = check_ip_subnet(addr) {
            on.add(
                &codes::SE_INVALID_ADDRESS,
                format!("spec.addresses[{i}]"),
                e,
            );
        }
    }
    if cidr && !matches!(se.resolution, Resolution::None | Resolution::Static) {
        on.add(
            &codes::SE_INVALID_ADDRESS,
            "spec.addresses",
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }
}

/// Port checks; returns the port names (for endpoint port maps).
fn check_ports<'a>(on: &mut On<'_, '_>, se: &'a ServiceEntry) -> BTreeSet<&'a str> {
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for (i, port) in se.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        if !names.insert(port.name.as_str()) {
            on.add(
                &codes::SE_DUPLICATE_PORT,
                format!("{path}.name"),
                format!("service entry port name {:?} already defined", port.name),
            );
        }
        if !numbers.insert(port.number) {
            on.add(
                &codes::SE_DUPLICATE_PORT,
                format!("{path}.number"),
                format!("service entry port {} already defined", port.number),
            );
        }
        if let Some(target) = port.target_port.filter(|t| *t != 0)
            && let Err(e) = check_port(u64::from(target))
        {
            on.add(&codes::SE_INVALID_PORT, format!("{path}.targetPort"), e);
        }
        if !is_dns1123_label(&port.name) {
            on.add(
                &codes::SE_INVALID_PORT,
                format!("{path}.name"),
                format!("invalid port name: {:?}", port.name),
            );
        }
        if !port.protocol.is_empty() && protocol(&port.protocol).is_none() {
            on.add(
                &codes::SE_INVALID_PROTOCOL,
                format!("{path}.protocol"),
                format!("unsupported protocol: {}", port.protocol),
            );
        }
        if let Err(e) = check_port(u64::from(port.number)) {
            on.add(&codes::SE_INVALID_PORT, format!("{path}.number"), e);
        }
    }
    names
}

fn check_resolution(on: &mut On<'_, '_>, se: &ServiceEntry, ports: &BTreeSet<&str>) {
    let name = resolution_name(se.resolution);
    match se.resolution {
        Resolution::None => {
            if !se.endpoints.is_empty() {
                on.add(
                    &codes::SE_INVALID_ENDPOINT,
                    "spec.endpoints",
                    "no endpoints should be provided for resolution type NONE",
                );
            }
            if se.workload_selector.is_some() {
                on.add(
                    &codes::SE_SELECTOR_IGNORED,
                    "spec.workloadSelector",
                    "workloadSelector should not be set when resolution mode is NONE",
                );
            }
        }
        Resolution::Static => {
            for (i, ep) in se.endpoints.iter().enumerate() {
                let problems = workload_problems(ep, Some(ports), false);
                report_endpoint(on, problems, &format!("spec.endpoints[{i}]"));
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if se.endpoints.is_empty()
                && let Some((i, host)) = se
                    .hosts
                    .iter()
                    .enumerate()
                    .find(|(_, h)| check_fqdn(h).is_err() && *h != "*")
            {
                on.add(
                    &codes::SE_RESOLUTION_HOSTS,
                    format!("spec.hosts[{i}]"),
                    format!(
                        "hosts must be FQDN if no endpoints are provided for resolution {name}: \
                         {host:?}"
                    ),
                );
            }
            if se.resolution == Resolution::DnsRoundRobin && se.endpoints.len() > 1 {
                on.add(
                    &codes::SE_INVALID_ENDPOINT,
                    "spec.endpoints",
                    format!("there must only be 0 or 1 endpoint for resolution mode {name}"),
                );
            }
            for (i, ep) in se.endpoints.iter().enumerate() {
                let problems = workload_problems(ep, Some(ports), true);
                report_endpoint(on, problems, &format!("spec.endpoints[{i}]"));
            }
        }
        Resolution::DynamicDns => {
            for (i, host) in se.hosts.iter().enumerate() {
                if !host.starts_with('*') {
                    on.add(
                        &codes::SE_RESOLUTION_HOSTS,
                        format!("spec.hosts[{i}]"),
                        format!("host must be wildcarded for resolution mode {name}"),
                    );
                }
            }
            if !se.addresses.is_empty() {
                on.add(
                    &codes::SE_INVALID_ADDRESS,
                    "spec.addresses",
                    format!("addresses cannot be set for resolution type {name}"),
                );
            }
            if !se.endpoints.is_empty() {
                on.add(
                    &codes::SE_INVALID_ENDPOINT,
                    "spec.endpoints",
                    format!("endpoints cannot be set for resolution type {name}"),
                );
            }
            for (i, port) in se.ports.iter().enumerate() {
                if !matches!(
                    protocol(&port.protocol),
                    Some("http" | "tls" | "grpc" | "http2")
                ) {
                    on.add(
                        &codes::SE_INVALID_PROTOCOL,
                        format!("spec.ports[{i}].protocol"),
                        format!(
                            "only HTTP, TLS, GRPC, and HTTP2 protocols are supported for \
                             resolution type {name}"
                        ),
                    );
                }
            }
        }
    }
}
