//! Structured logs: text or JSON (`--log-format`), level from `RUST_LOG` (default `info`),
//! changed at runtime through the admin `POST /logging?level=`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::LogFormat;

/// Changes the log filter of a running process.
#[derive(Clone)]
pub struct LogHandle {
    handle: reload::Handle<EnvFilter, tracing_subscriber::Registry>,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle").finish_non_exhaustive()
    }
}

impl LogHandle {
    /// Sets the filter (`debug`, `warn`, `mesh_proxy=trace,info`, …); returns the new filter.
    pub fn set(&self, directives: &str) -> Result<String, String> {
        let filter = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        let text = filter.to_string();
        self.handle
            .modify(|f| *f = filter)
            .map_err(|e| e.to_string())?;
        Ok(text)
    }

    /// The current filter.
    pub fn current(&self) -> String {
        self.handle
            .with_current(|f| f.to_string())
            .unwrap_or_default()
    }
}

/// Installs the global subscriber; `None` if one was already installed.
pub fn init(format: LogFormat) -> Option<LogHandle> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,notify=error"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.ok().map(|()| LogHandle { handle })
}
