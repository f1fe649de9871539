//! Checks of one VirtualService HTTP route's own fields: its action, matches, header edits,
//! direct response and timeout (SEMANTICS §2; Istio's `validateHTTPRoute`); the policies it
//! carries (CORS, faults, mirrors, redirect, retries, rewrite) are checked in `http_policy.rs`.

use super::codes::{self, CodeInfo};
use super::http_policy;
use super::names::{
    check_duration, check_header_value, check_labels, check_port, check_regex, is_dns1123_label,
    is_header_name,
};
use super::report::On;
use super::source_map::key;
use crate::model::{Duration, HeaderOperations, Headers, HttpMatchRequest, HttpRoute, StringMatch};

pub(crate) fn check(
    on: &mut On<'_, '_>,
    route: &HttpRoute,
    path: &str,
    delegate_vs: bool,
    is_gateway: bool,
) {
    check_action(on, route, path, delegate_vs);
    for (j, m) in route.r#match.iter().enumerate() {
        check_match(on, m, &format!("{path}.match[{j}]"), is_gateway);
    }
    if let Some(headers) = &route.headers {
        check_headers(on, headers, &format!("{path}.headers"));
    }
    for (k, dest) in route.route.iter().enumerate() {
        if let Some(headers) = &dest.headers {
            check_headers(on, headers, &format!("{path}.route[{k}].headers"));
        }
    }
    check_authority_rewrite(on, route, path);
    if let Some(cors) = &route.cors_policy {
        http_policy::check_cors(on, cors, &format!("{path}.corsPolicy"));
    }
    if let Some(fault) = &route.fault {
        http_policy::check_fault(on, fault, &format!("{path}.fault"));
    }
    http_policy::check_mirror_percentages(on, route, path);
    if let Some(redirect) = &route.redirect {
        http_policy::check_redirect(on, redirect, &route.r#match, &format!("{path}.redirect"));
    }
    if let Some(direct) = &route.direct_response {
        let dpath = format!("{path}.directResponse");
        if !(200..=599).contains(&direct.status) {
            on.add(
                &codes::VS_INVALID_DIRECT_RESPONSE,
                format!("{dpath}.status"),
                format!("HTTP status {} is not in range 200-599", direct.status),
            );
        }
        if let Some(body) = &direct.body
            && body.as_bytes().len() > 1024 * 1024
        {
            on.add(
                &codes::VS_INVALID_DIRECT_RESPONSE,
                format!("{dpath}.body"),
                "large direct_responses may impact control plane performance, must be less than \
                 1MB",
            );
        }
    }
    if let Some(retries) = &route.retries {
        http_policy::check_retries(on, retries, route.timeout, &format!("{path}.retries"));
    }
    if let Some(rewrite) = &route.rewrite {
        http_policy::check_rewrite(on, rewrite, &format!("{path}.rewrite"));
    }
    if let Some(timeout) = route.timeout {
        if timeout.is_zero() {
            on.add(
                &codes::VS_ZERO_TIMEOUT,
                format!("{path}.timeout"),
                "timeout 0s means no timeout here (VS-34), but Istio rejects it: leave `timeout` \
                 out",
            );
        } else {
            duration(
                on,
                &codes::VS_INVALID_DURATION,
                timeout,
                &format!("{path}.timeout"),
                "timeout",
            );
        }
    }
    if route.delegate.is_some() {
        on.add(
            &codes::VS_DELEGATE,
            format!("{path}.delegate"),
            "delegate is not supported by mesh-proxy (VS-24): requests this route matches are \
             not routed",
        );
    }
}

pub(crate) fn duration(
    on: &mut On<'_, '_>,
    code: &'static CodeInfo,
    d: Duration,
    path: &str,
    what: &str,
) {
    if let Err(e) = check_duration(d) {
        on.add(code, path, format!("{what} {e}"));
    }
}

/// Exactly one action per route (VS-18), as Istio's `validateHTTPRouteConflict` checks.
fn check_action(on: &mut On<'_, '_>, route: &HttpRoute, path: &str, delegate_vs: bool) {
    let conflict = &codes::VS_CONFLICTING_ACTIONS;
    if route.delegate.is_some() {
        if route.redirect.is_some() {
            on.add(
                conflict,
                format!("{path}.redirect"),
                "a route with delegate must not specify redirect",
            );
        }
        if !route.route.is_empty() {
            on.add(
                conflict,
                format!("{path}.route"),
                "a route with delegate must not specify route",
            );
        }
        if delegate_vs {
            on.add(
                conflict,
                format!("{path}.delegate"),
                "delegate HTTP route cannot contain delegate",
            );
        }
        return;
    }
    if route.redirect.is_some() {
        for (set, field, name) in [
            (!route.route.is_empty(), "route", "route"),
            (route.fault.is_some(), "fault", "fault"),
            (route.rewrite.is_some(), "rewrite", "rewrite"),
            (
                route.direct_response.is_some(),
                "directResponse",
                "directResponse",
            ),
        ] {
            if set {
                on.add(
                    conflict,
                    format!("{path}.{field}"),
                    format!("HTTP route cannot contain both {name} and redirect"),
                );
            }
        }
    } else if route.direct_response.is_some() {
        for (set, field) in [
            (!route.route.is_empty(), "route"),
            (route.fault.is_some(), "fault"),
            (route.rewrite.is_some(), "rewrite"),
        ] {
            if set {
                on.add(
                    conflict,
                    format!("{path}.{field}"),
                    format!("HTTP route cannot contain both {field} and directResponse"),
                );
            }
        }
    } else if route.route.is_empty() {
        on.add(
            &codes::VS_NO_ACTION,
            path,
            "HTTP route needs one of route, redirect, directResponse or delegate",
        );
    }
    if route.mirror.is_some() && !route.mirrors.is_empty() {
        on.add(
            &codes::VS_INVALID_MIRROR,
            format!("{path}.mirrors"),
            "HTTP route cannot contain both mirror and mirrors",
        );
    }
}

/// `exact`/`prefix`/`regex` conditions: a prefix must not be empty (except on `uri`), a regex
/// must compile.
pub(crate) fn check_string_match(
    on: &mut On<'_, '_>,
    m: &StringMatch,
    path: &str,
    where_: &str,
    empty_prefix_ok: bool,
) {
    match m {
        StringMatch::Prefix(p) if p.is_empty() && !empty_prefix_ok => on.add(
            &codes::VS_INVALID_MATCH,
            format!("{path}.prefix"),
            format!("{where_:?}: prefix string match should not be empty"),
        ),
        StringMatch::Regex(r) => {
            if let Err(e) = check_regex(r) {
                on.add(
                    &codes::VS_INVALID_REGEX,
                    format!("{path}.regex"),
                    format!("{where_:?}: {e}"),
                );
            }
        }
        _ => {}
    }
}

fn check_header_match_name(on: &mut On<'_, '_>, name: &str, path: &str, is_gateway: bool) {
    if name.is_empty() {
        on.add(
            &codes::VS_INVALID_HEADER,
            path,
            "header name cannot be empty",
        );
    } else if name.starts_with("@request.auth.claims") {
        if !is_gateway {
            on.add(
                &codes::VS_INVALID_HEADER,
                path,
                format!("JWT claim based routing (key: {name}) is only supported for gateways"),
            );
        }
    } else if ![":method", ":scheme", ":authority", ":path", ":status"].contains(&name)
        && !is_header_name(name)
    {
        on.add(
            &codes::VS_INVALID_HEADER,
            path,
            format!("header name {name} is not a valid header name"),
        );
    }
}

fn check_match(on: &mut On<'_, '_>, m: &HttpMatchRequest, path: &str, is_gateway: bool) {
    if (HttpMatchRequest {
        name: String::new(),
        ..m.clone()
    }) == HttpMatchRequest::default()
    {
        on.add(
            &codes::VS_EMPTY_MATCH,
            path,
            "empty match block: a match block needs at least one condition (remove `match` to \
             match every request)",
        );
    }
    for (name, sm) in &m.headers {
        let hpath = format!("{path}.headers{}", key(name));
        check_header_match_name(on, name, &hpath, is_gateway);
        check_string_match(on, sm, &hpath, "headers", false);
    }
    for (name, sm) in &m.without_headers {
        let hpath = format!("{path}.withoutHeaders{}", key(name));
        check_header_match_name(on, name, &hpath, is_gateway);
        // `regex: "*"` is Istio's presence form, not a regex.
        if !matches!(sm, StringMatch::Regex(r) if r == "*") {
            check_string_match(on, sm, &hpath, "withoutHeaders", false);
        }
    }
    if let Some(uri) = &m.uri {
        check_string_match(on, uri, &format!("{path}.uri"), "uri", true);
    }
    for (field, sm) in [
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            check_string_match(on, sm, &format!("{path}.{field}"), field, false);
        }
    }
    for (name, sm) in &m.query_params {
        check_string_match(
            on,
            sm,
            &format!("{path}.queryParams{}", key(name)),
            "queryParams",
            false,
        );
    }
    if m.port != 0
        && let Err(e) = check_port(u64::from(m.port))
    {
        on.add(&codes::VS_INVALID_MATCH, format!("{path}.port"), e);
    }
    for (k, e) in check_labels(&m.source_labels) {
        on.add(
            &codes::VS_INVALID_MATCH,
            format!("{path}.sourceLabels{}", key(&k)),
            e,
        );
    }
    if !m.source_namespace.is_empty() && !is_dns1123_label(&m.source_namespace) {
        on.add(
            &codes::VS_INVALID_MATCH,
            format!("{path}.sourceNamespace"),
            format!("sourceNamespace match {} is invalid", m.source_namespace),
        );
    }
}

fn check_header_ops(on: &mut On<'_, '_>, ops: &HeaderOperations, path: &str, request: bool) {
    let invalid = &codes::VS_INVALID_HEADER;
    let name_error = |name: &str, set_or_add: bool| -> Option<String> {
        let internal = name.starts_with(':') || name.eq_ignore_ascii_case("host");
        let authority =
            name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host");
        if name.is_empty() {
            Some("header name cannot be empty".to_owned())
        } else if request && set_or_add {
            // Request set/add may rewrite the authority (VS-25); other pseudo-headers are out.
            (internal && !authority)
                .then(|| format!("invalid header {name:?}: header cannot have \":\" prefix"))
        } else if name.eq_ignore_ascii_case("host") {
            Some(format!("invalid header {name:?}: cannot set Host header"))
        } else {
            internal.then(|| format!("invalid header {name:?}: header cannot have \":\" prefix"))
        }
    };
    for (field, map) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in map {
            let hpath = format!("{path}.{field}{}", key(name));
            if let Some(e) = name_error(name, true) {
                on.add(invalid, &hpath, e);
            }
            if let Err(e) = check_header_value(value) {
                on.add(invalid, &hpath, e);
            }
        }
    }
    for (i, name) in ops.remove.iter().enumerate() {
        if let Some(e) = name_error(name, false) {
            on.add(invalid, format!("{path}.remove[{i}]"), e);
        }
    }
}

fn check_headers(on: &mut On<'_, '_>, headers: &Headers, path: &str) {
    if let Some(ops) = &headers.request {
        check_header_ops(on, ops, &format!("{path}.request"), true);
    }
    if let Some(ops) = &headers.response {
        check_header_ops(on, ops, &format!("{path}.response"), false);
    }
}

/// The authority may be rewritten in one place only: `rewrite.authority` or one `host` /
/// `:authority` request header edit.
fn check_authority_rewrite(on: &mut On<'_, '_>, route: &HttpRoute, path: &str) {
    let mut current = route
        .rewrite
        .as_ref()
        .map(|r| r.authority.clone())
        .unwrap_or_default();
    let Some(ops) = route.headers.as_ref().and_then(|h| h.request.as_ref()) else {
        return;
    };
    for (field, map) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in map {
            let authority =
                name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host");
            if !authority {
                continue;
            }
            if !current.is_empty() {
                on.add(
                    &codes::VS_INVALID_REWRITE,
                    format!("{path}.headers.request.{field}{}", key(name)),
                    format!(
                        "authority header cannot be set multiple times: have {current:?}, \
                         attempting to set {value:?}"
                    ),
                );
                return;
            }
            current.clone_from(value);
        }
    }
}
