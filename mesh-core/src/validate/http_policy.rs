//! Checks of the policies an HTTP route carries: CORS, fault injection, mirroring, redirect,
//! retries and rewrite (SEMANTICS §2.3 to §2.8, §3; Istio's `validateHTTPRoute` helpers).

use super::codes;
use super::http_route::{check_string_match, duration};
use super::names::{check_port, check_regex, is_header_name};
use super::report::On;
use crate::model::{
    CorsPolicy, Duration, FaultAbort, FaultDelay, HttpFaultInjection, HttpMatchRequest,
    HttpRedirect, HttpRetry, HttpRewrite, HttpRoute, Percent, StringMatch,
};

const CORS_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

pub(crate) fn check_cors(on: &mut On<'_, '_>, cors: &CorsPolicy, path: &str) {
    let invalid = &codes::VS_INVALID_CORS;
    for (i, origin) in cors.allow_origins.iter().enumerate() {
        let opath = format!("{path}.allowOrigins[{i}]");
        match origin.value() {
            None | Some("") => on.add(
                invalid,
                &opath,
                "an allowOrigins entry needs a non-empty exact, prefix or regex",
            ),
            Some(_) => check_string_match(on, origin, &opath, "corsPolicy.allowOrigins", true),
        }
    }
    for (i, method) in cors.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&method.as_str()) {
            on.add(
                invalid,
                format!("{path}.allowMethods[{i}]"),
                format!("{method:?} is not a supported HTTP method"),
            );
        }
    }
    for (field, names) in [
        ("allowHeaders", &cors.allow_headers),
        ("exposeHeaders", &cors.expose_headers),
    ] {
        for (i, name) in names.iter().enumerate() {
            if name != "*" && !is_header_name(name) {
                let message = if name.is_empty() {
                    "header name cannot be empty".to_owned()
                } else {
                    format!("header name {name} is not a valid header name")
                };
                on.add(invalid, format!("{path}.{field}[{i}]"), message);
            }
        }
    }
    if let Some(max_age) = cors.max_age {
        duration(
            on,
            &codes::VS_INVALID_DURATION,
            max_age,
            &format!("{path}.maxAge"),
            "maxAge",
        );
        if max_age.as_std().subsec_nanos() != 0 {
            on.add(
                invalid,
                format!("{path}.maxAge"),
                "max_age duration is accurate only to seconds precision",
            );
        }
    }
}

/// A fault percentage: 0, or from 0.0001 to 100.
fn check_percentage(on: &mut On<'_, '_>, p: Option<Percent>, path: &str) {
    if let Some(p) = p
        && (p.value < 0.0
            || p.value > 100.0
            || (p.value > 0.0 && p.value < 0.0001)
            || p.value.is_nan())
    {
        on.add(
            &codes::VS_INVALID_FAULT,
            path,
            format!(
                "percentage {} is neither 0.0, nor in range [0.0001, 100.0]",
                p.value
            ),
        );
    }
}

pub(crate) fn check_fault(on: &mut On<'_, '_>, fault: &HttpFaultInjection, path: &str) {
    if fault.abort.is_none() && fault.delay.is_none() {
        on.add(
            &codes::VS_INVALID_FAULT,
            path,
            "HTTP fault injection must have an abort and/or a delay",
        );
    }
    if let Some(abort) = &fault.abort {
        check_abort(on, abort, &format!("{path}.abort"));
    }
    if let Some(delay) = &fault.delay {
        check_delay(on, delay, &format!("{path}.delay"));
    }
}

const GRPC_STATUS: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn check_abort(on: &mut On<'_, '_>, abort: &FaultAbort, path: &str) {
    let invalid = &codes::VS_INVALID_FAULT;
    check_percentage(on, abort.percentage, &format!("{path}.percentage"));
    let kinds = [
        abort.http_status.is_some(),
        abort.grpc_status.is_some(),
        abort.http2_error.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        on.add(
            invalid,
            path,
            "only one of httpStatus, grpcStatus or http2Error may be set",
        );
    }
    if let Some(status) = abort.http_status {
        if !(200..=599).contains(&status) {
            on.add(
                invalid,
                format!("{path}.httpStatus"),
                format!("HTTP status {status} is not in range 200-599"),
            );
        }
    } else if let Some(status) = &abort.grpc_status {
        if !GRPC_STATUS.contains(&status.as_str()) {
            on.add(
                invalid,
                format!("{path}.grpcStatus"),
                format!(
                    "gRPC status {status:?} is not supported: use a status name such as \
                     UNAVAILABLE or NOT_FOUND"
                ),
            );
        }
    } else if abort.http2_error.is_some() {
        on.add(
            invalid,
            format!("{path}.http2Error"),
            "HTTP/2 abort fault injection not supported yet",
        );
    } else {
        on.add(
            &codes::VS_FAULT_NOOP,
            path,
            "fault abort sets no httpStatus or grpcStatus: nothing is aborted",
        );
    }
    if abort.percentage.is_none() {
        on.add(
            &codes::VS_FAULT_NOOP,
            path,
            "fault abort has no `percentage`: no request is aborted (VS-28)",
        );
    }
}

fn check_delay(on: &mut On<'_, '_>, delay: &FaultDelay, path: &str) {
    let invalid = &codes::VS_INVALID_FAULT;
    check_percentage(on, delay.percentage, &format!("{path}.percentage"));
    if !(0..=100).contains(&delay.percent) {
        on.add(
            invalid,
            format!("{path}.percent"),
            format!("percentage {} is not in range 0..100", delay.percent),
        );
    }
    if delay.percent != 0 {
        on.add(
            &codes::X_DEPRECATED,
            format!("{path}.percent"),
            "fault.delay.percent is deprecated: use percentage",
        );
    }
    if delay.fixed_delay.is_some() && delay.exponential_delay.is_some() {
        on.add(
            invalid,
            path,
            "only one of fixedDelay or exponentialDelay may be set",
        );
    }
    if let Some(d) = delay.fixed_delay {
        duration(
            on,
            &codes::VS_INVALID_DURATION,
            d,
            &format!("{path}.fixedDelay"),
            "fixedDelay",
        );
    }
    if let Some(d) = delay.exponential_delay {
        duration(
            on,
            &codes::VS_INVALID_DURATION,
            d,
            &format!("{path}.exponentialDelay"),
            "exponentialDelay",
        );
        on.add(
            invalid,
            format!("{path}.exponentialDelay"),
            "exponentialDelay not supported yet",
        );
    }
    if delay.percentage.is_none() && delay.percent == 0 {
        on.add(
            &codes::VS_FAULT_NOOP,
            path,
            "fault delay has no `percentage`: no request is delayed (VS-27)",
        );
    }
}

pub(crate) fn check_mirror_percentages(on: &mut On<'_, '_>, route: &HttpRoute, path: &str) {
    let invalid = &codes::VS_INVALID_MIRROR;
    if let Some(percent) = route.mirror_percent {
        if percent > 100 {
            on.add(
                invalid,
                format!("{path}.mirrorPercent"),
                format!("mirror_percent must have a max value of 100 (it has {percent})"),
            );
        }
        on.add(
            &codes::X_DEPRECATED,
            format!("{path}.mirrorPercent"),
            "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
        );
    }
    let mut bounds = |p: Option<Percent>, at: String| {
        if let Some(p) = p
            && !(0.0..=100.0).contains(&p.value)
        {
            on.add(
                invalid,
                at,
                format!("mirror percentage {} is not in range 0..100", p.value),
            );
        }
    };
    bounds(route.mirror_percentage, format!("{path}.mirrorPercentage"));
    for (i, m) in route.mirrors.iter().enumerate() {
        bounds(m.percentage, format!("{path}.mirrors[{i}].percentage"));
    }
}

pub(crate) fn check_redirect(
    on: &mut On<'_, '_>,
    redirect: &HttpRedirect,
    matches: &[HttpMatchRequest],
    path: &str,
) {
    let invalid = &codes::VS_INVALID_REDIRECT;
    if !redirect.uri.is_empty() && !redirect.prefix_rewrite.is_empty() {
        on.add(
            invalid,
            format!("{path}.prefixRewrite"),
            "redirect may only specify one of uri or prefixRewrite",
        );
    }
    if !redirect.prefix_rewrite.is_empty()
        && matches
            .iter()
            .any(|m| matches!(&m.uri, Some(u) if !matches!(u, StringMatch::Prefix(_))))
    {
        on.add(
            invalid,
            format!("{path}.prefixRewrite"),
            "redirect prefixRewrite requires all URI matches to use prefix match type",
        );
    }
    if redirect.uri.is_empty()
        && redirect.prefix_rewrite.is_empty()
        && redirect.authority.is_empty()
        && redirect.port.is_none()
        && redirect.derive_port.is_none()
        && redirect.scheme.is_empty()
    {
        on.add(
            invalid,
            path,
            "redirect must specify uri, prefixRewrite, authority, scheme, or port",
        );
    }
    if redirect.redirect_code != 0 && ![301, 302, 303, 307, 308].contains(&redirect.redirect_code) {
        on.add(
            invalid,
            format!("{path}.redirectCode"),
            format!(
                "redirectCode {} is not one of 301, 302, 303, 307, 308",
                redirect.redirect_code
            ),
        );
    }
    if !redirect.scheme.is_empty() && redirect.scheme != "http" && redirect.scheme != "https" {
        on.add(
            invalid,
            format!("{path}.scheme"),
            "invalid redirect scheme, must be \"http\" or \"https\"",
        );
    }
    if redirect.port.is_some() && redirect.derive_port.is_some() {
        on.add(
            invalid,
            format!("{path}.derivePort"),
            "only one of port or derivePort may be set",
        );
    }
    if let Some(port) = redirect.port
        && let Err(e) = check_port(u64::from(port))
    {
        on.add(invalid, format!("{path}.port"), e);
    }
}

/// Retry conditions Envoy knows (RETRY-5), besides HTTP status codes.
const RETRY_ON: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Whether `code` is an HTTP status with a registered reason phrase (Go's `http.StatusText`).
fn is_known_status(code: u16) -> bool {
    matches!(
        code,
        100..=103
            | 200..=208
            | 226
            | 300..=305
            | 307
            | 308
            | 400..=418
            | 421..=426
            | 428
            | 429
            | 431
            | 451
            | 500..=508
            | 510
            | 511
    )
}

pub(crate) fn check_retries(
    on: &mut On<'_, '_>,
    retries: &HttpRetry,
    timeout: Option<Duration>,
    path: &str,
) {
    let invalid = &codes::VS_INVALID_RETRIES;
    if retries.attempts < 0 {
        on.add(
            invalid,
            format!("{path}.attempts"),
            "attempts cannot be negative",
        );
    }
    if retries.attempts == 0
        && (retries.per_try_timeout.is_some()
            || !retries.retry_on.is_empty()
            || retries.retry_remote_localities.is_some())
    {
        on.add(
            invalid,
            format!("{path}.attempts"),
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
    }
    if let Some(per_try) = retries.per_try_timeout {
        let ppath = format!("{path}.perTryTimeout");
        duration(
            on,
            &codes::VS_INVALID_DURATION,
            per_try,
            &ppath,
            "perTryTimeout",
        );
        if let Some(timeout) = timeout
            && !timeout.is_zero()
            && per_try >= timeout
            && retries.attempts > 0
        {
            on.add(
                &codes::VS_PER_TRY_TIMEOUT,
                ppath,
                format!(
                    "perTryTimeout {per_try} is not shorter than the route timeout {timeout}: a \
                     retry never has time to run"
                ),
            );
        }
    }
    for item in retries
        .retry_on
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let status = item.parse::<u16>().ok().filter(|s| is_known_status(*s));
        if status.is_none() && !RETRY_ON.contains(&item) {
            on.add(
                &codes::VS_UNKNOWN_RETRY_ON,
                format!("{path}.retryOn"),
                format!("retryOn condition {item:?} is unknown and ignored (Istio rejects it)"),
            );
        }
    }
    if let Some(backoff) = retries.backoff {
        duration(
            on,
            &codes::VS_INVALID_DURATION,
            backoff,
            &format!("{path}.backoff"),
            "backoff",
        );
    }
}

pub(crate) fn check_rewrite(on: &mut On<'_, '_>, rewrite: &HttpRewrite, path: &str) {
    let invalid = &codes::VS_INVALID_REWRITE;
    if !rewrite.uri.is_empty() && rewrite.uri_regex_rewrite.is_some() {
        on.add(
            invalid,
            format!("{path}.uriRegexRewrite"),
            "rewrite may only contain one of uri or uriRegexRewrite",
        );
    }
    if rewrite.uri.is_empty() && rewrite.uri_regex_rewrite.is_none() && rewrite.authority.is_empty()
    {
        on.add(
            invalid,
            path,
            "rewrite must specify at least one of uri, uriRegexRewrite or authority",
        );
    }
    if let Some(re) = &rewrite.uri_regex_rewrite {
        let rpath = format!("{path}.uriRegexRewrite");
        if re.r#match.is_empty() || re.rewrite.is_empty() {
            on.add(
                invalid,
                &rpath,
                "uriRegexRewrite requires both rewrite and match fields to be specified",
            );
        } else if let Err(e) = check_regex(&re.r#match) {
            on.add(&codes::VS_INVALID_REGEX, format!("{rpath}.match"), e);
        }
    }
}
