//! [`trace_init`]: opt-in log output for tests.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

/// Installs a global `tracing` subscriber once per test binary; later calls do nothing.
///
/// Output goes through the test writer (captured per test by libtest, shown for failures) and
/// is filtered by `RUST_LOG` (e.g. `RUST_LOG=mesh_proxy=debug`); without `RUST_LOG` nothing is
/// logged. If another global subscriber is already installed, it is kept.
pub fn trace_init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("off"));
        // An error only means a subscriber is already installed, which is fine.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
