//! The ext_proc router: sees every request to the gateway, decides where it goes and mutates it.
//!
//! - [`decide`]: pure decisions from snapshots and request facts;
//! - [`respond`]: the only place that builds Envoy messages;
//! - [`stream`]: the I/O of one ext_proc stream (gather, decide, act);
//! - [`serve`]: the gRPC server, one single-threaded runtime per core;
//! - [`upstream_failure`]: a routed call answered without MCP (upstream down) → JSON-RPC error.

pub mod decide;
pub mod respond;
pub mod serve;
pub mod stream;
pub mod upstream_failure;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::auth::session::SessionKeys;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::telemetry::Metrics;
use crate::upstream::{InitLimits, UpstreamClient, UpstreamSessions};

/// Settings from flags.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// `:authority` of requests for the broker (`--mcp-gateway-public-host`).
    pub public_host: String,
    /// Where upstream initializes are sent back through the gateway (`--mcp-gateway-private-host`).
    pub private_host: Option<String>,
    /// Largest request body accepted (`--max-request-body-size`).
    pub max_body: usize,
    /// Budget of an upstream initialize; must stay below Envoy's `message_timeout`.
    pub init_timeout: Duration,
}

/// Everything the router reads; cheap to share between streams.
pub struct Router {
    pub config: watch::Receiver<Arc<Config>>,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    pub sessions: Arc<UpstreamSessions>,
    pub keys: Arc<SessionKeys>,
    pub client: Arc<UpstreamClient>,
    /// Bounds concurrent upstream initializes per server (`--max-concurrent-initializes`).
    pub init_limits: Arc<InitLimits>,
    pub settings: RouterSettings,
    pub metrics: Arc<Metrics>,
}
