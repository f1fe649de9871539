//! Single-resource checks of PeerAuthentications and AuthorizationPolicies (SEMANTICS §6, §7;
//! Istio's `ValidatePeerAuthentication`, `ValidateAuthorizationPolicy`).

use super::codes::{self, CodeInfo};
use super::common::check_workload_selector;
use super::names::{check_ip_subnet, is_cidr, is_ip};
use super::report::On;
use super::source_map::key;
use crate::model::{
    AuthorizationAction, AuthorizationPolicy, Condition, Operation, PeerAuthentication, Source,
};

pub(crate) fn check_peer_authentication(
    on: &mut On<'_, '_>,
    pa: &PeerAuthentication,
    root_namespace: &str,
) {
    let has_selector = pa
        .selector
        .as_ref()
        .is_some_and(|s| !s.match_labels.is_empty());
    if !has_selector && !pa.port_level_mtls.is_empty() {
        on.add(
            &codes::PA_PORT_WITHOUT_SELECTOR,
            "spec.portLevelMtls",
            "mesh/namespace peer authentication cannot have port level mTLS",
        );
    }
    for port in pa.port_level_mtls.keys() {
        if *port == 0 || *port > 65535 {
            on.add(
                &codes::PA_INVALID_PORT,
                format!("spec.portLevelMtls{}", key(&port.to_string())),
                format!("port {port} must be in range 1..65535"),
            );
        }
    }
    if let Some(selector) = &pa.selector {
        check_workload_selector(on, &selector.match_labels, "spec.selector.matchLabels");
        if has_selector && on.namespace() == root_namespace {
            on.add(
                &codes::PA_ROOT_SELECTOR,
                "spec.selector",
                format!(
                    "a PeerAuthentication with a selector in the root namespace {root_namespace} \
                     is ignored (PA-1)"
                ),
            );
        }
    }
}

/// Values with a `*` elsewhere than at the start, at the end, or alone are taken literally
/// (AUTHZ-9).
fn check_wildcards(on: &mut On<'_, '_>, values: &[String], path: &str) {
    for (i, v) in values.iter().enumerate() {
        check_wildcard(on, v, format!("{path}[{i}]"));
    }
}

/// [`check_wildcards`] for one value at `element_path`.
fn check_wildcard(on: &mut On<'_, '_>, v: &str, element_path: String) {
    let stars = v.matches('*').count();
    let ok = stars == 0 || v == "*" || (stars == 1 && (v.starts_with('*') || v.ends_with('*')));
    if !ok {
        on.add(
            &codes::AP_INNER_WILDCARD,
            element_path,
            format!("{v:?} has `*` in the middle or more than once: it is taken literally"),
        );
    }
}

fn check_empty_values(on: &mut On<'_, '_>, values: &[String], path: &str, name: &str) {
    if let Some(i) = values.iter().position(String::is_empty) {
        on.add(
            &codes::AP_EMPTY,
            format!("{path}[{i}]"),
            format!("empty value not allowed, found in {name}"),
        );
    }
}

fn check_ips(on: &mut On<'_, '_>, code: &'static CodeInfo, values: &[String], path: &str) {
    for (i, v) in values.iter().enumerate() {
        if v.contains('/') {
            if !is_cidr(v) {
                on.add(
                    code,
                    format!("{path}[{i}]"),
                    format!("bad CIDR range ({v})"),
                );
            }
        } else if !v.is_empty() && !is_ip(v) {
            on.add(
                code,
                format!("{path}[{i}]"),
                format!("bad IP address ({v})"),
            );
        }
    }
}

fn check_ports(on: &mut On<'_, '_>, code: &'static CodeInfo, values: &[String], path: &str) {
    for (i, v) in values.iter().enumerate() {
        if !v.is_empty() && v.parse::<u32>().map_or(true, |p| p > 65535) {
            on.add(code, format!("{path}[{i}]"), format!("bad port ({v})"));
        }
    }
}

fn check_service_accounts(on: &mut On<'_, '_>, values: &[String], path: &str) {
    if values.len() > 16 {
        on.add(
            &codes::AP_INVALID_ACCOUNT,
            path,
            "may not have more than 16 values",
        );
    }
    for (i, v) in values.iter().enumerate() {
        let message = if v.is_empty() {
            Some("empty value not allowed".to_owned())
        } else if v.contains('*') {
            Some(format!("wildcard not allowed in service accounts: {v:?}"))
        } else if v.len() > 320 {
            Some(format!("value cannot exceed 320 characters: {v:?}"))
        } else {
            match v.split_once('/') {
                Some((ns, sa)) if ns.is_empty() || sa.is_empty() || sa.contains('/') => {
                    Some(format!(
                        "expected format 'serviceAccount' or 'namespace/serviceAccount', found {v:?}"
                    ))
                }
                _ => None,
            }
        };
        if let Some(message) = message {
            on.add(&codes::AP_INVALID_ACCOUNT, format!("{path}[{i}]"), message);
        }
    }
}

fn check_trust_domains(on: &mut On<'_, '_>, values: &[String], path: &str) {
    for (i, v) in values.iter().enumerate() {
        let stars = v.matches('*').count();
        let message = if v.is_empty() {
            Some("empty value not allowed".to_owned())
        } else if stars > 1 {
            Some(format!("at most one wildcard is allowed: {v:?}"))
        } else if stars == 1 && v != "*" && !v.starts_with('*') && !v.ends_with('*') {
            Some(format!(
                "wildcard is only allowed at the start or end: {v:?}"
            ))
        } else if v.contains('/') {
            Some(format!("trust domain must not contain '/': {v:?}"))
        } else {
            None
        };
        if let Some(message) = message {
            on.add(&codes::AP_INVALID_ACCOUNT, format!("{path}[{i}]"), message);
        }
    }
}

/// Source fields a CUSTOM policy cannot use (Istio: "not supported with CUSTOM action").
fn custom_unsupported_source(src: &Source) -> Vec<&'static str> {
    [
        ("namespaces", &src.namespaces),
        ("notNamespaces", &src.not_namespaces),
        ("serviceAccounts", &src.service_accounts),
        ("notServiceAccounts", &src.not_service_accounts),
        ("trustDomains", &src.trust_domains),
        ("notTrustDomains", &src.not_trust_domains),
        ("principals", &src.principals),
        ("notPrincipals", &src.not_principals),
        ("requestPrincipals", &src.request_principals),
        ("notRequestPrincipals", &src.not_request_principals),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(name, _)| name)
    .collect()
}

pub(crate) fn check_authorization_policy(on: &mut On<'_, '_>, ap: &AuthorizationPolicy) {
    if let Some(selector) = &ap.selector {
        check_workload_selector(on, &selector.match_labels, "spec.selector.matchLabels");
    }
    if ap.target_ref.is_some() || !ap.target_refs.is_empty() {
        let path = if ap.target_refs.is_empty() {
            "spec.targetRef"
        } else {
            "spec.targetRefs"
        };
        on.add(
            &codes::AP_TARGET_REFS,
            path,
            "a policy with targetRef(s) applies to gateways and waypoints, never to sidecars: \
             mesh-proxy ignores it (AUTHZ-1)",
        );
    }
    let custom = ap.action == AuthorizationAction::Custom;
    if custom {
        if ap.rules.is_empty() {
            on.add(
                &codes::AP_NO_RULES,
                "spec.action",
                "CUSTOM action without `rules` is meaningless as it will never be triggered, add \
                 an empty rule `{}` if you want it be triggered for every request",
            );
        } else if ap.provider.as_ref().is_none_or(|p| p.name.is_empty()) {
            on.add(
                &codes::AP_CUSTOM_INVALID,
                "spec.provider",
                "`provider.name` must not be empty",
            );
        }
        on.add(
            &codes::AP_CUSTOM_UNSUPPORTED,
            "spec.action",
            "CUSTOM provider not supported: matching requests are denied (AUTHZ-4)",
        );
    } else if ap.provider.is_some() {
        on.add(
            &codes::AP_CUSTOM_INVALID,
            "spec.provider",
            "`provider` must not be set with a non-CUSTOM action",
        );
    }
    if ap.action == AuthorizationAction::Deny && ap.rules.is_empty() {
        on.add(
            &codes::AP_NO_RULES,
            "spec.action",
            "DENY action without `rules` is meaningless as it will never be triggered, add an \
             empty rule `{}` if you want it be triggered for every request",
        );
    }
    for (i, rule) in ap.rules.iter().enumerate() {
        let rpath = format!("spec.rules[{i}]");
        let mut from_exists = false;
        let mut tcp_in_from = false;
        for (j, from) in rule.from.iter().enumerate() {
            let fpath = format!("{rpath}.from[{j}]");
            let Some(src) = &from.source else {
                on.add(
                    &codes::AP_EMPTY,
                    &fpath,
                    format!("`from.source` must not be nil, found at rule {i}"),
                );
                continue;
            };
            from_exists = true;
            let spath = format!("{fpath}.source");
            if custom {
                for field in custom_unsupported_source(src) {
                    on.add(
                        &codes::AP_CUSTOM_INVALID,
                        format!("{spath}.{field}"),
                        format!("{field} is currently not supported with CUSTOM action"),
                    );
                }
            }
            tcp_in_from |= check_source(on, src, &spath, i);
        }
        let mut to_exists = false;
        let mut tcp_in_to = false;
        for (j, to) in rule.to.iter().enumerate() {
            let tpath = format!("{rpath}.to[{j}]");
            let Some(op) = &to.operation else {
                on.add(
                    &codes::AP_EMPTY,
                    &tpath,
                    format!("`to.operation` must not be nil, found at rule {i}"),
                );
                continue;
            };
            to_exists = true;
            tcp_in_to |= !op.ports.is_empty() || !op.not_ports.is_empty();
            check_operation(on, op, &format!("{tpath}.operation"), i);
        }
        for (j, condition) in rule.when.iter().enumerate() {
            check_condition(on, condition, &format!("{rpath}.when[{j}]"), custom);
        }
        let http_only = (from_exists && !to_exists && !tcp_in_from) || (to_exists && !tcp_in_to);
        if http_only && ap.action == AuthorizationAction::Deny {
            on.add(
                &codes::AP_DENY_TCP,
                rpath,
                "this DENY rule uses only HTTP attributes: it denies all TCP traffic to the \
                 workload (AUTHZ-21); name the ports it is for",
            );
        }
    }
}

/// Checks one source; returns whether it has TCP attributes (identities, IPs, namespaces).
fn check_source(on: &mut On<'_, '_>, src: &Source, path: &str, rule: usize) -> bool {
    if (!src.principals.is_empty()
        || !src.not_principals.is_empty()
        || !src.namespaces.is_empty()
        || !src.not_namespaces.is_empty())
        && (!src.service_accounts.is_empty() || !src.not_service_accounts.is_empty())
    {
        on.add(
            &codes::AP_INVALID_ACCOUNT,
            format!("{path}.serviceAccounts"),
            format!(
                "cannot set serviceAccounts with namespaces or principals, found at rule {rule}"
            ),
        );
    }
    if *src == Source::default() {
        on.add(
            &codes::AP_EMPTY,
            path,
            format!("`from.source` must not be empty, found at rule {rule}"),
        );
    }
    for (field, values) in [
        ("ipBlocks", &src.ip_blocks),
        ("notIpBlocks", &src.not_ip_blocks),
        ("remoteIpBlocks", &src.remote_ip_blocks),
        ("notRemoteIpBlocks", &src.not_remote_ip_blocks),
    ] {
        check_ips(
            on,
            &codes::AP_INVALID_IP,
            values,
            &format!("{path}.{field}"),
        );
        check_empty_values(on, values, &format!("{path}.{field}"), field);
    }
    for (field, values) in [
        ("principals", &src.principals),
        ("notPrincipals", &src.not_principals),
        ("requestPrincipals", &src.request_principals),
        ("notRequestPrincipals", &src.not_request_principals),
        ("namespaces", &src.namespaces),
        ("notNamespaces", &src.not_namespaces),
    ] {
        let fpath = format!("{path}.{field}");
        check_empty_values(on, values, &fpath, field);
        check_wildcards(on, values, &fpath);
    }
    for (field, values) in [
        ("principals", &src.principals),
        ("notPrincipals", &src.not_principals),
    ] {
        for (k, v) in values.iter().enumerate() {
            let why = if v.starts_with("spiffe://") {
                "write it without `spiffe://`"
            } else if !v.is_empty() && !v.contains(['/', '*']) {
                // A peer's principal is a trust domain and a non-empty path (SPIFFE-7).
                "principals are `<trust-domain>/ns/<namespace>/sa/<account>` (serviceAccounts \
                 takes bare account names)"
            } else {
                continue;
            };
            on.add(
                &codes::AP_PRINCIPAL_NEVER_MATCHES,
                format!("{path}.{field}[{k}]"),
                format!("principal {v:?} never matches: {why} (AUTHZ-11)"),
            );
        }
    }
    check_service_accounts(
        on,
        &src.service_accounts,
        &format!("{path}.serviceAccounts"),
    );
    check_service_accounts(
        on,
        &src.not_service_accounts,
        &format!("{path}.notServiceAccounts"),
    );
    check_trust_domains(on, &src.trust_domains, &format!("{path}.trustDomains"));
    check_trust_domains(
        on,
        &src.not_trust_domains,
        &format!("{path}.notTrustDomains"),
    );
    [
        &src.principals,
        &src.not_principals,
        &src.ip_blocks,
        &src.not_ip_blocks,
        &src.namespaces,
        &src.not_namespaces,
        &src.remote_ip_blocks,
        &src.not_remote_ip_blocks,
        &src.service_accounts,
        &src.not_service_accounts,
    ]
    .iter()
    .any(|v| !v.is_empty())
}

/// A `{*}`/`{**}` path template (AUTHZ-10): `{**}` last, no other braces, RFC 3986 segments.
fn check_path_template(path_value: &str) -> Result<(), String> {
    let template = path_value.contains("{*}") || path_value.contains("{**}");
    let mut any_seen = false;
    for glob in path_value.trim_matches('/').split('/') {
        match glob {
            "{*}" | "{**}" if any_seen => {
                return Err(format!(
                    "invalid or unsupported path {path_value}: {{**}} is not the last operator"
                ));
            }
            "{*}" => continue,
            "{**}" => {
                any_seen = true;
                continue;
            }
            _ => {}
        }
        if glob.contains(['{', '}']) {
            return Err(format!(
                "invalid or unsupported path {path_value}: contains '{{' or '}}' beyond a \
                 supported path template"
            ));
        }
        let literal = !glob.is_empty()
            && glob
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@=".contains(&b));
        if template && !literal {
            return Err(format!(
                "invalid or unsupported path {path_value}: segment {glob:?} is not a valid literal"
            ));
        }
    }
    Ok(())
}

fn check_operation(on: &mut On<'_, '_>, op: &Operation, path: &str, rule: usize) {
    if *op == Operation::default() {
        on.add(
            &codes::AP_EMPTY,
            path,
            format!("`to.operation` must not be empty, found at rule {rule}"),
        );
    }
    check_ports(
        on,
        &codes::AP_INVALID_PORT,
        &op.ports,
        &format!("{path}.ports"),
    );
    check_ports(
        on,
        &codes::AP_INVALID_PORT,
        &op.not_ports,
        &format!("{path}.notPorts"),
    );
    for (field, values) in [
        ("ports", &op.ports),
        ("notPorts", &op.not_ports),
        ("methods", &op.methods),
        ("notMethods", &op.not_methods),
        ("paths", &op.paths),
        ("notPaths", &op.not_paths),
        ("hosts", &op.hosts),
        ("notHosts", &op.not_hosts),
    ] {
        let fpath = format!("{path}.{field}");
        check_empty_values(on, values, &fpath, field);
        if !matches!(field, "ports" | "notPorts" | "paths" | "notPaths") {
            check_wildcards(on, values, &fpath);
        }
    }
    for (field, values) in [("paths", &op.paths), ("notPaths", &op.not_paths)] {
        for (k, p) in values.iter().enumerate() {
            let ppath = format!("{path}.{field}[{k}]");
            if p.contains(['{', '}']) {
                if let Err(e) = check_path_template(p) {
                    on.add(&codes::AP_INVALID_PATH, ppath, e);
                }
                continue;
            }
            check_wildcard(on, p, ppath.clone());
            if !p.is_empty() && !p.starts_with('/') && !p.starts_with('*') {
                on.add(
                    &codes::AP_NEVER_MATCHES,
                    ppath,
                    format!("path {p:?} never matches: request paths start with `/`"),
                );
            }
        }
    }
    for (field, values) in [("methods", &op.methods), ("notMethods", &op.not_methods)] {
        for (k, m) in values.iter().enumerate() {
            if m.chars().any(|c| c.is_ascii_lowercase()) {
                on.add(
                    &codes::AP_NEVER_MATCHES,
                    format!("{path}.{field}[{k}]"),
                    format!("method {m:?} never matches: methods are upper-case (AUTHZ-25)"),
                );
            }
        }
    }
}

/// Istio's `ValidateAttribute`: the keys a `when` condition may use, and their values.
fn check_condition(on: &mut On<'_, '_>, c: &Condition, path: &str, custom: bool) {
    let invalid = &codes::AP_INVALID_CONDITION;
    let key_path = format!("{path}.key");
    if c.key.is_empty() {
        on.add(invalid, key_path, "`key` must not be empty");
        return;
    }
    if c.values.is_empty() && c.not_values.is_empty() {
        on.add(
            invalid,
            path,
            format!(
                "at least one of `values` or `notValues` must be set for key {}",
                c.key
            ),
        );
        return;
    }
    let key = c.key.as_str();
    if custom
        && (matches!(
            key,
            "source.namespace"
                | "source.serviceAccount"
                | "source.trustDomain"
                | "source.principal"
        ) || key.starts_with("request.auth."))
    {
        on.add(
            &codes::AP_CUSTOM_INVALID,
            &key_path,
            format!("{key} is currently not supported with CUSTOM action"),
        );
    }
    let map_key = |prefix: &str| -> bool {
        key.strip_prefix(prefix)
            .is_some_and(|rest| rest.len() > 2 && rest.starts_with('[') && rest.ends_with(']'))
    };
    enum Values {
        Any,
        Ips,
        Ports,
        Accounts,
        TrustDomains,
    }
    let kind = if key.starts_with("request.headers") {
        if !map_key("request.headers") {
            on.add(
                invalid,
                &key_path,
                format!("bad key ({key}): should have format a[b]"),
            );
            return;
        }
        Values::Any
    } else if key.starts_with("request.auth.claims") {
        if !map_key("request.auth.claims") {
            on.add(
                invalid,
                &key_path,
                format!("bad key ({key}): should have format a[b]"),
            );
            return;
        }
        Values::Any
    } else if key.starts_with("experimental.envoy.filters.") {
        Values::Any
    } else {
        match key {
            "source.ip" | "remote.ip" | "destination.ip" => Values::Ips,
            "destination.port" => Values::Ports,
            "source.serviceAccount" => Values::Accounts,
            "source.trustDomain" => Values::TrustDomains,
            "source.namespace"
            | "source.principal"
            | "request.auth.principal"
            | "request.auth.audiences"
            | "request.auth.presenter"
            | "connection.sni" => Values::Any,
            "destination.namespace" => {
                on.add(
                    invalid,
                    &key_path,
                    format!("attribute {key} is replaced by the metadata.namespace"),
                );
                return;
            }
            "destination.name" | "destination.user" => {
                on.add(
                    invalid,
                    &key_path,
                    format!("deprecated attribute {key}: only supported in v1alpha1"),
                );
                return;
            }
            _ if key.starts_with("destination.labels") => {
                on.add(
                    invalid,
                    &key_path,
                    format!("attribute {key} is replaced by the workload selector"),
                );
                return;
            }
            _ => {
                on.add(invalid, &key_path, format!("unknown attribute: {key}"));
                return;
            }
        }
    };
    for (field, values) in [("values", &c.values), ("notValues", &c.not_values)] {
        let vpath = format!("{path}.{field}");
        check_empty_values(on, values, &vpath, field);
        match kind {
            Values::Ips => {
                for (i, v) in values.iter().enumerate() {
                    if !v.is_empty() && check_ip_subnet(v).is_err() {
                        on.add(
                            invalid,
                            format!("{vpath}[{i}]"),
                            format!("invalid value for key {key}: bad IP or CIDR ({v})"),
                        );
                    }
                }
            }
            Values::Ports => check_ports(on, invalid, values, &vpath),
            Values::Accounts => check_service_accounts(on, values, &vpath),
            Values::TrustDomains => check_trust_domains(on, values, &vpath),
            Values::Any => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_path_template;

    #[test]
    fn path_templates() {
        assert!(check_path_template("/foo/{*}").is_ok());
        assert!(check_path_template("/foo/{**}").is_ok());
        assert!(check_path_template("/foo/{*}/bar/{**}").is_ok());
        assert!(check_path_template("/a/{**}/b/{*}").is_err());
        assert!(check_path_template("/a/{x}").is_err());
        assert!(check_path_template("/a b/{*}").is_err());
    }
}
