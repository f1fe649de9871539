//! Load Istio YAML, analyze it, and list the services and endpoints a proxy would see.
//!
//! `cargo run -p mesh-examples --example load_config -- [PATH...] [--namespace NS]`
//! (defaults: the users' examples in ../shared/examples, namespace `production`).
#![allow(clippy::print_stdout, reason = "an example prints what it shows")]

use std::path::PathBuf;

use mesh_core::loader::Loader;
use mesh_core::registry::{Registry, Scope};
use mesh_core::validate;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut namespace = String::from("production");
    while let Some(arg) = args.next() {
        if arg == "--namespace" {
            namespace = args.next().unwrap_or(namespace);
        } else {
            paths.push(arg.into());
        }
    }
    if paths.is_empty() {
        paths.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/examples"));
    }

    // 1. Load: every error names file:line:column; nothing half-loaded is returned.
    let snapshot = match Loader::new(&paths).namespace(namespace.clone()).load() {
        Ok(s) => s,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    println!(
        "loaded {} resources, version {}",
        snapshot.resources().len(),
        snapshot.version()
    );

    // 2. Analyze: what Istio's webhook and analyzers would say.
    for finding in validate::analyze(&snapshot) {
        println!("  {finding}");
    }

    // 3. The registry a proxy in `namespace` builds: services, clusters, endpoints.
    let registry = Registry::build(&snapshot, &Scope::new(namespace));
    for service in registry.services() {
        println!(
            "{} ({:?}, {:?})",
            service.host, service.location, service.resolution
        );
        for cluster in service.clusters() {
            let endpoints = cluster.endpoints();
            println!("  {} — {} endpoint(s)", cluster.name(), endpoints.len());
            for e in endpoints.endpoints() {
                println!(
                    "    {} labels={:?} sa={:?}",
                    e.addr, e.labels, e.service_account
                );
            }
        }
    }
}
