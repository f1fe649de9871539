//! Hot reload: watch the config paths, load and check a new [`Snapshot`] on change, publish it.
//!
//! The folder is watched, not the file (DESIGN.md): editors that write a temporary file and
//! rename it over the original, and Kubernetes ConfigMap volumes that swap a `..data` symlink,
//! both show up as events in the folder. Events are debounced, then everything is loaded again.
//! A change that does not load or does not pass the check is rejected as a whole: the error is
//! logged with file:line, the failure is counted, and the last good snapshot keeps serving
//! (SEMANTICS RELOAD-2). A folder that disappears is a failed reload, and its re-creation is
//! seen because the parent folder is watched too.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mesh_core::loader::Loader;
//! use mesh_core::watch::ConfigWatch;
//!
//! let loader = Loader::new(["mesh/"]).namespace("prod");
//! let initial = loader.load()?;
//! let watch = ConfigWatch::spawn(loader, vec!["mesh/".into()], initial, None)?;
//! let mut snapshots = watch.subscribe();
//! while snapshots.changed().await.is_ok() {
//!     println!("now serving {}", snapshots.borrow().version());
//! }
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::Snapshot;
use crate::loader::Loader;

/// How long the watcher waits for more events before it reloads.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// An extra check a new snapshot must pass before it is published (for example: no `analyze`
/// errors). Returns the messages to log when it fails.
pub type Check = Box<dyn Fn(&Snapshot) -> Result<(), Vec<String>> + Send + Sync>;

/// Counters of reload attempts, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct ReloadStats {
    success: AtomicU64,
    failure: AtomicU64,
    last_success_unix: AtomicU64,
}

impl ReloadStats {
    /// Reloads applied (a snapshot was published or found unchanged).
    pub fn successes(&self) -> u64 {
        self.success.load(Ordering::Relaxed)
    }

    /// Reloads rejected.
    pub fn failures(&self) -> u64 {
        self.failure.load(Ordering::Relaxed)
    }

    /// Unix time (seconds) of the last successful load, 0 before any.
    pub fn last_success_unix(&self) -> u64 {
        self.last_success_unix.load(Ordering::Relaxed)
    }

    fn record_success(&self) {
        self.success.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        self.last_success_unix.store(now, Ordering::Relaxed);
    }
}

/// Errors starting the watcher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The file-system watcher could not be created or could not watch a path.
    #[error("cannot watch {path}: {source}")]
    Notify {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: notify::Error,
    },
}

/// A running config watch: the current snapshot, a way to subscribe to new ones, and stats.
///
/// Dropping it stops watching; subscribers keep the last snapshot.
#[derive(Debug)]
pub struct ConfigWatch {
    rx: watch::Receiver<Arc<Snapshot>>,
    stats: Arc<ReloadStats>,
    trigger: mpsc::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConfigWatch {
    /// Publishes `initial` and starts watching `paths`; on change, `loader` loads again and
    /// `check` (if any) vets the result. Must be called inside a tokio runtime.
    pub fn spawn(
        loader: Loader,
        paths: Vec<PathBuf>,
        initial: Snapshot,
        check: Option<Check>,
    ) -> Result<Self, WatchError> {
        let (tx, rx) = watch::channel(Arc::new(initial));
        let stats = Arc::new(ReloadStats::default());
        stats.record_success();
        let (trigger, events) = mpsc::channel::<()>(1);
        let notify_tx = trigger.clone();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(ev) if ev.kind.is_access() => {}
                // A full channel already holds a pending reload: dropping this one is fine.
                Ok(_) => {
                    let _ = notify_tx.try_send(());
                }
                Err(error) => tracing::warn!(%error, "config watch error"),
            })
            .map_err(|source| WatchError::Notify {
                path: PathBuf::new(),
                source,
            })?;
        let targets = watch_targets(&paths);
        for (path, mode) in &targets {
            if let Err(source) = watcher.watch(path, *mode) {
                // A missing path is reported by the loader; only a live path must be watchable.
                if path.exists() {
                    return Err(WatchError::Notify {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        let task = tokio::spawn(run(
            Reloader {
                loader,
                check,
                tx,
                stats: Arc::clone(&stats),
            },
            watcher,
            targets,
            events,
        ));
        Ok(Self {
            rx,
            stats,
            trigger,
            task,
        })
    }

    /// The snapshot serving now.
    pub fn current(&self) -> Arc<Snapshot> {
        self.rx.borrow().clone()
    }

    /// A receiver that sees every published snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.rx.clone()
    }

    /// Reload counters.
    pub fn stats(&self) -> &Arc<ReloadStats> {
        &self.stats
    }

    /// Asks for a reload now, as if a file had changed.
    pub fn reload(&self) {
        let _ = self.trigger.try_send(());
    }
}

/// What to watch: folders recursively; a file's folder (non-recursively, as editors replace
/// files by rename); and each path's parent, so a deleted-then-recreated path is seen.
fn watch_targets(paths: &[PathBuf]) -> Vec<(PathBuf, RecursiveMode)> {
    let mut targets: Vec<(PathBuf, RecursiveMode)> = Vec::new();
    let mut add = |p: PathBuf, mode| {
        if !targets.iter().any(|(q, m)| *q == p && *m == mode) {
            targets.push((p, mode));
        }
    };
    for path in paths {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if path.is_dir() {
            add(path.clone(), RecursiveMode::Recursive);
        }
        add(parent.to_path_buf(), RecursiveMode::NonRecursive);
    }
    targets
}

struct Reloader {
    loader: Loader,
    check: Option<Check>,
    tx: watch::Sender<Arc<Snapshot>>,
    stats: Arc<ReloadStats>,
}

async fn run(
    reloader: Reloader,
    mut watcher: notify::RecommendedWatcher,
    targets: Vec<(PathBuf, RecursiveMode)>,
    mut events: mpsc::Receiver<()>,
) {
    let reloader = Arc::new(reloader);
    while events.recv().await.is_some() {
        tokio::time::sleep(DEBOUNCE).await;
        while events.try_recv().is_ok() {}
        let r = Arc::clone(&reloader);
        match tokio::task::spawn_blocking(move || r.reload_once()).await {
            Ok(()) => {}
            Err(error) => tracing::error!(%error, "config reload task failed"),
        }
        // Re-arm watches: a folder that was deleted and re-created needs a new watch.
        for (path, mode) in &targets {
            if path.exists() {
                let _ = watcher.unwatch(path);
                let _ = watcher.watch(path, *mode);
            }
        }
    }
}

impl Reloader {
    fn reload_once(&self) {
        let snapshot = match self.loader.load() {
            Ok(s) => s,
            Err(error) => return self.reject(&error.to_string()),
        };
        let current = self.tx.borrow().version().to_owned();
        if current == snapshot.version() {
            // Same content as the snapshot serving, which already passed the check.
            self.stats.record_success();
            tracing::debug!(version = %current, "config unchanged");
            return;
        }
        if let Some(check) = &self.check
            && let Err(messages) = check(&snapshot)
        {
            return self.reject(&messages.join("\n"));
        }
        self.stats.record_success();
        tracing::info!(from = %current, to = %snapshot.version(), resources = snapshot.resources().len(), "config reloaded");
        self.tx.send_replace(Arc::new(snapshot));
    }

    fn reject(&self, errors: &str) {
        self.stats.failure.fetch_add(1, Ordering::Relaxed);
        let serving = self.tx.borrow().version().to_owned();
        tracing::warn!(%serving, "config reload rejected, keeping the last good config:\n{errors}");
    }
}
