//! Loader tests: files, folders, multi-document, List, errors with file:line:column.

use std::fs;
use std::path::{Path, PathBuf};

use mesh_core::loader::{ConfigError, ConfigErrorKind, LoadError, Loader, parse_str};
use mesh_core::model::{AnyResource, Kind, Location};
use proptest::prelude::*;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/loader");

fn data(name: &str) -> PathBuf {
    Path::new(DATA).join(name)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().expect("a file path has a parent")).expect("create dir");
    fs::write(&path, text).expect("write fixture");
    path
}

/// The errors of `text` read as `t.yaml`.
fn errors(text: &str) -> Vec<ConfigError> {
    parse_str(text, Path::new("t.yaml"), "default")
        .expect_err("the text must not load")
        .errors
}

/// The only error of `text` read as `t.yaml`.
fn error(text: &str) -> ConfigError {
    let mut errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.remove(0)
}

fn at(line: u32, column: u32) -> Location {
    Location::new("t.yaml", line, column)
}

fn keys(resources: &[AnyResource]) -> Vec<String> {
    resources.iter().map(AnyResource::key).collect()
}

const SE: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: NAME}
spec:
  hosts: [NAME.example.com]
";

fn se(name: &str) -> String {
    SE.replace("NAME", name)
}

// ---------------------------------------------------------------- documents and files

#[test]
fn multi_document_file() {
    let loaded = Loader::new([data("multi.yaml")])
        .namespace("shop")
        .load_files()
        .unwrap();
    let snapshot = &loaded.snapshot;
    assert_eq!(
        keys(snapshot.resources()),
        [
            "ServiceEntry/shop/reviews",
            "WorkloadEntry/shop/reviews-v1",
            "DestinationRule/other/reviews",
            "ServiceEntry/shop/ratings",
        ]
    );
    let sources: Vec<String> = snapshot
        .resources()
        .iter()
        .map(|r| r.source().to_string())
        .collect();
    let file = data("multi.yaml").display().to_string();
    assert_eq!(
        sources,
        [
            format!("{file}:3:1"),
            format!("{file}:11:1"),
            format!("{file}:24:3"),
            format!("{file}:35:1")
        ]
    );
    assert_eq!(loaded.files, [data("multi.yaml")]);
    let dr = snapshot.destination_rules().next().unwrap();
    assert_eq!(dr.api_version, "networking.istio.io/v1alpha3");
    assert_eq!(dr.spec.host, "reviews");
    assert_eq!(
        snapshot.workload_entries().next().unwrap().spec.ports["http"],
        9080
    );
}

#[test]
fn kind_list_as_kubectl_writes_it() {
    let resources = parse_str(
        &fs::read_to_string(data("list.yaml")).unwrap(),
        Path::new("list.yaml"),
        "default",
    )
    .unwrap();
    assert_eq!(
        keys(&resources),
        [
            "ServiceEntry/default/a",
            "ServiceEntry/prod/b",
            "VirtualService/default/c"
        ]
    );
    let sources: Vec<String> = resources.iter().map(|r| r.source().to_string()).collect();
    assert_eq!(
        sources,
        ["list.yaml:3:3", "list.yaml:7:3", "list.yaml:17:3"]
    );
}

#[test]
fn list_items_report_their_own_errors() {
    let text = "\
kind: List
apiVersion: v1
items:
- apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: a}
  spec: {hostz: [a]}
";
    let e = error(text);
    assert_eq!(e.location, at(7, 10));
    assert_eq!(e.message, "unknown field `hostz`, did you mean `hosts`?");
}

#[test]
fn json_files_load_like_yaml() {
    let loaded = Loader::new([data("json")]).load_files().unwrap();
    assert_eq!(
        keys(loaded.snapshot.resources()),
        ["ServiceEntry/default/from-json"]
    );
    assert_eq!(loaded.snapshot.resources()[0].source().line, 1);
}

#[test]
fn folders_are_walked_recursively_in_path_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "b.yaml", &se("b"));
    write(d, "a/z.yaml", &se("az"));
    write(d, "a/deeper/y.yml", &se("ady"));
    write(d, "a.yml", &se("a"));
    write(
        d,
        "c.JSON",
        r#"{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "c"}}"#,
    );
    write(d, "notes.txt", "not: [yaml");
    write(d, "README.md", "# not yaml");
    write(d, ".hidden.yaml", "broken: [");
    write(d, ".git/config.yaml", "broken: [");
    write(d, "a/.cache/x.yaml", "broken: [");
    let loaded = Loader::new([d]).load_files().unwrap();
    let rel: Vec<PathBuf> = loaded
        .files
        .iter()
        .map(|f| f.strip_prefix(d).unwrap().to_path_buf())
        .collect();
    assert_eq!(
        rel,
        ["a/deeper/y.yml", "a/z.yaml", "a.yml", "b.yaml", "c.JSON"].map(PathBuf::from)
    );
    let names: Vec<&str> = loaded
        .snapshot
        .resources()
        .iter()
        .map(AnyResource::name)
        .collect();
    assert_eq!(names, ["ady", "az", "a", "b", "c"]);
    assert_eq!(Loader::new([d]).files().unwrap(), loaded.files);
}

#[test]
fn explicit_files_are_read_whatever_their_extension_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let txt = write(dir.path(), "mesh.conf", &se("conf"));
    let yaml = write(dir.path(), "x.yaml", &se("x"));
    let loaded = Loader::new([&txt, &yaml, &dir.path().to_path_buf()])
        .load_files()
        .unwrap();
    assert_eq!(loaded.files, [txt, yaml]);
    assert_eq!(
        keys(loaded.snapshot.resources()),
        ["ServiceEntry/default/conf", "ServiceEntry/default/x"]
    );
}

#[cfg(unix)]
#[test]
fn configmap_mount_is_read_once_through_its_symlinks() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stamp = "..2024_05_01_12_00_00.123456789";
    write(d, &format!("{stamp}/se.yaml"), &se("one"));
    write(d, &format!("{stamp}/vs.yaml"), &se("two"));
    symlink(stamp, d.join("..data")).unwrap();
    symlink("..data/se.yaml", d.join("se.yaml")).unwrap();
    symlink("..data/vs.yaml", d.join("vs.yaml")).unwrap();
    let loaded = Loader::new([d]).load_files().unwrap();
    assert_eq!(loaded.files, [d.join("se.yaml"), d.join("vs.yaml")]);
    assert_eq!(
        keys(loaded.snapshot.resources()),
        ["ServiceEntry/default/one", "ServiceEntry/default/two"]
    );
}

#[cfg(unix)]
#[test]
fn symlinked_folders_are_followed_without_looping() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "real/a.yaml", &se("a"));
    symlink(d.join("real"), d.join("real/loop")).unwrap();
    symlink(d.join("real"), d.join("zlink")).unwrap();
    let loaded = Loader::new([d]).load_files().unwrap();
    assert_eq!(loaded.files, [d.join("real/a.yaml")]);
}

#[test]
fn namespace_defaults_to_the_loaders() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: ''}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: c, namespace: prod}
";
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ns.yaml", text);
    let default = Loader::new([&path]).load().unwrap();
    assert_eq!(
        keys(default.resources()),
        [
            "ServiceEntry/default/a",
            "ServiceEntry/default/b",
            "ServiceEntry/prod/c"
        ]
    );
    let shop = Loader::new([&path]).namespace("shop").load().unwrap();
    assert_eq!(
        keys(shop.resources()),
        [
            "ServiceEntry/shop/a",
            "ServiceEntry/shop/b",
            "ServiceEntry/prod/c"
        ]
    );
    assert!(
        shop.resources()
            .iter()
            .all(|r| r.metadata().namespace.is_some())
    );
}

#[test]
fn foreign_kinds_are_skipped_and_listed() {
    let loaded = Loader::new([data("mixed.yaml")]).load_files().unwrap();
    assert_eq!(
        keys(loaded.snapshot.resources()),
        ["VirtualService/default/reviews"]
    );
    let skipped: Vec<(String, String, String, u32)> = loaded
        .skipped
        .iter()
        .map(|s| {
            (
                s.api_version.clone(),
                s.kind.clone(),
                s.name.clone(),
                s.location.line,
            )
        })
        .collect();
    assert_eq!(
        skipped,
        [
            (
                "apps/v1".into(),
                "Deployment".into(),
                "reviews-v1".into(),
                2
            ),
            ("v1".into(), "Service".into(), "reviews".into(), 16),
            ("v1".into(), "ConfigMap".into(), "settings".into(), 24),
            (
                "networking.istio.io/v1".into(),
                "Gateway".into(),
                "gw".into(),
                40
            ),
            (
                "security.istio.io/v1".into(),
                "RequestAuthentication".into(),
                "jwt".into(),
                47
            ),
            (
                "gateway.networking.k8s.io/v1".into(),
                "HTTPRoute".into(),
                "r".into(),
                51
            ),
            (
                "example.com/v1".into(),
                "Sidecar".into(),
                "not-istio".into(),
                55
            ),
        ]
    );
}

#[test]
fn status_and_spec_before_kind_are_accepted() {
    let text = "\
spec:
  hosts: [a.example.com]
  resolution: DNS
metadata: {name: a}
kind: ServiceEntry
apiVersion: networking.istio.io/v1beta1
status: {anything: [goes]}
";
    let resources = parse_str(text, Path::new("t.yaml"), "default").unwrap();
    let AnyResource::ServiceEntry(se) = &resources[0] else {
        panic!("{resources:?}")
    };
    assert_eq!(se.spec.hosts, ["a.example.com"]);
    assert_eq!(se.source.line, 1);
    assert_eq!(se.api_version, "networking.istio.io/v1beta1");
}

#[test]
fn empty_and_null_specs_are_default_specs() {
    let text = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: prod}
spec: {}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
";
    let resources = parse_str(text, Path::new("t.yaml"), "default").unwrap();
    let kinds: Vec<Kind> = resources.iter().map(AnyResource::kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::AuthorizationPolicy,
            Kind::PeerAuthentication,
            Kind::Sidecar
        ]
    );
}

#[test]
fn empty_files_and_documents_yield_nothing() {
    for text in [
        "",
        "\n\n",
        "# only a comment\n",
        "---\n---\n...\n",
        "~\n",
        "---\nnull\n",
    ] {
        assert_eq!(
            parse_str(text, Path::new("t.yaml"), "default").unwrap(),
            [],
            "{text:?}"
        );
    }
}

#[test]
fn anchors_aliases_and_merge_keys_work_within_a_document() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: &policy
    loadBalancer: {simple: LEAST_REQUEST}
  subsets:
  - name: v1
    labels: &v1 {version: v1}
    trafficPolicy: *policy
  - name: v1-again
    labels:
      <<: *v1
      tier: gold
";
    let resources = parse_str(text, Path::new("t.yaml"), "default").unwrap();
    let AnyResource::DestinationRule(dr) = &resources[0] else {
        panic!()
    };
    assert_eq!(dr.spec.subsets[0].traffic_policy, dr.spec.traffic_policy);
    assert_eq!(dr.spec.subsets[1].labels["version"], "v1");
    assert_eq!(dr.spec.subsets[1].labels["tier"], "gold");
}

#[test]
fn users_examples_load_clean() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/examples");
    if !examples.exists() {
        return;
    }
    let loaded = Loader::new([&examples])
        .load_files()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.files.len() >= 8, "{:?}", loaded.files);
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    for kind in [
        Kind::ServiceEntry,
        Kind::WorkloadEntry,
        Kind::VirtualService,
        Kind::DestinationRule,
    ] {
        assert!(
            loaded.snapshot.resources().iter().any(|r| r.kind() == kind),
            "no {kind}"
        );
    }
}

// ---------------------------------------------------------------- errors

const VS_RETIRES: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
    retires:
      attempts: 3
";

#[test]
fn unknown_field_in_a_nested_spec_points_at_the_key() {
    assert_eq!(
        error(VS_RETIRES),
        ConfigError {
            location: at(10, 5),
            message: "unknown field `retires`, did you mean `retries`?".into(),
            kind: ConfigErrorKind::UnknownField {
                field: "retires".into(),
                suggestion: Some("retries".into()),
            },
        }
    );
    assert_eq!(
        error(VS_RETIRES).to_string(),
        "t.yaml:10:5: unknown field `retires`, did you mean `retries`?"
    );
}

#[test]
fn unknown_field_without_a_near_name_lists_the_fields() {
    let e = error(&format!("{}  colour: blue\n", se("a")));
    assert_eq!(e.location, at(6, 3));
    assert!(
        e.message
            .starts_with("unknown field `colour`, expected one of `hosts`, `addresses`, `ports`"),
        "{}",
        e.message
    );
    assert_eq!(
        e.kind,
        ConfigErrorKind::UnknownField {
            field: "colour".into(),
            suggestion: None
        }
    );
}

#[test]
fn unknown_variant_points_at_the_value_with_a_suggestion() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: LEAST_REQUESTS
";
    assert_eq!(
        error(text),
        ConfigError {
            location: at(8, 15),
            message: "unknown value `LEAST_REQUESTS`, did you mean `LEAST_REQUEST`?".into(),
            kind: ConfigErrorKind::UnknownVariant {
                variant: "LEAST_REQUESTS".into(),
                suggestion: Some("LEAST_REQUEST".into()),
            },
        }
    );
}

#[test]
fn invalid_values_point_at_the_value() {
    let text = format!("{}  ports:\n  - number: -80\n    name: http\n", se("a"));
    assert_eq!(
        error(&text),
        ConfigError {
            location: at(7, 13),
            message: "invalid value: expected a whole number from 0 to 4294967295".into(),
            kind: ConfigErrorKind::InvalidValue,
        }
    );
    let text = format!("{}  exportTo: .\n", se("a"));
    assert_eq!(error(&text).location, at(6, 13));
    assert_eq!(error(&text).message, "expected a list");
    let text = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec:
  http:
  - timeout: 5 seconds
";
    let e = error(text);
    assert_eq!(
        (e.location, e.kind),
        (at(6, 14), ConfigErrorKind::InvalidValue)
    );
}

#[test]
fn unknown_metadata_field() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: a
  lables: {app: a}
";
    let e = error(text);
    assert_eq!(e.location, at(5, 3));
    assert_eq!(e.message, "unknown field `lables`, did you mean `labels`?");
}

#[test]
fn unknown_top_level_key_with_suggestion() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a}
specs:
  hosts: [a]
";
    assert_eq!(
        error(text),
        ConfigError {
            location: at(4, 1),
            message: "unknown field `specs`, did you mean `spec`?".into(),
            kind: ConfigErrorKind::UnknownField {
                field: "specs".into(),
                suggestion: Some("spec".into())
            },
        }
    );
}

#[test]
fn missing_name_points_at_metadata_or_the_document() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  namespace: prod
spec: {hosts: [a]}
";
    let missing = ConfigErrorKind::MissingField {
        field: "metadata.name".into(),
    };
    assert_eq!(
        error(text),
        ConfigError {
            location: at(3, 1),
            message: "missing `metadata.name`".into(),
            kind: missing.clone()
        }
    );
    let text =
        "# comment\n\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nspec: {hosts: [a]}\n";
    assert_eq!(
        (error(text).location, error(text).kind),
        (at(3, 1), missing.clone())
    );
    let text = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ''}\n";
    assert_eq!(
        (error(text).location, error(text).kind),
        (at(3, 1), missing)
    );
}

#[test]
fn missing_type_meta() {
    let text = "---\nmetadata: {name: a}\nspec: {hosts: [a]}\n";
    assert_eq!(
        error(text),
        ConfigError {
            location: at(2, 1),
            message: "missing `apiVersion` and `kind`: a document must be a Kubernetes resource"
                .into(),
            kind: ConfigErrorKind::MissingTypeMeta,
        }
    );
    let e = error("kind: ServiceEntry\nmetadata: {name: a}\n");
    assert_eq!(
        (e.location, e.message.as_str()),
        (at(1, 1), "missing `apiVersion`")
    );
    let e = error("apiVersion: networking.istio.io/v1\nmetadata: {name: a}\n");
    assert_eq!(
        (e.location, e.message.as_str()),
        (at(1, 1), "missing `kind`")
    );
}

#[test]
fn unsupported_api_version_lists_the_accepted_ones() {
    let text = "\
apiVersion: networking.istio.io/v2
kind: VirtualService
metadata: {name: a}
spec: {hosts: [a], bogus: 1}
";
    assert_eq!(
        error(text),
        ConfigError {
            location: at(1, 13),
            message: "unsupported apiVersion `networking.istio.io/v2` for VirtualService, expected one of \
                      `networking.istio.io/v1`, `networking.istio.io/v1beta1`, `networking.istio.io/v1alpha3`"
                .into(),
            kind: ConfigErrorKind::UnsupportedApiVersion {
                kind: Kind::VirtualService,
                api_version: "networking.istio.io/v2".into(),
            },
        }
    );
    let e = error(
        "apiVersion: networking.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\n",
    );
    assert!(
        e.message
            .contains("`security.istio.io/v1`, `security.istio.io/v1beta1`"),
        "{}",
        e.message
    );
}

#[test]
fn misspelled_istio_kind_is_an_error() {
    let text = "apiVersion: networking.istio.io/v1\nkind: VirtualSevice\nmetadata: {name: a}\n";
    assert_eq!(
        error(text),
        ConfigError {
            location: at(2, 7),
            message:
                "unknown networking.istio.io kind `VirtualSevice`, did you mean `VirtualService`?"
                    .into(),
            kind: ConfigErrorKind::UnknownKind {
                kind: "VirtualSevice".into(),
                suggestion: Some("VirtualService".into()),
            },
        }
    );
}

#[test]
fn duplicate_keys_are_errors() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a}
spec:
  hosts: [a]
  hosts: [b]
";
    assert_eq!(
        error(text),
        ConfigError {
            location: at(6, 3),
            message: "duplicate key `hosts`".into(),
            kind: ConfigErrorKind::DuplicateKey {
                key: "hosts".into()
            },
        }
    );
}

#[test]
fn syntax_errors() {
    let e = error("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a\n");
    assert_eq!(
        e,
        ConfigError {
            location: at(3, 11),
            message: "unclosed bracket '{'".into(),
            kind: ConfigErrorKind::Syntax
        }
    );
    let e = error("apiVersion: v1\nkind: Service\nspec:\n\tports: []\n");
    assert_eq!((e.kind, e.location.line), (ConfigErrorKind::Syntax, 4));
    assert!(e.message.contains("tab"), "{}", e.message);
    let e = error("- just\n- a list\n");
    assert_eq!(
        (e.kind, e.location),
        (ConfigErrorKind::InvalidValue, at(1, 1))
    );
    assert_eq!(e.message, "expected a mapping (`key: value` lines)");
}

#[test]
fn spec_before_kind_reports_at_the_spec_key() {
    let text = "\
metadata: {name: a}
spec:
  hosts: [a]
  hots: [b]
apiVersion: networking.istio.io/v1
kind: ServiceEntry
";
    let e = error(text);
    assert_eq!(e.location, at(2, 1));
    assert_eq!(
        e.message,
        "unknown field `hots`, did you mean `hosts`? (in this spec; put `kind` before `spec` for the exact line)"
    );
    assert_eq!(
        e.kind,
        ConfigErrorKind::UnknownField {
            field: "hots".into(),
            suggestion: Some("hosts".into())
        }
    );
}

#[test]
fn each_document_reports_and_later_documents_still_load() {
    let text = format!(
        "{}---\n{}---\n{}  bogus: 1\n---\n{}",
        se("ok"),
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {}\nspecz: {}\n",
        se("bad"),
        se("also-ok")
    );
    let errors = errors(&text);
    let summary: Vec<(u32, u32, &str)> = errors
        .iter()
        .map(|e| (e.location.line, e.location.column, e.message.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (9, 1, "missing `metadata.name`"),
            (10, 1, "unknown field `specz`, did you mean `spec`?"),
            (
                17,
                3,
                "unknown field `bogus`, expected one of `hosts`, `addresses`, `ports`, `location`, \
                     `resolution`, `endpoints`, `workloadSelector`, `exportTo`, `subjectAltNames`"
            ),
        ]
    );
}

#[test]
fn all_files_are_loaded_and_all_errors_collected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "a-good.yaml", &se("good"));
    let b = write(d, "b-bad.yaml", &format!("{}  hots: []\n", se("b")));
    write(d, "c-good.yaml", &se("c"));
    let e = write(d, "e-bad.yaml", VS_RETIRES);
    let missing = d.join("nope.yaml");
    let err: LoadError = Loader::new([d.to_path_buf(), missing.clone()])
        .load()
        .unwrap_err();
    let lines: Vec<String> = err.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            format!(
                "{}: cannot read config path: no such file or directory",
                missing.display()
            ),
            format!(
                "{}:6:3: unknown field `hots`, did you mean `hosts`?",
                b.display()
            ),
            format!(
                "{}:10:5: unknown field `retires`, did you mean `retries`?",
                e.display()
            ),
        ]
    );
    assert_eq!(err.to_string(), lines.join("\n"));
    assert_eq!(err.errors[0].kind, ConfigErrorKind::Io);
    assert_eq!(err.errors[0].location.file.as_ref(), missing.as_path());
}

#[test]
fn missing_path_is_an_error_naming_it() {
    let err = Loader::new(["/definitely/not/here"]).load().unwrap_err();
    assert_eq!(
        err.to_string(),
        "/definitely/not/here: cannot read config path: no such file or directory"
    );
    assert!(Loader::new(["/definitely/not/here"]).files().is_err());
}

#[test]
fn invalid_utf8_points_at_the_first_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bin.yaml");
    fs::write(&path, b"apiVersion: v1\nkind: \xc3Map\xff\n").unwrap();
    let err = Loader::new([&path]).load().unwrap_err();
    assert_eq!(
        err.errors,
        [ConfigError {
            location: Location::new(&path, 2, 7),
            message: "the file is not valid UTF-8 text".into(),
            kind: ConfigErrorKind::Syntax,
        }]
    );
}

#[test]
fn hostile_input_is_an_error_not_a_panic() {
    let deep = format!(
        "apiVersion: v1\nkind: ConfigMap\ndata: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert_eq!(errors(&deep)[0].kind, ConfigErrorKind::Syntax);
    let deep_block: String = (0..200)
        .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
        .collect();
    assert!(!errors(&deep_block).is_empty());
    let huge = format!(
        "{}  ports: [{{number: {}, name: x}}]\n",
        se("a"),
        "9".repeat(400)
    );
    assert_eq!(error(&huge).location, at(6, 20));
    let binary = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: !!binary aGVsbG8=}\n";
    let resources = parse_str(binary, Path::new("t.yaml"), "default").unwrap();
    assert_eq!(resources[0].name(), "hello");
    let bad_binary = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: !!binary '%%%'}\n";
    assert_eq!(error(bad_binary).location.line, 3);
    let control = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec: {\"\\e[31mx\\n\": 1}\n";
    let e = error(control);
    assert!(!e.message.chars().any(char::is_control), "{:?}", e.message);
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
                g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nkind: X\n";
    let _ = parse_str(bomb, Path::new("t.yaml"), "default");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_text_never_panics(text in ".{0,200}") {
        let _ = parse_str(&text, Path::new("t.yaml"), "default");
    }

    #[test]
    fn yaml_like_text_never_panics(parts in prop::collection::vec(prop::sample::select(vec![
        "apiVersion: networking.istio.io/v1\n", "apiVersion: v1\n", "kind: VirtualService\n",
        "kind: ServiceEntry\n", "kind: List\n", "items:\n", "- ", "  ", "\t", "metadata: {name: a}\n",
        "spec:\n", "hosts: [a]\n", "http:\n", "route:\n", "---\n", "...\n", "{", "}", "[", "]", ",",
        ": ", "&a ", "*a", "<<: *a\n", "!!binary ", "!!str ", "? ", "\"", "'", "#", "|\n", ">\n",
        "~", "1e999", "-1", "99999999999999999999999", ".nan", "\n", "%YAML 1.2\n", "\u{feff}",
    ]), 0..40)) {
        let text: String = parts.concat();
        let _ = parse_str(&text, Path::new("t.yaml"), "default");
    }
}
