//! The `mesh-proxy` binary: see `mesh-proxy --help`.

fn main() -> std::process::ExitCode {
    mesh_proxy::cli::main()
}
