//! Syntax checks shared by several kinds: DNS names with wildcards, IPs and CIDRs, label keys
//! and values, header names, durations. Each mirrors the Istio validation function of the same
//! purpose (istio/istio `pkg/config/validation`, `pkg/config/labels`), and the messages follow
//! Istio's where they exist.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::model::Duration;

/// Whether `value` is a DNS-1123 label: 1 to 63 letters, digits and `-`, starting and ending
/// with a letter or digit (Istio accepts upper case).
pub(crate) fn is_dns1123_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// Whether `value` is a DNS-1123 label, `*`, or a label with a leading `*` or `*-`.
fn is_wildcard_label(value: &str) -> bool {
    if value.len() > 63 {
        return false;
    }
    if value == "*" {
        return true;
    }
    let rest = value
        .strip_prefix("*-")
        .or_else(|| value.strip_prefix('*'))
        .unwrap_or(value);
    is_dns1123_label(rest)
}

fn preconditions(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!("domain name {name:?} too long (max 255)"));
    }
    if name.is_empty() {
        return Err("empty domain name not allowed".to_owned());
    }
    Ok(())
}

fn all_numeric(label: &str) -> bool {
    let digits = label.strip_prefix(['+', '-']).unwrap_or(label);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let top = parts[parts.len() - 1];
    if all_numeric(top) {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {top:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        // A trailing dot (`istio.io.`) is allowed.
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// A DNS name whose first label may be a wildcard (`*`, `*.example.com`, `reviews`).
pub(crate) fn check_wildcard_domain(domain: &str) -> Result<(), String> {
    preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (domain, None),
    };
    if !is_wildcard_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        // Name the whole host in the message, not only the part after the first label.
        Some(rest) => dns1123_labels(rest)
            .map_err(|e| e.replacen(&format!("{rest:?}"), &format!("{domain:?}"), 1)),
        None => Ok(()),
    }
}

/// A DNS name without wildcards.
pub(crate) fn check_fqdn(fqdn: &str) -> Result<(), String> {
    preconditions(fqdn)?;
    dns1123_labels(fqdn)
}

/// Whether `value` is an IPv4 or IPv6 address.
pub(crate) fn is_ip(value: &str) -> bool {
    value.parse::<IpAddr>().is_ok()
}

/// Whether `value` is `address/bits` with a valid address and prefix length.
pub(crate) fn is_cidr(value: &str) -> bool {
    let Some((addr, bits)) = value.split_once('/') else {
        return false;
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    !bits.is_empty()
        && bits.bytes().all(|b| b.is_ascii_digit())
        && bits.parse::<u32>().is_ok_and(|b| b <= max)
}

/// An IP, or a CIDR block when the value has a `/`.
pub(crate) fn check_ip_subnet(value: &str) -> Result<(), String> {
    if value.matches('/').count() == 1 {
        if is_cidr(value) {
            Ok(())
        } else {
            Err(format!("{value} is not a valid CIDR block"))
        }
    } else if is_ip(value) {
        Ok(())
    } else {
        Err(format!("{value} is not a valid IP"))
    }
}

/// A port number: 1 to 65535.
pub(crate) fn check_port(port: u64) -> Result<(), String> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(format!("port number {port} must be in the range 1..65535"))
    }
}

/// Istio's protocol names (`protocol.Parse`, case-insensitive), lower-cased; `None` when
/// unknown.
pub(crate) fn protocol(name: &str) -> Option<&'static str> {
    let known = [
        "tcp",
        "udp",
        "grpc",
        "grpc-web",
        "http",
        "http_proxy",
        "http2",
        "https",
        "tls",
        "mongo",
        "redis",
        "mysql",
    ];
    let lower = name.to_ascii_lowercase();
    known.into_iter().find(|k| *k == lower)
}

/// Kubernetes' "qualified name": alphanumerics, `-`, `_`, `.`, starting and ending with an
/// alphanumeric.
fn is_qualified_name(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A Kubernetes label key: an optional DNS-name prefix and `/`, then a qualified name.
fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| p.len() <= 253 && p.split('.').all(is_dns1123_label));
    if !prefix_ok || !is_qualified_name(name) {
        return Err(format!("invalid tag key: {key:?}"));
    }
    if name.len() > 63 {
        return Err(format!("invalid tag key: {key:?} (name is too long)"));
    }
    Ok(())
}

/// Label keys and values, as Kubernetes allows them (empty values are allowed). One message
/// per bad key or value, with the key it concerns.
pub(crate) fn check_labels(labels: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in labels {
        if let Err(e) = check_label_key(k) {
            out.push((k.clone(), e));
        }
        if !v.is_empty() && !is_qualified_name(v) {
            out.push((k.clone(), format!("invalid tag value: {v:?}")));
        }
    }
    out
}

/// Problems of a workload selector's labels: empty keys and wildcards are not supported.
pub(crate) fn check_selector(labels: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in labels {
        if k.is_empty() {
            out.push((
                k.clone(),
                format!("empty key is not supported in selector: \"{k}={v}\""),
            ));
        }
        if k.contains('*') || v.contains('*') {
            out.push((
                k.clone(),
                format!("wildcard is not supported in selector: \"{k}={v}\""),
            ));
        }
    }
    out
}

/// An RFC 7230 token, as HTTP header names are.
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value Envoy accepts: no control characters other than tab.
pub(crate) fn check_header_value(value: &str) -> Result<(), String> {
    if value
        .chars()
        .any(|c| (c.is_control() && c != '\t') || c == '\u{7f}')
    {
        Err(format!("header value configuration {value:?} is invalid"))
    } else {
        Ok(())
    }
}

/// Istio's duration rule: at least 1ms, in whole milliseconds.
pub(crate) fn check_duration(d: Duration) -> Result<(), String> {
    let d = d.as_std();
    if d < std::time::Duration::from_millis(1) {
        Err(format!(
            "{}: duration must be at least 1ms",
            Duration::from_std(d)
        ))
    } else if !d.subsec_nanos().is_multiple_of(1_000_000) {
        Err(format!(
            "{}: only durations to ms precision are supported",
            Duration::from_std(d)
        ))
    } else {
        Ok(())
    }
}

/// Istio's `host.Name.Matches`: whether two host patterns (wildcards allowed) overlap.
pub(crate) fn hosts_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => {
            if a.len() < b.len() {
                sb.ends_with(sa)
            } else {
                sa.ends_with(sb)
            }
        }
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Compiles an RE2-style pattern as Envoy would (the `regex` crate follows RE2 syntax), with
/// Istio's length limit. Returns the reason it is rejected.
#[allow(
    clippy::disallowed_methods,
    reason = "config-time compilation: analyze checks each pattern once per run, never per request"
)]
pub(crate) fn check_regex(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("regex string match should not be empty".to_owned());
    }
    if pattern.len() > 1024 {
        return Err("regex is too large, max length allowed is 1024".to_owned());
    }
    // Config-time compilation: the compiled form is dropped; routing compiles its own once per
    // snapshot.
    match regex::Regex::new(pattern) {
        Ok(_) => Ok(()),
        Err(e) => {
            let reason = e.to_string();
            // The crate's message spans several lines (pattern, caret, error); keep the error.
            let last = reason
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid");
            let last = last.trim().trim_start_matches("error: ");
            Err(format!("invalid regex {pattern:?}: {last} (RE2 syntax)"))
        }
    }
}

/// Formats a label map as `k=v,k=v`.
pub(crate) fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_domains() {
        for ok in [
            "reviews",
            "Reviews.Prod",
            "*.example.com",
            "*",
            "*foo.example.com",
            "a.b.c.",
            "x-1",
        ] {
            assert_eq!(check_wildcard_domain(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a.*.com",
            "foo*.example.com",
            "a_b",
            "10.0.0.1",
            "-a.com",
            "a..b",
            "*.*",
        ] {
            assert!(check_wildcard_domain(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_wildcard_domain("a.b_c.com").unwrap_err(),
            "domain name \"a.b_c.com\" invalid (label \"b_c\" invalid)"
        );
        assert!(check_fqdn("*.example.com").is_err());
        assert_eq!(check_fqdn("api.example.com"), Ok(()));
    }

    #[test]
    fn addresses() {
        assert_eq!(check_ip_subnet("10.0.0.1"), Ok(()));
        assert_eq!(check_ip_subnet("10.0.0.0/8"), Ok(()));
        assert_eq!(check_ip_subnet("2001:db8::/32"), Ok(()));
        assert!(check_ip_subnet("10.0.0.0/33").is_err());
        assert!(check_ip_subnet("10.0.0.300").is_err());
        assert!(check_ip_subnet("host").is_err());
        assert!(!is_cidr("10.0.0.0/"));
    }

    #[test]
    fn labels_headers_durations() {
        let mut labels = BTreeMap::new();
        labels.insert("app.kubernetes.io/name".to_owned(), "reviews".to_owned());
        labels.insert("version".to_owned(), String::new());
        assert!(check_labels(&labels).is_empty());
        labels.insert("bad key".to_owned(), "v".to_owned());
        labels.insert("ok".to_owned(), "-bad".to_owned());
        assert_eq!(check_labels(&labels).len(), 2);
        assert!(is_header_name("x-canary"));
        assert!(!is_header_name("x canary"));
        assert!(!is_header_name(""));
        assert!(check_header_value("a\nb").is_err());
        assert_eq!(check_header_value("a\tb"), Ok(()));
        assert_eq!(check_duration(Duration::from_millis(1)), Ok(()));
        assert!(check_duration(Duration::default()).is_err());
        assert!(
            check_duration(Duration::from_std(std::time::Duration::from_micros(1500))).is_err()
        );
    }

    #[test]
    fn overlapping_hosts_and_regexes() {
        assert!(hosts_overlap("*.foo.com", "a.foo.com"));
        assert!(hosts_overlap("*.com", "*.foo.com"));
        assert!(hosts_overlap("A", "a"));
        assert!(!hosts_overlap("a.foo.com", "b.foo.com"));
        assert_eq!(check_regex("/v\\d(/.*)?"), Ok(()));
        let err = check_regex("/v[0-9").unwrap_err();
        assert!(err.starts_with("invalid regex \"/v[0-9\": "), "{err}");
        assert!(!err.contains('\n'));
        assert!(check_regex("(a)\\1").is_err(), "backreferences are not RE2");
    }
}
