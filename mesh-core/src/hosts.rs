//! Istio host names: short names, `name.ns`, FQDNs and wildcards (SEMANTICS §1).
//!
//! Two directions matter and they are easy to mix up:
//!
//! - **config side** ([`qualify`]): a host written in a resource is relative to the namespace
//!   *of that resource* (HOST-1, HOST-2): `reviews` in a VirtualService of namespace `foo` is
//!   `reviews.foo.svc.cluster.local`, whatever namespace the `reviews` service lives in;
//! - **request side** ([`request_candidates`]): a request's `Host` is relative to the *client's*
//!   namespace (HOST-3): from namespace `prod`, `reviews`, `reviews.prod`, `reviews.prod.svc`
//!   and the FQDN all mean `reviews.prod.svc.cluster.local`.
//!
//! ```
//! use mesh_core::hosts::{qualify, host_matches};
//!
//! assert_eq!(qualify("reviews", "foo"), "reviews.foo.svc.cluster.local");
//! assert_eq!(qualify("reviews.prod.svc", "foo"), "reviews.prod.svc.cluster.local");
//! assert_eq!(qualify("API.Example.com", "foo"), "api.example.com");
//! assert!(host_matches("*.example.com", "a.b.example.com"));
//! assert!(!host_matches("*.example.com", "example.com"));
//! ```

/// The cluster domain. Fixed, as in a default Kubernetes install (HOST-2); the trust domain
/// flag does not change it.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The FQDN a host written in a resource of namespace `resource_ns` stands for (HOST-1, HOST-2,
/// HOST-4): lower-cased; no dot → `name.ns.svc.cluster.local`; `name.ns.svc` → with the
/// cluster domain appended; `name.ns` → `name.ns.svc.cluster.local`; wildcards, `*`, IP
/// literals and every other dotted name as written.
///
/// `name.ns` is read as a Kubernetes name only when it has exactly two labels and the second
/// is not a well-known top-level domain (`api.com` stays itself); see [`qualify_with`] to decide
/// with the set of namespaces actually in the config.
pub fn qualify(host: &str, resource_ns: &str) -> String {
    qualify_with(host, resource_ns, |ns| !is_common_tld(ns))
}

/// [`qualify`] with the caller deciding whether the `ns` of a two-label `name.ns` host is a
/// namespace (for example: a namespace some resource of the snapshot lives in).
pub fn qualify_with(host: &str, resource_ns: &str, is_namespace: impl Fn(&str) -> bool) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "*" || host.starts_with("*.") || host.parse::<std::net::IpAddr>().is_ok() {
        return host;
    }
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [name] => format!("{name}.{resource_ns}.svc.{CLUSTER_DOMAIN}"),
        [name, ns] if is_namespace(ns) => format!("{name}.{ns}.svc.{CLUSTER_DOMAIN}"),
        [name, ns, "svc"] => format!("{name}.{ns}.svc.{CLUSTER_DOMAIN}"),
        _ => host,
    }
}

/// The registry names a request host may stand for, most likely first, for a client in
/// namespace `client_ns` (HOST-3, HOST-6): the port is dropped, the name lower-cased, and short
/// forms are completed relative to the client's namespace. The caller looks the candidates up
/// in order and takes the first known one.
///
/// ```
/// use mesh_core::hosts::request_candidates;
/// assert_eq!(request_candidates("Reviews:9080", "prod"), ["reviews.prod.svc.cluster.local"]);
/// assert_eq!(request_candidates("reviews.prod", "other"),
///            ["reviews.prod.svc.cluster.local", "reviews.prod"]);
/// ```
pub fn request_candidates(authority: &str, client_ns: &str) -> Vec<String> {
    let host = strip_port(authority)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Vec::new();
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return vec![host];
    }
    let labels = host.split('.').count();
    match labels {
        1 => vec![format!("{host}.{client_ns}.svc.{CLUSTER_DOMAIN}")],
        2 => vec![format!("{host}.svc.{CLUSTER_DOMAIN}"), host],
        3 if host.ends_with(".svc") => vec![format!("{host}.{CLUSTER_DOMAIN}"), host],
        _ => vec![host],
    }
}

/// The host part of an authority (`host:port`, `[v6]:port`, `host`), without brackets.
pub fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => authority,
    }
}

/// The port of an authority, if it has one.
pub fn authority_port(authority: &str) -> Option<u16> {
    let after = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map(|(_, after)| after)?,
        None => authority,
    };
    let (_, port) = after.rsplit_once(':')?;
    port.parse().ok()
}

/// Whether the (lower-case) `pattern` — an exact host, `*.suffix` or `*` — matches `host`
/// (HOST-5): `*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern == host,
    }
}

/// Whether `host` is a wildcard pattern.
pub fn is_wildcard(host: &str) -> bool {
    host.starts_with('*')
}

fn is_common_tld(label: &str) -> bool {
    matches!(
        label,
        "com"
            | "org"
            | "net"
            | "io"
            | "dev"
            | "app"
            | "local"
            | "internal"
            | "edu"
            | "gov"
            | "co"
            | "info"
            | "biz"
            | "cloud"
            | "ai"
            | "us"
            | "uk"
            | "de"
            | "eu"
            | "localhost"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_in_the_resource_namespace() {
        // SEMANTICS HOST-1 (pitfall): relative to the resource, not the service or the client.
        assert_eq!(qualify("reviews", "foo"), "reviews.foo.svc.cluster.local");
        assert_eq!(qualify("reviews", "bar"), "reviews.bar.svc.cluster.local");
    }

    #[test]
    fn name_forms() {
        // SEMANTICS HOST-2
        assert_eq!(
            qualify("reviews.prod", "x"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            qualify("reviews.prod.svc", "x"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            qualify("reviews.prod.svc.cluster.local", "x"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(qualify("api.example.com", "x"), "api.example.com");
        assert_eq!(
            qualify("Reviews.PROD", "x"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(qualify("example.com", "x"), "example.com");
        assert_eq!(qualify("10.0.0.1", "x"), "10.0.0.1");
        assert_eq!(qualify("*.Example.com", "x"), "*.example.com");
        assert_eq!(qualify("*", "x"), "*");
        assert_eq!(qualify_with("a.b", "x", |_| false), "a.b");
    }

    #[test]
    fn request_aliases_follow_the_client_namespace() {
        // SEMANTICS HOST-3 (pitfall): bare `reviews` from namespace `other` is reviews.other.
        assert_eq!(
            request_candidates("reviews", "prod"),
            ["reviews.prod.svc.cluster.local"]
        );
        assert_eq!(
            request_candidates("reviews", "other"),
            ["reviews.other.svc.cluster.local"]
        );
        assert_eq!(
            request_candidates("reviews.prod.svc", "other")[0],
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            request_candidates("reviews.prod.svc.cluster.local:9080", "other"),
            ["reviews.prod.svc.cluster.local"]
        );
    }

    #[test]
    fn port_in_host_is_ignored_for_lookup() {
        // SEMANTICS HOST-6 (pitfall)
        assert_eq!(
            request_candidates("reviews:9080", "p"),
            request_candidates("reviews", "p")
        );
        assert_eq!(authority_port("reviews:9080"), Some(9080));
        assert_eq!(authority_port("reviews"), None);
        assert_eq!(authority_port("[::1]:80"), Some(80));
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("::1"), "::1");
    }

    #[test]
    fn wildcards() {
        // SEMANTICS HOST-5
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("*", "anything"));
        assert!(host_matches("a.example.com", "a.example.com"));
        assert!(!host_matches("a.example.com", "b.example.com"));
    }
}
