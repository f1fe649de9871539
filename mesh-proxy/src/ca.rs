//! `mesh-proxy ca init` / `ca issue`: a development CA on disk (never for production).
//!
//! `init` writes `DIR/ca.pem` and `DIR/ca-key.pem` (mode 0600); `issue` loads them and writes
//! an SVID: `OUT/cert.pem` (leaf and chain), `OUT/key.pem` (0600) and `OUT/ca.pem` (the trust
//! bundle) — exactly what `run --cert --key --ca` reads. The SVID's trust domain is the CA's
//! (DESIGN.md): a `--spiffe-id` in another trust domain is refused. Key material is written
//! to files only, never printed. Files are replaced atomically, so a proxy watching them
//! never reads half of one.
//!
//! Of the `ca` flags only `--trust-domain` reads an environment variable
//! (`MESH_TRUST_DOMAIN`, as `run` does): `MESH_NAMESPACE` and friends describe the workload a
//! proxy runs for and must not leak into the SVIDs issued here.
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//! use mesh_proxy::ca::{init, issue, Subject};
//!
//! init(Path::new("ca"), "cluster.local", Duration::from_secs(365 * 86400), false)?;
//! let svid = issue(
//!     Path::new("ca"),
//!     &Subject::Workload { namespace: "production".into(), service_account: "web".into() },
//!     Duration::from_secs(86400),
//!     Path::new("pki/web"),
//! )?;
//! println!("{}", svid.spiffe_id);
//! # Ok::<(), mesh_proxy::ca::CaCliError>(())
//! ```
#![allow(clippy::print_stdout, reason = "the CLI's output")]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use mesh_identity::ca::DevCa;
use mesh_identity::{SpiffeId, TrustDomain};

/// `mesh-proxy ca`.
#[derive(Debug, Args)]
pub struct CaArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CaCommand,
}

/// The `ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a development CA: DIR/ca.pem and DIR/ca-key.pem (never for production).
    Init(InitArgs),
    /// Issue an X.509-SVID from the CA in DIR: OUT/cert.pem, OUT/key.pem, OUT/ca.pem.
    Issue(IssueArgs),
}

/// `ca init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write ca.pem and ca-key.pem (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// The CA's trust domain: every SVID it issues is in it.
    #[arg(
        long,
        value_name = "TD",
        env = "MESH_TRUST_DOMAIN",
        default_value = "cluster.local"
    )]
    pub trust_domain: String,
    /// How long the CA is valid (`8760h`, `90m`; units ns, us, ms, s, m, h).
    #[arg(long, default_value = "8760h")]
    pub ttl: mesh_core::model::Duration,
    /// Overwrite an existing ca.pem and ca-key.pem (SVIDs of the old CA stop verifying).
    #[arg(long)]
    pub force: bool,
}

/// `ca issue`.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("subject")
        .required(true)
        .args(["spiffe_id", "namespace"]),
))]
pub struct IssueArgs {
    /// The CA's folder (from `ca init`).
    #[arg(long)]
    pub dir: PathBuf,
    /// The SVID's SPIFFE ID (in the CA's trust domain).
    #[arg(long, value_name = "ID", conflicts_with_all = ["namespace", "service_account"])]
    pub spiffe_id: Option<String>,
    /// The workload's namespace (with --service-account): spiffe://TD/ns/NS/sa/SA, TD the
    /// CA's trust domain.
    #[arg(long, value_name = "NS", requires = "service_account")]
    pub namespace: Option<String>,
    /// The workload's service account (with --namespace).
    #[arg(long, value_name = "SA", requires = "namespace")]
    pub service_account: Option<String>,
    /// How long the SVID is valid (`24h`, `90m`); at most as long as the CA still is.
    #[arg(long, default_value = "24h")]
    pub ttl: mesh_core::model::Duration,
    /// Where to write cert.pem, key.pem and ca.pem (created if missing; each file is replaced
    /// atomically, so a running proxy reloads them).
    #[arg(long)]
    pub out: PathBuf,
}

/// Why a `ca` command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaCliError {
    /// A file exists and `--force` was not given.
    #[error("{} exists (use --force to overwrite)", .0.display())]
    Exists(PathBuf),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The trust domain or SPIFFE ID is invalid, or in another trust domain.
    #[error("{0}")]
    Identity(String),
    /// The CA could not be created, loaded or could not issue.
    #[error("{0}")]
    Ca(String),
}

/// Who an SVID is for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// A SPIFFE ID as given.
    Id(String),
    /// `spiffe://<CA trust domain>/ns/<namespace>/sa/<service account>`.
    Workload {
        /// Namespace.
        namespace: String,
        /// Service account.
        service_account: String,
    },
}

/// What `issue` wrote.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Issued {
    /// The SVID's SPIFFE ID.
    pub spiffe_id: SpiffeId,
    /// Its expiry.
    pub not_after: SystemTime,
    /// The files written: cert, key, bundle.
    pub files: [PathBuf; 3],
}

/// Writes `contents` to `path` atomically (a temporary file in the same folder, renamed over
/// it), so a proxy watching the files never reads half of one. `secret` files get mode 0600
/// on unix (from creation on), others 0644.
fn write(path: &Path, contents: &str, secret: bool) -> Result<(), CaCliError> {
    use std::io::Write as _;
    let io = |source| CaCliError::Io {
        path: path.to_path_buf(),
        source,
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(io)?;
    // tempfile creates the file with mode 0600 on unix: a key is never readable by others.
    let mut tmp = tempfile::Builder::new()
        .prefix(".mesh-proxy-ca")
        .tempfile_in(parent)
        .map_err(io)?;
    tmp.write_all(contents.as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if secret { 0o600 } else { 0o644 };
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

fn read(path: &Path) -> Result<String, CaCliError> {
    std::fs::read_to_string(path).map_err(|source| CaCliError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates a CA for `trust_domain` valid for `ttl` in `dir`; returns its expiry.
pub fn init(
    dir: &Path,
    trust_domain: &str,
    ttl: Duration,
    force: bool,
) -> Result<SystemTime, CaCliError> {
    let td = TrustDomain::new(trust_domain)
        .map_err(|e| CaCliError::Identity(format!("--trust-domain {trust_domain:?}: {e}")))?;
    if ttl.is_zero() {
        return Err(CaCliError::Ca("--ttl must be longer than 0".to_owned()));
    }
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    if !force {
        for f in [&cert, &key] {
            if f.exists() {
                return Err(CaCliError::Exists(f.clone()));
            }
        }
    }
    let ca = DevCa::new(&td, ttl).map_err(|e| CaCliError::Ca(e.to_string()))?;
    write(&key, ca.key_pem(), true)?;
    write(&cert, ca.cert_pem(), false)?;
    Ok(ca.not_after())
}

/// Issues an SVID for `subject` from the CA in `dir`, valid for `ttl`, into `out`.
pub fn issue(
    dir: &Path,
    subject: &Subject,
    ttl: Duration,
    out: &Path,
) -> Result<Issued, CaCliError> {
    let load = |name: &str| {
        read(&dir.join(name)).map_err(|e| match e {
            CaCliError::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
                CaCliError::Ca(format!(
                    "no CA in {}: {} is missing (create one with `mesh-proxy ca init --dir {}`)",
                    dir.display(),
                    path.display(),
                    dir.display()
                ))
            }
            other => other,
        })
    };
    let ca = DevCa::from_pem(&load("ca.pem")?, &load("ca-key.pem")?).map_err(|e| {
        CaCliError::Ca(format!(
            "{} and {} are not a CA written by `mesh-proxy ca init`: {e}",
            dir.join("ca.pem").display(),
            dir.join("ca-key.pem").display()
        ))
    })?;
    let td = ca.trust_domain();
    let id = match subject {
        Subject::Id(s) => SpiffeId::parse(s)
            .map_err(|e| CaCliError::Identity(format!("--spiffe-id {s:?}: {e}")))?,
        Subject::Workload {
            namespace,
            service_account,
        } => SpiffeId::istio(td, namespace, service_account)
            .map_err(|e| CaCliError::Identity(e.to_string()))?,
    };
    if id.trust_domain() != td {
        return Err(CaCliError::Identity(format!(
            "{id} is not in the CA's trust domain {td}"
        )));
    }
    if ttl.is_zero() {
        return Err(CaCliError::Ca("--ttl must be longer than 0".to_owned()));
    }
    let now = SystemTime::now();
    if ca.not_after() <= now {
        return Err(CaCliError::Ca(format!(
            "the CA in {} expired at {}: create a new one with `mesh-proxy ca init --force`",
            dir.display(),
            rfc3339(ca.not_after())
        )));
    }
    if now.checked_add(ttl).is_none_or(|end| end > ca.not_after()) {
        return Err(CaCliError::Ca(format!(
            "an SVID valid for --ttl {} would outlive the CA in {} (valid until {}): use a \
             shorter --ttl",
            human(ttl),
            dir.display(),
            rfc3339(ca.not_after())
        )));
    }
    let svid = ca
        .issue(&id, ttl)
        .map_err(|e| CaCliError::Ca(e.to_string()))?;
    let files = [
        out.join("cert.pem"),
        out.join("key.pem"),
        out.join("ca.pem"),
    ];
    let mut chain = svid.cert_pem().to_owned();
    if !chain.ends_with('\n') {
        chain.push('\n');
    }
    write(&files[0], &chain, false)?;
    write(&files[1], svid.key_pem(), true)?;
    write(&files[2], ca.cert_pem(), false)?;
    Ok(Issued {
        spiffe_id: id,
        not_after: svid.not_after(),
        files,
    })
}

/// `ttl` in the largest whole unit: `72h`, `90m`, `45s`.
fn human(ttl: Duration) -> String {
    let secs = ttl.as_secs();
    if ttl.subsec_nanos() != 0 || secs == 0 {
        format!("{ttl:?}")
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// `t` as an RFC 3339 UTC timestamp, whole seconds.
fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86400;
    let rem = secs % 86400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Runs `mesh-proxy ca …`; exit 1 on any error.
pub fn run(args: &CaArgs) -> ExitCode {
    let result = match &args.command {
        CaCommand::Init(a) => init(&a.dir, &a.trust_domain, a.ttl.as_std(), a.force).map(|not_after| {
            println!(
                "development CA for trust domain {} (never for production)\n  {}\n  {} (private key, mode 0600)\n  valid until {}",
                a.trust_domain,
                a.dir.join("ca.pem").display(),
                a.dir.join("ca-key.pem").display(),
                rfc3339(not_after)
            );
        }),
        CaCommand::Issue(a) => {
            let subject = match (&a.spiffe_id, &a.namespace, &a.service_account) {
                (Some(id), _, _) => Subject::Id(id.clone()),
                (None, Some(ns), Some(sa)) => Subject::Workload {
                    namespace: ns.clone(),
                    service_account: sa.clone(),
                },
                _ => {
                    eprintln!("mesh-proxy ca issue: give --spiffe-id, or --namespace and --service-account");
                    return ExitCode::FAILURE;
                }
            };
            issue(&a.dir, &subject, a.ttl.as_std(), &a.out).map(|issued| {
                println!(
                    "SVID for {} valid until {}\n  {}\n  {} (private key, mode 0600)\n  {} (trust bundle)",
                    issued.spiffe_id,
                    rfc3339(issued.not_after),
                    issued.files[0].display(),
                    issued.files[1].display(),
                    issued.files[2].display()
                );
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mesh-proxy ca: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_identity::TrustBundle;
    use mesh_identity::svid::verify_svid;

    #[test]
    fn init_then_issue_writes_a_verifiable_svid() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        init(
            &ca,
            "cluster.local",
            Duration::from_secs(3600 * 24 * 365),
            false,
        )
        .unwrap();
        assert!(matches!(
            init(&ca, "cluster.local", Duration::from_secs(3600), false),
            Err(CaCliError::Exists(_))
        ));
        init(&ca, "cluster.local", Duration::from_secs(3600 * 24), true).unwrap();
        let out = dir.path().join("pki/web");
        let subject = Subject::Workload {
            namespace: "production".into(),
            service_account: "web".into(),
        };
        let issued = issue(&ca, &subject, Duration::from_secs(3600), &out).unwrap();
        assert_eq!(
            issued.spiffe_id.to_string(),
            "spiffe://cluster.local/ns/production/sa/web"
        );
        let creds = mesh_identity::credentials::Credentials::from_pem(
            &read(&out.join("cert.pem")).unwrap(),
            &read(&out.join("key.pem")).unwrap(),
        )
        .unwrap();
        let td = TrustDomain::new("cluster.local").unwrap();
        let bundle = TrustBundle::from_pem(td, &read(&out.join("ca.pem")).unwrap()).unwrap();
        let v = verify_svid(creds.chain(), &bundle, rustls::pki_types::UnixTime::now()).unwrap();
        assert_eq!(v.spiffe_id, issued.spiffe_id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [ca.join("ca-key.pem"), out.join("key.pem")] {
                let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", f.display());
            }
        }
        // DESIGN.md: the SVID's trust domain is the CA's.
        let foreign = Subject::Id("spiffe://example.org/ns/x/sa/y".into());
        let e = issue(&ca, &foreign, Duration::from_secs(60), &out).unwrap_err();
        assert!(
            e.to_string().contains("not in the CA's trust domain"),
            "{e}"
        );
        let bad = Subject::Id("spiffe://Cluster.local/x".into());
        assert!(matches!(
            issue(&ca, &bad, Duration::from_secs(60), &out),
            Err(CaCliError::Identity(_))
        ));
        assert!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400))
                .starts_with("2000-02-29")
        );
    }
}
