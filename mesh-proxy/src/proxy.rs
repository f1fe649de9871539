//! Starting, running and draining a proxy: listeners, the config watch, shared state.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mesh_proxy::StartError> {
//! use mesh_proxy::{Proxy, ProxySettings};
//!
//! let settings = ProxySettings::loopback(["mesh/".into()]);
//! let proxy = Proxy::start(settings).await?;
//! println!("outbound on {}", proxy.outbound_addr());
//! proxy.shutdown();          // what SIGTERM does: stop accepting, drain, then return
//! proxy.wait().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use mesh_core::Snapshot;
use mesh_core::endpoint::{Endpoint, EndpointSet};
use mesh_core::loader::{LoadError, Loader};
use mesh_core::registry::Registry;
use mesh_core::watch::{Check, ConfigWatch, WatchError};
use mesh_routing::RouteTable;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::headers::Direction;
use crate::metrics::Metrics;
use crate::mtls::{Identity, IdentityError};
use crate::pool::{Pool, PoolSettings};
use crate::resilience::Guards;
use crate::settings::ProxySettings;
use crate::{admin, logging, server};
use mesh_identity::AuthzTable;
use mesh_identity::peer_auth::PeerAuthTable;

/// What one config version compiles to for this proxy.
#[derive(Debug)]
pub(crate) struct ProxyState {
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) registry: Registry,
    pub(crate) routes: RouteTable,
    /// Retry policies and per-cluster breakers, outlier detectors, connection options and TLS.
    pub(crate) guards: Guards,
    /// The inbound mTLS mode of the workload's ports (PA-1..PA-3).
    pub(crate) peer_auth: PeerAuthTable,
    /// The AuthorizationPolicies of this workload (AUTHZ-1).
    pub(crate) authz: AuthzTable,
    /// Metric labels that depend on the registry (MET-4).
    pub(crate) peers: crate::peers::PeerLabels,
}

impl ProxyState {
    /// Compiles a snapshot for this proxy; fails when the routes do not compile (an invalid
    /// regex, RELOAD-2), and then the caller keeps the previous state.
    fn build(
        snapshot: Arc<Snapshot>,
        settings: &ProxySettings,
        identity: Option<&Arc<Identity>>,
        previous: Option<&ProxyState>,
    ) -> Result<Self, mesh_routing::Error> {
        let scope = settings.scope();
        let registry = Registry::build_from(&snapshot, &scope, previous.map(|p| &p.registry));
        let routes = RouteTable::compile(&snapshot, &registry, &scope)?;
        let guards = Guards::build(&registry, &routes, identity, previous.map(|p| &p.guards));
        let peer_auth = PeerAuthTable::compile(&snapshot, &scope);
        let authz = AuthzTable::compile_with(&snapshot, &scope, &settings.authz_options());
        let peers = crate::peers::PeerLabels::build(&registry, settings);
        registry.spawn_dns_refresh();
        Ok(Self {
            snapshot,
            registry,
            routes,
            guards,
            peer_auth,
            authz,
            peers,
        })
    }
}

/// Everything the listeners share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) settings: ProxySettings,
    /// The proxy's SVID and trust bundle; `None` = plaintext only.
    pub(crate) identity: Option<Arc<Identity>>,
    pub(crate) state: ArcSwap<ProxyState>,
    pub(crate) pool: Pool,
    pub(crate) metrics: Metrics,
    pub(crate) watch: ConfigWatch,
    /// The local app as a one-endpoint cluster (`inbound|PORT||`), for `/clusters`.
    pub(crate) inbound_cluster: Arc<EndpointSet>,
    /// Istio's inbound retry policy (RETRY-14), compiled once.
    pub(crate) inbound_retry: mesh_resilience::RetryPolicy,
    pub(crate) listeners: Vec<ListenerInfo>,
    pub(crate) ready: AtomicBool,
    pub(crate) draining: watch::Sender<bool>,
    pub(crate) log: Option<logging::LogHandle>,
    /// Access log, trace sampling and propagation (SEMANTICS §9).
    pub(crate) telemetry: crate::telemetry::Telemetry,
}

impl Shared {
    /// Starts the drain (idempotent).
    pub(crate) fn start_drain(&self) {
        self.draining
            .send_if_modified(|d| !std::mem::replace(d, true));
    }

    pub(crate) fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }
}

/// A bound listener, for `/config_dump`.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ListenerInfo {
    pub(crate) name: &'static str,
    pub(crate) address: SocketAddr,
}

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration did not load.
    #[error("invalid configuration:\n{0}")]
    Config(#[from] LoadError),
    /// The configuration loaded but failed validation.
    #[error("invalid configuration:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        /// Which listener.
        listener: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The config paths could not be watched.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// The proxy's certificate, key or trust bundle could not be set up.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The access-log file could not be opened.
    #[error("cannot open the access log {path}: {source}")]
    AccessLog {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Builds and starts proxies.
#[derive(Debug)]
#[non_exhaustive]
pub struct Proxy;

/// A running proxy.
#[derive(Debug)]
pub struct RunningProxy {
    shared: Arc<Shared>,
    outbound: SocketAddr,
    inbound: SocketAddr,
    admin: SocketAddr,
    done: JoinHandle<()>,
}

impl Proxy {
    /// Loads the config, binds the listeners and serves; returns once everything is bound and
    /// `/ready` answers 200.
    pub async fn start(settings: ProxySettings) -> Result<RunningProxy, StartError> {
        Self::start_with(settings, None, None).await
    }

    /// [`Proxy::start`] with a check every config (first and reloaded) must pass, and the log
    /// handle `/logging` changes.
    pub async fn start_with(
        settings: ProxySettings,
        check: Option<Check>,
        log: Option<logging::LogHandle>,
    ) -> Result<RunningProxy, StartError> {
        let loader = Loader::new(&settings.config).namespace(settings.namespace.clone());
        let snapshot = loader.load()?;
        if let Some(check) = &check {
            check(&snapshot).map_err(StartError::Invalid)?;
        }
        let bind = |listener: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    listener,
                    addr,
                    source,
                })
        };
        let outbound = bind("outbound", settings.outbound).await?;
        let inbound = bind("inbound", settings.inbound).await?;
        let admin = bind("admin", settings.admin).await?;
        let local = |l: &TcpListener, fallback| l.local_addr().unwrap_or(fallback);
        let (outbound_addr, inbound_addr, admin_addr) = (
            local(&outbound, settings.outbound),
            local(&inbound, settings.inbound),
            local(&admin, settings.admin),
        );

        let identity = Identity::load(&settings)?;
        let metrics = Metrics::new();
        let telemetry = crate::telemetry::Telemetry::new(
            &settings,
            identity.as_ref().map(|i| &i.own),
            metrics.istio.clone(),
        )?;
        match &identity {
            Some(id) => tracing::info!(spiffe_id = %id.own, "mTLS identity loaded"),
            None => {
                tracing::info!("no certificate (--cert --key --ca): plaintext only, auto mTLS off")
            }
        }
        let watch = ConfigWatch::spawn(loader, settings.config.clone(), snapshot, check)?;
        let state = ProxyState::build(watch.current(), &settings, identity.as_ref(), None)
            .map_err(|e| StartError::Invalid(vec![e.to_string()]))?;
        let mut app = Endpoint::new(settings.app);
        app.namespace = settings.namespace.clone();
        app.service_account = Some(settings.service_account.clone());
        let shared = Arc::new(Shared {
            identity,
            state: ArcSwap::from_pointee(state),
            pool: Pool::new(PoolSettings::default()),
            metrics,
            inbound_cluster: Arc::new(EndpointSet::new(vec![app])),
            inbound_retry: crate::resilience::inbound_retry_policy(),
            listeners: vec![
                ListenerInfo {
                    name: "outbound",
                    address: outbound_addr,
                },
                ListenerInfo {
                    name: "inbound",
                    address: inbound_addr,
                },
                ListenerInfo {
                    name: "admin",
                    address: admin_addr,
                },
            ],
            ready: AtomicBool::new(false),
            draining: watch::channel(false).0,
            log,
            watch,
            telemetry,
            settings,
        });

        tokio::spawn(follow_config(Arc::clone(&shared)));
        Identity::spawn_refresh(Arc::clone(&shared));
        tokio::spawn(admin::serve(Arc::clone(&shared), admin));
        let out_task = tokio::spawn(server::serve(
            Arc::clone(&shared),
            Direction::Outbound,
            outbound,
        ));
        let in_task = tokio::spawn(server::serve(
            Arc::clone(&shared),
            Direction::Inbound,
            inbound,
        ));
        shared.ready.store(true, Ordering::Release);
        tracing::info!(
            outbound = %outbound_addr, inbound = %inbound_addr, admin = %admin_addr,
            version = %shared.state.load().snapshot.version(), "mesh-proxy ready"
        );
        let done = tokio::spawn(async move {
            let _ = out_task.await;
            let _ = in_task.await;
        });
        Ok(RunningProxy {
            shared,
            outbound: outbound_addr,
            inbound: inbound_addr,
            admin: admin_addr,
            done,
        })
    }
}

impl RunningProxy {
    /// The outbound listener's address.
    pub fn outbound_addr(&self) -> SocketAddr {
        self.outbound
    }

    /// The inbound listener's address.
    pub fn inbound_addr(&self) -> SocketAddr {
        self.inbound
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The config version serving now.
    pub fn config_version(&self) -> String {
        self.shared.state.load().snapshot.version().to_owned()
    }

    /// Starts a graceful drain (SEMANTICS DRAIN-1): listeners stop accepting, `/ready` turns
    /// 503, in-flight requests finish within the drain timeout.
    pub fn shutdown(&self) {
        self.shared.start_drain();
    }

    /// Resolves when a drain has started (from [`Self::shutdown`] or `POST /quitquitquit`).
    pub async fn draining(&self) {
        let mut rx = self.shared.draining.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Resolves when a drain (from [`Self::shutdown`], or `POST /quitquitquit`) has finished.
    pub async fn wait(self) {
        let _ = self.done.await;
        tracing::info!("drain complete");
    }
}

/// Rebuilds the proxy state whenever the watch publishes a new snapshot.
async fn follow_config(shared: Arc<Shared>) {
    let mut rx = shared.watch.subscribe();
    while rx.changed().await.is_ok() {
        let snapshot = rx.borrow_and_update().clone();
        let previous = shared.state.load_full();
        match ProxyState::build(
            snapshot,
            &shared.settings,
            shared.identity.as_ref(),
            Some(&previous),
        ) {
            Ok(next) => shared.state.store(Arc::new(next)),
            // The snapshot passed validation but its routes do not compile: keep serving the
            // last good state (RELOAD-2).
            Err(e) => tracing::warn!(error = %e, "rejected config: routes do not compile"),
        }
    }
}
