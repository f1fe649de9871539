//! Single-resource checks of a VirtualService: hosts, route lists, destinations and weights,
//! TCP and TLS routes, and routes that can never be reached (SEMANTICS §2). The checks of one
//! HTTP route's own fields are in `http_route.rs`.

use std::collections::HashMap;

use super::codes;
use super::common::check_export_to;
use super::http_route;
use super::names::{
    check_ip_subnet, check_labels, check_port, check_wildcard_domain, hosts_overlap,
    is_dns1123_label, is_ip,
};
use super::report::On;
use super::source_map::key;
use crate::model::{Destination, HttpMatchRequest, HttpRoute, StringMatch, VirtualService};

/// Whether the VirtualService applies to sidecars (HOST-10): no `gateways`, or `mesh` listed.
pub(crate) fn applies_to_mesh(vs: &VirtualService) -> bool {
    vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh")
}

pub(crate) fn check(on: &mut On<'_, '_>, vs: &VirtualService, delegated_to: bool) {
    let is_gateway = vs.gateways.iter().any(|g| g != "mesh");
    if vs.hosts.is_empty() && !delegated_to {
        on.add(
            &codes::VS_NO_HOSTS,
            "spec.hosts",
            "the VirtualService has no hosts: Istio treats it as a delegate, which mesh-proxy \
             does not support, so it routes nothing",
        );
    }
    if !applies_to_mesh(vs) {
        on.add(
            &codes::VS_GATEWAYS_ONLY,
            "spec.gateways",
            "gateways does not list `mesh`: this VirtualService applies to gateways only and \
             mesh-proxy ignores it",
        );
    }
    check_hosts(on, vs, is_gateway);
    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        on.add(
            &codes::VS_NO_ROUTES,
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    let delegate_vs = vs.hosts.is_empty();
    for (i, route) in vs.http.iter().enumerate() {
        http_route::check(
            on,
            route,
            &format!("spec.http[{i}]"),
            delegate_vs,
            is_gateway,
        );
        check_http_destinations(on, route, &format!("spec.http[{i}]"));
    }
    check_reachability(on, &vs.http);
    for (i, tcp) in vs.tcp.iter().enumerate() {
        let path = format!("spec.tcp[{i}]");
        for (j, m) in tcp.r#match.iter().enumerate() {
            let mpath = format!("{path}.match[{j}]");
            check_l4_match(on, &mpath, &m.destination_subnets, m.port, &m.source_labels);
        }
        if tcp.route.is_empty() {
            on.add(&codes::VS_NO_ACTION, &path, "TCP route is required");
        }
        let dests = tcp.route.iter().map(|r| (&r.destination, r.weight));
        check_weighted(on, &path, dests);
    }
    for (i, tls) in vs.tls.iter().enumerate() {
        let path = format!("spec.tls[{i}]");
        if tls.r#match.is_empty() {
            on.add(
                &codes::VS_INVALID_MATCH,
                &path,
                "TLS route must have at least one match condition",
            );
        }
        for (j, m) in tls.r#match.iter().enumerate() {
            let mpath = format!("{path}.match[{j}]");
            if m.sni_hosts.is_empty() {
                on.add(
                    &codes::VS_INVALID_MATCH,
                    &mpath,
                    "TLS match must have at least one SNI host",
                );
            }
            for (k, sni) in m.sni_hosts.iter().enumerate() {
                if let Err(e) = check_wildcard_domain(sni)
                    && !is_ip(sni)
                {
                    on.add(
                        &codes::VS_INVALID_MATCH,
                        format!("{mpath}.sniHosts[{k}]"),
                        e,
                    );
                }
            }
            check_l4_match(on, &mpath, &m.destination_subnets, m.port, &m.source_labels);
        }
        if tls.route.is_empty() {
            on.add(&codes::VS_NO_ACTION, &path, "TLS route is required");
        }
        let dests = tls.route.iter().map(|r| (&r.destination, r.weight));
        check_weighted(on, &path, dests);
    }
    check_export_to(on, &vs.export_to, false);
}

fn check_hosts(on: &mut On<'_, '_>, vs: &VirtualService, is_gateway: bool) {
    let mut all_valid = true;
    for (i, host) in vs.hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        match check_wildcard_domain(host) {
            Err(_) if is_ip(host) => {}
            Err(e) => {
                all_valid = false;
                on.add(
                    &codes::VS_INVALID_HOST,
                    path,
                    format!("invalid host {host:?}: {e}"),
                );
            }
            Ok(()) if host == "*" && !is_gateway => on.add(
                &codes::VS_MESH_WILDCARD,
                path,
                "host \"*\" matches every host here (HOST-5), but Istio rejects `*` for virtual \
                 services bound to the mesh gateway",
            ),
            Ok(()) => {}
        }
    }
    if all_valid {
        for j in 0..vs.hosts.len() {
            for i in 0..j {
                // `*` is reported on its own (MESH0105); Istio skips the duplicate check then.
                let star = vs.hosts[i] == "*" || vs.hosts[j] == "*";
                if !star && hosts_overlap(&vs.hosts[i], &vs.hosts[j]) {
                    on.add(
                        &codes::VS_DUPLICATE_HOST,
                        format!("spec.hosts[{j}]"),
                        format!(
                            "duplicate hosts in virtual service: {} & {}",
                            vs.hosts[i], vs.hosts[j]
                        ),
                    );
                }
            }
        }
    }
}

fn check_l4_match(
    on: &mut On<'_, '_>,
    path: &str,
    subnets: &[String],
    port: u32,
    source_labels: &std::collections::BTreeMap<String, String>,
) {
    for (k, subnet) in subnets.iter().enumerate() {
        if let Err(e) = check_ip_subnet(subnet) {
            on.add(
                &codes::VS_INVALID_MATCH,
                format!("{path}.destinationSubnets[{k}]"),
                e,
            );
        }
    }
    if port != 0
        && let Err(e) = check_port(u64::from(port))
    {
        on.add(&codes::VS_INVALID_MATCH, format!("{path}.port"), e);
    }
    for (k, e) in check_labels(source_labels) {
        on.add(
            &codes::VS_INVALID_MATCH,
            format!("{path}.sourceLabels{}", key(&k)),
            e,
        );
    }
}

fn check_http_destinations(on: &mut On<'_, '_>, route: &HttpRoute, path: &str) {
    let dests = route.route.iter().map(|r| (&r.destination, r.weight));
    check_weighted(on, path, dests);
    if let Some(mirror) = &route.mirror {
        check_destination(
            on,
            &codes::VS_INVALID_MIRROR,
            mirror,
            &format!("{path}.mirror"),
        );
    }
    for (i, m) in route.mirrors.iter().enumerate() {
        let mpath = format!("{path}.mirrors[{i}].destination");
        check_destination(on, &codes::VS_INVALID_MIRROR, &m.destination, &mpath);
    }
}

/// Destinations and weights of a route (VS-14): each destination valid, no negative weight,
/// not all weights 0 with several destinations, and a warning when they do not sum to 100.
fn check_weighted<'a>(
    on: &mut On<'_, '_>,
    path: &str,
    dests: impl Iterator<Item = (&'a Destination, i32)>,
) {
    let mut total: i64 = 0;
    let mut count = 0;
    let mut negative = false;
    for (k, (dest, weight)) in dests.enumerate() {
        count += 1;
        let dpath = format!("{path}.route[{k}]");
        check_destination(
            on,
            &codes::VS_INVALID_DESTINATION,
            dest,
            &format!("{dpath}.destination"),
        );
        if weight < 0 {
            negative = true;
            on.add(
                &codes::VS_INVALID_WEIGHTS,
                format!("{dpath}.weight"),
                format!("weight {weight} < 0"),
            );
        }
        total += i64::from(weight);
    }
    if count > 1 && total == 0 && !negative {
        on.add(
            &codes::VS_INVALID_WEIGHTS,
            format!("{path}.route"),
            "total destination weight = 0: with several destinations at least one needs a weight",
        );
    } else if count > 1 && !negative && total != 100 {
        on.add(
            &codes::VS_WEIGHT_SUM,
            format!("{path}.route"),
            format!(
                "weights sum to {total}, not 100: each destination gets weight/{total} of the \
                 requests"
            ),
        );
    }
}

/// Istio's `validateDestination`: a host (not `*`), a DNS-label subset name, a valid port.
pub(crate) fn check_destination(
    on: &mut On<'_, '_>,
    code: &'static codes::CodeInfo,
    dest: &Destination,
    path: &str,
) {
    if dest.host.is_empty() {
        on.add(code, format!("{path}.host"), "destination host is required");
    } else if dest.host == "*" {
        on.add(code, format!("{path}.host"), "invalid destination host *");
    } else if let Err(e) = check_wildcard_domain(&dest.host) {
        on.add(
            code,
            format!("{path}.host"),
            format!("invalid destination host: {e}"),
        );
    }
    if !dest.subset.is_empty() && !is_dns1123_label(&dest.subset) {
        on.add(
            code,
            format!("{path}.subset"),
            format!("subset name is invalid: {}", dest.subset),
        );
    }
    if let Some(port) = dest.port
        && let Err(e) = check_port(u64::from(port.number))
    {
        on.add(code, format!("{path}.port.number"), e);
    }
}

/// A match block that every request passes: no condition, or only a `uri` that every path
/// satisfies (`prefix: /`, `regex: .*`).
fn is_catch_all(m: &HttpMatchRequest) -> bool {
    let uri_all = match &m.uri {
        None | Some(StringMatch::Any) => true,
        Some(StringMatch::Prefix(p)) => p.is_empty() || p == "/",
        Some(StringMatch::Regex(r)) => r == ".*" || r == "/.*",
        Some(StringMatch::Exact(_)) => false,
    };
    let rest = HttpMatchRequest {
        name: String::new(),
        uri: None,
        ignore_uri_case: false,
        ..m.clone()
    };
    uri_all && rest == HttpMatchRequest::default()
}

fn route_label(i: usize, route: &HttpRoute) -> String {
    if route.name.is_empty() {
        format!("route {i}")
    } else {
        format!("route {i} ({:?})", route.name)
    }
}

/// Routes after a catch-all route are never used (VS-1); a match block equal to an earlier one
/// never matters (Istio's unreachable-rule warnings).
fn check_reachability(on: &mut On<'_, '_>, routes: &[HttpRoute]) {
    let mut catch_all: Option<usize> = None;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, route) in routes.iter().enumerate() {
        let path = format!("spec.http[{i}]");
        if let Some(before) = catch_all {
            on.add(
                &codes::VS_UNREACHABLE_ROUTE,
                path,
                format!(
                    "{} is never used: {} before it matches every request",
                    route_label(i, route),
                    route_label(before, &routes[before])
                ),
            );
            continue;
        }
        if route.r#match.is_empty() || route.r#match.iter().any(is_catch_all) {
            catch_all = Some(i);
        }
        let mut duplicates = 0;
        for (j, m) in route.r#match.iter().enumerate() {
            let text = serde_json::to_string(&HttpMatchRequest {
                name: String::new(),
                ..m.clone()
            })
            .unwrap_or_default();
            match seen.get(&text) {
                Some(&first) => {
                    duplicates += 1;
                    on.add(
                        &codes::VS_DUPLICATE_MATCH,
                        format!("{path}.match[{j}]"),
                        format!(
                            "match {j} of {} is never used: {} has the same match",
                            route_label(i, route),
                            route_label(first, &routes[first])
                        ),
                    );
                }
                None => {
                    seen.insert(text, i);
                }
            }
        }
        if duplicates > 0 && duplicates == route.r#match.len() {
            on.add(
                &codes::VS_UNREACHABLE_ROUTE,
                path,
                format!(
                    "{} is never used: every match of it is used by earlier routes",
                    route_label(i, route)
                ),
            );
        }
    }
}
