//! The compiled form of one AuthorizationPolicy and its evaluation (SEMANTICS AUTHZ-5..AUTHZ-22).
//!
//! Every field becomes a [`Field`]: a test ("does any value of the attribute match any
//! pattern"), negated for `notX`/`notValues`. A missing attribute never matches a test, so it
//! fails positive fields and passes negative ones (AUTHZ-20). Fields that are HTTP-only
//! (AUTHZ-21) or invalid (bad CIDR, port, template, unknown `when` key; AUTHZ-19) make an ALLOW
//! rule never match, and are skipped (treated as matching) in DENY, AUDIT and CUSTOM rules, so
//! both directions fail closed.

use std::collections::BTreeSet;

use http::HeaderName;
use mesh_core::model::{Condition, Operation, Rule, Source};

use super::Problem;
use super::cidr::Cidr;
use super::matcher::{PathMatcher, StrMatcher};
use super::request::{AuthzRequest, Protocol};

/// What an attribute test reads and the patterns it compares with.
#[derive(Clone, Debug)]
enum Test {
    Principal(Vec<StrMatcher>),
    Namespace(Vec<StrMatcher>),
    TrustDomain(Vec<StrMatcher>),
    ServiceAccount(Vec<(String, String)>),
    SourceIp(Vec<Cidr>),
    RemoteIp(Vec<Cidr>),
    DestinationIp(Vec<Cidr>),
    Host(Vec<StrMatcher>),
    Method(Vec<StrMatcher>),
    Path(Vec<PathMatcher>),
    Port(Vec<u16>),
    Header(HeaderName, Vec<StrMatcher>),
    Sni(Vec<StrMatcher>),
    /// An attribute that never exists in v1 (JWT, AUTHZ-15), or an invalid field.
    Never,
}

fn any_str(ms: &[StrMatcher], value: Option<&str>) -> bool {
    value.is_some_and(|v| ms.iter().any(|m| m.matches(v.as_bytes())))
}

fn any_ip(blocks: &[Cidr], ip: Option<std::net::IpAddr>) -> bool {
    ip.is_some_and(|ip| blocks.iter().any(|b| b.contains(ip)))
}

impl Test {
    /// Whether some value of the attribute matches some pattern; `false` if it is missing.
    fn any(&self, req: &AuthzRequest<'_>) -> bool {
        let peer = req.peer;
        match self {
            Test::Principal(ms) => any_str(ms, peer.map(|p| p.principal)),
            Test::Namespace(ms) => any_str(ms, peer.and_then(|p| p.namespace)),
            Test::TrustDomain(ms) => any_str(ms, peer.map(|p| p.trust_domain)),
            Test::ServiceAccount(sas) => peer
                .and_then(|p| p.namespace.zip(p.service_account))
                .is_some_and(|(ns, sa)| sas.iter().any(|(n, s)| n == ns && s == sa)),
            Test::SourceIp(b) => any_ip(b, Some(req.source_ip)),
            Test::RemoteIp(b) => any_ip(b, Some(req.remote_ip)),
            Test::DestinationIp(b) => any_ip(b, req.destination_ip),
            Test::Host(ms) => any_str(ms, req.host),
            Test::Method(ms) => any_str(ms, req.method),
            Test::Path(ms) => req.path.is_some_and(|p| ms.iter().any(|m| m.matches(p))),
            Test::Port(ports) => ports.contains(&req.destination_port),
            Test::Header(name, ms) => req.headers.is_some_and(|h| {
                h.get_all(name)
                    .iter()
                    .any(|v| ms.iter().any(|m| m.matches(v.as_bytes())))
            }),
            Test::Sni(ms) => any_str(ms, req.sni),
            Test::Never => false,
        }
    }
}

/// One compiled field or condition half.
#[derive(Clone, Debug)]
struct Field {
    test: Test,
    negate: bool,
    http_only: bool,
    invalid: bool,
}

impl Field {
    fn matches(&self, req: &AuthzRequest<'_>, lenient: bool) -> bool {
        let tcp = req.protocol == Protocol::Tcp;
        if self.invalid || (tcp && self.http_only) {
            // Only reached for non-ALLOW policies (ALLOW rules are dropped before): skip.
            return lenient;
        }
        self.test.any(req) != self.negate
    }
}

/// Fields ANDed together (one `source`, one `operation`, or all of `when`).
type Clause = Vec<Field>;

fn clause_matches(clause: &Clause, req: &AuthzRequest<'_>, lenient: bool) -> bool {
    clause.iter().all(|f| f.matches(req, lenient))
}

/// One compiled rule: `from` ORed, `to` ORed, `when` ANDed, all three ANDed (AUTHZ-6).
#[derive(Clone, Debug)]
pub(crate) struct CompiledRule {
    from: Vec<Clause>,
    to: Vec<Clause>,
    when: Clause,
    invalid: bool,
    http_only: bool,
}

impl CompiledRule {
    /// Whether the rule matches; `lenient` is true for DENY/AUDIT/CUSTOM (AUTHZ-21).
    pub(crate) fn matches(&self, req: &AuthzRequest<'_>, lenient: bool) -> bool {
        if !lenient && (self.invalid || (req.protocol == Protocol::Tcp && self.http_only)) {
            return false;
        }
        let any = |clauses: &[Clause]| {
            clauses.is_empty() || clauses.iter().any(|c| clause_matches(c, req, lenient))
        };
        any(&self.from) && any(&self.to) && clause_matches(&self.when, req, lenient)
    }
}

/// Compile-time context: the policy's namespace, trust-domain aliases and collected problems.
pub(crate) struct RuleCompiler<'c> {
    pub(crate) namespace: &'c str,
    /// Trust domains that are one (AUTHZ-27); empty = exact matching only.
    pub(crate) trust_domains: &'c BTreeSet<String>,
    pub(crate) problems: Vec<Problem>,
}

impl RuleCompiler<'_> {
    pub(crate) fn rule(&mut self, rule: &Rule) -> CompiledRule {
        let from: Vec<Clause> = rule
            .from
            .iter()
            .map(|f| {
                f.source
                    .as_ref()
                    .map(|s| self.source(s))
                    .unwrap_or_default()
            })
            .collect();
        let to: Vec<Clause> = rule
            .to
            .iter()
            .map(|t| {
                t.operation
                    .as_ref()
                    .map(|o| self.operation(o))
                    .unwrap_or_default()
            })
            .collect();
        let mut when = Vec::new();
        for c in &rule.when {
            self.condition(c, &mut when);
        }
        let all = || from.iter().chain(&to).flatten().chain(&when);
        let invalid = all().any(|f| f.invalid);
        let http_only = all().any(|f| f.http_only);
        CompiledRule {
            from,
            to,
            when,
            invalid,
            http_only,
        }
    }

    fn push(
        &mut self,
        out: &mut Clause,
        values: &[String],
        negate: bool,
        http_only: bool,
        test: impl FnOnce(&mut Self, &[String]) -> Result<Test, Problem>,
    ) {
        if values.is_empty() {
            return;
        }
        let (test, invalid) = match test(self, values) {
            Ok(t) => (t, false),
            Err(p) => {
                if !self.problems.contains(&p) {
                    self.problems.push(p);
                }
                (Test::Never, true)
            }
        };
        out.push(Field {
            test,
            negate,
            http_only,
            invalid,
        });
    }

    fn source(&mut self, s: &Source) -> Clause {
        let mut out = Vec::new();
        for (values, negate) in [(&s.principals, false), (&s.not_principals, true)] {
            self.push(&mut out, values, negate, false, |c, v| {
                Ok(Test::Principal(c.principals(v)))
            });
        }
        for (values, negate) in [
            (&s.request_principals, false),
            (&s.not_request_principals, true),
        ] {
            self.push(&mut out, values, negate, true, |_, _| Ok(Test::Never));
        }
        for (values, negate) in [(&s.namespaces, false), (&s.not_namespaces, true)] {
            self.push(&mut out, values, negate, false, |_, v| {
                Ok(Test::Namespace(strs(v)))
            });
        }
        for (values, negate) in [(&s.trust_domains, false), (&s.not_trust_domains, true)] {
            self.push(&mut out, values, negate, false, |_, v| {
                Ok(Test::TrustDomain(strs(v)))
            });
        }
        let combined = !(s.principals.is_empty()
            && s.not_principals.is_empty()
            && s.namespaces.is_empty()
            && s.not_namespaces.is_empty());
        for (values, negate) in [
            (&s.service_accounts, false),
            (&s.not_service_accounts, true),
        ] {
            self.push(&mut out, values, negate, false, |c, v| {
                if combined {
                    return Err(Problem::ServiceAccountsCombined);
                }
                c.service_accounts(v).map(Test::ServiceAccount)
            });
        }
        for (values, negate) in [(&s.ip_blocks, false), (&s.not_ip_blocks, true)] {
            self.push(&mut out, values, negate, false, |_, v| {
                cidrs(v).map(Test::SourceIp)
            });
        }
        for (values, negate) in [
            (&s.remote_ip_blocks, false),
            (&s.not_remote_ip_blocks, true),
        ] {
            self.push(&mut out, values, negate, false, |_, v| {
                cidrs(v).map(Test::RemoteIp)
            });
        }
        out
    }

    fn operation(&mut self, o: &Operation) -> Clause {
        let mut out = Vec::new();
        for (values, negate) in [(&o.hosts, false), (&o.not_hosts, true)] {
            self.push(&mut out, values, negate, true, |_, v| {
                Ok(Test::Host(
                    v.iter().map(|h| StrMatcher::new_ignore_case(h)).collect(),
                ))
            });
        }
        for (values, negate) in [(&o.ports, false), (&o.not_ports, true)] {
            self.push(&mut out, values, negate, false, |_, v| {
                ports(v).map(Test::Port)
            });
        }
        for (values, negate) in [(&o.methods, false), (&o.not_methods, true)] {
            self.push(&mut out, values, negate, true, |_, v| {
                Ok(Test::Method(strs(v)))
            });
        }
        for (values, negate) in [(&o.paths, false), (&o.not_paths, true)] {
            self.push(&mut out, values, negate, true, |_, v| {
                v.iter()
                    .map(|p| {
                        PathMatcher::parse(p).ok_or_else(|| Problem::InvalidPathTemplate(p.clone()))
                    })
                    .collect::<Result<_, _>>()
                    .map(Test::Path)
            });
        }
        out
    }

    fn condition(&mut self, c: &Condition, out: &mut Clause) {
        if c.values.is_empty() && c.not_values.is_empty() {
            self.problems.push(Problem::EmptyCondition(c.key.clone()));
            out.push(Field {
                test: Test::Never,
                negate: false,
                http_only: false,
                invalid: true,
            });
            return;
        }
        let key = c.key.trim();
        let http_only = key.starts_with("request.");
        for (values, negate) in [(&c.values, false), (&c.not_values, true)] {
            self.push(out, values, negate, http_only, |this, v| {
                this.condition_test(key, v)
            });
        }
    }

    fn condition_test(&self, key: &str, v: &[String]) -> Result<Test, Problem> {
        if let Some(name) = key
            .strip_prefix("request.headers[")
            .and_then(|k| k.strip_suffix(']'))
        {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Problem::UnknownConditionKey(key.to_owned()))?;
            return Ok(Test::Header(name, strs(v)));
        }
        if key.starts_with("request.auth.claims[") && key.ends_with(']') {
            return Ok(Test::Never);
        }
        Ok(match key {
            "source.ip" => Test::SourceIp(cidrs(v)?),
            "remote.ip" => Test::RemoteIp(cidrs(v)?),
            "destination.ip" => Test::DestinationIp(cidrs(v)?),
            "source.namespace" => Test::Namespace(strs(v)),
            "source.principal" => Test::Principal(self.principals(v)),
            "destination.port" => Test::Port(ports(v)?),
            "connection.sni" => Test::Sni(strs(v)),
            "request.auth.principal" | "request.auth.audiences" | "request.auth.presenter" => {
                Test::Never
            }
            _ => return Err(Problem::UnknownConditionKey(key.to_owned())),
        })
    }

    /// Principal patterns, expanded over equivalent trust domains (AUTHZ-27).
    fn principals(&self, values: &[String]) -> Vec<StrMatcher> {
        let mut out = Vec::new();
        for v in values {
            out.push(StrMatcher::new(v));
            let Some((td, rest)) = v.split_once('/') else {
                continue;
            };
            if self.trust_domains.contains(td) {
                for alias in self
                    .trust_domains
                    .iter()
                    .filter(|a| *a != td && *a != "cluster.local")
                {
                    out.push(StrMatcher::new(&format!("{alias}/{rest}")));
                }
            }
        }
        out
    }

    /// `ns/sa` or bare `sa` (in the policy's namespace), no wildcards (AUTHZ-13).
    fn service_accounts(&self, values: &[String]) -> Result<Vec<(String, String)>, Problem> {
        values
            .iter()
            .map(|v| {
                let (ns, sa) = v.split_once('/').unwrap_or((self.namespace, v));
                if ns.is_empty() || sa.is_empty() || sa.contains('/') || v.contains('*') {
                    Err(Problem::InvalidServiceAccount(v.clone()))
                } else {
                    Ok((ns.to_owned(), sa.to_owned()))
                }
            })
            .collect()
    }
}

fn strs(values: &[String]) -> Vec<StrMatcher> {
    values.iter().map(|v| StrMatcher::new(v)).collect()
}

fn cidrs(values: &[String]) -> Result<Vec<Cidr>, Problem> {
    values
        .iter()
        .map(|v| Cidr::parse(v).ok_or_else(|| Problem::InvalidIpBlock(v.clone())))
        .collect()
}

fn ports(values: &[String]) -> Result<Vec<u16>, Problem> {
    values
        .iter()
        .map(|v| {
            v.parse::<u16>()
                .ok()
                .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| Problem::InvalidPort(v.clone()))
        })
        .collect()
}

/// Which peer attribute an index key reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PeerAttr {
    /// The principal `<td>/ns/<ns>/sa/<sa>`.
    Principal,
    /// The principal's namespace.
    Namespace,
}

impl CompiledRule {
    /// A necessary condition for this rule to match, for the candidate index: the peer
    /// attribute patterns of which at least one must match, or `None` when the rule can match
    /// without any (no `from`, or a `from` clause without a positive principal or namespace
    /// field). Only positive, valid fields qualify: negated fields match missing attributes and
    /// invalid ones are skipped in lenient rules.
    pub(crate) fn peer_requirement(&self) -> Option<Vec<(PeerAttr, &StrMatcher)>> {
        fn keys(f: &Field) -> Option<(PeerAttr, &[StrMatcher])> {
            if f.negate || f.invalid {
                return None;
            }
            match &f.test {
                Test::Principal(ms) => Some((PeerAttr::Principal, ms)),
                Test::Namespace(ms) => Some((PeerAttr::Namespace, ms)),
                _ => None,
            }
        }
        fn expand(
            (attr, ms): (PeerAttr, &[StrMatcher]),
        ) -> impl Iterator<Item = (PeerAttr, &StrMatcher)> {
            ms.iter().map(move |m| (attr, m))
        }
        // `when` is ANDed with everything: one qualifying field there is enough.
        if let Some(k) = self.when.iter().find_map(keys) {
            return Some(expand(k).collect());
        }
        if self.from.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for clause in &self.from {
            out.extend(expand(clause.iter().find_map(keys)?));
        }
        Some(out)
    }
}
