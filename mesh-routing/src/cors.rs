//! CORS policy of a route (SEMANTICS VS-37; Envoy's CORS filter as istiod configures it).
//!
//! A request with an `Origin` matching `allowOrigins` gets `access-control-allow-origin: <that
//! origin>` (plus credentials and expose-headers) on its response. A preflight (`OPTIONS` with
//! `Origin` and `Access-Control-Request-Method`) whose origin matches is answered locally with
//! 200, empty body, and the allow-methods / allow-headers / max-age headers. Non-matching
//! origins are forwarded untouched, preflights too unless `unmatchedPreflights: IGNORE`. The
//! proxy never rejects a request for CORS: the browser enforces.
//!
//! ```
//! use mesh_core::model::{CorsPolicy, Location, StringMatch};
//! use mesh_routing::cors::{Cors, CorsOutcome};
//! use mesh_routing::matcher::CompileContext;
//!
//! let mut cfg = CorsPolicy::default();
//! cfg.allow_origins = vec![StringMatch::Exact("https://app.example.com".into())];
//! cfg.allow_methods = vec!["GET".into(), "POST".into()];
//! let loc = Location::new("vs.yaml", 1, 1);
//! let ctx = CompileContext { location: &loc, resource: "VirtualService default/api" };
//! let cors = Cors::from_config(&cfg, &ctx).unwrap();
//! let req = http::Request::options("/x")
//!     .header("origin", "https://app.example.com")
//!     .header("access-control-request-method", "POST")
//!     .body(()).unwrap();
//! assert!(matches!(cors.check(&req), CorsOutcome::Preflight(_)));
//! ```

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, HeaderValue, ORIGIN,
};
use http::{HeaderMap, Method, Request};
use mesh_core::model::{CorsPolicy, StringMatch, UnmatchedPreflights};

use crate::Error;
use crate::matcher::{CompileContext, StringMatcher};

/// A compiled `corsPolicy`.
#[derive(Debug)]
pub struct Cors {
    origins: Vec<StringMatcher>,
    any_origin: bool,
    methods: Option<HeaderValue>,
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    credentials: bool,
    ignore_unmatched_preflights: bool,
}

/// What CORS does with one request.
#[derive(Debug)]
pub enum CorsOutcome {
    /// Not a CORS request, or an origin that is not allowed: forward, add nothing.
    Forward,
    /// Forward, then add these headers to the response.
    Simple(HeaderMap),
    /// Answer locally with 200 and these headers (a matching preflight).
    Preflight(HeaderMap),
    /// A preflight whose origin is not allowed, with `unmatchedPreflights: IGNORE`: answer 200
    /// without CORS headers.
    IgnoredPreflight,
}

fn joined(items: &[String]) -> Option<HeaderValue> {
    if items.is_empty() {
        return None;
    }
    HeaderValue::from_str(&items.join(",")).ok()
}

impl Cors {
    /// Compiles `cfg` (`allowOrigins` as string matches; the deprecated `allowOrigin` list as
    /// exact strings; `*` = any origin).
    pub fn from_config(cfg: &CorsPolicy, ctx: &CompileContext<'_>) -> Result<Self, Error> {
        let mut origins = Vec::new();
        let mut any_origin = false;
        for m in &cfg.allow_origins {
            if matches!(m, StringMatch::Exact(s) if s == "*") {
                any_origin = true;
                continue;
            }
            origins.push(StringMatcher::from_config(m, false, ctx)?);
        }
        for o in &cfg.allow_origin {
            if o == "*" {
                any_origin = true;
                continue;
            }
            origins.push(StringMatcher::from_config(
                &StringMatch::Exact(o.clone()),
                false,
                ctx,
            )?);
        }
        Ok(Self {
            origins,
            any_origin,
            methods: joined(&cfg.allow_methods),
            headers: joined(&cfg.allow_headers),
            expose: joined(&cfg.expose_headers),
            max_age: cfg
                .max_age
                .and_then(|d| HeaderValue::from_str(&d.as_std().as_secs().to_string()).ok()),
            credentials: cfg.allow_credentials == Some(true),
            ignore_unmatched_preflights: cfg.unmatched_preflights == UnmatchedPreflights::Ignore,
        })
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        if self.any_origin {
            return true;
        }
        origin
            .to_str()
            .is_ok_and(|o| self.origins.iter().any(|m| m.matches(o)))
    }

    /// Decides what to do with `req` (VS-37).
    pub fn check<B>(&self, req: &Request<B>) -> CorsOutcome {
        let Some(origin) = req.headers().get(ORIGIN) else {
            return CorsOutcome::Forward;
        };
        let preflight = req.method() == Method::OPTIONS
            && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if !self.allows(origin) {
            return if preflight && self.ignore_unmatched_preflights {
                CorsOutcome::IgnoredPreflight
            } else {
                CorsOutcome::Forward
            };
        }
        let mut h = HeaderMap::new();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.credentials {
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if preflight {
            if let Some(v) = &self.methods {
                h.insert(ACCESS_CONTROL_ALLOW_METHODS, v.clone());
            }
            if let Some(v) = &self.headers {
                h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
            }
            if let Some(v) = &self.max_age {
                h.insert(ACCESS_CONTROL_MAX_AGE, v.clone());
            }
            CorsOutcome::Preflight(h)
        } else {
            if let Some(v) = &self.expose {
                h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
            }
            CorsOutcome::Simple(h)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::model::Location;

    fn cors(cfg: &CorsPolicy) -> Cors {
        let loc = Location::new("vs.yaml", 1, 1);
        let ctx = CompileContext {
            location: &loc,
            resource: "VirtualService default/api",
        };
        Cors::from_config(cfg, &ctx).unwrap()
    }

    fn policy() -> CorsPolicy {
        let mut cfg = CorsPolicy::default();
        cfg.allow_origins = vec![StringMatch::Prefix("https://app.".into())];
        cfg.allow_methods = vec!["GET".into(), "POST".into()];
        cfg.allow_headers = vec!["x-a".into()];
        cfg.expose_headers = vec!["x-b".into()];
        cfg.max_age = Some(mesh_core::model::Duration::from_secs(60));
        cfg.allow_credentials = Some(true);
        cfg
    }

    fn req(method: Method, origin: Option<&str>, preflight: bool) -> Request<()> {
        let mut b = Request::builder().method(method).uri("/x");
        if let Some(o) = origin {
            b = b.header(ORIGIN, o);
        }
        if preflight {
            b = b.header(ACCESS_CONTROL_REQUEST_METHOD, "POST");
        }
        b.body(()).unwrap()
    }

    #[test]
    fn matching_preflight_is_answered_with_allow_headers() {
        // SEMANTICS VS-37
        let c = cors(&policy());
        let CorsOutcome::Preflight(h) =
            c.check(&req(Method::OPTIONS, Some("https://app.example.com"), true))
        else {
            panic!("expected a preflight reply");
        };
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET,POST");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "x-a");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "60");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    }

    #[test]
    fn simple_request_gets_origin_and_expose_headers() {
        // SEMANTICS VS-37
        let c = cors(&policy());
        let CorsOutcome::Simple(h) = c.check(&req(Method::GET, Some("https://app.x"), false))
        else {
            panic!("expected simple CORS headers");
        };
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.x");
        assert_eq!(h[ACCESS_CONTROL_EXPOSE_HEADERS], "x-b");
        assert!(h.get(ACCESS_CONTROL_ALLOW_METHODS).is_none());
    }

    #[test]
    fn unmatched_origins_are_forwarded_unless_ignored() {
        // SEMANTICS VS-37: never a 403; unmatched preflights forwarded by default.
        let c = cors(&policy());
        assert!(matches!(
            c.check(&req(Method::OPTIONS, Some("https://evil.example"), true)),
            CorsOutcome::Forward
        ));
        assert!(matches!(
            c.check(&req(Method::GET, None, false)),
            CorsOutcome::Forward
        ));
        let mut p = policy();
        p.unmatched_preflights = UnmatchedPreflights::Ignore;
        let c = cors(&p);
        assert!(matches!(
            c.check(&req(Method::OPTIONS, Some("https://evil.example"), true)),
            CorsOutcome::IgnoredPreflight
        ));
    }

    #[test]
    fn star_and_legacy_allow_origin() {
        // SEMANTICS VS-37: exact "*" = any origin; deprecated allowOrigin strings are exact.
        let mut p = CorsPolicy::default();
        p.allow_origins = vec![StringMatch::Exact("*".into())];
        assert!(matches!(
            cors(&p).check(&req(Method::GET, Some("https://any"), false)),
            CorsOutcome::Simple(_)
        ));
        let mut p = CorsPolicy::default();
        p.allow_origin = vec!["https://a".into()];
        let c = cors(&p);
        assert!(matches!(
            c.check(&req(Method::GET, Some("https://a"), false)),
            CorsOutcome::Simple(_)
        ));
        assert!(matches!(
            c.check(&req(Method::GET, Some("https://ab"), false)),
            CorsOutcome::Forward
        ));
    }
}
