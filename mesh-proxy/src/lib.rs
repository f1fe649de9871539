//! `mesh-proxy`: the reference sidecar of the mesh SDK.
//!
//! It reads real Istio YAML (VirtualService, DestinationRule, ServiceEntry, WorkloadEntry,
//! PeerAuthentication, AuthorizationPolicy, Sidecar) and stands beside a service written in
//! any language:
//!
//! - the **outbound** listener takes the local app's requests (HTTP/1.1 or HTTP/2 prior
//!   knowledge on one port, absolute-form URIs as sent to an `HTTP_PROXY`, or plain requests
//!   with a `Host`), resolves the destination like Istio, and forwards to an endpoint over
//!   pooled keep-alive connections;
//! - the **inbound** listener forwards the mesh's requests to the local app (`--app`);
//! - the **admin** listener serves `/ready`, `/live`, `/config_dump`, `/stats/prometheus`,
//!   `/clusters`, `POST /logging` and `POST /quitquitquit`.
//!
//! The config folders are watched: a valid change is swapped in atomically, an invalid one is
//! rejected with file:line and the last good config keeps serving.
//!
//! The binary's commands (`run`, `analyze`, `explain`, `demo`) are in [`cli`]; embedding the
//! proxy in a program goes through [`Proxy::start`].

mod admin;
pub mod analyze;
pub mod body;
pub mod ca;
pub mod cli;
pub mod demo;
pub mod explain;
mod forward;
pub mod headers;
pub mod local_reply;
pub mod logging;
pub mod metrics;
mod mtls;
mod peers;
pub mod pool;
mod proxy;
mod resilience;
mod server;
pub mod settings;
mod telemetry;

pub use mtls::IdentityError;
pub use proxy::{Proxy, RunningProxy, StartError};
pub use settings::{IdentitySource, LogFormat, ProxySettings};
