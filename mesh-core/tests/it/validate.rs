//! `mesh_core::validate` (the engine of `mesh-proxy analyze`): fixtures with exact findings,
//! every documented example, and the shared examples.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mesh_core::Snapshot;
use mesh_core::loader::{Loader, parse_str};
use mesh_core::validate::{
    Analyzer, CODES, Finding, Severity, analyze, check, findings_from_load_error,
};

/// The users' examples (../shared/examples next to the workspace).
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/examples");
const DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/analyze-codes.md");

/// The findings of `text` read as `file`: analysis findings, or load findings when it does not
/// load.
fn findings_of(text: &str, file: &str) -> Vec<Finding> {
    match parse_str(text, Path::new(file), "default") {
        Ok(resources) => analyze(&Snapshot::new(resources)),
        Err(e) => findings_from_load_error(&e),
    }
}

/// The YAML examples of docs/analyze-codes.md: code → (trigger, fix).
fn doc_examples() -> BTreeMap<String, (Option<String>, Option<String>)> {
    let docs = std::fs::read_to_string(DOCS).expect("docs/analyze-codes.md");
    let mut out: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    let mut code = String::new();
    let mut target: Option<bool> = None; // Some(true) = trigger, Some(false) = fix
    let mut block: Option<String> = None;
    for line in docs.lines() {
        if let Some(b) = block.as_mut() {
            if line == "```" {
                let text = block.take().unwrap_or_default();
                let entry = out.entry(code.clone()).or_default();
                match target.take() {
                    Some(true) => entry.0 = Some(text),
                    Some(false) => entry.1 = Some(text),
                    None => {}
                }
            } else {
                b.push_str(line);
                b.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("### ") {
            code = rest.chars().take(8).collect();
            target = None;
        } else if line.starts_with("Triggers it") {
            target = Some(true);
        } else if line.starts_with("Fix") {
            target = Some(false);
        } else if line == "```yaml" && !code.is_empty() {
            block = Some(String::new());
        }
    }
    out
}

/// Every documented example triggers its code, and its fix does not.
#[test]
fn documented_examples_trigger_their_code() {
    let examples = doc_examples();
    let mut problems = Vec::new();
    for info in CODES {
        if info.code == "MESH0001" {
            continue; // an unreadable path has no YAML to show
        }
        let file = format!("docs/{}.yaml", info.code);
        let Some((trigger, fix)) = examples.get(info.code) else {
            problems.push(format!("{}: no example", info.code));
            continue;
        };
        match trigger {
            None => problems.push(format!("{}: no trigger example", info.code)),
            Some(text) => {
                let found = findings_of(text, &file);
                if !found.iter().any(|f| f.code == info.code) {
                    problems.push(format!("{}: trigger gives {found:#?}", info.code));
                }
                for f in found.iter().filter(|f| f.code == info.code) {
                    assert_eq!(f.severity, info.severity, "{f}");
                    eprintln!("{f}");
                }
            }
        }
        match fix {
            None => problems.push(format!("{}: no fix example", info.code)),
            Some(text) => {
                if let Err(e) = parse_str(text, Path::new(&file), "default") {
                    problems.push(format!("{}: fix does not load: {e}", info.code));
                    continue;
                }
                let found = findings_of(text, &file);
                if found.iter().any(|f| f.code == info.code) {
                    problems.push(format!("{}: fix still gives {found:#?}", info.code));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn shared_examples_have_no_errors() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(EXAMPLES)
        .expect("examples folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let snapshot = Loader::new(&files)
        .namespace("default")
        .load()
        .expect("examples load");
    let findings = analyze(&snapshot);
    for f in &findings {
        eprintln!("{f}");
    }
    let errors: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    for file in &files {
        let snapshot = Loader::new([file])
            .namespace("default")
            .load()
            .expect("example loads");
        for f in analyze(&snapshot) {
            eprintln!("alone: {f}");
            assert_ne!(f.severity, Severity::Error, "{f}");
        }
    }
}

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/validate");

fn data(name: &str) -> PathBuf {
    Path::new(DATA).join(name)
}

/// Findings of the fixtures `names` loaded together in namespace `default`.
fn load(names: &[&str]) -> Vec<Finding> {
    let files: Vec<PathBuf> = names.iter().map(|n| data(n)).collect();
    match Loader::new(&files).namespace("default").load() {
        Ok(snapshot) => analyze(&snapshot),
        Err(e) => findings_from_load_error(&e),
    }
}

/// `SEVERITY CODE FILE:LINE` of each finding, file names without their folder.
fn lines(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| {
            let file = f
                .location
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            format!(
                "{} {} {}:{}",
                f.severity,
                f.code,
                file.unwrap_or_default(),
                f.location.line
            )
        })
        .collect()
}

/// The fixtures `names` give exactly `want`, in `analyze` order.
#[track_caller]
fn expect(names: &[&str], want: &[&str]) -> Vec<Finding> {
    let findings = load(names);
    let got = lines(&findings);
    assert_eq!(
        got,
        want,
        "\n{}",
        findings
            .iter()
            .map(|f| format!("{f}\n"))
            .collect::<String>()
    );
    findings
}

fn find<'a>(findings: &'a [Finding], code: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("no {code}"))
}

// ---------------------------------------------------------------- VirtualService

#[test]
fn virtual_service_references_and_routes() {
    let findings = expect(
        &["registry.yaml", "vs-routes.yaml"],
        &[
            "ERROR MESH0101 vs-routes.yaml:17", // SEMANTICS VS-16: subset v3 undefined
            "WARNING MESH0111 vs-routes.yaml:18", // VS-14: 90 + 20
            "WARNING MESH0130 vs-routes.yaml:24", // HOST-11: ratings has no ServiceEntry
            "WARNING MESH0127 vs-routes.yaml:26", // VS-1: after the catch-all
            "ERROR MESH0112 vs-routes.yaml:28", // VS-3: RE2 syntax
        ],
    );
    let subset = find(&findings, "MESH0101");
    assert_eq!(
        subset.message,
        "subset \"v3\" is not defined in any DestinationRule for reviews.default.svc.cluster.local"
    );
    assert_eq!(subset.location.column, 9, "the `subset:` key");
    assert_eq!(
        subset.resource.as_deref(),
        Some("VirtualService/default/reviews")
    );
    assert_eq!(
        find(&findings, "MESH0130").message.split(':').next(),
        Some(
            "destination host ratings.default.svc.cluster.local is not defined by any ServiceEntry"
        )
    );
}

#[test]
fn virtual_service_hosts() {
    expect(
        &["registry.yaml", "vs-hosts.yaml"],
        &[
            "ERROR MESH0104 vs-hosts.yaml:7", // *.example.com covers reviews.example.com
            "WARNING MESH0105 vs-hosts.yaml:8", // `*` on a mesh VirtualService
            "ERROR MESH0103 vs-hosts.yaml:16", // reviews_v2
            "ERROR MESH0109 vs-hosts.yaml:18", // destination host `*`
            "ERROR MESH0106 vs-hosts.yaml:23", // no routes
        ],
    );
}

#[test]
fn virtual_service_matches() {
    let findings = expect(
        &["registry.yaml", "vs-match.yaml"],
        &[
            "ERROR MESH0125 vs-match.yaml:9",    // header name with a space
            "ERROR MESH0113 vs-match.yaml:10",   // empty prefix
            "ERROR MESH0113 vs-match.yaml:12",   // port 70000
            "ERROR MESH0114 vs-match.yaml:18",   // VS-2: `- {}`
            "WARNING MESH0127 vs-match.yaml:20", // after the `{}` catch-all
        ],
    );
    assert_eq!(
        find(&findings, "MESH0125").location.column,
        9,
        "the header name key"
    );
}

#[test]
fn virtual_service_policies() {
    expect(
        &["registry.yaml", "vs-policies.yaml"],
        &[
            "ERROR MESH0115 vs-policies.yaml:8",    // timeout 500us
            "ERROR MESH0119 vs-policies.yaml:10",   // attempts -1
            "WARNING MESH0120 vs-policies.yaml:11", // retryOn bogus
            "WARNING MESH0118 vs-policies.yaml:13", // VS-27: delay without percentage
            "ERROR MESH0117 vs-policies.yaml:14",   // httpStatus 700
            "ERROR MESH0117 vs-policies.yaml:14",   // percentage 120
            "WARNING MESH0121 vs-policies.yaml:18", // RETRY-8: perTryTimeout >= timeout
            "ERROR MESH0110 vs-policies.yaml:21",   // weight -5
            "ERROR MESH0109 vs-policies.yaml:22",   // destination without host
            "WARNING MESH0116 vs-policies.yaml:25", // VS-34: timeout 0s
        ],
    );
}

#[test]
fn virtual_service_actions() {
    expect(
        &["registry.yaml", "vs-actions.yaml"],
        &[
            "ERROR MESH0122 vs-actions.yaml:9",    // redirectCode 304
            "ERROR MESH0107 vs-actions.yaml:10",   // VS-18: route and redirect
            "ERROR MESH0123 vs-actions.yaml:12",   // status 99
            "ERROR MESH0124 vs-actions.yaml:14",   // uri and uriRegexRewrite
            "ERROR MESH0108 vs-actions.yaml:16",   // no action
            "WARNING MESH0126 vs-actions.yaml:19", // VS-24: delegate
            "ERROR MESH0129 vs-actions.yaml:23",   // mirror and mirrors
            "ERROR MESH0129 vs-actions.yaml:23",   // mirror percentage 200
            "INFO MESH0132 vs-actions.yaml:37",    // HOST-10: gateways only
        ],
    );
}

// ---------------------------------------------------------------- DestinationRule

#[test]
fn destination_rules() {
    expect(
        &["dr.yaml", "registry.yaml"],
        &[
            "ERROR MESH0205 dr.yaml:9",    // simple and consistentHash
            "WARNING MESH0211 dr.yaml:9",  // no hash key
            "ERROR MESH0205 dr.yaml:10",   // maglev table size not prime
            "ERROR MESH0206 dr.yaml:12",   // connectTimeout 0s (idleTimeout 0s is allowed)
            "ERROR MESH0207 dr.yaml:12",   // maxConnections -1
            "ERROR MESH0206 dr.yaml:13",   // 1.5ms
            "WARNING MESH0905 dr.yaml:15", // consecutiveErrors
            "ERROR MESH0204 dr.yaml:16",   // maxEjectionPercent 120
            "ERROR MESH0209 dr.yaml:17",   // MUTUAL without certificate
            "ERROR MESH0208 dr.yaml:19",   // port-level entry without policy
            "ERROR MESH0202 dr.yaml:23",   // second v1
            "ERROR MESH0203 dr.yaml:25",   // subset without name
            "ERROR MESH0208 dr.yaml:26",   // trafficPolicy: {}
            "WARNING MESH0213 dr.yaml:32", // DR-5: no ServiceEntry for the host
            "INFO MESH0212 dr.yaml:35",    // DR-11: locality not applied
            "WARNING MESH0210 dr.yaml:36", // DR-18: caCertificates with ISTIO_MUTUAL
            "WARNING MESH0211 dr.yaml:45", // useSourceIp: false
            "WARNING MESH0214 dr.yaml:48", // VS-16: no endpoint has version=v3
        ],
    );
}

// ---------------------------------------------------------------- ServiceEntry, WorkloadEntry

#[test]
fn service_entries() {
    expect(
        &["se.yaml"],
        &[
            "ERROR MESH0301 se.yaml:5",    // HOST-4: bare `*`
            "ERROR MESH0304 se.yaml:5",    // DNS without endpoints, wildcard host
            "ERROR MESH0311 se.yaml:6",    // CIDR with DNS resolution
            "ERROR MESH0311 se.yaml:6",    // 10.0.0.300
            "ERROR MESH0306 se.yaml:10",   // port 80 twice
            "ERROR MESH0306 se.yaml:10",   // name http twice
            "ERROR MESH0308 se.yaml:10",   // HTTP3
            "ERROR MESH0312 se.yaml:10",   // two hosts, non-HTTP port
            "ERROR MESH0307 se.yaml:11",   // port 0
            "ERROR MESH0307 se.yaml:11",   // Bad_Name
            "ERROR MESH0312 se.yaml:20",   // two hosts, TCP port
            "ERROR MESH0303 se.yaml:22",   // STATIC endpoint that is a DNS name
            "ERROR MESH0310 se.yaml:23",   // endpoint port name unknown
            "ERROR MESH0302 se.yaml:24",   // SE-1: endpoints and workloadSelector
            "WARNING MESH0315 se.yaml:24", // SE-5: selects no WorkloadEntry
            "WARNING MESH0305 se.yaml:31", // SE-3: wildcard host with STATIC endpoints
            "WARNING MESH0309 se.yaml:43", // selector with resolution NONE
        ],
    );
}

#[test]
fn workload_entries() {
    expect(
        &["workloads.yaml"],
        &[
            "INFO MESH0314 workloads.yaml:12", // WE-1: other namespace, nobody selects it
            "ERROR MESH0313 workloads.yaml:22", // no address
            "WARNING MESH0214 workloads.yaml:33", // no endpoint has version=v1
        ],
    );
}

// ---------------------------------------------------------------- security

#[test]
fn security_policies() {
    expect(
        &["security.yaml"],
        &[
            "ERROR MESH0401 security.yaml:6", // PA-3: portLevelMtls without selector
            "WARNING MESH0404 security.yaml:11", // PA-2: second namespace-wide policy
            "WARNING MESH0403 security.yaml:19", // PA-1: selector in the root namespace
            "ERROR MESH0906 security.yaml:20", // app: "*"
            "ERROR MESH0402 security.yaml:22", // port 0
            "WARNING MESH0416 security.yaml:32", // method post
            "ERROR MESH0415 security.yaml:33", // AUTHZ-10: {**} not last
            "WARNING MESH0416 security.yaml:33", // path without leading /
            "ERROR MESH0410 security.yaml:34", // port http
            "WARNING MESH0413 security.yaml:37", // AUTHZ-9: * in the middle
            "WARNING MESH0414 security.yaml:37", // AUTHZ-11: spiffe://
            "WARNING MESH0414 security.yaml:37", // a bare name is no principal
            "ERROR MESH0412 security.yaml:38", // AUTHZ-13: serviceAccounts with principals
            "ERROR MESH0409 security.yaml:39", // /33
            "ERROR MESH0408 security.yaml:40", // source: {}
            "ERROR MESH0411 security.yaml:42", // AUTHZ-19: unknown key
            "ERROR MESH0411 security.yaml:45", // source.ip value
            "ERROR MESH0405 security.yaml:50", // CUSTOM without provider
            "WARNING MESH0406 security.yaml:51", // AUTHZ-4: CUSTOM not supported
            "ERROR MESH0407 security.yaml:59", // DENY without rules
            "ERROR MESH0405 security.yaml:60", // provider with DENY
        ],
    );
}

#[test]
fn root_namespace_is_configurable() {
    let files = [data("security.yaml")];
    let snapshot = Loader::new(&files).load().expect("loads");
    let custom = Analyzer::new().root_namespace("prod").analyze(&snapshot);
    // istio-system is an ordinary namespace now; prod is the root.
    assert!(!custom.iter().any(|f| f.code == "MESH0403"));
    let mesh_wide = find(&custom, "MESH0404");
    assert!(
        mesh_wide
            .message
            .starts_with("mesh-wide PeerAuthentication prod/default"),
        "{mesh_wide}"
    );
}

// ---------------------------------------------------------------- Sidecar

#[test]
fn sidecars() {
    expect(
        &["sidecar.yaml"],
        &[
            "ERROR MESH0504 sidecar.yaml:7",   // defaultEndpoint on another host
            "ERROR MESH0501 sidecar.yaml:9",   // not namespace/host
            "ERROR MESH0503 sidecar.yaml:9",   // catch-all listener not last
            "WARNING MESH0505 sidecar.yaml:9", // covered by ./*
            "ERROR MESH0503 sidecar.yaml:10",  // listener without hosts
            "ERROR MESH0502 sidecar.yaml:14",  // second Sidecar without selector
            "ERROR MESH0506 sidecar.yaml:18",  // egressProxy with REGISTRY_ONLY
        ],
    );
}

// ---------------------------------------------------------------- several resources

#[test]
fn cross_resource_visibility_and_duplicates() {
    let findings = expect(
        &["cross.yaml"],
        &[
            "WARNING MESH0901 cross.yaml:5", // HOST-9: the older VirtualService owns the host
            "WARNING MESH0903 cross.yaml:8", // HOST-8: the DR's exportTo hides subset v2
            "INFO MESH0907 cross.yaml:24",   // not exported to namespace default
            "WARNING MESH0902 cross.yaml:41", // SE-8: host defined twice
            "ERROR MESH0904 cross.yaml:44",  // `.` and prod are the same
            "INFO MESH0907 cross.yaml:44",
            "WARNING MESH0908 cross.yaml:50", // the same name twice
            "INFO MESH0907 cross.yaml:53",
        ],
    );
    let owner = find(&findings, "MESH0901");
    assert!(
        owner.message.contains("VirtualService prod/reviews-old"),
        "{owner}"
    );
    // From namespace prod only the resource exported to nobody is out of sight.
    let files = [data("cross.yaml")];
    let snapshot = Loader::new(&files).load().expect("loads");
    let in_prod = Analyzer::new().namespace("prod").analyze(&snapshot);
    let hidden: Vec<u32> = in_prod
        .iter()
        .filter(|f| f.code == "MESH0907")
        .map(|f| f.location.line)
        .collect();
    assert_eq!(hidden, [53]);
}

// ---------------------------------------------------------------- locations and formats

#[test]
fn list_items_json_and_load_errors_are_located() {
    let list = expect(&["list.yaml"], &["ERROR MESH0101 list.yaml:20"]);
    assert_eq!(list[0].location.column, 11);
    assert_eq!(
        list[0].resource.as_deref(),
        Some("VirtualService/default/api")
    );
    let json = expect(
        &["flow.json"],
        &["WARNING MESH0213 flow.json:3", "ERROR MESH0202 flow.json:4"],
    );
    assert_eq!(
        json[1].location.column, 40,
        "the second subset's `name` key"
    );
    let load = expect(
        &["unknown-field.yaml"],
        &[
            "ERROR MESH0007 unknown-field.yaml:8",
            "ERROR MESH0008 unknown-field.yaml:15",
        ],
    );
    assert_eq!(
        load[0].message,
        "unknown field `retires`, did you mean `retries`?"
    );
    assert_eq!(load[0].resource, None);
    let missing = Loader::new([data("missing.yaml")])
        .load()
        .expect_err("no such file");
    assert_eq!(
        lines(&findings_from_load_error(&missing)),
        ["ERROR MESH0001 missing.yaml:0"]
    );
}

#[test]
fn text_json_and_check_formats() {
    let findings = load(&["registry.yaml", "vs-routes.yaml"]);
    let subset = find(&findings, "MESH0101");
    let file = data("vs-routes.yaml").display().to_string();
    assert_eq!(
        subset.to_string(),
        format!(
            "ERROR MESH0101 {file}:17: subset \"v3\" is not defined in any DestinationRule for \
             reviews.default.svc.cluster.local"
        )
    );
    let json = serde_json::to_value(subset).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "severity": "ERROR",
            "code": "MESH0101",
            "file": file,
            "line": 17,
            "column": 9,
            "resource": "VirtualService/default/reviews",
            "message": "subset \"v3\" is not defined in any DestinationRule for reviews.default.svc.cluster.local",
        })
    );
    let files = [data("registry.yaml"), data("vs-routes.yaml")];
    let snapshot = Loader::new(&files).load().expect("loads");
    let errors = check(&snapshot).expect_err("has errors");
    let want: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors, want);
    assert_eq!(check(&Snapshot::new(Vec::new())), Ok(()));
    let files = [data("registry.yaml")];
    assert_eq!(check(&Loader::new(&files).load().expect("loads")), Ok(()));
}

#[test]
fn resources_built_in_code_point_at_their_source() {
    // Without a file to re-read, findings keep the resource's own location.
    let yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\n\
                spec: {host: x, subsets: [{name: a}, {name: a}]}\n";
    let findings = findings_of(yaml, "/nonexistent/in-memory.yaml");
    let dup = find(&findings, "MESH0202");
    assert_eq!((dup.location.line, dup.location.column), (1, 1));
}
