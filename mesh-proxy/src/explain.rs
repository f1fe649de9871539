//! `mesh-proxy explain`: why one request goes where it goes, for the workload given by the
//! flags `run` takes.
//!
//! The config is loaded and compiled the way `run` does it (same loader, registry and route
//! table for the same [`Scope`](mesh_core::registry::Scope)), then
//! [`mesh_routing::explain::explain`] replays the routing decision. Text output is a report
//! for people, one `label    value` line per step; `-o json` prints the
//! [`Explanation`](mesh_routing::explain::Explanation) (DESIGN.md's `explain` format) plus the
//! `from` that was given. The report goes to stdout; errors and warnings go to stderr.
//!
//! Authorization is decided at the destination: when the request reaches a workload, the
//! AuthorizationPolicies that select the workload behind the first endpoint (SEMANTICS §7)
//! decide it for the caller `--from` (default: this workload's own SPIFFE ID). JSON gives
//! `authz: {decision, policy, rule, why, from, workload: {namespace, labels, service_account,
//! endpoint, endpoints}, port, policies: [{policy, action, dry_run, matched_rule}]}`, or
//! `null` when the request reaches no workload (no route, a direct response, no endpoints).
//!
//! Exit codes: 0 when the request is explained, whatever the outcome (404 included); 1 when
//! the config does not load or compile (the loader's errors are printed like `analyze` prints
//! them, `SEVERITY CODE FILE:LINE: message`); 2 when the request, a header or `--from` is
//! malformed.
#![allow(clippy::print_stdout, reason = "this module is the CLI's output")]

use std::fmt::Write as _;
use std::process::ExitCode;

use http::header::{HOST, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use mesh_core::loader::Loader;
use mesh_core::registry::{Registry, Scope};
use mesh_core::validate::{self, Finding, SourceMap};
use mesh_identity::authz::AuthzRequest;
use mesh_identity::{AuthzTable, SpiffeId};
use mesh_routing::RouteTable;
use mesh_routing::explain::{Explanation, Source};
use serde::Serialize;

use crate::cli::ExplainArgs;
use crate::settings::ProxySettings;

/// Output format of `explain`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A report for people.
    #[default]
    Text,
    /// The explanation as JSON.
    Json,
}

/// Why a request could not be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// `--request` or a `--header` is malformed (exit code 2).
    #[error("{0}")]
    Request(String),
    /// The config does not load: the loader's errors, as `analyze` reports them (exit code 1).
    #[error("the config does not load:")]
    Load(Vec<Finding>),
    /// The config loads but the route table does not compile (exit code 1).
    #[error("the config does not compile: {0}")]
    Compile(#[from] mesh_routing::Error),
}

impl ExplainError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Request(_) => ExitCode::from(2),
            Self::Load(_) | Self::Compile(_) => ExitCode::FAILURE,
        }
    }
}

/// An explanation and what the operator should know beside it.
#[derive(Debug)]
pub struct Explained {
    /// The routing decision, step by step.
    pub explanation: Explanation,
    /// The errors for which `mesh-proxy run` would refuse this config (`analyze` shows them
    /// with their location); empty when `run` would serve it.
    pub run_would_refuse: Vec<String>,
}

/// The JSON document: the explanation with the caller's identity beside it.
#[derive(Debug, Serialize)]
struct JsonOutput<'a> {
    #[serde(flatten)]
    explanation: &'a Explanation,
    from: Option<&'a str>,
}

/// What `--request` wants.
const ABSOLUTE: &str =
    "the URL must be absolute, http://host[:port]/path (or a /path with --header host:HOST)";

/// The request `--request` and `--header` describe.
///
/// `spec` is `METHOD URL` or `URL` (GET). The URL is absolute (`http` or `https`, with a
/// host), or a bare path when a `host` header is given. Headers are `name:value`, split at the
/// first `:`, value trimmed; a repeated name adds a value.
///
/// ```
/// let req = mesh_proxy::explain::parse_request(
///     "POST http://reviews:9080/api?x=1",
///     &["x-canary: true".to_owned()],
/// )
/// .unwrap();
/// assert_eq!(req.method(), "POST");
/// assert_eq!(req.headers()["x-canary"], "true");
/// assert!(mesh_proxy::explain::parse_request("GET reviews/api", &[]).is_err());
/// ```
pub fn parse_request(spec: &str, headers: &[String]) -> Result<Request<()>, String> {
    let parts: Vec<&str> = spec.split_whitespace().collect();
    let (method, url) = match parts.as_slice() {
        [url] => ("GET", *url),
        [method, url] => (*method, *url),
        _ => {
            return Err(format!(
                "--request {spec:?}: expected 'METHOD URL' or 'URL', e.g. 'GET http://reviews:9080/api'"
            ));
        }
    };
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("--request {spec:?}: {method:?} is not an HTTP method"))?;
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("--request {spec:?}: {url:?} is not a URL ({e}): {ABSOLUTE}"))?;
    let mut builder = Request::builder().method(method);
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("--header {header:?}: expected 'name:value'"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            format!(
                "--header {header:?}: {:?} is not a header name",
                name.trim()
            )
        })?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("--header {header:?}: the value is not a valid header value"))?;
        builder = builder.header(name, value);
    }
    let has_host = builder.headers_ref().is_some_and(|h| h.contains_key(HOST));
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => {}
        (Some(other), _) if other != "http" && other != "https" => {
            return Err(format!(
                "--request {spec:?}: scheme {other:?} is not http or https"
            ));
        }
        (None, None) if has_host && url.starts_with('/') => {}
        _ => {
            return Err(format!("--request {spec:?}: {ABSOLUTE}"));
        }
    }
    builder
        .uri(uri)
        .body(())
        .map_err(|e| format!("--request {spec:?}: {e}"))
}

/// Loads and compiles the config for the workload of `args` and explains its request.
pub fn explain(args: &ExplainArgs) -> Result<Explained, ExplainError> {
    let req = parse_request(&args.request, &args.headers).map_err(ExplainError::Request)?;
    let settings: ProxySettings = args.workload.settings(args.config.clone());
    let snapshot = Loader::new(&settings.config)
        .namespace(settings.namespace.clone())
        .load()
        .map_err(|e| ExplainError::Load(validate::findings_from_load_error(&e)))?;
    let run_would_refuse = validate::check(&snapshot).err().unwrap_or_default();
    let scope = settings.scope();
    let registry = Registry::build(&snapshot, &scope);
    let table = RouteTable::compile(&snapshot, &registry, &scope)?;
    let port = mesh_routing::layer::request_port(&req);
    let mut sources = SourceMap::new();
    let mut explanation =
        mesh_routing::explain::explain(&table, &registry, &req, port, Some(&mut sources));
    explanation.authz = authorize(
        &explanation,
        &registry,
        &snapshot,
        &settings,
        &req,
        args.from.as_deref(),
    )?;
    Ok(Explained {
        explanation,
        run_would_refuse,
    })
}

/// Authorization at the destination (SEMANTICS §7): the AuthorizationPolicies of the workload
/// behind the first endpoint of the chosen cluster (its namespace and labels, `--root-namespace`
/// for mesh-wide policies, `--trust-domain` and its aliases) decide the request as sent by
/// `--from`, or by this workload's own identity
/// `spiffe://<--trust-domain>/ns/<--namespace>/sa/<--service-account>`. The destination port
/// is the endpoint's (the workload's) port; the source address is not known to `explain`, so
/// `ipBlocks` are checked against 127.0.0.1.
///
/// `None` when the request reaches no workload (no route, a direct response or redirect, an
/// unknown cluster, no endpoints). A malformed `--from` is an [`ExplainError::Request`] even
/// then.
fn authorize(
    e: &Explanation,
    registry: &Registry,
    snapshot: &mesh_core::Snapshot,
    settings: &ProxySettings,
    req: &Request<()>,
    from: Option<&str>,
) -> Result<Option<serde_json::Value>, ExplainError> {
    let caller = match from {
        Some(id) => SpiffeId::parse(id)
            .map_err(|err| ExplainError::Request(format!("--from {id:?}: {err}")))?,
        None => {
            let own = format!(
                "spiffe://{}/ns/{}/sa/{}",
                settings.trust_domain, settings.namespace, settings.service_account
            );
            SpiffeId::parse(&own).map_err(|err| {
                ExplainError::Request(format!(
                    "this workload's identity {own:?} (--trust-domain, --namespace, \
                     --service-account) is not a SPIFFE ID: {err}"
                ))
            })?
        }
    };
    let (Some(dest), Some(first)) = (&e.destination, e.endpoints.first()) else {
        return Ok(None);
    };
    let Some(service) = registry.get(&dest.host) else {
        return Ok(None);
    };
    // The registry's endpoint behind the first endpoint shown: its namespace (a WorkloadEntry's
    // own), service account and port.
    let cluster = match (&dest.subset, dest.port) {
        (Some(subset), Some(port)) => service.subset_cluster(port, subset),
        (None, Some(port)) => service.cluster(port),
        (_, None) => None,
    };
    let endpoints = cluster.map(|c| c.endpoints());
    let endpoint = endpoints.as_deref().and_then(|set| {
        set.endpoints()
            .iter()
            .find(|ep| ep.addr.to_string() == first.address)
    });
    let namespace = endpoint
        .map(|ep| ep.namespace.as_str())
        .filter(|ns| !ns.is_empty())
        .unwrap_or(service.namespace());
    let port = endpoint.map_or_else(
        || {
            first
                .address
                .parse::<std::net::SocketAddr>()
                .map_or(0, |a| a.port())
        },
        |ep| ep.addr.port(),
    );
    let scope = Scope::new(namespace.to_owned())
        .labels(first.labels.clone())
        .root_namespace(settings.root_namespace.clone());
    let table = AuthzTable::compile_with(snapshot, &scope, &settings.authz_options());
    let principal = caller.principal();
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let areq = AuthzRequest::http(std::net::IpAddr::from([127, 0, 0, 1]), port)
        .principal(Some(&principal))
        .method(req.method().as_str())
        .path(req.uri().path())
        .host(&host)
        .headers(req.headers());
    let d = table.decide(&areq);
    let policies: Vec<serde_json::Value> = table
        .explain(&areq)
        .iter()
        .map(|t| {
            serde_json::json!({
                "policy": format!("{}/{}", t.namespace, t.name),
                "action": format!("{:?}", t.action).to_uppercase(),
                "dry_run": t.dry_run,
                "matched_rule": t.matched_rule,
            })
        })
        .collect();
    Ok(Some(serde_json::json!({
        "decision": if d.allowed { "ALLOW" } else { "DENY" },
        "policy": d.matched.map(|m| format!("{}/{}", m.namespace, m.name)),
        "rule": d.matched.map(|m| m.rule),
        "why": d.reason.as_str(),
        "from": principal,
        "workload": {
            "namespace": namespace,
            "labels": first.labels,
            "service_account": endpoint.and_then(|ep| ep.service_account.as_deref()),
            "endpoint": first.address,
            "endpoints": e.endpoints.len(),
        },
        "port": port,
        "policies": policies,
    })))
}

/// Why authorization was not evaluated: the request reaches no workload.
fn authz_skipped(e: &Explanation) -> String {
    match &e.destination {
        None => format!("the request reaches no workload: {}", e.outcome),
        Some(d) => match &d.problem {
            Some(problem) => format!("the request reaches no workload: {problem}"),
            None => "the request reaches no workload: no endpoints".to_owned(),
        },
    }
}

/// Runs the command.
pub fn run(args: &ExplainArgs) -> ExitCode {
    let explained = match explain(args) {
        Ok(e) => e,
        Err(error) => {
            eprintln!("mesh-proxy explain: {error}");
            if let ExplainError::Load(findings) = &error {
                for f in findings {
                    eprintln!("{f}");
                }
            }
            return error.exit_code();
        }
    };
    if !explained.run_would_refuse.is_empty() {
        eprintln!(
            "mesh-proxy explain: warning: `mesh-proxy run` would refuse this config \
             (`mesh-proxy analyze` shows every finding):"
        );
        for line in &explained.run_would_refuse {
            eprintln!("{line}");
        }
    }
    let e = &explained.explanation;
    match args.output {
        OutputFormat::Text => print!("{}", render_text(e, args)),
        OutputFormat::Json => {
            let doc = JsonOutput {
                explanation: e,
                from: args.from.as_deref(),
            };
            match serde_json::to_string_pretty(&doc) {
                Ok(json) => println!("{json}"),
                Err(error) => {
                    eprintln!("mesh-proxy explain: cannot encode the explanation: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

/// Width of the label column of the text report.
const LABEL: usize = 10;

/// The text report: one `label    value` line per step, continuation lines indented.
pub fn render_text(e: &Explanation, args: &ExplainArgs) -> String {
    let mut out = Report::default();
    out.line("request", &e.request);
    if let Some(from) = &args.from {
        out.line("from", from);
    }
    let w = &args.workload;
    let labels = if w.labels.0.is_empty() {
        "no labels".to_owned()
    } else {
        format!("labels {}", join_labels(&w.labels.0))
    };
    out.line(
        "workload",
        &format!(
            "namespace {}, service account {}, {labels}",
            w.namespace, w.service_account
        ),
    );
    out.line(
        "host",
        &format!(
            "{} → {}",
            e.host.requested,
            e.host.virtual_host.as_deref().unwrap_or("no host")
        ),
    );
    if !e.host.why.is_empty() {
        out.more(&e.host.why);
    }
    if e.host.virtual_host.is_some() {
        match &e.virtual_service {
            Some(vs) => out.line(
                "vs",
                &format!("{}/{}  {}:{}", vs.namespace, vs.name, vs.file, vs.line),
            ),
            None => out.line("vs", "none"),
        }
    }
    if !e.considered.is_empty() {
        out.line("routes", "");
        let name_width = e.considered.iter().map(|c| name(&c.name).len()).max();
        let source_width = e
            .considered
            .iter()
            .map(|c| source(c.source.as_ref()).len())
            .max();
        for c in &e.considered {
            let mark = if c.matched { '✓' } else { '✗' };
            let _ = writeln!(
                out.0,
                "  {mark} [{}] {:nw$}  {:sw$}  {}",
                c.index,
                name(&c.name),
                source(c.source.as_ref()),
                c.why,
                nw = name_width.unwrap_or(0),
                sw = source_width.unwrap_or(0),
            );
        }
    }
    if e.host.virtual_host.is_some() {
        match &e.route {
            Some(r) => out.line(
                "route",
                &format!("[{}] {} → {}", r.index, name(&r.name), r.action),
            ),
            None => out.line("route", "none matched"),
        }
    }
    for (i, d) in e.destinations.iter().enumerate() {
        let mut text = format!("{:>3}%  {}", percent(d.percent), d.host);
        if let Some(s) = &d.subset {
            let _ = write!(text, " subset {s}");
        }
        if let Some(p) = d.port {
            let _ = write!(text, " port {p}");
        }
        if i == 0 {
            out.line("weights", &text);
        } else {
            out.more(&text);
        }
    }
    if let Some(d) = &e.destination {
        let mut text = d.cluster.clone().unwrap_or_else(|| "none".to_owned());
        match (&d.destination_rule, &d.destination_rule_source) {
            (Some(dr), Some(src)) => {
                let _ = write!(text, "  (DestinationRule {dr} {}:{})", src.file, src.line);
            }
            (Some(dr), None) => {
                let _ = write!(text, "  (DestinationRule {dr})");
            }
            _ => text.push_str("  (no DestinationRule)"),
        }
        out.line("cluster", &text);
        if e.destinations.len() > 1 {
            out.more("(the heaviest destination is shown; each request draws one by weight)");
        }
        if let Some(s) = &d.subset {
            let labels = if d.subset_labels.is_empty() {
                "(no labels found)".to_owned()
            } else {
                join_labels(&d.subset_labels)
            };
            out.line("subset", &format!("{s} labels {labels}"));
        }
        if d.cluster.is_some() {
            if e.endpoints.is_empty() {
                out.line("endpoints", "none");
            }
            for (i, ep) in e.endpoints.iter().enumerate() {
                let mut text = format!("{}  {}", ep.address, ep.health);
                if !ep.labels.is_empty() {
                    let _ = write!(text, "  {}", join_labels(&ep.labels));
                }
                if ep.weight != 1 {
                    let _ = write!(text, "  weight {}", ep.weight);
                }
                if i == 0 {
                    out.line("endpoints", &text);
                } else {
                    out.more(&text);
                }
            }
        }
    }
    if e.route.is_some() {
        let p = &e.policies;
        let none = || "none".to_owned();
        let mut rows = vec![
            ("timeout", p.timeout.clone()),
            ("retries", p.retries.clone()),
            ("balancer", p.load_balancer.clone().unwrap_or_else(none)),
            ("fault", p.fault.clone().unwrap_or_else(none)),
            (
                "mirror",
                if p.mirror.is_empty() {
                    none()
                } else {
                    p.mirror.join(", ")
                },
            ),
        ];
        if let Some(r) = &p.rewrite {
            rows.push(("rewrite", r.clone()));
        }
        if !p.request_headers.is_empty() {
            rows.push(("request headers", p.request_headers.join(", ")));
        }
        if !p.response_headers.is_empty() {
            rows.push(("response headers", p.response_headers.join(", ")));
        }
        if p.cors {
            rows.push(("cors", "yes".to_owned()));
        }
        for (i, (key, value)) in rows.iter().enumerate() {
            let text = format!("{key:<16} {value}");
            if i == 0 {
                out.line("policies", &text);
            } else {
                out.more(&text);
            }
        }
    }
    out.line("outcome", &e.outcome);
    match &e.authz {
        Some(a) => render_authz(&mut out, a),
        None => out.line("authz", &format!("not evaluated: {}", authz_skipped(e))),
    }
    out.0
}

/// The `authz` section: `DECISION — why: policy ns/name rule N`, the destination workload and
/// the caller, then one line per policy that applies to the workload.
fn render_authz(out: &mut Report, a: &serde_json::Value) {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let mut line = format!("{} — {}", text(&a["decision"]), text(&a["why"]));
    if let (Some(p), Some(r)) = (a["policy"].as_str(), a["rule"].as_u64()) {
        let _ = write!(line, ": policy {p} rule {r}");
    }
    out.line("authz", &line);
    let w = &a["workload"];
    let labels: std::collections::BTreeMap<String, String> = w["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    let mut at = format!("at workload {}", text(&w["namespace"]));
    if !labels.is_empty() {
        let _ = write!(at, " {}", join_labels(&labels));
    }
    if let Some(sa) = w["service_account"].as_str() {
        let _ = write!(at, " (service account {sa})");
    }
    let _ = write!(at, ", endpoint {}", text(&w["endpoint"]));
    let n = w["endpoints"].as_u64().unwrap_or(1);
    if n > 1 {
        let _ = write!(at, " (the first of {n})");
    }
    out.more(&at);
    out.more(&format!("from {}", text(&a["from"])));
    let policies = a["policies"].as_array().map_or(&[][..], Vec::as_slice);
    if policies.is_empty() {
        out.more("no AuthorizationPolicy applies to this workload");
    }
    for p in policies {
        let rule = p["matched_rule"].as_u64().map_or_else(
            || "no rule matched".to_owned(),
            |r| format!("rule {r} matched"),
        );
        out.more(&format!(
            "{} {}{}: {rule}",
            text(&p["action"]),
            text(&p["policy"]),
            if p["dry_run"].as_bool() == Some(true) {
                " (dry run)"
            } else {
                ""
            },
        ));
    }
}

/// The text report being built.
#[derive(Default)]
struct Report(String);

impl Report {
    fn line(&mut self, label: &str, value: &str) {
        let line = format!("{label:<w$} {value}", w = LABEL - 1);
        let _ = writeln!(self.0, "{}", line.trim_end());
    }

    fn more(&mut self, value: &str) {
        let _ = writeln!(self.0, "{:LABEL$}{value}", "");
    }
}

fn name(n: &str) -> &str {
    if n.is_empty() { "(unnamed)" } else { n }
}

fn source(s: Option<&Source>) -> String {
    s.map(|s| format!("{}:{}", s.file, s.line))
        .unwrap_or_default()
}

fn percent(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

fn join_labels(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
