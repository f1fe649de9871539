//! `mesh-proxy analyze PATH...`: load, validate, print findings; exit 1 on any error.
//!
//! Text output is one finding per line, `SEVERITY CODE FILE:LINE: message`; `-o json` prints a
//! JSON array of `{severity, code, file, line, column, resource, message}`. Findings go to
//! stdout in both forms; the exit code carries the verdict.
#![allow(clippy::print_stdout, reason = "this module is the CLI's output")]

use std::process::ExitCode;

use mesh_core::loader::Loader;
use mesh_core::validate::{self, Analyzer, Finding, Severity};

use crate::cli::AnalyzeArgs;

/// Output format of `analyze`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// `SEVERITY CODE FILE:LINE: message` lines.
    #[default]
    Text,
    /// A JSON array.
    Json,
}

/// The findings for `paths`: load errors if the files do not load, else validation findings.
pub fn findings(args: &AnalyzeArgs) -> Vec<Finding> {
    match Loader::new(&args.paths)
        .namespace(args.namespace.clone())
        .load()
    {
        Ok(snapshot) => Analyzer::new()
            .namespace(args.namespace.clone())
            .analyze(&snapshot),
        Err(error) => validate::findings_from_load_error(&error),
    }
}

/// Runs the command.
pub fn run(args: &AnalyzeArgs) -> ExitCode {
    let findings = findings(args);
    match args.output {
        OutputFormat::Text => {
            for f in &findings {
                println!("{f}");
            }
            if findings.is_empty() {
                eprintln!("no findings");
            }
        }
        OutputFormat::Json => match serde_json::to_string_pretty(&findings) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("mesh-proxy: cannot encode findings: {error}");
                return ExitCode::FAILURE;
            }
        },
    }
    if findings.iter().any(|f| f.severity == Severity::Error) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
